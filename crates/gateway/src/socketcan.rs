//! The CAN bus to the inverter through a Linux SocketCAN interface ("can0"): a
//! [`CanTransport`] over a raw CAN socket (the `socketcan` crate, on tokio).
//!
//! ```text
//! gateway --write(can_frame)--> raw CAN socket bound to can0 --> inverter     send
//! gateway <-read(can_frame)---- raw CAN socket bound to can0 <-- inverter     receive
//! ```
//!
//! Receiving returns standard (11-bit) data frames only, as [`Slcan`](crate::can_link::Slcan)
//! does: the inverter family ignores 29-bit ids (inverter-can.md, "Bus rules"), so extended
//! frames are counted and skipped; remote frames are counted and skipped; error frames (bus
//! off, error passive, ...) are logged with their decoded cause and counted
//! ([`SocketCanStats`]).
//!
//! The bit rate of a SocketCAN interface belongs to the system (`ip link set can0 up type can
//! bitrate 500000`), not to this program: on open, the interface's rate is read over netlink
//! and compared with the configured one, and a mismatch or an unknown rate is logged as a
//! reminder.
//!
//! Tested here only for the errors of opening: this machine's kernel has no SocketCAN (no
//! `can`, `can_raw` or `vcan` modules), so no frame can go through a CAN socket. The frame
//! conversions are unit-tested; the send and receive paths are exercised on hardware only.

use std::fmt;
use std::io;

use ::socketcan::tokio::CanSocket;
use ::socketcan::{
    CanDataFrame, CanErrorFrame, CanFrame as SocketFrame, CanInterface, EmbeddedFrame, Id,
    StandardId,
};
use bmslink_proto::can::{CanFrame, CanId};
use tracing::{debug, info, warn};

use crate::can_link::{CanLinkError, CanTransport};

/// `ENODEV` (Linux `asm-generic/errno-base.h`): what `if_nametoindex` reports for an unknown
/// interface name.
const ENODEV: i32 = 19;

/// What the SocketCAN transport has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketCanStats {
    /// Standard data frames received.
    pub frames_received: u64,
    /// Standard data frames sent.
    pub frames_sent: u64,
    /// Extended (29-bit) frames skipped.
    pub extended_skipped: u64,
    /// Remote (RTR) frames skipped.
    pub remote_skipped: u64,
    /// Error frames reported by the controller.
    pub error_frames: u64,
}

/// A raw CAN socket bound to one SocketCAN interface.
pub struct SocketCan {
    socket: CanSocket,
    sorter: FrameSorter,
}

impl fmt::Debug for SocketCan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketCan")
            .field("interface", &self.sorter.interface)
            .field("stats", &self.sorter.stats)
            .finish_non_exhaustive()
    }
}

impl SocketCan {
    /// Binds a raw CAN socket to `interface`; `bitrate` is the configured rate, compared with
    /// the interface's (which the system sets) and logged.
    pub async fn open(interface: &str, bitrate: u32) -> Result<SocketCan, CanLinkError> {
        let socket =
            CanSocket::open(interface).map_err(|source| open_error(interface, bitrate, source))?;
        log_bitrate(interface, bitrate);
        info!(interface, "SocketCAN interface opened");
        Ok(SocketCan {
            socket,
            sorter: FrameSorter::new(interface),
        })
    }

    /// Counters so far (sent frames are counted here too).
    pub fn stats(&self) -> SocketCanStats {
        self.sorter.stats
    }

    /// The interface's name.
    pub fn interface(&self) -> &str {
        &self.sorter.interface
    }
}

/// Sorts received frames: standard data frames through, the rest counted and logged.
#[derive(Debug)]
struct FrameSorter {
    interface: String,
    stats: SocketCanStats,
}

impl FrameSorter {
    fn new(interface: &str) -> Self {
        FrameSorter {
            interface: interface.to_string(),
            stats: SocketCanStats::default(),
        }
    }

    /// Counts and logs a frame that is not a standard data frame; returns a standard data
    /// frame as ours.
    fn take_frame(&mut self, frame: SocketFrame) -> Option<CanFrame> {
        match frame {
            SocketFrame::Data(data) if data.is_extended() => {
                self.stats.extended_skipped += 1;
                debug!(interface = %self.interface, id = ?data.id(), "extended CAN frame skipped (11-bit ids only)");
                None
            }
            SocketFrame::Data(data) => self.take_data(&data),
            SocketFrame::Remote(remote) => {
                self.stats.remote_skipped += 1;
                debug!(interface = %self.interface, id = ?remote.id(), "remote CAN frame skipped");
                None
            }
            SocketFrame::Error(error) => {
                self.take_error(error);
                None
            }
        }
    }

    fn take_data(&mut self, data: &CanDataFrame) -> Option<CanFrame> {
        match from_socket(data) {
            Some(frame) => {
                self.stats.frames_received += 1;
                Some(frame)
            }
            None => {
                warn!(interface = %self.interface, id = ?data.id(), len = data.data().len(), "CAN frame that is not a classic standard frame skipped");
                None
            }
        }
    }

    fn take_error(&mut self, error: CanErrorFrame) {
        self.stats.error_frames += 1;
        warn!(interface = %self.interface, "CAN error frame: {}", error.into_error());
    }
}

