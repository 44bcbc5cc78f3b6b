//! Helpers shared by the platform's integration tests: `mod support;` in a test file.
//!
//! - [`pg`]: a throw-away PostgreSQL server (initdb + pg_ctl in a temporary directory).

#![allow(dead_code)]

pub mod pg;
