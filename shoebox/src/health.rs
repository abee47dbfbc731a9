//! The health report: every dependency (the database, each bucket), checked for real, with how
//! long it took and, when it fails, a sentence saying what failed. `/healthz` renders it and
//! `shoebox doctor` starts from it.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::app::Shoebox;
use crate::db::Db;
use crate::storage::Storage;

/// How long one check may take before it counts as failed: well under Heroku's 30 s router
/// limit, so `/healthz` always answers.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What a dependency is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dependency {
    /// The database.
    Database,
    /// One bucket.
    Bucket,
}

/// One dependency's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What it is.
    pub dependency: Dependency,
    /// `database`, or the configured bucket name.
    pub name: String,
    /// Whether it answered in time.
    pub ok: bool,
    /// How long it took.
    pub elapsed_ms: u64,
    /// What failed, in a sentence; `None` when the check passed.
    pub problem: Option<String>,
}

/// Every dependency's state, in a stable order: the database, then buckets by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// One entry per dependency.
    pub checks: Vec<Check>,
}

impl HealthReport {
    /// True when every dependency answered.
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

/// Check the service's database and every bucket.
pub async fn check(app: &Shoebox) -> HealthReport {
    check_parts(&app.db, &app.storage).await
}

/// Check a database and every bucket, all at once, each bounded by [`CHECK_TIMEOUT`]; for
/// callers (the doctor) that have the parts without a whole service.
pub async fn check_parts(db: &Db, storage: &Storage) -> HealthReport {
    let database = timed(Dependency::Database, "database".to_owned(), async {
        db.health_check().await.map_err(|e| format!("The database did not answer: {}.", chain(&e)))
    });
    let buckets = storage.buckets().map(|b| {
        timed(Dependency::Bucket, b.name().to_owned(), async move {
            // S3's answer in plain words (call, bucket, status, code, request id, likely cause);
            // never the SDK's Debug account, which belongs to a 5xx's cause chain only.
            b.health_check().await.map_err(|e| format!("{e}."))
        })
    });
    let (database, buckets) = tokio::join!(database, futures_util::future::join_all(buckets));
    let mut checks = vec![database];
    checks.extend(buckets);
    HealthReport { checks }
}

async fn timed(dependency: Dependency, name: String, check: impl Future<Output = Result<(), String>>) -> Check {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("No answer within {} seconds.", CHECK_TIMEOUT.as_secs())),
    };
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Err(problem) = &outcome {
        tracing::error!(dependency = %name, %problem, "health check failed");
    }
    Check { dependency, name, ok: outcome.is_ok(), elapsed_ms, problem: outcome.err() }
}

/// An error with its causes, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
