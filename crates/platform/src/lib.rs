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
//! - [`config`]: the platform's TOML file, checked, with its embedded default;
//! - [`model`]: what is stored and exchanged (telemetry rows, terminals, alarms, commands,
//!   users), independent of the database;
//! - [`values`]: NW values as JSON, one shape for the API, command results and the CLI;
//! - [`store`]: the [`store::Store`] trait and its SQLite and PostgreSQL implementations;
//! - [`listener`]: the device listener: data-box connections, uploads stored and
//!   acknowledged, remote commands to terminals;
//! - [`alarms`]: the alarm rules (BMS warning bits, cell spread, temperature rise, SOC low,
//!   offline) as a pure engine, and the task that applies them through the store;
//! - [`live`]: live events (uploads stored, alarm changes) fanned out to open pages;
//! - [`api`]: the HTTP API (axum) with its OpenAPI document: fleet, terminals, history,
//!   alarms, remote settings, registration, users, sessions, tokens, audit log;
//! - [`web`]: the web app's static files, embedded, served as the API router's fallback;

#![warn(missing_docs)]

pub mod alarms;
pub mod api;
pub mod config;
pub mod daemon;
pub mod listener;
pub mod live;
pub mod model;
pub mod store;
pub mod values;
pub mod web;
