//! Who may see a photo, and where its bytes are.

use std::sync::Arc;

use crate::app::Shoebox;
use crate::config::BucketAccess;
use crate::db::{DbError, photos};
use crate::domain::{Kind, Photo, PhotoId, PhotoState, UserId};

/// Why a photo cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("There is no such photo.")]
    NotFound,
    #[error("Log in to see this photo.")]
    Unauthenticated,
    #[error("You may not see this photo.")]
    Forbidden,
    #[error(transparent)]
    Db(#[from] DbError),
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
) -> Result<(Photo, Arc<dyn Kind>, Location), ViewError> {
    let photo = photos::get(&app.db, id).await?.ok_or(ViewError::NotFound)?;
    if !matches!(photo.state, PhotoState::Ready | PhotoState::InUse) {
        return Err(ViewError::NotFound);
    }
    let kind = app.kinds.get(&photo.kind).ok_or(ViewError::NotFound)?.clone();
    let bucket = app.storage.bucket(&photo.bucket).map_err(|_| ViewError::NotFound)?;
    let key = photo.object_key.clone().ok_or(ViewError::NotFound)?;
    let location = match (bucket.access(), bucket.public_url(&key)) {
        (BucketAccess::Public, Some(url)) => Location::Public(url),
        _ => {
            let viewer = viewer.ok_or(ViewError::Unauthenticated)?;
            if !kind.may_view(viewer, &photo) {
                return Err(ViewError::Forbidden);
            }
            Location::Private { bucket: photo.bucket.clone(), key }
        }
    };
    Ok((photo, kind, location))
}

/// The URL a page uses for a photo's original: the public URL, or the proxy route.
pub fn original_src(app: &Shoebox, photo: &Photo) -> Option<String> {
    let key = photo.object_key.as_deref()?;
    let bucket = app.storage.bucket(&photo.bucket).ok()?;
    Some(bucket.public_url(key).unwrap_or_else(|| format!("/photos/{}/original", photo.id)))
}
