//! The upload path: sign a form ([`sign`]), then, when the browser says the bytes are in the
//! bucket, verify them and promote them to the key they are served from ([`complete`]).
//!
//! Plain async functions over [`Shoebox`](crate::app::Shoebox); the HTTP layer only parses
//! input and maps results. What happens to a photo after that lives in [`crate::photos`].

mod promote;
mod quota;
mod sign;
mod verify;

pub use sign::{FormStyle, SignRequest, SignedUpload};

use crate::db::DbError;
use crate::fault::Fault;
use crate::imaging::ImagingError;
use crate::photos::PhotoError;
use crate::storage::StorageError;

/// Why signing or completing an upload failed. Each variant has one HTTP status, chosen in
/// `http::error`; [`UploadError::fault`] says whose fault it is. Every variant but the last
/// three is the client's.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// No kind has this name.
    #[error("There is no kind of photo called {0:?}.")]
    UnknownKind(String),
    /// The kind's [`may_upload`](crate::Kind::may_upload) said no.
    #[error("You may not upload photos of this kind.")]
    UploadNotAllowed,
    /// A script's form request without a declared type.
    #[error("Tell us the file's type (for example image/jpeg) before uploading.")]
    MissingType,
    /// A declared size of zero.
    #[error("This file is empty. Choose a photo file.")]
    EmptyFile,
    /// Too many forms this minute for this uploader.
    #[error("You have asked for too many upload forms in the last minute. Wait a minute and try again.")]
    RateLimited {
        /// When the uploader's window has room again.
        retry_after_secs: u64,
    },
    /// Completion asked before the file reached the bucket; the form still works.
    #[error("The upload has not arrived yet. Upload the file, then try again.")]
    NotUploaded,
    /// The form expired with no file: the photo is now a tombstone.
    #[error("This upload form expired before a file arrived. Start the upload again.")]
    Expired,
    /// The file (as declared when signing, or as found when verifying) is not one this kind
    /// takes. When found at verification, the object is gone and the row tombstoned.
    #[error("{0}")]
    Refused(Refusal),
    /// Completion of an upload refused or removed earlier; the reason.
    #[error("This upload was refused earlier: {0} Start a new upload.")]
    Gone(String),
    /// The object was replaced while being checked; nothing was decided.
    #[error("The file was replaced while it was being checked. Upload it once, then try again.")]
    Changed,
    /// Another completion of the same upload (on this process or another) is still checking
    /// it; its answer will be this one's.
    #[error("This upload is still being checked. Try again in a moment.")]
    Verifying,
    /// Finding the photo failed (see [`PhotoError::fault`]).
    #[error(transparent)]
    Photo(#[from] PhotoError),
    /// The database failed: an outage or a bug.
    #[error(transparent)]
    Db(#[from] DbError),
    /// S3 failed: an outage when unavailable, else a bug.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl UploadError {
    /// Whose fault this is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Photo(e) => e.fault(),
            Self::Db(e) => e.fault(),
            Self::Storage(e) => e.fault(),
            _ => Fault::Client,
        }
    }
}

/// Why a file is not one a kind takes, or does not fit its uploader's quota: said when signing
/// (from what the client declares) or when verifying (from the bytes themselves). Every refusal
/// is the client's ([`UploadError::fault`] is [`Fault::Client`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Over the kind's size limit.
    #[error("This file is {size}; photos of this kind can be at most {max}. Choose a smaller photo.")]
    TooLarge {
        /// The file's size, in words.
        size: String,
        /// The limit, in words.
        max: String,
    },
    /// A type the kind does not take; the sentence says which it takes.
    #[error("{0}")]
    TypeNotAccepted(String),
    /// The bytes are another type than the one declared.
    #[error("The file was sent as {declared} but it is really {actual}. Choose the file again.")]
    TypeMismatch {
        /// What the client said.
        declared: String,
        /// What the bytes are.
        actual: String,
    },
    /// Over the kind's pixel limits.
    #[error(
        "This image is {width} × {height} pixels; photos of this kind can be at most {max_width} × {max_height} and {max_megapixels} megapixels. Choose a smaller image."
    )]
    TooManyPixels {
        /// The image's width.
        width: u32,
        /// The image's height.
        height: u32,
        /// The kind's widest.
        max_width: u32,
        /// The kind's tallest.
        max_height: u32,
        /// The kind's most megapixels.
        max_megapixels: u64,
    },
    /// Storing it would take its uploader past the kind's quota of bytes
    /// ([`Kind::max_bytes_per_user`](crate::Kind::max_bytes_per_user)). Said when signing (by
    /// the declared size) or when completing (by the verified size; the upload is removed).
    #[error(
        "Your {label} uploads take {used} of the {max} allowed{}. Delete some you no longer need to free space; uploads not yet finished count until their forms expire.",
        .size.as_ref().map(|s| format!(", so this one ({s}) does not fit")).unwrap_or_default()
    )]
    OverByteQuota {
        /// The kind's label, in lower case.
        label: String,
        /// What the uploader holds, in words.
        used: String,
        /// The quota, in words.
        max: String,
        /// This photo's size, in words, when known.
        size: Option<String>,
    },
    /// Its uploader already holds as many photos of this kind as the quota allows
    /// ([`Kind::max_photos_per_user`](crate::Kind::max_photos_per_user)).
    #[error(
        "You have {used} of the {max} {label} uploads allowed. Delete one you no longer need to make room; uploads not yet finished count until their forms expire."
    )]
    OverPhotoQuota {
        /// The kind's label, in lower case.
        label: String,
        /// The photos the uploader holds.
        used: u64,
        /// The quota.
        max: u64,
    },
    /// What the imaging engine found wrong with the bytes, in its words.
    #[error("{message}")]
    Image {
        /// A stable code (`truncated`, `not_an_image`, ...).
        code: &'static str,
        /// The sentence shown.
        message: String,
    },
}

impl Refusal {
    /// The engine's refusal in words a person can act on. Where the engine's message carries
    /// the decoder's own words ("found marker RES…"), those go to the log, keyed by the code the
    /// API also returns, and the person gets what happened and what to do.
    fn from_imaging(e: &ImagingError) -> Self {
        let message = match e {
            ImagingError::Corrupt { image_type, .. } => format!(
                "This {image_type} file is damaged and cannot be read. Open it in a photo app, export a new copy and upload that."
            ),
            ImagingError::UnsupportedEncoding { image_type, .. } => format!(
                "This {image_type} file is saved in a way we cannot read. Export it as a standard JPEG or PNG and upload that."
            ),
            ImagingError::InvalidRecipe(_) | ImagingError::Encode { .. } => {
                "We could not process this image. Try again; if it keeps failing, export a new copy and upload that."
                    .to_owned()
            }
            other => other.to_string(),
        };
        tracing::info!(code = e.code(), detail = %e, "upload refused by the imaging engine");
        Self::Image { code: e.code(), message }
    }

    /// A stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::TypeNotAccepted(_) => "type_not_accepted",
            Self::TypeMismatch { .. } => "type_mismatch",
            Self::TooManyPixels { .. } => "too_many_pixels",
            Self::OverByteQuota { .. } => "over_byte_quota",
            Self::OverPhotoQuota { .. } => "over_photo_quota",
            Self::Image { code, .. } => code,
        }
    }
}
