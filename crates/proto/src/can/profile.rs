//! Inverter profiles: which frames a battery sends, in which order, and how "stop" and the safe
//! state are expressed for each inverter (inverter-can.md, "Profiles seen in the field" and
//! "How inverters react"). Pure: [`frames`] and [`safe_state`] turn a [`BatteryState`] into the
//! profile's [`FrameSet`]; the caller sends it every 1 s (never faster than every 200 ms for
//! SMA) and watches 0x305 ([`KeepAlive`](super::KeepAlive)). No timers here.
//!
//! | profile | frames, in send order |
//! |---|---|
//! | [`Profile::PylontechV12`] | 351, 355 (4 B), 356, 359, 35C, 35E |
//! | [`Profile::PylontechV13`], [`Profile::Sma`] | 351, 355 (6 B), 356, 35A, 35E, 35F |
//! | [`Profile::Victron`] | the SMA set, then 372, 373, 374, 375, 376, 377, 379 |
//!
//! Rules applied to every frame set ([`Options`] chooses the inverter-specific ones):
//!
//! - Conversion at this edge: limits round towards the safe side (CVL and CCL / DCL down, DVL
//!   up), measurements to nearest; everything saturates, nothing wraps ([`scale`](super::scale)).
//! - Charging is blocked when the charge limit rounds to 0 A or charge is not enabled;
//!   discharging likewise. A blocked direction is sent as 0 A and its 0x35C enable bit is clear.
//! - [`Options::stop_charge_at_pack_voltage`] (default for every profile): blocked charging is
//!   sent as CVL = pack voltage (rounded up) with CCL 0. Victron: "Never send CVL 0 ... To stop
//!   charging, send CVL = pack voltage, CCL 0"; Deye: "it wants CVL = pack voltage with 0 A to
//!   stop charging"; SMA drops out-of-range values silently, so a CVL of 0 could leave its last
//!   CVL in force.
//! - CVL is never 0: a CVL that would be 0 becomes the pack voltage, else the DVL, else 0.1 V.
//! - [`Options::never_zero`] (Sofar, [`Options::SOFAR`]): "Sofar ignores zeros entirely (send
//!   0.1 V / 0.1 A)": every limit that would be 0 is sent as one step, 0.1 V or 0.1 A.
//!
//! Safe state ([`safe_state`]): charge and discharge blocked in the profile's own way, the
//! general alarm raised, every request flag clear:
//!
//! | profile | 0x351 | alarm |
//! |---|---|---|
//! | Pylontech v1.2 (Deye, Sol-Ark, Goodwe, ...) | CVL = pack voltage, CCL 0, DCL 0 | 0x359 system error; 0x35C 00 00 |
//! | Pylontech v1.2 + [`Options::SOFAR`] | CVL = pack voltage, CCL 0.1 A, DCL 0.1 A | as above |
//! | Pylontech v1.3, SMA | CVL = pack voltage, CCL 0, DCL 0 | 0x35A general alarm (SMA: immediate standby) |
//! | Victron | CVL = pack voltage (never 0), CCL 0, DCL 0 | 0x35A general alarm |
//!
//! (Victron in island mode shuts down on DCL 0 until DCL rises: that is the stop the safe state
//! asks for.)

use super::alarms::{Conditions, PylonAlarms, PylonProtection, PylonWarnings, SmaAlarms};
use super::frames::{
    InstalledCapacity, Limits, Manufacturer, Measurements, ProductInfo, RequestFlags, Requests,
    SocSoh,
};
use super::scale::{
    AmpHours, CentiPercent, CentiVolts, DeciAmps, DeciCelsius, DeciVolts, Kelvin, Percent, Rounding,
};
use super::text::ShortText;
use super::victron::{CellExtremes, Extreme, ExtremeCellName, ModuleCounts};
use super::{id, CanFrame, CanId};
use crate::units::{Milliamps, Millivolts};

/// The frame set an inverter expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// "Pylontech v1.2": 351, 355 (4 B), 356, 359, 35C, 35E. Deye, Sol-Ark, Goodwe, Growatt in
    /// Pylon mode, Sofar (with [`Options::SOFAR`]), Solis, Luxpower.
    PylontechV12,
    /// "Pylontech v1.3": 351, 355 (6 B), 356, 35A, 35E, 35F.
    PylontechV13,
    /// SMA Sunny Island: the v1.3 set.
    Sma,
    /// Victron GX: the SMA set and 372..377, 379.
    Victron,
}

