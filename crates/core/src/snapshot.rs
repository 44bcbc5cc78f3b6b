//! A pack's snapshot: one read-all reply or active upload, checked and turned into typed values,
//! with the pack's settings and the raw bytes of every field. The gateway aggregates racks from
//! it and serves its fields as Modbus registers; the platform stores it.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use crate::chemistry::Chemistry;
use crate::settings::{Settings, SettingsError};
use crate::time::Instant;
use bmslink_proto::{
    Body, Celsius, Error, Identifier, Message, Milliamps, Millivolts, Status, Value, Warnings,
};

/// Why a frame could not be used as a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The frame did not parse.
    Malformed(Error),
    /// The frame is not a data reply (a write acknowledgement, a request).
    NotData,
    /// A measurement every reading needs is missing.
    Missing(Identifier),
    /// The settings in the reply are out of the table's ranges.
    Settings(SettingsError),
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Malformed(error) => write!(f, "malformed reply: {error}"),
            SnapshotError::NotData => f.write_str("the reply carries no data"),
            SnapshotError::Missing(id) => write!(f, "the reply lacks {id:?} ({:#04X})", *id as u8),
            SnapshotError::Settings(error) => write!(f, "settings in the reply: {error}"),
        }
    }
}

impl core::error::Error for SnapshotError {}

/// A pack's state as one read-all reply (or active upload) reported it.
#[derive(Clone, Debug, PartialEq)]
pub struct PackSnapshot {
    /// When the frame's last byte arrived (the receiver's clock).
    pub received_at: Instant,
    /// Every cell voltage, in cell order.
    pub cells: Vec<Millivolts>,
    /// MOSFET (power tube) temperature, 0x80.
    pub mosfet_temperature: Option<Celsius>,
    /// Box temperature, 0x81.
    pub box_temperature: Option<Celsius>,
    /// Battery temperature, 0x82.
    pub battery_temperature: Option<Celsius>,
    /// Total voltage.
    pub voltage: Millivolts,
    /// Current, positive = charging.
    pub current: Milliamps,
    /// State of charge, percent.
    pub soc_percent: u8,
    /// Cycle count.
    pub cycles: u32,
    /// Warning bits (0x8B).
    pub warnings: Warnings,
    /// Live status bits (0x8C).
    pub status: Status,
    /// The pack's settings as reported (`None` when the reply lacks some, e.g. old firmware).
    pub settings: Option<Settings>,
    /// The wire bytes of every reported field except the cell voltages, by identifier.
    pub fields: BTreeMap<Identifier, Vec<u8>>,
}

impl PackSnapshot {
    /// Parses a read-all reply or an active upload received at `received_at`.
    pub fn parse(frame: &[u8], received_at: Instant) -> Result<PackSnapshot, SnapshotError> {
        PackSnapshot::parse_keeping(frame, received_at, true)
    }

    /// As [`parse`](PackSnapshot::parse), with the same checks (settings included), but without
    /// a copy of every field's wire bytes: [`fields`](PackSnapshot::fields) is left empty, which
    /// saves an allocation per field. For a receiver that keeps the whole frame anyway (the
    /// platform stores it).
    pub fn parse_measurements(
        frame: &[u8],
        received_at: Instant,
    ) -> Result<PackSnapshot, SnapshotError> {
        PackSnapshot::parse_keeping(frame, received_at, false)
    }

