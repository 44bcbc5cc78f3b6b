//! The PCS link: the task that speaks to the inverter over CAN (inverter-can.md).
//!
//! Every send interval (1 s by default, never under 200 ms: SMA's limit, "Bus rules") it sends
//! the profile's frame set for the current [`PcsCommand`], in the profile's order: `frames` for
//! [`PcsCommand::Normal`], `safe_state` for [`PcsCommand::Safe`]. A restriction (the safe
//! state, a lower current limit, a cleared enable) goes out at once, at least 200 ms after the
//! last set; any other change takes effect at the next tick. Every 0x305 received (Pylon's 8 x 00, or SMA's measurements) is published as
//! the time it arrived, for the failsafe; when the keep-alive stays away longer than the timeout
//! the link logs it, and logs again when it returns, with the durations ([`KeepAliveMonitor`],
//! pure: `now` is a parameter).
//!
//! One task owns the transport; its `select!` has four branches: the send tick, a received
//! frame, a new command (or the end of the link, when the command sender is dropped), and the
//! keep-alive deadline.

use std::fmt;
use std::future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bmslink_proto::can::{
    frames, id, safe_state, BatteryState, CanFrame, FrameSet, KeepAlive, Options, Profile,
};
use bmslink_proto::Millivolts;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use crate::can_link::{CanLinkError, CanTransport};
use crate::config::InverterConfig;
use crate::metrics::{CanLabels, Direction, Metrics};

/// The shortest send interval (inverter-can.md, "Bus rules": SMA, never faster than 200 ms).
pub const MIN_SEND_INTERVAL: Duration = Duration::from_millis(200);

/// What the battery tells the inverter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcsCommand {
    /// The battery's state and limits, through the profile's rules.
    Normal(BatteryState),
    /// The profile's safe state: charge and discharge blocked, CVL = `pack_voltage`.
    Safe {
        /// The pack voltage to send as CVL and in 0x356.
        pack_voltage: Millivolts,
        /// The last known state (SOC, names, capacity).
        state: BatteryState,
    },
}

impl PcsCommand {
    /// Whether going from `self` to `next` takes something away from the inverter: the safe
    /// state, a lower charge or discharge current limit, a cleared enable, or a new alarm.
    /// Such a change is sent at once rather than at the next tick.
    pub fn is_restricted_by(&self, next: &PcsCommand) -> bool {
        match (self, next) {
            // A new alarm while safe: the inverter should know at once why it stays stopped.
            (PcsCommand::Safe { state: old, .. }, PcsCommand::Safe { state: new, .. }) => {
                !(new.alarms - old.alarms).is_empty()
            }
            (PcsCommand::Normal(_), PcsCommand::Safe { .. }) => true,
            (PcsCommand::Normal(old), PcsCommand::Normal(new)) => {
                new.limits.charge_current < old.limits.charge_current
                    || new.limits.discharge_current < old.limits.discharge_current
                    || (old.charge_enable && !new.charge_enable)
                    || (old.discharge_enable && !new.discharge_enable)
            }
            (PcsCommand::Safe { .. }, PcsCommand::Normal(_)) => false,
        }
    }

    /// The frame set for `profile`, in send order.
    pub fn frame_set(&self, profile: Profile, options: &Options) -> FrameSet {
        match self {
            PcsCommand::Normal(state) => frames(profile, options, state),
            PcsCommand::Safe {
                pack_voltage,
                state,
            } => safe_state(profile, options, *pack_voltage, state),
        }
    }
}

/// Why the PCS link cannot run, or stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum PcsError {
    /// The send interval is under [`MIN_SEND_INTERVAL`].
    SendIntervalTooShort {
        /// The interval asked for.
        interval: Duration,
    },
    /// The CAN link failed.
    Link(CanLinkError),
}

impl fmt::Display for PcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcsError::SendIntervalTooShort { interval } => write!(
                f,
                "send interval {interval:?} is under {MIN_SEND_INTERVAL:?} (SMA inverters refuse \
                 faster frame sets; 1 s is the family's rate)"
            ),
            PcsError::Link(error) => write!(f, "PCS link: {error}"),
        }
    }
}

impl std::error::Error for PcsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PcsError::Link(error) => Some(error),
            PcsError::SendIntervalTooShort { .. } => None,
        }
    }
}

impl From<CanLinkError> for PcsError {
    fn from(error: CanLinkError) -> Self {
        PcsError::Link(error)
    }
}

