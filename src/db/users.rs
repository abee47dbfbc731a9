//! Queries on `users`.

use sqlx::{Any, Executor};

use super::{DbError, col};
use crate::domain::{Email, Millis, UserId};

/// A user as the login check needs it.
#[derive(Clone)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = crate::domain::Redacted;
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &redacted)
            .finish()
    }
}

/// Create a user; [`DbError::EmailTaken`] when the address already has an account.
pub async fn insert(
    db: impl Executor<'_, Database = Any>,
    id: UserId,
    email: &Email,
    password_hash: &str,
    now: Millis,
) -> Result<(), DbError> {
    let result = sqlx::query("insert into users (user_id, email, password_hash, created_at) values ($1, $2, $3, $4)")
        .bind(id.to_string())
        .bind(email.as_str().to_owned())
        .bind(password_hash.to_owned())
        .bind(now)
        .execute(db)
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(DbError::EmailTaken),
        Err(e) => Err(e.into()),
    }
}

pub async fn find_by_email(db: impl Executor<'_, Database = Any>, email: &Email) -> Result<Option<UserRow>, DbError> {
    let row = sqlx::query("select user_id, email, password_hash from users where email = $1")
        .bind(email.as_str().to_owned())
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        Ok(UserRow {
            id: parse_id(&col::<String>(&r, "user_id")?)?,
            email: col(&r, "email")?,
            password_hash: col(&r, "password_hash")?,
        })
    })
    .transpose()
}

pub(crate) fn parse_id(s: &str) -> Result<UserId, DbError> {
    s.parse().map_err(|_| DbError::Corrupt(format!("user id {s:?}")))
}
