//! Buckets: the S3 client wrapper, the presigned POST signer and the embedded endpoint.
//!
//! Everything S3 is reached through [`Bucket`], so the rest of the crate never sees an SDK type
//! and the same code runs against AWS, another S3-compatible service or the embedded endpoint.

pub(crate) mod admin;
mod client;
#[cfg(feature = "embedded-s3")]
pub(crate) mod embedded;
pub(crate) mod listing;
pub(crate) mod post_policy;
pub(crate) mod serve;
mod settings;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{ProvideCredentials as _, SharedCredentialsProvider};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::domain::BucketAccess;
pub use admin::S3Failure;
use client::PUT_TIMEOUT;
pub use post_policy::{PostPolicyRequest, SigningCredentials, sign_post_policy};
pub use serve::ObjectMeta;
pub use settings::BucketSettings;

/// Errors from the storage layer. [`StorageError::fault`] says whose fault each is.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object is not in the bucket (a row whose object went missing: a bug, or a hand edit).
    #[error("no such object")]
    NotFound,
    /// S3 refused the request (access denied, a malformed request): the configuration's or a bug.
    #[error("S3 request failed: {0}")]
    Service(String),
    /// No credentials to sign with: the deployment's configuration.
    #[error("no credentials to sign with: {0}")]
    Credentials(String),
    /// A photo names a bucket that is not configured (any more).
    #[error("bucket {0:?} is not configured")]
    UnknownBucket(String),
    /// A read pinned to an object's ETag found another object (replaced between two reads).
    #[error("the object changed between two reads")]
    Changed,
    /// S3 did not answer in time, could not be reached, or answered with a 5xx: worth retrying
    /// shortly, and nothing to do with the request.
    #[error("S3 is unavailable: {0}")]
    Unavailable(String),
    /// A byte range that starts past the end of the object, which is `size` bytes long.
    #[error("the requested range is outside the object ({size} bytes)")]
    RangeNotSatisfiable {
        /// The object's length.
        size: u64,
    },
}

impl StorageError {
    /// Whose fault this is: an outage when S3 is unavailable, the client's for a range
    /// outside the object or an object replaced while being read, a bug otherwise.
    pub fn fault(&self) -> crate::fault::Fault {
        match self {
            Self::Unavailable(_) => crate::fault::Fault::Outage,
            Self::RangeNotSatisfiable { .. } | Self::Changed => crate::fault::Fault::Client,
            _ => crate::fault::Fault::Bug,
        }
    }
}

/// What a HEAD request says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub content_type: Option<String>,
    pub etag: Option<String>,
}

/// A signed upload form: POST `fields` then the file (field `file`, last) to `url`.
#[derive(Clone)]
pub struct UploadForm {
    /// Where the browser posts it: the bucket's endpoint.
    pub url: String,
    /// The signed fields, in order (`key`, `policy`, the signature...).
    pub fields: Vec<(String, String)>,
    /// When the bucket stops accepting it.
    pub expires_at: OffsetDateTime,
}

/// Fields whose values let whoever holds them upload (or name the key that signed them): a log
/// line must never carry them.
const SECRET_FORM_FIELDS: [&str; 4] = ["policy", "x-amz-signature", "x-amz-security-token", "x-amz-credential"];

impl std::fmt::Debug for UploadForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = crate::domain::Redacted;
        let fields: Vec<(&str, &dyn std::fmt::Debug)> = self
            .fields
            .iter()
            .map(|(k, v)| {
                let secret = SECRET_FORM_FIELDS.iter().any(|s| k.eq_ignore_ascii_case(s));
                (k.as_str(), if secret { &redacted as &dyn std::fmt::Debug } else { v as &dyn std::fmt::Debug })
            })
            .collect();
        f.debug_struct("UploadForm")
            .field("url", &self.url)
            .field("fields", &fields)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How a served object should be labelled when it is promoted.
#[derive(Debug, Clone)]
pub struct ServedHeaders {
    pub content_type: String,
    pub content_disposition: String,
    pub cache_control: String,
}

/// The configured buckets, each with its S3 client: what the doctor and `s3-config --apply`
/// work on, with or without a whole [`Shoebox`](crate::Shoebox).
#[derive(Debug, Clone, Default)]
pub struct Storage {
    buckets: BTreeMap<String, Bucket>,
}

impl Storage {
    /// Build a client per bucket. `override_credentials` replaces every bucket's credentials
    /// (the embedded endpoint's generated keys); otherwise the AWS chain (or the variables a
    /// bucket names) provides them.
    pub async fn new(
        settings: &[BucketSettings],
        override_credentials: Option<&SigningCredentials>,
    ) -> Result<Self, StorageError> {
        let mut buckets = BTreeMap::new();
        for s in settings {
            buckets.insert(s.name.clone(), Bucket::new(s, override_credentials).await?);
        }
        Ok(Self { buckets })
    }

    pub(crate) fn bucket(&self, name: &str) -> Result<&Bucket, StorageError> {
        self.buckets.get(name).ok_or_else(|| StorageError::UnknownBucket(name.to_owned()))
    }

