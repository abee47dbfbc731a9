//! Accounts and sessions: sign up, log in, log out (here or everywhere), find the session
//! behind a cookie.
//!
//! The cookie carries a random token; the table keeps only its SHA-256, so a copy of the table
//! cannot be turned into working cookies. Passwords are hashed with Argon2id on the blocking
//! pool under their own permits (`Accounts::run_hashing`), apart from image work, in reused
//! memory (module `password`). Logins and sign-ups are limited per client address and per account
//! (module `throttle`), checked before any hashing, so a flood costs a database round trip each.

mod cache;
mod input;
mod password;
pub mod store;
mod throttle;

use std::net::IpAddr;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use shoebox::{Db, Millis, UserId, now_millis};
use tokio::sync::Semaphore;

use crate::settings::AppLimits;
pub use cache::{SESSION_CACHE_TTL, SessionCache};
pub use input::{AccountInputError, Email, Password};
pub use password::Passwords;
pub use store::{SessionRow, StoreError};

/// The accounts: the pool, the password hasher and the session cache. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Accounts(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub db: Db,
    pub limits: AppLimits,
    /// Bounds password hashing, apart from image work: with one shared bound, 64 bogus logins
    /// queued ahead of a real upload's verification (5 ms became 1.5 s). One permit by default:
    /// a login flood takes at most one of the dyno's two cores and 19 MiB, and ~30 hashes a
    /// second is far more than the login limits let through.
    hashing: Semaphore,
    /// Argon2's working memory, one array per hashing permit, reused.
    passwords: Passwords,
    /// Live sessions looked up in the last second.
    sessions: SessionCache,
}

impl std::ops::Deref for Accounts {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Accounts {
    /// Accounts on `db` (the same pool Shoebox runs on).
    pub fn new(db: Db, limits: AppLimits) -> Self {
        let permits = limits.hashing_permits.max(1);
        Self(Arc::new(Inner {
            db,
            limits,
            hashing: Semaphore::new(permits),
            passwords: Passwords::new(permits),
            sessions: SessionCache::default(),
        }))
    }

    /// Run password hashing `f` on the blocking pool, at most `hashing_permits` at a time.
    async fn run_hashing<T, F>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // The semaphore is never closed, so acquiring only fails if it were; then run anyway.
        let _permit = self.hashing.acquire().await.ok();
        match tokio::task::spawn_blocking(f).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("That email address already has an account. Log in instead.")]
    EmailTaken,
    #[error("That email and password do not match an account.")]
    BadCredentials,
    #[error(transparent)]
    Store(StoreError),
    #[error("Too many attempts from here or for this account. Wait {} and try again.", throttle::wait_words(*retry_after_secs))]
    RateLimited { retry_after_secs: u64 },
    #[error("password hashing failed: {0}")]
    Hash(String),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken => Self::EmailTaken,
            other => Self::Store(other),
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
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Create an account and a session for it. `address` is the client's, when known.
pub async fn sign_up(
    accounts: &Accounts,
    address: Option<IpAddr>,
    email: &Email,
    password: Password,
) -> Result<NewSession, AccountError> {
    // Every attempt counts, taken addresses included: that caps how fast anyone can ask
    // which addresses have accounts.
    throttle::begin(accounts, throttle::Action::SignUp, address, email).await?;
    let hasher = accounts.clone();
    let hash = accounts.run_hashing(move || hasher.passwords.hash(&password)).await.map_err(AccountError::Hash)?;
    let user = UserId::from(uuid::Uuid::new_v4());
    let (token, csrf) = (random_token(), random_token());
    let (now, expires_at) = session_times(accounts);
    let row = store::NewSessionRow { token_hash: &token_hash(&token), user: &user, csrf: &csrf, now, expires_at };
    store::insert_user_with_session(&accounts.db, email.as_str(), &hash, &row).await?;
    Ok(NewSession { user_id: user, token, expires_at })
}

/// Check a password and start a session. `address` is the client's, when known.
pub async fn log_in(
    accounts: &Accounts,
    address: Option<IpAddr>,
    email: &Email,
    password: Password,
) -> Result<NewSession, AccountError> {
    let attempt = throttle::begin(accounts, throttle::Action::Login, address, email).await?;
    let found = store::find_user_by_email(&accounts.db, email.as_str()).await?;
    // Verify against a real hash even when the address is unknown, so the answer takes as long
    // either way and does not tell which addresses have accounts.
    let hash = found.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| password::DUMMY_HASH.to_owned());
    let verifier = accounts.clone();
    let ok = accounts.run_hashing(move || verifier.passwords.verify(&password, &hash)).await;
    match found {
        Some(user) if ok => {
            throttle::succeeded(accounts, attempt).await?;
            let (token, csrf) = (random_token(), random_token());
            let (now, expires_at) = session_times(accounts);
            let row =
                store::NewSessionRow { token_hash: &token_hash(&token), user: &user.id, csrf: &csrf, now, expires_at };
            store::insert_session(&accounts.db, &row).await?;
            Ok(NewSession { user_id: user.id, token, expires_at })
        }
        _ => Err(AccountError::BadCredentials),
    }
}

/// The live session behind a cookie token: from this process's [`SessionCache`] when it was
/// looked up in the last second, otherwise from the database.
pub async fn session(accounts: &Accounts, token: &str) -> Result<Option<SessionRow>, StoreError> {
    let hash = token_hash(token);
    let now = now_millis();
    if let Some(s) = accounts.sessions.get(&hash, now) {
        return Ok(Some(s));
    }
    let found = store::find_live_session(&accounts.db, &hash, now).await?;
    if let Some(s) = &found {
        accounts.sessions.insert(hash, s.clone());
    }
    Ok(found)
}

pub async fn log_out(accounts: &Accounts, token: &str) -> Result<(), StoreError> {
    let hash = token_hash(token);
    store::delete_session(&accounts.db, &hash).await?;
    accounts.sessions.forget(&hash);
    Ok(())
}

/// End every session of `user`, on every device (after a lost phone or a leaked password);
/// returns how many ended. Other processes may accept them for up to [`SESSION_CACHE_TTL`].
pub async fn log_out_everywhere(accounts: &Accounts, user: &UserId) -> Result<u64, StoreError> {
    let ended = store::delete_sessions_of(&accounts.db, user).await?;
    accounts.sessions.forget_user(user);
    Ok(ended)
}

fn session_times(accounts: &Accounts) -> (Millis, Millis) {
    let now = now_millis();
    let ttl = i64::try_from(accounts.limits.session_ttl.as_millis()).unwrap_or(i64::MAX);
    (now, now.saturating_add(ttl))
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// 128 random bits from the operating system, as 32 lowercase hex characters: session and
/// CSRF tokens must not be guessable.
pub fn random_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}
