//! The session against a BMS responder over a simulated line, in virtual time: no sleeps, every
//! instant is exact.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use bmslink_proto::{Body, Identifier, Info, Message, Value, WriteValue};

use super::*;
use crate::responder::{BmsResponder, Outcome};
use crate::time::Instant;

/// A real 16-cell read-all reply (vector A03).
fn a03() -> Vec<u8> {
    bmslink_proto::vectors::bytes("A03").unwrap()
}

fn bms() -> BmsResponder {
    let frame = a03();
    let info = Info::parse(&frame[11..frame.len() - 9], 11).unwrap();
    BmsResponder::from_info(&info)
}

type Mangle = Box<dyn FnMut(usize, Vec<u8>) -> Vec<u8>>;

/// A session and a BMS on one simulated line.
struct Line {
    session: Session,
    bms: BmsResponder,
    now: Instant,
    /// Time from the end of a request to the whole reply having arrived.
    latency: Duration,
    in_flight: Vec<(Instant, Vec<u8>)>,
    sent: Vec<(Instant, Vec<u8>)>,
    outcomes: Vec<Outcome>,
    events: Vec<(Instant, Event)>,
    /// The BMS hears nothing while set.
    silent: bool,
    /// Rewrites the n-th reply on its way back.
    mangle: Option<Mangle>,
    replies: usize,
}

impl Line {
    fn new(config: SessionConfig) -> Line {
        Line {
            session: Session::new(config).unwrap(),
            bms: bms(),
            now: Instant::from_millis(1_000),
            latency: Duration::from_millis(26), // a 273-byte reply at 115200 baud
            in_flight: Vec::new(),
            sent: Vec::new(),
            outcomes: Vec::new(),
            events: Vec::new(),
            silent: false,
            mangle: None,
            replies: 0,
        }
    }

    fn with_password() -> Line {
        Line::new(SessionConfig::default())
    }

    /// Runs until the session is idle and nothing is in flight, or `limit` of virtual time.
    fn run(&mut self, limit: Duration) {
        let end = self.now + limit;
        for _ in 0..10_000 {
            self.exchange();
            let next = [
                self.session.poll_timeout(),
                self.in_flight.iter().map(|(t, _)| *t).min(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { return };
            if next > end {
                return;
            }
            self.now = self.now.max(next);
            let (due, later): (Vec<_>, Vec<_>) =
                self.in_flight.drain(..).partition(|(t, _)| *t <= self.now);
            self.in_flight = later;
            for (_, bytes) in due {
                self.session.handle_input(self.now, &bytes);
            }
            if self.session.poll_timeout().is_some_and(|t| t <= self.now) {
                self.session.handle_timeout(self.now);
            }
        }
        panic!("the line did not settle");
    }

    fn exchange(&mut self) {
        while let Some(bytes) = self.session.poll_transmit(self.now) {
            let bytes = bytes.to_vec();
            self.sent.push((self.now, bytes.clone()));
            if self.silent {
                continue;
            }
            let (reply, outcome) = self.bms.handle_request(self.now, &bytes);
            self.outcomes.push(outcome);
            if let Some(mut reply) = reply {
                if let Some(mangle) = self.mangle.as_mut() {
                    reply = mangle(self.replies, reply);
                }
                self.replies += 1;
                self.in_flight.push((self.now + self.latency, reply));
            }
        }
        while let Some(event) = self.session.poll_event() {
            self.events.push((self.now, event));
        }
    }

    fn sent_commands(&self) -> Vec<u8> {
        self.sent.iter().map(|(_, f)| f[8]).collect()
    }

    fn sent_times(&self) -> Vec<u64> {
        self.sent
            .iter()
            .map(|(t, _)| (*t - Instant::from_millis(1_000)).as_millis() as u64)
            .collect()
    }

    fn find(&self, pred: impl Fn(&Event) -> bool) -> Option<&Event> {
        self.events.iter().map(|(_, e)| e).find(|e| pred(e))
    }

    fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| pred(e)).count()
    }

