//! Bucket checks. Each probe is what Shoebox or a browser really does: HeadBucket (the same
//! call `/healthz` makes), a CORS preflight, a signed form POST, anonymous GETs, a listing and
//! a batch delete. Probe objects live under `incoming/shoebox-doctor-*` and
//! `photos/shoebox-doctor-*` and are deleted at the end.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::probes::{self, HttpAnswer};
use super::reach::reachability;
use super::s3_config::{self, BucketPlan, INCOMING_PREFIX};
use super::settings::{SectionState, compare};
use super::{Check, fix_with};
use crate::domain::BucketAccess;
use crate::domain::photo::SERVED_PREFIX;
use crate::domain::random_token;
use crate::storage::Bucket;

/// Past this, forms signed here carry a date S3 refuses (SigV4 allows 15 minutes). The SDK
/// silently corrects its own requests past 4 minutes, so a skew shows first in upload forms.
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Every check for one bucket.
pub async fn bucket(b: &Bucket, plan: &BucketPlan, origins: &[String], http: &reqwest::Client) -> Vec<Check> {
    let name = b.name();
    let mut checks = Vec::new();
    let started = Instant::now();
    let reach = reachability(b).await;
    let usable = reach.iter().all(|c| c.outcome != super::Outcome::Fail);
    checks.extend(reach.into_iter().map(|c| c.timed(started)));
    if !usable {
        for n in ["bucket.clock", "bucket.cors_preflight", "bucket.presigned_post", "bucket.anonymous_served"] {
            checks.push(Check::skipped(n, name, "the bucket cannot be reached"));
        }
        for n in ["bucket.anonymous_incoming", "bucket.list_and_batch_delete"] {
            checks.push(Check::skipped(n, name, "the bucket cannot be reached"));
        }
        return checks;
    }
    let t = Instant::now();
    checks.push(clock(b, http).await.timed(t));
    for origin in origins {
        let t = Instant::now();
        checks.push(preflight(b, origin, http).await.timed(t));
    }
    if origins.is_empty() {
        checks.push(Check::skipped(
            "bucket.cors_preflight",
            name,
            "no app origin is configured: set SHOEBOX_ORIGINS or SHOEBOX_PUBLIC_URL",
        ));
    }
    let t = Instant::now();
    checks.push(presigned_post(b, http).await.timed(t));
    let token = format!("shoebox-doctor-{}", &random_token()[..12]);
    let served = format!("{SERVED_PREFIX}{token}/original.jpg");
    let incoming = format!("{INCOMING_PREFIX}{token}");
    let t = Instant::now();
    checks.extend(anonymous(b, &served, &incoming, http).await.into_iter().map(|c| c.timed(t)));
    let t = Instant::now();
    checks.push(list_and_delete(b, &token, &[served, incoming]).await.timed(t));
    let t = Instant::now();
    checks.extend(settings(b, plan).await.into_iter().map(|c| c.timed(t)));
    checks
}

/// S3's `Date` header against this machine's clock, measured at the midpoint of the request.
async fn clock(b: &Bucket, http: &reqwest::Client) -> Check {
    let n = b.name();
    let url = b.direct_url("");
    let tried = format!("HEAD {url}, reading the Date header");
    let sent = OffsetDateTime::now_utc();
    let answer = match probes::send(http.head(&url)).await {
        Ok(a) => a,
        Err(e) => return Check::skipped("bucket.clock", n, format!("no answer to {tried}: {e}")),
    };
    let received = OffsetDateTime::now_utc();
    let Some(date) = answer
        .header("date")
        .and_then(|d| OffsetDateTime::parse(d, &time::format_description::well_known::Rfc2822).ok())
    else {
        return Check::skipped("bucket.clock", n, "the endpoint sends no Date header");
    };
    let elapsed: time::Duration = received - sent;
    let local = sent + elapsed / 2;
    let diff: time::Duration = local - date;
    let skew = diff.abs();
    if skew.unsigned_abs() > MAX_SKEW {
        let ahead = if local > date { "ahead of" } else { "behind" };
        Check::fail(
            "bucket.clock",
            n,
            tried,
            Some(format!("Date: {}", answer.header("date").unwrap_or(""))),
            format!(
                "this machine's clock is {} minutes {ahead} S3's; S3 refuses signatures past 15",
                skew.whole_minutes()
            ),
            "synchronise the clock (NTP)",
        )
    } else {
        Check::pass("bucket.clock", n, format!("{tried}: {} s apart", skew.whole_seconds()))
    }
}

