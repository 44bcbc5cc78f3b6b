//! The platform uplink: the gateway uploads its racks to a monitoring platform as a data box,
//! each rack its own terminal, and answers the platform's reads and writes.
//!
//! ```text
//!  site snapshot (watch) ──► terminal task (rack 1) ──TCP──► platform
//!                        └─► terminal task (rack 2) ──TCP──►    │
//!        RackHandle::write ◄── writes from the platform ◄───────┘
//! ```
//!
//! One owner task per rack ([`run_uplink`] starts them), each with its own TCP connection: real
//! data boxes hold one connection per terminal, and a platform that identifies a connection
//! by its terminal id (and treats a second connection claiming an online terminal as a
//! possible impersonation) sees the gateway's racks as the data boxes they stand for.
//!
//! Every `interval`, a task takes its rack's latest reading from the site snapshot; if it is
//! new since the last upload, it becomes an active upload (transport 02, source 02 data box,
//! the rack's terminal id, the next record number) and joins the terminal's backlog
//! ([`backlog`]). Stale data is not uploaded twice: a rack that stopped answering produces no
//! upload, and the platform notices it by the missing uploads.
//!
//! Sending: frames leave the backlog oldest first, up to [`UplinkOptions::window`] in flight;
//! the platform's response frame (transport 01) with the oldest frame's record number is its
//! acknowledgement, and only then is the frame forgotten. An acknowledgement overdue by
//! [`UplinkOptions::ack_timeout`], a failed write or a closed connection ends the connection:
//! the frames in flight go back to the backlog (to disk, with a backlog directory) and are sent
//! again, unchanged, after reconnection, so the platform, which stores a (terminal, record)
//! pair once, never stores a frame twice. Reconnection waits with exponential backoff and full
//! jitter (1 s doubling to 60 s), so that the gateways of a fleet do not return together
//! after a platform restart.
//!
//! Record numbers: the 24-bit sequence increases by one per upload of a terminal. At start it
//! continues above the newest frame left in the backlog and above the wall clock's seconds
//! (mod 2^24): a terminal uploads at most once a second, so a gateway that restarts without a
//! backlog directory still continues above every number it used before, as long as its clock
//! is right (a gateway without a real-time clock should keep a backlog directory). The
//! sequence wraps to 1 after 16,777,215, as 24 bits must.
//!
//! The platform's requests on a connection are answered by [`requests`]: read all and read
//! from the rack's latest reading, writes (after a pair code) forwarded to the rack with
//! [`RackHandle::write`] and answered after the read-back.

pub mod backlog;
mod disk;
pub mod frame;
pub mod requests;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bmslink_proto::frame::Header;
use bmslink_proto::message::PASSWORD_LEN;
use bmslink_proto::{Deframer, Event, Frame, Identifier, RecordNumber, TerminalId, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, error, info, warn};

use crate::config::UplinkConfig;
use crate::rack::{PackSnapshot, RackHandle, WriteError, WriteOutcome};
use crate::site::SiteSnapshot;
pub use backlog::{Backlog, BacklogLimits};
use requests::{Action, Requests};

/// A rack as the uplink needs it.
#[derive(Clone, Debug)]
pub struct UplinkRack {
    /// Its write handle (and index and name).
    pub handle: RackHandle,
    /// Its 0xB2 password: the platform's pair code must carry it (`None`: any pair code).
    pub password: Option<[u8; PASSWORD_LEN]>,
}

/// Tuning of the uplink (the defaults suit a real platform; tests shorten them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UplinkOptions {
    /// How large each terminal's backlog may grow.
    pub limits: BacklogLimits,
    /// Frames in flight at once per connection.
    pub window: usize,
    /// How long the platform may take to acknowledge (or to take a write).
    pub ack_timeout: Duration,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// Ceiling of the first reconnection wait (doubling from there).
    pub reconnect_min: Duration,
    /// Ceiling of every reconnection wait; a connection that lasted this long resets it. The
    /// gateway takes it from the configuration (`UplinkConfig::reconnect_max`).
    pub reconnect_max: Duration,
}

impl Default for UplinkOptions {
    /// [`BacklogLimits::default`], 8 frames in flight, 10 s to acknowledge, 10 s to connect,
    /// reconnection after up to 1 s doubling to 60 s.
    fn default() -> Self {
        UplinkOptions {
            limits: BacklogLimits::default(),
            window: 8,
            ack_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
        }
    }
}