    fn link_changes(&self) -> Vec<(LinkState, LinkState)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::LinkChanged { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }
}

fn write_op(id: Identifier, text: &str, password: Option<&str>) -> Operation {
    let password = password.map(|p| {
        let mut padded = [0u8; 10];
        padded[..p.len()].copy_from_slice(p.as_bytes());
        padded
    });
    Operation::Write {
        value: WriteValue::parse(id, text).unwrap(),
        password,
    }
}

#[test]
fn read_all_returns_the_reply_and_brings_the_link_online() {
    let mut line = Line::with_password();
    let op = line.session.submit(Operation::ReadAll);
    line.run(Duration::from_secs(5));
    assert_eq!(line.sent.len(), 1);
    // The canonical request of vector R01 (source PC).
    assert_eq!(
        line.sent[0].1,
        [
            0x4E, 0x57, 0x00, 0x13, 0, 0, 0, 0, 0x06, 0x03, 0x00, 0x00, 0, 0, 0, 0, 0x68, 0, 0,
            0x01, 0x29
        ]
    );
    let Some(Event::Data { operation, frame }) = line.find(|e| matches!(e, Event::Data { .. }))
    else {
        panic!("{:?}", line.events)
    };
    assert_eq!(*operation, op);
    assert_eq!(frame, &a03()[..]);
    assert_eq!(
        line.link_changes(),
        vec![(LinkState::Unknown, LinkState::Online)]
    );
    assert!(line.session.is_idle());
}

#[test]
fn requests_keep_100_ms_of_quiet_line_between_packets() {
    let mut line = Line::with_password();
    for _ in 0..3 {
        line.session.submit(Operation::ReadAll);
    }
    line.run(Duration::from_secs(5));
    // Each reply lands 26 ms after its request; the next request waits 100 ms after that.
    assert_eq!(line.sent_times(), vec![0, 126, 252]);
}

#[test]
fn single_read_matches_the_identifier() {
    let mut line = Line::with_password();
    line.session
        .submit(Operation::Read(Identifier::TotalVoltage));
    line.run(Duration::from_secs(5));
    let Some(Event::Data { frame, .. }) = line.find(|e| matches!(e, Event::Data { .. })) else {
        panic!("{:?}", line.events)
    };
    let message = Message::parse(frame).unwrap();
    let Body::Data(info) = message.body else {
        panic!()
    };
    assert_eq!(info.len(), 1);
    assert!(matches!(info.get(Identifier::TotalVoltage), Some(Value::Number(n)) if n.raw == 5121));
}

#[test]
fn silent_bms_is_retried_then_activated_then_reported_with_every_attempt() {
    let mut line = Line::with_password();
    line.silent = true;
    let op = line.session.submit(Operation::ReadAll);
    line.run(Duration::from_secs(10));
    // 3 read-alls 500 ms apart, an activate, 3 more read-alls.
    assert_eq!(line.sent_commands(), vec![6, 6, 6, 1, 6, 6, 6]);
    assert_eq!(
        line.sent_times(),
        vec![0, 500, 1000, 1500, 2000, 2500, 3000]
    );
    assert_eq!(line.count(|e| matches!(e, Event::Timeout { .. })), 6);
    assert_eq!(line.count(|e| matches!(e, Event::Activating { .. })), 1);
    let Some(Event::Failed { operation, error }) = line.find(|e| matches!(e, Event::Failed { .. }))
    else {
        panic!()
    };
    assert_eq!(*operation, op);
    assert_eq!(
        *error,
        OperationError::NoReply {
            stage: Stage::Read,
            attempts: 6,
            timeout: Duration::from_millis(500),
            activated: true,
            last_error: None
        }
    );
    assert_eq!(
        line.link_changes(),
        vec![(LinkState::Unknown, LinkState::Degraded)]
    );
}

