//! Clean-up on an interval inside `shoebox serve` (`SHOEBOX_CLEAN_UP_EVERY`), for deployments
//! without a scheduler. Every process may run the loop; a lock row in the database lets one of
//! them run each round, and a failed round is logged and tried again next time.

use std::time::Duration;

use tracing::Instrument as _;

use super::clean_up::{self, Options, Summary};
use crate::app::Shoebox;
use crate::db::{DbError, job_locks};
use crate::domain::{Millis, now_millis, random_token};

const LOCK: &str = "clean-up";

impl Shoebox {
    /// Run clean-up now if no other process is running it; `None` when another holds the lock.
    /// `holder` names this process (its dyno); the lock lasts `lease`, so a process that dies
    /// mid-run frees it by itself.
    pub async fn clean_up_if_free(&self, holder: &str, lease: Duration) -> Result<Option<Summary>, DbError> {
        clean_up_if_free(self, holder, lease).await
    }
}

async fn clean_up_if_free(app: &Shoebox, holder: &str, lease: Duration) -> Result<Option<Summary>, DbError> {
    let now = now_millis();
    let until = now.saturating_add(Millis::try_from(lease.as_millis()).unwrap_or(Millis::MAX));
    if !job_locks::try_take(&app.db, LOCK, holder, now, until).await? {
        return Ok(None);
    }
    let summary = clean_up::run(app, &Options::new(app.now()), &|_| {}).await;
    job_locks::release(&app.db, LOCK, holder).await?;
    summary.map(Some)
}

/// Every `every`, run clean-up if no other process is; forever (spawn it for the server's
/// lifetime). A failed round is logged and tried again next time.
///
/// ```no_run
/// # fn f(shoebox: shoebox::Shoebox) {
/// tokio::spawn(shoebox::jobs::clean_up_every(shoebox, std::time::Duration::from_secs(3600)));
/// # }
/// ```
pub async fn clean_up_every(app: Shoebox, every: Duration) {
    let holder = random_token();
    let mut ticks = tokio::time::interval(every);
    // The first tick is immediate: wait one period so a restart loop cannot hammer S3.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        // Its lines say which job wrote them, as a request's say which request.
        let round = clean_up_if_free(&app, &holder, every.max(Duration::from_secs(600)))
            .instrument(tracing::info_span!("job", job = "clean_up"))
            .await;
        match round {
            Ok(Some(s)) => tracing::info!(deleted = s.deleted, errors = s.errors, "scheduled clean-up done"),
            Ok(None) => tracing::debug!("scheduled clean-up: another process is running it"),
            Err(e) => tracing::error!(error = %e, "scheduled clean-up failed; trying again next time"),
        }
    }
}
