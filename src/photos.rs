//! Operations on photos that exist: find one its uploader owns, decide who may see one and
//! where its bytes are, attach one, and tombstone one.
//!
//! The upload path ([`crate::uploads`]), user deletion and the clean-up jobs all end a photo
//! through [`tombstone`], so there is one place that removes objects and records why.

use std::collections::HashMap;
use std::sync::Arc;

use crate::app::Shoebox;
use crate::db::variants::VariantRow;
use crate::db::{DbError, claims, photos as rows};
use crate::domain::photo::variant_key;
use crate::domain::{
    BucketAccess, KeepContext, Kind, Millis, Photo, PhotoId, PhotoState, UserId, now_millis, random_token,
};
use crate::imaging::ImageType;
use crate::storage::StorageError;

/// Why an operation on an existing photo failed. Each variant has one HTTP status, chosen in
/// `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("There is no such photo.")]
    NotFound,
    #[error("Log in to see this photo.")]
    Unauthenticated,
    #[error("You may not see this photo.")]
    Forbidden,
    #[error("This photo has not finished uploading yet.")]
    NotReady,
    /// The photo is a tombstone; the reason it was deleted.
    #[error("This photo is gone: {0} Start a new upload.")]
    Gone(String),
    #[error("The keep-until time must be in the future.")]
    KeepUntilInPast,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The photo, if `user` uploaded it. Someone else's photo is reported as missing, so ids cannot
/// be probed for existence.
pub async fn owned(app: &Shoebox, user: UserId, id: PhotoId) -> Result<Photo, PhotoError> {
    match rows::get(&app.db, id).await? {
        Some(p) if p.uploader == user => Ok(p),
        _ => Err(PhotoError::NotFound),
    }
}

/// Where a viewable photo's original is.
#[derive(Debug, Clone)]
pub enum Location {
    /// Anyone may fetch it from here (S3 or the CDN).
    Public(String),
    /// Only through Shoebox's proxy, from this bucket and key.
    Private { bucket: String, key: String },
}

/// A verified photo that `viewer` may see, with its kind and where it lives.
///
/// Photos in public buckets can be seen by anyone (their bytes are public anyway); private ones
/// only by viewers their kind allows. Unverified and deleted photos do not exist for viewers.
pub async fn viewable(
    app: &Shoebox,
    viewer: Option<UserId>,
    id: PhotoId,
) -> Result<(Photo, Arc<dyn Kind>, Location), PhotoError> {
    let photo = rows::get(&app.db, id).await?.ok_or(PhotoError::NotFound)?;
    if !photo.state.is_live() {
        return Err(PhotoError::NotFound);
    }
    let kind = app.kinds.get(&photo.kind).ok_or(PhotoError::NotFound)?.clone();
    let bucket = app.storage.bucket(&photo.bucket).map_err(|_| PhotoError::NotFound)?;
    let key = photo.object_key.clone().ok_or(PhotoError::NotFound)?;
    let location = match (bucket.access(), bucket.public_url(&key)) {
        (BucketAccess::Public, Some(url)) => Location::Public(url),
        _ => {
            let viewer = viewer.ok_or(PhotoError::Unauthenticated)?;
            if !kind.may_view(viewer, &photo) {
                return Err(PhotoError::Forbidden);
            }
            Location::Private { bucket: photo.bucket.clone(), key }
        }
    };
    Ok((photo, kind, location))
}

/// A user's live photos (ready or in use), newest first.
pub async fn live_for_user(app: &Shoebox, user: UserId) -> Result<Vec<Photo>, PhotoError> {
    Ok(rows::list_live_for_user(&app.db, user).await?)
}

/// The URL a page uses for a photo's original: the public URL, or the proxy route.
pub fn original_src(app: &Shoebox, photo: &Photo) -> Option<String> {
    let key = photo.object_key.as_deref()?;
    let bucket = app.storage.bucket(&photo.bucket).ok()?;
    Some(bucket.public_url(key).unwrap_or_else(|| format!("/photos/{}/original", photo.id)))
}

/// Whether photos of this kind live in a private bucket.
pub fn is_private(app: &Shoebox, kind: &dyn Kind) -> bool {
    app.storage.bucket(kind.bucket()).is_ok_and(|b| b.access() == BucketAccess::Private)
}

/// What a photo claimed by clean-up answers to attach: the claim means its objects are going.
const BEING_DELETED: &str = "It was not saved in time and is being deleted.";

