//! The site: every rack's latest reading as one battery. [`Site`] is the pure part: it takes
//! rack updates and heartbeats with the time, computes each rack's limits, aggregates the racks
//! (`bmslink_core::rack`), runs the failsafe, and says what the inverter, the dry contact and
//! the EMS see. [`run_site`] is the task around it: it wakes on every rack update (so limits
//! follow every fresh frame at once) and every second (so stale data is noticed), and publishes
//! the result on watch channels.

use std::sync::Arc;
use std::time::Duration;

use bmslink_core::chemistry::Chemistry;
use bmslink_core::failsafe::{
    Cause, Decision, Failsafe, FailsafeConfig, FailsafeEvent, Heartbeats,
};
use bmslink_core::limits::{
    series_element_resistance, LimitCalculator, LimitInputs, LimitsConfig, PackLimits,
};
use bmslink_core::rack::{aggregate, Exclusion, RackReport, SystemView};
use bmslink_core::session::LinkState;
use bmslink_core::settings::Settings;
use bmslink_core::time::Instant;
use bmslink_proto::can::{
    AmpHours, BatteryState, CellExtremesState, CentiPercent, Conditions, DeciCelsius, Modules,
    Percent, StateLimits,
};
use bmslink_proto::{Celsius, Millivolts, Warnings};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::metrics::{CauseLabels, Metrics};
use crate::pcs::PcsCommand;
use crate::rack::{PackSnapshot, RackUpdate};

/// How often the site re-evaluates without news (staleness, heartbeats, recovery hold).
pub const TICK: Duration = Duration::from_secs(1);

/// One rack as the site sees it.
#[derive(Clone, Debug)]
pub struct RackStatus {
    /// Name from the configuration.
    pub name: String,
    /// The link, in words ("tcp://127.0.0.1:9000").
    pub link_text: String,
    /// Link state.
    pub link: LinkState,
    /// The latest good reading.
    pub reading: Option<Arc<PackSnapshot>>,
    /// The rack's own limits from its latest reading.
    pub limits: Option<PackLimits>,
    /// Why it is not in the aggregate, if it is not.
    pub exclusion: Option<Exclusion>,
}

/// What the EMS asked for through the Modbus server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmsCommand {
    /// SunSpec 802 SetOp: connect (normal limits) or disconnect (zero currents, enables
    /// cleared, no alarm).
    SetOperation {
        /// `true` = CONNECT, `false` = DISCONNECT.
        connect: bool,
    },
    /// SunSpec 802 SetInvState: what the EMS says the inverter is doing (1 stopped, 2 standby,
    /// 3 started); kept and reported, it changes no limit.
    SetInverterState(u16),
    /// SunSpec 802 AlmRst: the latched alarms start again from those acting now.
    AlarmReset,
    /// Ask the inverter to charge the battery (0x35C force charge I).
    ForceCharge(bool),
}

/// The EMS's controls as the site applies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmsControl {
    /// SetOp: whether the battery is connected (default true).
    pub connected: bool,
    /// SetInvState as last written (0: never).
    pub inverter_state: u16,
    /// Whether a force charge is asked for.
    pub force_charge: bool,
    /// Every warning bit seen since the last alarm reset (SunSpec alarms latch).
    pub latched_warnings: Warnings,
}

impl Default for EmsControl {
    fn default() -> Self {
        EmsControl {
            connected: true,
            inverter_state: 0,
            force_charge: false,
            latched_warnings: Warnings::empty(),
        }
    }
}

/// Everything the EMS server and the metrics read: published after every change.
#[derive(Clone, Debug)]
pub struct SiteSnapshot {
    /// When it was computed.
    pub at: Instant,
    /// Every rack, in configuration order.
    pub racks: Vec<RackStatus>,
    /// The aggregate.
    pub view: SystemView,
    /// The failsafe's decision.
    pub decision: Decision,
    /// What the inverter is told.
    pub pcs: PcsCommand,
    /// The EMS's controls.
    pub ems: EmsControl,
}

