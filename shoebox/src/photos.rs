//! Operations on photos that exist: find one, decide who may see one and where its bytes are,
//! attach, release and delete one, and tombstone one.
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
use crate::fault::Fault;
use crate::imaging::ImageType;
use crate::storage::StorageError;

/// Why an operation on an existing photo failed. Each variant has one HTTP status, chosen in
/// `http::error`; [`PhotoError::fault`] says whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    /// No such photo, or not one this caller may know about (someone else's, a tombstone to a
    /// viewer): ids cannot be probed for existence. The client's fault.
    #[error("There is no such photo.")]
    NotFound,
    /// A private photo and nobody signed in. The client's fault.
    #[error("Log in to see this photo.")]
    Unauthenticated,
    /// Its kind does not let this viewer see it. The client's fault.
    #[error("You may not see this photo.")]
    Forbidden,
    /// Its upload has not been verified yet. The client's fault.
    #[error("This photo has not finished uploading yet.")]
    NotReady,
    /// The photo is a tombstone (or being deleted); the reason it was deleted. The client's fault.
    #[error("This photo is gone: {0} Start a new upload.")]
    Gone(String),
    /// A keep-until that has already passed. The client's fault.
    #[error("The keep-until time must be in the future.")]
    KeepUntilInPast,
    /// The database failed: an outage or a bug, as [`DbError::is_outage`] says.
    #[error(transparent)]
    Db(#[from] DbError),
    /// S3 failed: an outage when unavailable, else a bug.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl PhotoError {
    /// Whose fault this is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Db(e) => e.fault(),
            Self::Storage(e) => e.fault(),
            _ => Fault::Client,
        }
    }
}

/// Who asks for an operation on a photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person, through Shoebox's API or pages: only their own photos are theirs to change,
    /// and anyone else's are reported as missing.
    User(UserId),
    /// The host application itself, from its own handlers or jobs: may act on any photo (attach
    /// a photo to a document on its uploader's behalf, release it when the document goes).
    App,
}

/// The photo, if `actor` may change it: its uploader, or the application. Anyone else's photo
/// is reported as missing, so ids cannot be probed for existence.
pub(crate) async fn owned(app: &Shoebox, actor: &Actor, id: PhotoId) -> Result<Photo, PhotoError> {
    match (rows::get(&app.db, id).await?, actor) {
        (Some(p), Actor::App) => Ok(p),
        (Some(p), Actor::User(user)) if &p.uploader == user => Ok(p),
        _ => Err(PhotoError::NotFound),
    }
}

/// Where a viewable photo's original is.
#[derive(Debug, Clone)]
pub enum Location {
    /// Anyone may fetch it from here (S3 or the CDN).
    Public(String),
    /// Only through Shoebox's proxy, from this bucket and key.
    Private {
        /// The configured bucket's name.
        bucket: String,
        /// The object's key.
        key: String,
    },
}

/// A verified photo someone may see: the photo, its kind and where its original is.
#[derive(Debug, Clone)]
pub struct Viewable {
    /// The photo.
    pub photo: Photo,
    /// Its kind.
    pub kind: Arc<dyn Kind>,
    /// Where its original's bytes are.
    pub location: Location,
}

impl Shoebox {
    /// A verified photo that `viewer` may see, with its kind and where it lives.
    ///
    /// Photos in public buckets can be seen by anyone (their bytes are public anyway); private
    /// ones only by signed-in viewers their kind allows ([`Kind::may_view`]). Unverified and
    /// deleted photos do not exist for viewers.
    pub async fn viewable(&self, viewer: Option<&UserId>, id: PhotoId) -> Result<Viewable, PhotoError> {
        let photo = rows::get(&self.db, id).await?.ok_or(PhotoError::NotFound)?;
        if !photo.state.is_live() {
            return Err(PhotoError::NotFound);
        }
        let kind = self.kinds.get(&photo.kind).ok_or(PhotoError::NotFound)?.clone();
        let bucket = self.storage.bucket(&photo.bucket).map_err(|_| PhotoError::NotFound)?;
        let key = photo.object_key.clone().ok_or(PhotoError::NotFound)?;
        let location = match (bucket.access(), bucket.public_url(&key)) {
            (BucketAccess::Public, Some(url)) => Location::Public(url),
            _ => {
                let viewer = viewer.ok_or(PhotoError::Unauthenticated)?;
                if !kind.may_view(viewer, &photo).await {
                    return Err(PhotoError::Forbidden);
                }
                Location::Private { bucket: photo.bucket.clone(), key }
            }
        };
        Ok(Viewable { photo, kind, location })
    }

