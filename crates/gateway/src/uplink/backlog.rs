//! A terminal's backlog: the upload frames not yet acknowledged by the platform, oldest first,
//! and which of them are in flight on the connection.
//!
//! Two parts, in this order: the frames on disk (with a backlog directory; see `uplink/disk.rs`)
//! and the frames in memory. While the platform acknowledges, a new frame stays in memory, is
//! sent, and is forgotten at its acknowledgement: no disk write. When the connection is down
//! (or an acknowledgement is overdue, which ends the connection) every frame in memory goes to
//! disk, and so does each new one, with an fsync per batch; on reconnection the disk part is
//! sent first, in order. Without a directory everything stays in memory.
//!
//! Bounds, each with a warning when reached: at most `memory_frames` frames in memory (the
//! oldest are dropped; with a directory, memory holds only what the disk refused), and at most
//! `disk_bytes` of segment files (the oldest segment is deleted). A disk that fails (full,
//! read-only) is logged as an error and the frame stays in memory: the gateway never stops
//! for its backlog.
//!
//! Frames are sent in order with up to a window of them in flight; [`Backlog::acknowledge`]
//! takes the acknowledgement of the oldest only, so the platform sees every frame once
//! acknowledged before the next is forgotten, and a frame whose acknowledgement was lost is
//! sent again with its unchanged record number (stored once by the platform).

use std::collections::VecDeque;
use std::io;
use std::path::Path;

use tracing::{error, warn};

use super::disk::DiskStore;

/// How large a backlog may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BacklogLimits {
    /// Frames kept in memory (about 300 bytes each with 16 cells).
    pub memory_frames: usize,
    /// Bytes of segment files on disk, per terminal.
    pub disk_bytes: u64,
}

impl Default for BacklogLimits {
    /// 10,000 frames in memory (about a day at the default 10 s interval, 3 MB), 32 MiB on
    /// disk (about 110,000 frames: two weeks at 10 s).
    fn default() -> Self {
        BacklogLimits {
            memory_frames: 10_000,
            disk_bytes: 32 << 20,
        }
    }
}

/// One frame in memory.
#[derive(Debug)]
struct Entry {
    sequence: u32,
    frame: Vec<u8>,
}

/// A terminal's unacknowledged frames.
#[derive(Debug)]
pub struct Backlog {
    name: String,
    limits: BacklogLimits,
    disk: Option<DiskStore>,
    memory: VecDeque<Entry>,
    /// Frames from the front sent on the current connection.
    in_flight: usize,
    online: bool,
    dropped: u64,
    disk_failing: bool,
}

impl Backlog {
    /// A backlog in memory only; `name` says whose in logs.
    pub fn in_memory(name: String, limits: BacklogLimits) -> Backlog {
        Backlog {
            name,
            limits,
            disk: None,
            memory: VecDeque::new(),
            in_flight: 0,
            online: false,
            dropped: 0,
            disk_failing: false,
        }
    }

    /// A backlog on disk in `dir`, with what an earlier run left there.
    pub fn on_disk(name: String, dir: &Path, limits: BacklogLimits) -> io::Result<Backlog> {
        let (disk, torn) = DiskStore::open(dir, limits.disk_bytes)?;
        if torn > 0 {
            warn!(
                "{name}: {torn} bytes of a write interrupted by a crash or power cut were cut \
                 off the backlog in {}",
                dir.display()
            );
        }
        let mut backlog = Backlog::in_memory(name, limits);
        backlog.disk = Some(disk);
        Ok(backlog)
    }

    /// Unacknowledged frames.
    pub fn len(&self) -> usize {
        self.disk_len() + self.memory.len()
    }