/// The PCS link's settings, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcsSettings {
    profile: Profile,
    options: Options,
    send_interval: Duration,
    keepalive_timeout: Option<Duration>,
}

impl PcsSettings {
    /// Settings for `profile`; `send_interval` must be at least [`MIN_SEND_INTERVAL`];
    /// `keepalive_timeout` `None` leaves the keep-alive unwatched (still recorded).
    pub fn new(
        profile: Profile,
        options: Options,
        send_interval: Duration,
        keepalive_timeout: Option<Duration>,
    ) -> Result<Self, PcsError> {
        if send_interval < MIN_SEND_INTERVAL {
            return Err(PcsError::SendIntervalTooShort {
                interval: send_interval,
            });
        }
        Ok(PcsSettings {
            profile,
            options,
            send_interval,
            keepalive_timeout,
        })
    }

    /// The settings of the configuration's `[inverter]` section.
    pub fn from_config(inverter: &InverterConfig) -> Result<Self, PcsError> {
        PcsSettings::new(
            inverter.profile,
            inverter.options,
            inverter.send_interval,
            inverter.keepalive_timeout,
        )
    }

    /// Time between frame sets.
    pub fn send_interval(&self) -> Duration {
        self.send_interval
    }
}

/// A change in the inverter's keep-alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAliveEvent {
    /// No 0x305 for longer than the timeout.
    Silent {
        /// Time since the last 0x305 (or since the link started, if none came yet).
        silent_for: Duration,
        /// Whether no 0x305 ever came.
        never_heard: bool,
    },
    /// A 0x305 arrived after a silence.
    Returned {
        /// How long the silence lasted.
        silent_for: Duration,
    },
}

/// Watches the inverter's keep-alive. Pure: call [`handle_keep_alive`](Self::handle_keep_alive)
/// on every 0x305 and [`poll_silence`](Self::poll_silence) at (or after)
/// [`deadline`](Self::deadline).
#[derive(Clone, Copy, Debug)]
pub struct KeepAliveMonitor {
    timeout: Option<Duration>,
    started: Instant,
    last: Option<Instant>,
    silent: bool,
}

impl KeepAliveMonitor {
    /// A monitor started at `now`; `timeout` `None`: silences are never reported.
    pub fn new(now: Instant, timeout: Option<Duration>) -> Self {
        KeepAliveMonitor {
            timeout,
            started: now,
            last: None,
            silent: false,
        }
    }

    fn reference(&self) -> Instant {
        self.last.unwrap_or(self.started)
    }

    /// When a silence is due, if one can be.
    pub fn deadline(&self) -> Option<Instant> {
        let timeout = self.timeout.filter(|_| !self.silent)?;
        Some(self.reference() + timeout)
    }

    /// A 0x305 arrived at `now`; reports the end of a silence.
    pub fn handle_keep_alive(&mut self, now: Instant) -> Option<KeepAliveEvent> {
        let silent_for = now.saturating_duration_since(self.reference());
        let was_silent = std::mem::replace(&mut self.silent, false);
        self.last = Some(now);
        was_silent.then_some(KeepAliveEvent::Returned { silent_for })
    }

    /// Reports a silence once, when `now` is past the deadline.
    pub fn poll_silence(&mut self, now: Instant) -> Option<KeepAliveEvent> {
        let deadline = self.deadline()?;
        if now < deadline {
            return None;
        }
        self.silent = true;
        Some(KeepAliveEvent::Silent {
            silent_for: now.saturating_duration_since(self.reference()),
            never_heard: self.last.is_none(),
        })
    }
}

/// What the link did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PcsStats {
    /// Frame sets sent.
    pub sets_sent: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames received (any id).
    pub frames_received: u64,
    /// 0x305 keep-alives among them.
    pub keep_alives: u64,
}

