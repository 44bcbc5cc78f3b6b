//! The measurement and identity frames of the family: 0x351, 0x355, 0x356, 0x35C, 0x35E, 0x35F
//! and 0x379 (inverter-can.md, "Battery -> inverter frames"). All fields little-endian.
//!
//! ```text
//! 0x351 Limits (DLC 8)
//!   0  u16  CVL, 0.1 V          charge voltage limit
//!   2  s16  CCL, 0.1 A          charge current limit, >= 0
//!   4  s16  DCL, 0.1 A          discharge current limit, sent POSITIVE (>= 0)
//!   6  u16  DVL, 0.1 V          discharge voltage limit
//!   US5000: 14 02 C0 12 C0 12 C2 01 = 53.2 V, 480.0 A, 480.0 A, 45.0 V
//! 0x355 SocSoh (DLC 4, 6 or 8)
//!   0  u16  SOC, %              0..=100
//!   2  u16  SOH, %              0..=100
//!   4  u16  SOC, 0.01 %         high resolution (SMA prefers it); FFFF = absent
//!   6  u16  remaining capacity  the document gives no unit: Ah assumed, as 0x35F and 0x379
//! 0x356 Measurements (DLC 6)
//!   0  s16  pack voltage, 0.01 V   >= 0
//!   2  s16  current, 0.1 A         positive = charging (as bmslink)
//!   4  s16  temperature, 0.1 degC
//! 0x35C Requests (DLC 2)
//!   0  u8   bit 7 charge enable, 6 discharge enable, 5 force charge I, 4 force charge II,
//!           3 full charge request. Normal: C0 00
//!   1  u8   00
//! 0x35E Manufacturer (DLC 8): 8 ASCII, space padded ("PYLON   ")
//! 0x35F ProductInfo (DLC 8): u16 battery type / product id, u16 BMS firmware version,
//!   u16 capacity Ah, u16 manufacturer / hardware id
//! 0x379 InstalledCapacity (DLC 8): u16 Ah, then 6 x 00
//! ```

use bitflags::bitflags;

use super::scale::UNSIGNED_INVALID;
use super::scale::{AmpHours, CentiPercent, CentiVolts, DeciAmps, DeciCelsius, DeciVolts, Percent};
use super::text::ShortText;
use super::{id, le_i16, le_u16, put_i16, put_u16, CanError, CanFrame, CanId, MAX_DATA_LEN};

/// A signed field that must not be negative.
fn non_negative(id: CanId, field: &'static str, offset: usize, raw: i16) -> Result<i16, CanError> {
    if raw < 0 {
        return Err(CanError::OutOfRange {
            id,
            field,
            offset,
            raw: i32::from(raw),
        });
    }
    Ok(raw)
}

/// A whole percentage field.
fn percent(id: CanId, field: &'static str, offset: usize, raw: u16) -> Result<Percent, CanError> {
    u8::try_from(raw)
        .ok()
        .and_then(Percent::new)
        .ok_or(CanError::OutOfRange {
            id,
            field,
            offset,
            raw: i32::from(raw),
        })
}

/// 0x351: the limits the inverter must respect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Charge voltage limit (CVL).
    pub charge_voltage: DeciVolts,
    /// Charge current limit (CCL), a magnitude (>= 0).
    pub charge_current: DeciAmps,
    /// Discharge current limit (DCL), a magnitude (>= 0): sent positive, whatever the DBC says.
    pub discharge_current: DeciAmps,
    /// Discharge voltage limit (DVL).
    pub discharge_voltage: DeciVolts,
}

impl Limits {
    const CVL: usize = 0;
    const CCL: usize = 2;
    const DCL: usize = 4;
    const DVL: usize = 6;
    const LENGTHS: &'static [u8] = &[8];

