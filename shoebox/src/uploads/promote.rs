//! Completion: verify a finished upload, then write the checked bytes (without metadata) to
//! the key they are served from and mark the photo ready; or remove it and say why.

use std::time::{Duration, Instant};

use tracing::Instrument as _;

use super::verify::{VerifyError, verify};
use super::{Refusal, UploadError};
use crate::app::Shoebox;
use crate::db::photos::{self as rows, Readied, Verified, VerifyClaim};
use crate::db::quotas::Quota;
use crate::domain::photo::served_key;
use crate::domain::{Millis, Photo, PhotoId, PhotoState};
use crate::imaging;
use crate::photos::{self, Actor};
use crate::storage::{Bucket, ServedHeaders};
use crate::telemetry::{UPLOADS_COMPLETED, UPLOADS_REFUSED, VERIFY_DURATION, seconds};
use crate::variants;

impl Shoebox {
    /// Verify a finished upload for real (it exists, its size, its first bytes, its dimensions,
    /// a whole decode) and promote it to the key it is served from, without its metadata; or
    /// remove it and say why ([`UploadError::Refused`]). The kind's variants are made from the
    /// same decode.
    ///
    /// Completing a photo that is already verified answers with it again (a retried request
    /// must not fail); completing before the file arrived leaves the form usable.
    pub async fn complete(&self, actor: &Actor, id: PhotoId) -> Result<Photo, UploadError> {
        complete(self, actor, id).await
    }
}

