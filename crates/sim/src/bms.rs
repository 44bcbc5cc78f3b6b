//! A virtual BMS: a simulated pack run by bmslink-core's logic, answering the NW protocol
//! through the same codec as every other peer.
//!
//! Each [`step`](VirtualBms::step): the load profile asks for a current; the MOSFETs (the
//! protection's decision and the user's 0xAB/0xAC switches) let it through or not; the pack
//! moves; the BMS measures cells, temperatures and current as a real one does (whole mV and
//! degC), counts charge, and runs protection, balancing and limits on what it measured.
//!
//! Requests ([`handle_request`](VirtualBms::handle_request)) are answered from a register image
//! refreshed with the latest measurements: read all, read one, pair code with the 0xB2 password
//! check, write (validated per field by the table and across fields by the settings; refused
//! values are acknowledged but not applied, as the read-back shows), and activation. After
//! 0xB0 seconds without a request or current the BMS goes dormant and answers only activation.
//! [`upload`](VirtualBms::upload) builds an active-upload frame, as a 4G data box sends.

use std::collections::VecDeque;
use std::time::Duration;

use bmslink_core::balancing::{Balancer, BalancingConfig};
use bmslink_core::chemistry::Chemistry;
use bmslink_core::limits::{
    series_element_resistance, LimitCalculator, LimitInputs, LimitsConfig, PackLimits,
};
use bmslink_core::protection::{Measurements, Protection, ProtectionConfig, ProtectionEvent};
use bmslink_core::responder::{BmsResponder, Outcome};
use bmslink_core::settings::{Settings, SettingsError};
use bmslink_core::time::Instant;
use bmslink_proto::frame::{FrameBuilder, Header, MAX_FRAME_LEN};
use bmslink_proto::value::CellVoltages;
use bmslink_proto::{
    Celsius, Command, Current, CurrentEncoding, Identifier, Milliamps, Millivolts, RecordNumber,
    Source, Status, TerminalId, Transport, Warnings,
};

use crate::pack::{Pack, PackConfig};
use crate::profile::LoadProfile;

/// Software version the virtual BMS reports (0xB7, 15 bytes).
pub const SOFTWARE_VERSION: &[u8; 15] = b"bmslink-sim 0.1";

/// Everything a virtual BMS is built from.
#[derive(Clone, Debug)]
pub struct BmsConfig {
    /// The pack.
    pub pack: PackConfig,
    /// Settings; `None` for the chemistry preset of the pack.
    pub settings: Option<Settings>,
    /// What the load asks for.
    pub profile: LoadProfile,
    /// Terminal id in uploads and replies.
    pub terminal: TerminalId,
    /// Protection tuning.
    pub protection: ProtectionConfig,
    /// Balancing tuning.
    pub balancing: BalancingConfig,
    /// Limits tuning.
    pub limits: LimitsConfig,
}

