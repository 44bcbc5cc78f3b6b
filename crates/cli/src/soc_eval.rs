//! `bmslink soc-eval`: replays a logged or simulated profile through the SOC estimator of
//! `bmslink-core` and reports its accuracy.
//!
//! The profile is a CSV with a header naming the columns `t_s`, `current_a` (**positive =
//! discharge**, as in battery logs and PyBaMM), `voltage_v` (one cell), `temp_c`, and
//! `soc_true` (0..1) when the true SOC is known; other columns are ignored. The current is
//! negated here, at the edge: the estimator counts charging as positive.
//!
//! Sensor errors are injected here too, never in the core: a current gain error, a current
//! offset in C, Gaussian voltage noise (a seeded ChaCha8 generator, so a run is reproducible by
//! its seed), an initial SOC error and a capacity error.
//!
//! Printed: RMSE, maximum error, error at the end and convergence time (the time after which
//! the error stays within 2 %), plus the error after the first knee (the first sample with the
//! true SOC where the OCV curve is steeper than 1 V per unit of SOC, [`Knees`], or within
//! `--knees`), as a short report or one JSON object.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bmslink_core::chemistry::{Chemistry, OcvTable};
use bmslink_core::soc::{Knees, SocConfig, SocEstimate, SocEstimator, SocMetrics, KNEE_SLOPE_V};
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

/// Arguments of `bmslink soc-eval`.
#[derive(Debug, Args)]
pub struct SocEvalArgs {
    /// Profile CSV: t_s, current_a (positive = discharge), voltage_v, temp_c[, soc_true].
    #[arg(long)]
    profile: PathBuf,
    /// Cell chemistry: lfp, nmc or lto (OCV table, equivalent circuit, hysteresis).
    #[arg(long, value_parser = parse_chemistry)]
    chemistry: Chemistry,
    /// Capacity the estimator is told, Ah. Default: the profile's own capacity (from soc_true
    /// and the current) times 1 + --capacity-error, or the chemistry's typical cell.
    #[arg(long)]
    capacity_ah: Option<f64>,
    /// Relative error of the capacity the estimator is told (0.05 = 5 % too large); only
    /// without --capacity-ah.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    capacity_error: f64,
    /// OCV table CSV: two columns, SOC (0..1, or percent with a soc_pct header) and OCV in
    /// volts; resampled to 5 % steps.
    #[arg(long)]
    ocv_table: Option<PathBuf>,
    /// True SOC at or below LOW and at or above HIGH counts as a knee, as LOW,HIGH (0..1).
    /// Default: where the OCV table in use (its own points) is steeper than 1 V per unit of
    /// SOC; the built-in LFP table gives 0.15,0.95, the PyBaMM profiles' own curves 0.175,0.97.
    #[arg(long, value_parser = parse_knees)]
    knees: Option<Knees>,
    /// Error of the initial SOC given to the estimator (0.1 = 10 % too high). Needs soc_true;
    /// without it the estimator starts from the first voltage.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    initial_soc_error: f64,
    /// Current sensor gain error (0.01 = reads 1 % high).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    gain_error: f64,
    /// Current sensor offset, in C (0.002 = 0.2 % of the capacity, added to the discharge
    /// current).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    offset_c: f64,
    /// Voltage noise, standard deviation in millivolts.
    #[arg(long, default_value_t = 0.0)]
    noise_mv: f64,
    /// Seed of the noise generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object instead of a report.
    #[arg(long)]
    json: bool,
    /// Also write every sample (time, true and estimated SOC, OCV, voltage SOC, ...) to this
    /// CSV file.
    #[arg(long)]
    trace: Option<PathBuf>,
}

fn parse_knees(text: &str) -> Result<Knees, String> {
    let (low, high) = text
        .split_once(',')
        .ok_or_else(|| format!("{text:?}: expected LOW,HIGH, e.g. 0.175,0.97"))?;
    let fraction = |field: &str| match field.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{field:?} is not a SOC between 0 and 1")),
    };
    let (low, high) = (fraction(low)?, fraction(high)?);
    if low >= high {
        return Err(format!(
            "the low knee ({low}) must lie below the high one ({high})"
        ));
    }
    Ok(Knees {
        low: Some(low),
        high: Some(high),
    })
}

fn parse_chemistry(name: &str) -> Result<Chemistry, String> {
    Chemistry::from_name(name).ok_or_else(|| format!("unknown chemistry {name:?} (lfp, nmc, lto)"))
}

