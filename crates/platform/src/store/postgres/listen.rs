//! The LISTEN task: one dedicated connection that hears `NOTIFY bmslink_commands` from every
//! process and forwards each notice to the store's broadcast channel.
//!
//! ```text
//!  start ──connect + LISTEN──► ready ──► forward notifications until the connection fails
//!                                 ▲                 │ (logged)
//!                                 └── back-off ◄────┘   stop: the last PgStore clone dropped
//! ```
//!
//! The connection's messages are read with `Connection::poll_message`, which yields the
//! asynchronous notifications that the client API does not. [`start`] returns once the first
//! LISTEN is active, so a store never misses notices sent after it connected; notices sent
//! while a broken connection is being replaced are lost (callers look at queued commands when
//! a terminal connects).

use std::future::poll_fn;
use std::time::Duration;

use tokio::sync::{broadcast, oneshot};
use tokio_postgres::{AsyncMessage, Config, NoTls};

use super::{describe, COMMAND_CHANNEL};
use crate::store::{CommandNotice, StoreError, StoreResult};

/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the task; returns once it listens (or the first connection's error).
pub(super) async fn start(
    config: Config,
    notices: broadcast::Sender<CommandNotice>,
    stop: oneshot::Receiver<()>,
) -> StoreResult<()> {
    let (ready, listening) = oneshot::channel();
    tokio::spawn(run(config, notices, stop, ready));
    listening.await.map_err(|_| {
        StoreError::Unavailable("PostgreSQL, starting to listen: the listener task ended".into())
    })?
}

/// Why one connection's session ended.
enum Ended {
    /// The store was dropped.
    Stopped,
    /// The connection failed (or never came up): reconnect.
    Failed(String),
}

async fn run(
    config: Config,
    notices: broadcast::Sender<CommandNotice>,
    mut stop: oneshot::Receiver<()>,
    ready: oneshot::Sender<StoreResult<()>>,
) {
    let mut ready = Some(ready);
    let mut backoff = FIRST_BACKOFF;
    loop {
        match session(&config, &notices, &mut stop, &mut ready).await {
            Ended::Stopped => return,
            Ended::Failed(why) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(StoreError::Unavailable(format!(
                        "PostgreSQL, starting to listen: {why}"
                    ))));
                    return;
                }
                tracing::warn!(
                    "command notices: connection lost ({why}); reconnecting in {backoff:?}"
                );
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: LISTEN, then forward notifications until it fails or the store stops.
async fn session(
    config: &Config,
    notices: &broadcast::Sender<CommandNotice>,
    stop: &mut oneshot::Receiver<()>,
    ready: &mut Option<oneshot::Sender<StoreResult<()>>>,
) -> Ended {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(pair) => pair,
        Err(error) => return Ended::Failed(describe(&error)),
    };
    // Every message of the connection goes through here, including the LISTEN's replies.
    let forward = async {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    forward_notice(notification.channel(), notification.payload(), notices);
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Ended::Failed(describe(&error)),
                None => return Ended::Failed("the server closed the connection".into()),
            }
        }
    };
    tokio::pin!(forward);
    let statement = format!("LISTEN {COMMAND_CHANNEL}");
    let listen = client.batch_execute(&statement);
    tokio::select! {
        ended = &mut forward => return ended,
        listened = listen => {
            if let Err(error) = listened {
                return Ended::Failed(describe(&error));
            }
        }
    }
    match ready.take() {
        Some(ready) => {
            let _ = ready.send(Ok(()));
        }
        None => tracing::info!("command notices: listening again"),
    }
    tokio::select! {
        ended = forward => ended,
        _ = stop => Ended::Stopped,
    }
}

fn forward_notice(channel: &str, payload: &str, notices: &broadcast::Sender<CommandNotice>) {
    if channel != COMMAND_CHANNEL {
        return;
    }
    match serde_json::from_str::<CommandNotice>(payload) {
        // No subscriber is fine.
        Ok(notice) => {
            let _ = notices.send(notice);
        }
        Err(error) => tracing::warn!("command notices: ignoring {payload:?}: {error}"),
    }
}