    /// `photo`'s placeholder, if `viewer` may see the photo itself. A placeholder shows a
    /// photo's colours and shapes, so it follows the photo's own rule ([`Shoebox::viewable`]):
    /// anyone's for a photo in a public bucket, else only a signed-in viewer its kind allows.
    /// `None` for a photo that is not live or has no placeholder.
    pub async fn placeholder_for<'p>(&self, viewer: Option<&UserId>, photo: &'p Photo) -> Option<&'p [u8]> {
        let hash = photo.placeholder.as_deref()?;
        if !photo.state.is_live() {
            return None;
        }
        let bucket = self.storage.bucket(&photo.bucket).ok()?;
        let key = photo.object_key.as_deref()?;
        if bucket.access() == BucketAccess::Public && bucket.public_url(key).is_some() {
            return Some(hash);
        }
        let kind = self.kinds.get(&photo.kind)?;
        kind.may_view(viewer?, photo).await.then_some(hash)
    }

    /// One photo, whatever its state (tombstones included), with no authorization check: for
    /// the host's own code, which decides who sees what.
    pub async fn photo(&self, id: PhotoId) -> Result<Option<Photo>, PhotoError> {
        Ok(rows::get(&self.db, id).await?)
    }

    /// An uploader's live photos (ready, in use or released), newest first.
    pub async fn photos_of(&self, uploader: &UserId) -> Result<Vec<Photo>, PhotoError> {
        Ok(rows::list_live_for_user(&self.db, uploader).await?)
    }

    /// The URL a page uses for a photo's original: the public URL, or the proxy route.
    pub fn original_url(&self, photo: &Photo) -> Option<String> {
        let key = photo.object_key.as_deref()?;
        let bucket = self.storage.bucket(&photo.bucket).ok()?;
        Some(bucket.public_url(key).unwrap_or_else(|| self.url(&format!("/photos/{}/original", photo.id))))
    }

    /// Mark a verified photo as in use (the seed's "the app saved it"), optionally until a time
    /// after which it may go, else until the time its kind says ([`Kind::keep_until`]).
    /// Attaching twice answers with the photo again; a released photo is in use again.
    ///
    /// A photo of a kind that keeps one per user releases the uploader's earlier ones in the
    /// same transaction, so there is never a moment with two current profile photos or none.
    /// Attach is a conditional update that fails on a row clean-up has claimed: at the grace
    /// period's end, clean-up wins and attach answers [`PhotoError::Gone`].
    pub async fn attach(&self, actor: &Actor, id: PhotoId, keep_until: Option<Millis>) -> Result<Photo, PhotoError> {
        let photo = owned(self, actor, id).await?;
        let now = self.now();
        if keep_until.is_some_and(|t| t <= now) {
            return Err(PhotoError::KeepUntilInPast);
        }
        match photo.state {
            PhotoState::InUse => return Ok(photo),
            PhotoState::Signed => return Err(PhotoError::NotReady),
            PhotoState::Deleted => return Err(PhotoError::Gone(photo.deleted_reason.unwrap_or_default())),
            PhotoState::Ready | PhotoState::Released => {}
        }
        let kind = self.kinds.get(&photo.kind).cloned();
        let keep_until = match (keep_until, &kind) {
            (Some(t), _) => Some(t),
            (None, Some(k)) => {
                let attached = Photo { attached_at: Some(now), state: PhotoState::InUse, ..photo.clone() };
                k.keep_until(&attached, &KeepContext { now, newer: None }).await.filter(|t| *t > now)
            }
            (None, None) => None,
        };
        let mut tx = self.db.begin().await?;
        if !rows::attach(&mut tx, id, keep_until, now).await? {
            drop(tx);
            // The claim is asked first: a claim only ever ends in a tombstone, so a photo found
            // unclaimed afterwards is attached (by a racing request) or deleted.
            if claims::is_claimed(&self.db, id).await? {
                return Err(PhotoError::Gone(BEING_DELETED.into()));
            }
            return match owned(self, actor, id).await? {
                p if p.state == PhotoState::InUse => Ok(p),
                p if p.state == PhotoState::Deleted => Err(PhotoError::Gone(p.deleted_reason.unwrap_or_default())),
                _ => Err(PhotoError::NotReady),
            };
        }
        if kind.is_some_and(|k| k.one_per_user()) {
            claims::release_others(&mut tx, &photo, now).await?;
        }
        tx.commit().await?;
        owned(self, actor, id).await
    }

    /// The application no longer uses a photo: it leaves "in use" and falls to its kind's keep
    /// rules. It is kept until `keep_until` if given, else until [`Kind::keep_until`] says,
    /// else until the next clean-up; then clean-up asks [`Kind::reason_to_delete`]. Releasing a
    /// released photo answers with it again; attaching it makes it in use again.
    pub async fn release(&self, actor: &Actor, id: PhotoId, keep_until: Option<Millis>) -> Result<Photo, PhotoError> {
        let photo = owned(self, actor, id).await?;
        let now = self.now();
        match photo.state {
            PhotoState::Released => return Ok(photo),
            PhotoState::Signed | PhotoState::Ready => return Err(PhotoError::NotReady),
            PhotoState::Deleted => return Err(PhotoError::Gone(photo.deleted_reason.unwrap_or_default())),
            PhotoState::InUse => {}
        }
        let until = match (keep_until, self.kinds.get(&photo.kind)) {
            (Some(t), _) => t,
            (None, Some(k)) => {
                let released = Photo { state: PhotoState::Released, ..photo.clone() };
                k.keep_until(&released, &KeepContext { now, newer: None }).await.unwrap_or(now)
            }
            (None, None) => now,
        };
        if !rows::release(&self.db, id, until.max(now)).await? {
            if claims::is_claimed(&self.db, id).await? {
                return Err(PhotoError::Gone(BEING_DELETED.into()));
            }
            let p = owned(self, actor, id).await?;
            return match p.state {
                PhotoState::Released => Ok(p),
                PhotoState::Deleted => Err(PhotoError::Gone(p.deleted_reason.unwrap_or_default())),
                _ => Err(PhotoError::NotReady),
            };
        }
        owned(self, actor, id).await
    }

    /// Delete a photo now, whatever its state: its objects (original, variants, the upload)
    /// go at once and its row becomes a tombstone saying it was deleted by its uploader (or by
    /// the application). A tombstone answers [`PhotoError::NotFound`].
    ///
    /// The row is claimed first, so clean-up cannot be deleting it at the same time and attach
    /// cannot revive it; if the objects cannot be deleted, the claim is left for clean-up to
    /// finish (the photo stays hidden from attach and is retried by the next run).
    pub async fn delete(&self, actor: &Actor, id: PhotoId) -> Result<(), PhotoError> {
        let photo = owned(self, actor, id).await?;
        if photo.state == PhotoState::Deleted {
            return Err(PhotoError::NotFound);
        }
        // Claims are leases between processes: they run on the real clock, not the lifecycle's.
        let now = now_millis();
        let token = format!("user-{}", random_token());
        let claim = claims::Claim { token: &token, until: now + 10 * 60 * 1000, takeover_before: now };
        if !claims::claim_for_deletion(&self.db, id, &photo.uploader, claim).await? {
            return Err(PhotoError::NotFound);
        }
        let bucket = self.storage.bucket(&photo.bucket)?;
        let failed = match bucket.delete_keys(&object_keys(self, &photo).await?).await {
            Ok(failed) if failed.is_empty() => None,
            Ok(failed) => Some(StorageError::Service(crate::storage::S3Error::new(crate::storage::S3Failure {
                status: Some(200),
                message: Some(format!("{} of the photo's keys were not deleted: {failed:?}", failed.len())),
                ..crate::storage::S3Failure::new("DeleteObjects", bucket.s3_name())
            }))),
            Err(e) => Some(e),
        };
        if let Some(e) = failed {
            claims::release_for_retry(&self.db, id, &token, now_millis()).await?;
            return Err(e.into());
        }
        let reason = match actor {
            Actor::User(_) => DELETED_BY_UPLOADER,
            Actor::App => DELETED_BY_APP,
        };
        claims::finish(&self.db, id, &token, reason, self.now()).await?;
        Ok(())
    }
}

