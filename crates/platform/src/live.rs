//! Live events for open browser pages: uploads stored and alarms raised, cleared or
//! acknowledged in this process, fanned out to every subscriber as they happen.
//!
//! ```text
//!  listener ──stored rows──► alarm task ──► LiveHub ──► /api/events (one feed per page)
//!                                 │            ▲
//!                                 └─ alarms ───┘◄── API (acknowledgements)
//! ```
//!
//! The hub is a bounded broadcast: a subscriber that falls [`LIVE_CAPACITY`] events behind
//! misses the oldest and is told so (it then refetches), so a slow browser never holds up the
//! alarm task. Events only name what changed; pages read the values through the API, so what
//! they show is always what the store holds.
//!
//! Several platform processes over one PostgreSQL each have their own hub: a page learns of
//! another process's uploads and alarms from its feed's periodic check of the store (see
//! `api/events.rs`).

use tokio::sync::broadcast;

use crate::model::{AlarmKind, Terminal, Timestamp};

/// Events a subscriber may lag behind before it misses the oldest.
pub const LIVE_CAPACITY: usize = 4096;

/// What happened to an alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmChange {
    /// Raised (or raised again with a new detail).
    Raised,
    /// Its cause went away.
    Cleared,
    /// Someone acknowledged it.
    Acknowledged,
}

impl AlarmChange {
    /// The word pages see: `raised`, `cleared`, `acknowledged`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmChange::Raised => "raised",
            AlarmChange::Cleared => "cleared",
            AlarmChange::Acknowledged => "acknowledged",
        }
    }
}

/// One live event.
#[derive(Clone, Debug, PartialEq)]
pub enum LiveEvent {
    /// A terminal's upload was stored.
    Upload {
        /// Whose.
        terminal: Terminal,
        /// Received at.
        at: Timestamp,
    },
    /// An alarm changed.
    Alarm {
        /// Whose.
        terminal: Terminal,
        /// The alarm's id, when known (a clearing names the kind, not the id).
        id: Option<i64>,
        /// What raised it.
        kind: AlarmKind,
        /// What happened to it.
        change: AlarmChange,
        /// When.
        at: Timestamp,
    },
}

impl LiveEvent {
    /// The terminal the event is about.
    pub fn terminal(&self) -> Terminal {
        match self {
            LiveEvent::Upload { terminal, .. } | LiveEvent::Alarm { terminal, .. } => *terminal,
        }
    }
}

/// The fan-out of live events; cheap to clone (every clone publishes to the same
/// subscribers).
#[derive(Clone, Debug)]
pub struct LiveHub {
    sender: broadcast::Sender<LiveEvent>,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub::new()
    }
}

impl LiveHub {
    /// A hub with no subscribers yet.
    pub fn new() -> LiveHub {
        let (sender, _) = broadcast::channel(LIVE_CAPACITY);
        LiveHub { sender }
    }

    /// Sends `event` to every current subscriber (none: it is dropped, nobody is watching).
    pub fn publish(&self, event: LiveEvent) {
        // An error only means nobody subscribes right now.
        let _ = self.sender.send(event);
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.sender.subscribe()
    }

    /// How many feeds are open.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order() {
        let hub = LiveHub::new();
        let mut first = hub.subscribe();
        let mut second = hub.subscribe();
        assert_eq!(hub.subscribers(), 2);
        let upload = LiveEvent::Upload {
            terminal: Terminal(7),
            at: Timestamp(1_000),
        };
        let alarm = LiveEvent::Alarm {
            terminal: Terminal(7),
            id: Some(3),
            kind: AlarmKind::SocLow,
            change: AlarmChange::Raised,
            at: Timestamp(2_000),
        };
        hub.publish(upload.clone());
        hub.publish(alarm.clone());
        for receiver in [&mut first, &mut second] {
            assert_eq!(receiver.recv().await.ok(), Some(upload.clone()));
            assert_eq!(receiver.recv().await.ok(), Some(alarm.clone()));
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_how_much_it_missed() {
        let hub = LiveHub::new();
        let mut slow = hub.subscribe();
        let total = LIVE_CAPACITY + 10;
        for n in 0..total {
            hub.publish(LiveEvent::Upload {
                terminal: Terminal(1),
                at: Timestamp(n as i64),
            });
        }
        match slow.recv().await {
            Err(broadcast::error::RecvError::Lagged(missed)) => assert_eq!(missed, 10),
            other => panic!("expected a lag of 10 events, got {other:?}"),
        }
        // Then the oldest it still has.
        let next = slow.recv().await.ok().map(|event| match event {
            LiveEvent::Upload { at, .. } => at,
            LiveEvent::Alarm { at, .. } => at,
        });
        assert_eq!(next, Some(Timestamp(10)));
    }

    #[test]
    fn publishing_without_subscribers_is_harmless() {
        let hub = LiveHub::new();
        hub.publish(LiveEvent::Upload {
            terminal: Terminal(1),
            at: Timestamp(0),
        });
        assert_eq!(hub.subscribers(), 0);
    }
}