const PYLON_V12_IDS: &[CanId] = &[
    id::LIMITS,
    id::SOC_SOH,
    id::MEASUREMENTS,
    id::PYLON_ALARMS,
    id::REQUESTS,
    id::MANUFACTURER,
];

const SMA_IDS: &[CanId] = &[
    id::LIMITS,
    id::SOC_SOH,
    id::MEASUREMENTS,
    id::SMA_ALARMS,
    id::MANUFACTURER,
    id::PRODUCT_INFO,
];

const VICTRON_IDS: &[CanId] = &[
    id::LIMITS,
    id::SOC_SOH,
    id::MEASUREMENTS,
    id::SMA_ALARMS,
    id::MANUFACTURER,
    id::PRODUCT_INFO,
    id::MODULE_COUNTS,
    id::CELL_EXTREMES,
    id::MIN_CELL_VOLTAGE_NAME,
    id::MAX_CELL_VOLTAGE_NAME,
    id::MIN_CELL_TEMPERATURE_NAME,
    id::MAX_CELL_TEMPERATURE_NAME,
    id::INSTALLED_CAPACITY,
];

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 4] = [
        Profile::PylontechV12,
        Profile::PylontechV13,
        Profile::Sma,
        Profile::Victron,
    ];

    /// The identifiers the profile sends, in send order.
    pub fn frame_ids(self) -> &'static [CanId] {
        match self {
            Profile::PylontechV12 => PYLON_V12_IDS,
            Profile::PylontechV13 | Profile::Sma => SMA_IDS,
            Profile::Victron => VICTRON_IDS,
        }
    }

    /// A stable name for configuration files ("pylontech-v1.2", "pylontech-v1.3", "sma",
    /// "victron").
    pub fn name(self) -> &'static str {
        match self {
            Profile::PylontechV12 => "pylontech-v1.2",
            Profile::PylontechV13 => "pylontech-v1.3",
            Profile::Sma => "sma",
            Profile::Victron => "victron",
        }
    }

    /// The profile with [`name`](Self::name) `name`.
    pub fn from_name(name: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The options that fit the profile's usual inverters ([`Options::STANDARD`] for all).
    pub fn default_options(self) -> Options {
        Options::STANDARD
    }

    /// Whether 0x355 carries the 0.01 % SOC (the 6-byte form).
    fn fine_soc(self) -> bool {
        !matches!(self, Profile::PylontechV12)
    }
}

/// Inverter-specific encodings of "stop" (inverter-can.md, "How inverters react").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Options {
    /// Blocked charging is sent as CVL = pack voltage with CCL 0, instead of the computed CVL
    /// with CCL 0 (Victron, Deye). [`safe_state`] always does so.
    pub stop_charge_at_pack_voltage: bool,
    /// Limits that would be 0 are sent as one step, 0.1 V / 0.1 A (Sofar ignores zeros).
    pub never_zero: bool,
}

impl Options {
    /// Stop charging at pack voltage; zeros allowed. Right for Deye and Victron, harmless for
    /// the others.
    pub const STANDARD: Options = Options {
        stop_charge_at_pack_voltage: true,
        never_zero: false,
    };

    /// Sofar: as standard, but no zero limits.
    pub const SOFAR: Options = Options {
        stop_charge_at_pack_voltage: true,
        never_zero: true,
    };
}

impl Default for Options {
    fn default() -> Self {
        Options::STANDARD
    }
}

/// The limits as computed (e.g. `PackLimits` of bmslink-core), before the profile's rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StateLimits {
    /// Charge voltage limit (CVL).
    pub charge_voltage: Millivolts,
    /// Charge current limit (CCL), a magnitude; negative is read as 0.
    pub charge_current: Milliamps,
    /// Discharge current limit (DCL), a magnitude; negative is read as 0.
    pub discharge_current: Milliamps,
    /// Discharge voltage limit (DVL).
    pub discharge_voltage: Millivolts,
}

