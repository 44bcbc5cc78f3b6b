//! The on-disk part of a terminal's backlog: append-only segment files of NW frames.
//!
//! ```text
//! backlog_dir/terminal-0003E8/
//!   0000000000000007.nwseg   frames back to back, as sent on the wire (oldest segment)
//!   0000000000000008.nwseg   the tail: appended to
//!   head                     "0000000000000007 5220": where the first unacknowledged frame is
//! ```
//!
//! Frames are self-delimiting (LENGTH) and checksummed, so a segment needs no other format:
//! on start every segment is read back frame by frame, and a torn last write (a power cut
//! during an append) ends its segment there and is cut off. A segment is deleted once every
//! frame in it is acknowledged; the `head` file remembers how far into the first segment the
//! acknowledgements went. It is written (temporary file and rename) at checkpoints, not at
//! every acknowledgement: after a crash, frames acknowledged since the last checkpoint are
//! sent again, which the platform stores once ((terminal, record) is unique there).
//!
//! Durability: [`DiskStore::sync`] fsyncs the tail segment; the backlog calls it after every
//! batch of appends, so a reading that went to disk survives a power cut. A new segment's
//! directory entry is fsynced when the segment is created.
//!
//! Bounds: at most `limit` bytes of segments; when an append would pass it, the oldest
//! segment is deleted (its frames are lost, and the caller is told how many). A failed append
//! (disk full) is cut back off the file, so the segment stays well-formed.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bmslink_proto::Frame;

/// Largest segment file, bytes (about 3,600 frames of 16 cells).
pub const SEGMENT_BYTES: u64 = 1 << 20;

/// Name of the file that remembers the first unacknowledged frame.
const HEAD_FILE: &str = "head";

/// Extension of segment files.
const SEGMENT_EXTENSION: &str = "nwseg";

/// Where one frame is.
#[derive(Clone, Copy, Debug)]
struct FrameRef {
    offset: u32,
    len: u16,
    sequence: u32,
}

/// One segment file and the unacknowledged frames in it.
#[derive(Debug)]
struct Segment {
    id: u64,
    file_len: u64,
    frames: VecDeque<FrameRef>,
}

/// What an append did besides appending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// Frames deleted from the front to stay within the limit.
    pub dropped: usize,
}

/// A terminal's segment files.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    limit: u64,
    segments: VecDeque<Segment>,
    /// The tail segment, open for appending (`None` until the next append).
    tail: Option<File>,
    /// The first segment, open for reading.
    reader: Option<(u64, File)>,
    /// Id of the next segment: ids only grow, so a stale head file never names a new one.
    next_id: u64,
    bytes: u64,
    frames: usize,
    head_dirty: bool,
    unsynced: bool,
}

impl DiskStore {
    /// Opens (creating it if needed) the store in `dir`, at most `limit` bytes (at least two
    /// segments), and reads back what an earlier run left. Returns the store and the bytes
    /// of torn writes cut off.
    pub fn open(dir: &Path, limit: u64) -> io::Result<(DiskStore, u64)> {
        fs::create_dir_all(dir)?;
        let head = read_head(dir);
        let mut store = DiskStore {
            dir: dir.to_path_buf(),
            limit: limit.max(2 * SEGMENT_BYTES),
            segments: VecDeque::new(),
            tail: None,
            reader: None,
            next_id: head.map_or(0, |(id, _)| id + 1),
            bytes: 0,
            frames: 0,
            head_dirty: false,
            unsynced: false,
        };
        let mut torn = 0;
        for id in segment_ids(dir)? {
            store.next_id = store.next_id.max(id + 1);
            let skip_to = match head {
                Some((head_id, _)) if id < head_id => {
                    fs::remove_file(store.segment_path(id))?;
                    continue;
                }
                Some((head_id, offset)) if id == head_id => offset,
                _ => 0,
            };
            let (segment, cut) = store.load_segment(id, skip_to)?;
            torn += cut;
            store.bytes += segment.file_len;
            store.frames += segment.frames.len();
            store.segments.push_back(segment);
        }
        store.drop_empty_front()?;
        Ok((store, torn))
    }

