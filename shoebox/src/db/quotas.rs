//! Quotas: the count an uploader's usage of a kind is checked against, and the turn rows
//! (`shoebox_quota_turns`) that make the check exact under concurrency.
//!
//! The usage is never stored. It is counted from `shoebox_photos` each time: verified photos
//! (ready, in use, released) by their stored size; forms signed by a script and not yet
//! completed by their declared size (the most their form lets through) until they expire;
//! nothing for tombstones. Forms rendered into pages count nothing: every upload page carries
//! one, most are never used (the page's script asks for a form of its own), and an upload
//! through one is counted when it completes instead.
//!
//! # Why the check is exact
//!
//! Every write that adds to one uploader's usage of one kind (a form signed, an upload
//! completed) moves that pair's turn row forward in the same transaction, and only after a
//! count that saw the turn it replaces. Writes that lower usage (a deletion, a form expiring, a
//! photo verified smaller than declared) take no turn: a count that misses one of those is too
//! high, never too low, so it can refuse what a moment later would fit but never admit too much.
//!
//! On Postgres the usual path is one statement ([`fits_and_turn`]): count, then upsert the turn
//! row to `seen + 1` only where it still holds `seen`. Under READ COMMITTED the count and `seen`
//! are read from the statement's snapshot, taken when it starts; but an upsert that meets an
//! existing row waits for whoever holds that row's lock and re-checks its `where` against the
//! newest committed version. So when the upsert succeeds, no write that adds usage committed
//! between the snapshot and the lock (each would have moved the turn), and every later one
//! waits on our row lock until we commit, then finds the turn moved: the count was the truth.
//! When the turn moved, the statement writes nothing and the caller decides again in a
//! transaction that takes the turn first and counts after ([`take_turn`], [`count`]); READ
//! COMMITTED gives each statement its own snapshot, so a count made while holding the row sees
//! every write committed before. That fallback is also what SQLite always does: its first
//! statement is a write, so the transaction holds the single writer lock before it counts.
//!
//! A form and a completion of the same uploader and kind are serialized by the same row, and
//! forms rendered into pages and asked for by scripts (which have separate form windows) too.

use super::{DbError, Ex, col, run};
use crate::domain::{Kind, Millis, UserId};

/// A kind's quota as the queries take it: at most this many bytes and photos per uploader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_bytes: Option<i64>,
    pub max_photos: Option<i64>,
}

impl Quota {
    /// The kind's quota, if it has one.
    pub fn of(kind: &dyn Kind) -> Option<Self> {
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let q = Self {
            max_bytes: kind.max_bytes_per_user().map(as_i64),
            max_photos: kind.max_photos_per_user().map(as_i64),
        };
        (q.max_bytes.is_some() || q.max_photos.is_some()).then_some(q)
    }

    /// Which limit adding one photo of `bytes` to `used` would pass, if any. The photo limit is
    /// said first: when it is reached, no photo fits, whatever its size.
    pub fn exceeded_by(&self, used: Counted, bytes: i64) -> Option<Over> {
        if self.max_photos.is_some_and(|max| used.photos.saturating_add(1) > max) {
            return Some(Over::Photos);
        }
        if self.max_bytes.is_some_and(|max| used.bytes.saturating_add(bytes) > max) {
            return Some(Over::Bytes);
        }
        None
    }
}

/// Which limit of a quota a photo would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Bytes,
    Photos,
}

/// What the ledger counts for one uploader and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counted {
    pub bytes: i64,
    pub photos: i64,
}

/// The count, as a query of either backend: `uploader`, `kind` and `now` are placeholders;
/// `except` leaves one photo out (the one being completed, which then counts by its real size).
pub(super) fn usage_sql(uploader: &str, kind: &str, now: &str, except: Option<&str>) -> String {
    let except = except.map(|id| format!(" and photo_id <> {id}")).unwrap_or_default();
    format!(
        "select cast(coalesce(sum(case when state = 'signed' then max_bytes else byte_size end), 0) as bigint) as bytes, \
         count(*) as photos from shoebox_photos \
         where uploader_id = {uploader} and kind = {kind} and state <> 'deleted' \
         and (state <> 'signed' or (declared_type is not null and form_expires_at > {now})){except}"
    )
}

/// Postgres only: the common table expressions `fits` (one row when one more photo of `bytes`
/// keeps the count `usage` within `max_bytes` and `max_photos`, bigint placeholders that may be
/// null) and `turn` (the turn moved on, only when it is still the one this statement's snapshot
/// saw; no row otherwise). The statement that uses them writes only `from turn`.
pub(super) fn fits_and_turn(uploader: &str, kind: &str, bytes: &str, max_bytes: &str, max_photos: &str) -> String {
    format!(
        "fits as (select 1 as one from usage \
             where ({max_bytes}::bigint is null or usage.bytes + {bytes} <= {max_bytes}::bigint) \
             and ({max_photos}::bigint is null or usage.photos + 1 <= {max_photos}::bigint)), \
         turn as (insert into shoebox_quota_turns (uploader_id, kind, turn) \
             select {uploader}, {kind}, coalesce((select turn from shoebox_quota_turns \
                 where uploader_id = {uploader} and kind = {kind}), 0) + 1 from fits \
             on conflict (uploader_id, kind) do update set turn = excluded.turn \
             where shoebox_quota_turns.turn = excluded.turn - 1 \
             returning turn)"
    )
}

/// Move the turn of `uploader`'s photos of `kind` on, waiting for whoever holds it: inside a
/// transaction, what is counted after this sees every write that added usage before it.
pub(super) async fn take_turn(ex: impl Into<Ex<'_>>, uploader: &UserId, kind: &str) -> Result<(), DbError> {
    run!(ex, |c| sqlx::query(
        "insert into shoebox_quota_turns (uploader_id, kind, turn) values ($1, $2, 1) \
         on conflict (uploader_id, kind) do update set turn = shoebox_quota_turns.turn + 1",
    )
    .bind(uploader.as_str())
    .bind(kind)
    .execute(c)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// `uploader`'s usage of `kind` at `now`, leaving out the photo `except` if given.
pub(crate) async fn count(
    ex: impl Into<Ex<'_>>,
    uploader: &UserId,
    kind: &str,
    now: Millis,
    except: Option<&str>,
) -> Result<Counted, DbError> {
    let sql = usage_sql("$1", "$2", "$3", except.map(|_| "$4"));
    run!(ex, |c| {
        let mut q = sqlx::query(&sql).bind(uploader.as_str()).bind(kind).bind(now);
        if let Some(id) = except {
            q = q.bind(id);
        }
        let row = q.fetch_one(c).await?;
        Ok(Counted { bytes: col(&row, "bytes")?, photos: col(&row, "photos")? })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_photo_limit_is_said_first_and_limits_are_inclusive() {
        let q = Quota { max_bytes: Some(100), max_photos: Some(3) };
        assert_eq!(q.exceeded_by(Counted { bytes: 60, photos: 2 }, 40), None, "exactly full is allowed");
        assert_eq!(q.exceeded_by(Counted { bytes: 60, photos: 2 }, 41), Some(Over::Bytes));
        assert_eq!(q.exceeded_by(Counted { bytes: 0, photos: 3 }, 1), Some(Over::Photos));
        assert_eq!(q.exceeded_by(Counted { bytes: 100, photos: 3 }, 1), Some(Over::Photos));
        let bytes_only = Quota { max_bytes: Some(10), max_photos: None };
        assert_eq!(bytes_only.exceeded_by(Counted { bytes: 0, photos: i64::MAX }, 10), None);
    }
}
