//! The layers a host may put around Shoebox's routes (or its whole app), each on its own:
//! security headers and cross-site checks, a request timeout, and request ids with a span,
//! an access log and request metrics. Shoebox's routes work without them; the reference app
//! takes all three.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::Instrument as _;

use super::error::{self, ApiError, AppError};
use crate::app::Shoebox;
use crate::telemetry::{HTTP_DURATION, HTTP_REQUESTS};

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

/// Give every request an id and a span that carries it, log one access line per request and
/// count it. Put it outermost, so the other layers' answers are logged and counted too.
///
/// - The id is the `X-Request-ID` the request came with when that is a sane one (20 to 200 of
///   `A-Z a-z 0-9 + / = _ -`: Heroku's router sends a UUID), so Shoebox's lines and the
///   router's own share it; otherwise a fresh UUID. It is echoed in the answer's
///   `X-Request-ID`, quoted by error pages, and carried by every line logged while the request
///   is handled (a `request` span with a `request_id` field; tasks the request starts carry it
///   too).
/// - A 5xx is logged once besides: by Shoebox's error mapping with its cause chain, or here
///   when nothing of Shoebox's said why (the timeout layer's 503, a host's own handler).
/// - The access line (`target: shoebox::access`) is written when the body's last byte is sent,
///   or when the client goes away first (`complete = false`): method, route template
///   (`/photos/{id}/{variant}`, never the path with its ids), status, bytes and milliseconds.
/// - [`telemetry::HTTP_REQUESTS`](crate::telemetry::HTTP_REQUESTS) and
///   [`telemetry::HTTP_DURATION`](crate::telemetry::HTTP_DURATION) are recorded with the same
///   labels.
pub fn request_id<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router.layer(middleware::from_fn(observed))
}

/// The `route` of a request that matched none (the fallback): one value, so a scan of random
/// paths makes no new series.
const UNMATCHED: &str = "unmatched";

/// The request's own `X-Request-ID` when it is one Heroku's router would pass on, else a fresh
/// UUID. The bounds keep a client from writing anything into a log line but an id.
pub(crate) fn request_id_of(headers: &axum::http::HeaderMap) -> String {
    let given = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|id| {
        (20..=200).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-'))
    });
    given.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

async fn observed(req: Request, next: Next) -> Response {
    let id = request_id_of(req.headers());
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str).to_owned();
    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let mut res = error::in_request(id.clone(), next.run(req)).instrument(span.clone()).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let status = res.status().as_u16();
    if res.status().is_server_error() && res.extensions().get::<error::Logged>().is_none() {
        // Every 5xx gets one line besides its access line: Shoebox's errors log themselves, and
        // this is the rest (the timeout layer's 503, a host's own handler).
        let _in_request = span.enter();
        tracing::warn!(
            status,
            "answered {status} with no error of Shoebox's to log: the request timed out, or a handler or layer of the host's answered so"
        );
    }
    // Hyper stops reading a body once it has sent the length it announced, so reaching that
    // length is finishing too.
    let length = res.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let access = Access { span, method, route, status, started, bytes: 0, length, complete: false };
    res.map(|body| Body::new(Observed { body, access }))
}

/// A response body that counts what it sends and, when it is finished or dropped, writes the
/// request's access line and records its metrics, once.
struct Observed {
    body: Body,
    access: Access,
}

struct Access {
    span: tracing::Span,
    method: axum::http::Method,
    route: String,
    status: u16,
    started: Instant,
    bytes: u64,
    /// The `Content-Length` announced, if any.
    length: Option<u64>,
    complete: bool,
}