/// Runs the uplink of every rack until the task is dropped (each rack's backlog is written
/// to disk then, with a backlog directory).
pub async fn run_uplink(
    config: UplinkConfig,
    racks: Vec<UplinkRack>,
    snapshot: watch::Receiver<Arc<SiteSnapshot>>,
    options: UplinkOptions,
) {
    let mut tasks = JoinSet::new();
    for (rack, terminal) in racks.into_iter().zip(config.terminals.iter().copied()) {
        let task = TerminalUplink::new(&config, rack, terminal, snapshot.clone(), options);
        tasks.spawn(task.run());
    }
    info!(
        "uplink to {}: {} racks, an upload every {} s, reconnection waits of up to {} s",
        config.server,
        tasks.len(),
        config.interval.as_secs_f64(),
        options.reconnect_max.as_secs_f64()
    );
    while tasks.join_next().await.is_some() {}
}

/// Why a connection ended.
#[derive(Debug)]
enum SessionEnd {
    Closed,
    Read(io::Error),
    Write(io::Error),
    AckOverdue(u32),
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionEnd::Closed => f.write_str("the platform closed the connection"),
            SessionEnd::Read(error) => write!(f, "read failed: {error}"),
            SessionEnd::Write(error) => write!(f, "write failed: {error}"),
            SessionEnd::AckOverdue(sequence) => {
                write!(f, "no acknowledgement of record {sequence} in time")
            }
        }
    }
}

/// The result of a write the rack carried out for the platform.
type WriteDone = (Header, Identifier, Result<WriteOutcome, WriteError>);

/// What one connection holds besides its socket.
struct Connection {
    /// The platform's requests.
    requests: Requests,
    /// Where a write's result goes.
    done: mpsc::Sender<WriteDone>,
    /// Whether a write is with the rack (one at a time).
    write_running: bool,
    /// When the oldest frame in flight must be acknowledged.
    ack_due: Option<Instant>,
}

/// One rack's uplink: its readings, backlog and connection.
struct TerminalUplink {
    label: String,
    rack: UplinkRack,
    terminal: TerminalId,
    server: String,
    interval: Duration,
    options: UplinkOptions,
    snapshot: watch::Receiver<Arc<SiteSnapshot>>,
    backlog: Backlog,
    sequence: u32,
    last_reading: Option<Arc<PackSnapshot>>,
    jitter: u64,
}

impl TerminalUplink {
    fn new(
        config: &UplinkConfig,
        rack: UplinkRack,
        terminal: TerminalId,
        snapshot: watch::Receiver<Arc<SiteSnapshot>>,
        options: UplinkOptions,
    ) -> TerminalUplink {
        let label = format!(
            "uplink {} (terminal {:06X})",
            rack.handle.name,
            terminal.number()
        );
        let backlog = open_backlog(&label, config.backlog_dir.as_deref(), terminal, options);
        let sequence = initial_sequence(backlog.last_sequence(), unix_seconds());
        TerminalUplink {
            label,
            rack,
            terminal,
            server: config.server.clone(),
            interval: config.interval,
            options,
            snapshot,
            backlog,
            sequence,
            last_reading: None,
            jitter: unix_nanos() ^ u64::from(terminal.number()).rotate_left(32),
        }
    }