/// One row of a profile.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Row {
    t_s: f64,
    discharge_a: f64,
    voltage_v: f64,
    temp_c: f64,
    soc_true: Option<f64>,
}

/// Runs `bmslink soc-eval`.
pub fn run(args: SocEvalArgs) -> Result<()> {
    let text = fs::read_to_string(&args.profile)
        .with_context(|| format!("cannot read {}", args.profile.display()))?;
    let rows = parse_profile(&text).with_context(|| format!("in {}", args.profile.display()))?;
    let (ocv, curve) = match &args.ocv_table {
        Some(path) => read_ocv_table(path)?,
        None => {
            let table = *args.chemistry.ocv();
            (table, table_points(&table))
        }
    };
    let knees = args
        .knees
        .unwrap_or_else(|| Knees::of_curve(&curve, KNEE_SLOPE_V));
    let setup = Setup::new(&args, &rows, ocv, knees)?;
    let mut trace = Trace::open(args.trace.as_deref())?;
    let outcome = replay(&rows, &setup, args.seed, &mut trace);
    trace.finish()?;
    if args.json {
        println!("{}", report_json(&args, &rows, &setup, &outcome));
    } else {
        print!("{}", report_text(&args, &rows, &setup, &outcome));
    }
    Ok(())
}

/// Reads a profile: a header, then one row per line; `#` starts a comment line.
fn parse_profile(text: &str) -> Result<Vec<Row>> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
    let Some((_, header)) = lines.next() else {
        bail!("the profile is empty");
    };
    let columns = ProfileColumns::from_header(header)?;
    let mut rows: Vec<Row> = Vec::new();
    for (number, line) in lines {
        let row = columns.parse(number, line)?;
        if let Some(previous) = rows.last() {
            if row.t_s < previous.t_s {
                bail!(
                    "line {number}, column t_s: time goes back ({} after {})",
                    row.t_s,
                    previous.t_s
                );
            }
        }
        rows.push(row);
    }
    if rows.len() < 2 {
        bail!(
            "the profile has {} data rows; at least 2 are needed",
            rows.len()
        );
    }
    Ok(rows)
}

/// Where each column of a profile is.
struct ProfileColumns {
    names: Vec<String>,
    t_s: usize,
    current_a: usize,
    voltage_v: usize,
    temp_c: usize,
    soc_true: Option<usize>,
}

impl ProfileColumns {
    fn from_header(header: &str) -> Result<ProfileColumns> {
        let names: Vec<String> = header.split(',').map(|n| n.trim().to_owned()).collect();
        let find = |name: &str| names.iter().position(|n| n == name);
        let require = |name: &str| {
            find(name).with_context(|| {
                format!("line 1: the header has no {name} column (it has: {header})")
            })
        };
        Ok(ProfileColumns {
            t_s: require("t_s")?,
            current_a: require("current_a")?,
            voltage_v: require("voltage_v")?,
            temp_c: require("temp_c")?,
            soc_true: find("soc_true"),
            names,
        })
    }

    fn parse(&self, number: usize, line: &str) -> Result<Row> {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != self.names.len() {
            bail!(
                "line {number}: {} fields, the header has {}",
                fields.len(),
                self.names.len()
            );
        }
        let value = |index: usize| -> Result<f64> {
            let field = fields[index];
            match field.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => bail!(
                    "line {number}, column {} ({}): {field:?} is not a finite number",
                    index + 1,
                    self.names[index]
                ),
            }
        };
        Ok(Row {
            t_s: value(self.t_s)?,
            discharge_a: value(self.current_a)?,
            voltage_v: value(self.voltage_v)?,
            temp_c: value(self.temp_c)?,
            soc_true: self.soc_true.map(value).transpose()?,
        })
    }
}

/// The 21 points of an OCV table as (soc, volts).
fn table_points(table: &OcvTable) -> Vec<(f64, f64)> {
    (0..21)
        .zip(table.volts())
        .map(|(n, volts)| (f64::from(n) / 20.0, f64::from(volts)))
        .collect()
}

/// Reads a two-column OCV table file (SOC, volts), with or without a header: the table the
/// estimator uses (resampled to the 21 points of [`OcvTable`]) and the file's own points, from
/// which the knees are found.
fn read_ocv_table(path: &Path) -> Result<(OcvTable, Vec<(f64, f64)>)> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_ocv_table(&text).with_context(|| format!("in the OCV table {}", path.display()))
}

