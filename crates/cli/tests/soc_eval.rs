//! `bmslink soc-eval` end to end: the binary replays the reference NMC profile with the sensor
//! errors of issue 3 and reports accuracy as JSON and as text; bad input is named precisely.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::process::Command;

fn profile(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/data/profiles")
        .join(name)
}

fn soc_eval(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bmslink"))
        .arg("soc-eval")
        .args(args)
        .output()
        .unwrap()
}

/// The JSON report of a run that must succeed.
fn json_report(args: &[&str]) -> serde_json::Value {
    let output = soc_eval(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

const ERRORS: [&str; 10] = [
    "--gain-error",
    "0.01",
    "--offset-c",
    "0.002",
    "--noise-mv",
    "2",
    "--capacity-error",
    "0.05",
    "--seed",
    "1",
];

#[test]
fn replays_the_reference_nmc_profile_as_json() {
    let path = profile("nmc_chen2020_dfn_25C_seed2024.csv");
    let mut args = vec![
        "--profile",
        path.to_str().unwrap(),
        "--chemistry",
        "nmc",
        "--json",
    ];
    args.extend(ERRORS);
    let report = json_report(&args);
    assert_eq!(report["samples"], 7201);
    let capacity = report["profile_capacity_ah"].as_f64().unwrap();
    assert!((capacity - 5.1532).abs() < 0.005, "{capacity}");
    let told = report["capacity_ah"].as_f64().unwrap();
    assert!((told / capacity - 1.05).abs() < 1e-3, "{told}");
    // Measured 0.75 % RMSE (the goal is 1 %), 2.17 % max, +0.14 % at the end.
    let rmse = report["rmse_pct"].as_f64().unwrap();
    assert!((0.3..0.9).contains(&rmse), "{rmse}");
    assert!(report["max_error_pct"].as_f64().unwrap() < 2.6);
    assert!(report["end_error_pct"].as_f64().unwrap().abs() < 0.5);
    assert!(report["final"]["equivalent_full_cycles"].as_f64().unwrap() > 0.5);
    // The learned capacity absorbs the gain error: 5.153 / 1.01 = 5.10 Ah.
    let learned = report["final"]["capacity_ah"].as_f64().unwrap();
    assert!((learned - 5.10).abs() < 0.15, "{learned}");
}

#[test]
fn cold_start_is_reported_in_text() {
    let path = profile("lfp_prada2013_dfn_10C_seed11.csv");
    let mut args = vec!["--profile", path.to_str().unwrap(), "--chemistry", "lfp"];
    args.extend(ERRORS);
    args.extend(["--initial-soc-error", "0.1"]);
    let output = soc_eval(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    for line in [
        "RMSE",
        "max error",
        "end error",
        "convergence",
        "first knee",
        "(true SOC <= 15.0 % or >= 95.0 %)",
        "initial SOC 70.0 % (true 60.0 %)",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

#[test]
fn knees_given_on_the_command_line_count_as_the_core_tests_do() {
    // The profile's own OCV curve has its knees at 17.5 % and 97 % (`soc_profiles::knees`);
    // with them, the cold start 10 % low on this charge-first profile enters the knee at
    // 97 % (at 2803 s) within 2 % (the README's "SOC accuracy" table: 1.43 % with the
    // capacity told 5 % too large).
    let path = profile("lfp_prada2013_dfn_10C_seed11.csv");
    let mut args = vec!["--profile", path.to_str().unwrap(), "--chemistry", "lfp"];
    args.extend(ERRORS);
    args.extend([
        "--initial-soc-error",
        "-0.1",
        "--knees",
        "0.175,0.97",
        "--json",
    ]);
    let report = json_report(&args);
    assert_eq!(report["knees"]["low"], 0.175);
    assert_eq!(report["knees"]["high"], 0.97);
    let at = report["knee_at_s"].as_f64().unwrap();
    assert!((2790.0..2815.0).contains(&at), "{at}");
    let after = report["max_error_after_knee_pct"].as_f64().unwrap();
    assert!((1.0..2.0).contains(&after), "{after}");
    let bad = soc_eval(&[
        "--profile",
        path.to_str().unwrap(),
        "--chemistry",
        "lfp",
        "--knees",
        "0.9,0.1",
    ]);
    assert!(!bad.status.success());
    let error = String::from_utf8_lossy(&bad.stderr);
    assert!(error.contains("must lie below"), "{error}");
}

#[test]
fn a_bad_line_is_named_by_line_and_column() {
    let dir = std::env::temp_dir().join(format!("bmslink-soc-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.csv");
    std::fs::write(
        &path,
        "t_s,current_a,voltage_v,temp_c\n0,1,3.3,25\n1,1,3.3x,25\n",
    )
    .unwrap();
    let output = soc_eval(&["--profile", path.to_str().unwrap(), "--chemistry", "lfp"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3, column 3 (voltage_v)"), "{stderr}");
    let table = dir.join("ocv.csv");
    std::fs::write(&table, "soc_pct,ocv_v\n0,3.0\n50,2.9\n100,4.0\n").unwrap();
    let output = soc_eval(&[
        "--profile",
        profile("nmc_chen2020_dfn_25C_seed2024.csv")
            .to_str()
            .unwrap(),
        "--chemistry",
        "nmc",
        "--ocv-table",
        table.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("must rise with SOC"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
