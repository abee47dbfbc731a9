//! Every S3 call counted and timed, in one place: an interceptor on each bucket's client sees
//! each operation start and end (after its retries), whichever method made it, the doctor's
//! probes included.

use std::time::Instant;

use aws_sdk_s3::config::interceptors::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use crate::telemetry::{S3_DURATION, S3_ERRORS, S3_REQUESTS, seconds};

/// Counts and times the calls of one bucket's client.
#[derive(Debug)]
pub(super) struct Metered {
    /// The S3 bucket's name, the `bucket` label.
    bucket: String,
}

impl Metered {
    pub(super) fn new(bucket: &str) -> Self {
        Self { bucket: bucket.to_owned() }
    }
}

/// When the operation started, kept in the operation's config bag between the two hooks.
#[derive(Debug, Clone, Copy)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Metered {
    fn name(&self) -> &'static str {
        "ShoeboxMetered"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // A presigned request is built but never sent: it has neither output nor error.
        let (Some(outcome), Some(Started(started))) = (context.output_or_error(), cfg.load::<Started>().copied())
        else {
            return Ok(());
        };
        let operation = cfg.load::<Metadata>().map_or_else(|| "unknown".to_owned(), |m| m.name().to_owned());
        let bucket = self.bucket.clone();
        metrics::counter!(S3_REQUESTS, "operation" => operation.clone(), "bucket" => bucket.clone()).increment(1);
        metrics::histogram!(S3_DURATION, "operation" => operation.clone(), "bucket" => bucket.clone())
            .record(seconds(started));
        if outcome.is_err() {
            let status = context.response().map_or_else(|| "none".to_owned(), |r| r.status().as_u16().to_string());
            metrics::counter!(S3_ERRORS, "operation" => operation, "bucket" => bucket, "status" => status).increment(1);
        }
        Ok(())
    }
}
