//! The controller side of the NW protocol, sans I/O: a platform, gateway or bench tool polling
//! one BMS over one line (serial port or TCP).
//!
//! The session owns no socket and reads no clock. The caller feeds it bytes and time, and
//! writes what it returns. Calling order, in one loop per link:
//!
//! ```text
//! submit(op)                         queue a read, read-all, write or activation
//! loop:
//!     while let Some(bytes) = poll_transmit(now)   write bytes to the line
//!     while let Some(event) = poll_event()         act on replies, failures, link changes
//!     wait until bytes arrive or poll_timeout():
//!         handle_input(now, bytes)  |  handle_timeout(now)
//! ```
//!
//! What it guarantees:
//! - one request on the line at a time; a reply is matched to it by command, transport type,
//!   identifier and (optionally) record number, anything else is reported as unsolicited;
//! - at least [`SessionConfig::packet_gap`] (100 ms) of quiet line between packets, except the
//!   configured pause between a pair code and its write;
//! - an unanswered request is retried [`SessionConfig::retries`] times; then, if the BMS may be
//!   dormant, an activate frame is sent and the request tried again (`nw.md`: a dormant BMS
//!   answers nothing but activation);
//! - a write is: read all (old value), pair code (with the 0xB2 password if given), pause,
//!   write, acknowledgement, read all again, and the read-back compared with what was written;
//! - link state online / degraded / offline with the reason for every change, and an event for
//!   every timeout, framing error and malformed reply.

mod config;

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use bmslink_proto::message::PASSWORD_LEN;
use bmslink_proto::{
    Body, Command, DeframeError, Deframer, Error, Event as DeframerEvent, FixedText, Frame, Header,
    Identifier, Message, RecordNumber, Request, Transport, WriteValue,
};

pub use config::{
    ConfigError, SessionConfig, MAX_PAIR_PAUSE, MAX_REPLY_TIMEOUT, MAX_RETRIES, MIN_PACKET_GAP,
    MIN_PAIR_PAUSE,
};

use crate::time::Instant;

/// Identifies a submitted operation in the events that report on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperationId(pub u64);

/// What a caller asks of the BMS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Read every identifier.
    ReadAll,
    /// Read one identifier.
    Read(Identifier),
    /// Write one identifier, with the pair code before it and a read-back after it.
    Write {
        /// The encoded, range-checked value.
        value: WriteValue,
        /// The 0xB2 password for the pair-code frame; `None` sends the `00 00` pair code that
        /// real BMSes accept.
        password: Option<[u8; PASSWORD_LEN]>,
    },
    /// Wake a dormant BMS.
    Activate,
}

/// A step of an operation, named in events and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The read or read-all of a read operation.
    Read,
    /// A write's first read-all, for the old value.
    ReadOld,
    /// The pair-code frame (never answered).
    PairCode,
    /// The write frame.
    Write,
    /// A write's read-all after the write, to confirm it.
    ReadBack,
    /// The activate frame.
    Activate,
}

impl Stage {
    /// A short lower-case name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::ReadOld => "read of the old value",
            Stage::PairCode => "pair code",
            Stage::Write => "write",
            Stage::ReadBack => "read-back",
            Stage::Activate => "activation",
        }
    }
}

/// Link quality as seen by the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Nothing exchanged yet.
    Unknown,
    /// The last request was answered.
    Online,
    /// Timeouts, framing errors or failed operations, fewer than `offline_after` in a row.
    Degraded,
    /// `offline_after` operations in a row failed.
    Offline,
}

/// Why the link state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkReason {
    /// A matching reply arrived.
    ReplyReceived,
    /// A request was not answered within the reply timeout.
    ReplyTimeout {
        /// The stage whose reply was missing.
        stage: Stage,
        /// How long the session waited.
        waited: Duration,
    },
    /// Bytes on the line did not form a valid frame.
    FrameError(DeframeError),
    /// A reply parsed as a frame but its content was malformed.
    BadReply(Error),
    /// Operations failed in a row.
    OperationsFailed {
        /// How many.
        in_a_row: u32,
    },
}

