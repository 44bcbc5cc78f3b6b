//! The CAN bus to the inverter: one small [`CanTransport`] trait (send a frame, receive the next
//! one) and its SLCAN adapter implementation, [`Slcan`], over any tokio byte stream.
//!
//! ```text
//! gateway --(SETUP_500K: C\r S6\r O\r)--> adapter     on open; OK (\r) / BEL replies tolerated
//! gateway --(tIIILDD..\r)---------------> adapter     send
//! gateway <-(tIIILDD..[TTTT]\r)---------- adapter     receive: standard data frames
//! ```
//!
//! Receiving returns standard (11-bit) data frames only: the inverter family ignores 29-bit ids
//! (inverter-can.md, "Bus rules"), so extended frames are counted and skipped. Adapter replies
//! (OK, `z`, status, version) are skipped; BEL errors and malformed lines are logged with the
//! reason and counted ([`SlcanStats`]). The byte-level work is `bmslink_proto::slcan`'s; this
//! module only moves bytes.
//!
//! A host's setup commands arriving here (`C`, `S6`, `O`: when the other end is a host rather
//! than an adapter, as in the peer test) are malformed adapter lines: logged, counted, skipped.
//! Nothing answers them: python-can 4.6.1's slcan host, for one, does not wait for acks.
//!
//! The SocketCAN implementation is [`crate::socketcan`] (Linux); [`crate::can_bus::CanBus`]
//! opens whichever of the two the configuration names.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;

use bmslink_proto::can::CanFrame;
use bmslink_proto::slcan::{self, Decoder, Response, SlcanError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

use crate::config::SlcanPort;
use crate::line::{self, ByteLine};

/// Serial settings of an SLCAN adapter: 115200 8N1 (USB adapters ignore the rate).
pub const SERIAL_BAUD: u32 = 115_200;

/// A CAN bus: frames out, frames in.
pub trait CanTransport {
    /// Sends one standard data frame.
    fn send(&mut self, frame: &CanFrame) -> impl Future<Output = Result<(), CanLinkError>> + Send;

    /// The next standard data frame from the bus. Cancel safe: dropping the future loses no
    /// frame, so it can sit in a `select!`.
    fn receive(&mut self) -> impl Future<Output = Result<CanFrame, CanLinkError>> + Send;
}

/// Why the CAN link failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CanLinkError {
    /// The port or connection could not be opened.
    Open {
        /// The port, as configured.
        port: String,
        /// Why.
        source: io::Error,
    },
    /// Reading or writing failed.
    Io(io::Error),
    /// The other end closed the line.
    Closed,
    /// No network interface has the configured SocketCAN name.
    NoInterface {
        /// The interface, as configured ("can0").
        interface: String,
        /// The configured bit rate, for the hint.
        bitrate: u32,
    },
    /// The SocketCAN interface exists but no CAN socket could be bound to it.
    SocketCanOpen {
        /// The interface, as configured.
        interface: String,
        /// Why.
        source: io::Error,
    },
    /// SocketCAN was configured on a system without it (it is Linux only).
    SocketCanUnsupported {
        /// The interface, as configured.
        interface: String,
    },
}

impl fmt::Display for CanLinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanLinkError::Open { port, source } => write!(
                f,
                "cannot open the SLCAN adapter at {port}: {source} (check the path or address, \
                 that no other program holds it, and that your user may use it)"
            ),
            CanLinkError::Io(error) => write!(f, "CAN link I/O error: {error}"),
            CanLinkError::Closed => write!(f, "the CAN adapter closed the line"),
            CanLinkError::NoInterface { interface, bitrate } => write!(
                f,
                "no CAN interface {interface}: check `ip link show {interface}`, and that it is \
                 up at the inverter's bit rate: `ip link set {interface} up type can bitrate \
                 {bitrate}`"
            ),
            CanLinkError::SocketCanOpen { interface, source } => write!(
                f,
                "cannot open a CAN socket on {interface}: {source} (check that it is a CAN \
                 interface (`ip -details link show {interface}`) and that the kernel has \
                 SocketCAN: `modprobe can_raw`)"
            ),
            CanLinkError::SocketCanUnsupported { interface } => write!(
                f,
                "SocketCAN interface {interface} configured, but SocketCAN exists only on Linux: \
                 use an SLCAN adapter"
            ),
        }
    }
}

impl std::error::Error for CanLinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CanLinkError::Open { source, .. }
            | CanLinkError::Io(source)
            | CanLinkError::SocketCanOpen { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<io::Error> for CanLinkError {
    fn from(error: io::Error) -> Self {
        CanLinkError::Io(error)
    }
}

/// What the SLCAN transport has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlcanStats {
    /// Standard data frames received.
    pub frames_received: u64,
    /// Standard data frames sent.
    pub frames_sent: u64,
    /// Extended (29-bit) frames skipped.
    pub extended_skipped: u64,
    /// BEL error replies.
    pub bel_errors: u64,
    /// Lines that did not parse (host commands among them).
    pub malformed: u64,
}

/// An SLCAN adapter over a byte stream.
pub struct Slcan<L> {
    line: L,
    decoder: Decoder,
    pending: VecDeque<CanFrame>,
    stats: SlcanStats,
    name: String,
}

