//! Alarms: which alarms each terminal's uploads raise and clear.
//!
//! [`AlarmEngine`] is the pure part (no I/O, no clock: every time is an input). It watches
//! every stored [`TelemetryRow`] and a periodic tick, and says which alarms to raise and to
//! clear, as [`AlarmEvent`]s. [`run_alarms`] is the thin task around it: it feeds the engine
//! the rows the listener stored and a tick, and applies the events through
//! [`Store::raise_alarm`] / [`Store::clear_alarm`], logging each.
//!
//! The rules, with their thresholds in [`AlarmRules`]:
//!
//! | alarm | raised when | cleared when |
//! |---|---|---|
//! | [`AlarmKind::Bms`] (one per 0x8B bit) | the bit is set in a row | a row has it clear |
//! | [`AlarmKind::CellSpread`] | highest - lowest cell > `cell_spread_mv` | spread <= `cell_spread_clear_mv` |
//! | [`AlarmKind::TemperatureRise`] | rise rate over `temperature_window` > `temperature_rise_per_min` | rate <= `temperature_rise_clear_per_min` |
//! | [`AlarmKind::SocLow`] | SOC < `soc_low_percent` for `soc_low_for` | SOC >= `soc_clear_percent` |
//! | [`AlarmKind::Offline`] | a tick finds no row for longer than `offline_after` | a row arrives |
//!
//! The gap between the raise and the clear thresholds is the hysteresis: a value hovering at a
//! threshold does not make the alarm flap. The SOC rule also waits `soc_low_for`, because real
//! BMSes report SOC 0 for about 16 s after power-up (`nw.md`). BMS warning bits are taken as
//! they are: the BMS's own protection delays already debounce them.
//!
//! The temperature rise is measured on the hottest battery sensor (box 0x81, battery 0x82;
//! the MOSFET sensor 0x80 only when neither is reported): the newest reading minus the oldest
//! kept within the window, divided by the time between them, once that time is at least half
//! the window (a 1 degC sensor step within seconds is not a rise of several degC per minute).
//! At most [`TEMPERATURE_SAMPLES`] readings are kept per terminal, so memory stays flat with
//! thousands of terminals uploading every second.
//!
//! Calling order: [`AlarmEngine::new`]; at start, [`AlarmEngine::track`] the known terminals
//! and [`AlarmEngine::assume_active`] the alarms the store holds active; then any sequence of
//! [`AlarmEngine::handle_row`] and [`AlarmEngine::handle_tick`], each followed by
//! [`AlarmEngine::poll_event`] until it returns `None`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use bmslink_proto::Warnings;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::live::{AlarmChange, LiveEvent, LiveHub};
use crate::model::{AlarmKind, TelemetryRow, Terminal, Timestamp};
use crate::store::{AlarmFilter, Store};

/// Temperature readings kept per terminal for the rise rate.
pub const TEMPERATURE_SAMPLES: u32 = 32;

/// Events that wait for the store before the oldest are dropped (the store is down).
pub const PENDING_LIMIT: usize = 10_000;

/// The thresholds of the alarm rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AlarmRules {
    /// Cell voltage spread (highest - lowest cell) above which [`AlarmKind::CellSpread`] is
    /// raised, mV. Default 300 mV.
    pub cell_spread_mv: u16,
    /// Spread at or below which it clears, mV. Default 250 mV.
    pub cell_spread_clear_mv: u16,
    /// Temperature rise above which [`AlarmKind::TemperatureRise`] is raised, degC per
    /// minute. Default 2 degC/min.
    pub temperature_rise_per_min: f64,
    /// Rise at or below which it clears, degC per minute. Default 1 degC/min.
    pub temperature_rise_clear_per_min: f64,
    /// The window the rise is measured over. Default 5 min.
    pub temperature_window: Duration,
    /// SOC below which [`AlarmKind::SocLow`] is raised, %. Default 10 %.
    pub soc_low_percent: u8,
    /// SOC at or above which it clears, %. Default 15 %.
    pub soc_clear_percent: u8,
    /// How long the SOC must stay low before the alarm. Default 30 s.
    pub soc_low_for: Duration,
    /// Time without an upload after which [`AlarmKind::Offline`] is raised. Default 5 min.
    pub offline_after: Duration,
}

