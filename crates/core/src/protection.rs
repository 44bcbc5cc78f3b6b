//! Protection: every protection the NW settings describe, as pure state machines in virtual time.
//!
//! Each protection watches one measured value against a threshold with a delay, and recovers
//! with hysteresis after its recovery condition held for the same delay:
//!
//! ```text
//!  Normal --(beyond threshold)--> Pending --(held for delay)--> Tripped
//!    ^                               |                            |
//!    |                    (back within threshold)      (within recovery value)
//!    |                               v                            v
//!    +----------------------------- Normal <--(held for delay)-- Recovering
//! ```
//!
//! Over-current protections cannot watch their value recover (the MOSFET they opened stops the
//! current), so they recover automatically after a hold time (60 s by default, `battery.md`) and
//! latch after repeated trips (5 within 30 minutes) until [`Protection::reset_latches`].
//!
//! Outputs: the 0x8B warning bits, the live MOSFET decision (0x8C bits 0 and 1, combining the
//! user's 0xAB/0xAC switches with the active protections), and an event for every transition
//! with its cause, value, threshold and time.
//!
//! Calling order: `update(now, settings, measurements)` at every measurement, then drain
//! `poll_event()`; read `warnings()`, `charge_allowed()`, `discharge_allowed()` at any time.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use bmslink_proto::{Celsius, Milliamps, Millivolts, Status, Warnings};

use crate::settings::Settings;
use crate::time::Instant;

/// One protection, in the order of the settings that describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtectionKind {
    /// Total voltage too high (0x8E).
    TotalOverVoltage,
    /// Total voltage too low (0x8F).
    TotalUnderVoltage,
    /// A cell too high (0x90..0x92).
    CellOverVoltage,
    /// A cell too low (0x93..0x95).
    CellUnderVoltage,
    /// Highest minus lowest cell too large (0x96).
    CellVoltageDifference,
    /// Discharge current too high (0x97, 0x98).
    DischargeOverCurrent,
    /// Charge current too high (0x99, 0x9A).
    ChargeOverCurrent,
    /// Power tube (MOSFET) too hot (0x9E, 0x9F).
    MosfetOverTemperature,
    /// Battery box too hot (0xA0, 0xA1).
    BoxOverTemperature,
    /// Battery temperatures too far apart (0xA2).
    TemperatureDifference,
    /// Too hot to charge (0xA3).
    ChargeHighTemperature,
    /// Too hot to discharge (0xA4).
    DischargeHighTemperature,
    /// Too cold to charge (0xA5, 0xA6).
    ChargeLowTemperature,
    /// Too cold to discharge (0xA7, 0xA8).
    DischargeLowTemperature,
    /// SOC below the low capacity alarm (0xB1): a warning, no MOSFET action.
    LowCapacity,
}

