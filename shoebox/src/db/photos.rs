//! Queries on `photos`. Each lifecycle move is one conditional update that names the state it
//! leaves, so of two racing requests exactly one sees `true`.

use super::{Db, DbError, DbRow, Ex, col, one, run};
use crate::domain::{Millis, Photo, PhotoId, PhotoState, UserId};
use crate::imaging::ImageType;

pub(super) const COLUMNS: &str = "photo_id, kind, bucket, uploader_id, state, incoming_key, object_key, declared_type, \
    image_type, max_bytes, byte_size, width, height, filename, form_expires_at, created_at, verified_at, \
    attached_at, keep_until, deleted_at, deleted_reason";

pub async fn get(db: impl Into<Ex<'_>>, id: PhotoId) -> Result<Option<Photo>, DbError> {
    let row = run!(db, |c| sqlx::query(&format!("select {COLUMNS} from shoebox_photos where photo_id = $1"))
        .bind(id.to_string())
        .fetch_optional(c)
        .await
        .map_err(DbError::from)
        .and_then(|row| one(row, from_row)))?;
    Ok(row)
}

/// How long a form window stays open.
pub const FORM_WINDOW_MILLIS: Millis = 60_000;

/// Whether a form was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    Recorded,
    /// The uploader's window is full until this time; nothing was written.
    Limited {
        until: Millis,
    },
}

/// Record a freshly signed form, unless its uploader's current window already holds `limit`
/// forms of the same style: forms rendered into pages (no declared type) and forms asked for by
/// a script (a declared type) are counted apart, so page views cannot use up the uploads'
/// allowance. A window opens with the first form after the last one closed and lasts a minute.
///
/// The window is a row in the database, so the limit holds across every dyno, and the decision
/// and the photo row are written together. On Postgres that is one statement (one round trip):
/// the upsert re-checks its `where` against the latest version of the window row under that
/// row's lock, so of concurrent forms exactly `limit` get through. SQLite has no data-modifying
/// `with`, so there it is the same upsert and insert in one transaction under its single writer.
pub async fn insert_signed_within_limit(db: &Db, p: &Photo, limit: i64) -> Result<Signed, DbError> {
    let style = if p.declared_type.is_none() { "page" } else { "script" };
    let closed_before = p.created_at - FORM_WINDOW_MILLIS;
    let recorded = match db {
        Db::Postgres(pool) => {
            let sql = format!(
                "with win as ({}) insert into shoebox_photos ({SIGNED_COLUMNS}) select {SIGNED_VALUES} from win",
                open_or_count_form("$4", "$10", "$11", "$12", "$13"),
            );
            let q = bind_signed!(sqlx::query(&sql), p).bind(closed_before).bind(limit).bind(style);
            q.execute(pool).await?.rows_affected() == 1
        }
        Db::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            let room = sqlx::query(&open_or_count_form("$1", "$2", "$3", "$4", "$5"))
                .bind(p.uploader.as_str())
                .bind(p.created_at)
                .bind(closed_before)
                .bind(limit)
                .bind(style)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if room {
                let sql = format!("insert into shoebox_photos ({SIGNED_COLUMNS}) values ({SIGNED_VALUES})");
                bind_signed!(sqlx::query(&sql), p).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            room
        }
    };
    if recorded {
        return Ok(Signed::Recorded);
    }
    let opened: Option<Millis> = run!(db, |c| sqlx::query_scalar(
        "select opened_at from shoebox_form_windows where uploader_id = $1 and style = $2"
    )
    .bind(p.uploader.as_str())
    .bind(style)
    .fetch_optional(c)
    .await)?;
    Ok(Signed::Limited { until: opened.unwrap_or(p.created_at) + FORM_WINDOW_MILLIS })
}

const SIGNED_COLUMNS: &str = "photo_id, kind, bucket, uploader_id, state, incoming_key, declared_type, max_bytes, \
    filename, form_expires_at, created_at";

/// The ten values [`bind_signed!`] binds, in [`SIGNED_COLUMNS`] order with the state.
const SIGNED_VALUES: &str = "$1, $2, $3, $4, 'signed', $5, $6, $7, $8, $9, $10";

/// Bind a signed photo's ten values to a query of either backend.
macro_rules! bind_signed {
    ($q:expr, $p:expr) => {
        $q.bind($p.id.to_string())
            .bind($p.kind.clone())
            .bind($p.bucket.clone())
            .bind($p.uploader.as_str().to_owned())
            .bind($p.incoming_key.clone())
            .bind($p.declared_type.map(|t| t.mime().to_owned()))
            .bind($p.max_bytes)
            .bind($p.filename.clone())
            .bind($p.form_expires_at)
            .bind($p.created_at)
    };
}
use bind_signed;

