//! Bucket administration and probes: reading and writing a bucket's own configuration (CORS,
//! Block Public Access, Object Ownership, policy, lifecycle), and the calls the doctor makes
//! with every detail of S3's answer kept (status, code, request id, the bucket's region).
//!
//! The serving path ([`Bucket::head`] and friends) folds failures into a sentence; a person
//! fixing a setup needs the code and the request id, so these calls return [`S3Failure`].

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::RequestId as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, CorsConfiguration, CorsRule, Delete, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, ObjectIdentifier, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration,
};
use serde::Serialize;
use serde_json::Value;

use super::Bucket;

/// What S3 answered when a call failed, or that nothing answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.summary())]
pub struct S3Failure {
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
    /// Why no answer came (connection refused, timeout), when none did.
    pub transport: Option<String>,
}

impl S3Failure {
    /// The endpoint does not implement this call (the embedded endpoint, MinIO for some).
    pub fn is_unsupported(&self) -> bool {
        self.status == Some(501) || self.code.as_deref() == Some("NotImplemented")
    }

    /// One line: "403 SignatureDoesNotMatch (request id …)".
    pub fn summary(&self) -> String {
        if let Some(t) = &self.transport {
            return format!("no answer: {t}");
        }
        let mut s = self.status.map_or_else(|| "no status".to_owned(), |c| c.to_string());
        if let Some(code) = &self.code {
            s.push(' ');
            s.push_str(code);
        }
        if let Some(m) = &self.message {
            s.push_str(&format!(": {m}"));
        }
        if let Some(id) = &self.request_id {
            s.push_str(&format!(" (request id {id})"));
        }
        s
    }

    fn from_sdk<E>(e: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) {
            return Self { transport: Some(aws_sdk_s3::error::DisplayErrorContext(e).to_string()), ..Self::default() };
        }
        let raw = e.raw_response();
        let header = |name: &str| raw.and_then(|r| r.headers().get(name)).map(str::to_owned);
        Self {
            status: raw.map(|r| r.status().as_u16()),
            code: e.code().map(str::to_owned),
            message: e.message().map(str::to_owned),
            request_id: e.request_id().map(str::to_owned).or_else(|| header("x-amz-request-id")),
            bucket_region: header("x-amz-bucket-region"),
            transport: None,
        }
    }
}

/// A CORS rule, as in `put-bucket-cors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CorsRuleSpec {
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// The four Block Public Access switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

/// A lifecycle rule expiring everything under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpireRule {
    pub id: String,
    pub prefix: String,
    pub days: i32,
}

/// What a bucket currently has for one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current<T> {
    Set(T),
    NotSet,
    /// The endpoint does not implement reading this setting.
    Unsupported,
    Failed(S3Failure),
}

/// A bucket's configuration as read back.
#[derive(Debug, Clone)]
pub struct CurrentConfig {
    pub cors: Current<Vec<CorsRuleSpec>>,
    pub public_access_block: Current<PublicAccessBlock>,
    pub ownership: Current<String>,
    pub policy: Current<Value>,
    pub lifecycle: Current<Vec<ExpireRule>>,
}

/// The codes S3 answers with when a setting simply is not there.
const NOT_SET_CODES: &[&str] = &[
    "NoSuchCORSConfiguration",
    "NoSuchPublicAccessBlockConfiguration",
    "OwnershipControlsNotFoundError",
    "NoSuchBucketPolicy",
    "NoSuchLifecycleConfiguration",
];

fn current<T, E>(r: Result<T, SdkError<E, HttpResponse>>) -> Current<T>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match r {
        Ok(v) => Current::Set(v),
        Err(e) => {
            let f = S3Failure::from_sdk(&e);
            if f.code.as_deref().is_some_and(|c| NOT_SET_CODES.contains(&c)) {
                Current::NotSet
            } else if f.is_unsupported() {
                Current::Unsupported
            } else {
                Current::Failed(f)
            }
        }
    }
}

