//! Everything but telemetry on PostgreSQL: terminals and the fleet list, alarms, commands
//! (with NOTIFY), users, credentials and the audit log.

use deadpool_postgres::{Client, GenericClient};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::telemetry::telemetry_row;
use super::{column, execute, query, query_opt, terminal_param, Context, COMMAND_CHANNEL};
use crate::model::{
    Alarm, AlarmKind, AuditEntry, Command, CommandRequest, CommandState, ConnectionOwner,
    Credential, FleetEntry, Registration, Role, Terminal, TerminalRecord, Timestamp, User,
};
use crate::store::codec::{
    alarm_kind_from_text, alarm_kind_text, command_status, narrow, owner_columns,
    owner_from_columns, registration_from_text, registration_text, request_from_json, request_json,
    role_from_text, role_text, state_from_json, state_json,
};
use crate::store::{AlarmFilter, CommandNotice, StoreError, StoreResult};

// --- Terminals -----------------------------------------------------------------------------

const TERMINAL_COLUMNS: &str =
    "id, registration, name, first_seen, last_seen, online, owner_process, owner_connection";

pub(super) async fn terminal_connected(
    client: &Client,
    terminal: Terminal,
    owner: ConnectionOwner,
    at: Timestamp,
    approve_new: bool,
) -> StoreResult<TerminalRecord> {
    let registration = if approve_new {
        Registration::Approved
    } else {
        Registration::Pending
    };
    // The latest claim owns, whoever held the terminal before.
    let sql = format!(
        "INSERT INTO terminals
             (id, registration, name, first_seen, last_seen, online, owner_process,
              owner_connection)
         VALUES ($1, $2, NULL, $3, $3, true, $4, $5)
         ON CONFLICT (id) DO UPDATE
             SET online = true, last_seen = greatest(terminals.last_seen, excluded.last_seen),
                 owner_process = excluded.owner_process,
                 owner_connection = excluded.owner_connection
         RETURNING {TERMINAL_COLUMNS}"
    );
    let (process, connection) = owner_columns(owner)?;
    let params: [&(dyn ToSql + Sync); 5] = [
        &terminal_param(terminal)?,
        &registration_text(registration),
        &at.millis(),
        &process,
        &connection,
    ];
    let row = query_opt(client, &sql, &params, "recording a connection").await?;
    let row = row.ok_or_else(|| StoreError::Corrupt(format!("terminal {terminal} vanished")))?;
    terminal_record(&row)
}

pub(super) async fn terminal_disconnected(
    client: &Client,
    terminal: Terminal,
    owner: ConnectionOwner,
    at: Timestamp,
) -> StoreResult<bool> {
    // Only the connection that still holds the terminal takes it offline.
    let sql = "UPDATE terminals
               SET online = false, last_seen = greatest(last_seen, $2),
                   owner_process = NULL, owner_connection = NULL
               WHERE id = $1 AND owner_process = $3 AND owner_connection = $4";
    let (process, connection) = owner_columns(owner)?;
    let params: [&(dyn ToSql + Sync); 4] = [
        &terminal_param(terminal)?,
        &at.millis(),
        &process,
        &connection,
    ];
    let changed = execute(client, sql, &params, "recording a disconnection").await?;
    Ok(changed > 0)
}

pub(super) async fn terminal(
    client: &Client,
    terminal: Terminal,
) -> StoreResult<Option<TerminalRecord>> {
    let sql = format!("SELECT {TERMINAL_COLUMNS} FROM terminals WHERE id = $1");
    let row = query_opt(
        client,
        &sql,
        &[&terminal_param(terminal)?],
        "reading a terminal",
    )
    .await?;
    row.as_ref().map(terminal_record).transpose()
}

pub(super) async fn fleet(client: &Client) -> StoreResult<Vec<FleetEntry>> {
    const FLEET: &str = "
        SELECT t.id, t.registration, t.name, t.first_seen, t.last_seen, t.online,
               t.owner_process, t.owner_connection,
               l.terminal, l.record, l.at, l.voltage_mv, l.current_ma, l.soc, l.t_mosfet,
               l.t_box, l.t_battery, l.cells, l.warnings, l.status, l.raw,
               coalesce(a.active, 0) AS active_alarms
        FROM terminals t
        LEFT JOIN latest l ON l.terminal = t.id
        LEFT JOIN (SELECT terminal, count(*) AS active FROM alarms WHERE ended IS NULL
                   GROUP BY terminal) a ON a.terminal = t.id
        ORDER BY t.id";
    let rows = query(client, FLEET, &[], "reading the fleet").await?;
    rows.iter()
        .map(|row| {
            let latest = match column::<Option<i32>>(row, "terminal")? {
                Some(_) => Some(telemetry_row(row)?),
                None => None,
            };
            Ok(FleetEntry {
                record: terminal_record(row)?,
                latest,
                active_alarms: narrow(column(row, "active_alarms")?, "active alarm count")?,
            })
        })
        .collect()
}

