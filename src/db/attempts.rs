//! Queries on `auth_attempts`: login and sign-up attempts counted against their limits.

use sqlx::{Any, Executor};

use super::{Db, DbError, col};
use crate::domain::Millis;

/// Record one attempt, and delete every expired one while here (cheap: indexed on
/// `expires_at`), so the table does not grow with old attempts.
pub async fn record(
    db: &Db,
    attempt_id: &str,
    scope: &str,
    subject: &str,
    now: Millis,
    expires_at: Millis,
) -> Result<(), DbError> {
    sqlx::query("delete from auth_attempts where expires_at <= $1").bind(now).execute(db).await?;
    sqlx::query(
        "insert into auth_attempts (attempt_id, scope, subject, created_at, expires_at) values ($1, $2, $3, $4, $5)",
    )
    .bind(attempt_id.to_owned())
    .bind(scope.to_owned())
    .bind(subject.to_owned())
    .bind(now)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// How many attempts for `subject` are still live at `now`.
pub async fn count_live(
    db: impl Executor<'_, Database = Any>,
    scope: &str,
    subject: &str,
    now: Millis,
) -> Result<i64, DbError> {
    let row =
        sqlx::query("select count(*) as n from auth_attempts where scope = $1 and subject = $2 and expires_at > $3")
            .bind(scope.to_owned())
            .bind(subject.to_owned())
            .bind(now)
            .fetch_one(db)
            .await?;
    col(&row, "n")
}

/// When the `nth` newest live attempt (1-based) expires: once it has, fewer than `nth` remain.
pub async fn nth_newest_expiry(
    db: impl Executor<'_, Database = Any>,
    scope: &str,
    subject: &str,
    now: Millis,
    nth: i64,
) -> Result<Option<Millis>, DbError> {
    let row = sqlx::query(
        "select expires_at from auth_attempts where scope = $1 and subject = $2 and expires_at > $3 \
         order by expires_at desc limit 1 offset $4",
    )
    .bind(scope.to_owned())
    .bind(subject.to_owned())
    .bind(now)
    .bind(nth.saturating_sub(1).max(0))
    .fetch_optional(db)
    .await?;
    row.map(|r| col(&r, "expires_at")).transpose()
}

pub async fn delete(db: impl Executor<'_, Database = Any>, attempt_id: &str) -> Result<(), DbError> {
    sqlx::query("delete from auth_attempts where attempt_id = $1").bind(attempt_id.to_owned()).execute(db).await?;
    Ok(())
}

/// Forget every attempt for `subject` (a successful login clears the account's failures).
pub async fn clear(db: impl Executor<'_, Database = Any>, scope: &str, subject: &str) -> Result<(), DbError> {
    sqlx::query("delete from auth_attempts where scope = $1 and subject = $2")
        .bind(scope.to_owned())
        .bind(subject.to_owned())
        .execute(db)
        .await?;
    Ok(())
}
