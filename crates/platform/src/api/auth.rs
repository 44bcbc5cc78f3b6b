//! Who is calling, and may they: passwords, sessions, API tokens, roles and the login rate
//! limit.
//!
//! - Passwords are stored as argon2id PHC strings (the `argon2` crate's default parameters),
//!   hashed and verified on the blocking pool. A login for an unknown name verifies against a
//!   dummy hash, so both failures cost the same time.
//! - A session is a random 32-byte secret in the `bmslink_session` cookie (HttpOnly,
//!   SameSite=Strict, Path=/, Secure when configured, Max-Age = the session lifetime); an API
//!   token is a random 32-byte secret sent as `Authorization: Bearer bmslink_<hex>`. The store
//!   keeps only the SHA-256 of a secret ([`Credential::secret_hash`]), so a database leak gives
//!   no working credential. A token's public id is the first 16 hex digits of that hash.
//! - Roles are ordered viewer < operator < admin. A handler states the least role it needs by
//!   taking [`Viewer`], [`Operator`] or [`Admin`] as an argument: no credential is 401, a
//!   working one with too small a role is 403 (and is audited).
//! - Failed logins are slowed (a fixed delay on every failure) and limited per client address
//!   ([`LoginLimiter`]): past the limit, logins from that address are refused with 429 and
//!   `Retry-After` until the window has passed.
//! - There is no default password: the first admin comes from [`create_admin`], which prints
//!   nothing itself and returns a generated password for the `bmslink platform create-admin`
//!   command to show once.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use super::error::{ApiError, ApiResult};
use super::extract::client_address;
use super::{ApiConfig, ApiState};
use crate::model::{AuditEntry, Credential, Role, Timestamp, User};
use crate::store::{Store, StoreError};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "bmslink_session";

/// Prefix of API token secrets (so that secret scanners and people recognise them).
pub const TOKEN_PREFIX: &str = "bmslink_";

/// Bytes of randomness in a session or token secret.
const SECRET_BYTES: usize = 32;

/// Longest password accepted (longer input is refused before hashing).
pub(crate) const MAX_PASSWORD_LEN: usize = 1024;

/// Shortest password a user may set.
pub(crate) const MIN_PASSWORD_LEN: usize = 10;

/// Longest user name.
pub(crate) const MAX_NAME_LEN: usize = 64;

// --- Callers and roles ---------------------------------------------------------------------

/// An authenticated request: the user (with their current role), the credential used, and
/// where the request came from.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub user: User,
    pub credential: Credential,
    pub address: String,
}

impl Caller {
    /// The name the audit log records.
    pub fn actor(&self) -> String {
        self.user.name.clone()
    }

    /// Whether this caller may see the BMS parameter-change password (0xB2): operators and
    /// admins, who also write settings with it; viewers see it masked.
    pub fn sees_device_password(&self) -> bool {
        self.user.role >= Role::Operator
    }
}

/// The credential secret a request presents: a bearer token, else the session cookie.
fn presented_secret(headers: &HeaderMap) -> ApiResult<Option<String>> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let text = value.to_str().unwrap_or_default();
        let mut words = text.split_whitespace();
        return match (words.next(), words.next(), words.next()) {
            (Some(scheme), Some(secret), None) if scheme.eq_ignore_ascii_case("bearer") => {
                Ok(Some(secret.to_string()))
            }
            _ => Err(ApiError::unauthorized(
                "the Authorization header must be \"Bearer <token>\"",
            )),
        };
    }
    Ok(session_from_cookies(headers))
}

/// The session secret from the `Cookie` headers, if any.
pub(crate) fn session_from_cookies(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| !value.is_empty())
}

/// Authenticates a request: 401 without a working credential.
pub(crate) async fn authenticate<S: Store>(
    parts: &Parts,
    state: &ApiState<S>,
) -> ApiResult<Caller> {
    let Some(secret) = presented_secret(&parts.headers)? else {
        return Err(ApiError::unauthorized(
            "authentication required: log in (POST /api/login) or send an API token as \
             \"Authorization: Bearer <token>\"",
        ));
    };
    let found = state
        .store
        .credential(secret_hash(&secret), Timestamp::now())
        .await?;
    let Some((credential, user)) = found else {
        return Err(ApiError::unauthorized(
            "the session has expired or the token is unknown or revoked: log in again",
        ));
    };
    let address = client_address(parts, state.config.trust_forwarded_for).0;
    Ok(Caller {
        user,
        credential,
        address,
    })
}

