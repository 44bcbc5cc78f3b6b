//! Wire units of the CAN family as newtypes, and the one place where engineering values
//! ([`Millivolts`], [`Milliamps`]) become them.
//!
//! Every conversion into a wire unit **saturates** (never wraps) and says how it rounds. The
//! saturated range stops one step short of SMA's "invalid, use default" sentinels
//! (inverter-can.md, "Bus rules": 0x8000 signed, 0xFFFF unsigned), so a saturated value is still
//! read as a value: signed fields saturate to -32767..=32767, unsigned ones to 0..=65534.
//!
//! Rounding is chosen per field by the caller ([`Rounding`]); the profile encoder rounds limits
//! towards the safe side (CVL and the current limits down, DVL up) and measurements to nearest.

use crate::units::{Milliamps, Millivolts};

/// Largest signed wire value a conversion produces (0x7FFF).
pub const SIGNED_MAX: i16 = i16::MAX;
/// Smallest signed wire value a conversion produces: 0x8001, one above SMA's 0x8000 "invalid".
pub const SIGNED_MIN: i16 = -i16::MAX;
/// Largest unsigned wire value a conversion produces: 0xFFFE, one below SMA's 0xFFFF "invalid".
pub const UNSIGNED_MAX: u16 = u16::MAX - 1;
/// SMA's "invalid, use default" for signed fields (inverter-can.md, "Bus rules").
pub const SIGNED_INVALID: i16 = i16::MIN;
/// SMA's "invalid, use default" for unsigned fields.
pub const UNSIGNED_INVALID: u16 = u16::MAX;

/// How a conversion to a coarser unit rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Towards minus infinity (a CVL or a current limit never grows).
    Down,
    /// Towards plus infinity (a DVL never shrinks).
    Up,
    /// To the nearest step, halves away from zero (measurements).
    Nearest,
}

impl Rounding {
    /// `value / divisor` rounded; `divisor` > 0.
    pub(crate) fn divide(self, value: i64, divisor: i64) -> i64 {
        match self {
            Rounding::Down => value.div_euclid(divisor),
            Rounding::Up => -(-value).div_euclid(divisor),
            Rounding::Nearest if value >= 0 => (value + divisor / 2) / divisor,
            Rounding::Nearest => -((-value + divisor / 2) / divisor),
        }
    }
}

/// Clamps to the signed wire range without the 0x8000 sentinel.
pub(crate) fn saturate_i16(value: i64) -> i16 {
    value.clamp(i64::from(SIGNED_MIN), i64::from(SIGNED_MAX)) as i16
}

/// Clamps to the unsigned wire range without the 0xFFFF sentinel.
pub(crate) fn saturate_u16(value: i64) -> u16 {
    value.clamp(0, i64::from(UNSIGNED_MAX)) as u16
}

/// A voltage in 0.1 V, unsigned (0x351 CVL and DVL, SMA 0x305).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeciVolts(pub u16);

impl DeciVolts {
    /// From millivolts, rounded as asked, saturating at 6553.4 V.
    pub fn from_millivolts(voltage: Millivolts, rounding: Rounding) -> DeciVolts {
        DeciVolts(saturate_u16(rounding.divide(i64::from(voltage.0), 100)))
    }

    /// In millivolts (exact).
    pub fn millivolts(self) -> Millivolts {
        Millivolts(u32::from(self.0) * 100)
    }
}

/// A voltage in 0.01 V, signed on the wire (0x356 pack voltage).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CentiVolts(pub i16);

impl CentiVolts {
    /// From millivolts, rounded as asked, saturating at 327.67 V.
    pub fn from_millivolts(voltage: Millivolts, rounding: Rounding) -> CentiVolts {
        CentiVolts(saturate_i16(rounding.divide(i64::from(voltage.0), 10)))
    }

    /// In millivolts, or `None` for a negative wire value (no pack has a negative voltage).
    pub fn millivolts(self) -> Option<Millivolts> {
        u32::try_from(i32::from(self.0) * 10).ok().map(Millivolts)
    }
}

/// A current in 0.1 A, signed. Which sign means charging is stated at every field that holds
/// one; inside bmslink it is always positive = charging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeciAmps(pub i16);

impl DeciAmps {
    /// From milliamps, rounded as asked, saturating at +-3276.7 A.
    pub fn from_milliamps(current: Milliamps, rounding: Rounding) -> DeciAmps {
        DeciAmps(saturate_i16(rounding.divide(i64::from(current.0), 100)))
    }