/// Why an operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationError {
    /// No reply after every retry (and activation, when enabled).
    NoReply {
        /// The stage that got no reply.
        stage: Stage,
        /// Requests sent at that stage.
        attempts: u32,
        /// The reply timeout of each.
        timeout: Duration,
        /// Whether an activate frame was tried.
        activated: bool,
        /// The last malformed reply, if one came instead of a good one.
        last_error: Option<Error>,
    },
    /// The BMS acknowledged the write but reads back another value: it refused the change.
    WriteNotApplied {
        /// The identifier.
        id: Identifier,
        /// Bytes written.
        written: Vec<u8>,
        /// Bytes read back.
        read_back: Vec<u8>,
    },
}

impl core::fmt::Display for OperationError {
    /// "no reply to the read all within 500 ms (3 attempts, activation tried)", "the BMS
    /// acknowledged the write of cell_over_voltage_protection but reads back 3.650 V instead
    /// of 3.600 V: it refused the value".
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OperationError::NoReply {
                stage,
                attempts,
                timeout,
                activated,
                last_error,
            } => {
                let activation = if *activated { ", activation tried" } else { "" };
                write!(
                    f,
                    "no reply to the {} within {} ms ({attempts} attempts{activation})",
                    stage.name(),
                    timeout.as_millis()
                )?;
                if *stage == Stage::Write {
                    f.write_str("; a BMS ignores a write after a pair code with a wrong password")?;
                }
                if let Some(error) = last_error {
                    write!(f, "; the last reply was malformed: {error}")?;
                }
                Ok(())
            }
            OperationError::WriteNotApplied {
                id,
                written,
                read_back,
            } => write!(
                f,
                "the BMS acknowledged the write of {} but reads back {} instead of {}: it \
                 refused the value",
                id.info().name,
                ValueText(*id, read_back),
                ValueText(*id, written)
            ),
        }
    }
}

/// A setting's bytes in engineering units ("3.650 V"), or as hex when they do not decode.
struct ValueText<'a>(Identifier, &'a [u8]);

impl core::fmt::Display for ValueText<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ValueText(id, bytes) = *self;
        match bmslink_proto::Value::decode(id, bytes, bmslink_proto::CurrentEncoding::SignMagnitude)
        {
            Ok(value) => write!(f, "{value}"),
            Err(_) => write!(f, "{bytes:02X?}"),
        }
    }
}

/// What the session reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The reply to a read or read-all: one whole checked frame, for [`Message::parse`].
    Data {
        /// The operation.
        operation: OperationId,
        /// The reply frame.
        frame: Vec<u8>,
    },
    /// A write was acknowledged; `read_back` is the value read afterwards and equals what was
    /// written, or `None` where the BMS does not report the identifier (write-only commands,
    /// fields old firmware lacks).
    Written {
        /// The operation.
        operation: OperationId,
        /// The identifier.
        id: Identifier,
        /// Value bytes before the write, if reported.
        old: Option<Vec<u8>>,
        /// Value bytes read back after the write.
        read_back: Option<Vec<u8>>,
    },
    /// An activation finished; `answered` tells whether the BMS replied to it.
    Activated {
        /// The operation.
        operation: OperationId,
        /// Whether a reply came.
        answered: bool,
    },
    /// An operation failed.
    Failed {
        /// The operation.
        operation: OperationId,
        /// Why.
        error: OperationError,
    },
    /// A request went unanswered; the session retries or activates next.
    Timeout {
        /// The operation.
        operation: OperationId,
        /// The stage.
        stage: Stage,
        /// Requests sent at this stage so far.
        attempt: u32,
        /// How long the session waited.
        waited: Duration,
    },
    /// The BMS stayed silent: an activate frame goes out before trying again.
    Activating {
        /// The operation.
        operation: OperationId,
    },
    /// The link state changed.
    LinkChanged {
        /// Previous state.
        from: LinkState,
        /// New state.
        to: LinkState,
        /// Why.
        reason: LinkReason,
    },
    /// Bytes on the line were not a valid frame; the deframer resynchronised.
    FrameError(DeframeError),
    /// A checked frame whose content was malformed.
    BadReply {
        /// The parse error, with its byte offset.
        error: Error,
        /// The frame.
        frame: Vec<u8>,
    },
    /// A valid frame that answers nothing outstanding (an active upload, a late reply).
    Unsolicited {
        /// The frame.
        frame: Vec<u8>,
    },
}

