//! `bmslink platform`: the device listener, the alarm rules, the store's maintenance and the
//! HTTP API over one store (SQLite or PostgreSQL), started from a [`PlatformConfig`].
//!
//! ```text
//!  data boxes ──► listener ──rows──► store ◄── API + web app ◄── browsers, scripts
//!                     │ committed rows ▲   ▲        ▲ /api/events
//!                     └──► alarms ─────┘   │        │
//!                            └──► live hub ─────────┘
//!                                          ├── maintenance (roll-ups, retention) every minute
//!                                          └── liveness (heartbeat, sweep of dead processes)
//! ```
//!
//! Each task logs what it does; [`Platform::stop`] stops accepting, lets the listener commit
//! and acknowledge what it received, and ends every task.
//!
//! Each start draws a random [`ProcessId`]: the store records it with every terminal this
//! process's listener holds, and a liveness task (`daemon/liveness.rs`) renews the process's
//! heartbeat and sweeps the terminals of processes that stopped beating, every sixth of
//! `[cluster] process_timeout`. A clean stop releases this process's terminals.

mod liveness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::alarms::{run_alarms, AlarmRules};
use crate::api::{self, ApiConfig, ApiState};
use crate::config::{AlarmThresholds, DatabaseConfig, PlatformConfig};
use crate::listener::{self, ListenerConfig, ListenerStats};
use crate::live::LiveHub;
use crate::model::{ProcessId, Timestamp};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{Retention, Store, StoreError};

/// How often roll-ups and retention run.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the alarm rules look for terminals gone silent.
pub const ALARM_TICK: Duration = Duration::from_secs(10);
/// Rows waiting for the alarm rules (beyond it the listener counts them as dropped).
pub const ALARM_QUEUE: usize = 65_536;

/// Why the platform could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The database could not be opened or migrated.
    Store(StoreError),
    /// A listening socket could not be bound.
    Bind {
        /// What for.
        what: &'static str,
        /// Where.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A setting the configuration file cannot catch.
    Settings(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Store(error) => write!(f, "{error}"),
            StartError::Bind {
                what,
                address,
                source,
            } => write!(
                f,
                "cannot listen on {address} for the {what}: {source} (is another program using \
                 the port?)"
            ),
            StartError::Settings(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StartError {}

/// A running platform.
#[derive(Debug)]
pub struct Platform {
    /// Where data boxes connect.
    pub devices_address: SocketAddr,
    /// Where the API (and web app) listens.
    pub http_address: SocketAddr,
    /// The listener's counters.
    pub stats: Arc<ListenerStats>,
    /// This process's id in the store.
    pub process: ProcessId,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

async fn bind(what: &'static str, address: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind {
            what,
            address,
            source,
        })
}

/// Opens the configured database, creating and migrating it if needed: the one place that
/// chooses the backend.
pub async fn open_store(database: &DatabaseConfig) -> Result<AnyStore, StartError> {
    Ok(match database {
        DatabaseConfig::Sqlite { path } => {
            info!("database: SQLite at {}", path.display());
            AnyStore::Sqlite(SqliteStore::open(path).map_err(StartError::Store)?)
        }
        DatabaseConfig::Postgres { url } => {
            info!("database: PostgreSQL");
            AnyStore::Postgres(PgStore::connect(&url.0).await.map_err(StartError::Store)?)
        }
    })
}

/// Either backend, chosen at run time.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

impl Platform {
    /// Starts every task of `config`.
    pub async fn start(config: &PlatformConfig) -> Result<Platform, StartError> {
        match open_store(&config.database).await? {
            AnyStore::Sqlite(store) => Platform::start_with(store, config).await,
            AnyStore::Postgres(store) => Platform::start_with(store, config).await,
        }
    }

    /// Starts every task over `store`.
    ///
    /// Raises the open-file limit to its hard limit first: every data box is one socket.
    pub async fn start_with<S: Store>(
        store: S,
        config: &PlatformConfig,
    ) -> Result<Platform, StartError> {
        raise_open_file_limit();
        let devices = bind("data boxes", config.devices.listen).await?;
        let http = bind("HTTP API", config.http.listen).await?;
        let devices_address = local(&devices, "data boxes", config.devices.listen)?;
        let http_address = local(&http, "HTTP API", config.http.listen)?;
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(ListenerStats::default());
        let mut tasks = JoinSet::new();
        let process = ProcessId::random();
        liveness::first_heartbeat(&store, process).await;
        let (listener_done, listener_ended) = oneshot::channel::<()>();
        tasks.spawn(liveness::run_liveness(
            store.clone(),
            process,
            config.cluster,
            stopped.clone(),
            listener_ended,
        ));

        let (rows, rows_rx) = mpsc::channel(ALARM_QUEUE);
        let rules = alarm_rules(&config.alarms);
        let alarms_store = store.clone();
        let hub = LiveHub::new();
        let alarms_hub = hub.clone();
        tasks.spawn(async move {
            let run = run_alarms(alarms_store, rows_rx, rules, ALARM_TICK, alarms_hub);
            if let Err(error) = run.await {
                error!("alarm rules stopped: {error}");
            }
        });
        let listener_config = listener_config(config, process);
        let listener_store = store.clone();
        let listener_stats = stats.clone();
        let listener_stop = wait_for(stopped.clone());
        tasks.spawn(async move {
            let run = listener::run_listener(
                devices,
                listener_config,
                listener_store,
                Some(rows),
                listener_stats,
                listener_stop,
            );
            if let Err(error) = run.await {
                error!("device listener stopped: {error}");
            }
            // Its terminals are released: the liveness task may record the stop.
            drop(listener_done);
        });
        tasks.spawn(run_maintenance(
            store.clone(),
            config.retention,
            stopped.clone(),
        ));
        let state = ApiState::new(store, ApiConfig::from(&config.http)).with_hub(hub);
        let app = api::router(state).fallback_service(crate::web::web_app());
        let api_stop = wait_for(stopped);
        tasks.spawn(async move {
            if let Err(error) = api::serve(http, app, api_stop).await {
                error!("HTTP API stopped: {error}");
            }
        });
        info!(
            "platform process {process} started: data boxes on {devices_address}, HTTP on \
             http://{http_address}/"
        );
        Ok(Platform {
            devices_address,
            http_address,
            stats,
            process,
            stop,
            tasks,
        })
    }

    /// Stops accepting, lets the listener commit what it received, ends every task.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        let drained = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(15), drained)
            .await
            .is_err()
        {
            warn!("platform tasks did not stop within 15 s; aborting them");
            self.tasks.shutdown().await;
        }
    }
}

fn local(
    listener: &TcpListener,
    what: &'static str,
    address: SocketAddr,
) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        what,
        address,
        source,
    })
}

