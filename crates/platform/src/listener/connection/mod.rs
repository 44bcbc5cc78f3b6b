//! One owner task per data-box connection: it reads the socket through a deframer, binds the
//! terminals the frames name, hands uploads to the store writer and acknowledges them once
//! committed, runs remote commands through each terminal's sans-I/O [`Session`], and writes
//! both the acknowledgements and the session's requests: one task owns the socket, so they
//! never interleave inside a frame.
//!
//! The loop, one `select!` (flow control in the branch comments):
//!
//! ```text
//! loop:
//!     finish commands whose results are in, start queued ones, write due requests
//!     select (first ready, in this order):
//!         shutdown            -> acknowledge what is committed, close
//!         close request       -> a newer connection took a terminal: close
//!         wake                -> look for queued commands
//!         oldest upload committed -> write its acknowledgement
//!         socket readable (only while fewer than N uploads await their commit)
//!                             -> deframe; per frame: bind, upload / session reply
//!         timer               -> idle timeout, session timeouts, command deadlines
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bmslink_core::session::{Event, Session, SessionConfig};
use bmslink_core::snapshot::PackSnapshot;
use bmslink_proto::frame::FrameBuilder;
use bmslink_proto::{
    DeframeError, Deframer, Event as DeframerEvent, Frame, FrameError, Header, Source, TerminalId,
    Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::command::RunningCommand;
use super::registry::ConnectionHandle;
use super::stats::{ListenerStats, OpenConnection, TerminalStats};
use super::writer::Upload;
use super::{stopped, Context, RegistrationPolicy};
use crate::model::{
    CommandState, ConnectionOwner, Registration, TelemetryRow, Terminal, Timestamp,
};

mod commands;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 2048;
/// Errors of one connection logged as warnings; further ones go to debug (the close line has
/// the totals), so a noisy box cannot flood the log.
const LOGGED_ERRORS: u32 = 10;

/// The response frame that acknowledges an active upload (`nw.md`: "the receiver answers with
/// transport type 01"): the upload's command, terminal id and record number, source PC (the
/// platform is the upper computer), transport 01, and an empty info field; 20 bytes.
pub fn acknowledgement(upload: &Header) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ACK_LEN);
    append_acknowledgement(upload, &mut frame);
    frame
}

/// Length of an [`acknowledgement`].
const ACK_LEN: usize = 20;

/// Appends the [`acknowledgement`] of `upload` to `out` (no allocation of its own).
fn append_acknowledgement(upload: &Header, out: &mut Vec<u8>) {
    let header = Header {
        source: Source::Pc,
        transport: Transport::Response,
        ..*upload
    };
    let mut buffer = [0u8; 32];
    if let Ok(frame) = FrameBuilder::new(&mut buffer, header).and_then(FrameBuilder::finish) {
        out.extend_from_slice(frame);
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Closed {
    ByPeer,
    ReadFailed(String),
    WriteFailed(String),
    Idle(Duration),
    Garbage(usize),
    Oversized(usize),
    Replaced(String),
    Rejected(Terminal),
    Store(String),
    Shutdown,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::ByPeer => f.write_str("the data box closed the connection"),
            Closed::ReadFailed(e) => write!(f, "read error: {e}"),
            Closed::WriteFailed(e) => write!(f, "write error: {e}"),
            Closed::Idle(t) => write!(f, "no frame for {} s", t.as_secs()),
            Closed::Garbage(n) => write!(f, "{n} bytes without a valid frame (garbage)"),
            Closed::Oversized(n) => write!(
                f,
                "a frame of {n} bytes announced, above the maximum frame length"
            ),
            Closed::Replaced(why) => f.write_str(why),
            Closed::Rejected(t) => write!(f, "terminal {t} is rejected by an operator"),
            Closed::Store(e) => write!(f, "the store could not record the terminal: {e}"),
            Closed::Shutdown => f.write_str("the platform is shutting down"),
        }
    }
}

/// Why a connection closes when the store says another connection holds one of its
/// terminals (a box that reconnected, to this process or another, before this connection
/// ended).
fn lost_to(terminal: Terminal, holder: ConnectionOwner) -> String {
    format!("terminal {terminal} is held by a newer connection ({holder})")
}

/// What one read delivered, in stream order.
enum Incoming {
    Frame(Vec<u8>),
    Error(DeframeError),
}

/// An upload handed to the writer, awaiting its commit.
struct PendingAck {
    link: usize,
    header: Header,
    done: oneshot::Receiver<Result<(), String>>,
}

