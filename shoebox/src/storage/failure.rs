//! S3's answers in plain words. Every S3 failure Shoebox reports (a log line, `/healthz`'s
//! logged problem, the doctor's `answer:` line, [`StorageError`](super::StorageError)'s
//! `Display`) says which call failed on which bucket, the HTTP status, S3's code and message
//! when there is one, and the request id, then the likely cause in a sentence:
//!
//! ```text
//! HeadBucket on bucket acme-photos: 403 Forbidden, no error code (a HEAD answer has no body);
//! request id 4F1C9E2B7A3D5F60. Likely cause: the credentials were refused or may not read this
//! bucket: a wrong secret key, an unknown access key id, or an IAM policy without s3:ListBucket
//! (the doctor's checks ask again in a way that says which).
//! ```
//!
//! The SDK's own `Debug` account (about 1,500 characters for a refused HEAD) is kept only as
//! the error's source, so it reaches the cause chain of a 5xx log line and nowhere else.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId as _;
use serde::Serialize;

/// The longest message from S3 repeated in a line: S3's are a sentence, anything longer is
/// not S3 talking (an HTML error page from a proxy in front of it).
const MAX_MESSAGE: usize = 300;

/// What S3 answered when a call failed, or that nothing answered: which call, on which bucket,
/// the status, code, message and request id. [`S3Failure::summary`] says it in one line,
/// [`S3Failure::likely_cause`] adds why that probably happened, and `Display` gives both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}. Likely cause: {}", self.summary(), self.likely_cause())]
pub struct S3Failure {
    /// The S3 operation (`HeadBucket`, `GetObject`, ...).
    pub operation: String,
    /// The S3 bucket's name.
    pub bucket: String,
    /// HTTP status, absent when no answer came.
    pub status: Option<u16>,
    /// S3's error code (`SignatureDoesNotMatch`); HEAD answers carry none.
    pub code: Option<String>,
    /// S3's message.
    pub message: Option<String>,
    /// S3's request id, to quote to AWS support.
    pub request_id: Option<String>,
    /// `x-amz-bucket-region`, which S3 sends even when it refuses the request.
    pub bucket_region: Option<String>,
    /// Why no answer came (`connection refused`, `timed out`), when none did.
    pub transport: Option<String>,
}

impl S3Failure {
    /// A failure of `operation` on `bucket` with nothing known yet: fill in what is.
    pub fn new(operation: &str, bucket: &str) -> Self {
        Self { operation: operation.to_owned(), bucket: bucket.to_owned(), ..Self::default() }
    }

    /// The endpoint does not implement this call (the embedded endpoint, MinIO for some).
    pub fn is_unsupported(&self) -> bool {
        self.status == Some(501) || self.code.as_deref() == Some("NotImplemented")
    }