    /// Unacknowledged frames on disk.
    pub fn len(&self) -> usize {
        self.frames
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Bytes of segment files.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The record sequence of frame `index` (0: the oldest).
    pub fn sequence(&self, index: usize) -> Option<u32> {
        self.locate(index).map(|(_, frame)| frame.sequence)
    }

    /// The record sequence of the newest frame.
    pub fn last_sequence(&self) -> Option<u32> {
        self.segments
            .back()
            .and_then(|s| s.frames.back())
            .map(|f| f.sequence)
    }

    /// Reads frame `index` (0: the oldest), checked again.
    pub fn read(&mut self, index: usize) -> io::Result<Vec<u8>> {
        let (id, frame) = self
            .locate(index)
            .ok_or_else(|| io::Error::other(format!("no frame {index} in the backlog")))?;
        let file = self.reader_for(id)?;
        let mut bytes = vec![0u8; usize::from(frame.len)];
        file.read_exact_at(&mut bytes, u64::from(frame.offset))?;
        Frame::new_checked(bytes.as_slice()).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame damaged on disk: {error}"),
            )
        })?;
        Ok(bytes)
    }

    /// Appends one frame with record `sequence`, deleting the oldest segments if the limit
    /// requires. Call [`DiskStore::sync`] after a batch.
    pub fn append(&mut self, sequence: u32, frame: &[u8]) -> io::Result<Appended> {
        let len = u16::try_from(frame.len())
            .map_err(|_| io::Error::other("a frame longer than 65535 bytes"))?;
        let mut appended = Appended::default();
        while self.bytes + u64::from(len) > self.limit && self.segments.len() > 1 {
            appended.dropped += self.delete_front()?;
        }
        let needs_new = self
            .segments
            .back()
            .is_none_or(|s| s.file_len + u64::from(len) > SEGMENT_BYTES)
            || self.tail.is_none();
        if needs_new {
            self.start_segment()?;
        }
        self.write_tail(sequence, frame, len)?;
        Ok(appended)
    }

    /// Makes every append so far durable (fsync of the tail segment).
    pub fn sync(&mut self) -> io::Result<()> {
        if let (true, Some(tail)) = (self.unsynced, &self.tail) {
            tail.sync_data()?;
        }
        self.unsynced = false;
        Ok(())
    }

    /// Forgets the oldest frame (acknowledged); deletes its segment once it is empty.
    pub fn pop_front(&mut self) -> io::Result<()> {
        let Some(segment) = self.segments.front_mut() else {
            return Ok(());
        };
        if segment.frames.pop_front().is_some() {
            self.frames -= 1;
            self.head_dirty = true;
        }
        self.drop_empty_front()
    }

    /// Writes where the acknowledgements got to, if that changed.
    pub fn checkpoint(&mut self) -> io::Result<()> {
        if !self.head_dirty {
            return Ok(());
        }
        let text = match self
            .segments
            .front()
            .and_then(|s| Some((s.id, s.frames.front()?)))
        {
            Some((id, frame)) => format!("{id:016X} {}\n", frame.offset),
            None => String::new(),
        };
        let temporary = self.dir.join(format!("{HEAD_FILE}.tmp"));
        fs::write(&temporary, text)?;
        fs::rename(&temporary, self.dir.join(HEAD_FILE))?;
        self.head_dirty = false;
        Ok(())
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:016X}.{SEGMENT_EXTENSION}"))
    }

    /// The segment and place of frame `index`.
    fn locate(&self, mut index: usize) -> Option<(u64, FrameRef)> {
        for segment in &self.segments {
            if let Some(frame) = segment.frames.get(index) {
                return Some((segment.id, *frame));
            }
            index -= segment.frames.len();
        }
        None
    }

    fn reader_for(&mut self, id: u64) -> io::Result<&File> {
        if self.reader.as_ref().is_none_or(|(open, _)| *open != id) {
            let file = File::open(self.segment_path(id))?;
            self.reader = Some((id, file));
        }
        self.reader
            .as_ref()
            .map(|(_, file)| file)
            .ok_or_else(|| io::Error::other("segment not open"))
    }

    /// Reads a segment's frames from `skip_to` on; cuts off a torn end. Returns the segment
    /// and the bytes cut off.
    fn load_segment(&self, id: u64, skip_to: u64) -> io::Result<(Segment, u64)> {
        let path = self.segment_path(id);
        let bytes = fs::read(&path)?;
        let (frames, good_len) = scan_frames(&bytes);
        let cut = bytes.len() as u64 - good_len;
        if cut > 0 {
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(good_len)?;
            file.sync_data()?;
        }
        let frames = frames
            .into_iter()
            .filter(|f| u64::from(f.offset) >= skip_to)
            .collect();
        let segment = Segment {
            id,
            file_len: good_len,
            frames,
        };
        Ok((segment, cut))
    }

    fn start_segment(&mut self) -> io::Result<()> {
        self.sync()?;
        let id = self.next_id;
        self.next_id += 1;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.segment_path(id))?;
        File::open(&self.dir)?.sync_all()?;
        self.tail = Some(file);
        self.segments.push_back(Segment {
            id,
            file_len: 0,
            frames: VecDeque::new(),
        });
        Ok(())
    }

    fn write_tail(&mut self, sequence: u32, frame: &[u8], len: u16) -> io::Result<()> {
        let (Some(file), Some(segment)) = (self.tail.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("no tail segment"));
        };
        if let Err(error) = file.write_all(frame) {
            // A partial frame would end the segment for the reader: cut it off.
            let _ = file.set_len(segment.file_len);
            return Err(error);
        }
        let offset = u32::try_from(segment.file_len)
            .map_err(|_| io::Error::other("segment beyond 4 GiB"))?;
        segment.frames.push_back(FrameRef {
            offset,
            len,
            sequence,
        });
        segment.file_len += u64::from(len);
        self.bytes += u64::from(len);
        self.frames += 1;
        self.unsynced = true;
        Ok(())
    }

    /// Deletes the oldest segment; returns its unacknowledged frames.
    fn delete_front(&mut self) -> io::Result<usize> {
        let Some(segment) = self.segments.pop_front() else {
            return Ok(0);
        };
        if self.segments.is_empty() {
            self.tail = None;
        }
        if self
            .reader
            .as_ref()
            .is_some_and(|(id, _)| *id == segment.id)
        {
            self.reader = None;
        }
        self.bytes -= segment.file_len;
        self.frames -= segment.frames.len();
        self.head_dirty = true;
        fs::remove_file(self.segment_path(segment.id))?;
        Ok(segment.frames.len())
    }

    /// Deletes the leading segments whose frames are all acknowledged.
    fn drop_empty_front(&mut self) -> io::Result<()> {
        while self.segments.front().is_some_and(|s| s.frames.is_empty()) {
            self.delete_front()?;
        }
        Ok(())
    }
}

