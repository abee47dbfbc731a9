//! Bucket administration and probes: reading and writing a bucket's own configuration (CORS,
//! Block Public Access, Object Ownership, policy, lifecycle), and the calls the doctor makes
//! with every detail of S3's answer kept (status, code, request id, the bucket's region).
//!
//! These calls return [`S3Failure`], every detail of S3's answer in fields the doctor decides
//! on; the serving path ([`Bucket::head`] and friends) returns the same inside a
//! [`StorageError`](super::StorageError).

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, CorsConfiguration, CorsRule, Delete, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, ObjectIdentifier, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration,
};
use serde::Serialize;
use serde_json::Value;

use super::{Bucket, S3Failure};

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

fn current<T, E>(operation: &str, bucket: &str, r: Result<T, SdkError<E, HttpResponse>>) -> Current<T>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match r {
        Ok(v) => Current::Set(v),
        Err(e) => {
            let f = S3Failure::from_sdk(operation, bucket, &e);
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
            Err(e) => Err(S3Failure::from_sdk("HeadBucket", &self.s3_name, &e)),
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
            .map_err(|e| S3Failure::from_sdk("ListObjectsV2", &self.s3_name, &e))?;
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
            .map_err(|e| S3Failure::from_sdk("PutObject", &self.s3_name, &e))?;
        Ok(())
    }

    /// DeleteObjects: S3 answers 200 even when keys fail, so the failed keys and their codes
    /// are returned.
    pub async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, String)>, S3Failure> {
        let objects =
            keys.iter().map(|k| ObjectIdentifier::builder().key(k).build()).collect::<Result<Vec<_>, _>>().map_err(
                |e| S3Failure { message: Some(e.to_string()), ..S3Failure::new("DeleteObjects", &self.s3_name) },
            )?;
        let delete = Delete::builder().set_objects(Some(objects)).build().map_err(|e| S3Failure {
            message: Some(e.to_string()),
            ..S3Failure::new("DeleteObjects", &self.s3_name)
        })?;
        let out = self
            .client
            .delete_objects()
            .bucket(&self.s3_name)
            .delete(delete)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk("DeleteObjects", &self.s3_name, &e))?;
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
        let cors = current("GetBucketCors", b, c.get_bucket_cors().bucket(b).send().await).map(|out| {
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
        let public_access_block =
            current("GetPublicAccessBlock", b, c.get_public_access_block().bucket(b).send().await).map(|out| {
                let p = out.public_access_block_configuration();
                PublicAccessBlock {
                    block_public_acls: p.and_then(|p| p.block_public_acls()).unwrap_or(false),
                    ignore_public_acls: p.and_then(|p| p.ignore_public_acls()).unwrap_or(false),
                    block_public_policy: p.and_then(|p| p.block_public_policy()).unwrap_or(false),
                    restrict_public_buckets: p.and_then(|p| p.restrict_public_buckets()).unwrap_or(false),
                }
            });
        let ownership =
            current("GetBucketOwnershipControls", b, c.get_bucket_ownership_controls().bucket(b).send().await).map(
                |out| {
                    out.ownership_controls()
                        .and_then(|o| o.rules().first())
                        .map(|r| r.object_ownership().as_str().to_owned())
                        .unwrap_or_default()
                },
            );
        let policy = current("GetBucketPolicy", b, c.get_bucket_policy().bucket(b).send().await)
            .map(|out| out.policy().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Value::Null));
        let lifecycle = current(
            "GetBucketLifecycleConfiguration",
            b,
            c.get_bucket_lifecycle_configuration().bucket(b).send().await,
        )
        .map(|out| {
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
            .map_err(|e| self.build_failure("PutBucketCors", e))?;
        let config = CorsConfiguration::builder()
            .set_cors_rules(Some(rules))
            .build()
            .map_err(|e| self.build_failure("PutBucketCors", e))?;
        self.client
            .put_bucket_cors()
            .bucket(&self.s3_name)
            .cors_configuration(config)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk("PutBucketCors", &self.s3_name, &e))?;
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
            .map_err(|e| S3Failure::from_sdk("PutPublicAccessBlock", &self.s3_name, &e))?;
        Ok(())
    }

    pub async fn write_ownership(&self, ownership: &str) -> Result<(), S3Failure> {
        let rule = OwnershipControlsRule::builder()
            .object_ownership(ObjectOwnership::from(ownership))
            .build()
            .map_err(|e| self.build_failure("PutBucketOwnershipControls", e))?;
        let controls = OwnershipControls::builder()
            .rules(rule)
            .build()
            .map_err(|e| self.build_failure("PutBucketOwnershipControls", e))?;
        self.client
            .put_bucket_ownership_controls()
            .bucket(&self.s3_name)
            .ownership_controls(controls)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk("PutBucketOwnershipControls", &self.s3_name, &e))?;
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
                    .map_err(|e| S3Failure::from_sdk("PutBucketPolicy", &self.s3_name, &e))?;
            }
            None => {
                self.client
                    .delete_bucket_policy()
                    .bucket(&self.s3_name)
                    .send()
                    .await
                    .map_err(|e| S3Failure::from_sdk("DeleteBucketPolicy", &self.s3_name, &e))?;
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
            .map_err(|e| self.build_failure("PutBucketLifecycleConfiguration", e))?;
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| self.build_failure("PutBucketLifecycleConfiguration", e))?;
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(&self.s3_name)
            .lifecycle_configuration(config)
            .send()
            .await
            .map_err(|e| S3Failure::from_sdk("PutBucketLifecycleConfiguration", &self.s3_name, &e))?;
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

impl Bucket {
    /// A request that could not be built: nothing was sent.
    fn build_failure(&self, operation: &str, e: aws_smithy_types::error::operation::BuildError) -> S3Failure {
        S3Failure { message: Some(format!("building the request: {e}")), ..S3Failure::new(operation, &self.s3_name) }
    }
}
