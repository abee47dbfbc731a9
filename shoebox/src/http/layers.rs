//! The layers a host may put around Shoebox's routes (or its whole app), each on its own:
//! security headers and cross-site checks, a request timeout, and request ids with an access
//! log. Shoebox's routes work without them; the reference app takes all three.

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use super::error::{self, ApiError, AppError};
use crate::app::Shoebox;
use crate::domain::random_token;

/// Security headers and checks around `router` (a host's whole app, or only Shoebox's routes):
/// - state-changing requests a browser says came from another site are refused (403), before
///   any handler runs (CSRF checks are the real defence; this catches anything without one);
/// - over HTTPS, `Strict-Transport-Security` for a year;
/// - `Cache-Control: no-store` unless a route said otherwise (pages carry CSRF tokens and the
///   API answers signed forms);
/// - a `Content-Security-Policy` allowing only the app and its buckets;
/// - `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy: same-origin`.
pub fn security<S: Clone + Send + Sync + 'static>(router: Router<S>, shoebox: &Shoebox) -> Router<S> {
    let csp = HeaderValue::from_str(&content_security_policy(shoebox))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    router
        .layer(middleware::from_fn_with_state(shoebox.clone(), checked_writes))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, csp))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
}

/// A request that takes longer than `after` is answered 503 (below Heroku's 30 s router limit,
/// so the app, not the router, decides what a slow request gets). The reference app uses 25 s.
pub fn timeout(after: Duration) -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, after)
}

/// Give every request an id (echoed in `X-Request-ID`, quoted by error pages), and log one
/// line per request with its outcome. Put it outermost, so the other layers' answers are
/// logged too.
pub fn request_id<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(middleware::from_fn(with_request_id))
}

async fn with_request_id(req: Request, next: Next) -> Response {
    let id = random_token()[..16].to_owned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let mut res = error::in_request(id.clone(), next.run(req)).await;
    let status = res.status();
    tracing::info!(request_id = %id, %method, %path, status = status.as_u16(), ms = started.elapsed().as_millis(), "request");
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
    }
    res
}

/// Refuse state-changing requests that a browser says came from another site; over HTTPS, tell
/// browsers to use nothing else for a year (a downgraded first request is the one way left to
/// strip TLS; not sent over plain HTTP, where it would be ignored anyway).
async fn checked_writes(State(shoebox): State<Shoebox>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        let cross_site = headers.get("sec-fetch-site").is_some_and(|v| v == "cross-site");
        let foreign_origin = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| o != "null" && Some(o) != shoebox.origin(headers).as_deref());
        if cross_site || foreign_origin {
            return ApiError(AppError::CrossSite).into_response();
        }
    }
    let https = shoebox.is_https(headers);
    let mut res = next.run(req).await;
    if https {
        res.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    res
}

fn content_security_policy(shoebox: &Shoebox) -> String {
    let s3 = shoebox.web.storage_origins.join(" ");
    format!(
        "default-src 'self'; img-src 'self' blob: data: {s3}; connect-src 'self' {s3}; form-action 'self' {s3}; \
         script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
}
