//! Storage behind one trait, [`Store`], with two implementations: SQLite (the embedded default:
//! one file under the data directory, WAL) and PostgreSQL (a URL; several platform processes
//! share it; telemetry natively partitioned by time). Both keep the same schema through
//! versioned migrations, write telemetry in batches, and keep 1-minute and 1-hour roll-ups so
//! long ranges read quickly after the raw rows are gone.
//!
//! The trait is used through generics (`Listener<S: Store>`, ...), so calls are static and
//! each backend is free in how it gets there. Commands to terminals travel through the store
//! too: [`Store::enqueue_command`] records one and announces it with a [`CommandNotice`] that
//! every process subscribed with [`Store::subscribe_commands`] receives (in process for
//! SQLite; PostgreSQL's LISTEN/NOTIFY across processes), so the process that holds the
//! terminal's connection runs it, whichever process's API took it.
//!
//! # Which terminal is online, with several processes
//!
//! A terminal is online while a connection holds it; the store records which one, as a
//! [`ConnectionOwner`] (process id and connection number), and three rules keep the online
//! flag true with processes that share a database, reconnecting boxes and crashes:
//!
//! 1. **The latest claim owns.** [`Store::terminal_connected`] marks the terminal online and
//!    records the claiming connection, whichever held it before (a box that reconnected to
//!    another process, before its old connection ended).
//! 2. **Only the owner disconnects.** [`Store::terminal_disconnected`] takes effect only if
//!    the terminal is still held by that connection: a stale connection's late end never marks
//!    a reconnected terminal offline.
//! 3. **A dead process holds nothing.** Each process registers itself and renews a heartbeat
//!    ([`Store::process_heartbeat`]); [`Store::sweep_processes`] (run by every live process)
//!    marks offline the terminals of processes whose heartbeat is older than the timeout, and
//!    forgets those processes. The owner stays recorded, so a process that was only late (a
//!    stalled database connection, a paused VM) puts its terminals back online at its next
//!    heartbeat; a crashed one never comes back (a restart draws a new id). A process that
//!    stops cleanly says so ([`Store::process_stopped`]).
//!
//! Heartbeat times and sweep cut-offs come from the processes' clocks, so their clocks must
//! agree (NTP) to well within the timeout. SQLite holds one process, and the same rules apply:
//! after a crash, the restarted process sweeps its predecessor's terminals.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

mod codec;
mod keys;
pub mod postgres;
pub mod sqlite;

use crate::model::{
    Alarm, AlarmKind, AuditEntry, Command, CommandRequest, CommandState, ConnectionOwner,
    Credential, FleetEntry, HistoryPoint, ProcessId, Registration, Resolution, Role, TelemetryRow,
    Terminal, TerminalRecord, Timestamp, User,
};

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached or written (connection refused, disk full, read-only
    /// file): the caller should keep what it holds and retry.
    Unavailable(String),
    /// A uniqueness rule refused the write (a user name taken).
    Conflict(String),
    /// Something was not found that had to be there.
    NotFound(String),
    /// Stored data could not be read back (a bug or a hand-edited database).
    Corrupt(String),
    /// The schema is newer than this program (a downgrade).
    SchemaTooNew {
        /// Version in the database.
        found: u32,
        /// Newest this program knows.
        known: u32,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "database unavailable: {why}"),
            StoreError::Conflict(why) => write!(f, "conflict: {why}"),
            StoreError::NotFound(what) => write!(f, "not found: {what}"),
            StoreError::Corrupt(why) => write!(f, "stored data unreadable: {why}"),
            StoreError::SchemaTooNew { found, known } => write!(
                f,
                "the database schema is version {found}, newer than this program's {known}: \
                 run the newer bmslink, or restore a backup"
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// A store result.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a batch insert did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsertReport {
    /// Rows stored.
    pub inserted: u64,
    /// Rows already stored (same terminal and record number): skipped.
    pub duplicates: u64,
}

/// How long data is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Raw rows (with their frames).
    pub raw: Duration,
    /// 1-minute roll-ups.
    pub minute: Duration,
    /// 1-hour roll-ups (`None`: forever).
    pub hour: Option<Duration>,
}

impl Default for Retention {
    /// 30 days raw, 1 year of minutes, hours forever.
    fn default() -> Self {
        Retention {
            raw: Duration::from_secs(30 * 86_400),
            minute: Duration::from_secs(365 * 86_400),
            hour: None,
        }
    }
}

