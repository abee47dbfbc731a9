//! The pages' data. Templates live in `templates/` and are compiled in by askama, which
//! escapes every value.

use askama::Template;

/// The layout's view of who is signed in.
#[derive(Clone)]
pub struct Viewer {
    pub email: String,
    pub csrf: String,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer").field("email", &self.email).field("csrf", &crate::domain::Redacted).finish()
    }
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    pub user: Option<Viewer>,
    pub groups: Vec<KindGroup>,
    pub kinds: Vec<KindLink>,
}

#[derive(Debug, Clone)]
pub struct KindLink {
    pub name: String,
    pub label: String,
}

pub struct KindGroup {
    pub label: String,
    pub kind: String,
    pub private: bool,
    pub photos: Vec<PhotoCard>,
}

pub struct PhotoCard {
    pub id: String,
    pub src: String,
    /// The same photo at its other widths, for high-density screens.
    pub srcset: String,
    pub alt: String,
    pub state: String,
}

#[derive(Template)]
#[template(path = "upload.html")]
pub struct UploadPage {
    pub user: Option<Viewer>,
    pub kind: String,
    pub kind_label: String,
    pub private: bool,
    pub accept: String,
    pub max_bytes: u64,
    pub max_human: String,
    pub form_url: String,
    pub fields: Vec<(String, String)>,
    pub expires_at: String,
    pub minutes_valid: u64,
    /// Photos whose longer side is above this are shrunk in the browser before upload.
    pub client_max_edge: u32,
}

#[derive(Template)]
#[template(path = "photo.html")]
pub struct PhotoPage {
    pub user: Option<Viewer>,
    pub id: String,
    pub kind_label: String,
    pub state: String,
    /// The `display` variant.
    pub src: Option<String>,
    /// The full-size original.
    pub original: Option<String>,
    pub width: i64,
    pub height: i64,
    pub size: String,
    pub image_type: String,
    pub created_at: String,
    pub keep_until: Option<String>,
    pub deleted_reason: Option<String>,
    pub can_save: bool,
    pub can_delete: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub user: Option<Viewer>,
    /// `signup` or `login`.
    pub mode: &'static str,
    pub form_csrf: String,
    pub email: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub user: Option<Viewer>,
    pub status: u16,
    pub message: String,
}
