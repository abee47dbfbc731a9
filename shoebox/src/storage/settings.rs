//! How a host describes one of its buckets.

use serde::Deserialize;

use crate::domain::BucketAccess;

/// One bucket Shoebox may use: its name for kinds, its name in S3, who may read it, and how to
/// reach it. Hosts build these in code; the reference app reads them from its TOML file.
///
/// ```
/// use shoebox::BucketSettings;
/// let ids = BucketSettings::private("ids", "acme-ids").in_region("eu-west-1").owned();
/// assert_eq!((ids.name.as_str(), ids.bucket.as_str(), ids.owned), ("ids", "acme-ids", true));
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BucketSettings {
    /// The name kinds refer to (`public`).
    pub name: String,
    /// The S3 bucket's own name.
    pub bucket: String,
    /// Who may read its served objects without asking Shoebox.
    pub access: BucketAccess,
    /// Its AWS region (default `AWS_REGION`, else `us-east-1`).
    #[serde(default = "default_region")]
    pub region: String,
    /// An S3-compatible endpoint; path-style addressing is used with it. Unset means AWS.
    pub endpoint: Option<String>,
    /// A CDN in front of a public bucket: `<img src>` points here instead of at S3.
    pub cdn_base_url: Option<String>,
    /// Names of the environment variables holding this bucket's keys, when they are not the
    /// standard `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` chain.
    pub access_key_id_env: Option<String>,
    /// See [`BucketSettings::access_key_id_env`].
    pub secret_access_key_env: Option<String>,
    /// This database owns the bucket: `reconcile --delete` may delete objects no row knows.
    /// Off unless said, so a development database can never empty a shared bucket.
    #[serde(default)]
    pub owned: bool,
}

impl BucketSettings {
    /// A bucket whose served photos anyone may read (`<img src>` points straight at it).
    pub fn public(name: &str, s3_name: &str) -> Self {
        Self::new(name, s3_name, BucketAccess::Public)
    }

    /// A bucket nobody reads but Shoebox, whose photos are served through the proxy.
    pub fn private(name: &str, s3_name: &str) -> Self {
        Self::new(name, s3_name, BucketAccess::Private)
    }

    fn new(name: &str, s3_name: &str, access: BucketAccess) -> Self {
        Self {
            name: name.to_owned(),
            bucket: s3_name.to_owned(),
            access,
            region: default_region(),
            endpoint: None,
            cdn_base_url: None,
            access_key_id_env: None,
            secret_access_key_env: None,
            owned: false,
        }
    }

    /// The same bucket in `region`.
    #[must_use]
    pub fn in_region(mut self, region: &str) -> Self {
        region.clone_into(&mut self.region);
        self
    }

    /// The same bucket at an S3-compatible `endpoint` (MinIO, R2, ...).
    #[must_use]
    pub fn at_endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = Some(endpoint.to_owned());
        self
    }

    /// The same public bucket, read through a CDN at `base_url`.
    #[must_use]
    pub fn behind_cdn(mut self, base_url: &str) -> Self {
        self.cdn_base_url = Some(base_url.to_owned());
        self
    }

    /// The same bucket, marked as this database's own (see [`BucketSettings::owned`]).
    #[must_use]
    pub fn owned(mut self) -> Self {
        self.owned = true;
        self
    }
}

fn default_region() -> String {
    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
}
