//! HTTP: routers a host nests in its own `Router`, the extractors they use, the optional
//! layers, and error mapping.
//!
//! A host implements [`Host`] on its own state (how to reach its [`Shoebox`], who is signed in),
//! then nests the routers at the service's base path:
//!
//! ```no_run
//! use axum::Router;
//! use axum::http::request::Parts;
//! use shoebox::http::{Host, IdentityError, Viewer};
//! use shoebox::{Shoebox, UserId};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     shoebox: Shoebox,
//! }
//!
//! impl Host for AppState {
//!     fn shoebox(&self) -> &Shoebox {
//!         &self.shoebox
//!     }
//!     async fn viewer(&self, request: &mut Parts) -> Result<Option<Viewer>, IdentityError> {
//!         // The host's own login: here, a header its proxy sets.
//!         let id = request.headers.get("x-user").and_then(|v| v.to_str().ok()).and_then(|v| UserId::new(v).ok());
//!         Ok(id.map(Viewer::same_origin))
//!     }
//! }
//!
//! # fn app(state: AppState) -> Router {
//! let media = state.shoebox.base_path().to_owned(); // "/media", as built
//! let app = Router::new().nest(&media, shoebox::http::router::<AppState>());
//! shoebox::http::layers::security(app, &state.shoebox).with_state(state)
//! # }
//! ```
//!
//! Handlers parse input into domain types, call one operation of the layer below, and turn the
//! result into a response; statuses are chosen in [`error`] only.

mod api;
pub mod error;
mod fallback;
mod health;
mod identity;
pub mod layers;
mod pages;
mod photos;
mod serve;
mod templates;
mod viewer;

use std::future::Future;

use axum::Router;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

pub use error::{ApiError, AppError, IdentityError, PageError};
pub use fallback::{method_not_allowed, not_found};
pub use identity::{ApiViewer, CSRF_HEADER, FormViewer, MaybeViewer, PageViewer, PhotoIdParam};
pub use serve::{serve, without_nagle};
pub use templates::{NavButton, NavLink, PageChrome};
pub use viewer::{Csrf, Viewer};

use crate::app::Shoebox;

/// What a host's state must say for Shoebox's routers to run on it: where the service is, and
/// who is signed in by the host's own login.
pub trait Host: Clone + Send + Sync + 'static {
    /// The service.
    fn shoebox(&self) -> &Shoebox;

    /// Who is making this request, by the host's own login (its session cookie, its
    /// `axum-login` session, a bearer token); `None` for nobody. Asked at most once per
    /// request. An `Err` (the session store is down) is answered 503.
    fn viewer(&self, request: &mut Parts) -> impl Future<Output = Result<Option<Viewer>, IdentityError>> + Send;

    /// Where Shoebox's pages send someone who must log in first; `None` answers 401 with a
    /// page saying so.
    fn login_url(&self) -> Option<String> {
        None
    }

    /// What the header of Shoebox's pages shows for `viewer`: the host's links and buttons
    /// (log out, its own pages). Default: the viewer's name and a link to their photos.
    fn page_chrome(&self, viewer: Option<&Viewer>) -> PageChrome {
        PageChrome::plain(self.shoebox().base_path(), viewer)
    }
}

/// Every Shoebox route, to nest at the service's base path: [`api`], [`photos`], [`pages`] and
/// [`health`], with [`not_found`] for every other path under it. No layers: add
/// [`layers::security`] and [`layers::timeout`] as the host wants.
///
/// Each router answers a wrong method with [`method_not_allowed`] (405, `Allow`, a readable
/// body). Merged at the root of a host's router, the fallback also answers the host's own
/// unknown paths with Shoebox's error page; nested, it answers those under the base path.
pub fn router<S: Host>() -> Router<S> {
    Router::new()
        .merge(api::<S>())
        .merge(photos::<S>())
        .merge(pages::<S>())
        .merge(health::<S>())
        .fallback(not_found::<S>)
}

/// The JSON API: `POST /api/uploads`, `POST /api/uploads/{id}/complete`,
/// `POST /api/photos/{id}/attach`, `POST /api/photos/{id}/release`,
/// `GET` and `DELETE /api/photos/{id}`.
pub fn api<S: Host>() -> Router<S> {
    api::router().method_not_allowed_fallback(method_not_allowed::<S>)
}

/// Serving photos: `GET /photos/{id}/{variant}` redirects to a public bucket (or CDN) and
/// streams a private one after the kind's check.
pub fn photos<S: Host>() -> Router<S> {
    photos::router().method_not_allowed_fallback(method_not_allowed::<S>)
}

/// The optional pages: the viewer's photos (`/`), the upload page (`/upload?kind=K`), one
/// photo (`/photos/{id}`), the no-JavaScript upload return, and their script and style.
pub fn pages<S: Host>() -> Router<S> {
    pages::router().method_not_allowed_fallback(method_not_allowed::<S>)
}

/// `GET /healthz`: the database and every bucket, checked.
pub fn health<S: Host>() -> Router<S> {
    health::router().method_not_allowed_fallback(method_not_allowed::<S>)
}

impl Shoebox {
    /// The app's origin as the browser sees it, for redirects S3 sends people back through and
    /// for checking `Origin`: the public URL, else the request's `Host` if it is an allowed one
    /// (`None` otherwise: a forged `Host` must not choose where a form redirects to).
    pub fn origin(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(u) = &self.web.public_url {
            return Some(u.origin().ascii_serialization());
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok())?.to_ascii_lowercase();
        let name = match host.rsplit_once(':') {
            // A port, unless the colon is inside an IPv6 literal.
            Some((name, port)) if !port.contains(']') && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host.as_str(),
        };
        if !self.web.allowed_hosts.iter().any(|h| h == name) {
            return None;
        }
        // Heroku's router terminates TLS and says so in X-Forwarded-Proto.
        let proto = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
            Some("https") => "https",
            _ => "http",
        };
        Some(format!("{proto}://{host}"))
    }

    /// Whether the browser reached the app over HTTPS: cookies should then be `Secure`.
    pub fn is_https(&self, headers: &HeaderMap) -> bool {
        self.origin(headers).is_some_and(|o| o.starts_with("https://"))
    }
}
