//! The one place where errors become HTTP answers.
//!
//! Handlers return [`ApiError`] (JSON `{error, message}`) or [`PageError`] (a readable page);
//! both wrap the same [`AppError`], whose status and code are chosen in [`classify`] only.
//! What an error's [`Fault`] is decides the rest: the client's is answered with its sentence;
//! an outage of S3 or the database with 503 and `Retry-After`, logged as a warning; a bug with
//! a generic sentence carrying the request id, logged once with its cause chain.

use askama::Template as _;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;

use super::templates::{ErrorPage, PageChrome};
use crate::fault::Fault;
use crate::photos::PhotoError;
use crate::storage::StorageError;
use crate::uploads::{Refusal, UploadError};
use crate::variants::VariantError;

tokio::task_local! {
    /// The current request's id, set by the request-id layer around every handler.
    static REQUEST_ID: String;
    /// The page header for who is signed in, once an extractor has asked: error pages show the
    /// same header as every other page instead of a signed-out one.
    static CHROME: std::cell::RefCell<Option<PageChrome>>;
}

/// Run `request` with `id` as its request id (for error pages and log lines).
pub(crate) async fn in_request<F: Future>(id: String, request: F) -> F::Output {
    REQUEST_ID.scope(id, CHROME.scope(std::cell::RefCell::new(None), request)).await
}

/// Remember the page header for this request's error page.
pub(crate) fn remember_chrome(chrome: PageChrome) {
    let _ = CHROME.try_with(|c| *c.borrow_mut() = Some(chrome));
}

/// This request's id: the request-id layer's, or a fresh one to quote when the host did not
/// take that layer.
fn request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| crate::domain::random_token()[..16].to_owned())
}

/// Why the host could not say who is asking (its session store is down): answered 503.
#[derive(Debug, thiserror::Error)]
#[error("the application could not look up who is signed in: {0}")]
pub struct IdentityError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl IdentityError {
    /// Wrap the host's own error.
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(e.into())
    }
}

/// Everything a Shoebox handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Signing or completing an upload.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// An operation on a photo.
    #[error(transparent)]
    Photo(#[from] PhotoError),
    /// Finding or making a variant.
    #[error(transparent)]
    Variant(#[from] VariantError),
    /// Serving a photo's bytes from its bucket.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The host could not say who is signed in.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Input that could not be parsed; the message says what to fix.
    #[error("{0}")]
    BadInput(String),
    /// Nobody is signed in; pages send people to `login` when the host has one.
    #[error("Log in to continue.")]
    Unauthenticated {
        /// The host's login page.
        login: Option<String>,
    },
    /// A state-changing request without what its viewer's [`Csrf`](super::Csrf) asks.
    #[error(
        "This request did not come from one of this app's pages (missing or wrong CSRF token). Reload the page and try again."
    )]
    Csrf,
    /// A state-changing request a browser says came from another site.
    #[error("This request came from another site, so it was refused. Use the app's own page.")]
    CrossSite,
    /// A `Host` the app does not answer to, where the answer would carry it.
    #[error(
        "This server does not answer to that address. Use the app's own address (its operator sets the public URL or the allowed hosts)."
    )]
    UnknownHost,
    /// No such page or photo.
    #[error("There is no such page or photo.")]
    NotFound,
    /// A route asked by a method it does not take (the answer's `Allow` says which it takes).
    #[error("This address does not take {0} requests.")]
    MethodNotAllowed(axum::http::Method),
    /// Anything else: a bug.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// Whose fault this is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Upload(e) => e.fault(),
            Self::Photo(e) => e.fault(),
            Self::Variant(e) => e.fault(),
            Self::Storage(e) => e.fault(),
            Self::Identity(_) => Fault::Outage,
            Self::Internal(_) => Fault::Bug,
            _ => Fault::Client,
        }
    }
}

