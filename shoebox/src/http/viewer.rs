//! Who is asking, as the host says: a [`Viewer`], and how their own state-changing requests are
//! told from forged cross-site ones ([`Csrf`]).
//!
//! Shoebox has no accounts of its own: a viewer is the host's user, known by the host's id.
//! Because Shoebox's state-changing routes are reached with the host's cookies, each viewer
//! says how a forged request is told apart.

use crate::domain::{Redacted, UserId};

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
