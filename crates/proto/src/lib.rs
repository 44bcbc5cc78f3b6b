//! # bmslink-proto
//!
//! The NW frame protocol between a monitoring platform (or any controller) and a BMS, as bytes
//! and typed values. `#![no_std]`, no allocation, no I/O, no clock: the same code runs in the
//! simulator (BMS side), the gateway and the platform (controller side), on a microcontroller or
//! in a fuzzer.
//!
//! Layers, from bytes up:
//!
//! - [`frame`]: the frame (`4E 57`, LENGTH, terminal id, command, source, transport type, info,
//!   record number, end `68`, checksum) as a zero-copy view, a parsed [`Header`] and a
//!   [`FrameBuilder`](frame::FrameBuilder);
//! - [`deframer`]: a streaming [`Deframer`] that resynchronises one byte at a time;
//! - [`ident`]: the identifier table, single source of truth for every identifier's length,
//!   access, unit, scaling and range;
//! - [`value`]: typed [`Value`]s in engineering units, encoding with range validation;
//! - [`info`]: the identifier + value walk of an info field with structure checks;
//! - [`message`]: what a frame means ([`Message`], [`Request`], [`Body`]);
//! - [`units`]: unit newtypes;
//! - [`can`]: the battery <-> inverter CAN frames (Pylontech / SMA / Victron family), inverter
//!   profiles and their safe states;
//! - [`slcan`]: the SLCAN (Lawicel) text protocol of USB-CAN adapters, with a streaming decoder.
//!
//! ```
//! use bmslink_proto::{Body, Identifier, Message, Value};
//! // Vector A01 (a real 14-cell reply) is long; a read-all request shows the shape:
//! let bytes = [0x4E, 0x57, 0x00, 0x13, 0, 0, 0, 0, 0x06, 0x03, 0x00, 0x00, 0, 0, 0, 0, 0x68, 0, 0, 0x01, 0x29];
//! let message = Message::parse(&bytes)?;
//! assert!(matches!(message.body, Body::Request(bmslink_proto::Request::ReadAll)));
//! # Ok::<(), bmslink_proto::Error>(())
//! ```
//!
//! Guarantees: no function here panics on any input; every error is a typed value that carries
//! the byte offset of the fault (and the field, for value errors).
//!
//! Features: `std` implements `std::error::Error` for the error types; `test-vectors` adds
//! [`vectors`](crate::vectors), the real captured frames, for other crates' tests.

#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![warn(missing_docs)]

pub mod can;
pub mod deframer;
pub mod frame;
pub mod ident;
pub mod info;
pub mod message;
pub mod slcan;
pub mod units;
pub mod value;
#[cfg(feature = "test-vectors")]
pub mod vectors;

pub use deframer::{DeframeError, Deframer, Event, Stats};
pub use frame::{Command, Frame, FrameError, Header, RecordNumber, Source, TerminalId, Transport};
pub use ident::{Access, Identifier, IdentifierInfo, Unit, TABLE};
pub use info::{Field, Info, InfoError, Values};
pub use message::{Body, Error, Message, Request, RequestError, WriteValue};
pub use units::{Celsius, Milliamps, Millivolts};
pub use value::{
    BatteryType, CellVoltages, Current, CurrentEncoding, FixedText, Number, Status, Temperature,
    Value, ValueError, Warnings,
};

/// Vector A03 for the crate's own unit tests (which do not enable `test-vectors`).
#[cfg(test)]
mod vectors_for_tests {
    pub fn a03() -> std::vec::Vec<u8> {
        let file = include_str!("../tests/data/nw-frames.txt");
        let block = file.split("=== A03").nth(1).unwrap_or_default();
        let hex = block
            .split("hex:")
            .nth(1)
            .unwrap_or_default()
            .split("decoded:")
            .next()
            .unwrap_or_default();
        hex.split_whitespace()
            .filter_map(|b| u8::from_str_radix(b, 16).ok())
            .collect()
    }
}