impl Default for AlarmRules {
    fn default() -> Self {
        AlarmRules {
            cell_spread_mv: 300,
            cell_spread_clear_mv: 250,
            temperature_rise_per_min: 2.0,
            temperature_rise_clear_per_min: 1.0,
            temperature_window: Duration::from_secs(5 * 60),
            soc_low_percent: 10,
            soc_clear_percent: 15,
            soc_low_for: Duration::from_secs(30),
            offline_after: Duration::from_secs(5 * 60),
        }
    }
}

/// Rules that cannot work: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmRulesError {
    /// The field of [`AlarmRules`].
    pub field: &'static str,
    /// Why, in words.
    pub reason: String,
}

impl fmt::Display for AlarmRulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "alarm rule {}: {}", self.field, self.reason)
    }
}

impl std::error::Error for AlarmRulesError {}

fn rule_error(field: &'static str, reason: String) -> Result<(), AlarmRulesError> {
    Err(AlarmRulesError { field, reason })
}

impl AlarmRules {
    /// Checks that every clear threshold lies on the safe side of its raise threshold and that
    /// the durations are usable.
    pub fn validate(&self) -> Result<(), AlarmRulesError> {
        if self.cell_spread_clear_mv >= self.cell_spread_mv {
            return rule_error(
                "cell_spread_clear_mv",
                format!(
                    "{} mV must be below cell_spread_mv ({} mV)",
                    self.cell_spread_clear_mv, self.cell_spread_mv
                ),
            );
        }
        let rise = self.temperature_rise_per_min;
        let rise_clear = self.temperature_rise_clear_per_min;
        if !(rise.is_finite() && rise > 0.0) {
            return rule_error(
                "temperature_rise_per_min",
                format!("{rise} must be above 0"),
            );
        }
        if !(rise_clear.is_finite() && (0.0..rise).contains(&rise_clear)) {
            return rule_error(
                "temperature_rise_clear_per_min",
                format!("{rise_clear} must be at least 0 and below temperature_rise_per_min"),
            );
        }
        if self.temperature_window < Duration::from_secs(60) {
            return rule_error(
                "temperature_window",
                format!("{} is shorter than 1 minute", show(self.temperature_window)),
            );
        }
        if self.soc_clear_percent <= self.soc_low_percent || self.soc_clear_percent > 100 {
            return rule_error(
                "soc_clear_percent",
                format!(
                    "{} % must be above soc_low_percent ({} %) and at most 100 %",
                    self.soc_clear_percent, self.soc_low_percent
                ),
            );
        }
        if self.offline_after.is_zero() {
            return rule_error("offline_after", "must be above 0".to_string());
        }
        Ok(())
    }
}

/// What the engine decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlarmEvent {
    /// Raise an alarm (RaiseAlarm).
    Raise {
        /// The terminal.
        terminal: Terminal,
        /// What.
        kind: AlarmKind,
        /// The value that raised it, in words ("cell spread 312 mV > 300 mV").
        detail: String,
        /// When (the row's time, or the tick's).
        at: Timestamp,
    },
    /// Clear an active alarm (ClearAlarm).
    Clear {
        /// The terminal.
        terminal: Terminal,
        /// What.
        kind: AlarmKind,
        /// When.
        at: Timestamp,
    },
}

/// The rising temperature of one terminal: readings at least `window / TEMPERATURE_SAMPLES`
/// apart, none older than the window.
#[derive(Debug, Default)]
struct TemperatureHistory {
    samples: VecDeque<(Timestamp, i16)>,
}

/// A measured rise: rate and the readings it was measured between.
struct Rise {
    per_min: f64,
    from: i16,
    to: i16,
    over: Duration,
}