    /// Connects, uploads and answers; reconnects after failures; never returns.
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Connection attempts since the last long connection (0: none yet, connect at once).
        let mut failures = 0u32;
        loop {
            let wait = match failures {
                0 => Duration::ZERO,
                n => self.backoff(n - 1),
            };
            let connected = self.connect_while_uploading(&mut ticker, wait).await;
            match connected {
                Ok(stream) => {
                    let started = Instant::now();
                    let end = self.session(stream, &mut ticker).await;
                    self.backlog.set_online(false);
                    warn!(
                        "{}: connection to {} ended: {end}; {} in the backlog",
                        self.label,
                        self.server,
                        readings(self.backlog.len())
                    );
                    // Even after a long connection the first wait is jittered: gateways that
                    // lost their platform together must not return together.
                    let long = started.elapsed() >= self.options.reconnect_max;
                    failures = if long { 1 } else { failures.saturating_add(1) };
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    self.log_failure(failures, &error);
                }
            }
        }
    }

    /// Waits `wait`, then connects; readings keep joining the backlog meanwhile.
    async fn connect_while_uploading(
        &mut self,
        ticker: &mut tokio::time::Interval,
        wait: Duration,
    ) -> io::Result<TcpStream> {
        let server = self.server.clone();
        let timeout = self.options.connect_timeout;
        let connect = async move {
            tokio::time::sleep(wait).await;
            match tokio::time::timeout(timeout, TcpStream::connect(&server)).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {} s", timeout.as_secs()),
                )),
            }
        };
        tokio::pin!(connect);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.take_reading(),
                result = &mut connect => return result,
            }
        }
    }

    fn log_failure(&self, failures: u32, error: &io::Error) {
        if failures == 1 || failures % 10 == 0 {
            warn!(
                "{}: cannot reach the platform at {} ({error}; attempt {failures}); {} in \
                 the backlog",
                self.label,
                self.server,
                readings(self.backlog.len())
            );
        } else {
            debug!("{}: cannot reach {}: {error}", self.label, self.server);
        }
    }

    /// Full jitter: uniform in [0, min(max, min x 2^attempt)).
    fn backoff(&mut self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        let ceiling = self
            .options
            .reconnect_min
            .saturating_mul(factor)
            .min(self.options.reconnect_max);
        self.jitter = splitmix64(self.jitter);
        let fraction = (self.jitter >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }

    /// The rack's latest reading becomes an upload, if it is new.
    fn take_reading(&mut self) {
        self.backlog.checkpoint();
        let Some(reading) = self.latest() else {
            return;
        };
        if self
            .last_reading
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, &reading))
        {
            return;
        }
        self.sequence = next_sequence(self.sequence);
        let header = frame::upload_header(self.terminal, self.sequence);
        match frame::reading_frame(header, &reading, None) {
            Ok(bytes) => self.backlog.append(self.sequence, bytes),
            Err(error) => error!("{}: cannot build an upload: {error}", self.label),
        }
        self.last_reading = Some(reading);
    }

    fn latest(&self) -> Option<Arc<PackSnapshot>> {
        let site = self.snapshot.borrow();
        site.racks.get(self.rack.handle.rack)?.reading.clone()
    }

    /// One connection: uploads from the backlog, acknowledgements and requests, until it
    /// fails.
    async fn session(
        &mut self,
        stream: TcpStream,
        ticker: &mut tokio::time::Interval,
    ) -> SessionEnd {
        stream.set_nodelay(true).ok();
        info!(
            "{}: connected to {}; {} in the backlog",
            self.label,
            self.server,
            readings(self.backlog.len())
        );
        self.backlog.set_online(true);
        let (mut reader, mut writer) = stream.into_split();
        let (done, mut done_rx) = mpsc::channel::<WriteDone>(1);
        let mut connection = Connection {
            requests: Requests::new(self.label.clone(), self.terminal, self.rack.password),
            done,
            write_running: false,
            ack_due: None,
        };
        let mut deframer = Deframer::new();
        let mut buffer = [0u8; 1024];
        loop {
            if let Err(end) = self.fill_window(&mut writer, &mut connection.ack_due).await {
                return end;
            }
            let mut replies = Vec::new();
            tokio::select! {
                // Every interval: a fresh reading joins the backlog (sent above).
                _ = ticker.tick() => self.take_reading(),
                // The oldest frame in flight was not acknowledged in time.
                _ = sleep_until(connection.ack_due) => {
                    return SessionEnd::AckOverdue(self.sequence_in_flight());
                }
                // Acknowledgements and the platform's requests.
                read = reader.read(&mut buffer) => {
                    let n = match read {
                        Ok(0) => return SessionEnd::Closed,
                        Ok(n) => n,
                        Err(error) => return SessionEnd::Read(error),
                    };
                    let latest = self.latest();
                    deframer.feed(&buffer[..n], |event| match event {
                        Event::Frame(frame, _) => replies.extend(
                            self.incoming(&mut connection, frame, latest.as_deref()),
                        ),
                        Event::Error(error) => warn!("{}: from the platform: {error}", self.label),
                    });
                }
                // A write the rack carried out: answered after its read-back.
                Some((reply, id, result)) = done_rx.recv(), if connection.write_running => {
                    connection.write_running = false;
                    replies.extend(connection.requests.write_reply(reply, id, &result));
                }
            }
            for reply in replies {
                if let Err(error) = self.write_frame(&mut writer, &reply).await {
                    return SessionEnd::Write(error);
                }
            }
        }
    }

    /// A frame from the platform: an acknowledgement, or a request (answered at once, or by a
    /// write the rack carries out first). Returns the frame to send now, if any.
    fn incoming(
        &mut self,
        connection: &mut Connection,
        frame: Frame<&[u8]>,
        latest: Option<&PackSnapshot>,
    ) -> Option<Vec<u8>> {
        if self.take_acknowledgement(frame, &mut connection.ack_due) {
            return None;
        }
        match connection.requests.handle(Instant::now(), frame, latest) {
            Action::Reply(reply) => return Some(reply),
            Action::Write { reply, value } if !connection.write_running => {
                connection.write_running = true;
                let done = connection.done.clone();
                spawn_write(self.rack.handle.clone(), reply, value, done);
            }
            Action::Write { value, .. } => warn!(
                "{}: a write of {} while another runs: ignored",
                self.label,
                value.id().name()
            ),
            Action::Nothing => {}
        }
        None
    }

    /// Sends backlog frames until the window is full; starts the acknowledgement clock.
    async fn fill_window(
        &mut self,
        writer: &mut OwnedWriteHalf,
        ack_due: &mut Option<Instant>,
    ) -> Result<(), SessionEnd> {
        while let Some(frame) = self.backlog.next_to_send(self.options.window) {
            if ack_due.is_none() {
                *ack_due = Some(Instant::now() + self.options.ack_timeout);
            }
            self.write_frame(writer, &frame)
                .await
                .map_err(SessionEnd::Write)?;
        }
        Ok(())
    }

    /// An acknowledgement (a response frame): forgets the oldest frame if it names it.
    /// Returns whether `frame` was a response.
    fn take_acknowledgement(&mut self, frame: Frame<&[u8]>, ack_due: &mut Option<Instant>) -> bool {
        if frame.transport_byte() != u8::from(Transport::Response) {
            return false;
        }
        let sequence = frame.record_number().sequence();
        if self.backlog.acknowledge(sequence) {
            *ack_due =
                (self.backlog.in_flight() > 0).then(|| Instant::now() + self.options.ack_timeout);
        } else {
            debug!(
                "{}: a response for record {sequence}, not the oldest in flight",
                self.label
            );
        }
        true
    }

    fn sequence_in_flight(&self) -> u32 {
        self.backlog.front_sequence().unwrap_or(0)
    }

    async fn write_frame(&self, writer: &mut OwnedWriteHalf, frame: &[u8]) -> io::Result<()> {
        match tokio::time::timeout(self.options.ack_timeout, writer.write_all(frame)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the platform does not take what is sent",
            )),
        }
    }
}

