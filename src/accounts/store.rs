//! The reference app's account tables, `users`, `sessions` and `auth_attempts`: a host's own
//! tables, beside Shoebox's `shoebox_…` ones, on the same pool.
//!
//! Each query is written once and run on whichever pool the app has (`on_pool!`).

use shoebox::{Db, Millis, UserId};
use sqlx::Row as _;

/// Run `body` with `$p` bound to the pool behind `$db`: written once, compiled for each driver.
macro_rules! on_pool {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            Db::Postgres($p) => $body,
            Db::Sqlite($p) => $body,
        }
    };
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The address already has an account.
    #[error("that email address already has an account")]
    EmailTaken,
    /// The database failed: down or restarting ([`StoreError::is_outage`]), or it refused a
    /// statement.
    #[error(transparent)]
    Db(shoebox::DbError),
    /// A row holds what this app cannot have written.
    #[error("a row could not be read: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(shoebox::DbError::from(e))
    }
}

impl StoreError {
    /// Whether the database was unreachable, restarting or out of connections (worth a 503
    /// and a retry), rather than a bug: the same rule as Shoebox's own tables, since a
    /// restart cuts off this app's statements as it does Shoebox's.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Db(e) if e.is_outage())
    }
}

/// A user as the login check needs it.
#[derive(Clone)]
pub struct UserRow {
    pub id: UserId,
    pub password_hash: String,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow").field("id", &self.id).field("password_hash", &"<redacted>").finish()
    }
}

/// A live session, joined with its user.
#[derive(Clone)]
pub struct SessionRow {
    pub user_id: UserId,
    pub email: String,
    pub csrf_token: String,
    pub expires_at: Millis,
}

impl std::fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRow")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("csrf_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A new session's row.
pub struct NewSessionRow<'a> {
    pub token_hash: &'a str,
    pub user: &'a UserId,
    pub csrf: &'a str,
    pub now: Millis,
    pub expires_at: Millis,
}

const INSERT_SESSION: &str =
    "insert into sessions (token_hash, user_id, csrf_token, created_at, expires_at) values ($1, $2, $3, $4, $5)";
const INSERT_USER: &str = "insert into users (user_id, email, password_hash, created_at) values ($1, $2, $3, $4)";

