//! The device listener: BMS data boxes connect over TCP, upload telemetry (NW active uploads),
//! and receive the reads and writes queued through the API on the same connection.
//!
//! ```text
//!            ┌──────────── one owner task per connection ─────────────┐
//! data box ──► deframer ─► bind terminal ─► upload ─► PackSnapshot ─► TelemetryRow ──┐
//!    ▲       │                  │                                                     │ bounded
//!    │       │                  └─► response ─► Session (commands) ◄─ wake ─┐        ▼ channel
//!    └───────┤ acknowledgement ◄── committed ◄────────────── store writer (batches) ◄─┘
//!            │ requests ◄──────── Session                       │      │
//!            └──────────────────────────────────────────────────┘      └─► alarms (try_send)
//!                     command notices (Store::subscribe_commands) ─► dispatcher ─► wake
//! ```
//!
//! # Terminals
//!
//! A data box is identified by the 24-bit terminal number in its frames' terminal id
//! ([`Terminal`](crate::model::Terminal)); the standby byte is not identity. The first valid
//! frame of a terminal on a connection binds it ([`Store::terminal_connected`]: created,
//! approved or pending by the [`RegistrationPolicy`], and marked online); when the connection
//! ends it is marked offline. A connection may carry up to
//! [`terminals_per_connection`](ListenerConfig::terminals_per_connection) terminals (default
//! 16: a gateway uploads each rack as its own terminal, and may do so over one connection);
//! frames naming a further terminal are logged and dropped. Set it to 1 for "one connection,
//! one terminal". Requests for a terminal carry the terminal id exactly as the box sent it.
//!
//! # Uploads and acknowledgements
//!
//! An active upload (transport 02) is parsed into a [`PackSnapshot`](bmslink_core::snapshot::PackSnapshot)
//! and a [`TelemetryRow`] (keyed by the record number's 24-bit sequence), and handed to the
//! store writer. Only after the writer's batch is **committed** does the connection send the
//! response frame ([`acknowledgement`]: transport 01, the upload's command, terminal id and
//! record number, source PC, empty info field). So an acknowledged upload is never lost; an
//! upload whose acknowledgement was lost is sent again by the box and stored once (the store
//! skips a known (terminal, record)), and acknowledged again.
//!
//! Uploads that are not acknowledged, so that the data box keeps and resends them:
//! uploads of pending terminals (below), uploads the store refused, and uploads still
//! uncommitted when the connection closes. Valid frames whose content is not usable telemetry
//! (no cell voltages, settings out of range: counted as `bad_content`, logged per terminal) are
//! not stored and not acknowledged either: the acknowledgement means "stored".
//!
//! # Back-pressure
//!
//! Memory is bounded everywhere: the channel to the writer holds
//! [`upload_queue`](ListenerConfig::upload_queue) rows, the writer at most
//! [`batches_in_flight`](ListenerConfig::batches_in_flight) batches of
//! [`batch_size`](ListenerConfig::batch_size) rows being committed, and each connection has at
//! most [`unacknowledged_per_connection`](ListenerConfig::unacknowledged_per_connection) uploads
//! awaiting their commit. When the channel is full, a connection waits to hand over its
//! upload and reads nothing meanwhile; when its own limit is reached, it stops reading until
//! the oldest upload is committed. Its socket buffer then fills and TCP flow control holds the
//! data box back. Nothing is dropped, nothing grows.
//!
//! When the store is unavailable, the writer keeps its batch and retries with a doubling
//! pause (100 ms to 5 s), logging each failure; the channel fills, every connection stops
//! reading, and the data boxes hold their data (or, if they give up, resend it after
//! reconnecting: it was never acknowledged). Ingest resumes by itself when the store returns.
//!
//! # Registration
//!
//! With [`RegistrationPolicy::Approval`], an unknown terminal is created pending. Its
//! connection is kept (an operator may send it commands, to see what it is before approving
//! it), but its uploads are **neither stored nor acknowledged**: a data box that waits for
//! acknowledgements keeps its data and sends it again, so nothing from before the approval is
//! lost if it buffers; one that does not simply keeps uploading. While uploads arrive, the
//! listener reads a pending terminal's registration again every
//! [`pending_recheck`](ListenerConfig::pending_recheck) (5 s), so an approval takes effect
//! within that time, and an approved one's every
//! [`approved_recheck`](ListenerConfig::approved_recheck) (60 s): a rejection closes the
//! connection within that time (and every later one of that terminal at its first frame). A
//! terminal an operator left pending stays pending under the open policy too: the store's
//! record decides.
//!
//! # Bad input
//!
//! - Framing errors (checksum, LENGTH, end byte, high checksum bytes) and frames with a header
//!   byte outside the protocol are counted by kind ([`ListenerStats`], and per terminal) and
//!   logged with the terminal and address: `terminal 0003E8 from 127.0.0.1:40112: checksum
//!   error: expected 0x54D1, got 0x54D0 (frame at stream offset 581)`. The first ten of a
//!   connection are warnings, the rest debug lines; the close line has the totals.
//! - A connection that sends [`garbage_limit`](ListenerConfig::garbage_limit) bytes (4 KiB)
//!   without a valid frame among them, from the start or later (a run of corrupted frames), is
//!   closed with a log line.
//! - A frame announcing more than [`max_frame_len`](ListenerConfig::max_frame_len) closes the
//!   connection: on TCP the bytes are exactly what the peer sent, no NW frame is longer than
//!   339 bytes, and resynchronising inside a body that long would read its content as frames.
//! - Request frames (transport 00) from a data box are dropped and counted.
//!
//! # Impersonation
//!
//! A second connection claiming a terminal that is online on another connection of this
//! process is logged as a possible impersonation, with both addresses, and the **newer
//! connection wins**: the older one is closed. The common case is a genuine box that changed
//! networks (4G cell, NAT rebinding): its old connection is half open and would block it until
//! the idle timeout (2 minutes of lost uploads) if the older connection won. The terminal id is
//! not a credential (the protocol has none), so "older wins" would not stop an impostor either:
//! it would only let whoever connects first keep the terminal. With "newer wins", a real box
//! and an impostor take the terminal from each other on every reconnect, which the warnings
//! make visible to an operator.
//!
//! Across processes (several platforms sharing PostgreSQL) the same rule holds through the
//! store, which records the connection holding each terminal (this process's
//! [`process`](ListenerConfig::process) id and the connection's number): the latest claim
//! owns, and an older connection's end does not mark the terminal offline. An older
//! connection in another process learns that it lost the terminal when it next looks the
//! terminal up (the registration recheck, or before it takes a queued command) and closes,
//! so it never takes a command meant for the box's live connection. A crashed process's
//! terminals are marked offline by the liveness sweep (see the `store` module documentation).
//!
//! # Commands
//!
//! The listener subscribes to [`Store::subscribe_commands`]. A `Queued` notice for a terminal
//! connected here wakes its connection, which reads the terminal's queued commands, claims
//! the oldest ([`Store::claim_command`]; another process may win) and runs it through the
//! terminal's [`Session`](bmslink_core::session::Session); a terminal's queued commands also
//! run when it connects. One command runs per terminal at a time; each has
//! [`command_timeout`](ListenerConfig::command_timeout) (30 s) to finish, after which it fails
//! and its pending requests are dropped. Uploads arriving meanwhile are stored and
//! acknowledged as usual: the connection routes frames by transport type, uploads to the
//! writer and responses to the session.
//!
//! - `ReadAll` returns `{"values": {name: {"value", "unit", "raw"}}}`, every identifier in
//!   engineering units (the shape of `bmslink read --json`).
//! - `Write` checks every value with the identifier table **before anything is sent** (an
//!   unknown name, a value out of range, a password over 10 bytes fail the whole command);
//!   then each setting is read (old value), paired with the password, written and read back.
//!   The result lists each setting: `identifier`, `code`, `requested`, `written`, `old`,
//!   `read_back`, `ok`, `error`, with `ok` for the whole. The command is `Done` when at least
//!   one setting was applied and `Failed` (every setting's error in the reason) when none was:
//!   a BMS ignores a write after a wrong password, which shows as no reply to the write.
//!
//! # Time-outs and shutdown
//!
//! A connection with no valid frame for [`idle_timeout`](ListenerConfig::idle_timeout)
//! (120 s) is closed. On shutdown the listener stops accepting, each connection stops reading
//! and acknowledges what gets committed, running commands fail ("the connection closed"),
//! terminals are marked offline, and the writer commits what it holds; an unavailable store
//! is retried for at most [`shutdown_grace`](ListenerConfig::shutdown_grace).

