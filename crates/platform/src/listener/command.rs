//! Remote commands on a terminal's session: a [`CommandRequest`] from the store becomes
//! session operations, and the session's events become the command's result.
//!
//! - `ReadAll` is one read-all; the result is `{"values": {name: {value, unit, raw}}}` in
//!   engineering units (see [`values`](super::values)).
//! - `Write` checks every value against the identifier table **before anything is sent**: an
//!   unknown name, a value out of range or of the wrong kind, or a password longer than the
//!   10 bytes of 0xB2 fails the whole command and nothing reaches the BMS (a request with a
//!   typo is never half applied). Then each setting is one session write (read old value,
//!   pair code with the password, write, read back), in the order given.
//! - The result of a write lists every setting: `identifier`, `requested` (the text given),
//!   `written` (the value as encoded), `old`, `read_back`, `ok` and `error`. The command is
//!   `Done` when at least one setting was applied (`result.ok` tells whether all were) and
//!   `Failed` when none was, with every setting's error in the reason: a wrong password makes
//!   a BMS ignore the write, which shows as no reply to the write stage.

use std::time::Duration;

use bmslink_core::session::{Event, Operation, OperationId, Session};
use bmslink_proto::message::PASSWORD_LEN;
use bmslink_proto::{Body, Identifier, Message, WriteValue};
use serde_json::{json, Value as Json};

use crate::model::{CommandRequest, CommandState};
use crate::values::{field_json, info_json};

/// A command checked and ready to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Read every identifier.
    ReadAll,
    /// Write these settings, in order.
    Write {
        /// (text as requested, encoded value).
        settings: Vec<(String, WriteValue)>,
        /// The 0xB2 password, NUL padded.
        password: Option<[u8; PASSWORD_LEN]>,
    },
}

/// Checks a request against the identifier table; `Err` with every problem found.
pub(crate) fn plan(request: &CommandRequest) -> Result<Plan, String> {
    match request {
        CommandRequest::ReadAll => Ok(Plan::ReadAll),
        CommandRequest::Write { values, password } => plan_write(values, password.as_deref()),
    }
}

fn plan_write(values: &[(String, String)], password: Option<&str>) -> Result<Plan, String> {
    if values.is_empty() {
        return Err("nothing to write: the request names no setting".to_string());
    }
    let mut problems = Vec::new();
    let mut settings = Vec::new();
    for (name, text) in values {
        match encode(name, text) {
            Ok(value) => settings.push((text.clone(), value)),
            Err(problem) => problems.push(problem),
        }
    }
    let password = match password.map(password_bytes).transpose() {
        Ok(password) => password,
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    if !problems.is_empty() {
        return Err(format!("nothing was sent: {}", problems.join("; ")));
    }
    Ok(Plan::Write { settings, password })
}

fn encode(name: &str, text: &str) -> Result<WriteValue, String> {
    let id = Identifier::lookup(name).ok_or_else(|| format!("{name}: no such identifier"))?;
    // The error names the identifier and, for numbers, the value as understood.
    WriteValue::parse(id, text).map_err(|error| format!("{error} (given {text:?})"))
}

fn password_bytes(password: &str) -> Result<[u8; PASSWORD_LEN], String> {
    let bytes = password.as_bytes();
    if bytes.len() > PASSWORD_LEN || !password.is_ascii() {
        return Err(format!(
            "the password must be ASCII of at most {PASSWORD_LEN} characters"
        ));
    }
    let mut padded = [0u8; PASSWORD_LEN];
    padded[..bytes.len()].copy_from_slice(bytes);
    Ok(padded)
}

/// A short description for logs ("read all", "write cell_over_voltage_protection = 3.60").
pub(crate) fn describe(plan: &Plan) -> String {
    match plan {
        Plan::ReadAll => "read all".to_string(),
        Plan::Write { settings, .. } => {
            let list: Vec<String> = settings
                .iter()
                .map(|(text, value)| format!("{} = {text}", value.id().name()))
                .collect();
            format!("write {}", list.join(", "))
        }
    }
}

/// How one setting of a write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StepOutcome {
    Written {
        old: Option<Vec<u8>>,
        read_back: Option<Vec<u8>>,
    },
    Failed(String),
}

#[derive(Clone, Debug)]
struct Step {
    requested: String,
    value: WriteValue,
    operation: OperationId,
    outcome: Option<StepOutcome>,
}

#[derive(Clone, Debug)]
enum Work {
    ReadAll {
        operation: OperationId,
        outcome: Option<Result<Json, String>>,
    },
    Write {
        steps: Vec<Step>,
    },
}

/// A command running on a terminal's session.
#[derive(Clone, Debug)]
pub(crate) struct RunningCommand {
    /// The store's command id.
    pub id: i64,
    /// When it fails for taking too long.
    pub deadline: tokio::time::Instant,
    work: Work,
}

