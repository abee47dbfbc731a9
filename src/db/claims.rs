//! Claims on `photos` rows, so that several clean-up runners, attach and user deletion agree on
//! who ends a photo.
//!
//! A claim is `claimed_by` (a token naming one runner's batch) and `claimed_until` (when a
//! runner that died may be taken over). A claimed row is doomed: attach and verification leave
//! it alone. Rows are marked deleted only by the claim that holds them, after their objects
//! are gone.

use sqlx::{Any, Executor};

use super::photos::{COLUMNS, from_row};
use super::{Backend, DbError};
use crate::domain::{Millis, Photo, PhotoId};

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
    db: impl Executor<'_, Database = Any>,
    backend: Backend,
    claim: Claim<'_>,
    cutoff: Millis,
    limit: i64,
) -> Result<Vec<Photo>, DbError> {
    let lock = match backend {
        Backend::Postgres => "for update skip locked",
        Backend::Sqlite => "",
    };
    let claimable = "state in ('signed', 'ready') and created_at <= $3 and (claimed_by is null or claimed_until < $4)";
    let rows = sqlx::query(&format!(
        "update photos set claimed_by = $1, claimed_until = $2 where photo_id in \
         (select photo_id from photos where {claimable} order by created_at limit $5 {lock}) \
         and {claimable} returning {COLUMNS}"
    ))
    .bind(claim.token.to_owned())
    .bind(claim.until)
    .bind(cutoff)
    .bind(claim.takeover_before)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Claim one in-use photo whose keep-until is still `keep_until` and has passed at `as_of`.
pub async fn claim_expired(
    db: impl Executor<'_, Database = Any>,
    id: PhotoId,
    claim: Claim<'_>,
    keep_until: Millis,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update photos set claimed_by = $2, claimed_until = $3 where photo_id = $1 and state = 'in_use' \
         and keep_until = $4 and (claimed_by is null or claimed_until < $5)",
    )
    .bind(id.to_string())
    .bind(claim.token.to_owned())
    .bind(claim.until)
    .bind(keep_until)
    .bind(claim.takeover_before)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Claim a live or signed photo for its uploader's deletion. False when it is not theirs, is
/// already deleted, or clean-up holds it.
pub async fn claim_for_uploader(
    db: impl Executor<'_, Database = Any>,
    id: PhotoId,
    uploader: &str,
    claim: Claim<'_>,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update photos set claimed_by = $3, claimed_until = $4 where photo_id = $1 and uploader_id = $2 \
         and state in ('signed', 'ready', 'in_use') and claimed_by is null",
    )
    .bind(id.to_string())
    .bind(uploader.to_owned())
    .bind(claim.token.to_owned())
    .bind(claim.until)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a row is claimed (being deleted, or waiting for a retry of its deletion).
pub async fn is_claimed(db: impl Executor<'_, Database = Any>, id: PhotoId) -> Result<bool, DbError> {
    let row = sqlx::query("select photo_id from photos where photo_id = $1 and claimed_by is not null")
        .bind(id.to_string())
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

/// A claimed photo whose objects could not all be deleted: keep it doomed, and let the next
/// run (one that starts after `retry_at`) take it.
pub async fn release_for_retry(
    db: impl Executor<'_, Database = Any>,
    id: PhotoId,
    token: &str,
    retry_at: Millis,
) -> Result<(), DbError> {
    sqlx::query("update photos set claimed_by = $3, claimed_until = $4 where photo_id = $1 and claimed_by = $2")
        .bind(id.to_string())
        .bind(token.to_owned())
        .bind(RETRY)
        .bind(retry_at)
        .execute(db)
        .await?;
    Ok(())
}

/// Tombstone one photo this claim holds (its objects are gone). False when the claim was lost.
pub async fn finish(
    db: impl Executor<'_, Database = Any>,
    id: PhotoId,
    token: &str,
    reason: &str,
    now: Millis,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update photos set state = 'deleted', deleted_at = $3, deleted_reason = $4, claimed_by = null, \
         claimed_until = null where photo_id = $1 and claimed_by = $2",
    )
    .bind(id.to_string())
    .bind(token.to_owned())
    .bind(now)
    .bind(reason.to_owned())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Tombstone every photo a batch claim still holds, each with the reason for its state.
pub async fn finish_batch(
    db: impl Executor<'_, Database = Any>,
    token: &str,
    signed_reason: &str,
    ready_reason: &str,
    now: Millis,
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "update photos set deleted_reason = case when state = 'signed' then $3 else $4 end, state = 'deleted', \
         deleted_at = $2, claimed_by = null, claimed_until = null where claimed_by = $1",
    )
    .bind(token.to_owned())
    .bind(now)
    .bind(signed_reason.to_owned())
    .bind(ready_reason.to_owned())
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// In-use photos not claimed whose keep-until passed at `as_of`, after `(keep_until, id)` in
/// that order: a page of the keep-until scan. Keyset paging, so photos the scan leaves alone
/// (an error) are not met again in the same run.
pub async fn due_for_keep_check(
    db: impl Executor<'_, Database = Any>,
    as_of: Millis,
    after: Option<(Millis, PhotoId)>,
    limit: i64,
) -> Result<Vec<Photo>, DbError> {
    let (k, id) = after.map_or((Millis::MIN, String::new()), |(k, id)| (k, id.to_string()));
    let rows = sqlx::query(&format!(
        "select {COLUMNS} from photos where state = 'in_use' and keep_until <= $1 and claimed_by is null \
         and (keep_until > $2 or (keep_until = $2 and photo_id > $3)) order by keep_until, photo_id limit $4"
    ))
    .bind(as_of)
    .bind(k)
    .bind(id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The newest in-use photo of the same kind by the same uploader attached after `photo`.
pub async fn newer_in_use(db: impl Executor<'_, Database = Any>, photo: &Photo) -> Result<Option<PhotoId>, DbError> {
    let row = sqlx::query(
        "select photo_id from photos where uploader_id = $1 and kind = $2 and state = 'in_use' \
         and photo_id <> $3 and attached_at >= $4 order by attached_at desc limit 1",
    )
    .bind(photo.uploader.to_string())
    .bind(photo.kind.clone())
    .bind(photo.id.to_string())
    .bind(photo.attached_at.unwrap_or(Millis::MIN))
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        let id: String = super::col(&r, "photo_id")?;
        id.parse().map_err(|_| DbError::Corrupt(format!("photo id {id:?}")))
    })
    .transpose()
}

/// Move an in-use photo's keep-until from `old` to `new`. False when it changed meanwhile.
pub async fn set_keep_until(
    db: impl Executor<'_, Database = Any>,
    id: PhotoId,
    old: Millis,
    new: Option<Millis>,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update photos set keep_until = $3 where photo_id = $1 and state = 'in_use' and keep_until = $2 \
         and claimed_by is null",
    )
    .bind(id.to_string())
    .bind(old)
    .bind(new)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Release the uploader's other in-use photos of a kind: their keep-until becomes `now`, so
/// clean-up asks their kind whether they may go.
pub async fn release_others(db: impl Executor<'_, Database = Any>, photo: &Photo, now: Millis) -> Result<u64, DbError> {
    let done = sqlx::query(
        "update photos set keep_until = $4 where uploader_id = $1 and kind = $2 and state = 'in_use' \
         and photo_id <> $3 and (keep_until is null or keep_until > $4)",
    )
    .bind(photo.uploader.to_string())
    .bind(photo.kind.clone())
    .bind(photo.id.to_string())
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// The state of the photo whose form uploads to `key`, if a row knows it.
pub async fn state_of_incoming(db: impl Executor<'_, Database = Any>, key: &str) -> Result<Option<String>, DbError> {
    let row =
        sqlx::query("select state from photos where incoming_key = $1").bind(key.to_owned()).fetch_optional(db).await?;
    row.map(|r| super::col(&r, "state")).transpose()
}

/// A page of the photos [`claim_abandoned`] would claim, after `(created_at, id)`, without
/// claiming them: what a dry run reports.
pub async fn abandoned_page(
    db: impl Executor<'_, Database = Any>,
    cutoff: Millis,
    after: Option<(Millis, PhotoId)>,
    limit: i64,
) -> Result<Vec<Photo>, DbError> {
    let (c, id) = after.map_or((Millis::MIN, String::new()), |(c, id)| (c, id.to_string()));
    let rows = sqlx::query(&format!(
        "select {COLUMNS} from photos where state in ('signed', 'ready') and created_at <= $1 \
         and (created_at > $2 or (created_at = $2 and photo_id > $3)) order by created_at, photo_id limit $4"
    ))
    .bind(cutoff)
    .bind(c)
    .bind(id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}
