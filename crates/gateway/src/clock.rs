//! The gateway's clock: the core's [`Instant`] (microseconds since the gateway started) on top
//! of tokio's clock, so tests can pause and advance time.

use bmslink_core::time::Instant;

/// Converts between tokio time and the core's instants.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Clock {
        Clock {
            origin: tokio::time::Instant::now(),
        }
    }

    /// Now, as a core instant.
    pub fn now(&self) -> Instant {
        self.instant(tokio::time::Instant::now())
    }

    /// A tokio instant as a core instant (the origin if it is earlier).
    pub fn instant(&self, at: tokio::time::Instant) -> Instant {
        let micros = at.saturating_duration_since(self.origin).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// A core instant as a tokio instant.
    pub fn tokio(&self, at: Instant) -> tokio::time::Instant {
        self.origin + at.since_origin()
    }
}
