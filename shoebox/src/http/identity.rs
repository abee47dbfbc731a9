//! The extractors that ask the host who is signed in ([`Host::viewer`](super::Host::viewer))
//! and check what each route needs: someone signed in, a request that really came from the
//! app's own page ([`Csrf`]).

use std::marker::PhantomData;

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;

use super::Host;
use super::error::{ApiError, AppError, PageError, remember_chrome};
use super::viewer::{Csrf, Viewer};
use crate::domain::PhotoId;

/// The header the upload page's script sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The viewer, if the host says someone is signed in. Asked once per request.
#[derive(Debug, Clone)]
pub struct MaybeViewer(pub Option<Viewer>);

/// The answer, kept for the other extractors of the same request.
#[derive(Clone)]
struct Asked(Option<Viewer>);

impl<S: Host> FromRequestParts<S> for MaybeViewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(Asked(v)) = parts.extensions.get::<Asked>() {
            return Ok(Self(v.clone()));
        }
        let viewer = state.viewer(parts).await.map_err(AppError::Identity)?;
        remember_chrome(state.page_chrome(viewer.as_ref()));
        parts.extensions.insert(Asked(viewer.clone()));
        Ok(Self(viewer))
    }
}

/// A signed-in viewer, for pages: anyone else is sent to the host's login page (or told to
/// log in, when the host has none).
#[derive(Debug, Clone)]
pub struct PageViewer(pub Viewer);

impl<S: Host> FromRequestParts<S> for PageViewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let MaybeViewer(viewer) = MaybeViewer::from_request_parts(parts, state).await.map_err(|e| PageError(e.0))?;
        match viewer {
            Some(v) => Ok(Self(v)),
            None => Err(PageError(AppError::Unauthenticated { login: state.login_url() })),
        }
    }
}

/// A signed-in viewer whose page form carried what [`Csrf`] asks: what every state-changing
/// page form (save, delete) needs. Takes the body, so it comes last.
#[derive(Debug, Clone)]
pub struct FormViewer(pub Viewer);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<S: Host> FromRequest<S> for FormViewer {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let PageViewer(viewer) = PageViewer::from_request_parts(&mut parts, state).await?;
        let origin = state.shoebox().origin(&parts.headers);
        let headers = parts.headers.clone();
        let req = Request::from_parts(parts, body);
        // No form at all is as forged as a wrong token.
        let Form(field) = Form::<CsrfField>::from_request(req, state).await.map_err(|_| AppError::Csrf)?;
        check(&viewer, Some(&field.csrf), &headers, origin.as_deref())?;
        Ok(Self(viewer))
    }
}

/// A signed-in viewer whose API call carried what [`Csrf`] asks (`X-CSRF-Token`): what every
/// state-changing API call needs.
#[derive(Debug, Clone)]
pub struct ApiViewer(pub Viewer);

impl<S: Host> FromRequestParts<S> for ApiViewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let MaybeViewer(viewer) = MaybeViewer::from_request_parts(parts, state).await?;
        let viewer = viewer.ok_or(AppError::Unauthenticated { login: None })?;
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        check(&viewer, sent, &parts.headers, state.shoebox().origin(&parts.headers).as_deref())?;
        Ok(Self(viewer))
    }
}

/// Whether a state-changing request from `viewer` is their own: the token it `sent` (form field
/// or header), or where its headers say it comes from.
fn check(viewer: &Viewer, sent: Option<&str>, headers: &HeaderMap, origin: Option<&str>) -> Result<(), AppError> {
    match &viewer.csrf {
        Csrf::NotNeeded => Ok(()),
        Csrf::Token(expected) => match sent {
            Some(s) if !s.is_empty() && constant_time_eq(s.as_bytes(), expected.as_bytes()) => Ok(()),
            _ => Err(AppError::Csrf),
        },
        Csrf::SameOrigin => {
            let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
            let sent_origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
            let same = match (fetch_site, sent_origin) {
                (Some(site), _) => site == "same-origin",
                (None, Some(o)) => origin.is_some_and(|mine| mine == o),
                (None, None) => false,
            };
            if same { Ok(()) } else { Err(AppError::Csrf) }
        }
    }
}

/// Comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `{id}` of a photo route, parsed. Anything that is not a photo id is a missing photo,
/// answered in the handler's style `E` (a page or JSON).
#[derive(Debug, Clone, Copy)]
pub struct PhotoIdParam<E = ApiError>(PhotoId, PhantomData<E>);

impl<E> PhotoIdParam<E> {
    /// The id.
    pub fn id(&self) -> PhotoId {
        self.0
    }
}

impl<S, E> FromRequestParts<S> for PhotoIdParam<E>
where
    S: Send + Sync,
    E: From<AppError> + IntoResponse + Send,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| E::from(AppError::NotFound))?;
        let raw = params.iter().find(|(name, _)| *name == "id").map(|(_, v)| v);
        match raw.and_then(|v| v.parse().ok()) {
            Some(id) => Ok(Self(id, PhantomData)),
            None => Err(E::from(AppError::NotFound)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserId;
    use axum::http::HeaderValue;

    fn viewer(csrf: Csrf) -> Viewer {
        Viewer { id: UserId::from(1_i64), name: None, csrf }
    }

    #[test]
    fn debug_output_never_shows_the_csrf_token() {
        let text = format!("{:?}", viewer(Csrf::Token("csrf-secret-value".into())).named("ann"));
        assert!(text.contains("ann"));
        assert!(!text.contains("secret-value"), "{text}");
    }

    #[test]
    fn tokens_must_match_exactly() {
        let v = viewer(Csrf::Token("abc".into()));
        let h = HeaderMap::new();
        assert!(check(&v, Some("abc"), &h, None).is_ok());
        for bad in [None, Some(""), Some("ab"), Some("abcd"), Some("ABC")] {
            assert!(check(&v, bad, &h, None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn same_origin_viewers_need_the_browser_to_say_so() {
        let v = viewer(Csrf::SameOrigin);
        let with = |name: &'static str, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            h
        };
        let mine = Some("https://app.example");
        assert!(check(&v, None, &with("sec-fetch-site", "same-origin"), mine).is_ok());
        assert!(check(&v, None, &with("origin", "https://app.example"), mine).is_ok());
        assert!(check(&v, None, &with("sec-fetch-site", "cross-site"), mine).is_err());
        assert!(check(&v, None, &with("origin", "https://evil.example"), mine).is_err());
        assert!(check(&v, None, &HeaderMap::new(), mine).is_err(), "saying nothing is refused");
        assert!(check(&viewer(Csrf::NotNeeded), None, &HeaderMap::new(), mine).is_ok());
    }
}
