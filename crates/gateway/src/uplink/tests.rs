//! The uplink's pure parts: frames from a reading, the backlog in memory and on disk (bounds,
//! restart, torn writes), the answers to the platform's requests, and record numbers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use bmslink_core::time::Instant as CoreInstant;
use bmslink_proto::frame::Header;
use bmslink_proto::message::PASSWORD_LEN;
use bmslink_proto::value::FixedText;
use bmslink_proto::{
    vectors, Body, Command, Identifier, Message, RecordNumber, Request, Source, TerminalId,
    Transport,
};
use tokio::time::Instant;

use bmslink_core::responder::PAIR_WINDOW;

use super::backlog::{Backlog, BacklogLimits};
use super::disk::{DiskStore, SEGMENT_BYTES};
use super::frame::{reading_frame, upload_header};
use super::requests::{Action, Requests};
use super::*;
use crate::rack::PackSnapshot;

/// A real 16-cell reading (vector A03).
fn reading() -> PackSnapshot {
    PackSnapshot::parse(&vectors::bytes("A03").unwrap(), CoreInstant::ZERO).unwrap()
}

fn terminal() -> TerminalId {
    TerminalId::new(0, 0x0003E8).unwrap()
}

fn upload(sequence: u32) -> Vec<u8> {
    reading_frame(upload_header(terminal(), sequence), &reading(), None).unwrap()
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "bmslink-uplink-{name}-{}-{}",
            std::process::id(),
            unix_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// --- Frames -----------------------------------------------------------------------------------

#[test]
fn an_upload_carries_every_field_of_the_reading_as_a_data_box() {
    let frame = upload(42);
    let message = Message::parse(&frame).unwrap();
    assert_eq!(message.header.source, Source::DataBox);
    assert_eq!(message.header.transport, Transport::ActiveUpload);
    assert_eq!(message.header.terminal.number(), 0x0003E8);
    assert_eq!(message.header.record, RecordNumber::new(0, 42));
    // The same values come out as went in, the current in the rack's own encoding.
    let again = PackSnapshot::parse(&frame, CoreInstant::ZERO).unwrap();
    let original = reading();
    assert_eq!(again.cells, original.cells);
    assert_eq!(again.fields, original.fields);
    assert_eq!(again.current, original.current);
    // Byte for byte the capture's info field.
    let capture = vectors::bytes("A03").unwrap();
    assert_eq!(&frame[11..frame.len() - 9], &capture[11..capture.len() - 9]);
}

// --- Record numbers ---------------------------------------------------------------------------

#[test]
fn record_numbers_continue_above_the_backlog_and_the_clock_and_wrap_to_1() {
    assert_eq!(
        initial_sequence(None, 1_700_000_000),
        1_700_000_000 % (1 << 24)
    );
    assert_eq!(initial_sequence(Some(16_000_000), 5), 16_000_000);
    assert_eq!(next_sequence(7), 8);
    assert_eq!(next_sequence(0xFF_FFFF), 1);
}

// --- Backlog in memory ------------------------------------------------------------------------

fn limits(memory_frames: usize) -> BacklogLimits {
    BacklogLimits {
        memory_frames,
        disk_bytes: 32 << 20,
    }
}

fn sequence_of(frame: &[u8]) -> u32 {
    Message::parse(frame).unwrap().header.record.sequence()
}

#[test]
fn frames_leave_in_order_within_the_window_and_go_at_their_acknowledgement() {
    let mut backlog = Backlog::in_memory("test".into(), limits(100));
    backlog.set_online(true);
    for sequence in 1..=5 {
        backlog.append(sequence, upload(sequence));
    }
    let sent: Vec<u32> = std::iter::from_fn(|| backlog.next_to_send(3))
        .map(|f| sequence_of(&f))
        .collect();
    assert_eq!(sent, [1, 2, 3], "three in flight at most");
    assert!(!backlog.acknowledge(2), "only the oldest is acknowledged");
    assert!(backlog.acknowledge(1));
    assert_eq!(backlog.next_to_send(3).map(|f| sequence_of(&f)), Some(4));
    // The connection drops: what was in flight is sent again, from the oldest.
    backlog.set_online(false);
    backlog.set_online(true);
    assert_eq!(backlog.next_to_send(3).map(|f| sequence_of(&f)), Some(2));
    assert_eq!(backlog.len(), 4);
}

#[test]
fn a_full_memory_backlog_drops_the_oldest() {
    let mut backlog = Backlog::in_memory("test".into(), limits(3));
    for sequence in 1..=5 {
        backlog.append(sequence, upload(sequence));
    }
    assert_eq!((backlog.len(), backlog.dropped()), (3, 2));
    backlog.set_online(true);
    assert_eq!(backlog.next_to_send(8).map(|f| sequence_of(&f)), Some(3));
}

// --- Backlog on disk --------------------------------------------------------------------------

#[test]
fn online_frames_stay_in_memory_and_offline_frames_go_to_disk() {
    let dir = TempDir::new("online");
    let mut backlog = Backlog::on_disk("test".into(), &dir.0, limits(100)).unwrap();
    backlog.set_online(true);
    backlog.append(1, upload(1));
    backlog.next_to_send(8).unwrap();
    assert_eq!(
        backlog.disk_bytes(),
        0,
        "no disk write while the platform acknowledges"
    );
    assert!(backlog.acknowledge(1));
    backlog.append(2, upload(2));
    backlog.next_to_send(8).unwrap();
    // The connection drops with 2 in flight: 2 goes to disk, and so does 3.
    backlog.set_online(false);
    backlog.append(3, upload(3));
    assert_eq!(backlog.disk_bytes(), 2 * upload(2).len() as u64);
}

#[test]
fn the_disk_backlog_survives_a_restart_and_its_acknowledged_frames_do_not_return() {
    let dir = TempDir::new("restart");
    {
        let mut backlog = Backlog::on_disk("test".into(), &dir.0, limits(100)).unwrap();
        for sequence in 10..20 {
            backlog.append(sequence, upload(sequence));
        }
        backlog.set_online(true);
        for sequence in 10..13 {
            backlog.next_to_send(1).unwrap();
            assert!(backlog.acknowledge(sequence));
        }
        backlog.checkpoint();
        // Online again: 20 stays in memory until the backlog is dropped (the gateway stops).
        backlog.append(20, upload(20));
    }
    let mut backlog = Backlog::on_disk("test".into(), &dir.0, limits(100)).unwrap();
    assert_eq!(backlog.len(), 8);
    assert_eq!(backlog.last_sequence(), Some(20));
    backlog.set_online(true);
    let sent: Vec<u32> = std::iter::from_fn(|| backlog.next_to_send(100))
        .map(|f| sequence_of(&f))
        .collect();
    assert_eq!(sent, (13..=20).collect::<Vec<_>>());
}

#[test]
fn acknowledgements_after_the_last_checkpoint_are_sent_again_after_a_crash() {
    let dir = TempDir::new("checkpoint");
    {
        let mut backlog = Backlog::on_disk("test".into(), &dir.0, limits(100)).unwrap();
        for sequence in 1..=4 {
            backlog.append(sequence, upload(sequence));
        }
        backlog.set_online(true);
        backlog.next_to_send(1).unwrap();
        assert!(backlog.acknowledge(1));
        backlog.checkpoint();
        backlog.next_to_send(1).unwrap();
        assert!(backlog.acknowledge(2));
        // A crash: no checkpoint, no drop.
        std::mem::forget(backlog);
    }
    let backlog = Backlog::on_disk("test".into(), &dir.0, limits(100)).unwrap();
    assert_eq!(
        backlog.front_sequence(),
        Some(2),
        "2 again: the platform stores it once"
    );
    assert_eq!(backlog.len(), 3);
}

#[test]
fn a_torn_write_is_cut_off_and_the_frames_before_it_are_kept() {
    let dir = TempDir::new("torn");
    {
        let mut backlog = Backlog::on_disk("test".into(), &dir.0, limits(100)).unwrap();
        backlog.append(1, upload(1));
        backlog.append(2, upload(2));
    }
    let segment = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "nwseg"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.extend_from_slice(&upload(3)[..100]);
    std::fs::write(&segment, &bytes).unwrap();
    let (store, torn) = DiskStore::open(&dir.0, 32 << 20).unwrap();
    assert_eq!((store.len(), torn), (2, 100));
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        2 * upload(1).len() as u64
    );
}

