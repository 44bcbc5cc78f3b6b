//! What a write of one point means, checked before anything is sent anywhere. Pure.
//!
//! | point        | accepted words                        | action                            |
//! |--------------|---------------------------------------|-----------------------------------|
//! | CtrlHb       | any                                   | the EMS heartbeat (failsafe watch) |
//! | AlmRst       | 1                                     | `EmsCommand::AlarmReset`           |
//! | SetOp        | 1 CONNECT, 2 DISCONNECT               | `EmsCommand::SetOperation`         |
//! | SetInvState  | 1 stopped, 2 standby, 3 started       | `EmsCommand::SetInverterState`     |
//! | force charge | 0 off, 1 on                           | `EmsCommand::ForceCharge`          |
//! | unlock code  | printable ASCII, NUL padded           | unlock attempt                     |
//! | NW setting   | the table's length, range and kind    | `RackHandle::write`                |
//!
//! Anything else is 0x03 ILLEGAL DATA VALUE, with the reason for the log.

use bmslink_proto::WriteValue;
use tokio_modbus::ExceptionCode;

use super::access::unlock_text;
use super::map::{PointWrite, Target};
use super::settings;
use super::sunspec::Control;
use crate::site::EmsCommand;

/// What a checked write does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Records the EMS heartbeat; the value is kept for reads of CtrlHb.
    Heartbeat(u16),
    /// A command for the site.
    Command(EmsCommand),
    /// An unlock attempt with this code.
    Unlock(String),
    /// A setting for a rack's BMS.
    Setting {
        /// Rack index.
        rack: usize,
        /// The range-checked value.
        value: WriteValue,
    },
}

/// Why a write's value is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadWrite {
    /// The exception to answer.
    pub exception: ExceptionCode,
    /// Why, for the log.
    pub reason: String,
}

fn bad(reason: impl Into<String>) -> BadWrite {
    BadWrite {
        exception: ExceptionCode::IllegalDataValue,
        reason: reason.into(),
    }
}

/// Checks one point's words and says what the write does.
pub fn plan(write: &PointWrite) -> Result<Action, BadWrite> {
    let word = write.words.first().copied().unwrap_or(0);
    match write.target {
        Target::Control(control) => plan_control(control, word),
        Target::ForceCharge => match word {
            0 | 1 => Ok(Action::Command(EmsCommand::ForceCharge(word == 1))),
            _ => Err(bad(format!("force charge takes 0 or 1, not {word}"))),
        },
        Target::Unlock => unlock_text(&write.words)
            .map(Action::Unlock)
            .ok_or_else(|| bad("the unlock code must be printable ASCII, NUL padded")),
        Target::Setting { rack, point } => settings::write_value(point, &write.words)
            .map(|value| Action::Setting { rack, value })
            .map_err(|error| bad(error.to_string())),
    }
}

fn plan_control(control: Control, word: u16) -> Result<Action, BadWrite> {
    let command = match (control, word) {
        (Control::ControllerHeartbeat, _) => return Ok(Action::Heartbeat(word)),
        (Control::AlarmReset, 1) => EmsCommand::AlarmReset,
        (Control::SetOperation, 1 | 2) => EmsCommand::SetOperation { connect: word == 1 },
        (Control::SetInverterState, 1..=3) => EmsCommand::SetInverterState(word),
        (Control::AlarmReset, _) => return Err(bad(format!("AlmRst takes 1, not {word}"))),
        (Control::SetOperation, _) => {
            return Err(bad(format!(
                "SetOp takes 1 (connect) or 2 (disconnect), not {word}"
            )))
        }
        (Control::SetInverterState, _) => {
            return Err(bad(format!("SetInvState takes 1, 2 or 3, not {word}")))
        }
    };
    Ok(Action::Command(command))
}