impl ProtectionKind {
    /// Every protection.
    pub const ALL: [ProtectionKind; 15] = [
        ProtectionKind::TotalOverVoltage,
        ProtectionKind::TotalUnderVoltage,
        ProtectionKind::CellOverVoltage,
        ProtectionKind::CellUnderVoltage,
        ProtectionKind::CellVoltageDifference,
        ProtectionKind::DischargeOverCurrent,
        ProtectionKind::ChargeOverCurrent,
        ProtectionKind::MosfetOverTemperature,
        ProtectionKind::BoxOverTemperature,
        ProtectionKind::TemperatureDifference,
        ProtectionKind::ChargeHighTemperature,
        ProtectionKind::DischargeHighTemperature,
        ProtectionKind::ChargeLowTemperature,
        ProtectionKind::DischargeLowTemperature,
        ProtectionKind::LowCapacity,
    ];

    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            ProtectionKind::TotalOverVoltage => "total_over_voltage",
            ProtectionKind::TotalUnderVoltage => "total_under_voltage",
            ProtectionKind::CellOverVoltage => "cell_over_voltage",
            ProtectionKind::CellUnderVoltage => "cell_under_voltage",
            ProtectionKind::CellVoltageDifference => "cell_voltage_difference",
            ProtectionKind::DischargeOverCurrent => "discharge_over_current",
            ProtectionKind::ChargeOverCurrent => "charge_over_current",
            ProtectionKind::MosfetOverTemperature => "mosfet_over_temperature",
            ProtectionKind::BoxOverTemperature => "box_over_temperature",
            ProtectionKind::TemperatureDifference => "temperature_difference",
            ProtectionKind::ChargeHighTemperature => "charge_high_temperature",
            ProtectionKind::DischargeHighTemperature => "discharge_high_temperature",
            ProtectionKind::ChargeLowTemperature => "charge_low_temperature",
            ProtectionKind::DischargeLowTemperature => "discharge_low_temperature",
            ProtectionKind::LowCapacity => "low_capacity",
        }
    }

    /// Whether this protection opens the charge MOSFET.
    pub fn blocks_charge(self) -> bool {
        !matches!(
            self,
            ProtectionKind::TotalUnderVoltage
                | ProtectionKind::CellUnderVoltage
                | ProtectionKind::DischargeOverCurrent
                | ProtectionKind::DischargeHighTemperature
                | ProtectionKind::DischargeLowTemperature
                | ProtectionKind::LowCapacity
        )
    }

    /// Whether this protection opens the discharge MOSFET.
    pub fn blocks_discharge(self) -> bool {
        !matches!(
            self,
            ProtectionKind::TotalOverVoltage
                | ProtectionKind::CellOverVoltage
                | ProtectionKind::ChargeOverCurrent
                | ProtectionKind::ChargeHighTemperature
                | ProtectionKind::ChargeLowTemperature
                | ProtectionKind::LowCapacity
        )
    }

    /// The 0x8B warning bit this protection sets. The protocol has no bit for the temperature
    /// difference; it is reported as battery over-temperature, the nearest cause.
    pub fn warning(self) -> Warnings {
        match self {
            ProtectionKind::LowCapacity => Warnings::LOW_CAPACITY,
            ProtectionKind::MosfetOverTemperature => Warnings::MOSFET_OVER_TEMPERATURE,
            ProtectionKind::TotalOverVoltage => Warnings::CHARGE_OVER_VOLTAGE,
            ProtectionKind::TotalUnderVoltage => Warnings::DISCHARGE_UNDER_VOLTAGE,
            ProtectionKind::ChargeHighTemperature
            | ProtectionKind::DischargeHighTemperature
            | ProtectionKind::TemperatureDifference => Warnings::BATTERY_OVER_TEMPERATURE,
            ProtectionKind::ChargeOverCurrent => Warnings::CHARGE_OVER_CURRENT,
            ProtectionKind::DischargeOverCurrent => Warnings::DISCHARGE_OVER_CURRENT,
            ProtectionKind::CellVoltageDifference => Warnings::CELL_VOLTAGE_DIFFERENCE,
            ProtectionKind::BoxOverTemperature => Warnings::BOX_OVER_TEMPERATURE,
            ProtectionKind::ChargeLowTemperature | ProtectionKind::DischargeLowTemperature => {
                Warnings::BATTERY_LOW_TEMPERATURE
            }
            ProtectionKind::CellOverVoltage => Warnings::CELL_OVER_VOLTAGE,
            ProtectionKind::CellUnderVoltage => Warnings::CELL_UNDER_VOLTAGE,
        }
    }

    /// The unit of the watched value.
    pub fn unit(self) -> ValueUnit {
        match self {
            ProtectionKind::TotalOverVoltage
            | ProtectionKind::TotalUnderVoltage
            | ProtectionKind::CellOverVoltage
            | ProtectionKind::CellUnderVoltage
            | ProtectionKind::CellVoltageDifference => ValueUnit::Millivolts,
            ProtectionKind::DischargeOverCurrent | ProtectionKind::ChargeOverCurrent => {
                ValueUnit::Milliamps
            }
            ProtectionKind::LowCapacity => ValueUnit::Percent,
            _ => ValueUnit::Celsius,
        }
    }

    fn is_over_current(self) -> bool {
        matches!(
            self,
            ProtectionKind::DischargeOverCurrent | ProtectionKind::ChargeOverCurrent
        )
    }
}

impl fmt::Display for ProtectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Unit of a protection's value in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueUnit {
    /// mV.
    Millivolts,
    /// mA.
    Milliamps,
    /// degC.
    Celsius,
    /// % SOC.
    Percent,
}

