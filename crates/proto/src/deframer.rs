//! A pure streaming deframer: push bytes in arbitrary chunks, get checked frames and typed errors.
//!
//! Serial lines and TCP deliver NW frames split, joined and interleaved with noise (RS485
//! turnaround, line noise, a BMS waking up). The deframer:
//!
//! - finds `4E 57`, reads LENGTH, waits for the whole frame, checks end byte and checksum;
//! - on a bad LENGTH, end byte or checksum drops **one byte** and searches again, so a frame that
//!   starts inside a corrupted one is still found (`nw.md`: decoders that flush the whole buffer
//!   lose good frames);
//! - holds at most `N` bytes (default [`MAX_FRAME_LEN`]), no allocation;
//! - counts frames, bytes, bytes dropped, and errors by kind ([`Stats`]);
//! - reports every error with its offset in the stream.
//!
//! Two ways to drive it: [`Deframer::feed`] takes a whole chunk and calls back for each event,
//! parsing whole frames straight from the chunk without copying; [`Deframer::push`] and
//! [`Deframer::next_frame`] are the pull form for callers that want to own the loop.

use core::fmt;

use crate::frame::{
    announced_len, check_trailer, Frame, FrameError, MAX_FRAME_LEN, MIN_FRAME_LEN, STX,
};

/// A framing error at a position in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeframeError {
    /// What was wrong with the candidate frame.
    pub error: FrameError,
    /// Offset of the candidate's first byte in the stream (bytes since the deframer started).
    pub stream_offset: u64,
}

impl fmt::Display for DeframeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (frame at stream offset {})",
            self.error, self.stream_offset
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DeframeError {}

/// What the deframer has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes pushed in.
    pub bytes: u64,
    /// Good frames delivered.
    pub frames: u64,
    /// Bytes that were not part of a good frame (noise, and one byte per bad candidate).
    pub bytes_dropped: u64,
    /// Candidates with a bad checksum.
    pub checksum_errors: u64,
    /// Candidates with a bad LENGTH.
    pub length_errors: u64,
    /// Candidates with a bad end byte.
    pub end_errors: u64,
    /// Candidates whose high checksum bytes were not zero.
    pub checksum_high_errors: u64,
    /// Candidates still incomplete when the burst ended ([`Deframer::flush`]).
    pub truncated_errors: u64,
}

impl Stats {
    fn count(&mut self, error: &FrameError) {
        match error {
            FrameError::Checksum { .. } => self.checksum_errors += 1,
            FrameError::BadLength { .. } => self.length_errors += 1,
            FrameError::BadEnd { .. } => self.end_errors += 1,
            FrameError::ChecksumHighNotZero { .. } => self.checksum_high_errors += 1,
            FrameError::Truncated { .. } => self.truncated_errors += 1,
            // The deframer never produces the other single-frame errors.
            _ => {}
        }
    }

    /// All framing errors.
    pub fn errors(&self) -> u64 {
        self.checksum_errors
            + self.length_errors
            + self.end_errors
            + self.checksum_high_errors
            + self.truncated_errors
    }
}

/// One event of [`Deframer::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A checked frame and its offset in the stream.
    Frame(Frame<&'a [u8]>, u64),
    /// A candidate rejected; the deframer resynchronises one byte further.
    Error(DeframeError),
}

/// Result of looking at the front of some bytes.
enum Scan {
    /// `skip` bytes of noise, then a good frame of `len` bytes.
    Frame { skip: usize, len: usize },
    /// `skip` bytes of noise, then a bad candidate.
    Bad { skip: usize, error: FrameError },
    /// `skip` bytes of noise; what follows may be the start of a frame.
    NeedMore { skip: usize },
}

fn scan(bytes: &[u8], capacity: usize) -> Scan {
    let mut at = 0;
    loop {
        let Some(found) = bytes[at..].iter().position(|&b| b == STX[0]) else {
            return Scan::NeedMore { skip: bytes.len() };
        };
        at += found;
        match bytes.get(at + 1) {
            None => return Scan::NeedMore { skip: at },
            Some(&b) if b != STX[1] => {
                at += 1;
                continue;
            }
            Some(_) => {}
        }
        let candidate = &bytes[at..];
        return match announced_len(candidate) {
            Err(FrameError::Truncated { .. }) => Scan::NeedMore { skip: at },
            Err(error) => Scan::Bad { skip: at, error },
            Ok(total) if total > capacity => Scan::Bad {
                skip: at,
                error: FrameError::BadLength {
                    declared: (total - 2) as u16,
                },
            },
            Ok(total) if candidate.len() < total => Scan::NeedMore { skip: at },
            Ok(total) => match check_trailer(&candidate[..total]) {
                Ok(()) => Scan::Frame {
                    skip: at,
                    len: total,
                },
                Err(error) => Scan::Bad { skip: at, error },
            },
        };
    }
}

