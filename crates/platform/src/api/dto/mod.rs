//! What the API sends and accepts, as JSON, with their OpenAPI schemas. These are the
//! API-facing forms of the [`model`](crate::model) types: times are milliseconds since the Unix
//! epoch (UTC), terminals are their number in 6 hex digits (`0003E8`, as in paths), enums are
//! lower-case words, and secrets never leave except once, on creation.
//!
//! - [`terminals`]: the fleet, terminals, telemetry, history and alarms;
//! - [`settings`]: remote commands, settings writes and their results, the settings schema;
//! - [`users`]: users, logins, tokens and the audit log.

mod settings;
mod terminals;
mod users;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{Registration, Resolution, Role};

pub use settings::*;
pub use terminals::*;
pub use users::*;

/// A user's role: viewer < operator < admin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Reads everything, changes nothing.
    Viewer,
    /// May also change settings, acknowledge alarms and approve terminals.
    Operator,
    /// May also manage users and read the audit log.
    Admin,
}

impl From<Role> for RoleName {
    fn from(role: Role) -> RoleName {
        match role {
            Role::Viewer => RoleName::Viewer,
            Role::Operator => RoleName::Operator,
            Role::Admin => RoleName::Admin,
        }
    }
}

impl From<RoleName> for Role {
    fn from(role: RoleName) -> Role {
        match role {
            RoleName::Viewer => Role::Viewer,
            RoleName::Operator => Role::Operator,
            RoleName::Admin => Role::Admin,
        }
    }
}

/// Whether a terminal may upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationName {
    /// Its uploads are stored.
    Approved,
    /// Waiting for an operator's decision.
    Pending,
    /// Refused: its connections are closed.
    Rejected,
}

impl From<Registration> for RegistrationName {
    fn from(registration: Registration) -> RegistrationName {
        match registration {
            Registration::Approved => RegistrationName::Approved,
            Registration::Pending => RegistrationName::Pending,
            Registration::Rejected => RegistrationName::Rejected,
        }
    }
}

impl From<RegistrationName> for Registration {
    fn from(registration: RegistrationName) -> Registration {
        match registration {
            RegistrationName::Approved => Registration::Approved,
            RegistrationName::Pending => Registration::Pending,
            RegistrationName::Rejected => Registration::Rejected,
        }
    }
}

/// How finely a history is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResolutionName {
    /// Every stored upload (kept for the raw retention period).
    Raw,
    /// 1-minute roll-ups.
    Minute,
    /// 1-hour roll-ups.
    Hour,
}

impl From<ResolutionName> for Resolution {
    fn from(resolution: ResolutionName) -> Resolution {
        match resolution {
            ResolutionName::Raw => Resolution::Raw,
            ResolutionName::Minute => Resolution::Minute,
            ResolutionName::Hour => Resolution::Hour,
        }
    }
}