/// What happened to a protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The value stayed beyond the threshold for the delay: the protection acts.
    Tripped,
    /// The value stayed within the recovery value for the delay (or the over-current hold
    /// time passed): the protection releases.
    Recovered,
    /// Repeated over-current trips: held until the latches are reset.
    Latched,
    /// An operator reset a latched protection.
    LatchReset,
}

/// A protection transition with its cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectionEvent {
    /// When.
    pub at: Instant,
    /// Which protection.
    pub kind: ProtectionKind,
    /// What happened.
    pub transition: Transition,
    /// The watched value at that moment.
    pub value: i32,
    /// The threshold crossed (the trip value, or the recovery value on recovery).
    pub threshold: i32,
}

impl fmt::Display for ProtectionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.kind.unit() {
            ValueUnit::Millivolts => "mV",
            ValueUnit::Milliamps => "mA",
            ValueUnit::Celsius => "°C",
            ValueUnit::Percent => "%",
        };
        let verb = match self.transition {
            Transition::Tripped => "tripped",
            Transition::Recovered => "recovered",
            Transition::Latched => "latched",
            Transition::LatchReset => "latch reset",
        };
        write!(
            f,
            "{} {verb}: {} {unit} (threshold {} {unit}) at {:.3} s",
            self.kind,
            self.value,
            self.threshold,
            self.at.since_origin().as_secs_f64()
        )
    }
}

/// What the protections watch, measured at one instant.
#[derive(Clone, Copy, Debug)]
pub struct Measurements<'a> {
    /// Every cell's voltage.
    pub cells: &'a [Millivolts],
    /// Pack voltage.
    pub total: Millivolts,
    /// Pack current, positive = charging.
    pub current: Milliamps,
    /// Power tube (MOSFET) temperature.
    pub mosfet_temperature: Celsius,
    /// Battery box temperature.
    pub box_temperature: Celsius,
    /// Battery (cell) temperature sensors.
    pub battery_temperatures: &'a [Celsius],
    /// State of charge in percent.
    pub soc_percent: u8,
}

/// Tuning the NW settings do not cover; defaults from `battery.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectionConfig {
    /// Delay of temperature, difference and low-capacity protections (no NW setting).
    pub temperature_delay: Duration,
    /// Hysteresis of temperature protections without a recovery setting, in K (5 K).
    pub temperature_hysteresis: i16,
    /// How long an over-current protection holds before it recovers by itself (60 s).
    pub over_current_hold: Duration,
    /// Over-current trips within `over_current_window` that latch it (5).
    pub over_current_latch_after: usize,
    /// The window over which over-current trips are counted (30 min).
    pub over_current_window: Duration,
    /// SOC points above the low capacity alarm at which it clears (5).
    pub low_capacity_hysteresis: u8,
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        ProtectionConfig {
            temperature_delay: Duration::from_secs(5),
            temperature_hysteresis: 5,
            over_current_hold: Duration::from_secs(60),
            over_current_latch_after: 5,
            over_current_window: Duration::from_secs(30 * 60),
            low_capacity_hysteresis: 5,
        }
    }
}

/// Whether a value trips by rising above or by falling below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    Above,
    Below,
}

/// One protection's thresholds, derived from the settings at each update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Limit {
    bound: Bound,
    trip: i32,
    recover: i32,
    delay: Duration,
}

impl Limit {
    fn above(trip: i32, recover: i32, delay: Duration) -> Limit {
        Limit {
            bound: Bound::Above,
            trip,
            recover: recover.min(trip - 1),
            delay,
        }
    }

    fn below(trip: i32, recover: i32, delay: Duration) -> Limit {
        Limit {
            bound: Bound::Below,
            trip,
            recover: recover.max(trip + 1),
            delay,
        }
    }

    fn beyond(&self, value: i32) -> bool {
        match self.bound {
            Bound::Above => value >= self.trip,
            Bound::Below => value <= self.trip,
        }
    }

