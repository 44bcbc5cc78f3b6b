//! The device listener over real TCP and SQLite in a temporary directory: uploads stored and
//! acknowledged byte for byte, duplicates, back-pressure from a slow or unavailable store, bad
//! input (garbage, oversized and malformed frames), the impersonation rule, the approval
//! policy, remote reads and writes reaching a simulated BMS, and a reconnect storm.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "listener/support.rs"]
mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bmslink_platform::listener::ListenerConfig;
use bmslink_platform::model::{CommandRequest, CommandState, Registration, Terminal, Timestamp};
use bmslink_platform::store::Store;
use bmslink_proto::frame::FrameBuilder;
use bmslink_proto::{Command, Header, RecordNumber, Source, TerminalId, Transport};
use bmslink_sim::serve::{lock, run_data_box, Faults};
use support::{bms, eventually, shared, test_config, uploads, Platform, RawBox, TroubledStore};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

const SECOND: Duration = Duration::from_secs(1);
const SHORT: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_stored_before_it_is_acknowledged_with_the_response_frame() {
    let (_dir, store) = support::sqlite();
    let (alarms, mut alarm_rows) = mpsc::channel(16);
    let mut platform = Platform::with_store(test_config(), store, Some(alarms)).await;
    let frames = uploads(0x0003E8, 1);
    let mut data_box = RawBox::connect(platform.address).await;
    data_box.send(&frames[0]).await;

    let ack = data_box
        .frame(5 * SECOND)
        .await
        .expect("an acknowledgement");
    // Transport 01, command 06 and the terminal id and record number of the upload, source
    // PC, empty info field; checksum 0x0215 is the byte sum of the 16 bytes before it.
    let expected = [
        0x4E, 0x57, 0x00, 0x12, 0x00, 0x00, 0x03, 0xE8, 0x06, 0x03, 0x01, 0x00, 0x00, 0x00, 0x01,
        0x68, 0x00, 0x00, 0x02, 0x15,
    ];
    assert_eq!(ack, expected);
    // Acknowledged means committed: the row is readable the moment the answer arrives.
    let latest = platform
        .store
        .latest(Terminal(0x3E8))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.record, 1);
    assert_eq!(latest.raw, frames[0]);
    assert_eq!(latest.cells_mv.len(), 16);
    assert!(platform.record(0x3E8).await.unwrap().online);
    let forwarded = alarm_rows.recv().await.unwrap();
    assert_eq!((forwarded.terminal, forwarded.record), (Terminal(0x3E8), 1));

    let stats = platform.stats.snapshot();
    assert_eq!((stats.uploads, stats.stored, stats.acknowledged), (1, 1, 1));
    assert_eq!(stats.alarms_forwarded, 1);
    platform.stop().await;
    // Shutdown closes the connection and marks the terminal offline.
    assert!(data_box.closed(SECOND).await);
    assert!(!platform.record(0x3E8).await.unwrap().online);
    assert_eq!(platform.stats.snapshot().connections_open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_upload_is_stored_once_and_acknowledged_again() {
    let mut platform = Platform::start(test_config()).await;
    let frames = uploads(1001, 2);
    let mut data_box = RawBox::connect(platform.address).await;
    for frame in [&frames[0], &frames[0], &frames[1], &frames[0]] {
        data_box.send(frame).await;
    }
    let mut acks = Vec::new();
    for _ in 0..4 {
        acks.push(data_box.ack(5 * SECOND).await.unwrap());
    }
    assert_eq!(acks, [1, 1, 2, 1]);
    assert_eq!(platform.rows(1001).await.len(), 2);
    let stats = platform.stats.snapshot();
    assert_eq!(
        (stats.stored, stats.duplicates, stats.acknowledged),
        (2, 2, 4)
    );
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_pauses_reading_and_loses_no_upload() {
    let (_dir, sqlite) = support::sqlite();
    let mut store = TroubledStore::new(sqlite);
    store.insert_delay = Duration::from_millis(50);
    let config = ListenerConfig {
        batch_size: 4,
        upload_queue: 2,
        unacknowledged_per_connection: 4,
        ..test_config()
    };
    let mut platform = Platform::with_store(config, store, None).await;
    let (boxes, per_box) = (5u32, 20usize);
    let mut clients = Vec::new();
    for terminal in 0..boxes {
        let mut data_box = RawBox::connect(platform.address).await;
        // Everything at once: far more than the queue and the connection may hold.
        data_box
            .send(&uploads(2000 + terminal, per_box).concat())
            .await;
        clients.push(data_box);
    }
    for data_box in &mut clients {
        let mut acks = Vec::new();
        while let Some(record) = data_box.ack(10 * SECOND).await {
            acks.push(record);
            if acks.len() == per_box {
                break;
            }
        }
        let expected: Vec<u32> = (1..=per_box as u32).collect();
        assert_eq!(acks, expected, "every upload acknowledged, in order");
    }
    for terminal in 0..boxes {
        assert_eq!(platform.rows(2000 + terminal).await.len(), per_box);
    }
    let stats = platform.stats.snapshot();
    assert_eq!(stats.stored, u64::from(boxes) * per_box as u64);
    assert!(
        stats.backpressure_waits > 0,
        "connections waited for room: {stats:?}"
    );
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_in_flight_overlap_and_are_answered_in_order() {
    let (_dir, sqlite) = support::sqlite();
    // The first batch (record 1) takes 400 ms to commit; the ones behind it commit at once.
    let mut store = TroubledStore::new(sqlite);
    store.insert_delay = 4 * Duration::from_millis(100);
    store.delayed_record = Some(1);
    let config = ListenerConfig {
        batch_size: 2,
        batches_in_flight: 3,
        ..test_config()
    };
    let (alarms, mut alarm_rows) = mpsc::channel(64);
    let mut platform = Platform::with_store(config, store.clone(), Some(alarms)).await;
    let mut data_box = RawBox::connect(platform.address).await;
    data_box.send(&uploads(3100, 8).concat()).await;

    // Pipelining: later batches reach the store while the first is still committing...
    assert!(
        eventually(SHORT, || async {
            store.inserts.load(Ordering::SeqCst) >= 3
        })
        .await,
        "three batches in flight"
    );
    // ...but nothing is answered before the first batch committed, and answers keep order.
    assert_eq!(data_box.ack(Duration::from_millis(200)).await, None);
    let mut acks = Vec::new();
    while acks.len() < 8 {
        acks.push(
            data_box
                .ack(5 * SECOND)
                .await
                .expect("every upload answered"),
        );
    }
    assert_eq!(acks, (1..=8).collect::<Vec<u32>>());
    let mut forwarded = Vec::new();
    while forwarded.len() < 8 {
        forwarded.push(alarm_rows.recv().await.unwrap().record);
    }
    assert_eq!(
        forwarded,
        (1..=8).collect::<Vec<u32>>(),
        "rows reach the alarms in order"
    );
    assert_eq!(platform.rows(3100).await.len(), 8);
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_store_is_retried_and_nothing_is_acknowledged_before_the_commit() {
    let (_dir, sqlite) = support::sqlite();
    let store = TroubledStore::new(sqlite);
    store.failures_left.store(6, Ordering::SeqCst);
    let config = ListenerConfig {
        store_retry_min: Duration::from_millis(20),
        store_retry_max: Duration::from_millis(100),
        ..test_config()
    };
    let mut platform = Platform::with_store(config, store.clone(), None).await;
    let mut data_box = RawBox::connect(platform.address).await;
    data_box.send(&uploads(3000, 3).concat()).await;
    let mut acks = Vec::new();
    while acks.len() < 3 {
        acks.push(
            data_box
                .ack(10 * SECOND)
                .await
                .expect("acknowledged after the retries"),
        );
    }
    assert_eq!(acks, [1, 2, 3]);
    assert_eq!(store.failures_left.load(Ordering::SeqCst), 0);
    let stats = platform.stats.snapshot();
    assert!(stats.store_retries >= 6, "{stats:?}");
    assert_eq!(stats.stored, 3);
    assert_eq!(stats.not_stored, 0);
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_sending_only_garbage_is_closed() {
    let mut platform = Platform::start(test_config()).await;
    let mut data_box = RawBox::connect(platform.address).await;
    data_box.send(&[0xAA; 5000]).await;
    assert!(data_box.closed(5 * SECOND).await);
    let stats = platform.stats.snapshot();
    assert_eq!(stats.closed_garbage, 1);
    assert_eq!(stats.frames, 0);
    assert!(platform.store.fleet().await.unwrap().is_empty());
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_the_connection() {
    let mut platform = Platform::start(test_config()).await;
    let mut data_box = RawBox::connect(platform.address).await;
    data_box.send(&uploads(4000, 1)[0]).await;
    assert_eq!(data_box.ack(5 * SECOND).await, Some(1));
    // LENGTH 0x1000: a 4098-byte frame, four times the limit.
    let mut oversized = vec![0x4E, 0x57, 0x10, 0x00];
    oversized.extend([0u8; 200]);
    data_box.send(&oversized).await;
    assert!(data_box.closed(5 * SECOND).await);
    let stats = platform.stats.snapshot();
    assert_eq!((stats.oversized, stats.closed_oversized), (1, 1));
    assert!(
        eventually(5 * SECOND, || async {
            !platform.record(4000).await.unwrap().online
        })
        .await
    );
    platform.stop().await;
}

/// An upload frame with only a SOC field: a valid frame, but no telemetry.
fn upload_without_cells(terminal: u32, record: u32) -> Vec<u8> {
    let header = Header {
        terminal: TerminalId::new(0, terminal).unwrap(),
        command: Command::ReadAll,
        source: Source::Bms,
        transport: Transport::ActiveUpload,
        record: RecordNumber::new(0, record),
    };
    let mut buffer = [0u8; 64];
    let mut builder = FrameBuilder::new(&mut buffer, header).unwrap();
    builder.push(&[0x85, 50]).unwrap();
    builder.finish().unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_counted_per_terminal_and_the_connection_goes_on() {
    let mut platform = Platform::start(test_config()).await;
    let frames = uploads(5000, 5);
    let mut data_box = RawBox::connect(platform.address).await;
    data_box.send(&frames[0]).await;
    assert_eq!(data_box.ack(5 * SECOND).await, Some(1));

    let mut bad_checksum = frames[1].clone();
    *bad_checksum.last_mut().unwrap() ^= 0x01;
    let mut bad_end = frames[2].clone();
    let end = bad_end.len() - 5;
    bad_end[end] = 0x69;
    data_box.send(&bad_checksum).await;
    data_box.send(&bad_end).await;
    data_box.send(&upload_without_cells(5000, 4)).await;
    data_box.send(&frames[4]).await;
    // Only the good upload is answered: the others are not stored.
    assert_eq!(data_box.ack(5 * SECOND).await, Some(5));
    assert_eq!(data_box.ack(SHORT).await, None);

    let stats = platform.stats.snapshot();
    assert!(stats.malformed_checksum >= 1, "{stats:?}");
    assert!(stats.malformed_end >= 1, "{stats:?}");
    assert_eq!(stats.bad_content, 1);
    assert_eq!(stats.stored, 2);
    let terminal = platform.stats.terminal(Terminal(5000)).unwrap();
    assert!(terminal.malformed >= 2, "{terminal:?}");
    assert_eq!((terminal.bad_content, terminal.acknowledged), (1, 2));
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newer_connection_wins_a_terminal_that_is_online_elsewhere() {
    let mut platform = Platform::start(test_config()).await;
    let frames = uploads(6000, 3);
    let mut older = RawBox::connect(platform.address).await;
    older.send(&frames[0]).await;
    assert_eq!(older.ack(5 * SECOND).await, Some(1));

    let mut newer = RawBox::connect(platform.address).await;
    newer.send(&frames[1]).await;
    assert_eq!(newer.ack(5 * SECOND).await, Some(2));
    assert!(
        older.closed(5 * SECOND).await,
        "the older connection is closed"
    );
    let stats = platform.stats.snapshot();
    assert_eq!((stats.impersonations, stats.closed_replaced), (1, 1));
    // The older connection's end does not take the terminal offline.
    tokio::time::sleep(SHORT).await;
    assert!(platform.record(6000).await.unwrap().online);
    newer.send(&frames[2]).await;
    assert_eq!(newer.ack(5 * SECOND).await, Some(3));

    drop(newer);
    assert!(
        eventually(5 * SECOND, || async {
            !platform.record(6000).await.unwrap().online
        })
        .await
    );
    platform.stop().await;
}

/// Two listeners on one store stand for two platform processes sharing a database. A box
/// whose old connection to process A is still open (half open after a network change)
/// reconnects to process B: it stays online when the old connection ends, the old connection
/// learns it lost the terminal and closes, and commands queued through either process run on
/// B's connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_box_that_moved_to_another_process_stays_online_there() {
    let (_dir, store) = support::sqlite();
    let (config_a, config_b) = (test_config(), test_config());
    let (process_a, process_b) = (config_a.process, config_b.process);
    assert_ne!(process_a, process_b, "each process draws its own id");
    let mut a = Platform::with_store(config_a, store.clone(), None).await;
    let mut b = Platform::with_store(config_b, store, None).await;
    let terminal = 0x00BEEF;
    let frames = uploads(terminal, 2);
    let mut old = RawBox::connect(a.address).await;
    old.send(&frames[0]).await;
    assert_eq!(old.ack(5 * SECOND).await, Some(1));
    let owner = a.record(terminal).await.unwrap().owner.unwrap();
    assert_eq!(owner.process, process_a);

    let bms = shared(bms(terminal, 11));
    let data_box = tokio::spawn(run_data_box(
        b.address.to_string(),
        bms.clone(),
        Duration::from_millis(300),
        Faults::default(),
        11,
    ));
    assert!(
        eventually(5 * SECOND, || async {
            let record = a.record(terminal).await.unwrap();
            record.online && record.owner.is_some_and(|o| o.process == process_b)
        })
        .await,
        "the box's connection to B holds the terminal"
    );

    // A command queued through process A: both processes hear of it; only B's connection,
    // which holds the terminal, may run it.
    let read = enqueue(&a, terminal, CommandRequest::ReadAll).await;
    let CommandState::Done { result } = b.finished(read, 20 * SECOND).await else {
        panic!("the read failed: {:?}", b.command_state(read).await);
    };
    assert_eq!(result["values"]["cell_count"]["value"], 16);

    // The old connection speaks again: it learns from the store that it lost the terminal
    // (the registration recheck is due) and closes, if the command did not close it already.
    tokio::time::sleep(SHORT).await;
    let _ = old.stream.write_all(&frames[1]).await;
    assert!(old.closed(5 * SECOND).await, "the old connection is closed");
    assert_eq!(a.stats.snapshot().closed_replaced, 1);
    // Its end leaves the terminal online, held by B.
    tokio::time::sleep(SHORT).await;
    let record = a.record(terminal).await.unwrap();
    assert!(record.online);
    assert_eq!(record.owner.map(|o| o.process), Some(process_b));

    data_box.abort();
    assert!(
        eventually(5 * SECOND, || async {
            !a.record(terminal).await.unwrap().online
        })
        .await,
        "the holder's end takes it offline"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_carries_several_terminals_up_to_its_limit() {
    let config = ListenerConfig {
        terminals_per_connection: 2,
        ..test_config()
    };
    let mut platform = Platform::start(config).await;
    let mut gateway = RawBox::connect(platform.address).await;
    for terminal in [7001, 7002, 7003] {
        gateway.send(&uploads(terminal, 1)[0]).await;
    }
    assert_eq!(gateway.ack(5 * SECOND).await, Some(1));
    assert_eq!(gateway.ack(5 * SECOND).await, Some(1));
    assert_eq!(
        gateway.ack(SHORT).await,
        None,
        "the third terminal is dropped"
    );
    assert!(platform.record(7001).await.unwrap().online);
    assert!(platform.record(7002).await.unwrap().online);
    assert!(platform.record(7003).await.is_none());
    assert_eq!(platform.stats.snapshot().foreign_terminal, 1);
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_and_its_terminal_goes_offline() {
    let config = ListenerConfig {
        idle_timeout: Duration::from_millis(400),
        ..test_config()
    };
    let mut platform = Platform::start(config).await;
    let mut data_box = RawBox::connect(platform.address).await;
    data_box.send(&uploads(8000, 1)[0]).await;
    assert_eq!(data_box.ack(5 * SECOND).await, Some(1));
    assert!(data_box.closed(5 * SECOND).await);
    assert_eq!(platform.stats.snapshot().closed_idle, 1);
    assert!(
        eventually(5 * SECOND, || async {
            !platform.record(8000).await.unwrap().online
        })
        .await
    );
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_terminals_uploads_wait_for_approval() {
    let config = ListenerConfig {
        registration: bmslink_platform::listener::RegistrationPolicy::Approval,
        ..test_config()
    };
    let mut platform = Platform::start(config).await;
    let frames = uploads(9000, 3);
    let mut data_box = RawBox::connect(platform.address).await;
    data_box.send(&frames[0]).await;
    assert_eq!(data_box.ack(Duration::from_millis(500)).await, None);
    let record = platform.record(9000).await.unwrap();
    assert_eq!(record.registration, Registration::Pending);
    assert!(record.online, "the connection is kept");
    assert!(platform.rows(9000).await.is_empty());

    platform
        .store
        .set_registration(Terminal(9000), Registration::Approved)
        .await
        .unwrap();
    // A box that waits for acknowledgements sends what it kept; approval takes effect
    // within the recheck period (100 ms here).
    tokio::time::sleep(SHORT).await;
    data_box.send(&frames[0]).await;
    data_box.send(&frames[1]).await;
    assert_eq!(data_box.ack(5 * SECOND).await, Some(1));
    assert_eq!(data_box.ack(5 * SECOND).await, Some(2));
    assert_eq!(platform.rows(9000).await.len(), 2);
    let stats = platform.stats.snapshot();
    assert_eq!(stats.unregistered_uploads, 1);

    platform
        .store
        .set_registration(Terminal(9000), Registration::Rejected)
        .await
        .unwrap();
    tokio::time::sleep(SHORT).await;
    data_box.send(&frames[2]).await;
    assert!(
        data_box.closed(5 * SECOND).await,
        "a rejected terminal is closed"
    );
    assert_eq!(platform.stats.snapshot().closed_rejected, 1);
    platform.stop().await;
}

fn write(values: &[(&str, &str)], password: &str) -> CommandRequest {
    CommandRequest::Write {
        values: values
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        password: Some(password.to_string()),
    }
}

async fn enqueue<S: Store>(platform: &Platform<S>, terminal: u32, request: CommandRequest) -> i64 {
    platform
        .store
        .enqueue_command(
            Terminal(terminal),
            request,
            "tester".into(),
            Timestamp::now(),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_reads_and_writes_reach_the_simulated_bms() {
    let mut platform = Platform::start(test_config()).await;
    let terminal = 0x00ABCD;
    let bms = shared(bms(terminal, 7));
    // Queued while the terminal is offline: runs when it connects.
    let read = enqueue(&platform, terminal, CommandRequest::ReadAll).await;
    let data_box = tokio::spawn(run_data_box(
        platform.address.to_string(),
        bms.clone(),
        Duration::from_millis(300),
        Faults::default(),
        7,
    ));

    let CommandState::Done { result } = platform.finished(read, 20 * SECOND).await else {
        panic!("the read failed: {:?}", platform.command_state(read).await);
    };
    let values = &result["values"];
    assert_eq!(values["cell_count"]["value"], 16);
    assert_eq!(
        values["cell_voltages"]["value"].as_array().unwrap().len(),
        16
    );
    assert_eq!(values["battery_type"]["value"], "lfp");
    assert_eq!(values["cell_over_voltage_protection"]["unit"], "V");

    let before = lock(&bms).settings().clone();
    let target = before.cell_over_voltage_protection - 10;
    assert!(target > before.cell_over_voltage_recovery && target > before.balance_start_voltage);
    let text = format!("{}.{:03}", target / 1000, target % 1000);
    let acknowledged = platform.stats.snapshot().acknowledged;
    let id = enqueue(
        &platform,
        terminal,
        write(&[("cell_over_voltage_protection", &text)], "123456"),
    )
    .await;
    let CommandState::Done { result } = platform.finished(id, 20 * SECOND).await else {
        panic!("the write failed: {:?}", platform.command_state(id).await);
    };
    assert_eq!(result["ok"], true, "{result}");
    let setting = &result["settings"][0];
    assert_eq!(setting["identifier"], "cell_over_voltage_protection");
    assert_eq!(setting["old"]["raw"], before.cell_over_voltage_protection);
    assert_eq!(setting["read_back"]["raw"], target);
    assert_eq!(lock(&bms).settings().cell_over_voltage_protection, target);
    // Uploads went on being stored and acknowledged while the commands ran.
    assert!(platform.stats.snapshot().acknowledged > acknowledged);

    // A wrong password: the BMS ignores the write; nothing changes.
    let id = enqueue(
        &platform,
        terminal,
        write(&[("cell_over_voltage_protection", "3.500")], "654321"),
    )
    .await;
    let CommandState::Failed { reason } = platform.finished(id, 20 * SECOND).await else {
        panic!("a write with a wrong password succeeded");
    };
    assert!(reason.contains("no setting was applied"), "{reason}");
    assert_eq!(lock(&bms).settings().cell_over_voltage_protection, target);

    // An out-of-range value: refused before anything is sent.
    let id = enqueue(
        &platform,
        terminal,
        write(
            &[
                ("balancing_switch", "off"),
                ("cell_over_voltage_protection", "9.9"),
            ],
            "123456",
        ),
    )
    .await;
    let CommandState::Failed { reason } = platform.finished(id, 5 * SECOND).await else {
        panic!("an out-of-range write succeeded");
    };
    assert!(reason.starts_with("nothing was sent"), "{reason}");
    assert_eq!(
        lock(&bms).settings().balancing_enabled,
        before.balancing_enabled
    );

    let stats = platform.stats.snapshot();
    assert_eq!((stats.commands_done, stats.commands_failed), (2, 2));
    data_box.abort();
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_leaves_every_terminal_online_or_offline_as_it_is() {
    const BOXES: u32 = 200;
    let mut platform = Platform::start(test_config()).await;
    let packs: Vec<_> = (0..BOXES)
        .map(|i| shared(bms(10_000 + i, u64::from(i))))
        .collect();
    let spawn_all = |round: u64| -> Vec<tokio::task::JoinHandle<()>> {
        packs
            .iter()
            .enumerate()
            .map(|(i, pack)| {
                tokio::spawn(run_data_box(
                    platform.address.to_string(),
                    pack.clone(),
                    Duration::from_millis(500),
                    Faults::default(),
                    round * 1000 + i as u64,
                ))
            })
            .collect()
    };
    let online = |expected: bool| {
        let store = platform.store.clone();
        async move {
            let fleet = store.fleet().await.unwrap();
            fleet.len() == BOXES as usize && fleet.iter().all(|e| e.record.online == expected)
        }
    };

    let mut boxes = spawn_all(0);
    assert!(
        eventually(30 * SECOND, || online(true)).await,
        "all 200 online"
    );
    for round in 1..=3 {
        // Every box reconnects at once while its old connection is still open (a network
        // change): the new connections win; then the old boxes are gone.
        let claimed = platform.stats.snapshot().impersonations;
        let newer = spawn_all(round);
        let taken = eventually(30 * SECOND, || async {
            platform.stats.snapshot().impersonations >= claimed + u64::from(BOXES)
        })
        .await;
        assert!(taken, "round {round}: {:?}", platform.stats.snapshot());
        for task in boxes {
            task.abort();
        }
        boxes = newer;
        tokio::time::sleep(SECOND).await;
        let settled = eventually(30 * SECOND, || async {
            platform.stats.snapshot().connections_open == u64::from(BOXES) && online(true).await
        })
        .await;
        assert!(settled, "round {round}: {:?}", platform.stats.snapshot());
    }
    // Everyone drops.
    for task in boxes {
        task.abort();
    }
    assert!(
        eventually(30 * SECOND, || online(false)).await,
        "all 200 offline"
    );
    assert!(
        eventually(10 * SECOND, || async {
            platform.stats.snapshot().connections_open == 0
        })
        .await
    );
    for i in 0..BOXES {
        assert!(
            !platform.rows(10_000 + i).await.is_empty(),
            "terminal {i} stored rows"
        );
    }
    let stats = platform.stats.snapshot();
    // Every acknowledgement stands for a committed row (a connection that closed between the
    // commit and its answer leaves a row unacknowledged: the box sends it again).
    assert!(
        stats.acknowledged <= stats.stored + stats.duplicates,
        "{stats:?}"
    );
    assert_eq!(stats.not_stored, 0);
    assert!(stats.impersonations >= u64::from(BOXES), "{stats:?}");
    platform.stop().await;
}