    /// A limit (a magnitude, never negative) from milliamps: a negative input is 0, the value
    /// rounds down and saturates at 3276.7 A.
    pub fn limit_from_milliamps(current: Milliamps) -> DeciAmps {
        DeciAmps::from_milliamps(Milliamps(current.0.max(0)), Rounding::Down)
    }

    /// In milliamps (exact).
    pub fn milliamps(self) -> Milliamps {
        Milliamps(i32::from(self.0) * 100)
    }
}

/// A temperature in 0.1 degC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeciCelsius(pub i16);

impl DeciCelsius {
    /// From whole degrees Celsius (exact for every NW temperature).
    pub fn from_celsius(celsius: crate::units::Celsius) -> DeciCelsius {
        DeciCelsius(saturate_i16(i64::from(celsius.0) * 10))
    }
}

/// A temperature in whole kelvin (Victron 0x373).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kelvin(pub u16);

impl Kelvin {
    /// 0 degC in hundredths of a kelvin.
    const ZERO_CELSIUS_CENTI: i64 = 27_315;

    /// From 0.1 degC, to the nearest kelvin, saturating (a temperature below 0 K is 0 K).
    pub fn from_deci_celsius(temperature: DeciCelsius) -> Kelvin {
        let centi_kelvin = i64::from(temperature.0) * 10 + Self::ZERO_CELSIUS_CENTI;
        Kelvin(saturate_u16(Rounding::Nearest.divide(centi_kelvin, 100)))
    }

    /// In 0.1 degC (273.15 K = 0 degC, so a whole kelvin is x.x5 degC: rounded to nearest).
    pub fn deci_celsius(self) -> DeciCelsius {
        let centi_celsius = i64::from(self.0) * 100 - Self::ZERO_CELSIUS_CENTI;
        DeciCelsius(saturate_i16(Rounding::Nearest.divide(centi_celsius, 10)))
    }
}

/// A whole percentage, 0..=100 (0x355 SOC and SOH).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u8);

impl Percent {
    /// 100 %.
    pub const FULL: Percent = Percent(100);

    /// The percentage, or `None` above 100.
    pub const fn new(value: u8) -> Option<Percent> {
        if value <= 100 {
            Some(Percent(value))
        } else {
            None
        }
    }

    /// The percentage, 100 for anything above.
    pub const fn saturating(value: u8) -> Percent {
        Percent(if value > 100 { 100 } else { value })
    }

    /// The value, 0..=100.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// A percentage in 0.01 %, 0..=10000 (0x355 high-resolution SOC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CentiPercent(u16);

impl CentiPercent {
    /// 100.00 %.
    pub const FULL: CentiPercent = CentiPercent(10_000);

    /// The value, or `None` above 10000.
    pub const fn new(value: u16) -> Option<CentiPercent> {
        if value <= 10_000 {
            Some(CentiPercent(value))
        } else {
            None
        }
    }

    /// From a fraction 0..=1 (as `SystemView::soc`), to the nearest 0.01 %, clamped; NaN is 0.
    pub fn from_fraction(fraction: f32) -> CentiPercent {
        // `as` saturates and maps NaN to 0.
        CentiPercent((fraction.clamp(0.0, 1.0) * 10_000.0 + 0.5) as u16)
    }

    /// The value, 0..=10000.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The whole percentage, rounded down: 99.99 % is 99 %, full is only full.
    pub const fn whole_percent(self) -> Percent {
        Percent((self.0 / 100) as u8)
    }
}

/// A percentage in 0.1 %, 0..=1000 (SMA 0x305 SOC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeciPercent(u16);

impl DeciPercent {
    /// The value, or `None` above 1000.
    pub const fn new(value: u16) -> Option<DeciPercent> {
        if value <= 1000 {
            Some(DeciPercent(value))
        } else {
            None
        }
    }

