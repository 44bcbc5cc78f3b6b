//! Byte lines to devices: a serial port (8N1, no flow control) or a TCP connection (a
//! serial-to-Ethernet converter, a simulated BMS, a TCP-to-SLCAN bridge). The bench tools, the
//! rack links and the CAN link all open their lines here.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How long a TCP connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A byte stream a device sits on.
pub trait ByteLine: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteLine for T {}

/// Opens a serial port at `baud`, 8N1, no flow control.
pub fn open_serial(path: &Path, baud: u32) -> io::Result<Box<dyn ByteLine>> {
    let name = path.to_string_lossy();
    let builder = tokio_serial::new(name.as_ref(), baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None);
    Ok(Box::new(tokio_serial::SerialStream::open(&builder)?))
}

/// Connects to `address` (`host:port`) within [`CONNECT_TIMEOUT`], with Nagle off (requests
/// are small and latency matters).
pub async fn connect_tcp(address: &str) -> io::Result<Box<dyn ByteLine>> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            )
        })??;
    stream.set_nodelay(true).ok();
    Ok(Box::new(stream))
}