/// Mark a verified photo as in use, optionally until a time after which it may go (else until
/// the time its kind says). Attaching twice answers with the photo again.
///
/// A photo of a kind that keeps one per user releases the uploader's earlier ones in the same
/// transaction, so there is never a moment with two current profile photos or none. Attach is
/// a conditional update that fails on a row clean-up has claimed: at the grace period's end,
/// clean-up wins and attach answers [`PhotoError::Gone`].
pub async fn attach(app: &Shoebox, user: UserId, id: PhotoId, keep_until: Option<Millis>) -> Result<Photo, PhotoError> {
    let photo = owned(app, user, id).await?;
    let now = now_millis();
    if keep_until.is_some_and(|t| t <= now) {
        return Err(PhotoError::KeepUntilInPast);
    }
    match photo.state {
        PhotoState::InUse => return Ok(photo),
        PhotoState::Signed => return Err(PhotoError::NotReady),
        PhotoState::Deleted => return Err(PhotoError::Gone(photo.deleted_reason.unwrap_or_default())),
        PhotoState::Ready => {}
    }
    let kind = app.kinds.get(&photo.kind).cloned();
    let keep_until = match (keep_until, &kind) {
        (Some(t), _) => Some(t),
        (None, Some(k)) => {
            let attached = Photo { attached_at: Some(now), ..photo.clone() };
            k.keep_until(&attached, &KeepContext { now, newer: None }).await.filter(|t| *t > now)
        }
        (None, None) => None,
    };
    let mut tx = app.db.begin().await?;
    if !rows::attach(&mut *tx, id, keep_until, now).await? {
        drop(tx);
        // The claim is asked first: a claim only ever ends in a tombstone, so a photo found
        // unclaimed afterwards is attached (by a racing request) or deleted.
        if claims::is_claimed(&app.db, id).await? {
            return Err(PhotoError::Gone(BEING_DELETED.into()));
        }
        return match owned(app, user, id).await? {
            p if p.state == PhotoState::InUse => Ok(p),
            p if p.state == PhotoState::Deleted => Err(PhotoError::Gone(p.deleted_reason.unwrap_or_default())),
            _ => Err(PhotoError::NotReady),
        };
    }
    if kind.is_some_and(|k| k.one_per_user()) {
        claims::release_others(&mut *tx, &photo, now).await?;
    }
    tx.commit().await.map_err(DbError::from)?;
    owned(app, user, id).await
}

/// Every object key a photo may have in its bucket: the incoming upload, the original and
/// each variant (of every recipe it was ever made with). Deletion and reconciliation use it.
pub async fn object_keys(app: &Shoebox, photo: &Photo) -> Result<Vec<String>, PhotoError> {
    let variants = crate::db::variants::list_for_photo(&app.db, photo.id).await?;
    Ok(keys_with_variants(photo, &variants))
}

/// [`object_keys`] of many photos in one query, by photo.
pub async fn object_keys_of(app: &Shoebox, photos: &[Photo]) -> Result<HashMap<PhotoId, Vec<String>>, PhotoError> {
    let ids: Vec<PhotoId> = photos.iter().map(|p| p.id).collect();
    let mut variants: HashMap<String, Vec<VariantRow>> = HashMap::new();
    for row in crate::db::variants::list_for_photos(&app.db, &ids).await? {
        variants.entry(row.photo_id.clone()).or_default().push(row);
    }
    Ok(photos
        .iter()
        .map(|p| (p.id, keys_with_variants(p, variants.get(&p.id.to_string()).map_or(&[], Vec::as_slice))))
        .collect())
}

fn keys_with_variants(photo: &Photo, variants: &[VariantRow]) -> Vec<String> {
    let mut keys: Vec<String> = std::iter::once(photo.incoming_key.clone()).chain(photo.object_key.clone()).collect();
    let token = photo.incoming_key.rsplit('/').next().unwrap_or_default();
    for row in variants {
        match &row.object_key {
            Some(key) => keys.push(key.clone()),
            // Being made, or failed: it may have written either format's key.
            None => keys
                .extend([ImageType::Jpeg, ImageType::Png].map(|t| variant_key(token, &row.name, &row.recipe_hash, t))),
        }
    }
    keys
}

/// What a deleted photo's tombstone says when its uploader deleted it.
pub const DELETED_BY_UPLOADER: &str = "deleted by its uploader";

/// The uploader deletes their photo: its objects go now and its row becomes a tombstone.
///
/// The row is claimed first, so clean-up cannot be deleting it at the same time and attach
/// cannot revive it; if the objects cannot be deleted, the claim is left for clean-up to
/// finish (the photo stays hidden from attach and is retried by the next run).
pub async fn delete_by_uploader(app: &Shoebox, user: UserId, id: PhotoId) -> Result<(), PhotoError> {
    let photo = owned(app, user, id).await?;
    if photo.state == PhotoState::Deleted {
        return Err(PhotoError::NotFound);
    }
    let now = now_millis();
    let token = format!("user-{}", random_token());
    let claim = claims::Claim { token: &token, until: now + 10 * 60 * 1000, takeover_before: now };
    if !claims::claim_for_uploader(&app.db, id, &user.to_string(), claim).await? {
        return Err(PhotoError::NotFound);
    }
    let bucket = app.storage.bucket(&photo.bucket)?;
    let failed = match bucket.delete_keys(&object_keys(app, &photo).await?).await {
        Ok(failed) if failed.is_empty() => None,
        Ok(failed) => Some(crate::storage::StorageError::Service(format!("{failed:?}"))),
        Err(e) => Some(e),
    };
    if let Some(e) = failed {
        claims::release_for_retry(&app.db, id, &token, now_millis()).await?;
        return Err(e.into());
    }
    claims::finish(&app.db, id, &token, DELETED_BY_UPLOADER, now_millis()).await?;
    Ok(())
}

/// End a photo: delete its objects, then turn its row into a tombstone saying when and why,
/// provided it is still in `from` (the state the caller decided on).
///
/// Objects go first so that a failure leaves a row that still names them (the next attempt
/// finishes the job) rather than a tombstone hiding orphans. Returns false when the row had
/// left `from` meanwhile: another request or machine decided first.
pub async fn tombstone(
    app: &Shoebox,
    photo: &Photo,
    from: PhotoState,
    reason: &str,
    now: Millis,
) -> Result<bool, PhotoError> {
    let bucket = app.storage.bucket(&photo.bucket)?;
    for key in object_keys(app, photo).await? {
        bucket.delete(&key).await?;
    }
    Ok(rows::mark_deleted(&app.db, photo.id, from, reason, now).await?)
}
