//! The pages' data. Templates live in `templates/` and are compiled in by askama, which
//! escapes every value.

use askama::Template;

use super::viewer::Viewer;

/// What the header of every Shoebox page shows: the host's brand link, who is signed in, and
/// the host's own links and buttons. Hosts build it in [`Host::page_chrome`](super::Host::page_chrome).
#[derive(Debug, Clone, Default)]
pub struct PageChrome {
    /// The base path of Shoebox's routes, for its own links and static files.
    pub base: String,
    /// What the brand link says (`Shoebox`) and where it goes.
    pub brand: NavLink,
    /// Who is signed in, as the header names them.
    pub viewer_name: Option<String>,
    /// The CSRF token pages write into their forms and the upload script sends, when the
    /// viewer has one.
    pub csrf: Option<String>,
    /// Links after the name (the host's own pages, or "Log in").
    pub links: Vec<NavLink>,
    /// Buttons that post a form (log out), each with the viewer's CSRF token.
    pub buttons: Vec<NavButton>,
}

/// A link in the page header.
#[derive(Debug, Clone, Default)]
pub struct NavLink {
    /// What it says.
    pub label: String,
    /// Where it goes.
    pub href: String,
}

/// A button in the page header that posts a form (with the viewer's CSRF token).
#[derive(Debug, Clone, Default)]
pub struct NavButton {
    /// What it says.
    pub label: String,
    /// Where the form posts.
    pub action: String,
    /// Its tooltip.
    pub title: Option<String>,
}

impl PageChrome {
    /// A header with Shoebox's name linking to the viewer's photos, and the viewer's name.
    pub fn plain(base: &str, viewer: Option<&Viewer>) -> Self {
        Self {
            base: base.to_owned(),
            brand: NavLink { label: "Shoebox".into(), href: crate::app::home_or(base, "/") },
            viewer_name: viewer.and_then(|v| v.name.clone()),
            csrf: viewer.and_then(|v| v.csrf_token().map(str::to_owned)),
            links: Vec::new(),
            buttons: Vec::new(),
        }
    }

    /// The same header with a link.
    #[must_use]
    pub fn link(mut self, label: &str, href: &str) -> Self {
        self.links.push(NavLink { label: label.to_owned(), href: href.to_owned() });
        self
    }

    /// The same header with a button posting to `action`.
    #[must_use]
    pub fn button(mut self, label: &str, action: &str, title: Option<&str>) -> Self {
        self.buttons.push(NavButton {
            label: label.to_owned(),
            action: action.to_owned(),
            title: title.map(str::to_owned),
        });
        self
    }
}

#[derive(Template)]
#[template(path = "index.html")]
pub(crate) struct IndexPage {
    pub chrome: PageChrome,
    pub signed_in: bool,
    pub groups: Vec<KindGroup>,
    pub kinds: Vec<KindLink>,
}

#[derive(Debug, Clone)]
pub(crate) struct KindLink {
    pub name: String,
    pub label: String,
}

pub(crate) struct KindGroup {
    pub label: String,
    pub kind: String,
    pub private: bool,
    pub photos: Vec<PhotoCard>,
}

pub(crate) struct PhotoCard {
    pub id: String,
    pub src: String,
    /// The same photo at its other widths, for high-density screens.
    pub srcset: String,
    /// The same `srcset` in WebP, for a `<source>` that browsers which accept it choose; the
    /// `<img>` keeps the JPEG for those that do not.
    pub webp_srcset: Option<String>,
    /// The same in AVIF, once made: listed before the WebP, as browsers take the
    /// first `<source>` whose type they accept.
    pub avif_srcset: Option<String>,
    pub alt: String,
    pub state: String,
    /// The verified size, upright: `<img width height>` give the tile its aspect ratio before
    /// the image arrives.
    pub width: i64,
    pub height: i64,
    /// The placeholder as a `data:` URL, shown under the image until it has loaded.
    pub placeholder: Option<String>,
}

#[derive(Template)]
#[template(path = "upload.html")]
pub(crate) struct UploadPage {
    pub chrome: PageChrome,
    pub kind: String,
    pub kind_label: String,
    pub private: bool,
    pub accept: String,
    pub max_bytes: u64,
    pub max_human: String,
    /// How much of the kind's quota the viewer holds ("3.2 MB of 50 MB used"), when it has one.
    pub quota: Option<String>,
    pub form_url: String,
    pub fields: Vec<(String, String)>,
    pub expires_at: String,
    pub minutes_valid: u64,
    /// Photos whose longer side is above this are shrunk in the browser before upload.
    pub client_max_edge: u32,
    /// Whether the page's script takes several files at once: not for a kind that keeps one
    /// photo per person, where all but the last saved would be deleted.
    pub multiple: bool,
}

#[derive(Template)]
#[template(path = "photo.html")]
pub(crate) struct PhotoPage {
    pub chrome: PageChrome,
    pub id: String,
    pub kind_label: String,
    pub state: String,
    /// The `display` variant.
    pub src: Option<String>,
    /// Its WebP twin, when the kind makes one.
    pub webp_src: Option<String>,
    /// Its AVIF twin, once made (never before: its route does not make it).
    pub avif_src: Option<String>,
    /// The full-size original.
    pub original: Option<String>,
    /// The verified size, upright (0 when unknown): the image's `width` and `height`, so the
    /// page does not move when it arrives.
    pub width: i64,
    pub height: i64,
    /// The placeholder as a `data:` URL, shown under the image until it has loaded.
    pub placeholder: Option<String>,
    pub size: String,
    pub image_type: String,
    pub created_at: String,
    pub keep_until: Option<String>,
    pub deleted_reason: Option<String>,
    pub can_save: bool,
    pub can_delete: bool,
}

#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub chrome: PageChrome,
    pub status: u16,
    pub message: String,
}
