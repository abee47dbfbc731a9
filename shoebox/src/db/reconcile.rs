//! Queries for `reconcile`: which listed objects a live row knows, and which objects live rows
//! expect to exist. Only rows that are not tombstones count: a tombstone's objects should be
//! gone, so an object that only a tombstone names is an orphan.

use super::{Db, DbError, Ex, col, each, run};
use crate::domain::Millis;

/// Of these incoming keys (one per listed object's upload token), the ones a live row of
/// `bucket` was signed with. Every object of a photo (upload, original, variants) is named by
/// its token, so this one lookup per listing page tells known objects from unknown ones.
pub async fn live_incoming_keys(
    db: impl Into<Ex<'_>>,
    bucket: &str,
    incoming_keys: &[String],
) -> Result<Vec<String>, DbError> {
    if incoming_keys.is_empty() {
        return Ok(Vec::new());
    }
    // One placeholder per key: both backends take `$n`, and a page holds at most 1000 keys,
    // well under either backend's limit on bound parameters.
    let list = (2..incoming_keys.len() + 2).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "select incoming_key from shoebox_photos where bucket = $1 and state <> 'deleted' and incoming_key in ({list})"
    );
    run!(db, |c| {
        let mut query = sqlx::query(&sql).bind(bucket.to_owned());
        for k in incoming_keys {
            query = query.bind(k.clone());
        }
        each(query.fetch_all(c).await?, |r| col(r, "incoming_key"))
    })
}

/// How many live (not tombstoned) rows name `bucket`: none at all, beside a bucket full of
/// objects, means this is not the database that bucket belongs to.
pub async fn live_rows(db: impl Into<Ex<'_>>, bucket: &str) -> Result<i64, DbError> {
    let row =
        run!(db, |c| sqlx::query("select count(*) as n from shoebox_photos where bucket = $1 and state <> 'deleted'")
            .bind(bucket.to_owned())
            .fetch_one(c)
            .await
            .map_err(DbError::from)
            .and_then(|row| col(&row, "n")))?;
    Ok(row)
}

/// An object a live row says exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedObject {
    pub photo_id: String,
    pub key: String,
    /// When the object was recorded (the original's verification, the variant's making):
    /// a listing that started before this may have passed its key before it was written.
    pub since: Millis,
}

/// One page, in byte order of the key after `after`, of the objects live rows of `bucket` say
/// exist: the originals of verified photos and their finished variants. (A signed row's
/// upload may never have been posted, and a variant being made has no object yet: neither is
/// expected.) Byte order is the order S3 lists keys in, so the two can be merged; Postgres
/// would otherwise compare text by the database's collation, which orders `-`, `.` and `/`
/// differently.
pub async fn expected_page(db: &Db, bucket: &str, after: &str, limit: i64) -> Result<Vec<ExpectedObject>, DbError> {
    let bytes = match db {
        Db::Postgres(_) => "collate \"C\"",
        Db::Sqlite(_) => "collate binary",
    };
    let sql = format!(
        "select photo_id, k, since from ( \
           select photo_id, object_key as k, coalesce(verified_at, created_at) as since from shoebox_photos \
             where bucket = $1 and state in ('ready', 'in_use', 'released') and object_key is not null \
             and object_key {bytes} > $2 \
           union all \
           select v.photo_id as photo_id, v.object_key as k, coalesce(v.made_at, v.claimed_at) as since \
             from shoebox_variants v join shoebox_photos p on p.photo_id = v.photo_id \
             where p.bucket = $1 and p.state in ('ready', 'in_use', 'released') and v.state = 'ready' \
             and v.object_key {bytes} > $2 \
         ) expected order by k {bytes} limit $3"
    );
    run!(db, |c| {
        sqlx::query(&sql)
            .bind(bucket.to_owned())
            .bind(after.to_owned())
            .bind(limit)
            .fetch_all(c)
            .await
            .map_err(DbError::from)
            .and_then(|rows| {
                each(rows, |r| {
                    Ok(ExpectedObject { photo_id: col(r, "photo_id")?, key: col(r, "k")?, since: col(r, "since")? })
                })
            })
    })
}