/// One terminal carried by the connection.
struct Link {
    terminal: Terminal,
    registration: Registration,
    /// When the registration was last read from the store.
    checked: Instant,
    /// The terminal id as the box sends it (requests carry it back).
    wire: TerminalId,
    /// The command session, created when the terminal's first command runs (most terminals
    /// never get one; a session holds a frame buffer).
    session: Option<Session>,
    command: Option<RunningCommand>,
    /// The terminal's counters (over all its connections).
    counters: Arc<TerminalStats>,
    /// Whether the log said that its uploads wait for approval.
    pending_logged: bool,
}

/// What one connection saw, for its close line.
#[derive(Debug, Default)]
struct Counts {
    frames: u64,
    uploads: u64,
    acknowledged: u64,
    /// Malformed input of any kind.
    malformed: u64,
    unusable: u64,
}

/// Serves one accepted connection until it ends.
pub(super) async fn serve<S: crate::store::Store>(
    context: Context<S>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let stats = context.stats.clone();
    let _open = OpenConnection::new(&stats);
    if let Err(e) = stream.set_nodelay(true) {
        debug!("connection from {peer}: TCP_NODELAY not set: {e}");
    }
    let id = context.next_connection();
    debug!("connection from {peer} accepted (#{id})");
    let (reader, writer) = stream.into_split();
    let handle = Arc::new(ConnectionHandle::new(id, peer));
    let mut connection = Connection::new(context, handle, writer);
    let closed = connection.run(reader).await;
    connection.close(closed).await;
}

struct Connection<S> {
    context: Context<S>,
    handle: Arc<ConnectionHandle>,
    writer: OwnedWriteHalf,
    deframer: Deframer,
    links: Vec<Link>,
    pending: VecDeque<PendingAck>,
    opened: Instant,
    last_frame: Instant,
    /// The deframer's dropped-byte count at the last chunk that held a valid frame.
    dropped_mark: u64,
    counts: Counts,
    errors_logged: u32,
}

impl<S: crate::store::Store> Connection<S> {
    fn new(
        context: Context<S>,
        handle: Arc<ConnectionHandle>,
        writer: OwnedWriteHalf,
    ) -> Connection<S> {
        let now = Instant::now();
        Connection {
            context,
            handle,
            writer,
            deframer: Deframer::new(),
            links: Vec::new(),
            pending: VecDeque::new(),
            opened: now,
            last_frame: now,
            dropped_mark: 0,
            counts: Counts::default(),
            errors_logged: 0,
        }
    }

    async fn run(&mut self, mut reader: OwnedReadHalf) -> Closed {
        let mut buffer = vec![0u8; READ_CHUNK];
        let mut stop = self.context.stop.clone();
        let handle = self.handle.clone();
        loop {
            self.settle_commands().await;
            if let Err(closed) = self.transmit().await {
                return closed;
            }
            let deadline = self.next_deadline();
            let reading = self.pending.len() < self.context.config.unacknowledged_per_connection;
            let step = tokio::select! {
                biased;
                // Shutdown: stop reading; committed uploads are still acknowledged on close.
                () = stopped(&mut stop) => Err(Closed::Shutdown),
                // The impersonation rule: a newer connection claimed one of our terminals.
                () = handle.close.notified() => Err(Closed::Replaced(handle.close_reason())),
                // Commands were queued for one of our terminals.
                () = handle.wake.notified() => {
                    self.start_commands().await;
                    Ok(())
                }
                // The oldest upload's batch is committed (or given up): answer it. Commits
                // complete in order, so waiting on the oldest keeps the answers in order.
                done = oldest(&mut self.pending) => self.acknowledge(done).await,
                // Reading stops while too many uploads await their commit: with a slow store
                // the socket fills and TCP holds the data box back.
                read = reader.read(&mut buffer), if reading => match read {
                    Ok(0) => Err(Closed::ByPeer),
                    Ok(n) => self.receive(&buffer[..n]).await,
                    Err(e) => Err(Closed::ReadFailed(e.to_string())),
                },
                () = tokio::time::sleep_until(deadline) => self.on_timer().await,
            };
            if let Err(closed) = step {
                return closed;
            }
        }
    }

    // --- Input ---------------------------------------------------------------------------