#[test]
fn link_goes_offline_after_failed_operations_in_a_row_and_back_online_on_a_reply() {
    let config = SessionConfig {
        retries: 0,
        activate_when_silent: false,
        ..Default::default()
    };
    let mut line = Line::new(config);
    line.session.submit(Operation::ReadAll);
    line.run(Duration::from_secs(5));
    line.silent = true;
    for _ in 0..3 {
        line.session.submit(Operation::ReadAll);
    }
    line.run(Duration::from_secs(10));
    line.silent = false;
    line.session.submit(Operation::ReadAll);
    line.run(Duration::from_secs(5));
    assert_eq!(
        line.link_changes(),
        vec![
            (LinkState::Unknown, LinkState::Online),
            (LinkState::Online, LinkState::Degraded),
            (LinkState::Degraded, LinkState::Offline),
            (LinkState::Offline, LinkState::Online),
        ]
    );
    let offline = line
        .find(|e| {
            matches!(
                e,
                Event::LinkChanged {
                    to: LinkState::Offline,
                    ..
                }
            )
        })
        .unwrap();
    assert!(matches!(
        offline,
        Event::LinkChanged {
            reason: LinkReason::OperationsFailed { in_a_row: 3 },
            ..
        }
    ));
}

#[test]
fn dormant_bms_answers_after_activation() {
    let mut line = Line::with_password();
    line.bms.set_dormant(true);
    line.session.submit(Operation::ReadAll);
    line.run(Duration::from_secs(10));
    assert_eq!(line.sent_commands(), vec![6, 6, 6, 1, 6]);
    assert!(line.find(|e| matches!(e, Event::Data { .. })).is_some());
    assert!(line.outcomes.contains(&Outcome::Activated));
    assert!(!line.bms.is_dormant());
}

#[test]
fn write_reads_old_value_pairs_pauses_writes_and_confirms_by_read_back() {
    let config = SessionConfig {
        pair_pause: Duration::from_millis(20),
        ..Default::default()
    };
    let mut line = Line::new(config);
    let op = line.session.submit(write_op(
        Identifier::CellOverVoltageProtection,
        "3.60",
        Some("123456"),
    ));
    line.run(Duration::from_secs(5));
    // read all, pair code, write, read all.
    assert_eq!(line.sent_commands(), vec![6, 5, 2, 6]);
    // The write follows the pair code after the 20 ms pair pause, not the 100 ms packet gap.
    let times = line.sent_times();
    assert_eq!(times[2] - times[1], 20);
    assert_eq!(times[1] - times[0], 126);
    // The pair code carries the password as 0xB2 + 10 bytes.
    assert_eq!(&line.sent[1].1[11..22], b"\xB2123456\0\0\0\0");
    let Some(Event::Written {
        operation,
        id,
        old,
        read_back,
    }) = line.find(|e| matches!(e, Event::Written { .. }))
    else {
        panic!("{:?}", line.events)
    };
    assert_eq!(
        (*operation, *id),
        (op, Identifier::CellOverVoltageProtection)
    );
    assert_eq!(old.as_deref(), Some(&3650u16.to_be_bytes()[..]));
    assert_eq!(read_back.as_deref(), Some(&3600u16.to_be_bytes()[..]));
    assert_eq!(
        line.bms.get(Identifier::CellOverVoltageProtection),
        Some(&3600u16.to_be_bytes()[..])
    );
}

#[test]
fn wrong_password_means_no_acknowledgement_and_the_write_fails_after_re_pairing() {
    let mut line = Line::with_password();
    line.session.submit(write_op(
        Identifier::ChargeMosfetSwitch,
        "off",
        Some("000000"),
    ));
    line.run(Duration::from_secs(10));
    // Each retry pairs again before writing; activation is tried too.
    assert_eq!(
        line.sent_commands(),
        vec![6, 5, 2, 5, 2, 5, 2, 1, 5, 2, 5, 2, 5, 2]
    );
    assert!(line
        .outcomes
        .iter()
        .all(|o| !matches!(o, Outcome::Written { .. })));
    let failed = line.find(|e| matches!(e, Event::Failed { .. })).unwrap();
    assert!(matches!(
        failed,
        Event::Failed {
            error: OperationError::NoReply {
                stage: Stage::Write,
                attempts: 6,
                ..
            },
            ..
        }
    ));
    assert_eq!(
        line.bms.get(Identifier::ChargeMosfetSwitch),
        Some(&[1u8][..])
    );
}

