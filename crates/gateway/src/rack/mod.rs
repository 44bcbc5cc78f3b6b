//! The rack BMSes: one owner task per link ([`poller`]) reads its BMS every poll interval and
//! carries out writes; each reply becomes a [`PackSnapshot`] (bmslink-core); [`RackHandle`] is how the
//! rest of the gateway (the EMS server) asks a rack for a write.

pub mod describe;
pub mod poller;

use std::fmt;
use std::sync::Arc;

use bmslink_core::session::{LinkState, OperationError};
use bmslink_proto::message::PASSWORD_LEN;
use bmslink_proto::{Identifier, WriteValue};
use tokio::sync::{mpsc, oneshot};

pub use bmslink_core::snapshot::{PackSnapshot, SnapshotError};

/// What a rack's poller publishes after every poll and every link change.
#[derive(Clone, Debug)]
pub struct RackUpdate {
    /// Index of the rack in the configuration.
    pub rack: usize,
    /// The link's state now.
    pub link: LinkState,
    /// The latest good reading, if any.
    pub reading: Option<Arc<PackSnapshot>>,
}

/// A write the poller carries out: pair code (with the rack's password), write, read-back.
#[derive(Debug)]
pub struct WriteRequest {
    /// The range-checked value.
    pub value: WriteValue,
    /// Where the result goes.
    pub reply: oneshot::Sender<Result<WriteOutcome, WriteError>>,
}

/// A confirmed write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The identifier.
    pub id: Identifier,
    /// Value bytes before the write, if the BMS reported them.
    pub old: Option<Vec<u8>>,
    /// Value bytes read back, equal to what was written (or `None` where the BMS does not
    /// report the identifier).
    pub read_back: Option<Vec<u8>>,
}

/// Why a write did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The BMS acknowledged but reads back another value: it refused.
    Refused {
        /// Bytes written.
        written: Vec<u8>,
        /// Bytes read back.
        read_back: Vec<u8>,
    },
    /// No reply (link down, wrong password: the BMS ignores the write).
    NoReply(String),
    /// The rack's poller is not running (the gateway is stopping).
    Unavailable,
    /// Too many writes queued for this rack.
    Busy,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Refused { written, read_back } => write!(
                f,
                "the BMS refused the value: wrote {written:02X?}, reads back {read_back:02X?}"
            ),
            WriteError::NoReply(text) => f.write_str(text),
            WriteError::Unavailable => f.write_str("the rack's link task is not running"),
            WriteError::Busy => f.write_str("too many writes are waiting for this rack"),
        }
    }
}

impl std::error::Error for WriteError {}

impl WriteError {
    pub(crate) fn from_operation(error: &OperationError, link: &str) -> WriteError {
        match error {
            OperationError::WriteNotApplied {
                written, read_back, ..
            } => WriteError::Refused {
                written: written.clone(),
                read_back: read_back.clone(),
            },
            OperationError::NoReply {
                stage, attempts, ..
            } => WriteError::NoReply(format!(
                "no reply from {link} to the {} after {attempts} attempts",
                stage.name()
            )),
        }
    }
}

/// Writes waiting per rack before [`WriteError::Busy`].
pub const WRITE_QUEUE: usize = 8;

/// How the gateway asks a rack's poller to write.
#[derive(Clone, Debug)]
pub struct RackHandle {
    /// Rack index.
    pub rack: usize,
    /// Rack name.
    pub name: String,
    writes: mpsc::Sender<WriteRequest>,
}

impl RackHandle {
    /// A handle and the receiving end its poller serves.
    pub fn new(rack: usize, name: String) -> (RackHandle, mpsc::Receiver<WriteRequest>) {
        let (writes, receiver) = mpsc::channel(WRITE_QUEUE);
        (RackHandle { rack, name, writes }, receiver)
    }

    /// Writes one setting and waits for the read-back.
    pub async fn write(&self, value: WriteValue) -> Result<WriteOutcome, WriteError> {
        let (reply, result) = oneshot::channel();
        self.writes
            .try_send(WriteRequest { value, reply })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => WriteError::Busy,
                mpsc::error::TrySendError::Closed(_) => WriteError::Unavailable,
            })?;
        result.await.map_err(|_| WriteError::Unavailable)?
    }
}

/// A rack's parameter-change password (0xB2), padded as the pair code carries it.
pub fn password_bytes(password: &str) -> Option<[u8; PASSWORD_LEN]> {
    if password.len() > PASSWORD_LEN || !password.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return None;
    }
    let mut padded = [0u8; PASSWORD_LEN];
    padded[..password.len()].copy_from_slice(password.as_bytes());
    Some(padded)
}
