//! The device listener's settings, with defaults for a fleet of 4G data boxes and validation
//! against the protocol's limits.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use bmslink_core::session::{ConfigError as SessionConfigError, SessionConfig};
use bmslink_proto::frame::{MAX_FRAME_LEN, MIN_FRAME_LEN};

use crate::model::ProcessId;

/// The default listen port (the port the gateway's uplink examples use).
pub const DEFAULT_PORT: u16 = 9100;

/// Who may upload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RegistrationPolicy {
    /// Any terminal: an unknown terminal is created approved and its uploads are stored.
    #[default]
    Open,
    /// Only approved terminals: an unknown terminal is created pending. Its connection is kept
    /// (an operator may send it commands to see what it is), but its uploads are neither stored
    /// nor acknowledged until an operator approves it; see the [module documentation](super).
    Approval,
}

/// Settings of [`run_listener`](super::run_listener).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Where [`bind`](super::bind) listens (default `0.0.0.0:9100`). `run_listener` takes a
    /// listener already bound, so tests and embedders choose their own.
    pub listen: SocketAddr,
    /// A connection that delivers no valid frame for this long is closed (default 120 s; a
    /// data box uploads every few seconds, and a half-open TCP connection after a network
    /// change is only ever noticed this way).
    pub idle_timeout: Duration,
    /// Who may upload (default [`RegistrationPolicy::Open`]).
    pub registration: RegistrationPolicy,
    /// How often a pending terminal's registration is looked up again while it uploads
    /// (default 5 s): an approval takes effect within this time.
    pub pending_recheck: Duration,
    /// How often an approved terminal's registration is looked up again while it uploads
    /// (default 60 s): a rejection closes its connection within this time.
    pub approved_recheck: Duration,
    /// The longest frame accepted (default and maximum: the protocol crate's
    /// [`MAX_FRAME_LEN`], 1024 bytes; a 32-cell read-all reply is 339). A LENGTH above it
    /// closes the connection.
    pub max_frame_len: usize,
    /// A connection that sends this many bytes without a valid frame among them is closed
    /// (default 4 KiB): garbage from the start, or a run of corrupted frames.
    pub garbage_limit: usize,
    /// Most rows the store writer commits in one transaction (default 5000). A batch also
    /// closes [`batch_delay`](ListenerConfig::batch_delay) after its first row, so it only
    /// grows this big while the store is slower than the uploads arrive: then a commit's fixed
    /// work (each terminal's latest row, dedup keys and history slot pages) is shared by more
    /// rows, and the store catches up (with 500, SQLite fell behind 19,000 boxes a second).
    pub batch_size: usize,
    /// Longest time the writer waits for a batch to fill once it holds a row (default 20 ms):
    /// the acknowledgement of an upload is delayed by at most this plus the commit.
    pub batch_delay: Duration,
    /// Batches being committed at once (default 8). While one commits, the writer collects
    /// the next and hands it over, so the store never waits for the listener; and when the
    /// store lags, the batches queued behind a commit are merged by SQLite's writer thread
    /// into one bigger transaction, whose per-terminal work (latest row, dedup run, terminal)
    /// is then shared by more rows. Batches are still answered in order; see the `writer`
    /// module. With PostgreSQL the daemon sets 1: concurrent transactions there contend for
    /// the same `latest` rows, and more in flight measured no better (32,000-39,000 uploads/s
    /// with 1, 2 or 8 on the 2-core machine, within the runs' spread).
    pub batches_in_flight: usize,
    /// Bound of the channel from the connections to the writer, in rows (default 8192). When
    /// it is full, connections stop reading their sockets.
    pub upload_queue: usize,
    /// Uploads of one connection handed to the writer but not yet acknowledged (default 16):
    /// at this many, the connection stops reading until the oldest is committed.
    pub unacknowledged_per_connection: usize,
    /// Terminals one connection may carry (default 16): a gateway uploads its racks as
    /// several terminals over one connection. Frames claiming a further terminal id are
    /// dropped and logged. 1 makes the first valid frame bind the connection to one terminal.
    pub terminals_per_connection: usize,
    /// Longest time a remote command may run, from its claim to its result (default 30 s).
    pub command_timeout: Duration,
    /// A write to a socket that does not complete in this time (the peer stopped reading)
    /// closes the connection (default 10 s).
    pub write_timeout: Duration,
    /// On shutdown, how long uploads already received may take to be committed and
    /// acknowledged, and the writer may retry an unavailable store (default 10 s).
    pub shutdown_grace: Duration,
    /// First pause before the writer retries an unavailable store (default 100 ms); it doubles
    /// up to `store_retry_max`.
    pub store_retry_min: Duration,
    /// Longest pause between retries of an unavailable store (default 5 s).
    pub store_retry_max: Duration,
    /// How often the counters are logged while anything happens (default 60 s; zero: never).
    pub stats_log_interval: Duration,
    /// This platform process's id in the store, recorded with every terminal a connection
    /// claims (default: a random one). Processes sharing a database must have different ids;
    /// the daemon passes the id it renews heartbeats for.
    pub process: ProcessId,
    /// Timing of the requests of remote commands (the terminal id is set per terminal).
    /// Default: 2 s reply timeout and one retry (4G round trips are slow), else the core's
    /// defaults.
    pub session: SessionConfig,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            idle_timeout: Duration::from_secs(120),
            registration: RegistrationPolicy::Open,
            pending_recheck: Duration::from_secs(5),
            approved_recheck: Duration::from_secs(60),
            max_frame_len: MAX_FRAME_LEN,
            garbage_limit: 4096,
            batch_size: 5000,
            batch_delay: Duration::from_millis(20),
            batches_in_flight: 8,
            upload_queue: 8192,
            unacknowledged_per_connection: 16,
            terminals_per_connection: 16,
            command_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            store_retry_min: Duration::from_millis(100),
            store_retry_max: Duration::from_secs(5),
            stats_log_interval: Duration::from_secs(60),
            process: ProcessId::random(),
            session: SessionConfig {
                reply_timeout: Duration::from_secs(2),
                retries: 1,
                ..SessionConfig::default()
            },
        }
    }
}

