//! Sign up, log in, log out (here or everywhere).

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use askama::Template;
use shoebox::http::{AppError, FormViewer, Host as _, IdentityError, MaybeViewer, PageChrome, PageError};
use shoebox::now_millis;

use super::{AppState, FORM_CSRF_COOKIE, SESSION_COOKIE, cookie, session_token};
use crate::accounts::{self, AccountError, AccountInputError, Email, NewSession, Password, StoreError, random_token};
use crate::settings::TrustProxy;

/// The sign-up and login forms, in the library's page layout.
#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: PageChrome,
    /// `signup` or `login`.
    mode: &'static str,
    form_csrf: String,
    email: String,
    error: Option<String>,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", get(signup_page).post(signup))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/logout/everywhere", post(logout_everywhere))
}

/// The client's address, for the login and sign-up limits: the socket peer, or behind Heroku's
/// router the last `X-Forwarded-For` entry (the router appends what it saw; earlier entries are
/// whatever the client sent, so believing the first would let anyone pick their address).
/// `None` when neither is known (a server started without connection info).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(Self(client_address(state.accounts.limits.trust_proxy, &parts.headers, peer)))
    }
}

fn client_address(trust: TrustProxy, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
    match trust {
        TrustProxy::None => peer,
        TrustProxy::Heroku => {
            // Several headers are joined in order, so the router's entry is still the last one.
            let last = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|a| a.trim().parse().ok());
            last.or(peer)
        }
    }
}

/// The double-submit check for forms shown before anyone is signed in.
fn check_form_csrf(jar: &CookieJar, sent: &str) -> Result<(), AppError> {
    match jar.get(FORM_CSRF_COOKIE) {
        Some(c) if !sent.is_empty() && c.value().len() == sent.len() && constant_time_eq(c.value(), sent) => Ok(()),
        _ => Err(AppError::Csrf),
    }
}

/// Comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
struct AccountForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

