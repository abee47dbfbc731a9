//! Queries on `variants`. The row is the claim: inserting it under the uniqueness constraint
//! decides which process makes a variant, and every later move names the state it leaves.

use super::{DbError, DbRow, Ex, col, each, one, run};
use crate::domain::{Millis, PhotoId, UserId};
use crate::imaging::ImageType;

/// Where a variant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariantState {
    Making,
    Ready,
    Failed,
}

/// One variant row.
#[derive(Debug, Clone)]
pub struct VariantRow {
    pub photo_id: String,
    pub name: String,
    pub recipe_hash: String,
    pub state: VariantState,
    pub object_key: Option<String>,
    pub image_type: Option<ImageType>,
    pub claimed_at: Millis,
}

/// What was made, recorded when the object is in the bucket.
#[derive(Debug, Clone)]
pub struct Made {
    pub object_key: String,
    pub image_type: ImageType,
    pub width: i64,
    pub height: i64,
    pub byte_size: i64,
}

const COLUMNS: &str =
    "photo_id, name, recipe_hash, state, object_key, image_type, width, height, byte_size, claimed_at, failure";

/// Claim a variant nobody has started: true when this caller inserted the row and so makes it.
pub async fn claim_new(
    db: impl Into<Ex<'_>>,
    photo: PhotoId,
    name: &str,
    hash: &str,
    now: Millis,
) -> Result<bool, DbError> {
    let done = run!(db, |c| {
        sqlx::query(
        "insert into shoebox_variants (photo_id, name, recipe_hash, state, claimed_at) values ($1, $2, $3, 'making', $4) \
         on conflict do nothing",
    )
    .bind(photo.to_string())
    .bind(name.to_owned())
    .bind(hash.to_owned())
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

/// Take over a claim: a `making` row claimed at `claimed_at` (whose maker is presumed dead), or
/// a `failed` one being retried. True when this caller won it.
pub async fn take_over(db: impl Into<Ex<'_>>, row: &VariantRow, now: Millis) -> Result<bool, DbError> {
    let from = match row.state {
        VariantState::Making => "making",
        VariantState::Failed => "failed",
        VariantState::Ready => return Ok(false),
    };
    let done = run!(db, |c| sqlx::query(
        "update shoebox_variants set state = 'making', claimed_at = $5, failure = null \
         where photo_id = $1 and name = $2 and recipe_hash = $3 and state = $4 and claimed_at = $6",
    )
    .bind(row.photo_id.clone())
    .bind(row.name.clone())
    .bind(row.recipe_hash.clone())
    .bind(from)
    .bind(now)
    .bind(row.claimed_at)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// `making` → `ready`, with what was written.
pub async fn mark_ready(
    db: impl Into<Ex<'_>>,
    photo: PhotoId,
    name: &str,
    hash: &str,
    made: &Made,
    now: Millis,
) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_variants set state = 'ready', object_key = $4, image_type = $5, width = $6, height = $7, \
         byte_size = $8, made_at = $9 where photo_id = $1 and name = $2 and recipe_hash = $3 and state = 'making'",
    )
    .bind(photo.to_string())
    .bind(name.to_owned())
    .bind(hash.to_owned())
    .bind(made.object_key.clone())
    .bind(made.image_type.mime().to_owned())
    .bind(made.width)
    .bind(made.height)
    .bind(made.byte_size)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// `making` → `failed`, saying why.
pub async fn mark_failed(
    db: impl Into<Ex<'_>>,
    photo: PhotoId,
    name: &str,
    hash: &str,
    reason: &str,
) -> Result<(), DbError> {
    run!(db, |c| sqlx::query(
        "update shoebox_variants set state = 'failed', failure = $4 \
         where photo_id = $1 and name = $2 and recipe_hash = $3 and state = 'making'",
    )
    .bind(photo.to_string())
    .bind(name.to_owned())
    .bind(hash.to_owned())
    .bind(reason.to_owned())
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get(db: impl Into<Ex<'_>>, photo: PhotoId, name: &str, hash: &str) -> Result<Option<VariantRow>, DbError> {
    let row = run!(db, |c| sqlx::query(&format!(
        "select {COLUMNS} from shoebox_variants where photo_id = $1 and name = $2 and recipe_hash = $3"
    ))
    .bind(photo.to_string())
    .bind(name.to_owned())
    .bind(hash.to_owned())
    .fetch_optional(c)
    .await
    .map_err(DbError::from)
    .and_then(|row| one(row, from_row)))?;
    Ok(row)
}

/// Every variant row of a photo, of any recipe (old recipes' objects still need deleting).
pub async fn list_for_photo(db: impl Into<Ex<'_>>, photo: PhotoId) -> Result<Vec<VariantRow>, DbError> {
    let rows = run!(db, |c| sqlx::query(&format!(
        "select {COLUMNS} from shoebox_variants where photo_id = $1 order by name, recipe_hash"
    ))
    .bind(photo.to_string())
    .fetch_all(c)
    .await
    .map_err(DbError::from)
    .and_then(|rows| each(rows, from_row)))?;
    Ok(rows)
}

/// Every variant row of several photos at once (a clean-up batch: one query, not one each).
pub async fn list_for_photos(db: impl Into<Ex<'_>>, photos: &[PhotoId]) -> Result<Vec<VariantRow>, DbError> {
    if photos.is_empty() {
        return Ok(Vec::new());
    }
    let params = (1..=photos.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "select {COLUMNS} from shoebox_variants where photo_id in ({params}) order by photo_id, name, recipe_hash"
    );
    run!(db, |c| {
        let mut query = sqlx::query(&sql);
        for id in photos {
            query = query.bind(id.to_string());
        }
        each(query.fetch_all(c).await?, from_row)
    })
}

/// The ready variants of a user's live photos, for the home page's grid in one query.
pub async fn ready_for_uploader(db: impl Into<Ex<'_>>, user: &UserId) -> Result<Vec<VariantRow>, DbError> {
    let cols = COLUMNS.split(", ").map(|c| format!("v.{c}")).collect::<Vec<_>>().join(", ");
    let rows = run!(db, |c| sqlx::query(&format!(
        "select {cols} from shoebox_variants v join shoebox_photos p on p.photo_id = v.photo_id \
         where p.uploader_id = $1 and p.state in ('ready', 'in_use', 'released') and v.state = 'ready'"
    ))
    .bind(user.as_str())
    .fetch_all(c)
    .await
    .map_err(DbError::from)
    .and_then(|rows| each(rows, from_row)))?;
    Ok(rows)
}

fn from_row(r: &impl DbRow) -> Result<VariantRow, DbError> {
    let state: String = col(r, "state")?;
    let image_type = col::<Option<String>>(r, "image_type")?
        .map(|m| ImageType::from_mime(&m).ok_or_else(|| DbError::Corrupt(format!("variant image_type {m:?}"))))
        .transpose()?;
    Ok(VariantRow {
        photo_id: col(r, "photo_id")?,
        name: col(r, "name")?,
        recipe_hash: col(r, "recipe_hash")?,
        state: match state.as_str() {
            "making" => VariantState::Making,
            "ready" => VariantState::Ready,
            "failed" => VariantState::Failed,
            other => return Err(DbError::Corrupt(format!("variant state {other:?}"))),
        },
        object_key: col(r, "object_key")?,
        image_type,
        claimed_at: col(r, "claimed_at")?,
    })
}

/// Give a claim back (`making` row removed) after a failure worth retrying at once, such as the
/// bucket being unreachable, rather than leave it to go stale.
pub async fn release(db: impl Into<Ex<'_>>, photo: PhotoId, name: &str, hash: &str) -> Result<(), DbError> {
    run!(db, |c| sqlx::query(
        "delete from shoebox_variants where photo_id = $1 and name = $2 and recipe_hash = $3 and state = 'making'"
    )
    .bind(photo.to_string())
    .bind(name.to_owned())
    .bind(hash.to_owned())
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Ids of live photos (ready or in use) after `after`, in id order: resize-all's pages.
pub async fn live_photo_ids_after(db: impl Into<Ex<'_>>, after: &str, limit: i64) -> Result<Vec<String>, DbError> {
    let rows = run!(db, |c| sqlx::query(
        "select photo_id from shoebox_photos where state in ('ready', 'in_use', 'released') and photo_id > $1 \
         order by photo_id limit $2",
    )
    .bind(after.to_owned())
    .bind(limit)
    .fetch_all(c)
    .await
    .map_err(DbError::from)
    .and_then(|rows| each(rows, |r| col(r, "photo_id"))))?;
    Ok(rows)
}

/// How many photos are live: the length of resize-all's progress bar.
pub async fn count_live_photos(db: impl Into<Ex<'_>>) -> Result<i64, DbError> {
    run!(db, |c| sqlx::query("select count(*) as n from shoebox_photos where state in ('ready', 'in_use', 'released')")
        .fetch_one(c)
        .await
        .map_err(DbError::from)
        .and_then(|row| col(&row, "n")))
}