/// What a maintenance pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceReport {
    /// Minute buckets written or updated.
    pub minute_buckets: u64,
    /// Hour buckets written or updated.
    pub hour_buckets: u64,
    /// Raw rows deleted by retention.
    pub raw_deleted: u64,
    /// Roll-up rows deleted by retention.
    pub rollups_deleted: u64,
}

/// What a liveness sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Processes forgotten (heartbeat older than the cut-off).
    pub processes: u64,
    /// Terminals marked offline (their owner is not a live process).
    pub terminals: u64,
}

/// Which alarms to list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlarmFilter {
    /// One terminal's, or all.
    pub terminal: Option<Terminal>,
    /// Only those not cleared.
    pub active_only: bool,
    /// Raised at or after.
    pub from: Option<Timestamp>,
    /// Raised before.
    pub to: Option<Timestamp>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// A command event, seen by every platform process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum CommandNotice {
    /// A command was queued for `terminal`.
    Queued {
        /// Command id.
        id: i64,
        /// Its terminal.
        terminal: Terminal,
    },
    /// A command finished (done or failed).
    Finished {
        /// Command id.
        id: i64,
    },
}

/// The platform's storage. Every method is one transaction; errors say what to do.
pub trait Store: Clone + Send + Sync + 'static {
    // --- Telemetry ---------------------------------------------------------------------------

    /// Stores a batch (one transaction), skipping rows whose (terminal, record) is stored
    /// already (exactly that record: one below the terminal's newest that was never stored is
    /// stored); updates each terminal's latest row and `last_seen`. The keys of a UTC day are
    /// forgotten when raw retention has dropped every row of that day.
    fn insert_telemetry(
        &self,
        rows: Vec<TelemetryRow>,
    ) -> impl Future<Output = StoreResult<InsertReport>> + Send;

    /// A terminal's latest row.
    fn latest(
        &self,
        terminal: Terminal,
    ) -> impl Future<Output = StoreResult<Option<TelemetryRow>>> + Send;

    /// A terminal's history in `[from, to)`, oldest first, at `resolution`.
    fn history(
        &self,
        terminal: Terminal,
        from: Timestamp,
        to: Timestamp,
        resolution: Resolution,
    ) -> impl Future<Output = StoreResult<Vec<HistoryPoint>>> + Send;

    /// Rolls raw rows up into minute and hour buckets up to `now` (buckets still open are
    /// updated next time) and deletes what `retention` no longer keeps.
    fn maintain(
        &self,
        now: Timestamp,
        retention: Retention,
    ) -> impl Future<Output = StoreResult<MaintenanceReport>> + Send;

    // --- Terminals ---------------------------------------------------------------------------

    /// Connection `owner` claimed `terminal` at `at`: creates it (approved, or pending when
    /// `approve_new` is false) or marks it online, and records `owner` as its holder whoever
    /// held it before (rule 1 of the module docs); returns its record.
    fn terminal_connected(
        &self,
        terminal: Terminal,
        owner: ConnectionOwner,
        at: Timestamp,
        approve_new: bool,
    ) -> impl Future<Output = StoreResult<TerminalRecord>> + Send;

    /// Connection `owner` of `terminal` ended at `at`: marks the terminal offline if `owner`
    /// still holds it, else changes nothing (rule 2); returns whether it did.
    fn terminal_disconnected(
        &self,
        terminal: Terminal,
        owner: ConnectionOwner,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// One terminal.
    fn terminal(
        &self,
        terminal: Terminal,
    ) -> impl Future<Output = StoreResult<Option<TerminalRecord>>> + Send;

    /// Every terminal with its latest row and active alarm count.
    fn fleet(&self) -> impl Future<Output = StoreResult<Vec<FleetEntry>>> + Send;

    /// Sets a terminal's registration (approve, reject); `NotFound` if unknown.
    fn set_registration(
        &self,
        terminal: Terminal,
        registration: Registration,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Names a terminal (`None` clears the name).
    fn set_terminal_name(
        &self,
        terminal: Terminal,
        name: Option<String>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    // --- Processes ---------------------------------------------------------------------------

    /// `process` is alive at `at`: registers it or renews its heartbeat, and puts back online
    /// the terminals it still holds that a sweep marked offline while its heartbeat was late
    /// (rule 3); returns how many it put back.
    fn process_heartbeat(
        &self,
        process: ProcessId,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Marks offline every online terminal not held by a live process (one whose heartbeat
    /// is at or after `cutoff`), and forgets the processes whose heartbeat is older.
    fn sweep_processes(
        &self,
        cutoff: Timestamp,
    ) -> impl Future<Output = StoreResult<SweepReport>> + Send;

    /// `process` stops at `at`: marks offline the terminals it still holds, releases them and
    /// forgets the process; returns how many terminals it marked offline.
    fn process_stopped(
        &self,
        process: ProcessId,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    // --- Alarms ------------------------------------------------------------------------------

    /// Raises an alarm unless one of the same terminal and kind is active; returns its id
    /// and whether it is new.
    fn raise_alarm(
        &self,
        terminal: Terminal,
        kind: AlarmKind,
        detail: String,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<(i64, bool)>> + Send;

    /// Clears the active alarm of this terminal and kind, if any; returns whether one was.
    fn clear_alarm(
        &self,
        terminal: Terminal,
        kind: AlarmKind,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Alarms, newest first.
    fn alarms(&self, filter: AlarmFilter) -> impl Future<Output = StoreResult<Vec<Alarm>>> + Send;

    /// Acknowledges an alarm by `user`; `NotFound` if unknown; acknowledging twice keeps the
    /// first.
    fn acknowledge_alarm(
        &self,
        id: i64,
        user: String,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<Alarm>> + Send;

    // --- Commands ----------------------------------------------------------------------------

    /// Queues a command and announces it to every process.
    fn enqueue_command(
        &self,
        terminal: Terminal,
        request: CommandRequest,
        issued_by: String,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<i64>> + Send;

    /// Takes a queued command (Queued -> Running) if no other process took it; `None` if taken.
    fn claim_command(&self, id: i64) -> impl Future<Output = StoreResult<Option<Command>>> + Send;

    /// The queued commands of a terminal, oldest first (for a terminal that just connected).
    fn queued_commands(
        &self,
        terminal: Terminal,
    ) -> impl Future<Output = StoreResult<Vec<Command>>> + Send;

    /// Records a command's end and announces it.
    fn finish_command(
        &self,
        id: i64,
        state: CommandState,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// One command.
    fn command(&self, id: i64) -> impl Future<Output = StoreResult<Option<Command>>> + Send;

    /// Command events from every process.
    fn subscribe_commands(&self) -> broadcast::Receiver<CommandNotice>;

    // --- Users, sessions, tokens, audit ------------------------------------------------------

    /// Creates a user; `Conflict` if the name is taken.
    fn create_user(
        &self,
        name: String,
        role: Role,
        password_hash: String,
        at: Timestamp,
    ) -> impl Future<Output = StoreResult<User>> + Send;

    /// A user by login name.
    fn user_by_name(&self, name: String) -> impl Future<Output = StoreResult<Option<User>>> + Send;

    /// Every user.
    fn users(&self) -> impl Future<Output = StoreResult<Vec<User>>> + Send;

    /// Changes a user's role and/or password hash; `NotFound` if unknown.
    fn update_user(
        &self,
        id: i64,
        role: Option<Role>,
        password_hash: Option<String>,
    ) -> impl Future<Output = StoreResult<User>> + Send;

    /// Deletes a user and their sessions and tokens; `NotFound` if unknown.
    fn delete_user(&self, id: i64) -> impl Future<Output = StoreResult<()>> + Send;

    /// Stores a session or token.
    fn insert_credential(
        &self,
        credential: Credential,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The credential with this secret hash and its user, if it exists and has not expired
    /// at `now`.
    fn credential(
        &self,
        secret_hash: String,
        now: Timestamp,
    ) -> impl Future<Output = StoreResult<Option<(Credential, User)>>> + Send;

    /// Deletes a credential (logout, token revoked).
    fn delete_credential(
        &self,
        secret_hash: String,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// A user's API tokens.
    fn tokens_of(&self, user_id: i64) -> impl Future<Output = StoreResult<Vec<Credential>>> + Send;

    /// Appends to the audit log.
    fn audit(&self, entry: AuditEntry) -> impl Future<Output = StoreResult<()>> + Send;

    /// The audit log in `[from, to)`, newest first, at most `limit` entries.
    fn audit_log(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<AuditEntry>>> + Send;
}
