//! The reference app's web side: its state, how it tells Shoebox who is signed in (its own
//! session cookie), its account pages, and the whole router with every layer.
//!
//! Everything Shoebox-related here goes through the library's public API, as any host's would.

pub mod account_pages;

use std::time::Duration;

use axum::Router;
use axum::http::request::Parts;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use shoebox::Shoebox;
use shoebox::http::{Host, IdentityError, PageChrome, Viewer, layers};

use crate::accounts::{self, Accounts};

/// The cookie carrying the session token.
pub const SESSION_COOKIE: &str = "shoebox_session";
/// The double-submit cookie of the forms shown before anyone is signed in.
pub const FORM_CSRF_COOKIE: &str = "shoebox_form_csrf";

/// What every handler gets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub shoebox: Shoebox,
    pub accounts: Accounts,
}

impl Host for AppState {
    fn shoebox(&self) -> &Shoebox {
        &self.shoebox
    }

    /// The session behind the `shoebox_session` cookie, if it is live.
    async fn viewer(&self, request: &mut Parts) -> Result<Option<Viewer>, IdentityError> {
        let Some(token) = session_token(&CookieJar::from_headers(&request.headers)) else { return Ok(None) };
        let session = accounts::session(&self.accounts, &token).await.map_err(IdentityError::new)?;
        Ok(session.map(|s| Viewer::with_token(s.user_id, s.csrf_token).named(s.email)))
    }

    fn login_url(&self) -> Option<String> {
        Some("/login".into())
    }

    fn page_chrome(&self, viewer: Option<&Viewer>) -> PageChrome {
        let chrome = PageChrome::plain("", viewer);
        match viewer {
            Some(_) => chrome.button("Log out", "/logout", None).button(
                "Log out everywhere",
                "/logout/everywhere",
                Some("End your sessions on every device"),
            ),
            None => chrome.link("Log in", "/login").link("Sign up", "/signup"),
        }
    }
}

/// The session cookie's token, when it has the shape of one: tokens are 32 hex characters, and
/// anything else cannot match and is not worth a query.
pub fn session_token(jar: &CookieJar) -> Option<String> {
    let token = jar.get(SESSION_COOKIE)?.value();
    (token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit())).then(|| token.to_owned())
}

/// A cookie with the attributes every cookie of this app has.
pub fn cookie(name: &'static str, value: String, secure: bool, max_age_secs: Option<i64>) -> Cookie<'static> {
    let mut c = Cookie::build((name, value)).path("/").http_only(true).same_site(SameSite::Lax).secure(secure).build();
    if let Some(secs) = max_age_secs {
        c.set_max_age(time::Duration::seconds(secs));
    }
    c
}

/// The whole app: Shoebox's routes at the root and the account pages, inside the security
/// layer, a 25 s timeout (below Heroku's 30 s router limit) and request ids.
pub fn router(state: AppState) -> Router {
    router_with(state, None)
}

/// [`router`], and `GET /metrics` when `metrics` is given (inside the same layers, so scrapes
/// are logged and counted like any request).
pub fn router_with(state: AppState, metrics: Option<crate::observability::Metrics>) -> Router {
    let mut app = Router::new().merge(shoebox::http::router::<AppState>()).merge(account_pages::router());
    if let Some(m) = metrics {
        app = app.merge(m.router(state.shoebox.clone()));
    }
    // The account pages answer a wrong method as Shoebox's own routes do: 405, `Allow`, and a
    // page to read. Unknown paths get Shoebox's error page from its router's fallback.
    let app = app.method_not_allowed_fallback(shoebox::http::method_not_allowed::<AppState>);
    let app = layers::security(app, &state.shoebox).layer(layers::timeout(Duration::from_secs(25)));
    layers::request_id(app).with_state(state)
}
