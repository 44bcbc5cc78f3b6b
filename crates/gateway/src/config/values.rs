//! Value types of the file that TOML has no type for (shared with the platform:
//! `bmslink-config`): durations ("500ms", "5s") and timeouts that can be "off".

pub(crate) use bmslink_config::values::{show, HumanDuration, Timeout};
