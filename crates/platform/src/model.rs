//! What the platform stores and exchanges, independent of the database: telemetry rows,
//! terminals and their registration, alarms, remote commands, users, sessions, API tokens and
//! the audit log. Times are [`Timestamp`]s (milliseconds since the Unix epoch, UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bmslink_core::snapshot::PackSnapshot;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Now, from the system clock.
    pub fn now() -> Timestamp {
        Timestamp::from_system(SystemTime::now())
    }

    /// A system time (before the epoch: the epoch).
    pub fn from_system(time: SystemTime) -> Timestamp {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp(millis)
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// `self + duration`, saturating.
    pub fn plus(self, duration: Duration) -> Timestamp {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }

    /// `self - duration`, saturating.
    pub fn minus(self, duration: Duration) -> Timestamp {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(millis))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

/// A data box's identity: the 24-bit terminal number of the NW terminal id (the standby byte is
/// management data, not identity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Terminal(pub u32);

impl std::fmt::Display for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:06X}", self.0)
    }
}

/// A platform process's identity in the store: drawn at random when the process starts, so a
/// restarted process is a new one and never inherits what a crashed one held. Positive, so it
/// fits a signed 64-bit column as is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProcessId(pub i64);

impl ProcessId {
    /// A fresh id from the operating system's random source (63 random bits).
    pub fn random() -> ProcessId {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        // Zero is never drawn: it would look like an unset id in a log.
        ProcessId(
            i64::try_from(OsRng.next_u64() >> 1)
                .unwrap_or(i64::MAX)
                .max(1),
        )
    }
}

impl std::fmt::Display for ProcessId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Which connection holds a terminal: the platform process, and the connection within it
/// (a process numbers its connections from 1 and never reuses a number). A disconnection
/// takes effect only for the connection that still holds the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnectionOwner {
    /// The process.
    pub process: ProcessId,
    /// The connection within it.
    pub connection: u64,
}

impl std::fmt::Display for ConnectionOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connection {} of process {}",
            self.connection, self.process
        )
    }
}

/// One stored upload (or read-all reply): the values the fleet views need as columns, and the
/// raw frame for audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TelemetryRow {
    /// Who sent it.
    pub terminal: Terminal,
    /// When the platform received it.
    pub at: Timestamp,
    /// The frame's record sequence number (24 bits); with the terminal, it identifies an upload,
    /// so a frame sent twice (after a lost acknowledgement) is stored once.
    pub record: u32,
    /// Pack voltage, mV.
    pub voltage_mv: u32,
    /// Current, mA, positive = charging.
    pub current_ma: i32,
    /// State of charge, %.
    pub soc: u8,
    /// MOSFET, box and battery temperatures, degC (absent when not reported).
    pub temperatures: [Option<i16>; 3],
    /// Every cell voltage, mV, in cell order.
    pub cells_mv: Vec<u16>,
    /// 0x8B warning bits.
    pub warnings: u16,
    /// 0x8C status bits.
    pub status: u16,
    /// The whole frame as received.
    pub raw: Vec<u8>,
}

impl TelemetryRow {
    /// The row of a checked snapshot received from `terminal` at `at`.
    pub fn from_snapshot(
        terminal: Terminal,
        at: Timestamp,
        record: u32,
        snapshot: &PackSnapshot,
        raw: Vec<u8>,
    ) -> TelemetryRow {
        let celsius = |t: Option<bmslink_proto::Celsius>| t.map(|t| t.0);
        TelemetryRow {
            terminal,
            at,
            record,
            voltage_mv: snapshot.voltage.0,
            current_ma: snapshot.current.0,
            soc: snapshot.soc_percent,
            temperatures: [
                celsius(snapshot.mosfet_temperature),
                celsius(snapshot.box_temperature),
                celsius(snapshot.battery_temperature),
            ],
            cells_mv: snapshot
                .cells
                .iter()
                .map(|c| u16::try_from(c.0).unwrap_or(u16::MAX))
                .collect(),
            warnings: snapshot.warnings.bits(),
            status: snapshot.status.bits(),
            raw,
        }
    }

    /// Power, W, positive = charging.
    pub fn power_w(&self) -> f64 {
        f64::from(self.voltage_mv) / 1000.0 * f64::from(self.current_ma) / 1000.0
    }
}

/// How finely a history is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    /// Every stored row (kept for the raw retention period).
    Raw,
    /// One point per minute (the 1-minute roll-up).
    Minute,
    /// One point per hour (the 1-hour roll-up).
    Hour,
}

