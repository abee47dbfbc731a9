//! Verification: is the object in the bucket really a photo this kind takes?
//!
//! The header is read first, from the first bytes only, so a decompression bomb or a disguised
//! file is refused before the rest is fetched; then the whole file is decoded at a small size,
//! because a truncated or damaged file has a good header and only decoding finds it out. Every
//! read is pinned to the ETag the HEAD saw, so what is checked is one object.

use bytes::Bytes;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::Refusal;
use crate::app::Shoebox;
use crate::domain::text::{human_bytes, type_list};
use crate::domain::{Kind, Photo};
use crate::imaging::{self, ImagingError};
use crate::storage::{Bucket, ObjectInfo, StorageError};
use crate::variants;

/// Bytes read to find the image header: enough for every camera JPEG in our test set, whose
/// EXIF and ICC blocks come before the frame header.
const HEADER_PREFIX: u64 = 256 * 1024;
/// A second, larger read for files whose metadata is unusually long.
const HEADER_PREFIX_MAX: u64 = 2 * 1024 * 1024;

/// What verification learnt: the header, the whole file it decoded, and the kind's variants
/// when they came out of that decode.
pub(super) struct Checked {
    pub info: imaging::ImageInfo,
    pub bytes: Bytes,
    /// The kind's variants in [`Kind::variants`] order, being rendered from the verification
    /// decode; `None` when the kind has none or the decode for them failed (completion then
    /// makes them from `bytes`, which records why if they cannot be made at all).
    pub variants: Option<MakingVariants>,
    /// The placeholder (ThumbHash) made from the same decode, when it could be made.
    pub placeholder: Option<Vec<u8>>,
}

/// The variants being made from the verification decode.
pub(super) type MakingVariants = JoinHandle<Result<Vec<imaging::Rendition>, ImagingError>>;

pub(super) enum VerifyError {
    Refused(Refusal),
    /// The object changed between two reads; nothing is decided.
    Changed,
    Storage(StorageError),
}

impl From<StorageError> for VerifyError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Changed => Self::Changed,
            other => Self::Storage(other),
        }
    }
}

impl From<&ImagingError> for Refusal {
    fn from(e: &ImagingError) -> Self {
        Self::from_imaging(e)
    }
}

/// Check the object `photo`'s form uploaded (`object` is what a HEAD said of it) against the
/// photo's kind.
pub(super) async fn verify(
    app: &Shoebox,
    bucket: &Bucket,
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
    let key = photo.incoming_key.as_str();
    let etag = object.etag.as_deref();

    let mut prefix = bucket.read_pinned(key, etag, Bytes::new(), HEADER_PREFIX.min(size)).await?;
    let mut probed = imaging::probe(&prefix);
    if let Err(ImagingError::NeedMoreBytes { needed, .. }) = &probed
        && size > u64::try_from(prefix.len()).unwrap_or(u64::MAX)
    {
        let want = needed.unwrap_or(HEADER_PREFIX_MAX).max(HEADER_PREFIX).min(size);
        prefix = bucket.read_pinned(key, etag, prefix, want).await?;
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

    // The whole file is decoded, because only decoding finds a damaged one. The decode is the
    // one the kind's variants need (a 22 MP JPEG at 1/4 scale for `display`: more pixels to
    // convert than the 1/8 a bare check takes, but the same entropy decoding, most of the
    // cost), and the variants are made from it: completion does not decode the upload a
    // second time. The answer waits only for the decode; the variants are made meanwhile.
    let bytes = bucket.read_pinned(key, etag, prefix, size).await?;
    let engine_limits = limits.for_engine();
    // The placeholder comes from the same decode, downscaled to 100 px: no second decode.
    let specs = variants::foreground_targets(kind);
    let (variants, mut placeholder) = if specs.is_empty() {
        (None, None)
    } else {
        let (sent, decoded) = tokio::sync::oneshot::channel();
        let (app, whole) = (app.clone(), bytes.clone()); // Bytes: a reference count, not a copy
        let making = tokio::spawn(
            async move {
                let on_decoded = move |placeholder: Option<Vec<u8>>| {
                    // An error only says verification stopped waiting (its request was dropped).
                    let _ = sent.send(placeholder);
                };
                app.run_blocking(move || variants::render(&whole, &specs, &engine_limits, on_decoded)).await
            }
            .in_current_span(),
        );
        // The sender is dropped unsent when the decode failed.
        match decoded.await {
            Ok(placeholder) => (Some(making), placeholder),
            Err(_) => (None, None),
        }
    };
    if variants.is_none() {
        // Whether the upload is refused is decided by the plain check alone, as for a kind
        // without variants: a variant that cannot be made is not the upload's fault. The
        // check decodes the whole file, at the smallest scale that still covers the
        // placeholder.
        let whole = bytes.clone();
        match app.run_blocking(move || imaging::placeholder(&whole, &engine_limits)).await {
            Ok(made) => placeholder = made,
            Err(e) => return refuse(Refusal::from_imaging(&e)),
        }
    }
    Ok(Checked { info, bytes, variants, placeholder })
}