    async fn receive(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        let mut incoming = Vec::new();
        self.deframer.feed(bytes, |event| {
            incoming.push(match event {
                DeframerEvent::Frame(frame, _) => Incoming::Frame(frame.as_bytes().to_vec()),
                DeframerEvent::Error(error) => Incoming::Error(error),
            });
        });
        let any_frame = incoming.iter().any(|i| matches!(i, Incoming::Frame(_)));
        for item in incoming {
            match item {
                Incoming::Frame(frame) => self.on_frame(frame).await?,
                Incoming::Error(error) => self.on_frame_error(error)?,
            }
        }
        if any_frame {
            self.dropped_mark = self.deframer.stats().bytes_dropped;
        }
        self.check_garbage()
    }

    fn check_garbage(&self) -> Result<(), Closed> {
        let garbage = self.deframer.stats().bytes_dropped - self.dropped_mark;
        let limit = self.context.config.garbage_limit as u64;
        if garbage >= limit {
            return Err(Closed::Garbage(
                usize::try_from(garbage).unwrap_or(usize::MAX),
            ));
        }
        Ok(())
    }

    fn on_frame_error(&mut self, error: DeframeError) -> Result<(), Closed> {
        let stats = &self.context.stats;
        if let FrameError::BadLength { declared } = error.error {
            let announced = usize::from(declared) + 2;
            if announced > self.context.config.max_frame_len {
                ListenerStats::bump(&stats.oversized);
                return Err(Closed::Oversized(announced));
            }
        }
        ListenerStats::bump(stats.frame_error(&error.error));
        self.count_malformed(0);
        self.log_error(None, &error);
        Ok(())
    }

    async fn on_frame(&mut self, bytes: Vec<u8>) -> Result<(), Closed> {
        ListenerStats::bump(&self.context.stats.frames);
        self.counts.frames += 1;
        self.last_frame = Instant::now();
        if bytes.len() > self.context.config.max_frame_len {
            ListenerStats::bump(&self.context.stats.oversized);
            return Err(Closed::Oversized(bytes.len()));
        }
        let header = match Frame::new_checked(bytes.as_slice()).map(|f| f.header()) {
            Ok(Ok(header)) => header,
            Ok(Err(error)) => {
                ListenerStats::bump(&self.context.stats.malformed_header);
                self.count_malformed(0);
                self.log_error(None, &format_args!("frame dropped: {error}"));
                return Ok(());
            }
            // The deframer checked the frame; this cannot happen.
            Err(_) => return Ok(()),
        };
        let Some(link) = self.bind(header.terminal).await? else {
            return Ok(());
        };
        match header.transport {
            Transport::ActiveUpload => self.upload(link, header, bytes).await,
            Transport::Response => {
                let now = self.context.clock.now();
                match &mut self.links[link].session {
                    Some(session) => session.handle_input(now, &bytes),
                    None => self.session_event(link, Event::Unsolicited { frame: bytes }),
                }
                Ok(())
            }
            Transport::Request => {
                ListenerStats::bump(&self.context.stats.unexpected_requests);
                self.log_error(
                    Some(link),
                    &"a request frame from the data box (a BMS only answers and uploads): dropped",
                );
                Ok(())
            }
        }
    }

    // --- Terminals -------------------------------------------------------------------------

    /// The link of the terminal a frame names, binding it on first sight; `None` when the
    /// frame is dropped (the connection carries as many terminals as it may).
    async fn bind(&mut self, wire: TerminalId) -> Result<Option<usize>, Closed> {
        let terminal = Terminal(wire.number());
        if let Some(index) = self.links.iter().position(|l| l.terminal == terminal) {
            return Ok(Some(index));
        }
        let config = &self.context.config;
        if self.links.len() >= config.terminals_per_connection {
            ListenerStats::bump(&self.context.stats.foreign_terminal);
            let carried = self.terminal_list();
            self.log_error(
                None,
                &format_args!(
                    "frame claims terminal {terminal}, but this connection carries {carried}: dropped"
                ),
            );
            return Ok(None);
        }
        let record = self
            .context
            .registry
            .claim(
                terminal,
                &self.handle,
                &self.context.store,
                config.registration == RegistrationPolicy::Open,
                &self.context.stats,
            )
            .await
            .map_err(|e| Closed::Store(e.to_string()))?;
        if record.registration == Registration::Rejected {
            let id = self.handle.id;
            let registry = &self.context.registry;
            registry.release(terminal, id, &self.context.store).await;
            return Err(Closed::Rejected(terminal));
        }
        let counters = self.context.stats.terminal_counters(terminal);
        ListenerStats::bump(&counters.connections);
        self.links.push(Link {
            terminal,
            registration: record.registration,
            checked: Instant::now(),
            wire,
            session: None,
            command: None,
            counters,
            pending_logged: false,
        });
        let index = self.links.len() - 1;
        info!(
            "terminal {terminal} connected from {} ({})",
            self.handle.peer,
            registration_text(record.registration)
        );
        self.start_next(index).await;
        Ok(Some(index))
    }