/// The pure site logic.
#[derive(Debug)]
pub struct Site {
    racks: Vec<RackStatus>,
    calculators: Vec<LimitCalculator>,
    reports: Vec<Option<RackReport>>,
    stale_after: Duration,
    failsafe: Failsafe,
    heartbeats: Heartbeats,
    ems: EmsControl,
    snapshot: SiteSnapshot,
}

/// A rack's name and link, as configured.
#[derive(Clone, Debug)]
pub struct RackIdentity {
    /// Name.
    pub name: String,
    /// Link, in words.
    pub link_text: String,
}

impl Site {
    /// A site of `racks`, starting safe at `now` (nothing is known yet).
    pub fn new(
        racks: Vec<RackIdentity>,
        stale_after: Duration,
        failsafe: FailsafeConfig,
        now: Instant,
    ) -> Site {
        let count = racks.len();
        let racks: Vec<RackStatus> = racks
            .into_iter()
            .map(|r| RackStatus {
                name: r.name,
                link_text: r.link_text,
                link: LinkState::Unknown,
                reading: None,
                limits: None,
                exclusion: None,
            })
            .collect();
        let failsafe = Failsafe::new(failsafe, now);
        let view = aggregate(now, &[], stale_after);
        let decision = failsafe.decision();
        let ems = EmsControl::default();
        let pcs = pcs_command(&view, &decision, &racks, &ems);
        Site {
            calculators: vec![LimitCalculator::new(LimitsConfig::default()); count],
            reports: vec![None; count],
            stale_after,
            failsafe,
            heartbeats: Heartbeats::default(),
            ems,
            snapshot: SiteSnapshot {
                at: now,
                racks: racks.clone(),
                view,
                decision,
                pcs,
                ems,
            },
            racks,
        }
    }

    /// A rack's news.
    pub fn handle_update(&mut self, now: Instant, update: RackUpdate) {
        let Some(status) = self.racks.get_mut(update.rack) else {
            return;
        };
        status.link = update.link;
        let fresh = match (&update.reading, &status.reading) {
            (Some(new), Some(old)) => !Arc::ptr_eq(new, old),
            (Some(_), None) => true,
            _ => false,
        };
        status.reading = update.reading;
        if let (true, Some(reading)) = (fresh, &status.reading) {
            let limits = rack_limits(&mut self.calculators[update.rack], reading);
            status.limits = Some(limits);
        }
        self.reports[update.rack] = status.reading.as_ref().map(|reading| {
            rack_report(
                update.rack,
                reading,
                status.link,
                status.limits.unwrap_or_default(),
            )
        });
        self.evaluate(now);
    }

    /// The inverter's keep-alive arrived at `at`.
    pub fn handle_inverter_keepalive(&mut self, at: Instant) {
        self.heartbeats.inverter = Some(at);
    }

    /// The EMS wrote its heartbeat at `at`.
    pub fn handle_ems_heartbeat(&mut self, at: Instant) {
        self.heartbeats.ems = Some(at);
    }

    /// An EMS command, applied at `now`.
    pub fn handle_ems_command(&mut self, now: Instant, command: EmsCommand) {
        match command {
            EmsCommand::SetOperation { connect } => self.ems.connected = connect,
            EmsCommand::SetInverterState(state) => self.ems.inverter_state = state,
            EmsCommand::AlarmReset => self.ems.latched_warnings = Warnings::empty(),
            EmsCommand::ForceCharge(on) => self.ems.force_charge = on,
        }
        self.evaluate(now);
    }

    /// Re-evaluates at `now` (staleness, heartbeats, recovery).
    pub fn evaluate(&mut self, now: Instant) {
        let reports: Vec<RackReport> = self.reports.iter().flatten().cloned().collect();
        let view = aggregate(now, &reports, self.stale_after);
        for (index, status) in self.racks.iter_mut().enumerate() {
            status.exclusion = if view.used.contains(&index) {
                None
            } else {
                Some(
                    view.excluded
                        .iter()
                        .find(|(rack, _)| *rack == index)
                        .map(|(_, why)| *why)
                        .unwrap_or(Exclusion::Offline),
                )
            };
        }
        self.failsafe.update(now, &view, self.heartbeats);
        let decision = self.failsafe.decision();
        self.ems.latched_warnings |= view.warnings;
        let pcs = pcs_command(&view, &decision, &self.racks, &self.ems);
        self.snapshot = SiteSnapshot {
            at: now,
            racks: self.racks.clone(),
            view,
            decision,
            pcs,
            ems: self.ems,
        };
    }