pub(super) async fn set_registration(
    client: &Client,
    terminal: Terminal,
    registration: Registration,
) -> StoreResult<()> {
    let sql = "UPDATE terminals SET registration = $2 WHERE id = $1";
    let params: [&(dyn ToSql + Sync); 2] =
        [&terminal_param(terminal)?, &registration_text(registration)];
    let changed = execute(client, sql, &params, "changing a registration").await?;
    found(changed, || format!("terminal {terminal}"))
}

pub(super) async fn set_terminal_name(
    client: &Client,
    terminal: Terminal,
    name: Option<&str>,
) -> StoreResult<()> {
    let sql = "UPDATE terminals SET name = $2 WHERE id = $1";
    let params: [&(dyn ToSql + Sync); 2] = [&terminal_param(terminal)?, &name];
    let changed = execute(client, sql, &params, "naming a terminal").await?;
    found(changed, || format!("terminal {terminal}"))
}

fn terminal_record(row: &Row) -> StoreResult<TerminalRecord> {
    Ok(TerminalRecord {
        terminal: Terminal(narrow(column::<i32>(row, "id")?.into(), "terminals.id")?),
        registration: registration_from_text(column(row, "registration")?)?,
        name: column(row, "name")?,
        first_seen: Timestamp(column(row, "first_seen")?),
        last_seen: Timestamp(column(row, "last_seen")?),
        online: column(row, "online")?,
        owner: owner_from_columns(
            column(row, "owner_process")?,
            column(row, "owner_connection")?,
        )?,
    })
}

// --- Alarms --------------------------------------------------------------------------------

const ALARM_COLUMNS: &str = "id, terminal, kind, detail, started, ended, ack_by, ack_at";

/// Raises an alarm unless one is active; the partial unique index decides between two
/// processes raising the same alarm at once.
pub(super) async fn raise_alarm(
    client: &Client,
    terminal: Terminal,
    kind: &AlarmKind,
    detail: &str,
    at: Timestamp,
) -> StoreResult<(i64, bool)> {
    let doing = "raising an alarm";
    let kind = alarm_kind_text(kind);
    let number = terminal_param(terminal)?;
    let insert = "INSERT INTO alarms (terminal, kind, detail, started) VALUES ($1, $2, $3, $4)
                  ON CONFLICT (terminal, kind) WHERE ended IS NULL DO NOTHING RETURNING id";
    let active = "SELECT id FROM alarms WHERE terminal = $1 AND kind = $2 AND ended IS NULL";
    // Twice at most: the active alarm may clear between the insert and the look-up.
    for _ in 0..2 {
        let params: [&(dyn ToSql + Sync); 4] = [&number, &kind, &detail, &at.millis()];
        if let Some(row) = query_opt(client, insert, &params, doing).await? {
            return Ok((column(&row, "id")?, true));
        }
        if let Some(row) = query_opt(client, active, &[&number, &kind], doing).await? {
            return Ok((column(&row, "id")?, false));
        }
    }
    Err(StoreError::Unavailable(format!(
        "PostgreSQL, {doing}: the alarm {kind} of terminal {terminal} keeps changing"
    )))
}

pub(super) async fn clear_alarm(
    client: &Client,
    terminal: Terminal,
    kind: &AlarmKind,
    at: Timestamp,
) -> StoreResult<bool> {
    let sql = "UPDATE alarms SET ended = $3 WHERE terminal = $1 AND kind = $2 AND ended IS NULL";
    let params: [&(dyn ToSql + Sync); 3] = [
        &terminal_param(terminal)?,
        &alarm_kind_text(kind),
        &at.millis(),
    ];
    Ok(execute(client, sql, &params, "clearing an alarm").await? > 0)
}

