//! The virtual BMS driven by the controller session, both in virtual time.

use std::time::Duration;

use bmslink_core::session::{Event, Operation, OperationError, Session, SessionConfig};
use bmslink_proto::{Body, Identifier, Message, Transport, Value, WriteValue};

use super::*;

/// A controller session polling a virtual BMS, stepping the pack 100 ms at a time.
struct Bench {
    session: Session,
    bms: VirtualBms,
}

impl Bench {
    fn new(config: BmsConfig) -> Bench {
        Bench {
            session: Session::new(SessionConfig::default()).unwrap(),
            bms: VirtualBms::new(config).unwrap(),
        }
    }

    /// Runs until `operation`'s result, at most 30 s of virtual time.
    fn execute(&mut self, operation: Operation) -> Event {
        let id = self.session.submit(operation);
        for _ in 0..300 {
            let now = self.bms.now();
            let mut sent = Vec::new();
            while let Some(bytes) = self.session.poll_transmit(now) {
                sent.push(bytes.to_vec());
            }
            for request in sent {
                if let Some(reply) = self.bms.handle_request(&request) {
                    self.session.handle_input(now, &reply);
                }
            }
            while let Some(event) = self.session.poll_event() {
                match &event {
                    Event::Data { operation, .. }
                    | Event::Written { operation, .. }
                    | Event::Failed { operation, .. }
                        if *operation == id =>
                    {
                        return event
                    }
                    _ => {}
                }
            }
            self.bms.step(Duration::from_millis(100));
            self.session.handle_timeout(self.bms.now());
        }
        panic!("no result for {id:?}");
    }

    fn read(&mut self, id: Identifier) -> i64 {
        let Event::Data { frame, .. } = self.execute(Operation::ReadAll) else {
            panic!()
        };
        let message = Message::parse(&frame).unwrap();
        let Body::Data(info) = message.body else {
            panic!()
        };
        match info.get(id) {
            Some(Value::Number(n)) => n.raw,
            Some(Value::Switch(on)) => i64::from(on),
            Some(Value::Status(s)) => i64::from(s.bits()),
            Some(Value::Warnings(w)) => i64::from(w.bits()),
            Some(Value::Current(c)) => i64::from(c.milliamps().unwrap().0),
            other => panic!("{id:?}: {other:?}"),
        }
    }

    fn write(&mut self, id: Identifier, value: &str, password: &str) -> Event {
        let mut padded = [0u8; 10];
        padded[..password.len()].copy_from_slice(password.as_bytes());
        let value = WriteValue::parse(id, value).unwrap();
        self.execute(Operation::Write {
            value,
            password: Some(padded),
        })
    }
}

fn lfp16(profile: LoadProfile) -> BmsConfig {
    let mut config = BmsConfig::new(PackConfig::new(Chemistry::Lfp, 16, 100.0, 42));
    config.profile = profile;
    config
}

#[test]
fn read_all_reports_the_simulated_pack() {
    let mut bench = Bench::new(lfp16(LoadProfile::Constant(-20.0)));
    bench
        .bms
        .run_for(Duration::from_secs(60), Duration::from_secs(1));
    let Event::Data { frame, .. } = bench.execute(Operation::ReadAll) else {
        panic!()
    };
    let message = Message::parse(&frame).unwrap();
    let Body::Data(info) = message.body else {
        panic!()
    };
    assert_eq!(info.len(), 59, "every identifier a real BMS reports");
    let Some(Value::CellVoltages(cells)) = info.get(Identifier::CellVoltages) else {
        panic!()
    };
    assert_eq!(cells.len(), 16);
    assert!(cells.iter().all(|c| (3000..3400).contains(&c.voltage.0)));
    let Some(Value::Current(current)) = info.get(Identifier::Current) else {
        panic!()
    };
    assert_eq!(current.milliamps(), Some(Milliamps(-20_000)));
    let Some(Value::Text(version)) = info.get(Identifier::SoftwareVersion) else {
        panic!()
    };
    assert_eq!(version.as_str(), Some("bmslink-sim 0.1"));
}

#[test]
fn a_write_with_the_password_changes_the_setting_and_reads_back() {
    let mut bench = Bench::new(lfp16(LoadProfile::Constant(0.0)));
    let event = bench.write(Identifier::CellOverVoltageProtection, "3.60", "123456");
    assert!(
        matches!(
            event,
            Event::Written {
                read_back: Some(_),
                ..
            }
        ),
        "{event:?}"
    );
    assert_eq!(bench.bms.settings().cell_over_voltage_protection, 3600);
    assert!(bench.bms.poll_event().is_some_and(|e| e
        == BmsEvent::SettingChanged {
            id: Identifier::CellOverVoltageProtection
        }));
}

#[test]
fn a_wrong_password_and_an_inconsistent_value_are_refused() {
    let mut bench = Bench::new(lfp16(LoadProfile::Constant(0.0)));
    let event = bench.write(Identifier::CellOverVoltageProtection, "3.60", "000000");
    assert!(
        matches!(
            event,
            Event::Failed {
                error: OperationError::NoReply { .. },
                ..
            }
        ),
        "{event:?}"
    );
    assert_eq!(bench.bms.settings().cell_over_voltage_protection, 3650);
    // In the table's range, but below its own recovery value (3.40 V): refused across fields.
    let event = bench.write(Identifier::CellOverVoltageProtection, "3.30", "123456");
    let Event::Failed {
        error: OperationError::WriteNotApplied { read_back, .. },
        ..
    } = event
    else {
        panic!("{event:?}")
    };
    assert_eq!(read_back, 3650u16.to_be_bytes());
    let mut refused = false;
    while let Some(event) = bench.bms.poll_event() {
        if let BmsEvent::WriteRefused { reason, .. } = event {
            assert_eq!(
                reason,
                "cell_over_voltage_recovery must be below cell_over_voltage_protection"
            );
            refused = true;
        }
    }
    assert!(refused);
}

