//! HTTP: state, router, middleware and one module per area.
//!
//! Handlers parse input into domain types, call one function of the layer below, and turn the
//! result into a response; statuses are chosen in [`error`] only.

pub mod accounts;
pub mod api;
pub mod auth;
pub mod error;
pub mod health;
pub mod pages;
pub mod photos;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::app::Shoebox;
use crate::domain::random_token;
use error::REQUEST_ID;

/// What handlers get: the service and the web settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub app: Shoebox,
    pub web: Arc<WebSettings>,
}

/// Settings that only matter to the web layer.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The app's own origin when configured (`https://photos.example.com`): what production
    /// sets, so no request can choose where S3 sends a browser back to.
    pub public_url: Option<url::Url>,
    /// Without `public_url`, the hosts whose `Host` header is taken as the app's origin.
    pub allowed_hosts: Vec<String>,
    /// Origins of the buckets the pages talk to, for the Content-Security-Policy.
    pub storage_origins: Vec<String>,
}

impl WebSettings {
    /// The app's origin as the browser sees it, for redirects S3 sends people back through and
    /// for checking `Origin`: `public_url`, else the request's `Host` if it is an allowed one
    /// (`None` otherwise: a forged `Host` must not choose where a form redirects to).
    pub fn origin(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(u) = &self.public_url {
            return Some(u.origin().ascii_serialization());
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok())?.to_ascii_lowercase();
        let name = match host.rsplit_once(':') {
            // A port, unless the colon is inside an IPv6 literal.
            Some((name, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host.as_str(),
        };
        if !self.allowed_hosts.iter().any(|h| h == name) {
            return None;
        }
        // Heroku's router terminates TLS and says so in X-Forwarded-Proto.
        let proto = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
            Some("https") => "https",
            _ => "http",
        };
        Some(format!("{proto}://{host}"))
    }

    /// Whether the browser reached the app over HTTPS: cookies are then `Secure` and HSTS is sent.
    pub fn is_https(&self, headers: &HeaderMap) -> bool {
        self.origin(headers).is_some_and(|o| o.starts_with("https://"))
    }

    /// Whether cookies must be `Secure`: whenever the app is reached over HTTPS.
    pub fn secure_cookies(&self, headers: &HeaderMap) -> bool {
        self.is_https(headers)
    }

    fn content_security_policy(&self) -> String {
        let s3 = self.storage_origins.join(" ");
        format!(
            "default-src 'self'; img-src 'self' blob: data: {s3}; connect-src 'self' {s3}; form-action 'self' {s3}; \
             script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        )
    }
}

/// The whole application: every area's routes, merged, with the shared layers.
pub fn router(state: AppState) -> Router {
    let csp = HeaderValue::from_str(&state.web.content_security_policy())
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    Router::new()
        .merge(pages::router())
        .merge(accounts::router())
        .merge(api::router())
        .merge(photos::router())
        .merge(health::router())
        .layer(middleware::from_fn_with_state(state.clone(), refuse_cross_site_writes))
        .layer(middleware::from_fn_with_state(state.clone(), strict_transport_security))
        // Pages carry the CSRF token and the email, and API answers signed forms: no cache may
        // keep them. Routes that may be cached (static files, the proxy) say so themselves.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, csp))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        // Below Heroku's 30 s router limit, so the app, not the router, decides what a slow
        // request gets.
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(25)))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Give every request an id, log it with the outcome, and make it available to error pages.
async fn request_id(req: Request, next: Next) -> Response {
    let id = random_token()[..16].to_owned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = std::time::Instant::now();
    let signed_in = std::cell::RefCell::new(None);
    let mut res = REQUEST_ID.scope(id.clone(), error::SIGNED_IN.scope(signed_in, next.run(req))).await;
    let status = res.status();
    tracing::info!(request_id = %id, %method, %path, status = status.as_u16(), ms = started.elapsed().as_millis(), "request");
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
    }
    res
}

/// Refuse state-changing requests that a browser says came from another site. CSRF tokens are
/// the real defence; this catches anything that forgets one.
async fn refuse_cross_site_writes(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        let headers = req.headers();
        let cross_site = headers.get("sec-fetch-site").is_some_and(|v| v == "cross-site");
        let foreign_origin = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .is_some_and(|o| o != "null" && Some(o) != state.web.origin(headers).as_deref());
        if cross_site || foreign_origin {
            return error::ApiError(error::AppError::CrossSite).into_response();
        }
    }
    next.run(req).await
}

/// Over HTTPS, tell browsers to use nothing else for a year: a downgraded first request is the
/// one way left to strip TLS. Not sent over plain HTTP, where it would be ignored anyway.
async fn strict_transport_security(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let https = state.web.is_https(req.headers());
    let mut res = next.run(req).await;
    if https {
        res.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    res
}

/// Send each answer as soon as it is written. With Nagle's algorithm on (the socket default),
/// a small last segment waits for the client's delayed ACK, up to 40 ms on Linux: that was
/// most of signing's p99 and of a streamed private variant's extra time.
pub fn without_nagle(listener: tokio::net::TcpListener) -> axum::serve::TapIo<tokio::net::TcpListener, NoDelay> {
    use axum::serve::ListenerExt as _;
    fn no_delay(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    }
    listener.tap_io(no_delay as NoDelay)
}

/// What [`without_nagle`] does to each accepted connection.
pub type NoDelay = fn(&mut tokio::net::TcpStream);

/// Serve until `shutdown` resolves, then drain in-flight requests for at most `drain`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // The peer address is the client's when no proxy is trusted (login and sign-up limits).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(without_nagle(listener), service).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    tokio::select! {
        r = server.into_future() => r,
        () = async {
            // Only start the drain clock once shutdown has begun.
            if rx.await.is_ok() {
                tokio::time::sleep(drain).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(seconds = drain.as_secs(), "requests still running after the drain period; stopping anyway");
            Ok(())
        }
    }
}