async fn complete(app: &Shoebox, actor: &Actor, id: PhotoId) -> Result<Photo, UploadError> {
    let photo = photos::owned(app, actor, id).await?;
    match photo.state {
        PhotoState::Ready | PhotoState::InUse | PhotoState::Released => return Ok(photo),
        PhotoState::Deleted => return Err(UploadError::Gone(photo.deleted_reason.unwrap_or_default())),
        PhotoState::Signed => {}
    }
    // Verification runs in its own task: a client that gives up, or the request timeout, must
    // not stop it between writing the served object and recording it.
    let task = tokio::spawn({
        let app = app.clone();
        async move { verify_once(&app, id).await }.in_current_span()
    });
    let outcome = match task.await {
        Ok(outcome) => outcome,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    // A request racing this one may have promoted the object (so it was gone from the incoming
    // key when this one looked): its success is this one's answer too.
    let now = photos::owned(app, actor, id).await;
    match (outcome, now) {
        (_, Ok(p)) if p.state.is_live() => Ok(p),
        (Ok(()), Ok(p)) => Err(UploadError::Gone(p.deleted_reason.unwrap_or_default())),
        (Ok(()), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

/// How long a completion's claim on a verification holds. Verifying the largest accepted photo
/// takes a few seconds; past this, the process holding the claim is taken to have died and the
/// next completion takes over.
const VERIFY_CLAIM_MILLIS: Millis = 60_000;

/// How often a waiting completion looks at the row again.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// Verify the upload once, however many completions of it arrive at once and on however many
/// processes: the one holding the claim in the database reads the upload and writes the
/// original; the others wait for it to finish and then answer with what it decided.
async fn verify_once(app: &Shoebox, id: PhotoId) -> Result<(), UploadError> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let waiting_since = Instant::now();
    loop {
        let now = app.now();
        match rows::claim_verification(&app.db, id, &token, now, now + VERIFY_CLAIM_MILLIS).await? {
            VerifyClaim::Taken => {
                let verified = verify_claimed(app, id).await;
                // Given back whatever happened, so a retry after a refusal to decide (the file
                // not there yet, S3 down) is not kept waiting for the claim to expire.
                if let Err(e) = rows::release_verification(&app.db, id, &token).await {
                    tracing::warn!(photo = %id, error = %e, "could not give back the verification claim; it expires");
                }
                return verified;
            }
            // The caller reads the photo again and answers with its state.
            VerifyClaim::Settled => return Ok(()),
            VerifyClaim::Held if waiting_since.elapsed() >= app.limits.verification_wait => {
                return Err(UploadError::Verifying);
            }
            VerifyClaim::Held => tokio::time::sleep(LOOK_AGAIN).await,
        }
    }
}

/// Verify a photo whose verification this completion has claimed.
async fn verify_claimed(app: &Shoebox, id: PhotoId) -> Result<(), UploadError> {
    // At most a few verifications hold a whole upload in memory at once. Taken after the claim,
    // so completions waiting on another's claim do not hold permits other photos need.
    let _permit = app.verifying.acquire().await.ok();
    // The row as it is under the claim (the claim's condition says it is still signed).
    match rows::get(&app.db, id).await? {
        Some(p) if p.state == PhotoState::Signed => verify_and_promote(app, &p).await,
        _ => Ok(()),
    }
}

/// Check the uploaded object, then write the checked bytes (without metadata) to the served
/// key and mark the photo ready; or delete it and tombstone the photo with the reason.
async fn verify_and_promote(app: &Shoebox, photo: &Photo) -> Result<(), UploadError> {
    let kind = app.kinds.get(&photo.kind).ok_or_else(|| UploadError::UnknownKind(photo.kind.clone()))?.clone();
    let bucket = app.storage.bucket(&photo.bucket)?;
    let now = app.now();
    let Some(info) = bucket.head(&photo.incoming_key).await? else {
        if now > photo.form_expires_at {
            let reason = "The upload form expired before a file arrived.";
            rows::mark_deleted(&app.db, photo.id, PhotoState::Signed, reason, now).await?;
            return Err(UploadError::Expired);
        }
        return Err(UploadError::NotUploaded);
    };

    let verifying = std::time::Instant::now();
    let verified = verify(app, bucket, photo, kind.as_ref(), &info).await;
    metrics::histogram!(VERIFY_DURATION, "kind" => photo.kind.clone()).record(seconds(verifying));
    let checked = match verified {
        Ok(v) => v,
        Err(VerifyError::Refused(refusal)) => return refuse(app, photo, refusal, now).await,
        Err(VerifyError::Changed) => return Err(UploadError::Changed),
        Err(VerifyError::Storage(e)) => return Err(e.into()),
    };

    let image_type = checked.info.image_type;
    let token = photo.incoming_key.rsplit('/').next().unwrap_or_default();
    let object_key = served_key(token, image_type);
    let headers = ServedHeaders {
        content_type: image_type.mime().to_owned(),
        content_disposition: format!("inline; filename=\"photo.{}\"", image_type.extension()),
        cache_control: bucket.access().stored_cache_control().to_owned(),
    };
    // What is served carries no metadata (location, camera serials, embedded thumbnails):
    // filtered losslessly, keeping the pixels, colour profile and orientation.
    let orientation = checked.info.orientation;
    let upload = checked.bytes.clone(); // Bytes: a reference count, kept for the variants
    let rendered = checked.variants;
    let placeholder = checked.placeholder;
    let stripped = app.run_blocking(move || imaging::strip_metadata(&checked.bytes, image_type, orientation)).await;
    let stripped = match stripped {
        Ok(b) => b,
        // The file decoded, so its structure is sound; refusing is still the safe answer.
        Err(e) => return refuse(app, photo, Refusal::from(&e), now).await,
    };
    let verified = Verified {
        object_key,
        image_type,
        byte_size: i64::try_from(stripped.len()).unwrap_or(i64::MAX),
        width: i64::from(checked.info.width),
        height: i64::from(checked.info.height),
        placeholder,
    };
    bucket.put(&verified.object_key, stripped.into(), &headers).await?;
    // Marked ready before the incoming copy goes: a request racing this one that finds the
    // incoming object gone then also finds the photo ready. Under a quota, it counts at its
    // verified size from now on, if that fits.
    let readied = match Quota::of(kind.as_ref()) {
        None => match rows::mark_ready(&app.db, photo.id, &verified, app.now()).await? {
            true => Readied::Ready,
            false => Readied::NotSigned,
        },
        Some(quota) => rows::mark_ready_within_quota(&app.db, photo, &verified, app.now(), quota).await?,
    };
    match readied {
        Readied::Ready => {
            metrics::counter!(UPLOADS_COMPLETED, "kind" => photo.kind.clone()).increment(1);
        }
        Readied::NotSigned => withdrawn(app, bucket, photo, &verified).await?,
        Readied::OverQuota { used, over } => {
            bucket.delete(&verified.object_key).await?;
            let size = u64::try_from(verified.byte_size).ok();
            return refuse(app, photo, super::quota::refusal(kind.as_ref(), used, over, size), now).await;
        }
    }
    if let Err(e) = bucket.delete(&photo.incoming_key).await {
        // Harmless to the photo; the leftover is an unreadable orphan under incoming/.
        tracing::warn!(photo = %photo.id, error = %e, "could not delete the incoming copy");
    }
    // The variants are stored now, as verification rendered them (or made from the bytes in
    // hand: no second read from the bucket), but without keeping the uploader waiting on the
    // bucket: a page asking for one meanwhile waits on the claim.
    // If this fails, the first request or resize-all makes them.
    tokio::spawn({
        let (app, photo) = (app.clone(), photo.clone());
        async move {
            let rendered = match rendered {
                Some(making) => making.await.ok().and_then(Result::ok),
                None => None,
            };
            if let Err(e) = variants::make_from_bytes(&app, &photo, kind.as_ref(), upload.clone(), rendered).await {
                tracing::warn!(photo = %photo.id, error = %e, "variants not made at completion; made on first request");
            }
            // Then the AVIF twins, from the same bytes, after the formats pages need first: they
            // take seconds, and nobody waits for them (resize-all makes any this misses).
            if let Err(e) = variants::make_background(&app, &photo, kind.as_ref(), Some(upload), false).await {
                tracing::warn!(photo = %photo.id, error = %e, "AVIF twins not made after completion; resize-all makes them");
            }
        }
        .in_current_span()
    });
    Ok(())
}

/// The row left `signed` while its upload was being checked. If something else promoted it,
/// all is well; if it was refused or removed, what was just written must not stay.
async fn withdrawn(app: &Shoebox, bucket: &Bucket, photo: &Photo, verified: &Verified) -> Result<(), UploadError> {
    let now_state = rows::get(&app.db, photo.id).await?.map(|p| p.state);
    if now_state.is_some_and(PhotoState::is_live) {
        return Ok(());
    }
    bucket.delete(&verified.object_key).await?;
    Err(UploadError::Gone("The upload was withdrawn while it was being checked.".into()))
}

/// Remove a refused upload and tombstone its row with the reason.
async fn refuse(app: &Shoebox, photo: &Photo, refusal: Refusal, now: Millis) -> Result<(), UploadError> {
    metrics::counter!(UPLOADS_REFUSED, "kind" => photo.kind.clone(), "reason" => refusal.code(), "at" => "verify")
        .increment(1);
    photos::tombstone(app, photo, PhotoState::Signed, &refusal.to_string(), now).await?;
    Err(UploadError::Refused(refusal))
}
