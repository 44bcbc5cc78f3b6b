//! The identifier table: every NW data identifier, its wire length, access, encoding, unit,
//! scaling and valid range, in one place.
//!
//! This table is the single source of truth for the project (architecture principle 2): the
//! decoder walks frames with its lengths, the encoder validates writes against its ranges, and the
//! CLI, the gateway's Modbus point table and the platform's settings forms are derived from it.
//!
//! Source: `shared/protocols/nw.md`, "Identifiers in a read-all reply". Where the vendor document
//! and real frames disagree, the real frames win; each such deviation is noted on the entry.
//!
//! Ranges are in **raw wire units** (what is on the wire before scaling); use
//! [`IdentifierInfo::decimals`] and [`IdentifierInfo::unit`] to show them in engineering units.

use core::fmt;

/// How the value of an identifier is encoded on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// 0x79: a length byte (3 x n), then n groups `[cell number, mV hi, mV lo]`.
    CellVoltages,
    /// 0x80..0x82: u16, 0..=100 is degC, 101..=140 is `-(raw - 100)` degC.
    Temperature,
    /// 0x84: u16 whose meaning depends on the protocol version (0xC0) of the same frame.
    Current,
    /// Unsigned big-endian integer of the field's length, scaled by `decimals`.
    Unsigned,
    /// Two's-complement big-endian i16 (0xA5..0xA8).
    Signed,
    /// One byte, 0 = off, 1 = on.
    Switch,
    /// One byte battery chemistry (0xAF).
    BatteryType,
    /// 0x8B warning bits.
    Warnings,
    /// 0x8C live status bits.
    Status,
    /// Fixed-width ASCII, NUL padded; embedded NULs occur.
    Text,
}

/// Who may read or write an identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-only measurement or fact.
    Read,
    /// A setting that can be read and written.
    ReadWrite,
    /// A command: write-only, never reported.
    Write,
}

/// Engineering unit of a numeric identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unit {
    /// Volts.
    Volt,
    /// Amps.
    Ampere,
    /// Degrees Celsius.
    Celsius,
    /// Seconds.
    Second,
    /// Minutes.
    Minute,
    /// Percent.
    Percent,
    /// Amp-hours.
    AmpHour,
    /// A plain count or code without unit.
    None,
}

impl Unit {
    /// The symbol printed after a value (empty for [`Unit::None`]).
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Volt => "V",
            Unit::Ampere => "A",
            Unit::Celsius => "°C",
            Unit::Second => "s",
            Unit::Minute => "min",
            Unit::Percent => "%",
            Unit::AmpHour => "Ah",
            Unit::None => "",
        }
    }
}

/// What a setting is about; used to group settings in user interfaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Group {
    /// Measurements and facts reported by the BMS.
    Telemetry,
    /// Voltage protections.
    Voltage,
    /// Current protections and calibration.
    Current,
    /// Temperature protections.
    Temperature,
    /// Cell balancing.
    Balancing,
    /// Capacity and alarms derived from it.
    Capacity,
    /// System, identity and switches.
    System,
    /// Write-only commands.
    Command,
}

/// Wire length of an identifier's value (not counting the identifier byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldLen {
    /// Always this many bytes.
    Fixed(u8),
    /// 0x79: one length byte, then that many bytes.
    Prefixed,
}

/// One row of the identifier table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentifierInfo {
    /// The identifier.
    pub id: Identifier,
    /// Stable snake_case name, used on the command line, in JSON and in APIs.
    pub name: &'static str,
    /// One-line human description.
    pub description: &'static str,
    /// Wire length of the value.
    pub len: FieldLen,
    /// Read, read/write or write-only.
    pub access: Access,
    /// Wire encoding.
    pub encoding: Encoding,
    /// Engineering unit after scaling.
    pub unit: Unit,
    /// Scaling: engineering value = raw / 10^decimals.
    pub decimals: u8,
    /// Valid range of the raw value, inclusive; `None` where any wire value is valid.
    pub range: Option<(i64, i64)>,
    /// User-interface group.
    pub group: Group,
}

impl IdentifierInfo {
    /// Whether a controller may write this identifier.
    pub fn is_writable(&self) -> bool {
        matches!(self.access, Access::ReadWrite | Access::Write)
    }

