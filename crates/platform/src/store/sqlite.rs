//! [`SqliteStore`]: the embedded default store, one SQLite file (WAL) under the platform's data
//! directory.
//!
//! SQLite is synchronous, so it never runs on the async executor:
//!
//! ```text
//!  async callers ──jobs (mpsc)──► writer thread: the one read-write connection
//!        │                         (every write in arrival order, one transaction each;
//!        │                          telemetry batches queued together: one transaction)
//!        └──spawn_blocking──► reader pool: up to READERS query-only connections
//!                              (WAL: readers never block the writer, nor it them)
//! ```
//!
//! A write returns once its transaction committed, and readers start a fresh snapshot per
//! query, so a read issued after a write returned sees it. Connections run with
//! `journal_mode=WAL`, `synchronous=NORMAL` (durable across a process crash; a power loss may
//! lose the last transactions, never corrupt the file), a busy timeout and foreign keys on.
//! An in-memory store ([`SqliteStore::open_in_memory`]) has no readers: everything runs on the
//! writer thread.
//!
//! Telemetry is append-only (schema version 3): rows in arrival order, dedup against the
//! writer's in-memory record runs (`keys.rs`), history through a (10-second slot, terminal)
//! index. What rows change per terminal (`latest`, `last_seen`, the runs' copy) is flushed
//! every 30 s (version 4, `pending.rs`); reads overlay the rows not flushed yet. So
//! one platform process writes a SQLite file (a second writer is noticed and the keys
//! reloaded, see `keys.rs`).
//!
//! Maintenance (roll-ups, retention) keeps the window sort over the last minutes of rows off
//! the writer thread: the buckets are computed on readers and only written by the writer
//! (the steps are in `telemetry.rs`).
//!
//! Command notices ([`CommandNotice`]) are an in-process broadcast channel: one SQLite file
//! belongs to one platform process.

mod keys;
mod pending;
mod processes;
mod records;
mod schema;
mod telemetry;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use pending::PendingLatest;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{broadcast, oneshot, OwnedSemaphorePermit, Semaphore};
use writer::{Db, WriteJob};

use crate::model::{
    Alarm, AlarmKind, AuditEntry, Command, CommandRequest, CommandState, ConnectionOwner,
    Credential, FleetEntry, HistoryPoint, ProcessId, Registration, Resolution, Role, TelemetryRow,
    Terminal, TerminalRecord, Timestamp, User,
};
use crate::store::{
    AlarmFilter, CommandNotice, InsertReport, MaintenanceReport, Retention, Store, StoreError,
    StoreResult, SweepReport,
};

pub use schema::SCHEMA_VERSION;

/// Query-only connections kept for reads.
const READERS: usize = 4;
/// How long a statement waits for a lock held by another connection (another process, or a
/// WAL checkpoint) before giving up with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Command notices buffered per subscriber before a slow one starts missing them.
const NOTICE_CAPACITY: usize = 1024;

/// The SQLite store. Cheap to clone: clones share the writer thread, the readers and the
/// notice channel. The writer thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.shared.readers.as_ref().map(|r| r.path.as_path());
        f.debug_struct("SqliteStore").field("path", &path).finish()
    }
}

struct Shared {
    writer: mpsc::Sender<WriteJob>,
    /// Committed rows not yet in `latest` (the writer's; reads overlay them).
    pending: PendingLatest,
    /// `None` for an in-memory database (reads go to the writer).
    readers: Option<ReaderPool>,
    notices: broadcast::Sender<CommandNotice>,
    /// Held through a maintenance pass (its steps run on readers and the writer in turn).
    maintenance: tokio::sync::Mutex<()>,
}

struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl SqliteStore {
    /// Opens (creating it, and its directory, if needed) the database at `path` and brings its
    /// schema up to date; `SchemaTooNew` if a newer bmslink wrote it.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        create_parent(path)?;
        let mut writer = open_connection(path, false)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .context("switching to WAL")?;
        schema::migrate(&mut writer)?;
        let readers = ReaderPool {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(READERS)),
        };
        SqliteStore::start(Db::open(writer)?, Some(readers))
    }

    /// A private database in memory (tests, demos): gone when the last clone is dropped.
    pub fn open_in_memory() -> StoreResult<SqliteStore> {
        let mut writer = Connection::open_in_memory().context("opening an in-memory database")?;
        configure(&writer, false)?;
        schema::migrate(&mut writer)?;
        SqliteStore::start(Db::open(writer)?, None)
    }

    fn start(writer: Db, readers: Option<ReaderPool>) -> StoreResult<SqliteStore> {
        let (notices, _) = broadcast::channel(NOTICE_CAPACITY);
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                pending: writer.pending.clone(),
                writer: writer::spawn(writer)?,
                readers,
                notices,
                maintenance: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Runs `job` on the writer connection.
    async fn write<T, F>(&self, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        self.write_db(move |db| job(&mut db.connection)).await
    }

    /// Runs `job` on the writer thread's state (connection and dedup keys).
    async fn write_db<T, F>(&self, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Db) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = WriteJob::Other(Box::new(move |db: &mut Db| {
            // The caller may have gone (cancelled): then nobody needs the answer.
            let _ = reply.send(job(db));
        }));
        self.shared.writer.send(job).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Runs `job` on a reader connection (on the writer for an in-memory database).
    async fn read<T, F>(&self, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let Some(permit) = self.reader_permit().await? else {
            return self.write(move |connection| job(connection)).await;
        };
        let shared = Arc::clone(&self.shared);
        let run = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            on_reader(&shared, job)
        });
        run.await
            .map_err(|e| StoreError::Unavailable(format!("a SQLite read task failed: {e}")))?
    }

    /// Runs `job` on a reader connection in a thread of its own at the lowest CPU priority
    /// (nice 19): the roll-up pass's window sort over the last minutes of rows takes a core
    /// for seconds, and must not take it from ingest. On the writer for an in-memory database.
    async fn read_in_background<T, F>(&self, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let Some(permit) = self.reader_permit().await? else {
            return self.write(move |connection| job(connection)).await;
        };
        let shared = Arc::clone(&self.shared);
        let (reply, answer) = oneshot::channel();
        std::thread::Builder::new()
            .name("bmslink-rollup".into())
            .spawn(move || {
                let _permit = permit;
                lower_priority();
                let _ = reply.send(on_reader(&shared, job));
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start a SQLite read: {e}")))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("a SQLite background read failed".into()))?
    }

    /// A turn at the reader pool; `None` for an in-memory database (no readers).
    async fn reader_permit(&self) -> StoreResult<Option<OwnedSemaphorePermit>> {
        let Some(pool) = &self.shared.readers else {
            return Ok(None);
        };
        Arc::clone(&pool.permits)
            .acquire_owned()
            .await
            .map(Some)
            .map_err(|_| StoreError::Unavailable("the SQLite reader pool is closed".into()))
    }

    /// Maintenance steps 2 and 3 (see `telemetry.rs`): writes the minute buckets on the
    /// writer, then computes the hours from them on a reader.
    async fn roll_up_hours(
        &self,
        minutes: telemetry::MinuteRollUp,
        now: Timestamp,
        report: &mut MaintenanceReport,
    ) -> StoreResult<telemetry::HourRollUp> {
        let from = minutes.from;
        report.minute_buckets = self
            .write_db(move |db| telemetry::store_minutes(db, &minutes.buckets))
            .await?;
        let buckets = self
            .read(move |connection| telemetry::hour_buckets(connection, from, now))
            .await?;
        Ok(telemetry::HourRollUp { from, buckets })
    }

    fn announce(&self, notice: CommandNotice) {
        // No subscriber yet is fine: queued commands are also found by `queued_commands`.
        let _ = self.shared.notices.send(notice);
    }
}

impl ReaderPool {
    fn take(&self) -> StoreResult<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(connection) => Ok(connection),
            None => open_connection(&self.path, true),
        }
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < READERS {
            idle.push(connection);
        }
    }
}

/// Runs `job` on a pooled reader connection (on a thread that may block, holding a permit).
fn on_reader<T>(
    shared: &Shared,
    job: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let pool = shared.readers.as_ref().ok_or_else(writer_gone)?;
    let connection = pool.take()?;
    let result = job(&connection);
    pool.give_back(connection);
    result
}