/// Sorts a failed open into a missing interface and the rest.
fn open_error(interface: &str, bitrate: u32, source: io::Error) -> CanLinkError {
    if source.raw_os_error() == Some(ENODEV) {
        CanLinkError::NoInterface {
            interface: interface.to_string(),
            bitrate,
        }
    } else {
        CanLinkError::SocketCanOpen {
            interface: interface.to_string(),
            source,
        }
    }
}

/// Logs the interface's bit rate against the configured one (the system sets it, not us).
fn log_bitrate(interface: &str, configured: u32) {
    let actual = CanInterface::open(interface).and_then(|found| found.bit_rate());
    match actual {
        Ok(Some(rate)) if rate == configured => {
            info!(
                interface,
                bitrate = rate,
                "CAN interface bit rate matches the configuration"
            );
        }
        Ok(Some(rate)) => warn!(
            interface,
            "CAN interface {interface} runs at {rate} bit/s, but the inverter is configured for \
             {configured} bit/s: the system sets the rate (`ip link set {interface} down; ip link \
             set {interface} up type can bitrate {configured}`)"
        ),
        Ok(None) | Err(_) => info!(
            interface,
            "bit rate of {interface} unknown here; it is the system's (`ip -details link show \
             {interface}`), and must be the inverter's {configured} bit/s"
        ),
    }
}

/// Our frame from a SocketCAN data frame; `None` for an extended id or more than 8 bytes.
fn from_socket(data: &CanDataFrame) -> Option<CanFrame> {
    let Id::Standard(id) = data.id() else {
        return None;
    };
    let id = CanId::new(id.as_raw())?;
    CanFrame::new(id, data.data()).ok()
}

/// A SocketCAN frame from ours (always possible: 11-bit id, at most 8 bytes).
fn to_socket(frame: &CanFrame) -> Option<SocketFrame> {
    let id = StandardId::new(frame.id().raw())?;
    SocketFrame::new(id, frame.data())
}

impl CanTransport for SocketCan {
    async fn send(&mut self, frame: &CanFrame) -> Result<(), CanLinkError> {
        let outgoing = to_socket(frame).ok_or_else(|| {
            CanLinkError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame {frame:?} has no SocketCAN form"),
            ))
        })?;
        self.socket.write_frame(outgoing).await?;
        self.sorter.stats.frames_sent += 1;
        Ok(())
    }

    async fn receive(&mut self) -> Result<CanFrame, CanLinkError> {
        loop {
            // Cancel safe: the frame is read only once the socket is readable, in one call.
            let frame = self.socket.read_frame().await?;
            if let Some(frame) = self.sorter.take_frame(frame) {
                return Ok(frame);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use ::socketcan::ExtendedId;
    use bmslink_proto::can::id;

    #[tokio::test]
    async fn a_missing_interface_says_what_to_check() {
        let error = SocketCan::open("bmslinkcan9", 500_000).await.unwrap_err();
        assert!(
            matches!(error, CanLinkError::NoInterface { ref interface, bitrate: 500_000 } if interface == "bmslinkcan9"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "no CAN interface bmslinkcan9: check `ip link show bmslinkcan9`, and that it is up \
             at the inverter's bit rate: `ip link set bmslinkcan9 up type can bitrate 500000`"
        );
    }

    /// `lo` exists everywhere but is no CAN interface; here the kernel also lacks SocketCAN.
    /// Either way the open fails with an error naming the interface.
    #[tokio::test]
    async fn an_interface_that_is_not_can_is_refused_with_its_name() {
        let error = SocketCan::open("lo", 500_000).await.unwrap_err();
        assert!(
            matches!(error, CanLinkError::SocketCanOpen { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("cannot open a CAN socket on lo"));
    }

    #[test]
    fn frames_convert_both_ways() {
        let ours = CanFrame::new(id::REQUESTS, &[0xC0, 0x00]).unwrap();
        let SocketFrame::Data(data) = to_socket(&ours).unwrap() else {
            panic!("not a data frame");
        };
        assert_eq!(data.id(), Id::Standard(StandardId::new(0x35C).unwrap()));
        assert_eq!(data.data(), [0xC0, 0x00]);
        assert_eq!(from_socket(&data), Some(ours));
    }

    #[test]
    fn only_standard_data_frames_come_through_and_the_rest_is_counted() {
        let mut sorter = FrameSorter::new("can0");
        let standard = CanFrame::new(id::REQUESTS, &[0xC0, 0x00]).unwrap();
        let extended = SocketFrame::new(ExtendedId::new(0x18FF_50E5).unwrap(), &[1]).unwrap();
        let remote = SocketFrame::new_remote(StandardId::new(0x305).unwrap(), 0).unwrap();
        // Bus off (CAN_ERR_BUSOFF, 0x40).
        let error = SocketFrame::Error(CanErrorFrame::new_error(0x40, &[]).unwrap());
        assert_eq!(sorter.take_frame(extended), None);
        assert_eq!(sorter.take_frame(remote), None);
        assert_eq!(sorter.take_frame(error), None);
        assert_eq!(
            sorter.take_frame(to_socket(&standard).unwrap()),
            Some(standard)
        );
        assert_eq!(
            sorter.stats,
            SocketCanStats {
                frames_received: 1,
                frames_sent: 0,
                extended_skipped: 1,
                remote_skipped: 1,
                error_frames: 1,
            }
        );
    }

    #[test]
    fn extended_frames_have_no_standard_form() {
        let id = ExtendedId::new(0x1FFF_FFFF).unwrap();
        let data = CanDataFrame::new(id, &[1, 2]).unwrap();
        assert_eq!(from_socket(&data), None);
    }
}
