//! Which connection of this process carries which terminal, and the impersonation rule.
//!
//! A terminal is owned by at most one connection. When a second connection claims a terminal
//! that is online here, the **newer connection wins**: the older one is told to close, and a
//! warning names both addresses (see the listener's module documentation for why).
//!
//! The store's online flag must follow ownership exactly, also when a box reconnects while its
//! old connection is still closing. Each terminal therefore has an async lock that orders its
//! ownership changes together with their store calls: a claim takes the lock, becomes owner
//! and calls [`Store::terminal_connected`]; a release takes the lock and calls
//! [`Store::terminal_disconnected`] only if its connection still owns the terminal. An old
//! connection's late release can never mark a reconnected terminal offline.
//!
//! Across processes the store applies the same rule: each connection is known there by its
//! [`ConnectionOwner`] (this process's id and the connection's number), and a disconnection
//! takes effect only for the connection that still holds the terminal, so a box that moved to
//! another process stays online when its old connection here ends.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tracing::{debug, error, warn};

use super::stats::ListenerStats;
use crate::model::{ConnectionOwner, ProcessId, Terminal, TerminalRecord, Timestamp};
use crate::store::{Store, StoreResult};

/// Identifies a connection within this process.
pub(crate) type ConnectionId = u64;

/// What other tasks may ask of a connection.
#[derive(Debug)]
pub(crate) struct ConnectionHandle {
    pub id: ConnectionId,
    pub peer: SocketAddr,
    /// Commands were queued for one of its terminals: look for them (coalesces).
    pub wake: Notify,
    /// Close (a newer connection took a terminal); the reason is in `close_reason`.
    pub close: Notify,
    close_reason: Mutex<Option<String>>,
}

impl ConnectionHandle {
    pub fn new(id: ConnectionId, peer: SocketAddr) -> ConnectionHandle {
        ConnectionHandle {
            id,
            peer,
            wake: Notify::new(),
            close: Notify::new(),
            close_reason: Mutex::new(None),
        }
    }

    /// Asks the connection to close, giving the reason for its log.
    pub fn request_close(&self, reason: String) {
        *lock(&self.close_reason) = Some(reason);
        self.close.notify_one();
    }

    /// Why the connection was asked to close.
    pub fn close_reason(&self) -> String {
        lock(&self.close_reason)
            .clone()
            .unwrap_or_else(|| "asked to close".to_string())
    }
}

#[derive(Debug, Default)]
struct Slot {
    owner: Option<Arc<ConnectionHandle>>,
    /// Orders this terminal's ownership changes with their store calls.
    presence: Arc<tokio::sync::Mutex<()>>,
}

/// Terminal -> the connection that carries it.
#[derive(Debug)]
pub(crate) struct Registry {
    /// This process, as the store knows it.
    process: ProcessId,
    slots: Mutex<HashMap<Terminal, Slot>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicked connection task cannot leave the map half-changed (every change is one
    // statement), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    /// An empty registry of the process `process`.
    pub fn new(process: ProcessId) -> Registry {
        Registry {
            process,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// How the store knows `connection`.
    pub fn owner_key(&self, connection: ConnectionId) -> ConnectionOwner {
        ConnectionOwner {
            process: self.process,
            connection,
        }
    }

    /// Makes `connection` the owner of `terminal` (closing an older owner) and records the
    /// connection in the store; returns the terminal's record.
    pub async fn claim<S: Store>(
        &self,
        terminal: Terminal,
        connection: &Arc<ConnectionHandle>,
        store: &S,
        approve_new: bool,
        stats: &ListenerStats,
    ) -> StoreResult<TerminalRecord> {
        let presence = self.presence(terminal);
        let _ordered = presence.lock().await;
        let previous = lock(&self.slots)
            .entry(terminal)
            .or_default()
            .owner
            .replace(connection.clone());
        if let Some(previous) = previous.filter(|p| p.id != connection.id) {
            replace(terminal, &previous, connection, stats);
        }
        let owner = self.owner_key(connection.id);
        let result = store
            .terminal_connected(terminal, owner, Timestamp::now(), approve_new)
            .await;
        if result.is_err() {
            // Not online in the store: do not own it either.
            self.give_up(terminal, connection.id);
        }
        result
    }

    /// Ends `connection`'s ownership of `terminal`; marks the terminal offline in the store if
    /// the connection still owned it.
    pub async fn release<S: Store>(&self, terminal: Terminal, connection: ConnectionId, store: &S) {
        let presence = self.presence(terminal);
        {
            let _ordered = presence.lock().await;
            if self.give_up(terminal, connection) {
                let owner = self.owner_key(connection);
                match store
                    .terminal_disconnected(terminal, owner, Timestamp::now())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => debug!(
                        "terminal {terminal}: not marked offline: the store says another \
                         connection holds it now"
                    ),
                    Err(e) => error!("terminal {terminal}: could not be marked offline: {e}"),
                }
            }
        }
        drop(presence);
        self.prune(terminal);
    }

    /// The connection carrying `terminal`, if any.
    pub fn owner(&self, terminal: Terminal) -> Option<Arc<ConnectionHandle>> {
        lock(&self.slots)
            .get(&terminal)
            .and_then(|slot| slot.owner.clone())
    }

    /// Wakes every connection (after missed command notices).
    pub fn wake_all(&self) {
        for slot in lock(&self.slots).values() {
            if let Some(owner) = &slot.owner {
                owner.wake.notify_one();
            }
        }
    }

    fn presence(&self, terminal: Terminal) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.slots)
            .entry(terminal)
            .or_default()
            .presence
            .clone()
    }

    /// Clears the owner if it is `connection`; returns whether it was.
    fn give_up(&self, terminal: Terminal, connection: ConnectionId) -> bool {
        let mut slots = lock(&self.slots);
        match slots.get_mut(&terminal) {
            Some(slot) if slot.owner.as_ref().is_some_and(|o| o.id == connection) => {
                slot.owner = None;
                true
            }
            _ => false,
        }
    }

    /// Drops the slot of a terminal nobody owns or waits for, so the map does not grow with
    /// every terminal ever seen.
    fn prune(&self, terminal: Terminal) {
        let mut slots = lock(&self.slots);
        let unused = slots
            .get(&terminal)
            .is_some_and(|slot| slot.owner.is_none() && Arc::strong_count(&slot.presence) == 1);
        if unused {
            slots.remove(&terminal);
        }
    }
}

/// The impersonation rule: the newer connection wins; the older one is closed.
fn replace(
    terminal: Terminal,
    previous: &ConnectionHandle,
    newer: &ConnectionHandle,
    stats: &ListenerStats,
) {
    ListenerStats::bump(&stats.impersonations);
    warn!(
        "terminal {terminal}: claimed by {} while online from {}: possible impersonation; the \
         newer connection wins (a data box that changed networks reconnects before its old \
         connection times out), closing the connection from {}",
        newer.peer, previous.peer, previous.peer
    );
    previous.request_close(format!(
        "terminal {terminal} was claimed by a newer connection from {}",
        newer.peer
    ));
}