impl BmsConfig {
    /// A BMS for `pack` with preset settings and a resting load.
    pub fn new(pack: PackConfig) -> BmsConfig {
        BmsConfig {
            pack,
            settings: None,
            profile: LoadProfile::Constant(0.0),
            terminal: TerminalId::default(),
            protection: ProtectionConfig::default(),
            balancing: BalancingConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

/// Something the virtual BMS did, for its owner's log.
#[derive(Clone, Debug, PartialEq)]
pub enum BmsEvent {
    /// A protection transition.
    Protection(ProtectionEvent),
    /// A write changed a setting.
    SettingChanged {
        /// The setting.
        id: Identifier,
    },
    /// A write was acknowledged but not applied.
    WriteRefused {
        /// The setting.
        id: Identifier,
        /// Why, in words.
        reason: String,
    },
    /// A pair code with a wrong password.
    PairRefused,
    /// No request for the sleep waiting time: dormant.
    Dormant,
    /// Woken by an activate frame.
    Activated,
    /// A restart command (0xBB): latches released.
    Restarted,
    /// A factory reset (0xBC): preset settings restored.
    FactoryReset,
}

/// A simulated BMS and its pack.
pub struct VirtualBms {
    pack: Pack,
    settings: Settings,
    protection: Protection,
    balancer: Balancer,
    limits: LimitCalculator,
    last_limits: PackLimits,
    responder: BmsResponder,
    profile: LoadProfile,
    terminal: TerminalId,
    now: Instant,
    last_request: Instant,
    soc: f64,
    throughput_ah: f64,
    working_s: f64,
    cells: Vec<Millivolts>,
    stale: bool,
    silent: bool,
    events: VecDeque<BmsEvent>,
    upload_sequence: u32,
}

impl VirtualBms {
    /// Builds the pack and its BMS; the settings must be valid.
    pub fn new(config: BmsConfig) -> Result<VirtualBms, SettingsError> {
        let pack = Pack::new(&config.pack);
        let settings = config.settings.clone().unwrap_or_else(|| {
            Settings::preset(
                config.pack.chemistry,
                config.pack.cells as u8,
                config.pack.capacity_ah.round() as u32,
            )
        });
        settings.validate()?;
        let mut bms = VirtualBms {
            protection: Protection::new(config.protection),
            balancer: Balancer::new(config.balancing),
            limits: LimitCalculator::new(config.limits),
            last_limits: PackLimits::default(),
            responder: BmsResponder::new(),
            profile: config.profile,
            terminal: config.terminal,
            now: Instant::ZERO,
            last_request: Instant::ZERO,
            soc: 0.0,
            throughput_ah: 0.0,
            working_s: f64::from(settings.working_time_min) * 60.0,
            cells: Vec::with_capacity(pack.cell_count()),
            stale: false,
            silent: false,
            events: VecDeque::new(),
            upload_sequence: 0,
            pack,
            settings,
        };
        bms.pack.cell_voltages(&mut bms.cells);
        bms.soc = bms.soc_from_rest();
        bms.refresh_registers();
        Ok(bms)
    }

    /// The BMS's first SOC: the OCV of its mean cell voltage (the pack starts at rest).
    fn soc_from_rest(&self) -> f64 {
        let mean_mv =
            self.cells.iter().map(|c| f64::from(c.0)).sum::<f64>() / self.cells.len().max(1) as f64;
        f64::from(self.pack.chemistry().ocv().soc((mean_mv / 1000.0) as f32))
    }

    /// Virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The simulated pack.
    pub fn pack(&self) -> &Pack {
        &self.pack
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The BMS's SOC estimate, 0..=1.
    pub fn soc(&self) -> f64 {
        self.soc
    }

    /// The limits computed at the last step.
    pub fn limits(&self) -> PackLimits {
        self.last_limits
    }

    /// Warning bits of the active protections.
    pub fn warnings(&self) -> Warnings {
        self.protection.warnings()
    }

    /// The 0x8C status bits.
    pub fn status(&self) -> Status {
        self.protection
            .status(&self.settings, self.balancer.is_active())
    }

    /// Whether the BMS is dormant.
    pub fn is_dormant(&self) -> bool {
        self.responder.is_dormant()
    }

    /// Replaces the load profile.
    pub fn set_profile(&mut self, profile: LoadProfile) {
        self.profile = profile;
    }

    /// Freezes (or unfreezes) the register image: replies keep reporting old values.
    pub fn set_stale(&mut self, stale: bool) {
        self.stale = stale;
    }

    /// Stops (or resumes) answering requests, as a BMS whose RS485 line broke; the pack and
    /// its logic keep running.
    pub fn set_silent(&mut self, silent: bool) {
        self.silent = silent;
    }

    /// Sets the ambient temperature, degC.
    pub fn set_ambient(&mut self, celsius: f64) {
        self.pack.ambient_c = celsius;
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<BmsEvent> {
        self.events.pop_front()
    }

    /// The current the MOSFETs let through for what the load asks.
    fn gated_current(&self, requested: f64) -> f64 {
        let allowed = if requested > 0.0 {
            self.protection.charge_allowed(&self.settings)
        } else {
            self.protection.discharge_allowed(&self.settings)
        };
        if allowed {
            requested
        } else {
            0.0
        }
    }

    /// Advances the pack and the BMS by `dt`.
    pub fn step(&mut self, dt: Duration) {
        let seconds = dt.as_secs_f64();
        if seconds <= 0.0 {
            return;
        }
        let requested = self
            .profile
            .current_at(self.now.since_origin().as_secs_f64());
        let current = self.gated_current(requested);
        let bleed_a = f64::from(self.balancer.bleed_current().0) / 1000.0;
        self.pack
            .step(seconds, current, self.balancer.bleeding(), bleed_a);
        self.now = self.now + dt;
        self.working_s += seconds;
        self.measure_and_decide(seconds);
        self.check_dormancy();
    }

    /// Runs `duration` in steps of `dt`.
    pub fn run_for(&mut self, duration: Duration, dt: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.step(dt.min(end - self.now));
        }
    }

    fn measure_and_decide(&mut self, seconds: f64) {
        self.pack.cell_voltages(&mut self.cells);
        let measured = Milliamps(libm::round(self.pack.current_a() * 1000.0) as i32);
        let capacity = self.pack.capacity_ah().max(1e-9);
        let amp_hours = f64::from(measured.0) / 1000.0 * seconds / 3600.0;
        self.soc = (self.soc + amp_hours / capacity).clamp(0.0, 1.0);
        self.throughput_ah += amp_hours.abs();
        let temperatures = self.pack.battery_temperatures();
        let measurements = Measurements {
            cells: &self.cells,
            total: Millivolts(self.cells.iter().map(|c| c.0).sum()),
            current: measured,
            mosfet_temperature: self.pack.mosfet_temperature(),
            box_temperature: self.pack.box_temperature(),
            battery_temperatures: &temperatures,
            soc_percent: self.soc_percent(),
        };
        self.protection
            .update(self.now, &self.settings, &measurements);
        while let Some(event) = self.protection.poll_event() {
            self.events.push_back(BmsEvent::Protection(event));
        }
        let hottest = temperatures.iter().copied().max().unwrap_or(Celsius(25));
        self.balancer
            .update(&self.settings, &self.cells, measured, hottest);
        let coldest_c = f32::from(temperatures.iter().copied().min().unwrap_or(Celsius(25)).0);
        let inputs = LimitInputs {
            cells: &self.cells,
            temperatures: &temperatures,
            soc: self.soc as f32,
            cell_resistance_ohm: series_element_resistance(
                self.pack.chemistry(),
                capacity as f32,
                coldest_c,
            ),
            charge_allowed: self.protection.charge_allowed(&self.settings),
            discharge_allowed: self.protection.discharge_allowed(&self.settings),
        };
        self.last_limits = self.limits.update(self.now, &self.settings, &inputs);
    }

    fn soc_percent(&self) -> u8 {
        libm::round(self.soc * 100.0).clamp(0.0, 100.0) as u8
    }

    /// Dormant after the sleep waiting time (0xB0) with neither requests nor current (above
    /// 0.5 A): a pack under load keeps its BMS awake.
    fn check_dormancy(&mut self) {
        if self.pack.current_a().abs() >= 0.5 {
            self.last_request = self.now;
        }
        let idle = Duration::from_secs(u64::from(self.settings.sleep_wait_s));
        if !idle.is_zero() && !self.responder.is_dormant() && self.now - self.last_request > idle {
            self.responder.set_dormant(true);
            self.events.push_back(BmsEvent::Dormant);
        }
    }

    /// Answers one NW request frame at the present virtual time.
    pub fn handle_request(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        if self.silent {
            return None;
        }
        self.last_request = self.now;
        if !self.stale {
            self.refresh_registers();
        }
        let (reply, outcome) = self.responder.handle_request(self.now, frame);
        self.apply(outcome);
        reply
    }

    fn apply(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Written { id } => self.apply_write(id),
            Outcome::WriteRefused { id, reason } => self.events.push_back(BmsEvent::WriteRefused {
                id,
                reason: reason.to_string(),
            }),
            Outcome::PairRefused => self.events.push_back(BmsEvent::PairRefused),
            Outcome::Activated => self.events.push_back(BmsEvent::Activated),
            _ => {}
        }
    }

    /// A write the responder accepted by the table: check it across fields, then act on it.
    fn apply_write(&mut self, id: Identifier) {
        let bytes = self
            .responder
            .get(id)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        match id {
            Identifier::Restart => {
                self.protection.reset_latches(self.now);
                self.events.push_back(BmsEvent::Restarted);
                return;
            }
            Identifier::FactoryReset => {
                let cells = self.settings.cell_count;
                let chemistry = self.settings.chemistry().unwrap_or(Chemistry::Lfp);
                self.settings =
                    Settings::preset(chemistry, cells, self.settings.nominal_capacity_ah);
                self.events.push_back(BmsEvent::FactoryReset);
                self.refresh_registers();
                return;
            }
            _ => {}
        }
        let mut changed = self.settings.clone();
        let result = changed.set_register(id, &bytes).and_then(|covered| {
            changed.validate()?;
            Ok(covered)
        });
        match result {
            Ok(true) => {
                self.settings = changed;
                self.events.push_back(BmsEvent::SettingChanged { id });
            }
            Ok(false) => {}
            Err(error) => {
                self.events.push_back(BmsEvent::WriteRefused {
                    id,
                    reason: error.to_string(),
                });
            }
        }
        // The register image shows what is in force, so a refused value reads back as the old one.
        self.refresh_registers();
    }

    /// Writes the latest measurements and the settings into the register image.
    fn refresh_registers(&mut self) {
        let soc_percent = self.soc_percent();
        let status = self.status();
        let r = &mut self.responder;
        let mut cells = [0u8; 1 + 3 * bmslink_proto::value::MAX_CELLS];
        if let Ok(len) = CellVoltages::encode(&self.cells, &mut cells) {
            r.set(Identifier::CellVoltages, &cells[..len]);
        }
        let temperatures = self.pack.battery_temperatures();
        let temperature = |c: Celsius| temperature_bytes(c);
        r.set(
            Identifier::MosfetTemperature,
            &temperature(self.pack.mosfet_temperature()),
        );
        r.set(
            Identifier::BoxTemperature,
            &temperature(self.pack.box_temperature()),
        );
        r.set(
            Identifier::BatteryTemperature,
            &temperature(temperatures[1]),
        );
        let total_cv = self.cells.iter().map(|c| c.0).sum::<u32>() / 10;
        r.set(
            Identifier::TotalVoltage,
            &(total_cv.min(0xFFFF) as u16).to_be_bytes(),
        );
        let current = Milliamps(libm::round(self.pack.current_a() * 1000.0) as i32);
        let raw =
            Current::from_milliamps(current, CurrentEncoding::SignMagnitude).map_or(0, |c| c.raw);
        r.set(Identifier::Current, &raw.to_be_bytes());
        r.set(Identifier::Soc, &[soc_percent]);
        r.set(Identifier::TemperatureSensorCount, &[2]);
        let capacity = self.pack.capacity_ah().max(1e-9);
        let cycles = (self.throughput_ah / (2.0 * capacity)) as u16;
        r.set(Identifier::CycleCount, &cycles.to_be_bytes());
        r.set(
            Identifier::TotalCycleCapacity,
            &(self.throughput_ah as u32).to_be_bytes(),
        );
        r.set(
            Identifier::CellCount,
            &(self.cells.len() as u16).to_be_bytes(),
        );
        r.set(
            Identifier::Warnings,
            &self.protection.warnings().bits().to_be_bytes(),
        );
        r.set(Identifier::Status, &status.bits().to_be_bytes());
        for (id, bytes) in self.settings.registers() {
            self.responder.set(id, &bytes);
        }
        let r = &mut self.responder;
        r.set(
            Identifier::WorkingTime,
            &((self.working_s / 60.0) as u32).to_be_bytes(),
        );
        r.set(Identifier::SoftwareVersion, SOFTWARE_VERSION);
        r.set(Identifier::ProtocolVersion, &[0x01]);
    }

    /// An active-upload frame with every identifier, as a data box sends it. The data box
    /// reads the BMS to upload, so an upload keeps the BMS awake like a request does.
    pub fn upload(&mut self) -> Vec<u8> {
        self.last_request = self.now;
        if !self.stale {
            self.refresh_registers();
        }
        self.upload_sequence = (self.upload_sequence + 1) & RecordNumber::MAX_SEQUENCE;
        let header = Header {
            terminal: self.terminal,
            command: Command::ReadAll,
            source: Source::Bms,
            transport: Transport::ActiveUpload,
            record: RecordNumber::new(0, self.upload_sequence),
        };
        let mut buffer = [0u8; MAX_FRAME_LEN];
        let Ok(mut builder) = FrameBuilder::new(&mut buffer, header) else {
            return Vec::new();
        };
        for id in bmslink_proto::TABLE.iter().map(|row| row.id) {
            if let Some(bytes) = self.responder.get(id) {
                if builder.push_field(id, bytes).is_err() {
                    return Vec::new();
                }
            }
        }
        builder.finish().map(<[u8]>::to_vec).unwrap_or_default()
    }
}

fn temperature_bytes(celsius: Celsius) -> [u8; 2] {
    let clamped = Celsius(celsius.0.clamp(-40, 100));
    bmslink_proto::Temperature::from_celsius(clamped)
        .map_or(0, |t| t.raw)
        .to_be_bytes()
}

#[cfg(test)]
mod tests;