    fn parse_keeping(
        frame: &[u8],
        received_at: Instant,
        keep_fields: bool,
    ) -> Result<PackSnapshot, SnapshotError> {
        let message = Message::parse(frame).map_err(SnapshotError::Malformed)?;
        let Body::Data(info) = message.body else {
            return Err(SnapshotError::NotData);
        };
        let mut reading = PackSnapshot {
            received_at,
            cells: Vec::new(),
            mosfet_temperature: None,
            box_temperature: None,
            battery_temperature: None,
            voltage: Millivolts(0),
            current: Milliamps(0),
            soc_percent: 0,
            cycles: 0,
            warnings: Warnings::empty(),
            status: Status::empty(),
            settings: None,
            fields: BTreeMap::new(),
        };
        let mut seen_voltage = false;
        let mut seen_current = false;
        // Every field's wire bytes by identifier (the last copy wins, as in `fields`).
        let mut wire: [Option<&[u8]>; 256] = [None; 256];
        for (field, (id, value)) in info.fields().zip(info.values()) {
            if id != Identifier::CellVoltages {
                wire[usize::from(id as u8)] = Some(field.bytes);
                if keep_fields {
                    reading.fields.insert(id, field.bytes.to_vec());
                }
            }
            match (id, value) {
                (Identifier::CellVoltages, Value::CellVoltages(cells)) => {
                    reading.cells = cells.iter().map(|c| c.voltage).collect();
                }
                (Identifier::MosfetTemperature, Value::Temperature(t)) => {
                    reading.mosfet_temperature = t.celsius();
                }
                (Identifier::BoxTemperature, Value::Temperature(t)) => {
                    reading.box_temperature = t.celsius();
                }
                (Identifier::BatteryTemperature, Value::Temperature(t)) => {
                    reading.battery_temperature = t.celsius();
                }
                (Identifier::TotalVoltage, Value::Number(n)) => {
                    // 10 mV units.
                    reading.voltage = Millivolts(u32::try_from(n.raw).unwrap_or(0) * 10);
                    seen_voltage = true;
                }
                (Identifier::Current, Value::Current(c)) => {
                    if let Some(current) = c.milliamps() {
                        reading.current = current;
                        seen_current = true;
                    }
                }
                (Identifier::Soc, Value::Number(n)) => {
                    reading.soc_percent = u8::try_from(n.raw).unwrap_or(100).min(100);
                }
                (Identifier::CycleCount, Value::Number(n)) => {
                    reading.cycles = u32::try_from(n.raw).unwrap_or(0);
                }
                (Identifier::Warnings, Value::Warnings(w)) => reading.warnings = w,
                (Identifier::Status, Value::Status(s)) => reading.status = s,
                _ => {}
            }
        }
        if reading.cells.is_empty() {
            return Err(SnapshotError::Missing(Identifier::CellVoltages));
        }
        if !seen_voltage {
            return Err(SnapshotError::Missing(Identifier::TotalVoltage));
        }
        if !seen_current {
            return Err(SnapshotError::Missing(Identifier::Current));
        }
        let has_settings = bmslink_proto::TABLE
            .iter()
            .filter(|info| Settings::covers(info.id))
            .all(|info| wire[usize::from(info.id as u8)].is_some());
        if has_settings {
            let settings = Settings::from_registers(|id| wire[usize::from(id as u8)])
                .map_err(SnapshotError::Settings)?;
            reading.settings = Some(settings);
        }
        Ok(reading)
    }

    /// The wire bytes of one field, if the reply carried it.
    pub fn field(&self, id: Identifier) -> Option<&[u8]> {
        self.fields.get(&id).map(Vec::as_slice)
    }

    /// Lowest cell: (1-based number, voltage).
    pub fn cell_min(&self) -> (u8, Millivolts) {
        extreme(&self.cells, |a, b| a < b)
    }

    /// Highest cell: (1-based number, voltage).
    pub fn cell_max(&self) -> (u8, Millivolts) {
        extreme(&self.cells, |a, b| a > b)
    }