    fn new_session(&self, terminal: TerminalId) -> Result<Session, String> {
        let config = SessionConfig {
            terminal,
            ..self.context.config.session.clone()
        };
        Session::new(config).map_err(|e| format!("command session settings: {e}"))
    }

    /// Whether the link's uploads may be stored; looks the registration up again now and then
    /// (an operator approves or rejects terminals in the store).
    async fn registered(&mut self, index: usize) -> Result<bool, Closed> {
        let config = &self.context.config;
        let link = &mut self.links[index];
        let recheck = match link.registration {
            Registration::Pending => config.pending_recheck,
            _ => config.approved_recheck,
        };
        if link.checked.elapsed() >= recheck {
            link.checked = Instant::now();
            match self.context.store.terminal(link.terminal).await {
                Ok(Some(record)) => {
                    let ours = self.context.registry.owner_key(self.handle.id);
                    if let Some(holder) = record.owner.filter(|holder| *holder != ours) {
                        return Err(Closed::Replaced(lost_to(link.terminal, holder)));
                    }
                    if record.registration != link.registration {
                        info!(
                            "terminal {} from {}: now {}",
                            link.terminal,
                            self.handle.peer,
                            registration_text(record.registration)
                        );
                        link.registration = record.registration;
                    }
                }
                Ok(None) => {}
                Err(e) => warn!(
                    "terminal {} from {}: registration not readable: {e}",
                    link.terminal, self.handle.peer
                ),
            }
        }
        match link.registration {
            Registration::Approved => Ok(true),
            Registration::Pending => Ok(false),
            Registration::Rejected => Err(Closed::Rejected(link.terminal)),
        }
    }

    // --- Uploads ---------------------------------------------------------------------------