/// Alarms matching `filter`, newest first (`limit` 0: no limit).
pub(super) async fn alarms(client: &Client, filter: AlarmFilter) -> StoreResult<Vec<Alarm>> {
    let mut conditions = vec!["true".to_owned()];
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut bind = |condition: &str, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        conditions.push(format!("{condition} ${}", params.len()));
    };
    if let Some(terminal) = filter.terminal {
        bind("terminal =", Box::new(terminal_param(terminal)?));
    }
    if let Some(from) = filter.from {
        bind("started >=", Box::new(from.millis()));
    }
    if let Some(to) = filter.to {
        bind("started <", Box::new(to.millis()));
    }
    if filter.active_only {
        conditions.push("ended IS NULL".to_owned());
    }
    let limit = match filter.limit {
        0 => String::new(),
        n => format!(" LIMIT {n}"),
    };
    let sql = format!(
        "SELECT {ALARM_COLUMNS} FROM alarms WHERE {} ORDER BY started DESC, id DESC{limit}",
        conditions.join(" AND ")
    );
    let params: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = query(client, &sql, &params, "listing alarms").await?;
    rows.iter().map(alarm).collect()
}

pub(super) async fn acknowledge_alarm(
    client: &Client,
    id: i64,
    user: &str,
    at: Timestamp,
) -> StoreResult<Alarm> {
    let doing = "acknowledging an alarm";
    // The update returns nothing when the alarm was acknowledged already: then read it.
    let update = format!(
        "UPDATE alarms SET ack_by = $2, ack_at = $3 WHERE id = $1 AND ack_by IS NULL
         RETURNING {ALARM_COLUMNS}"
    );
    let params: [&(dyn ToSql + Sync); 3] = [&id, &user, &at.millis()];
    if let Some(row) = query_opt(client, &update, &params, doing).await? {
        return alarm(&row);
    }
    let select = format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE id = $1");
    match query_opt(client, &select, &[&id], doing).await? {
        Some(row) => alarm(&row),
        None => Err(StoreError::NotFound(format!("alarm {id}"))),
    }
}

fn alarm(row: &Row) -> StoreResult<Alarm> {
    let ack_by: Option<String> = column(row, "ack_by")?;
    let ack_at: Option<i64> = column(row, "ack_at")?;
    Ok(Alarm {
        id: column(row, "id")?,
        terminal: Terminal(narrow(
            column::<i32>(row, "terminal")?.into(),
            "alarms.terminal",
        )?),
        kind: alarm_kind_from_text(column(row, "kind")?)?,
        detail: column(row, "detail")?,
        started: Timestamp(column(row, "started")?),
        ended: column::<Option<i64>>(row, "ended")?.map(Timestamp),
        acknowledged: ack_by.zip(ack_at.map(Timestamp)),
    })
}

// --- Commands ------------------------------------------------------------------------------

const COMMAND_COLUMNS: &str = "id, terminal, request, issued_by, issued_at, state";

/// Queues a command and NOTIFYs it in the same transaction (delivered on commit).
pub(super) async fn enqueue_command(
    client: &mut Client,
    terminal: Terminal,
    request: &CommandRequest,
    issued_by: &str,
    at: Timestamp,
) -> StoreResult<i64> {
    let doing = "queueing a command";
    let state = CommandState::Queued;
    let tx = client.transaction().await.context(doing)?;
    let sql = "INSERT INTO commands (terminal, request, issued_by, issued_at, status, state)
               VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
    let params: [&(dyn ToSql + Sync); 6] = [
        &terminal_param(terminal)?,
        &request_json(request)?,
        &issued_by,
        &at.millis(),
        &command_status(&state),
        &state_json(&state)?,
    ];
    let row = query_opt(&tx, sql, &params, doing).await?;
    let id: i64 = match row {
        Some(row) => column(&row, "id")?,
        None => return Err(StoreError::Corrupt("a queued command got no id".into())),
    };
    notify(&tx, CommandNotice::Queued { id, terminal }).await?;
    tx.commit().await.context(doing)?;
    Ok(id)
}

pub(super) async fn claim_command(client: &Client, id: i64) -> StoreResult<Option<Command>> {
    let running = CommandState::Running;
    let sql = format!(
        "UPDATE commands SET status = $2, state = $3 WHERE id = $1 AND status = 'queued'
         RETURNING {COMMAND_COLUMNS}"
    );
    let params: [&(dyn ToSql + Sync); 3] = [&id, &command_status(&running), &state_json(&running)?];
    let row = query_opt(client, &sql, &params, "claiming a command").await?;
    row.as_ref().map(command_row).transpose()
}

pub(super) async fn queued_commands(
    client: &Client,
    terminal: Terminal,
) -> StoreResult<Vec<Command>> {
    let sql = format!(
        "SELECT {COMMAND_COLUMNS} FROM commands WHERE terminal = $1 AND status = 'queued'
         ORDER BY id"
    );
    let rows = query(
        client,
        &sql,
        &[&terminal_param(terminal)?],
        "listing queued commands",
    )
    .await?;
    rows.iter().map(command_row).collect()
}

