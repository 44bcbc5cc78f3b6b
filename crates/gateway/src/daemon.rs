//! `bmslink gateway`: the site daemon. It starts one poller per rack, the site task
//! (aggregation, limits, failsafe), the PCS link to the inverter, the EMS Modbus server, the dry
//! contact and the metrics endpoint, all connected by channels:
//!
//! ```text
//!  poller (rack 1) ─┐ RackUpdate                 ┌─► PCS link (CAN) ◄── 0x305 keep-alive
//!  poller (rack 2) ─┼──────────► site ── watch ──┼─► dry contact
//!  poller (rack N) ─┘   ▲           ▲            ├─► EMS server (Modbus TCP), /metrics
//!                       │           │            └─► uplink to the platform (optional)
//!        ▲ writes       │ heartbeat │ commands
//!        └──────────────┴───────────┴────────────── EMS server, uplink
//! ```
//!
//! Every task logs what it does and why; a link that fails is reopened by its own task, so
//! the daemon runs until it is told to stop (Ctrl-C or SIGTERM). On the way out the inverter is
//! sent the safe state and the dry contact opens.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::can_bus::CanBus;
use crate::clock::Clock;
use crate::config::{GatewayConfig, InverterConfig};
use crate::metrics::Metrics;
use crate::pcs::{run_pcs_link, PcsCommand, PcsSettings};
use crate::rack::poller::{run_poller, PollerChannels, PollerConfig};
use crate::rack::{RackHandle, RackUpdate};
use crate::site::{run_site, EmsCommand, RackIdentity, Site, SiteChannels, SiteSnapshot};
use crate::uplink::{run_uplink, UplinkOptions, UplinkRack};

/// How long a stopping gateway lets the safe state and the open contact take effect.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// Pause before reopening a failed CAN link.
pub const CAN_REOPEN_PAUSE: Duration = Duration::from_secs(5);

/// Why the gateway could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The session settings were refused by the core.
    Session(bmslink_core::session::ConfigError),
    /// The PCS link's settings were refused.
    Pcs(crate::pcs::PcsError),
    /// A listening socket could not be bound.
    Bind {
        /// What it was for.
        what: &'static str,
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Session(error) => write!(f, "polling settings: {error}"),
            StartError::Pcs(error) => write!(f, "inverter settings: {error}"),
            StartError::Bind {
                what,
                address,
                source,
            } => write!(
                f,
                "cannot listen on {address} for the {what}: {source} (is another program using \
                 the port? ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            ),
        }
    }
}

impl std::error::Error for StartError {}

/// A running gateway: what tests and the command line hold on to.
#[derive(Debug)]
pub struct Gateway {
    /// The latest site picture.
    pub snapshot: watch::Receiver<Arc<SiteSnapshot>>,
    /// What the inverter is told.
    pub pcs: watch::Receiver<PcsCommand>,
    /// Whether the dry contact is open.
    pub contact_open: watch::Receiver<bool>,
    /// Write handles of the racks.
    pub racks: Vec<RackHandle>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Where the EMS server listens.
    pub ems_address: SocketAddr,
    /// Where the metrics are served, if they are.
    pub metrics_address: Option<SocketAddr>,
    /// Pollers, the site, the EMS server, metrics: stopped first.
    inputs: JoinSet<()>,
    /// The PCS link and the dry contact: stopped last, after the safe state went out.
    outputs: JoinSet<()>,
    pcs_sender: watch::Sender<PcsCommand>,
    contact_sender: watch::Sender<bool>,
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

impl Gateway {
    /// Starts every task of `config`.
    pub async fn start(config: &GatewayConfig) -> Result<Gateway, StartError> {
        let clock = Clock::start();
        let metrics = Arc::new(Metrics::new());
        let session = config.session_config().map_err(StartError::Session)?;
        let pcs_settings = PcsSettings::from_config(&config.inverter).map_err(StartError::Pcs)?;
        let ems_listener = bind("EMS Modbus server", config.ems.listen).await?;
        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(bind("metrics endpoint", address).await?),
            None => None,
        };
        let mut tasks = JoinSet::new();
        let mut outputs = JoinSet::new();

        let (updates_tx, updates_rx) = mpsc::channel::<RackUpdate>(64 * config.racks.len().max(1));
        let mut racks = Vec::new();
        for (index, rack) in config.racks.iter().enumerate() {
            let (handle, writes) = RackHandle::new(index, rack.name.clone());
            racks.push(handle);
            let poller = PollerConfig {
                rack: index,
                name: rack.name.clone(),
                link: rack.link.clone(),
                session: session.clone(),
                poll_interval: config.polling.poll_interval,
                password: rack.password,
            };
            let channels = PollerChannels {
                updates: updates_tx.clone(),
                writes,
            };
            tasks.spawn(run_poller(poller, channels, clock, metrics.clone()));
        }
        drop(updates_tx);

