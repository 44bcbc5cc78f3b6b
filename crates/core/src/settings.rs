//! The BMS settings: every read/write identifier of the NW protocol as a typed field, with
//! validation against the identifier table's ranges and across fields, and chemistry presets.
//!
//! The register image (identifier -> wire bytes) is the wire form; [`Settings`] is the typed
//! form the protection, balancing and limit logic reads. Conversions go through the identifier
//! table, so ranges and scaling are never retyped here.
//!
//! Cross-field rules (`Settings::validate`):
//! - voltage recoveries lie strictly inside their protection (over-voltage recovery below the
//!   protection, under-voltage recovery above it), and under-voltage protection is below
//!   over-voltage protection, for cells and for the total;
//! - temperature recoveries do not lie beyond their protection (real BMSes ship box
//!   over-temperature recovery = protection = 100 degC, so equality is allowed), and each low
//!   temperature protection is below the matching high one;
//! - the balance start voltage is below the cell over-voltage protection (not necessarily above
//!   the under-voltage protection: a real BMS, vector A04, starts balancing at 3.00 V with
//!   under-voltage protection at 3.10 V).

use alloc::vec::Vec;
use core::fmt;

use bmslink_proto::{BatteryType, CurrentEncoding, Identifier, Value, ValueError};

use crate::chemistry::Chemistry;

/// A setting that is out of its range, inconsistent with another, or missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingsError {
    /// The value is outside the identifier table's range (or of the wrong length).
    Invalid(ValueError),
    /// Two settings contradict each other.
    Inconsistent {
        /// The setting at fault.
        field: Identifier,
        /// The setting it contradicts.
        other: Identifier,
        /// The rule, as words: "must be below", "must not be above", ...
        rule: &'static str,
    },
    /// A register image lacks a setting.
    Missing(Identifier),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::Invalid(error) => error.fmt(f),
            SettingsError::Inconsistent { field, other, rule } => {
                write!(f, "{} {rule} {}", field.name(), other.name())
            }
            SettingsError::Missing(id) => write!(f, "{} is missing", id.name()),
        }
    }
}

impl core::error::Error for SettingsError {}

/// A typed setting field and its raw wire integer.
trait Raw: Copy {
    fn from_raw(raw: i64) -> Self;
    fn to_raw(self) -> i64;
}

macro_rules! raw_int {
    ($($t:ty),*) => {$(
        impl Raw for $t {
            fn from_raw(raw: i64) -> Self { raw as $t }
            fn to_raw(self) -> i64 { i64::from(self) }
        }
    )*};
}
raw_int!(u8, u16, i16, u32);

impl Raw for bool {
    fn from_raw(raw: i64) -> Self {
        raw != 0
    }
    fn to_raw(self) -> i64 {
        i64::from(self)
    }
}

impl Raw for BatteryType {
    fn from_raw(raw: i64) -> Self {
        BatteryType::from_code(raw as u8)
    }
    fn to_raw(self) -> i64 {
        i64::from(self.code())
    }
}