/// Has the rack write `value`; the result goes to `done`.
fn spawn_write(
    rack: RackHandle,
    reply: Header,
    value: bmslink_proto::WriteValue,
    done: mpsc::Sender<WriteDone>,
) {
    tokio::spawn(async move {
        let result = rack.write(value).await;
        let _ = done.send((reply, value.id(), result)).await;
    });
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The terminal's backlog: on disk under `dir` if given (in memory if that fails, with the
/// error logged), else in memory.
fn open_backlog(
    label: &str,
    dir: Option<&Path>,
    terminal: TerminalId,
    options: UplinkOptions,
) -> Backlog {
    let Some(dir) = dir else {
        return Backlog::in_memory(label.to_string(), options.limits);
    };
    let dir = dir.join(format!("terminal-{:06X}", terminal.number()));
    match Backlog::on_disk(label.to_string(), &dir, options.limits) {
        Ok(backlog) => {
            if !backlog.is_empty() {
                info!(
                    "{label}: {} left in the backlog in {} go first",
                    readings(backlog.len()),
                    dir.display()
                );
            }
            backlog
        }
        Err(error) => {
            error!(
                "{label}: cannot use the backlog directory {} ({error}); the backlog stays in \
                 memory",
                dir.display()
            );
            Backlog::in_memory(label.to_string(), options.limits)
        }
    }
}

/// "1 reading", "13 readings".
fn readings(count: usize) -> String {
    if count == 1 {
        "1 reading".to_string()
    } else {
        format!("{count} readings")
    }
}

/// The sequence to continue from: above the newest frame in the backlog and above the clock's
/// seconds (mod 2^24).
pub fn initial_sequence(newest_in_backlog: Option<u32>, unix_seconds: u64) -> u32 {
    let clock = (unix_seconds % (u64::from(RecordNumber::MAX_SEQUENCE) + 1)) as u32;
    clock.max(newest_in_backlog.unwrap_or(0))
}

/// The sequence after `sequence` (1 after the largest).
pub fn next_sequence(sequence: u32) -> u32 {
    if sequence >= RecordNumber::MAX_SEQUENCE {
        1
    } else {
        sequence + 1
    }
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into())
}

/// One step of splitmix64: a well-mixed pseudo-random number from `state`.
fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
