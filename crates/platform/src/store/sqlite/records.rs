//! Everything but telemetry on SQLite: terminals and the fleet list, alarms, commands, users,
//! credentials and the audit log. Each function is one statement or one transaction.

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::telemetry::telemetry_row;
use super::{column, query_all, query_first, Context};
use crate::model::{
    Alarm, AlarmKind, AuditEntry, Command, CommandRequest, CommandState, ConnectionOwner,
    Credential, FleetEntry, Registration, Role, Terminal, TerminalRecord, Timestamp, User,
};
use crate::store::codec::{
    alarm_kind_from_text, alarm_kind_text, command_status, narrow, owner_columns,
    owner_from_columns, registration_from_text, registration_text, request_from_json, request_json,
    role_from_text, role_text, state_from_json, state_json,
};
use crate::store::{AlarmFilter, StoreError, StoreResult};

// --- Terminals -----------------------------------------------------------------------------

const TERMINAL_COLUMNS: &str =
    "id, registration, name, first_seen, last_seen, online, owner_process, owner_connection";

pub(super) fn terminal_connected(
    connection: &Connection,
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
         VALUES (?1, ?2, NULL, ?3, ?3, 1, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET online = 1, last_seen = max(last_seen, excluded.last_seen),
             owner_process = excluded.owner_process, owner_connection = excluded.owner_connection
         RETURNING {TERMINAL_COLUMNS}"
    );
    let (process, number) = owner_columns(owner)?;
    let params = (
        terminal.0,
        registration_text(registration),
        at.millis(),
        process,
        number,
    );
    query_first(
        connection,
        &sql,
        params,
        "recording a connection",
        terminal_record,
    )?
    .ok_or_else(|| StoreError::Corrupt(format!("terminal {terminal} vanished on upsert")))
}

pub(super) fn terminal_disconnected(
    connection: &Connection,
    terminal: Terminal,
    owner: ConnectionOwner,
    at: Timestamp,
) -> StoreResult<bool> {
    // Only the connection that still holds the terminal takes it offline.
    let (process, number) = owner_columns(owner)?;
    let changed = connection
        .prepare_cached(
            "UPDATE terminals
             SET online = 0, last_seen = max(last_seen, ?2),
                 owner_process = NULL, owner_connection = NULL
             WHERE id = ?1 AND owner_process = ?3 AND owner_connection = ?4",
        )
        .and_then(|mut s| s.execute((terminal.0, at.millis(), process, number)))
        .context("recording a disconnection")?;
    Ok(changed > 0)
}

pub(super) fn terminal(
    connection: &Connection,
    terminal: Terminal,
) -> StoreResult<Option<TerminalRecord>> {
    let sql = format!("SELECT {TERMINAL_COLUMNS} FROM terminals WHERE id = ?1");
    query_first(
        connection,
        &sql,
        [terminal.0],
        "reading a terminal",
        terminal_record,
    )
}

pub(super) fn fleet(connection: &Connection) -> StoreResult<Vec<FleetEntry>> {
    const FLEET: &str = "
        SELECT t.id, t.registration, t.name, t.first_seen, t.last_seen, t.online,
               t.owner_process, t.owner_connection,
               l.terminal, l.record, l.at, l.voltage_mv, l.current_ma, l.soc, l.t_mosfet,
               l.t_box, l.t_battery, l.cells, l.warnings, l.status, l.raw,
               (SELECT count(*) FROM alarms a WHERE a.terminal = t.id AND a.ended IS NULL)
                   AS active_alarms
        FROM terminals t LEFT JOIN latest l ON l.terminal = t.id
        ORDER BY t.id";
    query_all(connection, FLEET, [], "reading the fleet", |row| {
        let latest = match column::<Option<i64>>(row, "terminal")? {
            Some(_) => Some(telemetry_row(row)?),
            None => None,
        };
        Ok(FleetEntry {
            record: terminal_record(row)?,
            latest,
            active_alarms: narrow(column(row, "active_alarms")?, "active alarm count")?,
        })
    })
}

pub(super) fn set_registration(
    connection: &Connection,
    terminal: Terminal,
    registration: Registration,
) -> StoreResult<()> {
    let changed = connection
        .execute(
            "UPDATE terminals SET registration = ?2 WHERE id = ?1",
            (terminal.0, registration_text(registration)),
        )
        .context("changing a registration")?;
    found(changed, || format!("terminal {terminal}"))
}

pub(super) fn set_terminal_name(
    connection: &Connection,
    terminal: Terminal,
    name: Option<&str>,
) -> StoreResult<()> {
    let changed = connection
        .execute(
            "UPDATE terminals SET name = ?2 WHERE id = ?1",
            (terminal.0, name),
        )
        .context("naming a terminal")?;
    found(changed, || format!("terminal {terminal}"))
}

