//! Reads for serving an object to a viewer: what a HEAD says (length, ETag, last change), a
//! streamed GET of the whole object or of one byte range, and a short-lived presigned GET.
//!
//! Kept apart from the verification reads in the parent module: these never buffer, and they
//! say "the range is impossible" and "S3 is not answering" in words the proxy can act on.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use super::{Bucket, S3Error, S3Failure, StorageError};

/// What a viewer's validators and ranges are decided from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The whole object's length, whatever part of it is being read.
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
}

/// A streamed read: the object's metadata, which bytes the body holds and the body itself.
/// Dropping the body closes the connection to S3, so a viewer who goes away stops the read.
#[derive(Debug)]
pub struct ObjectRead {
    pub meta: ObjectMeta,
    /// The inclusive byte range the body holds, when S3 answered a range request with one;
    /// `None` means the whole object.
    pub range: Option<(u64, u64)>,
    /// How many bytes the body holds.
    pub length: u64,
    pub body: ByteStream,
}

/// `bytes a-b/total` (what S3 sends in `Content-Range`) as `(a, b, total)`.
fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

fn to_system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

impl Bucket {
    /// HEAD an object for serving; `None` when it does not exist.
    pub async fn head_meta(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        match self.client.head_object().bucket(&self.s3_name).key(key).send().await {
            Ok(out) => Ok(Some(ObjectMeta {
                size: out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                etag: out.e_tag().map(str::to_owned),
                last_modified: to_system_time(out.last_modified()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(self.failed("HeadObject", &e)),
        }
    }

    /// Stream an object, or only the bytes `range` names (a `Range` header value such as
    /// `bytes=0-99`, `bytes=100-` or `bytes=-100`): S3 is asked for just those bytes.
    ///
    /// A range that starts past the end is [`StorageError::RangeNotSatisfiable`] with the
    /// object's length. An S3-compatible service that ignores ranges gives the whole object,
    /// which `range: None` in the answer says.
    pub async fn get_for_serving(&self, key: &str, range: Option<&str>) -> Result<ObjectRead, StorageError> {
        let request = self.client.get_object().bucket(&self.s3_name).key(key).set_range(range.map(str::to_owned));
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.code() == Some("InvalidRange")) => {
                // S3's 416 does not say how long the object is in a field the SDK reads; a HEAD does.
                let size = self.head_meta(key).await?.ok_or(StorageError::NotFound)?.size;
                return Err(StorageError::RangeNotSatisfiable { size });
            }
            Err(e) => return Err(self.get_error(e)),
        };
        let length = out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        let (range, size) = match out.content_range().and_then(parse_content_range) {
            Some((a, b, total)) if range.is_some() => (Some((a, b)), total),
            _ => (None, length),
        };
        let meta = ObjectMeta {
            size,
            etag: out.e_tag().map(str::to_owned),
            last_modified: to_system_time(out.last_modified()),
        };
        Ok(ObjectRead { meta, range, length, body: out.body })
    }

    /// A GET URL for `key` that works without credentials for `ttl`: the redirect mode's
    /// answer, for kinds that would rather not relay bytes. Signed locally; S3 is not asked.
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<String, StorageError> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| {
            StorageError::Service(S3Error::new(S3Failure {
                message: Some(format!("presigning: {e}")),
                ..S3Failure::new("GetObject", &self.s3_name)
            }))
        })?;
        let signed = self
            .client
            .get_object()
            .bucket(&self.s3_name)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| self.failed("GetObject", &e))?;
        Ok(signed.uri().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges_from_s3_are_read_and_junk_is_not() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 99, 1000)));
        assert_eq!(parse_content_range("bytes 900-999/1000"), Some((900, 999, 1000)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }
}