    /// One line: what was asked and what came back, e.g. `GetObject on bucket b: 403
    /// Forbidden, SignatureDoesNotMatch: The request signature we calculated does not match
    /// the signature you provided; request id 4F1C9E2B7A3D5F60`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} on bucket {}: ", self.operation, self.bucket);
        if let Some(t) = &self.transport {
            s.push_str("no answer: ");
            s.push_str(t);
            return s;
        }
        match self.status {
            Some(code) => {
                s.push_str(&code.to_string());
                if let Some(reason) = http::StatusCode::from_u16(code).ok().and_then(|c| c.canonical_reason()) {
                    s.push(' ');
                    s.push_str(reason);
                }
            }
            None => s.push_str("no status"),
        }
        match (&self.code, &self.message) {
            (Some(code), Some(m)) => s.push_str(&format!(", {code}: {}", m.trim_end_matches('.'))),
            (Some(code), None) => s.push_str(&format!(", {code}")),
            (None, Some(m)) => s.push_str(&format!(", {}", m.trim_end_matches('.'))),
            (None, None) if self.status.is_some() && self.operation.starts_with("Head") => {
                s.push_str(", no error code (a HEAD answer has no body)");
            }
            (None, None) => s.push_str(", no error code"),
        }
        if self.status.is_some() {
            match &self.request_id {
                Some(id) => s.push_str(&format!("; request id {id}")),
                None => s.push_str("; no request id"),
            }
        }
        s
    }

    /// Why this probably happened, in a sentence a person can act on.
    pub fn likely_cause(&self) -> String {
        let bucket = &self.bucket;
        if let Some(t) = &self.transport {
            return match t.as_str() {
                CONNECTION_REFUSED => {
                    "nothing is listening at the bucket's endpoint: the S3 service is down, or the endpoint setting names the wrong host or port".into()
                }
                TIMED_OUT => "S3 did not answer in time: it is overloaded or unreachable (network, firewall)".into(),
                CONNECTION_RESET => "the connection to S3 broke: the network or S3 dropped it; trying again usually works".into(),
                BODY_CUT => "S3 stopped sending the object part-way: the network or S3 dropped the connection".into(),
                HOST_NOT_FOUND => "the endpoint's host name does not resolve: a typo in the endpoint, or no DNS".into(),
                _ => "S3 could not be reached: check the bucket's endpoint and the network".into(),
            };
        }
        let region = self.bucket_region.as_deref().map(|r| format!(" (S3 says it is in {r})")).unwrap_or_default();
        match (self.code.as_deref(), self.status) {
            (Some("SignatureDoesNotMatch"), _) => {
                "the secret access key does not belong to the access key id (AWS_SECRET_ACCESS_KEY, or the bucket's secret_access_key_env)".into()
            }
            (Some("InvalidAccessKeyId" | "NotSignedUp"), _) => {
                "the access key id is not known to this S3 account (an ASIA… key also needs its session token)".into()
            }
            (Some("ExpiredToken" | "InvalidToken" | "TokenRefreshRequired"), _) => {
                "the temporary credentials' session token is expired or malformed: refresh them".into()
            }
            (Some("RequestTimeTooSkewed"), _) => "this machine's clock is more than 15 minutes off S3's: synchronise it (NTP)".into(),
            (Some("NoSuchBucket"), _) => format!("there is no bucket named {bucket} at this endpoint: create it, or fix the bucket's name"),
            (Some("NoSuchKey"), _) => "the object is not in the bucket: it was deleted, or never written".into(),
            (Some("AccessDenied" | "AllAccessDisabled"), _) => format!(
                "the credentials are valid but may not do {} on this bucket: the IAM policy or the bucket policy refuses it",
                self.operation
            ),
            (Some("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException"), _)
            | (None, Some(301)) => format!("the bucket is in another region than configured{region}: set its region"),
            (Some("SlowDown"), _) | (None, Some(429 | 503)) => {
                "S3 is asking for fewer requests a second for now; it passes".into()
            }
            (Some("NotImplemented"), _) | (None, Some(501)) => {
                format!("this endpoint does not implement {}", self.operation)
            }
            (Some("InternalError" | "ServiceUnavailable"), _) | (None, Some(500..=599)) => {
                "S3 had a problem of its own; it usually passes within seconds".into()
            }
            (None, Some(403)) => {
                "the credentials were refused or may not read this bucket: a wrong secret key, an unknown access key id, or an IAM policy without s3:ListBucket (the doctor's checks ask again in a way that says which)".into()
            }
            (None, Some(404)) if self.operation.contains("Bucket") || self.operation.starts_with("List") => {
                format!("there is no bucket named {bucket} at this endpoint: create it, or fix the bucket's name")
            }
            (None, Some(404)) => "the object is not in the bucket, or the bucket does not exist".into(),
            (None, Some(400)) => format!("S3 found the {} request malformed: a bug, or an endpoint that is not S3", self.operation),
            _ => "S3 refused the request; its code and request id above let the operator (or AWS support) find out why".into(),
        }
    }

    /// What an SDK error says, for `operation` on `bucket`.
    pub(crate) fn from_sdk<E>(operation: &str, bucket: &str, e: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut f = Self::new(operation, bucket);
        match e {
            SdkError::TimeoutError(_) => {
                f.transport = Some(TIMED_OUT.into());
                return f;
            }
            SdkError::DispatchFailure(d) => {
                f.transport = Some(if d.is_timeout() { TIMED_OUT.into() } else { transport_words(e) });
                return f;
            }
            // The request could not even be built or signed (no credentials, a bad key): no
            // answer, but not an outage either.
            SdkError::ConstructionFailure(_) => {
                f.message = Some(innermost(e));
                return f;
            }
            _ => {}
        }
        let raw = e.raw_response();
        let header = |name: &str| raw.and_then(|r| r.headers().get(name)).map(str::to_owned);
        f.status = raw.map(|r| r.status().as_u16());
        // A HEAD answer has no body: any code the SDK reports for one (`NotFound`) is its own
        // guess from the status, not S3's word.
        if !operation.starts_with("Head") {
            f.code = e.code().map(str::to_owned);
            f.message = e.message().map(|m| m.chars().take(MAX_MESSAGE).collect());
        }
        f.request_id = e.request_id().map(str::to_owned).or_else(|| header("x-amz-request-id"));
        f.bucket_region = header("x-amz-bucket-region");
        if f.status.is_none() && f.code.is_none() && f.message.is_none() {
            // A response that could not be read (cut short): say what broke.
            f.transport = Some(transport_words(e));
        }
        f
    }

    /// A body that broke off while it was being read.
    pub(crate) fn body_cut(operation: &str, bucket: &str) -> Self {
        Self { transport: Some(BODY_CUT.into()), ..Self::new(operation, bucket) }
    }
}

