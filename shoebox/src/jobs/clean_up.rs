//! `clean-up`: delete what nobody will use, in two halves a host may also run apart, under the
//! seed's names: [`Shoebox::clean_up_never_used`] (uploads never attached within the grace
//! period, and leftovers of reused forms under `incoming/`) and
//! [`Shoebox::clean_up_no_longer_needed`] (in-use and released photos past keep-until whose kind
//! gives a reason).
//!
//! Safe with several runners and at any interruption: rows are claimed before their objects
//! are touched, objects go in `DeleteObjects` batches, and a row is tombstoned only after all
//! its objects are gone. A row whose objects failed stays claimed for the next run (still
//! refused by attach); a run that dies leaves claims that expire after the lease. A run asked
//! to stop ([`Options::stop`], what `shoebox clean-up` does on SIGTERM) finishes the batch in
//! hand and stops before claiming another, so it leaves no claims behind and the next run
//! deletes exactly what is left.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use super::{Stop, note_error};
use crate::app::Shoebox;
use crate::db::{DbError, claims};
use crate::domain::{KeepContext, Millis, Photo, PhotoId, PhotoState, now_millis, random_token};
use crate::photos::object_keys_of;
use crate::storage::listing::DELETE_BATCH;

/// What to do and as of when.
#[derive(Debug, Clone)]
pub struct Options {
    /// Decide as if it were this time (`--as-of`); the grace period and keep-until are
    /// measured against it. Usually the service's clock ([`Shoebox::now`]).
    pub as_of: Millis,
    /// Say what would go; delete and change nothing.
    pub dry_run: bool,
    /// How long a claim holds before another runner may take it over.
    pub lease: Duration,
    /// Photos claimed at a time.
    pub batch: usize,
    /// After this many S3 requests in a row fail, stop: the service is down, and the next run
    /// finishes the job.
    pub max_consecutive_failures: u32,
    /// Stop at the next batch when this is requested (a SIGTERM): the batch in hand is
    /// finished, nothing new is claimed, and [`Summary::stopped`] says so.
    pub stop: Stop,
}

impl Options {
    /// A run deciding as of `as_of`, deleting for real, in batches of 1000.
    pub fn new(as_of: Millis) -> Self {
        Self {
            as_of,
            dry_run: false,
            lease: Duration::from_secs(600),
            batch: DELETE_BATCH,
            max_consecutive_failures: 3,
            stop: Stop::default(),
        }
    }
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Nothing was deleted or changed: these are what would have been.
    pub dry_run: bool,
    /// Photos deleted (tombstoned).
    pub deleted: u64,
    /// Photos deleted, by the reason on their tombstones.
    pub by_reason: BTreeMap<String, u64>,
    /// Objects under `incoming/` left by reused forms, deleted.
    pub incoming_leftovers: u64,
    /// In-use or released photos whose kind gave a later keep-until.
    pub kept_longer: u64,
    /// Bytes of objects deleted (as recorded for photos; as listed for leftovers).
    pub bytes_freed: u64,
    /// Items that failed (each is retried by the next run).
    pub errors: u64,
    /// The first errors, for the report; every one is also logged.
    pub error_messages: Vec<String>,
    /// Requests made to S3.
    pub s3_requests: u64,
    /// Of those, `DeleteObjects` requests (each up to 1000 keys).
    pub delete_requests: u64,
    /// A stop was requested ([`Options::stop`]) and the run stopped at the next batch: what is
    /// left is the next run's.
    pub stopped: bool,
}

impl Summary {
    fn error(&mut self, message: String) {
        note_error(&mut self.errors, &mut self.error_messages, message);
    }

    fn count(&mut self, reason: &str, bytes: Option<i64>) {
        self.deleted += 1;
        *self.by_reason.entry(reason.to_owned()).or_default() += 1;
        self.bytes_freed += bytes.and_then(|b| u64::try_from(b).ok()).unwrap_or(0);
    }
}

/// The tombstone reasons of abandoned uploads (never finished, finished but never saved).
pub fn abandoned_reasons(grace: Duration) -> (String, String) {
    let hours = grace.as_secs() / 3600;
    let within = if hours > 0 { format!("{hours} hours") } else { format!("{} minutes", grace.as_secs() / 60) };
    (format!("The upload was not finished within {within}."), format!("It was not saved within {within}."))
}

impl Shoebox {
    /// Both halves of clean-up, as `shoebox clean-up` and the scheduled run do.
    pub async fn clean_up(&self, opts: &Options) -> Result<Summary, DbError> {
        run(self, opts, &|_| {}).await
    }