mod command;
mod config;
mod connection;
mod registry;
mod stats;
mod writer;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::{JoinError, JoinSet};
use tracing::{error, info, warn};

pub use config::{ConfigError, ListenerConfig, RegistrationPolicy, DEFAULT_PORT};
pub use connection::acknowledgement;
pub use stats::{ListenerStats, ListenerStatsSnapshot, TerminalStats, TerminalStatsSnapshot};

use crate::model::TelemetryRow;
use crate::store::{CommandNotice, Store};
use registry::{ConnectionId, Registry};
use writer::{Upload, Writer, WriterConfig};

/// Pause after a failed accept (at the open-file limit, accepting again at once would spin).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Binds the listen address of `config`.
pub async fn bind(config: &ListenerConfig) -> std::io::Result<TcpListener> {
    TcpListener::bind(config.listen).await
}

/// Runs the device listener on `listener` until `shutdown` completes, then shuts down
/// gracefully (see the module documentation) and returns.
///
/// - `store`: where uploads, terminals and commands live;
/// - `alarms`: committed rows are forwarded here without blocking (rows the channel cannot
///   take are counted in `alarms_dropped`);
/// - `stats`: counters to read from elsewhere (the API) while the listener runs.
///
/// Fails only on invalid settings.
pub async fn run_listener<S: Store>(
    listener: TcpListener,
    config: ListenerConfig,
    store: S,
    alarms: Option<mpsc::Sender<TelemetryRow>>,
    stats: Arc<ListenerStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ConfigError> {
    config.validate()?;
    let config = Arc::new(config);
    let (stop, stopped) = watch::channel(false);
    let (give_up, giving_up) = watch::channel(false);
    let (uploads, queue) = mpsc::channel::<Upload>(config.upload_queue);
    let writer = tokio::spawn(
        Writer {
            store: store.clone(),
            config: writer_config(&config),
            alarms,
            stats: stats.clone(),
            give_up: giving_up,
        }
        .run(queue),
    );
    let registry = Arc::new(Registry::new(config.process));
    let dispatcher = tokio::spawn(dispatch_commands(
        store.subscribe_commands(),
        registry.clone(),
        stopped.clone(),
    ));
    let context = Context {
        store,
        config: config.clone(),
        stats: stats.clone(),
        registry,
        uploads,
        clock: Clock::start(),
        stop: stopped,
        connection_ids: Arc::new(AtomicU64::new(1)),
    };
    let address = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    info!("device listener on {address}");
    let mut connections = accept_until(listener, &context, shutdown).await;

    info!(
        "device listener on {address}: shutting down: no new connections, closing {}",
        connections.len()
    );
    let _ = stop.send(true);
    // The writer gives up on an unavailable store when the grace period is over, which also
    // releases connections waiting for their last commits.
    let grace = config.shutdown_grace;
    let timer = tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        let _ = give_up.send(true);
    });
    while let Some(ended) = connections.join_next().await {
        report_task_end(ended);
    }
    drop(context); // the last sender: the writer commits what is queued, then stops
    report_task_end(writer.await);
    timer.abort();
    report_task_end(dispatcher.await);
    info!(
        "device listener on {address}: stopped; {}",
        stats.snapshot().summary()
    );
    Ok(())
}

