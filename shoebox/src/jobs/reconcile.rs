//! `reconcile`: compare each bucket with the `shoebox_photos` table in both directions — objects no
//! live row knows, and live rows whose objects are missing — and, when asked, delete the
//! unknown objects.
//!
//! Both directions come from listing the bucket, never from a request per photo: the listing
//! and the objects the table expects are both read in key order, a page at a time, and merged,
//! so the requests are one per 1000 objects and the memory one page of each, however large the
//! bucket and the table.
//!
//! Deleting is guarded three ways, because a development database pointed at a production
//! bucket would see every object as unknown: only buckets the configuration marks `owned`,
//! only objects older than the grace period (an upload in flight, or an original being
//! promoted before its row says so, is younger), and never in a bucket where the table looks
//! empty or foreign. Deleting is a second pass that looks every candidate up again, so a row
//! written during the report still protects its objects.

use std::collections::HashSet;

use serde::Serialize;

use super::note_error;
use crate::app::Shoebox;
use crate::db::reconcile::ExpectedObject;
use crate::db::{DbError, reconcile as rows};
use crate::domain::Millis;
use crate::domain::photo::{INCOMING_PREFIX, SERVED_PREFIX, incoming_key};
use crate::storage::Bucket;
use crate::storage::listing::{ListPage, Listed};

/// What to do and as of when.
#[derive(Debug, Clone)]
pub struct Options {
    /// Delete unknown objects older than the grace period (in owned buckets only).
    pub delete: bool,
    /// The grace period is measured back from this time.
    pub as_of: Millis,
}

/// Samples kept per finding (the counts keep going).
const SAMPLES: usize = 20;

/// What one bucket holds that the table does not agree with.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BucketReport {
    /// The configured bucket name.
    pub bucket: String,
    /// Whether the configuration marks it as this database's own.
    pub owned: bool,
    /// Objects listed.
    pub objects: u64,
    /// Objects no live row knows.
    pub unknown: u64,
    /// Their bytes.
    pub unknown_bytes: u64,
    /// The first unknown keys.
    pub unknown_keys: Vec<String>,
    /// Objects live rows name that the bucket does not hold.
    pub missing: u64,
    /// The first missing ones, as `photo id: key`.
    pub missing_keys: Vec<String>,
    /// Unknown objects deleted.
    pub deleted: u64,
    /// Their bytes.
    pub deleted_bytes: u64,
    /// Why `--delete` deleted nothing in this bucket, if it refused.
    pub refused: Option<String>,
}

/// What a run found (and deleted).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Each bucket's findings.
    pub buckets: Vec<BucketReport>,
    /// Requests that failed.
    pub errors: u64,
    /// The first of them.
    pub error_messages: Vec<String>,
    /// Requests made to S3.
    pub s3_requests: u64,
}

/// The incoming key of the upload an object belongs to, read from its key: `incoming/<token>`
/// is the upload itself, `photos/<token>/...` its original and variants. Anything else
/// (another prefix, a nested incoming key) belongs to no upload.
pub(crate) fn owning_upload(key: &str) -> Option<String> {
    let token = if let Some(t) = key.strip_prefix(INCOMING_PREFIX) {
        t
    } else {
        let (t, rest) = key.strip_prefix(SERVED_PREFIX)?.split_once('/')?;
        if rest.is_empty() {
            return None;
        }
        t
    };
    (!token.is_empty() && !token.contains('/')).then(|| incoming_key(token))
}

/// The objects of `page` that no live row of `bucket` knows.
async fn unknown_of(app: &Shoebox, bucket: &Bucket, page: Vec<Listed>) -> Result<Vec<Listed>, DbError> {
    let uploads: Vec<String> = page.iter().filter_map(|o| owning_upload(&o.key)).collect();
    let live: HashSet<String> = rows::live_incoming_keys(&app.db, bucket.name(), &uploads).await?.into_iter().collect();
    Ok(page.into_iter().filter(|o| owning_upload(&o.key).is_none_or(|u| !live.contains(&u))).collect())
}

impl Shoebox {
    /// Compare each bucket with the table both ways, and with `opts.delete` remove old unknown
    /// objects where that is safe (owned buckets, a table that looks like theirs).
    pub async fn reconcile(&self, opts: &Options) -> Result<Summary, DbError> {
        let done = run(self, opts).await;
        match &done {
            Ok(s) => {
                let sum = |f: fn(&BucketReport) -> u64| s.buckets.iter().map(f).sum::<u64>();
                let refused = s.buckets.iter().filter(|b| b.refused.is_some()).count() as u64;
                crate::telemetry::job_run(
                    "reconcile",
                    if s.errors == 0 && refused == 0 { "ok" } else { "item_errors" },
                    &[
                        ("objects", sum(|b| b.objects)),
                        ("unknown", sum(|b| b.unknown)),
                        ("missing", sum(|b| b.missing)),
                        ("deleted", sum(|b| b.deleted)),
                        ("deleted_bytes", sum(|b| b.deleted_bytes)),
                        ("refused", refused),
                        ("errors", s.errors),
                        ("s3_requests", s.s3_requests),
                    ],
                );
            }
            Err(_) => crate::telemetry::job_run("reconcile", "failed", &[]),
        }
        done
    }
}