/// The extreme cells (for Victron's 0x373..0x377).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CellExtremesState {
    /// Lowest cell voltage.
    pub min_voltage: Millivolts,
    /// Its cell's name.
    pub min_voltage_cell: ShortText,
    /// Highest cell voltage.
    pub max_voltage: Millivolts,
    /// Its cell's name.
    pub max_voltage_cell: ShortText,
    /// Lowest temperature.
    pub min_temperature: DeciCelsius,
    /// Its sensor's name.
    pub min_temperature_cell: ShortText,
    /// Highest temperature.
    pub max_temperature: DeciCelsius,
    /// Its sensor's name.
    pub max_temperature_cell: ShortText,
}

/// Module (rack) counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Modules {
    /// Modules online (0x359 byte 4 saturates at 255).
    pub online: u16,
    /// Modules blocking charge.
    pub blocking_charge: u16,
    /// Modules blocking discharge.
    pub blocking_discharge: u16,
    /// Modules offline.
    pub offline: u16,
}

/// What the battery says it is (0x35F).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProductIdentity {
    /// Battery type / product id.
    pub product_id: u16,
    /// BMS firmware version.
    pub firmware_version: u16,
    /// Manufacturer / hardware id.
    pub hardware_id: u16,
}

/// Everything any profile needs, profile-neutral, in bmslink's units and conventions
/// (current positive = charging).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatteryState {
    /// The limits before the profile's rules.
    pub limits: StateLimits,
    /// State of charge (0x355 sends whole percent rounded down, and 0.01 % where the profile
    /// has it).
    pub soc: CentiPercent,
    /// State of health.
    pub soh: Percent,
    /// Pack voltage.
    pub voltage: Millivolts,
    /// Pack current, positive = charging.
    pub current: Milliamps,
    /// Battery temperature for 0x356.
    pub temperature: DeciCelsius,
    /// Extreme cells.
    pub cells: CellExtremesState,
    /// Alarms (protections acting).
    pub alarms: Conditions,
    /// Warnings.
    pub warnings: Conditions,
    /// Module counts.
    pub modules: Modules,
    /// Installed capacity (0x35F, 0x379).
    pub capacity: AmpHours,
    /// Manufacturer name for 0x35E (some inverters accept only names they know).
    pub manufacturer: ShortText,
    /// Identity for 0x35F.
    pub product: ProductIdentity,
    /// Whether the battery accepts charge.
    pub charge_enable: bool,
    /// Whether the battery may be discharged.
    pub discharge_enable: bool,
    /// 0x35C force charge I.
    pub force_charge_i: bool,
    /// 0x35C force charge II.
    pub force_charge_ii: bool,
    /// 0x35C full charge request.
    pub full_charge_request: bool,
}

impl Default for BatteryState {
    /// Nothing known: zero limits, both directions disabled, "PYLON" as manufacturer (the name
    /// the family's inverters accept), SOH 100 %.
    fn default() -> Self {
        BatteryState {
            limits: StateLimits::default(),
            soc: CentiPercent::default(),
            soh: Percent::FULL,
            voltage: Millivolts(0),
            current: Milliamps(0),
            temperature: DeciCelsius(0),
            cells: CellExtremesState::default(),
            alarms: Conditions::empty(),
            warnings: Conditions::empty(),
            modules: Modules::default(),
            capacity: AmpHours(0),
            manufacturer: ShortText::new(b"PYLON").unwrap_or_default(),
            product: ProductIdentity::default(),
            charge_enable: false,
            discharge_enable: false,
            force_charge_i: false,
            force_charge_ii: false,
            full_charge_request: false,
        }
    }
}

/// The most frames a profile sends (Victron: 13).
pub const MAX_FRAMES: usize = 16;

/// A profile's frames in send order; no allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FrameSet {
    frames: [CanFrame; MAX_FRAMES],
    len: usize,
}

impl FrameSet {
    fn push(&mut self, frame: CanFrame) {
        // Profiles send at most 13 frames; the slot always exists.
        if let Some(slot) = self.frames.get_mut(self.len) {
            *slot = frame;
            self.len += 1;
        }
    }

    /// The frames, in send order.
    pub fn as_slice(&self) -> &[CanFrame] {
        &self.frames[..self.len]
    }

    /// The frames, in send order.
    pub fn iter(&self) -> core::slice::Iter<'_, CanFrame> {
        self.as_slice().iter()
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frame with identifier `id`.
    pub fn find(&self, id: CanId) -> Option<&CanFrame> {
        self.iter().find(|frame| frame.id() == id)
    }
}