    /// Whether every frame was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frames sent and waiting for their acknowledgement.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Bytes of segment files on disk (0 without a directory).
    pub fn disk_bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, DiskStore::bytes)
    }

    /// Frames dropped so far because a bound was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The record sequence of the newest frame, if any.
    pub fn last_sequence(&self) -> Option<u32> {
        let memory = self.memory.back().map(|e| e.sequence);
        memory.or_else(|| self.disk.as_ref()?.last_sequence())
    }

    /// Whether the platform acknowledges now: on `false`, what is in memory goes to disk and
    /// the frames in flight will be sent again.
    pub fn set_online(&mut self, online: bool) {
        self.online = online;
        self.in_flight = 0;
        if !online {
            self.flush();
        }
    }

    /// Adds the newest frame.
    pub fn append(&mut self, sequence: u32, frame: Vec<u8>) {
        self.memory.push_back(Entry { sequence, frame });
        if !self.online || self.memory.len() > self.limits.memory_frames {
            self.flush();
        }
        while self.memory.len() > self.limits.memory_frames {
            self.drop_oldest_in_memory();
        }
    }

    /// The next frame to send, if fewer than `window` are in flight; it counts as in flight.
    pub fn next_to_send(&mut self, window: usize) -> Option<Vec<u8>> {
        while self.in_flight < window.min(self.len()) {
            match self.frame(self.in_flight) {
                Ok(frame) => {
                    self.in_flight += 1;
                    return Some(frame);
                }
                Err(error) if self.in_flight == 0 => {
                    error!(
                        "{}: dropped an unreadable frame of the backlog: {error}",
                        self.name
                    );
                    self.pop_front();
                }
                Err(error) => {
                    error!("{}: cannot read the backlog: {error}", self.name);
                    return None;
                }
            }
        }
        None
    }

    /// The platform acknowledged record `sequence`: if it is the oldest frame in flight, that
    /// frame is forgotten. Returns whether it was.
    pub fn acknowledge(&mut self, sequence: u32) -> bool {
        if self.in_flight == 0 || self.front_sequence() != Some(sequence) {
            return false;
        }
        self.pop_front();
        true
    }

    /// Records on disk how far the acknowledgements got (the `head` file of `uplink/disk.rs`).
    pub fn checkpoint(&mut self) {
        if let Some(disk) = &mut self.disk {
            if let Err(error) = disk.checkpoint() {
                warn!(
                    "{}: cannot record the backlog's progress: {error}",
                    self.name
                );
            }
        }
    }

    fn disk_len(&self) -> usize {
        self.disk.as_ref().map_or(0, DiskStore::len)
    }

    /// The record sequence of the oldest frame.
    pub fn front_sequence(&self) -> Option<u32> {
        match &self.disk {
            Some(disk) if !disk.is_empty() => disk.sequence(0),
            _ => self.memory.front().map(|e| e.sequence),
        }
    }

    fn frame(&mut self, index: usize) -> io::Result<Vec<u8>> {
        let on_disk = self.disk_len();
        match &mut self.disk {
            Some(disk) if index < on_disk => disk.read(index),
            _ => self
                .memory
                .get(index - on_disk)
                .map(|e| e.frame.clone())
                .ok_or_else(|| io::Error::other(format!("no frame {index} in the backlog"))),
        }
    }

    fn pop_front(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(disk) = self.disk.as_mut().filter(|d| !d.is_empty()) {
            if let Err(error) = disk.pop_front() {
                warn!(
                    "{}: cannot delete an acknowledged segment: {error}",
                    self.name
                );
            }
            return;
        }
        self.memory.pop_front();
    }

    /// Moves every frame in memory to disk (one fsync); what the disk refuses stays.
    fn flush(&mut self) {
        let Some(disk) = &mut self.disk else {
            return;
        };
        let mut dropped = 0;
        let mut failure = None;
        while let Some(entry) = self.memory.front() {
            match disk.append(entry.sequence, &entry.frame) {
                Ok(appended) => {
                    dropped += appended.dropped;
                    self.memory.pop_front();
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let failure = failure.or_else(|| disk.sync().err());
        self.note_disk_drops(dropped);
        self.note_disk_result(failure);
    }

    fn note_disk_drops(&mut self, dropped: usize) {
        if dropped == 0 {
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(dropped);
        self.dropped += dropped as u64;
        warn!(
            "{}: the backlog on disk is full ({} MiB): dropped the oldest {dropped} readings \
             ({} dropped in all)",
            self.name,
            self.limits.disk_bytes >> 20,
            self.dropped
        );
    }

    fn note_disk_result(&mut self, failure: Option<io::Error>) {
        match failure {
            Some(error) if !self.disk_failing => {
                error!(
                    "{}: cannot write the backlog to disk ({error}); readings stay in memory \
                     (at most {}) until the disk takes them",
                    self.name, self.limits.memory_frames
                );
                self.disk_failing = true;
            }
            Some(_) => {}
            None if self.disk_failing => {
                warn!("{}: the backlog is written to disk again", self.name);
                self.disk_failing = false;
            }
            None => {}
        }
    }

    fn drop_oldest_in_memory(&mut self) {
        let in_flight_in_memory = self.in_flight.saturating_sub(self.disk_len());
        if in_flight_in_memory > 0 {
            self.in_flight -= 1;
        }
        let Some(entry) = self.memory.pop_front() else {
            return;
        };
        self.dropped += 1;
        if self.dropped == 1 || self.dropped % 100 == 0 {
            warn!(
                "{}: the backlog in memory is full ({} readings): dropped the oldest (record \
                 {}); {} dropped in all",
                self.name, self.limits.memory_frames, entry.sequence, self.dropped
            );
        }
    }
}

impl Drop for Backlog {
    /// What is in memory goes to disk (with a directory), so a stopping gateway keeps it.
    fn drop(&mut self) {
        self.flush();
        self.checkpoint();
    }
}