async fn preflight(b: &Bucket, origin: &str, http: &reqwest::Client) -> Check {
    let n = b.name();
    let url = b.form_url();
    let tried = format!("OPTIONS {url} with Origin: {origin}, Access-Control-Request-Method: POST");
    let req = http
        .request(reqwest::Method::OPTIONS, url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST");
    match probes::send(req).await {
        Ok(a) if a.ok() && matches!(a.header("access-control-allow-origin"), Some(o) if o == origin || o == "*") => {
            Check::pass("bucket.cors_preflight", n, tried)
        }
        Ok(a) => Check::fail(
            "bucket.cors_preflight",
            n,
            tried,
            Some(format!(
                "{}; Access-Control-Allow-Origin: {}",
                a.summary(),
                a.header("access-control-allow-origin").unwrap_or("absent")
            )),
            format!(
                "the bucket's CORS rules do not allow POST from {origin}, so browsers on that origin cannot upload"
            ),
            format!("add {origin} to the CORS rule: {}", fix_with(s3_config::CORS)),
        ),
        Err(e) => {
            Check::fail("bucket.cors_preflight", n, tried, Some(e), "no answer to the preflight", "check the endpoint")
        }
    }
}

/// Sign a form with the server's own signer, POST a tiny JPEG as a browser would, HEAD it,
/// read it back, delete it.
async fn presigned_post(b: &Bucket, http: &reqwest::Client) -> Check {
    let n = b.name();
    let key = format!("{INCOMING_PREFIX}shoebox-doctor-{}", &random_token()[..12]);
    let jpeg = probes::tiny_jpeg();
    let tried = format!("POST a signed form and a {}-byte JPEG to {} as {key}", jpeg.len(), b.form_url());
    let form = match b
        .sign_upload(&key, "image/jpeg", 1024, None, OffsetDateTime::now_utc(), Duration::from_secs(300))
        .await
    {
        Ok(f) => f,
        Err(e) => {
            return Check::fail(
                "bucket.presigned_post",
                n,
                tried,
                Some(e.to_string()),
                "no credentials to sign with",
                "set the AWS credentials",
            );
        }
    };
    let mut multipart = reqwest::multipart::Form::new();
    for (k, v) in form.fields {
        multipart = multipart.text(k, v);
    }
    let part = reqwest::multipart::Part::bytes(jpeg.clone()).file_name("doctor.jpg").mime_str("image/jpeg");
    let Ok(part) = part else { return Check::skipped("bucket.presigned_post", n, "could not build the form") };
    let answer = probes::send(http.post(&form.url).multipart(multipart.part("file", part))).await;
    let check = match answer {
        Ok(a) if a.ok() => match b.read_range(&key, 0, 4096).await.map(|(bytes, _etag)| bytes) {
            Ok(bytes) if bytes.as_ref() == jpeg.as_slice() => Check::pass("bucket.presigned_post", n, tried),
            other => Check::fail(
                "bucket.presigned_post",
                n,
                tried,
                Some(format!(
                    "{}; reading it back: {}",
                    a.summary(),
                    other.map_or_else(|e| e.to_string(), |b| format!("{} different bytes", b.len()))
                )),
                "S3 accepted the form but the object is not there as sent",
                "check that nothing rewrites uploads (a proxy, an object lambda)",
            ),
        },
        Ok(a) => post_failure(n, tried, &a),
        Err(e) => {
            Check::fail("bucket.presigned_post", n, tried, Some(e), "no answer to the form POST", "check the endpoint")
        }
    };
    let _ = b.delete(&key).await;
    check
}

fn post_failure(n: &str, tried: String, a: &HttpAnswer) -> Check {
    let (cause, fix) = match a.code.as_deref() {
        Some("SignatureDoesNotMatch" | "InvalidAccessKeyId") => (
            "the form's signature was refused: the credentials are wrong".to_owned(),
            "fix the AWS credentials".to_owned(),
        ),
        Some("AccessDenied") => (
            "the app's user may not write under incoming/, or the form expired on arrival (clock)".to_owned(),
            format!("attach the IAM policy from {}", fix_with(s3_config::IAM_POLICY)),
        ),
        _ => ("S3 refused the upload form".to_owned(), "read S3's answer; the request id identifies it".to_owned()),
    };
    Check::fail("bucket.presigned_post", n, tried, Some(a.summary()), cause, fix)
}

/// Anonymous GETs: a served object (allowed on public buckets only) and an upload waiting under
/// `incoming/` (refused everywhere). The objects are written with the app's credentials first.
async fn anonymous(b: &Bucket, served: &str, incoming: &str, http: &reqwest::Client) -> Vec<Check> {
    let n = b.name();
    let jpeg = probes::tiny_jpeg();
    for key in [served, incoming] {
        if let Err(f) = b.probe_put(key, jpeg.clone(), "image/jpeg").await {
            let c = |name| {
                Check::fail(
                    name,
                    n,
                    format!("PutObject {key}"),
                    Some(f.summary()),
                    "the app's user may not write objects",
                    format!("attach the IAM policy from {}", fix_with(s3_config::IAM_POLICY)),
                )
            };
            return vec![c("bucket.anonymous_served"), c("bucket.anonymous_incoming")];
        }
    }
    let public = b.access() == BucketAccess::Public;
    let mut checks = Vec::new();
    let url = b.direct_url(served);
    let tried = format!("anonymous GET {url}");
    checks.push(match probes::send(http.get(&url)).await {
        Ok(a) if a.ok() == public => Check::pass("bucket.anonymous_served", n, tried),
        Ok(a) if public => Check::fail(
            "bucket.anonymous_served",
            n,
            tried,
            Some(a.summary()),
            "this public bucket refuses anonymous reads of served photos: it has no public-read policy on photos/*, \
             or Block Public Access blocks it, so every <img> is broken",
            format!("{} and {}", fix_with(s3_config::BUCKET_POLICY), s3_config::PUBLIC_ACCESS_BLOCK),
        ),
        Ok(a) => Check::fail(
            "bucket.anonymous_served",
            n,
            tried,
            Some(a.summary()),
            "this private bucket lets anyone read its photos: its bucket policy (or an ACL) allows anonymous reads",
            format!("remove the policy: {}", fix_with(s3_config::BUCKET_POLICY)),
        ),
        Err(e) => Check::fail("bucket.anonymous_served", n, tried, Some(e), "no answer", "check the endpoint"),
    });
    let url = b.direct_url(incoming);
    let tried = format!("anonymous GET {url}");
    checks.push(match probes::send(http.get(&url)).await {
        Ok(a) if !a.ok() => Check::pass("bucket.anonymous_incoming", n, tried),
        Ok(a) => Check::fail(
            "bucket.anonymous_incoming",
            n,
            tried,
            Some(a.summary()),
            "unverified uploads under incoming/ are readable by anyone: the bucket policy covers more than photos/*",
            format!("limit the policy to photos/*: {}", fix_with(s3_config::BUCKET_POLICY)),
        ),
        Err(e) => Check::fail("bucket.anonymous_incoming", n, tried, Some(e), "no answer", "check the endpoint"),
    });
    checks
}

/// List the probe objects, then delete them in one DeleteObjects call.
async fn list_and_delete(b: &Bucket, token: &str, keys: &[String]) -> Check {
    let n = b.name();
    let tried = format!("ListObjectsV2 photos/{token}, then DeleteObjects of the probe objects");
    let iam = || format!("attach the IAM policy from {}", fix_with(s3_config::IAM_POLICY));
    let listed = b.probe_list(&format!("{SERVED_PREFIX}{token}")).await;
    let check = match listed {
        Err(f) => Check::fail(
            "bucket.list_and_batch_delete",
            n,
            tried,
            Some(f.summary()),
            "the app's user may not list the bucket",
            iam(),
        ),
        Ok(found) if found.is_empty() => Check::fail(
            "bucket.list_and_batch_delete",
            n,
            tried,
            Some("the listing is empty".into()),
            "the probe object written a moment ago is not listed",
            "check that the endpoint lists what it stores",
        ),
        Ok(_) => match b.delete_many(keys).await {
            Ok(errors) if errors.is_empty() => Check::pass("bucket.list_and_batch_delete", n, tried),
            Ok(errors) => Check::fail(
                "bucket.list_and_batch_delete",
                n,
                tried,
                Some(errors.iter().map(|(k, c)| format!("{k}: {c}")).collect::<Vec<_>>().join(", ")),
                "DeleteObjects answered 200 but refused some keys: the app's user lacks s3:DeleteObject",
                iam(),
            ),
            Err(f) => {
                Check::fail("bucket.list_and_batch_delete", n, tried, Some(f.summary()), "batch delete refused", iam())
            }
        },
    };
    for k in keys {
        let _ = b.delete(k).await;
    }
    check
}

/// Each bucket-level setting against the s3-config plan, where the endpoint lets us read it.
async fn settings(b: &Bucket, plan: &BucketPlan) -> Vec<Check> {
    let n = b.name();
    let current = b.read_config().await;
    compare(plan, &current)
        .into_iter()
        .map(|(section, st)| {
            let name = settings_check_name(section);
            let tried = format!("reading the bucket's {section} setting");
            match st {
                SectionState::AsPlanned => Check::pass(name, n, tried),
                SectionState::Unsupported => Check::skipped(name, n, "not supported by this endpoint"),
                SectionState::Unreadable(f) => Check::skipped(
                    name,
                    n,
                    format!("could not read it ({}); the least-privilege user may not", f.summary()),
                ),
                SectionState::Differs { now, wanted } => Check::fail(
                    name,
                    n,
                    tried,
                    Some(format!("now: {now}")),
                    format!("the bucket's {section} differs from what Shoebox needs: {wanted}"),
                    fix_with(section),
                ),
            }
        })
        .collect()
}

fn settings_check_name(section: &str) -> &'static str {
    match section {
        s3_config::CORS => "bucket.settings.cors",
        s3_config::PUBLIC_ACCESS_BLOCK => "bucket.settings.public_access_block",
        s3_config::OBJECT_OWNERSHIP => "bucket.settings.object_ownership",
        s3_config::BUCKET_POLICY => "bucket.settings.bucket_policy",
        _ => "bucket.settings.lifecycle",
    }
}
