//! The liveness task: this process's heartbeat in the store, and the sweep that marks offline
//! the terminals of processes that stopped beating (rule 3 of "Which terminal is online" in
//! the `store` module docs).
//!
//! ```text
//!  start ─► heartbeat ─► every interval: heartbeat, then sweep (cut-off: now - timeout)
//!  stop  ─► wait for the listener to release its terminals ─► process_stopped
//! ```
//!
//! Every process sweeps; sweeps are idempotent, so several at once do no harm. A failed
//! heartbeat or sweep is logged and tried again at the next tick.

use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};

use crate::config::ClusterConfig;
use crate::model::{ProcessId, Timestamp};
use crate::store::Store;

/// How long a stopping process waits for its listener before releasing its terminals anyway.
const LISTENER_WAIT: Duration = Duration::from_secs(12);

/// Registers `process` once, before the listener accepts its first connection; a failure is
/// logged (the task tries again every interval).
pub(super) async fn first_heartbeat<S: Store>(store: &S, process: ProcessId) {
    match store.process_heartbeat(process, Timestamp::now()).await {
        Ok(_) => info!("platform process {process} registered"),
        Err(error) => warn!(
            "platform process {process}: first heartbeat failed: {error}; retrying in the \
             background (meanwhile other processes may take this one for dead)"
        ),
    }
}

/// Beats and sweeps until `stopped`; then waits for `listener_done` (dropped when the
/// listener has ended) and records the stop.
pub(super) async fn run_liveness<S: Store>(
    store: S,
    process: ProcessId,
    cluster: ClusterConfig,
    mut stopped: watch::Receiver<bool>,
    listener_done: oneshot::Receiver<()>,
) {
    let interval = cluster.heartbeat_interval();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.wait_for(|&stop| stop) => break,
        }
        beat(&store, process).await;
        sweep(&store, cluster.process_timeout).await;
    }
    if tokio::time::timeout(LISTENER_WAIT, listener_done)
        .await
        .is_err()
    {
        warn!("the device listener did not stop in time; releasing its terminals anyway");
    }
    match store.process_stopped(process, Timestamp::now()).await {
        Ok(released) => {
            info!("platform process {process} stopped; {released} terminals it still held released")
        }
        Err(error) => warn!(
            "platform process {process}: the stop could not be recorded: {error}; the other \
             processes' sweeps will release its terminals"
        ),
    }
}

async fn beat<S: Store>(store: &S, process: ProcessId) {
    match store.process_heartbeat(process, Timestamp::now()).await {
        Ok(0) => {}
        Ok(restored) => warn!(
            "platform process {process}: {restored} terminals put back online: a sweep had \
             taken this process for dead (its heartbeat was late)"
        ),
        Err(error) => warn!("platform process {process}: heartbeat failed: {error}"),
    }
}

async fn sweep<S: Store>(store: &S, timeout: Duration) {
    let cutoff = Timestamp::now().minus(timeout);
    match store.sweep_processes(cutoff).await {
        Ok(report) if report.terminals > 0 || report.processes > 0 => info!(
            "liveness sweep: {} platform processes silent for over {} s forgotten; {} \
             terminals not held by a live process marked offline",
            report.processes,
            timeout.as_secs(),
            report.terminals
        ),
        Ok(_) => debug!("liveness sweep: nothing to do"),
        Err(error) => warn!("liveness sweep failed: {error}"),
    }
}