async fn signup_page(
    state: State<AppState>,
    user: MaybeViewer,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PageError> {
    account_page("signup", state, user, headers, jar).await
}

async fn login_page(
    state: State<AppState>,
    user: MaybeViewer,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PageError> {
    account_page("login", state, user, headers, jar).await
}

async fn account_page(
    mode: &'static str,
    State(state): State<AppState>,
    user: MaybeViewer,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PageError> {
    if user.0.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    show_form(&state, &headers, jar, mode, String::new(), None, StatusCode::OK)
}

/// The account form with a fresh double-submit CSRF token, and an error when there is one.
fn show_form(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
    mode: &'static str,
    email: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let token = random_token();
    let jar = jar.add(cookie(FORM_CSRF_COOKIE, token.clone(), state.shoebox.is_https(headers), None));
    let page = AccountPage { chrome: state.page_chrome(None), mode, form_csrf: token, email, error };
    let body = page.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok((status, jar, Html(body)).into_response())
}

async fn signup(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(|_| AppError::Csrf)?;
    check_form_csrf(&jar, &form.csrf)?;
    let parsed = Email::parse(&form.email).and_then(|e| Ok((e, Password::parse(form.password)?)));
    let (email, password) = match parsed {
        Ok(v) => v,
        Err(e) => return input_error(&state, &headers, jar, "signup", form.email, &e),
    };
    match accounts::sign_up(&state.accounts, address, &email, password).await {
        Ok(session) => Ok(signed_in(&state, &headers, jar, &session)),
        Err(e) => form_error(&state, &headers, jar, "signup", form.email, e),
    }
}

async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Form(form) = form.map_err(|_| AppError::Csrf)?;
    check_form_csrf(&jar, &form.csrf)?;
    let parsed = Email::parse(&form.email).and_then(|e| Ok((e, Password::parse(form.password)?)));
    let result = match parsed {
        // A password that could never have been set cannot match: same answer as a wrong one.
        Err(_) => Err(AccountError::BadCredentials),
        Ok((email, password)) => accounts::log_in(&state.accounts, address, &email, password).await,
    };
    match result {
        Ok(session) => Ok(signed_in(&state, &headers, jar, &session)),
        Err(e) => form_error(&state, &headers, jar, "login", form.email, e),
    }
}

/// The form again with what went wrong (taken address, wrong password, too many attempts,
/// with `Retry-After`); anything else is a server error page.
fn form_error(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
    mode: &'static str,
    email: String,
    e: AccountError,
) -> Result<Response, PageError> {
    let status = match e {
        AccountError::EmailTaken => StatusCode::CONFLICT,
        AccountError::BadCredentials => StatusCode::UNAUTHORIZED,
        AccountError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        AccountError::Store(s) => return Err(store_failed(s).into()),
        AccountError::Hash(_) => return Err(AppError::Internal(e.into()).into()),
    };
    let mut res = show_form(state, headers, jar, mode, email, Some(e.to_string()), status)?;
    if let AccountError::RateLimited { retry_after_secs } = e
        && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
    {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Ok(res)
}

/// The account tables could not be read or written: a database that is down or restarting is
/// an outage (503 with `Retry-After`, as for Shoebox's own tables; the account store is this
/// app's identity store, hence [`IdentityError`]), anything else a bug.
fn store_failed(e: StoreError) -> AppError {
    if e.is_outage() { AppError::Identity(IdentityError::new(e)) } else { AppError::Internal(e.into()) }
}

fn input_error(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
    mode: &'static str,
    email: String,
    e: &AccountInputError,
) -> Result<Response, PageError> {
    show_form(state, headers, jar, mode, email, Some(e.to_string()), StatusCode::BAD_REQUEST)
}

fn signed_in(state: &AppState, headers: &HeaderMap, jar: CookieJar, session: &NewSession) -> Response {
    let max_age = (session.expires_at - now_millis()) / 1000;
    let jar = jar.remove(cookie(FORM_CSRF_COOKIE, String::new(), false, None)).add(cookie(
        SESSION_COOKIE,
        session.token.clone(),
        state.shoebox.is_https(headers),
        Some(max_age),
    ));
    (jar, Redirect::to("/")).into_response()
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    FormViewer(_): FormViewer,
) -> Result<Response, PageError> {
    if let Some(token) = session_token(&jar) {
        accounts::log_out(&state.accounts, &token).await.map_err(store_failed)?;
    }
    let jar = jar.remove(cookie(SESSION_COOKIE, String::new(), false, None));
    Ok((jar, Redirect::to("/")).into_response())
}

/// End every session of the signed-in user, this one included, and go home.
async fn logout_everywhere(
    State(state): State<AppState>,
    jar: CookieJar,
    FormViewer(user): FormViewer,
) -> Result<Response, PageError> {
    let ended = accounts::log_out_everywhere(&state.accounts, &user.id).await.map_err(store_failed)?;
    tracing::info!(user = %user.id, sessions = ended, "logged out everywhere");
    let jar = jar.remove(cookie(SESSION_COOKIE, String::new(), false, None));
    Ok((jar, Redirect::to("/")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).expect("ascii"));
        }
        h
    }

    #[test]
    fn behind_heroku_the_last_forwarded_entry_is_the_client() {
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        let h = xff(&["6.6.6.6, 203.0.113.9"]);
        assert_eq!(client_address(TrustProxy::Heroku, &h, peer), Some(IpAddr::from([203, 0, 113, 9])));
        let h = xff(&["6.6.6.6", "203.0.113.9"]);
        assert_eq!(client_address(TrustProxy::Heroku, &h, peer), Some(IpAddr::from([203, 0, 113, 9])));
        assert_eq!(client_address(TrustProxy::Heroku, &xff(&[]), peer), peer, "no header: the peer");
        assert_eq!(client_address(TrustProxy::Heroku, &xff(&["1.2.3.4, junk"]), peer), peer, "unparsable");
    }

    #[test]
    fn without_trust_the_header_is_ignored() {
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        assert_eq!(client_address(TrustProxy::None, &xff(&["203.0.113.9"]), peer), peer);
        assert_eq!(client_address(TrustProxy::None, &xff(&["203.0.113.9"]), None), None);
    }
}
