//! Timing and retry settings of a controller session, validated against the protocol's limits.

use core::fmt;
use core::time::Duration;

use bmslink_proto::{Source, TerminalId};

/// The protocol's latest reply (`nw.md`, "Timing": a reply within 5 s at the latest).
pub const MAX_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// The protocol's shortest quiet time between packets (`nw.md`: at least 100 ms).
pub const MIN_PACKET_GAP: Duration = Duration::from_millis(100);
/// Shortest pause between pair code and write that controllers in the field use (`nw.md`).
pub const MIN_PAIR_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause between pair code and write accepted here.
pub const MAX_PAIR_PAUSE: Duration = Duration::from_millis(1000);
/// Most retries of one request.
pub const MAX_RETRIES: u8 = 10;

/// Settings of a [`Session`](super::Session).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// How long to wait for a reply (default 500 ms; 1 ms ..= 5 s).
    pub reply_timeout: Duration,
    /// Quiet time between the last byte on the line and the next request (default and minimum
    /// 100 ms).
    pub packet_gap: Duration,
    /// Pause between the pair-code frame and the write (default 100 ms; 10 ms ..= 1 s). This
    /// one transition may be shorter than `packet_gap`: the BMS does not answer the pair code,
    /// and field controllers use 10-150 ms.
    pub pair_pause: Duration,
    /// Retries of an unanswered request before activation is tried (default 2).
    pub retries: u8,
    /// Send an activate frame and retry when a BMS does not answer (default on): a dormant BMS
    /// answers nothing else.
    pub activate_when_silent: bool,
    /// Failed operations in a row before the link is offline (default 3).
    pub offline_after: u32,
    /// Frame source of requests (default PC / upper computer).
    pub source: Source,
    /// Terminal id of requests (default 0, as every captured controller sends).
    pub terminal: TerminalId,
    /// Put a running sequence in the record number, and match replies on it (a reply with
    /// record number 0 is also accepted: captured BMSes do not echo it). Default off: every
    /// captured controller sends 0.
    pub record_numbers: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            reply_timeout: Duration::from_millis(500),
            packet_gap: MIN_PACKET_GAP,
            pair_pause: Duration::from_millis(100),
            retries: 2,
            activate_when_silent: true,
            offline_after: 3,
            source: Source::Pc,
            terminal: TerminalId::default(),
            record_numbers: false,
        }
    }
}

/// A setting outside its valid range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `reply_timeout` is zero or above 5 s.
    ReplyTimeout(Duration),
    /// `packet_gap` is below 100 ms.
    PacketGap(Duration),
    /// `pair_pause` is outside 10 ms ..= 1 s.
    PairPause(Duration),
    /// `retries` is above [`MAX_RETRIES`].
    Retries(u8),
    /// `offline_after` is zero.
    OfflineAfter,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::ReplyTimeout(t) => {
                write!(
                    f,
                    "reply timeout {t:?} must be above 0 and at most 5 s (the protocol's limit)"
                )
            }
            ConfigError::PacketGap(t) => {
                write!(
                    f,
                    "packet gap {t:?} is below the protocol's 100 ms between packets"
                )
            }
            ConfigError::PairPause(t) => {
                write!(f, "pair-code pause {t:?} must be between 10 ms and 1 s")
            }
            ConfigError::Retries(n) => write!(f, "{n} retries is above the limit of {MAX_RETRIES}"),
            ConfigError::OfflineAfter => write!(f, "offline_after must be at least 1"),
        }
    }
}

impl core::error::Error for ConfigError {}

impl SessionConfig {
    /// Checks every setting against the protocol's limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.reply_timeout.is_zero() || self.reply_timeout > MAX_REPLY_TIMEOUT {
            return Err(ConfigError::ReplyTimeout(self.reply_timeout));
        }
        if self.packet_gap < MIN_PACKET_GAP {
            return Err(ConfigError::PacketGap(self.packet_gap));
        }
        if !(MIN_PAIR_PAUSE..=MAX_PAIR_PAUSE).contains(&self.pair_pause) {
            return Err(ConfigError::PairPause(self.pair_pause));
        }
        if self.retries > MAX_RETRIES {
            return Err(ConfigError::Retries(self.retries));
        }
        if self.offline_after == 0 {
            return Err(ConfigError::OfflineAfter);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_limits_are_enforced() {
        assert_eq!(SessionConfig::default().validate(), Ok(()));
        let over = SessionConfig {
            reply_timeout: Duration::from_millis(5001),
            ..Default::default()
        };
        assert!(matches!(over.validate(), Err(ConfigError::ReplyTimeout(_))));
        let fast = SessionConfig {
            packet_gap: Duration::from_millis(99),
            ..Default::default()
        };
        assert!(matches!(fast.validate(), Err(ConfigError::PacketGap(_))));
        let pause = SessionConfig {
            pair_pause: Duration::from_millis(5),
            ..Default::default()
        };
        assert!(matches!(pause.validate(), Err(ConfigError::PairPause(_))));
    }
}