fn parse_ocv_table(text: &str) -> Result<(OcvTable, Vec<(f64, f64)>)> {
    let mut points = Vec::new();
    let mut percent = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 2 {
            bail!(
                "line {number}: {} columns, expected 2 (soc, ocv_v)",
                fields.len()
            );
        }
        if points.is_empty() && fields[0].parse::<f64>().is_err() {
            percent = fields[0].contains("pct") || fields[0].contains('%');
            continue;
        }
        let value = |column: usize| -> Result<f64> {
            match fields[column].parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => bail!(
                    "line {number}, column {}: {:?} is not a finite number",
                    column + 1,
                    fields[column]
                ),
            }
        };
        points.push((value(0)?, value(1)?, number));
    }
    let largest = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let scale = if percent || largest > 1.0 { 0.01 } else { 1.0 };
    let points: Vec<(f64, f64, usize)> = points
        .into_iter()
        .map(|(soc, volts, number)| (soc * scale, volts, number))
        .collect();
    let table = resample_ocv(&points)?;
    Ok((table, points.iter().map(|p| (p.0, p.1)).collect()))
}

/// Linear interpolation of (soc, volts, line) points onto 0, 5, ..., 100 %.
fn resample_ocv(points: &[(f64, f64, usize)]) -> Result<OcvTable> {
    if points.len() < 2 {
        bail!("{} points; at least 2 are needed", points.len());
    }
    for pair in points.windows(2) {
        if pair[1].0 <= pair[0].0 {
            bail!(
                "line {}: SOC must rise from one line to the next",
                pair[1].2
            );
        }
    }
    let (first, last) = (points[0].0, points[points.len() - 1].0);
    if first > 1e-9 || last < 1.0 - 1e-9 {
        bail!("the SOC column must cover 0 to 100 % (it covers {first} to {last})");
    }
    let mut volts = [0f32; 21];
    for (i, volt) in volts.iter_mut().enumerate() {
        let soc = i as f64 / 20.0;
        let upper = points
            .iter()
            .position(|p| p.0 >= soc - 1e-12)
            .unwrap_or(points.len() - 1);
        let lower = upper.saturating_sub(1);
        let (s0, v0, _) = points[lower];
        let (s1, v1, _) = points[upper];
        let fraction = if s1 > s0 { (soc - s0) / (s1 - s0) } else { 0.0 };
        *volt = (v0 + (v1 - v0) * fraction.clamp(0.0, 1.0)) as f32;
    }
    OcvTable::from_volts(&volts).map_err(|e| anyhow::anyhow!("{e}"))
}

/// What the estimator is told, and the errors injected.
struct Setup {
    config: SocConfig,
    reference_capacity_ah: Option<f64>,
    offset_a: f64,
    gain: f64,
    noise_v: f64,
    knees: Knees,
}

impl Setup {
    fn new(args: &SocEvalArgs, rows: &[Row], ocv: OcvTable, knees: Knees) -> Result<Setup> {
        let reference_capacity_ah = profile_capacity_ah(rows);
        let capacity_ah = match args.capacity_ah {
            Some(c) if c.is_finite() && c > 0.0 => c,
            Some(c) => bail!("--capacity-ah must be a positive number of amp-hours, not {c}"),
            None => {
                let base =
                    reference_capacity_ah.unwrap_or(f64::from(args.chemistry.cell().capacity_ah));
                base * (1.0 + args.capacity_error)
            }
        };
        if capacity_ah.is_nan() || capacity_ah <= 0.0 {
            bail!("--capacity-error leaves no capacity ({capacity_ah} Ah)");
        }
        let mut config = SocConfig::new(args.chemistry, capacity_ah as f32);
        config.ocv = ocv;
        config.initial_soc = rows[0]
            .soc_true
            .map(|soc| (soc + args.initial_soc_error).clamp(0.0, 1.0) as f32);
        let actual_capacity = reference_capacity_ah.unwrap_or(capacity_ah);
        Ok(Setup {
            config,
            reference_capacity_ah,
            offset_a: args.offset_c * actual_capacity,
            gain: 1.0 + args.gain_error,
            noise_v: args.noise_mv.max(0.0) / 1000.0,
            knees,
        })
    }
}