    pub(crate) fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.buckets.values()
    }

    /// The configured buckets' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.buckets.keys().map(String::as_str)
    }
}

/// One bucket and the client that reaches it.
#[derive(Clone)]
pub struct Bucket {
    name: String,
    s3_name: String,
    access: BucketAccess,
    region: String,
    client: aws_sdk_s3::Client,
    credentials: SharedCredentialsProvider,
    form_url: String,
    public_base: Option<String>,
    owned: bool,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client and credentials are left out: their Debug output is long and the
        // credentials have no business in a log line.
        f.debug_struct("Bucket")
            .field("name", &self.name)
            .field("s3_name", &self.s3_name)
            .field("access", &self.access)
            .field("form_url", &self.form_url)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// Whether this database owns the bucket (`owned = true`): only then may reconcile delete
    /// objects no row knows.
    pub fn owned(&self) -> bool {
        self.owned
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn s3_name(&self) -> &str {
        &self.s3_name
    }

    pub fn access(&self) -> BucketAccess {
        self.access
    }

    /// The origins a browser talks to for this bucket (form posts and public reads).
    pub fn origins(&self) -> Vec<String> {
        [Some(&self.form_url), self.public_base.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|u| url::Url::parse(u).ok())
            .map(|u| u.origin().ascii_serialization())
            .collect()
    }

    /// The URL anyone can fetch a served object from, for public buckets only.
    pub fn public_url(&self, key: &str) -> Option<String> {
        self.public_base.as_ref().map(|base| format!("{base}{key}"))
    }

    /// Sign an upload form for exactly `key`. The credentials are fetched per form so that
    /// rotated or temporary credentials are picked up; the SDK caches them.
    pub async fn sign_upload(
        &self,
        key: &str,
        content_type: &str,
        max_bytes: u64,
        redirect: Option<&str>,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<UploadForm, StorageError> {
        let creds =
            self.credentials.provide_credentials().await.map_err(|e| StorageError::Credentials(e.to_string()))?;
        let creds = SigningCredentials {
            access_key_id: creds.access_key_id().to_owned(),
            secret_access_key: creds.secret_access_key().to_owned(),
            session_token: creds.session_token().map(str::to_owned),
        };
        let expires_at = now + ttl;
        let form = sign_post_policy(
            &PostPolicyRequest {
                bucket: &self.s3_name,
                region: &self.region,
                key,
                content_type,
                min_bytes: 1,
                max_bytes,
                success_redirect: redirect,
                now,
                expires_at,
            },
            &creds,
        );
        Ok(UploadForm { url: self.form_url.clone(), fields: form.fields, expires_at })
    }

    /// HEAD an object; `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        match self.client.head_object().bucket(&self.s3_name).key(key).send().await {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                content_type: out.content_type().map(str::to_owned),
                etag: out.e_tag().map(str::to_owned),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(service_error(e)),
        }
    }

    /// `have` (the object's first bytes) extended to its first `upto` bytes, fetching only what
    /// is missing, by a ranged GET.
    ///
    /// Pinned to `etag` (what a HEAD saw): an object replaced between reads gives
    /// [`StorageError::Changed`], as does one that turns out shorter than `upto`, so whatever is
    /// assembled is exactly the bytes of one object.
    pub async fn read_pinned(
        &self,
        key: &str,
        etag: Option<&str>,
        have: Bytes,
        upto: u64,
    ) -> Result<Bytes, StorageError> {
        let have_len = u64::try_from(have.len()).unwrap_or(u64::MAX);
        if have_len >= upto {
            return Ok(have);
        }
        let (rest, read_etag) = self.read_range(key, have_len, upto - have_len).await?;
        if read_etag.as_deref() != etag || have_len + u64::try_from(rest.len()).unwrap_or(0) != upto {
            return Err(StorageError::Changed);
        }
        if have.is_empty() {
            return Ok(rest);
        }
        let mut all = bytes::BytesMut::with_capacity(have.len() + rest.len());
        all.extend_from_slice(&have);
        all.extend_from_slice(&rest);
        Ok(all.freeze())
    }

