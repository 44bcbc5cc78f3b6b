//! The platform's requests on a terminal's connection, answered as the rack's BMS would,
//! sans I/O (time is an input):
//!
//! - read all (06, or 03 with 00): the rack's latest reading, every field;
//! - read (03 + identifier): that field of the latest reading;
//! - pair code (05): not answered; with the rack's 0xB2 password (any pair code when the rack
//!   has none) it opens a write window of [`PAIR_WINDOW`], as on a BMS;
//! - write (02), inside the window: an identifier the rack accepts and a value in the table's
//!   range become a [`WriteValue`] for the rack's poller (pair code, write, read-back through
//!   [`crate::rack::RackHandle::write`]); the answer, after the read-back, echoes command 02
//!   with the identifier and the value read back. A refused write (an identifier the rack
//!   does not report or that is not a setting, a value out of range, a BMS that keeps its old
//!   value) is acknowledged with the value in force, so the platform's read-back sees the
//!   refusal; a write outside a window is ignored, like a BMS ignores it;
//! - activate (01): not answered (the gateway keeps its racks awake by polling them).
//!
//! Accepted identifiers: the settings (access RW) the rack reports in its readings. The
//! write-only commands (restart 0xBB, factory reset 0xBC, remote upgrade 0xBD, data box power
//! 0xBE/0xBF) are refused: a rack that is part of a running site is restarted or reset on site,
//! not from the cloud, and the gateway has no data box power to switch.
//!
//! Requests naming another terminal number than this connection's (0 counts as this one) are
//! ignored and logged.

use bmslink_core::responder::PAIR_WINDOW;
use bmslink_proto::frame::Header;
use bmslink_proto::message::PASSWORD_LEN;
use bmslink_proto::value::FixedText;
use bmslink_proto::{
    Access, Body, CurrentEncoding, Frame, Identifier, Message, Request, TerminalId, Value,
    WriteValue,
};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::frame::{field_bytes, reading_frame, reply_header, write_ack};
use crate::rack::{PackSnapshot, WriteError, WriteOutcome};

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this frame.
    Reply(Vec<u8>),
    /// Have the rack write `value`, then answer with `reply` as header.
    Write {
        /// Header of the answer.
        reply: Header,
        /// The checked value.
        value: WriteValue,
    },
    /// Nothing to send.
    Nothing,
}

/// The request side of one terminal's connection.
#[derive(Debug)]
pub struct Requests {
    label: String,
    terminal: TerminalId,
    password: Option<[u8; PASSWORD_LEN]>,
    paired_until: Option<Instant>,
}

impl Requests {
    /// Requests for `terminal`, whose rack has `password`; `label` names it in logs.
    pub fn new(
        label: String,
        terminal: TerminalId,
        password: Option<[u8; PASSWORD_LEN]>,
    ) -> Requests {
        Requests {
            label,
            terminal,
            password,
            paired_until: None,
        }
    }

    /// A request frame from the platform at `now`; `latest` is the rack's latest reading.
    pub fn handle(
        &mut self,
        now: Instant,
        frame: Frame<&[u8]>,
        latest: Option<&PackSnapshot>,
    ) -> Action {
        let message = match Message::from_frame(frame) {
            Ok(message) => message,
            Err(error) => {
                warn!(
                    "{}: a malformed request from the platform: {error}",
                    self.label
                );
                return Action::Nothing;
            }
        };
        let Body::Request(request) = message.body else {
            return Action::Nothing;
        };
        let number = message.header.terminal.number();
        if number != 0 && number != self.terminal.number() {
            warn!(
                "{}: a request for terminal {number:06X} on this terminal's connection: ignored",
                self.label
            );
            return Action::Nothing;
        }
        let reply = reply_header(message.header, self.terminal);
        match request {
            Request::ReadAll => self.read(reply, latest, None),
            Request::Read(id) => self.read(reply, latest, Some(id)),
            Request::PairCode { password } => self.pair(now, password),
            Request::Write { id, value } => self.write(now, reply, latest, id, value),
            Request::Activate => Action::Nothing,
        }
    }

