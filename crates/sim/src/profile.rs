//! Load profiles: the current a pack is asked for over time (positive = charging).
//!
//! Forms, as written on the command line (`--profile`):
//! - `rest`: no current;
//! - `constant:A`: a constant current (`constant:-20` discharges at 20 A);
//! - `pulses:A,PERIOD_S,DUTY`: `A` for `DUTY` of every period, rest otherwise;
//! - `solar:PEAK_A,NIGHT_A`: a day: charge following the sun (a half sine from 06:00 to
//!   18:00 peaking at `PEAK_A` at noon), discharge at `NIGHT_A` the rest of the time;
//! - a CSV file with columns `t_s,current_a` (more columns are ignored) where, as in logged
//!   and PyBaMM profiles, **positive `current_a` = discharge**; replayed with the current held
//!   between samples and repeated at the end.

use std::fmt;
use std::path::Path;

/// A load profile.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadProfile {
    /// A constant current, A.
    Constant(f64),
    /// `current_a` for `duty` of every `period_s`.
    Pulses {
        /// Current during a pulse, A.
        current_a: f64,
        /// Period, s.
        period_s: f64,
        /// Fraction of the period with current.
        duty: f64,
    },
    /// A solar day (24 h period).
    SolarDay {
        /// Charge current at noon, A.
        peak_charge_a: f64,
        /// Discharge current at night, A (positive number).
        night_discharge_a: f64,
    },
    /// Logged samples `(t_s, current_a)` with positive = charge, replayed and repeated.
    Replay(Vec<(f64, f64)>),
}

/// A profile that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileError(pub String);

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProfileError {}

fn numbers(spec: &str, text: &str, count: usize) -> Result<Vec<f64>, ProfileError> {
    let values: Result<Vec<f64>, _> = text.split(',').map(|v| v.trim().parse::<f64>()).collect();
    match values {
        Ok(values) if values.len() == count && values.iter().all(|v| v.is_finite()) => Ok(values),
        _ => Err(ProfileError(format!(
            "profile '{spec}': expected {count} comma-separated numbers"
        ))),
    }
}

impl LoadProfile {
    /// Parses a profile description (see the module documentation).
    pub fn parse(spec: &str) -> Result<LoadProfile, ProfileError> {
        let (kind, args) = spec.split_once(':').unwrap_or((spec, ""));
        match kind {
            "rest" => Ok(LoadProfile::Constant(0.0)),
            "constant" => Ok(LoadProfile::Constant(numbers(spec, args, 1)?[0])),
            "pulses" => {
                let v = numbers(spec, args, 3)?;
                if v[1] <= 0.0 || !(0.0..=1.0).contains(&v[2]) {
                    return Err(ProfileError(format!(
                        "profile '{spec}': the period must be positive and the duty within 0..1"
                    )));
                }
                Ok(LoadProfile::Pulses { current_a: v[0], period_s: v[1], duty: v[2] })
            }
            "solar" => {
                let v = numbers(spec, args, 2)?;
                Ok(LoadProfile::SolarDay { peak_charge_a: v[0], night_discharge_a: v[1].abs() })
            }
            _ if Path::new(spec).exists() => LoadProfile::from_csv_file(Path::new(spec)),
            _ => Err(ProfileError(format!(
                "unknown profile '{spec}': use rest, constant:A, pulses:A,PERIOD_S,DUTY, solar:PEAK_A,NIGHT_A or a CSV file"
            ))),
        }
    }

