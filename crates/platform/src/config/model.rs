//! The checked configuration, in typed values.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bmslink_config::LogLevel;

use crate::store::Retention;

/// The whole platform configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct PlatformConfig {
    /// Log level on stderr.
    pub log_level: LogLevel,
    /// Where the platform's files live.
    pub data_dir: PathBuf,
    /// The data boxes' listener.
    pub devices: DevicesConfig,
    /// The database.
    pub database: DatabaseConfig,
    /// How long data is kept.
    pub retention: Retention,
    /// The HTTP API and web app.
    pub http: HttpConfig,
    /// Alarm rules' thresholds.
    pub alarms: AlarmThresholds,
    /// Several processes sharing a database: liveness.
    pub cluster: ClusterConfig,
}

pub use crate::listener::RegistrationPolicy;

/// The data boxes' listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicesConfig {
    /// ip:port.
    pub listen: SocketAddr,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// Registration policy.
    pub registration: RegistrationPolicy,
}

/// A value kept out of logs and `Debug` output (a database URL with a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// The database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseConfig {
    /// A SQLite file.
    Sqlite {
        /// Its path (`data_dir` joined with the file's `path`).
        path: PathBuf,
    },
    /// A PostgreSQL server.
    Postgres {
        /// The connection URL.
        url: Secret,
    },
}

/// The HTTP API and web app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// ip:port.
    pub listen: SocketAddr,
    /// Whether session cookies are marked Secure.
    pub secure_cookies: bool,
    /// How long a login lasts.
    pub session_lifetime: Duration,
    /// How long a remote read or write may take.
    pub command_timeout: Duration,
}

/// Thresholds of the platform's own alarm rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlarmThresholds {
    /// No upload for this long: offline.
    pub offline_after: Duration,
    /// Cell spread, mV.
    pub cell_spread_mv: u16,
    /// Temperature rise, degC per minute.
    pub temperature_rise_c_per_min: f32,
    /// SOC low, % (0: off).
    pub soc_low_percent: u8,
}

/// Liveness of platform processes sharing a database (see the `store` module docs: "Which
/// terminal is online").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// A process whose heartbeat is older than this is dead: its terminals are marked offline.
    pub process_timeout: Duration,
}

impl ClusterConfig {
    /// How often a process renews its heartbeat and sweeps dead processes: a sixth of the
    /// timeout (10 s for the default 60 s), so five heartbeats may be late or lost before
    /// the others declare it dead.
    pub fn heartbeat_interval(&self) -> Duration {
        self.process_timeout / 6
    }
}
