//! Buckets as the domain sees them: who may read what is served from one.

use serde::Deserialize;

/// Who may read a bucket's served objects without asking Shoebox.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BucketAccess {
    /// Anyone: `<img src>` points straight at S3 or the CDN in front of it.
    Public,
    /// Nobody but Shoebox: bytes reach a browser only through the proxy, after the kind's
    /// authorization check.
    Private,
}

impl BucketAccess {
    /// The `Cache-Control` a served object is stored with. The key changes whenever the bytes
    /// would, so public copies may be cached forever; private ones never by a shared cache.
    pub fn stored_cache_control(self) -> &'static str {
        match self {
            Self::Public => "public, max-age=31536000, immutable",
            Self::Private => "private, no-store",
        }
    }
}
