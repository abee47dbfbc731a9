//! The upload lifecycle: sign a form, verify the finished upload, attach the photo.
//!
//! Plain async functions over [`Shoebox`]; the HTTP layer only parses input and maps results.

use std::time::Duration;

use bytes::Bytes;

use crate::app::Shoebox;
use crate::db::photos::{self, Verified};
use crate::db::{DbError, photos as photo_rows};
use crate::domain::photo::{incoming_key, safe_filename, served_key};
use crate::domain::{Kind, Millis, Photo, PhotoId, PhotoState, UserId, from_millis, now_millis, random_token};
use crate::imaging::{self, ImageType, ImagingError, Recipe};
use crate::storage::{ObjectInfo, ServedHeaders, StorageError, UploadForm};

/// What the client says about the file it is about to upload.
#[derive(Debug, Clone)]
pub struct SignRequest {
    pub kind: String,
    pub filename: Option<String>,
    /// The declared type; `None` for a form rendered into a page before a file is chosen.
    pub content_type: Option<String>,
    pub size: Option<u64>,
}

/// Which kind of form to issue.
#[derive(Debug, Clone)]
pub enum FormStyle {
    /// Asked for by the page's JavaScript just before it uploads: short-lived, answers 201.
    Script,
    /// Rendered into the page for browsers without JavaScript: lives an hour, and S3 sends the
    /// browser back to `redirect` (our completion route) when the upload is done.
    Page { redirect_base: String },
}

/// A signed form and the photo row behind it.
#[derive(Debug, Clone)]
pub struct SignedUpload {
    pub photo_id: PhotoId,
    pub form: UploadForm,
}

/// Why an upload operation failed. Each variant has one HTTP status, chosen in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("There is no kind of photo called {0:?}.")]
    UnknownKind(String),
    #[error("You may not upload photos of this kind.")]
    UploadNotAllowed,
    #[error("Tell us the file's type (for example image/jpeg) before uploading.")]
    MissingType,
    #[error("{0}")]
    TypeNotAccepted(String),
    #[error("This file is empty. Choose a photo file.")]
    EmptyFile,
    #[error("This file is {size}; photos of this kind can be at most {max}. Choose a smaller photo.")]
    TooLarge { size: String, max: String },
    #[error("You have asked for too many upload forms in the last minute. Wait a minute and try again.")]
    RateLimited { retry_after_secs: u64 },
    #[error("There is no such photo.")]
    NotFound,
    #[error("The upload has not arrived yet. Upload the file, then try again.")]
    NotUploaded,
    #[error("This upload form expired before a file arrived. Start the upload again.")]
    Expired,
    #[error("{0}")]
    Refused(Refusal),
    #[error("This upload was refused earlier: {0} Start a new upload.")]
    Gone(String),
    #[error("This photo has not finished uploading yet.")]
    NotReady,
    #[error("The file was replaced while it was being checked. Upload it once, then try again.")]
    Changed,
    #[error("The keep-until time must be in the future.")]
    KeepUntilInPast,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a finished upload failed verification. The object has been removed and the row
/// tombstoned with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("This file is {size}; photos of this kind can be at most {max}. Choose a smaller photo.")]
    TooLarge { size: String, max: String },
    #[error("{0}")]
    TypeNotAccepted(String),
    #[error("The file was sent as {declared} but it is really {actual}. Choose the file again.")]
    TypeMismatch { declared: String, actual: String },
    #[error(
        "This image is {width} × {height} pixels; photos of this kind can be at most {max_width} × {max_height} and {max_megapixels} megapixels. Choose a smaller image."
    )]
    TooManyPixels { width: u32, height: u32, max_width: u32, max_height: u32, max_megapixels: u64 },
    /// What the imaging engine found wrong with the bytes, in its words.
    #[error("{message}")]
    Image { code: &'static str, message: String },
}

impl Refusal {
    fn from_imaging(e: &ImagingError) -> Self {
        Self::Image { code: e.code(), message: e.to_string() }
    }

    /// A stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::TypeNotAccepted(_) => "type_not_accepted",
            Self::TypeMismatch { .. } => "type_mismatch",
            Self::TooManyPixels { .. } => "too_many_pixels",
            Self::Image { code, .. } => code,
        }
    }
}

