//! The gateway's failsafe: what the inverter and the dry contact are told when data goes stale,
//! links go silent or a protection acts, and when it is safe to go back.
//!
//! ```text
//!            any cause                          all causes gone
//!  Normal ─────────────────► Safe ──────────────────────────────► Recovering
//!    ▲                         ▲                                       │
//!    │                         └──────── a cause returns ◄─────────────┤
//!    └──────────────────── causes stayed gone for the hold time ◄──────┘
//! ```
//!
//! Causes of the safe state (`Cause`): no fresh rack at all (every rack stale or offline), a
//! protection-level alarm on a used rack, and, when configured, the inverter's keep-alive
//! (0x305) or the EMS heartbeat going silent. A rack that is stale or offline while others are
//! fresh is not a cause: the aggregate leaves it out and its share of the limits goes with it
//! (`rack::aggregate`); the failsafe reports it as a degradation.
//!
//! In the safe state the inverter gets zero current limits (the CAN layer encodes each
//! profile's own safe form) and the dry contact opens. Recovery needs every cause to stay gone
//! for the hold time, so a flickering link cannot make the inverter flap. Every transition is an
//! event with its cause and time, and counted per cause.
//!
//! Calling order: `update(now, &view, inputs)` whenever the aggregate changes and at least
//! every second, then drain `poll_event()`; read `decision()`.

use alloc::collections::VecDeque;
use core::fmt;
use core::time::Duration;

use crate::limits::PackLimits;
use crate::rack::SystemView;
use crate::time::Instant;

/// Why the system is held in the safe state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// No rack has fresh data (all stale or offline).
    NoFreshRack,
    /// A used rack has a protection acting.
    Protection,
    /// The inverter stopped sending its keep-alive (0x305), when configured to act on it.
    InverterSilent,
    /// The EMS stopped writing its heartbeat, when configured to act on it.
    EmsSilent,
}

impl Cause {
    /// Every cause, in order.
    pub const ALL: [Cause; 4] = [
        Cause::NoFreshRack,
        Cause::Protection,
        Cause::InverterSilent,
        Cause::EmsSilent,
    ];

    /// Stable snake_case name (logs, metrics labels).
    pub fn name(self) -> &'static str {
        match self {
            Cause::NoFreshRack => "no_fresh_rack",
            Cause::Protection => "protection",
            Cause::InverterSilent => "inverter_silent",
            Cause::EmsSilent => "ems_silent",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::NoFreshRack => "no rack has fresh data",
            Cause::Protection => "a rack's protection is acting",
            Cause::InverterSilent => "the inverter's keep-alive stopped",
            Cause::EmsSilent => "the EMS heartbeat stopped",
        })
    }
}

/// A set of causes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Causes(u8);

impl Causes {
    /// No cause.
    pub const NONE: Causes = Causes(0);

    /// Whether `cause` is in the set.
    pub fn contains(self, cause: Cause) -> bool {
        self.0 & (1 << cause.index()) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn with(self, cause: Cause, present: bool) -> Causes {
        if present {
            Causes(self.0 | (1 << cause.index()))
        } else {
            self
        }
    }

    /// The causes in the set.
    pub fn iter(self) -> impl Iterator<Item = Cause> {
        Cause::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

/// Where the failsafe stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Limits from the aggregate go to the inverter.
    Normal,
    /// Held safe for the causes.
    Safe,
    /// The causes are gone; still safe until the hold time has passed.
    Recovering {
        /// When the last cause went away.
        since: Instant,
    },
}

/// Tuning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailsafeConfig {
    /// How long every cause must stay gone before the safe state ends.
    pub recovery_hold: Duration,
    /// Inverter keep-alive (0x305) timeout; `None` does not watch it.
    pub inverter_timeout: Option<Duration>,
    /// Whether a silent inverter puts the system in the safe state (otherwise: an alarm only).
    pub inverter_silence_is_unsafe: bool,
    /// EMS heartbeat timeout; `None` does not watch it.
    pub ems_timeout: Option<Duration>,
}

impl Default for FailsafeConfig {
    fn default() -> Self {
        FailsafeConfig {
            recovery_hold: Duration::from_secs(10),
            inverter_timeout: Some(Duration::from_secs(60)),
            inverter_silence_is_unsafe: false,
            ems_timeout: None,
        }
    }
}

/// Everything besides the aggregate the failsafe watches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heartbeats {
    /// When the inverter's keep-alive (0x305) last arrived.
    pub inverter: Option<Instant>,
    /// When the EMS last wrote its heartbeat.
    pub ems: Option<Instant>,
}

/// What the inverter and the dry contact are to be told now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// The state.
    pub state: State,
    /// The causes acting now (empty while recovering).
    pub causes: Causes,
    /// Whether the inverter gets its profile's safe state (zero currents, alarm bits).
    pub safe: bool,
    /// The limits to send (the aggregate's, or zero currents when safe).
    pub limits: PackLimits,
    /// Whether the dry contact is open (tripped).
    pub contact_open: bool,
    /// Racks left out of the aggregate (a degradation, not a cause).
    pub racks_excluded: usize,
    /// Whether the inverter's keep-alive is overdue (an alarm even when not a cause).
    pub inverter_silent: bool,
}

