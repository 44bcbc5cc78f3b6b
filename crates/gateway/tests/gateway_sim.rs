//! The whole gateway against simulated rack BMSes on loopback TCP and on pseudo-terminals
//! (`bmslink-sim`: pack physics and the BMS logic behind the NW protocol), in real time:
//!
//! - `an_inverter_on_python_can_follows_the_racks_through_silence_and_keep_alive_loss`: the
//!   independent inverter (python-can's slcan on a socat pty, cantools with the Pylontech DBC)
//!   reads the gateway's frames; their values are compared with the simulated racks' own state.
//!   Then one rack goes silent (its share of the limits goes), then both (the safe state), then
//!   both come back (normal after the hold time), then the inverter stops sending 0x305 (with
//!   `silence_is_unsafe`, the safe state again).
//! - `over_temperature_and_a_garbage_bms`: a rack whose charge high-temperature protection is
//!   lowered (an NW write through the gateway: pair code, write, read-back) below its
//!   temperature trips; the inverter gets the safe state with the temperature alarm and the dry
//!   contact opens (a command backend writing to a file); a third "BMS" answers garbage: it is
//!   counted and logged and never joins the aggregate, and the others carry on.
//! - `a_pymodbus_write_reaches_a_simulated_bms_and_refused_ones_change_nothing`: pymodbus
//!   writes a cell over-voltage protection through the EMS server; the simulated BMS takes it;
//!   a write from outside `write_allow`, an out-of-range one and a locked privileged one change
//!   nothing.
//!
//! The python peer needs socat and `$BMSLINK_PYTHON` with python-can and cantools (a loud
//! SKIPPED without them, a failure under CI=true).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bmslink_core::chemistry::Chemistry;
use bmslink_core::failsafe::Cause;
use bmslink_gateway::config::{self, GatewayConfig};
use bmslink_gateway::daemon::Gateway;
use bmslink_gateway::pcs::PcsCommand;
use bmslink_gateway::site::SiteSnapshot;
use bmslink_proto::can::Conditions;
use bmslink_proto::{Identifier, WriteValue};
use bmslink_sim::bms::{BmsConfig, VirtualBms};
use bmslink_sim::pack::PackConfig;
use bmslink_sim::serve::{self, lock, Faults, SharedBms};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

mod common;
use common::{finish_peer, signal, start_peer, PtyPair};

/// How a simulated rack is reached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Line {
    Tcp,
    Pty,
}

/// Simulated 16-cell 100 Ah LFP racks, one per `lines` entry (loopback TCP or a pseudo-terminal
/// the gateway opens as a serial port), their clock running `speed` x real time.
async fn start_racks_on(lines: &[Line], speed: f64) -> (Vec<SharedBms>, Vec<String>) {
    let mut packs = Vec::new();
    let mut ports = Vec::new();
    for (seed, line) in (0u64..).zip(lines) {
        let mut pack = PackConfig::new(Chemistry::Lfp, 16, 100.0, 40 + seed);
        pack.initial_soc = 0.4 + 0.2 * seed as f64;
        let bms: SharedBms = Arc::new(Mutex::new(VirtualBms::new(BmsConfig::new(pack)).unwrap()));
        match line {
            Line::Tcp => {
                let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
                ports.push(format!("tcp://{}", listener.local_addr().unwrap()));
                tokio::spawn(serve::serve_tcp(
                    listener,
                    bms.clone(),
                    Faults::default(),
                    seed,
                ));
            }
            Line::Pty => {
                let pty = serve::Pty::open().unwrap();
                ports.push(pty.path.display().to_string());
                tokio::spawn(pty.serve(bms.clone(), Faults::default(), seed));
            }
        }
        packs.push(bms);
    }
    tokio::spawn(serve::run_clock(packs.clone(), speed));
    (packs, ports)
}

/// `count` simulated racks on loopback TCP.
async fn start_racks(count: usize, speed: f64) -> (Vec<SharedBms>, Vec<String>) {
    start_racks_on(&vec![Line::Tcp; count], speed).await
}

