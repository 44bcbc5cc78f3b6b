//! The BMS side of the NW protocol, sans I/O: answers a controller's requests from a register
//! image, as a real BMS does.
//!
//! Behaviour, from `nw.md` ("Commands and exchanges") and the captures:
//! - read all (06, or 03 with identifier 00): every reported identifier, ascending, echoing the
//!   request's command, with source BMS and transport type response;
//! - read (03 + identifier): that identifier and its value; nothing for an identifier the image
//!   does not hold;
//! - pair code (05): never answered; with the 0xB2 password (or, when allowed, the `00 00` form
//!   real BMSes accept) it opens a write window of [`PAIR_WINDOW`];
//! - write (02): answered (the identifier echoed) only inside a write window; an in-range value
//!   of a writable identifier is applied, anything else is acknowledged but not applied, so the
//!   controller's read-back sees the refusal;
//! - activate (01): wakes a dormant BMS; not answered. A dormant BMS answers nothing else.
//!
//! The owner (a simulator, a test) updates measurements with [`BmsResponder::set`] and sees
//! applied writes in the register image.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use bmslink_proto::frame::{FrameBuilder, Header, MAX_FRAME_LEN};
use bmslink_proto::message::PASSWORD_LEN;
use bmslink_proto::{Body, CurrentEncoding, Identifier, Info, Message, Request, Value, ValueError};

use crate::time::Instant;

/// How long a pair code allows writes.
pub const PAIR_WINDOW: Duration = Duration::from_secs(5);

/// What the BMS did with a request, for its owner's log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Answered a read or read-all.
    Read,
    /// Paired: writes are accepted for a while.
    Paired,
    /// Pair code with a wrong or missing password: no write window.
    PairRefused,
    /// A write was applied.
    Written {
        /// The identifier.
        id: Identifier,
    },
    /// A write was acknowledged but not applied.
    WriteRefused {
        /// The identifier.
        id: Identifier,
        /// Why.
        reason: &'static str,
    },
    /// A write without a valid pair code: ignored.
    WriteIgnored,
    /// Woken from dormancy.
    Activated,
    /// Dormant: ignored.
    Dormant,
    /// Not a request, or malformed.
    Ignored,
}

/// A BMS answering NW requests from a register image.
#[derive(Clone, Debug, Default)]
pub struct BmsResponder {
    registers: BTreeMap<Identifier, Vec<u8>>,
    accept_blank_pair_code: bool,
    paired_until: Option<Instant>,
    dormant: bool,
}

impl BmsResponder {
    /// A BMS with an empty register image (fill it with [`set`](Self::set)). The password
    /// check is on.
    pub fn new() -> BmsResponder {
        BmsResponder {
            registers: BTreeMap::new(),
            accept_blank_pair_code: false,
            paired_until: None,
            dormant: false,
        }
    }

    /// A BMS whose register image is the info field of a read-all reply (a captured frame, or
    /// one a simulator built). The password check is on.
    pub fn from_info(info: &Info<'_>) -> BmsResponder {
        let registers = info
            .fields()
            .map(|field| (field.id, field.bytes.to_vec()))
            .collect();
        BmsResponder {
            registers,
            accept_blank_pair_code: false,
            paired_until: None,
            dormant: false,
        }
    }

    /// Whether a pair code without the password (`00 00`, as real BMSes accept) opens a write
    /// window. Off by default: the password is checked.
    pub fn accept_blank_pair_code(&mut self, accept: bool) {
        self.accept_blank_pair_code = accept;
    }

    /// Sends the BMS to sleep: only activation is answered until it wakes.
    pub fn set_dormant(&mut self, dormant: bool) {
        self.dormant = dormant;
    }

    /// Whether the BMS is dormant.
    pub fn is_dormant(&self) -> bool {
        self.dormant
    }

    /// The value bytes of an identifier.
    pub fn get(&self, id: Identifier) -> Option<&[u8]> {
        self.registers.get(&id).map(Vec::as_slice)
    }

    /// Sets an identifier's value bytes (measurements, or settings changed locally).
    pub fn set(&mut self, id: Identifier, bytes: &[u8]) {
        self.registers.insert(id, bytes.to_vec());
    }