/// Makes the calling thread the last to get a core (nice 19); where that is refused, it
/// runs at the normal priority (logged).
fn lower_priority() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other);
    if let Err(error) =
        set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy)
    {
        tracing::debug!("the roll-up read runs at normal priority (cannot lower it: {error:?})");
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the SQLite writer thread has stopped (see the log)".into())
}

fn create_parent(path: &Path) -> StoreResult<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create the directory {}: {e}",
                dir.display()
            ))
        }),
        _ => Ok(()),
    }
}

fn open_connection(path: &Path, query_only: bool) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let connection = Connection::open_with_flags(path, flags).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot open the SQLite database {}: {e}",
            path.display()
        ))
    })?;
    configure(&connection, query_only)?;
    Ok(connection)
}

fn configure(connection: &Connection, query_only: bool) -> StoreResult<()> {
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .context("setting the busy timeout")?;
    let pragmas = [
        ("synchronous", "NORMAL"),
        ("foreign_keys", "ON"),
        ("temp_store", "MEMORY"),
        // 64 MiB of page cache (negative: KiB).
        ("cache_size", "-65536"),
        ("query_only", if query_only { "ON" } else { "OFF" }),
        // Checkpoint every ~64 MiB of WAL rather than 4 MiB: a page rewritten by many
        // transactions (a busy index leaf) is copied back to the database once per checkpoint.
        ("wal_autocheckpoint", "16384"),
    ];
    for (name, value) in pragmas {
        connection
            .pragma_update(None, name, value)
            .context(&format!("setting {name}={value}"))?;
    }
    connection.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Maps a SQLite error to a [`StoreError`] that says what was being done.
fn store_error(error: &rusqlite::Error, doing: &str) -> StoreError {
    use rusqlite::ErrorCode;
    let text = format!("SQLite, {doing}: {error}");
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::ConstraintViolation => StoreError::Conflict(text),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt(text),
            // Disk full, read-only file, I/O error, locked, cannot open, out of memory...
            _ => StoreError::Unavailable(text),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(text),
        _ => StoreError::Unavailable(text),
    }
}