/// The well-formed frames at the start of a segment's bytes, and the length they cover.
fn scan_frames(bytes: &[u8]) -> (Vec<FrameRef>, u64) {
    let mut frames = Vec::new();
    let mut at = 0usize;
    while let Some(rest) = bytes.get(at..).filter(|rest| rest.len() >= 4) {
        let announced = usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 2;
        let Some(candidate) = rest.get(..announced) else {
            break;
        };
        let Ok(frame) = Frame::new_checked(candidate) else {
            break;
        };
        let (Ok(offset), Ok(len)) = (u32::try_from(at), u16::try_from(announced)) else {
            break;
        };
        let sequence = frame.record_number().sequence();
        frames.push(FrameRef {
            offset,
            len,
            sequence,
        });
        at += announced;
    }
    (frames, at as u64)
}

/// The segment ids in `dir`, oldest first.
fn segment_ids(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SEGMENT_EXTENSION) {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if let Ok(id) = u64::from_str_radix(stem, 16) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The head file: (segment id, offset of its first unacknowledged frame), if readable.
fn read_head(dir: &Path) -> Option<(u64, u64)> {
    let text = fs::read_to_string(dir.join(HEAD_FILE)).ok()?;
    let (id, offset) = text.trim().split_once(' ')?;
    Some((u64::from_str_radix(id, 16).ok()?, offset.parse().ok()?))
}
