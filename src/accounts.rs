//! Accounts and sessions: sign up, log in, log out, find the session behind a cookie.
//!
//! The cookie carries a random token; the table keeps only its SHA-256, so a copy of the table
//! cannot be turned into working cookies. Passwords are hashed with Argon2id on the bounded
//! blocking pool.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng};
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
    #[error("password hashing failed: {0}")]
    Hash(String),
}

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

/// Create an account and a session for it.
pub async fn sign_up(app: &Shoebox, email: &Email, password: Password) -> Result<NewSession, AccountError> {
    let hash = app.run_blocking(move || hash_password(&password)).await?;
    let user = UserId::new();
    // The account and its first session together: a failure between the two must not leave an
    // account its owner was told could not be created.
    let mut tx = app.db.begin().await?;
    users::insert(&mut *tx, user, email, &hash, now_millis()).await?;
    let session = start_session(&mut *tx, app, user).await?;
    tx.commit().await.map_err(DbError::from)?;
    Ok(session)
}

/// Check a password and start a session.
pub async fn log_in(app: &Shoebox, email: &Email, password: Password) -> Result<NewSession, AccountError> {
    let found = users::find_by_email(&app.db, email).await?;
    // Verify against a real hash even when the address is unknown, so the answer takes as long
    // either way and does not tell which addresses have accounts.
    let hash = found.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_owned());
    let ok = app.run_blocking(move || verify_password(&password, &hash)).await;
    match found {
        Some(user) if ok => start_session(&app.db, app, user.id).await,
        _ => Err(AccountError::BadCredentials),
    }
}

/// The live session behind a cookie token.
pub async fn session(app: &Shoebox, token: &str) -> Result<Option<SessionRow>, DbError> {
    sessions::find_live(&app.db, &token_hash(token), now_millis()).await
}

pub async fn log_out(app: &Shoebox, token: &str) -> Result<(), DbError> {
    sessions::delete(&app.db, &token_hash(token)).await
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

fn hash_password(password: &Password) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

fn verify_password(password: &Password, hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.expose().as_bytes(), &parsed).is_ok())
}

/// An Argon2id hash of a random string nobody knows, with the default parameters.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2hvZWJveGR1bW15c2FsdA$WlDfNvDnVHl0BRHHtVmnpgn6mK2mA+8tDT4hXLFD4zI";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let p = Password::parse("correct horse battery".into()).expect("valid");
        let hash = hash_password(&p).expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&p, &hash));
        assert!(!verify_password(&Password::parse("wrong horse battery".into()).expect("valid"), &hash));
        assert!(!verify_password(&p, "not a hash"));
    }

    #[test]
    fn the_dummy_hash_parses_so_unknown_emails_cost_a_real_verification() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
