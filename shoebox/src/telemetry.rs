//! What Shoebox tells an operator: metrics through the [`metrics`] facade, and log lines
//! through [`tracing`].
//!
//! Shoebox records metrics and emits events and spans; it installs nothing. A host installs the
//! recorder it likes (the reference app installs `metrics-exporter-prometheus` and serves
//! `/metrics`) and a tracing subscriber; without them, recording costs next to nothing. Call
//! [`describe`] once after installing a recorder so each series has its help text, and
//! [`Shoebox::record_gauges`](crate::Shoebox::record_gauges) before each scrape.
//!
//! Every label's values come from a small set (route templates, S3 operation names, the
//! configured buckets, kinds and variants, reason codes), never from a request's own text, so
//! the number of series stays bounded.
//!
//! | Series | Type | Labels |
//! |---|---|---|
//! | [`HTTP_REQUESTS`] | counter | `method`, `route` (the template: `/photos/{id}/{variant}`), `status` |
//! | [`HTTP_DURATION`] | histogram, seconds (until the last byte of the body) | as above |
//! | [`S3_REQUESTS`] | counter | `operation` (`GetObject`), `bucket` (S3's name) |
//! | [`S3_ERRORS`] | counter | `operation`, `bucket`, `status` (`403`; `none` when nothing answered) |
//! | [`S3_DURATION`] | histogram, seconds (retries included) | `operation`, `bucket` |
//! | [`PROXY_BYTES`] | counter | `bucket` |
//! | [`UPLOADS_SIGNED`] | counter | `kind` |
//! | [`UPLOADS_COMPLETED`] | counter | `kind` |
//! | [`UPLOADS_REFUSED`] | counter | `kind`, `reason` (`too_large`, `type_mismatch`, ...), `at` (`sign` or `verify`) |
//! | [`SIGN_BATCH_FORMS`] | histogram, forms per database write | |
//! | [`VERIFY_DURATION`] | histogram, seconds | `kind` |
//! | [`VARIANT_MAKES`] | counter | `variant`, `outcome` (`made` or `failed`) |
//! | [`VARIANT_DURATION`] | histogram, seconds (from the claim until it is stored) | `variant` |
//! | [`RESIZE_DURATION`] | histogram, seconds (one decode and every rendition made from it) | |
//! | [`RATE_LIMITED`] | counter | `limit` (`upload_forms`; a host adds its own) |
//! | [`JOB_RUNS`] | counter | `job` (`clean_up`, `resize_all`, `reconcile`), `outcome` (`ok`, `item_errors`, `failed`) |
//! | [`JOB_ITEMS`] | counter | `job`, `count` (each count of the job's summary: `deleted`, `bytes_freed`, `made`, ...) |
//! | [`DB_POOL_CONNECTIONS`] | gauge | |
//! | [`DB_POOL_IDLE`] | gauge | |
//! | [`IMAGE_PERMITS_IN_USE`] | gauge | |
//! | [`IMAGE_PERMITS`] | gauge | |