fn terminal_record(row: &rusqlite::Row<'_>) -> StoreResult<TerminalRecord> {
    Ok(TerminalRecord {
        terminal: Terminal(narrow(column(row, "id")?, "terminals.id")?),
        registration: registration_from_text(&column::<String>(row, "registration")?)?,
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

pub(super) fn raise_alarm(
    connection: &mut Connection,
    terminal: Terminal,
    kind: &AlarmKind,
    detail: &str,
    at: Timestamp,
) -> StoreResult<(i64, bool)> {
    let doing = "raising an alarm";
    let kind = alarm_kind_text(kind);
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(doing)?;
    let active: Option<i64> = tx
        .query_row(
            "SELECT id FROM alarms WHERE terminal = ?1 AND kind = ?2 AND ended IS NULL",
            (terminal.0, &kind),
            |r| r.get(0),
        )
        .optional()
        .context(doing)?;
    let raised = match active {
        Some(id) => (id, false),
        None => {
            tx.execute(
                "INSERT INTO alarms (terminal, kind, detail, started) VALUES (?1, ?2, ?3, ?4)",
                (terminal.0, &kind, detail, at.millis()),
            )
            .context(doing)?;
            (tx.last_insert_rowid(), true)
        }
    };
    tx.commit().context(doing)?;
    Ok(raised)
}

pub(super) fn clear_alarm(
    connection: &Connection,
    terminal: Terminal,
    kind: &AlarmKind,
    at: Timestamp,
) -> StoreResult<bool> {
    let changed = connection
        .execute(
            "UPDATE alarms SET ended = ?3 WHERE terminal = ?1 AND kind = ?2 AND ended IS NULL",
            (terminal.0, alarm_kind_text(kind), at.millis()),
        )
        .context("clearing an alarm")?;
    Ok(changed > 0)
}

/// Alarms matching `filter`, newest first (`limit` 0: no limit).
pub(super) fn alarms(connection: &Connection, filter: AlarmFilter) -> StoreResult<Vec<Alarm>> {
    let mut conditions = vec!["1 = 1"];
    let mut params: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(terminal) = filter.terminal {
        conditions.push("terminal = ?");
        params.push(Box::new(terminal.0));
    }
    if filter.active_only {
        conditions.push("ended IS NULL");
    }
    if let Some(from) = filter.from {
        conditions.push("started >= ?");
        params.push(Box::new(from.millis()));
    }
    if let Some(to) = filter.to {
        conditions.push("started < ?");
        params.push(Box::new(to.millis()));
    }
    params.push(Box::new(limit_or_all(filter.limit)));
    let sql = format!(
        "SELECT {ALARM_COLUMNS} FROM alarms WHERE {} ORDER BY started DESC, id DESC LIMIT ?",
        conditions.join(" AND ")
    );
    let params = rusqlite::params_from_iter(params.iter().map(|p| p.as_ref()));
    query_all(connection, &sql, params, "listing alarms", alarm)
}

pub(super) fn acknowledge_alarm(
    connection: &mut Connection,
    id: i64,
    user: &str,
    at: Timestamp,
) -> StoreResult<Alarm> {
    let doing = "acknowledging an alarm";
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(doing)?;
    tx.execute(
        "UPDATE alarms SET ack_by = ?2, ack_at = ?3 WHERE id = ?1 AND ack_by IS NULL",
        (id, user, at.millis()),
    )
    .context(doing)?;
    let sql = format!("SELECT {ALARM_COLUMNS} FROM alarms WHERE id = ?1");
    let alarm = query_first(&tx, &sql, [id], doing, alarm)?
        .ok_or_else(|| StoreError::NotFound(format!("alarm {id}")))?;
    tx.commit().context(doing)?;
    Ok(alarm)
}

fn alarm(row: &rusqlite::Row<'_>) -> StoreResult<Alarm> {
    let ack_by: Option<String> = column(row, "ack_by")?;
    let ack_at: Option<i64> = column(row, "ack_at")?;
    Ok(Alarm {
        id: column(row, "id")?,
        terminal: Terminal(narrow(column(row, "terminal")?, "alarms.terminal")?),
        kind: alarm_kind_from_text(&column::<String>(row, "kind")?)?,
        detail: column(row, "detail")?,
        started: Timestamp(column(row, "started")?),
        ended: column::<Option<i64>>(row, "ended")?.map(Timestamp),
        acknowledged: ack_by.zip(ack_at.map(Timestamp)),
    })
}

// --- Commands ------------------------------------------------------------------------------

const COMMAND_COLUMNS: &str = "id, terminal, request, issued_by, issued_at, state";

pub(super) fn enqueue_command(
    connection: &Connection,
    terminal: Terminal,
    request: &CommandRequest,
    issued_by: &str,
    at: Timestamp,
) -> StoreResult<i64> {
    let state = CommandState::Queued;
    connection
        .execute(
            "INSERT INTO commands (terminal, request, issued_by, issued_at, status, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (
                terminal.0,
                request_json(request)?,
                issued_by,
                at.millis(),
                command_status(&state),
                state_json(&state)?,
            ),
        )
        .context("queueing a command")?;
    Ok(connection.last_insert_rowid())
}

pub(super) fn claim_command(connection: &Connection, id: i64) -> StoreResult<Option<Command>> {
    let running = CommandState::Running;
    let sql = format!(
        "UPDATE commands SET status = ?2, state = ?3 WHERE id = ?1 AND status = 'queued'
         RETURNING {COMMAND_COLUMNS}"
    );
    let params = (id, command_status(&running), state_json(&running)?);
    query_first(connection, &sql, params, "claiming a command", command_row)
}

pub(super) fn queued_commands(
    connection: &Connection,
    terminal: Terminal,
) -> StoreResult<Vec<Command>> {
    let sql = format!(
        "SELECT {COMMAND_COLUMNS} FROM commands WHERE terminal = ?1 AND status = 'queued'
         ORDER BY id"
    );
    query_all(
        connection,
        &sql,
        [terminal.0],
        "listing queued commands",
        command_row,
    )
}

pub(super) fn finish_command(
    connection: &Connection,
    id: i64,
    state: &CommandState,
) -> StoreResult<()> {
    let changed = connection
        .execute(
            "UPDATE commands SET status = ?2, state = ?3 WHERE id = ?1",
            (id, command_status(state), state_json(state)?),
        )
        .context("finishing a command")?;
    found(changed, || format!("command {id}"))
}

pub(super) fn command(connection: &Connection, id: i64) -> StoreResult<Option<Command>> {
    let sql = format!("SELECT {COMMAND_COLUMNS} FROM commands WHERE id = ?1");
    query_first(connection, &sql, [id], "reading a command", command_row)
}

fn command_row(row: &rusqlite::Row<'_>) -> StoreResult<Command> {
    Ok(Command {
        id: column(row, "id")?,
        terminal: Terminal(narrow(column(row, "terminal")?, "commands.terminal")?),
        request: request_from_json(&column::<String>(row, "request")?)?,
        issued_by: column(row, "issued_by")?,
        issued_at: Timestamp(column(row, "issued_at")?),
        state: state_from_json(&column::<String>(row, "state")?)?,
    })
}

// --- Users, credentials, audit -------------------------------------------------------------

const USER_COLUMNS: &str = "id, name, role, password_hash, created";

pub(super) fn create_user(
    connection: &Connection,
    name: &str,
    role: Role,
    password_hash: &str,
    at: Timestamp,
) -> StoreResult<User> {
    let sql = format!(
        "INSERT INTO users (name, role, password_hash, created) VALUES (?1, ?2, ?3, ?4)
         RETURNING {USER_COLUMNS}"
    );
    let params = (name, role_text(role), password_hash, at.millis());
    let created = query_first(connection, &sql, params, "creating a user", user);
    match created {
        Err(StoreError::Conflict(_)) => Err(StoreError::Conflict(format!(
            "the user name {name:?} is taken"
        ))),
        other => other?.ok_or_else(|| StoreError::Corrupt(format!("user {name:?} vanished"))),
    }
}

pub(super) fn user_by_name(connection: &Connection, name: &str) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1");
    query_first(connection, &sql, [name], "reading a user", user)
}

pub(super) fn users(connection: &Connection) -> StoreResult<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
    query_all(connection, &sql, [], "listing users", user)
}

