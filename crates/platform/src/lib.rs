//! The bmslink monitoring platform: the cloud side of the NW protocol.
//!
//! BMS data boxes (4G modules, and bmslink gateways acting as one) connect over TCP and upload
//! telemetry; the platform stores it, raises alarms, and sends reads and setting changes back
//! down the same connection; people use it through an HTTP API (and the web app on top).
//!
//! ```text
//!  data boxes ──TCP──► listener ──batches──► store (SQLite | PostgreSQL)
//!                        ▲  │                    ▲        │
//!        commands (pair, │  └── uploads ──► alarms ───────┘
//!        write, read) ───┘                       ▲
//!                    command bus ◄── HTTP API ───┘ (users, sessions, tokens, audit)
//! ```
//!
//! - [`model`]: what is stored and exchanged (telemetry rows, terminals, alarms, commands,
//!   users), independent of the database;
//! - [`store`]: the [`store::Store`] trait and its SQLite and PostgreSQL implementations;

#![warn(missing_docs)]

pub mod model;
pub mod store;
