//! Quotas: how much of a kind an uploader holds, and the refusal when a photo does not fit.
//! The count and the exact check live in `db::quotas`; signing and completion take them.

use super::{Refusal, UploadError};
use crate::app::Shoebox;
use crate::db::quotas::{self, Counted, Over};
use crate::domain::text::human_bytes;
use crate::domain::{Kind, Usage, UserId};

impl Shoebox {
    /// How much of `kind` the uploader holds, against the kind's quota: what the upload page
    /// shows ("3.2 MB of 50 MB used"). Counted the way signing counts, at the service's time.
    pub async fn usage(&self, uploader: &UserId, kind: &str) -> Result<Usage, UploadError> {
        let k = self.kinds.get(kind).ok_or_else(|| UploadError::UnknownKind(kind.to_owned()))?;
        let counted = quotas::count(&self.db, uploader, k.name(), self.now(), None).await?;
        Ok(usage(k.as_ref(), counted))
    }
}

pub(super) fn usage(kind: &dyn Kind, counted: Counted) -> Usage {
    Usage {
        bytes: u64::try_from(counted.bytes).unwrap_or(0),
        photos: u64::try_from(counted.photos).unwrap_or(0),
        max_bytes: kind.max_bytes_per_user(),
        max_photos: kind.max_photos_per_user(),
    }
}

/// The refusal for a photo of `size` bytes (when known) that would pass `over` of the kind's
/// quota, which holds `used` without it.
pub(super) fn refusal(kind: &dyn Kind, used: Counted, over: Over, size: Option<u64>) -> Refusal {
    let usage = usage(kind, used);
    let label = kind.label().to_lowercase();
    match (over, usage.max_photos, usage.max_bytes) {
        (Over::Photos, Some(max), _) => Refusal::OverPhotoQuota { label, used: usage.photos, max },
        (_, _, max) => Refusal::OverByteQuota {
            label,
            used: human_bytes(usage.bytes),
            max: human_bytes(max.unwrap_or(0)),
            size: size.map(human_bytes),
        },
    }
}