/// HTTP requests answered, by method, route template and status.
pub const HTTP_REQUESTS: &str = "shoebox_http_requests_total";
/// How long requests took, from arrival until the body's last byte was sent (or the client
/// went away).
pub const HTTP_DURATION: &str = "shoebox_http_request_duration_seconds";
/// Calls to S3, by operation and bucket, whatever the outcome.
pub const S3_REQUESTS: &str = "shoebox_s3_requests_total";
/// Calls to S3 that failed or were refused, by operation, bucket and HTTP status.
pub const S3_ERRORS: &str = "shoebox_s3_errors_total";
/// How long calls to S3 took, retries included.
pub const S3_DURATION: &str = "shoebox_s3_request_duration_seconds";
/// Bytes of private photos streamed to viewers through the proxy.
pub const PROXY_BYTES: &str = "shoebox_proxy_bytes_total";
/// Upload forms issued.
pub const UPLOADS_SIGNED: &str = "shoebox_uploads_signed_total";
/// Uploads verified and promoted to the key they are served from.
pub const UPLOADS_COMPLETED: &str = "shoebox_uploads_completed_total";
/// Uploads refused, when signing (from what the client declared) or verifying (from the
/// bytes), by the stable reason code the API answers with.
pub const UPLOADS_REFUSED: &str = "shoebox_uploads_refused_total";
/// How many forms each of signing's database writes recorded together (group commit): 1 when
/// signing is quiet, more under concurrency.
pub const SIGN_BATCH_FORMS: &str = "shoebox_upload_sign_batch_forms";
/// How long verifying an upload took (HEAD, reads, the decode).
pub const VERIFY_DURATION: &str = "shoebox_verification_duration_seconds";
/// Variants made, or recorded as impossible to make from their photo.
pub const VARIANT_MAKES: &str = "shoebox_variant_makes_total";
/// How long a variant took from its claim until it was stored.
pub const VARIANT_DURATION: &str = "shoebox_variant_make_duration_seconds";
/// How long one photo's decode and the renditions made from it took (on the blocking pool).
pub const RESIZE_DURATION: &str = "shoebox_resize_duration_seconds";
/// Requests refused by a rate limit, by limit.
pub const RATE_LIMITED: &str = "shoebox_rate_limited_total";
/// Job runs, by job and outcome.
pub const JOB_RUNS: &str = "shoebox_job_runs_total";
/// The counts of job runs' summaries, added up, by job and count.
pub const JOB_ITEMS: &str = "shoebox_job_items_total";
/// Connections the database pool holds (busy and idle).
pub const DB_POOL_CONNECTIONS: &str = "shoebox_db_pool_connections";
/// Of those, idle ones.
pub const DB_POOL_IDLE: &str = "shoebox_db_pool_idle_connections";
/// Image-work permits taken (decodes and renditions running or waiting for a thread).
pub const IMAGE_PERMITS_IN_USE: &str = "shoebox_image_permits_in_use";
/// Image-work permits there are.
pub const IMAGE_PERMITS: &str = "shoebox_image_permits";

/// The rate limit on upload forms per uploader, as the `limit` label of [`RATE_LIMITED`].
pub const LIMIT_UPLOAD_FORMS: &str = "upload_forms";

/// Give each series its help text and unit, in the recorder installed now (call it after
/// installing one; harmless without).
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by method, route template and status.");
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request durations, until the body's last byte.");
    describe_counter!(S3_REQUESTS, "Calls to S3, by operation and bucket.");
    describe_counter!(S3_ERRORS, "Calls to S3 that failed, by operation, bucket and status (none: no answer).");
    describe_histogram!(S3_DURATION, Unit::Seconds, "S3 call durations, retries included.");
    describe_counter!(PROXY_BYTES, Unit::Bytes, "Bytes of private photos streamed through the proxy.");
    describe_counter!(UPLOADS_SIGNED, "Upload forms issued, by kind.");
    describe_counter!(UPLOADS_COMPLETED, "Uploads verified and promoted, by kind.");
    describe_counter!(UPLOADS_REFUSED, "Uploads refused, by kind, reason code and stage (sign, verify).");
    describe_histogram!(SIGN_BATCH_FORMS, "Forms recorded by each of signing's database writes (group commit).");
    describe_histogram!(VERIFY_DURATION, Unit::Seconds, "Upload verification durations, by kind.");
    describe_counter!(VARIANT_MAKES, "Variants made or found impossible, by variant and outcome.");
    describe_histogram!(VARIANT_DURATION, Unit::Seconds, "Variant durations from claim to stored, by variant.");
    describe_histogram!(RESIZE_DURATION, Unit::Seconds, "Decode-and-resize durations of one photo.");
    describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by limit.");
    describe_counter!(JOB_RUNS, "Job runs, by job and outcome (ok, item_errors, failed).");
    describe_counter!(JOB_ITEMS, "Job summary counts added up, by job and count.");
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections, busy and idle.");
    describe_gauge!(DB_POOL_IDLE, "Idle database pool connections.");
    describe_gauge!(IMAGE_PERMITS_IN_USE, "Image-work permits taken.");
    describe_gauge!(IMAGE_PERMITS, "Image-work permits there are.");
}

/// A job run ended: its outcome, and each count of its summary.
pub(crate) fn job_run(job: &'static str, outcome: &'static str, counts: &[(&'static str, u64)]) {
    metrics::counter!(JOB_RUNS, "job" => job, "outcome" => outcome).increment(1);
    for (count, n) in counts {
        metrics::counter!(JOB_ITEMS, "job" => job, "count" => *count).increment(*n);
    }
}

/// Seconds since `started`, as histograms take them.
pub(crate) fn seconds(started: std::time::Instant) -> f64 {
    started.elapsed().as_secs_f64()
}
