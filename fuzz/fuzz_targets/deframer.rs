//! The streaming deframer on arbitrary bytes in arbitrary chunks.
//!
//! Input: one control byte, then the stream. The control byte chooses how the stream is cut into
//! chunks (low two bits: sizes 1..=8, 1..=64, 1..=700, or the whole stream at once; the other six
//! bits seed the size sequence), so the fuzzer explores every way a frame can be split across
//! reads.
//!
//! The same stream, cut the same way, goes through:
//!
//! 1. `Deframer::feed` (the zero-copy push form);
//! 2. `Deframer::push` + `Deframer::next_frame` (the pull form);
//! 3. `Deframer::<64>::feed` (a small buffer, so the capacity limit is exercised).
//!
//! Checked for every run: each frame delivered passes `Frame::new_checked` on its bytes and
//! parses (`Message::from_frame`, equal to `Message::parse` of the bytes) without panicking; each
//! frame's stream offset points at its bytes; each error's offset points at a `4E 57` candidate;
//! `stats().frames` equals the frames delivered, `stats().bytes` the bytes pushed, the error
//! counters the errors delivered, and every byte pushed is exactly one of: in a frame, dropped,
//! or still buffered. At the end `flush` reports what is left (and may still find frames in
//! it); afterwards nothing is buffered and every byte is in a frame or dropped. The two API
//! forms of (1) and (2) must agree on frames, errors and stats.

#![no_main]

use bmslink_proto::deframer::{DeframeError, Deframer, Event, Stats};
use bmslink_proto::frame::MAX_FRAME_LEN;
use bmslink_proto::{Frame, Message};
use libfuzzer_sys::fuzz_target;

/// Chunk sizes from the control byte: a small xorshift generator, deterministic per input.
struct Chunks {
    max: usize,
    state: u32,
}

impl Chunks {
    fn new(control: u8, stream_len: usize) -> Chunks {
        let max = match control & 3 {
            0 => 8,
            1 => 64,
            2 => 700,
            _ => stream_len.max(1),
        };
        Chunks {
            max,
            state: 0x9E37_79B9 ^ (u32::from(control >> 2) * 0x0101_0101) | 1,
        }
    }

    fn next_len(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        1 + self.state as usize % self.max
    }

    fn split(control: u8, stream: &[u8]) -> Vec<&[u8]> {
        let mut chunks = Chunks::new(control, stream.len());
        let mut out = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(chunks.next_len().min(rest.len()));
            out.push(chunk);
            rest = tail;
        }
        out
    }
}

/// What one run delivered.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    frames: Vec<(Vec<u8>, Option<u64>)>,
    errors: Vec<DeframeError>,
}

/// Checks one delivered frame against the stream and the single-frame parsers.
fn check_frame(stream: &[u8], frame: Frame<&[u8]>, offset: Option<u64>, capacity: usize) {
    let bytes = frame.as_bytes();
    assert!(
        bytes.len() <= capacity,
        "frame of {} bytes from a {capacity}-byte deframer",
        bytes.len()
    );
    if let Some(offset) = offset {
        let start = usize::try_from(offset).expect("offset fits usize");
        assert_eq!(
            stream.get(start..start + bytes.len()),
            Some(bytes),
            "frame offset {offset} does not point at the frame's bytes"
        );
    }
    let checked = Frame::new_checked(bytes)
        .unwrap_or_else(|e| panic!("deframer delivered a frame that new_checked rejects: {e}"));
    assert_eq!(checked.as_bytes(), bytes);
    let from_frame = Message::from_frame(frame);
    assert_eq!(
        from_frame,
        Message::parse(bytes),
        "from_frame and parse disagree"
    );
    if let Err(error) = from_frame {
        let _ = error.to_string();
        assert!(
            error.offset() <= bytes.len(),
            "error offset past the frame: {error:?}"
        );
    }
}

fn check_error(stream: &[u8], error: &DeframeError) {
    let _ = error.to_string();
    let start = usize::try_from(error.stream_offset).expect("offset fits usize");
    assert_eq!(
        stream.get(start..start + 2),
        Some(&[0x4E, 0x57][..]),
        "error offset {} does not point at a candidate start: {error:?}",
        error.stream_offset
    );
}