    /// The value, 0..=1000.
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// A charge in whole ampere-hours (0x35F, 0x379).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AmpHours(pub u16);

impl AmpHours {
    /// From a floating-point capacity (as `SystemView::capacity_ah`), rounded down (a battery
    /// is never announced larger than it is), saturating; NaN and negatives are 0.
    pub fn from_f32(capacity_ah: f32) -> AmpHours {
        // `as` saturates and maps NaN to 0; the clamp keeps 0xFFFF free.
        AmpHours((capacity_ah as u32).min(u32::from(UNSIGNED_MAX)) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Celsius;

    #[test]
    fn rounding_goes_the_way_it_says_for_both_signs() {
        assert_eq!(Rounding::Down.divide(149, 100), 1);
        assert_eq!(Rounding::Down.divide(-101, 100), -2);
        assert_eq!(Rounding::Up.divide(101, 100), 2);
        assert_eq!(Rounding::Up.divide(-199, 100), -1);
        assert_eq!(Rounding::Nearest.divide(150, 100), 2);
        assert_eq!(Rounding::Nearest.divide(-150, 100), -2);
        assert_eq!(Rounding::Nearest.divide(-149, 100), -1);
    }

    #[test]
    fn voltage_limits_round_towards_the_safe_side() {
        let cvl = DeciVolts::from_millivolts(Millivolts(53_299), Rounding::Down);
        let dvl = DeciVolts::from_millivolts(Millivolts(45_001), Rounding::Up);
        assert_eq!((cvl, dvl), (DeciVolts(532), DeciVolts(451)));
        assert_eq!(DeciVolts(532).millivolts(), Millivolts(53_200));
    }

    #[test]
    fn a_current_beyond_s16_saturates_and_never_wraps() {
        // 4000 A would be 40000 = 0x9C40, which reads back as -2553.6 A if it wrapped.
        let charge = DeciAmps::from_milliamps(Milliamps(4_000_000), Rounding::Nearest);
        let discharge = DeciAmps::from_milliamps(Milliamps(-4_000_000), Rounding::Nearest);
        assert_eq!(charge, DeciAmps(0x7FFF));
        // 0x8001, not SMA's 0x8000 "invalid".
        assert_eq!(discharge, DeciAmps(-0x7FFF));
        assert_eq!(
            DeciAmps::from_milliamps(Milliamps(i32::MIN), Rounding::Down),
            DeciAmps(-0x7FFF)
        );
    }

    #[test]
    fn a_limit_is_a_magnitude() {
        assert_eq!(
            DeciAmps::limit_from_milliamps(Milliamps(-5_000)),
            DeciAmps(0)
        );
        assert_eq!(
            DeciAmps::limit_from_milliamps(Milliamps(480_099)),
            DeciAmps(4800)
        );
        assert_eq!(
            DeciAmps::limit_from_milliamps(Milliamps(i32::MAX)),
            DeciAmps(0x7FFF)
        );
    }

    #[test]
    fn unsigned_fields_saturate_below_the_invalid_sentinel() {
        let huge = DeciVolts::from_millivolts(Millivolts(u32::MAX), Rounding::Nearest);
        assert_eq!(huge, DeciVolts(0xFFFE));
        assert_eq!(AmpHours::from_f32(1e9), AmpHours(0xFFFE));
        assert_eq!(AmpHours::from_f32(f32::NAN), AmpHours(0));
        assert_eq!(AmpHours::from_f32(279.9), AmpHours(279));
    }

    #[test]
    fn pack_voltage_is_centivolts_and_saturates_at_327_67_v() {
        let volts = CentiVolts::from_millivolts(Millivolts(52_345), Rounding::Nearest);
        assert_eq!(volts, CentiVolts(5235));
        assert_eq!(
            CentiVolts::from_millivolts(Millivolts(400_000), Rounding::Nearest),
            CentiVolts(0x7FFF)
        );
        assert_eq!(CentiVolts(-1).millivolts(), None);
    }

    #[test]
    fn kelvin_is_nearest_whole_and_converts_back() {
        assert_eq!(Kelvin::from_deci_celsius(DeciCelsius(250)), Kelvin(298));
        assert_eq!(Kelvin::from_deci_celsius(DeciCelsius(-200)), Kelvin(253));
        assert_eq!(Kelvin::from_deci_celsius(DeciCelsius(i16::MIN)), Kelvin(0));
        assert_eq!(Kelvin(298).deci_celsius(), DeciCelsius(249)); // 24.85 -> 24.9
        assert_eq!(DeciCelsius::from_celsius(Celsius(-20)), DeciCelsius(-200));
    }

    #[test]
    fn percentages_are_checked_and_whole_soc_rounds_down() {
        assert_eq!(Percent::new(101), None);
        assert_eq!(Percent::saturating(200), Percent::FULL);
        assert_eq!(CentiPercent::new(10_001), None);
        assert_eq!(
            CentiPercent::from_fraction(0.9999).whole_percent().get(),
            99
        );
        assert_eq!(CentiPercent::from_fraction(2.0), CentiPercent::FULL);
        assert_eq!(CentiPercent::from_fraction(f32::NAN).get(), 0);
        assert_eq!(DeciPercent::new(1001), None);
    }
}
