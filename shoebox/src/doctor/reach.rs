//! Can the bucket be used at all: the endpoint answers, the credentials are accepted, the
//! bucket exists, and in the configured region.

use super::s3_config::{self, INCOMING_PREFIX};
use super::{Check, fix_with};
use crate::storage::Bucket;
use crate::storage::S3Failure;

/// Endpoint reachable, credentials accepted, bucket exists, region right. HeadBucket first (the
/// health check); when it fails, ListObjectsV2 says why, since a HEAD answer has no error code.
pub(super) async fn reachability(b: &Bucket) -> Vec<Check> {
    let n = b.name();
    let tried = format!("HeadBucket {} (region {})", b.s3_name(), b.region());
    let head = match b.probe_head().await {
        Ok(region) => {
            let mut checks = vec![
                Check::pass("bucket.endpoint", n, &tried),
                Check::pass("bucket.credentials", n, &tried),
                Check::pass("bucket.exists", n, &tried),
            ];
            checks.push(region_check(b, region.as_deref(), &tried, None));
            return checks;
        }
        Err(f) => f,
    };
    // Nothing answered: asking again another way would only say the same.
    let (failure, answer) = if head.transport.is_some() {
        let answer = head.summary();
        (head, answer)
    } else {
        match b.probe_list(INCOMING_PREFIX).await {
            // Listing works but HEAD does not: report what HEAD said.
            Ok(_) => {
                let answer = head.summary();
                (head, answer)
            }
            // Both answers: HEAD's status, then the listing's code and message, which say why.
            Err(list) => {
                let answer = format!("{}; then {}", head.summary(), list.summary());
                (list, answer)
            }
        }
    };
    let answer = Some(answer);
    let list_tried = if failure.transport.is_some() {
        tried.clone()
    } else {
        format!("{tried}, then ListObjectsV2 for its error code")
    };
    let (check, cause, fix): (&'static str, String, String) = match failure.code.as_deref() {
        _ if failure.transport.is_some() => (
            "bucket.endpoint",
            failure.likely_cause(),
            "check the bucket's `endpoint` in SHOEBOX_CONFIG (unset means AWS) and the network".into(),
        ),
        Some("InvalidAccessKeyId" | "NotSignedUp") => (
            "bucket.credentials",
            "the access key id is not known to this S3 account (an ASIA… key also needs its session token)".into(),
            "set AWS_ACCESS_KEY_ID (or the bucket's access_key_id_env) to the app user's key".into(),
        ),
        Some("SignatureDoesNotMatch") => (
            "bucket.credentials",
            "the secret access key does not belong to the access key id".into(),
            "set AWS_SECRET_ACCESS_KEY (or the bucket's secret_access_key_env) to the key's secret".into(),
        ),
        Some("ExpiredToken" | "InvalidToken") => (
            "bucket.credentials",
            "the temporary credentials' session token is expired or malformed".into(),
            "refresh the credentials and AWS_SESSION_TOKEN".into(),
        ),
        Some("RequestTimeTooSkewed") => (
            "bucket.clock",
            "this machine's clock is more than 15 minutes off S3's".into(),
            "synchronise the clock (NTP)".into(),
        ),
        Some("NoSuchBucket") => (
            "bucket.exists",
            format!("there is no bucket named {:?} at this endpoint", b.s3_name()),
            "create the bucket, or fix `bucket` in SHOEBOX_CONFIG".into(),
        ),
        Some("PermanentRedirect" | "AuthorizationHeaderMalformed") => {
            return vec![region_check(b, failure.bucket_region.as_deref(), &list_tried, Some(&failure))];
        }
        _ if failure.status == Some(301) => {
            return vec![region_check(b, failure.bucket_region.as_deref(), &list_tried, Some(&failure))];
        }
        _ if failure.status == Some(404) => (
            "bucket.exists",
            format!("there is no bucket named {:?} at this endpoint", b.s3_name()),
            "create the bucket, or fix `bucket` in SHOEBOX_CONFIG".into(),
        ),
        _ if failure.status == Some(403) => (
            "bucket.credentials",
            "the credentials are valid but may not list this bucket: the IAM policy lacks s3:ListBucket, or the \
             bucket belongs to another account"
                .into(),
            format!("attach the IAM policy from {}", fix_with(s3_config::IAM_POLICY)),
        ),
        _ => (
            "bucket.credentials",
            failure.likely_cause(),
            "read S3's answer above; the request id lets AWS support find the request".into(),
        ),
    };
    vec![Check::fail(check, b.name(), list_tried, answer, cause, fix)]
}

fn region_check(b: &Bucket, reported: Option<&str>, tried: &str, failure: Option<&S3Failure>) -> Check {
    let n = b.name();
    match reported {
        Some(r) if r != b.region() => Check::fail(
            "bucket.region",
            n,
            tried,
            Some(failure.map_or_else(
                || format!("x-amz-bucket-region: {r}"),
                |f| format!("{}; x-amz-bucket-region: {r}", f.summary()),
            )),
            format!("bucket {} is in {r}; Shoebox is configured for {}", b.s3_name(), b.region()),
            format!("set `region = \"{r}\"` for bucket {n:?} in SHOEBOX_CONFIG"),
        ),
        None if failure.is_some() => Check::fail(
            "bucket.region",
            n,
            tried,
            failure.map(S3Failure::summary),
            "S3 says the bucket must be addressed through another region's endpoint",
            format!("set the bucket's real region for {n:?} in SHOEBOX_CONFIG"),
        ),
        _ => Check::pass("bucket.region", n, tried),
    }
}
