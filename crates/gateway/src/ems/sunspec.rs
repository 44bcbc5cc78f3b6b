//! The SunSpec register image at 40000: pure, no I/O. [`sunspec_image`] turns a
//! [`SiteSnapshot`] into the registers an EMS reads, in this order (`shared/protocols/sunspec.md`):
//!
//! ```text
//! 40000  "SunS" (0x5375 0x6E53)
//! 40002  model 1    common            L = 66
//! 40070  model 802  battery (system)  L = 62
//! 40134  model 803  lithium-ion bank  L = 26 + 32 x racks
//!  ...   model 804  string, one per rack       L = 46 + 16 (one module per string)
//!  ...   model 805  module, one per rack       L = 42 + 4 x cells
//!  end   0xFFFF 0x0000
//! ```
//!
//! A rack is one string of one module (pack), so its 805 carries every cell voltage. Points the
//! gateway cannot know carry the SunSpec "not implemented" value ([`NI_U16`], [`NI_I16`],
//! [`NI_U32`], zeros for strings). Scale factors are fixed per point kind (voltages 0.1 V, cell
//! voltages 1 mV, currents 0.1 A, SoC/SoH 0.1 %, temperatures 1 degC) except the power and
//! energy ones, which are the smallest power of ten that fits the site's nameplate.
//!
//! A rack without a reading yet has an 805 of zero cells; the map grows once its first reading
//! arrives (clients re-scan on a length change, as after any reconfiguration).

use bmslink_proto::{Identifier, Millivolts, Status, Warnings};

use crate::pcs::PcsCommand;
use crate::rack::PackSnapshot;
use crate::site::{RackStatus, SiteSnapshot};

/// Where the map starts (the "SunS" marker).
pub const BASE: u16 = 40_000;
/// "SunS".
pub const MARKER: [u16; 2] = [0x5375, 0x6E53];
/// The end model id.
pub const END_ID: u16 = 0xFFFF;

/// Not implemented: uint16, enum16, bitfield16.
pub const NI_U16: u16 = 0xFFFF;
/// Not implemented: int16 and sunssf (as the register's bits).
pub const NI_I16: u16 = 0x8000;
/// Not implemented: uint32, bitfield32.
pub const NI_U32: u32 = 0xFFFF_FFFF;
/// The value of pad registers.
const PAD: u16 = 0x8000;

/// Model lengths (L, not counting ID and L).
pub mod len {
    /// Model 1 (with the DA and pad points).
    pub const COMMON: u16 = 66;
    /// Model 802.
    pub const BATTERY: u16 = 62;
    /// Model 803 without its strings.
    pub const BANK: u16 = 26;
    /// Model 803, one string.
    pub const BANK_STRING: u16 = 32;
    /// Model 804 without its modules.
    pub const STRING: u16 = 46;
    /// Model 804, one module.
    pub const STRING_MODULE: u16 = 16;
    /// Model 805 without its cells.
    pub const MODULE: u16 = 42;
    /// Model 805, one cell.
    pub const MODULE_CELL: u16 = 4;
}

/// Where model 802 starts (fixed: model 1 has a fixed length).
pub const BATTERY_MODEL: u16 = BASE + 2 + 2 + len::COMMON;

/// The writable points of model 802, at fixed addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// CtrlHb (offset 19): the EMS's heartbeat.
    ControllerHeartbeat,
    /// AlmRst (offset 20): write 1 to reset the latched alarms.
    AlarmReset,
    /// SetOp (offset 50): 1 connect, 2 disconnect.
    SetOperation,
    /// SetInvState (offset 51): 1 stopped, 2 standby, 3 started.
    SetInverterState,
}

impl Control {
    /// Every control, in address order.
    pub const ALL: [Control; 4] = [
        Control::ControllerHeartbeat,
        Control::AlarmReset,
        Control::SetOperation,
        Control::SetInverterState,
    ];

    /// The holding register.
    pub const fn address(self) -> u16 {
        BATTERY_MODEL
            + match self {
                Control::ControllerHeartbeat => 19,
                Control::AlarmReset => 20,
                Control::SetOperation => 50,
                Control::SetInverterState => 51,
            }
    }

    /// The control at `address`, if any.
    pub fn at(address: u16) -> Option<Control> {
        Control::ALL.into_iter().find(|c| c.address() == address)
    }

    /// The SunSpec point name.
    pub const fn name(self) -> &'static str {
        match self {
            Control::ControllerHeartbeat => "CtrlHb",
            Control::AlarmReset => "AlmRst",
            Control::SetOperation => "SetOp",
            Control::SetInverterState => "SetInvState",
        }
    }
}