impl TemperatureHistory {
    /// Keeps `celsius` at `at` if the last kept reading is old enough; forgets readings that
    /// left the window.
    fn record(&mut self, at: Timestamp, celsius: i16, window: Duration) {
        let start = at.minus(window);
        while self.samples.front().is_some_and(|&(t, _)| t < start) {
            self.samples.pop_front();
        }
        let spacing = window / TEMPERATURE_SAMPLES;
        let spaced = self
            .samples
            .back()
            .is_none_or(|&(last, _)| at.since(last) >= spacing);
        if spaced {
            self.samples.push_back((at, celsius));
        }
    }

    /// The rise from the oldest kept reading to `celsius` at `at`, once they are at least half
    /// the window apart.
    fn rise(&self, at: Timestamp, celsius: i16, window: Duration) -> Option<Rise> {
        let &(oldest_at, oldest) = self.samples.front()?;
        let over = at.since(oldest_at);
        if over < window / 2 || over.is_zero() {
            return None;
        }
        let minutes = over.as_secs_f64() / 60.0;
        Some(Rise {
            per_min: f64::from(celsius - oldest) / minutes,
            from: oldest,
            to: celsius,
            over,
        })
    }
}

/// What the engine remembers of one terminal.
#[derive(Debug)]
struct TerminalState {
    last_seen: Timestamp,
    active: HashSet<AlarmKind>,
    soc_low_since: Option<Timestamp>,
    temperatures: TemperatureHistory,
}

impl TerminalState {
    fn new(last_seen: Timestamp) -> TerminalState {
        TerminalState {
            last_seen,
            active: HashSet::new(),
            soc_low_since: None,
            temperatures: TemperatureHistory::default(),
        }
    }
}

/// The alarm rules over every terminal's rows, in virtual time. See the module docs for the
/// rules and the calling order.
#[derive(Debug)]
pub struct AlarmEngine {
    rules: AlarmRules,
    terminals: HashMap<Terminal, TerminalState>,
    events: VecDeque<AlarmEvent>,
}

impl AlarmEngine {
    /// An engine with checked rules, knowing no terminal yet.
    pub fn new(rules: AlarmRules) -> Result<AlarmEngine, AlarmRulesError> {
        rules.validate()?;
        Ok(AlarmEngine {
            rules,
            terminals: HashMap::new(),
            events: VecDeque::new(),
        })
    }

    /// The rules.
    pub fn rules(&self) -> &AlarmRules {
        &self.rules
    }

    /// Watches `terminal`, last seen at `last_seen`, before any row of it arrives (at start,
    /// for the terminals the store knows, so one that never comes back is reported offline).
    pub fn track(&mut self, terminal: Terminal, last_seen: Timestamp) {
        self.terminals
            .entry(terminal)
            .or_insert_with(|| TerminalState::new(last_seen));
    }

    /// Takes `kind` as active for `terminal` (at start, for the alarms the store holds
    /// active), so that the engine clears it when its cause is gone.
    pub fn assume_active(&mut self, terminal: Terminal, kind: AlarmKind, last_seen: Timestamp) {
        self.track(terminal, last_seen);
        if let Some(state) = self.terminals.get_mut(&terminal) {
            state.active.insert(kind);
        }
    }

    /// The alarms the engine holds active for `terminal`.
    pub fn active(&self, terminal: Terminal) -> impl Iterator<Item = &AlarmKind> {
        self.terminals
            .get(&terminal)
            .into_iter()
            .flat_map(|state| state.active.iter())
    }

    /// The next decision, oldest first.
    pub fn poll_event(&mut self) -> Option<AlarmEvent> {
        self.events.pop_front()
    }

