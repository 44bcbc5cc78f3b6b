//! Physical units as newtypes.
//!
//! Values on the wire are integers in protocol-specific scales (10 mV, 10 mA, whole degC with a
//! "100 reference" for negatives). Once decoded they become one of these types, so a millivolt can
//! never be added to a centivolt by mistake. Sign convention for current: **positive = charging**,
//! as in the NW protocol. (The inverter CAN and SunSpec conventions differ; they convert at their
//! own edge.)

use core::fmt;

/// An electric potential in millivolts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millivolts(pub u32);

/// A current in milliamps; positive = charging, negative = discharging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Milliamps(pub i32);

/// A temperature in whole degrees Celsius (the resolution of the NW protocol).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Celsius(pub i16);

impl Millivolts {
    /// The value in volts, for display and for floating-point models.
    pub fn volts(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl Milliamps {
    /// The value in amps, for display and for floating-point models.
    pub fn amps(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl fmt::Display for Millivolts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03} V", self.0 / 1000, self.0 % 1000)
    }
}

impl fmt::Display for Milliamps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:03} A", magnitude / 1000, magnitude % 1000)
    }
}

impl fmt::Display for Celsius {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} °C", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_keeps_sign_and_leading_zeros() {
        assert_eq!(Millivolts(3050).to_string(), "3.050 V");
        assert_eq!(Milliamps(-690).to_string(), "-0.690 A");
        assert_eq!(Milliamps(10120).to_string(), "10.120 A");
        assert_eq!(Celsius(-20).to_string(), "-20 °C");
    }
}