    /// The frame.
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        put_u16(&mut data, Self::CVL, self.charge_voltage.0);
        put_i16(&mut data, Self::CCL, self.charge_current.0);
        put_i16(&mut data, Self::DCL, self.discharge_current.0);
        put_u16(&mut data, Self::DVL, self.discharge_voltage.0);
        CanFrame::from_array(id::LIMITS, data, MAX_DATA_LEN)
    }

    /// Reads a 0x351 frame; a negative current limit is out of range.
    pub fn decode(frame: &CanFrame) -> Result<Limits, CanError> {
        let data = frame.expect(id::LIMITS, Self::LENGTHS)?;
        let ccl = le_i16(data, Self::CCL);
        let dcl = le_i16(data, Self::DCL);
        Ok(Limits {
            charge_voltage: DeciVolts(le_u16(data, Self::CVL)),
            charge_current: DeciAmps(non_negative(id::LIMITS, "CCL", Self::CCL, ccl)?),
            discharge_current: DeciAmps(non_negative(id::LIMITS, "DCL", Self::DCL, dcl)?),
            discharge_voltage: DeciVolts(le_u16(data, Self::DVL)),
        })
    }
}

/// 0x355: state of charge and health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SocSoh {
    /// SOC, whole percent.
    pub soc: Percent,
    /// SOH, whole percent.
    pub soh: Percent,
    /// SOC in 0.01 % (the 6- and 8-byte forms; SMA prefers it).
    pub soc_fine: Option<CentiPercent>,
    /// Remaining capacity (the 8-byte form).
    pub remaining: Option<AmpHours>,
}

impl SocSoh {
    const SOC: usize = 0;
    const SOH: usize = 2;
    const SOC_FINE: usize = 4;
    const REMAINING: usize = 6;
    const LENGTHS: &'static [u8] = &[4, 6, 8];

    /// The frame: 8 bytes with a remaining capacity, else 6 with a fine SOC, else 4. In the
    /// 8-byte form an absent fine SOC is sent as FFFF (SMA's "invalid, use default").
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        put_u16(&mut data, Self::SOC, u16::from(self.soc.get()));
        put_u16(&mut data, Self::SOH, u16::from(self.soh.get()));
        let fine = self.soc_fine.map_or(UNSIGNED_INVALID, CentiPercent::get);
        put_u16(&mut data, Self::SOC_FINE, fine);
        let len = match (self.remaining, self.soc_fine) {
            (Some(remaining), _) => {
                put_u16(&mut data, Self::REMAINING, remaining.0);
                8
            }
            (None, Some(_)) => 6,
            (None, None) => 4,
        };
        CanFrame::from_array(id::SOC_SOH, data, len)
    }

    /// Reads a 0x355 frame of 4, 6 or 8 bytes.
    pub fn decode(frame: &CanFrame) -> Result<SocSoh, CanError> {
        let data = frame.expect(id::SOC_SOH, Self::LENGTHS)?;
        let len = frame.dlc();
        Ok(SocSoh {
            soc: percent(id::SOC_SOH, "SOC", Self::SOC, le_u16(data, Self::SOC))?,
            soh: percent(id::SOC_SOH, "SOH", Self::SOH, le_u16(data, Self::SOH))?,
            soc_fine: if len > Self::SOC_FINE {
                Self::decode_fine(data)?
            } else {
                None
            },
            remaining: match le_u16(data, Self::REMAINING) {
                _ if len <= Self::REMAINING => None,
                UNSIGNED_INVALID => None,
                raw => Some(AmpHours(raw)),
            },
        })
    }

    fn decode_fine(data: &[u8; MAX_DATA_LEN]) -> Result<Option<CentiPercent>, CanError> {
        match le_u16(data, Self::SOC_FINE) {
            UNSIGNED_INVALID => Ok(None),
            raw => CentiPercent::new(raw)
                .map(Some)
                .ok_or(CanError::OutOfRange {
                    id: id::SOC_SOH,
                    field: "SOC 0.01 %",
                    offset: Self::SOC_FINE,
                    raw: i32::from(raw),
                }),
        }
    }
}

