//! Queries on `photos`. Each lifecycle move is one conditional update that names the state it
//! leaves, so of two racing requests exactly one sees `true`.

use super::quotas::{self, Counted, Over, Quota};
use super::{Db, DbError, DbRow, Ex, Tx, col, one, run};
use crate::domain::{Millis, Photo, PhotoId, PhotoState, UserId};
use crate::imaging::ImageType;

pub(super) const COLUMNS: &str = "photo_id, kind, bucket, uploader_id, state, incoming_key, object_key, declared_type, \
    image_type, max_bytes, byte_size, width, height, filename, form_expires_at, created_at, verified_at, \
    attached_at, keep_until, deleted_at, deleted_reason, placeholder";

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
    /// The form would take the uploader past the kind's quota, which holds `used` without it;
    /// nothing was written.
    OverQuota {
        used: Counted,
        over: Over,
    },
}

/// Record a freshly signed form, unless its uploader's current window already holds `limit`
/// forms of the same style, or (when `quota` is given) the form's declared size, `p.max_bytes`,
/// would take the uploader past the kind's quota: forms rendered into pages (no declared type)
/// and forms asked for by a script (a declared type) are counted apart, so page views cannot
/// use up the uploads' allowance. A window opens with the first form after the last one closed
/// and lasts a minute.
///
/// The window is a row in the database, so the limit holds across every dyno, and the decision
/// and the photo row are written together. On Postgres that is one statement (one round trip):
/// the upsert re-checks its `where` against the latest version of the window row under that
/// row's lock, so of concurrent forms exactly `limit` get through. SQLite has no data-modifying
/// `with`, so there it is the same upsert and insert in one transaction under its single writer.
/// With a quota, the same statement first counts the uploader's usage and moves the quota's turn
/// (see [`super::quotas`] for why that is exact); on Postgres, when another form of the same
/// uploader and kind moved the turn first, the form is decided again in a transaction that
/// waits for the turn before counting.
pub async fn insert_signed_within_limit(
    db: &Db,
    p: &Photo,
    limit: i64,
    quota: Option<Quota>,
) -> Result<Signed, DbError> {
    let window = Window::of(p, limit);
    let decided = match (db, quota) {
        (Db::Postgres(pool), None) => {
            let sql = format!(
                "with win as ({}) insert into shoebox_photos ({SIGNED_COLUMNS}) select {SIGNED_VALUES} from win",
                open_or_count_form("values ($4, $13, $10, 1)", "$11", "$12"),
            );
            let q = bind_signed!(sqlx::query(&sql), p).bind(window.closed_before(p)).bind(limit).bind(window.style);
            if q.execute(pool).await?.rows_affected() == 1 { Decided::Recorded } else { Decided::WindowFull }
        }
        (Db::Postgres(pool), Some(quota)) => match sign_in_one_statement(pool, p, &window, quota).await? {
            Some(decided) => decided,
            None => sign_in_turn(db, p, &window, Some(quota)).await?,
        },
        (Db::Sqlite(_), quota) => sign_in_turn(db, p, &window, quota).await?,
    };
    match decided {
        Decided::Recorded => Ok(Signed::Recorded),
        Decided::OverQuota(used, over) => Ok(Signed::OverQuota { used, over }),
        Decided::WindowFull => Ok(Signed::Limited { until: window_reopens(db, p, &window).await? }),
    }
}

/// A form's window: its style's row, and how many forms it may hold.
pub(super) struct Window {
    pub(super) style: &'static str,
    pub(super) limit: i64,
}

impl Window {
    /// The window `p` is counted in: forms rendered into pages (no declared type) and forms
    /// asked for by a script are counted apart.
    pub(super) fn of(p: &Photo, limit: i64) -> Self {
        Self { style: if p.declared_type.is_none() { "page" } else { "script" }, limit }
    }

    /// A window opened at or before this time is over, and the form opens the next.
    pub(super) fn closed_before(&self, p: &Photo) -> Millis {
        p.created_at - FORM_WINDOW_MILLIS
    }
}

/// What became of a form.
enum Decided {
    Recorded,
    WindowFull,
    OverQuota(Counted, Over),
}