#[test]
fn refused_value_is_reported_by_the_read_back() {
    let mut line = Line::with_password();
    // The BMS applies only in-range values; this one is valid for the table but the BMS image
    // is then changed behind the session's back, as a BMS that clamps would.
    line.session.submit(write_op(
        Identifier::BalanceTriggerDifference,
        "0.010",
        Some("123456"),
    ));
    line.mangle = Some(Box::new(|n, reply| {
        if n == 2 {
            // The read-back: report the old value 0x000A -> 0x0008 as a device that refused.
            let mut frame = reply;
            let pos = frame
                .windows(3)
                .position(|w| w == [0x9C, 0x00, 0x0A])
                .unwrap();
            frame[pos + 2] = 0x08;
            let len = frame.len();
            let sum = bmslink_proto::frame::checksum(&frame[..len - 4]);
            frame[len - 2..].copy_from_slice(&sum.to_be_bytes());
            frame
        } else {
            reply
        }
    }));
    line.run(Duration::from_secs(5));
    let failed = line.find(|e| matches!(e, Event::Failed { .. })).unwrap();
    let Event::Failed {
        error:
            OperationError::WriteNotApplied {
                id,
                written,
                read_back,
            },
        ..
    } = failed
    else {
        panic!("{failed:?}")
    };
    assert_eq!(*id, Identifier::BalanceTriggerDifference);
    assert_eq!(
        (written.as_slice(), read_back.as_slice()),
        (&[0x00, 0x0A][..], &[0x00, 0x08][..])
    );
}

#[test]
fn checksum_error_is_reported_degrades_the_link_and_the_retry_succeeds() {
    let mut line = Line::with_password();
    line.session.submit(Operation::ReadAll);
    line.run(Duration::from_secs(5));
    line.mangle = Some(Box::new(|n, mut reply| {
        if n == 1 {
            reply[40] ^= 0x01;
        }
        reply
    }));
    line.session.submit(Operation::ReadAll);
    line.run(Duration::from_secs(5));
    let error = line.find(|e| matches!(e, Event::FrameError(_))).unwrap();
    assert!(matches!(
        error,
        Event::FrameError(e) if matches!(e.error, bmslink_proto::FrameError::Checksum { .. })
    ));
    assert_eq!(line.count(|e| matches!(e, Event::Data { .. })), 2);
    assert_eq!(
        line.link_changes(),
        vec![
            (LinkState::Unknown, LinkState::Online),
            (LinkState::Online, LinkState::Degraded),
            (LinkState::Degraded, LinkState::Online)
        ]
    );
}

#[test]
fn reply_split_into_pieces_with_noise_before_it_is_reassembled() {
    let mut line = Line::with_password();
    line.session.submit(Operation::ReadAll);
    line.exchange();
    let reply = a03();
    let t = line.now + Duration::from_millis(5);
    line.session.handle_input(t, &[0x00, 0xFF, 0x4E]);
    for chunk in reply.chunks(7) {
        line.session.handle_input(t, chunk);
    }
    line.exchange();
    assert!(line.find(|e| matches!(e, Event::Data { .. })).is_some());
    assert_eq!(line.session.framing_stats().bytes_dropped, 3);
}

#[test]
fn a_reply_hidden_behind_a_truncated_frame_is_recovered_at_the_timeout() {
    let mut line = Line::with_password();
    line.session.submit(Operation::ReadAll);
    line.exchange();
    let t = line.now + Duration::from_millis(5);
    // Line noise that looks like a frame start with a long LENGTH, then the real reply.
    line.session.handle_input(t, &[0x4E, 0x57, 0x02, 0x00]);
    line.session.handle_input(t, &a03());
    line.exchange();
    assert!(line.find(|e| matches!(e, Event::Data { .. })).is_none());
    line.run(Duration::from_secs(1));
    assert!(line.find(|e| matches!(e, Event::Data { .. })).is_some());
    assert_eq!(line.sent.len(), 1, "recovered without a retry");
    assert!(line.find(|e| matches!(e, Event::FrameError(_))).is_some());
}