    /// The latest result.
    pub fn snapshot(&self) -> &SiteSnapshot {
        &self.snapshot
    }

    /// The next failsafe transition.
    pub fn poll_event(&mut self) -> Option<FailsafeEvent> {
        self.failsafe.poll_event()
    }

    /// How often `cause` put the system in the safe state.
    pub fn count_of(&self, cause: Cause) -> u64 {
        self.failsafe.count_of(cause)
    }
}

/// The settings to compute a rack's limits with: its own, or (old firmware that does not
/// report them) the LFP preset for its cell count.
fn settings_of(reading: &PackSnapshot) -> Settings {
    reading.settings.clone().unwrap_or_else(|| {
        let cells = u8::try_from(reading.cells.len()).unwrap_or(u8::MAX);
        Settings::preset(Chemistry::Lfp, cells, 100)
    })
}

fn capacity_of(reading: &PackSnapshot) -> f32 {
    reading
        .actual_capacity_ah()
        .or(reading.nominal_capacity_ah())
        .unwrap_or(100) as f32
}

/// The rack's string resistance (all series elements) at its hottest battery temperature.
fn rack_resistance(reading: &PackSnapshot) -> f32 {
    let chemistry = reading.chemistry().unwrap_or(Chemistry::Lfp);
    let celsius = reading
        .battery_temperatures()
        .iter()
        .map(|t| f32::from(t.0))
        .fold(25.0, f32::max);
    series_element_resistance(chemistry, capacity_of(reading), celsius) * reading.cells.len() as f32
}

fn rack_limits(calculator: &mut LimitCalculator, reading: &PackSnapshot) -> PackLimits {
    let settings = settings_of(reading);
    let chemistry = reading.chemistry().unwrap_or(Chemistry::Lfp);
    let temperatures = reading.battery_temperatures();
    let coldest = temperatures
        .iter()
        .map(|t| f32::from(t.0))
        .fold(25.0, f32::min);
    let inputs = LimitInputs {
        cells: &reading.cells,
        temperatures: &temperatures,
        soc: f32::from(reading.soc_percent) / 100.0,
        cell_resistance_ohm: series_element_resistance(chemistry, capacity_of(reading), coldest),
        charge_allowed: reading
            .status
            .contains(bmslink_proto::Status::CHARGE_MOSFET_ON),
        discharge_allowed: reading
            .status
            .contains(bmslink_proto::Status::DISCHARGE_MOSFET_ON),
    };
    calculator.update(reading.received_at, &settings, &inputs)
}

fn rack_report(
    rack: usize,
    reading: &PackSnapshot,
    link: LinkState,
    limits: PackLimits,
) -> RackReport {
    let temperatures = reading.battery_temperatures();
    let nominal = reading.nominal_capacity_ah().unwrap_or(0) as f32;
    let capacity = capacity_of(reading);
    RackReport {
        rack,
        received_at: reading.received_at,
        online: link != LinkState::Offline,
        cell_min: reading.cell_min(),
        cell_max: reading.cell_max(),
        temperature_min: temperatures.iter().copied().min().unwrap_or(Celsius(25)),
        temperature_max: temperatures.iter().copied().max().unwrap_or(Celsius(25)),
        soc: f32::from(reading.soc_percent) / 100.0,
        soh: if nominal > 0.0 {
            (capacity / nominal).min(1.0)
        } else {
            1.0
        },
        capacity_ah: capacity,
        voltage: reading.voltage,
        current: reading.current,
        warnings: reading.warnings,
        protection: reading.protection(),
        charge_enabled: reading
            .status
            .contains(bmslink_proto::Status::CHARGE_MOSFET_ON),
        discharge_enabled: reading
            .status
            .contains(bmslink_proto::Status::DISCHARGE_MOSFET_ON),
        limits,
        resistance_ohm: rack_resistance(reading),
    }
}

