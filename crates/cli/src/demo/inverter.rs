//! The demo's inverter (PCS) on the gateway's CAN link: an SLCAN adapter reached over TCP, with
//! a Pylon-mode inverter behind it, in one task.
//!
//! ```text
//! gateway --TCP--> this listener
//!   C\r S6\r O\r           adapter setup      -> answered \r (OK), as an adapter does
//!   tIIILDD..\r            battery frames     -> answered z\r (queued), decoded, remembered
//!   <- t3058 00 x 8\r      keep-alive 0x305   after each 0x356, as Deye-type inverters do
//! ```
//!
//! Every few seconds it logs what it was last told ("inverter: charge limit 112.0 A, discharge
//! limit 150.0 A, charge voltage 56.8 V, SOC 63 %, SOH 100 %, alarms none"), and once more
//! when the gateway closes the link (after its safe state). The frames are decoded by
//! `bmslink_proto::can` ([`BatteryMessage::decode`]), the lines by `bmslink_proto::slcan`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bmslink_proto::can::{
    id, BatteryMessage, KeepAlive, Limits, Measurements, PylonAlarms, SmaAlarms, SocSoh,
};
use bmslink_proto::slcan::{self, Response, CR, MAX_LINE_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

/// How often the inverter logs what it was told.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// The adapter's answer to a frame it queued for the bus.
const QUEUED: &[u8] = b"z\r";

/// Listens for the gateway's SLCAN connection on `address`; returns the listener and the
/// address bound.
pub async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for the inverter's CAN link"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves the gateway, one connection after another (it reopens a failed link), until the
/// task is dropped.
pub async fn run_inverter(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                info!("inverter: CAN link from the gateway ({peer}) open");
                stream.set_nodelay(true).ok();
                let heard = serve_gateway(stream).await;
                info!(
                    "inverter: the gateway closed the CAN link; last told: {}",
                    heard.summary()
                );
            }
            Err(error) => {
                warn!("inverter: cannot accept the gateway's CAN link: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One connection: answers the adapter commands, decodes the frames, sends the keep-alive,
/// reports. Returns what it was last told when the line closes.
async fn serve_gateway(mut stream: TcpStream) -> Heard {
    let mut heard = Heard::default();
    let mut lines = LineSplitter::default();
    let mut report = tokio::time::interval(REPORT_EVERY);
    report.tick().await;
    let mut buffer = [0u8; 1024];
    loop {
        let read = tokio::select! {
            read = stream.read(&mut buffer) => read,
            _ = report.tick() => {
                info!("inverter: {}", heard.summary());
                continue;
            }
        };
        let count = match read {
            Ok(0) => return heard,
            Ok(count) => count,
            Err(error) => {
                warn!("inverter: reading the CAN link failed: {error}");
                return heard;
            }
        };
        let mut answers = Vec::new();
        for line in lines.push(&buffer[..count]) {
            answer(&line, &mut heard).append_to(&mut answers);
        }
        if !answers.is_empty() && stream.write_all(&answers).await.is_err() {
            return heard;
        }
    }
}

/// Cuts the byte stream into lines at `\r`; a line longer than any SLCAN line is dropped.
#[derive(Debug, Default)]
struct LineSplitter {
    pending: Vec<u8>,
    overlong: bool,
}

impl LineSplitter {
    /// The lines `bytes` completes, without their `\r`.
    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut complete = Vec::new();
        for &byte in bytes {
            if byte == CR {
                if self.overlong {
                    warn!("inverter: dropped an SLCAN line longer than {MAX_LINE_LEN} bytes");
                } else {
                    complete.push(std::mem::take(&mut self.pending));
                }
                self.pending.clear();
                self.overlong = false;
            } else if self.pending.len() < MAX_LINE_LEN {
                self.pending.push(byte);
            } else {
                self.overlong = true;
            }
        }
        complete
    }
}

/// What the adapter-and-inverter answers to one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// `\r`: a command accepted.
    Accepted,
    /// `z\r`: a frame queued for the bus.
    Queued,
    /// `z\r`, then the inverter's keep-alive 0x305 (8 x 00) from the bus.
    QueuedThenKeepAlive,
    /// BEL: a line the adapter cannot use.
    Refused,
}

impl Answer {
    fn append_to(self, out: &mut Vec<u8>) {
        match self {
            Answer::Accepted => out.push(CR),
            Answer::Queued => out.extend_from_slice(QUEUED),
            Answer::QueuedThenKeepAlive => {
                out.extend_from_slice(QUEUED);
                out.extend_from_slice(slcan::encode(&KeepAlive::Empty.encode()).as_bytes());
            }
            Answer::Refused => out.push(slcan::BEL),
        }
    }
}

/// The answer to one line from the gateway (`\r` stripped); a frame is remembered in `heard`.
fn answer(line: &[u8], heard: &mut Heard) -> Answer {
    match line.first() {
        // Close, bit rate, open: the adapter's setup.
        Some(b'C' | b'S' | b'O') | None => Answer::Accepted,
        Some(b't') => match slcan::parse_line(line) {
            Ok(Response::Frame { frame, .. }) => {
                heard.note(BatteryMessage::decode(&frame));
                // Deye-type inverters answer the battery's cycle after its 0x356.
                if frame.id() == id::MEASUREMENTS {
                    Answer::QueuedThenKeepAlive
                } else {
                    Answer::Queued
                }
            }
            Ok(_) => Answer::Queued,
            Err(error) => {
                warn!("inverter: malformed SLCAN frame line: {error:?}");
                Answer::Refused
            }
        },
        Some(other) => {
            debug!("inverter: adapter command {:?} ignored", char::from(*other));
            Answer::Accepted
        }
    }
}

/// The latest of each battery frame the inverter acts on.
#[derive(Clone, Debug, Default)]
struct Heard {
    limits: Option<Limits>,
    soc_soh: Option<SocSoh>,
    measurements: Option<Measurements>,
    pylon_alarms: Option<PylonAlarms>,
    sma_alarms: Option<SmaAlarms>,
    undecodable: u64,
}

impl Heard {
    fn note(&mut self, message: Result<BatteryMessage, bmslink_proto::can::CanError>) {
        match message {
            Ok(BatteryMessage::Limits(limits)) => self.limits = Some(limits),
            Ok(BatteryMessage::SocSoh(soc_soh)) => self.soc_soh = Some(soc_soh),
            Ok(BatteryMessage::Measurements(m)) => self.measurements = Some(m),
            Ok(BatteryMessage::PylonAlarms(alarms)) => self.pylon_alarms = Some(alarms),
            Ok(BatteryMessage::SmaAlarms(alarms)) => self.sma_alarms = Some(alarms),
            Ok(_) => {}
            Err(error) => {
                self.undecodable += 1;
                warn!("inverter: a battery frame it cannot use: {error}");
            }
        }
    }

    /// "charge limit 112.0 A, discharge limit 150.0 A, charge voltage 56.8 V, SOC 63 %, SOH
    /// 100 %, alarms none; battery 53.12 V, -4.0 A, 25.0 degC".
    fn summary(&self) -> String {
        let Some(limits) = self.limits else {
            return "no limits (0x351) heard from the battery yet".to_string();
        };
        let mut text = format!(
            "charge limit {:.1} A, discharge limit {:.1} A, charge voltage {:.1} V",
            deci(limits.charge_current.0),
            deci(limits.discharge_current.0),
            deci_unsigned(limits.charge_voltage.0),
        );
        match self.soc_soh {
            Some(s) => write!(text, ", SOC {} %, SOH {} %", s.soc.get(), s.soh.get()),
            None => write!(text, ", SOC unknown, SOH unknown"),
        }
        .ok();
        write!(text, ", alarms {}", self.alarms()).ok();
        if let Some(m) = self.measurements {
            write!(
                text,
                "; battery {:.2} V, {:.1} A, {:.1} °C",
                f64::from(m.voltage.0) / 100.0,
                deci(m.current.0),
                deci(m.temperature.0),
            )
            .ok();
        }
        if self.undecodable > 0 {
            write!(text, "; {} frames undecodable", self.undecodable).ok();
        }
        text
    }

    /// The protection and warning names of 0x359 (or 0x35A), or "none".
    fn alarms(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        if let Some(alarms) = self.pylon_alarms {
            let protections = alarms.protection.iter_names().map(|(n, _)| n);
            names.extend(protections.map(|n| format!("protection {}", n.to_ascii_lowercase())));
            let warnings = alarms.warnings.iter_names().map(|(n, _)| n);
            names.extend(warnings.map(|n| format!("warning {}", n.to_ascii_lowercase())));
        }
        if let Some(alarms) = self.sma_alarms {
            let raised = alarms.alarms.raised().iter_names().map(|(n, _)| n);
            names.extend(raised.map(|n| format!("alarm {}", n.to_ascii_lowercase())));
            let warnings = alarms.warnings.raised().iter_names().map(|(n, _)| n);
            names.extend(warnings.map(|n| format!("warning {}", n.to_ascii_lowercase())));
        }
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    }
}

fn deci(raw: i16) -> f64 {
    f64::from(raw) / 10.0
}

fn deci_unsigned(raw: u16) -> f64 {
    f64::from(raw) / 10.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use bmslink_proto::can::{
        DeciAmps, DeciVolts, Percent, PylonProtection, PylonWarnings, Requests,
    };

    use super::*;

    fn line(message: &BatteryMessage) -> Vec<u8> {
        let encoded = slcan::encode(&message.encode());
        let bytes = encoded.as_bytes();
        bytes[..bytes.len() - 1].to_vec()
    }

    fn limits() -> BatteryMessage {
        BatteryMessage::Limits(Limits {
            charge_voltage: DeciVolts(568),
            charge_current: DeciAmps(1120),
            discharge_current: DeciAmps(1500),
            discharge_voltage: DeciVolts(480),
        })
    }

    fn soc_soh() -> BatteryMessage {
        BatteryMessage::SocSoh(SocSoh {
            soc: Percent::new(63).unwrap(),
            soh: Percent::FULL,
            soc_fine: None,
            remaining: None,
        })
    }

    #[test]
    fn setup_commands_are_acknowledged_and_frames_queued() {
        let mut heard = Heard::default();
        for setup in [b"C".as_slice(), b"S6", b"O"] {
            assert_eq!(answer(setup, &mut heard), Answer::Accepted);
        }
        assert_eq!(answer(&line(&limits()), &mut heard), Answer::Queued);
        assert_eq!(answer(b"t35", &mut heard), Answer::Refused);
    }

    #[test]
    fn the_keep_alive_follows_each_measurements_frame() {
        let mut heard = Heard::default();
        let measurements = BatteryMessage::Measurements(Measurements::default());
        let mut sent = Vec::new();
        answer(&line(&measurements), &mut heard).append_to(&mut sent);
        assert_eq!(sent, b"z\rt30580000000000000000\r");
    }

    #[test]
    fn the_summary_reads_like_an_inverter_display() {
        let mut heard = Heard::default();
        assert!(heard.summary().starts_with("no limits"));
        for message in [limits(), soc_soh()] {
            answer(&line(&message), &mut heard);
        }
        assert_eq!(
            heard.summary(),
            "charge limit 112.0 A, discharge limit 150.0 A, charge voltage 56.8 V, SOC 63 %, \
             SOH 100 %, alarms none"
        );
        let alarms = BatteryMessage::PylonAlarms(PylonAlarms {
            protection: PylonProtection::OVER_VOLTAGE,
            warnings: PylonWarnings::HIGH_TEMPERATURE,
            module_count: 2,
        });
        answer(&line(&alarms), &mut heard);
        assert!(heard
            .summary()
            .contains("alarms protection over_voltage, warning high_temperature"));
        let requests = BatteryMessage::Requests(Requests::default());
        answer(&line(&requests), &mut heard);
    }

    #[test]
    fn lines_split_at_carriage_returns_in_any_chunking() {
        let mut splitter = LineSplitter::default();
        assert!(splitter.push(b"C\rS").len() == 1);
        assert_eq!(
            splitter.push(b"6\rO\r"),
            vec![b"S6".to_vec(), b"O".to_vec()]
        );
        let long = vec![b'1'; MAX_LINE_LEN + 5];
        assert!(splitter.push(&long).is_empty());
        assert!(splitter.push(b"\r").is_empty());
        assert_eq!(splitter.push(b"z\r"), vec![b"z".to_vec()]);
    }
}
