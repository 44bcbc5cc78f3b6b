//! The HTTP API against a real SQLite store in a temporary directory: sessions and their
//! cookie, tokens, roles, settings validation and remote commands (the test plays the device
//! listener), history limits, the audit log, and the OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use bmslink_core::snapshot::PackSnapshot;
use bmslink_platform::api::{self, ApiConfig, ApiState, CreateAdminError};
use bmslink_platform::model::{
    AlarmKind, CommandRequest, CommandState, ConnectionOwner, ProcessId, Role, TelemetryRow,
    Terminal, Timestamp,
};
use bmslink_platform::store::sqlite::SqliteStore;
use bmslink_platform::store::{CommandNotice, Store};
use bmslink_proto::vectors;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const TERMINAL: Terminal = Terminal(0x0003E8);
/// The connection the tests' terminals are "connected" through.
const OWNER: ConnectionOwner = ConnectionOwner {
    process: ProcessId(1),
    connection: 1,
};

struct Harness {
    store: SqliteStore,
    app: Router,
    _dir: tempfile::TempDir,
}

fn test_config() -> ApiConfig {
    ApiConfig {
        failed_login_delay: Duration::from_millis(10),
        command_timeout: Duration::from_secs(10),
        ..ApiConfig::default()
    }
}

fn harness(config: ApiConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("platform.db")).unwrap();
    let app = api::router(ApiState::new(store.clone(), config));
    Harness {
        store,
        app,
        _dir: dir,
    }
}