/// Accepts connections until `shutdown`; returns the connection tasks still running.
async fn accept_until<S: Store>(
    listener: TcpListener,
    context: &Context<S>,
    shutdown: impl Future<Output = ()>,
) -> JoinSet<()> {
    let mut connections = JoinSet::new();
    let mut report = StatsReport::new(context.config.stats_log_interval);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return connections,
            () = report.due() => report.log(&context.stats),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection::serve(context.clone(), stream, peer));
                }
                Err(e) => {
                    warn!("accept failed: {e} (open-file limit?); accepting again in 100 ms");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
            },
            // Reap ended connections so the set holds only live ones.
            Some(ended) = connections.join_next() => report_task_end(ended),
        }
    }
}

/// The periodic log line of the counters.
struct StatsReport {
    interval: Option<tokio::time::Interval>,
    last: ListenerStatsSnapshot,
}

impl StatsReport {
    fn new(every: Duration) -> StatsReport {
        let interval = (!every.is_zero()).then(|| {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval
        });
        StatsReport {
            interval,
            last: ListenerStatsSnapshot::default(),
        }
    }

    async fn due(&mut self) {
        match &mut self.interval {
            Some(interval) => {
                interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Logs the counters if anything happened since the last line.
    fn log(&mut self, stats: &ListenerStats) {
        let now = stats.snapshot();
        if now != self.last {
            let latency = &stats.stored_latency;
            let show = |q| {
                latency
                    .quantile(q)
                    .map_or("-".to_string(), |d| format!("{d:?}"))
            };
            info!(
                "device listener: {}; arrival -> stored p50 <= {}, p99 <= {}",
                now.summary(),
                show(0.5),
                show(0.99)
            );
            self.last = now;
        }
    }
}

fn report_task_end(ended: Result<(), JoinError>) {
    if let Err(e) = ended {
        if e.is_panic() {
            error!("a listener task panicked: {e}");
        }
    }
}

fn writer_config(config: &ListenerConfig) -> WriterConfig {
    WriterConfig {
        batch_size: config.batch_size,
        batch_delay: config.batch_delay,
        batches_in_flight: config.batches_in_flight,
        retry_min: config.store_retry_min,
        retry_max: config.store_retry_max,
    }
}

/// Wakes the connection of a terminal a command was queued for.
async fn dispatch_commands(
    mut notices: broadcast::Receiver<CommandNotice>,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let notice = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            notice = notices.recv() => notice,
        };
        match notice {
            Ok(CommandNotice::Queued { terminal, .. }) => {
                if let Some(owner) = registry.owner(terminal) {
                    owner.wake.notify_one();
                }
            }
            Ok(CommandNotice::Finished { .. }) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                warn!(
                    "{missed} command notices missed: every connection looks for queued commands"
                );
                registry.wake_all();
            }
            Err(broadcast::error::RecvError::Closed) => {
                warn!(
                    "the store's command notices ended: queued commands now run only when their \
                     terminal connects"
                );
                return;
            }
        }
    }
}

/// Completes when `stop` becomes `true` or its sender is gone.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&stop| stop).await;
}

/// What every connection task shares.
#[derive(Clone)]
pub(crate) struct Context<S> {
    store: S,
    config: Arc<ListenerConfig>,
    stats: Arc<ListenerStats>,
    registry: Arc<Registry>,
    uploads: mpsc::Sender<Upload>,
    clock: Clock,
    /// Becomes `true` on shutdown.
    stop: watch::Receiver<bool>,
    connection_ids: Arc<AtomicU64>,
}

impl<S> Context<S> {
    fn next_connection(&self) -> ConnectionId {
        self.connection_ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// The sessions' clock: core instants (microseconds since the listener started) on top of
/// tokio's clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            origin: tokio::time::Instant::now(),
        }
    }

    /// Now, as a core instant.
    fn now(&self) -> bmslink_core::time::Instant {
        let micros = tokio::time::Instant::now()
            .saturating_duration_since(self.origin)
            .as_micros();
        bmslink_core::time::Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// A core instant as a tokio instant.
    fn tokio(&self, at: bmslink_core::time::Instant) -> tokio::time::Instant {
        self.origin + at.since_origin()
    }
}
