//! The validated configuration, in typed values, and its conversions into the core's settings
//! ([`SessionConfig`], [`FailsafeConfig`]).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bmslink_core::failsafe::FailsafeConfig;
use bmslink_core::session::{self, SessionConfig};
use bmslink_proto::can::{Options, Profile};
use bmslink_proto::message::PASSWORD_LEN;
use bmslink_proto::TerminalId;
use serde::Deserialize;

use super::network::IpNetwork;

/// The whole gateway configuration, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Log level on stderr.
    pub log_level: LogLevel,
    /// How the rack BMSes are polled.
    pub polling: PollingConfig,
    /// The racks, in file order (at least one; unique names and links).
    pub racks: Vec<RackConfig>,
    /// The inverter's CAN link and profile.
    pub inverter: InverterConfig,
    /// How long every failsafe cause must stay gone before normal limits return.
    pub recovery_hold: Duration,
    /// The EMS Modbus TCP server.
    pub ems: EmsConfig,
    /// The dry contact to the PCS's trip input.
    pub dry_contact: DryContact,
    /// Where Prometheus metrics are served (`None`: not served).
    pub metrics_listen: Option<SocketAddr>,
    /// The upload to a monitoring platform (`None`: no uplink).
    pub uplink: Option<UplinkConfig>,
}

impl GatewayConfig {
    /// The failsafe's settings: recovery hold, inverter keep-alive and EMS heartbeat watches.
    pub fn failsafe_config(&self) -> FailsafeConfig {
        FailsafeConfig {
            recovery_hold: self.recovery_hold,
            inverter_timeout: self.inverter.keepalive_timeout,
            inverter_silence_is_unsafe: self.inverter.silence_is_unsafe,
            ems_timeout: self.ems.heartbeat_timeout,
        }
    }

    /// The controller session settings of every rack link, checked by the core.
    pub fn session_config(&self) -> Result<SessionConfig, session::ConfigError> {
        SessionConfig::try_from(&self.polling)
    }
}

pub use bmslink_config::LogLevel;

/// How the rack BMSes are polled (the same for every rack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollingConfig {
    /// Time between reads of one rack (100 ms ..= 1 s).
    pub poll_interval: Duration,
    /// How long to wait for a reply (at most 5 s and at most `poll_interval`).
    pub reply_timeout: Duration,
    /// Retries of an unanswered request (0 ..= 10).
    pub retries: u8,
    /// Failed reads in a row before the link is offline (1 ..= 100).
    pub offline_after: u32,
    /// Age after which a rack's data is stale (2 x `poll_interval` ..= 60 s).
    pub stale_timeout: Duration,
}

impl TryFrom<&PollingConfig> for SessionConfig {
    type Error = session::ConfigError;

    /// The session settings: the file's timeout, retries and offline count; the protocol's
    /// defaults for the rest (100 ms packet gap, activation of a silent BMS, source PC).
    fn try_from(polling: &PollingConfig) -> Result<SessionConfig, session::ConfigError> {
        let config = SessionConfig {
            reply_timeout: polling.reply_timeout,
            retries: polling.retries,
            offline_after: polling.offline_after,
            ..SessionConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// One rack BMS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RackConfig {
    /// Its name in logs and metrics.
    pub name: String,
    /// How it is reached.
    pub link: RackLink,
    /// The parameter-change password (0xB2) sent with the pair code of writes; `None` sends
    /// the `00 00` pair code that BMSes without a password accept.
    pub password: Option<[u8; PASSWORD_LEN]>,
}

/// How a rack BMS is reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RackLink {
    /// A serial port (RS485 / RS232-TTL adapter), 8N1.
    Serial {
        /// Device path.
        path: PathBuf,
        /// Baud rate.
        baud: u32,
    },
    /// A serial-to-Ethernet converter (or a simulated BMS) at `host:port`.
    Tcp {
        /// `host:port`.
        address: String,
    },
}

impl fmt::Display for RackLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RackLink::Serial { path, baud } => write!(f, "{} at {baud} baud", path.display()),
            RackLink::Tcp { address } => write!(f, "tcp://{address}"),
        }
    }
}