/// Authenticates and checks the role; a 403 is audited.
async fn authorize<S: Store>(
    parts: &Parts,
    state: &ApiState<S>,
    needed: Role,
) -> ApiResult<Caller> {
    let caller = authenticate(parts, state).await?;
    if caller.user.role >= needed {
        return Ok(caller);
    }
    let entry = AuditEntry {
        at: Timestamp::now(),
        actor: caller.actor(),
        action: "forbidden".to_string(),
        target: format!("{} {}", parts.method, full_path(parts)),
        detail: format!(
            "role {} < {}; from {}",
            role_name(caller.user.role),
            role_name(needed),
            caller.address
        ),
    };
    if let Err(error) = state.store.audit(entry).await {
        tracing::warn!(%error, "could not audit a refused request");
    }
    Err(ApiError::forbidden(format!(
        "this needs the {} role; you are {}",
        role_name(needed),
        role_name(caller.user.role)
    ))
    .with_detail(serde_json::json!({
        "required": role_name(needed),
        "role": role_name(caller.user.role),
    })))
}

/// The request's path as the client sent it (a nested router sees it without `/api`).
fn full_path(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<OriginalUri>()
        .map_or(parts.uri.path(), |original| original.path())
}

/// A role's lower-case name.
pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        pub(crate) struct $name(pub Caller);

        impl<S: Store> FromRequestParts<ApiState<S>> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &ApiState<S>,
            ) -> Result<Self, Self::Rejection> {
                authorize(parts, state, $role).await.map($name)
            }
        }
    };
}

role_extractor!(
    /// Any authenticated user (viewer or above).
    Viewer,
    Role::Viewer
);
role_extractor!(
    /// An operator or admin.
    Operator,
    Role::Operator
);
role_extractor!(
    /// An admin.
    Admin,
    Role::Admin
);

// --- Passwords -----------------------------------------------------------------------------

/// Hashes a password (argon2id, default parameters, random salt) on the blocking pool.
pub(crate) async fn hash_password(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|error| format!("password hashing stopped: {error}"))?
}

fn hash_now(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| format!("password hashing failed: {error}"))
}

/// Verifies a password against a PHC string on the blocking pool; without one (an unknown
/// user) it verifies against a dummy hash, so the answer takes as long either way.
pub(crate) async fn verify_password(password: String, hash: Option<String>) -> bool {
    let verified = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_now(&password, &hash),
        None => {
            let _ = verify_now(&password, dummy_hash());
            false
        }
    })
    .await;
    verified.unwrap_or(false)
}

fn verify_now(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => {
            // An unreadable stored hash: fail, in the same time as a real check.
            let _ = verify_now(password, dummy_hash());
            false
        }
    }
}

/// A hash of a random password nobody knows, made once.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_now(&generate_password()).unwrap_or_default())
}

/// Checks a password a user wants to set.
pub(crate) fn check_new_password(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(format!(
            "a password needs at least {MIN_PASSWORD_LEN} characters (this one has {chars})"
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "a password has at most {MAX_PASSWORD_LEN} bytes (this one has {})",
            password.len()
        ));
    }
    Ok(())
}

/// Checks a user name: 1 to 64 characters, no spaces or control characters.
pub(crate) fn check_user_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_LEN {
        return Err(format!(
            "a user name has 1 to {MAX_NAME_LEN} characters (this one has {chars})"
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a user name has no spaces or control characters".to_string());
    }
    Ok(())
}

/// A random password of 24 characters from a 32-letter alphabet without look-alikes (120
/// bits), in groups of six: `k3x9qa-...`.
pub fn generate_password() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    let letters: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    letters
        .chunks(6)
        .map(|group| group.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

// --- Secrets and cookies -------------------------------------------------------------------

/// A new random secret (64 hex digits, after `prefix`).
pub(crate) fn new_secret(prefix: &str) -> ApiResult<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|error| ApiError::internal(format!("no randomness for a secret: {error}")))?;
    Ok(format!("{prefix}{}", hex(&bytes)))
}

/// SHA-256 of a secret, hex: what the store keeps.
pub(crate) fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A token's public id: the first 16 hex digits of its secret's hash.
pub(crate) fn token_id(secret_hash: &str) -> &str {
    secret_hash.get(..16).unwrap_or(secret_hash)
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// The `Set-Cookie` value of a new session.
pub(crate) fn session_cookie(secret: &str, config: &ApiConfig) -> ApiResult<HeaderValue> {
    let max_age = config.session_lifetime.as_secs();
    cookie_header(format!(
        "{SESSION_COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}",
        secure(config)
    ))
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn expired_cookie(config: &ApiConfig) -> ApiResult<HeaderValue> {
    cookie_header(format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        secure(config)
    ))
}

fn secure(config: &ApiConfig) -> &'static str {
    if config.secure_cookies {
        "; Secure"
    } else {
        ""
    }
}

