//! Inverter -> battery: the 0x305 keep-alive (inverter-can.md, "Inverter -> battery").
//!
//! ```text
//! Pylon-mode inverters (Deye, Sol-Ark, Goodwe, Sofar), DLC 8:
//!   00 00 00 00 00 00 00 00
//! SMA Sunny Island, DLC 8, its own measurements:
//!   0  u16  battery voltage, 0.1 V      FFFF = invalid
//!   2  s16  battery current, 0.1 A      NEGATIVE = CHARGING; 8000 = invalid
//!   4  s16  battery temperature, 0.1 degC                    8000 = invalid
//!   6  u16  SOC, 0.1 %                  0..=1000;             FFFF = invalid
//! ```
//!
//! The SMA current is converted here, at the edge, to bmslink's convention (positive =
//! charging): [`InverterMeasurements::current`] is the negated wire value. SMA's invalid
//! sentinels (inverter-can.md, "Bus rules") read as `None`. An all-zero frame is the Pylon
//! keep-alive: an SMA inverter reporting exactly 0.0 V, 0 A, 0.0 degC and 0 % is not running,
//! so nothing is lost by reading it so. inverter-can.md does not give the byte order of the
//! SMA fields beyond "V, I, T, SOC"; they are read as consecutive little-endian 16-bit fields in
//! that order, like every other frame of the family. (SMA's 0x306 is not described there and
//! is not decoded.)

use super::scale::{DeciAmps, DeciCelsius, DeciPercent, DeciVolts};
use super::scale::{SIGNED_INVALID, UNSIGNED_INVALID};
use super::{id, le_i16, le_u16, put_i16, put_u16, CanError, CanFrame, MAX_DATA_LEN};

/// SMA's measurements in 0x305; `None` where SMA sent its "invalid" sentinel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InverterMeasurements {
    /// Battery voltage.
    pub voltage: Option<DeciVolts>,
    /// Battery current, **positive = charging** (converted from SMA's negative = charging).
    pub current: Option<DeciAmps>,
    /// Battery temperature.
    pub temperature: Option<DeciCelsius>,
    /// State of charge.
    pub soc: Option<DeciPercent>,
}

/// A decoded 0x305.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeepAlive {
    /// 8 x 00: the Pylon-mode keep-alive.
    Empty,
    /// SMA Sunny Island's measurements.
    Measurements(InverterMeasurements),
}

impl KeepAlive {
    const VOLTAGE: usize = 0;
    const CURRENT: usize = 2;
    const TEMPERATURE: usize = 4;
    const SOC: usize = 6;
    const LENGTHS: &'static [u8] = &[8];

    /// Reads a 0x305 frame.
    pub fn decode(frame: &CanFrame) -> Result<KeepAlive, CanError> {
        let data = frame.expect(id::KEEP_ALIVE, Self::LENGTHS)?;
        if data.iter().all(|&b| b == 0) {
            return Ok(KeepAlive::Empty);
        }
        let unsigned = |at| Some(le_u16(data, at)).filter(|&raw| raw != UNSIGNED_INVALID);
        let signed = |at| Some(le_i16(data, at)).filter(|&raw| raw != SIGNED_INVALID);
        let soc = match unsigned(Self::SOC) {
            None => None,
            Some(raw) => Some(DeciPercent::new(raw).ok_or(CanError::OutOfRange {
                id: id::KEEP_ALIVE,
                field: "SOC",
                offset: Self::SOC,
                raw: i32::from(raw),
            })?),
        };
        Ok(KeepAlive::Measurements(InverterMeasurements {
            voltage: unsigned(Self::VOLTAGE).map(DeciVolts),
            // The sentinel is filtered out, so the negation cannot overflow.
            current: signed(Self::CURRENT).map(|raw| DeciAmps(-raw)),
            temperature: signed(Self::TEMPERATURE).map(DeciCelsius),
            soc,
        }))
    }