#[test]
fn the_disk_backlog_stays_within_its_bound_by_dropping_the_oldest_segment() {
    let dir = TempDir::new("bound");
    let limit = 2 * SEGMENT_BYTES;
    let (mut store, _) = DiskStore::open(&dir.0, limit).unwrap();
    let frame = upload(1);
    let mut dropped = 0;
    let count = 3 * SEGMENT_BYTES / frame.len() as u64;
    for sequence in 1..=count as u32 {
        dropped += store.append(sequence, &upload(sequence)).unwrap().dropped;
        assert!(store.bytes() <= limit);
    }
    store.sync().unwrap();
    assert!(dropped > 0);
    assert_eq!(store.len() + dropped, count as usize);
    // The newest frames are the ones kept.
    assert_eq!(store.last_sequence(), Some(count as u32));
    assert_eq!(store.sequence(0), Some(dropped as u32 + 1));
}

#[test]
fn segment_ids_keep_growing_after_every_segment_was_deleted() {
    let dir = TempDir::new("ids");
    let open = || Backlog::on_disk("test".into(), &dir.0, limits(100)).unwrap();
    let mut backlog = open();
    backlog.append(1, upload(1));
    backlog.append(2, upload(2));
    backlog.set_online(true);
    backlog.next_to_send(1).unwrap();
    assert!(backlog.acknowledge(1));
    backlog.checkpoint(); // the head file: segment 0, at frame 2
    backlog.next_to_send(1).unwrap();
    assert!(backlog.acknowledge(2)); // segment 0 deleted; then a crash
    std::mem::forget(backlog);
    // The next run starts a segment after the one the stale head file names...
    let mut backlog = open();
    assert!(backlog.is_empty());
    backlog.append(3, upload(3));
    std::mem::forget(backlog);
    // ...so the run after it does not take the new segment for an acknowledged one.
    assert_eq!(open().front_sequence(), Some(3));
}