/// Where the current stage stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Send this stage's request at or after the instant.
    Ready(Instant),
    /// Request sent; reply due by the deadline.
    AwaitReply(Instant),
    /// The BMS was silent: send an activate frame at or after the instant.
    ActivateReady(Instant),
    /// Activate sent; wait until the instant (a reply ends the wait early).
    AwaitActivation(Instant),
}

/// The operation on the line.
#[derive(Debug)]
struct Active {
    id: OperationId,
    operation: Operation,
    stage: Stage,
    phase: Phase,
    /// Requests sent at this stage in this activation round.
    attempt: u32,
    /// Requests sent at this stage in all rounds.
    total_attempts: u32,
    activated: bool,
    old: Option<Vec<u8>>,
    record: RecordNumber,
    last_error: Option<Error>,
}

/// The controller side of one NW link. See the module documentation for the calling order.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    deframer: Deframer,
    queue: VecDeque<(OperationId, Operation)>,
    active: Option<Active>,
    events: VecDeque<Event>,
    transmit: [u8; 64],
    next_operation: u64,
    sequence: u32,
    /// When the line was last busy (a packet sent or bytes received).
    last_activity: Option<Instant>,
    link: LinkState,
    failed_in_a_row: u32,
}

impl Session {
    /// A session with validated settings.
    pub fn new(config: SessionConfig) -> Result<Session, ConfigError> {
        config.validate()?;
        Ok(Session {
            config,
            deframer: Deframer::new(),
            queue: VecDeque::new(),
            active: None,
            events: VecDeque::new(),
            transmit: [0; 64],
            next_operation: 0,
            sequence: 0,
            last_activity: None,
            link: LinkState::Unknown,
            failed_in_a_row: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The current link state.
    pub fn link_state(&self) -> LinkState {
        self.link
    }

    /// Counters of the line's framing layer.
    pub fn framing_stats(&self) -> bmslink_proto::Stats {
        self.deframer.stats()
    }

    /// Whether no operation is running or queued.
    pub fn is_idle(&self) -> bool {
        self.active.is_none() && self.queue.is_empty()
    }

    /// Operations queued or running.
    pub fn pending(&self) -> usize {
        self.queue.len() + usize::from(self.active.is_some())
    }

    /// Queues an operation; it starts when the ones before it are done.
    pub fn submit(&mut self, operation: Operation) -> OperationId {
        let id = OperationId(self.next_operation);
        self.next_operation += 1;
        self.queue.push_back((id, operation));
        id
    }

    /// Bytes received from the line.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.last_activity = Some(now);
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut errors: Vec<DeframeError> = Vec::new();
        self.deframer.feed(bytes, |event| match event {
            DeframerEvent::Frame(frame, _) => frames.push(frame.as_bytes().to_vec()),
            DeframerEvent::Error(error) => errors.push(error),
        });
        self.absorb(now, frames, errors);
    }

    /// Time passed: call when [`poll_timeout`](Self::poll_timeout)'s instant is reached.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(active) = &self.active else { return };
        match active.phase {
            Phase::AwaitReply(deadline) if now >= deadline => {
                // The burst is over: a frame still incomplete never will be, and a good one may
                // hide behind it.
                self.flush_line(now);
                if matches!(self.active.as_ref().map(|a| a.phase), Some(Phase::AwaitReply(d)) if d == deadline)
                {
                    self.reply_timed_out(now);
                }
            }
            Phase::AwaitActivation(deadline) if now >= deadline => {
                self.flush_line(now);
                self.activation_done(now, false);
            }
            _ => {}
        }
    }

    /// The next frame to write to the line, when its time has come.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        if self.active.is_none() {
            let (id, operation) = self.queue.pop_front()?;
            self.start(id, operation, now);
        }
        let ready_at = self.send_time()?;
        if now < ready_at {
            return None;
        }
        let len = self.emit_request(now)?;
        self.last_activity = Some(now);
        Some(&self.transmit[..len])
    }

    /// The next reported event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) or
    /// [`poll_transmit`](Self::poll_transmit) next, if anything is waiting on time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.active {
            Some(active) => match active.phase {
                Phase::AwaitReply(deadline) | Phase::AwaitActivation(deadline) => Some(deadline),
                Phase::Ready(_) | Phase::ActivateReady(_) => self.send_time(),
            },
            None if !self.queue.is_empty() => Some(self.gap_end()),
            None => None,
        }
    }

    fn gap_end(&self) -> Instant {
        self.last_activity
            .map_or(Instant::ZERO, |t| t + self.config.packet_gap)
    }

    /// When the active stage's request may go out, if it is waiting to be sent.
    fn send_time(&self) -> Option<Instant> {
        let active = self.active.as_ref()?;
        match active.phase {
            // The write follows its pair code after the pair pause, not the packet gap.
            Phase::Ready(at) if active.stage == Stage::Write => Some(at),
            Phase::Ready(at) | Phase::ActivateReady(at) => Some(at.max(self.gap_end())),
            _ => None,
        }
    }

    fn start(&mut self, id: OperationId, operation: Operation, now: Instant) {
        let stage = first_stage(&operation);
        self.active = Some(Active {
            id,
            operation,
            stage,
            phase: Phase::Ready(now),
            attempt: 0,
            total_attempts: 0,
            activated: false,
            old: None,
            record: RecordNumber::default(),
            last_error: None,
        });
    }

    /// Writes the active stage's frame into `self.transmit`; advances the phase.
    fn emit_request(&mut self, now: Instant) -> Option<usize> {
        let record = self.next_record();
        let active = self.active.as_mut()?;
        let activating = matches!(active.phase, Phase::ActivateReady(_));
        let password = match &active.operation {
            Operation::Write {
                password: Some(p), ..
            } => Some(*p),
            _ => None,
        };
        let request = if activating {
            Request::Activate
        } else {
            stage_request(active, password.as_ref())
        };
        let header = Header {
            record,
            terminal: self.config.terminal,
            ..Header::request(request.command(), self.config.source)
        };
        let len = request.emit(header, &mut self.transmit).ok()?.len();
        active.record = record;
        active.phase = match (activating, active.stage) {
            (true, _) => Phase::AwaitActivation(now + self.config.reply_timeout),
            (false, Stage::PairCode) => {
                active.stage = Stage::Write;
                Phase::Ready(now + self.config.pair_pause)
            }
            (false, _) => {
                active.attempt += 1;
                active.total_attempts += 1;
                Phase::AwaitReply(now + self.config.reply_timeout)
            }
        };
        Some(len)
    }

    fn next_record(&mut self) -> RecordNumber {
        if !self.config.record_numbers {
            return RecordNumber::default();
        }
        self.sequence = (self.sequence + 1) & RecordNumber::MAX_SEQUENCE;
        RecordNumber::new(0, self.sequence)
    }

    fn flush_line(&mut self, now: Instant) {
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut errors: Vec<DeframeError> = Vec::new();
        self.deframer.flush(|event| match event {
            DeframerEvent::Frame(frame, _) => frames.push(frame.as_bytes().to_vec()),
            DeframerEvent::Error(error) => errors.push(error),
        });
        self.absorb(now, frames, errors);
    }

    fn absorb(&mut self, now: Instant, frames: Vec<Vec<u8>>, errors: Vec<DeframeError>) {
        for error in errors {
            self.events.push_back(Event::FrameError(error));
            self.degrade(LinkReason::FrameError(error));
        }
        for frame in frames {
            self.handle_frame(now, frame);
        }
    }

    fn handle_frame(&mut self, now: Instant, frame: Vec<u8>) {
        match Message::parse(&frame) {
            Ok(message) if self.answers(&message) => self.advance(now, &message, &frame),
            Ok(_) => self.events.push_back(Event::Unsolicited { frame }),
            Err(error) => {
                if let Some(active) = self.active.as_mut().filter(|a| awaits_frame(a, &frame)) {
                    active.last_error = Some(error);
                }
                self.degrade(LinkReason::BadReply(error));
                self.events.push_back(Event::BadReply { error, frame });
            }
        }
    }

    /// Whether `message` is the reply the active stage waits for.
    fn answers(&self, message: &Message<'_>) -> bool {
        let Some(active) = &self.active else {
            return false;
        };
        let header = message.header;
        let record_ok = !self.config.record_numbers
            || header.record == active.record
            || header.record == RecordNumber::default();
        if header.transport != Transport::Response || !record_ok {
            return false;
        }
        match (active.phase, &message.body) {
            (Phase::AwaitActivation(_), _) => header.command == Command::Activate,
            (Phase::AwaitReply(_), Body::Data(info)) => match (active.stage, &active.operation) {
                (Stage::Read, Operation::Read(id)) => {
                    header.command == Command::Read && info.get(*id).is_some()
                }
                (Stage::Read | Stage::ReadOld | Stage::ReadBack, _) => {
                    header.command == Command::ReadAll && !info.is_empty()
                }
                (Stage::Activate, _) => header.command == Command::Activate,
                _ => false,
            },
            (Phase::AwaitReply(_), Body::WriteAck { id, .. }) => {
                active.stage == Stage::Write
                    && matches!(&active.operation, Operation::Write { value, .. } if value.id() == *id)
            }
            _ => false,
        }
    }

    /// The awaited reply arrived: move the active operation on.
    fn advance(&mut self, now: Instant, message: &Message<'_>, frame: &[u8]) {
        self.failed_in_a_row = 0;
        self.set_link(LinkState::Online, LinkReason::ReplyReceived);
        let Some(mut active) = self.active.take() else {
            return;
        };
        if matches!(active.phase, Phase::AwaitActivation(_)) {
            self.active = Some(active);
            self.activation_done(now, true);
            return;
        }
        let written_id = match &active.operation {
            Operation::Write { value, .. } => Some(value.id()),
            _ => None,
        };
        let field_of = |id: Identifier| match message.body {
            Body::Data(info) => info.fields().find(|f| f.id == id).map(|f| f.bytes.to_vec()),
            _ => None,
        };
        match (active.stage, written_id) {
            (Stage::Read, _) => {
                self.events.push_back(Event::Data {
                    operation: active.id,
                    frame: frame.to_vec(),
                });
            }
            (Stage::Activate, _) => {
                self.events.push_back(Event::Activated {
                    operation: active.id,
                    answered: true,
                });
            }
            (Stage::ReadOld, Some(id)) => {
                active.old = field_of(id);
                self.next_stage(active, Stage::PairCode, now);
            }
            (Stage::Write, Some(id)) if active.old.is_some() && id.info().is_readable() => {
                self.next_stage(active, Stage::ReadBack, now);
            }
            (Stage::Write, Some(id)) => {
                let event = Event::Written {
                    operation: active.id,
                    id,
                    old: active.old,
                    read_back: None,
                };
                self.events.push_back(event);
            }
            (Stage::ReadBack, Some(id)) => self.finish_write(active, id, field_of(id)),
            _ => {}
        }
    }

    fn next_stage(&mut self, mut active: Active, stage: Stage, now: Instant) {
        active.stage = stage;
        active.attempt = 0;
        active.total_attempts = 0;
        active.activated = false;
        active.last_error = None;
        active.phase = Phase::Ready(now);
        self.active = Some(active);
    }

    fn finish_write(&mut self, active: Active, id: Identifier, read_back: Option<Vec<u8>>) {
        let Operation::Write { value, .. } = &active.operation else {
            return;
        };
        let event = match read_back {
            Some(bytes) if !value.matches(&bytes) => Event::Failed {
                operation: active.id,
                error: OperationError::WriteNotApplied {
                    id,
                    written: value.bytes().to_vec(),
                    read_back: bytes,
                },
            },
            read_back => Event::Written {
                operation: active.id,
                id,
                old: active.old,
                read_back,
            },
        };
        self.events.push_back(event);
    }

    fn reply_timed_out(&mut self, now: Instant) {
        let retries = u32::from(self.config.retries);
        let activate = self.config.activate_when_silent;
        let timeout = self.config.reply_timeout;
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let stage = active.stage;
        self.events.push_back(Event::Timeout {
            operation: active.id,
            stage,
            attempt: active.total_attempts,
            waited: timeout,
        });
        if active.attempt <= retries {
            active.phase = Phase::Ready(now);
            if stage == Stage::Write {
                active.stage = Stage::PairCode; // the pair code may have lapsed: pair again
            }
        } else if activate && !active.activated && stage != Stage::Activate {
            active.phase = Phase::ActivateReady(now);
            self.events.push_back(Event::Activating {
                operation: active.id,
            });
        } else {
            let Some(active) = self.active.take() else {
                return;
            };
            let error = OperationError::NoReply {
                stage,
                attempts: active.total_attempts,
                timeout,
                activated: active.activated,
                last_error: active.last_error,
            };
            self.events.push_back(Event::Failed {
                operation: active.id,
                error,
            });
            self.operation_failed();
            return;
        }
        self.degrade(LinkReason::ReplyTimeout {
            stage,
            waited: timeout,
        });
    }

    /// The activate frame was answered, or its wait ran out: try the stage again.
    fn activation_done(&mut self, now: Instant, answered: bool) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        if active.stage == Stage::Activate {
            let operation = active.id;
            self.active = None;
            self.events.push_back(Event::Activated {
                operation,
                answered,
            });
            return;
        }
        active.activated = true;
        active.attempt = 0;
        active.phase = Phase::Ready(now);
        if active.stage == Stage::Write {
            active.stage = Stage::PairCode;
        }
    }

    fn operation_failed(&mut self) {
        self.failed_in_a_row += 1;
        let reason = LinkReason::OperationsFailed {
            in_a_row: self.failed_in_a_row,
        };
        if self.failed_in_a_row >= self.config.offline_after {
            self.set_link(LinkState::Offline, reason);
        } else {
            self.set_link(LinkState::Degraded, reason);
        }
    }

    /// A problem short of a failed operation: online becomes degraded.
    fn degrade(&mut self, reason: LinkReason) {
        if self.link == LinkState::Online {
            self.set_link(LinkState::Degraded, reason);
        }
    }

    fn set_link(&mut self, to: LinkState, reason: LinkReason) {
        if self.link != to {
            self.events.push_back(Event::LinkChanged {
                from: self.link,
                to,
                reason,
            });
            self.link = to;
        }
    }
}