#[test]
fn the_discharge_switch_stops_the_current() {
    let mut bench = Bench::new(lfp16(LoadProfile::Constant(-20.0)));
    bench
        .bms
        .run_for(Duration::from_secs(5), Duration::from_secs(1));
    assert_eq!(bench.bms.pack().current_a(), -20.0);
    bench.write(Identifier::DischargeMosfetSwitch, "off", "123456");
    bench
        .bms
        .run_for(Duration::from_secs(2), Duration::from_secs(1));
    assert_eq!(bench.bms.pack().current_a(), 0.0);
    assert_eq!(
        bench.read(Identifier::Status) & 0b11,
        0b01,
        "charge on, discharge off"
    );
}

#[test]
fn deep_discharge_trips_under_voltage_which_opens_the_discharge_mosfet() {
    let mut config = lfp16(LoadProfile::Constant(-100.0));
    config.pack.initial_soc = 0.08;
    let mut bench = Bench::new(config);
    bench
        .bms
        .run_for(Duration::from_secs(1800), Duration::from_secs(1));
    assert_eq!(
        bench.bms.pack().current_a(),
        0.0,
        "protection stopped the discharge"
    );
    let warnings = Warnings::from_bits_retain(bench.read(Identifier::Warnings) as u16);
    assert!(
        warnings.contains(Warnings::CELL_UNDER_VOLTAGE),
        "{warnings:?}"
    );
    let mut tripped = Vec::new();
    while let Some(event) = bench.bms.poll_event() {
        if let BmsEvent::Protection(e) = event {
            tripped.push(e.kind);
        }
    }
    assert!(tripped.contains(&bmslink_core::protection::ProtectionKind::CellUnderVoltage));
    assert_eq!(bench.bms.limits().discharge_current_a, 0.0);
}

#[test]
fn an_idle_bms_goes_dormant_and_the_session_wakes_it() {
    let mut config = lfp16(LoadProfile::Constant(0.0));
    let mut settings = Settings::preset(Chemistry::Lfp, 16, 100);
    settings.sleep_wait_s = 30;
    config.settings = Some(settings);
    let mut bench = Bench::new(config);
    bench
        .bms
        .run_for(Duration::from_secs(31), Duration::from_secs(1));
    assert!(bench.bms.is_dormant());
    assert!(matches!(
        bench.execute(Operation::ReadAll),
        Event::Data { .. }
    ));
    assert!(!bench.bms.is_dormant());
    // Under load it stays awake, whatever the silence on the line.
    bench.bms.set_profile(LoadProfile::Constant(-5.0));
    bench
        .bms
        .run_for(Duration::from_secs(120), Duration::from_secs(1));
    assert!(!bench.bms.is_dormant());
    let events: Vec<BmsEvent> = std::iter::from_fn(|| bench.bms.poll_event()).collect();
    assert!(
        events.contains(&BmsEvent::Dormant) && events.contains(&BmsEvent::Activated),
        "{events:?}"
    );
}

#[test]
fn uploads_carry_the_terminal_id_and_a_running_record_number() {
    let mut config = lfp16(LoadProfile::Constant(0.0));
    config.terminal = TerminalId::new(0, 0x00_12_34).unwrap();
    let mut bms = VirtualBms::new(config).unwrap();
    let first = bms.upload();
    let second = bms.upload();
    let message = Message::parse(&second).unwrap();
    assert_eq!(message.header.transport, Transport::ActiveUpload);
    assert_eq!(message.header.terminal.number(), 0x1234);
    assert_eq!(message.header.record.sequence(), 2);
    assert_eq!(Message::parse(&first).unwrap().header.record.sequence(), 1);
}

#[test]
fn stale_mode_keeps_reporting_old_values() {
    let mut bench = Bench::new(lfp16(LoadProfile::Constant(-50.0)));
    bench.bms.step(Duration::from_secs(1));
    let before = bench.read(Identifier::TotalVoltage);
    bench.bms.set_stale(true);
    bench
        .bms
        .run_for(Duration::from_secs(600), Duration::from_secs(1));
    assert_eq!(bench.read(Identifier::TotalVoltage), before);
    bench.bms.set_stale(false);
    assert!(bench.read(Identifier::TotalVoltage) < before);
}

#[test]
fn the_same_seed_gives_the_same_day() {
    let run = || {
        let mut bms = VirtualBms::new(lfp16(LoadProfile::SolarDay {
            peak_charge_a: 40.0,
            night_discharge_a: 10.0,
        }))
        .unwrap();
        bms.run_for(Duration::from_secs(6 * 3600), Duration::from_secs(1));
        bms.upload()
    };
    assert_eq!(run(), run());
}

#[test]
fn charging_a_spread_pack_to_the_top_balances_it() {
    let mut config = lfp16(LoadProfile::Constant(10.0));
    config.pack.initial_soc = 0.92;
    let mut bms = VirtualBms::new(config).unwrap();
    let mut balanced = false;
    for _ in 0..3600 {
        bms.step(Duration::from_secs(1));
        balanced |= bms.status().contains(Status::BALANCING);
    }
    assert!(
        balanced,
        "the balancer ran while the top cells rose above 3.40 V"
    );
}
