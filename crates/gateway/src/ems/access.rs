//! Who may do what: the connection allowlist, the write allowlist, and the unlock code that
//! privileged writes need. Pure: time is a parameter.
//!
//! - A client outside `ems.allow` is closed at accept.
//! - A write from a client when writes are disabled, or from outside `ems.write_allow`, is
//!   refused with exception 0x01 ILLEGAL FUNCTION (SunSpec practice for read-only access).
//! - A privileged write (see [`super::settings::PRIVILEGED`], AlmRst, SetOp, force charge) is
//!   refused with 0x01 as well unless the client's address wrote the unlock code in the last
//!   [`UNLOCK_FOR`]. Unlocks belong to the client's IP address, so one-shot tools (mbpoll) can
//!   unlock and write in two connections.
//! - A wrong code is refused with 0x03 ILLEGAL DATA VALUE; after [`MAX_WRONG_CODES`] wrong codes
//!   in a row an address may not try again for [`LOCKOUT`] (refused with 0x01).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use bmslink_core::time::Instant;

use crate::config::{EmsConfig, EmsWrites, UnlockCode};

/// How long a correct unlock code holds.
pub const UNLOCK_FOR: Duration = Duration::from_secs(60);
/// Wrong codes in a row before an address is locked out.
pub const MAX_WRONG_CODES: u32 = 5;
/// How long a lockout lasts.
pub const LOCKOUT: Duration = Duration::from_secs(60);

/// Whether `client` may connect.
pub fn may_connect(config: &EmsConfig, client: IpAddr) -> bool {
    let client = canonical(client);
    config.allow.iter().any(|network| network.contains(client))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// Why a write is refused before it is looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `writes_enabled = false`.
    WritesDisabled,
    /// The client is not in `write_allow`.
    NotInWriteAllow,
    /// A privileged write without a valid unlock.
    Locked,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::WritesDisabled => "writes are disabled (ems.writes_enabled = false)",
            Refusal::NotInWriteAllow => "not in write_allow",
            Refusal::Locked => "privileged register, write the unlock code first",
        })
    }
}

/// Whether `client` may write a point (`privileged` or not), given whether it is unlocked.
pub fn may_write(
    writes: &EmsWrites,
    client: IpAddr,
    privileged: bool,
    unlocked: bool,
) -> Result<(), Refusal> {
    let EmsWrites::Enabled { allow, .. } = writes else {
        return Err(Refusal::WritesDisabled);
    };
    let client = canonical(client);
    if !allow.iter().any(|network| network.contains(client)) {
        return Err(Refusal::NotInWriteAllow);
    }
    if privileged && !unlocked {
        return Err(Refusal::Locked);
    }
    Ok(())
}

/// The result of an unlock attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlockResult {
    /// Privileged writes are open until then.
    Unlocked {
        /// Expiry.
        until: Instant,
    },
    /// Wrong code; this many in a row.
    WrongCode {
        /// Wrong codes in a row from this address.
        in_a_row: u32,
    },
    /// Too many wrong codes: no attempt is looked at until then.
    LockedOut {
        /// End of the lockout.
        until: Instant,
    },
}

#[derive(Clone, Copy, Debug, Default)]
struct ClientUnlock {
    until: Option<Instant>,
    wrong_in_a_row: u32,
    locked_out_until: Option<Instant>,
}

/// Unlock state by client address.
#[derive(Debug, Default)]
pub struct Unlocks {
    clients: HashMap<IpAddr, ClientUnlock>,
}

impl Unlocks {
    /// Whether `client` may write privileged points at `now`.
    pub fn is_unlocked(&self, client: IpAddr, now: Instant) -> bool {
        !self.remaining(client, now).is_zero()
    }

    /// Time left of `client`'s unlock at `now`.
    pub fn remaining(&self, client: IpAddr, now: Instant) -> Duration {
        self.clients
            .get(&canonical(client))
            .and_then(|c| c.until)
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// `client` wrote `candidate` at `now`.
    pub fn attempt(
        &mut self,
        client: IpAddr,
        now: Instant,
        code: &UnlockCode,
        candidate: &str,
    ) -> UnlockResult {
        let entry = self.clients.entry(canonical(client)).or_default();
        if let Some(until) = entry.locked_out_until.filter(|&until| now < until) {
            return UnlockResult::LockedOut { until };
        }
        if code.matches(candidate) {
            let until = now + UNLOCK_FOR;
            *entry = ClientUnlock {
                until: Some(until),
                ..ClientUnlock::default()
            };
            return UnlockResult::Unlocked { until };
        }
        entry.until = None;
        entry.wrong_in_a_row += 1;
        let in_a_row = entry.wrong_in_a_row;
        if in_a_row >= MAX_WRONG_CODES {
            entry.wrong_in_a_row = 0;
            entry.locked_out_until = Some(now + LOCKOUT);
        }
        UnlockResult::WrongCode { in_a_row }
    }

    /// Forgets expired entries (called now and then so the map stays small).
    pub fn expire(&mut self, now: Instant) {
        self.clients.retain(|_, c| {
            c.until.is_some_and(|u| now < u)
                || c.locked_out_until.is_some_and(|u| now < u)
                || c.wrong_in_a_row > 0
        });
    }
}

/// The unlock code as written: ASCII up to the first NUL, trailing spaces trimmed; `None` if a
/// byte is not printable ASCII.
pub fn unlock_text(words: &[u16]) -> Option<String> {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = &bytes[..end];
    text.iter()
        .all(|b| (0x20..0x7F).contains(b))
        .then(|| String::from_utf8_lossy(text).trim_end().to_string())
}