impl RunningCommand {
    /// Submits the plan's operations to `session`.
    pub fn start(
        id: i64,
        plan: Plan,
        session: &mut Session,
        deadline: tokio::time::Instant,
    ) -> RunningCommand {
        let work = match plan {
            Plan::ReadAll => Work::ReadAll {
                operation: session.submit(Operation::ReadAll),
                outcome: None,
            },
            Plan::Write { settings, password } => Work::Write {
                steps: settings
                    .into_iter()
                    .map(|(requested, value)| Step {
                        requested,
                        operation: session.submit(Operation::Write { value, password }),
                        value,
                        outcome: None,
                    })
                    .collect(),
            },
        };
        RunningCommand { id, deadline, work }
    }

    /// Takes a session event if it reports on one of this command's operations.
    pub fn handle(&mut self, event: &Event) -> bool {
        match &mut self.work {
            Work::ReadAll { operation, outcome } => match event {
                Event::Data {
                    operation: op,
                    frame,
                } if op == operation => {
                    *outcome = Some(read_all_result(frame));
                    true
                }
                Event::Failed {
                    operation: op,
                    error,
                } if op == operation => {
                    *outcome = Some(Err(error.to_string()));
                    true
                }
                _ => false,
            },
            Work::Write { steps } => handle_step(steps, event),
        }
    }

    /// The final state, once every operation has reported.
    pub fn outcome(&self) -> Option<CommandState> {
        match &self.work {
            Work::ReadAll { outcome, .. } => outcome.as_ref().map(|outcome| match outcome {
                Ok(result) => CommandState::Done {
                    result: result.clone(),
                },
                Err(reason) => CommandState::Failed {
                    reason: reason.clone(),
                },
            }),
            Work::Write { steps } if steps.iter().all(|s| s.outcome.is_some()) => {
                Some(write_outcome(steps))
            }
            Work::Write { .. } => None,
        }
    }

    /// The state of a command that ran out of time.
    pub fn timed_out(&self, limit: Duration) -> CommandState {
        let progress = match &self.work {
            Work::ReadAll { .. } => String::new(),
            Work::Write { steps } => {
                let finished = steps.iter().filter(|s| s.outcome.is_some()).count();
                format!(" ({finished} of {} settings finished)", steps.len())
            }
        };
        CommandState::Failed {
            reason: format!(
                "no result within {} s{progress}; the terminal may be unreachable",
                limit.as_secs()
            ),
        }
    }
}

fn handle_step(steps: &mut [Step], event: &Event) -> bool {
    let (operation, outcome) = match event {
        Event::Written {
            operation,
            old,
            read_back,
            ..
        } => (
            operation,
            StepOutcome::Written {
                old: old.clone(),
                read_back: read_back.clone(),
            },
        ),
        Event::Failed { operation, error } => (operation, StepOutcome::Failed(error.to_string())),
        _ => return false,
    };
    match steps.iter_mut().find(|s| s.operation == *operation) {
        Some(step) => {
            step.outcome = Some(outcome);
            true
        }
        None => false,
    }
}

fn read_all_result(frame: &[u8]) -> Result<Json, String> {
    let message = Message::parse(frame).map_err(|e| format!("malformed read-all reply: {e}"))?;
    match message.body {
        Body::Data(info) => Ok(json!({ "values": info_json(&info) })),
        _ => Err("the read-all reply carries no data".to_string()),
    }
}

fn write_outcome(steps: &[Step]) -> CommandState {
    let applied = steps
        .iter()
        .filter(|s| matches!(s.outcome, Some(StepOutcome::Written { .. })))
        .count();
    if applied == 0 {
        let errors: Vec<String> = steps
            .iter()
            .map(|s| {
                format!(
                    "{}: {}",
                    s.value.id().name(),
                    step_error(s).unwrap_or_default()
                )
            })
            .collect();
        return CommandState::Failed {
            reason: format!("no setting was applied: {}", errors.join("; ")),
        };
    }
    let settings: Vec<Json> = steps.iter().map(step_json).collect();
    CommandState::Done {
        result: json!({ "ok": applied == steps.len(), "settings": settings }),
    }
}

fn step_error(step: &Step) -> Option<String> {
    match &step.outcome {
        Some(StepOutcome::Failed(reason)) => Some(reason.clone()),
        Some(StepOutcome::Written { .. }) => None,
        None => Some("not finished".to_string()),
    }
}