// --- Requests ---------------------------------------------------------------------------------

const PASSWORD: &[u8] = b"123456";

fn padded(password: &[u8]) -> [u8; PASSWORD_LEN] {
    let mut padded = [0u8; PASSWORD_LEN];
    padded[..password.len()].copy_from_slice(password);
    padded
}

fn requests() -> Requests {
    Requests::new("test".into(), terminal(), Some(padded(PASSWORD)))
}

fn request(request: Request<'_>, record: u32) -> Vec<u8> {
    let header = Header {
        terminal: terminal(),
        record: RecordNumber::new(0, record),
        ..Header::request(request.command(), Source::Pc)
    };
    let mut buffer = [0u8; 64];
    request.emit(header, &mut buffer).unwrap().to_vec()
}

fn handle(requests: &mut Requests, now: Instant, bytes: &[u8]) -> Action {
    let frame = bmslink_proto::Frame::new_checked(bytes).unwrap();
    requests.handle(now, frame, Some(&reading()))
}

#[tokio::test(start_paused = true)]
async fn a_read_all_is_answered_with_the_latest_reading_and_the_request_record() {
    let mut requests = requests();
    let Action::Reply(reply) = handle(&mut requests, Instant::now(), &request(Request::ReadAll, 9))
    else {
        panic!("no answer");
    };
    let message = Message::parse(&reply).unwrap();
    assert_eq!(message.header.transport, Transport::Response);
    assert_eq!(message.header.command, Command::ReadAll);
    assert_eq!(message.header.record.sequence(), 9);
    let answered = PackSnapshot::parse(&reply, CoreInstant::ZERO).unwrap();
    assert_eq!(answered.cells, reading().cells);
    // One identifier.
    let Action::Reply(reply) = handle(
        &mut requests,
        Instant::now(),
        &request(Request::Read(Identifier::Soc), 10),
    ) else {
        panic!("no answer");
    };
    let Body::Data(info) = Message::parse(&reply).unwrap().body else {
        panic!("not data");
    };
    assert_eq!(info.fields().count(), 1);
}