    /// A stored row: evaluates every row rule for its terminal at `row.at`.
    pub fn handle_row(&mut self, row: &TelemetryRow) {
        let rules = self.rules;
        let state = self
            .terminals
            .entry(row.terminal)
            .or_insert_with(|| TerminalState::new(row.at));
        let mut decisions = Vec::new();
        if row.at > state.last_seen {
            state.last_seen = row.at;
        }
        decisions.push((AlarmKind::Offline, None));
        decisions.extend(bms_decisions(state, row.warnings));
        decisions.extend(spread_decision(&rules, &row.cells_mv));
        decisions.extend(temperature_decision(&rules, state, row));
        decisions.extend(soc_decision(&rules, state, row));
        for (kind, raise) in decisions {
            let event = transition(state, row.terminal, kind, raise, row.at);
            self.events.extend(event);
        }
    }

    /// Time passed to `now`: raises [`AlarmKind::Offline`] for every terminal silent for
    /// longer than the rules allow.
    pub fn handle_tick(&mut self, now: Timestamp) {
        let limit = self.rules.offline_after;
        for (&terminal, state) in &mut self.terminals {
            let silent = now.since(state.last_seen);
            if silent <= limit {
                continue;
            }
            let detail = format!("no upload for {} > {}", show(silent), show(limit));
            let event = transition(state, terminal, AlarmKind::Offline, Some(detail), now);
            self.events.extend(event);
        }
    }
}

/// One rule's verdict: raise `kind` with this detail (`Some`), or clear it (`None`).
type Decision = (AlarmKind, Option<String>);

/// The event that moves `kind` to the verdict, if it is not there already.
fn transition(
    state: &mut TerminalState,
    terminal: Terminal,
    kind: AlarmKind,
    raise: Option<String>,
    at: Timestamp,
) -> Option<AlarmEvent> {
    match raise {
        Some(detail) if !state.active.contains(&kind) => {
            state.active.insert(kind.clone());
            Some(AlarmEvent::Raise {
                terminal,
                kind,
                detail,
                at,
            })
        }
        None if state.active.remove(&kind) => Some(AlarmEvent::Clear { terminal, kind, at }),
        _ => None,
    }
}

/// The name of a 0x8B bit: the flag's name in snake case ("cell_over_voltage"), or
/// "reserved_bit_14" for the reserved bits.
pub fn warning_name(bit: u8) -> String {
    let flag = Warnings::from_bits_retain(1u16.checked_shl(u32::from(bit)).unwrap_or(0));
    bmslink_proto::value::flag_names(flag)
        .next()
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| format!("reserved_bit_{bit}"))
}

/// A verdict for every warning bit set, and a clear for every BMS alarm whose bit is not.
fn bms_decisions(state: &TerminalState, warnings: u16) -> Vec<Decision> {
    let mut decisions = Vec::new();
    let mut set = HashSet::new();
    for bit in 0..16u8 {
        if warnings & (1 << bit) != 0 {
            let name = warning_name(bit);
            let detail = format!("BMS warning {name} (0x8B bit {bit})");
            set.insert(name.clone());
            decisions.push((AlarmKind::Bms(name), Some(detail)));
        }
    }
    for kind in &state.active {
        if let AlarmKind::Bms(name) = kind {
            if !set.contains(name) {
                decisions.push((kind.clone(), None));
            }
        }
    }
    decisions
}

/// Cell spread with hysteresis; no verdict without cells.
fn spread_decision(rules: &AlarmRules, cells: &[u16]) -> Option<Decision> {
    let (low, high) = (cells.iter().min()?, cells.iter().max()?);
    let spread = high - low;
    if spread > rules.cell_spread_mv {
        let cell = |v: &u16| cells.iter().position(|c| c == v).map_or(0, |i| i + 1);
        let detail = format!(
            "cell spread {spread} mV > {} mV (cell {} {high} mV, cell {} {low} mV)",
            rules.cell_spread_mv,
            cell(high),
            cell(low)
        );
        return Some((AlarmKind::CellSpread, Some(detail)));
    }
    // Within the hysteresis band the alarm stays as it is.
    (spread <= rules.cell_spread_clear_mv).then_some((AlarmKind::CellSpread, None))
}