/// What model 1 says about the device, and the server's view of control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nameplate {
    /// Serial number (SN), up to 32 ASCII characters.
    pub serial: String,
    /// Modbus unit id (DA).
    pub unit_id: u8,
    /// Whether the EMS may write (802 LocRemCtl: REMOTE, else LOCAL).
    pub remote_control: bool,
}

/// Fixed scale factors (powers of ten).
mod sf {
    pub const SOC: i16 = -1;
    pub const SOH: i16 = -1;
    pub const DOD: i16 = -1;
    pub const VOLTS: i16 = -1;
    pub const CELL_VOLTS: i16 = -3;
    pub const AMPS: i16 = -1;
    pub const AMPS_MAX: i16 = -1;
    pub const CELSIUS: i16 = 0;
    pub const AMP_HOURS: i16 = 0;
}

/// The whole image, register 40000 first.
pub fn sunspec_image(
    snapshot: &SiteSnapshot,
    nameplate: &Nameplate,
    controller_heartbeat: u16,
) -> Vec<u16> {
    let mut image = Image::default();
    image.regs.extend(MARKER);
    image.model(1, |m| common(m, nameplate));
    image.model(802, |m| {
        battery(m, snapshot, nameplate, controller_heartbeat)
    });
    image.model(803, |m| bank(m, snapshot));
    for (index, rack) in snapshot.racks.iter().enumerate() {
        let used = snapshot.view.used.contains(&index);
        image.model(804, |m| string(m, index, rack, used));
    }
    for (index, rack) in snapshot.racks.iter().enumerate() {
        image.model(805, |m| module(m, index, rack));
    }
    image.regs.extend([END_ID, 0]);
    image.regs
}

/// A register image under construction.
#[derive(Default)]
struct Image {
    regs: Vec<u16>,
}

impl Image {
    /// A model: its id, its length (filled in after `body`), its points.
    fn model(&mut self, id: u16, body: impl FnOnce(&mut Image)) {
        let start = self.regs.len();
        self.regs.extend([id, 0]);
        body(self);
        let length = self.regs.len() - start - 2;
        self.regs[start + 1] = u16::try_from(length).unwrap_or(u16::MAX);
    }

    fn u16(&mut self, value: u16) {
        self.regs.push(value);
    }

    fn u32(&mut self, value: u32) {
        self.regs.extend([(value >> 16) as u16, value as u16]);
    }

    fn sf(&mut self, power: i16) {
        self.regs.push(power as u16);
    }

    fn pads(&mut self, count: usize) {
        self.regs.extend(std::iter::repeat_n(PAD, count));
    }

    /// An unsigned point in units of 10^`power`.
    fn uint(&mut self, value: Option<f64>, power: i16) {
        self.regs.push(uint(value, power));
    }

    /// A signed point in units of 10^`power`.
    fn int(&mut self, value: Option<f64>, power: i16) {
        self.regs.push(int(value, power));
    }

    /// A string point of `regs` registers, NUL padded (cut at `2 x regs` bytes).
    fn text(&mut self, text: &str, regs: usize) {
        let mut bytes = text.as_bytes().to_vec();
        bytes.resize(regs * 2, 0);
        self.regs.extend(
            bytes
                .chunks(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]])),
        );
    }
}

/// `value` in units of 10^`power`, rounded, in 0..=0xFFFE; `None` is not implemented.
pub fn uint(value: Option<f64>, power: i16) -> u16 {
    match value {
        Some(v) if v.is_finite() => (v / 10f64.powi(i32::from(power)))
            .round()
            .clamp(0.0, 65_534.0) as u16,
        _ => NI_U16,
    }
}

/// `value` in units of 10^`power`, rounded, in -32767..=32767; `None` is not implemented.
pub fn int(value: Option<f64>, power: i16) -> u16 {
    match value {
        Some(v) if v.is_finite() => (v / 10f64.powi(i32::from(power)))
            .round()
            .clamp(-32_767.0, 32_767.0) as i16 as u16,
        _ => NI_I16,
    }
}

/// The smallest power of ten (0..=9) at which `magnitude` fits under `limit`.
pub fn fitting_power(magnitude: f64, limit: f64) -> i16 {
    (0..9)
        .find(|&power| magnitude.abs() / 10f64.powi(i32::from(power)) <= limit)
        .unwrap_or(9)
}

fn volts(voltage: Millivolts) -> f64 {
    f64::from(voltage.0) / 1000.0
}

// --- Model 1 -------------------------------------------------------------------------------------

