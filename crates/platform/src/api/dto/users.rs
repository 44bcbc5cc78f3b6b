//! Users, logins, API tokens, the audit log and health.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::RoleName;
use crate::api::auth::token_id;
use crate::model::{AuditEntry, Credential, User};

/// A user (never with the password hash).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct UserView {
    /// User id.
    pub id: i64,
    /// Login name.
    pub name: String,
    /// Role.
    pub role: RoleName,
    /// Created, ms since the epoch.
    pub created: i64,
}

impl From<&User> for UserView {
    fn from(user: &User) -> UserView {
        UserView {
            id: user.id,
            name: user.name.clone(),
            role: user.role.into(),
            created: user.created.millis(),
        }
    }
}

/// A login.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// A successful login (the session is in the `bmslink_session` cookie).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Who logged in.
    pub user: UserView,
    /// When the session ends, ms since the epoch.
    pub expires: i64,
}

/// The caller.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Me {
    /// The user.
    pub user: UserView,
    /// `session` or `token`.
    pub via: String,
    /// When the credential ends, ms since the epoch (`null`: a token without end).
    pub expires: Option<i64>,
}

/// A password change of one's own.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password.
    #[schema(max_length = 1024)]
    pub current_password: String,
    /// The new one (10 characters to 1024 bytes).
    #[schema(min_length = 10, max_length = 1024)]
    pub new_password: String,
}

/// A new user.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name: 1 to 64 characters, no spaces or control characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub name: String,
    /// Role.
    pub role: RoleName,
    /// Password (10 characters to 1024 bytes).
    #[schema(min_length = 10, max_length = 1024)]
    pub password: String,
}

/// Changes to a user: a role, a password, or both (the document says `minProperties: 1`).
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// New role.
    #[schema(nullable = false)]
    pub role: Option<RoleName>,
    /// New password (10 characters to 1024 bytes).
    #[schema(nullable = false, min_length = 10, max_length = 1024)]
    pub password: Option<String>,
}

/// A new API token.
#[derive(Clone, Debug, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What it is for ("grafana"): 1 to 64 printable characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f]([^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f])?$"
    )]
    pub label: String,
    /// Days until it stops working (1 to 3650); without: it works until revoked.
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<f64>,
}

/// An API token (without its secret).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct TokenView {
    /// Token id (for revoking).
    pub id: String,
    /// What it is for.
    pub label: String,
    /// Created, ms since the epoch.
    pub created: i64,
    /// When it stops working, ms since the epoch (`null`: when revoked).
    pub expires: Option<i64>,
}

impl From<&Credential> for TokenView {
    fn from(credential: &Credential) -> TokenView {
        TokenView {
            id: token_id(&credential.secret_hash).to_string(),
            label: credential.label.clone(),
            created: credential.created.millis(),
            expires: credential.expires.map(|t| t.millis()),
        }
    }
}

/// A token just created: the only time its secret is shown.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub token: TokenView,
    /// The secret, for `Authorization: Bearer <secret>`. Shown once; only its hash is kept.
    pub secret: String,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AuditView {
    /// When, ms since the epoch.
    pub at: i64,
    /// Who (`-` for unknown names and the command line).
    pub actor: String,
    /// What: `login`, `login_failed`, `logout`, `write_settings`, `ack_alarm`, ...
    pub action: String,
    /// On what.
    pub target: String,
    /// Details, with the client address.
    pub detail: String,
}

impl From<&AuditEntry> for AuditView {
    fn from(entry: &AuditEntry) -> AuditView {
        AuditView {
            at: entry.at.millis(),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            detail: entry.detail.clone(),
        }
    }
}

/// The service's health.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// bmslink version.
    pub version: String,
}
