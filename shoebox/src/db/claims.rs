//! Claims on `photos` rows, so that several clean-up runners, attach and user deletion agree on
//! who ends a photo.
//!
//! A claim is `claimed_by` (a token naming one runner's batch) and `claimed_until` (when a
//! runner that died may be taken over). A claimed row is doomed: attach and verification leave
//! it alone. Rows are marked deleted only by the claim that holds them, after their objects
//! are gone.

use super::photos::{COLUMNS, from_row};
use super::{Backend, Db, DbError, Ex, col, each, one, run};
use crate::domain::{Millis, Photo, PhotoId, UserId};

/// What marks a row whose objects failed to delete: still doomed (attach refuses it), free for
/// the next run to claim.
pub const RETRY: &str = "retry";

/// How a batch of rows is claimed.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub token: &'a str,
    /// Until when the claim holds against other runners.
    pub until: Millis,
    /// Claims that ran out before this time may be taken over (the run's start, so rows this
    /// run failed on are not retried within the same run).
    pub takeover_before: Millis,
}

/// Claim up to `limit` photos that were signed or ready but not attached at `cutoff` or
/// earlier (inclusive), oldest first, and return them.
///
/// On Postgres the candidates are locked with `FOR UPDATE SKIP LOCKED`, so two runners take
/// different rows instead of waiting on each other; the outer condition is checked again on the
/// locked row, so a photo attached meanwhile is never claimed. SQLite runs one writer at a time.
pub async fn claim_abandoned(
    db: impl Into<Ex<'_>>,
    backend: Backend,
    claim: Claim<'_>,
    cutoff: Millis,
    limit: i64,
) -> Result<Vec<Photo>, DbError> {
    let claimable = "state in ('signed', 'ready') and created_at <= $3 and (claimed_by is null or claimed_until < $4)";
    // On Postgres the oldest of each state come from the (state, created_at) index, each state
    // apart, and are merged; a single `state in (...) order by created_at` sorted every
    // candidate in the table for each batch, which made a run quadratic in the rows it
    // deletes (a 1000-row claim over 100 000 rows took 160 ms instead of 3). The ids go to
    // the update as an array so it reaches them through the primary key.
    let candidates = match backend {
        Backend::Postgres => {
            "photo_id = any(array(select c.photo_id from unnest(array['signed', 'ready']) as s(state) \
             cross join lateral (select photo_id, created_at from shoebox_photos where state = s.state \
             and created_at <= $3 and (claimed_by is null or claimed_until < $4) \
             order by created_at limit $5 for update skip locked) as c order by c.created_at limit $5))"
        }
        Backend::Sqlite => {
            "photo_id in (select photo_id from shoebox_photos where state in ('signed', 'ready') \
             and created_at <= $3 and (claimed_by is null or claimed_until < $4) order by created_at limit $5)"
        }
    };
    let rows = run!(db, |c| sqlx::query(&format!(
        "update shoebox_photos set claimed_by = $1, claimed_until = $2 where {candidates} \
         and {claimable} returning {COLUMNS}"
    ))
    .bind(claim.token.to_owned())
    .bind(claim.until)
    .bind(cutoff)
    .bind(claim.takeover_before)
    .bind(limit)
    .fetch_all(c)
    .await
    .map_err(DbError::from)
    .and_then(|rows| each(rows, from_row)))?;
    Ok(rows)
}

/// Claim one in-use or released photo whose keep-until is still `keep_until` and has passed.
pub async fn claim_expired(
    db: impl Into<Ex<'_>>,
    id: PhotoId,
    claim: Claim<'_>,
    keep_until: Millis,
) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_photos set claimed_by = $2, claimed_until = $3 where photo_id = $1 \
         and state in ('in_use', 'released') and keep_until = $4 and (claimed_by is null or claimed_until < $5)",
    )
    .bind(id.to_string())
    .bind(claim.token.to_owned())
    .bind(claim.until)
    .bind(keep_until)
    .bind(claim.takeover_before)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Claim a live or signed photo of `uploader` for deletion. False when it is not theirs, is