/// Status, stable code and the sentence shown to people (`None` for a bug: internals stay out).
pub fn classify(e: &AppError) -> (StatusCode, &'static str, Option<String>) {
    use StatusCode as S;
    match e.fault() {
        Fault::Bug => return (S::INTERNAL_SERVER_ERROR, "internal", None),
        Fault::Outage => {
            let code = if storage_error(e).is_some() { "storage_unavailable" } else { "unavailable" };
            let sentence = if code == "storage_unavailable" { STORAGE_UNAVAILABLE } else { UNAVAILABLE };
            return (S::SERVICE_UNAVAILABLE, code, Some(sentence.into()));
        }
        Fault::Client => {}
    }
    let shown = Some(e.to_string());
    match e {
        AppError::Upload(u) => match u {
            UploadError::UnknownKind(_) => (S::BAD_REQUEST, "unknown_kind", shown),
            UploadError::UploadNotAllowed => (S::FORBIDDEN, "forbidden", shown),
            UploadError::MissingType => (S::BAD_REQUEST, "missing_type", shown),
            UploadError::EmptyFile => (S::BAD_REQUEST, "empty_file", shown),
            UploadError::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate_limited", shown),
            UploadError::NotUploaded => (S::CONFLICT, "not_uploaded", shown),
            UploadError::Expired => (S::GONE, "form_expired", shown),
            UploadError::Refused(r) => (refusal_status(r), r.code(), shown),
            UploadError::Gone(_) => (S::GONE, "upload_refused", shown),
            UploadError::Changed => (S::CONFLICT, "upload_changed", shown),
            UploadError::Verifying => (S::CONFLICT, "upload_verifying", shown),
            UploadError::Photo(p) => photo_status(p, shown),
            UploadError::Storage(s) => storage_status(s, shown),
            UploadError::Db(_) => (S::INTERNAL_SERVER_ERROR, "internal", None),
        },
        AppError::Photo(p) => photo_status(p, shown),
        AppError::Variant(v) => match v {
            VariantError::NoSuchVariant(_) => (S::NOT_FOUND, "no_such_variant", shown),
            VariantError::NotMadeYet(_) => (S::NOT_FOUND, "not_made_yet", shown),
            VariantError::Photo(p) => photo_status(p, shown),
            VariantError::Storage(s) => storage_status(s, shown),
            VariantError::Db(_) => (S::INTERNAL_SERVER_ERROR, "internal", None),
        },
        AppError::Storage(s) => storage_status(s, shown),
        AppError::BadInput(_) => (S::BAD_REQUEST, "bad_request", shown),
        AppError::Unauthenticated { .. } => (S::UNAUTHORIZED, "unauthenticated", shown),
        AppError::Csrf => (S::FORBIDDEN, "csrf", shown),
        AppError::CrossSite => (S::FORBIDDEN, "cross_site", shown),
        AppError::UnknownHost => (S::BAD_REQUEST, "unknown_host", shown),
        AppError::NotFound => (S::NOT_FOUND, "not_found", shown),
        AppError::MethodNotAllowed(_) => (S::METHOD_NOT_ALLOWED, "method_not_allowed", shown),
        AppError::Identity(_) | AppError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal", None),
    }
}

/// What a viewer is told when S3 is down or slow: it is not their fault and will pass.
const STORAGE_UNAVAILABLE: &str = "Photo storage is not answering right now. Try again in a few seconds.";
/// The same for the database, or the host's own session store.
const UNAVAILABLE: &str = "The service is busy or restarting. Try again in a few seconds.";
/// How long a client should wait before trying again after an outage: about as long as one
/// request's time budget for S3, so a retry is not wasted on the same outage at once.
const RETRY_AFTER_SECS: u64 = 5;

/// Storage failures that are the client's: a range outside the photo, a file replaced while
/// it was read.
fn storage_status(s: &StorageError, shown: Option<String>) -> (StatusCode, &'static str, Option<String>) {
    match s {
        StorageError::RangeNotSatisfiable { size } => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            Some(format!(
                "The requested range is outside this photo, which is {size} bytes long. Ask for bytes 0 to {}.",
                size.saturating_sub(1)
            )),
        ),
        StorageError::Changed => (StatusCode::CONFLICT, "upload_changed", shown),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
    }
}