/// The profile-neutral alarm conditions of NW warning bits.
pub fn conditions(warnings: Warnings) -> Conditions {
    const MAP: [(Warnings, Conditions); 12] = [
        (Warnings::CELL_OVER_VOLTAGE, Conditions::HIGH_VOLTAGE),
        (Warnings::CHARGE_OVER_VOLTAGE, Conditions::HIGH_VOLTAGE),
        (Warnings::CELL_UNDER_VOLTAGE, Conditions::LOW_VOLTAGE),
        (Warnings::DISCHARGE_UNDER_VOLTAGE, Conditions::LOW_VOLTAGE),
        (
            Warnings::BATTERY_OVER_TEMPERATURE,
            Conditions::HIGH_TEMPERATURE,
        ),
        (Warnings::BOX_OVER_TEMPERATURE, Conditions::HIGH_TEMPERATURE),
        (Warnings::MOSFET_OVER_TEMPERATURE, Conditions::BMS_INTERNAL),
        (
            Warnings::BATTERY_LOW_TEMPERATURE,
            Conditions::LOW_TEMPERATURE,
        ),
        (
            Warnings::CHARGE_OVER_CURRENT,
            Conditions::CHARGE_OVER_CURRENT,
        ),
        (
            Warnings::DISCHARGE_OVER_CURRENT,
            Conditions::DISCHARGE_OVER_CURRENT,
        ),
        (
            Warnings::CELL_VOLTAGE_DIFFERENCE,
            Conditions::CELL_IMBALANCE,
        ),
        (
            Warnings::PROTECTION_309_A.union(Warnings::PROTECTION_309_B),
            Conditions::GENERAL,
        ),
    ];
    MAP.iter()
        .filter(|(bits, _)| warnings.intersects(*bits))
        .fold(Conditions::empty(), |all, (_, condition)| all | *condition)
}

fn cell_name(rack: usize, cell: u8) -> bmslink_proto::can::ShortText {
    let text = format!("R{}C{}", rack + 1, cell);
    bmslink_proto::can::ShortText::new(text.as_bytes()).unwrap_or_default()
}

fn deci(celsius: Celsius) -> DeciCelsius {
    DeciCelsius::from_celsius(celsius)
}

fn milliamps(amps: f32) -> bmslink_proto::Milliamps {
    bmslink_proto::Milliamps((amps.max(0.0) * 1000.0).round() as i32)
}