    /// The decoded value of an identifier.
    pub fn value(&self, id: Identifier) -> Option<Value<'_>> {
        let encoding = CurrentEncoding::for_protocol_version(
            self.get(Identifier::ProtocolVersion)
                .and_then(|v| v.first().copied()),
        );
        Value::decode(id, self.get(id)?, encoding).ok()
    }

    /// Handles one request frame; returns the reply frame, if the BMS answers.
    pub fn handle_request(&mut self, now: Instant, frame: &[u8]) -> (Option<Vec<u8>>, Outcome) {
        let Ok(message) = Message::parse(frame) else {
            return (None, Outcome::Ignored);
        };
        let Body::Request(request) = message.body else {
            return (None, Outcome::Ignored);
        };
        if self.dormant {
            if request == Request::Activate {
                self.dormant = false;
                return (None, Outcome::Activated);
            }
            return (None, Outcome::Dormant);
        }
        match request {
            Request::Activate => (None, Outcome::Activated),
            Request::ReadAll => (self.reply(message.header, |_| true), Outcome::Read),
            Request::Read(id) if self.registers.contains_key(&id) => (
                self.reply(message.header, |field| field == id),
                Outcome::Read,
            ),
            Request::Read(_) => (None, Outcome::Ignored),
            Request::PairCode { password } => {
                let accepted = match password {
                    Some(given) => self.password_matches(given.raw()),
                    None => self.accept_blank_pair_code,
                };
                self.paired_until = accepted.then_some(now + PAIR_WINDOW);
                (
                    None,
                    if accepted {
                        Outcome::Paired
                    } else {
                        Outcome::PairRefused
                    },
                )
            }
            Request::Write { id, value } => self.write(now, message.header, id, value),
        }
    }

    fn password_matches(&self, given: &[u8]) -> bool {
        let stored = self.get(Identifier::Password).unwrap_or(&[]);
        let mut padded = [0u8; PASSWORD_LEN];
        let len = stored.len().min(PASSWORD_LEN);
        padded[..len].copy_from_slice(&stored[..len]);
        given == padded
    }

    fn write(
        &mut self,
        now: Instant,
        header: Header,
        id: Identifier,
        value: &[u8],
    ) -> (Option<Vec<u8>>, Outcome) {
        if self.paired_until.is_none_or(|until| now > until) {
            return (None, Outcome::WriteIgnored);
        }
        let outcome = match validate_write(id, value) {
            Ok(()) => {
                self.registers.insert(id, value.to_vec());
                Outcome::Written { id }
            }
            Err(reason) => Outcome::WriteRefused { id, reason },
        };
        let mut buffer = [0u8; 64];
        let reply = FrameBuilder::new(&mut buffer, header.reply())
            .and_then(|mut builder| {
                builder.push(&[id.code()])?;
                builder.finish().map(<[u8]>::to_vec)
            })
            .ok();
        (reply, outcome)
    }

    /// A reply carrying the registers `include` selects, echoing `request`'s header.
    fn reply(&self, request: Header, include: impl Fn(Identifier) -> bool) -> Option<Vec<u8>> {
        let mut buffer = [0u8; MAX_FRAME_LEN];
        let mut builder = FrameBuilder::new(&mut buffer, request.reply()).ok()?;
        for (id, bytes) in self.registers.iter().filter(|(id, _)| include(**id)) {
            builder.push_field(*id, bytes).ok()?;
        }
        builder.finish().ok().map(<[u8]>::to_vec)
    }
}