/// A photo as Shoebox's API shows it: what a host can put in its own JSON too.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhotoView {
    /// Its id.
    pub id: String,
    /// Its kind's name.
    pub kind: String,
    /// Its state (`ready`, `in_use`, ...).
    pub state: &'static str,
    /// The verified type (`image/jpeg`).
    #[serde(rename = "type")]
    pub image_type: Option<&'static str>,
    /// Width in pixels, as stored.
    pub width: Option<i64>,
    /// Height in pixels, as stored.
    pub height: Option<i64>,
    /// The served original's size in bytes.
    pub byte_size: Option<i64>,
    /// When its form was signed (RFC 3339).
    pub created_at: String,
    /// Kept at least until (RFC 3339).
    pub keep_until: Option<String>,
    /// URLs by rendition name: `original`, and each variant when asked for.
    pub urls: std::collections::BTreeMap<String, String>,
    /// The placeholder's ThumbHash in standard base64, for a client to show until the image
    /// loads (the npm `thumbhash` package's `thumbHashToDataURL` decodes it); `null` when it
    /// has none, or the caller may not see the photo itself.
    pub placeholder: Option<String>,
}

impl PhotoView {
    /// The photo's view, with its original's URL.
    pub fn of(shoebox: &Shoebox, p: &Photo) -> Self {
        use time::format_description::well_known::Rfc3339;
        let rfc = |ms: Millis| crate::domain::from_millis(ms).format(&Rfc3339).unwrap_or_default();
        Self {
            id: p.id.to_string(),
            kind: p.kind.clone(),
            state: p.state.as_str(),
            image_type: p.image_type.map(|t| t.mime()),
            width: p.width,
            height: p.height,
            byte_size: p.byte_size,
            created_at: rfc(p.created_at),
            keep_until: p.keep_until.map(rfc),
            urls: shoebox.original_url(p).map(|u| ("original".to_owned(), u)).into_iter().collect(),
            placeholder: None,
        }
    }

