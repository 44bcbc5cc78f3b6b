//! The file as written: every value with its span, every key optional.

use bmslink_config::{HumanDuration, LogLevel, Timeout};
use serde::Deserialize;
use toml::Spanned;

/// A key that may be absent, with its span when present.
pub(crate) type Key<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileConfig {
    pub log_level: Key<LogLevel>,
    pub data_dir: Key<String>,
    pub devices: FileDevices,
    pub database: FileDatabase,
    pub retention: FileRetention,
    pub http: FileHttp,
    pub alarms: FileAlarms,
    pub cluster: FileCluster,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileDevices {
    pub listen: Key<String>,
    pub idle_timeout: Key<HumanDuration>,
    pub registration: Key<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileDatabase {
    pub backend: Key<String>,
    pub path: Key<String>,
    pub url: Key<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileRetention {
    pub raw: Key<HumanDuration>,
    pub minute: Key<HumanDuration>,
    pub hour: Key<Timeout>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileHttp {
    pub listen: Key<String>,
    pub secure_cookies: Key<bool>,
    pub session_lifetime: Key<HumanDuration>,
    pub command_timeout: Key<HumanDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileAlarms {
    pub offline_after: Key<HumanDuration>,
    pub cell_spread_mv: Key<i64>,
    pub temperature_rise_c_per_min: Key<f64>,
    pub soc_low_percent: Key<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileCluster {
    pub process_timeout: Key<HumanDuration>,
}
