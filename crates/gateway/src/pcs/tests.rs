#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use bmslink_proto::can::{CentiPercent, Limits, StateLimits};
use bmslink_proto::Milliamps;
use tokio::sync::mpsc;

const SECOND: Duration = Duration::from_secs(1);

/// A bus in memory: what was sent, with virtual times; what the test puts in.
struct FakeBus {
    sent: Vec<(tokio::time::Instant, CanFrame)>,
    inbound: mpsc::UnboundedReceiver<CanFrame>,
}

impl CanTransport for FakeBus {
    async fn send(&mut self, frame: &CanFrame) -> Result<(), CanLinkError> {
        self.sent.push((tokio::time::Instant::now(), *frame));
        Ok(())
    }

    async fn receive(&mut self) -> Result<CanFrame, CanLinkError> {
        self.inbound.recv().await.ok_or(CanLinkError::Closed)
    }
}

fn state() -> BatteryState {
    BatteryState {
        limits: StateLimits {
            charge_voltage: Millivolts(53_200),
            charge_current: Milliamps(50_000),
            discharge_current: Milliamps(60_000),
            discharge_voltage: Millivolts(45_000),
        },
        soc: CentiPercent::new(5_000).unwrap(),
        voltage: Millivolts(51_000),
        charge_enable: true,
        discharge_enable: true,
        ..BatteryState::default()
    }
}

fn settings(timeout: Option<Duration>) -> PcsSettings {
    PcsSettings::new(Profile::PylontechV12, Options::STANDARD, SECOND, timeout).unwrap()
}

#[test]
fn a_send_interval_under_200_ms_is_refused() {
    let error = PcsSettings::new(
        Profile::Sma,
        Options::STANDARD,
        Duration::from_millis(199),
        None,
    )
    .unwrap_err();
    assert!(matches!(error, PcsError::SendIntervalTooShort { .. }));
    assert!(error.to_string().contains("under 200ms"), "{error}");
    assert!(PcsSettings::new(Profile::Sma, Options::STANDARD, MIN_SEND_INTERVAL, None).is_ok());
}

#[test]
fn the_monitor_reports_a_silence_once_and_its_end_with_the_duration() {
    let start = Instant::now();
    let mut monitor = KeepAliveMonitor::new(start, Some(5 * SECOND));
    assert_eq!(monitor.deadline(), Some(start + 5 * SECOND));
    assert_eq!(monitor.poll_silence(start + 4 * SECOND), None);
    assert_eq!(monitor.handle_keep_alive(start + 4 * SECOND), None);
    assert_eq!(monitor.deadline(), Some(start + 9 * SECOND));
    assert_eq!(
        monitor.poll_silence(start + 10 * SECOND),
        Some(KeepAliveEvent::Silent {
            silent_for: 6 * SECOND,
            never_heard: false
        })
    );
    assert_eq!(monitor.deadline(), None);
    assert_eq!(monitor.poll_silence(start + 20 * SECOND), None);
    assert_eq!(
        monitor.handle_keep_alive(start + 30 * SECOND),
        Some(KeepAliveEvent::Returned {
            silent_for: 26 * SECOND
        })
    );
}

#[test]
fn the_monitor_says_when_no_keep_alive_ever_came_and_can_be_off() {
    let start = Instant::now();
    let mut monitor = KeepAliveMonitor::new(start, Some(SECOND));
    assert_eq!(
        monitor.poll_silence(start + SECOND),
        Some(KeepAliveEvent::Silent {
            silent_for: SECOND,
            never_heard: true
        })
    );
    let mut off = KeepAliveMonitor::new(start, None);
    assert_eq!(off.deadline(), None);
    assert_eq!(off.poll_silence(start + 1000 * SECOND), None);
}