/// A listener setting outside its valid range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_frame_len` is outside the protocol's frame sizes.
    MaxFrameLen(usize),
    /// A size or count that must be at least 1 is 0 (the field's name).
    Zero(&'static str),
    /// A duration that must be above zero is zero (the field's name).
    ZeroDuration(&'static str),
    /// `store_retry_min` is above `store_retry_max`.
    RetryRange,
    /// The command session's timing.
    Session(SessionConfigError),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MaxFrameLen(len) => write!(
                f,
                "max_frame_len {len} must be between {MIN_FRAME_LEN} and {MAX_FRAME_LEN} bytes"
            ),
            ConfigError::Zero(field) => write!(f, "{field} must be at least 1"),
            ConfigError::ZeroDuration(field) => write!(f, "{field} must be above zero"),
            ConfigError::RetryRange => {
                f.write_str("store_retry_min must not be above store_retry_max")
            }
            ConfigError::Session(error) => write!(f, "command session: {error}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ListenerConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&self.max_frame_len) {
            return Err(ConfigError::MaxFrameLen(self.max_frame_len));
        }
        let counts = [
            ("garbage_limit", self.garbage_limit),
            ("batch_size", self.batch_size),
            ("batches_in_flight", self.batches_in_flight),
            ("upload_queue", self.upload_queue),
            (
                "unacknowledged_per_connection",
                self.unacknowledged_per_connection,
            ),
            ("terminals_per_connection", self.terminals_per_connection),
        ];
        if let Some((field, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Zero(field));
        }
        let durations = [
            ("idle_timeout", self.idle_timeout),
            ("pending_recheck", self.pending_recheck),
            ("approved_recheck", self.approved_recheck),
            ("command_timeout", self.command_timeout),
            ("write_timeout", self.write_timeout),
            ("store_retry_min", self.store_retry_min),
        ];
        if let Some((field, _)) = durations.iter().find(|(_, value)| value.is_zero()) {
            return Err(ConfigError::ZeroDuration(field));
        }
        if self.store_retry_min > self.store_retry_max {
            return Err(ConfigError::RetryRange);
        }
        self.session.validate().map_err(ConfigError::Session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zero_sizes_are_refused() {
        assert_eq!(ListenerConfig::default().validate(), Ok(()));
        let config = ListenerConfig {
            upload_queue: 0,
            ..ListenerConfig::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::Zero("upload_queue")));
        let config = ListenerConfig {
            max_frame_len: MAX_FRAME_LEN + 1,
            ..ListenerConfig::default()
        };
        assert_eq!(
            config.validate(),
            Err(ConfigError::MaxFrameLen(MAX_FRAME_LEN + 1))
        );
    }
}