/// Postgres, one statement: count, move the quota's turn if the form fits and the turn is the
/// one counted, count the form in its window, write the photo. `None` when another write of the
/// same uploader and kind moved the turn after this statement's snapshot: nothing was written,
/// and the count was stale.
async fn sign_in_one_statement(
    pool: &sqlx::PgPool,
    p: &Photo,
    window: &Window,
    quota: Quota,
) -> Result<Option<Decided>, DbError> {
    let sql = format!(
        "with usage as ({}), {}, win as ({}), \
         recorded as (insert into shoebox_photos ({SIGNED_COLUMNS}) select {SIGNED_VALUES} from win returning 1) \
         select usage.bytes, usage.photos, (select count(*) from turn) as turned, \
         (select count(*) from recorded) as recorded from usage",
        quotas::usage_sql("$4", "$2", "$10", None),
        quotas::fits_and_turn("$4", "$2", "$7", "$14", "$15"),
        open_or_count_form("select $4, $13, $10, 1 from turn", "$11", "$12"),
    );
    let row = bind_signed!(sqlx::query(&sql), p)
        .bind(window.closed_before(p))
        .bind(window.limit)
        .bind(window.style)
        .bind(quota.max_bytes)
        .bind(quota.max_photos)
        .fetch_one(pool)
        .await?;
    let used = Counted { bytes: col(&row, "bytes")?, photos: col(&row, "photos")? };
    let (turned, recorded): (i64, i64) = (col(&row, "turned")?, col(&row, "recorded")?);
    Ok(if recorded == 1 {
        Some(Decided::Recorded)
    } else if turned == 1 {
        Some(Decided::WindowFull)
    } else {
        quota.exceeded_by(used, p.max_bytes).map(|over| Decided::OverQuota(used, over))
    })
}

/// Either backend, one transaction: with a quota, wait for its turn, then count and check;
/// then count the form in its window and write the photo. Nothing is kept unless all of it is.
async fn sign_in_turn(db: &Db, p: &Photo, window: &Window, quota: Option<Quota>) -> Result<Decided, DbError> {
    let mut tx = db.begin().await?;
    if let Some(quota) = quota {
        quotas::take_turn(&mut tx, &p.uploader, &p.kind).await?;
        let used = quotas::count(&mut tx, &p.uploader, &p.kind, p.created_at, None).await?;
        if let Some(over) = quota.exceeded_by(used, p.max_bytes) {
            return Ok(Decided::OverQuota(used, over));
        }
    }
    let closed_before = window.closed_before(p);
    let recorded = match &mut tx {
        Tx::Postgres(t) => {
            let sql = format!(
                "with win as ({}) insert into shoebox_photos ({SIGNED_COLUMNS}) select {SIGNED_VALUES} from win",
                open_or_count_form("values ($4, $13, $10, 1)", "$11", "$12"),
            );
            let q = bind_signed!(sqlx::query(&sql), p).bind(closed_before).bind(window.limit).bind(window.style);
            q.execute(&mut **t).await?.rows_affected() == 1
        }
        Tx::Sqlite(t) => sqlite_sign_one(t, p, window).await?,
    };
    if !recorded {
        return Ok(Decided::WindowFull);
    }
    tx.commit().await?;
    Ok(Decided::Recorded)
}

/// SQLite, inside the caller's transaction (which holds the single writer lock once this
/// writes): count the form in its window and, when there was room, write the photo. Whether it
/// was written.
pub(super) async fn sqlite_sign_one(
    t: &mut sqlx::SqliteConnection,
    p: &Photo,
    window: &Window,
) -> Result<bool, DbError> {
    let room = sqlx::query(&open_or_count_form("values ($1, $5, $2, 1)", "$3", "$4"))
        .bind(p.uploader.as_str())
        .bind(p.created_at)
        .bind(window.closed_before(p))
        .bind(window.limit)
        .bind(window.style)
        .fetch_optional(&mut *t)
        .await?
        .is_some();
    if room {
        let sql = format!("insert into shoebox_photos ({SIGNED_COLUMNS}) values ({SIGNED_VALUES})");
        bind_signed!(sqlx::query(&sql), p).execute(&mut *t).await?;
    }
    Ok(room)
}

