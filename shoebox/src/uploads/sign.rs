//! Signing: the photo row first, then a presigned POST form for exactly its key.

use std::time::Duration;

use super::{Refusal, UploadError};
use crate::app::Shoebox;
use crate::db::photos as rows;
use crate::db::quotas::{self, Quota};
use crate::db::sign_batch::Form;
use crate::domain::photo::{incoming_key, safe_filename};
use crate::domain::text::{human_bytes, type_list};
use crate::domain::{Kind, Photo, PhotoId, PhotoState, UserId, from_millis, now_millis, random_token};
use crate::imaging::{ImageType, ImagingError};
use crate::storage::UploadForm;
use crate::telemetry::{LIMIT_UPLOAD_FORMS, RATE_LIMITED, UPLOADS_REFUSED, UPLOADS_SIGNED};

/// What the client says about the file it is about to upload.
#[derive(Debug, Clone)]
pub struct SignRequest {
    /// The kind's name.
    pub kind: String,
    /// The file's name, kept (made safe) for display.
    pub filename: Option<String>,
    /// The declared type; `None` for a form rendered into a page before a file is chosen.
    pub content_type: Option<String>,
    /// The declared size in bytes, checked against the kind's limit before any form is made.
    pub size: Option<u64>,
}

/// Which kind of form to issue.
#[derive(Debug, Clone)]
pub enum FormStyle {
    /// Asked for by the page's JavaScript just before it uploads: short-lived, answers 201.
    Script,
    /// Rendered into the page for browsers without JavaScript: lives an hour, and S3 sends the
    /// browser back to Shoebox's completion page (`{origin}{base path}/uploads/{id}/done`)
    /// when the upload is done.
    Page {
        /// The app's origin as the browser sees it (`https://app.example.com`).
        origin: String,
    },
}

/// A signed form and the photo row behind it.
#[derive(Debug, Clone)]
pub struct SignedUpload {
    /// The photo the form uploads.
    pub photo_id: PhotoId,
    /// The form: post its fields, then the file, to its URL.
    pub form: UploadForm,
}

impl Shoebox {
    /// Issue an upload form for `uploader`. The photo row is written first, so the database
    /// knows about every object before it can exist; the form allows exactly its key, the
    /// declared type and the kind's size limit (under a quota of bytes, the declared size,
    /// which is what the form reserves of the quota until it expires). A form the kind's
    /// quota has no room for is refused ([`Refusal::OverByteQuota`],
    /// [`Refusal::OverPhotoQuota`]), exactly, however many are asked for at once.
    pub async fn sign(
        &self,
        uploader: &UserId,
        req: SignRequest,
        style: FormStyle,
    ) -> Result<SignedUpload, UploadError> {
        let kind = self.kinds.get(&req.kind).map(|k| k.name().to_owned());
        let signed = sign(self, uploader, req, style).await;
        // Labelled only with a configured kind's name: an unknown one is the client's text.
        if let Some(kind) = kind {
            count(kind, &signed);
        }
        signed
    }
}

/// Count a signing: a form issued, a refusal with its reason code, or the uploader's limit.
fn count(kind: String, signed: &Result<SignedUpload, UploadError>) {
    let refused = |reason: &'static str| {
        metrics::counter!(UPLOADS_REFUSED, "kind" => kind.clone(), "reason" => reason, "at" => "sign").increment(1);
    };
    match signed {
        Ok(_) => metrics::counter!(UPLOADS_SIGNED, "kind" => kind.clone()).increment(1),
        Err(UploadError::Refused(r)) => refused(r.code()),
        Err(UploadError::EmptyFile) => refused("empty_file"),
        Err(UploadError::MissingType) => refused("missing_type"),
        Err(UploadError::RateLimited { .. }) => {
            metrics::counter!(RATE_LIMITED, "limit" => LIMIT_UPLOAD_FORMS).increment(1);
        }
        Err(_) => {}
    }
}

