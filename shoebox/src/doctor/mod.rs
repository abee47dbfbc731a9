//! The S3 doctor: what each bucket needs ([`s3_config`]), how far a live bucket is from it
//! ([`apply_plan`] compares and writes), and checks of a live setup that return findings ([`check_buckets`], [`database`]). Nothing here
//! prints: `cli` renders the [`Report`].

mod checks;
pub mod database;
mod probes;
mod reach;
pub mod s3_config;
mod settings;

pub use crate::storage::S3Failure;
use crate::storage::StorageError;
pub use settings::SectionState;

use serde::Serialize;

/// How one check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// As it should be.
    Pass,
    /// Not as it should be: the check says why and how to fix it.
    Fail,
    /// Not run: an earlier check failed, or the endpoint does not support it.
    Skipped,
}

/// One check's finding. A failure says what was tried, what came back, the likely cause in
/// plain words and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable, machine-readable (`bucket.region`).
    pub name: &'static str,
    /// `database`, or the bucket's configured name.
    pub subject: String,
    /// How it went.
    pub outcome: Outcome,
    /// What was tried, in words (the request made, the setting read).
    pub tried: String,
    /// What the server answered: status, code, request id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// The likely cause, in plain words (for a skipped check: why it was skipped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// How long it took.
    pub elapsed_ms: u64,
}

impl Check {
    /// A check that passed.
    pub fn pass(name: &'static str, subject: &str, tried: impl Into<String>) -> Self {
        Self {
            name,
            subject: subject.to_owned(),
            outcome: Outcome::Pass,
            tried: tried.into(),
            answer: None,
            cause: None,
            fix: None,
            elapsed_ms: 0,
        }
    }

    /// A check that failed, with what came back, the cause and the fix.
    pub fn fail(
        name: &'static str,
        subject: &str,
        tried: impl Into<String>,
        answer: Option<String>,
        cause: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            outcome: Outcome::Fail,
            answer,
            cause: Some(cause.into()),
            fix: Some(fix.into()),
            ..Self::pass(name, subject, tried)
        }
    }

    /// A check not run, and why.
    pub fn skipped(name: &'static str, subject: &str, why: impl Into<String>) -> Self {
        Self { outcome: Outcome::Skipped, cause: Some(why.into()), ..Self::pass(name, subject, "nothing") }
    }

    fn timed(mut self, started: std::time::Instant) -> Self {
        self.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self
    }
}

impl Check {
    /// The health report's entry for one dependency (what `/healthz` checks), as the doctor's
    /// first finding about it.
    pub fn from_health(h: &crate::health::Check) -> Self {
        let tried = match h.dependency {
            crate::health::Dependency::Database => "the /healthz check: select 1".to_owned(),
            crate::health::Dependency::Bucket => "the /healthz check: HeadBucket".to_owned(),
        };
        let mut check = if h.ok {
            Self::pass("health", &h.name, tried)
        } else {
            Self::fail(
                "health",
                &h.name,
                tried,
                h.problem.clone(),
                "the service's own health check fails, so /healthz answers 503",
                "see the more specific findings below",
            )
        };
        check.elapsed_ms = h.elapsed_ms;
        check
    }
}

/// Every check, in the order run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The findings.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed (skipped checks do not fail the report).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Fail)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Fail)
    }

    /// The check named `name` for `subject`.
    pub fn get(&self, subject: &str, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.subject == subject && c.name == name)
    }
}

/// "run `shoebox s3-config --apply`, section `cors`".
pub fn fix_with(section: &str) -> String {
    format!("run `shoebox s3-config --apply` (or paste its `{section}` section)")
}

/// One bucket's settings compared with its plan, and what `--apply` wrote.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The configured name.
    pub name: String,
    /// The S3 name.
    pub s3_name: String,
    /// Each section as it was found.
    pub sections: Vec<(&'static str, SectionState)>,
    /// The sections written, or the one that failed and why.
    pub written: Result<Vec<&'static str>, String>,
}

/// Compare each bucket in `plan` with its live settings, then write what differs (the
/// bucket-level sections only; the IAM policy is the operator's to apply).
pub async fn apply_plan(
    storage: &crate::storage::Storage,
    plan: &s3_config::Plan,
) -> Result<Vec<Applied>, StorageError> {
    let mut out = Vec::new();
    for p in &plan.buckets {
        let b = storage.bucket(&p.name)?;
        let current = b.read_config().await;
        let sections = settings::compare(p, &current);
        let written = settings::apply(b, p).await.map_err(|(section, f)| format!("writing {section}: {}", f.summary()));
        out.push(Applied { name: p.name.clone(), s3_name: p.s3_name.clone(), sections, written });
    }
    Ok(out)
}

/// Run every bucket check for the buckets in `plan` (matched by configured name).
pub async fn check_buckets(
    storage: &crate::storage::Storage,
    plan: &s3_config::Plan,
    origins: &[String],
) -> Vec<Check> {
    let http = probes::client();
    let mut out = Vec::new();
    for p in &plan.buckets {
        match storage.bucket(&p.name) {
            Ok(b) => out.extend(checks::bucket(b, p, origins, &http).await),
            Err(e) => out.push(Check::skipped("bucket.endpoint", &p.name, e.to_string())),
        }
    }
    out
}