/// When the uploader's full window of this style opens again: a minute after it opened.
pub(super) async fn window_reopens(db: impl Into<Ex<'_>>, p: &Photo, window: &Window) -> Result<Millis, DbError> {
    let opened: Option<Millis> = run!(db, |c| sqlx::query_scalar(
        "select opened_at from shoebox_form_windows where uploader_id = $1 and style = $2"
    )
    .bind(p.uploader.as_str())
    .bind(window.style)
    .fetch_optional(c)
    .await)?;
    Ok(opened.unwrap_or(p.created_at) + FORM_WINDOW_MILLIS)
}

pub(super) const SIGNED_COLUMNS: &str = "photo_id, kind, bucket, uploader_id, state, incoming_key, declared_type, max_bytes, \
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
/// room. `row` gives the window's values (uploader, style, now, 1), as `values (...)` or as a
/// `select` from a preceding step. A window opened at or before `closed_before` is over, and the
/// form opens the next.
fn open_or_count_form(row: &str, closed_before: &str, limit: &str) -> String {
    format!(
        "insert into shoebox_form_windows (uploader_id, style, opened_at, forms) {row} \
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
    /// The ThumbHash made from verification's decode, when it could be made.
    pub placeholder: Option<Vec<u8>>,
}

/// What became of a completion's attempt to claim a photo's verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClaim {
    /// This completion holds the claim: it reads the upload and writes the original.
    Taken,
    /// Another completion holds it (on this process or another), until the time given.
    Held,
    /// The photo is not `signed` any more (verified, refused or removed meanwhile), or clean-up
    /// claimed it for deletion: there is nothing left to verify.
    Settled,
}

