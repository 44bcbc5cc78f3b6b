//! [`PgStore`]: PostgreSQL, for several platform processes sharing one database.
//!
//! ```text
//!  PgStore ──► deadpool pool (POOL_SIZE connections, prepared statements cached per connection)
//!     │
//!     └──► listener task: one dedicated connection, LISTEN bmslink_commands
//!            NOTIFY from any process ──► broadcast ──► subscribe_commands()
//!            (reconnects with back-off after a failure, logging each one)
//! ```
//!
//! Layout differences from SQLite, each for scale:
//! - `telemetry` is declaratively partitioned by `RANGE (at)`, one partition per UTC day
//!   (`telemetry_pYYYYMMDD`). Partitions are created ahead (today and the next two days) by
//!   every [`Store::maintain`] pass, and on insert for a row whose day has none yet (a cache
//!   per process remembers the days that exist); there is no DEFAULT partition, so creating a
//!   partition never has to move rows. Retention drops whole days: raw rows are kept until
//!   their whole day is older than the retention (at most one day more).
//! - Dedup: a unique index on a partitioned table must contain the partition key, and a
//!   retransmitted frame has a later receive time, so (terminal, record, at) would not catch
//!   it. The key lives in a small unpartitioned table `telemetry_seen (terminal, record, at)`
//!   with primary key (terminal, record) (and a BRIN index on `at` for retention, nearly free
//!   to maintain since rows arrive in time order); a batch is one statement that inserts the
//!   keys with `ON CONFLICT DO NOTHING` and only the rows whose key went in.
//! - Batches go as one `INSERT ... SELECT FROM unnest($1, $2, ...)` statement: one round trip
//!   per batch whatever its size, with binary parameters.
//! - Command notices are `NOTIFY bmslink_commands, '<json CommandNotice>'`, sent in the
//!   transaction that changed the command, so a process never hears of a command before it
//!   can read it. Notices sent while the listener is reconnecting are lost: a process should
//!   also look at [`Store::queued_commands`] when a terminal connects.

mod listen;
mod processes;
mod records;
mod schema;
mod telemetry;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{broadcast, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{NoTls, Row};

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

/// The NOTIFY channel of command notices.
pub const COMMAND_CHANNEL: &str = "bmslink_commands";
/// Connections in the pool.
const POOL_SIZE: usize = 16;
/// How long a caller waits for a pooled connection, or for a new one to open.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);
/// Command notices buffered per subscriber before a slow one starts missing them.
const NOTICE_CAPACITY: usize = 1024;

/// The PostgreSQL store. Cheap to clone: clones share the pool, the listener and the
/// partition cache; the listener stops when the last clone is dropped.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.shared.pool.status();
        f.debug_struct("PgStore")
            .field("pool_size", &status.size)
            .finish_non_exhaustive()
    }
}

struct Shared {
    pool: Pool,
    notices: broadcast::Sender<CommandNotice>,
    /// Days (since the epoch) known to have a telemetry partition.
    partitions: Mutex<HashSet<i64>>,
    /// Dropped with the last clone: tells the listener task to stop.
    _stop_listening: oneshot::Sender<()>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or key=value
    /// pairs), brings the schema up to date (`SchemaTooNew` if a newer bmslink wrote it) and
    /// starts listening for command notices; returns once the LISTEN is active.
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Unavailable(format!("the PostgreSQL URL is not valid: {e}"))
        })?;
        let pool = build_pool(config.clone())?;
        {
            let mut client = pooled(&pool).await?;
            schema::migrate(&mut client).await?;
        }
        let (notices, _) = broadcast::channel(NOTICE_CAPACITY);
        let (stop, stopped) = oneshot::channel();
        listen::start(config, notices.clone(), stopped).await?;
        Ok(PgStore {
            shared: Arc::new(Shared {
                pool,
                notices,
                partitions: Mutex::new(HashSet::new()),
                _stop_listening: stop,
            }),
        })
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        pooled(&self.shared.pool).await
    }
}

fn build_pool(config: tokio_postgres::Config) -> StoreResult<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(|e| StoreError::Unavailable(format!("cannot build the PostgreSQL pool: {e}")))
}

async fn pooled(pool: &Pool) -> StoreResult<deadpool_postgres::Client> {
    pool.get().await.map_err(|e| {
        let why = match &e {
            deadpool_postgres::PoolError::Backend(error) => describe(error),
            other => other.to_string(),
        };
        StoreError::Unavailable(format!("PostgreSQL, getting a connection: {why}"))
    })
}