    /// The same view with the photo's placeholder: only for a caller who may see the photo
    /// itself ([`Shoebox::placeholder_for`] decides).
    pub fn with_placeholder(self, hash: Option<&[u8]>) -> Self {
        use base64::Engine as _;
        Self { placeholder: hash.map(|h| base64::engine::general_purpose::STANDARD.encode(h)), ..self }
    }
}

/// What a photo claimed by clean-up answers to attach: the claim means its objects are going.
const BEING_DELETED: &str = "It was not saved in time and is being deleted.";

/// Every object key a photo may have in its bucket: the incoming upload, the original and
/// each variant (of every recipe it was ever made with). Deletion and reconciliation use it.
pub(crate) async fn object_keys(app: &Shoebox, photo: &Photo) -> Result<Vec<String>, PhotoError> {
    let variants = crate::db::variants::list_for_photo(&app.db, photo.id).await?;
    Ok(keys_with_variants(photo, &variants))
}

/// [`object_keys`] of many photos in one query, by photo.
pub(crate) async fn object_keys_of(
    app: &Shoebox,
    photos: &[Photo],
) -> Result<HashMap<PhotoId, Vec<String>>, PhotoError> {
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
/// What a deleted photo's tombstone says when the application deleted it.
pub const DELETED_BY_APP: &str = "deleted by the application";

/// End a photo: delete its objects, then turn its row into a tombstone saying when and why,
/// provided it is still in `from` (the state the caller decided on).
///
/// Objects go first so that a failure leaves a row that still names them (the next attempt
/// finishes the job) rather than a tombstone hiding orphans. Returns false when the row had
/// left `from` meanwhile: another request or machine decided first.
pub(crate) async fn tombstone(
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
