//! Queries on `photos`. Each lifecycle move is one conditional update that names the state it
//! leaves, so of two racing requests exactly one sees `true`.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use super::users::parse_id;
use super::{Backend, Db, DbError, col};
use crate::domain::{Millis, Photo, PhotoId, PhotoState, UserId};
use crate::imaging::ImageType;

pub(super) const COLUMNS: &str = "photo_id, kind, bucket, uploader_id, state, incoming_key, object_key, declared_type, \
    image_type, max_bytes, byte_size, width, height, filename, form_expires_at, created_at, verified_at, \
    attached_at, keep_until, deleted_at, deleted_reason";

pub async fn get(db: impl Executor<'_, Database = Any>, id: PhotoId) -> Result<Option<Photo>, DbError> {
    let row = sqlx::query(&format!("select {COLUMNS} from photos where photo_id = $1"))
        .bind(id.to_string())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Record a freshly signed form, unless its uploader was already issued `limit` forms of the
/// same style since `since`: forms rendered into pages (no declared type) and forms asked for
/// by a script (a declared type) are counted apart, so page views cannot use up the uploads'
/// allowance. Returns false (and writes nothing) when the limit is reached.
///
/// The limit counts rows, so it holds across every dyno without shared memory, and the count
/// and the insert are one decision even under concurrency: SQLite runs the single
/// `insert … select … where count < limit` under its one write lock; Postgres, whose
/// read-committed statements would each count from their own snapshot, first takes a
/// transaction-scoped advisory lock on the uploader, so their forms are decided one at a time.
pub async fn insert_signed_within_limit(db: &Db, p: &Photo, since: Millis, limit: i64) -> Result<bool, DbError> {
    let style = if p.declared_type.is_none() { "declared_type is null" } else { "declared_type is not null" };
    let insert = format!(
        "insert into photos (photo_id, kind, bucket, uploader_id, state, incoming_key, declared_type, max_bytes, \
         filename, form_expires_at, created_at) \
         select $1, $2, $3, $4, 'signed', $5, $6, $7, $8, $9, $10 \
         where (select count(*) from photos where uploader_id = $4 and created_at >= $11 and {style}) < $12"
    );
    let query = sqlx::query(&insert)
        .bind(p.id.to_string())
        .bind(p.kind.clone())
        .bind(p.bucket.clone())
        .bind(p.uploader.to_string())
        .bind(p.incoming_key.clone())
        .bind(p.declared_type.map(|t| t.mime().to_owned()))
        .bind(p.max_bytes)
        .bind(p.filename.clone())
        .bind(p.form_expires_at)
        .bind(p.created_at)
        .bind(since)
        .bind(limit);
    let inserted = match db.backend() {
        Backend::Sqlite => query.execute(db).await?.rows_affected(),
        Backend::Postgres => {
            let mut tx = db.begin().await?;
            sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 7))::text as locked")
                .bind(p.uploader.to_string())
                .fetch_one(&mut *tx)
                .await?;
            let n = query.execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n
        }
    };
    Ok(inserted == 1)
}

/// What verification found out about an upload.
#[derive(Debug, Clone)]
pub struct Verified {
    pub object_key: String,
    pub image_type: ImageType,
    pub byte_size: i64,
    pub width: i64,
    pub height: i64,
}

/// `signed` → `ready`. False when the photo was not `signed` any more, or clean-up claimed it
/// (its objects are being deleted).
pub async fn mark_ready(
    db: impl Executor<'_, Database = Any>,
    id: PhotoId,
    v: &Verified,
    now: Millis,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update photos set state = 'ready', object_key = $2, image_type = $3, byte_size = $4, width = $5, \
         height = $6, verified_at = $7 where photo_id = $1 and state = 'signed' and claimed_by is null",
    )
    .bind(id.to_string())
    .bind(v.object_key.clone())
    .bind(v.image_type.mime().to_owned())
    .bind(v.byte_size)
    .bind(v.width)
    .bind(v.height)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `from` → `deleted`, recording why. False when the photo was not in `from` any more.
pub async fn mark_deleted(
    db: impl Executor<'_, Database = Any>,
    id: PhotoId,
    from: PhotoState,
    reason: &str,
    now: Millis,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update photos set state = 'deleted', deleted_at = $3, deleted_reason = $4 where photo_id = $1 and state = $2",
    )
    .bind(id.to_string())
    .bind(from.as_str())
    .bind(now)
    .bind(reason.to_owned())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `ready` → `in_use`. False when the photo was not `ready`, or clean-up had claimed it: a
/// claimed photo is being deleted, so attach loses to clean-up (and answers 410).
pub async fn attach(
    db: impl Executor<'_, Database = Any>,
    id: PhotoId,
    keep_until: Option<Millis>,
    now: Millis,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update photos set state = 'in_use', attached_at = $2, keep_until = $3 where photo_id = $1 and state = 'ready' \
         and claimed_by is null",
    )
    .bind(id.to_string())
    .bind(now)
    .bind(keep_until)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A user's live photos (ready or in use), newest first.
pub async fn list_live_for_user(db: impl Executor<'_, Database = Any>, user: UserId) -> Result<Vec<Photo>, DbError> {
    let rows = sqlx::query(&format!(
        "select {COLUMNS} from photos where uploader_id = $1 and state in ('ready', 'in_use') \
         order by created_at desc, photo_id"
    ))
    .bind(user.to_string())
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

pub(super) fn from_row(r: &AnyRow) -> Result<Photo, DbError> {
    let id: String = col(r, "photo_id")?;
    let state: String = col(r, "state")?;
    let mime = |name: &str| -> Result<Option<ImageType>, DbError> {
        col::<Option<String>>(r, name)?
            .map(|m| ImageType::from_mime(&m).ok_or_else(|| DbError::Corrupt(format!("{name} {m:?}"))))
            .transpose()
    };
    Ok(Photo {
        id: id.parse().map_err(|_| DbError::Corrupt(format!("photo id {id:?}")))?,
        kind: col(r, "kind")?,
        bucket: col(r, "bucket")?,
        uploader: parse_id(&col::<String>(r, "uploader_id")?)?,
        state: PhotoState::parse(&state).ok_or_else(|| DbError::Corrupt(format!("state {state:?}")))?,
        incoming_key: col(r, "incoming_key")?,
        object_key: col(r, "object_key")?,
        declared_type: mime("declared_type")?,
        image_type: mime("image_type")?,
        max_bytes: col(r, "max_bytes")?,
        byte_size: col(r, "byte_size")?,
        width: col(r, "width")?,
        height: col(r, "height")?,
        filename: col(r, "filename")?,
        form_expires_at: col(r, "form_expires_at")?,
        created_at: col(r, "created_at")?,
        verified_at: col(r, "verified_at")?,
        attached_at: col(r, "attached_at")?,
        keep_until: col(r, "keep_until")?,
        deleted_at: col(r, "deleted_at")?,
        deleted_reason: col(r, "deleted_reason")?,
    })
}