/// The capacity a profile's `soc_true` implies: least squares of the true SOC against the
/// charge counted from the current column (the current of a row flows until the next row).
fn profile_capacity_ah(rows: &[Row]) -> Option<f64> {
    let mut discharged_ah = 0.0;
    let mut pairs = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            let previous = rows[index - 1];
            discharged_ah += previous.discharge_a * (row.t_s - previous.t_s) / 3600.0;
        }
        pairs.push((discharged_ah, row.soc_true?));
    }
    let n = pairs.len() as f64;
    let mean_q = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_soc = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = pairs
        .iter()
        .map(|p| (p.0 - mean_q) * (p.1 - mean_soc))
        .sum();
    let variance: f64 = pairs.iter().map(|p| (p.0 - mean_q).powi(2)).sum();
    if variance <= 1e-12 || covariance >= 0.0 {
        return None;
    }
    Some(-variance / covariance)
}

/// The results of one replay.
struct Outcome {
    metrics: SocMetrics,
    after_knee: Option<(f64, SocMetrics)>,
    max_error_at_s: f64,
    estimate: SocEstimate,
}

fn replay(rows: &[Row], setup: &Setup, seed: u64, trace: &mut Trace) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut estimator = SocEstimator::new(setup.config);
    let mut metrics = SocMetrics::default();
    let mut after_knee: Option<(f64, SocMetrics)> = None;
    let mut max_error_at_s = rows[0].t_s;
    let mut previous_t = rows[0].t_s;
    for row in rows {
        let dt = Duration::try_from_secs_f64(row.t_s - previous_t).unwrap_or(Duration::ZERO);
        previous_t = row.t_s;
        let measured_discharge_a = row.discharge_a * setup.gain + setup.offset_a;
        let measured_v = row.voltage_v + setup.noise_v * standard_normal(&mut rng);
        // The edge: profiles count discharge as positive, the estimator charging.
        estimator.update(
            dt,
            -measured_discharge_a as f32,
            measured_v as f32,
            row.temp_c as f32,
        );
        trace.sample(row, &estimator.estimate());
        let Some(truth) = row.soc_true else { continue };
        let estimate = f64::from(estimator.soc());
        if (estimate - truth).abs() > metrics.max_abs_error() {
            max_error_at_s = row.t_s;
        }
        metrics.push(row.t_s, estimate, truth);
        if after_knee.is_none() && setup.knees.contain(truth) {
            after_knee = Some((row.t_s - rows[0].t_s, SocMetrics::default()));
        }
        if let Some((_, knee_metrics)) = after_knee.as_mut() {
            knee_metrics.push(row.t_s, estimate, truth);
        }
    }
    Outcome {
        metrics,
        after_knee,
        max_error_at_s: max_error_at_s - rows[0].t_s,
        estimate: estimator.estimate(),
    }
}

/// The optional per-sample CSV.
struct Trace {
    out: Option<(PathBuf, String)>,
}

impl Trace {
    fn open(path: Option<&Path>) -> Result<Trace> {
        Ok(Trace {
            out: path.map(|p| {
                let header = "t_s,soc_true,soc,soc_std,ocv_v,voltage_soc,voltage_soc_std,hysteresis,capacity_ah,r0_factor,r1_factor,r2_factor,thermal_exponent,current_offset_c\n";
                (p.to_path_buf(), header.to_owned())
            }),
        })
    }

    fn sample(&mut self, row: &Row, e: &SocEstimate) {
        if let Some((_, text)) = self.out.as_mut() {
            let truth = row.soc_true.map_or(String::new(), |s| format!("{s:.5}"));
            let _ = writeln!(
                text,
                "{},{truth},{:.5},{:.5},{:.5},{:.5},{:.5},{:.3},{:.4},{:.3},{:.3},{:.3},{:.3},{:.5}",
                row.t_s,
                e.soc,
                e.soc_std,
                e.ocv_v,
                e.voltage_soc,
                e.voltage_soc_std,
                e.hysteresis,
                e.capacity_ah,
                e.resistance_factors[0],
                e.resistance_factors[1],
                e.resistance_factors[2],
                e.thermal_exponent,
                e.current_offset_c
            );
        }
    }