impl Bucket {
    /// The region the client signs for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The URL browsers POST upload forms to.
    pub fn form_url(&self) -> &str {
        &self.form_url
    }

    /// The object's address at S3 itself (never the CDN), for anonymous probes.
    pub fn direct_url(&self, key: &str) -> String {
        if self.form_url.ends_with('/') {
            format!("{}{key}", self.form_url)
        } else {
            format!("{}/{key}", self.form_url)
        }
    }

    /// HeadBucket, keeping what S3 says: on success, the region it reports (if any).
    pub async fn probe_head(&self) -> Result<Option<String>, S3Failure> {
        match self.client.head_bucket().bucket(&self.s3_name).send().await {
            Ok(out) => Ok(out.bucket_region().map(str::to_owned)),
            Err(e) => Err(S3Failure::from_sdk(&e)),
        }
    }

    /// ListObjectsV2 under `prefix`: the keys found (first page). Unlike HEAD, a refusal here
    /// carries an error code, which tells a wrong secret from a missing bucket.
    pub async fn probe_list(&self, prefix: &str) -> Result<Vec<String>, S3Failure> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.s3_name)
            .prefix(prefix)
            .max_keys(100)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(&e))?;
        Ok(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect())
    }

    /// PutObject, keeping S3's answer.
    pub async fn probe_put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), S3Failure> {
        self.client
            .put_object()
            .bucket(&self.s3_name)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(&e))?;
        Ok(())
    }

    /// DeleteObjects: S3 answers 200 even when keys fail, so the failed keys and their codes
    /// are returned.
    pub async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, String)>, S3Failure> {
        let objects = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| S3Failure { message: Some(e.to_string()), ..S3Failure::default() })?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .build()
            .map_err(|e| S3Failure { message: Some(e.to_string()), ..S3Failure::default() })?;
        let out = self
            .client
            .delete_objects()
            .bucket(&self.s3_name)
            .delete(delete)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(&e))?;
        Ok(out
            .errors()
            .iter()
            .map(|e| (e.key().unwrap_or("").to_owned(), e.code().unwrap_or("unknown").to_owned()))
            .collect())
    }

    /// Read every setting `s3-config` manages.
    pub async fn read_config(&self) -> CurrentConfig {
        let b = &self.s3_name;
        let c = &self.client;
        let cors = current(c.get_bucket_cors().bucket(b).send().await).map(|out| {
            out.cors_rules()
                .iter()
                .map(|r| CorsRuleSpec {
                    allowed_origins: r.allowed_origins().to_vec(),
                    allowed_methods: r.allowed_methods().to_vec(),
                    allowed_headers: r.allowed_headers().to_vec(),
                    expose_headers: r.expose_headers().to_vec(),
                    max_age_seconds: r.max_age_seconds(),
                })
                .collect()
        });
        let public_access_block = current(c.get_public_access_block().bucket(b).send().await).map(|out| {
            let p = out.public_access_block_configuration();
            PublicAccessBlock {
                block_public_acls: p.and_then(|p| p.block_public_acls()).unwrap_or(false),
                ignore_public_acls: p.and_then(|p| p.ignore_public_acls()).unwrap_or(false),
                block_public_policy: p.and_then(|p| p.block_public_policy()).unwrap_or(false),
                restrict_public_buckets: p.and_then(|p| p.restrict_public_buckets()).unwrap_or(false),
            }
        });
        let ownership = current(c.get_bucket_ownership_controls().bucket(b).send().await).map(|out| {
            out.ownership_controls()
                .and_then(|o| o.rules().first())
                .map(|r| r.object_ownership().as_str().to_owned())
                .unwrap_or_default()
        });
        let policy = current(c.get_bucket_policy().bucket(b).send().await)
            .map(|out| out.policy().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null));
        let lifecycle = current(c.get_bucket_lifecycle_configuration().bucket(b).send().await).map(|out| {
            out.rules()
                .iter()
                .map(|r| ExpireRule {
                    id: r.id().unwrap_or("").to_owned(),
                    prefix: r.filter().and_then(|f| f.prefix()).unwrap_or("").to_owned(),
                    days: r.expiration().and_then(|e| e.days()).unwrap_or(0),
                })
                .collect()
        });
        CurrentConfig { cors, public_access_block, ownership, policy, lifecycle }
    }

    /// Replace the bucket's CORS rules.
    pub async fn write_cors(&self, rules: &[CorsRuleSpec]) -> Result<(), S3Failure> {
        let rules = rules
            .iter()
            .map(|r| {
                CorsRule::builder()
                    .set_allowed_origins(Some(r.allowed_origins.clone()))
                    .set_allowed_methods(Some(r.allowed_methods.clone()))
                    .set_allowed_headers(Some(r.allowed_headers.clone()))
                    .set_expose_headers(Some(r.expose_headers.clone()))
                    .set_max_age_seconds(r.max_age_seconds)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(build_failure)?;
        let config = CorsConfiguration::builder().set_cors_rules(Some(rules)).build().map_err(build_failure)?;
        self.client
            .put_bucket_cors()
            .bucket(&self.s3_name)
            .cors_configuration(config)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(&e))?;
        Ok(())
    }

    pub async fn write_public_access_block(&self, p: PublicAccessBlock) -> Result<(), S3Failure> {
        let config = PublicAccessBlockConfiguration::builder()
            .block_public_acls(p.block_public_acls)
            .ignore_public_acls(p.ignore_public_acls)
            .block_public_policy(p.block_public_policy)
            .restrict_public_buckets(p.restrict_public_buckets)
            .build();
        self.client
            .put_public_access_block()
            .bucket(&self.s3_name)
            .public_access_block_configuration(config)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(&e))?;
        Ok(())
    }

    pub async fn write_ownership(&self, ownership: &str) -> Result<(), S3Failure> {
        let rule = OwnershipControlsRule::builder()
            .object_ownership(ObjectOwnership::from(ownership))
            .build()
            .map_err(build_failure)?;
        let controls = OwnershipControls::builder().rules(rule).build().map_err(build_failure)?;
        self.client
            .put_bucket_ownership_controls()
            .bucket(&self.s3_name)
            .ownership_controls(controls)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(&e))?;
        Ok(())
    }

    /// Set the bucket policy, or delete it when `policy` is `None`.
    pub async fn write_policy(&self, policy: Option<&Value>) -> Result<(), S3Failure> {
        match policy {
            Some(p) => {
                self.client
                    .put_bucket_policy()
                    .bucket(&self.s3_name)
                    .policy(p.to_string())
                    .send()
                    .await
                    .map_err(|e| S3Failure::from_sdk(&e))?;
            }
            None => {
                self.client
                    .delete_bucket_policy()
                    .bucket(&self.s3_name)
                    .send()
                    .await
                    .map_err(|e| S3Failure::from_sdk(&e))?;
            }
        }
        Ok(())
    }

    /// Replace the bucket's lifecycle rules.
    pub async fn write_lifecycle(&self, rules: &[ExpireRule]) -> Result<(), S3Failure> {
        let rules = rules
            .iter()
            .map(|r| {
                LifecycleRule::builder()
                    .id(&r.id)
                    .filter(LifecycleRuleFilter::builder().prefix(&r.prefix).build())
                    .expiration(LifecycleExpiration::builder().days(r.days).build())
                    .status(ExpirationStatus::Enabled)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(build_failure)?;
        let config = BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().map_err(build_failure)?;
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(&self.s3_name)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk(&e))?;
        Ok(())
    }
}

impl<T> Current<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Current<U> {
        match self {
            Current::Set(v) => Current::Set(f(v)),
            Current::NotSet => Current::NotSet,
            Current::Unsupported => Current::Unsupported,
            Current::Failed(e) => Current::Failed(e),
        }
    }
}

fn build_failure(e: aws_smithy_types::error::operation::BuildError) -> S3Failure {
    S3Failure { message: Some(format!("building the request: {e}")), ..S3Failure::default() }
}
