//! Helpers of the listener tests: a platform listener on a free port over SQLite in a temporary
//! directory, a store wrapper that is slow or unavailable on demand, raw data-box clients, and
//! simulated data boxes.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bmslink_core::chemistry::Chemistry;
use bmslink_platform::listener::{run_listener, ListenerConfig, ListenerStats};
use bmslink_platform::model::*;
use bmslink_platform::store::sqlite::SqliteStore;
use bmslink_platform::store::*;
use bmslink_proto::{Deframer, Event, Message, TerminalId};
use bmslink_sim::bms::{BmsConfig, VirtualBms};
use bmslink_sim::pack::PackConfig;
use bmslink_sim::serve::SharedBms;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Settings that make the tests quick: short command timing, small batches.
pub fn test_config() -> ListenerConfig {
    let mut config = ListenerConfig {
        batch_delay: Duration::from_millis(5),
        pending_recheck: Duration::from_millis(100),
        approved_recheck: Duration::from_millis(100),
        command_timeout: Duration::from_secs(20),
        shutdown_grace: Duration::from_secs(3),
        ..ListenerConfig::default()
    };
    config.session.reply_timeout = Duration::from_millis(300);
    config.session.retries = 1;
    config
}

/// A listener running on 127.0.0.1, stopped by [`Platform::stop`].
pub struct Platform<S: Store> {
    pub address: SocketAddr,
    pub store: S,
    pub stats: Arc<ListenerStats>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh SQLite store in a temporary directory.
pub fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("platform.sqlite")).unwrap();
    (dir, store)
}

impl Platform<SqliteStore> {
    /// A listener over a fresh SQLite store.
    pub async fn start(config: ListenerConfig) -> Platform<SqliteStore> {
        let (dir, store) = sqlite();
        let mut platform = Platform::with_store(config, store, None).await;
        platform._dir = Some(dir);
        platform
    }
}

