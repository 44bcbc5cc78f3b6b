//! Shared pieces of bmslink's configuration files (the gateway's and the platform's): each file
//! is parsed by `toml` into structures that keep every value's span, then checked, and every
//! problem is reported as a [`ConfigError`] located by file, line, column and key path
//! (`site.toml:12:17: racks[1].link.baud: 12345 is not a standard baud rate`).
//!
//! - [`error`]: [`Location`], [`ConfigError`], [`ConfigErrors`] and the [`Collector`] that
//!   gathers them while a file is checked;
//! - [`values`]: value types TOML has no type for: durations ("500ms") and timeouts that can be
//!   "off";
//! - [`LogLevel`]: the `log_level` key.

#![warn(missing_docs)]

pub mod error;
pub mod values;

pub use error::{Collector, ConfigError, ConfigErrors, Location};
pub use values::{show, HumanDuration, Timeout};

use serde::Deserialize;

/// Log level on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Normal operation (default).
    #[default]
    Info,
    /// Every request and reply.
    Debug,
    /// With the bytes on the line.
    Trace,
}

impl LogLevel {
    /// The name as a `tracing` filter takes it ("info").
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}