impl Slcan<Box<dyn ByteLine>> {
    /// Opens the adapter at `port` (serial at 115200 8N1, or a TCP bridge) and starts a
    /// 500 kbit/s session.
    pub async fn open(port: &SlcanPort) -> Result<Self, CanLinkError> {
        let (line, name) = match port {
            SlcanPort::Serial(path) => {
                let name = path.display().to_string();
                let line =
                    line::open_serial(path, SERIAL_BAUD).map_err(|source| CanLinkError::Open {
                        port: name.clone(),
                        source,
                    })?;
                (line, name)
            }
            SlcanPort::Tcp(address) => {
                let name = format!("tcp://{address}");
                let line =
                    line::connect_tcp(address)
                        .await
                        .map_err(|source| CanLinkError::Open {
                            port: name.clone(),
                            source,
                        })?;
                (line, name)
            }
        };
        Slcan::start(line, name).await
    }
}

impl<L: ByteLine> Slcan<L> {
    /// Wraps `line` (already open) and writes the 500 kbit/s setup: close, bit rate, open. The
    /// adapter's OK / BEL replies to them are read later, by [`receive`](CanTransport::receive),
    /// and tolerated (a BEL to the first close only means the channel was already closed).
    pub async fn start(line: L, name: impl Into<String>) -> Result<Self, CanLinkError> {
        let mut slcan = Slcan::wrap(line, name.into());
        for command in slcan::SETUP_500K {
            slcan.line.write_all(command).await?;
        }
        slcan.line.flush().await?;
        debug!(port = %slcan.name, "SLCAN setup sent (close, 500 kbit/s, open)");
        Ok(slcan)
    }

    fn wrap(line: L, name: String) -> Self {
        Slcan {
            line,
            decoder: Decoder::new(),
            pending: VecDeque::new(),
            stats: SlcanStats::default(),
            name,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SlcanStats {
        self.stats
    }

    /// Decodes `bytes`, queueing standard frames and logging the rest.
    fn take_bytes(&mut self, bytes: &[u8]) {
        let mut events = Vec::new();
        self.decoder.feed(bytes, |event| events.push(event));
        for event in events {
            self.take_event(event);
        }
    }

    fn take_event(&mut self, event: Result<Response, SlcanError>) {
        match event {
            Ok(Response::Frame { frame, .. }) => {
                self.stats.frames_received += 1;
                self.pending.push_back(frame);
            }
            Ok(Response::Extended { frame, .. }) => {
                self.stats.extended_skipped += 1;
                debug!(port = %self.name, id = frame.id, "extended CAN frame skipped (11-bit ids only)");
            }
            Ok(Response::Error) => {
                self.stats.bel_errors += 1;
                warn!(port = %self.name, "SLCAN adapter replied BEL (command refused or queue full)");
            }
            Ok(other) => self.take_reply(other),
            Err(error) => self.take_error(error),
        }
    }

    fn take_reply(&mut self, response: Response) {
        debug!(port = %self.name, ?response, "SLCAN reply skipped");
    }

    fn take_error(&mut self, error: SlcanError) {
        self.stats.malformed += 1;
        warn!(port = %self.name, "malformed SLCAN line skipped: {error}");
    }
}

impl<L: ByteLine> CanTransport for Slcan<L> {
    async fn send(&mut self, frame: &CanFrame) -> Result<(), CanLinkError> {
        self.line.write_all(slcan::encode(frame).as_bytes()).await?;
        self.line.flush().await?;
        self.stats.frames_sent += 1;
        Ok(())
    }

    async fn receive(&mut self) -> Result<CanFrame, CanLinkError> {
        let mut buffer = [0u8; 256];
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Ok(frame);
            }
            // The only await that can be cancelled half-way; `read` is cancel safe.
            let n = self.line.read(&mut buffer).await?;
            if n == 0 {
                return Err(CanLinkError::Closed);
            }
            self.take_bytes(&buffer[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use bmslink_proto::can::id;

    fn frame() -> CanFrame {
        CanFrame::new(id::REQUESTS, &[0xC0, 0x00]).unwrap()
    }

    #[tokio::test]
    async fn open_sends_the_setup_and_send_writes_a_t_line() {
        let (ours, mut adapter) = tokio::io::duplex(256);
        let mut link = Slcan::start(ours, "test").await.unwrap();
        link.send(&frame()).await.unwrap();
        drop(link);
        let mut written = Vec::new();
        adapter.read_to_end(&mut written).await.unwrap();
        assert_eq!(written, b"C\rS6\rO\rt35C2C000\r");
    }

    #[tokio::test]
    async fn receive_skips_replies_extended_frames_bel_and_malformed_lines() {
        let (ours, mut adapter) = tokio::io::duplex(256);
        let mut link = Slcan::start(ours, "test").await.unwrap();
        adapter
            .write_all(b"\r\x07\rz\rT1FFFFFFF2ABCD\rt35Z\rt35C2C000\r")
            .await
            .unwrap();
        assert_eq!(link.receive().await.unwrap(), frame());
        let stats = link.stats();
        assert_eq!(
            (
                stats.frames_received,
                stats.extended_skipped,
                stats.bel_errors,
                stats.malformed
            ),
            (1, 1, 1, 1)
        );
    }

    #[tokio::test]
    async fn a_closed_line_ends_receive() {
        let (ours, adapter) = tokio::io::duplex(256);
        let mut link = Slcan::start(ours, "test").await.unwrap();
        drop(adapter);
        assert!(matches!(link.receive().await, Err(CanLinkError::Closed)));
    }
}
