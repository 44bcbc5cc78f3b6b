//! The file as TOML writes it: every key optional (its default is applied in `validate`), every
//! value with its byte span, unknown keys rejected. Integers are read as `i64` and
//! range-checked later, so that every out-of-range value is reported, not only the first.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::model::{ActiveLevel, LogLevel};
use super::values::{HumanDuration, Timeout};

/// A key that may be absent, with the span of its value when present.
pub(crate) type Key<T> = Option<Spanned<T>>;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileConfig {
    pub log_level: Key<LogLevel>,
    pub poll_interval: Key<HumanDuration>,
    pub reply_timeout: Key<HumanDuration>,
    pub retries: Key<i64>,
    pub offline_after: Key<i64>,
    pub stale_timeout: Key<HumanDuration>,
    pub racks: Key<Vec<FileRack>>,
    pub inverter: FileInverter,
    pub failsafe: FileFailsafe,
    pub ems: FileEms,
    pub dry_contact: FileDryContact,
    pub metrics: Option<FileMetrics>,
    pub uplink: Key<FileUplink>,
}

/// One `[[racks]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRack {
    pub name: Spanned<String>,
    pub link: FileLink,
    #[serde(default)]
    pub password: Key<String>,
}

/// A rack's `link`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLink {
    pub port: Spanned<String>,
    #[serde(default)]
    pub baud: Key<i64>,
}

/// `[inverter]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileInverter {
    pub profile: Key<String>,
    pub never_zero: Key<bool>,
    pub send_interval: Key<HumanDuration>,
    pub keepalive_timeout: Key<Timeout>,
    pub silence_is_unsafe: Key<bool>,
    pub can: FileCan,
}

/// How the CAN adapter is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CanTransport {
    #[default]
    Slcan,
    Socketcan,
}

/// `[inverter.can]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileCan {
    pub transport: Key<CanTransport>,
    pub port: Key<String>,
    pub interface: Key<String>,
    pub bitrate: Key<i64>,
}

/// `[failsafe]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileFailsafe {
    pub recovery_hold: Key<HumanDuration>,
}

/// `[ems]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileEms {
    pub listen: Key<String>,
    pub unit_id: Key<i64>,
    pub allow: Key<Vec<Spanned<String>>>,
    pub writes_enabled: Key<bool>,
    pub write_allow: Key<Vec<Spanned<String>>>,
    pub unlock_code: Key<String>,
    pub heartbeat_timeout: Key<Timeout>,
}

/// Which dry-contact driver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ContactBackend {
    #[default]
    None,
    Gpio,
    Command,
}

/// `[dry_contact]`: the keys of every backend; `validate` allows only the chosen one's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileDryContact {
    pub backend: Key<ContactBackend>,
    pub chip: Key<String>,
    pub line: Key<i64>,
    pub active_level: Key<ActiveLevel>,
    pub open: Key<Vec<String>>,
    pub close: Key<Vec<String>>,
}

/// `[metrics]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileMetrics {
    pub listen: Spanned<String>,
}

/// `[uplink]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUplink {
    pub server: Spanned<String>,
    pub terminals: Spanned<BTreeMap<Spanned<String>, Spanned<i64>>>,
    #[serde(default)]
    pub backlog_dir: Key<String>,
    #[serde(default)]
    pub interval: Key<HumanDuration>,
    #[serde(default)]
    pub reconnect_max: Key<HumanDuration>,
}