impl<'a> IntoIterator for &'a FrameSet {
    type Item = &'a CanFrame;
    type IntoIter = core::slice::Iter<'a, CanFrame>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The 0x351 values and the enable flags that follow from them.
struct Encoded {
    limits: Limits,
    charge_allowed: bool,
    discharge_allowed: bool,
}

/// One step instead of 0, when the options ask for it.
fn step_if_zero(options: &Options, raw: u16) -> u16 {
    if options.never_zero && raw == 0 {
        1
    } else {
        raw
    }
}

/// The current limit of a direction: 0 when it is not enabled.
fn current_limit(enabled: bool, limit: Milliamps) -> DeciAmps {
    if enabled {
        DeciAmps::limit_from_milliamps(limit)
    } else {
        DeciAmps(0)
    }
}

/// CVL after the stop and never-zero rules.
fn charge_voltage(options: &Options, state: &BatteryState, charge_allowed: bool) -> DeciVolts {
    let pack = DeciVolts::from_millivolts(state.voltage, Rounding::Up);
    let dvl = DeciVolts::from_millivolts(state.limits.discharge_voltage, Rounding::Up);
    let cvl = if charge_allowed || !options.stop_charge_at_pack_voltage {
        DeciVolts::from_millivolts(state.limits.charge_voltage, Rounding::Down)
    } else {
        pack
    };
    [cvl, pack, dvl]
        .into_iter()
        .find(|v| v.0 != 0)
        .unwrap_or(DeciVolts(1))
}

fn encode_limits(options: &Options, state: &BatteryState) -> Encoded {
    let ccl = current_limit(state.charge_enable, state.limits.charge_current);
    let dcl = current_limit(state.discharge_enable, state.limits.discharge_current);
    let (charge_allowed, discharge_allowed) = (ccl.0 > 0, dcl.0 > 0);
    let step = |raw: i16| step_if_zero(options, raw as u16) as i16;
    let dvl = DeciVolts::from_millivolts(state.limits.discharge_voltage, Rounding::Up);
    Encoded {
        limits: Limits {
            charge_voltage: charge_voltage(options, state, charge_allowed),
            charge_current: DeciAmps(step(ccl.0)),
            discharge_current: DeciAmps(step(dcl.0)),
            discharge_voltage: DeciVolts(step_if_zero(options, dvl.0)),
        },
        charge_allowed,
        discharge_allowed,
    }
}

fn soc_soh(profile: Profile, state: &BatteryState) -> SocSoh {
    SocSoh {
        soc: state.soc.whole_percent(),
        soh: state.soh,
        soc_fine: profile.fine_soc().then_some(state.soc),
        remaining: None,
    }
}

fn measurements(state: &BatteryState) -> Measurements {
    Measurements {
        voltage: CentiVolts::from_millivolts(state.voltage, Rounding::Nearest),
        current: DeciAmps::from_milliamps(state.current, Rounding::Nearest),
        temperature: state.temperature,
    }
}

fn requests(state: &BatteryState, encoded: &Encoded) -> Requests {
    let mut flags = RequestFlags::empty();
    flags.set(RequestFlags::CHARGE_ENABLE, encoded.charge_allowed);
    flags.set(RequestFlags::DISCHARGE_ENABLE, encoded.discharge_allowed);
    flags.set(RequestFlags::FORCE_CHARGE_I, state.force_charge_i);
    flags.set(RequestFlags::FORCE_CHARGE_II, state.force_charge_ii);
    flags.set(RequestFlags::FULL_CHARGE, state.full_charge_request);
    Requests { flags }
}

fn pylon_alarms(state: &BatteryState) -> PylonAlarms {
    PylonAlarms {
        protection: PylonProtection::from_conditions(state.alarms),
        warnings: PylonWarnings::from_conditions(state.warnings),
        module_count: u8::try_from(state.modules.online).unwrap_or(u8::MAX),
    }
}

fn product_info(state: &BatteryState) -> ProductInfo {
    ProductInfo {
        product_id: state.product.product_id,
        firmware_version: state.product.firmware_version,
        capacity: state.capacity,
        hardware_id: state.product.hardware_id,
    }
}

fn module_counts(state: &BatteryState) -> ModuleCounts {
    ModuleCounts {
        online: state.modules.online,
        blocking_charge: state.modules.blocking_charge,
        blocking_discharge: state.modules.blocking_discharge,
        offline: state.modules.offline,
    }
}

fn cell_extremes(state: &BatteryState) -> CellExtremes {
    let cells = &state.cells;
    CellExtremes {
        min_voltage: cells.min_voltage,
        max_voltage: cells.max_voltage,
        min_temperature: Kelvin::from_deci_celsius(cells.min_temperature),
        max_temperature: Kelvin::from_deci_celsius(cells.max_temperature),
    }
}

fn cell_name(state: &BatteryState, extreme: Extreme) -> ExtremeCellName {
    let cells = &state.cells;
    let name = match extreme {
        Extreme::MinVoltage => cells.min_voltage_cell,
        Extreme::MaxVoltage => cells.max_voltage_cell,
        Extreme::MinTemperature => cells.min_temperature_cell,
        Extreme::MaxTemperature => cells.max_temperature_cell,
    };
    ExtremeCellName { extreme, name }
}

/// The frame with identifier `frame_id` of the profile's set.
fn encode_one(
    frame_id: CanId,
    profile: Profile,
    state: &BatteryState,
    encoded: &Encoded,
) -> Option<CanFrame> {
    Some(match frame_id {
        id::LIMITS => encoded.limits.encode(),
        id::SOC_SOH => soc_soh(profile, state).encode(),
        id::MEASUREMENTS => measurements(state).encode(),
        id::PYLON_ALARMS => pylon_alarms(state).encode(),
        id::SMA_ALARMS => SmaAlarms::from_conditions(state.alarms, state.warnings).encode(),
        id::REQUESTS => requests(state, encoded).encode(),
        id::MANUFACTURER => Manufacturer {
            name: state.manufacturer,
        }
        .encode(),
        id::PRODUCT_INFO => product_info(state).encode(),
        id::MODULE_COUNTS => module_counts(state).encode(),
        id::CELL_EXTREMES => cell_extremes(state).encode(),
        id::INSTALLED_CAPACITY => InstalledCapacity {
            capacity: state.capacity,
        }
        .encode(),
        other => cell_name(state, Extreme::from_id(other)?).encode(),
    })
}

/// The profile's frames for `state`, in send order.
pub fn frames(profile: Profile, options: &Options, state: &BatteryState) -> FrameSet {
    let encoded = encode_limits(options, state);
    let mut set = FrameSet::default();
    for &frame_id in profile.frame_ids() {
        if let Some(frame) = encode_one(frame_id, profile, state, &encoded) {
            set.push(frame);
        }
    }
    set
}

/// The profile's safe state: charge and discharge blocked (CVL = `pack_voltage`, rounded up,
/// never 0; CCL and DCL 0, or 0.1 A with [`Options::never_zero`]), every request flag clear, the
/// general alarm raised on top of `state`'s alarms, 0x356 reporting `pack_voltage`. The rest
/// (SOC, names, capacity) comes from `state`: the last known state, or
/// [`BatteryState::default`] with the nameplate when nothing is known.
pub fn safe_state(
    profile: Profile,
    options: &Options,
    pack_voltage: Millivolts,
    state: &BatteryState,
) -> FrameSet {
    let safe = BatteryState {
        voltage: pack_voltage,
        limits: StateLimits {
            charge_current: Milliamps(0),
            discharge_current: Milliamps(0),
            ..state.limits
        },
        alarms: state.alarms | Conditions::GENERAL,
        charge_enable: false,
        discharge_enable: false,
        force_charge_i: false,
        force_charge_ii: false,
        full_charge_request: false,
        ..*state
    };
    let options = Options {
        stop_charge_at_pack_voltage: true,
        ..*options
    };
    frames(profile, &options, &safe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::can::{BatteryMessage, ItemState, SmaItem};
    use proptest::prelude::*;

    /// A 16-cell LFP system of three US5000-like racks, charging at 20 A.
    fn state() -> BatteryState {
        BatteryState {
            limits: StateLimits {
                charge_voltage: Millivolts(53_200),
                charge_current: Milliamps(480_000),
                discharge_current: Milliamps(480_000),
                discharge_voltage: Millivolts(45_000),
            },
            soc: CentiPercent::new(7_539).unwrap(),
            soh: Percent::new(98).unwrap(),
            voltage: Millivolts(52_104),
            current: Milliamps(20_050),
            temperature: DeciCelsius(234),
            cells: CellExtremesState {
                min_voltage: Millivolts(3_251),
                min_voltage_cell: ShortText::new(b"R1C03").unwrap(),
                max_voltage: Millivolts(3_266),
                max_voltage_cell: ShortText::new(b"R3C16").unwrap(),
                min_temperature: DeciCelsius(210),
                min_temperature_cell: ShortText::new(b"R2T1").unwrap(),
                max_temperature: DeciCelsius(250),
                max_temperature_cell: ShortText::new(b"R1T2").unwrap(),
            },
            alarms: Conditions::empty(),
            warnings: Conditions::CELL_IMBALANCE,
            modules: Modules {
                online: 3,
                ..Modules::default()
            },
            capacity: AmpHours(300),
            manufacturer: ShortText::new(b"PYLON").unwrap(),
            product: ProductIdentity {
                product_id: 1,
                firmware_version: 0x0102,
                hardware_id: 7,
            },
            charge_enable: true,
            discharge_enable: true,
            force_charge_i: false,
            force_charge_ii: false,
            full_charge_request: false,
        }
    }

    fn ids(set: &FrameSet) -> std::vec::Vec<u16> {
        set.iter().map(|f| f.id().raw()).collect()
    }

    fn limits(set: &FrameSet) -> Limits {
        Limits::decode(set.find(id::LIMITS).unwrap()).unwrap()
    }

    #[test]
    fn each_profile_sends_its_set_in_order() {
        let s = state();
        let all = |p| ids(&frames(p, &Options::STANDARD, &s));
        assert_eq!(
            all(Profile::PylontechV12),
            [0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E]
        );
        assert_eq!(
            all(Profile::PylontechV13),
            [0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F]
        );
        assert_eq!(all(Profile::Sma), all(Profile::PylontechV13));
        assert_eq!(
            all(Profile::Victron),
            [
                0x351, 0x355, 0x356, 0x35A, 0x35E, 0x35F, 0x372, 0x373, 0x374, 0x375, 0x376, 0x377,
                0x379
            ]
        );
        for profile in Profile::ALL {
            let got = frames(profile, &Options::STANDARD, &s);
            let expected: std::vec::Vec<u16> =
                profile.frame_ids().iter().map(|i| i.raw()).collect();
            assert_eq!(ids(&got), expected);
        }
    }

    #[test]
    fn normal_state_reproduces_the_us5000_limits() {
        let set = frames(Profile::PylontechV12, &Options::STANDARD, &state());
        assert_eq!(
            set.find(id::LIMITS).unwrap().data(),
            &[0x14, 0x02, 0xC0, 0x12, 0xC0, 0x12, 0xC2, 0x01]
        );
        assert_eq!(set.find(id::REQUESTS).unwrap().data(), &[0xC0, 0x00]);
        // 75.39 % -> 75 %, SOH 98 %; the v1.2 form has 4 bytes.
        assert_eq!(set.find(id::SOC_SOH).unwrap().data(), &[75, 0, 98, 0]);
        // 52.10 V, +20.1 A (charging, positive on CAN as in bmslink), 23.4 degC.
        assert_eq!(
            set.find(id::MEASUREMENTS).unwrap().data(),
            &[0x5A, 0x14, 0xC9, 0x00, 0xEA, 0x00]
        );
        assert_eq!(
            set.find(id::PYLON_ALARMS).unwrap().data(),
            &[0, 0, 0, 0, 3, b'P', b'N', 0]
        );
    }

    #[test]
    fn sma_and_victron_get_the_fine_soc_and_product_info() {
        let set = frames(Profile::Victron, &Options::STANDARD, &state());
        assert_eq!(
            set.find(id::SOC_SOH).unwrap().data(),
            &[75, 0, 98, 0, 0x73, 0x1D]
        );
        assert_eq!(
            set.find(id::PRODUCT_INFO).unwrap().data(),
            &[1, 0, 0x02, 0x01, 0x2C, 0x01, 7, 0]
        );
        let cells = CellExtremes::decode(set.find(id::CELL_EXTREMES).unwrap()).unwrap();
        assert_eq!(cells.min_temperature, Kelvin(294));
        assert_eq!(
            set.find(id::MIN_CELL_VOLTAGE_NAME).unwrap().data(),
            b"R1C03   "
        );
        assert_eq!(
            set.find(id::INSTALLED_CAPACITY).unwrap().data(),
            &[0x2C, 0x01, 0, 0, 0, 0, 0, 0]
        );
        let alarms = SmaAlarms::decode(set.find(id::SMA_ALARMS).unwrap()).unwrap();
        assert!(alarms.alarms.raised().is_empty());
        assert_eq!(alarms.warnings.raised(), Conditions::CELL_IMBALANCE);
    }

    #[test]
    fn limits_round_towards_the_safe_side() {
        let mut s = state();
        s.limits.charge_voltage = Millivolts(53_299);
        s.limits.discharge_voltage = Millivolts(45_001);
        s.limits.charge_current = Milliamps(100_099);
        let l = limits(&frames(Profile::Sma, &Options::STANDARD, &s));
        assert_eq!(l.charge_voltage, DeciVolts(532));
        assert_eq!(l.discharge_voltage, DeciVolts(451));
        assert_eq!(l.charge_current, DeciAmps(1000));
    }

    #[test]
    fn a_current_beyond_s16_saturates_in_the_frames() {
        let mut s = state();
        s.current = Milliamps(-4_000_000);
        s.limits.discharge_current = Milliamps(5_000_000);
        let set = frames(Profile::PylontechV12, &Options::STANDARD, &s);
        let m = Measurements::decode(set.find(id::MEASUREMENTS).unwrap()).unwrap();
        assert_eq!(m.current, DeciAmps(-0x7FFF));
        assert_eq!(limits(&set).discharge_current, DeciAmps(0x7FFF));
    }

    #[test]
    fn blocked_charging_is_cvl_at_pack_voltage_with_zero_amps() {
        let mut s = state();
        s.limits.charge_current = Milliamps(0);
        let set = frames(Profile::PylontechV12, &Options::STANDARD, &s);
        let l = limits(&set);
        // 52.104 V rounds up to 52.2 V: the pack is never above its CVL.
        assert_eq!(l.charge_voltage, DeciVolts(522));
        assert_eq!(l.charge_current, DeciAmps(0));
        assert_eq!(l.discharge_current, DeciAmps(4800));
        assert_eq!(set.find(id::REQUESTS).unwrap().data(), &[0x40, 0x00]);
        let keep = Options {
            stop_charge_at_pack_voltage: false,
            never_zero: false,
        };
        let l = limits(&frames(Profile::PylontechV12, &keep, &s));
        assert_eq!(l.charge_voltage, DeciVolts(532));
    }

    #[test]
    fn a_disabled_direction_is_zero_whatever_its_limit() {
        let mut s = state();
        s.discharge_enable = false;
        let set = frames(Profile::PylontechV12, &Options::STANDARD, &s);
        assert_eq!(limits(&set).discharge_current, DeciAmps(0));
        assert_eq!(set.find(id::REQUESTS).unwrap().data(), &[0x80, 0x00]);
    }

    #[test]
    fn sofar_never_gets_a_zero() {
        let mut s = state();
        s.charge_enable = false;
        s.limits.discharge_current = Milliamps(0);
        s.limits.discharge_voltage = Millivolts(0);
        let l = limits(&frames(Profile::PylontechV12, &Options::SOFAR, &s));
        assert_eq!(l.charge_current, DeciAmps(1));
        assert_eq!(l.discharge_current, DeciAmps(1));
        assert_eq!(l.discharge_voltage, DeciVolts(1));
        assert_ne!(l.charge_voltage, DeciVolts(0));
    }

    #[test]
    fn cvl_is_never_zero_even_with_nothing_known() {
        for profile in Profile::ALL {
            let set = frames(profile, &Options::STANDARD, &BatteryState::default());
            assert_eq!(limits(&set).charge_voltage, DeciVolts(1), "{profile:?}");
            let safe = safe_state(
                profile,
                &Options::STANDARD,
                Millivolts(0),
                &BatteryState::default(),
            );
            assert_ne!(limits(&safe).charge_voltage, DeciVolts(0), "{profile:?}");
        }
    }

    #[test]
    fn safe_state_of_each_profile() {
        let s = state();
        let pack = Millivolts(51_230);
        for profile in Profile::ALL {
            let set = safe_state(profile, &Options::STANDARD, pack, &s);
            let l = limits(&set);
            assert_eq!(l.charge_voltage, DeciVolts(513), "{profile:?}");
            assert_eq!(l.charge_current, DeciAmps(0), "{profile:?}");
            assert_eq!(l.discharge_current, DeciAmps(0), "{profile:?}");
            assert_eq!(l.discharge_voltage, DeciVolts(450), "{profile:?}");
            let m = Measurements::decode(set.find(id::MEASUREMENTS).unwrap()).unwrap();
            assert_eq!(m.voltage, CentiVolts(5123));
            assert_eq!(ids(&set), ids(&frames(profile, &Options::STANDARD, &s)));
        }
        let pylon = safe_state(Profile::PylontechV12, &Options::STANDARD, pack, &s);
        assert_eq!(pylon.find(id::REQUESTS).unwrap().data(), &[0x00, 0x00]);
        let alarms = PylonAlarms::decode(pylon.find(id::PYLON_ALARMS).unwrap()).unwrap();
        assert!(alarms.protection.contains(PylonProtection::SYSTEM_ERROR));
        let sma = safe_state(Profile::Sma, &Options::STANDARD, pack, &s);
        let alarms = SmaAlarms::decode(sma.find(id::SMA_ALARMS).unwrap()).unwrap();
        assert_eq!(alarms.alarms.state(SmaItem::General), ItemState::Raised);
        let sofar = safe_state(Profile::PylontechV12, &Options::SOFAR, pack, &s);
        assert_eq!(limits(&sofar).charge_current, DeciAmps(1));
        assert_eq!(limits(&sofar).discharge_current, DeciAmps(1));
    }

    #[test]
    fn safe_state_stops_at_pack_voltage_even_when_the_options_say_not_to() {
        let keep = Options {
            stop_charge_at_pack_voltage: false,
            never_zero: false,
        };
        let set = safe_state(Profile::Victron, &keep, Millivolts(50_000), &state());
        assert_eq!(limits(&set).charge_voltage, DeciVolts(500));
    }

    #[test]
    fn profile_names_round_trip() {
        for profile in Profile::ALL {
            assert_eq!(Profile::from_name(profile.name()), Some(profile));
        }
        assert_eq!(Profile::from_name("goodwe"), None);
    }

    fn any_state() -> impl Strategy<Value = BatteryState> {
        (
            (any::<u32>(), any::<i32>(), any::<i32>(), any::<u32>()),
            (
                0u16..=10_000,
                0u8..=100,
                any::<u32>(),
                any::<i32>(),
                any::<i16>(),
            ),
            (any::<u16>(), any::<u16>(), any::<u16>()),
            (any::<bool>(), any::<bool>(), any::<u16>(), any::<u16>()),
        )
            .prop_map(|(l, m, a, f)| BatteryState {
                limits: StateLimits {
                    charge_voltage: Millivolts(l.0),
                    charge_current: Milliamps(l.1),
                    discharge_current: Milliamps(l.2),
                    discharge_voltage: Millivolts(l.3),
                },
                soc: CentiPercent::new(m.0).unwrap_or_default(),
                soh: Percent::saturating(m.1),
                voltage: Millivolts(m.2),
                current: Milliamps(m.3),
                temperature: DeciCelsius(m.4),
                alarms: Conditions::from_bits_truncate(a.0),
                warnings: Conditions::from_bits_truncate(a.1),
                modules: Modules {
                    online: a.2,
                    ..Modules::default()
                },
                capacity: AmpHours(f.3),
                charge_enable: f.0,
                discharge_enable: f.1,
                force_charge_i: f.2 & 1 != 0,
                ..BatteryState::default()
            })
    }

    proptest! {
        #[test]
        fn every_frame_of_every_profile_decodes_and_obeys_the_rules(s in any_state()) {
            for profile in Profile::ALL {
                for options in [Options::STANDARD, Options::SOFAR] {
                    for set in [
                        frames(profile, &options, &s),
                        safe_state(profile, &options, s.voltage, &s),
                    ] {
                        for frame in &set {
                            prop_assert!(BatteryMessage::decode(frame).is_ok(), "{}", frame);
                        }
                        let l = limits(&set);
                        prop_assert!(l.charge_voltage.0 != 0);
                        prop_assert!(l.charge_current.0 >= 0 && l.discharge_current.0 >= 0);
                        if options.never_zero {
                            prop_assert!(l.charge_current.0 > 0 && l.discharge_current.0 > 0);
                        }
                    }
                }
            }
        }
    }
}