fn cookie_header(text: String) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(&text)
        .map_err(|error| ApiError::internal(format!("cookie header: {error}")))
}

// --- Login rate limit ----------------------------------------------------------------------

/// Failed logins per client address within a window; past the limit, logins from the address
/// are refused until the window (counted from its first failure) has passed. At most
/// [`LoginLimiter::MAX_ADDRESSES`] addresses are tracked at once (expired ones are dropped
/// first); addresses beyond that are only slowed by the failure delay.
#[derive(Debug)]
pub(crate) struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginLimiter {
    /// Most addresses tracked at once.
    pub const MAX_ADDRESSES: usize = 10_000;

    /// A limiter allowing `max_failures` per `window`.
    pub fn new(max_failures: u32, window: Duration) -> LoginLimiter {
        LoginLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry after)` if `address` is over the limit at `now`.
    pub fn check(&self, address: &str, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match failures.get(address) {
            Some(&(since, count)) if count >= self.max_failures => {
                let elapsed = now.saturating_duration_since(since);
                match self.window.checked_sub(elapsed) {
                    Some(left) if !left.is_zero() => Err(left),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure of `address` at `now`.
    pub fn failed(&self, address: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= Self::MAX_ADDRESSES {
            let window = self.window;
            failures.retain(|_, (since, _)| now.saturating_duration_since(*since) < window);
        }
        let fresh = failures.len() < Self::MAX_ADDRESSES;
        match failures.get_mut(address) {
            Some((since, count)) if now.saturating_duration_since(*since) < self.window => {
                *count = count.saturating_add(1);
            }
            Some(entry) => *entry = (now, 1),
            None if fresh => {
                failures.insert(address.to_string(), (now, 1));
            }
            None => {}
        }
    }

    /// Forgets `address`'s failures (after a successful login).
    pub fn succeeded(&self, address: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.remove(address);
    }
}

// --- The first admin -----------------------------------------------------------------------

/// Why [`create_admin`] refused or failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateAdminError {
    /// The name is not a valid user name (empty, too long, spaces).
    InvalidName(String),
    /// A user of that name exists already (whatever their role): nothing was changed.
    NameTaken(String),
    /// The store refused.
    Store(StoreError),
    /// The password could not be hashed.
    Hash(String),
    /// A chosen password is not acceptable (too short, too long).
    InvalidPassword(String),
}

impl fmt::Display for CreateAdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateAdminError::InvalidName(why) => write!(f, "invalid user name: {why}"),
            CreateAdminError::NameTaken(name) => write!(
                f,
                "a user named {name:?} exists already; choose another name (an admin can \
                 change passwords in the API)"
            ),
            CreateAdminError::Store(error) => write!(f, "{error}"),
            CreateAdminError::Hash(why) => f.write_str(why),
            CreateAdminError::InvalidPassword(why) => write!(f, "invalid password: {why}"),
        }
    }
}

impl std::error::Error for CreateAdminError {}

/// Creates an admin user named `name` with a generated password and returns that password,
/// which is stored only as an argon2 hash: show it once (`bmslink platform create-admin
/// NAME` prints it) and let the admin change it (`PUT /api/me/password`). Refuses a name that
/// exists. The creation is recorded in the audit log (actor `-`, action `create_user`).
///
/// This is how a platform gets its first user: there is no default password.
pub async fn create_admin<S: Store>(store: &S, name: &str) -> Result<String, CreateAdminError> {
    check_user_name(name).map_err(CreateAdminError::InvalidName)?;
    let taken = store
        .user_by_name(name.to_string())
        .await
        .map_err(CreateAdminError::Store)?;
    if taken.is_some() {
        return Err(CreateAdminError::NameTaken(name.to_string()));
    }
    let password = generate_password();
    let hash = hash_password(password.clone())
        .await
        .map_err(CreateAdminError::Hash)?;
    let at = Timestamp::now();
    match store
        .create_user(name.to_string(), Role::Admin, hash, at)
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => return Err(CreateAdminError::NameTaken(name.into())),
        Err(error) => return Err(CreateAdminError::Store(error)),
    }
    let entry = AuditEntry {
        at,
        actor: "-".to_string(),
        action: "create_user".to_string(),
        target: format!("user {name}"),
        detail: "role admin; by bmslink platform create-admin".to_string(),
    };
    store.audit(entry).await.map_err(CreateAdminError::Store)?;
    Ok(password)
}

