//! Who is asking: the host says, through [`Host::viewer`](super::Host::viewer), and Shoebox's
//! extractors check what each route needs (someone signed in, a request that really came from
//! the app's own page).
//!
//! Shoebox has no accounts of its own: a viewer is the host's user, known by the host's id.
//! Because Shoebox's state-changing routes are reached with the host's cookies, each viewer
//! says how a forged cross-site request is told apart ([`Csrf`]).

use std::marker::PhantomData;

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;

use super::Host;
use super::error::{ApiError, AppError, PageError, remember_chrome};
use crate::domain::{PhotoId, Redacted, UserId};

/// The header the upload page's script sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A signed-in person, as the host knows them.
#[derive(Clone)]
pub struct Viewer {
    /// The host's id for them: what photos record as their uploader.
    pub id: UserId,
    /// What the pages' header calls them (an email, a name); `None` shows nothing.
    pub name: Option<String>,
    /// How a state-changing request from them is checked for forgery.
    pub csrf: Csrf,
}

impl Viewer {
    /// A viewer whose requests carry `token` (a per-session secret the host keeps): Shoebox's
    /// pages write it into their forms and the upload script sends it in `X-CSRF-Token`.
    pub fn with_token(id: UserId, token: impl Into<String>) -> Self {
        Self { id, name: None, csrf: Csrf::Token(token.into()) }
    }

    /// A viewer whose state-changing requests must come from the app's own origin (checked on
    /// `Origin` and `Sec-Fetch-Site`): for hosts with cookie sessions and no CSRF token.
    pub fn same_origin(id: UserId) -> Self {
        Self { id, name: None, csrf: Csrf::SameOrigin }
    }

    /// The same viewer, with a name for the pages' header.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The token pages write into their forms, if this viewer has one.
    pub fn csrf_token(&self) -> Option<&str> {
        match &self.csrf {
            Csrf::Token(t) => Some(t),
            Csrf::SameOrigin | Csrf::NotNeeded => None,
        }
    }
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer").field("id", &self.id).field("name", &self.name).field("csrf", &self.csrf).finish()
    }
}

/// How Shoebox tells a viewer's own state-changing requests from forged cross-site ones.
#[derive(Clone, PartialEq, Eq)]
pub enum Csrf {
    /// Each request must carry this token (form field `csrf` or header `X-CSRF-Token`).
    Token(String),
    /// Each request must say it comes from the app's origin (`Origin`, or `Sec-Fetch-Site:
    /// same-origin`); a request saying neither is refused. Every current browser sends them.
    SameOrigin,
    /// The host authenticates with something a browser never attaches by itself (a bearer
    /// token in a header), so a cross-site request cannot carry it: nothing to check.
    NotNeeded,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.debug_tuple("Token").field(&Redacted).finish(),
            Self::SameOrigin => f.write_str("SameOrigin"),
            Self::NotNeeded => f.write_str("NotNeeded"),
        }
    }
}

/// Why the host could not say who is asking (its session store is down): answered 503.
#[derive(Debug, thiserror::Error)]
#[error("the application could not look up who is signed in: {0}")]
pub struct IdentityError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

impl IdentityError {
    /// Wrap the host's own error.
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(e.into())
    }
}

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