/// An error's text with its causes ("error connecting to server: Connection refused").
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    text
}

/// Maps a PostgreSQL error to a [`StoreError`] that says what was being done.
fn store_error(error: &tokio_postgres::Error, doing: &str) -> StoreError {
    let text = format!("PostgreSQL, {doing}: {}", describe(error));
    match error.code() {
        // Class 23: integrity constraint violation (unique, foreign key, check).
        Some(code) if code.code().starts_with("23") => StoreError::Conflict(text),
        Some(code) if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED => {
            StoreError::Corrupt(text)
        }
        // Disk full, read-only transaction, too many connections, shutting down, deadlock...
        Some(_) => StoreError::Unavailable(text),
        // No SQLSTATE: a closed connection, an I/O error, or a value that did not convert.
        None if text.contains("deserializing") => StoreError::Corrupt(text),
        None => StoreError::Unavailable(text),
    }
}

/// Whether retrying the same transaction may succeed (deadlock, serialization failure).
fn is_transient(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(text) if text.contains("(40P01)") || text.contains("(40001)"))
}

/// Adds what was being done to a PostgreSQL error.
trait Context<T> {
    fn context(self, doing: &str) -> StoreResult<T>;
}

impl<T> Context<T> for Result<T, tokio_postgres::Error> {
    fn context(self, doing: &str) -> StoreResult<T> {
        self.map_err(|e| store_error(&e, doing))
    }
}

/// Runs a (cached, prepared) query.
async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    doing: &str,
) -> StoreResult<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.context(doing)?;
    client.query(&statement, params).await.context(doing)
}

/// Runs a (cached, prepared) query expected to return at most one row.
async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    doing: &str,
) -> StoreResult<Option<Row>> {
    let statement = client.prepare_cached(sql).await.context(doing)?;
    client.query_opt(&statement, params).await.context(doing)
}

/// Runs a (cached, prepared) statement; returns the rows it changed.
async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    doing: &str,
) -> StoreResult<u64> {
    let statement = client.prepare_cached(sql).await.context(doing)?;
    client.execute(&statement, params).await.context(doing)
}

/// One column of a result row, by name.
fn column<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> StoreResult<T> {
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("PostgreSQL, reading the column {name}: {e}")))
}

/// A terminal number as stored (`integer`; terminals are 24-bit).
fn terminal_param(terminal: Terminal) -> StoreResult<i32> {
    i32::try_from(terminal.0).map_err(|_| {
        StoreError::Conflict(format!("terminal number {} is out of range", terminal.0))
    })
}

impl Store for PgStore {
    async fn insert_telemetry(&self, rows: Vec<TelemetryRow>) -> StoreResult<InsertReport> {
        if rows.is_empty() {
            return Ok(InsertReport::default());
        }
        telemetry::insert(self, &rows).await
    }

    async fn latest(&self, terminal: Terminal) -> StoreResult<Option<TelemetryRow>> {
        telemetry::latest(&self.client().await?, terminal).await
    }

    async fn history(
        &self,
        terminal: Terminal,
        from: Timestamp,
        to: Timestamp,
        resolution: Resolution,
    ) -> StoreResult<Vec<HistoryPoint>> {
        let client = self.client().await?;
        telemetry::history(&client, terminal, from, to, resolution).await
    }

    async fn maintain(
        &self,
        now: Timestamp,
        retention: Retention,
    ) -> StoreResult<MaintenanceReport> {
        telemetry::maintain(self, now, retention).await
    }

    async fn terminal_connected(
        &self,
        terminal: Terminal,
        owner: ConnectionOwner,
        at: Timestamp,
        approve_new: bool,
    ) -> StoreResult<TerminalRecord> {
        let client = self.client().await?;
        records::terminal_connected(&client, terminal, owner, at, approve_new).await
    }

    async fn terminal_disconnected(
        &self,
        terminal: Terminal,
        owner: ConnectionOwner,
        at: Timestamp,
    ) -> StoreResult<bool> {
        records::terminal_disconnected(&self.client().await?, terminal, owner, at).await
    }

    async fn process_heartbeat(&self, process: ProcessId, at: Timestamp) -> StoreResult<u64> {
        processes::heartbeat(&self.client().await?, process, at).await
    }

