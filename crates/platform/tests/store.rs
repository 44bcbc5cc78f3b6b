//! The storage suite (`store/cases.rs`, written once against the `Store` trait) on both
//! backends: SQLite in a temporary directory, one test per case; PostgreSQL 15 started by the
//! test itself (`support/pg.rs`), all cases in one test, each on its own fresh database.
//! Backend-specific behaviour (schema too new, files on disk) is tested below the suite.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "store/cases.rs"]
mod cases;
#[path = "store/postgres.rs"]
mod postgres;
mod support;

use bmslink_platform::store::postgres::PgStore;
use bmslink_platform::store::sqlite::{SqliteStore, SCHEMA_VERSION};
use bmslink_platform::store::{InsertReport, Store, StoreError};
use cases::Fixture;

/// A fresh SQLite database in a temporary directory (kept as long as the guard lives).
fn sqlite() -> (tempfile::TempDir, Fixture<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("data/platform.sqlite")).unwrap();
    let peer = store.clone();
    (dir, Fixture { store, peer })
}

/// One `#[tokio::test]` per case on SQLite; every case in order on PostgreSQL.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (_dir, fixture) = super::sqlite();
                    super::cases::$case(&fixture).await;
                }
            )*
        }

        /// Every case in order on one server, each on its own database with two stores
        /// (two "processes"), then the PostgreSQL-specific checks.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn on_postgres() {
            let Some(server) = support::pg::PgServer::start_or_skip("the store suite on PostgreSQL")
            else {
                return;
            };
            $({
                eprintln!("postgres: {}", stringify!($case));
                let url = server.create_database(stringify!($case));
                let fixture = Fixture {
                    store: PgStore::connect(&url).await.unwrap(),
                    peer: PgStore::connect(&url).await.unwrap(),
                };
                cases::$case(&fixture).await;
            })*
            postgres::refuses_a_newer_schema(&server).await;
            postgres::partitions_per_day_created_and_dropped(&server).await;
            postgres::listener_reconnects_after_its_connection_is_killed(&server).await;
        }

        mod on_sqlite_in_memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = super::SqliteStore::open_in_memory().unwrap();
                    let fixture = super::Fixture { peer: store.clone(), store };
                    super::cases::$case(&fixture).await;
                }
            )*
        }
    };
}

suite!(
    insert_and_dedup,
    dedup_stores_a_gap_below_the_newest,
    dedup_keys_expire_with_their_day,
    latest_row,
    fleet_lists_latest_and_active_alarms,
    raw_history,
    maintain_rolls_up_minutes_and_hours,
    energy_spans_maintenance_passes,
    retention_deletes_raw_but_rollups_answer,
    terminals_connect_register_and_name,
    a_stale_disconnect_leaves_the_terminal_online,
    dead_processes_terminals_are_swept,
    alarms_raise_clear_acknowledge_filter,
    commands_queue_claim_finish_and_notify,
    users_crud_and_conflict,
    credentials_expire_and_go_with_their_user,
    audit_log_newest_first,
);

#[tokio::test]
async fn sqlite_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, 0)",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
    drop(connection);
    let error = SqliteStore::open(&path).unwrap_err();
    assert_eq!(
        error,
        StoreError::SchemaTooNew {
            found: SCHEMA_VERSION + 1,
            known: SCHEMA_VERSION
        }
    );
}

#[tokio::test]
async fn sqlite_reopens_with_its_data_and_sqlite3_can_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    store
        .insert_telemetry(vec![cases::row(3, 1, cases::BASE)])
        .await
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store
            .latest(bmslink_platform::model::Terminal(3))
            .await
            .unwrap()
            .map(|r| r.record),
        Some(1)
    );
    let connection = rusqlite::Connection::open(&path).unwrap();
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

fn counts(report: InsertReport) -> (u64, u64) {
    (report.inserted, report.duplicates)
}

#[tokio::test]
async fn sqlite_dedup_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let rows = (1..=3).map(|r| cases::row(3, r, cases::BASE)).collect();
    store.insert_telemetry(rows).await.unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let again = vec![cases::row(3, 2, cases::BASE), cases::row(3, 4, cases::BASE)];
    assert_eq!(counts(store.insert_telemetry(again).await.unwrap()), (1, 1));
}

#[tokio::test]
async fn sqlite_a_second_writer_on_the_file_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("platform.sqlite");
    let (a, b) = (
        SqliteStore::open(&path).unwrap(),
        SqliteStore::open(&path).unwrap(),
    );
    let one = || vec![cases::row(3, 1, cases::BASE)];
    assert_eq!(counts(a.insert_telemetry(one()).await.unwrap()), (1, 0));
    assert_eq!(counts(b.insert_telemetry(one()).await.unwrap()), (0, 1));
    let two = || vec![cases::row(3, 2, cases::BASE)];
    assert_eq!(counts(b.insert_telemetry(two()).await.unwrap()), (1, 0));
    assert_eq!(counts(a.insert_telemetry(two()).await.unwrap()), (0, 1));
}

#[tokio::test]
async fn sqlite_unwritable_directory_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let error = SqliteStore::open(&file.join("platform.sqlite")).unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains("a-file"), "{error}");
}

#[tokio::test]
async fn postgres_refused_connection_is_unavailable_with_the_reason() {
    // Port 1 on loopback: nothing listens there.
    let error = PgStore::connect("postgres://postgres@127.0.0.1:1/bmslink")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(
        error.to_string().to_lowercase().contains("refused"),
        "{error}"
    );
}

#[tokio::test]
async fn postgres_bad_url_is_refused_clearly() {
    let error = PgStore::connect("postgres://[nonsense").await.unwrap_err();
    assert!(error.to_string().contains("URL"), "{error}");
}