#[test]
fn active_upload_is_reported_as_unsolicited() {
    let mut line = Line::with_password();
    let mut upload = a03();
    upload[10] = 0x02; // transport type: active upload
    let len = upload.len();
    let sum = bmslink_proto::frame::checksum(&upload[..len - 4]);
    upload[len - 2..].copy_from_slice(&sum.to_be_bytes());
    line.session.handle_input(line.now, &upload);
    line.exchange();
    assert!(matches!(line.events[0].1, Event::Unsolicited { .. }));
}

#[test]
fn record_numbers_count_up_and_unmatched_replies_are_unsolicited() {
    let config = SessionConfig {
        record_numbers: true,
        ..Default::default()
    };
    let mut line = Line::new(config);
    line.session.submit(Operation::ReadAll);
    line.session.submit(Operation::ReadAll);
    line.run(Duration::from_secs(5));
    let records: Vec<&[u8]> = line
        .sent
        .iter()
        .map(|(_, f)| &f[f.len() - 9..f.len() - 5])
        .collect();
    assert_eq!(records, vec![&[0, 0, 0, 1][..], &[0, 0, 0, 2][..]]);
    // The responder echoes the record number, so both were matched.
    assert_eq!(line.count(|e| matches!(e, Event::Data { .. })), 2);
    // A reply carrying another request's record number answers nothing outstanding.
    line.mangle = Some(Box::new(|n, mut reply| {
        if n == 2 {
            let len = reply.len();
            reply[len - 6] = 0x99;
            let sum = bmslink_proto::frame::checksum(&reply[..len - 4]);
            reply[len - 2..].copy_from_slice(&sum.to_be_bytes());
        }
        reply
    }));
    line.session.submit(Operation::ReadAll);
    line.run(Duration::from_secs(5));
    assert_eq!(line.count(|e| matches!(e, Event::Unsolicited { .. })), 1);
    assert_eq!(line.count(|e| matches!(e, Event::Data { .. })), 3);
    assert_eq!(line.sent.len(), 4, "the third read was retried once");
}

#[test]
fn write_only_command_is_acknowledged_without_read_back() {
    let mut line = Line::with_password();
    line.session
        .submit(write_op(Identifier::Restart, "1", Some("123456")));
    line.run(Duration::from_secs(5));
    assert_eq!(line.sent_commands(), vec![5, 2]);
    assert!(matches!(
        line.find(|e| matches!(e, Event::Written { .. })),
        Some(Event::Written {
            old: None,
            read_back: None,
            ..
        })
    ));
}

#[test]
fn operation_errors_read_as_sentences_with_values_in_units() {
    let silent = OperationError::NoReply {
        stage: Stage::Write,
        attempts: 3,
        timeout: Duration::from_millis(500),
        activated: true,
        last_error: None,
    };
    assert_eq!(
        silent.to_string(),
        "no reply to the write within 500 ms (3 attempts, activation tried); a BMS ignores a \
         write after a pair code with a wrong password"
    );
    let refused = OperationError::WriteNotApplied {
        id: Identifier::CellOverVoltageProtection,
        written: alloc::vec![0x0E, 0x10],
        read_back: alloc::vec![0x0E, 0x42],
    };
    assert_eq!(
        refused.to_string(),
        "the BMS acknowledged the write of cell_over_voltage_protection but reads back 3.650 V \
         instead of 3.600 V: it refused the value"
    );
    let odd = OperationError::WriteNotApplied {
        id: Identifier::CellOverVoltageProtection,
        written: alloc::vec![0x0E],
        read_back: alloc::vec![],
    };
    assert!(
        odd.to_string().contains("reads back [] instead of [0E]"),
        "{odd}"
    );
}