/// A failsafe transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailsafeEvent {
    /// Entered the safe state (or a new cause joined), with the causes.
    Safe {
        /// When.
        at: Instant,
        /// The causes now.
        causes: Causes,
    },
    /// Every cause went away; the hold time starts.
    Recovering {
        /// When.
        at: Instant,
    },
    /// A cause came back during the hold time.
    RecoveryAborted {
        /// When.
        at: Instant,
        /// The causes now.
        causes: Causes,
    },
    /// The hold time passed: normal operation.
    Normal {
        /// When.
        at: Instant,
    },
    /// The inverter's keep-alive stopped or came back (an alarm either way).
    InverterSilent {
        /// When.
        at: Instant,
        /// Whether it is silent now.
        silent: bool,
    },
}

/// The failsafe of one site.
#[derive(Clone, Debug)]
pub struct Failsafe {
    config: FailsafeConfig,
    state: State,
    causes: Causes,
    inverter_silent: bool,
    decision: Decision,
    events: VecDeque<FailsafeEvent>,
    entered: [u64; 4],
    /// When the failsafe started: heartbeats never seen count from here.
    started: Instant,
}

fn overdue(
    now: Instant,
    last: Option<Instant>,
    timeout: Option<Duration>,
    started: Instant,
) -> bool {
    match timeout {
        Some(timeout) => now - last.unwrap_or(started) > timeout,
        None => false,
    }
}

impl Failsafe {
    /// A failsafe that starts safe: nothing is known yet, so nothing is allowed until data
    /// is fresh for the hold time.
    pub fn new(config: FailsafeConfig, now: Instant) -> Failsafe {
        let causes = Causes::NONE.with(Cause::NoFreshRack, true);
        Failsafe {
            config,
            state: State::Safe,
            causes,
            inverter_silent: false,
            decision: Decision {
                state: State::Safe,
                causes,
                safe: true,
                limits: PackLimits::default(),
                contact_open: true,
                racks_excluded: 0,
                inverter_silent: false,
            },
            events: VecDeque::new(),
            entered: [0; 4],
            started: now,
        }
    }

    /// Re-evaluates at `now` with the latest aggregate and heartbeats.
    pub fn update(&mut self, now: Instant, view: &SystemView, heartbeats: Heartbeats) {
        let inverter_silent = overdue(
            now,
            heartbeats.inverter,
            self.config.inverter_timeout,
            self.started,
        );
        if inverter_silent != self.inverter_silent {
            self.inverter_silent = inverter_silent;
            self.events.push_back(FailsafeEvent::InverterSilent {
                at: now,
                silent: inverter_silent,
            });
        }
        let causes = Causes::NONE
            .with(Cause::NoFreshRack, view.used.is_empty())
            .with(Cause::Protection, view.protection)
            .with(
                Cause::InverterSilent,
                inverter_silent && self.config.inverter_silence_is_unsafe,
            )
            .with(
                Cause::EmsSilent,
                overdue(now, heartbeats.ems, self.config.ems_timeout, self.started),
            );
        self.transition(now, causes);
        self.causes = causes;
        let safe = self.state != State::Normal;
        self.decision = Decision {
            state: self.state,
            causes,
            safe,
            limits: if safe {
                safe_limits(view.limits)
            } else {
                view.limits
            },
            contact_open: safe,
            racks_excluded: view.excluded.len(),
            inverter_silent,
        };
    }

    fn transition(&mut self, now: Instant, causes: Causes) {
        let new_causes = Causes(causes.0 & !self.causes.0);
        match self.state {
            State::Normal | State::Safe if !new_causes.is_empty() => {
                self.enter_safe(now, causes, new_causes)
            }
            State::Recovering { .. } if !causes.is_empty() => {
                self.state = State::Safe;
                self.count(causes.0);
                self.events
                    .push_back(FailsafeEvent::RecoveryAborted { at: now, causes });
            }
            State::Safe if causes.is_empty() => {
                self.state = State::Recovering { since: now };
                self.events.push_back(FailsafeEvent::Recovering { at: now });
            }
            State::Recovering { since } if now - since >= self.config.recovery_hold => {
                self.state = State::Normal;
                self.events.push_back(FailsafeEvent::Normal { at: now });
            }
            _ => {}
        }
    }

    fn enter_safe(&mut self, now: Instant, causes: Causes, new_causes: Causes) {
        self.state = State::Safe;
        self.count(new_causes.0);
        self.events
            .push_back(FailsafeEvent::Safe { at: now, causes });
    }

    fn count(&mut self, bits: u8) {
        for cause in Causes(bits).iter() {
            self.entered[cause.index()] += 1;
        }
    }

    /// What to tell the inverter and the dry contact now.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// How often each cause has put (or kept) the system in the safe state.
    pub fn count_of(&self, cause: Cause) -> u64 {
        self.entered[cause.index()]
    }

    /// The next transition.
    pub fn poll_event(&mut self) -> Option<FailsafeEvent> {
        self.events.pop_front()
    }
}

/// Zero currents; voltages kept from the aggregate (the CAN profile decides how a stop is
/// written, e.g. CVL at pack voltage, never 0).
fn safe_limits(limits: PackLimits) -> PackLimits {
    PackLimits {
        charge_current_a: 0.0,
        discharge_current_a: 0.0,
        ..limits
    }
}

#[cfg(test)]
mod tests;