#[tokio::test(start_paused = true)]
async fn sets_go_out_every_interval_in_order_and_the_safe_state_goes_out_at_once() {
    let (to_link, inbound) = mpsc::unbounded_channel();
    let mut bus = FakeBus {
        sent: Vec::new(),
        inbound,
    };
    let (commands, command_rx) = watch::channel(PcsCommand::Normal(state()));
    let (keepalive_tx, keepalive) = watch::channel(None);
    let started = tokio::time::Instant::now();
    let driver = async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        to_link.send(KeepAlive::Empty.encode()).unwrap();
        commands.send_replace(PcsCommand::Safe {
            pack_voltage: Millivolts(51_000),
            state: state(),
        });
        tokio::time::sleep(Duration::from_millis(800)).await;
        drop(commands);
        to_link
    };
    let (stats, _to_link) = tokio::join!(
        run_pcs_link(
            &mut bus,
            settings(Some(5 * SECOND)),
            command_rx,
            keepalive_tx,
            Default::default()
        ),
        driver
    );
    let stats = stats.unwrap();
    assert_eq!((stats.sets_sent, stats.frames_sent), (3, 18));
    assert_eq!((stats.frames_received, stats.keep_alives), (1, 1));
    assert!(keepalive.borrow().is_some());
    let ids: Vec<u16> = bus.sent[..6].iter().map(|(_, f)| f.id().raw()).collect();
    assert_eq!(ids, [0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E]);
    let offsets: Vec<Duration> = bus
        .sent
        .iter()
        .step_by(6)
        .map(|(t, _)| *t - started)
        .collect();
    // The safe state did not wait for the tick at 2 s.
    assert_eq!(
        offsets,
        [Duration::ZERO, SECOND, Duration::from_millis(1_500)]
    );
    let limits = |i: usize| Limits::decode(&bus.sent[i].1).unwrap();
    assert_eq!(limits(6).charge_current.0, 500);
    assert_eq!(limits(12).charge_current.0, 0);
    assert_eq!(limits(12).charge_voltage.0, 510);
}

/// Runs the link with `changes` (after a delay, a new command) for `run_for`; returns the
/// offsets of the sets sent and their charge current limits (0.1 A).
async fn run_with(
    profile: Profile,
    changes: Vec<(Duration, PcsCommand)>,
    run_for: Duration,
) -> Vec<(Duration, i16)> {
    let (_to_link, inbound) = mpsc::unbounded_channel();
    let mut bus = FakeBus {
        sent: Vec::new(),
        inbound,
    };
    let (commands, command_rx) = watch::channel(PcsCommand::Normal(state()));
    let (keepalive_tx, _keepalive) = watch::channel(None);
    let started = tokio::time::Instant::now();
    let driver = async move {
        for (after, command) in changes {
            tokio::time::sleep_until(started + after).await;
            commands.send_replace(command);
        }
        tokio::time::sleep_until(started + run_for).await;
        drop(commands);
    };
    let (stats, ()) = tokio::join!(
        run_pcs_link(
            &mut bus,
            PcsSettings::new(profile, Options::STANDARD, SECOND, None).unwrap(),
            command_rx,
            keepalive_tx,
            Default::default()
        ),
        driver
    );
    stats.unwrap();
    bus.sent
        .iter()
        .step_by(6)
        .map(|(t, f)| (*t - started, Limits::decode(f).unwrap().charge_current.0))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_restriction_goes_out_at_once_and_an_increase_waits_for_its_tick() {
    let mut lower = state();
    lower.limits.charge_current = Milliamps(10_000);
    let ms = Duration::from_millis;
    // Pylontech: a lower limit 50 ms after a set goes out at once, not at the next tick.
    let sets = run_with(
        Profile::PylontechV12,
        vec![(ms(1_050), PcsCommand::Normal(lower))],
        ms(1_900),
    )
    .await;
    assert_eq!(sets, [(ms(0), 500), (ms(1_000), 500), (ms(1_050), 100)]);
    // SMA: never two sets within 200 ms, so it goes out 200 ms after the last set.
    let sets = run_with(
        Profile::Sma,
        vec![(ms(1_050), PcsCommand::Normal(lower))],
        ms(1_900),
    )
    .await;
    assert_eq!(sets, [(ms(0), 500), (ms(1_000), 500), (ms(1_200), 100)]);
    // Back up: the increase waits for the tick (the next one after the restriction's set).
    let sets = run_with(
        Profile::PylontechV12,
        vec![
            (ms(300), PcsCommand::Normal(lower)),
            (ms(600), PcsCommand::Normal(state())),
        ],
        ms(1_400),
    )
    .await;
    assert_eq!(sets, [(ms(0), 500), (ms(300), 100), (ms(1_300), 500)]);
}