pub(super) fn update_user(
    connection: &Connection,
    id: i64,
    role: Option<Role>,
    password_hash: Option<&str>,
) -> StoreResult<User> {
    let sql = format!(
        "UPDATE users SET role = coalesce(?2, role), password_hash = coalesce(?3, password_hash)
         WHERE id = ?1 RETURNING {USER_COLUMNS}"
    );
    let params = (id, role.map(role_text), password_hash);
    query_first(connection, &sql, params, "updating a user", user)?
        .ok_or_else(|| StoreError::NotFound(format!("user {id}")))
}

/// Deletes a user; their credentials go with them (foreign key, `ON DELETE CASCADE`).
pub(super) fn delete_user(connection: &Connection, id: i64) -> StoreResult<()> {
    let changed = connection
        .execute("DELETE FROM users WHERE id = ?1", [id])
        .context("deleting a user")?;
    found(changed, || format!("user {id}"))
}

fn user(row: &rusqlite::Row<'_>) -> StoreResult<User> {
    Ok(User {
        id: column(row, "id")?,
        name: column(row, "name")?,
        role: role_from_text(&column::<String>(row, "role")?)?,
        password_hash: column(row, "password_hash")?,
        created: Timestamp(column(row, "created")?),
    })
}

const CREDENTIAL_COLUMNS: &str =
    "c.secret_hash, c.user_id, c.is_token, c.label, c.expires, c.created AS credential_created";