/// 0x356: what the battery measures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Measurements {
    /// Pack voltage (>= 0).
    pub voltage: CentiVolts,
    /// Pack current, positive = charging (the same convention as bmslink: no conversion).
    pub current: DeciAmps,
    /// Battery temperature.
    pub temperature: DeciCelsius,
}

impl Measurements {
    const VOLTAGE: usize = 0;
    const CURRENT: usize = 2;
    const TEMPERATURE: usize = 4;
    const LEN: usize = 6;
    const LENGTHS: &'static [u8] = &[6];

    /// The frame.
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        put_i16(&mut data, Self::VOLTAGE, self.voltage.0);
        put_i16(&mut data, Self::CURRENT, self.current.0);
        put_i16(&mut data, Self::TEMPERATURE, self.temperature.0);
        CanFrame::from_array(id::MEASUREMENTS, data, Self::LEN)
    }

    /// Reads a 0x356 frame; a negative pack voltage is out of range.
    pub fn decode(frame: &CanFrame) -> Result<Measurements, CanError> {
        let data = frame.expect(id::MEASUREMENTS, Self::LENGTHS)?;
        let voltage = le_i16(data, Self::VOLTAGE);
        Ok(Measurements {
            voltage: CentiVolts(non_negative(
                id::MEASUREMENTS,
                "voltage",
                Self::VOLTAGE,
                voltage,
            )?),
            current: DeciAmps(le_i16(data, Self::CURRENT)),
            temperature: DeciCelsius(le_i16(data, Self::TEMPERATURE)),
        })
    }
}

bitflags! {
    /// 0x35C byte 0 (inverter-can.md; the DBC's `Battery_Request`). Unknown bits are kept.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct RequestFlags: u8 {
        /// Bit 3: full charge request.
        const FULL_CHARGE = 1 << 3;
        /// Bit 4: force charge II (the DBC: the inverter should charge before shutting down).
        const FORCE_CHARGE_II = 1 << 4;
        /// Bit 5: force charge I (the DBC: the inverter may let the battery shut down, and wake
        /// it to charge).
        const FORCE_CHARGE_I = 1 << 5;
        /// Bit 6: discharge enable.
        const DISCHARGE_ENABLE = 1 << 6;
        /// Bit 7: charge enable.
        const CHARGE_ENABLE = 1 << 7;
    }
}

/// 0x35C: what the battery asks of the inverter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Requests {
    /// Byte 0. Byte 1 is sent as 00 and ignored on decode.
    pub flags: RequestFlags,
}

impl Requests {
    const FLAGS: usize = 0;
    const LEN: usize = 2;
    const LENGTHS: &'static [u8] = &[2];

    /// The frame.
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        data[Self::FLAGS] = self.flags.bits();
        CanFrame::from_array(id::REQUESTS, data, Self::LEN)
    }

    /// Reads a 0x35C frame.
    pub fn decode(frame: &CanFrame) -> Result<Requests, CanError> {
        let data = frame.expect(id::REQUESTS, Self::LENGTHS)?;
        Ok(Requests {
            flags: RequestFlags::from_bits_retain(data[Self::FLAGS]),
        })
    }
}

/// 0x35E: the manufacturer name (some inverters only accept names they know, e.g. "PYLON").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Manufacturer {
    /// The name.
    pub name: ShortText,
}

impl Manufacturer {
    const LENGTHS: &'static [u8] = &[8];

    /// The frame, space padded to 8 bytes.
    pub fn encode(&self) -> CanFrame {
        CanFrame::from_array(id::MANUFACTURER, self.name.to_wire(), MAX_DATA_LEN)
    }

    /// Reads a 0x35E frame.
    pub fn decode(frame: &CanFrame) -> Result<Manufacturer, CanError> {
        let data = frame.expect(id::MANUFACTURER, Self::LENGTHS)?;
        Ok(Manufacturer {
            name: ShortText::from_wire(id::MANUFACTURER, data)?,
        })
    }
}