/// Issue an upload form. The photo row is written first, so the database knows about every
/// object before it can exist.
pub async fn sign(
    app: &Shoebox,
    user: UserId,
    req: SignRequest,
    style: FormStyle,
) -> Result<SignedUpload, UploadError> {
    let kind = app.kinds.get(&req.kind).ok_or_else(|| UploadError::UnknownKind(req.kind.clone()))?.clone();
    if !kind.may_upload(user) {
        return Err(UploadError::UploadNotAllowed);
    }
    let declared = match (&style, &req.content_type) {
        (_, Some(ct)) => Some(accepted_type(kind.as_ref(), ct)?),
        (FormStyle::Script, None) => return Err(UploadError::MissingType),
        (FormStyle::Page { .. }, None) => None,
    };
    match req.size {
        Some(0) => return Err(UploadError::EmptyFile),
        Some(size) if size > kind.max_bytes() => {
            return Err(UploadError::TooLarge { size: human_bytes(size), max: human_bytes(kind.max_bytes()) });
        }
        _ => {}
    }
    let now = now_millis();
    let page_form = matches!(style, FormStyle::Page { .. });
    let recent = photos::count_signed_since(&app.db, user, now - 60_000, page_form).await?;
    if recent >= i64::from(app.limits.forms_per_minute) {
        return Err(UploadError::RateLimited { retry_after_secs: 60 });
    }
    let bucket = app.storage.bucket(kind.bucket())?;
    let ttl = match style {
        FormStyle::Script => app.limits.api_form_ttl,
        FormStyle::Page { .. } => app.limits.page_form_ttl,
    };
    let token = random_token();
    let photo = Photo {
        id: PhotoId::new(),
        kind: kind.name().to_owned(),
        bucket: kind.bucket().to_owned(),
        uploader: user,
        state: PhotoState::Signed,
        incoming_key: incoming_key(&token),
        object_key: None,
        declared_type: declared,
        image_type: None,
        max_bytes: i64::try_from(kind.max_bytes()).unwrap_or(i64::MAX),
        byte_size: None,
        width: None,
        height: None,
        filename: req.filename.as_deref().and_then(safe_filename),
        form_expires_at: now.saturating_add(millis(ttl)),
        created_at: now,
        verified_at: None,
        attached_at: None,
        keep_until: None,
        deleted_at: None,
        deleted_reason: None,
    };
    photo_rows::insert_signed(&app.db, &photo).await?;
    let redirect = match &style {
        FormStyle::Page { redirect_base } => {
            Some(format!("{}/uploads/{}/done", redirect_base.trim_end_matches('/'), photo.id))
        }
        FormStyle::Script => None,
    };
    // Without a declared type the form stores a neutral type; verification sniffs the real one
    // and the served copy is labelled with that.
    let content_type = declared.map_or("application/octet-stream", ImageType::mime);
    let form = bucket
        .sign_upload(&photo.incoming_key, content_type, kind.max_bytes(), redirect.as_deref(), from_millis(now), ttl)
        .await?;
    Ok(SignedUpload { photo_id: photo.id, form })
}

fn accepted_type(kind: &dyn Kind, declared: &str) -> Result<ImageType, UploadError> {
    match ImageType::from_mime(declared) {
        Some(t) if kind.accepts().contains(&t) => Ok(t),
        // HEIC and AVIF cannot be decoded here; the engine's message says what to do instead.
        Some(t) if !t.is_decodable() => Err(UploadError::TypeNotAccepted(ImagingError::UnsupportedType(t).to_string())),
        _ => Err(UploadError::TypeNotAccepted(format!(
            "{} photos must be {}; this file is {}.",
            kind.label(),
            type_list(kind.accepts()),
            if declared.is_empty() { "of an unknown type".to_owned() } else { declared.to_owned() }
        ))),
    }
}

/// Bytes read to find the image header: enough for every camera JPEG in our test set, whose
/// EXIF and ICC blocks come before the frame header.
const HEADER_PREFIX: u64 = 256 * 1024;
/// A second, larger read for files whose metadata is unusually long.
const HEADER_PREFIX_MAX: u64 = 2 * 1024 * 1024;

