//! One owner task per rack link: it opens the line (serial port or TCP), reads the BMS every
//! poll interval through a sans-I/O [`Session`], carries out writes between polls, and reports
//! every reading and link change to the site task. The link recovers by itself: a lost
//! connection is reopened with a growing pause (1 s doubling to 30 s), and every timeout,
//! framing error and state change is logged with the rack, the link and the reason.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bmslink_core::session::{Event, LinkState, Operation, OperationId, Session, SessionConfig};
use bmslink_proto::message::PASSWORD_LEN;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::describe::{link_reason_text, link_state_name};
use super::{PackSnapshot, RackUpdate, WriteError, WriteOutcome, WriteRequest};
use crate::clock::Clock;
use crate::config::RackLink;
use crate::line::{self, ByteLine};
use crate::metrics::{FrameErrorLabels, Metrics, PollLabels, PollResult};

/// First pause before reopening a lost link.
pub const RECONNECT_MIN: Duration = Duration::from_secs(1);
/// Longest pause before reopening a lost link.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// What a poller needs to know.
#[derive(Clone, Debug)]
pub struct PollerConfig {
    /// Rack index.
    pub rack: usize,
    /// Rack name (logs, metrics).
    pub name: String,
    /// How the BMS is reached.
    pub link: RackLink,
    /// Session settings (reply timeout, retries, offline count).
    pub session: SessionConfig,
    /// Time between reads.
    pub poll_interval: Duration,
    /// The 0xB2 password sent with the pair code of writes.
    pub password: Option<[u8; PASSWORD_LEN]>,
}

/// The channels a poller talks through.
#[derive(Debug)]
pub struct PollerChannels {
    /// Readings and link changes go here; the poller stops when it is closed.
    pub updates: mpsc::Sender<RackUpdate>,
    /// Writes asked of this rack.
    pub writes: mpsc::Receiver<WriteRequest>,
}

/// Runs the rack's link until the update channel closes.
pub async fn run_poller(
    config: PollerConfig,
    mut channels: PollerChannels,
    clock: Clock,
    metrics: Arc<Metrics>,
) {
    let mut pause = RECONNECT_MIN;
    let mut last: Option<Arc<PackSnapshot>> = None;
    loop {
        match open(&config.link).await {
            Ok(line) => {
                info!(rack = %config.name, "connected to {}", config.link);
                metrics
                    .connects
                    .get_or_create(&Metrics::rack(&config.name))
                    .inc();
                let session = match Session::new(config.session.clone()) {
                    Ok(session) => session,
                    Err(error) => {
                        tracing::error!(rack = %config.name, "session settings: {error}; rack not polled");
                        return;
                    }
                };
                let mut poller = Poller::new(&config, session, clock, &metrics, last.take());
                let ended = poller.run(line, &mut channels).await;
                last = poller.last.take();
                match ended {
                    Ended::Stopped => return,
                    Ended::LineLost(reason) => {
                        warn!(rack = %config.name, "link {} lost: {reason}; reopening", config.link);
                        if poller.answered {
                            pause = RECONNECT_MIN;
                        }
                    }
                }
            }
            Err(reason) => {
                warn!(
                    rack = %config.name,
                    "cannot open {}: {reason}; retrying in {} s",
                    config.link,
                    pause.as_secs()
                );
            }
        }
        let update = RackUpdate {
            rack: config.rack,
            link: LinkState::Offline,
            reading: last.clone(),
        };
        metrics
            .link_up
            .get_or_create(&Metrics::rack(&config.name))
            .set(0);
        if channels.updates.send(update).await.is_err() {
            return;
        }
        // Writes asked while the line is down fail at once rather than waiting.
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                request = channels.writes.recv() => match request {
                    Some(request) => {
                        let _ = request.reply.send(Err(WriteError::NoReply(format!(
                            "{} is not connected ({})", config.name, config.link
                        ))));
                    }
                    None => std::future::pending::<()>().await,
                },
            }
        }
        pause = (pause * 2).min(RECONNECT_MAX);
    }
}

async fn open(link: &RackLink) -> Result<Box<dyn ByteLine>, String> {
    match link {
        RackLink::Serial { path, baud } => line::open_serial(path, *baud).map_err(|e| {
            format!(
                "{e} (check the path, that no other program holds the port, and that the \
                 gateway's user may use it, e.g. the dialout group)"
            )
        }),
        RackLink::Tcp { address } => line::connect_tcp(address).await.map_err(|e| e.to_string()),
    }
}