/// already deleted, or clean-up holds it.
pub async fn claim_for_deletion(
    db: impl Into<Ex<'_>>,
    id: PhotoId,
    uploader: &UserId,
    claim: Claim<'_>,
) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_photos set claimed_by = $3, claimed_until = $4 where photo_id = $1 and uploader_id = $2 \
         and state in ('signed', 'ready', 'in_use', 'released') and claimed_by is null",
    )
    .bind(id.to_string())
    .bind(uploader.as_str().to_owned())
    .bind(claim.token.to_owned())
    .bind(claim.until)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Whether a row is claimed (being deleted, or waiting for a retry of its deletion).
pub async fn is_claimed(db: impl Into<Ex<'_>>, id: PhotoId) -> Result<bool, DbError> {
    let row = run!(db, |c| sqlx::query(
        "select photo_id from shoebox_photos where photo_id = $1 and claimed_by is not null"
    )
    .bind(id.to_string())
    .fetch_optional(c)
    .await
    .map(|r| r.is_some()))?;
    Ok(row)
}

/// A claimed photo whose objects could not all be deleted: keep it doomed, and let the next
/// run (one that starts after `retry_at`) take it.
pub async fn release_for_retry(
    db: impl Into<Ex<'_>>,
    id: PhotoId,
    token: &str,
    retry_at: Millis,
) -> Result<(), DbError> {
    run!(db, |c| sqlx::query(
        "update shoebox_photos set claimed_by = $3, claimed_until = $4 where photo_id = $1 and claimed_by = $2"
    )
    .bind(id.to_string())
    .bind(token.to_owned())
    .bind(RETRY)
    .bind(retry_at)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Tombstone one photo this claim holds (its objects are gone). False when the claim was lost.
pub async fn finish(
    db: impl Into<Ex<'_>>,
    id: PhotoId,
    token: &str,
    reason: &str,
    now: Millis,
) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_photos set state = 'deleted', deleted_at = $3, deleted_reason = $4, claimed_by = null, \
         claimed_until = null where photo_id = $1 and claimed_by = $2",
    )
    .bind(id.to_string())
    .bind(token.to_owned())
    .bind(now)
    .bind(reason.to_owned())
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Tombstone every photo a batch claim still holds, each with the reason for its state.
pub async fn finish_batch(
    db: &Db,
    token: &str,
    ids: &[PhotoId],
    signed_reason: &str,
    ready_reason: &str,
    now: Millis,
) -> Result<u64, DbError> {
    // The batch's rows are found by id (the primary key): `claimed_by` has no index, and a scan
    // for it read the whole table once per batch.
    let set = "set deleted_reason = case when state = 'signed' then $3 else $4 end, state = 'deleted', \
         deleted_at = $2, claimed_by = null, claimed_until = null";
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let done = match db {
        Db::Postgres(pool) => {
            sqlx::query(&format!("update shoebox_photos {set} where claimed_by = $1 and photo_id = any($5)"))
                .bind(token)
                .bind(now)
                .bind(signed_reason)
                .bind(ready_reason)
                .bind(&ids)
                .execute(pool)
                .await?
        }
        .rows_affected(),
        Db::Sqlite(pool) => {
            let ids = serde_json::to_string(&ids).map_err(|e| DbError::Corrupt(e.to_string()))?;
            sqlx::query(&format!(
                "update shoebox_photos {set} where claimed_by = $1 and photo_id in (select value from json_each($5))"
            ))
            .bind(token)
            .bind(now)
            .bind(signed_reason)
            .bind(ready_reason)
            .bind(ids)
            .execute(pool)
            .await?
            .rows_affected()
        }
    };
    Ok(done)
}

/// In-use and released photos not claimed whose keep-until passed at `as_of`, after `(keep_until, id)` in
/// that order: a page of the keep-until scan. Keyset paging, so photos the scan leaves alone
/// (an error) are not met again in the same run.
pub async fn due_for_keep_check(
    db: impl Into<Ex<'_>>,
    as_of: Millis,
    after: Option<(Millis, PhotoId)>,
    limit: i64,
) -> Result<Vec<Photo>, DbError> {
    let (k, id) = after.map_or((Millis::MIN, String::new()), |(k, id)| (k, id.to_string()));
    let rows = run!(db, |c| sqlx::query(&format!(
        "select {COLUMNS} from shoebox_photos where state in ('in_use', 'released') \
         and keep_until <= $1 and claimed_by is null \
         and (keep_until > $2 or (keep_until = $2 and photo_id > $3)) order by keep_until, photo_id limit $4"
    ))
    .bind(as_of)
    .bind(k)
    .bind(id)
    .bind(limit)
    .fetch_all(c)
    .await
    .map_err(DbError::from)
    .and_then(|rows| each(rows, from_row)))?;
    Ok(rows)
}

/// The newest in-use photo of the same kind by the same uploader attached after `photo`.
pub async fn newer_in_use(db: impl Into<Ex<'_>>, photo: &Photo) -> Result<Option<PhotoId>, DbError> {
    let row = run!(db, |c| sqlx::query(
        "select photo_id from shoebox_photos where uploader_id = $1 and kind = $2 and state = 'in_use' \
         and photo_id <> $3 and attached_at >= $4 order by attached_at desc limit 1",
    )
    .bind(photo.uploader.as_str().to_owned())
    .bind(photo.kind.clone())
    .bind(photo.id.to_string())
    .bind(photo.attached_at.unwrap_or(Millis::MIN))
    .fetch_optional(c)
    .await
    .map_err(DbError::from)
    .and_then(|row| one(row, |r| col::<String>(r, "photo_id"))))?;
    row.map(|id| id.parse().map_err(|_| DbError::Corrupt(format!("photo id {id:?}")))).transpose()
}

/// Move an in-use or released photo's keep-until from `old` to `new`. False when it changed meanwhile.
pub async fn set_keep_until(
    db: impl Into<Ex<'_>>,
    id: PhotoId,
    old: Millis,
    new: Option<Millis>,
) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_photos set keep_until = $3 where photo_id = $1 \
         and state in ('in_use', 'released') and keep_until = $2 and claimed_by is null",
    )
    .bind(id.to_string())
    .bind(old)
    .bind(new)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Release the uploader's other in-use photos of a kind: they become `released` and their
