//! Resize-all: the catch-all that makes every missing variant of every live photo, for when
//! completion and the first request did not (a failure, a new variant, a changed recipe), and
//! fills in the placeholder of photos verified before placeholders existed.
//!
//! Safe beside the web dynos and another resize-all: each variant is claimed in the database
//! first (the variant's row is the claim), so whoever claims it makes it and the others skip it.
//! Resumable: what is made is recorded, so a run stopped anywhere is finished by running it
//! again; a claim left by a killed run is taken over once it is stale. A photo that cannot be
//! made into variants is recorded as failed with the reason, and skipped by later runs unless
//! they ask to retry failures.

use serde::Serialize;

use crate::app::Shoebox;
use crate::db::variants as rows;
use crate::db::{DbError, photos as photo_rows};
use crate::domain::{Kind, Photo, PhotoId};
use crate::imaging;
use crate::photos::PhotoError;
use crate::variants::{self, VariantError};

/// Photos read from the database at a time.
const PAGE: i64 = 100;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Try again the variants an earlier run recorded as failed.
    pub retry_failed: bool,
    /// Stop after this many photos (a bounded batch; a later run carries on).
    pub limit: Option<usize>,
}

/// What a run did, for people (the CLI prints it) and scripts (`--json`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Live photos looked at.
    pub photos: usize,
    /// Variants made by this run.
    pub made: usize,
    /// Variants already made, being made elsewhere, or failed before.
    pub skipped: usize,
    /// Placeholders filled in, for photos verified before placeholders existed.
    pub placeholders: usize,
    /// Photos whose variants could not be made (bad image, or the bucket or database failed).
    pub failed: usize,
    /// Which, and why.
    pub failures: Vec<Failure>,
}

/// A photo whose variants could not be made.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// Its id.
    pub photo: String,
    /// Why.
    pub reason: String,
}

/// What the progress display hears about.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// The run starts over this many live photos.
    Start {
        /// How many.
        photos: u64,
    },
    /// One photo is done.
    Photo {
        /// Its id.
        id: &'a str,
        /// Variants made.
        made: usize,
        /// Why it failed, if it did.
        failed: Option<&'a str>,
    },
}

/// Why a run stopped early: listing the photos failed. A single photo's failure never stops it.
#[derive(Debug, thiserror::Error)]
pub enum ResizeAllError {
    /// The database failed: an outage or a bug (see [`DbError::fault`]).
    #[error("could not list the photos")]
    Db(#[from] DbError),
}

impl Shoebox {
    /// Make every missing variant of every live photo, in photo id order: the catch-all for
    /// when completion and the first request did not (the seed's `resize_all`).
    pub async fn resize_all(&self, options: &Options) -> Result<Summary, ResizeAllError> {
        resize_all(self, options, &|_| {}).await
    }
}

/// [`Shoebox::resize_all`], telling `progress` about each photo (a progress bar or log lines).
pub async fn resize_all(
    app: &Shoebox,
    options: &Options,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Summary, ResizeAllError> {
    let done = run(app, options, progress).await;
    match &done {
        Ok(s) => crate::telemetry::job_run(
            "resize_all",
            if s.failed == 0 { "ok" } else { "item_errors" },
            &[("photos", s.photos), ("made", s.made), ("skipped", s.skipped), ("failed", s.failed)]
                .map(|(count, n)| (count, u64::try_from(n).unwrap_or(u64::MAX))),
        ),
        Err(_) => crate::telemetry::job_run("resize_all", "failed", &[]),
    }
    done
}

async fn run(
    app: &Shoebox,
    options: &Options,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Summary, ResizeAllError> {
    let total = rows::count_live_photos(&app.db).await?;
    progress(Progress::Start { photos: u64::try_from(total).unwrap_or(0) });
    let mut summary = Summary::default();
    let mut after = String::new();
    loop {
        let ids = rows::live_photo_ids_after(&app.db, &after, PAGE).await?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        for id in &ids {
            if options.limit.is_some_and(|n| summary.photos >= n) {
                return Ok(summary);
            }
            summary.photos += 1;
            let failed = match one(app, id, options.retry_failed).await {
                Ok((outcome, filled)) => {
                    summary.placeholders += usize::from(filled);
                    summary.made += outcome.made;
                    summary.skipped += outcome.skipped;
                    progress(Progress::Photo { id, made: outcome.made, failed: outcome.failed.as_deref() });
                    outcome.failed
                }
                Err(e) => {
                    let reason = error_chain(&e);
                    tracing::warn!(photo = %id, error = %reason, "resize-all: skipping a photo");
                    progress(Progress::Photo { id, made: 0, failed: Some(&reason) });
                    Some(reason)
                }
            };
            if let Some(reason) = failed {
                summary.failed += 1;
                summary.failures.push(Failure { photo: id.clone(), reason });
            }
        }
    }
    Ok(summary)
}

/// One photo's missing variants, and its placeholder if it has none (`true`: filled in).
async fn one(app: &Shoebox, id: &str, retry_failed: bool) -> Result<(variants::PhotoOutcome, bool), VariantError> {
    let Ok(id) = id.parse::<PhotoId>() else {
        return Err(VariantError::Db(DbError::Corrupt(format!("photo id {id:?}"))));
    };
    // Read again: it may have been deleted since the page was listed.
    let Some(photo) = photo_rows::get(&app.db, id).await?.filter(|p| p.state.is_live()) else {
        return Ok(Default::default());
    };
    // A kind no longer configured has no variants to make.
    let Some(kind) = app.kinds.get(&photo.kind).cloned() else {
        return Ok(Default::default());
    };
    let filled = fill_placeholder(app, &photo, kind.as_ref()).await?;
    Ok((variants::make_missing(app, &photo, kind.as_ref(), retry_failed).await?, filled))
}

/// A photo verified before placeholders existed gets one from its original: one read and one
/// decode (at the 1/8 scale for a JPEG), once per photo. A file that cannot be decoded gets
/// none; making its variants fails too, and that is where the failure is recorded.
async fn fill_placeholder(app: &Shoebox, photo: &Photo, kind: &dyn Kind) -> Result<bool, VariantError> {
    if photo.placeholder.is_some() {
        return Ok(false);
    }
    let key = photo.object_key.as_deref().ok_or(PhotoError::NotReady)?;
    let bucket = app.storage.bucket(&photo.bucket)?;
    let (_, stream) = bucket.get_stream(key).await?;
    let bytes = stream.collect().await.map_err(|_| bucket.body_cut("GetObject"))?.into_bytes();
    let limits = kind.limits().for_engine();
    match app.run_blocking(move || imaging::placeholder(&bytes, &limits)).await {
        Ok(Some(hash)) => Ok(photo_rows::set_placeholder(&app.db, photo.id, &hash).await?),
        Ok(None) => Ok(false),
        Err(e) => {
            tracing::warn!(photo = %photo.id, error = %e, "resize-all: no placeholder for this photo");
            Ok(false)
        }
    }
}

/// The error and its causes on one line: a summary line must say what to fix.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
