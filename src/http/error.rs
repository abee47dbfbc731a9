//! The one place where errors become HTTP answers.
//!
//! Handlers return [`ApiError`] (JSON `{error, message}`) or [`PageError`] (a readable page);
//! both wrap the same [`AppError`], whose status and code are chosen in [`classify`] only.
//! A 5xx is logged once with its cause chain and shown as a generic sentence with the request
//! id, never with internals.

use askama::Template as _;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;

use crate::accounts::AccountError;
use crate::db::DbError;
use crate::photos::PhotoError;
use crate::storage::StorageError;
use crate::uploads::{Refusal, UploadError};
use crate::variants::VariantError;

tokio::task_local! {
    /// The current request's id, set by the request-id middleware around every handler.
    pub static REQUEST_ID: String;
    /// Who is signed in, once an extractor has looked: error pages show the same header as
    /// every other page instead of a signed-out one.
    pub static SIGNED_IN: std::cell::RefCell<Option<crate::http::templates::Viewer>>;
}

/// Remember who is signed in for this request's error page.
pub fn remember_signed_in(viewer: crate::http::templates::Viewer) {
    let _ = SIGNED_IN.try_with(|v| *v.borrow_mut() = Some(viewer));
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error(transparent)]
    Photo(#[from] PhotoError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Variant(#[from] VariantError),
    /// Input that could not be parsed; the message says what to fix.
    #[error("{0}")]
    BadInput(String),
    #[error("Log in to continue.")]
    Unauthenticated,
    #[error(
        "This request did not come from a Shoebox page (missing or wrong CSRF token). Reload the page and try again."
    )]
    Csrf,
    #[error("This request came from another site, so it was refused. Use the Shoebox page.")]
    CrossSite,
    #[error(
        "This server does not answer to that address. Use the app's own address (its operator sets SHOEBOX_PUBLIC_URL or SHOEBOX_ALLOWED_HOSTS)."
    )]
    UnknownHost,
    #[error("You may not see this photo.")]
    Forbidden,
    #[error("There is no such page or photo.")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Status, stable code and the sentence shown to people (`None` for a 5xx: internals stay out).
pub fn classify(e: &AppError) -> (StatusCode, &'static str, Option<String>) {
    use StatusCode as S;
    let shown = Some(e.to_string());
    let internal = (S::INTERNAL_SERVER_ERROR, "internal", None);
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
            UploadError::Photo(p) => photo_status(p, shown),
            UploadError::Storage(s) => storage_status(s).unwrap_or(internal),
            UploadError::Db(_) => internal,
        },
        AppError::Photo(p) => photo_status(p, shown),
        AppError::Variant(v) => match v {
            VariantError::NoSuchVariant(_) => (S::NOT_FOUND, "no_such_variant", shown),
            VariantError::Photo(p) => photo_status(p, shown),
            VariantError::Db(_) | VariantError::Storage(_) => internal,
        },
        AppError::Account(a) => match a {
            AccountError::EmailTaken => (S::CONFLICT, "email_taken", shown),
            AccountError::BadCredentials => (S::UNAUTHORIZED, "bad_credentials", shown),
            AccountError::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate_limited", shown),
            AccountError::Db(_) | AccountError::Hash(_) => internal,
        },
        AppError::BadInput(_) => (S::BAD_REQUEST, "bad_request", shown),
        AppError::Unauthenticated => (S::UNAUTHORIZED, "unauthenticated", shown),
        AppError::Csrf => (S::FORBIDDEN, "csrf", shown),
        AppError::CrossSite => (S::FORBIDDEN, "cross_site", shown),
        AppError::UnknownHost => (S::BAD_REQUEST, "unknown_host", shown),
        AppError::Forbidden => (S::FORBIDDEN, "forbidden", shown),
        AppError::NotFound => (S::NOT_FOUND, "not_found", shown),
        AppError::Storage(s) => storage_status(s).unwrap_or(internal),
        AppError::Db(_) | AppError::Internal(_) => internal,
    }
}

/// What a viewer is told when S3 is down or slow: it is not their fault and will pass.
const STORAGE_UNAVAILABLE: &str = "Photo storage is not answering right now. Try again in a few seconds.";
/// How long a client should wait before trying again when S3 is unavailable: about as long as
/// one request's time budget for S3, so a retry is not wasted on the same outage at once.
const STORAGE_RETRY_AFTER_SECS: u64 = 5;

