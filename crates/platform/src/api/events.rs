//! `GET /api/events`: live events for open pages, as server-sent events.
//!
//! ```text
//!  event   data                                                  when
//!  hello   {}                                                    the feed is open
//!  fleet   {"terminals": ["0003E8", ...]}                        without ?terminal: at most once
//!                                                                per second, the terminals that
//!                                                                uploaded since the last one
//!                                                                (an empty list every 30 s: a
//!                                                                refresh for other processes')
//!  upload  {"terminal": "0003E8", "at": 1700000000000}           with ?terminal: its upload was
//!                                                                stored (at: ms since the epoch)
//!  alarm   {"change": "raised" | "cleared" | "acknowledged",     an alarm of the feed's
//!           "terminal": "0003E8", "id": 12 | null,               terminals changed
//!           "kind": "bms", "warning": "cell_over_voltage" | null,
//!           "at": 1700000000000}
//!  resync  {"missed": 17}                                        the feed fell behind and lost
//!                                                                events: refetch everything
//! ```
//!
//! Events only say what changed; the page reads the values through the API. A feed takes
//! its events from this process's [`LiveHub`](crate::live::LiveHub) as they happen, and also
//! checks the store every [`STORE_CHECK`] (its terminal's last upload, the active alarms),
//! which is how uploads and alarms handled by another platform process reach it. A comment
//! line every 15 s keeps proxies from closing an idle feed.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use utoipa::IntoParams;

use super::auth::Viewer;
use super::dto::alarm_kind_words;
use super::error::{ApiResult, ErrorBody};
use super::extract::{parse_terminal, QueryParams};
use super::fleet::known_terminal;
use super::ApiState;
use crate::live::{AlarmChange, LiveEvent};
use crate::model::{AlarmKind, Terminal, Timestamp};
use crate::store::{AlarmFilter, Store};

/// How long uploads are gathered into one `fleet` event.
const FLEET_COALESCE: Duration = Duration::from_secs(1);
/// How often a feed checks the store for what another process handled.
pub const STORE_CHECK: Duration = Duration::from_secs(5);
/// Every how many store checks a fleet feed sends an empty `fleet` event (a refresh).
const FLEET_REFRESH_CHECKS: u32 = 6;
/// Comment lines that keep an idle feed open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Most active alarms a feed follows through the store check.
const ALARMS_FOLLOWED: u32 = 1000;

/// Which events.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// One terminal's uploads and alarms (1 to 6 hex digits); without it, the whole fleet's.
    #[param(pattern = "^[0-9A-Fa-f]{1,6}$", example = "0003E8")]
    terminal: Option<String>,
}

/// Live events (server-sent events, `text/event-stream`): see the module documentation for
/// the events and their data.
#[utoipa::path(get, path = "/api/events", tag = "live", params(EventsQuery),
    responses(
        (status = 200, description = "A stream of server-sent events: hello, fleet (no terminal \
            given), upload (a terminal given), alarm, resync", content_type = "text/event-stream",
            body = String),
        (status = 400, description = "Not a terminal identifier", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "Unknown terminal", body = ErrorBody),
    ))]