/// A site file for these rack ports and CAN port; `extra` continues the `[ems]` table (and may
/// add tables after it).
fn site_config(
    rack_ports: &[String],
    can_port: &str,
    inverter_silence_is_unsafe: bool,
    extra: &str,
) -> GatewayConfig {
    let mut text = String::from(
        "poll_interval = \"200ms\"\nreply_timeout = \"150ms\"\nretries = 1\noffline_after = 2\n\
         stale_timeout = \"1s\"\n",
    );
    for (index, port) in rack_ports.iter().enumerate() {
        text.push_str(&format!(
            "[[racks]]\nname = \"rack-{}\"\nlink = {{ port = \"{port}\" }}\npassword = \"123456\"\n",
            index + 1
        ));
    }
    text.push_str(&format!(
        "[inverter]\nprofile = \"pylontech-v1.2\"\nsend_interval = \"1s\"\n\
         keepalive_timeout = \"2s\"\nsilence_is_unsafe = {inverter_silence_is_unsafe}\n\
         [inverter.can]\ntransport = \"slcan\"\nport = \"{can_port}\"\n\
         [failsafe]\nrecovery_hold = \"1s\"\n[ems]\nlisten = \"127.0.0.1:{}\"\n{extra}",
        free_port()
    ));
    config::load("test.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A port free now (the configuration refuses port 0, which would hide where the EMS is).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `done` holds for what `watch` holds, or fails after `within` with `what` and
/// what `describe` says of the last value.
async fn wait_for<T>(
    watch: &mut tokio::sync::watch::Receiver<T>,
    within: Duration,
    what: &str,
    done: impl Fn(&T) -> bool,
    describe: impl Fn(&T) -> String,
) {
    let wait = async {
        loop {
            if done(&watch.borrow_and_update()) {
                return;
            }
            watch.changed().await.unwrap();
        }
    };
    if tokio::time::timeout(within, wait).await.is_err() {
        panic!(
            "not within {within:?}: {what}; now {}",
            describe(&watch.borrow())
        );
    }
}

/// Waits until the inverter is told what `done` accepts.
async fn wait_for_pcs(
    gateway: &mut Gateway,
    within: Duration,
    what: &str,
    done: impl Fn(&PcsCommand) -> bool,
) {
    wait_for(&mut gateway.pcs, within, what, done, |c| format!("{c:?}")).await;
}

/// Waits until the site is in a state `done` accepts.
async fn wait_for_site(
    gateway: &mut Gateway,
    within: Duration,
    what: &str,
    done: impl Fn(&SiteSnapshot) -> bool,
) {
    let describe = |s: &Arc<SiteSnapshot>| format!("{:?}", s.decision);
    wait_for(&mut gateway.snapshot, within, what, |s| done(s), describe).await;
}

fn charge_current_a(command: &PcsCommand) -> f64 {
    match command {
        PcsCommand::Normal(state) => f64::from(state.limits.charge_current.0) / 1000.0,
        PcsCommand::Safe { .. } => 0.0,
    }
}

fn is_normal(command: &PcsCommand) -> bool {
    matches!(command, PcsCommand::Normal(_)) && charge_current_a(command) > 1.0
}

/// Runs `scenario` on a multi-threaded runtime (the python peer reads on a blocking thread).
fn run<F: Future<Output = ()>>(scenario: F) {
    common::init_logging();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario);
}

#[test]
fn an_inverter_on_python_can_follows_the_racks_through_silence_and_keep_alive_loss() {
    let Some(ptys) = PtyPair::new() else { return };
    // The peer listens 17 s and sends keep-alives for the first 12.
    let Some(peer) = start_peer(
        "inverter_slcan.py",
        &[
            ptys.end("inverter").display().to_string(),
            "17".to_string(),
            "12".to_string(),
        ],
    ) else {
        return;
    };
    let peer_started = std::time::Instant::now();
    let records = std::thread::spawn(move || finish_peer(peer));
    let mut marks = BTreeMap::new();
    run(async {
        // Rack 1 on TCP (a serial-to-Ethernet converter), rack 2 on a serial port (a pty).
        let (packs, ports) = start_racks_on(&[Line::Tcp, Line::Pty], 1.0).await;
        let config = site_config(&ports, &ptys.end("battery").display().to_string(), true, "");
        let mut gateway = Gateway::start(&config).await.unwrap();
        let at = |name: &str, marks: &mut BTreeMap<String, f64>| {
            marks.insert(name.to_string(), peer_started.elapsed().as_secs_f64());
        };
        wait_for_pcs(
            &mut gateway,
            Duration::from_secs(4),
            "normal limits",
            is_normal,
        )
        .await;
        at("normal", &mut marks);
        let both = charge_current_a(&gateway.pcs.borrow());
        // Compare what the gateway tells with the racks' own state (checked on the CAN
        // frames after the run).
        let soc: Vec<f64> = packs.iter().map(|p| lock(p).soc()).collect();
        marks.insert("soc_mean".into(), soc.iter().sum::<f64>() / 2.0 * 100.0);
        tokio::time::sleep(Duration::from_millis(1500)).await;

        lock(&packs[1]).set_silent(true);
        at("rack_2_silent", &mut marks);
        wait_for_pcs(
            &mut gateway,
            Duration::from_secs(3),
            "rack 2's share removed",
            |c| {
                let now = charge_current_a(c);
                now > 0.0 && now < both * 0.6
            },
        )
        .await;
        at("one_rack", &mut marks);
        // The PCS and the site snapshot are separate watches: the snapshot that dropped rack 2
        // from the aggregate may be seen a moment after the frame that removed its share.
        wait_for_site(
            &mut gateway,
            Duration::from_secs(3),
            "rack 2 out of the aggregate",
            |s| s.view.used == vec![0],
        )
        .await;
        let snapshot = gateway.snapshot.borrow().clone();
        assert!(
            !snapshot.decision.safe,
            "one rack left is a degradation, not a cause"
        );

        lock(&packs[0]).set_silent(true);
        wait_for_site(
            &mut gateway,
            Duration::from_secs(3),
            "safe: no fresh rack",
            |s| {
                s.decision.causes.contains(Cause::NoFreshRack)
                    && matches!(s.pcs, PcsCommand::Safe { .. })
            },
        )
        .await;
        at("all_silent", &mut marks);

        for pack in &packs {
            lock(pack).set_silent(false);
        }
        wait_for_pcs(
            &mut gateway,
            Duration::from_secs(5),
            "normal again",
            is_normal,
        )
        .await;
        at("recovered", &mut marks);

        // The peer stops its keep-alives at 12 s; 2 s later the system is safe.
        wait_for_site(
            &mut gateway,
            Duration::from_secs(8),
            "safe on inverter silence",
            |s| {
                s.decision.causes.contains(Cause::InverterSilent)
                    && matches!(s.pcs, PcsCommand::Safe { .. })
            },
        )
        .await;
        at("inverter_silent", &mut marks);
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            peer_started + Duration::from_secs(17),
        ))
        .await;
        gateway.stop().await;
    });
    let records = records.join().unwrap();
    check_frames(&records, &marks);
}