/// Runs the PCS link on `transport` until the `commands` sender is dropped (then returns what
/// it did) or the transport fails. Every 0x305's arrival time goes to `keepalive`.
pub async fn run_pcs_link<T: CanTransport>(
    transport: &mut T,
    settings: PcsSettings,
    mut commands: watch::Receiver<PcsCommand>,
    keepalive: watch::Sender<Option<Instant>>,
    metrics: Arc<Metrics>,
) -> Result<PcsStats, PcsError> {
    let mut link = Link {
        settings,
        stats: PcsStats::default(),
        monitor: KeepAliveMonitor::new(now(), settings.keepalive_timeout),
        keepalive,
        metrics,
    };
    let gap = min_set_gap(settings.profile);
    let mut ticker = tokio::time::interval(settings.send_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The last set sent, and when: a restriction is measured against it.
    let mut last: Option<(tokio::time::Instant, PcsCommand)> = None;
    info!(profile = settings.profile.name(), interval = ?settings.send_interval, "PCS link started");
    loop {
        let deadline = link.monitor.deadline();
        tokio::select! {
            // Flow: one frame set per tick, the command as it is now.
            _ = ticker.tick() => {
                let command = *commands.borrow_and_update();
                link.send_set(transport, &command).await?;
                last = Some((tokio::time::Instant::now(), command));
            }
            // Inbound: cancel safe, so a tick never loses a frame.
            received = transport.receive() => link.handle_frame(&received?),
            // A restriction (safe state, lower limit, cleared enable) pulls the next tick
            // forward, still at least MIN_SEND_INTERVAL after the last set; anything else
            // waits for its tick. A dropped sender ends the link.
            changed = commands.changed() => match (changed, last) {
                (Err(_), _) => {
                    info!(stats = ?link.stats, "PCS link stopped");
                    return Ok(link.stats);
                }
                (Ok(()), Some((sent_at, sent))) if sent.is_restricted_by(&commands.borrow()) => {
                    ticker.reset_at(sent_at + gap);
                }
                (Ok(()), _) => {}
            },
            _ = sleep_until(deadline) => link.check_silence(),
        }
    }
}

/// The shortest time between two frame sets when a restriction is sent early: SMA's 200 ms
/// ("never faster than every 200 ms"); the other profiles take a restriction at once.
pub fn min_set_gap(profile: Profile) -> Duration {
    if profile == Profile::Sma {
        MIN_SEND_INTERVAL
    } else {
        Duration::ZERO
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => future::pending().await,
    }
}

/// The link's state between awaits.
struct Link {
    settings: PcsSettings,
    stats: PcsStats,
    monitor: KeepAliveMonitor,
    keepalive: watch::Sender<Option<Instant>>,
    metrics: Arc<Metrics>,
}

impl Link {
    async fn send_set<T: CanTransport>(
        &mut self,
        transport: &mut T,
        command: &PcsCommand,
    ) -> Result<(), PcsError> {
        let set = command.frame_set(self.settings.profile, &self.settings.options);
        for frame in &set {
            transport.send(frame).await?;
            self.stats.frames_sent += 1;
            self.metrics
                .can_frames
                .get_or_create(&CanLabels {
                    direction: Direction::Sent,
                })
                .inc();
        }
        self.stats.sets_sent += 1;
        debug!(
            frames = set.len(),
            safe = matches!(command, PcsCommand::Safe { .. }),
            "frame set sent"
        );
        Ok(())
    }

    fn handle_frame(&mut self, frame: &CanFrame) {
        self.stats.frames_received += 1;
        self.metrics
            .can_frames
            .get_or_create(&CanLabels {
                direction: Direction::Received,
            })
            .inc();
        if frame.id() != id::KEEP_ALIVE {
            debug!(%frame, "frame from the bus ignored");
            return;
        }
        match KeepAlive::decode(frame) {
            Ok(keep_alive) => self.handle_keep_alive(keep_alive),
            Err(error) => warn!(%frame, "bad inverter keep-alive: {error}"),
        }
    }

    fn handle_keep_alive(&mut self, keep_alive: KeepAlive) {
        let at = now();
        self.stats.keep_alives += 1;
        self.metrics.can_keepalives.inc();
        self.keepalive.send_replace(Some(at));
        debug!(?keep_alive, "inverter keep-alive");
        if let Some(KeepAliveEvent::Returned { silent_for }) = self.monitor.handle_keep_alive(at) {
            info!(silent_for = ?silent_for, "inverter keep-alive (0x305) is back after {silent_for:.1?} of silence");
        }
    }

    fn check_silence(&mut self) {
        if let Some(KeepAliveEvent::Silent {
            silent_for,
            never_heard,
        }) = self.monitor.poll_silence(now())
        {
            let since = if never_heard {
                "since the link started"
            } else {
                "since the last one"
            };
            warn!(silent_for = ?silent_for, "no inverter keep-alive (0x305) for {silent_for:.1?} {since}");
        }
    }
}

#[cfg(test)]
mod tests;