    /// The answer to a write the rack carried out (`None`: the rack did not answer, and
    /// neither does the gateway).
    pub fn write_reply(
        &self,
        reply: Header,
        id: Identifier,
        result: &Result<WriteOutcome, WriteError>,
    ) -> Option<Vec<u8>> {
        let read_back = match result {
            Ok(outcome) => {
                info!(
                    "{}: the platform wrote {}: confirmed by read-back",
                    self.label,
                    id.name()
                );
                outcome.read_back.clone()
            }
            Err(error @ WriteError::Refused { read_back, .. }) => {
                warn!(
                    "{}: the platform's write of {}: {error}",
                    self.label,
                    id.name()
                );
                Some(read_back.clone())
            }
            Err(error) => {
                warn!(
                    "{}: the platform's write of {} failed: {error}; not answered",
                    self.label,
                    id.name()
                );
                return None;
            }
        };
        write_ack(reply, id, read_back.as_deref()).ok()
    }

    fn read(
        &self,
        reply: Header,
        latest: Option<&PackSnapshot>,
        only: Option<Identifier>,
    ) -> Action {
        let Some(reading) = latest else {
            debug!(
                "{}: no reading of the rack yet: the read is not answered",
                self.label
            );
            return Action::Nothing;
        };
        if only.is_some_and(|id| field_bytes(reading, id).is_none()) {
            return Action::Nothing;
        }
        match reading_frame(reply, reading, only) {
            Ok(frame) => Action::Reply(frame),
            Err(error) => {
                warn!("{}: cannot build the answer: {error}", self.label);
                Action::Nothing
            }
        }
    }

    fn pair(&mut self, now: Instant, password: Option<FixedText<'_>>) -> Action {
        let accepted = match (&self.password, password) {
            (None, _) => true,
            (Some(ours), Some(given)) => given.raw() == ours.as_slice(),
            (Some(_), None) => false,
        };
        self.paired_until = accepted.then_some(now + PAIR_WINDOW);
        if !accepted {
            warn!(
                "{}: a pair code from the platform with a wrong or missing password: writes stay \
                 closed",
                self.label
            );
        }
        Action::Nothing
    }

    fn write(
        &mut self,
        now: Instant,
        reply: Header,
        latest: Option<&PackSnapshot>,
        id: Identifier,
        bytes: &[u8],
    ) -> Action {
        if self.paired_until.is_none_or(|until| now > until) {
            warn!(
                "{}: a write of {} from the platform without a pair code: ignored",
                self.label,
                id.name()
            );
            return Action::Nothing;
        }
        match checked_write(latest, id, bytes) {
            Ok(value) => {
                info!(
                    "{}: the platform writes {}; forwarded to the rack",
                    self.label,
                    id.name()
                );
                Action::Write { reply, value }
            }
            Err(reason) => {
                warn!(
                    "{}: the platform's write of {} refused: {reason}",
                    self.label,
                    id.name()
                );
                let in_force = latest.and_then(|r| r.field(id));
                write_ack(reply, id, in_force).map_or(Action::Nothing, Action::Reply)
            }
        }
    }
}

/// The write of `bytes` to `id` as a value for the rack, or why it is refused.
fn checked_write(
    latest: Option<&PackSnapshot>,
    id: Identifier,
    bytes: &[u8],
) -> Result<WriteValue, String> {
    if id.info().access != Access::ReadWrite {
        return Err(format!(
            "{} is not a setting; restarts, resets and upgrades are done on site",
            id.name()
        ));
    }
    let reading = latest.ok_or("no reading of the rack yet")?;
    if reading.field(id).is_none() {
        return Err(format!("the rack does not report {}", id.name()));
    }
    Value::check_wire(id, bytes).map_err(|error| error.to_string())?;
    let value = Value::decode(id, bytes, CurrentEncoding::SignMagnitude)
        .map_err(|error| error.to_string())?;
    WriteValue::new(id, &value).map_err(|error| error.to_string())
}