/// The peer's decoded frames agree with the timeline and the racks' state.
fn check_frames(records: &[Value], marks: &BTreeMap<String, f64>) {
    let limits: Vec<&Value> = records
        .iter()
        .filter(|r| r["message"] == "Battery_limits")
        .collect();
    let soc: Vec<&Value> = records
        .iter()
        .filter(|r| r["message"] == "Battery_SoC_SoH")
        .collect();
    assert!(
        limits.len() >= 12,
        "frame sets every second: {}",
        limits.len()
    );
    let t = |r: &Value| r["t"].as_f64().unwrap();
    let ccl = |r: &Value| signal(r, "Battery_charge_current_limit");
    let between = |from: &str, to: &str| -> Vec<&Value> {
        limits
            .iter()
            .copied()
            .filter(|r| t(r) > marks[from] + 0.05 && t(r) < marks[to] - 0.05)
            .collect()
    };
    let normal = between("normal", "rack_2_silent");
    assert!(!normal.is_empty(), "{marks:?}");
    let both = ccl(normal[0]);
    assert!(both > 10.0, "two racks: {both} A");
    let one = between("one_rack", "all_silent");
    assert!(
        one.iter().all(|r| ccl(r) < both * 0.6 && ccl(r) > 0.0),
        "{one:?}"
    );
    let safe = limits
        .iter()
        .find(|r| t(r) >= marks["all_silent"] - 0.05)
        .unwrap();
    assert_eq!(ccl(safe), 0.0);
    assert_eq!(signal(safe, "Battery_discharge_current_limit"), 0.0);
    let last = limits.last().unwrap();
    assert!(
        t(last) > marks["inverter_silent"],
        "frames after the silence"
    );
    assert_eq!(ccl(last), 0.0, "inverter silent: safe");
    // The SOC the inverter reads is the racks' (equal capacities: the mean), to 1 %.
    let first_soc = soc
        .iter()
        .find(|r| t(r) > marks["normal"])
        .map(|r| signal(r, "SoC"))
        .unwrap();
    assert!(
        (first_soc - marks["soc_mean"]).abs() <= 1.5,
        "SOC on CAN {first_soc} vs racks {}",
        marks["soc_mean"]
    );
}

/// A "BMS" that answers every request with bytes that are no frame.
async fn garbage_bms() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("tcp://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = [0u8; 512];
                let mut n: u8 = 0;
                while let Ok(read) = stream.read(&mut buffer).await {
                    if read == 0 {
                        return;
                    }
                    n = n.wrapping_add(1);
                    // A start that looks like a frame, then junk: checksum or length errors.
                    let junk: Vec<u8> = [0x4E, 0x57, 0x00, 0x20]
                        .into_iter()
                        .chain((0..40u8).map(|i| i.wrapping_mul(n).wrapping_add(7)))
                        .collect();
                    if stream.write_all(&junk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

/// An SLCAN adapter on TCP that takes whatever the gateway sends.
async fn can_sink() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("tcp://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
            });
        }
    });
    address
}