fn common(m: &mut Image, nameplate: &Nameplate) {
    m.text("bmslink", 16);
    m.text("bmslink-gateway", 16);
    m.text("", 8); // Opt
    m.text(env!("CARGO_PKG_VERSION"), 8);
    m.text(&nameplate.serial, 16);
    m.u16(u16::from(nameplate.unit_id));
    m.pads(1);
}

// --- Figures of a rack ---------------------------------------------------------------------------

/// What the models say about one rack's reading.
struct RackFigures {
    voltage: f64,
    current: f64,
    soc: f64,
    soh: Option<f64>,
    cycles: u32,
    cell_max: (u8, f64),
    cell_min: (u8, f64),
    cell_avg: f64,
    temperature: Option<(f64, f64, f64)>,
    warnings: Warnings,
    status: Status,
}

impl RackFigures {
    fn of(reading: &PackSnapshot) -> RackFigures {
        let (max_cell, max) = reading.cell_max();
        let (min_cell, min) = reading.cell_min();
        let cells = reading.cells.iter().map(|c| f64::from(c.0)).sum::<f64>();
        let temperatures: Vec<f64> = reading
            .battery_temperatures()
            .iter()
            .map(|t| f64::from(t.0))
            .collect();
        let temperature = (!temperatures.is_empty()).then(|| {
            let max = temperatures.iter().copied().fold(f64::MIN, f64::max);
            let min = temperatures.iter().copied().fold(f64::MAX, f64::min);
            (
                max,
                min,
                temperatures.iter().sum::<f64>() / temperatures.len() as f64,
            )
        });
        RackFigures {
            voltage: volts(reading.voltage),
            current: f64::from(reading.current.0) / 1000.0,
            soc: f64::from(reading.soc_percent),
            soh: soh_percent(reading),
            cycles: reading.cycles,
            cell_max: (max_cell, volts(max)),
            cell_min: (min_cell, volts(min)),
            cell_avg: cells / 1000.0 / reading.cells.len().max(1) as f64,
            temperature,
            warnings: reading.warnings,
            status: reading.status,
        }
    }

    fn contactor_bits(&self) -> u32 {
        u32::from(self.status.contains(Status::CHARGE_MOSFET_ON))
            | u32::from(self.status.contains(Status::DISCHARGE_MOSFET_ON)) << 1
    }
}

/// State of health, percent: learned over nominal capacity, as the site computes it.
fn soh_percent(reading: &PackSnapshot) -> Option<f64> {
    let nominal = reading.nominal_capacity_ah().filter(|&n| n > 0)? as f64;
    let capacity = reading.actual_capacity_ah().unwrap_or(nominal as u32) as f64;
    Some((capacity / nominal).min(1.0) * 100.0)
}

fn figures(rack: &RackStatus) -> Option<RackFigures> {
    rack.reading.as_deref().map(RackFigures::of)
}

/// SunSpec 802/803/804 event bits (Evt1) of NW warning bits.
pub fn event_bits(warnings: Warnings) -> u32 {
    const OVER_TEMP_ALARM: u32 = 1 << 1;
    const UNDER_TEMP_ALARM: u32 = 1 << 3;
    const OVER_CHARGE_CURRENT_ALARM: u32 = 1 << 5;
    const OVER_DISCHARGE_CURRENT_ALARM: u32 = 1 << 7;
    const OVER_VOLT_ALARM: u32 = 1 << 9;
    const UNDER_VOLT_ALARM: u32 = 1 << 11;
    const UNDER_SOC_MIN_WARNING: u32 = 1 << 14;
    const VOLTAGE_IMBALANCE_WARNING: u32 = 1 << 17;
    const OTHER_ALARM: u32 = 1 << 25;
    const MAP: [(Warnings, u32); 14] = [
        (Warnings::LOW_CAPACITY, UNDER_SOC_MIN_WARNING),
        (Warnings::MOSFET_OVER_TEMPERATURE, OVER_TEMP_ALARM),
        (Warnings::CHARGE_OVER_VOLTAGE, OVER_VOLT_ALARM),
        (Warnings::DISCHARGE_UNDER_VOLTAGE, UNDER_VOLT_ALARM),
        (Warnings::BATTERY_OVER_TEMPERATURE, OVER_TEMP_ALARM),
        (Warnings::CHARGE_OVER_CURRENT, OVER_CHARGE_CURRENT_ALARM),
        (
            Warnings::DISCHARGE_OVER_CURRENT,
            OVER_DISCHARGE_CURRENT_ALARM,
        ),
        (Warnings::CELL_VOLTAGE_DIFFERENCE, VOLTAGE_IMBALANCE_WARNING),
        (Warnings::BOX_OVER_TEMPERATURE, OVER_TEMP_ALARM),
        (Warnings::BATTERY_LOW_TEMPERATURE, UNDER_TEMP_ALARM),
        (Warnings::CELL_OVER_VOLTAGE, OVER_VOLT_ALARM),
        (Warnings::CELL_UNDER_VOLTAGE, UNDER_VOLT_ALARM),
        (Warnings::PROTECTION_309_A, OTHER_ALARM),
        (Warnings::PROTECTION_309_B, OTHER_ALARM),
    ];
    MAP.iter()
        .filter(|(bit, _)| warnings.intersects(*bit))
        .fold(0, |all, (_, event)| all | event)
}