    /// Delete uploads nobody attached within the grace period (signed forms never used, and
    /// verified uploads never saved: abandoned pages), and leftovers of reused forms under
    /// `incoming/`. The seed's `clean_up_never_used`.
    pub async fn clean_up_never_used(&self, opts: &Options) -> Result<Summary, DbError> {
        let mut s = Summary { dry_run: opts.dry_run, ..Summary::default() };
        let done = never_used(self, opts, now_millis(), &mut s, &|_| {}).await.map(|()| {
            s.stopped = opts.stop.requested();
            s
        });
        record(opts, &done);
        done
    }

    /// Delete in-use and released photos whose keep-until has passed and whose kind gives a
    /// reason ([`Kind::reason_to_delete`](crate::Kind::reason_to_delete), recorded on the
    /// tombstone); give the others the kind's later keep-until. The seed's
    /// `clean_up_no_longer_needed`.
    pub async fn clean_up_no_longer_needed(&self, opts: &Options) -> Result<Summary, DbError> {
        let mut s = Summary { dry_run: opts.dry_run, ..Summary::default() };
        let done = past_keep_until(self, opts, now_millis(), &mut s, &|_| {}).await.map(|()| {
            s.stopped = opts.stop.requested();
            s
        });
        record(opts, &done);
        done
    }
}

/// A run's outcome and counts as metrics (see [`telemetry`](crate::telemetry)); a dry run
/// changed nothing and records nothing.
fn record(opts: &Options, done: &Result<Summary, DbError>) {
    if opts.dry_run {
        return;
    }
    match done {
        Ok(s) => crate::telemetry::job_run(
            "clean_up",
            if s.errors == 0 { "ok" } else { "item_errors" },
            &[
                ("deleted", s.deleted),
                ("incoming_leftovers", s.incoming_leftovers),
                ("kept_longer", s.kept_longer),
                ("bytes_freed", s.bytes_freed),
                ("errors", s.errors),
                ("s3_requests", s.s3_requests),
                ("delete_requests", s.delete_requests),
            ],
        ),
        Err(_) => crate::telemetry::job_run("clean_up", "failed", &[]),
    }
}

/// Run both halves of clean-up. `progress` is called with the summary so far after each step
/// (a progress bar or log lines). Only a database that cannot be reached at all fails the run;
/// everything else is counted as an error and the run goes on.
pub async fn run(app: &Shoebox, opts: &Options, progress: &(dyn Fn(&Summary) + Sync)) -> Result<Summary, DbError> {
    let mut s = Summary { dry_run: opts.dry_run, ..Summary::default() };
    // Claims are leases between processes, on the real clock; `as_of` is the lifecycle's.
    let run_start = now_millis();
    let done = async {
        never_used(app, opts, run_start, &mut s, progress).await?;
        past_keep_until(app, opts, run_start, &mut s, progress).await?;
        s.stopped = opts.stop.requested();
        progress(&s);
        Ok::<(), DbError>(())
    }
    .await
    .map(|()| s);
    record(opts, &done);
    done
}

/// Whether to stop before the next step, as [`Options::stop`] asks.
fn stopping(opts: &Options) -> bool {
    opts.stop.requested()
}

async fn never_used(
    app: &Shoebox,
    opts: &Options,
    run_start: Millis,
    s: &mut Summary,
    progress: &(dyn Fn(&Summary) + Sync),
) -> Result<(), DbError> {
    let grace = Millis::try_from(app.limits.clean_up_grace.as_millis()).unwrap_or(Millis::MAX);
    let cutoff = opts.as_of.saturating_sub(grace);
    abandoned(app, opts, cutoff, run_start, s, progress).await?;
    if !stopping(opts) {
        incoming_leftovers(app, opts, cutoff, s).await;
    }
    progress(s);
    Ok(())
}

