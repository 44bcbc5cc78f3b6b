//! The CAN bus the configuration names, opened as one type: [`CanBus`], an SLCAN adapter or a
//! SocketCAN interface, which the daemon hands to [`run_pcs_link`](crate::pcs::run_pcs_link).
//!
//! An enum rather than a `Box<dyn CanTransport>`: the trait's methods return `impl Future`, so
//! it is not object safe; the enum dispatches with one `match` per call.

use std::fmt;

use bmslink_proto::can::CanFrame;
use tracing::info;

use crate::can_link::{CanLinkError, CanTransport, Slcan};
use crate::config::{CanLink, InverterConfig};
use crate::line::ByteLine;
#[cfg(target_os = "linux")]
use crate::socketcan::SocketCan;

/// The CAN bus to the inverter, whichever kind the configuration names.
#[non_exhaustive]
pub enum CanBus {
    /// An SLCAN adapter on a serial port or a TCP bridge.
    Slcan(Slcan<Box<dyn ByteLine>>),
    /// A Linux SocketCAN interface.
    #[cfg(target_os = "linux")]
    SocketCan(SocketCan),
}

impl CanBus {
    /// Opens the `[inverter]` section's CAN link: the SLCAN adapter (set up for 500 kbit/s), or
    /// the SocketCAN interface (its bit rate is the system's; the configured one is compared
    /// and logged).
    pub async fn open(inverter: &InverterConfig) -> Result<CanBus, CanLinkError> {
        match &inverter.can {
            CanLink::Slcan(port) => {
                let bus = Slcan::open(port).await?;
                info!(port = ?port, "SLCAN adapter opened");
                Ok(CanBus::Slcan(bus))
            }
            CanLink::SocketCan { interface } => open_socketcan(interface, inverter.bitrate).await,
        }
    }
}

impl fmt::Debug for CanBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanBus::Slcan(bus) => f.debug_tuple("Slcan").field(&bus.stats()).finish(),
            #[cfg(target_os = "linux")]
            CanBus::SocketCan(bus) => f.debug_tuple("SocketCan").field(bus).finish(),
        }
    }
}

#[cfg(target_os = "linux")]
async fn open_socketcan(interface: &str, bitrate: u32) -> Result<CanBus, CanLinkError> {
    SocketCan::open(interface, bitrate)
        .await
        .map(CanBus::SocketCan)
}

#[cfg(not(target_os = "linux"))]
async fn open_socketcan(interface: &str, _bitrate: u32) -> Result<CanBus, CanLinkError> {
    Err(CanLinkError::SocketCanUnsupported {
        interface: interface.to_string(),
    })
}

impl CanTransport for CanBus {
    async fn send(&mut self, frame: &CanFrame) -> Result<(), CanLinkError> {
        match self {
            CanBus::Slcan(bus) => bus.send(frame).await,
            #[cfg(target_os = "linux")]
            CanBus::SocketCan(bus) => bus.send(frame).await,
        }
    }

    async fn receive(&mut self) -> Result<CanFrame, CanLinkError> {
        match self {
            CanBus::Slcan(bus) => bus.receive().await,
            #[cfg(target_os = "linux")]
            CanBus::SocketCan(bus) => bus.receive().await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Duration;

    use bmslink_proto::can::{id, Options, Profile};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;
    use crate::config::SlcanPort;

    fn inverter(can: CanLink) -> InverterConfig {
        InverterConfig {
            profile: Profile::PylontechV12,
            options: Options::default(),
            can,
            bitrate: 500_000,
            send_interval: Duration::from_secs(1),
            keepalive_timeout: None,
            silence_is_unsafe: false,
        }
    }

    #[tokio::test]
    async fn an_slcan_tcp_bridge_opens_as_a_can_bus_and_sends() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let config = inverter(CanLink::Slcan(SlcanPort::Tcp(address)));
        let (bus, accepted) = tokio::join!(CanBus::open(&config), listener.accept());
        let mut bus = bus.unwrap();
        let (mut adapter, _) = accepted.unwrap();
        bus.send(&CanFrame::new(id::REQUESTS, &[0xC0, 0x00]).unwrap())
            .await
            .unwrap();
        drop(bus);
        let mut written = Vec::new();
        adapter.read_to_end(&mut written).await.unwrap();
        assert_eq!(written, b"C\rS6\rO\rt35C2C000\r");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_missing_socketcan_interface_is_named() {
        let config = inverter(CanLink::SocketCan {
            interface: "bmslinkcan7".into(),
        });
        let error = CanBus::open(&config).await.unwrap_err();
        assert!(
            matches!(error, CanLinkError::NoInterface { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("ip link show bmslinkcan7"));
    }
}