async fn run(app: &Shoebox, opts: &Options) -> Result<Summary, DbError> {
    let grace = Millis::try_from(app.limits.clean_up_grace.as_millis()).unwrap_or(Millis::MAX);
    let cutoff = opts.as_of.saturating_sub(grace);
    let mut s = Summary::default();
    for bucket in app.storage.buckets() {
        let mut r = BucketReport { bucket: bucket.name().to_owned(), owned: bucket.owned(), ..Default::default() };
        if listed_completely(app, bucket, &mut r, &mut s).await? {
            if opts.delete {
                match refusal(app, bucket, &r).await? {
                    Some(why) => r.refused = Some(why),
                    None => delete_unknown(app, bucket, cutoff, &mut r, &mut s).await?,
                }
            }
        } else if opts.delete {
            r.refused = Some("the bucket could not be listed completely".into());
        }
        s.buckets.push(r);
    }
    Ok(s)
}

/// One page of the whole bucket's listing, counted as a request; `None` when it failed (the
/// error is noted in the summary).
async fn next_page(bucket: &Bucket, token: Option<String>, s: &mut Summary) -> Option<ListPage> {
    s.s3_requests += 1;
    match bucket.list_page("", token).await {
        Ok(page) => Some(page),
        Err(e) => {
            note_error(&mut s.errors, &mut s.error_messages, format!("listing {}: {e}", bucket.name()));
            None
        }
    }
}

/// First pass: list the whole bucket, page by page, counting what no row knows, and merge the
/// listing with the objects live rows expect (both in key order) to find the ones missing: one
/// request per 1000 objects, however many rows, and one page of each side in memory. False
/// when the listing failed part way (already noted), so nothing is decided on half a bucket.
async fn listed_completely(
    app: &Shoebox,
    bucket: &Bucket,
    r: &mut BucketReport,
    s: &mut Summary,
) -> Result<bool, DbError> {
    let started = app.now();
    let mut expected = Expected::new(app, bucket.name());
    let mut token = None;
    loop {
        let Some(page) = next_page(bucket, token, s).await else { return Ok(false) };
        r.objects += page.objects.len() as u64;
        for o in &page.objects {
            // A bucket that lost many objects has many expected keys between two listed ones:
            // they are decided a page at a time, so memory stays one page whatever was lost.
            loop {
                let (absent, reached) = expected.take_until(&o.key).await?;
                missing(bucket, absent, started, r, s).await;
                if reached {
                    break;
                }
            }
        }
        for o in unknown_of(app, bucket, page.objects).await? {
            r.unknown += 1;
            r.unknown_bytes += o.size;
            if r.unknown_keys.len() < SAMPLES {
                r.unknown_keys.push(o.key);
            }
        }
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    // Whatever the table still expects is after the last key listed: not in the bucket.
    loop {
        let rest = expected.take_page().await?;
        if rest.is_empty() {
            return Ok(true);
        }
        missing(bucket, rest, started, r, s).await;
    }
}

/// A listing that started at `started` may have passed an object's key before the object was
/// written; objects recorded this long before the listing started were there when it passed.
const LISTING_SLACK: Millis = 60_000;

/// Count as missing the expected objects the listing did not show. One recorded too recently
/// for the listing to be sure of is asked for on its own (a HEAD), so an upload completed
/// during the run is not reported lost: rare, so the requests stay a constant.
async fn missing(bucket: &Bucket, absent: Vec<ExpectedObject>, started: Millis, r: &mut BucketReport, s: &mut Summary) {
    for e in absent {
        if e.since >= started.saturating_sub(LISTING_SLACK) {
            s.s3_requests += 1;
            match bucket.head(&e.key).await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(err) => {
                    note_error(&mut s.errors, &mut s.error_messages, format!("checking {}: {err}", e.key));
                    continue;
                }
            }
        }
        tracing::warn!(photo_id = %e.photo_id, key = %e.key, bucket = bucket.name(), "object missing");
        r.missing += 1;
        if r.missing_keys.len() < SAMPLES {
            r.missing_keys.push(format!("{}: {}", e.photo_id, e.key));
        }
    }
}

/// Rows read per query when walking the objects the table expects.
const EXPECTED_PAGE: i64 = 1000;

/// The objects live rows of one bucket expect, read in key order a page at a time.
struct Expected<'a> {
    app: &'a Shoebox,
    bucket: &'a str,
    page: std::collections::VecDeque<ExpectedObject>,
    /// The last key read from the table: the next page starts after it.
    after: String,
    exhausted: bool,
}