/// The storage error inside `e`, wherever it is wrapped.
fn storage_error(e: &AppError) -> Option<&StorageError> {
    match e {
        AppError::Storage(s)
        | AppError::Upload(UploadError::Storage(s))
        | AppError::Photo(PhotoError::Storage(s))
        | AppError::Upload(UploadError::Photo(PhotoError::Storage(s)))
        | AppError::Variant(VariantError::Storage(s))
        | AppError::Variant(VariantError::Photo(PhotoError::Storage(s))) => Some(s),
        _ => None,
    }
}

/// How a served photo (or part of one) is answered: the proxy's successful statuses, chosen
/// here with the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    Whole,
    Partial,
    NotModified,
}

pub(crate) fn delivery_status(d: Delivery) -> StatusCode {
    match d {
        Delivery::Whole => StatusCode::OK,
        Delivery::Partial => StatusCode::PARTIAL_CONTENT,
        Delivery::NotModified => StatusCode::NOT_MODIFIED,
    }
}

fn photo_status(p: &PhotoError, shown: Option<String>) -> (StatusCode, &'static str, Option<String>) {
    use StatusCode as S;
    match p {
        PhotoError::NotFound => (S::NOT_FOUND, "not_found", shown),
        PhotoError::Unauthenticated => (S::UNAUTHORIZED, "unauthenticated", shown),
        PhotoError::Forbidden => (S::FORBIDDEN, "forbidden", shown),
        PhotoError::NotReady => (S::CONFLICT, "not_ready", shown),
        PhotoError::Gone(_) => (S::GONE, "photo_gone", shown),
        PhotoError::KeepUntilInPast => (S::BAD_REQUEST, "keep_until_in_past", shown),
        PhotoError::Storage(s) => storage_status(s, shown),
        PhotoError::Db(_) => (S::INTERNAL_SERVER_ERROR, "internal", None),
    }
}

/// The status an error is answered with, for handlers that render their own page for it.
pub fn status_of(e: &AppError) -> StatusCode {
    classify(e).0
}