/// Uploads signed or ready at `cutoff` or earlier (inclusive) and never attached.
async fn abandoned(
    app: &Shoebox,
    opts: &Options,
    cutoff: Millis,
    run_start: Millis,
    s: &mut Summary,
    progress: &(dyn Fn(&Summary) + Sync),
) -> Result<(), DbError> {
    let (signed_reason, ready_reason) = abandoned_reasons(app.limits.clean_up_grace);
    let reason = |p: &Photo| if p.state == PhotoState::Signed { &signed_reason } else { &ready_reason };
    let limit = i64::try_from(opts.batch.clamp(1, DELETE_BATCH)).unwrap_or(1000);
    if opts.dry_run {
        let mut after = None;
        while !stopping(opts) {
            let page = claims::abandoned_page(&app.db, cutoff, after, limit).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = Some((last.created_at, last.id));
            for p in &page {
                s.count(reason(p), p.byte_size);
            }
            progress(s);
        }
        return Ok(());
    }
    let mut failures_in_a_row = 0;
    // Checked before each claim, never between a claim and its tombstones: a stopped run
    // leaves no rows claimed.
    while !stopping(opts) {
        let token = format!("clean-up-{}", random_token());
        let now = now_millis();
        let lease = Millis::try_from(opts.lease.as_millis()).unwrap_or(Millis::MAX);
        let claim = claims::Claim { token: &token, until: now.saturating_add(lease), takeover_before: run_start };
        let photos = claims::claim_abandoned(&app.db, app.db.backend(), claim, cutoff, limit).await?;
        if photos.is_empty() {
            return Ok(());
        }
        let failed = delete_objects(app, &photos, s, &mut failures_in_a_row).await;
        // Failed rows stay doomed, and are left for a run that starts after this one.
        let retry_at = now_millis().max(run_start + 1);
        for id in &failed {
            claims::release_for_retry(&app.db, *id, &token, retry_at).await?;
        }
        let ids: Vec<PhotoId> = photos.iter().map(|p| p.id).collect();
        claims::finish_batch(&app.db, &token, &ids, &signed_reason, &ready_reason, app.now()).await?;
        for p in photos.iter().filter(|p| !failed.contains(&p.id)) {
            s.count(reason(p), p.byte_size);
        }
        progress(s);
        if failures_in_a_row >= opts.max_consecutive_failures {
            s.error(format!("{failures_in_a_row} S3 requests in a row failed: stopping here; the next run carries on"));
            return Ok(());
        }
    }
    Ok(())
}

/// Delete every object of `photos` with `DeleteObjects`, bucket by bucket, at most 1000 keys a
/// request. Returns the photos any of whose objects could not be deleted.
async fn delete_objects(app: &Shoebox, photos: &[Photo], s: &mut Summary, in_a_row: &mut u32) -> HashSet<PhotoId> {
    let mut failed = HashSet::new();
    let mut by_bucket: BTreeMap<&str, Vec<(String, PhotoId)>> = BTreeMap::new();
    // The original, the upload and every variant: the one list user deletion uses too.
    let mut keys = match object_keys_of(app, photos).await {
        Ok(keys) => keys,
        Err(e) => {
            s.error(format!("listing the objects of {} photos: {e}", photos.len()));
            return photos.iter().map(|p| p.id).collect();
        }
    };
    for p in photos {
        let of_photo = keys.remove(&p.id).unwrap_or_default();
        by_bucket.entry(p.bucket.as_str()).or_default().extend(of_photo.into_iter().map(|k| (k, p.id)));
    }
    for (name, keys) in by_bucket {
        let bucket = match app.storage.bucket(name) {
            Ok(b) => b,
            Err(e) => {
                s.error(format!("photos in bucket {name:?}: {e}"));
                failed.extend(keys.iter().map(|(_, id)| *id));
                continue;
            }
        };
        for chunk in keys.chunks(DELETE_BATCH) {
            let owner: HashMap<&str, PhotoId> = chunk.iter().map(|(k, id)| (k.as_str(), *id)).collect();
            let batch: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
            s.s3_requests += 1;
            s.delete_requests += 1;
            match bucket.delete_keys(&batch).await {
                Ok(errors) => {
                    *in_a_row = 0;
                    for (key, code) in errors {
                        s.error(format!("deleting {key} from {name}: {code}"));
                        // A key S3 names that we did not send fails the whole chunk, to be safe.
                        match owner.get(key.as_str()) {
                            Some(id) => {
                                failed.insert(*id);
                            }
                            None => failed.extend(owner.values().copied()),
                        }
                    }
                }
                Err(e) => {
                    *in_a_row += 1;
                    s.error(format!("deleting {} objects from {name}: {e}", batch.len()));
                    failed.extend(owner.values().copied());
                }
            }
        }
    }
    failed
}

/// In-use and released photos whose keep-until has passed: deleted when their kind gives a
/// reason, else given the kind's later keep-until.
async fn past_keep_until(
    app: &Shoebox,
    opts: &Options,
    run_start: Millis,
    s: &mut Summary,
    progress: &(dyn Fn(&Summary) + Sync),
) -> Result<(), DbError> {
    let mut after = None;
    while !stopping(opts) {
        let page = claims::due_for_keep_check(&app.db, opts.as_of, after, 200).await?;
        if page.is_empty() {
            return Ok(());
        }
        for photo in page.iter().take_while(|_| !stopping(opts)) {
            let Some(old) = photo.keep_until else { continue };
            after = Some((old, photo.id));
            if let Err(e) = keep_or_delete(app, opts, run_start, photo, old, s).await {
                s.error(format!("photo {}: {e}", photo.id));
            }
        }
        progress(s);
    }
    Ok(())
}

