//! Throughput of the receive path: deframing a byte stream, and deframing + decoding every
//! value of every frame.
//!
//! The stream is `FRAMES` copies of vector A03 (a real 16-cell read-all reply, 291 bytes) back
//! to back, about 1.2 MB. The vector's bytes are read from `tests/data/nw-frames.txt`, embedded
//! with `include_str!`, so the bench always measures the same frame the tests check.
//!
//! Groups (all with `Throughput::Bytes` of the whole stream; frames/s = bytes/s / 291):
//!
//! - `deframe`: `Deframer::feed` in 4096-byte chunks (socket-sized reads), the whole stream in
//!   one call, and the pull API (`push` + `next_frame`) in 4096-byte chunks;
//! - `deframe_decode`: the same, plus `Message::from_frame` and `Info::values` on every frame,
//!   touching every value (cell voltages summed, numbers, text lengths...);
//! - `decode`: `Message::parse` (checksum included) + values on pre-split frames, no deframer.
//!
//! Run: `cargo bench -p bmslink-proto --bench decode`.

use std::hint::black_box;
use std::time::Duration;

use bmslink_proto::{Body, Deframer, Event, Message, Value};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const VECTORS: &str = include_str!("../tests/data/nw-frames.txt");

/// Frames in the benchmark stream.
const FRAMES: usize = 4096;
/// Chunk size of the chunked runs, a typical socket read.
const CHUNK: usize = 4096;
/// The vector the stream is made of.
const VECTOR: &str = "A03";

/// The bytes of vector `id` (the `hex:` section of its `=== id:` block); `None` if there is
/// no such block or its hex is malformed.
fn vector_bytes(id: &str) -> Option<Vec<u8>> {
    let header = format!("{id}:");
    let block = VECTORS
        .split("\n=== ")
        .skip(1)
        .find(|b| b.starts_with(&header))?;
    let mut bytes = Vec::new();
    let mut in_hex = false;
    for line in block.lines().skip(1) {
        let line = line.trim_end();
        if line == "hex:" {
            in_hex = true;
        } else if in_hex {
            // The hex section ends at the next `label:` line (`decoded:`).
            if line.is_empty() || line.ends_with(':') {
                break;
            }
            for byte in line.split_whitespace() {
                bytes.push(u8::from_str_radix(byte, 16).ok()?);
            }
        }
    }
    (!bytes.is_empty()).then_some(bytes)
}

/// What a pass over the stream found; compared once against the expected counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    frames: u64,
    errors: u64,
    values: u64,
    /// Sum of everything touched, so that no decode can be optimised away.
    sum: u64,
}

/// Folds one value into a number, reading every part of it.
#[inline]
fn touch(value: &Value<'_>) -> u64 {
    match value {
        Value::CellVoltages(cells) => cells
            .iter()
            .map(|c| u64::from(c.voltage.0) + u64::from(c.number))
            .sum(),
        Value::Temperature(t) => u64::from(t.raw) + t.celsius().map_or(0, |c| c.0 as u64),
        Value::Current(c) => u64::from(c.raw) + c.milliamps().map_or(0, |ma| ma.0 as u64),
        Value::Number(n) => n.raw as u64 + u64::from(n.decimals),
        Value::Switch(on) => u64::from(*on),
        Value::BatteryType(kind) => u64::from(kind.code()),
        Value::Warnings(w) => u64::from(w.bits()),
        Value::Status(s) => u64::from(s.bits()),
        Value::Text(text) => (text.raw().len() + text.trimmed().len()) as u64,
        _ => 1,
    }
}

/// Decodes one checked frame completely and folds it into `tally`.
#[inline]
fn decode_frame(frame: bmslink_proto::Frame<&[u8]>, tally: &mut Tally) {
    match Message::from_frame(frame) {
        Ok(Message {
            body: Body::Data(info),
            header,
        }) => {
            tally.frames += 1;
            tally.sum = tally.sum.wrapping_add(u64::from(header.record.sequence()));
            for (id, value) in info.values() {
                tally.values += 1;
                tally.sum = tally.sum.wrapping_add(u64::from(id.code()) ^ touch(&value));
            }
            black_box(tally.sum);
        }
        Ok(_) => tally.frames += 1,
        Err(_) => tally.errors += 1,
    }
}

fn count_event(event: Event<'_>, tally: &mut Tally) {
    match event {
        Event::Frame(frame, offset) => {
            tally.frames += 1;
            tally.sum = tally.sum.wrapping_add(frame.len() as u64 ^ offset);
        }
        Event::Error(_) => tally.errors += 1,
    }
}

fn decode_event(event: Event<'_>, tally: &mut Tally) {
    match event {
        Event::Frame(frame, _) => decode_frame(frame, tally),
        Event::Error(_) => tally.errors += 1,
    }
}

fn feed(stream: &[u8], chunk: usize, mut on_event: impl FnMut(Event<'_>)) {
    let mut deframer: Deframer = Deframer::new();
    for piece in stream.chunks(chunk) {
        deframer.feed(piece, &mut on_event);
    }
}

fn deframe_feed(stream: &[u8], chunk: usize) -> Tally {
    let mut tally = Tally::default();
    feed(stream, chunk, |event| count_event(event, &mut tally));
    tally
}

fn deframe_decode_feed(stream: &[u8], chunk: usize) -> Tally {
    let mut tally = Tally::default();
    feed(stream, chunk, |event| decode_event(event, &mut tally));
    tally
}

/// The pull API: `push` a chunk, drain `next_frame`, push the rest.
fn pull(stream: &[u8], chunk: usize, decode: bool) -> Tally {
    let mut tally = Tally::default();
    let mut deframer: Deframer = Deframer::new();
    for mut piece in stream.chunks(chunk) {
        while !piece.is_empty() {
            let taken = deframer.push(piece);
            piece = &piece[taken..];
            while let Some(result) = deframer.next_frame() {
                match result {
                    Ok(frame) if decode => decode_frame(frame, &mut tally),
                    Ok(frame) => {
                        tally.frames += 1;
                        tally.sum = tally.sum.wrapping_add(frame.len() as u64);
                    }
                    Err(_) => tally.errors += 1,
                }
            }
        }
    }
    tally
}

/// The benchmark input: the stream, and the same bytes split into frames.
struct Input<'a> {
    stream: &'a [u8],
    frames: &'a [&'a [u8]],
}

