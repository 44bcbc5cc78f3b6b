//! Configuration errors, located by file, line, column and key path (shared with the platform:
//! `bmslink-config`).

pub use bmslink_config::error::{Collector, ConfigError, ConfigErrors, Location};
