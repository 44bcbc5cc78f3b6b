//! SLCAN adapter output and inverter CAN frames from untrusted bytes.
//!
//! The first input byte chooses how the rest is cut into chunks. Every chunking goes through
//! `slcan::Decoder::feed`; every standard frame it yields is decoded as an inverter-family
//! message, which must re-encode to a frame that decodes to the same message, and every frame
//! must survive `slcan::encode` -> decode unchanged. Nothing may panic, and the decoder's byte
//! count must match the input.

#![no_main]

use bmslink_proto::can::{BatteryMessage, CanFrame};
use bmslink_proto::slcan::{self, Decoder, Response};
use libfuzzer_sys::fuzz_target;

fn frames_of(bytes: &[u8]) -> Vec<CanFrame> {
    let mut frames = Vec::new();
    let mut decoder = Decoder::new();
    decoder.feed(bytes, |event| {
        if let Ok(Response::Frame { frame, .. }) = event {
            frames.push(frame);
        }
    });
    frames
}

fn check_frame(frame: &CanFrame) {
    if let Ok(message) = BatteryMessage::decode(frame) {
        let again = BatteryMessage::decode(&message.encode());
        assert_eq!(again, Ok(message), "{frame}");
    }
    let line = slcan::encode(frame);
    assert_eq!(frames_of(line.as_bytes()), vec![*frame], "{frame}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, stream)) = data.split_first() else { return };
    let chunk = usize::from(shape % 32) + 1;
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        decoder.feed(piece, |event| {
            if let Ok(Response::Frame { frame, .. }) = event {
                frames.push(frame);
            }
        });
    }
    assert_eq!(decoder.stats().bytes, stream.len() as u64);
    // The same bytes in one piece give the same frames.
    assert_eq!(frames_of(stream), frames);
    for frame in &frames {
        check_frame(frame);
    }
});