/// The inverter (PCS) side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InverterConfig {
    /// The frame set the inverter expects.
    pub profile: Profile,
    /// The profile's encodings of "stop" (`never_zero` from the file).
    pub options: Options,
    /// How the CAN bus is reached.
    pub can: CanLink,
    /// CAN bit rate in bit/s.
    pub bitrate: u32,
    /// Time between frame sets (200 ms ..= 5 s).
    pub send_interval: Duration,
    /// The inverter's keep-alive (0x305) timeout; `None`: not watched.
    pub keepalive_timeout: Option<Duration>,
    /// Whether an overdue keep-alive puts the system in the safe state.
    pub silence_is_unsafe: bool,
}

/// How the CAN bus to the inverter is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CanLink {
    /// An SLCAN (Lawicel) adapter.
    Slcan(SlcanPort),
    /// A Linux SocketCAN interface.
    SocketCan {
        /// Interface name ("can0").
        interface: String,
    },
}

/// Where an SLCAN adapter is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlcanPort {
    /// A serial device ("/dev/ttyACM0").
    Serial(PathBuf),
    /// A TCP bridge at `host:port`.
    Tcp(String),
}

/// The EMS's Modbus TCP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmsConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Modbus unit id (1 ..= 247).
    pub unit_id: u8,
    /// Networks whose clients may connect (at least one).
    pub allow: Vec<IpNetwork>,
    /// Whether and by whom writes are accepted.
    pub writes: EmsWrites,
    /// The EMS heartbeat timeout; `None`: not watched.
    pub heartbeat_timeout: Option<Duration>,
}

/// Whether the EMS may write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmsWrites {
    /// Read only (default).
    Disabled,
    /// Writes from these networks, privileged ones after the unlock code.
    Enabled {
        /// Networks whose clients may write (each inside an `allow` network).
        allow: Vec<IpNetwork>,
        /// The code that unlocks privileged writes.
        unlock_code: UnlockCode,
    },
}

impl EmsWrites {
    /// Whether writes are accepted at all.
    pub fn enabled(&self) -> bool {
        matches!(self, EmsWrites::Enabled { .. })
    }
}

/// The EMS unlock code: 6 to 32 printable ASCII characters. Its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct UnlockCode(pub(crate) String);

impl UnlockCode {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is the code (compared in time independent of where they differ).
    pub fn matches(&self, candidate: &str) -> bool {
        let (ours, theirs) = (self.0.as_bytes(), candidate.as_bytes());
        let differences = ours
            .iter()
            .zip(theirs)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        ours.len() == theirs.len() && differences == 0
    }
}

impl fmt::Debug for UnlockCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockCode(<hidden>)")
    }
}

/// The dry contact to the PCS's trip input: closed while normal, open in the safe state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DryContact {
    /// No dry contact (default).
    #[default]
    None,
    /// A GPIO line driving a relay.
    Gpio {
        /// GPIO character device ("/dev/gpiochip0").
        chip: PathBuf,
        /// Line offset on the chip.
        line: u32,
        /// The output level that closes the contact.
        active_level: ActiveLevel,
    },
    /// Programs run to open and to close the contact.
    Command {
        /// Run to open (trip).
        open: CommandLine,
        /// Run to close.
        close: CommandLine,
    },
}

impl DryContact {
    /// The backend's name in the file.
    pub fn backend_name(&self) -> &'static str {
        match self {
            DryContact::None => "none",
            DryContact::Gpio { .. } => "gpio",
            DryContact::Command { .. } => "command",
        }
    }
}

/// A GPIO output level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActiveLevel {
    /// High closes the contact (default).
    #[default]
    High,
    /// Low closes the contact.
    Low,
}

/// A program and its arguments (run directly, no shell).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
}

/// The upload of every rack to a monitoring platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UplinkConfig {
    /// The platform's `host:port`.
    pub server: String,
    /// Terminal id of each rack: `terminals[i]` is that of `racks[i]`.
    pub terminals: Vec<TerminalId>,
    /// Time between two uploads of a rack (1 s ..= 1 h).
    pub interval: Duration,
    /// Where unsent readings are kept (`None`: in memory only).
    pub backlog_dir: Option<PathBuf>,
    /// Longest wait between two connection attempts while the platform is away (1 s ..= 1 h):
    /// the waits start below 1 s and double up to this.
    pub reconnect_max: Duration,
}