/// A response: status, headers, JSON body (`Null` when empty).
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Answer {
    fn cookie(&self) -> String {
        self.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string()
    }

    /// The `name=value` part of the Set-Cookie header, for a Cookie header.
    fn session(&self) -> String {
        self.cookie().split(';').next().unwrap().to_string()
    }

    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Cookie(&'a str),
    Bearer(&'a str),
}

impl Harness {
    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        match auth {
            Auth::None => {}
            Auth::Cookie(cookie) => request = request.header(header::COOKIE, cookie),
            Auth::Bearer(token) => {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, auth: Auth<'_>) -> Answer {
        self.call(Method::GET, path, auth, None).await
    }

    async fn login(&self, name: &str, password: &str) -> Answer {
        let body = json!({"name": name, "password": password});
        self.call(Method::POST, "/api/login", Auth::None, Some(body))
            .await
    }

    /// The first admin's session cookie.
    async fn admin(&self) -> String {
        let password = api::create_admin(&self.store, "root").await.unwrap();
        let answer = self.login("root", &password).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.session()
    }

    /// A user of `role` created by the admin, and their session cookie.
    async fn user(&self, admin: &str, name: &str, role: &str) -> String {
        let password = "a long enough password";
        let body = json!({"name": name, "role": role, "password": password});
        let answer = self
            .call(Method::POST, "/api/users", Auth::Cookie(admin), Some(body))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        self.login(name, password).await.session()
    }

    async fn audit(&self) -> Vec<Value> {
        let entries = self
            .store
            .audit_log(
                Timestamp(0),
                Timestamp::now().plus(Duration::from_secs(1)),
                1000,
            )
            .await
            .unwrap();
        entries
            .into_iter()
            .map(|e| json!({"actor": e.actor, "action": e.action, "target": e.target, "detail": e.detail}))
            .collect()
    }

    /// A terminal that is approved and connected, with one upload (vector A03).
    async fn online_terminal(&self) {
        self.store
            .terminal_connected(TERMINAL, OWNER, Timestamp::now(), true)
            .await
            .unwrap();
        let frame = vectors::bytes("A03").unwrap();
        let snapshot = PackSnapshot::parse(&frame, bmslink_core::time::Instant::ZERO).unwrap();
        let row = TelemetryRow::from_snapshot(TERMINAL, Timestamp::now(), 17, &snapshot, frame);
        self.store.insert_telemetry(vec![row]).await.unwrap();
    }
}

fn has_entry(audit: &[Value], action: &str, detail_part: &str) -> bool {
    audit.iter().any(|e| {
        e["action"] == action
            && e["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(detail_part)
    })
}

// --- Sessions, tokens, roles -----------------------------------------------------------------

#[tokio::test]
async fn login_sets_an_http_only_strict_cookie_and_logout_ends_the_session() {
    let h = harness(test_config());
    let password = api::create_admin(&h.store, "root").await.unwrap();
    let answer = h.login("root", &password).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["user"]["role"], "admin");
    let cookie = answer.cookie();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP by default: {cookie}"
    );
    let session = answer.session();
    assert!(session.starts_with("bmslink_session="));

    let me = h.get("/api/me", Auth::Cookie(&session)).await;
    assert_eq!(
        (me.status, me.body["via"].clone()),
        (StatusCode::OK, json!("session"))
    );

    let out = h
        .call(Method::POST, "/api/logout", Auth::Cookie(&session), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.cookie().contains("Max-Age=0"), "{}", out.cookie());
    let after = h.get("/api/me", Auth::Cookie(&session)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert!(after.error().contains("log in"), "{}", after.body);
    assert!(after.body.get("detail").is_some(), "one error shape");
}

#[tokio::test]
async fn cookies_are_secure_when_configured_for_https() {
    let h = harness(ApiConfig {
        secure_cookies: true,
        session_lifetime: Duration::from_secs(600),
        ..test_config()
    });
    let password = api::create_admin(&h.store, "root").await.unwrap();
    let cookie = h.login("root", &password).await.cookie();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("Max-Age=600"), "{cookie}");
}

#[tokio::test]
async fn failed_logins_are_refused_alike_audited_and_limited_per_address() {
    let h = harness(ApiConfig {
        login_failures_allowed: 3,
        ..test_config()
    });
    let password = api::create_admin(&h.store, "root").await.unwrap();
    let wrong = h.login("root", "not the password").await;
    let unknown = h.login("nobody", "whatever").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body, "the same answer for both");
    assert!(wrong.headers.contains_key(header::WWW_AUTHENTICATE));
    h.login("root", "still wrong").await;
    let limited = h.login("root", &password).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    assert!(limited.headers.contains_key(header::RETRY_AFTER));

    let audit = h.audit().await;
    let failed: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .collect();
    assert_eq!(failed.len(), 4, "{audit:#?}");
    assert!(has_entry(
        &audit,
        "login_failed",
        "wrong password; from unknown"
    ));
    assert!(has_entry(&audit, "login_failed", "unknown user"));
    assert!(has_entry(&audit, "login_failed", "too many failures"));
}

#[tokio::test]
async fn a_successful_login_is_audited() {
    let h = harness(test_config());
    h.admin().await;
    let audit = h.audit().await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "login" && e["actor"] == "root"),
        "{audit:#?}"
    );
    assert!(has_entry(&audit, "create_user", "create-admin"));
}

