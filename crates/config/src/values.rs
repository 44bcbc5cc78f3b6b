//! Value types of the file that TOML has no type for: durations ("500ms", "5s") and timeouts
//! that can be "off".

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A duration written as a humantime string: "500ms", "5s", "2m 30s".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// A duration, or "off" for a watch that is disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Not watched.
    Off,
    /// Overdue after this long.
    After(Duration),
}

impl Timeout {
    /// The duration, `None` when off.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Timeout::Off => None,
            Timeout::After(duration) => Some(duration),
        }
    }
}

/// A duration as the file writes it ("500ms", "1m 30s"; whole days as "30d", since humantime
/// would write 60 days as "1month 29days 13h 26m 24s").
pub fn show(duration: Duration) -> String {
    const DAY: u64 = 86_400;
    let secs = duration.as_secs();
    if secs >= DAY && secs % DAY == 0 && duration.subsec_nanos() == 0 {
        return format!("{}d", secs / DAY);
    }
    humantime::format_duration(duration).to_string()
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| {
        format!("{text:?} is not a duration ({error}); write e.g. \"500ms\" or \"5s\"")
    })
}

struct DurationVisitor {
    off_allowed: bool,
}

impl Visitor<'_> for DurationVisitor {
    type Value = Timeout;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.off_allowed {
            f.write_str("a duration such as \"500ms\" or \"5s\", or \"off\"")
        } else {
            f.write_str("a duration such as \"500ms\" or \"5s\"")
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Timeout, E> {
        if self.off_allowed && text.trim() == "off" {
            return Ok(Timeout::Off);
        }
        parse_duration(text).map(Timeout::After).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let visitor = DurationVisitor { off_allowed: false };
        match deserializer.deserialize_str(visitor)? {
            Timeout::After(duration) => Ok(HumanDuration(duration)),
            Timeout::Off => Err(de::Error::custom("\"off\" is not allowed here")),
        }
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DurationVisitor { off_allowed: true })
    }
}
