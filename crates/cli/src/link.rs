//! The async edge of an NW link: a serial port or a TCP connection (a serial-to-Ethernet
//! converter, or a simulated BMS), driven by one sans-I/O [`Session`].
//!
//! One task owns the line. It writes what the session transmits, feeds it what arrives, and
//! wakes it at its deadlines; every session event is logged with the link's name and the reason.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bmslink_core::session::{
    Event, LinkState, Operation, OperationError, OperationId, Session, SessionConfig, Stage,
};
use bmslink_core::time::Instant;
use bmslink_gateway::line::{self, ByteLine};
use bmslink_gateway::rack::describe::{link_reason_text, link_state_name};
use bmslink_proto::Source;
use clap::{Args, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

/// Where the BMS is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A serial port (RS485 / RS232-TTL adapter), 8N1.
    Serial {
        /// Device path.
        path: PathBuf,
        /// Baud rate.
        baud: u32,
    },
    /// A TCP address: a serial-to-Ethernet converter or a simulated BMS.
    Tcp {
        /// `host:port`.
        address: String,
    },
}

impl Endpoint {
    /// `tcp://host:port`, or a serial device path.
    pub fn parse(text: &str, baud: u32) -> Result<Endpoint> {
        if let Some(address) = text.strip_prefix("tcp://") {
            if !address.contains(':') {
                bail!("'{text}' has no port: write tcp://host:port");
            }
            return Ok(Endpoint::Tcp {
                address: address.to_string(),
            });
        }
        if text.contains("://") {
            bail!("'{text}': only serial device paths and tcp://host:port are supported");
        }
        Ok(Endpoint::Serial {
            path: PathBuf::from(text),
            baud,
        })
    }

    /// What to check when this endpoint stays silent.
    fn silence_hint(&self) -> String {
        match self {
            Endpoint::Serial { baud, .. } => {
                format!("check wiring (A/B on RS485), baud rate {baud}, and that the BMS is awake")
            }
            Endpoint::Tcp { .. } => "check the converter's serial side (115200 8N1) and wiring, \
                 and that the BMS is awake"
                .to_string(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Serial { path, .. } => write!(f, "{}", path.display()),
            Endpoint::Tcp { address } => write!(f, "tcp://{address}"),
        }
    }
}

/// Frame source byte of requests, as a command-line choice.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SourceArg {
    /// 03: PC / upper computer.
    Pc,
    /// 02: GPS / data box.
    DataBox,
    /// 01: Bluetooth.
    Bluetooth,
}

impl From<SourceArg> for Source {
    fn from(source: SourceArg) -> Source {
        match source {
            SourceArg::Pc => Source::Pc,
            SourceArg::DataBox => Source::DataBox,
            SourceArg::Bluetooth => Source::Bluetooth,
        }
    }
}

/// Command-line options of a link, shared by `read` and `write`.
#[derive(Debug, Args)]
pub struct LinkArgs {
    /// Serial port (/dev/ttyUSB0) or tcp://host:port of a serial-to-Ethernet converter.
    #[arg(short, long)]
    pub port: String,
    /// Baud rate of a serial port (8N1).
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
    /// Reply timeout (at most 5 s, the protocol's limit).
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Retries of an unanswered request.
    #[arg(long, default_value_t = 2)]
    pub retries: u8,
    /// Do not send an activate frame when the BMS is silent.
    #[arg(long)]
    pub no_activate: bool,
    /// Frame source byte of requests.
    #[arg(long, value_enum, default_value_t = SourceArg::Pc)]
    pub source: SourceArg,
}

impl LinkArgs {
    /// The session settings these options describe, validated.
    pub fn session_config(&self, pair_pause: Option<Duration>) -> Result<SessionConfig> {
        let defaults = SessionConfig::default();
        let config = SessionConfig {
            reply_timeout: self.timeout,
            retries: self.retries,
            activate_when_silent: !self.no_activate,
            source: self.source.into(),
            pair_pause: pair_pause.unwrap_or(defaults.pair_pause),
            ..defaults
        };
        config.validate().map_err(|e| anyhow!("{e}"))?;
        Ok(config)
    }

    /// The endpoint.
    pub fn endpoint(&self) -> Result<Endpoint> {
        Endpoint::parse(&self.port, self.baud)
    }
}

/// What a finished operation gave.
#[derive(Debug)]
pub enum Outcome {
    /// A reply frame to a read or read-all.
    Data(Vec<u8>),
    /// A confirmed (or, for unreported identifiers, acknowledged) write.
    Written {
        /// Value bytes before.
        old: Option<Vec<u8>>,
        /// Value bytes read back.
        read_back: Option<Vec<u8>>,
    },
}

/// An open line and its session.
pub struct Link {
    endpoint: Endpoint,
    line: Box<dyn ByteLine>,
    session: Session,
    origin: std::time::Instant,
    buffer: Box<[u8; 4096]>,
}

impl Link {
    /// Opens the endpoint.
    pub async fn open(endpoint: Endpoint, config: SessionConfig) -> Result<Link> {
        let line = connect(&endpoint).await?;
        let session = Session::new(config).map_err(|e| anyhow!("{e}"))?;
        debug!("opened {endpoint}");
        Ok(Link {
            endpoint,
            line,
            session,
            origin: std::time::Instant::now(),
            buffer: Box::new([0; 4096]),
        })
    }