/// What [`ensure_admin`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminAccount {
    /// The user was created.
    Created,
    /// The user existed: it is now an admin with the given password.
    PasswordReset,
}

/// Makes `name` an admin whose password is `password` (checked like any new password):
/// created if missing, else given that password and the admin role. For a platform whose
/// operator holds the data directory and wants a known login at every start (`bmslink demo`
/// prints it), not for a shared one: an existing user's password is replaced. Recorded in the
/// audit log (actor `-`, action `create_user` or `update_user`).
pub async fn ensure_admin<S: Store>(
    store: &S,
    name: &str,
    password: &str,
) -> Result<AdminAccount, CreateAdminError> {
    check_user_name(name).map_err(CreateAdminError::InvalidName)?;
    check_new_password(password).map_err(CreateAdminError::InvalidPassword)?;
    let hash = hash_password(password.to_string())
        .await
        .map_err(CreateAdminError::Hash)?;
    let existing = store
        .user_by_name(name.to_string())
        .await
        .map_err(CreateAdminError::Store)?;
    let (outcome, action) = match existing {
        Some(user) => {
            store
                .update_user(user.id, Some(Role::Admin), Some(hash))
                .await
                .map_err(CreateAdminError::Store)?;
            (AdminAccount::PasswordReset, "update_user")
        }
        None => {
            store
                .create_user(name.to_string(), Role::Admin, hash, Timestamp::now())
                .await
                .map_err(CreateAdminError::Store)?;
            (AdminAccount::Created, "create_user")
        }
    };
    let entry = AuditEntry {
        at: Timestamp::now(),
        actor: "-".to_string(),
        action: action.to_string(),
        target: format!("user {name}"),
        detail: "role admin, password set at start".to_string(),
    };
    store.audit(entry).await.map_err(CreateAdminError::Store)?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn secrets_are_random_hex_and_only_their_hash_is_kept() {
        let a = new_secret(TOKEN_PREFIX).unwrap();
        let b = new_secret("").unwrap();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(b.len(), 64);
        assert!(b.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.trim_start_matches(TOKEN_PREFIX), b);
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(token_id(&secret_hash("abc")), "ba7816bf8f01cfea");
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password();
        assert_eq!(a.len(), 24 + 3);
        assert_ne!(a, generate_password());
        assert!(check_new_password(&a).is_ok());
    }

    #[test]
    fn the_session_cookie_is_http_only_strict_and_secure_when_configured() {
        let mut config = ApiConfig::default();
        let cookie = session_cookie("abc", &config).unwrap();
        assert_eq!(
            cookie,
            "bmslink_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"
        );
        config.secure_cookies = true;
        let cookie = expired_cookie(&config).unwrap();
        assert!(cookie.to_str().unwrap().ends_with("Max-Age=0; Secure"));
    }

    #[test]
    fn the_session_is_found_among_other_cookies_and_bearer_wins() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("theme=dark; bmslink_session=s1"),
        );
        assert_eq!(presented_secret(&headers).unwrap().as_deref(), Some("s1"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer t1"));
        assert_eq!(presented_secret(&headers).unwrap().as_deref(), Some("t1"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dTpw"));
        assert!(presented_secret(&headers).is_err());
    }

    #[test]
    fn the_limiter_refuses_an_address_past_its_failures_until_the_window_passes() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("10.0.0.1", t0).is_ok());
            limiter.failed("10.0.0.1", t0);
        }
        let retry = limiter.check("10.0.0.1", t0 + Duration::from_secs(10));
        assert_eq!(retry, Err(Duration::from_secs(50)));
        assert!(limiter.check("10.0.0.2", t0).is_ok(), "other addresses");
        assert!(limiter
            .check("10.0.0.1", t0 + Duration::from_secs(60))
            .is_ok());
        limiter.succeeded("10.0.0.1");
        limiter.failed("10.0.0.1", t0 + Duration::from_secs(61));
        assert!(limiter
            .check("10.0.0.1", t0 + Duration::from_secs(61))
            .is_ok());
    }

    #[test]
    fn user_names_and_passwords_are_checked() {
        assert!(check_user_name("alice").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("a b").is_err());
        assert!(check_user_name(&"x".repeat(65)).is_err());
        assert!(check_new_password("short").is_err());
        assert!(check_new_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_now("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_now("correct horse", &hash));
        assert!(!verify_now("wrong horse", &hash));
        assert!(!verify_now("correct horse", "not a phc string"));
    }
}