    /// Whether a BMS reports this identifier in a read-all reply.
    pub fn is_readable(&self) -> bool {
        matches!(self.access, Access::Read | Access::ReadWrite)
    }

    /// The fixed wire length, or `None` for the length-prefixed cell voltage list.
    pub fn fixed_len(&self) -> Option<usize> {
        match self.len {
            FieldLen::Fixed(n) => Some(usize::from(n)),
            FieldLen::Prefixed => None,
        }
    }
}

macro_rules! identifiers {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $code:literal, $name:literal, $len:expr, $access:ident, $encoding:ident,
        $unit:ident, $decimals:literal, $range:expr, $group:ident, $description:literal;
    )*) => {
        /// An NW data identifier (the tag byte before each value in the info field).
        ///
        /// Variants are in wire order, which is also the order real BMSes report them in.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum Identifier {
            $( $(#[$doc])* $variant = $code, )*
        }

        /// Every identifier of the protocol, in ascending wire order.
        pub static TABLE: &[IdentifierInfo] = &[
            $( IdentifierInfo {
                id: Identifier::$variant,
                name: $name,
                description: $description,
                len: $len,
                access: Access::$access,
                encoding: Encoding::$encoding,
                unit: Unit::$unit,
                decimals: $decimals,
                range: $range,
                group: Group::$group,
            }, )*
        ];

        impl Identifier {
            /// The identifier for a wire byte, or `None` if the byte is not in the table.
            #[inline]
            pub const fn from_u8(byte: u8) -> Option<Identifier> {
                match byte {
                    $( $code => Some(Identifier::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

use FieldLen::{Fixed, Prefixed};

identifiers! {
    /// 0x79 cell voltages.
    CellVoltages = 0x79, "cell_voltages", Prefixed, Read, CellVoltages, Volt, 3, None, Telemetry, "Cell voltages";
    /// 0x80 power tube (MOSFET) temperature.
    MosfetTemperature = 0x80, "mosfet_temperature", Fixed(2), Read, Temperature, Celsius, 0, Some((0, 140)), Telemetry, "Power tube (MOSFET) temperature";
    /// 0x81 battery box temperature (sensor 1).
    BoxTemperature = 0x81, "box_temperature", Fixed(2), Read, Temperature, Celsius, 0, Some((0, 140)), Telemetry, "Battery box temperature (sensor 1)";
    /// 0x82 battery temperature (sensor 2).
    BatteryTemperature = 0x82, "battery_temperature", Fixed(2), Read, Temperature, Celsius, 0, Some((0, 140)), Telemetry, "Battery temperature (sensor 2)";
    /// 0x83 total battery voltage, 10 mV units.
    TotalVoltage = 0x83, "total_voltage", Fixed(2), Read, Unsigned, Volt, 2, None, Telemetry, "Total battery voltage";
    /// 0x84 current; encoding chosen by 0xC0.
    Current = 0x84, "current", Fixed(2), Read, Current, Ampere, 2, None, Telemetry, "Current (positive = charging)";
    /// 0x85 state of charge.
    Soc = 0x85, "soc", Fixed(1), Read, Unsigned, Percent, 0, Some((0, 100)), Telemetry, "State of charge";
    /// 0x86 number of battery temperature sensors.
    TemperatureSensorCount = 0x86, "temperature_sensor_count", Fixed(1), Read, Unsigned, None, 0, None, Telemetry, "Number of battery temperature sensors";
    /// 0x87 cycle count.
    CycleCount = 0x87, "cycle_count", Fixed(2), Read, Unsigned, None, 0, None, Telemetry, "Cycle count";
    /// 0x89 total cycle capacity.
    TotalCycleCapacity = 0x89, "total_cycle_capacity", Fixed(4), Read, Unsigned, AmpHour, 0, None, Telemetry, "Total cycle capacity";
    /// 0x8A number of cells (strings).
    CellCount = 0x8A, "cell_count", Fixed(2), Read, Unsigned, None, 0, None, Telemetry, "Number of cells";
    /// 0x8B warning bits.
    Warnings = 0x8B, "warnings", Fixed(2), Read, Warnings, None, 0, None, Telemetry, "Warning bits";
    /// 0x8C live status bits (MOSFETs, balancer).
    Status = 0x8C, "status", Fixed(2), Read, Status, None, 0, None, Telemetry, "Status bits (live MOSFET and balancer state)";
    /// 0x8E total over-voltage protection, 10 mV. No documented range: 3 to 32 cells of 1.0 to 4.5 V.
    TotalOverVoltageProtection = 0x8E, "total_over_voltage_protection", Fixed(2), ReadWrite, Unsigned, Volt, 2, Some((300, 14_400)), Voltage, "Total over-voltage protection";
    /// 0x8F total under-voltage protection, 10 mV. Range as 0x8E.
    TotalUnderVoltageProtection = 0x8F, "total_under_voltage_protection", Fixed(2), ReadWrite, Unsigned, Volt, 2, Some((300, 14_400)), Voltage, "Total under-voltage protection";
    /// 0x90 cell over-voltage protection, mV. Range as the documented 0x93.
    CellOverVoltageProtection = 0x90, "cell_over_voltage_protection", Fixed(2), ReadWrite, Unsigned, Volt, 3, Some((1000, 4500)), Voltage, "Cell over-voltage protection";
    /// 0x91 cell over-voltage recovery, mV.
    CellOverVoltageRecovery = 0x91, "cell_over_voltage_recovery", Fixed(2), ReadWrite, Unsigned, Volt, 3, Some((1000, 4500)), Voltage, "Cell over-voltage recovery";
    /// 0x92 cell over-voltage protection delay, s. Range as the documented 0x95.
    CellOverVoltageDelay = 0x92, "cell_over_voltage_delay", Fixed(2), ReadWrite, Unsigned, Second, 0, Some((1, 60)), Voltage, "Cell over-voltage protection delay";
    /// 0x93 cell under-voltage protection, mV, 1000..4500.
    CellUnderVoltageProtection = 0x93, "cell_under_voltage_protection", Fixed(2), ReadWrite, Unsigned, Volt, 3, Some((1000, 4500)), Voltage, "Cell under-voltage protection";
    /// 0x94 cell under-voltage recovery, mV, 1000..4500.
    CellUnderVoltageRecovery = 0x94, "cell_under_voltage_recovery", Fixed(2), ReadWrite, Unsigned, Volt, 3, Some((1000, 4500)), Voltage, "Cell under-voltage recovery";
    /// 0x95 cell under-voltage protection delay, s, 1..60.
    CellUnderVoltageDelay = 0x95, "cell_under_voltage_delay", Fixed(2), ReadWrite, Unsigned, Second, 0, Some((1, 60)), Voltage, "Cell under-voltage protection delay";
    /// 0x96 cell voltage difference protection, mV, 0..1000.
    CellVoltageDifferenceProtection = 0x96, "cell_voltage_difference_protection", Fixed(2), ReadWrite, Unsigned, Volt, 3, Some((0, 1000)), Voltage, "Cell voltage difference protection";
    /// 0x97 discharge over-current protection, A, 1..1000.
    DischargeOverCurrentProtection = 0x97, "discharge_over_current_protection", Fixed(2), ReadWrite, Unsigned, Ampere, 0, Some((1, 1000)), Current, "Discharge over-current protection";
    /// 0x98 discharge over-current delay, s. The document says 1..60; real BMSes report 300
    /// (vectors A02, A03, A04, A06), so the range reaches 300.
    DischargeOverCurrentDelay = 0x98, "discharge_over_current_delay", Fixed(2), ReadWrite, Unsigned, Second, 0, Some((1, 300)), Current, "Discharge over-current delay";
    /// 0x99 charge over-current protection, A, 1..1000.
    ChargeOverCurrentProtection = 0x99, "charge_over_current_protection", Fixed(2), ReadWrite, Unsigned, Ampere, 0, Some((1, 1000)), Current, "Charge over-current protection";
    /// 0x9A charge over-current delay, s. As 0x98, real devices go beyond the documented 60.
    ChargeOverCurrentDelay = 0x9A, "charge_over_current_delay", Fixed(2), ReadWrite, Unsigned, Second, 0, Some((1, 300)), Current, "Charge over-current delay";
    /// 0x9B balance start voltage, mV, 2000..4500.
    BalanceStartVoltage = 0x9B, "balance_start_voltage", Fixed(2), ReadWrite, Unsigned, Volt, 3, Some((2000, 4500)), Balancing, "Balance start voltage";
    /// 0x9C balance trigger difference, mV. The document says 10..1000; real BMSes report 5 and 8
    /// (vectors A01, C01), so the range starts at 1.
    BalanceTriggerDifference = 0x9C, "balance_trigger_difference", Fixed(2), ReadWrite, Unsigned, Volt, 3, Some((1, 1000)), Balancing, "Balance trigger (opening) difference";
    /// 0x9D active balancing switch.
    BalancingSwitch = 0x9D, "balancing_switch", Fixed(1), ReadWrite, Switch, None, 0, Some((0, 1)), Balancing, "Active balancing switch";
    /// 0x9E power tube over-temperature protection, degC, 0..100.
    MosfetOverTemperatureProtection = 0x9E, "mosfet_over_temperature_protection", Fixed(2), ReadWrite, Unsigned, Celsius, 0, Some((0, 100)), Temperature, "Power tube over-temperature protection";
    /// 0x9F power tube over-temperature recovery, degC, 0..100.
    MosfetOverTemperatureRecovery = 0x9F, "mosfet_over_temperature_recovery", Fixed(2), ReadWrite, Unsigned, Celsius, 0, Some((0, 100)), Temperature, "Power tube over-temperature recovery";
    /// 0xA0 box over-temperature protection, degC, 40..100.
    BoxOverTemperatureProtection = 0xA0, "box_over_temperature_protection", Fixed(2), ReadWrite, Unsigned, Celsius, 0, Some((40, 100)), Temperature, "Box over-temperature protection";
    /// 0xA1 box over-temperature recovery, degC, 40..100.
    BoxOverTemperatureRecovery = 0xA1, "box_over_temperature_recovery", Fixed(2), ReadWrite, Unsigned, Celsius, 0, Some((40, 100)), Temperature, "Box over-temperature recovery";
    /// 0xA2 battery temperature difference protection, degC, 5..20.
    TemperatureDifferenceProtection = 0xA2, "temperature_difference_protection", Fixed(2), ReadWrite, Unsigned, Celsius, 0, Some((5, 20)), Temperature, "Battery temperature difference protection";
    /// 0xA3 charge high-temperature protection, degC, 0..100.
    ChargeHighTemperatureProtection = 0xA3, "charge_high_temperature_protection", Fixed(2), ReadWrite, Unsigned, Celsius, 0, Some((0, 100)), Temperature, "Charge high-temperature protection";
    /// 0xA4 discharge high-temperature protection, degC, 0..100.
    DischargeHighTemperatureProtection = 0xA4, "discharge_high_temperature_protection", Fixed(2), ReadWrite, Unsigned, Celsius, 0, Some((0, 100)), Temperature, "Discharge high-temperature protection";
    /// 0xA5 charge low-temperature protection, signed degC, -45..25.
    ChargeLowTemperatureProtection = 0xA5, "charge_low_temperature_protection", Fixed(2), ReadWrite, Signed, Celsius, 0, Some((-45, 25)), Temperature, "Charge low-temperature protection";
    /// 0xA6 charge low-temperature recovery, signed degC, -45..25.
    ChargeLowTemperatureRecovery = 0xA6, "charge_low_temperature_recovery", Fixed(2), ReadWrite, Signed, Celsius, 0, Some((-45, 25)), Temperature, "Charge low-temperature recovery";
    /// 0xA7 discharge low-temperature protection, signed degC, -45..25.
    DischargeLowTemperatureProtection = 0xA7, "discharge_low_temperature_protection", Fixed(2), ReadWrite, Signed, Celsius, 0, Some((-45, 25)), Temperature, "Discharge low-temperature protection";
    /// 0xA8 discharge low-temperature recovery, signed degC, -45..25.
    DischargeLowTemperatureRecovery = 0xA8, "discharge_low_temperature_recovery", Fixed(2), ReadWrite, Signed, Celsius, 0, Some((-45, 25)), Temperature, "Discharge low-temperature recovery";
    /// 0xA9 cell count setting, 3..32.
    CellCountSetting = 0xA9, "cell_count_setting", Fixed(1), ReadWrite, Unsigned, None, 0, Some((3, 32)), System, "Cell count setting";
    /// 0xAA nominal battery capacity, Ah. No documented range; bounded to catch typos.
    NominalCapacity = 0xAA, "nominal_capacity", Fixed(4), ReadWrite, Unsigned, AmpHour, 0, Some((1, 100_000)), Capacity, "Nominal battery capacity";
    /// 0xAB charge MOSFET switch (user setting; live state is 0x8C bit 0).
    ChargeMosfetSwitch = 0xAB, "charge_mosfet_switch", Fixed(1), ReadWrite, Switch, None, 0, Some((0, 1)), System, "Charge MOSFET switch";
    /// 0xAC discharge MOSFET switch (user setting; live state is 0x8C bit 1).
    DischargeMosfetSwitch = 0xAC, "discharge_mosfet_switch", Fixed(1), ReadWrite, Switch, None, 0, Some((0, 1)), System, "Discharge MOSFET switch";
    /// 0xAD current calibration, mA, 100..20000.
    CurrentCalibration = 0xAD, "current_calibration", Fixed(2), ReadWrite, Unsigned, Ampere, 3, Some((100, 20_000)), Current, "Current calibration";
    /// 0xAE board address (reserved for cascading).
    BoardAddress = 0xAE, "board_address", Fixed(1), ReadWrite, Unsigned, None, 0, Some((0, 255)), System, "Board address";
    /// 0xAF battery type.
    BatteryType = 0xAF, "battery_type", Fixed(1), ReadWrite, BatteryType, None, 0, Some((0, 2)), System, "Battery type (chemistry)";
    /// 0xB0 sleep (dormancy) waiting time, s.
    SleepWaitTime = 0xB0, "sleep_wait_time", Fixed(2), ReadWrite, Unsigned, Second, 0, Some((0, 65_535)), System, "Sleep (dormancy) waiting time";
    /// 0xB1 low capacity alarm, %, 0..80.
    LowCapacityAlarm = 0xB1, "low_capacity_alarm", Fixed(1), ReadWrite, Unsigned, Percent, 0, Some((0, 80)), Capacity, "Low capacity alarm";
    /// 0xB2 parameter-change password.
    Password = 0xB2, "password", Fixed(10), ReadWrite, Text, None, 0, None, System, "Parameter-change password";
    /// 0xB3 dedicated charger switch.
    DedicatedChargerSwitch = 0xB3, "dedicated_charger_switch", Fixed(1), ReadWrite, Switch, None, 0, Some((0, 1)), System, "Dedicated charger switch";
    /// 0xB4 device id code.
    DeviceId = 0xB4, "device_id", Fixed(8), ReadWrite, Text, None, 0, None, System, "Device id code";
    /// 0xB5 manufacture date "YYMM".
    ManufactureDate = 0xB5, "manufacture_date", Fixed(4), ReadWrite, Text, None, 0, None, System, "Manufacture date (YYMM)";
    /// 0xB6 system working time, minutes.
    WorkingTime = 0xB6, "working_time", Fixed(4), ReadWrite, Unsigned, Minute, 0, Some((0, 4_294_967_295)), System, "System working time";
    /// 0xB7 software version.
    SoftwareVersion = 0xB7, "software_version", Fixed(15), Read, Text, None, 0, None, Telemetry, "Software version";
    /// 0xB8 start current calibration.
    StartCurrentCalibration = 0xB8, "start_current_calibration", Fixed(1), ReadWrite, Switch, None, 0, Some((0, 1)), Current, "Start current calibration";
    /// 0xB9 actual battery capacity, Ah.
    ActualCapacity = 0xB9, "actual_capacity", Fixed(4), ReadWrite, Unsigned, AmpHour, 0, Some((0, 100_000)), Capacity, "Actual battery capacity";
    /// 0xBA manufacturer id.
    ManufacturerId = 0xBA, "manufacturer_id", Fixed(24), ReadWrite, Text, None, 0, None, System, "Manufacturer id";
    /// 0xBB restart the system (write 1).
    Restart = 0xBB, "restart", Fixed(1), Write, Unsigned, None, 0, Some((1, 1)), Command, "Restart the system";
    /// 0xBC factory data reset (write 1).
    FactoryReset = 0xBC, "factory_reset", Fixed(1), Write, Unsigned, None, 0, Some((1, 1)), Command, "Factory data reset";
    /// 0xBD remote upgrade (write 1).
    RemoteUpgrade = 0xBD, "remote_upgrade", Fixed(1), Write, Unsigned, None, 0, Some((1, 1)), Command, "Start remote upgrade";
    /// 0xBE cell voltage below which the data box power is switched off, mV.
    DataBoxPowerOffVoltage = 0xBE, "data_box_power_off_voltage", Fixed(2), Write, Unsigned, Volt, 3, Some((1000, 4500)), Command, "Cell low voltage: switch the data box off";
    /// 0xBF cell voltage above which the data box power is switched back on, mV.
    DataBoxPowerOnVoltage = 0xBF, "data_box_power_on_voltage", Fixed(2), Write, Unsigned, Volt, 3, Some((1000, 4500)), Command, "Cell low voltage: switch the data box back on";
    /// 0xC0 protocol version (0x01: current in sign/magnitude).
    ProtocolVersion = 0xC0, "protocol_version", Fixed(1), Read, Unsigned, None, 0, None, Telemetry, "Protocol version";
}

/// Wire length of each identifier's value indexed by the identifier byte: 0 = unknown,
/// 0xFF = length-prefixed (0x79). Used on the hot decode path instead of a search.
pub(crate) static LEN_BY_BYTE: [u8; 256] = {
    let mut lens = [0u8; 256];
    let mut i = 0;
    while i < TABLE.len() {
        let row = &TABLE[i];
        lens[row.id as usize] = match row.len {
            FieldLen::Fixed(n) => n,
            FieldLen::Prefixed => 0xFF,
        };
        i += 1;
    }
    lens
};

/// Row of each identifier in [`TABLE`], indexed by the identifier byte (0 for unknown bytes).
static ROW_BY_BYTE: [u8; 256] = {
    let mut rows = [0u8; 256];
    let mut i = 0;
    while i < TABLE.len() {
        rows[TABLE[i].id as usize] = i as u8;
        i += 1;
    }
    rows
};

/// Identifiers a full read-all reply carries after 0x79, in order (every readable one:
/// `nw.md`, "the document asks that every R/RW field 0x79..0xB9 be reported"; real replies
/// carry 0x80..0xBA and 0xC0), and their offsets from the end of the 0x79 field.
pub(crate) const FULL_LAYOUT_FIELDS: usize = {
    let mut count = 0;
    let mut i = 1;
    while i < TABLE.len() {
        if !matches!(TABLE[i].access, Access::Write) {
            count += 1;
        }
        i += 1;
    }
    count
};

/// `(identifier byte, offset)` of each field of the full layout after 0x79.
pub(crate) static FULL_LAYOUT: [(u8, u16); FULL_LAYOUT_FIELDS] = {
    let mut layout = [(0u8, 0u16); FULL_LAYOUT_FIELDS];
    let mut offset = 0usize;
    let mut field = 0;
    let mut i = 1;
    while i < TABLE.len() {
        let row = &TABLE[i];
        if !matches!(row.access, Access::Write) {
            layout[field] = (row.id as u8, offset as u16);
            offset += 1 + LEN_BY_BYTE[row.id as usize] as usize;
            field += 1;
        }
        i += 1;
    }
    layout
};

/// Bytes of the full layout after 0x79.
pub(crate) const FULL_LAYOUT_LEN: usize = {
    let (id, offset) = FULL_LAYOUT[FULL_LAYOUT_FIELDS - 1];
    offset as usize + 1 + LEN_BY_BYTE[id as usize] as usize
};

/// What the hot decode path needs of an identifier, in one table entry per byte, so that a
/// field costs one load: its identifier (`None` for bytes outside the table), wire length
/// (0xFF for the length-prefixed 0x79), encoding and scaling.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Descriptor {
    pub(crate) id: Option<Identifier>,
    pub(crate) len: u8,
    pub(crate) encoding: Encoding,
    pub(crate) unit: Unit,
    pub(crate) decimals: u8,
}

/// The descriptor of each byte.
pub(crate) static DESCRIPTORS: [Descriptor; 256] = {
    let unknown = Descriptor {
        id: None,
        len: 0,
        encoding: Encoding::Text,
        unit: Unit::None,
        decimals: 0,
    };
    let mut descriptors = [unknown; 256];
    let mut i = 0;
    while i < TABLE.len() {
        let row = &TABLE[i];
        descriptors[row.id as usize] = Descriptor {
            id: Some(row.id),
            len: LEN_BY_BYTE[row.id as usize],
            encoding: row.encoding,
            unit: row.unit,
            decimals: row.decimals,
        };
        i += 1;
    }
    descriptors
};

impl Identifier {
    /// The wire byte.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// This identifier's row in the table.
    #[inline]
    pub fn info(self) -> &'static IdentifierInfo {
        &TABLE[usize::from(ROW_BY_BYTE[self as usize])]
    }

    /// The stable snake_case name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Finds an identifier by its name (`cell_over_voltage_protection`) or its hex code
    /// (`0x90`, `90`), case-insensitively.
    pub fn lookup(text: &str) -> Option<Identifier> {
        let text = text.trim();
        if let Some(row) = TABLE.iter().find(|row| row.name.eq_ignore_ascii_case(text)) {
            return Some(row.id);
        }
        let hex = text
            .strip_prefix("0x")
            .or_else(|| text.strip_prefix("0X"))
            .unwrap_or(text);
        if hex.len() == 2 {
            return u8::from_str_radix(hex, 16)
                .ok()
                .and_then(Identifier::from_u8);
        }
        None
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_strictly_ascending_wire_order() {
        for pair in TABLE.windows(2) {
            assert!(
                pair[0].id < pair[1].id,
                "{:?} before {:?}",
                pair[0].id,
                pair[1].id
            );
        }
    }

    #[test]
    fn table_has_every_identifier_of_nw_md() {
        // 0x79..0xC0 without 0x88 and 0x8D, as listed in nw.md.
        let expected: std::vec::Vec<u8> = (0x79..=0xC0u8)
            .filter(|b| !(0x7A..=0x7F).contains(b) && *b != 0x88 && *b != 0x8D)
            .collect();
        let actual: std::vec::Vec<u8> = TABLE.iter().map(|row| row.id.code()).collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn names_are_unique_and_lookups_round_trip() {
        for row in TABLE {
            assert_eq!(Identifier::lookup(row.name), Some(row.id));
            assert_eq!(Identifier::from_u8(row.id.code()), Some(row.id));
            assert_eq!(row.id.info(), row);
            let hex = std::format!("0x{:02x}", row.id.code());
            assert_eq!(Identifier::lookup(&hex), Some(row.id));
        }
        assert_eq!(Identifier::lookup("nonsense"), None);
        assert_eq!(Identifier::lookup("0x88"), None);
    }

    #[test]
    fn settings_have_ranges_matching_their_width() {
        for row in TABLE.iter().filter(|row| row.is_writable()) {
            let Some((min, max)) = row.range else {
                assert_eq!(row.encoding, Encoding::Text, "{} has no range", row.name);
                continue;
            };
            assert!(min <= max, "{}", row.name);
            let len = row.fixed_len().unwrap_or(0) as u32;
            let (lo, hi) = match row.encoding {
                Encoding::Signed => (i64::from(i16::MIN), i64::from(i16::MAX)),
                _ => (0, (1i64 << (8 * len)) - 1),
            };
            assert!(
                min >= lo && max <= hi,
                "{} range does not fit {len} bytes",
                row.name
            );
        }
    }

    #[test]
    fn length_index_agrees_with_table() {
        for byte in 0..=255u8 {
            let by_table = Identifier::from_u8(byte).map(|id| id.info().len);
            match (by_table, LEN_BY_BYTE[usize::from(byte)]) {
                (None, 0) => {}
                (Some(FieldLen::Prefixed), 0xFF) => {}
                (Some(FieldLen::Fixed(n)), m) => assert_eq!(n, m),
                (other, m) => panic!("0x{byte:02X}: {other:?} vs {m}"),
            }
        }
    }
}