/// The streaming deframer; `N` is the buffer size and the longest frame accepted.
#[derive(Clone, Debug)]
pub struct Deframer<const N: usize = MAX_FRAME_LEN> {
    buffer: [u8; N],
    len: usize,
    /// Bytes at the front of `buffer` to drop before the next operation (the frame or bad
    /// byte last returned by `next_frame`).
    pending: usize,
    /// Stream offset of `buffer[0]`.
    offset: u64,
    stats: Stats,
}

impl Default for Deframer<MAX_FRAME_LEN> {
    fn default() -> Self {
        Deframer::new()
    }
}

impl Deframer<MAX_FRAME_LEN> {
    /// An empty deframer that accepts frames up to [`MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Deframer::new_sized()
    }
}

impl<const N: usize> Deframer<N> {
    /// An empty deframer with an `N`-byte buffer (for memory-tight targets; frames longer than
    /// `N` are rejected as a bad LENGTH).
    pub fn new_sized() -> Self {
        Deframer {
            buffer: [0; N],
            len: 0,
            pending: 0,
            offset: 0,
            stats: Stats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes held while waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.len - self.pending
    }

    /// Ends the current burst: at the end of the input, or after an inter-byte gap on a serial
    /// line (`nw.md`: ~50 ms ends a frame). A candidate still incomplete will never complete, so
    /// it is reported as [`FrameError::Truncated`] and the bytes after its first byte are scanned
    /// again: a good frame that started inside it (its tail was lost) is still delivered.
    pub fn flush(&mut self, mut on_event: impl FnMut(Event<'_>)) {
        loop {
            while let Some(event) = self.next_event() {
                on_event(event);
            }
            self.apply_pending();
            if self.len == 0 {
                return;
            }
            // What is left is one incomplete candidate, or a lone start byte.
            if self.len >= STX.len() {
                let needed = match announced_len(&self.buffer[..self.len]) {
                    Ok(total) => total,
                    Err(_) => MIN_FRAME_LEN,
                };
                let error = FrameError::Truncated {
                    len: self.len,
                    needed,
                };
                self.stats.count(&error);
                on_event(Event::Error(DeframeError {
                    error,
                    stream_offset: self.offset,
                }));
            }
            self.consume(1, true);
        }
    }

    /// Copies as much of `bytes` as fits into the buffer; returns how many were taken. Call
    /// [`next_frame`](Self::next_frame) until it returns `None`, then push the rest.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        self.apply_pending();
        let take = bytes.len().min(N - self.len);
        self.buffer[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
        self.stats.bytes += take as u64;
        take
    }

    /// The next frame or error from the buffered bytes, or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Frame<&[u8]>, DeframeError>> {
        self.next_event().map(|event| match event {
            Event::Frame(frame, _) => Ok(frame),
            Event::Error(error) => Err(error),
        })
    }

    /// As [`next_frame`](Self::next_frame), with the frame's stream offset.
    pub fn next_event(&mut self) -> Option<Event<'_>> {
        self.apply_pending();
        match scan(&self.buffer[..self.len], N) {
            Scan::NeedMore { skip } => {
                self.consume(skip, true);
                None
            }
            Scan::Bad { skip, error } => {
                self.consume(skip, true);
                self.stats.count(&error);
                self.stats.bytes_dropped += 1;
                self.pending = 1;
                Some(Event::Error(DeframeError {
                    error,
                    stream_offset: self.offset,
                }))
            }
            Scan::Frame { skip, len } => {
                self.consume(skip, true);
                self.stats.frames += 1;
                self.pending = len;
                Some(Event::Frame(
                    Frame::new_trusted(&self.buffer[..len]),
                    self.offset,
                ))
            }
        }
    }