/// Verify a finished upload and promote it to the key it is served from.
///
/// Completing a photo that is already verified answers with it again (a retried request must
/// not fail); completing before the file arrived leaves the form usable.
pub async fn complete(app: &Shoebox, user: UserId, id: PhotoId) -> Result<Photo, UploadError> {
    let photo = owned_photo(app, user, id).await?;
    match photo.state {
        PhotoState::Ready | PhotoState::InUse => return Ok(photo),
        PhotoState::Deleted => {
            return Err(UploadError::Gone(photo.deleted_reason.unwrap_or_default()));
        }
        PhotoState::Signed => {}
    }
    // Verification runs in its own task: a client that gives up, or the request timeout, must
    // not stop it between writing the served object and recording it.
    let task = tokio::spawn({
        let app = app.clone();
        async move {
            // At most a few verifications hold a whole upload in memory at once.
            let _permit = app.verifying.acquire().await.ok();
            // Another request for the same photo may have finished it while this one waited.
            match photo_rows::get(&app.db, id).await? {
                Some(p) if p.state == PhotoState::Signed => verify_and_promote(&app, &p).await,
                _ => Ok(()),
            }
        }
    });
    let outcome = match task.await {
        Ok(outcome) => outcome,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    match outcome {
        Ok(()) => match owned_photo(app, user, id).await? {
            p if matches!(p.state, PhotoState::Ready | PhotoState::InUse) => Ok(p),
            p => Err(UploadError::Gone(p.deleted_reason.unwrap_or_default())),
        },
        Err(e) => {
            // A request racing this one may have promoted the object (so it was gone from the
            // incoming key when this one looked): its success is this one's answer too.
            match owned_photo(app, user, id).await {
                Ok(p) if matches!(p.state, PhotoState::Ready | PhotoState::InUse) => Ok(p),
                _ => Err(e),
            }
        }
    }
}

/// Check the uploaded object, then write the checked bytes (without metadata) to the served
/// key and mark the photo ready; or
/// delete it and tombstone the photo with the reason.
async fn verify_and_promote(app: &Shoebox, photo: &Photo) -> Result<(), UploadError> {
    let kind = app.kinds.get(&photo.kind).ok_or_else(|| UploadError::UnknownKind(photo.kind.clone()))?.clone();
    let bucket = app.storage.bucket(&photo.bucket)?;
    let now = now_millis();
    let Some(info) = bucket.head(&photo.incoming_key).await? else {
        if now > photo.form_expires_at {
            let reason = "The upload form expired before a file arrived.";
            photo_rows::mark_deleted(&app.db, photo.id, PhotoState::Signed, reason, now).await?;
            return Err(UploadError::Expired);
        }
        return Err(UploadError::NotUploaded);
    };

    let checked = match verify(app, bucket, photo, kind.as_ref(), &info).await {
        Ok(v) => v,
        Err(VerifyError::Refused(refusal)) => return refuse_after_check(app, bucket, photo, refusal, now).await,
        Err(VerifyError::Changed) => return Err(UploadError::Changed),
        Err(VerifyError::Storage(e)) => return Err(e.into()),
    };

    let image_type = checked.info.image_type;
    let (width, height) = (checked.info.width, checked.info.height);
    let token = photo.incoming_key.rsplit('/').next().unwrap_or_default();
    let object_key = served_key(token, image_type);
    let headers = ServedHeaders {
        content_type: image_type.mime().to_owned(),
        content_disposition: format!("inline; filename=\"photo.{}\"", image_type.extension()),
        cache_control: match bucket.access() {
            // The key changes whenever the bytes would, so public copies may be cached forever.
            crate::config::BucketAccess::Public => "public, max-age=31536000, immutable".to_owned(),
            crate::config::BucketAccess::Private => "private, no-store".to_owned(),
        },
    };
    // What is served carries no metadata (location, camera serials, embedded thumbnails):
    // filtered losslessly, keeping the pixels, colour profile and orientation.
    let orientation = checked.info.orientation;
    let stripped = app.run_blocking(move || imaging::strip_metadata(&checked.bytes, image_type, orientation)).await;
    let stripped = match stripped {
        Ok(b) => b,
        // The file decoded, so its structure is sound; refusing is still the safe answer.
        Err(e) => return refuse_after_check(app, bucket, photo, Refusal::from_imaging(&e), now).await,
    };
    let served_size = stripped.len();
    bucket.put(&object_key, stripped.into(), &headers).await?;
    let verified = Verified {
        object_key,
        image_type,
        byte_size: i64::try_from(served_size).unwrap_or(i64::MAX),
        width: i64::from(width),
        height: i64::from(height),
    };
    // Marked ready before the incoming copy goes: a request racing this one that finds the
    // incoming object gone then also finds the photo ready.
    if !photo_rows::mark_ready(&app.db, photo.id, &verified, now_millis()).await? {
        let now_state = photo_rows::get(&app.db, photo.id).await?.map(|p| p.state);
        if !matches!(now_state, Some(PhotoState::Ready | PhotoState::InUse)) {
            // The photo was refused or removed meanwhile: what was just written must not stay.
            bucket.delete(&verified.object_key).await?;
            return Err(UploadError::Gone("The upload was withdrawn while it was being checked.".into()));
        }
    }
    if let Err(e) = bucket.delete(&photo.incoming_key).await {
        // Harmless to the photo; the leftover is an unreadable orphan under incoming/.
        tracing::warn!(photo = %photo.id, error = %e, "could not delete the incoming copy");
    }
    Ok(())
}

/// Remove a refused upload and tombstone its row with the reason.
async fn refuse_after_check(
    app: &Shoebox,
    bucket: &crate::storage::Bucket,
    photo: &Photo,
    refusal: Refusal,
    now: Millis,
) -> Result<(), UploadError> {
    bucket.delete(&photo.incoming_key).await?;
    photo_rows::mark_deleted(&app.db, photo.id, PhotoState::Signed, &refusal.to_string(), now).await?;
    Err(UploadError::Refused(refusal))
}

/// What verification learnt: the header, and the whole file it decoded.
struct Checked {
    info: imaging::ImageInfo,
    bytes: bytes::Bytes,
}

enum VerifyError {
    Refused(Refusal),
    /// The object changed between two reads; nothing is decided.
    Changed,
    Storage(StorageError),
}

impl From<StorageError> for VerifyError {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

async fn verify(
    app: &Shoebox,
    bucket: &crate::storage::Bucket,
    photo: &Photo,
    kind: &dyn Kind,
    object: &ObjectInfo,
) -> Result<Checked, VerifyError> {
    let size = object.size;
    let refuse = |r: Refusal| Err(VerifyError::Refused(r));
    let max = u64::try_from(photo.max_bytes).unwrap_or(0).min(kind.max_bytes());
    if size > max {
        return refuse(Refusal::TooLarge { size: human_bytes(size), max: human_bytes(max) });
    }

    // The header first, from the first bytes only: a decompression bomb or a disguised file is
    // refused before the rest is fetched.
    let mut prefix = read_more(bucket, photo, object, Bytes::new(), HEADER_PREFIX.min(size)).await?;
    let mut probed = imaging::probe(&prefix);
    if let Err(ImagingError::NeedMoreBytes { needed, .. }) = &probed
        && size > u64::try_from(prefix.len()).unwrap_or(u64::MAX)
    {
        let want = needed.unwrap_or(HEADER_PREFIX_MAX).max(HEADER_PREFIX).min(size);
        prefix = read_more(bucket, photo, object, prefix, want).await?;
        probed = imaging::probe(&prefix);
    }
    let info = match probed {
        Ok(info) => info,
        Err(ImagingError::NeedMoreBytes { .. }) => {
            return refuse(Refusal::Image {
                code: "truncated",
                message: "This image file is incomplete: it ends before its header does. Upload the file again.".into(),
            });
        }
        Err(e) => return refuse(Refusal::from_imaging(&e)),
    };
    if !kind.accepts().contains(&info.image_type) {
        return refuse(Refusal::TypeNotAccepted(format!(
            "{} photos must be {}; this file is a {} image.",
            kind.label(),
            type_list(kind.accepts()),
            info.image_type.name()
        )));
    }
    if let Some(declared) = photo.declared_type
        && declared != info.image_type
    {
        return refuse(Refusal::TypeMismatch {
            declared: declared.mime().to_owned(),
            actual: format!("a {} image", info.image_type.name()),
        });
    }
    let limits = kind.limits();
    let (width, height) = (info.width, info.height);
    let pixels = info.pixel_count();
    if width > limits.max_width || height > limits.max_height || pixels > limits.max_pixels || pixels == 0 {
        return refuse(Refusal::TooManyPixels {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_megapixels: limits.max_pixels / 1_000_000,
        });
    }

    // Then the whole image, decoded at a small size under the engine's limits: a truncated or
    // damaged file has a good header, and only decoding finds it out. JPEGs decode at 1/8 scale
    // here, so this costs a fraction of a full decode.
    let bytes = read_more(bucket, photo, object, prefix, size).await?;
    let engine_limits = imaging::Limits {
        max_pixels: limits.max_pixels,
        max_width: limits.max_width,
        max_height: limits.max_height,
        ..imaging::Limits::default()
    };
    let whole = bytes.clone(); // Bytes: a reference count, not a copy
    let decoded = app
        .run_blocking(move || {
            imaging::render_with_limits(&whole, &Recipe::fit(VALIDATION_EDGE, VALIDATION_EDGE), &engine_limits)
        })
        .await;
    if let Err(e) = decoded {
        return refuse(Refusal::from_imaging(&e));
    }
    Ok(Checked { info, bytes })
}

/// `have` (the object's first bytes) extended to its first `upto` bytes, fetching only what is
/// missing.
///
/// The form stays usable until it expires, so the object can be replaced between reads: every
/// read must come from the object the HEAD saw (same ETag), and the whole must come out exactly
/// `upto` long, or what gets decoded and served would not be what the checks passed.
async fn read_more(
    bucket: &crate::storage::Bucket,
    photo: &Photo,
    object: &ObjectInfo,
    have: Bytes,
    upto: u64,
) -> Result<Bytes, VerifyError> {
    let have_len = u64::try_from(have.len()).unwrap_or(u64::MAX);
    if have_len >= upto {
        return Ok(have);
    }
    let (rest, etag) = bucket.read_range(&photo.incoming_key, have_len, upto - have_len).await?;
    if etag != object.etag || have_len + u64::try_from(rest.len()).unwrap_or(0) != upto {
        return Err(VerifyError::Changed);
    }
    if have.is_empty() {
        return Ok(rest);
    }
    let mut all = bytes::BytesMut::with_capacity(have.len() + rest.len());
    all.extend_from_slice(&have);
    all.extend_from_slice(&rest);
    Ok(all.freeze())
}

/// The size the validation decode renders to; small, so JPEGs take the 1/8-scale path.
const VALIDATION_EDGE: u32 = 256;

/// Mark a verified photo as in use, optionally until a time after which it may go.
/// Attaching twice answers with the photo again.
pub async fn attach(
    app: &Shoebox,
    user: UserId,
    id: PhotoId,
    keep_until: Option<Millis>,
) -> Result<Photo, UploadError> {
    let photo = owned_photo(app, user, id).await?;
    let now = now_millis();
    if keep_until.is_some_and(|t| t <= now) {
        return Err(UploadError::KeepUntilInPast);
    }
    match photo.state {
        PhotoState::InUse => return Ok(photo),
        PhotoState::Signed => return Err(UploadError::NotReady),
        PhotoState::Deleted => {
            return Err(UploadError::Gone(photo.deleted_reason.unwrap_or_default()));
        }
        PhotoState::Ready => {}
    }
    photo_rows::attach(&app.db, id, keep_until, now).await?;
    owned_photo(app, user, id).await
}

/// The photo, if `user` uploaded it. Someone else's photo is reported as missing, so ids cannot
/// be probed for existence.
pub async fn owned_photo(app: &Shoebox, user: UserId, id: PhotoId) -> Result<Photo, UploadError> {
    match photo_rows::get(&app.db, id).await? {
        Some(p) if p.uploader == user => Ok(p),
        _ => Err(UploadError::NotFound),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `12.3 MB`: sizes as people read them (decimal megabytes, as phones and file managers show).
pub fn human_bytes(n: u64) -> String {
    #[expect(clippy::cast_precision_loss, reason = "display only; sizes are far below 2^52")]
    let x = n as f64;
    if n >= 1_000_000 {
        format!("{:.1} MB", x / 1e6)
    } else if n >= 1_000 {
        format!("{:.0} KB", x / 1e3)
    } else {
        format!("{n} bytes")
    }
}

fn type_list(types: &[ImageType]) -> String {
    let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
    match names.split_last() {
        None => "an image".into(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(2_600), "3 KB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.5 MB");
    }

    #[test]
    fn type_lists_read_as_a_sentence() {
        assert_eq!(type_list(&[ImageType::Jpeg]), "JPEG");
        assert_eq!(type_list(&[ImageType::Jpeg, ImageType::Png, ImageType::Webp]), "JPEG, PNG or WebP");
    }
}