/// What the inverter is told for this aggregate, decision and EMS control.
pub fn pcs_command(
    view: &SystemView,
    decision: &Decision,
    racks: &[RackStatus],
    ems: &EmsControl,
) -> PcsCommand {
    let mut limits = decision.limits;
    if !ems.connected {
        limits.charge_current_a = 0.0;
        limits.discharge_current_a = 0.0;
    }
    let warnings = view.warnings;
    let mut alarms = conditions(warnings - Warnings::LOW_CAPACITY);
    let mut warned = if warnings.contains(Warnings::LOW_CAPACITY) {
        Conditions::LOW_VOLTAGE
    } else {
        Conditions::empty()
    };
    // Racks never heard from are in no report, so count from the configured racks.
    let missing = racks.len().saturating_sub(view.used.len());
    if view.used.is_empty() {
        alarms |= Conditions::INTERNAL_COMMUNICATION;
    } else if missing > 0 {
        warned |= Conditions::INTERNAL_COMMUNICATION;
    }
    let blocking = |charge: bool| {
        racks
            .iter()
            .filter_map(|r| r.reading.as_ref())
            .filter(|r| {
                let bit = if charge {
                    bmslink_proto::Status::CHARGE_MOSFET_ON
                } else {
                    bmslink_proto::Status::DISCHARGE_MOSFET_ON
                };
                !r.status.contains(bit)
            })
            .count()
    };
    let count = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
    let state = BatteryState {
        limits: StateLimits {
            charge_voltage: Millivolts((limits.charge_voltage_v * 1000.0).round() as u32),
            charge_current: milliamps(limits.charge_current_a),
            discharge_current: milliamps(limits.discharge_current_a),
            discharge_voltage: Millivolts((limits.discharge_voltage_v * 1000.0).round() as u32),
        },
        soc: CentiPercent::from_fraction(view.soc.unwrap_or(0.0)),
        soh: Percent::saturating((view.soh_min.unwrap_or(1.0) * 100.0).round() as u8),
        voltage: view.voltage.unwrap_or(Millivolts(0)),
        current: view.current,
        temperature: deci(
            view.temperature_max
                .map(|t| t.temperature)
                .unwrap_or(Celsius(0)),
        ),
        cells: CellExtremesState {
            min_voltage: view.cell_min.map(|c| c.voltage).unwrap_or_default(),
            min_voltage_cell: view
                .cell_min
                .map(|c| cell_name(c.rack, c.cell))
                .unwrap_or_default(),
            max_voltage: view.cell_max.map(|c| c.voltage).unwrap_or_default(),
            max_voltage_cell: view
                .cell_max
                .map(|c| cell_name(c.rack, c.cell))
                .unwrap_or_default(),
            min_temperature: view
                .temperature_min
                .map(|t| deci(t.temperature))
                .unwrap_or_default(),
            min_temperature_cell: view
                .temperature_min
                .map(|t| cell_name(t.rack, 0))
                .unwrap_or_default(),
            max_temperature: view
                .temperature_max
                .map(|t| deci(t.temperature))
                .unwrap_or_default(),
            max_temperature_cell: view
                .temperature_max
                .map(|t| cell_name(t.rack, 0))
                .unwrap_or_default(),
        },
        alarms,
        warnings: warned,
        modules: Modules {
            online: count(view.used.len()),
            blocking_charge: count(blocking(true)),
            blocking_discharge: count(blocking(false)),
            offline: count(missing),
        },
        capacity: AmpHours::from_f32(view.capacity_ah),
        charge_enable: !decision.safe && limits.charge_current_a > 0.0,
        discharge_enable: !decision.safe && limits.discharge_current_a > 0.0,
        force_charge_i: !decision.safe && ems.connected && ems.force_charge,
        ..BatteryState::default()
    };
    if decision.safe {
        PcsCommand::Safe {
            pack_voltage: state.voltage,
            state,
        }
    } else {
        PcsCommand::Normal(state)
    }
}

/// The site task's channels.
#[derive(Debug)]
pub struct SiteChannels {
    /// Rack updates from the pollers.
    pub updates: mpsc::Receiver<RackUpdate>,
    /// The inverter's last keep-alive (from the PCS link).
    pub inverter_keepalive: watch::Receiver<Option<std::time::Instant>>,
    /// The EMS's last heartbeat write (from the EMS server).
    pub ems_heartbeat: watch::Receiver<Option<Instant>>,
    /// The EMS's commands (from the EMS server).
    pub ems_commands: mpsc::Receiver<EmsCommand>,
    /// What the inverter is told.
    pub pcs: watch::Sender<PcsCommand>,
    /// Whether the dry contact is open.
    pub contact_open: watch::Sender<bool>,
    /// The whole picture, for the EMS server and the metrics.
    pub snapshot: watch::Sender<Arc<SiteSnapshot>>,
}

/// Runs the site until every poller is gone.
pub async fn run_site(
    mut site: Site,
    mut channels: SiteChannels,
    clock: Clock,
    metrics: Arc<Metrics>,
) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            update = channels.updates.recv() => match update {
                Some(update) => site.handle_update(clock.now(), update),
                None => return,
            },
            _ = ticker.tick() => site.evaluate(clock.now()),
            Ok(()) = channels.inverter_keepalive.changed() => {
                if let Some(at) = *channels.inverter_keepalive.borrow_and_update() {
                    site.handle_inverter_keepalive(clock.instant(tokio::time::Instant::from_std(at)));
                }
                continue;
            }
            Some(command) = channels.ems_commands.recv() => {
                info!("EMS command applied: {command:?}");
                site.handle_ems_command(clock.now(), command);
            }
            Ok(()) = channels.ems_heartbeat.changed() => {
                if let Some(at) = *channels.ems_heartbeat.borrow_and_update() {
                    site.handle_ems_heartbeat(at);
                }
                site.evaluate(clock.now());
            }
        }
        publish(&mut site, &channels, &metrics);
    }
}