/// The hottest battery sensor of a row (the MOSFET's if no battery sensor is reported).
fn battery_temperature(row: &TelemetryRow) -> Option<i16> {
    let [mosfet, box_sensor, battery] = row.temperatures;
    box_sensor.into_iter().chain(battery).max().or(mosfet)
}

/// Temperature rise with hysteresis; no verdict until the window is half covered.
fn temperature_decision(
    rules: &AlarmRules,
    state: &mut TerminalState,
    row: &TelemetryRow,
) -> Option<Decision> {
    let celsius = battery_temperature(row)?;
    let window = rules.temperature_window;
    state.temperatures.record(row.at, celsius, window);
    let rise = state.temperatures.rise(row.at, celsius, window)?;
    if rise.per_min > rules.temperature_rise_per_min {
        let detail = format!(
            "temperature rise {:.1} degC/min > {:.1} degC/min ({} -> {} degC in {})",
            rise.per_min,
            rules.temperature_rise_per_min,
            rise.from,
            rise.to,
            show(rise.over)
        );
        return Some((AlarmKind::TemperatureRise, Some(detail)));
    }
    // Within the hysteresis band the alarm stays as it is.
    let clears = rise.per_min <= rules.temperature_rise_clear_per_min;
    clears.then_some((AlarmKind::TemperatureRise, None))
}

/// SOC low, after `soc_low_for`, with hysteresis.
fn soc_decision(
    rules: &AlarmRules,
    state: &mut TerminalState,
    row: &TelemetryRow,
) -> Option<Decision> {
    if row.soc >= rules.soc_low_percent {
        state.soc_low_since = None;
        let clears = row.soc >= rules.soc_clear_percent;
        return clears.then_some((AlarmKind::SocLow, None));
    }
    let since = *state.soc_low_since.get_or_insert(row.at);
    if row.at.since(since) < rules.soc_low_for {
        return None;
    }
    let detail = format!("SOC {} % < {} %", row.soc, rules.soc_low_percent);
    Some((AlarmKind::SocLow, Some(detail)))
}

/// A duration in words, to the second ("5m 12s").
fn show(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

/// An alarm kind in words, for logs ("bms cell_over_voltage", "cell_spread").
pub fn kind_name(kind: &AlarmKind) -> String {
    match kind {
        AlarmKind::Bms(name) => format!("bms {name}"),
        AlarmKind::Offline => "offline".to_string(),
        AlarmKind::CellSpread => "cell_spread".to_string(),
        AlarmKind::TemperatureRise => "temperature_rise".to_string(),
        AlarmKind::SocLow => "soc_low".to_string(),
    }
}

/// Runs the alarm rules over the rows the listener stored, until `rows` closes: every row and
/// every `tick` (the offline check, on the system clock) go through an [`AlarmEngine`], and
/// each decision is applied with [`Store::raise_alarm`] / [`Store::clear_alarm`] and logged.
///
/// At start the engine learns the known terminals (so one that never uploads again goes
/// offline) and the alarms the store holds active (so they clear when their cause is gone).
/// While the store is unavailable, decisions wait in order (at most [`PENDING_LIMIT`]; the
/// oldest are dropped with a warning) and are retried at the next row or tick.
///
/// Every row and every alarm change that took effect is published on `hub` for open pages.
pub async fn run_alarms<S: Store>(
    store: S,
    mut rows: mpsc::Receiver<TelemetryRow>,
    rules: AlarmRules,
    tick: Duration,
    hub: LiveHub,
) -> Result<(), AlarmRulesError> {
    let mut engine = AlarmEngine::new(rules)?;
    seed(&store, &mut engine).await;
    let mut pending = VecDeque::new();
    let mut ticker = tokio::time::interval(tick.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // A stored row: its rules at its own time.
            row = rows.recv() => match row {
                Some(row) => {
                    hub.publish(LiveEvent::Upload { terminal: row.terminal, at: row.at });
                    engine.handle_row(&row);
                }
                None => break,
            },
            // The offline check; also retries what the store refused.
            _ = ticker.tick() => engine.handle_tick(Timestamp::now()),
        }
        queue(&mut engine, &mut pending);
        apply(&store, &mut pending, &hub).await;
    }
    apply(&store, &mut pending, &hub).await;
    Ok(())
}