    async fn sweep_processes(&self, cutoff: Timestamp) -> StoreResult<SweepReport> {
        processes::sweep(&self.client().await?, cutoff).await
    }

    async fn process_stopped(&self, process: ProcessId, at: Timestamp) -> StoreResult<u64> {
        processes::stopped(&self.client().await?, process, at).await
    }

    async fn terminal(&self, terminal: Terminal) -> StoreResult<Option<TerminalRecord>> {
        records::terminal(&self.client().await?, terminal).await
    }

    async fn fleet(&self) -> StoreResult<Vec<FleetEntry>> {
        records::fleet(&self.client().await?).await
    }

    async fn set_registration(
        &self,
        terminal: Terminal,
        registration: Registration,
    ) -> StoreResult<()> {
        records::set_registration(&self.client().await?, terminal, registration).await
    }

    async fn set_terminal_name(&self, terminal: Terminal, name: Option<String>) -> StoreResult<()> {
        records::set_terminal_name(&self.client().await?, terminal, name.as_deref()).await
    }

    async fn raise_alarm(
        &self,
        terminal: Terminal,
        kind: AlarmKind,
        detail: String,
        at: Timestamp,
    ) -> StoreResult<(i64, bool)> {
        records::raise_alarm(&self.client().await?, terminal, &kind, &detail, at).await
    }

    async fn clear_alarm(
        &self,
        terminal: Terminal,
        kind: AlarmKind,
        at: Timestamp,
    ) -> StoreResult<bool> {
        records::clear_alarm(&self.client().await?, terminal, &kind, at).await
    }

    async fn alarms(&self, filter: AlarmFilter) -> StoreResult<Vec<Alarm>> {
        records::alarms(&self.client().await?, filter).await
    }

    async fn acknowledge_alarm(&self, id: i64, user: String, at: Timestamp) -> StoreResult<Alarm> {
        records::acknowledge_alarm(&self.client().await?, id, &user, at).await
    }

    async fn enqueue_command(
        &self,
        terminal: Terminal,
        request: CommandRequest,
        issued_by: String,
        at: Timestamp,
    ) -> StoreResult<i64> {
        let mut client = self.client().await?;
        records::enqueue_command(&mut client, terminal, &request, &issued_by, at).await
    }

    async fn claim_command(&self, id: i64) -> StoreResult<Option<Command>> {
        records::claim_command(&self.client().await?, id).await
    }

    async fn queued_commands(&self, terminal: Terminal) -> StoreResult<Vec<Command>> {
        records::queued_commands(&self.client().await?, terminal).await
    }

    async fn finish_command(&self, id: i64, state: CommandState) -> StoreResult<()> {
        records::finish_command(&mut self.client().await?, id, &state).await
    }

    async fn command(&self, id: i64) -> StoreResult<Option<Command>> {
        records::command(&self.client().await?, id).await
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
        records::create_user(&self.client().await?, &name, role, &password_hash, at).await
    }

    async fn user_by_name(&self, name: String) -> StoreResult<Option<User>> {
        records::user_by_name(&self.client().await?, &name).await
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        records::users(&self.client().await?).await
    }

    async fn update_user(
        &self,
        id: i64,
        role: Option<Role>,
        password_hash: Option<String>,
    ) -> StoreResult<User> {
        let client = self.client().await?;
        records::update_user(&client, id, role, password_hash.as_deref()).await
    }

    async fn delete_user(&self, id: i64) -> StoreResult<()> {
        records::delete_user(&self.client().await?, id).await
    }

    async fn insert_credential(&self, credential: Credential) -> StoreResult<()> {
        records::insert_credential(&self.client().await?, &credential).await
    }

    async fn credential(
        &self,
        secret_hash: String,
        now: Timestamp,
    ) -> StoreResult<Option<(Credential, User)>> {
        records::credential(&self.client().await?, &secret_hash, now).await
    }

    async fn delete_credential(&self, secret_hash: String) -> StoreResult<()> {
        records::delete_credential(&self.client().await?, &secret_hash).await
    }

    async fn tokens_of(&self, user_id: i64) -> StoreResult<Vec<Credential>> {
        records::tokens_of(&self.client().await?, user_id).await
    }

    async fn audit(&self, entry: AuditEntry) -> StoreResult<()> {
        records::audit(&self.client().await?, &entry).await
    }

    async fn audit_log(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        records::audit_log(&self.client().await?, from, to, limit).await
    }
}
