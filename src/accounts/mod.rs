//! Accounts and sessions: sign up, log in, log out (here or everywhere), find the session
//! behind a cookie.
//!
//! The cookie carries a random token; the table keeps only its SHA-256, so a copy of the table
//! cannot be turned into working cookies. Passwords are hashed with Argon2id on the blocking
//! pool under their own permits ([`Shoebox::run_hashing`]), apart from image work, in reused
//! memory ([`password`]). Logins and sign-ups are limited per client address and per account
//! ([`throttle`]), checked before any hashing, so a flood costs a database round trip each.

mod cache;
mod password;
mod throttle;

use std::net::IpAddr;

use sha2::{Digest as _, Sha256};

use crate::app::Shoebox;
use crate::db::sessions::SessionRow;
use crate::db::{DbError, sessions, users};
use crate::domain::{Email, Millis, Password, UserId, now_millis, random_token};

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("That email address already has an account. Log in instead.")]
    EmailTaken,
    #[error("That email and password do not match an account.")]
    BadCredentials,
    #[error(transparent)]
    Db(DbError),
    #[error("Too many attempts from here or for this account. Wait {} and try again.", throttle::wait_words(*retry_after_secs))]
    RateLimited { retry_after_secs: u64 },
    #[error("password hashing failed: {0}")]
    Hash(String),
}

pub use cache::{SESSION_CACHE_TTL, SessionCache};
pub use password::Passwords;

impl From<DbError> for AccountError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::EmailTaken => Self::EmailTaken,
            other => Self::Db(other),
        }
    }
}

/// A session just created: the token goes in the cookie, the CSRF token in pages.
#[derive(Clone)]
pub struct NewSession {
    pub user_id: UserId,
    pub token: String,
    pub expires_at: Millis,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("user_id", &self.user_id)
            .field("token", &crate::domain::Redacted)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Create an account and a session for it. `address` is the client's, when known.
pub async fn sign_up(
    app: &Shoebox,
    address: Option<IpAddr>,
    email: &Email,
    password: Password,
) -> Result<NewSession, AccountError> {
    // Every attempt counts, taken addresses included: that caps how fast anyone can ask
    // which addresses have accounts.
    throttle::begin(app, throttle::Action::SignUp, address, email).await?;
    let hasher = app.clone();
    let hash = app.run_hashing(move || hasher.passwords.hash(&password)).await.map_err(AccountError::Hash)?;
    let user = UserId::new();
    // The account and its first session together: a failure between the two must not leave an
    // account its owner was told could not be created.
    let mut tx = app.db.begin().await?;
    users::insert(&mut *tx, user, email, &hash, now_millis()).await?;
    let session = start_session(&mut *tx, app, user).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(session)
}

/// Check a password and start a session. `address` is the client's, when known.
pub async fn log_in(
    app: &Shoebox,
    address: Option<IpAddr>,
    email: &Email,
    password: Password,
) -> Result<NewSession, AccountError> {
    let attempt = throttle::begin(app, throttle::Action::Login, address, email).await?;
    let found = users::find_by_email(&app.db, email).await?;
    // Verify against a real hash even when the address is unknown, so the answer takes as long
    // either way and does not tell which addresses have accounts.
    let hash = found.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| password::DUMMY_HASH.to_owned());
    let verifier = app.clone();
    let ok = app.run_hashing(move || verifier.passwords.verify(&password, &hash)).await;
    match found {
        Some(user) if ok => {
            throttle::succeeded(app, attempt).await?;
            start_session(&app.db, app, user.id).await
        }
        _ => Err(AccountError::BadCredentials),
    }
}

/// The live session behind a cookie token: from this process's [`SessionCache`] when it was
/// looked up in the last second, otherwise from the database.
pub async fn session(app: &Shoebox, token: &str) -> Result<Option<SessionRow>, DbError> {
    let hash = token_hash(token);
    let now = now_millis();
    if let Some(s) = app.sessions.get(&hash, now) {
        return Ok(Some(s));
    }
    let found = sessions::find_live(&app.db, &hash, now).await?;
    if let Some(s) = &found {
        app.sessions.insert(hash, s.clone());
    }
    Ok(found)
}

pub async fn log_out(app: &Shoebox, token: &str) -> Result<(), DbError> {
    let hash = token_hash(token);
    sessions::delete(&app.db, &hash).await?;
    app.sessions.forget(&hash);
    Ok(())
}

/// End every session of `user`, on every device (after a lost phone or a leaked password);
/// returns how many ended. Other processes may accept them for up to [`SESSION_CACHE_TTL`].
pub async fn log_out_everywhere(app: &Shoebox, user: UserId) -> Result<u64, DbError> {
    let ended = sessions::delete_all_for_user(&app.db, user).await?;
    app.sessions.forget_user(user);
    Ok(ended)
}

async fn start_session(
    db: impl sqlx::Executor<'_, Database = sqlx::Any>,
    app: &Shoebox,
    user: UserId,
) -> Result<NewSession, AccountError> {
    let token = random_token();
    let now = now_millis();
    let ttl = i64::try_from(app.limits.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl);
    sessions::insert(db, &token_hash(&token), user, &random_token(), now, expires_at).await?;
    Ok(NewSession { user_id: user, token, expires_at })
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