    /// The frame (for simulated inverters). The current goes back to SMA's sign; a current of
    /// exactly -3276.8 A has no SMA form and saturates to -3276.7 A.
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        if let KeepAlive::Measurements(m) = self {
            let current = m.current.map_or(SIGNED_INVALID, |c| c.0.saturating_neg());
            let temperature = m.temperature.map_or(SIGNED_INVALID, |t| t.0);
            put_u16(
                &mut data,
                Self::VOLTAGE,
                m.voltage.map_or(UNSIGNED_INVALID, |v| v.0),
            );
            put_i16(&mut data, Self::CURRENT, current);
            put_i16(&mut data, Self::TEMPERATURE, temperature);
            put_u16(
                &mut data,
                Self::SOC,
                m.soc.map_or(UNSIGNED_INVALID, |s| s.get()),
            );
        }
        CanFrame::from_array(id::KEEP_ALIVE, data, MAX_DATA_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(data: &[u8]) -> CanFrame {
        CanFrame::new(id::KEEP_ALIVE, data).unwrap()
    }

    #[test]
    fn eight_zeros_is_the_pylon_keep_alive() {
        assert_eq!(KeepAlive::decode(&frame(&[0; 8])), Ok(KeepAlive::Empty));
        assert_eq!(KeepAlive::Empty.encode().data(), &[0; 8]);
        assert!(matches!(
            KeepAlive::decode(&frame(&[0; 2])),
            Err(CanError::WrongLength { found: 2, .. })
        ));
    }

    #[test]
    fn sma_charging_current_is_negative_on_the_wire_and_positive_here() {
        // 52.1 V, -25.0 A on the wire (= charging 25 A), 21.5 degC, 63.4 %.
        let bytes = [0x09, 0x02, 0x06, 0xFF, 0xD7, 0x00, 0x7A, 0x02];
        let KeepAlive::Measurements(m) = KeepAlive::decode(&frame(&bytes)).unwrap() else {
            panic!("not measurements");
        };
        assert_eq!(m.voltage, Some(DeciVolts(521)));
        assert_eq!(m.current, Some(DeciAmps(250)));
        assert_eq!(m.temperature, Some(DeciCelsius(215)));
        assert_eq!(m.soc.map(DeciPercent::get), Some(634));
        assert_eq!(KeepAlive::Measurements(m).encode().data(), &bytes);
    }

    #[test]
    fn sma_invalid_sentinels_read_as_none() {
        let bytes = [0xFF, 0xFF, 0x00, 0x80, 0x00, 0x80, 0xFF, 0xFF];
        assert_eq!(
            KeepAlive::decode(&frame(&bytes)),
            Ok(KeepAlive::Measurements(InverterMeasurements::default()))
        );
    }

    #[test]
    fn sma_soc_above_100_percent_is_out_of_range() {
        let bytes = [0x09, 0x02, 0, 0, 0, 0, 0xE9, 0x03]; // 1001
        assert!(matches!(
            KeepAlive::decode(&frame(&bytes)),
            Err(CanError::OutOfRange {
                offset: 6,
                raw: 1001,
                ..
            })
        ));
    }

    #[test]
    fn the_one_current_sma_cannot_carry_saturates() {
        let m = InverterMeasurements {
            current: Some(DeciAmps(i16::MIN)),
            ..InverterMeasurements::default()
        };
        let data = KeepAlive::Measurements(m).encode();
        assert_eq!(&data.data()[2..4], &0x7FFFi16.to_le_bytes());
    }

    proptest! {
        #[test]
        fn sma_measurements_round_trip(
            voltage in proptest::option::of(0u16..0xFFFF),
            current in proptest::option::of(-0x7FFFi16..=0x7FFF),
            temperature in proptest::option::of(-0x7FFFi16..=0x7FFF),
            soc in proptest::option::of(0u16..=1000),
        ) {
            let m = InverterMeasurements {
                voltage: voltage.map(DeciVolts),
                current: current.map(DeciAmps),
                temperature: temperature.map(DeciCelsius),
                soc: soc.and_then(DeciPercent::new),
            };
            let value = KeepAlive::Measurements(m);
            let decoded = KeepAlive::decode(&value.encode()).unwrap();
            // All-zero measurements are indistinguishable from the Pylon keep-alive.
            let zero = value.encode().data() == [0; 8];
            prop_assert!(decoded == value || (zero && decoded == KeepAlive::Empty));
        }
    }
}
