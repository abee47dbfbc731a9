//! Who is asking: the session cookie, the signed-in user, and CSRF checks.
//!
//! Signed-in requests carry the session's CSRF token, in the `csrf` form field or the
//! `X-CSRF-Token` header. The login and sign-up forms, which have no session yet, use a
//! double-submit cookie. Cookies are `HttpOnly`, `SameSite=Lax`, and `Secure` over HTTPS.

use std::marker::PhantomData;

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use subtle_eq::constant_time_eq;

use super::AppState;
use super::error::{ApiError, AppError, PageError};
use crate::accounts;
use crate::domain::{PhotoId, Redacted, UserId};

pub const SESSION_COOKIE: &str = "shoebox_session";
pub const FORM_CSRF_COOKIE: &str = "shoebox_form_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The signed-in user, if any.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<CurrentUser>);

/// A signed-in user and their session's CSRF token.
#[derive(Clone)]
pub struct CurrentUser {
    pub id: UserId,
    pub email: String,
    pub csrf: String,
    pub session_token: String,
}

impl std::fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("csrf", &Redacted)
            .field("session_token", &Redacted)
            .finish()
    }
}

impl MaybeUser {
    pub fn require(self) -> Result<CurrentUser, AppError> {
        self.0.ok_or(AppError::Unauthenticated)
    }
}

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
            return Ok(Self(None));
        };
        // Tokens are 32 hex characters; anything else cannot match and is not worth a query.
        if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Self(None));
        }
        let session = accounts::session(&state.app, &token).await?;
        let user =
            session.map(|s| CurrentUser { id: s.user_id, email: s.email, csrf: s.csrf_token, session_token: token });
        if let Some(u) = &user {
            super::error::remember_signed_in(super::pages::viewer(u));
        }
        Ok(Self(user))
    }
}

/// A signed-in user, for pages: anyone else is sent to the login page.
#[derive(Debug, Clone)]
pub struct PageUser(pub CurrentUser);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let MaybeUser(user) = MaybeUser::from_request_parts(parts, state).await.map_err(|e| PageError(e.0))?;
        Ok(Self(user.ok_or(AppError::Unauthenticated)?))
    }
}

/// A signed-in user whose page form carried the session's CSRF token in its `csrf` field: what
/// every state-changing page form (save, delete, log out) needs. Takes the body, so it comes last.
#[derive(Debug, Clone)]
pub struct FormUser(pub CurrentUser);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl FromRequest<AppState> for FormUser {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let PageUser(user) = PageUser::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        // No form at all is as forged as a wrong token.
        let Form(field) = Form::<CsrfField>::from_request(req, state).await.map_err(|_| AppError::Csrf)?;
        user.check_csrf(Some(&field.csrf))?;
        Ok(Self(user))
    }
}

/// A signed-in user whose API call carries the session's CSRF token in `X-CSRF-Token`: what
/// every state-changing API call needs.
#[derive(Debug, Clone)]
pub struct ApiUser(pub CurrentUser);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = MaybeUser::from_request_parts(parts, state).await?.require()?;
        user.check_csrf_header(&parts.headers)?;
        Ok(Self(user))
    }
}

/// The `{id}` of a photo route, parsed. Anything that is not a photo id is a missing photo,
/// answered in the handler's style `E` (a page or JSON).
#[derive(Debug, Clone, Copy)]
pub struct PhotoIdParam<E = ApiError>(pub PhotoId, PhantomData<E>);

impl<E> PhotoIdParam<E> {
    pub fn id(&self) -> PhotoId {
        self.0
    }
}

impl<E> FromRequestParts<AppState> for PhotoIdParam<E>
where
    E: From<AppError> + IntoResponse + Send,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| E::from(AppError::NotFound))?;
        let raw = params.iter().find(|(name, _)| *name == "id").map(|(_, v)| v);
        match raw.and_then(|v| v.parse().ok()) {
            Some(id) => Ok(Self(id, PhantomData)),
            None => Err(E::from(AppError::NotFound)),
        }
    }
}

impl CurrentUser {
    /// Check the token a form or script sent against this session's.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), AppError> {
        match sent {
            Some(s) if constant_time_eq(s.as_bytes(), self.csrf.as_bytes()) => Ok(()),
            _ => Err(AppError::Csrf),
        }
    }

    /// Check the `X-CSRF-Token` header of an API call.
    pub fn check_csrf_header(&self, headers: &HeaderMap) -> Result<(), AppError> {
        self.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))
    }
}

/// The double-submit check for forms shown before anyone is signed in.
pub fn check_form_csrf(jar: &CookieJar, sent: &str) -> Result<(), AppError> {
    match jar.get(FORM_CSRF_COOKIE) {
        Some(c) if !sent.is_empty() && constant_time_eq(c.value().as_bytes(), sent.as_bytes()) => Ok(()),
        _ => Err(AppError::Csrf),
    }
}

/// A cookie with the attributes every Shoebox cookie has.
pub fn cookie(name: &'static str, value: String, secure: bool, max_age_secs: Option<i64>) -> Cookie<'static> {
    let mut c = Cookie::build((name, value)).path("/").http_only(true).same_site(SameSite::Lax).secure(secure).build();
    if let Some(secs) = max_age_secs {
        c.set_max_age(time::Duration::seconds(secs));
    }
    c
}

/// Comparison whose time does not depend on where the inputs differ.
mod subtle_eq {
    pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_session_or_csrf_token() {
        let user = CurrentUser {
            id: UserId::new(),
            email: "ann@example.com".into(),
            csrf: "csrf-secret-value".into(),
            session_token: "session-secret-value".into(),
        };
        let text = format!("{user:?} {:?}", MaybeUser(Some(user.clone())));
        assert!(text.contains("ann@example.com"));
        assert!(!text.contains("secret-value"), "{text}");
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let user =
            CurrentUser { id: UserId::new(), email: String::new(), csrf: "abc".into(), session_token: String::new() };
        assert!(user.check_csrf(Some("abc")).is_ok());
        for bad in [None, Some(""), Some("ab"), Some("abcd"), Some("ABC")] {
            assert!(user.check_csrf(bad).is_err(), "{bad:?}");
        }
    }
}