    /// Feeds a whole chunk, calling `on_event` for every frame and error it completes. Whole
    /// frames inside the chunk are delivered straight from it, without copying.
    pub fn feed(&mut self, mut chunk: &[u8], mut on_event: impl FnMut(Event<'_>)) {
        self.apply_pending();
        // Complete a frame already started in the buffer, taking only the bytes it still needs
        // so that whole frames after it are parsed in place.
        while self.len > 0 && !chunk.is_empty() {
            let wanted = self.still_needed().min(chunk.len());
            let taken = self.push(&chunk[..wanted]);
            chunk = &chunk[taken..];
            while let Some(event) = self.next_event() {
                on_event(event);
            }
            self.apply_pending();
        }
        if self.len == 0 {
            self.feed_direct(chunk, &mut on_event);
        }
    }

    /// Bytes the buffered candidate needs to be complete (or to show its LENGTH), at least 1.
    fn still_needed(&self) -> usize {
        let wanted = match announced_len(&self.buffer[..self.len]) {
            Ok(total) => total.saturating_sub(self.len),
            Err(_) => 4usize.saturating_sub(self.len),
        };
        wanted.max(1)
    }

    /// With an empty buffer: scans `chunk` in place and buffers only a trailing partial frame.
    fn feed_direct(&mut self, mut chunk: &[u8], on_event: &mut impl FnMut(Event<'_>)) {
        self.stats.bytes += chunk.len() as u64;
        loop {
            match scan(chunk, N) {
                Scan::NeedMore { skip } => {
                    self.stats.bytes_dropped += skip as u64;
                    self.offset += skip as u64;
                    let rest = &chunk[skip..];
                    self.buffer[..rest.len()].copy_from_slice(rest);
                    self.len = rest.len();
                    return;
                }
                Scan::Bad { skip, error } => {
                    self.stats.count(&error);
                    self.stats.bytes_dropped += skip as u64 + 1;
                    self.offset += skip as u64;
                    on_event(Event::Error(DeframeError {
                        error,
                        stream_offset: self.offset,
                    }));
                    self.offset += 1;
                    chunk = &chunk[skip + 1..];
                }
                Scan::Frame { skip, len } => {
                    self.stats.frames += 1;
                    self.stats.bytes_dropped += skip as u64;
                    self.offset += skip as u64;
                    on_event(Event::Frame(
                        Frame::new_trusted(&chunk[skip..skip + len]),
                        self.offset,
                    ));
                    self.offset += len as u64;
                    chunk = &chunk[skip + len..];
                }
            }
        }
    }

    fn apply_pending(&mut self) {
        let pending = core::mem::take(&mut self.pending);
        self.consume(pending, false);
    }

    fn consume(&mut self, count: usize, dropped: bool) {
        if count == 0 {
            return;
        }
        self.buffer.copy_within(count..self.len, 0);
        self.len -= count;
        self.offset += count as u64;
        if dropped {
            self.stats.bytes_dropped += count as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Command, FrameBuilder, Header, Source};
    use std::vec::Vec;

    fn frame(info: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 128];
        let mut builder =
            FrameBuilder::new(&mut buf, Header::request(Command::ReadAll, Source::Pc)).unwrap();
        builder.push(info).unwrap();
        builder.finish().unwrap().to_vec()
    }

    fn collect(deframer: &mut Deframer, chunk: &[u8]) -> (Vec<Vec<u8>>, Vec<DeframeError>) {
        let mut frames = Vec::new();
        let mut errors = Vec::new();
        deframer.feed(chunk, |event| match event {
            Event::Frame(frame, _) => frames.push(frame.as_bytes().to_vec()),
            Event::Error(error) => errors.push(error),
        });
        (frames, errors)
    }

    #[test]
    fn frames_split_across_every_byte_boundary_are_reassembled() {
        let a = frame(&[0x00]);
        let b = frame(&[0x85, 0x40]);
        let stream: Vec<u8> = [a.clone(), b.clone()].concat();
        for split in 0..=stream.len() {
            let mut deframer = Deframer::new();
            let (mut frames, errors) = collect(&mut deframer, &stream[..split]);
            let (more, more_errors) = collect(&mut deframer, &stream[split..]);
            frames.extend(more);
            assert_eq!(frames, vec![a.clone(), b.clone()], "split at {split}");
            assert!(errors.is_empty() && more_errors.is_empty());
            assert_eq!(deframer.stats().bytes_dropped, 0);
        }
    }

    #[test]
    fn noise_is_skipped_and_counted() {
        let good = frame(&[0x00]);
        let stream: Vec<u8> = [&[0x01, 0x4E, 0x00, 0x4E][..], &good, &[0xFF, 0x4E][..]].concat();
        let mut deframer = Deframer::new();
        let (frames, errors) = collect(&mut deframer, &stream);
        assert_eq!(frames, vec![good]);
        assert!(errors.is_empty());
        assert_eq!(deframer.stats().bytes_dropped, 5); // 4 before, 1 after; the last 4E is held
        assert_eq!(deframer.buffered(), 1);
    }

    #[test]
    fn a_frame_inside_a_corrupted_frame_is_recovered() {
        // A frame whose tail was lost on the wire: its LENGTH covers the next, intact frame.
        let lost = frame(&[0x85, 0x40, 0x86, 0x02, 0x87, 0x00, 0x01, 0x89, 0, 0, 0, 0]);
        let good = frame(&[0x00]);
        let stream: Vec<u8> = [&lost[..lost.len() - 10], &good[..], &[0u8; 10][..]].concat();
        let mut deframer = Deframer::new();
        let (frames, errors) = collect(&mut deframer, &stream);
        assert_eq!(frames, vec![good]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].stream_offset, 0);
    }

    #[test]
    fn checksum_error_reports_expected_received_and_stream_offset() {
        let mut bad = frame(&[0x00]);
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        let stream: Vec<u8> = [&[0xAA, 0xBB][..], &bad[..]].concat();
        let mut deframer = Deframer::new();
        let (frames, errors) = collect(&mut deframer, &stream);
        assert!(frames.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].stream_offset, 2);
        assert!(matches!(
            errors[0].error,
            FrameError::Checksum {
                expected: 0x0129,
                received: 0x0128,
                ..
            }
        ));
        assert_eq!(deframer.stats().checksum_errors, 1);
        assert_eq!(deframer.stats().bytes_dropped, stream.len() as u64);
    }

