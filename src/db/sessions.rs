//! Queries on `sessions`.

use super::users::parse_id;
use sqlx::{Any, Executor};

use super::{DbError, col};
use crate::domain::{Millis, UserId};

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
        let redacted = crate::domain::Redacted;
        f.debug_struct("SessionRow")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("csrf_token", &redacted)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

pub async fn insert(
    db: impl Executor<'_, Database = Any>,
    token_hash: &str,
    user: UserId,
    csrf: &str,
    now: Millis,
    expires_at: Millis,
) -> Result<(), DbError> {
    sqlx::query(
        "insert into sessions (token_hash, user_id, csrf_token, created_at, expires_at) values ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash.to_owned())
    .bind(user.to_string())
    .bind(csrf.to_owned())
    .bind(now)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The session for a token hash, if it exists and has not expired.
pub async fn find_live(
    db: impl Executor<'_, Database = Any>,
    token_hash: &str,
    now: Millis,
) -> Result<Option<SessionRow>, DbError> {
    let row = sqlx::query(
        "select s.user_id, u.email, s.csrf_token, s.expires_at from sessions s join users u on u.user_id = s.user_id \
         where s.token_hash = $1 and s.expires_at > $2",
    )
    .bind(token_hash.to_owned())
    .bind(now)
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(SessionRow {
            user_id: parse_id(&col::<String>(&r, "user_id")?)?,
            email: col(&r, "email")?,
            csrf_token: col(&r, "csrf_token")?,
            expires_at: col(&r, "expires_at")?,
        })
    })
    .transpose()
}

pub async fn delete(db: impl Executor<'_, Database = Any>, token_hash: &str) -> Result<(), DbError> {
    sqlx::query("delete from sessions where token_hash = $1").bind(token_hash.to_owned()).execute(db).await?;
    Ok(())
}

/// End every session of `user` ("log out everywhere"); returns how many there were.
pub async fn delete_all_for_user(db: impl Executor<'_, Database = Any>, user: UserId) -> Result<u64, DbError> {
    let done = sqlx::query("delete from sessions where user_id = $1").bind(user.to_string()).execute(db).await?;
    Ok(done.rows_affected())
}

/// Delete the sessions that expired at `now` or before; how many.
pub async fn delete_expired(db: impl Executor<'_, Database = Any>, now: Millis) -> Result<u64, DbError> {
    let done = sqlx::query("delete from sessions where expires_at <= $1").bind(now).execute(db).await?;
    Ok(done.rows_affected())
}

/// How many sessions [`delete_expired`] would delete.
pub async fn count_expired(db: impl Executor<'_, Database = Any>, now: Millis) -> Result<i64, DbError> {
    let row = sqlx::query("select count(*) as n from sessions where expires_at <= $1").bind(now).fetch_one(db).await?;
    col(&row, "n")
}