async fn sign(app: &Shoebox, user: &UserId, req: SignRequest, style: FormStyle) -> Result<SignedUpload, UploadError> {
    let kind = app.kinds.get(&req.kind).ok_or_else(|| UploadError::UnknownKind(req.kind.clone()))?.clone();
    if !kind.may_upload(user).await {
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
            let (size, max) = (human_bytes(size), human_bytes(kind.max_bytes()));
            return Err(UploadError::Refused(Refusal::TooLarge { size, max }));
        }
        _ => {}
    }
    let now = app.now();
    let quota = Quota::of(kind.as_ref());
    if let (Some(quota), FormStyle::Page { .. }) = (quota, &style) {
        // A page's form reserves nothing (most are never used: the page's script asks for its
        // own), and its upload is checked when it completes; but a page is not worth showing
        // when not even a one-byte photo would fit.
        let used = quotas::count(&app.db, user, kind.name(), now, None).await?;
        if let Some(over) = quota.exceeded_by(used, 1) {
            return Err(UploadError::Refused(super::quota::refusal(kind.as_ref(), used, over, None)));
        }
    }
    // Under a quota of bytes a script's form reserves its declared size, so that is the most it
    // lets through: what is counted is what can arrive.
    let form_max = match (req.size, kind.max_bytes_per_user(), &style) {
        (Some(size), Some(_), FormStyle::Script) => size,
        _ => kind.max_bytes(),
    };
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
        uploader: user.clone(),
        state: PhotoState::Signed,
        incoming_key: incoming_key(&token),
        object_key: None,
        declared_type: declared,
        image_type: None,
        max_bytes: i64::try_from(form_max).unwrap_or(i64::MAX),
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
        placeholder: None,
    };
    let limit = i64::from(app.limits.forms_per_minute);
    let reserving = match &style {
        FormStyle::Script => quota,
        FormStyle::Page { .. } => None,
    };
    // A form that reserves quota is decided alone: it must count what the forms before it
    // committed. The rest are written in batches under concurrency (group commit).
    let recorded = match reserving {
        Some(quota) => rows::insert_signed_within_limit(&app.db, &photo, limit, Some(quota)).await?,
        None => app.forms.record(&app.db, Form { photo: photo.clone(), limit }).await?,
    };
    match recorded {
        rows::Signed::Recorded => {}
        rows::Signed::Limited { until } => {
            let retry_after_secs = u64::try_from((until - now + 999) / 1000).unwrap_or(1).max(1);
            return Err(UploadError::RateLimited { retry_after_secs });
        }
        rows::Signed::OverQuota { used, over } => {
            return Err(UploadError::Refused(super::quota::refusal(kind.as_ref(), used, over, Some(form_max))));
        }
    }
    let redirect = match &style {
        FormStyle::Page { origin } => {
            Some(format!("{}{}", origin.trim_end_matches('/'), app.url(&format!("/uploads/{}/done", photo.id))))
        }
        FormStyle::Script => None,
    };
    // Without a declared type the form stores a neutral type; verification sniffs the real one
    // and the served copy is labelled with that.
    let content_type = declared.map_or("application/octet-stream", ImageType::mime);
    // Signed with the real time, whatever the service's clock says: S3 checks a form's date
    // against its own clock.
    let form = bucket
        .sign_upload(&photo.incoming_key, content_type, form_max, redirect.as_deref(), from_millis(now_millis()), ttl)
        .await?;
    Ok(SignedUpload { photo_id: photo.id, form })
}

fn accepted_type(kind: &dyn Kind, declared: &str) -> Result<ImageType, UploadError> {
    let refuse = |message: String| Err(UploadError::Refused(Refusal::TypeNotAccepted(message)));
    match ImageType::from_mime(declared) {
        Some(t) if kind.accepts().contains(&t) => Ok(t),
        // HEIC and AVIF cannot be decoded here; the engine's message says what to do instead.
        Some(t) if !t.is_decodable() => refuse(ImagingError::UnsupportedType(t).to_string()),
        _ => refuse(format!(
            "{} photos must be {}; this file is {}.",
            kind.label(),
            type_list(kind.accepts()),
            if declared.is_empty() { "of an unknown type".to_owned() } else { declared.to_owned() }
        )),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