/// Claim a `signed` photo's verification for `token` until `until`, unless a claim that has
/// not expired at `now` holds it. One conditional update, so of concurrent completions on any
/// number of processes exactly one takes it; a claim left by a process that died is taken over
/// once `until` has passed.
pub async fn claim_verification(
    db: &Db,
    id: PhotoId,
    token: &str,
    now: Millis,
    until: Millis,
) -> Result<VerifyClaim, DbError> {
    let taken = run!(db, |c| sqlx::query(
        "update shoebox_photos set verifying_by = $2, verifying_until = $3 where photo_id = $1 \
         and state = 'signed' and claimed_by is null and (verifying_by is null or verifying_until < $4)",
    )
    .bind(id.to_string())
    .bind(token.to_owned())
    .bind(until)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    if taken == 1 {
        return Ok(VerifyClaim::Taken);
    }
    let held = run!(db, |c| sqlx::query(
        "select photo_id from shoebox_photos where photo_id = $1 and state = 'signed' and claimed_by is null",
    )
    .bind(id.to_string())
    .fetch_optional(c)
    .await
    .map(|r| r.is_some()))?;
    Ok(if held { VerifyClaim::Held } else { VerifyClaim::Settled })
}

/// Give a verification claim back, if `token` still holds it.
pub async fn release_verification(db: &Db, id: PhotoId, token: &str) -> Result<(), DbError> {
    run!(db, |c| {
        sqlx::query(
        "update shoebox_photos set verifying_by = null, verifying_until = null where photo_id = $1 and verifying_by = $2",
    )
    .bind(id.to_string())
    .bind(token.to_owned())
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// `signed` → `ready`. False when the photo was not `signed` any more, or clean-up claimed it
/// (its objects are being deleted).
pub async fn mark_ready(db: impl Into<Ex<'_>>, id: PhotoId, v: &Verified, now: Millis) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_photos set state = 'ready', object_key = $2, image_type = $3, byte_size = $4, width = $5, \
         height = $6, verified_at = $7, placeholder = $8 where photo_id = $1 and state = 'signed' \
         and claimed_by is null",
    )
    .bind(id.to_string())
    .bind(v.object_key.clone())
    .bind(v.image_type.mime().to_owned())
    .bind(v.byte_size)
    .bind(v.width)
    .bind(v.height)
    .bind(now)
    .bind(v.placeholder.as_deref().map(encode_placeholder))
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// What became of an upload's move to `ready` under its kind's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readied {
    Ready,
    /// The photo was not `signed` any more, or clean-up claimed it (as [`mark_ready`]'s false).
    NotSigned,
    /// Its verified size would take its uploader past the quota, which holds `used` without it;
    /// nothing was written.
    OverQuota {
        used: Counted,
        over: Over,
    },
}

/// [`mark_ready`] for a kind with a quota: the photo becomes `ready` only if, counted at its
/// verified size instead of what its form reserved, it keeps its uploader within the quota.
/// A script's form still within its time always fits (it reserved at least as much); a page's
/// form reserved nothing and an expired form no longer reserves, so those are where this
/// decides. Taken in turn with signing, exactly as [`insert_signed_within_limit`] is.
pub async fn mark_ready_within_quota(
    db: &Db,
    p: &Photo,
    v: &Verified,
    now: Millis,
    quota: Quota,
) -> Result<Readied, DbError> {
    if let Db::Postgres(pool) = db {
        let sql = format!(
            "with usage as ({}), {}, \
             readied as (update shoebox_photos set state = 'ready', object_key = $2, image_type = $3, byte_size = $4, \
                 width = $5, height = $6, verified_at = $7, placeholder = $12 from turn \
                 where shoebox_photos.photo_id = $1 and shoebox_photos.state = 'signed' \
                 and shoebox_photos.claimed_by is null returning 1) \
             select usage.bytes, usage.photos, (select count(*) from turn) as turned, \
             (select count(*) from readied) as readied from usage",
            quotas::usage_sql("$8", "$9", "$7", Some("$1")),
            quotas::fits_and_turn("$8", "$9", "$4", "$10", "$11"),
        );
        let row = sqlx::query(&sql)
            .bind(p.id.to_string())
            .bind(v.object_key.clone())
            .bind(v.image_type.mime().to_owned())
            .bind(v.byte_size)
            .bind(v.width)
            .bind(v.height)
            .bind(now)
            .bind(p.uploader.as_str())
            .bind(p.kind.clone())
            .bind(quota.max_bytes)
            .bind(quota.max_photos)
            .bind(v.placeholder.as_deref().map(encode_placeholder))
            .fetch_one(pool)
            .await?;
        let used = Counted { bytes: col(&row, "bytes")?, photos: col(&row, "photos")? };
        let (turned, readied): (i64, i64) = (col(&row, "turned")?, col(&row, "readied")?);
        if turned == 1 {
            return Ok(if readied == 1 { Readied::Ready } else { Readied::NotSigned });
        }
        if let Some(over) = quota.exceeded_by(used, v.byte_size) {
            return Ok(Readied::OverQuota { used, over });
        }
        // The turn moved after this statement's snapshot: decide again, in turn.
    }
    let mut tx = db.begin().await?;
    quotas::take_turn(&mut tx, &p.uploader, &p.kind).await?;
    let used = quotas::count(&mut tx, &p.uploader, &p.kind, now, Some(&p.id.to_string())).await?;
    if let Some(over) = quota.exceeded_by(used, v.byte_size) {
        return Ok(Readied::OverQuota { used, over });
    }
    let ready = mark_ready(&mut tx, p.id, v, now).await?;
    tx.commit().await?;
    Ok(if ready { Readied::Ready } else { Readied::NotSigned })
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
        placeholder: col::<Option<String>>(r, "placeholder")?
            .map(|b64| decode_placeholder(&b64).ok_or_else(|| DbError::Corrupt(format!("placeholder {b64:?}"))))
            .transpose()?,
    })
}

/// Set a verified photo's placeholder where it has none yet (resize-all, for photos verified
/// before placeholders). False when it had one already, or is no longer live.
pub async fn set_placeholder(db: impl Into<Ex<'_>>, id: PhotoId, hash: &[u8]) -> Result<bool, DbError> {
    let done = run!(db, |c| sqlx::query(
        "update shoebox_photos set placeholder = $2 where photo_id = $1 and placeholder is null \
         and state in ('ready', 'in_use', 'released')",
    )
    .bind(id.to_string())
    .bind(encode_placeholder(hash))
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Placeholders are stored as base64 text: the same column type on both backends.
fn encode_placeholder(hash: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(hash)
}

fn decode_placeholder(b64: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}