    /// Reads a CSV of `t_s,current_a` (positive = discharge) samples.
    pub fn from_csv_file(path: &Path) -> Result<LoadProfile, ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProfileError(format!("cannot read {}: {e}", path.display())))?;
        LoadProfile::from_csv(&text)
            .map_err(|e| ProfileError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses CSV text of `t_s,current_a` (positive = discharge) samples.
    pub fn from_csv(text: &str) -> Result<LoadProfile, ProfileError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let Some((_, header)) = lines.next() else {
            return Err(ProfileError("empty profile".into()));
        };
        let columns: Vec<&str> = header.split(',').map(str::trim).collect();
        let column = |name: &str| {
            columns
                .iter()
                .position(|c| *c == name)
                .ok_or_else(|| ProfileError(format!("no '{name}' column in the header")))
        };
        let (t_column, current_column) = (column("t_s")?, column("current_a")?);
        let mut samples = Vec::new();
        for (index, line) in lines {
            let fields: Vec<&str> = line.split(',').collect();
            let value = |column: usize, name: &str| {
                fields
                    .get(column)
                    .and_then(|f| f.trim().parse::<f64>().ok())
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        ProfileError(format!("line {}: '{name}' is not a number", index + 1))
                    })
            };
            let t = value(t_column, "t_s")?;
            if samples.last().is_some_and(|&(last, _)| t <= last) {
                return Err(ProfileError(format!(
                    "line {}: t_s must increase",
                    index + 1
                )));
            }
            samples.push((t, -value(current_column, "current_a")?));
        }
        if samples.is_empty() {
            return Err(ProfileError("no samples".into()));
        }
        Ok(LoadProfile::Replay(samples))
    }

    /// The current at `t_s` seconds, A (positive = charge).
    pub fn current_at(&self, t_s: f64) -> f64 {
        match self {
            LoadProfile::Constant(a) => *a,
            LoadProfile::Pulses {
                current_a,
                period_s,
                duty,
            } => {
                if (t_s.rem_euclid(*period_s)) < duty * period_s {
                    *current_a
                } else {
                    0.0
                }
            }
            LoadProfile::SolarDay {
                peak_charge_a,
                night_discharge_a,
            } => {
                let hour = t_s.rem_euclid(86_400.0) / 3600.0;
                if (6.0..18.0).contains(&hour) {
                    peak_charge_a * libm::sin(core::f64::consts::PI * (hour - 6.0) / 12.0)
                } else {
                    -night_discharge_a
                }
            }
            LoadProfile::Replay(samples) => replay(samples, t_s),
        }
    }
}

/// The sample in force at `t_s`, the profile repeating after its last sample.
fn replay(samples: &[(f64, f64)], t_s: f64) -> f64 {
    let (Some(&(start, _)), Some(&(end, _))) = (samples.first(), samples.last()) else {
        return 0.0;
    };
    let span = end - start;
    let t = if span > 0.0 {
        start + (t_s - start).rem_euclid(span)
    } else {
        start
    };
    let index = samples.partition_point(|&(time, _)| time <= t);
    samples[index.saturating_sub(1)].1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            LoadProfile::parse("constant:-20"),
            Ok(LoadProfile::Constant(-20.0))
        );
        assert_eq!(LoadProfile::parse("rest"), Ok(LoadProfile::Constant(0.0)));
        assert_eq!(
            LoadProfile::parse("pulses:-50,60,0.25"),
            Ok(LoadProfile::Pulses {
                current_a: -50.0,
                period_s: 60.0,
                duty: 0.25
            })
        );
        assert!(LoadProfile::parse("pulses:-50,0,0.5").is_err());
        assert!(LoadProfile::parse("constant:x")
            .unwrap_err()
            .0
            .contains("expected 1"));
        assert!(LoadProfile::parse("sinus")
            .unwrap_err()
            .0
            .contains("unknown profile 'sinus'"));
    }

    #[test]
    fn pulses_and_solar_day_follow_their_shapes() {
        let pulses = LoadProfile::Pulses {
            current_a: -50.0,
            period_s: 60.0,
            duty: 0.25,
        };
        assert_eq!(pulses.current_at(10.0), -50.0);
        assert_eq!(pulses.current_at(20.0), 0.0);
        assert_eq!(pulses.current_at(70.0), -50.0);
        let solar = LoadProfile::SolarDay {
            peak_charge_a: 40.0,
            night_discharge_a: 10.0,
        };
        assert!((solar.current_at(12.0 * 3600.0) - 40.0).abs() < 1e-9);
        assert_eq!(solar.current_at(2.0 * 3600.0), -10.0);
        assert!((solar.current_at(86_400.0 + 12.0 * 3600.0) - 40.0).abs() < 1e-9);
    }

    #[test]
    fn csv_replay_flips_the_sign_holds_and_repeats() {
        let profile =
            LoadProfile::from_csv("t_s,current_a,voltage_v\n0,5,3.7\n10,-2,3.8\n20,0,3.7\n")
                .unwrap();
        assert_eq!(
            profile.current_at(0.0),
            -5.0,
            "positive = discharge in the file"
        );
        assert_eq!(profile.current_at(15.0), 2.0);
        assert_eq!(profile.current_at(25.0), -5.0, "repeats after 20 s");
        let bad = LoadProfile::from_csv("t_s,current_a\n0,1\n1,abc\n").unwrap_err();
        assert_eq!(bad.0, "line 3: 'current_a' is not a number");
        assert!(LoadProfile::from_csv("t,i\n0,1\n")
            .unwrap_err()
            .0
            .contains("no 't_s' column"));
    }
}