    async fn upload(&mut self, index: usize, header: Header, raw: Vec<u8>) -> Result<(), Closed> {
        ListenerStats::bump(&self.context.stats.uploads);
        ListenerStats::bump(&self.links[index].counters.uploads);
        self.counts.uploads += 1;
        if !self.registered(index).await? {
            self.unregistered_upload(index, header);
            return Ok(());
        }
        // The row keeps the whole frame: the snapshot need not copy each field's bytes.
        let snapshot = match PackSnapshot::parse_measurements(&raw, self.context.clock.now()) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                ListenerStats::bump(&self.context.stats.bad_content);
                ListenerStats::bump(&self.links[index].counters.bad_content);
                self.counts.unusable += 1;
                let what = format_args!(
                    "upload record {} not usable: {error}: not stored, not acknowledged",
                    header.record.sequence()
                );
                self.log_error(Some(index), &what);
                return Ok(());
            }
        };
        let terminal = self.links[index].terminal;
        let record = header.record.sequence();
        let row = TelemetryRow::from_snapshot(terminal, Timestamp::now(), record, &snapshot, raw);
        let (done, committed) = oneshot::channel();
        let received = std::time::Instant::now();
        self.hand_to_writer(Upload {
            row,
            received,
            done,
        })
        .await?;
        self.pending.push_back(PendingAck {
            link: index,
            header,
            done: committed,
        });
        Ok(())
    }

    fn unregistered_upload(&mut self, index: usize, header: Header) {
        ListenerStats::bump(&self.context.stats.unregistered_uploads);
        let link = &mut self.links[index];
        let text = format!(
            "terminal {} from {}: pending approval: upload record {} neither stored nor \
             acknowledged",
            link.terminal,
            self.handle.peer,
            header.record.sequence()
        );
        if !link.pending_logged {
            link.pending_logged = true;
            info!("{text} (the same for its further uploads until an operator approves it)");
        } else {
            debug!("{text}");
        }
    }

    /// Hands an upload to the writer; waits (not reading the socket) while its queue is full.
    async fn hand_to_writer(&mut self, upload: Upload) -> Result<(), Closed> {
        let upload = match self.context.uploads.try_send(upload) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(Closed::Shutdown),
            Err(mpsc::error::TrySendError::Full(upload)) => upload,
        };
        ListenerStats::bump(&self.context.stats.backpressure_waits);
        debug!(
            "{}: the store writer's queue is full: reading paused",
            self.who()
        );
        let mut stop = self.context.stop.clone();
        tokio::select! {
            sent = self.context.uploads.send(upload) => sent.map_err(|_| Closed::Shutdown),
            // The upload is not acknowledged: the data box sends it again later.
            () = stopped(&mut stop) => Err(Closed::Shutdown),
        }
    }

    /// Answers the oldest upload (its commit result is `done`) and every later one already
    /// committed, in one write: a committed batch readies many answers at once.
    async fn acknowledge(&mut self, done: Committed) -> Result<(), Closed> {
        let mut answers = Vec::new();
        let mut count = 0u64;
        let mut next = Some(done);
        while let Some(done) = next.take() {
            let Some(ack) = self.pending.pop_front() else {
                break;
            };
            match done {
                Some(Ok(())) => {
                    append_acknowledgement(&ack.header, &mut answers);
                    ListenerStats::bump(&self.links[ack.link].counters.acknowledged);
                    count += 1;
                }
                Some(Err(reason)) => self.not_stored(&ack, &reason),
                // The writer is gone: the listener is stopping.
                None => return Err(Closed::Shutdown),
            }
            next = self
                .pending
                .front_mut()
                .and_then(|a| match a.done.try_recv() {
                    Ok(result) => Some(Some(result)),
                    Err(oneshot::error::TryRecvError::Empty) => None,
                    Err(oneshot::error::TryRecvError::Closed) => Some(None),
                });
        }
        if count > 0 {
            self.write(&answers).await?;
            ListenerStats::add(&self.context.stats.acknowledged, count);
            self.counts.acknowledged += count;
        }
        Ok(())
    }

    fn not_stored(&self, ack: &PendingAck, reason: &str) {
        warn!(
            "{}: upload record {} not stored ({reason}): not acknowledged; the data box sends it \
             again",
            self.link_who(ack.link),
            ack.header.record.sequence()
        );
    }

    /// On shutdown: acknowledges what gets committed within the grace period.
    async fn drain_acknowledgements(&mut self) {
        let grace = self.context.config.shutdown_grace;
        let drain = async {
            while !self.pending.is_empty() {
                let done = oldest(&mut self.pending).await;
                if self.acknowledge(done).await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            warn!(
                "{}: {} uploads not committed within the shutdown grace period: not acknowledged",
                self.who(),
                self.pending.len()
            );
        }
    }

    // --- Output and time -------------------------------------------------------------------

    /// Writes every request the sessions have due.
    async fn transmit(&mut self) -> Result<(), Closed> {
        let now = self.context.clock.now();
        let limit = self.context.config.write_timeout;
        for session in self.links.iter_mut().filter_map(|l| l.session.as_mut()) {
            while let Some(bytes) = session.poll_transmit(now) {
                write_all(&mut self.writer, bytes, limit).await?;
            }
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        write_all(&mut self.writer, bytes, self.context.config.write_timeout).await
    }

    fn next_deadline(&self) -> Instant {
        let mut deadline = self.last_frame + self.context.config.idle_timeout;
        for link in &self.links {
            if let Some(at) = link.session.as_ref().and_then(Session::poll_timeout) {
                deadline = deadline.min(self.context.clock.tokio(at));
            }
            if let Some(command) = &link.command {
                deadline = deadline.min(command.deadline);
            }
        }
        deadline
    }

    async fn on_timer(&mut self) -> Result<(), Closed> {
        let idle = self.context.config.idle_timeout;
        if self.last_frame.elapsed() >= idle {
            ListenerStats::bump(&self.context.stats.closed_idle);
            return Err(Closed::Idle(idle));
        }
        let now = self.context.clock.now();
        for index in 0..self.links.len() {
            if let Some(session) = &mut self.links[index].session {
                session.handle_timeout(now);
            }
            let expired = self.links[index]
                .command
                .as_ref()
                .is_some_and(|c| Instant::now() >= c.deadline);
            if expired {
                self.expire_command(index).await;
            }
        }
        Ok(())
    }

    // --- Closing ---------------------------------------------------------------------------

    async fn close(mut self, closed: Closed) {
        if matches!(closed, Closed::Shutdown) {
            self.drain_acknowledgements().await;
        }
        self.count_close(&closed);
        self.log_close(&closed);
        for index in 0..self.links.len() {
            if let Some(command) = self.links[index].command.take() {
                let reason = format!("the connection closed before the command finished: {closed}");
                self.finish(index, command.id, CommandState::Failed { reason })
                    .await;
            }
            let terminal = self.links[index].terminal;
            let registry = &self.context.registry;
            registry
                .release(terminal, self.handle.id, &self.context.store)
                .await;
        }
        let limit = self.context.config.write_timeout;
        let _ = tokio::time::timeout(limit, self.writer.shutdown()).await;
    }

    fn count_close(&self, closed: &Closed) {
        let stats = &self.context.stats;
        let counter = match closed {
            Closed::Garbage(_) => &stats.closed_garbage,
            Closed::Oversized(_) => &stats.closed_oversized,
            Closed::Replaced(_) => &stats.closed_replaced,
            Closed::Rejected(_) => &stats.closed_rejected,
            // Idle is counted where it is detected; the rest are ordinary ends.
            _ => return,
        };
        ListenerStats::bump(counter);
    }

    fn log_close(&self, closed: &Closed) {
        let summary = self.summary();
        let who = self.who();
        match closed {
            Closed::ByPeer | Closed::Shutdown | Closed::Idle(_) => {
                info!("{who}: connection closed: {closed}; {summary}");
            }
            _ => warn!("{who}: connection closed: {closed}; {summary}"),
        }
    }

    fn summary(&self) -> String {
        let counts = &self.counts;
        format!(
            "{} s, {} frames, {} uploads, {} acknowledged, {} malformed, {} unusable, {} bytes \
             dropped",
            self.opened.elapsed().as_secs(),
            counts.frames,
            counts.uploads,
            counts.acknowledged,
            counts.malformed,
            counts.unusable,
            self.deframer.stats().bytes_dropped
        )
    }

    /// Counts malformed input on the connection and on a link (the first one for input no
    /// frame attributes, such as bytes that are no frame).
    fn count_malformed(&mut self, link: usize) {
        self.counts.malformed += 1;
        if let Some(link) = self.links.get(link) {
            ListenerStats::bump(&link.counters.malformed);
        }
    }

    // --- Words for logs --------------------------------------------------------------------

    /// "terminal 0003E8 from 127.0.0.1:40112", or "connection from ..." before any frame.
    fn who(&self) -> String {
        match self.links.len() {
            0 => format!("connection from {}", self.handle.peer),
            1 => format!(
                "terminal {} from {}",
                self.links[0].terminal, self.handle.peer
            ),
            _ => format!(
                "terminals {} from {}",
                self.terminal_list(),
                self.handle.peer
            ),
        }
    }

    fn link_who(&self, index: usize) -> String {
        match self.links.get(index) {
            Some(link) => format!("terminal {} from {}", link.terminal, self.handle.peer),
            None => self.who(),
        }
    }

    fn terminal_list(&self) -> String {
        let list: Vec<String> = self.links.iter().map(|l| l.terminal.to_string()).collect();
        list.join(", ")
    }

    /// Logs a bad-input error: the first few of a connection as warnings, then at debug level.
    fn log_error(&mut self, link: Option<usize>, what: &dyn fmt::Display) {
        self.errors_logged = self.errors_logged.saturating_add(1);
        let who = link.map_or_else(|| self.who(), |index| self.link_who(index));
        if self.errors_logged <= LOGGED_ERRORS {
            warn!("{who}: {what}");
        } else {
            if self.errors_logged == LOGGED_ERRORS + 1 {
                warn!(
                    "{who}: more errors; further ones are logged at debug level (totals on close)"
                );
            }
            debug!("{who}: {what}");
        }
    }
}

fn registration_text(registration: Registration) -> &'static str {
    match registration {
        Registration::Approved => "approved",
        Registration::Pending => "pending approval: uploads are not stored until approved",
        Registration::Rejected => "rejected",
    }
}

/// What the writer said of an upload: committed (`Ok`), not stored (`Err`, why), or nothing
/// (`None`: the writer is gone).
type Committed = Option<Result<(), String>>;

/// Waits for the oldest pending upload's commit (forever if none is pending).
async fn oldest(pending: &mut VecDeque<PendingAck>) -> Committed {
    match pending.front_mut() {
        Some(ack) => (&mut ack.done).await.ok(),
        None => std::future::pending().await,
    }
}

async fn write_all(
    writer: &mut OwnedWriteHalf,
    bytes: &[u8],
    limit: Duration,
) -> Result<(), Closed> {
    match tokio::time::timeout(limit, writer.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Closed::WriteFailed(e.to_string())),
        Err(_) => Err(Closed::WriteFailed(format!(
            "the data box read nothing for {} s",
            limit.as_secs()
        ))),
    }
}