fn publish(site: &mut Site, channels: &SiteChannels, metrics: &Metrics) {
    while let Some(event) = site.poll_event() {
        log_event(&event, site.snapshot());
        if let FailsafeEvent::Safe { causes, .. } | FailsafeEvent::RecoveryAborted { causes, .. } =
            event
        {
            for cause in causes.iter() {
                metrics
                    .failsafe_entries
                    .get_or_create(&CauseLabels {
                        cause: cause.name().to_string(),
                    })
                    .inc();
            }
        }
    }
    let snapshot = site.snapshot();
    metrics.failsafe_safe.set(i64::from(snapshot.decision.safe));
    for (index, rack) in snapshot.racks.iter().enumerate() {
        let used = i64::from(snapshot.view.used.contains(&index));
        metrics
            .rack_used
            .get_or_create(&Metrics::rack(&rack.name))
            .set(used);
    }
    channels.pcs.send_if_modified(|current| {
        let changed = *current != snapshot.pcs;
        *current = snapshot.pcs;
        changed
    });
    channels.contact_open.send_if_modified(|open| {
        std::mem::replace(open, snapshot.decision.contact_open) != snapshot.decision.contact_open
    });
    channels.snapshot.send_replace(Arc::new(snapshot.clone()));
}

fn causes_text(causes: bmslink_core::failsafe::Causes, snapshot: &SiteSnapshot) -> String {
    causes
        .iter()
        .map(|cause| match cause {
            Cause::NoFreshRack => {
                let racks: Vec<String> = snapshot
                    .racks
                    .iter()
                    .map(|r| match r.exclusion {
                        Some(Exclusion::Stale { age }) => {
                            format!("{} stale for {:.1} s", r.name, age.as_secs_f32())
                        }
                        _ => format!("{} offline", r.name),
                    })
                    .collect();
                format!("no fresh rack ({})", racks.join(", "))
            }
            Cause::Protection => {
                let racks: Vec<String> = snapshot
                    .racks
                    .iter()
                    .filter_map(|r| {
                        let reading = r.reading.as_ref().filter(|r| r.protection())?;
                        Some(format!("{}: {:?}", r.name, reading.warnings))
                    })
                    .collect();
                format!("protection acting ({})", racks.join("; "))
            }
            Cause::InverterSilent => "inverter keep-alive (0x305) overdue".to_string(),
            Cause::EmsSilent => "EMS heartbeat overdue".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn log_event(event: &FailsafeEvent, snapshot: &SiteSnapshot) {
    match event {
        FailsafeEvent::Safe { causes, .. } => warn!(
            "failsafe: SAFE state (inverter gets zero current, dry contact opens): {}",
            causes_text(*causes, snapshot)
        ),
        FailsafeEvent::Recovering { .. } => {
            info!("failsafe: every cause is gone; recovering after the hold time")
        }
        FailsafeEvent::RecoveryAborted { causes, .. } => warn!(
            "failsafe: recovery aborted: {}",
            causes_text(*causes, snapshot)
        ),
        FailsafeEvent::Normal { .. } => {
            info!("failsafe: NORMAL: limits from the aggregate go to the inverter")
        }
        FailsafeEvent::InverterSilent { silent: true, .. } => {
            warn!("inverter keep-alive (0x305) overdue (alarm)")
        }
        FailsafeEvent::InverterSilent { silent: false, .. } => {
            info!("inverter keep-alive (0x305) is back")
        }
    }
}

#[cfg(test)]
mod tests;
