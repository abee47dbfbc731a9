//! Building a bucket's S3 client: region, credentials, endpoint, and the timeouts that turn an
//! unreachable or hung S3 into a quick, retryable error.

use std::time::Duration;

use aws_sdk_s3::config::retry::{RetryConfig, RetryPartition, TokenBucket};
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

use super::{Bucket, SigningCredentials, StorageError};
use crate::domain::BucketAccess;
use crate::storage::BucketSettings;

/// How long to wait for a TCP connection to the endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one attempt may wait for S3's answer (its headers; a body streams on after).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1800);
/// How long an operation may take, retries included: an unreachable or hung S3 becomes
/// [`StorageError::Unavailable`] within this, so a request answers 503 well inside 5 s (and far
/// inside Heroku's 30 s router limit) instead of hanging.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);
/// Attempts per operation, the first included. S3 asks clients to retry its 500s, 503s and
/// `SlowDown`s, and every call Shoebox makes may be repeated safely: reads, HEADs, a PUT of the
/// same bytes to the same key, deletes, listings. A streamed body that breaks after its
/// headers is not retried (its first bytes may already be on their way to a viewer).
const MAX_ATTEMPTS: u32 = 3;
/// The wait before the first retry, doubled before the next and jittered (each wait is a
/// random part of it, so clients that failed together do not retry together). The SDK's
/// default of 1 s would let a `SlowDown` use most of [`OPERATION_TIMEOUT`] waiting.
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Writes carry a whole photo (up to the largest kind's limit), which takes longer than a
/// read's first byte on a slow link; they happen only when an upload completes.
pub(super) const PUT_TIMEOUT: Duration = Duration::from_secs(15);

impl Bucket {
    pub(super) async fn new(
        s: &BucketSettings,
        override_credentials: Option<&SigningCredentials>,
    ) -> Result<Self, StorageError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(s.region.clone()));
        if let Some(c) = override_credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                c.session_token.clone(),
                None,
                "shoebox-embedded",
            ));
        } else if let (Some(id_var), Some(secret_var)) = (&s.access_key_id_env, &s.secret_access_key_env) {
            let id = std::env::var(id_var).map_err(|_| StorageError::Credentials(format!("{id_var} is not set")))?;
            let secret =
                std::env::var(secret_var).map_err(|_| StorageError::Credentials(format!("{secret_var} is not set")))?;
            loader = loader.credentials_provider(Credentials::new(id, secret, None, None, "shoebox-config"));
        }
        let sdk = loader.load().await;
        let credentials = sdk
            .credentials_provider()
            .ok_or_else(|| StorageError::Credentials("no AWS credentials found in the environment".into()))?;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(INITIAL_BACKOFF)
            .with_max_backoff(MAX_BACKOFF);
        // Retries spend a quota (the SDK's token bucket: 500 tokens, 5 a retry, 10 after a
        // timeout, one back per first-time success), so a long outage stops being retried
        // instead of tripling the load on a struggling S3. By default every client in the
        // process shares one quota; each bucket gets its own, so an outage of one endpoint
        // does not stop retries to another (and a test's faults do not leak into the next).
        let quota = RetryPartition::custom(format!("shoebox-{}", s.name)).token_bucket(TokenBucket::default()).build();
        let mut builder = aws_sdk_s3::config::Builder::from(&sdk)
            .timeout_config(timeouts)
            .retry_config(retries)
            .retry_partition(quota)
            .interceptor(super::metered::Metered::new(&s.bucket));
        let endpoint = s.endpoint.as_deref().map(|e| e.trim_end_matches('/').to_owned());
        if let Some(ep) = &endpoint {
            builder = builder.endpoint_url(ep.clone()).force_path_style(true);
        }
        let client = aws_sdk_s3::Client::from_conf(builder.build());
        let (form_url, direct_base) = match &endpoint {
            Some(ep) => (format!("{ep}/{}", s.bucket), format!("{ep}/{}/", s.bucket)),
            None => {
                let host = format!("https://{}.s3.{}.amazonaws.com/", s.bucket, s.region);
                (host.clone(), host)
            }
        };
        let public_base = match s.access {
            BucketAccess::Public => Some(match &s.cdn_base_url {
                Some(cdn) => format!("{}/", cdn.trim_end_matches('/')),
                None => direct_base,
            }),
            BucketAccess::Private => None,
        };
        Ok(Self {
            name: s.name.clone(),
            s3_name: s.bucket.clone(),
            access: s.access,
            region: s.region.clone(),
            client,
            credentials,
            form_url,
            public_base,
            owned: s.owned,
        })
    }
}