pub(super) fn insert_credential(
    connection: &mut Connection,
    credential: &Credential,
) -> StoreResult<()> {
    let doing = "storing a credential";
    let tx = connection.transaction().context(doing)?;
    let user: Option<i64> = tx
        .query_row(
            "SELECT id FROM users WHERE id = ?1",
            [credential.user_id],
            |r| r.get(0),
        )
        .optional()
        .context(doing)?;
    if user.is_none() {
        return Err(StoreError::NotFound(format!("user {}", credential.user_id)));
    }
    tx.execute(
        "INSERT INTO credentials (secret_hash, user_id, is_token, label, expires, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        (
            &credential.secret_hash,
            credential.user_id,
            credential.is_token,
            &credential.label,
            credential.expires.map(Timestamp::millis),
            credential.created.millis(),
        ),
    )
    .context(doing)?;
    tx.commit().context(doing)
}

pub(super) fn credential(
    connection: &Connection,
    secret_hash: &str,
    now: Timestamp,
) -> StoreResult<Option<(Credential, User)>> {
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS}, u.id, u.name, u.role, u.password_hash, u.created
         FROM credentials c JOIN users u ON u.id = c.user_id
         WHERE c.secret_hash = ?1 AND (c.expires IS NULL OR c.expires > ?2)"
    );
    query_first(
        connection,
        &sql,
        (secret_hash, now.millis()),
        "checking a credential",
        |row| Ok((credential_row(row)?, user(row)?)),
    )
}

pub(super) fn delete_credential(connection: &Connection, secret_hash: &str) -> StoreResult<()> {
    connection
        .execute(
            "DELETE FROM credentials WHERE secret_hash = ?1",
            [secret_hash],
        )
        .context("deleting a credential")?;
    Ok(())
}

pub(super) fn tokens_of(connection: &Connection, user_id: i64) -> StoreResult<Vec<Credential>> {
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials c WHERE c.user_id = ?1 AND c.is_token
         ORDER BY c.created, c.secret_hash"
    );
    query_all(
        connection,
        &sql,
        [user_id],
        "listing tokens",
        credential_row,
    )
}

fn credential_row(row: &rusqlite::Row<'_>) -> StoreResult<Credential> {
    Ok(Credential {
        secret_hash: column(row, "secret_hash")?,
        user_id: column(row, "user_id")?,
        is_token: column(row, "is_token")?,
        label: column(row, "label")?,
        expires: column::<Option<i64>>(row, "expires")?.map(Timestamp),
        created: Timestamp(column(row, "credential_created")?),
    })
}

pub(super) fn audit(connection: &Connection, entry: &AuditEntry) -> StoreResult<()> {
    connection
        .prepare_cached(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute((
                entry.at.millis(),
                &entry.actor,
                &entry.action,
                &entry.target,
                &entry.detail,
            ))
        })
        .context("appending to the audit log")?;
    Ok(())
}

/// The audit log in `[from, to)`, newest first (`limit` 0: no limit).
pub(super) fn audit_log(
    connection: &Connection,
    from: Timestamp,
    to: Timestamp,
    limit: u32,
) -> StoreResult<Vec<AuditEntry>> {
    let sql = "SELECT at, actor, action, target, detail FROM audit
               WHERE at >= ?1 AND at < ?2 ORDER BY at DESC, id DESC LIMIT ?3";
    let params = (from.millis(), to.millis(), limit_or_all(limit));
    query_all(connection, sql, params, "reading the audit log", |row| {
        Ok(AuditEntry {
            at: Timestamp(column(row, "at")?),
            actor: column(row, "actor")?,
            action: column(row, "action")?,
            target: column(row, "target")?,
            detail: column(row, "detail")?,
        })
    })
}

/// SQLite's `LIMIT` for "at most `limit`, 0 meaning all" (-1 is no limit).
fn limit_or_all(limit: u32) -> i64 {
    if limit == 0 {
        -1
    } else {
        i64::from(limit)
    }
}

fn found(changed: usize, what: impl FnOnce() -> String) -> StoreResult<()> {
    if changed == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}