    /// `len` bytes of an object from `start` (fewer at its end), by a ranged GET, with the
    /// ETag of the object they were read from.
    pub async fn read_range(&self, key: &str, start: u64, len: u64) -> Result<(Bytes, Option<String>), StorageError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.s3_name)
            .key(key)
            .range(format!("bytes={start}-{}", (start + len).saturating_sub(1)))
            .send()
            .await
            .map_err(get_error)?;
        let etag = out.e_tag().map(str::to_owned);
        // A body that breaks off part-way is the network's or S3's doing, like a refused
        // connection: worth trying again shortly, not a bug.
        let data = out.body.collect().await.map_err(|e| StorageError::Unavailable(e.to_string()))?;
        Ok((data.into_bytes(), etag))
    }

    /// Stream a whole object.
    pub async fn get_stream(&self, key: &str) -> Result<(ObjectInfo, ByteStream), StorageError> {
        let out = self.client.get_object().bucket(&self.s3_name).key(key).send().await.map_err(get_error)?;
        let info = ObjectInfo {
            size: out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            content_type: out.content_type().map(str::to_owned),
            etag: out.e_tag().map(str::to_owned),
        };
        Ok((info, out.body))
    }

    /// Write `body` to `key` with the given headers: what the browser declared is never what
    /// gets served.
    pub async fn put(&self, key: &str, body: Bytes, headers: &ServedHeaders) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(&self.s3_name)
            .key(key)
            .body(ByteStream::from(body))
            .content_type(&headers.content_type)
            .content_disposition(&headers.content_disposition)
            .cache_control(&headers.cache_control)
            .customize()
            .config_override(aws_sdk_s3::config::Config::builder().timeout_config(
                TimeoutConfig::builder().operation_attempt_timeout(PUT_TIMEOUT).operation_timeout(PUT_TIMEOUT).build(),
            ))
            .send()
            .await
            .map_err(service_error)?;
        Ok(())
    }

    /// Delete an object. Deleting a missing object succeeds, as in S3.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client.delete_object().bucket(&self.s3_name).key(key).send().await.map_err(service_error)?;
        Ok(())
    }

    /// HEAD the bucket: reachable, exists, and our credentials are accepted.
    pub async fn health_check(&self) -> Result<(), StorageError> {
        self.client.head_bucket().bucket(&self.s3_name).send().await.map_err(service_error)?;
        Ok(())
    }
}

/// A GET's failure: a missing key is [`StorageError::NotFound`], anything else as
/// [`service_error`] says.
fn get_error(e: SdkError<aws_sdk_s3::operation::get_object::GetObjectError, HttpResponse>) -> StorageError {
    match e.as_service_error() {
        Some(s) if s.is_no_such_key() => StorageError::NotFound,
        _ => service_error(e),
    }
}

fn service_error<E>(e: SdkError<E, HttpResponse>) -> StorageError
where
    E: std::error::Error + Send + Sync + 'static,
{
    // DisplayErrorContext prints the whole chain ("service error: NoSuchBucket: …") where
    // Display alone says only "service error".
    let text = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
    let unavailable = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        // SlowDown, InternalError, ServiceUnavailable: S3's own "try again shortly"; 429 is
        // how other S3-compatible services say SlowDown.
        SdkError::ServiceError(s) => s.raw().status().is_server_error() || s.raw().status().as_u16() == 429,
        _ => false,
    };
    if unavailable { StorageError::Unavailable(text) } else { StorageError::Service(text) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_form_never_shows_its_signature_policy_token_or_key_id_in_debug() {
        let form = UploadForm {
            url: "https://b.s3.amazonaws.com/".into(),
            fields: [
                ("key", "incoming/abc"),
                ("policy", "POLICY-SECRET"),
                ("X-Amz-Signature", "SIGNATURE-SECRET"),
                ("x-amz-security-token", "TOKEN-SECRET"),
                ("x-amz-credential", "AKIA-SECRET/20261128/us-east-1/s3/aws4_request"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
        };
        let text = format!("{form:?}");
        assert!(text.contains("incoming/abc"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    /// Verification reads an upload in pieces and refuses to mix objects: every ranged read
    /// carries the ETag of the object it came from, and a replaced object changes it.
    #[cfg(feature = "embedded-s3")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ranged_reads_say_which_object_they_came_from() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut settings = vec![BucketSettings::public("public", "shoebox-public")];
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let endpoint = embedded::start(dir.path(), listen, &settings, &[], 1000).await.expect("endpoint");
        settings[0].endpoint = Some(endpoint.endpoint.clone());
        let storage = Storage::new(&settings, Some(&endpoint.credentials)).await.expect("storage");
        let bucket = storage.bucket("public").expect("bucket");
        let labels = ServedHeaders {
            content_type: "image/jpeg".into(),
            content_disposition: "inline".into(),
            cache_control: "no-store".into(),
        };
        let first: Vec<u8> = (0..200u8).collect();
        let key = "incoming/abc";
        bucket.put(key, Bytes::from(first.clone()), &labels).await.expect("put");
        let head = bucket.head(key).await.expect("head").expect("exists");
        assert!(head.etag.is_some());
        let (start, etag) = bucket.read_range(key, 0, 100).await.expect("read");
        assert_eq!(start.as_ref(), &first[..100]);
        assert_eq!(etag, head.etag, "same object, same ETag");
        let (tail, _) = bucket.read_range(key, 100, 50).await.expect("read");
        assert_eq!(tail.as_ref(), &first[100..150]);

        bucket.put(key, Bytes::from(vec![7u8; 200]), &labels).await.expect("replace");
        let (_, replaced) = bucket.read_range(key, 100, 50).await.expect("read");
        assert_ne!(replaced, head.etag, "a replaced object is noticed");
        // Pinned reads refuse to extend the first object's bytes with the second's.
        let pinned = bucket.read_pinned(key, head.etag.as_deref(), start, 150).await;
        assert!(matches!(pinned, Err(StorageError::Changed)), "{pinned:?}");
    }
}