fn check_stats(stats: Stats, seen: &Seen, pushed: usize, buffered: usize) {
    assert_eq!(
        stats.frames,
        seen.frames.len() as u64,
        "stats.frames vs frames delivered"
    );
    assert_eq!(stats.bytes, pushed as u64, "stats.bytes vs bytes pushed");
    assert_eq!(
        stats.errors(),
        seen.errors.len() as u64,
        "stats.errors() vs errors delivered"
    );
    let in_frames: u64 = seen.frames.iter().map(|(f, _)| f.len() as u64).sum();
    assert_eq!(
        stats.bytes,
        in_frames + stats.bytes_dropped + buffered as u64,
        "bytes pushed != bytes in frames + dropped + buffered ({stats:?}, buffered {buffered})"
    );
}

/// Run 1: the callback form.
fn run_feed<const N: usize>(stream: &[u8], chunks: &[&[u8]]) -> (Seen, Stats) {
    let mut deframer: Deframer<N> = Deframer::new_sized();
    let mut seen = Seen::default();
    let on_event = |event: Event<'_>, seen: &mut Seen| match event {
        Event::Frame(frame, offset) => {
            check_frame(stream, frame, Some(offset), N);
            seen.frames.push((frame.as_bytes().to_vec(), Some(offset)));
        }
        Event::Error(error) => {
            check_error(stream, &error);
            seen.errors.push(error);
        }
    };
    for chunk in chunks {
        deframer.feed(chunk, |event| on_event(event, &mut seen));
        assert!(deframer.buffered() <= N);
        assert!(deframer.stats().bytes <= stream.len() as u64);
    }
    check_stats(deframer.stats(), &seen, stream.len(), deframer.buffered());
    // End of input: what is still buffered is reported (and rescanned), nothing stays.
    deframer.flush(|event| on_event(event, &mut seen));
    assert_eq!(deframer.buffered(), 0, "bytes still buffered after flush");
    check_stats(deframer.stats(), &seen, stream.len(), 0);
    (seen, deframer.stats())
}

/// Run 2: the pull form.
fn run_pull(stream: &[u8], chunks: &[&[u8]]) -> (Seen, Stats) {
    let mut deframer: Deframer = Deframer::new();
    let mut seen = Seen::default();
    let mut pushed = 0;
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            let taken = deframer.push(rest);
            pushed += taken;
            rest = &rest[taken..];
            let mut progressed = taken > 0;
            while let Some(result) = deframer.next_frame() {
                progressed = true;
                match result {
                    Ok(frame) => {
                        check_frame(stream, frame, None, MAX_FRAME_LEN);
                        seen.frames.push((frame.as_bytes().to_vec(), None));
                    }
                    Err(error) => {
                        check_error(stream, &error);
                        seen.errors.push(error);
                    }
                }
            }
            assert!(
                progressed,
                "pull API stalled: push took nothing and no event came"
            );
        }
    }
    assert_eq!(pushed, stream.len());
    check_stats(deframer.stats(), &seen, pushed, deframer.buffered());
    deframer.flush(|event| match event {
        Event::Frame(frame, offset) => {
            check_frame(stream, frame, Some(offset), MAX_FRAME_LEN);
            seen.frames.push((frame.as_bytes().to_vec(), None));
        }
        Event::Error(error) => {
            check_error(stream, &error);
            seen.errors.push(error);
        }
    });
    assert_eq!(deframer.buffered(), 0, "bytes still buffered after flush");
    check_stats(deframer.stats(), &seen, pushed, 0);
    (seen, deframer.stats())
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let chunks = Chunks::split(control, stream);

    let (fed, fed_stats) = run_feed::<MAX_FRAME_LEN>(stream, &chunks);
    let (pulled, pulled_stats) = run_pull(stream, &chunks);

    // The two forms must see the same frames (the pull form has no offsets), errors and counts.
    let fed_frames: Vec<&[u8]> = fed.frames.iter().map(|(f, _)| f.as_slice()).collect();
    let pulled_frames: Vec<&[u8]> = pulled.frames.iter().map(|(f, _)| f.as_slice()).collect();
    assert_eq!(
        fed_frames, pulled_frames,
        "feed and push/next_frame delivered different frames"
    );
    assert_eq!(
        fed.errors, pulled.errors,
        "feed and push/next_frame reported different errors"
    );
    assert_eq!(
        fed_stats, pulled_stats,
        "feed and push/next_frame counted differently"
    );

    // A small deframer: same invariants, frames of at most 64 bytes.
    run_feed::<64>(stream, &chunks);
});