/// Evt1 bit 0.
pub const COMMUNICATION_ERROR: u32 = 1;

// --- Model 802 -----------------------------------------------------------------------------------

/// The system's figures for model 802.
struct SystemFigures<'a> {
    used: Vec<RackFigures>,
    snapshot: &'a SiteSnapshot,
    /// Nameplate capacity (Ah), energy (Wh), charge and discharge rates (W).
    nameplate: Option<(f64, f64, f64, f64)>,
    power_sf: i16,
}

impl<'a> SystemFigures<'a> {
    fn of(snapshot: &'a SiteSnapshot) -> SystemFigures<'a> {
        let used: Vec<RackFigures> = snapshot
            .view
            .used
            .iter()
            .filter_map(|&i| snapshot.racks.get(i).and_then(figures))
            .collect();
        let nameplate = site_nameplate(snapshot);
        let watts = snapshot.view.voltage.map_or(0.0, |v| {
            volts(v) * f64::from(snapshot.view.current.0) / 1000.0
        });
        let largest = nameplate.map_or(0.0, |(_, wh, cha, dis)| wh.max(cha).max(dis));
        SystemFigures {
            used,
            snapshot,
            nameplate,
            power_sf: fitting_power(largest.max(watts.abs()), 32_767.0),
        }
    }

    fn soc(&self) -> Option<f64> {
        self.snapshot.view.soc.map(|s| f64::from(s) * 100.0)
    }

    fn cell_avg(&self) -> Option<f64> {
        let cells: Vec<f64> = self.used.iter().map(|r| r.cell_avg).collect();
        (!cells.is_empty()).then(|| cells.iter().sum::<f64>() / cells.len() as f64)
    }
}

/// Capacity (Ah), energy (Wh) and the charge and discharge rates (W, from each rack's
/// over-current protections 0x99 / 0x97) of every rack with a reading.
fn site_nameplate(snapshot: &SiteSnapshot) -> Option<(f64, f64, f64, f64)> {
    let readings: Vec<&PackSnapshot> = snapshot
        .racks
        .iter()
        .filter_map(|r| r.reading.as_deref())
        .collect();
    if readings.is_empty() {
        return None;
    }
    let amps = |r: &PackSnapshot, id| {
        r.field(id)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map_or(0.0, |b| f64::from(u16::from_be_bytes(b)))
    };
    let sum = |f: &dyn Fn(&PackSnapshot) -> f64| readings.iter().map(|r| f(r)).sum::<f64>();
    let ah = |r: &PackSnapshot| r.nominal_capacity_ah().unwrap_or(0) as f64;
    Some((
        sum(&ah),
        sum(&|r| ah(r) * volts(r.voltage)),
        sum(&|r| amps(r, Identifier::ChargeOverCurrentProtection) * volts(r.voltage)),
        sum(&|r| amps(r, Identifier::DischargeOverCurrentProtection) * volts(r.voltage)),
    ))
}

fn battery(
    m: &mut Image,
    snapshot: &SiteSnapshot,
    nameplate: &Nameplate,
    controller_heartbeat: u16,
) {
    let system = SystemFigures::of(snapshot);
    battery_ratings(m, &system);
    battery_state(m, &system, nameplate, controller_heartbeat);
    battery_events(m, snapshot);
    battery_measurements(m, &system);
    battery_controls(m, snapshot, system.power_sf);
}

/// AHRtg .. SoH (offsets 2..=13).
fn battery_ratings(m: &mut Image, system: &SystemFigures) {
    let (ah, wh, cha, dis) = match system.nameplate {
        Some((ah, wh, cha, dis)) => (Some(ah), Some(wh), Some(cha), Some(dis)),
        None => (None, None, None, None),
    };
    m.uint(ah, sf::AMP_HOURS);
    m.uint(wh, system.power_sf);
    m.uint(cha, system.power_sf);
    m.uint(dis, system.power_sf);
    m.u16(NI_U16); // DisChaRte
    m.u16(NI_U16); // SoCMax
    m.u16(NI_U16); // SoCMin
    m.u16(NI_U16); // SocRsvMax
    m.u16(NI_U16); // SoCRsvMin
    let soc = system.soc();
    m.uint(soc, sf::SOC);
    m.uint(soc.map(|s| 100.0 - s), sf::DOD);
    m.uint(
        system.snapshot.view.soh_min.map(|s| f64::from(s) * 100.0),
        sf::SOH,
    );
}

/// NCyc .. StateVnd (offsets 14..=23).
fn battery_state(
    m: &mut Image,
    system: &SystemFigures,
    nameplate: &Nameplate,
    controller_heartbeat: u16,
) {
    let snapshot = system.snapshot;
    match system.used.iter().map(|r| r.cycles).max() {
        Some(cycles) => m.u32(cycles),
        None => m.u32(NI_U32),
    }
    m.u16(charge_status(system));
    m.u16(if nameplate.remote_control { 0 } else { 1 });
    m.u16((snapshot.at.since_origin().as_secs() & 0xFFFF) as u16); // Hb
    m.u16(controller_heartbeat);
    m.u16(0); // AlmRst reads 0
    m.u16(4); // Typ: LITHIUM_ION
    m.u16(battery_state_code(snapshot));
    m.u16(NI_U16); // StateVnd
}

/// ChaSt: OFF without data, else from the current and the SoC.
fn charge_status(system: &SystemFigures) -> u16 {
    let Some(soc) = system.soc() else { return 1 };
    let amps = f64::from(system.snapshot.view.current.0) / 1000.0;
    match () {
        _ if amps > 0.5 => 4,
        _ if amps < -0.5 => 3,
        _ if soc >= 99.5 => 5,
        _ if soc <= 0.5 => 2,
        _ => 6,
    }
}

/// State: INITIALIZING before any reading, DISCONNECTED without a usable rack, FAULT while
/// the failsafe holds the safe state, STANDBY after SetOp DISCONNECT, else CONNECTED.
pub fn battery_state_code(snapshot: &SiteSnapshot) -> u16 {
    if snapshot.racks.iter().all(|r| r.reading.is_none()) {
        2
    } else if snapshot.view.used.is_empty() {
        1
    } else if snapshot.decision.safe {
        99
    } else if !snapshot.ems.connected {
        4
    } else {
        3
    }
}

/// WarrDt .. EvtVnd2 (offsets 24..=33). EvtVnd1 = latched NW warning bits (0x8B), EvtVnd2 =
/// the warnings acting now.
fn battery_events(m: &mut Image, snapshot: &SiteSnapshot) {
    m.u32(NI_U32); // WarrDt
    let communication = if snapshot.view.used.is_empty() || !snapshot.view.excluded.is_empty() {
        COMMUNICATION_ERROR
    } else {
        0
    };
    m.u32(event_bits(snapshot.ems.latched_warnings) | communication);
    m.u32(0); // Evt2
    m.u32(u32::from(snapshot.ems.latched_warnings.bits()));
    m.u32(u32::from(snapshot.view.warnings.bits()));
}

/// V .. W (offsets 34..=47).
fn battery_measurements(m: &mut Image, system: &SystemFigures) {
    let view = &system.snapshot.view;
    let limits = system.snapshot.decision.limits;
    let known = !system.used.is_empty();
    m.uint(view.voltage.map(volts), sf::VOLTS);
    m.uint(
        known.then_some(f64::from(limits.charge_voltage_v)),
        sf::VOLTS,
    );
    m.uint(
        known.then_some(f64::from(limits.discharge_voltage_v)),
        sf::VOLTS,
    );
    m.uint(view.cell_max.map(|c| volts(c.voltage)), sf::CELL_VOLTS);
    m.u16(view.cell_max.map_or(NI_U16, |c| rack_number(c.rack)));
    m.u16(view.cell_max.map_or(NI_U16, |_| 1));
    m.uint(view.cell_min.map(|c| volts(c.voltage)), sf::CELL_VOLTS);
    m.u16(view.cell_min.map_or(NI_U16, |c| rack_number(c.rack)));
    m.u16(view.cell_min.map_or(NI_U16, |_| 1));
    m.uint(system.cell_avg(), sf::CELL_VOLTS);
    let amps = f64::from(view.current.0) / 1000.0;
    m.int(known.then_some(amps), sf::AMPS);
    let (charge, discharge) = pcs_current_limits(&system.snapshot.pcs);
    m.uint(Some(charge), sf::AMPS_MAX);
    m.uint(Some(discharge), sf::AMPS_MAX);
    m.int(
        view.voltage.filter(|_| known).map(|v| volts(v) * amps),
        system.power_sf,
    );
}

/// The current limits the inverter is told, A (zero in the safe state).
pub fn pcs_current_limits(pcs: &PcsCommand) -> (f64, f64) {
    match pcs {
        PcsCommand::Normal(state) => (
            f64::from(state.limits.charge_current.0) / 1000.0,
            f64::from(state.limits.discharge_current.0) / 1000.0,
        ),
        PcsCommand::Safe { .. } => (0.0, 0.0),
    }
}

/// ReqInvState .. W_SF (offsets 48..=63).
fn battery_controls(m: &mut Image, snapshot: &SiteSnapshot, power_sf: i16) {
    m.u16(NI_U16); // ReqInvState
    m.u16(NI_I16); // ReqW
    m.u16(if snapshot.ems.connected { 1 } else { 2 });
    m.u16(match snapshot.ems.inverter_state {
        0 => NI_U16,
        state => state,
    });
    m.sf(sf::AMP_HOURS);
    m.sf(power_sf); // WHRtg_SF
    m.sf(power_sf); // WChaDisChaMax_SF
    m.u16(NI_I16); // DisChaRte_SF
    m.sf(sf::SOC);
    m.sf(sf::DOD);
    m.sf(sf::SOH);
    m.sf(sf::VOLTS);
    m.sf(sf::CELL_VOLTS);
    m.sf(sf::AMPS);
    m.sf(sf::AMPS_MAX);
    m.sf(power_sf); // W_SF
}

fn rack_number(index: usize) -> u16 {
    u16::try_from(index + 1).unwrap_or(u16::MAX)
}

// --- Model 803 -----------------------------------------------------------------------------------

fn bank(m: &mut Image, snapshot: &SiteSnapshot) {
    let racks: Vec<(usize, RackFigures)> = snapshot
        .view
        .used
        .iter()
        .filter_map(|&i| snapshot.racks.get(i).and_then(figures).map(|f| (i, f)))
        .collect();
    m.u16(u16::try_from(snapshot.racks.len()).unwrap_or(u16::MAX));
    m.u16(u16::try_from(racks.len()).unwrap_or(u16::MAX));
    bank_temperatures(m, &racks);
    bank_extremes(m, &racks, |f| f.voltage, sf::VOLTS, false);
    bank_extremes(m, &racks, |f| f.current, sf::AMPS, true);
    m.u16(NI_U16); // NCellBal
    for power in [
        sf::CELL_VOLTS,
        sf::CELSIUS,
        sf::AMPS,
        sf::SOH,
        sf::SOC,
        sf::VOLTS,
    ] {
        m.sf(power);
    }
    for (index, rack) in snapshot.racks.iter().enumerate() {
        bank_string(m, rack, snapshot.view.used.contains(&index));
    }
}

/// ModTmpMax .. ModTmpAvg (offsets 4..=10).
fn bank_temperatures(m: &mut Image, racks: &[(usize, RackFigures)]) {
    let temps: Vec<(usize, (f64, f64, f64))> = racks
        .iter()
        .filter_map(|(i, f)| f.temperature.map(|t| (*i, t)))
        .collect();
    let max = temps.iter().max_by(|a, b| a.1 .0.total_cmp(&b.1 .0));
    let min = temps.iter().min_by(|a, b| a.1 .1.total_cmp(&b.1 .1));
    m.int(max.map(|t| t.1 .0), sf::CELSIUS);
    m.u16(max.map_or(NI_U16, |t| rack_number(t.0)));
    m.u16(max.map_or(NI_U16, |_| 1));
    m.int(min.map(|t| t.1 .1), sf::CELSIUS);
    m.u16(min.map_or(NI_U16, |t| rack_number(t.0)));
    m.u16(min.map_or(NI_U16, |_| 1));
    let avg =
        (!temps.is_empty()).then(|| temps.iter().map(|t| t.1 .2).sum::<f64>() / temps.len() as f64);
    m.int(avg, sf::CELSIUS);
}

/// Max, its string, min, its string, average of one figure over the used racks.
fn bank_extremes(
    m: &mut Image,
    racks: &[(usize, RackFigures)],
    figure: impl Fn(&RackFigures) -> f64,
    power: i16,
    signed: bool,
) {
    let values: Vec<(usize, f64)> = racks.iter().map(|(i, f)| (*i, figure(f))).collect();
    let max = values.iter().max_by(|a, b| a.1.total_cmp(&b.1));
    let min = values.iter().min_by(|a, b| a.1.total_cmp(&b.1));
    let avg =
        (!values.is_empty()).then(|| values.iter().map(|v| v.1).sum::<f64>() / values.len() as f64);
    let put = |m: &mut Image, v: Option<f64>| {
        if signed {
            m.int(v, power)
        } else {
            m.uint(v, power)
        }
    };
    put(m, max.map(|v| v.1));
    m.u16(max.map_or(NI_U16, |v| rack_number(v.0)));
    put(m, min.map(|v| v.1));
    m.u16(min.map_or(NI_U16, |v| rack_number(v.0)));
    put(m, avg);
}

/// One string of model 803 (32 registers).
fn bank_string(m: &mut Image, rack: &RackStatus, used: bool) {
    let f = figures(rack);
    m.u16(1); // StrNMod
    m.u32(string_status(f.as_ref(), used));
    m.u16(NI_U16); // StrConFail
    m.uint(f.as_ref().map(|f| f.soc), sf::SOC);
    m.uint(f.as_ref().and_then(|f| f.soh), sf::SOH);
    m.int(f.as_ref().map(|f| f.current), sf::AMPS);
    m.uint(f.as_ref().map(|f| f.cell_max.1), sf::CELL_VOLTS);
    m.u16(f.as_ref().map_or(NI_U16, |_| 1));
    m.uint(f.as_ref().map(|f| f.cell_min.1), sf::CELL_VOLTS);
    m.u16(f.as_ref().map_or(NI_U16, |_| 1));
    m.uint(f.as_ref().map(|f| f.cell_avg), sf::CELL_VOLTS);
    let t = f.as_ref().and_then(|f| f.temperature);
    m.int(t.map(|t| t.0), sf::CELSIUS);
    m.u16(t.map_or(NI_U16, |_| 1));
    m.int(t.map(|t| t.1), sf::CELSIUS);
    m.u16(t.map_or(NI_U16, |_| 1));
    m.int(t.map(|t| t.2), sf::CELSIUS);
    m.u16(NI_U16); // StrDisRsn
    m.u32(f.as_ref().map_or(NI_U32, RackFigures::contactor_bits));
    string_events(m, f.as_ref(), used);
    m.u16(NI_U16); // StrSetEna
    m.u16(NI_U16); // StrSetCon
    m.pads(2);
}

/// St / StrSt: bit 0 STRING_ENABLED (in the aggregate), bit 1 CONTACTOR_STATUS (a MOSFET on).
fn string_status(f: Option<&RackFigures>, used: bool) -> u32 {
    u32::from(used) | u32::from(f.is_some_and(|f| f.contactor_bits() != 0)) << 1
}

/// Evt1 (+ communication error when not in the aggregate), Evt2, EvtVnd1 (NW warning bits),
/// EvtVnd2 (NW status bits 0x8C).
fn string_events(m: &mut Image, f: Option<&RackFigures>, used: bool) {
    let communication = if used { 0 } else { COMMUNICATION_ERROR };
    m.u32(f.map_or(0, |f| event_bits(f.warnings)) | communication);
    m.u32(0);
    m.u32(f.map_or(NI_U32, |f| u32::from(f.warnings.bits())));
    m.u32(f.map_or(NI_U32, |f| u32::from(f.status.bits())));
}

// --- Model 804 -----------------------------------------------------------------------------------

fn string(m: &mut Image, index: usize, rack: &RackStatus, used: bool) {
    let f = figures(rack);
    let f = f.as_ref();
    m.u16(rack_number(index));
    m.u16(1); // NMod
    m.u32(string_status(f, used));
    m.u16(NI_U16); // ConFail
    m.u16(NI_U16); // NCellBal
    m.uint(f.map(|f| f.soc), sf::SOC);
    m.uint(f.map(|f| 100.0 - f.soc), sf::DOD);
    m.u32(f.map_or(NI_U32, |f| f.cycles));
    m.uint(f.and_then(|f| f.soh), sf::SOH);
    m.int(f.map(|f| f.current), sf::AMPS);
    m.uint(f.map(|f| f.voltage), sf::VOLTS);
    m.uint(f.map(|f| f.cell_max.1), sf::CELL_VOLTS);
    m.u16(f.map_or(NI_U16, |_| 1));
    m.uint(f.map(|f| f.cell_min.1), sf::CELL_VOLTS);
    m.u16(f.map_or(NI_U16, |_| 1));
    m.uint(f.map(|f| f.cell_avg), sf::CELL_VOLTS);
    let t = f.and_then(|f| f.temperature);
    m.int(t.map(|t| t.0), sf::CELSIUS);
    m.u16(t.map_or(NI_U16, |_| 1));
    m.int(t.map(|t| t.1), sf::CELSIUS);
    m.u16(t.map_or(NI_U16, |_| 1));
    m.int(t.map(|t| t.2), sf::CELSIUS);
    m.pads(1);
    m.u32(f.map_or(NI_U32, RackFigures::contactor_bits));
    string_events(m, f, used);
    m.u16(NI_U16); // SetEna
    m.u16(NI_U16); // SetCon
    for power in [
        sf::SOC,
        sf::SOH,
        sf::DOD,
        sf::AMPS,
        sf::VOLTS,
        sf::CELL_VOLTS,
        sf::CELSIUS,
    ] {
        m.sf(power);
    }
    m.pads(3);
    string_module(m, rack, f);
}

/// The one module of a string (16 registers).
fn string_module(m: &mut Image, rack: &RackStatus, f: Option<&RackFigures>) {
    let cells = rack.reading.as_ref().map_or(0, |r| r.cells.len());
    m.u16(u16::try_from(cells).unwrap_or(u16::MAX));
    m.uint(f.map(|f| f.soc), sf::SOC);
    m.uint(f.and_then(|f| f.soh), sf::SOH);
    m.uint(f.map(|f| f.cell_max.1), sf::CELL_VOLTS);
    m.u16(f.map_or(NI_U16, |f| u16::from(f.cell_max.0)));
    m.uint(f.map(|f| f.cell_min.1), sf::CELL_VOLTS);
    m.u16(f.map_or(NI_U16, |f| u16::from(f.cell_min.0)));
    m.uint(f.map(|f| f.cell_avg), sf::CELL_VOLTS);
    let t = f.and_then(|f| f.temperature);
    m.int(t.map(|t| t.0), sf::CELSIUS);
    m.u16(NI_U16); // ModCellTmpMaxCell
    m.int(t.map(|t| t.1), sf::CELSIUS);
    m.u16(NI_U16); // ModCellTmpMinCell
    m.int(t.map(|t| t.2), sf::CELSIUS);
    m.pads(3);
}

// --- Model 805 -----------------------------------------------------------------------------------

fn module(m: &mut Image, index: usize, rack: &RackStatus) {
    let reading = rack.reading.as_deref();
    let f = reading.map(RackFigures::of);
    let f = f.as_ref();
    m.u16(rack_number(index));
    m.u16(1); // ModIdx
    m.u16(u16::try_from(reading.map_or(0, |r| r.cells.len())).unwrap_or(u16::MAX));
    m.uint(f.map(|f| f.soc), sf::SOC);
    m.uint(f.map(|f| 100.0 - f.soc), sf::DOD);
    m.uint(f.and_then(|f| f.soh), sf::SOH);
    m.u32(f.map_or(NI_U32, |f| f.cycles));
    m.uint(f.map(|f| f.voltage), sf::VOLTS);
    m.uint(f.map(|f| f.cell_max.1), sf::CELL_VOLTS);
    m.u16(f.map_or(NI_U16, |f| u16::from(f.cell_max.0)));
    m.uint(f.map(|f| f.cell_min.1), sf::CELL_VOLTS);
    m.u16(f.map_or(NI_U16, |f| u16::from(f.cell_min.0)));
    m.uint(f.map(|f| f.cell_avg), sf::CELL_VOLTS);
    let t = f.and_then(|f| f.temperature);
    m.int(t.map(|t| t.0), sf::CELSIUS);
    m.u16(NI_U16); // CellTmpMaxCell
    m.int(t.map(|t| t.1), sf::CELSIUS);
    m.u16(NI_U16); // CellTmpMinCell
    m.int(t.map(|t| t.2), sf::CELSIUS);
    m.u16(NI_U16); // NCellBal
    m.text(&rack.name, 16);
    for power in [
        sf::SOC,
        sf::SOH,
        sf::DOD,
        sf::VOLTS,
        sf::CELL_VOLTS,
        sf::CELSIUS,
    ] {
        m.sf(power);
    }
    module_cells(m, reading);
}

/// Every cell: CellV, CellTmp (the rack's battery sensor 0x82: the NW protocol has no per-cell
/// temperature), CellSt (not implemented: balancing is reported per rack only).
fn module_cells(m: &mut Image, reading: Option<&PackSnapshot>) {
    let Some(reading) = reading else { return };
    let temperature = reading
        .battery_temperature
        .or(reading.box_temperature)
        .map(|t| f64::from(t.0));
    for cell in &reading.cells {
        m.uint(Some(volts(*cell)), sf::CELL_VOLTS);
        m.int(temperature, sf::CELSIUS);
        m.u32(NI_U32);
    }
}