pub(crate) async fn events<S: Store>(
    State(state): State<ApiState<S>>,
    _caller: Viewer,
    QueryParams(query): QueryParams<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let terminal = match query.terminal.as_deref() {
        Some(text) => {
            let terminal = parse_terminal(text)?;
            known_terminal(&state.store, terminal).await?;
            Some(terminal)
        }
        None => None,
    };
    let mut feed = Feed::new(state.store.clone(), state.hub.subscribe(), terminal);
    // What the page knows when it opens: later checks announce what changed since.
    feed.check_store().await;
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// One page's feed: hub events filtered and coalesced, and the periodic store check.
struct Feed<S> {
    store: S,
    hub: broadcast::Receiver<LiveEvent>,
    /// Only this terminal's events; `None`: the fleet's.
    terminal: Option<Terminal>,
    outbox: VecDeque<Event>,
    /// Fleet feeds: terminals uploaded since the last `fleet` event, and when it is due.
    uploaded: BTreeSet<Terminal>,
    flush_at: Option<Instant>,
    check: Interval,
    checks: u32,
    /// Terminal feeds: the last upload announced (`None` before the first store check).
    last_upload: Option<Timestamp>,
    /// The active alarms the page knows of, by id (`None` before the first store check).
    active: Option<HashMap<i64, (Terminal, AlarmKind)>>,
    hub_closed: bool,
}

impl<S: Store> Feed<S> {
    fn new(store: S, hub: broadcast::Receiver<LiveEvent>, terminal: Option<Terminal>) -> Self {
        let mut check = tokio::time::interval_at(Instant::now() + STORE_CHECK, STORE_CHECK);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Feed {
            store,
            hub,
            terminal,
            outbox: VecDeque::from([Event::default().event("hello").data("{}")]),
            uploaded: BTreeSet::new(),
            flush_at: None,
            check,
            checks: 0,
            last_upload: None,
            active: None,
            hub_closed: false,
        }
    }

    /// The next event to send; `None` ends the feed (the platform is stopping).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.outbox.pop_front() {
                return Some(event);
            }
            if self.hub_closed {
                return None;
            }
            let flush_at = self.flush_at;
            tokio::select! {
                received = self.hub.recv() => self.on_hub(received),
                _ = sleep_until(flush_at), if flush_at.is_some() => self.flush_fleet(),
                _ = self.check.tick() => self.check_store().await,
            }
        }
    }

    fn wants(&self, terminal: Terminal) -> bool {
        self.terminal.is_none_or(|wanted| wanted == terminal)
    }

    fn on_hub(&mut self, received: Result<LiveEvent, RecvError>) {
        match received {
            Ok(event) if !self.wants(event.terminal()) => {}
            Ok(LiveEvent::Upload { terminal, at }) => self.on_upload(terminal, at),
            Ok(LiveEvent::Alarm {
                terminal,
                id,
                kind,
                change,
                at,
            }) => {
                self.follow_alarm(terminal, id, &kind, change);
                self.push_alarm(change, terminal, id, &kind, at);
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!("live feed fell {missed} events behind; asking the page to resync");
                self.push("resync", json!({ "missed": missed }));
            }
            Err(RecvError::Closed) => self.hub_closed = true,
        }
    }

    fn on_upload(&mut self, terminal: Terminal, at: Timestamp) {
        if self.terminal.is_some() {
            self.last_upload = Some(self.last_upload.map_or(at, |last| last.max(at)));
            self.push_upload(terminal, at);
        } else {
            self.uploaded.insert(terminal);
            self.flush_at
                .get_or_insert_with(|| Instant::now() + FLEET_COALESCE);
        }
    }

    fn flush_fleet(&mut self) {
        self.flush_at = None;
        let terminals: Vec<String> = self.uploaded.iter().map(Terminal::to_string).collect();
        self.uploaded.clear();
        self.push("fleet", json!({ "terminals": terminals }));
    }

    /// Keeps the known active alarms current with what the hub said.
    fn follow_alarm(
        &mut self,
        terminal: Terminal,
        id: Option<i64>,
        kind: &AlarmKind,
        change: AlarmChange,
    ) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        match (change, id) {
            (AlarmChange::Raised, Some(id)) => {
                active.insert(id, (terminal, kind.clone()));
            }
            (AlarmChange::Cleared, _) => {
                active.retain(|_, (t, k)| !(*t == terminal && k == kind));
            }
            _ => {}
        }
    }

    /// What another process handled (or the hub dropped): the terminal's last upload, the
    /// active alarms appeared and gone since the last check. The first check only learns
    /// the current state.
    async fn check_store(&mut self) {
        self.checks = self.checks.wrapping_add(1);
        if let Some(terminal) = self.terminal {
            self.check_upload(terminal).await;
        } else if self.checks % FLEET_REFRESH_CHECKS == 0 && self.flush_at.is_none() {
            self.push("fleet", json!({ "terminals": [] }));
        }
        self.check_alarms().await;
    }

    async fn check_upload(&mut self, terminal: Terminal) {
        let last_seen = match self.store.terminal(terminal).await {
            Ok(Some(record)) => record.last_seen,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!("live feed of {terminal}: store check failed: {error}");
                return;
            }
        };
        match self.last_upload {
            Some(last) if last_seen > last => {
                self.last_upload = Some(last_seen);
                self.push_upload(terminal, last_seen);
            }
            Some(_) => {}
            None => self.last_upload = Some(last_seen),
        }
    }

    async fn check_alarms(&mut self) {
        let filter = AlarmFilter {
            terminal: self.terminal,
            active_only: true,
            limit: ALARMS_FOLLOWED,
            ..AlarmFilter::default()
        };
        let alarms = match self.store.alarms(filter).await {
            Ok(alarms) => alarms,
            Err(error) => {
                tracing::debug!("live feed: alarm check failed: {error}");
                return;
            }
        };
        let now: HashMap<i64, (Terminal, AlarmKind)> = alarms
            .into_iter()
            .map(|alarm| (alarm.id, (alarm.terminal, alarm.kind)))
            .collect();
        let Some(known) = self.active.replace(now.clone()) else {
            return;
        };
        let at = Timestamp::now();
        for (id, (terminal, kind)) in &now {
            if !known.contains_key(id) {
                self.push_alarm(AlarmChange::Raised, *terminal, Some(*id), kind, at);
            }
        }
        for (id, (terminal, kind)) in &known {
            if !now.contains_key(id) {
                self.push_alarm(AlarmChange::Cleared, *terminal, Some(*id), kind, at);
            }
        }
    }

    fn push_upload(&mut self, terminal: Terminal, at: Timestamp) {
        let data = json!({ "terminal": terminal.to_string(), "at": at.millis() });
        self.push("upload", data);
    }

    fn push_alarm(
        &mut self,
        change: AlarmChange,
        terminal: Terminal,
        id: Option<i64>,
        kind: &AlarmKind,
        at: Timestamp,
    ) {
        let (kind, warning) = alarm_kind_words(kind);
        let data = json!({
            "change": change.as_str(),
            "terminal": terminal.to_string(),
            "id": id,
            "kind": kind,
            "warning": warning,
            "at": at.millis(),
        });
        self.push("alarm", data);
    }

    fn push(&mut self, name: &'static str, data: Value) {
        self.outbox
            .push_back(Event::default().event(name).data(data.to_string()));
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