// One never-inlined function per benchmark, so that `valgrind --tool=callgrind` reports each
// one's inclusive instruction count per call (one call = one pass over all `FRAMES` frames).
// `benches/callgrind.sh` divides those by `FRAMES`.

#[inline(never)]
fn run_deframe_feed_chunked(input: &Input<'_>) -> Tally {
    deframe_feed(input.stream, CHUNK)
}

#[inline(never)]
fn run_deframe_feed_whole(input: &Input<'_>) -> Tally {
    deframe_feed(input.stream, input.stream.len())
}

#[inline(never)]
fn run_deframe_pull_chunked(input: &Input<'_>) -> Tally {
    pull(input.stream, CHUNK, false)
}

#[inline(never)]
fn run_decode_feed_chunked(input: &Input<'_>) -> Tally {
    deframe_decode_feed(input.stream, CHUNK)
}

#[inline(never)]
fn run_decode_feed_whole(input: &Input<'_>) -> Tally {
    deframe_decode_feed(input.stream, input.stream.len())
}

#[inline(never)]
fn run_decode_pull_chunked(input: &Input<'_>) -> Tally {
    pull(input.stream, CHUNK, true)
}

/// `Message::parse` (checksum included) + values on frames already split: no deframer.
#[inline(never)]
fn run_decode_presplit(input: &Input<'_>) -> Tally {
    let mut tally = Tally::default();
    for bytes in input.frames {
        match bmslink_proto::Frame::new_checked(*bytes) {
            Ok(frame) => decode_frame(frame, &mut tally),
            Err(_) => tally.errors += 1,
        }
    }
    tally
}

type Run = fn(&Input<'_>) -> Tally;

/// (group, benchmark, decodes values, function).
const RUNS: &[(&str, &str, bool, Run)] = &[
    (
        "deframe",
        "feed_4096B_chunks",
        false,
        run_deframe_feed_chunked,
    ),
    (
        "deframe",
        "feed_whole_stream",
        false,
        run_deframe_feed_whole,
    ),
    (
        "deframe",
        "push_next_frame_4096B_chunks",
        false,
        run_deframe_pull_chunked,
    ),
    (
        "deframe_decode",
        "feed_4096B_chunks",
        true,
        run_decode_feed_chunked,
    ),
    (
        "deframe_decode",
        "feed_whole_stream",
        true,
        run_decode_feed_whole,
    ),
    (
        "deframe_decode",
        "push_next_frame_4096B_chunks",
        true,
        run_decode_pull_chunked,
    ),
    (
        "decode",
        "message_parse_values_presplit",
        true,
        run_decode_presplit,
    ),
];

fn benches(c: &mut Criterion) {
    let frame = vector_bytes(VECTOR).unwrap_or_default();
    assert!(
        !frame.is_empty(),
        "vector {VECTOR} is missing from nw-frames.txt or malformed"
    );
    let parsed = Message::parse(&frame);
    let values_per_frame = match parsed {
        Ok(Message {
            body: Body::Data(info),
            ..
        }) => info.len() as u64,
        _ => 0,
    };
    assert!(
        values_per_frame > 0,
        "vector {VECTOR} is not a data frame: {parsed:?}"
    );
    let stream: Vec<u8> = frame.repeat(FRAMES);
    let frames: Vec<&[u8]> = stream.chunks(frame.len()).collect();
    let input = Input {
        stream: &stream,
        frames: &frames,
    };
    let bytes = stream.len() as u64;
    eprintln!(
        "stream: {FRAMES} x vector {VECTOR} ({} bytes, {values_per_frame} values each) = {bytes} \
         bytes; frames/s = bytes/s / {}",
        frame.len(),
        frame.len()
    );

    // Verify once, outside the timed loops, that every run sees every frame and value.
    for &(group, name, decodes, run) in RUNS {
        let tally = run(&input);
        let what = format!("{group}/{name}");
        assert_eq!(tally.frames, FRAMES as u64, "{what}: frames");
        assert_eq!(tally.errors, 0, "{what}: errors");
        let values = if decodes {
            FRAMES as u64 * values_per_frame
        } else {
            0
        };
        assert_eq!(tally.values, values, "{what}: values");
    }
    let mut stats_check: Deframer = Deframer::new();
    for piece in stream.chunks(CHUNK) {
        stats_check.feed(piece, |_| {});
    }
    assert_eq!(stats_check.stats().frames, FRAMES as u64);
    assert_eq!(stats_check.stats().bytes, bytes);
    assert_eq!(stats_check.stats().bytes_dropped, 0);

    for group_name in ["deframe", "deframe_decode", "decode"] {
        let mut group = c.benchmark_group(group_name);
        group.throughput(Throughput::Bytes(bytes));
        for &(_, name, _, run) in RUNS.iter().filter(|r| r.0 == group_name) {
            group.bench_function(name, |b| b.iter(|| run(black_box(&input))));
        }
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = decode;
    config = config();
    targets = benches
}
criterion_main!(decode);
