//! PostgreSQL-specific checks, run by `on_postgres` after the shared suite on the same server.

use std::time::Duration;

use bmslink_platform::model::{CommandRequest, Terminal, Timestamp};
use bmslink_platform::store::postgres::{PgStore, SCHEMA_VERSION};
use bmslink_platform::store::{CommandNotice, Retention, Store, StoreError};

use crate::cases::{row, BASE};
use crate::support::pg::PgServer;

const DAY: i64 = 86_400_000;

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

pub async fn refuses_a_newer_schema(server: &PgServer) {
    let url = server.create_database("schema_too_new");
    drop(PgStore::connect(&url).await.unwrap());
    let newer = i32::try_from(SCHEMA_VERSION + 1).unwrap();
    admin(&url)
        .await
        .execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, 0)",
            &[&newer],
        )
        .await
        .unwrap();
    let error = PgStore::connect(&url).await.unwrap_err();
    assert_eq!(
        error,
        StoreError::SchemaTooNew {
            found: SCHEMA_VERSION + 1,
            known: SCHEMA_VERSION
        }
    );
}

async fn partitions(client: &tokio_postgres::Client) -> Vec<String> {
    let rows = client
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'telemetry'::regclass ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

pub async fn partitions_per_day_created_and_dropped(server: &PgServer) {
    let url = server.create_database("partitions");
    let store = PgStore::connect(&url).await.unwrap();
    let client = admin(&url).await;
    assert!(partitions(&client).await.is_empty());
    // BASE is 2023-11-14 22:00 UTC: rows on the 14th, 15th and 16th.
    let rows = vec![
        row(1, 1, BASE),
        row(1, 2, BASE + 3 * 3_600_000),
        row(1, 3, BASE + DAY + 3 * 3_600_000),
    ];
    let report = store.insert_telemetry(rows).await.unwrap();
    assert_eq!(report.inserted, 3);
    assert_eq!(
        partitions(&client).await,
        vec![
            "telemetry_p20231114",
            "telemetry_p20231115",
            "telemetry_p20231116"
        ]
    );
    // Dedup holds across partitions: record 1 again, received on another day.
    let again = store
        .insert_telemetry(vec![row(1, 1, BASE + DAY)])
        .await
        .unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 1));

    // Two days later with one day of raw retention: the 14th and 15th are dropped whole; the
    // maintenance pass also created today's partition and the next two.
    let now = Timestamp(BASE + 3 * DAY);
    let retention = Retention {
        raw: Duration::from_secs(86_400),
        ..Retention::default()
    };
    let report = store.maintain(now, retention).await.unwrap();
    assert_eq!(report.raw_deleted, 2, "{report:?}");
    assert_eq!(
        partitions(&client).await,
        vec![
            "telemetry_p20231116",
            "telemetry_p20231117",
            "telemetry_p20231118",
            "telemetry_p20231119"
        ]
    );
    let keys: i64 = client
        .query_one("SELECT count(*) FROM telemetry_seen", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 1, "the dedup keys of dropped days go with them");
    // A row for a dropped day (a very late backlog) gets its partition back.
    let late = store.insert_telemetry(vec![row(2, 1, BASE)]).await.unwrap();
    assert_eq!(late.inserted, 1);
}

async fn listeners(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

pub async fn listener_reconnects_after_its_connection_is_killed(server: &PgServer) {
    let url = server.create_database("reconnect");
    let sender = PgStore::connect(&url).await.unwrap();
    let receiver = PgStore::connect(&url).await.unwrap();
    let client = admin(&url).await;
    assert_eq!(listeners(&client).await, 2);
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            &[],
        )
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // Both listeners come back (back-off starts at 250 ms).
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if listeners(&client).await == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listeners did not come back"
        );
    }
    let mut notices = receiver.subscribe_commands();
    let id = sender
        .enqueue_command(
            Terminal(9),
            CommandRequest::ReadAll,
            "alice".into(),
            Timestamp(BASE),
        )
        .await
        .unwrap();
    let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .expect("a notice after the reconnection")
        .unwrap();
    assert_eq!(
        notice,
        CommandNotice::Queued {
            id,
            terminal: Terminal(9)
        }
    );
}