    /// The battery temperatures (box and battery sensors; the MOSFET's is not the cells').
    pub fn battery_temperatures(&self) -> Vec<Celsius> {
        [self.box_temperature, self.battery_temperature]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The chemistry the settings name (0xAF), if known.
    pub fn chemistry(&self) -> Option<Chemistry> {
        self.settings.as_ref().and_then(Settings::chemistry)
    }

    /// Nominal capacity, Ah (0xAA), if reported.
    pub fn nominal_capacity_ah(&self) -> Option<u32> {
        self.settings.as_ref().map(|s| s.nominal_capacity_ah)
    }

    /// Actual (learned) capacity, Ah (0xB9), if reported and non-zero.
    pub fn actual_capacity_ah(&self) -> Option<u32> {
        self.settings
            .as_ref()
            .map(|s| s.actual_capacity_ah)
            .filter(|&c| c > 0)
    }

    /// Whether a protection acts (a warning bit other than the low-capacity warning, which
    /// opens no MOSFET).
    pub fn protection(&self) -> bool {
        !(self.warnings - Warnings::LOW_CAPACITY).is_empty()
    }
}

fn extreme(
    cells: &[Millivolts],
    better: impl Fn(Millivolts, Millivolts) -> bool,
) -> (u8, Millivolts) {
    let mut best = (1u8, cells.first().copied().unwrap_or(Millivolts(0)));
    for (index, &voltage) in cells.iter().enumerate() {
        if better(voltage, best.1) {
            best = (u8::try_from(index + 1).unwrap_or(u8::MAX), voltage);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use bmslink_proto::vectors;

    #[test]
    fn a_real_read_all_reply_becomes_a_snapshot_with_its_settings() {
        let frame = vectors::bytes("A03").unwrap();
        let reading = PackSnapshot::parse(&frame, Instant::from_millis(5)).unwrap();
        assert_eq!(reading.cells.len(), 16);
        assert_eq!(reading.cell_min(), (7, Millivolts(3185)));
        assert_eq!(reading.cell_max(), (5, Millivolts(3203)));
        assert_eq!(reading.mosfet_temperature, Some(Celsius(18)));
        assert_eq!(
            reading.battery_temperatures(),
            vec![Celsius(16), Celsius(16)]
        );
        assert_eq!(reading.voltage, Millivolts(51_210));
        assert_eq!(reading.current, Milliamps(-690));
        assert_eq!((reading.soc_percent, reading.cycles), (15, 17));
        assert!(reading
            .status
            .contains(Status::CHARGE_MOSFET_ON | Status::DISCHARGE_MOSFET_ON));
        assert!(!reading.protection());
        let settings = reading.settings.as_ref().unwrap();
        assert_eq!(settings.cell_over_voltage_protection, 3650);
        // The capture's 0xAF says 1 (NMC), though its 3.2 V cells and 3.65 V limit are LFP's.
        assert_eq!(reading.chemistry(), Some(Chemistry::Nmc));
        assert_eq!(reading.nominal_capacity_ah(), Some(81));
        assert_eq!(reading.actual_capacity_ah(), None, "0xB9 reports 0");
        assert_eq!(
            reading.field(Identifier::NominalCapacity),
            Some(&[0, 0, 0, 0x51][..])
        );
        assert_eq!(reading.field(Identifier::CellVoltages), None);
    }

    #[test]
    fn measurements_alone_are_the_snapshot_without_its_fields() {
        let mut snapshots = 0;
        for name in vectors::ids() {
            let Some(frame) = vectors::bytes(name) else {
                continue;
            };
            let full = PackSnapshot::parse(&frame, Instant::ZERO);
            let light = PackSnapshot::parse_measurements(&frame, Instant::ZERO);
            match (full, light) {
                (Ok(full), Ok(light)) => {
                    assert!(light.fields.is_empty(), "{name}");
                    assert!(!full.fields.is_empty(), "{name}");
                    assert_eq!(
                        PackSnapshot {
                            fields: BTreeMap::new(),
                            ..full
                        },
                        light,
                        "{name}"
                    );
                    snapshots += 1;
                }
                (full, light) => assert_eq!(full.map(|_| ()), light.map(|_| ()), "{name}"),
            }
        }
        assert!(snapshots >= 5, "the vectors hold several read-all replies");
        let mut frame = vectors::bytes("A03").unwrap();
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert!(matches!(
            PackSnapshot::parse_measurements(&frame, Instant::ZERO),
            Err(SnapshotError::Malformed(_))
        ));
    }

    #[test]
    fn a_broken_frame_is_not_a_snapshot() {
        let mut frame = vectors::bytes("A03").unwrap();
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert!(matches!(
            PackSnapshot::parse(&frame, Instant::ZERO),
            Err(SnapshotError::Malformed(_))
        ));
    }

    #[test]
    fn only_the_low_capacity_warning_is_not_a_protection() {
        let frame = vectors::bytes("A03").unwrap();
        let mut reading = PackSnapshot::parse(&frame, Instant::ZERO).unwrap();
        reading.warnings = Warnings::LOW_CAPACITY;
        assert!(!reading.protection());
        reading.warnings |= Warnings::CELL_OVER_VOLTAGE;
        assert!(reading.protection());
    }
}