    fn finish(self) -> Result<()> {
        if let Some((path, text)) = self.out {
            fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

/// A standard normal deviate (Box-Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn percent(value: f64) -> f64 {
    (value * 1e6).round() / 1e4
}

fn report_json(args: &SocEvalArgs, rows: &[Row], setup: &Setup, outcome: &Outcome) -> String {
    let metrics = &outcome.metrics;
    let has_truth = metrics.samples() > 0;
    let knee = outcome.after_knee.as_ref();
    let estimate = &outcome.estimate;
    json!({
        "profile": args.profile.display().to_string(),
        "chemistry": args.chemistry.name(),
        "samples": rows.len(),
        "duration_s": rows[rows.len() - 1].t_s - rows[0].t_s,
        "capacity_ah": setup.config.cell.capacity_ah,
        "profile_capacity_ah": setup.reference_capacity_ah,
        "initial_soc": setup.config.initial_soc,
        "initial_soc_true": rows[0].soc_true,
        "errors": {
            "initial_soc_error": args.initial_soc_error,
            "gain_error": args.gain_error,
            "offset_c": args.offset_c,
            "noise_mv": args.noise_mv,
            "capacity_error": if args.capacity_ah.is_some() { None } else { Some(args.capacity_error) },
            "seed": args.seed,
        },
        "rmse_pct": has_truth.then(|| percent(metrics.rmse())),
        "max_error_pct": has_truth.then(|| percent(metrics.max_abs_error())),
        "max_error_at_s": has_truth.then_some(outcome.max_error_at_s),
        "end_error_pct": has_truth.then(|| percent(metrics.end_error())),
        "convergence_time_s": metrics.convergence_time_s(),
        "knees": { "low": setup.knees.low, "high": setup.knees.high },
        "knee_at_s": knee.map(|k| k.0),
        "max_error_after_knee_pct": knee.map(|k| percent(k.1.max_abs_error())),
        "final": {
            "soc_pct": percent(f64::from(estimate.soc)),
            "soc_std_pct": percent(f64::from(estimate.soc_std)),
            "soh_pct": percent(f64::from(estimate.soh)),
            "capacity_ah": estimate.capacity_ah,
            "equivalent_full_cycles": estimate.equivalent_full_cycles,
            "anchors": estimate.anchors,
            "full_charges": estimate.full_charges,
            "current_offset_c": estimate.current_offset_c,
            "resistance_factors": estimate.resistance_factors,
            "thermal_exponent": estimate.thermal_exponent,
        },
    })
    .to_string()
}

fn report_text(args: &SocEvalArgs, rows: &[Row], setup: &Setup, outcome: &Outcome) -> String {
    let mut out = String::new();
    let duration_h = (rows[rows.len() - 1].t_s - rows[0].t_s) / 3600.0;
    let _ = writeln!(
        out,
        "soc-eval {} ({}, {} samples, {duration_h:.2} h)",
        args.profile.display(),
        args.chemistry,
        rows.len()
    );
    let _ = writeln!(out, "  {}", describe_setup(args, rows, setup));
    let metrics = &outcome.metrics;
    if metrics.samples() == 0 {
        let _ = writeln!(out, "  no soc_true column: accuracy unknown");
    } else {
        write_accuracy(&mut out, outcome, &setup.knees);
    }
    let e = &outcome.estimate;
    let _ = writeln!(
        out,
        "  final           SOC {:.1} % (+-{:.1}), SOH {:.1} % ({:.3} Ah), {:.2} equivalent full cycles, {} anchors ({} full charges), current offset {:+.3} % C",
        e.soc * 100.0,
        e.soc_std * 100.0,
        e.soh * 100.0,
        e.capacity_ah,
        e.equivalent_full_cycles,
        e.anchors,
        e.full_charges,
        e.current_offset_c * 100.0
    );
    out
}

fn describe_setup(args: &SocEvalArgs, rows: &[Row], setup: &Setup) -> String {
    let capacity = match setup.reference_capacity_ah {
        Some(reference) => format!(
            "capacity {:.3} Ah (profile {reference:.3} Ah)",
            setup.config.cell.capacity_ah
        ),
        None => format!("capacity {:.3} Ah", setup.config.cell.capacity_ah),
    };
    let initial = match (setup.config.initial_soc, rows[0].soc_true) {
        (Some(given), Some(truth)) => {
            format!(
                "initial SOC {:.1} % (true {:.1} %)",
                given * 100.0,
                truth * 100.0
            )
        }
        _ => "initial SOC from the first voltage".to_owned(),
    };
    format!(
        "{capacity}; {initial}; gain {:+.2} %, offset {:+.3} % C, noise {} mV, seed {}",
        args.gain_error * 100.0,
        args.offset_c * 100.0,
        args.noise_mv,
        args.seed
    )
}

fn write_accuracy(out: &mut String, outcome: &Outcome, knees: &Knees) {
    let metrics = &outcome.metrics;
    let _ = writeln!(out, "  RMSE            {:.2} %", metrics.rmse() * 100.0);
    let _ = writeln!(
        out,
        "  max error       {:.2} % (at {:.0} s)",
        metrics.max_abs_error() * 100.0,
        outcome.max_error_at_s
    );
    let _ = writeln!(
        out,
        "  end error       {:+.2} %",
        metrics.end_error() * 100.0
    );
    let _ = match metrics.convergence_time_s() {
        Some(t) => writeln!(out, "  convergence     {t:.0} s (within 2 % from then on)"),
        None => writeln!(out, "  convergence     never (not within 2 % at the end)"),
    };
    let knee_range = describe_knees(knees);
    let _ = match &outcome.after_knee {
        Some((at, knee)) => writeln!(
            out,
            "  first knee      at {at:.0} s ({knee_range}); max error from then on {:.2} %",
            knee.max_abs_error() * 100.0
        ),
        None => writeln!(out, "  first knee      not reached ({knee_range})"),
    };
}

/// "true SOC <= 17.5 % or >= 97.0 %", or that the curve has no knee.
fn describe_knees(knees: &Knees) -> String {
    let low = knees.low.map(|low| format!("<= {:.1} %", low * 100.0));
    let high = knees.high.map(|high| format!(">= {:.1} %", high * 100.0));
    match (low, high) {
        (Some(low), Some(high)) => format!("true SOC {low} or {high}"),
        (Some(one), None) | (None, Some(one)) => format!("true SOC {one}"),
        (None, None) => "the OCV curve has no knee; see --knees".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_profile_line_names_the_line_and_column() {
        let text = "t_s,current_a,voltage_v,temp_c\n0,1.0,3.3,25\n1,abc,3.3,25\n";
        let error = format!("{:#}", parse_profile(text).unwrap_err());
        assert!(error.contains("line 3, column 2 (current_a)"), "{error}");
        let missing = format!("{:#}", parse_profile("t_s,current_a,temp_c\n").unwrap_err());
        assert!(missing.contains("no voltage_v column"), "{missing}");
    }

    #[test]
    fn ocv_table_in_percent_is_resampled_to_5_percent_steps() {
        let text = "soc_pct,ocv_v\n0,3.0\n50,3.5\n100,4.0\n";
        let (table, points) = parse_ocv_table(text).unwrap();
        assert!((table.voltage(0.25) - 3.25).abs() < 1e-4);
        assert_eq!(points, [(0.0, 3.0), (0.5, 3.5), (1.0, 4.0)]);
        let fractions = "0,3.0\n0.5,3.5\n1.0,4.0\n";
        assert_eq!(parse_ocv_table(fractions).unwrap().0, table);
        let falling = format!(
            "{:#}",
            parse_ocv_table("0,3.0\n0.5,3.5\n0.4,4.0\n1,4.1").unwrap_err()
        );
        assert!(falling.contains("line 3"), "{falling}");
    }

    #[test]
    fn knees_come_from_the_table_in_use_or_the_flag() {
        // The built-in LFP table (5 % steps): steeper than 1 V per unit up to 15 % and from 95 %.
        let lfp = Knees::of_curve(&table_points(Chemistry::Lfp.ocv()), KNEE_SLOPE_V);
        assert_eq!((lfp.low, lfp.high), (Some(0.15), Some(0.95)));
        assert_eq!(describe_knees(&lfp), "true SOC <= 15.0 % or >= 95.0 %");
        let flag = parse_knees("0.175, 0.97").unwrap();
        assert_eq!((flag.low, flag.high), (Some(0.175), Some(0.97)));
        for bad in ["0.2", "0.9,0.1", "-0.1,0.9", "0.1,1.5", "a,b"] {
            assert!(parse_knees(bad).is_err(), "{bad}");
        }
        let flat = Knees::of_curve(&[(0.0, 3.0), (1.0, 3.2)], KNEE_SLOPE_V);
        assert_eq!(
            describe_knees(&flat),
            "the OCV curve has no knee; see --knees"
        );
    }

    #[test]
    fn profile_capacity_comes_from_soc_true_and_the_current() {
        // 2 A for 3600 s takes 50 % off a 4 Ah cell.
        let rows: Vec<Row> = (0..=3600)
            .map(|t| Row {
                t_s: f64::from(t),
                discharge_a: 2.0,
                voltage_v: 3.3,
                temp_c: 25.0,
                soc_true: Some(0.9 - f64::from(t) * 2.0 / 3600.0 / 4.0),
            })
            .collect();
        let capacity = profile_capacity_ah(&rows).unwrap();
        assert!((capacity - 4.0).abs() < 1e-6, "{capacity}");
    }
}