fn step_json(step: &Step) -> Json {
    let id = step.value.id();
    let (old, read_back) = match &step.outcome {
        Some(StepOutcome::Written { old, read_back }) => (
            field_json(id, old.as_deref()),
            field_json(id, read_back.as_deref()),
        ),
        _ => (Json::Null, Json::Null),
    };
    let error = step_error(step);
    json!({
        "identifier": id.name(),
        "code": format!("0x{:02X}", id.code()),
        "requested": step.requested,
        "written": field_json(id, Some(step.value.bytes())),
        "old": old,
        "read_back": read_back,
        "ok": error.is_none(),
        "error": error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bmslink_core::responder::BmsResponder;
    use bmslink_core::session::SessionConfig;
    use bmslink_core::time::Instant;

    /// A BMS with two settings and the password "123456".
    fn responder() -> BmsResponder {
        let mut bms = BmsResponder::new();
        bms.set(Identifier::CellOverVoltageProtection, &[0x0E, 0x42]); // 3.650 V
        bms.set(Identifier::BalancingSwitch, &[1]);
        bms.set(Identifier::Password, b"123456\0\0\0\0");
        bms
    }

    /// Steps the session and the BMS in virtual time until the command has an outcome.
    fn run(command: &mut RunningCommand, session: &mut Session, bms: &mut BmsResponder) {
        let mut now = Instant::ZERO;
        for _ in 0..1000 {
            while let Some(request) = session.poll_transmit(now).map(<[u8]>::to_vec) {
                if let (Some(reply), _) = bms.handle_request(now, &request) {
                    session.handle_input(now, &reply);
                }
            }
            while let Some(event) = session.poll_event() {
                command.handle(&event);
            }
            if command.outcome().is_some() {
                return;
            }
            now = session
                .poll_timeout()
                .unwrap_or(now)
                .max(now + Duration::from_millis(1));
            session.handle_timeout(now);
        }
    }

    fn start(request: &CommandRequest, session: &mut Session) -> RunningCommand {
        let deadline = tokio::time::Instant::now();
        RunningCommand::start(1, plan(request).unwrap(), session, deadline)
    }

    fn write(values: &[(&str, &str)], password: Option<&str>) -> CommandRequest {
        CommandRequest::Write {
            values: values
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            password: password.map(str::to_string),
        }
    }

    #[test]
    fn an_invalid_value_fails_the_whole_write_before_anything_is_sent() {
        let request = write(
            &[
                ("cell_over_voltage_protection", "3.60"),
                ("cell_under_voltage_delay", "600"),
                ("no_such_setting", "1"),
            ],
            Some("123456"),
        );
        let reason = plan(&request).err().unwrap_or_default();
        assert!(reason.starts_with("nothing was sent"), "{reason}");
        assert!(reason.contains("cell_under_voltage_delay"), "{reason}");
        assert!(
            reason.contains("no_such_setting: no such identifier"),
            "{reason}"
        );
        let long = write(&[("balancing_switch", "on")], Some("12345678901"));
        assert!(plan(&long).is_err());
    }

    #[test]
    fn a_valid_write_is_planned_with_the_padded_password() {
        let request = write(&[("0x90", "3.60 V")], Some("123456"));
        let Ok(Plan::Write { settings, password }) = plan(&request) else {
            unreachable!("the request is valid");
        };
        assert_eq!(settings.len(), 1);
        assert_eq!(settings[0].1.bytes(), &[0x0E, 0x10]);
        assert_eq!(password, Some(*b"123456\0\0\0\0"));
    }

    #[test]
    fn a_write_reports_old_value_and_read_back_per_setting() {
        let mut session = Session::new(SessionConfig::default()).unwrap();
        let mut bms = responder();
        let request = write(
            &[
                ("cell_over_voltage_protection", "3.600"),
                ("balancing_switch", "off"),
            ],
            Some("123456"),
        );
        let mut command = start(&request, &mut session);
        run(&mut command, &mut session, &mut bms);
        let Some(CommandState::Done { result }) = command.outcome() else {
            panic!("{:?}", command.outcome());
        };
        assert_eq!(result["ok"], true);
        let first = &result["settings"][0];
        assert_eq!(first["identifier"], "cell_over_voltage_protection");
        assert_eq!(first["code"], "0x90");
        assert_eq!(first["old"]["value"], 3.65);
        assert_eq!(first["read_back"]["value"], 3.6);
        assert_eq!(result["settings"][1]["read_back"]["value"], false);
        assert_eq!(bms.get(Identifier::BalancingSwitch), Some(&[0u8][..]));
    }

    #[test]
    fn a_write_with_a_wrong_password_fails_and_changes_nothing() {
        let mut session = Session::new(SessionConfig::default()).unwrap();
        let mut bms = responder();
        let request = write(&[("cell_over_voltage_protection", "3.600")], Some("000000"));
        let mut command = start(&request, &mut session);
        run(&mut command, &mut session, &mut bms);
        let Some(CommandState::Failed { reason }) = command.outcome() else {
            panic!("{:?}", command.outcome());
        };
        assert!(reason.contains("no reply to the write"), "{reason}");
        assert_eq!(
            bms.get(Identifier::CellOverVoltageProtection),
            Some(&[0x0E, 0x42][..])
        );
    }

    #[test]
    fn a_read_all_returns_every_value_in_engineering_units() {
        let mut session = Session::new(SessionConfig::default()).unwrap();
        let mut bms = responder();
        let mut command = start(&CommandRequest::ReadAll, &mut session);
        run(&mut command, &mut session, &mut bms);
        let Some(CommandState::Done { result }) = command.outcome() else {
            panic!("{:?}", command.outcome());
        };
        let values = &result["values"];
        assert_eq!(values["cell_over_voltage_protection"]["value"], 3.65);
        assert_eq!(values["cell_over_voltage_protection"]["unit"], "V");
        assert_eq!(values["balancing_switch"]["value"], true);
        let timed_out = command.timed_out(Duration::from_secs(30));
        assert!(matches!(timed_out, CommandState::Failed { reason } if reason.contains("30 s")));
    }
}