/// 0x35F (SMA, Victron, Pylontech v1.3): what the battery is. The document gives the four
/// fields as u16 without further encoding; they are kept as numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProductInfo {
    /// Battery type / product id.
    pub product_id: u16,
    /// BMS firmware version.
    pub firmware_version: u16,
    /// Capacity.
    pub capacity: AmpHours,
    /// Manufacturer / hardware id.
    pub hardware_id: u16,
}

impl ProductInfo {
    const PRODUCT: usize = 0;
    const FIRMWARE: usize = 2;
    const CAPACITY: usize = 4;
    const HARDWARE: usize = 6;
    const LENGTHS: &'static [u8] = &[8];

    /// The frame.
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        put_u16(&mut data, Self::PRODUCT, self.product_id);
        put_u16(&mut data, Self::FIRMWARE, self.firmware_version);
        put_u16(&mut data, Self::CAPACITY, self.capacity.0);
        put_u16(&mut data, Self::HARDWARE, self.hardware_id);
        CanFrame::from_array(id::PRODUCT_INFO, data, MAX_DATA_LEN)
    }

    /// Reads a 0x35F frame.
    pub fn decode(frame: &CanFrame) -> Result<ProductInfo, CanError> {
        let data = frame.expect(id::PRODUCT_INFO, Self::LENGTHS)?;
        Ok(ProductInfo {
            product_id: le_u16(data, Self::PRODUCT),
            firmware_version: le_u16(data, Self::FIRMWARE),
            capacity: AmpHours(le_u16(data, Self::CAPACITY)),
            hardware_id: le_u16(data, Self::HARDWARE),
        })
    }
}

/// 0x379 (Victron, Sol-Ark, Luxpower): installed capacity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InstalledCapacity {
    /// Installed capacity.
    pub capacity: AmpHours,
}

impl InstalledCapacity {
    const CAPACITY: usize = 0;
    const LENGTHS: &'static [u8] = &[8];

    /// The frame: capacity in bytes 0-1, bytes 2-7 zero.
    pub fn encode(&self) -> CanFrame {
        let mut data = [0; MAX_DATA_LEN];
        put_u16(&mut data, Self::CAPACITY, self.capacity.0);
        CanFrame::from_array(id::INSTALLED_CAPACITY, data, MAX_DATA_LEN)
    }