    fn recovered(&self, value: i32) -> bool {
        match self.bound {
            Bound::Above => value <= self.recover,
            Bound::Below => value >= self.recover,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Normal,
    Pending { since: Instant },
    Tripped { since: Instant },
    Recovering { since: Instant },
    Latched,
}

#[derive(Clone, Debug)]
struct Guard {
    kind: ProtectionKind,
    phase: Phase,
    /// Over-current trips within the latch window.
    trips: VecDeque<Instant>,
}

impl Guard {
    fn is_active(&self) -> bool {
        matches!(
            self.phase,
            Phase::Tripped { .. } | Phase::Recovering { .. } | Phase::Latched
        )
    }
}

/// The protections of one pack.
#[derive(Clone, Debug)]
pub struct Protection {
    config: ProtectionConfig,
    guards: Vec<Guard>,
    events: VecDeque<ProtectionEvent>,
}

fn secs(seconds: u16) -> Duration {
    Duration::from_secs(u64::from(seconds))
}

fn spread(values: impl Iterator<Item = i32> + Clone) -> Option<i32> {
    Some(values.clone().max()? - values.min()?)
}

impl Protection {
    /// Protections in their normal state.
    pub fn new(config: ProtectionConfig) -> Protection {
        let guards = ProtectionKind::ALL
            .iter()
            .map(|&kind| Guard {
                kind,
                phase: Phase::Normal,
                trips: VecDeque::new(),
            })
            .collect();
        Protection {
            config,
            guards,
            events: VecDeque::new(),
        }
    }

    /// The thresholds of `kind` under `settings`.
    fn limit(&self, kind: ProtectionKind, s: &Settings) -> Limit {
        let cells = i32::from(s.cell_count.max(1));
        let temperature_delay = self.config.temperature_delay;
        let hysteresis = i32::from(self.config.temperature_hysteresis);
        let ov_band =
            i32::from(s.cell_over_voltage_protection) - i32::from(s.cell_over_voltage_recovery);
        let uv_band =
            i32::from(s.cell_under_voltage_recovery) - i32::from(s.cell_under_voltage_protection);
        // `recover`: the recovery setting, where the protection has one; without one, or
        // with one not below the trip, the fixed hysteresis.
        let over_temperature = |trip: u16, recover: Option<u16>| {
            let trip = i32::from(trip);
            let recover = match recover.map(i32::from) {
                Some(recover) if recover < trip => recover,
                _ => trip - hysteresis,
            };
            Limit::above(trip, recover, temperature_delay)
        };
        let low_temperature = |trip: i16, recover: i16| {
            let (trip, recover) = (i32::from(trip), i32::from(recover));
            let recover = if recover > trip {
                recover
            } else {
                trip + hysteresis
            };
            Limit::below(trip, recover, temperature_delay)
        };
        match kind {
            ProtectionKind::TotalOverVoltage => {
                let trip = i32::from(s.total_over_voltage_protection) * 10;
                Limit::above(
                    trip,
                    trip - ov_band * cells,
                    secs(s.cell_over_voltage_delay),
                )
            }
            ProtectionKind::TotalUnderVoltage => {
                let trip = i32::from(s.total_under_voltage_protection) * 10;
                Limit::below(
                    trip,
                    trip + uv_band * cells,
                    secs(s.cell_under_voltage_delay),
                )
            }
            ProtectionKind::CellOverVoltage => Limit::above(
                i32::from(s.cell_over_voltage_protection),
                i32::from(s.cell_over_voltage_recovery),
                secs(s.cell_over_voltage_delay),
            ),
            ProtectionKind::CellUnderVoltage => Limit::below(
                i32::from(s.cell_under_voltage_protection),
                i32::from(s.cell_under_voltage_recovery),
                secs(s.cell_under_voltage_delay),
            ),
            ProtectionKind::CellVoltageDifference => {
                let trip = i32::from(s.cell_voltage_difference_protection).max(1);
                Limit::above(trip, trip * 4 / 5, temperature_delay)
            }
            ProtectionKind::DischargeOverCurrent => {
                let trip = i32::from(s.discharge_over_current_protection) * 1000;
                Limit::above(trip, trip, secs(s.discharge_over_current_delay))
            }
            ProtectionKind::ChargeOverCurrent => {
                let trip = i32::from(s.charge_over_current_protection) * 1000;
                Limit::above(trip, trip, secs(s.charge_over_current_delay))
            }
            ProtectionKind::MosfetOverTemperature => over_temperature(
                s.mosfet_over_temperature_protection,
                Some(s.mosfet_over_temperature_recovery),
            ),
            ProtectionKind::BoxOverTemperature => over_temperature(
                s.box_over_temperature_protection,
                Some(s.box_over_temperature_recovery),
            ),
            ProtectionKind::TemperatureDifference => {
                let trip = i32::from(s.temperature_difference_protection);
                Limit::above(trip, trip * 4 / 5, temperature_delay)
            }
            ProtectionKind::ChargeHighTemperature => {
                over_temperature(s.charge_high_temperature_protection, None)
            }
            ProtectionKind::DischargeHighTemperature => {
                over_temperature(s.discharge_high_temperature_protection, None)
            }
            ProtectionKind::ChargeLowTemperature => low_temperature(
                s.charge_low_temperature_protection,
                s.charge_low_temperature_recovery,
            ),
            ProtectionKind::DischargeLowTemperature => low_temperature(
                s.discharge_low_temperature_protection,
                s.discharge_low_temperature_recovery,
            ),
            ProtectionKind::LowCapacity => {
                let trip = i32::from(s.low_capacity_alarm_percent);
                let recover = trip + i32::from(self.config.low_capacity_hysteresis);
                // An alarm of 0 % never trips: nothing is below it.
                Limit::below(
                    if trip == 0 { -1 } else { trip - 1 },
                    recover,
                    temperature_delay,
                )
            }
        }
    }

    /// The value `kind` watches, if the measurements have it.
    fn value(kind: ProtectionKind, m: &Measurements<'_>) -> Option<i32> {
        let cells = m.cells.iter().map(|c| c.0 as i32);
        let temperatures = m.battery_temperatures.iter().map(|t| i32::from(t.0));
        match kind {
            ProtectionKind::TotalOverVoltage | ProtectionKind::TotalUnderVoltage => {
                Some(m.total.0 as i32)
            }
            ProtectionKind::CellOverVoltage => cells.max(),
            ProtectionKind::CellUnderVoltage => cells.min(),
            ProtectionKind::CellVoltageDifference => spread(cells),
            ProtectionKind::DischargeOverCurrent => Some(-m.current.0),
            ProtectionKind::ChargeOverCurrent => Some(m.current.0),
            ProtectionKind::MosfetOverTemperature => Some(i32::from(m.mosfet_temperature.0)),
            ProtectionKind::BoxOverTemperature => Some(i32::from(m.box_temperature.0)),
            ProtectionKind::TemperatureDifference => spread(temperatures),
            ProtectionKind::ChargeHighTemperature | ProtectionKind::DischargeHighTemperature => {
                temperatures.max()
            }
            ProtectionKind::ChargeLowTemperature | ProtectionKind::DischargeLowTemperature => {
                temperatures.min()
            }
            ProtectionKind::LowCapacity => Some(i32::from(m.soc_percent)),
        }
    }

    /// Feeds one set of measurements taken at `now`.
    pub fn update(&mut self, now: Instant, settings: &Settings, measurements: &Measurements<'_>) {
        for index in 0..self.guards.len() {
            let kind = self.guards[index].kind;
            let limit = self.limit(kind, settings);
            if let Some(value) = Protection::value(kind, measurements) {
                self.step(index, now, limit, value);
            }
        }
    }

    fn step(&mut self, index: usize, now: Instant, limit: Limit, value: i32) {
        let config = self.config;
        let guard = &mut self.guards[index];
        let kind = guard.kind;
        let event = |transition, threshold| ProtectionEvent {
            at: now,
            kind,
            transition,
            value,
            threshold,
        };
        let (next, emitted) = match guard.phase {
            Phase::Normal if limit.beyond(value) && limit.delay.is_zero() => (
                Phase::Tripped { since: now },
                Some(event(Transition::Tripped, limit.trip)),
            ),
            Phase::Normal if limit.beyond(value) => (Phase::Pending { since: now }, None),
            Phase::Pending { .. } if !limit.beyond(value) => (Phase::Normal, None),
            Phase::Pending { since } if now - since >= limit.delay => (
                Phase::Tripped { since: now },
                Some(event(Transition::Tripped, limit.trip)),
            ),
            Phase::Tripped { since } if kind.is_over_current() => {
                if now - since >= config.over_current_hold {
                    (
                        Phase::Normal,
                        Some(event(Transition::Recovered, limit.trip)),
                    )
                } else {
                    (guard.phase, None)
                }
            }
            Phase::Tripped { .. } if limit.recovered(value) => {
                if limit.delay.is_zero() {
                    (
                        Phase::Normal,
                        Some(event(Transition::Recovered, limit.recover)),
                    )
                } else {
                    (Phase::Recovering { since: now }, None)
                }
            }
            Phase::Recovering { .. } if !limit.recovered(value) => {
                (Phase::Tripped { since: now }, None)
            }
            Phase::Recovering { since } if now - since >= limit.delay => (
                Phase::Normal,
                Some(event(Transition::Recovered, limit.recover)),
            ),
            phase => (phase, None),
        };
        guard.phase = next;
        let Some(emitted) = emitted else { return };
        self.events.push_back(emitted);
        if kind.is_over_current() && emitted.transition == Transition::Tripped {
            self.count_over_current_trip(index, now, value, limit.trip);
        }
    }

    fn count_over_current_trip(&mut self, index: usize, now: Instant, value: i32, threshold: i32) {
        let config = self.config;
        let guard = &mut self.guards[index];
        guard.trips.push_back(now);
        while guard
            .trips
            .front()
            .is_some_and(|&t| now - t > config.over_current_window)
        {
            guard.trips.pop_front();
        }
        if guard.trips.len() >= config.over_current_latch_after {
            guard.phase = Phase::Latched;
            let kind = guard.kind;
            self.events.push_back(ProtectionEvent {
                at: now,
                kind,
                transition: Transition::Latched,
                value,
                threshold,
            });
        }
    }

    /// Releases latched protections (an operator's alarm reset).
    pub fn reset_latches(&mut self, now: Instant) {
        for guard in &mut self.guards {
            guard.trips.clear();
            if guard.phase == Phase::Latched {
                guard.phase = Phase::Normal;
                self.events.push_back(ProtectionEvent {
                    at: now,
                    kind: guard.kind,
                    transition: Transition::LatchReset,
                    value: 0,
                    threshold: 0,
                });
            }
        }
    }

    /// The next transition.
    pub fn poll_event(&mut self) -> Option<ProtectionEvent> {
        self.events.pop_front()
    }

    /// The protections acting now (tripped, recovering or latched).
    pub fn active(&self) -> impl Iterator<Item = ProtectionKind> + '_ {
        self.guards.iter().filter(|g| g.is_active()).map(|g| g.kind)
    }

    /// Whether `kind` is acting now.
    pub fn is_active(&self, kind: ProtectionKind) -> bool {
        self.active().any(|k| k == kind)
    }

    /// Whether a protection is latched.
    pub fn is_latched(&self) -> bool {
        self.guards.iter().any(|g| g.phase == Phase::Latched)
    }

    /// The 0x8B warning bits of the active protections.
    pub fn warnings(&self) -> Warnings {
        self.active()
            .fold(Warnings::empty(), |bits, kind| bits | kind.warning())
    }

    /// Whether the charge MOSFET may be on: the user's switch (0xAB) and no protection against it.
    pub fn charge_allowed(&self, settings: &Settings) -> bool {
        settings.charge_mosfet_enabled && !self.active().any(ProtectionKind::blocks_charge)
    }

    /// Whether the discharge MOSFET may be on: the user's switch (0xAC) and no protection against it.
    pub fn discharge_allowed(&self, settings: &Settings) -> bool {
        settings.discharge_mosfet_enabled && !self.active().any(ProtectionKind::blocks_discharge)
    }

    /// The 0x8C status bits: live MOSFET state and balancer activity.
    pub fn status(&self, settings: &Settings, balancing: bool) -> Status {
        let mut status = Status::empty();
        status.set(Status::CHARGE_MOSFET_ON, self.charge_allowed(settings));
        status.set(
            Status::DISCHARGE_MOSFET_ON,
            self.discharge_allowed(settings),
        );
        status.set(Status::BALANCING, balancing);
        status
    }
}

#[cfg(test)]
mod tests;