/// Storage failures a client can act on; `None` for the rest, which are internal.
fn storage_status(s: &StorageError) -> Option<(StatusCode, &'static str, Option<String>)> {
    match s {
        StorageError::Unavailable(_) => {
            Some((StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", Some(STORAGE_UNAVAILABLE.into())))
        }
        StorageError::RangeNotSatisfiable { size } => Some((
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            Some(format!(
                "The requested range is outside this photo, which is {size} bytes long. Ask for bytes 0 to {}.",
                size.saturating_sub(1)
            )),
        )),
        _ => None,
    }
}

fn storage_error(e: &AppError) -> Option<&StorageError> {
    match e {
        AppError::Storage(s) | AppError::Upload(UploadError::Storage(s)) | AppError::Photo(PhotoError::Storage(s)) => {
            Some(s)
        }
        AppError::Upload(UploadError::Photo(PhotoError::Storage(s))) => Some(s),
        _ => None,
    }
}

/// How a served photo (or part of one) is answered: the proxy's successful statuses, chosen
/// here with the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Whole,
    Partial,
    NotModified,
}

pub fn delivery_status(d: Delivery) -> StatusCode {
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
        PhotoError::Storage(s) => storage_status(s).unwrap_or((S::INTERNAL_SERVER_ERROR, "internal", None)),
        PhotoError::Db(_) => (S::INTERNAL_SERVER_ERROR, "internal", None),
    }
}

/// The status an error is answered with, for handlers that render their own page for it (the
/// account forms show the form again, with the message, under this status).
pub fn status_of(e: &AppError) -> StatusCode {
    classify(e).0
}

/// `/healthz`'s status: 200 when every dependency answered, else 503 so load balancers and
/// uptime checks see the failure.
pub fn health_status(healthy: bool) -> StatusCode {
    if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}

fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::TypeNotAccepted(_) | Refusal::TypeMismatch { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Refusal::Image { code: "not_an_image" | "unsupported_type" | "empty_file", .. } => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        Refusal::TooManyPixels { .. } | Refusal::Image { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// Log a 5xx once, with its cause chain, and make the sentence people see instead.
fn internal_message(e: &AppError) -> String {
    let id = REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "unknown".into());
    let mut chain = format!("{e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    tracing::error!(request_id = %id, error = %chain, "request failed");
    format!("Something went wrong on our side. Try again in a moment; if it keeps happening, quote request id {id}.")
}

pub(crate) fn retry_after(e: &AppError) -> Option<u64> {
    match e {
        AppError::Upload(UploadError::RateLimited { retry_after_secs })
        | AppError::Account(AccountError::RateLimited { retry_after_secs }) => Some(*retry_after_secs),
        _ if matches!(storage_error(e), Some(StorageError::Unavailable(_))) => Some(STORAGE_RETRY_AFTER_SECS),
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
        let message = shown.unwrap_or_else(|| internal_message(&self.0));
        let mut res = (status, Json(json!({ "error": code, "message": message }))).into_response();
        finish(&mut res, &self.0);
        res
    }
}

/// An error answered as a page, for browsers. Not being logged in sends people to the login
/// page instead.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if matches!(
            self.0,
            AppError::Unauthenticated
                | AppError::Photo(PhotoError::Unauthenticated)
                | AppError::Variant(VariantError::Photo(PhotoError::Unauthenticated))
        ) {
            return Redirect::to("/login").into_response();
        }
        let (status, _code, shown) = classify(&self.0);
        let message = shown.unwrap_or_else(|| internal_message(&self.0));
        let user = SIGNED_IN.try_with(|v| v.borrow().clone()).ok().flatten();
        let page = crate::http::templates::ErrorPage { user, status: status.as_u16(), message };
        let body = page.render().unwrap_or_else(|_| "Something went wrong.".into());
        let mut res = (status, Html(body)).into_response();
        finish(&mut res, &self.0);
        res
    }
}

fn finish(res: &mut Response, e: &AppError) {
    match storage_error(e) {
        Some(StorageError::Unavailable(why)) => {
            // Not a 5xx of ours, so internal_message did not log it; an outage must show in the log.
            let id = REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "unknown".into());
            tracing::warn!(request_id = %id, error = %why, "S3 unavailable; answered 503");
        }
        Some(StorageError::RangeNotSatisfiable { size }) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
        }
        _ => {}
    }
    if let Some(secs) = retry_after(e)
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if matches!(e, AppError::Unauthenticated | AppError::Photo(PhotoError::Unauthenticated)) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Cookie realm=\"shoebox\""));
    }
}
