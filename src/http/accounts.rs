//! Sign up, log in, log out.

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;

use super::AppState;
use super::auth::{FORM_CSRF_COOKIE, MaybeUser, SESSION_COOKIE, check_form_csrf, cookie};
use super::error::{AppError, PageError};
use super::pages::render;
use super::templates::AccountPage;
use crate::accounts::{self, AccountError, NewSession};
use crate::domain::user::AccountInputError;
use crate::domain::{Email, Password, now_millis, random_token};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signup", get(signup_page).post(signup))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
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
    user: MaybeUser,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PageError> {
    account_page("signup", state, user, headers, jar).await
}

async fn login_page(
    state: State<AppState>,
    user: MaybeUser,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, PageError> {
    account_page("login", state, user, headers, jar).await
}

async fn account_page(
    mode: &'static str,
    State(state): State<AppState>,
    user: MaybeUser,
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
    let jar = jar.add(cookie(FORM_CSRF_COOKIE, token.clone(), state.web.secure_cookies(headers), None));
    let page = render(&AccountPage { user: None, mode, form_csrf: token, email, error })?;
    Ok((status, jar, page).into_response())
}

async fn signup(
    State(state): State<AppState>,
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
    match accounts::sign_up(&state.app, &email, password).await {
        Ok(session) => Ok(signed_in(&state, &headers, jar, &session)),
        Err(e @ AccountError::EmailTaken) => {
            show_form(&state, &headers, jar, "signup", form.email, Some(e.to_string()), StatusCode::CONFLICT)
        }
        Err(e) => Err(e.into()),
    }
}

async fn login(
    State(state): State<AppState>,
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
        Ok((email, password)) => accounts::log_in(&state.app, &email, password).await,
    };
    match result {
        Ok(session) => Ok(signed_in(&state, &headers, jar, &session)),
        Err(e @ AccountError::BadCredentials) => {
            show_form(&state, &headers, jar, "login", form.email, Some(e.to_string()), StatusCode::UNAUTHORIZED)
        }
        Err(e) => Err(e.into()),
    }
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
        state.web.secure_cookies(headers),
        Some(max_age),
    ));
    (jar, Redirect::to("/")).into_response()
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    user: MaybeUser,
    jar: CookieJar,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Result<Response, PageError> {
    let user = user.require()?;
    let Form(form) = form.map_err(|_| AppError::Csrf)?;
    user.check_csrf(Some(&form.csrf))?;
    accounts::log_out(&state.app, &user.session_token).await?;
    let jar = jar.remove(cookie(SESSION_COOKIE, String::new(), false, None));
    Ok((jar, Redirect::to("/")).into_response())
}