fn first_stage(operation: &Operation) -> Stage {
    match operation {
        Operation::ReadAll | Operation::Read(_) => Stage::Read,
        Operation::Write { value, .. } if value.id().info().is_readable() => Stage::ReadOld,
        Operation::Write { .. } => Stage::PairCode,
        Operation::Activate => Stage::Activate,
    }
}

fn stage_request<'a>(active: &'a Active, password: Option<&'a [u8; PASSWORD_LEN]>) -> Request<'a> {
    match (&active.operation, active.stage) {
        (Operation::Read(id), Stage::Read) => Request::Read(*id),
        (Operation::Activate, _) => Request::Activate,
        (Operation::Write { .. }, Stage::PairCode) => Request::PairCode {
            password: password.map(|p| FixedText::new(p)),
        },
        (Operation::Write { value, .. }, Stage::Write) => value.request(),
        _ => Request::ReadAll,
    }
}

/// Whether a malformed frame carries the command and transport type the active stage awaits.
fn awaits_frame(active: &Active, frame: &[u8]) -> bool {
    let Ok(frame) = Frame::new_checked(frame) else {
        return false;
    };
    let command = match active.stage {
        Stage::Read => match active.operation {
            Operation::Read(_) => Command::Read,
            _ => Command::ReadAll,
        },
        Stage::ReadOld | Stage::ReadBack => Command::ReadAll,
        Stage::Write | Stage::PairCode => Command::Write,
        Stage::Activate => Command::Activate,
    };
    frame.transport_byte() == u8::from(Transport::Response)
        && frame.command_byte() == u8::from(command)
}

#[cfg(test)]
mod tests;