impl HttpBody for Observed {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        // A streamed body (the proxy's) does its work here, after the handler returned: its
        // lines belong to the request too.
        let _in_request = self.access.span.clone().entered();
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.access.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.access.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        let a = &self.access;
        // An empty body (HEAD, 304, 204) may be dropped without ever being polled.
        let complete = a.complete || self.body.is_end_stream() || a.length == Some(a.bytes);
        let seconds = a.started.elapsed().as_secs_f64();
        let _in_request = a.span.enter();
        tracing::info!(
            target: "shoebox::access",
            method = %a.method,
            route = %a.route,
            status = a.status,
            bytes = a.bytes,
            ms = (seconds * 1000.0).round() as u64,
            complete,
            "request"
        );
        // A client may send any method name: only the standard ones become label values.
        let method = match a.method {
            Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::PATCH
            | Method::OPTIONS => a.method.as_str(),
            _ => "other",
        };
        let labels = [("method", method.to_owned()), ("route", a.route.clone()), ("status", a.status.to_string())];
        metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
        metrics::histogram!(HTTP_DURATION, &labels).record(seconds);
    }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::routing::get;
    use serde_json::Value;
    use tower::ServiceExt as _;

    use super::*;

    /// Where the test subscriber writes: one buffer shared with the test.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        "never"
    }

    async fn broken() -> Result<&'static str, ApiError> {
        Err(AppError::Internal(anyhow::anyhow!("the disk is on fire")).into())
    }

    /// The lines written while `path` was asked for and its body read to the end.
    async fn lines_of(path: &str, id: Option<&str>) -> (StatusCode, Vec<Value>) {
        let app = Router::new()
            .route("/photos/{id}/{variant}", get(|| async { "bytes" }))
            .route("/slow", get(slow))
            .route("/broken", get(broken))
            .layer(timeout(Duration::from_secs(25)));
        let app = request_id(app);
        let out = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_span_list(true)
            .with_writer({
                let out = out.clone();
                move || out.clone()
            })
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let mut req = Request::builder().uri(path);
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        let res = app.oneshot(req.body(Body::empty()).expect("request")).await.expect("answer");
        let status = res.status();
        assert!(res.headers().contains_key("x-request-id"));
        let _ = axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body");
        let text = String::from_utf8(out.0.lock().expect("lines").clone()).expect("utf8");
        (status, text.lines().map(|l| serde_json::from_str(l).expect("json")).collect())
    }

    fn request_ids(l: &Value) -> Vec<&str> {
        l["spans"].as_array().into_iter().flatten().filter_map(|s| s["request_id"].as_str()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn each_request_gets_one_access_line_with_its_route_template_and_id() {
        let id = "0b7e5c1a-4f3d-4b8e-9a61-3c2d1e0f9a87";
        let (status, lines) = lines_of("/photos/abc123/thumb", Some(id)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        let l = &lines[0];
        assert_eq!(
            (l["target"].as_str(), l["route"].as_str()),
            (Some("shoebox::access"), Some("/photos/{id}/{variant}"))
        );
        assert_eq!(
            (l["method"].as_str(), l["status"].as_u64(), l["bytes"].as_u64()),
            (Some("GET"), Some(200), Some(5))
        );
        assert_eq!(l["complete"], true);
        assert_eq!(request_ids(l), [id]);

        let (status, lines) = lines_of("/no/such/path", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(lines[0]["route"], "unmatched", "a path no route matched makes no label of its own");
    }

    /// A 5xx is logged once besides its access line, whoever answered it.
    #[tokio::test(start_paused = true)]
    async fn a_5xx_is_logged_once_by_the_error_mapping_or_else_by_the_layer() {
        let (status, lines) = lines_of("/broken", None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let errors: Vec<_> = lines.iter().filter(|l| l["target"] != "shoebox::access").collect();
        assert_eq!(errors.len(), 1, "{lines:#?}");
        assert!(errors[0]["error"].as_str().is_some_and(|e| e.contains("the disk is on fire")), "{lines:#?}");

        // The timeout layer's 503 has no error of Shoebox's: the layer says what it can.
        let (status, lines) = lines_of("/slow", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let warnings: Vec<_> = lines.iter().filter(|l| l["target"] != "shoebox::access").collect();
        assert_eq!(warnings.len(), 1, "{lines:#?}");
        assert_eq!(warnings[0]["level"], "WARN");
        assert_eq!(request_ids(warnings[0]).len(), 1, "inside the request's span");
        assert_eq!(lines.len(), 2);
    }
}