    #[test]
    fn pull_api_yields_the_same_frames_as_feed() {
        let a = frame(&[0x00]);
        let stream: Vec<u8> = [a.clone(), vec![0x13], a.clone()].concat();
        let mut deframer = Deframer::new();
        let mut seen = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let taken = deframer.push(&rest[..rest.len().min(7)]);
            rest = &rest[taken..];
            while let Some(result) = deframer.next_frame() {
                seen.push(result.unwrap().as_bytes().to_vec());
            }
        }
        assert_eq!(seen, vec![a.clone(), a]);
        assert_eq!(deframer.stats().frames, 2);
        assert_eq!(deframer.stats().bytes_dropped, 1);
    }

    #[test]
    fn oversized_length_is_rejected_without_waiting() {
        let stream = [0x4E, 0x57, 0x7F, 0xFF, 0x00, 0x00];
        let mut deframer = Deframer::new();
        let (_, errors) = collect(&mut deframer, &stream);
        assert!(matches!(
            errors[0].error,
            FrameError::BadLength { declared: 0x7FFF }
        ));
        assert_eq!(deframer.buffered(), 0);
    }

    #[test]
    fn flush_reports_a_truncated_frame_and_recovers_the_frame_inside_it() {
        // Regression found by the property test: "4E 57 00" then a good frame; the first
        // candidate's LENGTH (0x004E) swallows the good frame, and the input ends.
        let good = frame(&[0x00]);
        let stream: Vec<u8> = [&[0x4E, 0x57, 0x00][..], &good[..]].concat();
        let mut deframer = Deframer::new();
        let (frames, errors) = collect(&mut deframer, &stream);
        assert!(frames.is_empty() && errors.is_empty());
        let mut flushed = Vec::new();
        let mut truncated = Vec::new();
        deframer.flush(|event| match event {
            Event::Frame(frame, offset) => flushed.push((frame.as_bytes().to_vec(), offset)),
            Event::Error(error) => truncated.push(error),
        });
        assert_eq!(flushed, vec![(good, 3)]);
        assert_eq!(truncated.len(), 1);
        assert_eq!(truncated[0].stream_offset, 0);
        assert!(matches!(
            truncated[0].error,
            FrameError::Truncated {
                len: 24,
                needed: 80
            }
        ));
        assert_eq!(deframer.stats().truncated_errors, 1);
        assert_eq!(deframer.stats().bytes_dropped, 3);
        assert_eq!(deframer.buffered(), 0);
    }
}