/// Raises the soft open-file limit to the hard one (each data box holds a socket), logging
/// how many connections that allows.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                info!("open-file limit raised from {soft} to {hard}: about {hard} data boxes")
            }
            Err(error) => warn!("cannot raise the open-file limit from {soft} to {hard}: {error}"),
        },
        Ok((soft, _)) => info!("open-file limit {soft}: about {soft} data boxes"),
        Err(error) => warn!("cannot read the open-file limit: {error}"),
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow_and_update() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

fn listener_config(config: &PlatformConfig, process: ProcessId) -> ListenerConfig {
    // SQLite's writer thread merges queued batches; PostgreSQL runs concurrent ones as
    // concurrent transactions that wait on each other (see `batches_in_flight`).
    let batches_in_flight = match config.database {
        DatabaseConfig::Sqlite { .. } => ListenerConfig::default().batches_in_flight,
        DatabaseConfig::Postgres { .. } => 1,
    };
    ListenerConfig {
        process,
        batches_in_flight,
        listen: config.devices.listen,
        idle_timeout: config.devices.idle_timeout,
        registration: config.devices.registration,
        command_timeout: config.http.command_timeout,
        ..ListenerConfig::default()
    }
}

/// The alarm rules for the file's thresholds; each clears a little inside its threshold, so
/// a value hovering at it does not flap.
fn alarm_rules(thresholds: &AlarmThresholds) -> AlarmRules {
    let spread = thresholds.cell_spread_mv;
    let rise = f64::from(thresholds.temperature_rise_c_per_min);
    AlarmRules {
        cell_spread_mv: spread,
        cell_spread_clear_mv: spread - spread / 6,
        temperature_rise_per_min: rise,
        temperature_rise_clear_per_min: rise / 2.0,
        soc_low_percent: thresholds.soc_low_percent,
        soc_clear_percent: thresholds.soc_low_percent.saturating_add(5).min(100),
        offline_after: thresholds.offline_after,
        ..AlarmRules::default()
    }
}

/// Rolls up and applies retention every [`MAINTENANCE_INTERVAL`] until stopped.
async fn run_maintenance<S: Store>(
    store: S,
    retention: Retention,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(MAINTENANCE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => return,
        }
        let started = std::time::Instant::now();
        match store.maintain(Timestamp::now(), retention).await {
            Ok(report) => tracing::debug!(
                ?report,
                "maintenance: roll-ups and retention in {} ms",
                started.elapsed().as_millis()
            ),
            Err(error) => {
                warn!("maintenance (roll-ups, retention) failed: {error}; retrying in a minute")
            }
        }
    }
}