/// Runs a query and converts every row with `convert`.
fn query_all<T>(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    doing: &str,
    convert: impl Fn(&rusqlite::Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut statement = connection.prepare_cached(sql).context(doing)?;
    let mut rows = statement.query(params).context(doing)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().context(doing)? {
        out.push(convert(row)?);
    }
    Ok(out)
}

/// Runs a query and converts its first row, if any.
fn query_first<T>(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    doing: &str,
    convert: impl Fn(&rusqlite::Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut statement = connection.prepare_cached(sql).context(doing)?;
    let mut rows = statement.query(params).context(doing)?;
    rows.next().context(doing)?.map(convert).transpose()
}

/// One column of a result row, by name.
fn column<T: rusqlite::types::FromSql>(row: &rusqlite::Row<'_>, name: &str) -> StoreResult<T> {
    row.get(name).context(&format!("reading the column {name}"))
}

/// Adds what was being done to a SQLite error.
trait Context<T> {
    fn context(self, doing: &str) -> StoreResult<T>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn context(self, doing: &str) -> StoreResult<T> {
        self.map_err(|e| store_error(&e, doing))
    }
}

impl Store for SqliteStore {
    async fn insert_telemetry(&self, rows: Vec<TelemetryRow>) -> StoreResult<InsertReport> {
        if rows.is_empty() {
            return Ok(InsertReport::default());
        }
        let (reply, answer) = oneshot::channel();
        let job = WriteJob::Telemetry(rows, reply);
        self.shared.writer.send(job).map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    async fn latest(&self, terminal: Terminal) -> StoreResult<Option<TelemetryRow>> {
        let pending = self.shared.pending.of(terminal);
        let stored = self.read(move |c| telemetry::latest(c, terminal)).await?;
        Ok(pending.latest(terminal, stored))
    }

    async fn history(
        &self,
        terminal: Terminal,
        from: Timestamp,
        to: Timestamp,
        resolution: Resolution,
    ) -> StoreResult<Vec<HistoryPoint>> {
        self.read(move |c| telemetry::history(c, terminal, from, to, resolution))
            .await
    }

    async fn maintain(
        &self,
        now: Timestamp,
        retention: Retention,
    ) -> StoreResult<MaintenanceReport> {
        // One pass at a time: the steps of two passes must not interleave.
        let _pass = self.shared.maintenance.lock().await;
        let mut report = MaintenanceReport::default();
        let started = std::time::Instant::now();
        let minutes = self
            .read_in_background(move |connection| telemetry::minute_buckets(connection, now))
            .await?;
        let read_minutes = started.elapsed();
        let hours = match minutes {
            Some(minutes) => Some(self.roll_up_hours(minutes, now, &mut report).await?),
            None => None,
        };
        let rolled_up = started.elapsed();
        let report = self
            .write_db(move |db| {
                telemetry::finish_pass(db, now, retention, hours, &mut report)?;
                Ok(report)
            })
            .await?;
        tracing::debug!(
            "SQLite maintenance steps: minute buckets read in {} ms, minutes written and hours \
             read in {} ms, hours written and retention applied in {} ms",
            read_minutes.as_millis(),
            (rolled_up - read_minutes).as_millis(),
            (started.elapsed() - rolled_up).as_millis()
        );
        Ok(report)
    }

    async fn terminal_connected(
        &self,
        terminal: Terminal,
        owner: ConnectionOwner,
        at: Timestamp,
        approve_new: bool,
    ) -> StoreResult<TerminalRecord> {
        self.write(move |c| records::terminal_connected(c, terminal, owner, at, approve_new))
            .await
    }

    async fn terminal_disconnected(
        &self,
        terminal: Terminal,
        owner: ConnectionOwner,
        at: Timestamp,
    ) -> StoreResult<bool> {
        self.write(move |c| records::terminal_disconnected(c, terminal, owner, at))
            .await
    }

    async fn process_heartbeat(&self, process: ProcessId, at: Timestamp) -> StoreResult<u64> {
        self.write(move |c| processes::heartbeat(c, process, at))
            .await
    }

    async fn sweep_processes(&self, cutoff: Timestamp) -> StoreResult<SweepReport> {
        self.write(move |c| processes::sweep(c, cutoff)).await
    }

    async fn process_stopped(&self, process: ProcessId, at: Timestamp) -> StoreResult<u64> {
        self.write(move |c| processes::stopped(c, process, at))
            .await
    }

    async fn terminal(&self, terminal: Terminal) -> StoreResult<Option<TerminalRecord>> {
        let pending = self.shared.pending.of(terminal);
        let mut record = self.read(move |c| records::terminal(c, terminal)).await?;
        if let Some(record) = &mut record {
            pending.record(record);
        }
        Ok(record)
    }

    async fn fleet(&self) -> StoreResult<Vec<FleetEntry>> {
        let pending = self.shared.pending.snapshot();
        let mut fleet = self.read(records::fleet).await?;
        pending.fleet(&mut fleet);
        Ok(fleet)
    }

    async fn set_registration(
        &self,
        terminal: Terminal,
        registration: Registration,
    ) -> StoreResult<()> {
        self.write(move |c| records::set_registration(c, terminal, registration))
            .await
    }

    async fn set_terminal_name(&self, terminal: Terminal, name: Option<String>) -> StoreResult<()> {
        self.write(move |c| records::set_terminal_name(c, terminal, name.as_deref()))
            .await
    }

    async fn raise_alarm(
        &self,
        terminal: Terminal,
        kind: AlarmKind,
        detail: String,
        at: Timestamp,
    ) -> StoreResult<(i64, bool)> {
        self.write(move |c| records::raise_alarm(c, terminal, &kind, &detail, at))
            .await
    }

    async fn clear_alarm(
        &self,
        terminal: Terminal,
        kind: AlarmKind,
        at: Timestamp,
    ) -> StoreResult<bool> {
        self.write(move |c| records::clear_alarm(c, terminal, &kind, at))
            .await
    }

    async fn alarms(&self, filter: AlarmFilter) -> StoreResult<Vec<Alarm>> {
        self.read(move |c| records::alarms(c, filter)).await
    }

    async fn acknowledge_alarm(&self, id: i64, user: String, at: Timestamp) -> StoreResult<Alarm> {
        self.write(move |c| records::acknowledge_alarm(c, id, &user, at))
            .await
    }

    async fn enqueue_command(
        &self,
        terminal: Terminal,
        request: CommandRequest,
        issued_by: String,
        at: Timestamp,
    ) -> StoreResult<i64> {
        let id = self
            .write(move |c| records::enqueue_command(c, terminal, &request, &issued_by, at))
            .await?;
        self.announce(CommandNotice::Queued { id, terminal });
        Ok(id)
    }

    async fn claim_command(&self, id: i64) -> StoreResult<Option<Command>> {
        self.write(move |c| records::claim_command(c, id)).await
    }

    async fn queued_commands(&self, terminal: Terminal) -> StoreResult<Vec<Command>> {
        self.read(move |c| records::queued_commands(c, terminal))
            .await
    }

    async fn finish_command(&self, id: i64, state: CommandState) -> StoreResult<()> {
        self.write(move |c| records::finish_command(c, id, &state))
            .await?;
        self.announce(CommandNotice::Finished { id });
        Ok(())
    }

    async fn command(&self, id: i64) -> StoreResult<Option<Command>> {
        self.read(move |c| records::command(c, id)).await
    }

    fn subscribe_commands(&self) -> broadcast::Receiver<CommandNotice> {
        self.shared.notices.subscribe()
    }

    async fn create_user(
        &self,
        name: String,
        role: Role,
        password_hash: String,
        at: Timestamp,
    ) -> StoreResult<User> {
        self.write(move |c| records::create_user(c, &name, role, &password_hash, at))
            .await
    }

    async fn user_by_name(&self, name: String) -> StoreResult<Option<User>> {
        self.read(move |c| records::user_by_name(c, &name)).await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        self.read(records::users).await
    }

    async fn update_user(
        &self,
        id: i64,
        role: Option<Role>,
        password_hash: Option<String>,
    ) -> StoreResult<User> {
        self.write(move |c| records::update_user(c, id, role, password_hash.as_deref()))
            .await
    }

    async fn delete_user(&self, id: i64) -> StoreResult<()> {
        self.write(move |c| records::delete_user(c, id)).await
    }

    async fn insert_credential(&self, credential: Credential) -> StoreResult<()> {
        self.write(move |c| records::insert_credential(c, &credential))
            .await
    }

    async fn credential(
        &self,
        secret_hash: String,
        now: Timestamp,
    ) -> StoreResult<Option<(Credential, User)>> {
        self.read(move |c| records::credential(c, &secret_hash, now))
            .await
    }

    async fn delete_credential(&self, secret_hash: String) -> StoreResult<()> {
        self.write(move |c| records::delete_credential(c, &secret_hash))
            .await
    }

    async fn tokens_of(&self, user_id: i64) -> StoreResult<Vec<Credential>> {
        self.read(move |c| records::tokens_of(c, user_id)).await
    }

    async fn audit(&self, entry: AuditEntry) -> StoreResult<()> {
        self.write(move |c| records::audit(c, &entry)).await
    }

    async fn audit_log(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.read(move |c| records::audit_log(c, from, to, limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn errors_say_what_failed_and_what_to_do() {
        let full = store_error(&failure(rusqlite::ffi::SQLITE_FULL), "storing telemetry");
        assert!(matches!(&full, StoreError::Unavailable(t) if t.contains("storing telemetry")));
        assert!(full.to_string().contains("full"), "{full}");
        let read_only = store_error(&failure(rusqlite::ffi::SQLITE_READONLY), "x");
        assert!(
            matches!(read_only, StoreError::Unavailable(_)),
            "{read_only:?}"
        );
        let unique = store_error(&failure(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE), "x");
        assert!(matches!(unique, StoreError::Conflict(_)), "{unique:?}");
        let corrupt = store_error(&failure(rusqlite::ffi::SQLITE_NOTADB), "x");
        assert!(matches!(corrupt, StoreError::Corrupt(_)), "{corrupt:?}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("platform.sqlite");
        std::fs::write(&path, vec![0x42; 8192]).unwrap();
        let error = SqliteStore::open(&path).unwrap_err();
        assert!(
            matches!(error, StoreError::Corrupt(_) | StoreError::Unavailable(_)),
            "{error:?}"
        );
        assert!(error.to_string().contains("not a database"), "{error}");
    }
}