/// One point of a history: a raw row's values, or a roll-up bucket's averages and extremes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// Start of the bucket (or the row's time).
    pub at: Timestamp,
    /// Rows in the bucket (1 for raw).
    pub samples: u32,
    /// Mean voltage, mV.
    pub voltage_mv: f64,
    /// Mean current, mA.
    pub current_ma: f64,
    /// Mean power, W.
    pub power_w: f64,
    /// Mean SOC, %.
    pub soc: f64,
    /// Lowest temperature in the bucket, degC.
    pub temperature_min: Option<i16>,
    /// Highest temperature in the bucket, degC.
    pub temperature_max: Option<i16>,
    /// Lowest cell voltage in the bucket, mV.
    pub cell_min_mv: Option<u16>,
    /// Highest cell voltage in the bucket, mV.
    pub cell_max_mv: Option<u16>,
    /// Energy charged in the bucket, Wh.
    pub charged_wh: f64,
    /// Energy discharged in the bucket, Wh.
    pub discharged_wh: f64,
}

/// Whether a terminal may upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Accepted: its uploads are stored.
    Approved,
    /// Seen but not approved (registration policy "approval"): held for an operator.
    Pending,
    /// Refused by an operator: its connections are closed.
    Rejected,
}

/// What the platform knows of a terminal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TerminalRecord {
    /// The terminal.
    pub terminal: Terminal,
    /// Registration.
    pub registration: Registration,
    /// A name an operator gave it.
    pub name: Option<String>,
    /// First connection.
    pub first_seen: Timestamp,
    /// Last frame received.
    pub last_seen: Timestamp,
    /// Whether it is connected now (to any platform process).
    pub online: bool,
    /// The connection that claimed it last, while it holds it. It stays recorded when a
    /// liveness sweep marks the terminal offline (its process's heartbeat was late), so that
    /// process's next heartbeat can put it back online; a disconnection clears it.
    #[serde(default)]
    pub owner: Option<ConnectionOwner>,
}

/// A terminal with its latest row: one line of the fleet list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetEntry {
    /// The terminal.
    pub record: TerminalRecord,
    /// Its latest row, if it ever uploaded.
    pub latest: Option<TelemetryRow>,
    /// Active alarms.
    pub active_alarms: u32,
}

/// What raised an alarm.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum AlarmKind {
    /// A BMS warning bit (0x8B), by its name ("cell_over_voltage").
    Bms(String),
    /// No upload for longer than the offline threshold.
    Offline,
    /// Cell voltage spread above the threshold.
    CellSpread,
    /// Temperature rising faster than the threshold.
    TemperatureRise,
    /// SOC below the threshold.
    SocLow,
}

/// An alarm: raised, maybe cleared, maybe acknowledged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// Store id.
    pub id: i64,
    /// The terminal.
    pub terminal: Terminal,
    /// What.
    pub kind: AlarmKind,
    /// The value that raised it, in words ("spread 312 mV > 300 mV").
    pub detail: String,
    /// When it was raised.
    pub started: Timestamp,
    /// When it cleared (`None`: active).
    pub ended: Option<Timestamp>,
    /// Who acknowledged it, and when.
    pub acknowledged: Option<(String, Timestamp)>,
}

/// A remote operation on a terminal, queued by the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum CommandRequest {
    /// Read every identifier.
    ReadAll,
    /// Write settings, each (identifier name, value in engineering units as text), in order,
    /// each with pair code and password and read back.
    Write {
        /// The settings.
        values: Vec<(String, String)>,
        /// The 0xB2 password, if the BMS has one.
        password: Option<String>,
    },
}

/// Where a command stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CommandState {
    /// Waiting for the process that holds the terminal's connection.
    Queued,
    /// Sent to the terminal.
    Running,
    /// Finished; the result per step.
    Done {
        /// JSON result (read: the values; write: per setting old, new, read back or error).
        result: serde_json::Value,
    },
    /// Could not run (terminal offline, timeout).
    Failed {
        /// Why.
        reason: String,
    },
}

/// A command and its state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Store id.
    pub id: i64,
    /// Target.
    pub terminal: Terminal,
    /// What.
    pub request: CommandRequest,
    /// Who issued it.
    pub issued_by: String,
    /// When.
    pub issued_at: Timestamp,
    /// Where it stands.
    pub state: CommandState,
}

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// May change settings and switches, acknowledge alarms, approve terminals.
    Operator,
    /// May also manage users.
    Admin,
}

/// A user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Store id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// argon2 PHC string (never serialised to clients).
    #[serde(skip_serializing)]
    pub password_hash: String,
    /// When created.
    pub created: Timestamp,
}

/// A login session (cookie) or an API token: only a hash of the secret is stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// Whose.
    pub user_id: i64,
    /// `true`: an API token; `false`: a session.
    pub is_token: bool,
    /// A token's name ("grafana"); empty for sessions.
    pub label: String,
    /// When it stops working (`None`: tokens that do not expire).
    pub expires: Option<Timestamp>,
    /// When created.
    pub created: Timestamp,
}

/// One line of the audit log: every login and every write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who (user name; "-" for failed logins of unknown names).
    pub actor: String,
    /// What ("login", "login_failed", "write", "ack_alarm", "approve_terminal", "create_user"...).
    pub action: String,
    /// On what ("terminal 0003E8", "user alice").
    pub target: String,
    /// Details (values, result, client address).
    pub detail: String,
}