        let identities = config
            .racks
            .iter()
            .map(|r| RackIdentity {
                name: r.name.clone(),
                link_text: r.link.to_string(),
            })
            .collect();
        let site = Site::new(
            identities,
            config.polling.stale_timeout,
            config.failsafe_config(),
            clock.now(),
        );
        let (pcs_tx, pcs_rx) = watch::channel(site.snapshot().pcs);
        let (contact_tx, contact_rx) = watch::channel(site.snapshot().decision.contact_open);
        let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(site.snapshot().clone()));
        let (keepalive_tx, keepalive_rx) = watch::channel(None);
        let (heartbeat_tx, heartbeat_rx) = watch::channel(None);
        let (commands_tx, commands_rx) = mpsc::channel::<EmsCommand>(16);
        let channels = SiteChannels {
            updates: updates_rx,
            inverter_keepalive: keepalive_rx,
            ems_heartbeat: heartbeat_rx,
            ems_commands: commands_rx,
            pcs: pcs_tx.clone(),
            contact_open: contact_tx.clone(),
            snapshot: snapshot_tx,
        };
        tasks.spawn(run_site(site, channels, clock, metrics.clone()));
        outputs.spawn(run_can(
            config.inverter.clone(),
            pcs_settings,
            pcs_rx.clone(),
            keepalive_tx,
            metrics.clone(),
        ));

        let ems_address = ems_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                what: "EMS Modbus server",
                address: config.ems.listen,
                source,
            })?;
        let ems = crate::ems::run_ems_server(
            ems_listener,
            config.ems.clone(),
            snapshot_rx.clone(),
            racks.clone(),
            crate::ems::EmsLinks {
                heartbeat: heartbeat_tx,
                commands: commands_tx,
            },
            clock,
            metrics.clone(),
        );
        tasks.spawn(async move {
            if let Err(error) = ems.await {
                error!("EMS Modbus server stopped: {error}");
            }
        });
        if let Some(uplink) = &config.uplink {
            let uplink_racks = racks
                .iter()
                .zip(&config.racks)
                .map(|(handle, rack)| UplinkRack {
                    handle: handle.clone(),
                    password: rack.password,
                })
                .collect();
            tasks.spawn(run_uplink(
                uplink.clone(),
                uplink_racks,
                snapshot_rx.clone(),
                UplinkOptions {
                    reconnect_max: uplink.reconnect_max,
                    ..UplinkOptions::default()
                },
            ));
        }
        outputs.spawn(crate::contact::run_dry_contact(
            config.dry_contact.clone(),
            contact_rx.clone(),
            metrics.clone(),
        ));
        let metrics_address = match metrics_listener {
            Some(listener) => {
                let address = listener.local_addr().ok();
                let metrics = metrics.clone();
                tasks.spawn(async move {
                    if let Err(error) =
                        crate::metrics_server::serve_metrics(listener, metrics).await
                    {
                        error!("metrics endpoint stopped: {error}");
                    }
                });
                address
            }
            None => None,
        };
        info!(
            racks = config.racks.len(),
            ems = %ems_address,
            "gateway started: {} racks, inverter profile {}, EMS on {ems_address}",
            config.racks.len(),
            config.inverter.profile.name()
        );
        Ok(Gateway {
            snapshot: snapshot_rx,
            pcs: pcs_rx,
            contact_open: contact_rx,
            racks,
            metrics,
            ems_address,
            metrics_address,
            inputs: tasks,
            outputs,
            pcs_sender: pcs_tx,
            contact_sender: contact_tx,
        })
    }

    /// Runs until Ctrl-C or SIGTERM, then stops safely.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        info!("stopping: the inverter gets the safe state");
        self.stop().await;
    }

    /// Stops polling, sends the safe state to the inverter, opens the dry contact, waits for
    /// both to take effect, and stops every task.
    pub async fn stop(mut self) {
        self.inputs.shutdown().await;
        self.contact_sender.send_replace(true);
        let current = *self.pcs.borrow();
        let state = match current {
            PcsCommand::Normal(state) | PcsCommand::Safe { state, .. } => state,
        };
        self.pcs_sender.send_replace(PcsCommand::Safe {
            pack_voltage: state.voltage,
            state,
        });
        // The restriction goes out at once (SMA: within 200 ms); a contact command may take
        // a moment.
        tokio::time::sleep(STOP_GRACE).await;
        self.outputs.shutdown().await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                return;
            }
            Err(error) => warn!("cannot watch SIGTERM ({error}); stopping on Ctrl-C only"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs the PCS link, reopening the CAN transport after a failure. While it is down the
/// inverter hears nothing, which every profile treats as a stop.
async fn run_can(
    inverter: InverterConfig,
    settings: PcsSettings,
    commands: watch::Receiver<PcsCommand>,
    keepalive: watch::Sender<Option<std::time::Instant>>,
    metrics: Arc<Metrics>,
) {
    loop {
        match CanBus::open(&inverter).await {
            Ok(mut transport) => {
                info!("CAN link to the inverter open");
                match run_pcs_link(
                    &mut transport,
                    settings,
                    commands.clone(),
                    keepalive.clone(),
                    metrics.clone(),
                )
                .await
                {
                    Ok(_) => return,
                    Err(error) => warn!(
                        "{error}; reopening in {} s (the inverter hears nothing meanwhile)",
                        CAN_REOPEN_PAUSE.as_secs()
                    ),
                }
            }
            Err(error) => warn!(
                "cannot open the CAN link: {error}; retrying in {} s",
                CAN_REOPEN_PAUSE.as_secs()
            ),
        }
        tokio::time::sleep(CAN_REOPEN_PAUSE).await;
    }
}