/// Create a user and their first session together: a failure between the two must not leave
/// an account its owner was told could not be created.
pub async fn insert_user_with_session(
    db: &Db,
    email: &str,
    password_hash: &str,
    session: &NewSessionRow<'_>,
) -> Result<(), StoreError> {
    let result: Result<(), sqlx::Error> = on_pool!(db, |p| {
        async {
            let mut tx = p.begin().await?;
            sqlx::query(INSERT_USER)
                .bind(session.user.as_str())
                .bind(email)
                .bind(password_hash)
                .bind(session.now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_SESSION)
                .bind(session.token_hash)
                .bind(session.user.as_str())
                .bind(session.csrf)
                .bind(session.now)
                .bind(session.expires_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await
    });
    match result {
        Ok(()) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::EmailTaken),
        Err(e) => Err(e.into()),
    }
}

pub async fn insert_session(db: &Db, s: &NewSessionRow<'_>) -> Result<(), StoreError> {
    on_pool!(db, |p| sqlx::query(INSERT_SESSION)
        .bind(s.token_hash)
        .bind(s.user.as_str())
        .bind(s.csrf)
        .bind(s.now)
        .bind(s.expires_at)
        .execute(p)
        .await
        .map(|_| ()))?;
    Ok(())
}

fn user_id(raw: String) -> Result<UserId, StoreError> {
    UserId::new(raw.clone()).map_err(|_| StoreError::Corrupt(format!("user id {raw:?}")))
}

pub async fn find_user_by_email(db: &Db, email: &str) -> Result<Option<UserRow>, StoreError> {
    let sql = "select user_id, password_hash from users where email = $1";
    let row: Option<(String, String)> = on_pool!(db, |p| sqlx::query(sql)
        .bind(email)
        .fetch_optional(p)
        .await?
        .map(|r| Ok::<_, sqlx::Error>((r.try_get("user_id")?, r.try_get("password_hash")?)))
        .transpose())?;
    row.map(|(id, password_hash)| Ok(UserRow { id: user_id(id)?, password_hash })).transpose()
}

/// The session for a token hash, if it exists and has not expired.
pub async fn find_live_session(db: &Db, token_hash: &str, now: Millis) -> Result<Option<SessionRow>, StoreError> {
    let sql = "select s.user_id, u.email, s.csrf_token, s.expires_at from sessions s join users u on u.user_id = s.user_id \
               where s.token_hash = $1 and s.expires_at > $2";
    let row: Option<(String, String, String, i64)> = on_pool!(db, |p| sqlx::query(sql)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(p)
        .await?
        .map(|r| {
            Ok::<_, sqlx::Error>((
                r.try_get("user_id")?,
                r.try_get("email")?,
                r.try_get("csrf_token")?,
                r.try_get("expires_at")?,
            ))
        })
        .transpose())?;
    row.map(|(id, email, csrf_token, expires_at)| {
        Ok(SessionRow { user_id: user_id(id)?, email, csrf_token, expires_at })
    })
    .transpose()
}

pub async fn delete_session(db: &Db, token_hash: &str) -> Result<(), StoreError> {
    let sql = "delete from sessions where token_hash = $1";
    on_pool!(db, |p| sqlx::query(sql).bind(token_hash).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// End every session of `user` ("log out everywhere"); returns how many there were.
pub async fn delete_sessions_of(db: &Db, user: &UserId) -> Result<u64, StoreError> {
    let sql = "delete from sessions where user_id = $1";
    Ok(on_pool!(db, |p| sqlx::query(sql).bind(user.as_str()).execute(p).await.map(|r| r.rows_affected()))?)
}

/// Delete the sessions that expired at `now` or before; how many.
pub async fn delete_expired_sessions(db: &Db, now: Millis) -> Result<u64, StoreError> {
    let sql = "delete from sessions where expires_at <= $1";
    Ok(on_pool!(db, |p| sqlx::query(sql).bind(now).execute(p).await.map(|r| r.rows_affected()))?)
}

/// How many sessions [`delete_expired_sessions`] would delete.
pub async fn count_expired_sessions(db: &Db, now: Millis) -> Result<i64, StoreError> {
    let sql = "select count(*) from sessions where expires_at <= $1";
    Ok(on_pool!(db, |p| sqlx::query_scalar(sql).bind(now).fetch_one(p).await)?)
}

/// Record one attempt, and delete every expired one while here (cheap: indexed on
/// `expires_at`), so the table does not grow with old attempts.
pub async fn record_attempt(
    db: &Db,
    attempt_id: &str,
    scope: &str,
    subject: &str,
    now: Millis,
    expires_at: Millis,
) -> Result<(), StoreError> {
    let sweep = "delete from auth_attempts where expires_at <= $1";
    let insert =
        "insert into auth_attempts (attempt_id, scope, subject, created_at, expires_at) values ($1, $2, $3, $4, $5)";
    on_pool!(db, |p| {
        async {
            sqlx::query(sweep).bind(now).execute(p).await?;
            sqlx::query(insert).bind(attempt_id).bind(scope).bind(subject).bind(now).bind(expires_at).execute(p).await
        }
        .await
        .map(|_| ())
    })?;
    Ok(())
}

/// How many attempts for `subject` are still live at `now`.
pub async fn count_live_attempts(db: &Db, scope: &str, subject: &str, now: Millis) -> Result<i64, StoreError> {
    let sql = "select count(*) from auth_attempts where scope = $1 and subject = $2 and expires_at > $3";
    Ok(on_pool!(db, |p| sqlx::query_scalar(sql).bind(scope).bind(subject).bind(now).fetch_one(p).await)?)
}

/// When the `nth` newest live attempt (1-based) expires: once it has, fewer than `nth` remain.
pub async fn nth_newest_attempt_expiry(
    db: &Db,
    scope: &str,
    subject: &str,
    now: Millis,
    nth: i64,
) -> Result<Option<Millis>, StoreError> {
    let sql = "select expires_at from auth_attempts where scope = $1 and subject = $2 and expires_at > $3 \
               order by expires_at desc limit 1 offset $4";
    let offset = nth.saturating_sub(1).max(0);
    Ok(on_pool!(db, |p| sqlx::query_scalar(sql)
        .bind(scope)
        .bind(subject)
        .bind(now)
        .bind(offset)
        .fetch_optional(p)
        .await)?)
}

pub async fn delete_attempt(db: &Db, attempt_id: &str) -> Result<(), StoreError> {
    let sql = "delete from auth_attempts where attempt_id = $1";
    on_pool!(db, |p| sqlx::query(sql).bind(attempt_id).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Forget every attempt for `subject` (a successful login clears the account's failures).
pub async fn clear_attempts(db: &Db, scope: &str, subject: &str) -> Result<(), StoreError> {
    let sql = "delete from auth_attempts where scope = $1 and subject = $2";
    on_pool!(db, |p| sqlx::query(sql).bind(scope).bind(subject).execute(p).await.map(|_| ()))?;
    Ok(())
}

/// Create the account tables if missing (`users`, `sessions`, `auth_attempts`, the same as
/// before Shoebox's tables moved under their prefix, so an existing database keeps its
/// accounts), recorded in sqlx's `_sqlx_migrations` like any host's own migrations.
pub async fn migrate(db: &Db) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    // A database made before the split has Shoebox 0.1's migrations recorded there; they are
    // not this app's any more (Shoebox records its own in shoebox_migrations).
    migrator.set_ignore_missing(true);
    on_pool!(db, |p| migrator.run(p).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_restart_is_an_outage_and_a_bad_row_is_not() {
        // What sqlx returned while the tests restarted Postgres: a statement cut off by the
        // shutdown, and no connection to be had.
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(StoreError::from(sqlx::Error::Io(reset)).is_outage());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_outage());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_outage());
        assert!(!StoreError::Corrupt("user id".into()).is_outage());
        assert!(!StoreError::EmailTaken.is_outage());
    }
}
