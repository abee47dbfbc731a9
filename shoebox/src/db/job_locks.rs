//! Queries on `job_locks`: one row per scheduled job, held by one process until it expires, so
//! that of several dynos running `serve` only one runs the job at a time.

use super::{DbError, Ex, run};
use crate::domain::Millis;

/// Take the lock `name` for `holder` until `until`, if nobody holds it past `now`. One
/// statement (an upsert whose update applies only to an expired row), so two processes asking
/// at once cannot both get it. True when taken.
pub async fn try_take(
    db: impl Into<Ex<'_>>,
    name: &str,
    holder: &str,
    now: Millis,
    until: Millis,
) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "insert into shoebox_job_locks (name, holder, held_until) values ($1, $2, $3) \
         on conflict (name) do update set holder = excluded.holder, held_until = excluded.held_until \
         where shoebox_job_locks.held_until <= $4",
    )
    .bind(name.to_owned())
    .bind(holder.to_owned())
    .bind(until)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Give the lock back, if `holder` still has it.
pub async fn release(db: impl Into<Ex<'_>>, name: &str, holder: &str) -> Result<(), DbError> {
    run!(db, |c| sqlx::query("delete from shoebox_job_locks where name = $1 and holder = $2")
        .bind(name.to_owned())
        .bind(holder.to_owned())
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}