    /// Reads a 0x379 frame (bytes 2-7 are ignored).
    pub fn decode(frame: &CanFrame) -> Result<InstalledCapacity, CanError> {
        let data = frame.expect(id::INSTALLED_CAPACITY, Self::LENGTHS)?;
        Ok(InstalledCapacity {
            capacity: AmpHours(le_u16(data, Self::CAPACITY)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(id: CanId, data: &[u8]) -> CanFrame {
        CanFrame::new(id, data).unwrap()
    }

    /// inverter-can.md: "Real US5000: `14 02 C0 12 C0 12 C2 01` = 53.2 V / 480.0 A / 480.0 A /
    /// 45.0 V".
    const US5000_351: [u8; 8] = [0x14, 0x02, 0xC0, 0x12, 0xC0, 0x12, 0xC2, 0x01];

    #[test]
    fn the_us5000_limits_frame_decodes_and_encodes_byte_for_byte() {
        let limits = Limits::decode(&frame(id::LIMITS, &US5000_351)).unwrap();
        assert_eq!(
            limits,
            Limits {
                charge_voltage: DeciVolts(532),
                charge_current: DeciAmps(4800),
                discharge_current: DeciAmps(4800),
                discharge_voltage: DeciVolts(450),
            }
        );
        assert_eq!(limits.encode().data(), &US5000_351);
    }

    #[test]
    fn a_negative_discharge_limit_is_out_of_range_at_byte_4() {
        // -480.0 A, as the DBC's declared range would have it.
        let bytes = [0x14, 0x02, 0xC0, 0x12, 0x40, 0xED, 0xC2, 0x01];
        assert_eq!(
            Limits::decode(&frame(id::LIMITS, &bytes)),
            Err(CanError::OutOfRange {
                id: id::LIMITS,
                field: "DCL",
                offset: 4,
                raw: -4800
            })
        );
    }

    #[test]
    fn limits_need_eight_bytes_and_their_own_id() {
        let short = frame(id::LIMITS, &US5000_351[..6]);
        assert!(matches!(
            Limits::decode(&short),
            Err(CanError::WrongLength { found: 6, .. })
        ));
        let other = frame(id::SOC_SOH, &US5000_351);
        assert!(matches!(
            Limits::decode(&other),
            Err(CanError::WrongId { .. })
        ));
    }

    #[test]
    fn soc_soh_has_three_forms() {
        let four = SocSoh::decode(&frame(id::SOC_SOH, &[0x4B, 0, 0x63, 0])).unwrap();
        assert_eq!((four.soc.get(), four.soh.get()), (75, 99));
        assert_eq!((four.soc_fine, four.remaining), (None, None));
        assert_eq!(four.encode().dlc(), 4);

        let six = SocSoh::decode(&frame(id::SOC_SOH, &[0x4B, 0, 0x63, 0, 0x73, 0x1D])).unwrap();
        assert_eq!(six.soc_fine.map(CentiPercent::get), Some(7539));
        assert_eq!(six.encode().data(), &[0x4B, 0, 0x63, 0, 0x73, 0x1D]);

        let bytes = [0x4B, 0, 0x63, 0, 0xFF, 0xFF, 0x2C, 0x01];
        let eight = SocSoh::decode(&frame(id::SOC_SOH, &bytes)).unwrap();
        assert_eq!(
            (eight.soc_fine, eight.remaining),
            (None, Some(AmpHours(300)))
        );
        assert_eq!(eight.encode().data(), &bytes);
    }

    #[test]
    fn soc_above_100_percent_is_out_of_range() {
        let bytes = [0x65, 0, 0x63, 0];
        assert!(matches!(
            SocSoh::decode(&frame(id::SOC_SOH, &bytes)),
            Err(CanError::OutOfRange {
                field: "SOC",
                offset: 0,
                raw: 101,
                ..
            })
        ));
        let fine = [0x4B, 0, 0x63, 0, 0x11, 0x27]; // 10001
        assert!(matches!(
            SocSoh::decode(&frame(id::SOC_SOH, &fine)),
            Err(CanError::OutOfRange { offset: 4, .. })
        ));
        assert!(matches!(
            SocSoh::decode(&frame(id::SOC_SOH, &[0; 5])),
            Err(CanError::WrongLength { .. })
        ));
    }

    #[test]
    fn measurements_keep_the_charging_sign() {
        // 52.10 V, -12.5 A (discharging), 23.4 degC.
        let bytes = [0x5A, 0x14, 0x83, 0xFF, 0xEA, 0x00];
        let m = Measurements::decode(&frame(id::MEASUREMENTS, &bytes)).unwrap();
        assert_eq!(m.voltage, CentiVolts(5210));
        assert_eq!(m.current, DeciAmps(-125));
        assert_eq!(m.temperature, DeciCelsius(234));
        assert_eq!(m.encode().data(), &bytes);
        let negative = [0xFF, 0xFF, 0, 0, 0, 0];
        assert!(matches!(
            Measurements::decode(&frame(id::MEASUREMENTS, &negative)),
            Err(CanError::OutOfRange { offset: 0, .. })
        ));
    }

    #[test]
    fn requests_normal_is_c0_00() {
        let normal = Requests {
            flags: RequestFlags::CHARGE_ENABLE | RequestFlags::DISCHARGE_ENABLE,
        };
        assert_eq!(normal.encode().data(), &[0xC0, 0x00]);
        let odd = Requests::decode(&frame(id::REQUESTS, &[0xC1, 0x00])).unwrap();
        assert_eq!(odd.flags.bits(), 0xC1); // unknown bit kept
    }

    #[test]
    fn manufacturer_is_space_padded_ascii() {
        let pylon = Manufacturer {
            name: ShortText::new(b"PYLON").unwrap(),
        };
        assert_eq!(pylon.encode().data(), b"PYLON   ");
        assert_eq!(
            Manufacturer::decode(&frame(id::MANUFACTURER, b"PYLON   ")),
            Ok(pylon)
        );
    }

    #[test]
    fn product_info_and_installed_capacity_are_u16s() {
        let info = ProductInfo {
            product_id: 0x0001,
            firmware_version: 0x0203,
            capacity: AmpHours(100),
            hardware_id: 0x4C50,
        };
        assert_eq!(
            info.encode().data(),
            &[0x01, 0x00, 0x03, 0x02, 0x64, 0x00, 0x50, 0x4C]
        );
        let capacity = InstalledCapacity {
            capacity: AmpHours(280),
        };
        assert_eq!(capacity.encode().data(), &[0x18, 0x01, 0, 0, 0, 0, 0, 0]);
    }

    fn percent() -> impl Strategy<Value = Percent> {
        (0u8..=100).prop_map(Percent::saturating)
    }

    proptest! {
        #[test]
        fn limits_round_trip(cvl: u16, ccl in 0i16.., dcl in 0i16.., dvl: u16) {
            let limits = Limits {
                charge_voltage: DeciVolts(cvl),
                charge_current: DeciAmps(ccl),
                discharge_current: DeciAmps(dcl),
                discharge_voltage: DeciVolts(dvl),
            };
            prop_assert_eq!(Limits::decode(&limits.encode()), Ok(limits));
        }

        #[test]
        fn soc_soh_round_trips(
            soc in percent(),
            soh in percent(),
            fine in proptest::option::of(0u16..=10_000),
            remaining in proptest::option::of(0u16..0xFFFF),
        ) {
            let value = SocSoh {
                soc,
                soh,
                soc_fine: fine.and_then(CentiPercent::new),
                remaining: remaining.map(AmpHours),
            };
            prop_assert_eq!(SocSoh::decode(&value.encode()), Ok(value));
        }

        #[test]
        fn measurements_round_trip(voltage in 0i16.., current: i16, temperature: i16) {
            let value = Measurements {
                voltage: CentiVolts(voltage),
                current: DeciAmps(current),
                temperature: DeciCelsius(temperature),
            };
            prop_assert_eq!(Measurements::decode(&value.encode()), Ok(value));
        }

        #[test]
        fn requests_round_trip(bits: u8) {
            let value = Requests { flags: RequestFlags::from_bits_retain(bits) };
            prop_assert_eq!(Requests::decode(&value.encode()), Ok(value));
        }

        #[test]
        fn manufacturer_round_trips(text in proptest::collection::vec(0x20u8..0x7F, 0..=8)) {
            let value = Manufacturer { name: ShortText::new(&text).unwrap() };
            prop_assert_eq!(Manufacturer::decode(&value.encode()), Ok(value));
        }

        #[test]
        fn product_info_round_trips(product: u16, firmware: u16, capacity: u16, hardware: u16) {
            let value = ProductInfo {
                product_id: product,
                firmware_version: firmware,
                capacity: AmpHours(capacity),
                hardware_id: hardware,
            };
            prop_assert_eq!(ProductInfo::decode(&value.encode()), Ok(value));
        }

        #[test]
        fn installed_capacity_round_trips(capacity: u16) {
            let value = InstalledCapacity { capacity: AmpHours(capacity) };
            prop_assert_eq!(InstalledCapacity::decode(&value.encode()), Ok(value));
        }

        #[test]
        fn decoding_arbitrary_frames_never_panics(raw_id in 0x300u16..0x380, data in proptest::collection::vec(any::<u8>(), 0..=8)) {
            if let Some(id) = CanId::new(raw_id) {
                let frame = CanFrame::new(id, &data).unwrap();
                let _ = super::super::BatteryMessage::decode(&frame);
            }
        }
    }
}