impl<'a> Expected<'a> {
    fn new(app: &'a Shoebox, bucket: &'a str) -> Self {
        Self { app, bucket, page: Default::default(), after: String::new(), exhausted: false }
    }

    /// Read the next page from the table when the one in hand is used up.
    async fn fill(&mut self) -> Result<(), DbError> {
        if self.page.is_empty() && !self.exhausted {
            let page = rows::expected_page(&self.app.db, self.bucket, &self.after, EXPECTED_PAGE).await?;
            self.exhausted = page.len() < EXPECTED_PAGE as usize;
            if let Some(last) = page.last() {
                self.after = last.key.clone();
            }
            self.page.extend(page);
        }
        Ok(())
    }

    /// Given the next listed key: the expected objects before it (the listing went past them,
    /// so they are not in the bucket), at most a page of them, and whether that reached the
    /// listed key (false: call again for the next page of them). The one equal to the listed
    /// key, if any, is consumed as present.
    async fn take_until(&mut self, listed: &str) -> Result<(Vec<ExpectedObject>, bool), DbError> {
        let mut absent = Vec::new();
        loop {
            if absent.len() >= EXPECTED_PAGE as usize {
                return Ok((absent, false));
            }
            self.fill().await?;
            match self.page.front() {
                Some(e) if e.key.as_str() < listed => absent.extend(self.page.pop_front()),
                Some(e) if e.key == listed => {
                    self.page.pop_front();
                    return Ok((absent, true));
                }
                _ => return Ok((absent, true)),
            }
        }
    }

    /// Everything left of the current page (or the next one); empty at the end.
    async fn take_page(&mut self) -> Result<Vec<ExpectedObject>, DbError> {
        self.fill().await?;
        Ok(self.page.drain(..).collect())
    }
}

/// Why deleting in this bucket would be unsafe, if it would.
async fn refusal(app: &Shoebox, bucket: &Bucket, r: &BucketReport) -> Result<Option<String>, DbError> {
    let name = bucket.name();
    if !bucket.owned() {
        return Ok(Some(format!(
            "bucket {name} is not marked `owned = true` in the configuration, so this database may not delete in it"
        )));
    }
    if r.unknown == 0 {
        return Ok(None);
    }
    if rows::live_rows(&app.db, name).await? == 0 {
        return Ok(Some(format!(
            "the photos table has no live rows for bucket {name}, which holds {} objects: this looks like an empty \
             or different database, so nothing was deleted",
            r.objects
        )));
    }
    if r.unknown * 2 > r.objects {
        return Ok(Some(format!(
            "{} of the {} objects in bucket {name} are unknown to this database: it looks like another database's \
             bucket, so nothing was deleted",
            r.unknown, r.objects
        )));
    }
    Ok(None)
}

/// Second pass: list again and delete what is still unknown and older than `cutoff`.
async fn delete_unknown(
    app: &Shoebox,
    bucket: &Bucket,
    cutoff: Millis,
    r: &mut BucketReport,
    s: &mut Summary,
) -> Result<(), DbError> {
    let mut token = None;
    loop {
        let Some(page) = next_page(bucket, token, s).await else { return Ok(()) };
        // An object without a time cannot be shown to be old enough, so it stays.
        let doomed: Vec<Listed> = unknown_of(app, bucket, page.objects)
            .await?
            .into_iter()
            .filter(|o| o.last_modified.is_some_and(|t| t <= cutoff))
            .collect();
        if !doomed.is_empty() {
            let keys: Vec<String> = doomed.iter().map(|o| o.key.clone()).collect();
            s.s3_requests += 1;
            match bucket.delete_keys(&keys).await {
                Ok(failed) => {
                    let failed_keys: HashSet<&str> = failed.iter().map(|(k, _)| k.as_str()).collect();
                    for o in doomed.iter().filter(|o| !failed_keys.contains(o.key.as_str())) {
                        r.deleted += 1;
                        r.deleted_bytes += o.size;
                    }
                    for (k, code) in &failed {
                        let msg = format!("deleting {k} from {}: {code}", bucket.name());
                        note_error(&mut s.errors, &mut s.error_messages, msg);
                    }
                }
                Err(e) => {
                    note_error(&mut s.errors, &mut s.error_messages, format!("deleting in {}: {e}", bucket.name()))
                }
            }
        }
        token = page.next;
        if token.is_none() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_of_an_upload_is_traced_to_its_incoming_key_and_nothing_else_is() {
        for key in ["incoming/abc", "photos/abc/original.jpg", "photos/abc/thumb-1f2e.png"] {
            assert_eq!(owning_upload(key).as_deref(), Some("incoming/abc"), "{key}");
        }
        for key in ["photos/abc", "photos/abc/", "incoming/a/b", "incoming/", "photos//x", "other/abc", "abc"] {
            assert_eq!(owning_upload(key), None, "{key}");
        }
    }
}