/// Open a new window, or count one more form in the open one; returns a row only when there was
/// room. A window opened at or before `closed_before` is over, and the form opens the next.
fn open_or_count_form(uploader: &str, now: &str, closed_before: &str, limit: &str, style: &str) -> String {
    format!(
        "insert into shoebox_form_windows (uploader_id, style, opened_at, forms) values ({uploader}, {style}, {now}, 1) \
         on conflict (uploader_id, style) do update set \
         opened_at = case when shoebox_form_windows.opened_at <= {closed_before} then excluded.opened_at \
             else shoebox_form_windows.opened_at end, \
         forms = case when shoebox_form_windows.opened_at <= {closed_before} then 1 else shoebox_form_windows.forms + 1 end \
         where shoebox_form_windows.opened_at <= {closed_before} or shoebox_form_windows.forms < {limit} \
         returning uploader_id"
    )
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
pub async fn mark_ready(db: impl Into<Ex<'_>>, id: PhotoId, v: &Verified, now: Millis) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_photos set state = 'ready', object_key = $2, image_type = $3, byte_size = $4, width = $5, \
         height = $6, verified_at = $7 where photo_id = $1 and state = 'signed' and claimed_by is null",
    )
    .bind(id.to_string())
    .bind(v.object_key.clone())
    .bind(v.image_type.mime().to_owned())
    .bind(v.byte_size)
    .bind(v.width)
    .bind(v.height)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// `from` → `deleted`, recording why. False when the photo was not in `from` any more.
pub async fn mark_deleted(
    db: impl Into<Ex<'_>>,
    id: PhotoId,
    from: PhotoState,
    reason: &str,
    now: Millis,
) -> Result<bool, DbError> {
    let done = run!(db, |c| {
        sqlx::query(
        "update shoebox_photos set state = 'deleted', deleted_at = $3, deleted_reason = $4 where photo_id = $1 and state = $2",
    )
    .bind(id.to_string())
    .bind(from.as_str())
    .bind(now)
    .bind(reason.to_owned())
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(done == 1)
}

/// `ready` or `released` → `in_use`. False when the photo was in neither, or clean-up had
/// claimed it: a claimed photo is being deleted, so attach loses to clean-up (and answers 410).
pub async fn attach(
    db: impl Into<Ex<'_>>,
    id: PhotoId,
    keep_until: Option<Millis>,
    now: Millis,
) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_photos set state = 'in_use', attached_at = $2, keep_until = $3 where photo_id = $1 \
         and state in ('ready', 'released') and claimed_by is null",
    )
    .bind(id.to_string())
    .bind(now)
    .bind(keep_until)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// `in_use` → `released`, kept until `keep_until` (then clean-up asks its kind whether it may
/// go). False when the photo was not in use, or clean-up had claimed it.
pub async fn release(db: impl Into<Ex<'_>>, id: PhotoId, keep_until: Millis) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_photos set state = 'released', keep_until = $2 where photo_id = $1 and state = 'in_use' \
         and claimed_by is null",
    )
    .bind(id.to_string())
    .bind(keep_until)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// An uploader's live photos (ready, in use or released), newest first.
pub async fn list_live_for_user(db: impl Into<Ex<'_>>, user: &UserId) -> Result<Vec<Photo>, DbError> {
    let sql = format!(
        "select {COLUMNS} from shoebox_photos where uploader_id = $1 and state in ('ready', 'in_use', 'released') \
         order by created_at desc, photo_id"
    );
    let rows = run!(db, |c| {
        let rows = sqlx::query(&sql).bind(user.as_str()).fetch_all(c).await?;
        rows.iter().map(from_row).collect::<Result<Vec<_>, DbError>>()
    })?;
    Ok(rows)
}

pub(super) fn from_row(r: &impl DbRow) -> Result<Photo, DbError> {
    let id: String = col(r, "photo_id")?;
    let state: String = col(r, "state")?;
    let mime = |name: &str| -> Result<Option<ImageType>, DbError> {
        col::<Option<String>>(r, name)?
            .map(|m| ImageType::from_mime(&m).ok_or_else(|| DbError::Corrupt(format!("{name} {m:?}"))))
            .transpose()
    };
    let uploader: String = col(r, "uploader_id")?;
    Ok(Photo {
        id: id.parse().map_err(|_| DbError::Corrupt(format!("photo id {id:?}")))?,
        kind: col(r, "kind")?,
        bucket: col(r, "bucket")?,
        uploader: UserId::new(uploader.clone()).map_err(|_| DbError::Corrupt(format!("uploader id {uploader:?}")))?,
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