/// `/healthz`'s status: 200 when every dependency answered, else 503 so load balancers and
/// uptime checks see the failure.
pub(crate) fn health_status(healthy: bool) -> StatusCode {
    if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        // A smaller photo could still fit: the content is too large for the space left, as it
        // is for the kind's own limit.
        // No photo fits until one is deleted: what the account may store is full, the same
        // answer as for bytes. Not 429: that says "too many in a given amount of time", comes
        // with Retry-After, and clients (the upload page's script among them) wait and try
        // again, which cannot help here.
        Refusal::TooLarge { .. } | Refusal::OverByteQuota { .. } | Refusal::OverPhotoQuota { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        Refusal::TypeNotAccepted(_) | Refusal::TypeMismatch { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Refusal::Image { code: "not_an_image" | "unsupported_type" | "empty_file", .. } => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        Refusal::TooManyPixels { .. } | Refusal::Image { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The error and its causes, `a: b: c`.
fn chain(e: &AppError) -> String {
    let mut chain = format!("{e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    chain
}

/// The sentence people see, logging what they do not: a bug once with its cause chain, an
/// outage as a warning (it is not ours to fix, but must show in the log). This is the only
/// line a 5xx gets besides its access line. Its chain is the one place the SDK's own account
/// of an S3 failure (its `Debug`) is written: every other report of it says it in plain words.
fn message(e: &AppError, shown: Option<String>) -> String {
    let id = request_id();
    match (e.fault(), shown) {
        (Fault::Client, Some(s)) => s,
        (Fault::Outage, Some(s)) => {
            tracing::warn!(request_id = %id, error = %chain(e), "a dependency is unavailable; answered 503");
            s
        }
        _ => {
            tracing::error!(request_id = %id, error = %chain(e), "request failed");
            format!(
                "Something went wrong on our side. Try again in a moment; if it keeps happening, quote request id {id}."
            )
        }
    }
}

/// How long to wait before trying again, when that is worth saying.
pub fn retry_after(e: &AppError) -> Option<u64> {
    match e {
        AppError::Upload(UploadError::RateLimited { retry_after_secs }) => Some(*retry_after_secs),
        AppError::Upload(UploadError::Verifying) => Some(1),
        _ if e.fault() == Fault::Outage => Some(RETRY_AFTER_SECS),
        _ => None,
    }
}

/// An error answered as JSON, for the API.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, shown) = classify(&self.0);
        let message = message(&self.0, shown);
        let mut res = (status, Json(json!({ "error": code, "message": message }))).into_response();
        finish(&mut res, &self.0);
        res
    }
}

/// An error answered as a page, for browsers. Not being logged in sends people to the host's
/// login page, when it has one.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.page(None)
    }
}

impl PageError {
    /// The page with `chrome` as its header when given, else the one an extractor remembered
    /// for this request (which needs the request-id layer's scope), else a signed-out one.
    pub(crate) fn page(self, chrome: Option<PageChrome>) -> Response {
        if let AppError::Unauthenticated { login: Some(login) } = &self.0 {
            return Redirect::to(login).into_response();
        }
        let (status, _code, shown) = classify(&self.0);
        let message = message(&self.0, shown);
        let chrome = chrome.or_else(|| CHROME.try_with(|c| c.borrow().clone()).ok().flatten()).unwrap_or_default();
        let page = ErrorPage { chrome, status: status.as_u16(), message };
        let body = page.render().unwrap_or_else(|_| "Something went wrong.".into());
        let mut res = (status, Html(body)).into_response();
        finish(&mut res, &self.0);
        res
    }
}

/// Marks an answer whose failure, if any, was already logged (here, or by `/healthz`), so the
/// request-id layer does not log it again: a 5xx without it (a timeout, or a host's own
/// handler) gets one line there instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logged;

fn finish(res: &mut Response, e: &AppError) {
    res.extensions_mut().insert(Logged);
    if let Some(StorageError::RangeNotSatisfiable { size }) = storage_error(e)
        && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
    {
        res.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    if let Some(secs) = retry_after(e)
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if matches!(e, AppError::Unauthenticated { .. } | AppError::Photo(PhotoError::Unauthenticated)) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Cookie realm=\"app\""));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_waiting_on_another_verification_is_a_409_with_retry_after() {
        let e = AppError::Upload(UploadError::Verifying);
        let (status, code, shown) = classify(&e);
        assert_eq!((status, code), (StatusCode::CONFLICT, "upload_verifying"));
        assert!(shown.is_some_and(|s| s.contains("still being checked")));
        assert_eq!(retry_after(&e), Some(1));
    }

    #[test]
    fn an_s3_outage_while_a_variant_is_made_is_a_503_with_retry_after() {
        let timed_out = crate::storage::S3Failure {
            transport: Some("timed out".into()),
            ..crate::storage::S3Failure::new("GetObject", "b")
        };
        let e = AppError::Variant(VariantError::Storage(StorageError::Unavailable(crate::storage::S3Error::new(
            timed_out,
        ))));
        let (status, code, shown) = classify(&e);
        assert_eq!((status, code), (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"));
        assert!(shown.is_some_and(|s| s.contains("Try again")));
        assert_eq!(retry_after(&e), Some(RETRY_AFTER_SECS));
    }

    #[test]
    fn a_database_outage_is_a_503_and_a_database_bug_a_500() {
        let down = AppError::Photo(PhotoError::Db(crate::db::DbError::Sqlx(sqlx::Error::PoolTimedOut)));
        assert_eq!(classify(&down).0, StatusCode::SERVICE_UNAVAILABLE);
        let bug = AppError::Photo(PhotoError::Db(crate::db::DbError::Corrupt("state \"x\"".into())));
        assert_eq!(classify(&bug), (StatusCode::INTERNAL_SERVER_ERROR, "internal", None));
        assert_eq!(retry_after(&bug), None);
    }
}