macro_rules! settings {
    (
        numbers { $( $(#[$doc:meta])* $field:ident : $ty:ty = $id:ident, )* }
        texts { $( $(#[$tdoc:meta])* $tfield:ident : $len:literal = $tid:ident, )* }
    ) => {
        /// Every read/write setting of an NW BMS, in wire units (mV, A, s, degC, Ah, %).
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Settings {
            $( $(#[$doc])* pub $field: $ty, )*
            $( $(#[$tdoc])* pub $tfield: [u8; $len], )*
        }

        impl Settings {
            /// Reads every setting from a register image (`get` returns an identifier's value
            /// bytes), checking each against the table. Cross-field rules are not checked:
            /// call [`validate`](Self::validate).
            pub fn from_registers<'a>(
                get: impl Fn(Identifier) -> Option<&'a [u8]>,
            ) -> Result<Settings, SettingsError> {
                Ok(Settings {
                    $( $field: <$ty as Raw>::from_raw(read_number(&get, Identifier::$id)?), )*
                    $( $tfield: read_text(&get, Identifier::$tid)?, )*
                })
            }

            /// Every setting as (identifier, wire bytes), in wire order.
            pub fn registers(&self) -> Vec<(Identifier, Vec<u8>)> {
                let mut out = alloc::vec![
                    $( (Identifier::$id, number_bytes(Identifier::$id, self.$field.to_raw())), )*
                    $( (Identifier::$tid, self.$tfield.to_vec()), )*
                ];
                out.sort_by_key(|(id, _)| *id);
                out
            }

            /// Sets one setting from wire bytes, checked against the table (not across
            /// fields). Returns `false` if `id` is not a setting.
            pub fn set_register(&mut self, id: Identifier, bytes: &[u8]) -> Result<bool, SettingsError> {
                Value::check_wire(id, bytes).map_err(SettingsError::Invalid)?;
                match id {
                    $( Identifier::$id => self.$field = <$ty as Raw>::from_raw(raw_of(id, bytes)), )*
                    $( Identifier::$tid => self.$tfield.copy_from_slice(bytes), )*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// Whether `id` is one of the settings.
            pub fn covers(id: Identifier) -> bool {
                matches!(id, $( Identifier::$id )|* $( | Identifier::$tid )*)
            }
        }
    };
}

settings! {
    numbers {
        /// 0x8E, 10 mV units.
        total_over_voltage_protection: u16 = TotalOverVoltageProtection,
        /// 0x8F, 10 mV units.
        total_under_voltage_protection: u16 = TotalUnderVoltageProtection,
        /// 0x90, mV.
        cell_over_voltage_protection: u16 = CellOverVoltageProtection,
        /// 0x91, mV.
        cell_over_voltage_recovery: u16 = CellOverVoltageRecovery,
        /// 0x92, s.
        cell_over_voltage_delay: u16 = CellOverVoltageDelay,
        /// 0x93, mV.
        cell_under_voltage_protection: u16 = CellUnderVoltageProtection,
        /// 0x94, mV.
        cell_under_voltage_recovery: u16 = CellUnderVoltageRecovery,
        /// 0x95, s.
        cell_under_voltage_delay: u16 = CellUnderVoltageDelay,
        /// 0x96, mV.
        cell_voltage_difference_protection: u16 = CellVoltageDifferenceProtection,
        /// 0x97, A.
        discharge_over_current_protection: u16 = DischargeOverCurrentProtection,
        /// 0x98, s.
        discharge_over_current_delay: u16 = DischargeOverCurrentDelay,
        /// 0x99, A.
        charge_over_current_protection: u16 = ChargeOverCurrentProtection,
        /// 0x9A, s.
        charge_over_current_delay: u16 = ChargeOverCurrentDelay,
        /// 0x9B, mV.
        balance_start_voltage: u16 = BalanceStartVoltage,
        /// 0x9C, mV.
        balance_trigger_difference: u16 = BalanceTriggerDifference,
        /// 0x9D.
        balancing_enabled: bool = BalancingSwitch,
        /// 0x9E, degC.
        mosfet_over_temperature_protection: u16 = MosfetOverTemperatureProtection,
        /// 0x9F, degC.
        mosfet_over_temperature_recovery: u16 = MosfetOverTemperatureRecovery,
        /// 0xA0, degC.
        box_over_temperature_protection: u16 = BoxOverTemperatureProtection,
        /// 0xA1, degC.
        box_over_temperature_recovery: u16 = BoxOverTemperatureRecovery,
        /// 0xA2, degC.
        temperature_difference_protection: u16 = TemperatureDifferenceProtection,
        /// 0xA3, degC.
        charge_high_temperature_protection: u16 = ChargeHighTemperatureProtection,
        /// 0xA4, degC.
        discharge_high_temperature_protection: u16 = DischargeHighTemperatureProtection,
        /// 0xA5, degC.
        charge_low_temperature_protection: i16 = ChargeLowTemperatureProtection,
        /// 0xA6, degC.
        charge_low_temperature_recovery: i16 = ChargeLowTemperatureRecovery,
        /// 0xA7, degC.
        discharge_low_temperature_protection: i16 = DischargeLowTemperatureProtection,
        /// 0xA8, degC.
        discharge_low_temperature_recovery: i16 = DischargeLowTemperatureRecovery,
        /// 0xA9.
        cell_count: u8 = CellCountSetting,
        /// 0xAA, Ah.
        nominal_capacity_ah: u32 = NominalCapacity,
        /// 0xAB: the user's charge switch (the live state is the protection's decision).
        charge_mosfet_enabled: bool = ChargeMosfetSwitch,
        /// 0xAC: the user's discharge switch.
        discharge_mosfet_enabled: bool = DischargeMosfetSwitch,
        /// 0xAD, mA.
        current_calibration_ma: u16 = CurrentCalibration,
        /// 0xAE.
        board_address: u8 = BoardAddress,
        /// 0xAF.
        battery_type: BatteryType = BatteryType,
        /// 0xB0, s.
        sleep_wait_s: u16 = SleepWaitTime,
        /// 0xB1, %.
        low_capacity_alarm_percent: u8 = LowCapacityAlarm,
        /// 0xB3.
        dedicated_charger: bool = DedicatedChargerSwitch,
        /// 0xB6, minutes.
        working_time_min: u32 = WorkingTime,
        /// 0xB8.
        start_current_calibration: bool = StartCurrentCalibration,
        /// 0xB9, Ah.
        actual_capacity_ah: u32 = ActualCapacity,
    }
    texts {
        /// 0xB2, ASCII, NUL padded.
        password: 10 = Password,
        /// 0xB4, ASCII.
        device_id: 8 = DeviceId,
        /// 0xB5, ASCII "YYMM".
        manufacture_date: 4 = ManufactureDate,
        /// 0xBA, ASCII, may contain NULs.
        manufacturer_id: 24 = ManufacturerId,
    }
}

fn raw_of(id: Identifier, bytes: &[u8]) -> i64 {
    match Value::decode(id, bytes, CurrentEncoding::SignMagnitude) {
        Ok(Value::Number(n)) => n.raw,
        Ok(Value::Switch(on)) => i64::from(on),
        Ok(Value::BatteryType(kind)) => i64::from(kind.code()),
        _ => 0,
    }
}

fn read_number<'a>(
    get: &impl Fn(Identifier) -> Option<&'a [u8]>,
    id: Identifier,
) -> Result<i64, SettingsError> {
    let bytes = get(id).ok_or(SettingsError::Missing(id))?;
    Value::check_wire(id, bytes).map_err(SettingsError::Invalid)?;
    Ok(raw_of(id, bytes))
}

fn read_text<'a, const N: usize>(
    get: &impl Fn(Identifier) -> Option<&'a [u8]>,
    id: Identifier,
) -> Result<[u8; N], SettingsError> {
    let bytes = get(id).ok_or(SettingsError::Missing(id))?;
    bytes.try_into().map_err(|_| {
        SettingsError::Invalid(ValueError::Length {
            id,
            expected: N,
            actual: bytes.len(),
        })
    })
}

fn number_bytes(id: Identifier, raw: i64) -> Vec<u8> {
    let len = id.info().fixed_len().unwrap_or(0);
    raw.to_be_bytes()[8 - len..].to_vec()
}

fn text<const N: usize>(value: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let len = value.len().min(N);
    out[..len].copy_from_slice(&value.as_bytes()[..len]);
    out
}

/// One cross-field rule: `field` must relate to `other` as `holds` says.
struct Rule {
    field: Identifier,
    other: Identifier,
    rule: &'static str,
    holds: fn(&Settings) -> bool,
}

const RULES: &[Rule] = &[
    Rule {
        field: Identifier::CellOverVoltageRecovery,
        other: Identifier::CellOverVoltageProtection,
        rule: "must be below",
        holds: |s| s.cell_over_voltage_recovery < s.cell_over_voltage_protection,
    },
    Rule {
        field: Identifier::CellUnderVoltageRecovery,
        other: Identifier::CellUnderVoltageProtection,
        rule: "must be above",
        holds: |s| s.cell_under_voltage_recovery > s.cell_under_voltage_protection,
    },
    Rule {
        field: Identifier::CellUnderVoltageRecovery,
        other: Identifier::CellOverVoltageRecovery,
        rule: "must be below",
        holds: |s| s.cell_under_voltage_recovery < s.cell_over_voltage_recovery,
    },
    Rule {
        field: Identifier::TotalUnderVoltageProtection,
        other: Identifier::TotalOverVoltageProtection,
        rule: "must be below",
        holds: |s| s.total_under_voltage_protection < s.total_over_voltage_protection,
    },
    Rule {
        field: Identifier::BalanceStartVoltage,
        other: Identifier::CellOverVoltageProtection,
        rule: "must be below",
        holds: |s| s.balance_start_voltage < s.cell_over_voltage_protection,
    },
    Rule {
        field: Identifier::MosfetOverTemperatureRecovery,
        other: Identifier::MosfetOverTemperatureProtection,
        rule: "must not be above",
        holds: |s| s.mosfet_over_temperature_recovery <= s.mosfet_over_temperature_protection,
    },
    Rule {
        field: Identifier::BoxOverTemperatureRecovery,
        other: Identifier::BoxOverTemperatureProtection,
        rule: "must not be above",
        holds: |s| s.box_over_temperature_recovery <= s.box_over_temperature_protection,
    },
    Rule {
        field: Identifier::ChargeLowTemperatureRecovery,
        other: Identifier::ChargeLowTemperatureProtection,
        rule: "must not be below",
        holds: |s| s.charge_low_temperature_recovery >= s.charge_low_temperature_protection,
    },
    Rule {
        field: Identifier::DischargeLowTemperatureRecovery,
        other: Identifier::DischargeLowTemperatureProtection,
        rule: "must not be below",
        holds: |s| s.discharge_low_temperature_recovery >= s.discharge_low_temperature_protection,
    },
    Rule {
        field: Identifier::ChargeLowTemperatureRecovery,
        other: Identifier::ChargeHighTemperatureProtection,
        rule: "must be below",
        holds: |s| {
            i32::from(s.charge_low_temperature_recovery)
                < i32::from(s.charge_high_temperature_protection)
        },
    },
    Rule {
        field: Identifier::DischargeLowTemperatureRecovery,
        other: Identifier::DischargeHighTemperatureProtection,
        rule: "must be below",
        holds: |s| {
            i32::from(s.discharge_low_temperature_recovery)
                < i32::from(s.discharge_high_temperature_protection)
        },
    },
];

impl Settings {
    /// Checks every field against the table and every cross-field rule; the first failure is
    /// returned, naming the field.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (id, bytes) in self.registers() {
            Value::check_wire(id, &bytes).map_err(SettingsError::Invalid)?;
        }
        match RULES.iter().find(|rule| !(rule.holds)(self)) {
            Some(rule) => Err(SettingsError::Inconsistent {
                field: rule.field,
                other: rule.other,
                rule: rule.rule,
            }),
            None => Ok(()),
        }
    }

    /// Settings for a pack of `cells` cells of `chemistry` and `capacity_ah`, from the
    /// protection defaults of `battery.md` (synthesis of vendor and open-firmware values).
    /// Rated currents: 1 C discharge, 0.5 C charge; over-current trips at 1.1x rated.
    pub fn preset(chemistry: Chemistry, cells: u8, capacity_ah: u32) -> Settings {
        let p = Preset::of(chemistry);
        let total = |cell_mv: u16| (u32::from(cells) * u32::from(cell_mv) / 10) as u16;
        let rated_discharge = capacity_ah.clamp(1, 909);
        let rated_charge = (capacity_ah / 2).clamp(1, 909);
        Settings {
            total_over_voltage_protection: total(p.cell_over_voltage),
            total_under_voltage_protection: total(p.cell_under_voltage),
            cell_over_voltage_protection: p.cell_over_voltage,
            cell_over_voltage_recovery: p.cell_over_voltage_recovery,
            cell_over_voltage_delay: 2,
            cell_under_voltage_protection: p.cell_under_voltage,
            cell_under_voltage_recovery: p.cell_under_voltage_recovery,
            cell_under_voltage_delay: 2,
            cell_voltage_difference_protection: 300,
            discharge_over_current_protection: (rated_discharge * 11 / 10) as u16,
            discharge_over_current_delay: 10,
            charge_over_current_protection: (rated_charge * 11 / 10).max(1) as u16,
            charge_over_current_delay: 10,
            balance_start_voltage: p.balance_start,
            balance_trigger_difference: 15,
            balancing_enabled: true,
            mosfet_over_temperature_protection: 90,
            mosfet_over_temperature_recovery: 70,
            box_over_temperature_protection: 70,
            box_over_temperature_recovery: 60,
            temperature_difference_protection: 20,
            charge_high_temperature_protection: p.charge_high,
            discharge_high_temperature_protection: 60,
            charge_low_temperature_protection: p.charge_low,
            charge_low_temperature_recovery: p.charge_low + 5,
            discharge_low_temperature_protection: p.discharge_low,
            discharge_low_temperature_recovery: p.discharge_low + 5,
            cell_count: cells,
            nominal_capacity_ah: capacity_ah,
            charge_mosfet_enabled: true,
            discharge_mosfet_enabled: true,
            current_calibration_ma: 1000,
            board_address: 1,
            battery_type: chemistry.battery_type(),
            sleep_wait_s: 300,
            low_capacity_alarm_percent: 20,
            dedicated_charger: false,
            working_time_min: 0,
            start_current_calibration: false,
            actual_capacity_ah: capacity_ah,
            password: text("123456"),
            device_id: text("bmslink"),
            manufacture_date: text("2611"),
            manufacturer_id: text("bmslink simulated BMS"),
        }
    }

    /// Applies a chemistry preset's protection, balancing and temperature values, keeping
    /// the pack's identity, capacity, cell count, switches and password ("self-configuration
    /// of a pack for its cell type").
    pub fn with_chemistry(&self, chemistry: Chemistry) -> Settings {
        let preset = Settings::preset(chemistry, self.cell_count, self.nominal_capacity_ah);
        Settings {
            charge_mosfet_enabled: self.charge_mosfet_enabled,
            discharge_mosfet_enabled: self.discharge_mosfet_enabled,
            current_calibration_ma: self.current_calibration_ma,
            board_address: self.board_address,
            sleep_wait_s: self.sleep_wait_s,
            dedicated_charger: self.dedicated_charger,
            working_time_min: self.working_time_min,
            actual_capacity_ah: self.actual_capacity_ah,
            password: self.password,
            device_id: self.device_id,
            manufacture_date: self.manufacture_date,
            manufacturer_id: self.manufacturer_id,
            ..preset
        }
    }

    /// The chemistry the battery type names, if it is known.
    pub fn chemistry(&self) -> Option<Chemistry> {
        Chemistry::from_battery_type(self.battery_type)
    }
}

/// The chemistry-dependent values of a preset (`battery.md`, "Protection defaults").
struct Preset {
    cell_over_voltage: u16,
    cell_over_voltage_recovery: u16,
    cell_under_voltage: u16,
    cell_under_voltage_recovery: u16,
    balance_start: u16,
    charge_low: i16,
    charge_high: u16,
    discharge_low: i16,
}

impl Preset {
    fn of(chemistry: Chemistry) -> Preset {
        match chemistry {
            Chemistry::Lfp => Preset {
                cell_over_voltage: 3650,
                cell_over_voltage_recovery: 3400,
                cell_under_voltage: 2600,
                cell_under_voltage_recovery: 3000,
                balance_start: 3400,
                charge_low: 0,
                charge_high: 45,
                discharge_low: -20,
            },
            Chemistry::Nmc => Preset {
                cell_over_voltage: 4250,
                cell_over_voltage_recovery: 4100,
                cell_under_voltage: 2900,
                cell_under_voltage_recovery: 3300,
                balance_start: 3950,
                charge_low: 0,
                charge_high: 45,
                discharge_low: -20,
            },
            Chemistry::Lto => Preset {
                cell_over_voltage: 2800,
                cell_over_voltage_recovery: 2650,
                cell_under_voltage: 1850,
                cell_under_voltage_recovery: 2100,
                balance_start: 2500,
                charge_low: -30,
                charge_high: 55,
                discharge_low: -30,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bmslink_proto::Info;

    fn from_vector(id: &str) -> Settings {
        let frame = bmslink_proto::vectors::bytes(id).unwrap();
        let info = Info::parse(&frame[11..frame.len() - 9], 11).unwrap();
        let fields: Vec<(Identifier, Vec<u8>)> =
            info.fields().map(|f| (f.id, f.bytes.to_vec())).collect();
        Settings::from_registers(|id| {
            fields
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, b)| b.as_slice())
        })
        .unwrap()
    }

    #[test]
    fn every_real_device_configuration_is_valid() {
        for id in ["A01", "A02", "A03", "A04", "A06"] {
            let settings = from_vector(id);
            assert_eq!(settings.validate(), Ok(()), "{id}");
        }
        let a03 = from_vector("A03");
        assert_eq!(a03.cell_over_voltage_protection, 3650);
        assert_eq!(a03.charge_low_temperature_recovery, 5);
        assert_eq!(&a03.password, b"123456\0\0\0\0");
    }

    #[test]
    fn registers_round_trip_through_the_wire_form() {
        let a01 = from_vector("A01");
        let registers = a01.registers();
        assert_eq!(registers.len(), 44);
        let back = Settings::from_registers(|id| {
            registers
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, b)| b.as_slice())
        })
        .unwrap();
        assert_eq!(back, a01);
    }

    #[test]
    fn presets_are_valid_for_every_chemistry_and_size() {
        for chemistry in Chemistry::ALL {
            for (cells, capacity) in [(3, 1), (16, 280), (32, 1000)] {
                let settings = Settings::preset(chemistry, cells, capacity);
                assert_eq!(
                    settings.validate(),
                    Ok(()),
                    "{chemistry} {cells}s {capacity} Ah"
                );
            }
        }
        let lfp = Settings::preset(Chemistry::Lfp, 16, 280);
        assert_eq!(lfp.total_over_voltage_protection, 5840);
        assert_eq!(lfp.discharge_over_current_protection, 308);
    }

    #[test]
    fn cross_field_errors_name_both_fields() {
        let mut settings = Settings::preset(Chemistry::Lfp, 16, 100);
        settings.cell_over_voltage_recovery = 3700;
        let error = settings.validate().unwrap_err();
        assert_eq!(
            error.to_string(),
            "cell_over_voltage_recovery must be below cell_over_voltage_protection"
        );
        let mut cold = Settings::preset(Chemistry::Lfp, 16, 100);
        cold.charge_low_temperature_recovery = -5;
        assert!(matches!(
            cold.validate(),
            Err(SettingsError::Inconsistent {
                field: Identifier::ChargeLowTemperatureRecovery,
                ..
            })
        ));
    }

    #[test]
    fn out_of_range_fields_are_refused_by_the_table() {
        let mut settings = Settings::preset(Chemistry::Nmc, 16, 100);
        settings.cell_under_voltage_delay = 61;
        assert!(matches!(
            settings.validate(),
            Err(SettingsError::Invalid(ValueError::OutOfRange {
                id: Identifier::CellUnderVoltageDelay,
                ..
            }))
        ));
        assert!(settings
            .set_register(Identifier::LowCapacityAlarm, &[81])
            .is_err());
        assert_eq!(
            settings.set_register(Identifier::LowCapacityAlarm, &[30]),
            Ok(true)
        );
        assert_eq!(settings.low_capacity_alarm_percent, 30);
        assert_eq!(settings.set_register(Identifier::Soc, &[30]), Ok(false));
    }

    #[test]
    fn chemistry_change_keeps_identity_and_switches() {
        let mut settings = Settings::preset(Chemistry::Nmc, 16, 100);
        settings.charge_mosfet_enabled = false;
        settings.password = text("secret");
        let lfp = settings.with_chemistry(Chemistry::Lfp);
        assert_eq!(lfp.cell_over_voltage_protection, 3650);
        assert!(!lfp.charge_mosfet_enabled);
        assert_eq!(lfp.password, settings.password);
        assert_eq!(lfp.battery_type, BatteryType::Lfp);
    }
}