/// Records a command's end and NOTIFYs it in the same transaction.
pub(super) async fn finish_command(
    client: &mut Client,
    id: i64,
    state: &CommandState,
) -> StoreResult<()> {
    let doing = "finishing a command";
    let tx = client.transaction().await.context(doing)?;
    let sql = "UPDATE commands SET status = $2, state = $3 WHERE id = $1";
    let params: [&(dyn ToSql + Sync); 3] = [&id, &command_status(state), &state_json(state)?];
    let changed = execute(&tx, sql, &params, doing).await?;
    found(changed, || format!("command {id}"))?;
    notify(&tx, CommandNotice::Finished { id }).await?;
    tx.commit().await.context(doing)
}

pub(super) async fn command(client: &Client, id: i64) -> StoreResult<Option<Command>> {
    let sql = format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = $1");
    let row = query_opt(client, &sql, &[&id], "reading a command").await?;
    row.as_ref().map(command_row).transpose()
}

async fn notify<C: GenericClient>(client: &C, notice: CommandNotice) -> StoreResult<()> {
    let payload = serde_json::to_string(&notice)
        .map_err(|e| StoreError::Corrupt(format!("command notice not serialisable: {e}")))?;
    let sql = "SELECT pg_notify($1, $2)";
    let params: [&(dyn ToSql + Sync); 2] = [&COMMAND_CHANNEL, &payload];
    query(client, sql, &params, "announcing a command").await?;
    Ok(())
}

fn command_row(row: &Row) -> StoreResult<Command> {
    Ok(Command {
        id: column(row, "id")?,
        terminal: Terminal(narrow(
            column::<i32>(row, "terminal")?.into(),
            "commands.terminal",
        )?),
        request: request_from_json(column(row, "request")?)?,
        issued_by: column(row, "issued_by")?,
        issued_at: Timestamp(column(row, "issued_at")?),
        state: state_from_json(column(row, "state")?)?,
    })
}

// --- Users, credentials, audit -------------------------------------------------------------

const USER_COLUMNS: &str = "id, name, role, password_hash, created";

pub(super) async fn create_user(
    client: &Client,
    name: &str,
    role: Role,
    password_hash: &str,
    at: Timestamp,
) -> StoreResult<User> {
    let sql = format!(
        "INSERT INTO users (name, role, password_hash, created) VALUES ($1, $2, $3, $4)
         RETURNING {USER_COLUMNS}"
    );
    let params: [&(dyn ToSql + Sync); 4] = [&name, &role_text(role), &password_hash, &at.millis()];
    match query_opt(client, &sql, &params, "creating a user").await {
        Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
            "the user name {name:?} is taken"
        ))),
        Err(other) => Err(other),
        Ok(Some(row)) => user(&row),
        Ok(None) => Err(StoreError::Corrupt(format!("user {name:?} vanished"))),
    }
}

pub(super) async fn user_by_name(client: &Client, name: &str) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1");
    let row = query_opt(client, &sql, &[&name], "reading a user").await?;
    row.as_ref().map(user).transpose()
}

pub(super) async fn users(client: &Client) -> StoreResult<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
    let rows = query(client, &sql, &[], "listing users").await?;
    rows.iter().map(user).collect()
}

pub(super) async fn update_user(
    client: &Client,
    id: i64,
    role: Option<Role>,
    password_hash: Option<&str>,
) -> StoreResult<User> {
    let sql = format!(
        "UPDATE users SET role = coalesce($2, role), password_hash = coalesce($3, password_hash)
         WHERE id = $1 RETURNING {USER_COLUMNS}"
    );
    let params: [&(dyn ToSql + Sync); 3] = [&id, &role.map(role_text), &password_hash];
    let row = query_opt(client, &sql, &params, "updating a user").await?;
    row.as_ref()
        .map(user)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
}

/// Deletes a user; their credentials go with them (foreign key, `ON DELETE CASCADE`).
pub(super) async fn delete_user(client: &Client, id: i64) -> StoreResult<()> {
    let changed = execute(
        client,
        "DELETE FROM users WHERE id = $1",
        &[&id],
        "deleting a user",
    )
    .await?;
    found(changed, || format!("user {id}"))
}