/// keep-until becomes `now`, so clean-up asks their kind whether they may go.
pub async fn release_others(db: impl Into<Ex<'_>>, photo: &Photo, now: Millis) -> Result<u64, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_photos set state = 'released', keep_until = $4 where uploader_id = $1 and kind = $2 \
         and state = 'in_use' and photo_id <> $3 and claimed_by is null",
    )
    .bind(photo.uploader.as_str().to_owned())
    .bind(photo.kind.clone())
    .bind(photo.id.to_string())
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done)
}

/// The state of the photo whose form uploads to `key`, if a row knows it.
pub async fn state_of_incoming(db: impl Into<Ex<'_>>, key: &str) -> Result<Option<String>, DbError> {
    run!(db, |c| sqlx::query("select state from shoebox_photos where incoming_key = $1")
        .bind(key.to_owned())
        .fetch_optional(c)
        .await
        .map_err(DbError::from)
        .and_then(|row| one(row, |r| col(r, "state"))))
}

/// A page of the photos [`claim_abandoned`] would claim, after `(created_at, id)`, without
/// claiming them: what a dry run reports.
pub async fn abandoned_page(
    db: impl Into<Ex<'_>>,
    cutoff: Millis,
    after: Option<(Millis, PhotoId)>,
    limit: i64,
) -> Result<Vec<Photo>, DbError> {
    let (created, id) = after.map_or((Millis::MIN, String::new()), |(c, id)| (c, id.to_string()));
    let rows = run!(db, |c| sqlx::query(&format!(
        "select {COLUMNS} from shoebox_photos where state in ('signed', 'ready') and created_at <= $1 \
         and (created_at > $2 or (created_at = $2 and photo_id > $3)) order by created_at, photo_id limit $4"
    ))
    .bind(cutoff)
    .bind(created)
    .bind(id)
    .bind(limit)
    .fetch_all(c)
    .await
    .map_err(DbError::from)
    .and_then(|rows| each(rows, from_row)))?;
    Ok(rows)
}