impl<S: Store> Platform<S> {
    /// A listener over `store`, forwarding rows to `alarms`.
    pub async fn with_store(
        config: ListenerConfig,
        store: S,
        alarms: Option<mpsc::Sender<TelemetryRow>>,
    ) -> Platform<S> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stats = Arc::new(ListenerStats::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_listener(
            listener,
            config,
            store.clone(),
            alarms,
            stats.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        let task = tokio::spawn(async move { task.await.unwrap().unwrap() });
        Platform {
            address,
            store,
            stats,
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// Shuts the listener down and waits until it returned.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("the listener stops")
                .unwrap();
        }
    }

    pub async fn record(&self, terminal: u32) -> Option<TerminalRecord> {
        self.store.terminal(Terminal(terminal)).await.unwrap()
    }

    pub async fn rows(&self, terminal: u32) -> Vec<HistoryPoint> {
        self.store
            .history(
                Terminal(terminal),
                Timestamp(0),
                Timestamp::now().plus(Duration::from_secs(60)),
                Resolution::Raw,
            )
            .await
            .unwrap()
    }

    pub async fn command_state(&self, id: i64) -> CommandState {
        self.store.command(id).await.unwrap().unwrap().state
    }

    /// Waits for a command to finish.
    pub async fn finished(&self, id: i64, within: Duration) -> CommandState {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let state = self.command_state(id).await;
            if matches!(
                state,
                CommandState::Done { .. } | CommandState::Failed { .. }
            ) {
                return state;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "command {id} still {state:?} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Polls `check` every 20 ms until it holds or `within` passed; returns whether it held.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A virtual 16-cell LFP BMS with terminal number `terminal`.
pub fn bms(terminal: u32, seed: u64) -> VirtualBms {
    let pack = PackConfig::new(Chemistry::Lfp, 16, 100.0, seed);
    let config = BmsConfig {
        terminal: TerminalId::new(0, terminal).unwrap(),
        ..BmsConfig::new(pack)
    };
    VirtualBms::new(config).unwrap()
}

pub fn shared(bms: VirtualBms) -> SharedBms {
    Arc::new(std::sync::Mutex::new(bms))
}

/// `count` uploads of one terminal, records 1..=count.
pub fn uploads(terminal: u32, count: usize) -> Vec<Vec<u8>> {
    let mut bms = bms(terminal, u64::from(terminal));
    (0..count).map(|_| bms.upload()).collect()
}

/// A data box driven by the test: raw bytes out, frames in.
pub struct RawBox {
    pub stream: TcpStream,
    deframer: Deframer,
    frames: std::collections::VecDeque<Vec<u8>>,
}

impl RawBox {
    pub async fn connect(address: SocketAddr) -> RawBox {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        RawBox {
            stream,
            deframer: Deframer::new(),
            frames: Default::default(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame from the platform, or `None` if none comes within `within` (or the
    /// connection closed).
    pub async fn frame(&mut self, within: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + within;
        let mut buffer = [0u8; 2048];
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Some(frame);
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)).await;
            let n = match read {
                Ok(Ok(n)) if n > 0 => n,
                _ => return None,
            };
            let frames = &mut self.frames;
            self.deframer.feed(&buffer[..n], |event| {
                if let Event::Frame(frame, _) = event {
                    frames.push_back(frame.as_bytes().to_vec());
                }
            });
        }
    }

    /// The record sequence of the next acknowledgement.
    pub async fn ack(&mut self, within: Duration) -> Option<u32> {
        let frame = self.frame(within).await?;
        Some(Message::parse(&frame).unwrap().header.record.sequence())
    }

    /// Whether the platform closed the connection within `within` (frames before the close
    /// are skipped).
    pub async fn closed(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let mut buffer = [0u8; 2048];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }
}

/// A store that can be made slow (every telemetry insert sleeps) or unavailable (the next
/// `n` telemetry inserts fail with `Unavailable`); everything else goes to the inner store.
#[derive(Clone)]
pub struct TroubledStore<S> {
    pub inner: S,
    pub insert_delay: Duration,
    /// Only batches holding this record number wait `insert_delay` (`None`: every batch).
    pub delayed_record: Option<u32>,
    pub failures_left: Arc<AtomicU32>,
    pub inserts: Arc<AtomicU32>,
}

impl<S> TroubledStore<S> {
    pub fn new(inner: S) -> TroubledStore<S> {
        TroubledStore {
            inner,
            insert_delay: Duration::ZERO,
            delayed_record: None,
            failures_left: Arc::new(AtomicU32::new(0)),
            inserts: Arc::new(AtomicU32::new(0)),
        }
    }
}

impl<S: Store> Store for TroubledStore<S> {
    async fn insert_telemetry(&self, rows: Vec<TelemetryRow>) -> StoreResult<InsertReport> {
        self.inserts.fetch_add(1, Ordering::SeqCst);
        let delayed = self
            .delayed_record
            .is_none_or(|record| rows.iter().any(|row| row.record == record));
        if delayed {
            tokio::time::sleep(self.insert_delay).await;
        }
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Unavailable("disk unplugged (test)".into()));
        }
        self.inner.insert_telemetry(rows).await
    }
    async fn latest(&self, terminal: Terminal) -> StoreResult<Option<TelemetryRow>> {
        self.inner.latest(terminal).await
    }
    async fn history(
        &self,
        terminal: Terminal,
        from: Timestamp,
        to: Timestamp,
        resolution: Resolution,
    ) -> StoreResult<Vec<HistoryPoint>> {
        self.inner.history(terminal, from, to, resolution).await
    }
    async fn maintain(
        &self,
        now: Timestamp,
        retention: Retention,
    ) -> StoreResult<MaintenanceReport> {
        self.inner.maintain(now, retention).await
    }
    async fn terminal_connected(
        &self,
        terminal: Terminal,
        owner: ConnectionOwner,
        at: Timestamp,
        approve_new: bool,
    ) -> StoreResult<TerminalRecord> {
        self.inner
            .terminal_connected(terminal, owner, at, approve_new)
            .await
    }
    async fn terminal_disconnected(
        &self,
        terminal: Terminal,
        owner: ConnectionOwner,
        at: Timestamp,
    ) -> StoreResult<bool> {
        self.inner.terminal_disconnected(terminal, owner, at).await
    }
    async fn process_heartbeat(&self, process: ProcessId, at: Timestamp) -> StoreResult<u64> {
        self.inner.process_heartbeat(process, at).await
    }
    async fn sweep_processes(&self, cutoff: Timestamp) -> StoreResult<SweepReport> {
        self.inner.sweep_processes(cutoff).await
    }
    async fn process_stopped(&self, process: ProcessId, at: Timestamp) -> StoreResult<u64> {
        self.inner.process_stopped(process, at).await
    }
    async fn terminal(&self, terminal: Terminal) -> StoreResult<Option<TerminalRecord>> {
        self.inner.terminal(terminal).await
    }
    async fn fleet(&self) -> StoreResult<Vec<FleetEntry>> {
        self.inner.fleet().await
    }
    async fn set_registration(
        &self,
        terminal: Terminal,
        registration: Registration,
    ) -> StoreResult<()> {
        self.inner.set_registration(terminal, registration).await
    }
    async fn set_terminal_name(&self, terminal: Terminal, name: Option<String>) -> StoreResult<()> {
        self.inner.set_terminal_name(terminal, name).await
    }
    async fn raise_alarm(
        &self,
        terminal: Terminal,
        kind: AlarmKind,
        detail: String,
        at: Timestamp,
    ) -> StoreResult<(i64, bool)> {
        self.inner.raise_alarm(terminal, kind, detail, at).await
    }
    async fn clear_alarm(
        &self,
        terminal: Terminal,
        kind: AlarmKind,
        at: Timestamp,
    ) -> StoreResult<bool> {
        self.inner.clear_alarm(terminal, kind, at).await
    }
    async fn alarms(&self, filter: AlarmFilter) -> StoreResult<Vec<Alarm>> {
        self.inner.alarms(filter).await
    }
    async fn acknowledge_alarm(&self, id: i64, user: String, at: Timestamp) -> StoreResult<Alarm> {
        self.inner.acknowledge_alarm(id, user, at).await
    }
    async fn enqueue_command(
        &self,
        terminal: Terminal,
        request: CommandRequest,
        issued_by: String,
        at: Timestamp,
    ) -> StoreResult<i64> {
        self.inner
            .enqueue_command(terminal, request, issued_by, at)
            .await
    }
    async fn claim_command(&self, id: i64) -> StoreResult<Option<Command>> {
        self.inner.claim_command(id).await
    }
    async fn queued_commands(&self, terminal: Terminal) -> StoreResult<Vec<Command>> {
        self.inner.queued_commands(terminal).await
    }
    async fn finish_command(&self, id: i64, state: CommandState) -> StoreResult<()> {
        self.inner.finish_command(id, state).await
    }
    async fn command(&self, id: i64) -> StoreResult<Option<Command>> {
        self.inner.command(id).await
    }
    fn subscribe_commands(&self) -> broadcast::Receiver<CommandNotice> {
        self.inner.subscribe_commands()
    }
    async fn create_user(
        &self,
        name: String,
        role: Role,
        password_hash: String,
        at: Timestamp,
    ) -> StoreResult<User> {
        self.inner.create_user(name, role, password_hash, at).await
    }
    async fn user_by_name(&self, name: String) -> StoreResult<Option<User>> {
        self.inner.user_by_name(name).await
    }
    async fn users(&self) -> StoreResult<Vec<User>> {
        self.inner.users().await
    }
    async fn update_user(
        &self,
        id: i64,
        role: Option<Role>,
        password_hash: Option<String>,
    ) -> StoreResult<User> {
        self.inner.update_user(id, role, password_hash).await
    }
    async fn delete_user(&self, id: i64) -> StoreResult<()> {
        self.inner.delete_user(id).await
    }
    async fn insert_credential(&self, credential: Credential) -> StoreResult<()> {
        self.inner.insert_credential(credential).await
    }
    async fn credential(
        &self,
        secret_hash: String,
        now: Timestamp,
    ) -> StoreResult<Option<(Credential, User)>> {
        self.inner.credential(secret_hash, now).await
    }
    async fn delete_credential(&self, secret_hash: String) -> StoreResult<()> {
        self.inner.delete_credential(secret_hash).await
    }
    async fn tokens_of(&self, user_id: i64) -> StoreResult<Vec<Credential>> {
        self.inner.tokens_of(user_id).await
    }
    async fn audit(&self, entry: AuditEntry) -> StoreResult<()> {
        self.inner.audit(entry).await
    }
    async fn audit_log(
        &self,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.inner.audit_log(from, to, limit).await
    }
}