#[tokio::test]
async fn bearer_tokens_work_until_revoked_and_show_their_secret_once() {
    let h = harness(test_config());
    let admin = h.admin().await;
    let body = json!({"label": "grafana", "expires_in_days": 30});
    let created = h
        .call(
            Method::POST,
            "/api/tokens",
            Auth::Cookie(&admin),
            Some(body),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with(api::TOKEN_PREFIX));
    let id = created.body["id"].as_str().unwrap().to_string();

    let me = h.get("/api/me", Auth::Bearer(&secret)).await;
    assert_eq!(
        (me.status, me.body["via"].clone()),
        (StatusCode::OK, json!("token"))
    );
    assert_eq!(
        h.get("/api/users", Auth::Bearer(&secret)).await.status,
        StatusCode::OK
    );

    let list = h.get("/api/tokens", Auth::Bearer(&secret)).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert!(list.body[0].get("secret").is_none(), "{}", list.body);
    assert_eq!(list.body[0]["label"], "grafana");

    let path = format!("/api/tokens/{id}");
    let revoked = h
        .call(Method::DELETE, &path, Auth::Cookie(&admin), None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.get("/api/me", Auth::Bearer(&secret)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let audit = h.audit().await;
    assert!(has_entry(&audit, "create_token", "from"));
    assert!(has_entry(&audit, "revoke_token", "from"));
}

#[tokio::test]
async fn requests_without_working_credentials_get_401_in_json() {
    let h = harness(test_config());
    for (auth, path) in [
        (Auth::None, "/api/fleet"),
        (Auth::Bearer("bmslink_00"), "/api/fleet"),
        (Auth::Cookie("bmslink_session=nope"), "/api/users"),
    ] {
        let answer = h.get(path, auth).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(!answer.error().is_empty());
    }
    let basic = h
        .app
        .clone()
        .oneshot(
            Request::get("/api/fleet")
                .header(header::AUTHORIZATION, "Basic cm9vdDpyb290")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn roles_are_enforced_and_a_viewers_write_queues_nothing() {
    let h = harness(test_config());
    h.online_terminal().await;
    let admin = h.admin().await;
    let viewer = h.user(&admin, "vera", "viewer").await;
    let operator = h.user(&admin, "otto", "operator").await;
    let mut notices = h.store.subscribe_commands();

    let write = json!({"values": {"balancing_switch": "off"}});
    let refused = h
        .call(
            Method::PATCH,
            "/api/terminals/0003E8/settings",
            Auth::Cookie(&viewer),
            Some(write),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.body["detail"]["required"], "operator");
    assert!(h.store.queued_commands(TERMINAL).await.unwrap().is_empty());
    assert!(notices.try_recv().is_err(), "nothing was announced");

    let ack = h
        .call(
            Method::POST,
            "/api/alarms/1/acknowledge",
            Auth::Cookie(&viewer),
            None,
        )
        .await;
    assert_eq!(ack.status, StatusCode::FORBIDDEN);
    for cookie in [&viewer, &operator] {
        assert_eq!(
            h.get("/api/users", Auth::Cookie(cookie)).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            h.get("/api/audit", Auth::Cookie(cookie)).await.status,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        h.get("/api/fleet", Auth::Cookie(&viewer)).await.status,
        StatusCode::OK
    );
    let audit = h.audit().await;
    assert!(
        audit.iter().any(|e| e["action"] == "forbidden"
            && e["actor"] == "vera"
            && e["target"] == "PATCH /api/terminals/0003E8/settings"),
        "{audit:#?}"
    );
}

#[tokio::test]
async fn create_admin_refuses_a_name_that_exists() {
    let h = harness(test_config());
    let password = api::create_admin(&h.store, "root").await.unwrap();
    assert_eq!(password.len(), 27);
    assert_eq!(
        api::create_admin(&h.store, "root").await,
        Err(CreateAdminError::NameTaken("root".into()))
    );
    assert!(matches!(
        api::create_admin(&h.store, "two words").await,
        Err(CreateAdminError::InvalidName(_))
    ));
    let users = h.store.users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].role, Role::Admin);
    assert!(users[0].password_hash.starts_with("$argon2id$"));
    assert_eq!(h.login("root", &password).await.status, StatusCode::OK);
}

#[tokio::test]
async fn ensure_admin_creates_the_admin_then_resets_its_password() {
    let h = harness(test_config());
    let first = "demo-password-1";
    let created = api::ensure_admin(&h.store, "admin", first).await;
    assert_eq!(created, Ok(api::AdminAccount::Created));
    assert_eq!(h.login("admin", first).await.status, StatusCode::OK);
    let second = "demo-password-2";
    let reset = api::ensure_admin(&h.store, "admin", second).await;
    assert_eq!(reset, Ok(api::AdminAccount::PasswordReset));
    assert_eq!(
        h.login("admin", first).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.login("admin", second).await.status, StatusCode::OK);
    assert!(matches!(
        api::ensure_admin(&h.store, "admin", "short").await,
        Err(CreateAdminError::InvalidPassword(_))
    ));
    assert_eq!(h.store.users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn users_are_managed_by_admins_and_the_last_admin_stays() {
    let h = harness(test_config());
    let admin = h.admin().await;
    let new =
        |name: &str, password: &str| json!({"name": name, "role": "viewer", "password": password});
    let post = |body| h.call(Method::POST, "/api/users", Auth::Cookie(&admin), Some(body));
    let created = post(new("vera", "long enough secret")).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(
        post(new("vera", "long enough secret")).await.status,
        StatusCode::CONFLICT
    );
    let short = post(new("walt", "short")).await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short.error().contains("at least 10"), "{}", short.body);

    let users = h.get("/api/users", Auth::Cookie(&admin)).await.body;
    let root = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "root")
        .unwrap();
    assert!(root.get("password_hash").is_none());
    let root_path = format!("/api/users/{}", root["id"]);
    let demote = json!({"role": "operator"});
    let last = h
        .call(
            Method::PATCH,
            &root_path,
            Auth::Cookie(&admin),
            Some(demote),
        )
        .await;
    assert_eq!(last.status, StatusCode::CONFLICT, "{}", last.body);
    let gone = h
        .call(Method::DELETE, &root_path, Auth::Cookie(&admin), None)
        .await;
    assert_eq!(gone.status, StatusCode::CONFLICT);

    let path = format!("/api/users/{id}");
    let promote = json!({"role": "operator"});
    let changed = h
        .call(Method::PATCH, &path, Auth::Cookie(&admin), Some(promote))
        .await;
    assert_eq!(changed.body["role"], "operator");
    let deleted = h
        .call(Method::DELETE, &path, Auth::Cookie(&admin), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        h.call(Method::DELETE, &path, Auth::Cookie(&admin), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let audit = h.audit().await;
    for action in ["create_user", "update_user", "delete_user"] {
        assert!(has_entry(&audit, action, "from"), "{action}: {audit:#?}");
    }
}

#[tokio::test]
async fn anyone_changes_their_own_password_with_the_current_one() {
    let h = harness(test_config());
    let admin = h.admin().await;
    let viewer = h.user(&admin, "vera", "viewer").await;
    let change = |current: &str| json!({"current_password": current, "new_password": "another long password"});
    let wrong = h
        .call(
            Method::PUT,
            "/api/me/password",
            Auth::Cookie(&viewer),
            Some(change("nope")),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let right = h
        .call(
            Method::PUT,
            "/api/me/password",
            Auth::Cookie(&viewer),
            Some(change("a long enough password")),
        )
        .await;
    assert_eq!(right.status, StatusCode::NO_CONTENT, "{}", right.body);
    assert_eq!(
        h.login("vera", "another long password").await.status,
        StatusCode::OK
    );
    assert!(has_entry(&h.audit().await, "change_password", "from"));
}

// --- Settings and commands -------------------------------------------------------------------

/// Plays the device listener for one command: claims it, checks it, finishes it with `result`.
fn play_listener(store: SqliteStore, result: Value) -> tokio::task::JoinHandle<CommandRequest> {
    let mut notices = store.subscribe_commands();
    tokio::spawn(async move {
        loop {
            if let Ok(CommandNotice::Queued { id, terminal }) = notices.recv().await {
                assert_eq!(terminal, TERMINAL);
                let command = store.claim_command(id).await.unwrap().expect("unclaimed");
                let state = CommandState::Done { result };
                store.finish_command(id, state).await.unwrap();
                return command.request;
            }
        }
    })
}

#[tokio::test]
async fn a_settings_write_is_queued_and_answered_with_the_result_per_setting() {
    let h = harness(test_config());
    h.online_terminal().await;
    let admin = h.admin().await;
    let operator = h.user(&admin, "otto", "operator").await;
    let outcome = json!({"ok": true, "settings": [{
        "identifier": "cell_over_voltage_protection", "code": "0x90", "requested": "3.6",
        "written": {"value": 3.6, "unit": "V", "raw": 3600},
        "old": {"value": 3.65, "unit": "V", "raw": 3650},
        "read_back": {"value": 3.6, "unit": "V", "raw": 3600}, "ok": true, "error": null,
    }]});
    let listener = play_listener(h.store.clone(), outcome);
    let write = json!({"values": {"cell_over_voltage_protection": "3.6"}, "password": "123456"});
    let answer = h
        .call(
            Method::PATCH,
            "/api/terminals/0003E8/settings",
            Auth::Cookie(&operator),
            Some(write),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["ok"], true);
    assert_eq!(answer.body["settings"][0]["read_back"]["raw"], 3600);
    let request = listener.await.unwrap();
    assert_eq!(
        request,
        CommandRequest::Write {
            values: vec![("cell_over_voltage_protection".into(), "3.6".into())],
            password: Some("123456".into()),
        }
    );
    let audit = h.audit().await;
    assert!(
        has_entry(
            &audit,
            "write_settings",
            "cell_over_voltage_protection=3.6; from"
        ),
        "{audit:#?}"
    );
    let command = answer.body["command"].as_i64().unwrap();
    let view = h
        .get(&format!("/api/commands/{command}"), Auth::Cookie(&operator))
        .await;
    assert_eq!(
        (view.body["state"].clone(), view.body["op"].clone()),
        (json!("done"), json!("write"))
    );
}

#[tokio::test]
async fn reading_settings_returns_the_values_the_device_reported() {
    let h = harness(test_config());
    h.online_terminal().await;
    let admin = h.admin().await;
    let viewer = h.user(&admin, "vera", "viewer").await;
    let values = json!({"values": {
        "soc": {"value": 15, "unit": "%", "raw": 15},
        "password": {"value": "123456", "raw": "31 32"},
    }});
    let listener = play_listener(h.store.clone(), values);
    let answer = h
        .get("/api/terminals/0003E8/settings", Auth::Cookie(&viewer))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(listener.await.unwrap(), CommandRequest::ReadAll);
    assert_eq!(answer.body["values"]["soc"]["value"], 15);
    assert_eq!(
        answer.body["values"]["password"]["value"], "********",
        "hidden from viewers"
    );
}

#[tokio::test]
async fn invalid_settings_are_refused_per_setting_before_anything_is_queued() {
    let h = harness(test_config());
    h.online_terminal().await;
    let admin = h.admin().await;
    let mut notices = h.store.subscribe_commands();
    let write = json!({"values": {
        "cell_over_voltage_protection": "9.99",
        "balancing_switch": "maybe",
        "soc": "50",
        "restart": "1",
        "cell_over_voltage_recovery": "3.2",
    }});
    let answer = h
        .call(
            Method::PATCH,
            "/api/terminals/0003E8/settings",
            Auth::Cookie(&admin),
            Some(write),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    let errors = answer.body["detail"].as_array().unwrap();
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "cell_over_voltage_protection",
            "balancing_switch",
            "soc",
            "restart"
        ]
    );
    assert_eq!(errors[0]["value"], "9.99");
    assert_eq!(
        errors[0]["range"],
        json!({"min": 1.0, "max": 4.5, "unit": "V"})
    );
    assert!(errors[0]["error"]
        .as_str()
        .unwrap()
        .contains("out of range"));
    assert!(errors[2]["error"].as_str().unwrap().contains("read-only"));
    assert!(errors[3]["error"].as_str().unwrap().contains("write-only"));
    assert!(answer.error().starts_with("nothing was written"));

    // In range, but against the latest upload's settings (A03: over-voltage protection
    // 3.65 V), a recovery above the protection breaks a cross-field rule.
    let write = json!({"values": {"cell_over_voltage_recovery": "3.7"}});
    let answer = h
        .call(
            Method::PATCH,
            "/api/terminals/0003E8/settings",
            Auth::Cookie(&admin),
            Some(write),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert!(answer.body["detail"][0]["error"]
        .as_str()
        .unwrap()
        .contains("must be below cell_over_voltage_protection"));
    assert!(h.store.queued_commands(TERMINAL).await.unwrap().is_empty());
    assert!(notices.try_recv().is_err());
}

#[tokio::test]
async fn a_command_nobody_runs_times_out_with_504_and_is_cancelled() {
    let h = harness(ApiConfig {
        command_timeout: Duration::from_millis(300),
        ..test_config()
    });
    h.online_terminal().await;
    let admin = h.admin().await;
    let write = json!({"values": {"balancing_switch": true}});
    let answer = h
        .call(
            Method::PATCH,
            "/api/terminals/0003E8/settings",
            Auth::Cookie(&admin),
            Some(write),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["detail"]["state"], "cancelled");
    assert!(answer.error().contains("no answer from the terminal"));
    let id = answer.body["detail"]["command"].as_i64().unwrap();
    let command = h.store.command(id).await.unwrap().unwrap();
    assert!(
        matches!(command.state, CommandState::Failed { .. }),
        "{command:?}"
    );
}

#[tokio::test]
async fn commands_need_a_known_connected_terminal() {
    let h = harness(test_config());
    let admin = h.admin().await;
    let unknown = h
        .get("/api/terminals/0003E8/settings", Auth::Cookie(&admin))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    h.online_terminal().await;
    h.store
        .terminal_disconnected(TERMINAL, OWNER, Timestamp::now())
        .await
        .unwrap();
    let offline = h
        .get("/api/terminals/0003E8/settings", Auth::Cookie(&admin))
        .await;
    assert_eq!(offline.status, StatusCode::CONFLICT, "{}", offline.body);
    assert!(offline.error().contains("offline"));
}

// --- Fleet, terminals, history, alarms, registration -----------------------------------------

#[tokio::test]
async fn the_fleet_and_a_terminal_show_the_latest_values_decoded() {
    let h = harness(test_config());
    h.online_terminal().await;
    let admin = h.admin().await;
    let viewer = h.user(&admin, "vera", "viewer").await;
    let fleet = h
        .get(
            "/api/fleet?online=true&search=3e8&sort=soc&order=desc",
            Auth::Cookie(&viewer),
        )
        .await;
    assert_eq!(fleet.status, StatusCode::OK, "{}", fleet.body);
    assert_eq!(fleet.body["total"], 1);
    assert_eq!(fleet.body["counts"]["online"], 1);
    let item = &fleet.body["terminals"][0];
    assert_eq!(
        (item["terminal"].clone(), item["latest"]["soc"].clone()),
        (json!("0003E8"), json!(15))
    );
    assert_eq!(item["latest"]["cell_count"], 16);
    let none = h
        .get("/api/fleet?online=false", Auth::Cookie(&viewer))
        .await;
    assert_eq!(none.body["total"], 0);
    assert_eq!(
        h.get("/api/fleet?sort=nonsense", Auth::Cookie(&viewer))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    let detail = h.get("/api/terminals/3e8", Auth::Cookie(&viewer)).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(
        detail.body["values"]["cell_over_voltage_protection"]["value"],
        3.65
    );
    assert_eq!(detail.body["values"]["password"]["value"], "********");
    assert_eq!(
        detail.body["latest"]["cells_mv"].as_array().unwrap().len(),
        16
    );

    let latest = h
        .get("/api/terminals/0003E8/latest", Auth::Cookie(&viewer))
        .await;
    assert!(latest.body["hex"].as_str().unwrap().starts_with("4E 57"));
    assert!(latest.body["hex"].as_str().unwrap().contains("**"));
    let as_admin = h
        .get("/api/terminals/0003E8/latest", Auth::Cookie(&admin))
        .await;
    assert!(!as_admin.body["hex"].as_str().unwrap().contains("**"));
    assert_eq!(
        h.get("/api/terminals/ZZ/latest", Auth::Cookie(&viewer))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.get("/api/terminals/ABCDEF", Auth::Cookie(&viewer))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn history_ranges_are_checked_per_resolution() {
    let h = harness(test_config());
    h.online_terminal().await;
    let admin = h.admin().await;
    let now = Timestamp::now().millis();
    let day = 86_400_000;
    let path = |from: i64, resolution: &str| {
        format!("/api/terminals/0003E8/history?from={from}&to={now}&resolution={resolution}")
    };
    let raw = h
        .get(&path(now - 3_600_000, "raw"), Auth::Cookie(&admin))
        .await;
    assert_eq!(raw.status, StatusCode::OK, "{}", raw.body);
    assert_eq!(
        raw.body["points"].as_array().unwrap().len(),
        1,
        "{}",
        raw.body
    );
    let too_long = h
        .get(&path(now - 2 * day, "raw"), Auth::Cookie(&admin))
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert!(
        too_long.error().contains("resolution=minute"),
        "{}",
        too_long.body
    );
    assert_eq!(
        h.get(&path(now - 2 * day, "minute"), Auth::Cookie(&admin))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.get(&path(now - 40 * day, "minute"), Auth::Cookie(&admin))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.get(&path(now - 400 * day, "hour"), Auth::Cookie(&admin))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.get(&path(now - 1, "second"), Auth::Cookie(&admin))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        h.get(&path(now + 1, "hour"), Auth::Cookie(&admin))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn alarms_are_listed_and_acknowledged_by_operators() {
    let h = harness(test_config());
    h.online_terminal().await;
    let admin = h.admin().await;
    let operator = h.user(&admin, "otto", "operator").await;
    let kind = AlarmKind::Bms("cell_over_voltage".into());
    let (id, _) = h
        .store
        .raise_alarm(TERMINAL, kind, "cell 3 at 3.70 V".into(), Timestamp::now())
        .await
        .unwrap();
    let list = h
        .get(
            "/api/alarms?active=true&terminal=0003E8",
            Auth::Cookie(&operator),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body[0]["kind"], "bms");
    assert_eq!(list.body[0]["warning"], "cell_over_voltage");
    let path = format!("/api/alarms/{id}/acknowledge");
    let ack = h
        .call(Method::POST, &path, Auth::Cookie(&operator), None)
        .await;
    assert_eq!(ack.status, StatusCode::OK, "{}", ack.body);
    assert_eq!(ack.body["acknowledged_by"], "otto");
    let missing = h
        .call(
            Method::POST,
            "/api/alarms/999/acknowledge",
            Auth::Cookie(&operator),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(has_entry(&h.audit().await, "ack_alarm", "from"));
}

#[tokio::test]
async fn pending_terminals_are_approved_by_operators() {
    let h = harness(test_config());
    h.store
        .terminal_connected(Terminal(7), OWNER, Timestamp::now(), false)
        .await
        .unwrap();
    let admin = h.admin().await;
    let pending = h.get("/api/registrations", Auth::Cookie(&admin)).await;
    assert_eq!(pending.body[0]["terminal"], "000007");
    let decision = json!({"registration": "approved"});
    let approved = h
        .call(
            Method::PUT,
            "/api/terminals/7/registration",
            Auth::Cookie(&admin),
            Some(decision),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["registration"], "approved");
    assert_eq!(
        h.get("/api/registrations", Auth::Cookie(&admin)).await.body,
        json!([])
    );
    assert!(has_entry(&h.audit().await, "approve_terminal", "from"));
}

// --- Errors and the document -----------------------------------------------------------------

#[tokio::test]
async fn malformed_requests_get_4xx_in_the_one_error_shape() {
    let h = harness(test_config());
    let admin = h.admin().await;
    let not_json = h
        .app
        .clone()
        .oneshot(
            Request::post("/api/tokens")
                .header(header::COOKIE, &admin)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let cases = [
        (
            Method::POST,
            "/api/tokens",
            Some(json!({"label": 5})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (Method::GET, "/api/nothing", None, StatusCode::NOT_FOUND),
        (
            Method::DELETE,
            "/api/fleet",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/api/alarms?limit=-1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/commands/x",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/audit?limit=0",
            None,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, body, status) in cases {
        let answer = h
            .call(method.clone(), path, Auth::Cookie(&admin), body)
            .await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        assert!(!answer.error().is_empty(), "{method} {path}");
    }
    let login = h.call(Method::POST, "/api/login", Auth::None, None).await;
    assert_eq!(login.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// Every route the router serves, as (method, OpenAPI path).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/health"),
    ("get", "/api/openapi.json"),
    ("post", "/api/login"),
    ("post", "/api/logout"),
    ("get", "/api/me"),
    ("put", "/api/me/password"),
    ("get", "/api/fleet"),
    ("get", "/api/terminals/{terminal}"),
    ("patch", "/api/terminals/{terminal}"),
    ("get", "/api/terminals/{terminal}/latest"),
    ("get", "/api/terminals/{terminal}/history"),
    ("get", "/api/terminals/{terminal}/settings"),
    ("patch", "/api/terminals/{terminal}/settings"),
    ("put", "/api/terminals/{terminal}/registration"),
    ("get", "/api/registrations"),
    ("get", "/api/settings/schema"),
    ("get", "/api/commands/{id}"),
    ("get", "/api/events"),
    ("get", "/api/alarms"),
    ("post", "/api/alarms/{id}/acknowledge"),
    ("get", "/api/users"),
    ("post", "/api/users"),
    ("patch", "/api/users/{id}"),
    ("delete", "/api/users/{id}"),
    ("get", "/api/tokens"),
    ("post", "/api/tokens"),
    ("delete", "/api/tokens/{id}"),
    ("get", "/api/audit"),
];

#[tokio::test]
async fn the_openapi_document_is_json_and_describes_every_route() {
    let h = harness(test_config());
    let answer = h.get("/api/openapi.json", Auth::None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    documented.sort();
    let mut served: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    assert_eq!(documented, served);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["token"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["name"], "bmslink_session");
    assert_eq!(doc["paths"]["/api/login"]["post"]["security"], json!([{}]));
    let update = &doc["components"]["schemas"]["UserUpdate"];
    assert_eq!(
        (update["minProperties"].clone(), update.get("maxProperties")),
        (json!(1), None)
    );
    // Every route answers at its documented method (no 404/405 from the router itself).
    for (method, path) in ROUTES {
        let concrete = path.replace("{terminal}", "0003E8").replace("{id}", "1");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let answer = h.call(method.clone(), &concrete, Auth::None, None).await;
        assert!(
            answer.status != StatusCode::NOT_FOUND
                && answer.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}: {}",
            answer.status
        );
    }
}

#[tokio::test]
async fn the_settings_schema_lists_every_setting_and_the_presets() {
    let h = harness(test_config());
    let admin = h.admin().await;
    let schema = h
        .get(
            "/api/settings/schema?cells=4&capacity_ah=280",
            Auth::Cookie(&admin),
        )
        .await;
    assert_eq!(schema.status, StatusCode::OK, "{}", schema.body);
    let settings = schema.body["settings"].as_array().unwrap();
    let rw = bmslink_proto::TABLE
        .iter()
        .filter(|i| i.access == bmslink_proto::Access::ReadWrite)
        .count();
    assert_eq!(settings.len(), rw);
    let presets = schema.body["presets"].as_array().unwrap();
    let names: Vec<&str> = presets
        .iter()
        .map(|p| p["chemistry"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["lfp", "nmc", "lto"]);
    assert_eq!(
        presets[0]["values"]["cell_over_voltage_protection"],
        "3.650"
    );
    assert_eq!(
        presets[0]["values"]["total_over_voltage_protection"],
        "14.60"
    );
    assert_eq!(
        h.get("/api/settings/schema?cells=99", Auth::Cookie(&admin))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn health_needs_no_credentials() {
    let h = harness(test_config());
    let answer = h.get("/api/health", Auth::None).await;
    assert_eq!(
        (answer.status, answer.body["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn the_web_app_plugs_in_as_the_routers_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("platform.db")).unwrap();
    let app = api::router(ApiState::new(store, test_config())).fallback(|| async { "the web app" });
    let body = |response: axum::response::Response| async {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let page = app
        .clone()
        .oneshot(Request::get("/fleet/0003E8").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        !page.headers().contains_key(header::CACHE_CONTROL),
        "assets may be cached"
    );
    assert_eq!(body(page).await, "the web app");
    let api = app
        .oneshot(Request::get("/api/nothing").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert!(body(api).await.contains("no such API route"));
}