    /// The endpoint's name.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn deadline(&self, at: Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.origin + at.since_origin())
    }

    /// Runs one operation to its end.
    pub async fn execute(&mut self, operation: Operation) -> Result<Outcome> {
        let id = self.session.submit(operation);
        loop {
            let now = self.now();
            while let Some(bytes) = self.session.poll_transmit(now) {
                debug!("{} <- {}", self.endpoint, crate::render::hex(bytes));
                self.line
                    .write_all(bytes)
                    .await
                    .with_context(|| format!("cannot write to {}", self.endpoint))?;
                self.line
                    .flush()
                    .await
                    .with_context(|| format!("cannot write to {}", self.endpoint))?;
            }
            while let Some(event) = self.session.poll_event() {
                if let Some(result) = self.report(id, event) {
                    return result;
                }
            }
            let deadline = self.session.poll_timeout().map(|at| self.deadline(at));
            tokio::select! {
                // Bytes from the line go to the session as they come.
                read = self.line.read(&mut self.buffer[..]) => {
                    let n = read.with_context(|| format!("cannot read from {}", self.endpoint))?;
                    if n == 0 {
                        bail!("{} closed the connection", self.endpoint);
                    }
                    debug!("{} -> {}", self.endpoint, crate::render::hex(&self.buffer[..n]));
                    let now = self.now();
                    self.session.handle_input(now, &self.buffer[..n]);
                }
                // The session's next deadline: a reply timeout or the end of a packet gap.
                () = sleep_until(deadline) => {
                    let now = self.now();
                    self.session.handle_timeout(now);
                }
            }
        }
    }

    /// Logs an event; returns the operation's result when the event ends it.
    fn report(&self, id: OperationId, event: Event) -> Option<Result<Outcome>> {
        let endpoint = &self.endpoint;
        match event {
            Event::Data { operation, frame } if operation == id => {
                return Some(Ok(Outcome::Data(frame)))
            }
            Event::Written {
                operation,
                old,
                read_back,
                ..
            } if operation == id => return Some(Ok(Outcome::Written { old, read_back })),
            Event::Activated { operation, .. } if operation == id => {
                return Some(Err(anyhow!("activation sent to {endpoint}")))
            }
            Event::Failed { operation, error } if operation == id => {
                return Some(Err(anyhow!(self.failure_text(&error))))
            }
            Event::Timeout {
                stage,
                attempt,
                waited,
                ..
            } => {
                warn!(
                    "reply timeout from {endpoint} after {} ms ({}, attempt {attempt})",
                    waited.as_millis(),
                    stage.name()
                )
            }
            Event::Activating { .. } => {
                info!("{endpoint} is silent: sending activate in case the BMS is dormant")
            }
            Event::LinkChanged {
                from: LinkState::Unknown,
                to: LinkState::Online,
                ..
            } => {
                debug!("{endpoint}: link online")
            }
            Event::LinkChanged { from, to, reason } => {
                info!(
                    "{endpoint}: link {} -> {}: {}",
                    link_state_name(from),
                    link_state_name(to),
                    link_reason_text(&reason)
                )
            }
            Event::FrameError(error) => warn!("{endpoint}: {error}"),
            Event::BadReply { error, .. } => warn!("{endpoint}: malformed reply: {error}"),
            Event::Unsolicited { frame } => {
                debug!(
                    "{endpoint}: frame that answers nothing outstanding: {}",
                    crate::render::hex(&frame)
                )
            }
            other => debug!("{endpoint}: {other:?}"),
        }
        None
    }

    fn failure_text(&self, error: &OperationError) -> String {
        let endpoint = &self.endpoint;
        match error {
            OperationError::NoReply { stage: Stage::Write, attempts, .. } => format!(
                "no acknowledgement of the write from {endpoint} after {attempts} attempts: the BMS \
                 did not accept the pair code; check the password (--password, identifier 0xB2)"
            ),
            OperationError::NoReply { timeout, attempts, activated, last_error, stage } => {
                let mut text = format!(
                    "no reply within {} ms from {endpoint} ({}, {attempts} attempts{}): {}",
                    timeout.as_millis(),
                    stage.name(),
                    if *activated { ", activation tried" } else { "" },
                    endpoint.silence_hint()
                );
                if let Some(error) = last_error {
                    text.push_str(&format!("; the last reply was malformed: {error}"));
                }
                text
            }
            OperationError::WriteNotApplied { .. } => format!("{error} (BMS on {endpoint})"),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn connect(endpoint: &Endpoint) -> Result<Box<dyn ByteLine>> {
    match endpoint {
        Endpoint::Serial { path, baud } => line::open_serial(path, *baud).map_err(|e| {
            anyhow!(
                "cannot open serial port {}: {e} (check the path, that no other program holds \
                 the port, and that your user may use it, e.g. the dialout group)",
                path.display()
            )
        }),
        Endpoint::Tcp { address } => line::connect_tcp(address)
            .await
            .with_context(|| format!("cannot connect to {address}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_serial_paths_and_tcp_addresses() {
        assert_eq!(
            Endpoint::parse("/dev/ttyUSB0", 9600).unwrap(),
            Endpoint::Serial {
                path: "/dev/ttyUSB0".into(),
                baud: 9600
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://10.0.0.5:8899", 115_200).unwrap(),
            Endpoint::Tcp {
                address: "10.0.0.5:8899".into()
            }
        );
        assert!(Endpoint::parse("tcp://host", 115_200).is_err());
        assert!(Endpoint::parse("udp://host:1", 115_200).is_err());
    }
}
