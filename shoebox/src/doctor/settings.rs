//! How far a bucket's live configuration is from its [`BucketPlan`], and applying the plan.

use serde_json::Value;

use super::s3_config::{self, BucketPlan};
use crate::storage::Bucket;
use crate::storage::S3Failure;
use crate::storage::admin::{Current, CurrentConfig};

/// One section's state against the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionState {
    /// As the plan says.
    AsPlanned,
    /// Differs: what it is now and what the plan wants, as JSON text.
    Differs {
        /// What the bucket has.
        now: String,
        /// What the plan wants.
        wanted: String,
    },
    /// The endpoint does not implement this setting.
    Unsupported,
    /// Could not be read (commonly: the app's least-privilege user may not read settings).
    Unreadable(S3Failure),
}

/// Each of the five bucket-level sections, by name, compared with the plan.
pub fn compare(plan: &BucketPlan, current: &CurrentConfig) -> Vec<(&'static str, SectionState)> {
    vec![
        (s3_config::CORS, state(&current.cors, &plan.cors)),
        (s3_config::PUBLIC_ACCESS_BLOCK, state(&current.public_access_block, &plan.public_access_block)),
        (s3_config::OBJECT_OWNERSHIP, state(&current.ownership, &plan.ownership.to_owned())),
        (s3_config::BUCKET_POLICY, policy_state(&current.policy, plan.policy.as_ref())),
        (s3_config::LIFECYCLE, state(&current.lifecycle, &plan.lifecycle)),
    ]
}

fn state<T: PartialEq + serde::Serialize>(now: &Current<T>, wanted: &T) -> SectionState {
    let json = |v: &T| serde_json::to_string(v).unwrap_or_default();
    match now {
        Current::Set(v) if v == wanted => SectionState::AsPlanned,
        Current::Set(v) => SectionState::Differs { now: json(v), wanted: json(wanted) },
        Current::NotSet => SectionState::Differs { now: "not set".into(), wanted: json(wanted) },
        Current::Unsupported => SectionState::Unsupported,
        Current::Failed(f) => SectionState::Unreadable(f.clone()),
    }
}

fn policy_state(now: &Current<Value>, wanted: Option<&Value>) -> SectionState {
    match (now, wanted) {
        (Current::Set(v), Some(w)) if v == w => SectionState::AsPlanned,
        (Current::NotSet, None) => SectionState::AsPlanned,
        (Current::Set(v), w) => SectionState::Differs {
            now: v.to_string(),
            wanted: w.map_or_else(|| "no policy".to_owned(), Value::to_string),
        },
        (Current::NotSet, Some(w)) => SectionState::Differs { now: "no policy".into(), wanted: w.to_string() },
        (Current::Unsupported, _) => SectionState::Unsupported,
        (Current::Failed(f), _) => SectionState::Unreadable(f.clone()),
    }
}

/// Write the sections that differ from the plan, in the plan's order (the public access
/// block before the policy). Returns the sections written.
pub async fn apply(bucket: &Bucket, plan: &BucketPlan) -> Result<Vec<&'static str>, (&'static str, S3Failure)> {
    let current = bucket.read_config().await;
    let mut written = Vec::new();
    for (section, st) in compare(plan, &current) {
        if !matches!(st, SectionState::Differs { .. }) {
            continue;
        }
        let r = match section {
            s3_config::CORS => bucket.write_cors(&plan.cors).await,
            s3_config::PUBLIC_ACCESS_BLOCK => bucket.write_public_access_block(plan.public_access_block).await,
            s3_config::OBJECT_OWNERSHIP => bucket.write_ownership(plan.ownership).await,
            s3_config::BUCKET_POLICY => bucket.write_policy(plan.policy.as_ref()).await,
            _ => bucket.write_lifecycle(&plan.lifecycle).await,
        };
        r.map_err(|e| (section, e))?;
        written.push(section);
    }
    Ok(written)
}