/// Why a connection's loop ended.
enum Ended {
    /// The update channel closed: the gateway is stopping.
    Stopped,
    /// The line failed or closed.
    LineLost(String),
}

/// One connection's state.
struct Poller<'a> {
    config: &'a PollerConfig,
    clock: Clock,
    metrics: &'a Metrics,
    session: Session,
    /// The read-all in flight and when its request was last written.
    poll: Option<(OperationId, Option<tokio::time::Instant>)>,
    writes: HashMap<
        OperationId,
        (
            oneshot::Sender<Result<WriteOutcome, WriteError>>,
            bmslink_proto::Identifier,
        ),
    >,
    last: Option<Arc<PackSnapshot>>,
    link: LinkState,
    /// Whether the BMS answered on this connection.
    answered: bool,
}

impl<'a> Poller<'a> {
    fn new(
        config: &'a PollerConfig,
        session: Session,
        clock: Clock,
        metrics: &'a Metrics,
        last: Option<Arc<PackSnapshot>>,
    ) -> Poller<'a> {
        Poller {
            config,
            clock,
            metrics,
            session,
            poll: None,
            writes: HashMap::new(),
            last,
            link: LinkState::Unknown,
            answered: false,
        }
    }

    async fn run(&mut self, mut line: Box<dyn ByteLine>, channels: &mut PollerChannels) -> Ended {
        let mut ticker = tokio::time::interval(self.config.poll_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut buffer = vec![0u8; 4096];
        let ended = loop {
            if let Err(reason) = self.transmit(&mut line).await {
                break Ended::LineLost(reason);
            }
            if self.drain_events(&channels.updates).await.is_err() {
                break Ended::Stopped;
            }
            let deadline = self.session.poll_timeout().map(|at| self.clock.tokio(at));
            tokio::select! {
                read = line.read(&mut buffer) => match read {
                    Ok(0) => break Ended::LineLost("the other end closed the connection".into()),
                    Ok(n) => {
                        let now = self.clock.now();
                        self.session.handle_input(now, &buffer[..n]);
                    }
                    Err(e) => break Ended::LineLost(format!("read error: {e}")),
                },
                () = sleep_until(deadline) => self.session.handle_timeout(self.clock.now()),
                _ = ticker.tick() => self.start_poll(),
                request = channels.writes.recv() => match request {
                    Some(request) => self.start_write(request),
                    // The handles are gone: the gateway is stopping.
                    None => break Ended::Stopped,
                },
            }
        };
        for (_, (reply, _)) in self.writes.drain() {
            let _ = reply.send(Err(WriteError::NoReply(format!(
                "the link to {} ({}) was lost during the write",
                self.config.name, self.config.link
            ))));
        }
        ended
    }

    fn start_poll(&mut self) {
        if self.poll.is_some() {
            debug!(rack = %self.config.name, "previous poll still running; this one skipped");
            return;
        }
        let id = self.session.submit(Operation::ReadAll);
        self.poll = Some((id, None));
    }

    fn start_write(&mut self, request: WriteRequest) {
        let id = request.value.id();
        info!(rack = %self.config.name, "writing {} ({:#04X})", id.info().name, id as u8);
        let operation = self.session.submit(Operation::Write {
            value: request.value,
            password: self.config.password,
        });
        self.writes.insert(operation, (request.reply, id));
    }

    async fn transmit(&mut self, line: &mut Box<dyn ByteLine>) -> Result<(), String> {
        let now = self.clock.now();
        while let Some(bytes) = self.session.poll_transmit(now) {
            tracing::trace!(rack = %self.config.name, "<- {:02X?}", bytes);
            line.write_all(bytes)
                .await
                .map_err(|e| format!("write error: {e}"))?;
            line.flush()
                .await
                .map_err(|e| format!("write error: {e}"))?;
            if let Some((_, sent)) = &mut self.poll {
                *sent = Some(tokio::time::Instant::now());
            }
        }
        Ok(())
    }

    /// Handles every pending event; `Err` when the site task is gone.
    async fn drain_events(&mut self, updates: &mpsc::Sender<RackUpdate>) -> Result<(), ()> {
        while let Some(event) = self.session.poll_event() {
            if let Some(update) = self.handle_event(event) {
                updates.send(update).await.map_err(|_| ())?;
            }
        }
        Ok(())
    }

    fn update(&self) -> RackUpdate {
        RackUpdate {
            rack: self.config.rack,
            link: self.link,
            reading: self.last.clone(),
        }
    }

    fn count_frame_error(&self, kind: &str) {
        self.metrics
            .frame_errors
            .get_or_create(&FrameErrorLabels {
                rack: self.config.name.clone(),
                kind: kind.to_string(),
            })
            .inc();
    }

    fn count_poll(&self, result: PollResult) {
        self.metrics
            .polls
            .get_or_create(&PollLabels {
                rack: self.config.name.clone(),
                result,
            })
            .inc();
    }

    /// Logs and counts one event; returns an update for the site task when there is news.
    fn handle_event(&mut self, event: Event) -> Option<RackUpdate> {
        let name = &self.config.name;
        let link = &self.config.link;
        match event {
            Event::Data { operation, frame } if self.is_poll(operation) => {
                self.answered = true;
                let sent = self.poll.take().and_then(|(_, sent)| sent);
                return self.accept_reading(&frame, sent);
            }
            Event::Failed { operation, error } if self.is_poll(operation) => {
                self.poll = None;
                self.count_poll(PollResult::Failed);
                warn!(rack = %name, "poll of {link} failed: {error}");
            }
            Event::Written {
                operation,
                id,
                old,
                read_back,
            } => {
                if let Some((reply, _)) = self.writes.remove(&operation) {
                    info!(rack = %name, "{} written and read back", id.info().name);
                    let _ = reply.send(Ok(WriteOutcome { id, old, read_back }));
                }
            }
            Event::Failed { operation, error } => {
                if let Some((reply, id)) = self.writes.remove(&operation) {
                    warn!(rack = %name, "write of {} failed: {error}", id.info().name);
                    let _ = reply.send(Err(WriteError::from_operation(
                        &error,
                        &format!("{name} ({link})"),
                    )));
                }
            }
            Event::Timeout {
                stage,
                attempt,
                waited,
                ..
            } => {
                self.metrics
                    .timeouts
                    .get_or_create(&Metrics::rack(name))
                    .inc();
                warn!(
                    rack = %name,
                    "reply timeout from {name} on {link} after {} ms ({}, attempt {attempt})",
                    waited.as_millis(),
                    stage.name()
                );
            }
            Event::Activating { .. } => {
                info!(rack = %name, "{name} on {link} is silent: sending activate in case the BMS is dormant");
            }
            Event::LinkChanged { from, to, reason } => {
                self.link = to;
                let up = i64::from(matches!(to, LinkState::Online | LinkState::Degraded));
                self.metrics
                    .link_up
                    .get_or_create(&Metrics::rack(name))
                    .set(up);
                let text = format!(
                    "{name} on {link}: link {} -> {}: {}",
                    link_state_name(from),
                    link_state_name(to),
                    link_reason_text(&reason)
                );
                if to == LinkState::Online {
                    info!(rack = %name, "{text}");
                } else {
                    warn!(rack = %name, "{text}");
                }
                return Some(self.update());
            }
            Event::FrameError(error) => {
                self.count_frame_error(error.error.kind());
                warn!(rack = %name, "{name} on {link}: {error}");
            }
            Event::BadReply { error, .. } => {
                self.count_frame_error("malformed_reply");
                warn!(rack = %name, "{name} on {link}: malformed reply: {error}");
            }
            Event::Unsolicited { frame } => {
                debug!(rack = %name, "{name} on {link}: frame that answers nothing outstanding ({} bytes)", frame.len());
            }
            other => debug!(rack = %name, "{other:?}"),
        }
        None
    }

    fn is_poll(&self, operation: OperationId) -> bool {
        matches!(self.poll, Some((id, _)) if id == operation)
    }

    fn accept_reading(
        &mut self,
        frame: &[u8],
        sent: Option<tokio::time::Instant>,
    ) -> Option<RackUpdate> {
        let name = &self.config.name;
        match PackSnapshot::parse(frame, self.clock.now()) {
            Ok(reading) => {
                self.count_poll(PollResult::Ok);
                if let Some(sent) = sent {
                    self.metrics
                        .poll_latency
                        .get_or_create(&Metrics::rack(name))
                        .observe(sent.elapsed().as_secs_f64());
                }
                self.last = Some(Arc::new(reading));
                Some(self.update())
            }
            Err(error) => {
                self.count_poll(PollResult::Failed);
                self.count_frame_error("unusable_reading");
                warn!(rack = %name, "{name} on {}: reply not usable: {error}", self.config.link);
                None
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