const CONNECTION_REFUSED: &str = "connection refused";
const CONNECTION_RESET: &str = "connection reset";
const TIMED_OUT: &str = "timed out";
const BODY_CUT: &str = "the connection broke while the body was being read";
const HOST_NOT_FOUND: &str = "host name not found";

/// Why no answer came, in a few words: the I/O error's kind when there is one, else the
/// innermost error's own words.
fn transport_words(e: &(dyn std::error::Error + 'static)) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            return match io.kind() {
                K::ConnectionRefused => CONNECTION_REFUSED.into(),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => CONNECTION_RESET.into(),
                K::TimedOut => TIMED_OUT.into(),
                _ => io.to_string(),
            };
        }
        source = s.source();
    }
    let words = innermost(e);
    if words.contains("dns error") || words.contains("failed to lookup address") {
        HOST_NOT_FOUND.into()
    } else {
        words
    }
}

fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// An S3 call that failed: [`S3Failure`] in plain words, and the SDK's own account of it (its
/// `Debug`), kept only as this error's source so that it reaches the cause chain of a 5xx log
/// line and nothing else. `Display` is the failure's.
#[derive(thiserror::Error)]
#[error("{failure}")]
pub struct S3Error {
    /// What S3 answered, or why nothing did (boxed: errors travel through every `Result` on
    /// the serving path, and most of those are `Ok`).
    pub failure: Box<S3Failure>,
    #[source]
    sdk: Option<SdkAccount>,
}

impl S3Error {
    /// A failure with no SDK error behind it (a batch delete that refused some keys, a body
    /// that broke off).
    pub fn new(failure: S3Failure) -> Self {
        Self { failure: Box::new(failure), sdk: None }
    }

    pub(crate) fn from_sdk<E>(operation: &str, bucket: &str, e: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        Self { failure: Box::new(S3Failure::from_sdk(operation, bucket, e)), sdk: Some(SdkAccount(format!("{e:?}"))) }
    }

    /// Whether S3 could not be reached, did not answer in time, or answered that it is
    /// overloaded or broken (5xx): worth retrying shortly.
    pub fn is_unavailable(&self) -> bool {
        let f = &self.failure;
        f.transport.is_some() || f.status.is_some_and(|s| s >= 500 || s == 429) || f.code.as_deref() == Some("SlowDown")
    }
}

impl std::fmt::Debug for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The SDK's account is long and only for the 5xx log line's cause chain.
        f.debug_struct("S3Error").field("failure", &self.failure).finish_non_exhaustive()
    }
}

/// The SDK's `Debug` of an error, as a cause.
#[derive(Debug)]
struct SdkAccount(String);

impl std::fmt::Display for SdkAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the SDK's account: {}", self.0)
    }
}

impl std::error::Error for SdkAccount {}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(operation: &str, status: Option<u16>, code: Option<&str>, message: Option<&str>) -> S3Failure {
        S3Failure {
            status,
            code: code.map(str::to_owned),
            message: message.map(str::to_owned),
            request_id: status.map(|_| "4F1C9E2B7A3D5F60".to_owned()),
            ..S3Failure::new(operation, "acme-photos")
        }
    }

    #[test]
    fn a_refused_head_says_it_has_no_code_and_what_probably_went_wrong() {
        let text = failure("HeadBucket", Some(403), None, None).to_string();
        assert_eq!(
            text,
            "HeadBucket on bucket acme-photos: 403 Forbidden, no error code (a HEAD answer has no body); request id \
             4F1C9E2B7A3D5F60. Likely cause: the credentials were refused or may not read this bucket: a wrong secret \
             key, an unknown access key id, or an IAM policy without s3:ListBucket (the doctor's checks ask again in a \
             way that says which)"
        );
    }

    #[test]
    fn a_code_and_message_are_repeated_with_the_cause_they_point_to() {
        let text =
            failure("GetObject", Some(403), Some("SignatureDoesNotMatch"), Some("The signature is wrong.")).to_string();
        assert!(text.starts_with("GetObject on bucket acme-photos: 403 Forbidden, SignatureDoesNotMatch: The signature is wrong; request id 4F1C9E2B7A3D5F60. Likely cause: the secret access key"), "{text}");
        let missing = failure("ListObjectsV2", Some(404), Some("NoSuchBucket"), None).to_string();
        assert!(
            missing.contains("404 Not Found, NoSuchBucket; request id")
                && missing.contains("no bucket named acme-photos"),
            "{missing}"
        );
    }

    #[test]
    fn no_answer_says_why_and_has_no_status_or_request_id() {
        let f = S3Failure { transport: Some(CONNECTION_REFUSED.into()), ..S3Failure::new("HeadBucket", "b") };
        assert_eq!(
            f.to_string(),
            "HeadBucket on bucket b: no answer: connection refused. Likely cause: nothing is listening at the bucket's \
             endpoint: the S3 service is down, or the endpoint setting names the wrong host or port"
        );
    }
}
