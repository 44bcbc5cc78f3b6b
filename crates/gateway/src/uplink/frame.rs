//! The frames the uplink sends, built from a rack's latest reading with the same codec as every
//! other peer: the active upload (transport 02, source 02 data box), the answers to the
//! platform's read-all and read requests (transport 01), and the write acknowledgement
//! (command 02 echoing the identifier and the value read back).
//!
//! A reading's fields are re-encoded in the identifier table's order (the order real BMSes
//! report them in): the cell voltages from [`PackSnapshot::cells`], every other field from
//! the wire bytes the rack reported ([`PackSnapshot::fields`]), so the current keeps the
//! encoding its 0xC0 protocol version says.

use bmslink_proto::frame::{BufferTooSmall, FrameBuilder, Header, MAX_FRAME_LEN};
use bmslink_proto::value::{CellVoltages, MAX_CELLS};
use bmslink_proto::{Command, Identifier, RecordNumber, Source, TerminalId, Transport, TABLE};

use crate::rack::PackSnapshot;

/// The header of an active upload of `terminal` with record sequence `sequence`.
pub fn upload_header(terminal: TerminalId, sequence: u32) -> Header {
    Header {
        terminal,
        command: Command::ReadAll,
        source: Source::DataBox,
        transport: Transport::ActiveUpload,
        record: RecordNumber::new(0, sequence),
    }
}

/// The header of the answer to `request`, from `terminal`: the request's command and record
/// number, source BMS, transport response (`nw.md`: "A reply echoes the request's command
/// byte, with source 00 and transport type 01").
pub fn reply_header(request: Header, terminal: TerminalId) -> Header {
    Header {
        terminal,
        ..request.reply()
    }
}

/// The wire bytes of one field of `reading` (the cell voltages encoded from its cells).
pub fn field_bytes(reading: &PackSnapshot, id: Identifier) -> Option<Vec<u8>> {
    if id != Identifier::CellVoltages {
        return reading.field(id).map(<[u8]>::to_vec);
    }
    let mut cells = [0u8; 1 + 3 * MAX_CELLS];
    let len = CellVoltages::encode(&reading.cells, &mut cells).ok()?;
    Some(cells[..len].to_vec())
}

/// A frame with `header` carrying every field of `reading` (`only`: just that one).
pub fn reading_frame(
    header: Header,
    reading: &PackSnapshot,
    only: Option<Identifier>,
) -> Result<Vec<u8>, BufferTooSmall> {
    let mut buffer = [0u8; MAX_FRAME_LEN];
    let mut builder = FrameBuilder::new(&mut buffer, header)?;
    let wanted = TABLE
        .iter()
        .map(|row| row.id)
        .filter(|id| only.is_none_or(|one| one == *id));
    for id in wanted {
        if let Some(bytes) = field_bytes(reading, id) {
            builder.push_field(id, &bytes)?;
        }
    }
    builder.finish().map(<[u8]>::to_vec)
}

/// The acknowledgement of a write of `id`: command 02 with the identifier, and the value as
/// read back when there is one.
pub fn write_ack(
    header: Header,
    id: Identifier,
    read_back: Option<&[u8]>,
) -> Result<Vec<u8>, BufferTooSmall> {
    let mut buffer = [0u8; 64];
    let mut builder = FrameBuilder::new(&mut buffer, header)?;
    match read_back {
        Some(value) => builder.push_field(id, value)?,
        None => builder.push(&[id.code()])?,
    };
    builder.finish().map(<[u8]>::to_vec)
}
