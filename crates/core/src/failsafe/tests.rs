//! The failsafe stepped in virtual time over aggregates of simulated rack reports.

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::rack::{aggregate, report, RackReport};

const STALE: Duration = Duration::from_secs(5);

/// Three racks polled every second; `silent` racks stop answering.
struct Site {
    failsafe: Failsafe,
    now: Instant,
    last_seen: Vec<Instant>,
    silent: Vec<bool>,
    protection: Vec<bool>,
    heartbeats: Heartbeats,
    events: Vec<FailsafeEvent>,
}

impl Site {
    fn new(config: FailsafeConfig) -> Site {
        let now = Instant::from_millis(1_000);
        Site {
            failsafe: Failsafe::new(config, now),
            now,
            last_seen: vec![now; 3],
            silent: vec![false; 3],
            protection: vec![false; 3],
            heartbeats: Heartbeats {
                inverter: Some(now),
                ems: Some(now),
            },
            events: Vec::new(),
        }
    }

    fn run(&mut self, seconds: u64) {
        for _ in 0..seconds {
            self.now = self.now + Duration::from_secs(1);
            for rack in 0..3 {
                if !self.silent[rack] {
                    self.last_seen[rack] = self.now;
                }
            }
            let reports: Vec<RackReport> = (0..3)
                .map(|rack| RackReport {
                    protection: self.protection[rack],
                    ..report(rack, self.last_seen[rack])
                })
                .collect();
            let view = aggregate(self.now, &reports, STALE);
            self.failsafe.update(self.now, &view, self.heartbeats);
            while let Some(event) = self.failsafe.poll_event() {
                self.events.push(event);
            }
        }
    }

    fn state(&self) -> State {
        self.failsafe.decision().state
    }
}

#[test]
fn starts_safe_and_releases_only_after_the_hold_time() {
    let mut site = Site::new(FailsafeConfig::default());
    assert!(site.failsafe.decision().safe, "nothing known at start");
    assert!(site.failsafe.decision().contact_open);
    site.run(1);
    assert!(matches!(site.state(), State::Recovering { .. }));
    assert_eq!(site.failsafe.decision().limits.charge_current_a, 0.0);
    site.run(9);
    assert!(site.failsafe.decision().safe, "hold time 10 s not over");
    site.run(1);
    let decision = site.failsafe.decision();
    assert_eq!(decision.state, State::Normal);
    assert!(!decision.contact_open);
    assert!((decision.limits.charge_current_a - 150.0).abs() < 1e-3);
}

#[test]
fn one_silent_rack_degrades_without_the_safe_state_and_all_silent_is_safe() {
    let mut site = Site::new(FailsafeConfig::default());
    site.run(11);
    site.silent[1] = true;
    site.run(10);
    let decision = site.failsafe.decision();
    assert_eq!(decision.state, State::Normal);
    assert_eq!(decision.racks_excluded, 1);
    assert!(
        (decision.limits.charge_current_a - 100.0).abs() < 1e-3,
        "its share left with it"
    );
    site.silent = vec![true; 3];
    site.run(5);
    assert_eq!(
        site.state(),
        State::Normal,
        "data is 5 s old: not stale yet"
    );
    site.run(1);
    let decision = site.failsafe.decision();
    assert_eq!(decision.state, State::Safe);
    assert!(decision.causes.contains(Cause::NoFreshRack));
    assert_eq!(
        (
            decision.limits.charge_current_a,
            decision.limits.discharge_current_a
        ),
        (0.0, 0.0)
    );
    assert!(decision.contact_open);
    // Entries into the safe state are counted; the start-up safe state is not an entry.
    assert_eq!(site.failsafe.count_of(Cause::NoFreshRack), 1);
}

#[test]
fn a_flapping_link_cannot_make_the_inverter_flap() {
    let mut site = Site::new(FailsafeConfig::default());
    site.run(11);
    site.silent = vec![true; 3];
    site.run(7);
    assert_eq!(site.state(), State::Safe);
    // Back for 3 s, then gone again: staleness shows 6 s later, inside the 10 s hold.
    site.silent = vec![false; 3];
    site.run(3);
    assert!(matches!(site.state(), State::Recovering { .. }));
    site.silent = vec![true; 3];
    site.run(7);
    assert_eq!(site.state(), State::Safe);
    // Back for good: safe for the whole hold time, then normal.
    site.silent = vec![false; 3];
    site.run(10);
    assert!(site.failsafe.decision().safe);
    site.run(1);
    assert_eq!(site.state(), State::Normal);
    let aborted = site
        .events
        .iter()
        .filter(|e| matches!(e, FailsafeEvent::RecoveryAborted { .. }))
        .count();
    assert_eq!(aborted, 1);
}

#[test]
fn a_protection_on_any_rack_opens_the_contact_until_it_clears_and_holds() {
    let mut site = Site::new(FailsafeConfig::default());
    site.run(11);
    site.protection[2] = true;
    site.run(1);
    let decision = site.failsafe.decision();
    assert!(decision.causes.contains(Cause::Protection));
    assert!(decision.contact_open && decision.safe);
    site.protection[2] = false;
    site.run(10);
    assert!(site.failsafe.decision().contact_open);
    site.run(1);
    assert!(!site.failsafe.decision().contact_open);
    assert_eq!(site.failsafe.count_of(Cause::Protection), 1);
}

#[test]
fn a_silent_inverter_is_an_alarm_and_unsafe_only_when_configured() {
    let mut site = Site::new(FailsafeConfig::default()); // 60 s timeout, alarm only
    site.run(11);
    site.run(61);
    let decision = site.failsafe.decision();
    assert!(decision.inverter_silent);
    assert_eq!(decision.state, State::Normal);
    assert!(site
        .events
        .iter()
        .any(|e| matches!(e, FailsafeEvent::InverterSilent { silent: true, .. })));

    let config = FailsafeConfig {
        inverter_silence_is_unsafe: true,
        ..Default::default()
    };
    let mut strict = Site::new(config);
    strict.run(11);
    strict.run(61);
    assert!(strict
        .failsafe
        .decision()
        .causes
        .contains(Cause::InverterSilent));
    strict.heartbeats.inverter = Some(strict.now);
    strict.run(1);
    assert!(matches!(strict.state(), State::Recovering { .. }));
}

#[test]
fn the_ems_heartbeat_is_watched_when_configured() {
    let config = FailsafeConfig {
        ems_timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    };
    let mut site = Site::new(config);
    site.run(31);
    assert!(site.failsafe.decision().causes.contains(Cause::EmsSilent));
    site.heartbeats.ems = Some(site.now);
    site.run(11);
    assert_eq!(site.state(), State::Normal);
}
