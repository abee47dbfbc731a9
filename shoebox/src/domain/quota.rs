//! Quotas as people read them.

use super::text::human_bytes;

/// How much of a kind one uploader holds, against the kind's quota
/// ([`Kind::max_bytes_per_user`](crate::Kind::max_bytes_per_user),
/// [`Kind::max_photos_per_user`](crate::Kind::max_photos_per_user)). Counted from Shoebox's own
/// rows: verified photos by their stored size, and uploads not yet finished by their declared
/// size until their forms expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Bytes held.
    pub bytes: u64,
    /// Photos held.
    pub photos: u64,
    /// The kind's quota of bytes, if it has one.
    pub max_bytes: Option<u64>,
    /// The kind's quota of photos, if it has one.
    pub max_photos: Option<u64>,
}

impl Usage {
    /// What the upload page says: `3.2 MB of 50 MB used`, `4 of 20 photos used`, or both;
    /// `None` when the kind has no quota.
    ///
    /// ```
    /// let u = shoebox::Usage { bytes: 3_200_000, photos: 4, max_bytes: Some(50_000_000), max_photos: Some(20) };
    /// assert_eq!(u.summary().as_deref(), Some("3.2 MB of 50 MB used, 4 of 20 photos"));
    /// ```
    pub fn summary(&self) -> Option<String> {
        let bytes = self.max_bytes.map(|max| format!("{} of {}", human_bytes(self.bytes), human_bytes(max)));
        let photos = self.max_photos.map(|max| format!("{} of {max} photos", self.photos));
        match (bytes, photos) {
            (Some(b), Some(p)) => Some(format!("{b} used, {p}")),
            (Some(b), None) => Some(format!("{b} used")),
            (None, Some(p)) => Some(format!("{p} used")),
            (None, None) => None,
        }
    }
}