/// Tells the engine the terminals and the active alarms the store knows.
async fn seed<S: Store>(store: &S, engine: &mut AlarmEngine) {
    let fleet = match store.fleet().await {
        Ok(fleet) => fleet,
        Err(error) => {
            warn!("alarms: cannot read the terminals ({error}); offline checks start with the next upload");
            Vec::new()
        }
    };
    let mut last_seen = HashMap::new();
    for entry in fleet {
        last_seen.insert(entry.record.terminal, entry.record.last_seen);
        engine.track(entry.record.terminal, entry.record.last_seen);
    }
    let filter = AlarmFilter {
        active_only: true,
        limit: u32::MAX,
        ..AlarmFilter::default()
    };
    match store.alarms(filter).await {
        Ok(alarms) => {
            for alarm in alarms {
                let seen = last_seen.get(&alarm.terminal).copied();
                engine.assume_active(alarm.terminal, alarm.kind, seen.unwrap_or(alarm.started));
            }
        }
        Err(error) => {
            warn!("alarms: cannot read the active alarms ({error}); they clear only by hand")
        }
    }
}

/// Moves the engine's decisions to the pending queue, dropping the oldest beyond the limit.
fn queue(engine: &mut AlarmEngine, pending: &mut VecDeque<AlarmEvent>) {
    while let Some(event) = engine.poll_event() {
        if pending.len() >= PENDING_LIMIT {
            if let Some(dropped) = pending.pop_front() {
                warn!("alarms: the store is unavailable and {PENDING_LIMIT} decisions wait; dropped {dropped:?}");
            }
        }
        pending.push_back(event);
    }
}

/// Applies pending decisions in order; stops at the first the store refuses (kept to retry).
/// Each change that took effect is published on `hub`.
async fn apply<S: Store>(store: &S, pending: &mut VecDeque<AlarmEvent>, hub: &LiveHub) {
    while let Some(event) = pending.front() {
        let result = match event.clone() {
            AlarmEvent::Raise {
                terminal,
                kind,
                detail,
                at,
            } => store
                .raise_alarm(terminal, kind.clone(), detail.clone(), at)
                .await
                .map(|(id, new)| {
                    log_raise(terminal, &kind, &detail, id, new);
                    if new {
                        hub.publish(LiveEvent::Alarm {
                            terminal,
                            id: Some(id),
                            kind,
                            change: AlarmChange::Raised,
                            at,
                        });
                    }
                }),
            AlarmEvent::Clear { terminal, kind, at } => store
                .clear_alarm(terminal, kind.clone(), at)
                .await
                .map(|was_active| {
                    log_clear(terminal, &kind, was_active);
                    if was_active {
                        hub.publish(LiveEvent::Alarm {
                            terminal,
                            id: None,
                            kind,
                            change: AlarmChange::Cleared,
                            at,
                        });
                    }
                }),
        };
        if let Err(error) = result {
            warn!(
                "alarms: the store refused an alarm change ({error}); {} wait for a retry",
                pending.len()
            );
            return;
        }
        pending.pop_front();
    }
}

fn log_raise(terminal: Terminal, kind: &AlarmKind, detail: &str, id: i64, new: bool) {
    if new {
        info!(
            "alarm {id} raised: terminal {terminal} {}: {detail}",
            kind_name(kind)
        );
    }
}

fn log_clear(terminal: Terminal, kind: &AlarmKind, was_active: bool) {
    if was_active {
        info!("alarm cleared: terminal {terminal} {}", kind_name(kind));
    }
}

#[cfg(test)]
mod tests;