#[test]
fn over_temperature_and_a_garbage_bms() {
    let dir = std::env::temp_dir().join(format!("bmslink-contact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("contact.log");
    let _ = std::fs::remove_file(&log);
    let contact = format!(
        "[dry_contact]\nbackend = \"command\"\nopen = [\"sh\", \"-c\", \"echo open >> {0}\"]\n\
         close = [\"sh\", \"-c\", \"echo close >> {0}\"]\n",
        log.display()
    );
    run(async {
        // The racks' clock runs 10 x: the 5 s temperature delay takes half a second.
        let (_packs, mut ports) = start_racks(2, 10.0).await;
        ports.push(garbage_bms().await);
        let config = site_config(&ports, &can_sink().await, false, &contact);
        let mut gateway = Gateway::start(&config).await.unwrap();
        wait_for_pcs(
            &mut gateway,
            Duration::from_secs(5),
            "normal with two racks",
            is_normal,
        )
        .await;
        {
            let snapshot = gateway.snapshot.borrow().clone();
            assert_eq!(snapshot.view.used, vec![0, 1]);
            assert!(snapshot.racks[2].reading.is_none());
        }
        let errors = gateway.metrics.encode();
        assert!(
            errors.contains("rack_frame_errors_total{rack=\"rack-3\""),
            "garbage counted per rack:\n{errors}"
        );

        // 20 degC is below the rack's 25 degC: the charge high-temperature protection trips.
        let lower = WriteValue::parse(Identifier::ChargeHighTemperatureProtection, "20").unwrap();
        let outcome = gateway.racks[0].write(lower).await.unwrap();
        assert_eq!(outcome.read_back.as_deref(), Some(&[0, 20][..]));
        wait_for_site(
            &mut gateway,
            Duration::from_secs(5),
            "safe on over-temperature",
            |s| {
                let alarmed = matches!(s.pcs, PcsCommand::Safe { state, .. }
                if state.alarms.contains(Conditions::HIGH_TEMPERATURE));
                alarmed && s.decision.causes.contains(Cause::Protection)
            },
        )
        .await;
        let raise = WriteValue::parse(Identifier::ChargeHighTemperatureProtection, "45").unwrap();
        gateway.racks[0].write(raise).await.unwrap();
        wait_for_pcs(
            &mut gateway,
            Duration::from_secs(8),
            "normal after recovery",
            is_normal,
        )
        .await;
        // Give the contact command time to run.
        tokio::time::sleep(Duration::from_millis(500)).await;
        gateway.stop().await;
    });
    let log = std::fs::read_to_string(&log).unwrap();
    let steps: Vec<&str> = log.lines().collect();
    // Safe at start (nothing known), closed when normal, open on the protection, closed
    // again, and open when the gateway stops.
    assert_eq!(steps, ["open", "close", "open", "close", "open"], "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_pymodbus_write_reaches_a_simulated_bms_and_refused_ones_change_nothing() {
    run(async {
        let (packs, ports) = start_racks(1, 1.0).await;
        let config = site_config(
            &ports,
            &can_sink().await,
            false,
            "writes_enabled = true\nwrite_allow = [\"127.0.0.1/32\"]\n\
             unlock_code = \"k7-Vq2!x\"\n",
        );
        let mut gateway = Gateway::start(&config).await.unwrap();
        wait_for_pcs(&mut gateway, Duration::from_secs(5), "normal", is_normal).await;
        let settings = |id: Identifier| {
            let point = bmslink_gateway::ems::settings::point_of(id).unwrap();
            bmslink_gateway::ems::settings::rack_base(0).unwrap() + point.offset
        };
        let addresses = serde_json::json!({
            "ovp": settings(Identifier::CellOverVoltageProtection),
            "switch": settings(Identifier::ChargeMosfetSwitch),
        });
        let args = vec![
            gateway.ems_address.port().to_string(),
            "-".to_string(),
            addresses.to_string(),
        ];
        let Some(output) = common::run_python("pymodbus_writes.py", args).await else {
            return;
        };
        let cases = common::json_lines(&output);
        let outcome: Vec<(String, Value)> = cases
            .iter()
            .map(|c| {
                (
                    c["case"].as_str().unwrap().to_string(),
                    c["exception"].clone(),
                )
            })
            .collect();
        assert_eq!(
            outcome,
            [
                ("allowed".to_string(), Value::Null),
                ("not_in_write_allow".to_string(), 1.into()),
                ("out_of_range".to_string(), 3.into()),
                ("locked_privileged".to_string(), 1.into()),
            ],
            "{cases:?}"
        );
        // The simulated BMS itself took the allowed value, and only that one.
        let settings = lock(&packs[0]).settings().clone();
        assert_eq!(settings.cell_over_voltage_protection, 3600);
        assert!(settings.charge_mosfet_enabled);
        assert_eq!(
            cases[0]["after"], 3600,
            "the register shows the read-back value"
        );
        gateway.stop().await;
    });
}