async fn keep_or_delete(
    app: &Shoebox,
    opts: &Options,
    run_start: Millis,
    photo: &Photo,
    old: Millis,
    s: &mut Summary,
) -> Result<(), String> {
    let kind = app.kinds.get(&photo.kind).ok_or_else(|| format!("kind {:?} is not configured", photo.kind))?;
    let newer = claims::newer_in_use(&app.db, photo).await.map_err(|e| e.to_string())?;
    let cx = KeepContext { now: opts.as_of, newer };
    if let Some(reason) = kind.reason_to_delete(photo, &cx).await {
        if opts.dry_run {
            s.count(&reason, photo.byte_size);
            return Ok(());
        }
        let token = format!("clean-up-{}", random_token());
        let now = now_millis();
        let lease = Millis::try_from(opts.lease.as_millis()).unwrap_or(Millis::MAX);
        let claim = claims::Claim { token: &token, until: now.saturating_add(lease), takeover_before: run_start };
        if !claims::claim_expired(&app.db, photo.id, claim, old).await.map_err(|e| e.to_string())? {
            return Ok(()); // changed meanwhile, or another runner has it
        }
        let mut in_a_row = 0;
        let failed = delete_objects(app, std::slice::from_ref(photo), s, &mut in_a_row).await;
        if failed.is_empty() {
            claims::finish(&app.db, photo.id, &token, &reason, app.now()).await.map_err(|e| e.to_string())?;
            s.count(&reason, photo.byte_size);
        } else {
            let retry_at = now_millis().max(run_start + 1);
            claims::release_for_retry(&app.db, photo.id, &token, retry_at).await.map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let new = kind.keep_until(photo, &cx).await;
    if let Some(t) = new
        && t <= opts.as_of
    {
        return Err(format!(
            "kind {:?} gave no reason to delete it but a keep-until in the past ({t}); left as it is",
            photo.kind
        ));
    }
    if !opts.dry_run {
        claims::set_keep_until(&app.db, photo.id, old, new).await.map_err(|e| e.to_string())?;
    }
    s.kept_longer += 1;
    Ok(())
}

/// Objects under `incoming/` older than the grace period whose photo has moved on (verified,
/// or deleted): a form posted again after its upload was promoted leaves one. Objects no row
/// knows are `reconcile`'s business.
async fn incoming_leftovers(app: &Shoebox, opts: &Options, cutoff: Millis, s: &mut Summary) {
    for bucket in app.storage.buckets() {
        let mut token = None;
        let mut doomed = Vec::new();
        loop {
            s.s3_requests += 1;
            let page = match bucket.list_page(crate::domain::photo::INCOMING_PREFIX, token).await {
                Ok(p) => p,
                Err(e) => {
                    s.error(format!("listing incoming/ in {}: {e}", bucket.name()));
                    break;
                }
            };
            for o in page.objects.into_iter().filter(|o| o.last_modified.is_some_and(|t| t <= cutoff)) {
                match claims::state_of_incoming(&app.db, &o.key).await {
                    Ok(Some(state)) if state != PhotoState::Signed.as_str() => doomed.push(o),
                    Ok(_) => {}
                    Err(e) => s.error(format!("looking up {}: {e}", o.key)),
                }
            }
            token = page.next;
            if token.is_none() {
                break;
            }
        }
        for chunk in doomed.chunks(DELETE_BATCH) {
            if opts.dry_run {
                s.incoming_leftovers += chunk.len() as u64;
                s.bytes_freed += chunk.iter().map(|o| o.size).sum::<u64>();
                continue;
            }
            let keys: Vec<String> = chunk.iter().map(|o| o.key.clone()).collect();
            s.s3_requests += 1;
            s.delete_requests += 1;
            match bucket.delete_keys(&keys).await {
                Ok(errors) => {
                    let failed: HashSet<String> = errors.iter().map(|(k, _)| k.clone()).collect();
                    for (k, code) in errors {
                        s.error(format!("deleting {k} from {}: {code}", bucket.name()));
                    }
                    for o in chunk.iter().filter(|o| !failed.contains(&o.key)) {
                        s.incoming_leftovers += 1;
                        s.bytes_freed += o.size;
                    }
                }
                Err(e) => s.error(format!("deleting leftovers from {}: {e}", bucket.name())),
            }
        }
    }
}