/// Whether a write of `value` to `id` is one this BMS applies.
fn validate_write(id: Identifier, value: &[u8]) -> Result<(), &'static str> {
    if !id.info().is_writable() {
        return Err("read-only identifier");
    }
    Value::check_wire(id, value).map_err(|error| match error {
        ValueError::Length { .. } => "wrong length",
        _ => "value out of range",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bmslink_proto::frame::Source;
    use bmslink_proto::{Command, FixedText, WriteValue};

    fn responder() -> BmsResponder {
        let mut bms = BmsResponder::from_info(&Info::parse(&[], 11).unwrap());
        bms.set(Identifier::Password, b"123456\0\0\0\0");
        bms.set(Identifier::ChargeMosfetSwitch, &[1]);
        bms
    }

    fn request(request: Request<'_>) -> Vec<u8> {
        let mut buf = [0u8; 64];
        request
            .emit(Header::request(request.command(), Source::Pc), &mut buf)
            .unwrap()
            .to_vec()
    }

    fn pair(password: Option<&[u8]>) -> Vec<u8> {
        request(Request::PairCode {
            password: password.map(FixedText::new),
        })
    }

    #[test]
    fn write_window_opens_with_the_password_and_closes_after_five_seconds() {
        let mut bms = responder();
        let off = WriteValue::parse(Identifier::ChargeMosfetSwitch, "off").unwrap();
        let t0 = Instant::from_millis(0);
        assert_eq!(
            bms.handle_request(t0, &request(off.request())),
            (None, Outcome::WriteIgnored)
        );
        assert_eq!(
            bms.handle_request(t0, &pair(Some(b"654321\0\0\0\0"))).1,
            Outcome::PairRefused
        );
        assert_eq!(bms.handle_request(t0, &pair(None)).1, Outcome::PairRefused);
        assert_eq!(
            bms.handle_request(t0, &pair(Some(b"123456\0\0\0\0"))),
            (None, Outcome::Paired)
        );
        let (reply, outcome) =
            bms.handle_request(t0 + Duration::from_secs(1), &request(off.request()));
        assert_eq!(
            outcome,
            Outcome::Written {
                id: Identifier::ChargeMosfetSwitch
            }
        );
        let reply = reply.unwrap();
        let message = Message::parse(&reply).unwrap();
        assert_eq!(message.header.command, Command::Write);
        assert!(matches!(
            message.body,
            Body::WriteAck {
                id: Identifier::ChargeMosfetSwitch,
                value: None
            }
        ));
        assert_eq!(bms.get(Identifier::ChargeMosfetSwitch), Some(&[0u8][..]));
        let late = t0 + PAIR_WINDOW + Duration::from_millis(1);
        assert_eq!(
            bms.handle_request(late, &request(off.request())).1,
            Outcome::WriteIgnored
        );
    }

    #[test]
    fn blank_pair_code_is_accepted_only_when_allowed() {
        let mut bms = responder();
        bms.accept_blank_pair_code(true);
        assert_eq!(
            bms.handle_request(Instant::ZERO, &pair(None)).1,
            Outcome::Paired
        );
    }

    #[test]
    fn out_of_range_and_read_only_writes_are_acknowledged_but_not_applied() {
        let mut bms = responder();
        bms.set(Identifier::Soc, &[50]);
        bms.handle_request(Instant::ZERO, &pair(Some(b"123456\0\0\0\0")));
        let soc = request(Request::Write {
            id: Identifier::Soc,
            value: &[99],
        });
        let (reply, outcome) = bms.handle_request(Instant::ZERO, &soc);
        assert!(reply.is_some());
        assert_eq!(
            outcome,
            Outcome::WriteRefused {
                id: Identifier::Soc,
                reason: "read-only identifier"
            }
        );
        let switch = request(Request::Write {
            id: Identifier::ChargeMosfetSwitch,
            value: &[7],
        });
        let (_, outcome) = bms.handle_request(Instant::ZERO, &switch);
        assert!(matches!(
            outcome,
            Outcome::WriteRefused {
                reason: "value out of range",
                ..
            }
        ));
        assert_eq!(bms.get(Identifier::Soc), Some(&[50u8][..]));
    }

    #[test]
    fn dormant_bms_answers_only_activation() {
        let mut bms = responder();
        bms.set_dormant(true);
        assert_eq!(
            bms.handle_request(Instant::ZERO, &request(Request::ReadAll)),
            (None, Outcome::Dormant)
        );
        assert_eq!(
            bms.handle_request(Instant::ZERO, &request(Request::Activate)),
            (None, Outcome::Activated)
        );
        let reply = bms
            .handle_request(Instant::ZERO, &request(Request::ReadAll))
            .0
            .unwrap();
        let message = Message::parse(&reply).unwrap();
        let Body::Data(info) = message.body else {
            panic!()
        };
        assert_eq!(info.len(), 2);
    }
}