fn pair(password: &[u8]) -> Vec<u8> {
    let padded = padded(password);
    request(
        Request::PairCode {
            password: Some(FixedText::new(&padded)),
        },
        1,
    )
}

fn write(id: Identifier, value: &[u8]) -> Vec<u8> {
    request(Request::Write { id, value }, 2)
}

#[tokio::test(start_paused = true)]
async fn a_write_goes_to_the_rack_only_after_the_right_pair_code_and_within_its_window() {
    let mut requests = requests();
    let now = Instant::now();
    let low_capacity_alarm = write(Identifier::LowCapacityAlarm, &[30]);
    assert_eq!(
        handle(&mut requests, now, &low_capacity_alarm),
        Action::Nothing
    );
    assert_eq!(
        handle(&mut requests, now, &pair(b"000000")),
        Action::Nothing
    );
    assert_eq!(
        handle(&mut requests, now, &low_capacity_alarm),
        Action::Nothing
    );
    assert_eq!(handle(&mut requests, now, &pair(PASSWORD)), Action::Nothing);
    let Action::Write { reply, value } = handle(&mut requests, now, &low_capacity_alarm) else {
        panic!("not forwarded");
    };
    assert_eq!(value.id(), Identifier::LowCapacityAlarm);
    assert_eq!(value.bytes(), [30]);
    assert_eq!(
        (reply.command, reply.transport),
        (Command::Write, Transport::Response)
    );
    let later = now + PAIR_WINDOW + Duration::from_millis(1);
    assert_eq!(
        handle(&mut requests, later, &low_capacity_alarm),
        Action::Nothing
    );
}

/// The value a write acknowledgement carries.
fn acknowledged_value(action: Action) -> (Identifier, Option<Vec<u8>>) {
    let Action::Reply(reply) = action else {
        panic!("not answered: {action:?}");
    };
    match Message::parse(&reply).unwrap().body {
        Body::WriteAck { id, value } => (id, value.map(<[u8]>::to_vec)),
        other => panic!("not a write acknowledgement: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn refused_writes_are_acknowledged_with_the_value_in_force() {
    let mut requests = requests();
    let now = Instant::now();
    handle(&mut requests, now, &pair(PASSWORD));
    // Out of the table's range (0..80 %).
    let (id, value) = acknowledged_value(handle(
        &mut requests,
        now,
        &write(Identifier::LowCapacityAlarm, &[95]),
    ));
    assert_eq!(id, Identifier::LowCapacityAlarm);
    assert_eq!(
        value.as_deref(),
        reading().field(Identifier::LowCapacityAlarm)
    );
    // A command, not a setting: refused, with nothing in force to show.
    let (id, value) = acknowledged_value(handle(
        &mut requests,
        now,
        &write(Identifier::FactoryReset, &[1]),
    ));
    assert_eq!((id, value), (Identifier::FactoryReset, None));
}

#[test]
fn the_answer_to_a_write_carries_the_value_read_back() {
    let requests = requests();
    let header = Header::request(Command::Write, Source::Pc).reply();
    let outcome = WriteOutcome {
        id: Identifier::LowCapacityAlarm,
        old: Some(vec![20]),
        read_back: Some(vec![30]),
    };
    let reply = requests
        .write_reply(header, Identifier::LowCapacityAlarm, &Ok(outcome))
        .unwrap();
    let body = Message::parse(&reply).unwrap().body;
    assert_eq!(
        body,
        Body::WriteAck {
            id: Identifier::LowCapacityAlarm,
            value: Some(&[30][..])
        }
    );
    let refused = Err(WriteError::Refused {
        written: vec![30],
        read_back: vec![20],
    });
    let reply = requests
        .write_reply(header, Identifier::LowCapacityAlarm, &refused)
        .unwrap();
    assert!(matches!(
        Message::parse(&reply).unwrap().body,
        Body::WriteAck {
            value: Some(&[20]),
            ..
        }
    ));
    let silent = Err(WriteError::NoReply("no reply".into()));
    assert_eq!(
        requests.write_reply(header, Identifier::LowCapacityAlarm, &silent),
        None
    );
}