fn user(row: &Row) -> StoreResult<User> {
    Ok(User {
        id: column(row, "id")?,
        name: column(row, "name")?,
        role: role_from_text(column(row, "role")?)?,
        password_hash: column(row, "password_hash")?,
        created: Timestamp(column(row, "created")?),
    })
}

const CREDENTIAL_COLUMNS: &str =
    "c.secret_hash, c.user_id, c.is_token, c.label, c.expires, c.created AS credential_created";

/// Stores a credential; `NotFound` for an unknown user, `Conflict` for a secret hash stored
/// already.
pub(super) async fn insert_credential(client: &Client, credential: &Credential) -> StoreResult<()> {
    let sql = "INSERT INTO credentials (secret_hash, user_id, is_token, label, expires, created)
               VALUES ($1, $2, $3, $4, $5, $6)";
    let params: [&(dyn ToSql + Sync); 6] = [
        &credential.secret_hash,
        &credential.user_id,
        &credential.is_token,
        &credential.label,
        &credential.expires.map(Timestamp::millis),
        &credential.created.millis(),
    ];
    match execute(client, sql, &params, "storing a credential").await {
        Err(StoreError::Conflict(text)) if text.contains("(23503)") => {
            Err(StoreError::NotFound(format!("user {}", credential.user_id)))
        }
        other => other.map(|_| ()),
    }
}

pub(super) async fn credential(
    client: &Client,
    secret_hash: &str,
    now: Timestamp,
) -> StoreResult<Option<(Credential, User)>> {
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS}, u.id, u.name, u.role, u.password_hash, u.created
         FROM credentials c JOIN users u ON u.id = c.user_id
         WHERE c.secret_hash = $1 AND (c.expires IS NULL OR c.expires > $2)"
    );
    let params: [&(dyn ToSql + Sync); 2] = [&secret_hash, &now.millis()];
    let row = query_opt(client, &sql, &params, "checking a credential").await?;
    row.as_ref()
        .map(|row| Ok((credential_row(row)?, user(row)?)))
        .transpose()
}

pub(super) async fn delete_credential(client: &Client, secret_hash: &str) -> StoreResult<()> {
    let sql = "DELETE FROM credentials WHERE secret_hash = $1";
    execute(client, sql, &[&secret_hash], "deleting a credential").await?;
    Ok(())
}

pub(super) async fn tokens_of(client: &Client, user_id: i64) -> StoreResult<Vec<Credential>> {
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials c WHERE c.user_id = $1 AND c.is_token
         ORDER BY c.created, c.secret_hash"
    );
    let rows = query(client, &sql, &[&user_id], "listing tokens").await?;
    rows.iter().map(credential_row).collect()
}

fn credential_row(row: &Row) -> StoreResult<Credential> {
    Ok(Credential {
        secret_hash: column(row, "secret_hash")?,
        user_id: column(row, "user_id")?,
        is_token: column(row, "is_token")?,
        label: column(row, "label")?,
        expires: column::<Option<i64>>(row, "expires")?.map(Timestamp),
        created: Timestamp(column(row, "credential_created")?),
    })
}

pub(super) async fn audit(client: &Client, entry: &AuditEntry) -> StoreResult<()> {
    let sql = "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)";
    let params: [&(dyn ToSql + Sync); 5] = [
        &entry.at.millis(),
        &entry.actor,
        &entry.action,
        &entry.target,
        &entry.detail,
    ];
    execute(client, sql, &params, "appending to the audit log").await?;
    Ok(())
}

/// The audit log in `[from, to)`, newest first (`limit` 0: no limit).
pub(super) async fn audit_log(
    client: &Client,
    from: Timestamp,
    to: Timestamp,
    limit: u32,
) -> StoreResult<Vec<AuditEntry>> {
    let sql = "SELECT at, actor, action, target, detail FROM audit
               WHERE at >= $1 AND at < $2 ORDER BY at DESC, id DESC LIMIT $3";
    // LIMIT NULL is no limit.
    let limit = (limit > 0).then_some(i64::from(limit));
    let params: [&(dyn ToSql + Sync); 3] = [&from.millis(), &to.millis(), &limit];
    let rows = query(client, sql, &params, "reading the audit log").await?;
    rows.iter()
        .map(|row| {
            Ok(AuditEntry {
                at: Timestamp(column(row, "at")?),
                actor: column(row, "actor")?,
                action: column(row, "action")?,
                target: column(row, "target")?,
                detail: column(row, "detail")?,
            })
        })
        .collect()
}

fn found(changed: u64, what: impl FnOnce() -> String) -> StoreResult<()> {
    if changed == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}
