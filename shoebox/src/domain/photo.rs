//! A photo's row and its lifecycle.
//!
//! ```text
//! signed ──upload done + verified──▶ ready ──attached──▶ in use ──released──▶ released ──▶ deleted
//!    │                                 │                  ▲                       │  (keep-until passed
//!    │                                 │                  └──── attached again ───┘   and the kind gives
//!    └── never completed / refused ────┴── never attached ───────────────────────────▶  a reason)
//! ```
//! Every move is a conditional update in the database (`… where state = 'signed'`), so two
//! requests or two machines racing on one photo cannot both win.

use serde::Serialize;

use super::{Millis, PhotoId, UserId};
use crate::imaging::ImageType;

/// Where a photo is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhotoState {
    /// A form was issued; nothing verified is in the bucket yet.
    Signed,
    /// Uploaded and checked for real; waiting for the application to attach it.
    Ready,
    /// Attached by the application: the reason it exists.
    InUse,
    /// No longer used by the application: kept until its keep-until, then deleted when its
    /// kind gives a reason (or attached again meanwhile).
    Released,
    /// Objects gone; the row stays as a tombstone with when and why.
    Deleted,
}

impl PhotoState {
    /// The state's name in the database and the API (`in_use`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signed => "signed",
            Self::Ready => "ready",
            Self::InUse => "in_use",
            Self::Released => "released",
            Self::Deleted => "deleted",
        }
    }

    /// Verified and not deleted: a photo people can see.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Ready | Self::InUse | Self::Released)
    }

    /// The state named by [`PhotoState::as_str`]; `None` for any other text.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "signed" => Self::Signed,
            "ready" => Self::Ready,
            "in_use" => Self::InUse,
            "released" => Self::Released,
            "deleted" => Self::Deleted,
            _ => return None,
        })
    }
}

/// One photo, as Shoebox records it (a row of `shoebox_photos`). Application data about the
/// photo (who is in it, when it was taken) belongs in the host's own tables, keyed by [`Photo::id`].
#[derive(Debug, Clone)]
pub struct Photo {
    /// Its id, random: ids in URLs say nothing about how many photos exist.
    pub id: PhotoId,
    /// The name of its [`Kind`](crate::Kind).
    pub kind: String,
    /// The configured bucket name (not the S3 bucket name).
    pub bucket: String,
    /// Who uploaded it: the host's own user id.
    pub uploader: UserId,
    /// Where it is in its lifecycle.
    pub state: PhotoState,
    /// Where the browser uploads to: a prefix nobody can read anonymously, in every bucket.
    pub incoming_key: String,
    /// Where the verified photo is served from; set when it becomes ready.
    pub object_key: Option<String>,
    /// The type the client declared when it asked for the form (`None` for a form rendered into
    /// the page, whose file is chosen after the form is made).
    pub declared_type: Option<ImageType>,
    /// The type the bytes really are, sniffed when the upload was verified.
    pub image_type: Option<ImageType>,
    /// The largest upload its form allowed, in bytes.
    pub max_bytes: i64,
    /// The served original's size in bytes, once verified.
    pub byte_size: Option<i64>,
    /// The served original's width in pixels as displayed (after its EXIF orientation), once
    /// verified: what a page's `<img width>` says.
    pub width: Option<i64>,
    /// The served original's height in pixels as displayed (after its EXIF orientation), once
    /// verified.
    pub height: Option<i64>,
    /// The name the uploader's file had, made safe to show.
    pub filename: Option<String>,
    /// When its upload form stops working.
    pub form_expires_at: Millis,
    /// When its form was signed.
    pub created_at: Millis,
    /// When its upload was verified.
    pub verified_at: Option<Millis>,
    /// When it was last attached.
    pub attached_at: Option<Millis>,
    /// It is kept at least until this time; then clean-up asks its kind.
    pub keep_until: Option<Millis>,
    /// When it was deleted (a tombstone).
    pub deleted_at: Option<Millis>,
    /// Why it was deleted (a tombstone).
    pub deleted_reason: Option<String>,
    /// Its placeholder: the [ThumbHash](crate::imaging::placeholder_hash) of the verified image, about
    /// 25 bytes, that pages show until the image has loaded. `None` before verification, and
    /// for a photo verified before placeholders existed until `resize-all` fills it in. It
    /// reveals colours and shapes: show it only where the photo itself may be seen.
    pub placeholder: Option<Vec<u8>>,
}

/// The key a form uploads to. The `incoming/` prefix is never readable anonymously, even in a
/// public bucket, so nothing is served before it is verified.
pub fn incoming_key(token: &str) -> String {
    format!("{INCOMING_PREFIX}{token}")
}

/// The prefix upload forms write to.
pub const INCOMING_PREFIX: &str = "incoming/";

/// The key a verified original is served from. The prefix is the only one a public bucket lets
/// anonymous readers see; the token keeps private keys unguessable too.
pub fn served_key(token: &str, image_type: ImageType) -> String {
    format!("{}{token}/original.{}", SERVED_PREFIX, image_type.extension())
}

/// Where a variant of the photo uploaded with `token` is stored, beside its original (so a
/// public bucket serves it under the same prefix): `photos/<token>/<name>-<recipe hash>.<ext>`.
pub fn variant_key(token: &str, name: &str, recipe_hash: &str, image_type: ImageType) -> String {
    format!("{SERVED_PREFIX}{token}/{name}-{recipe_hash}.{}", image_type.extension())
}

/// The one prefix a public bucket serves anonymously.
pub const SERVED_PREFIX: &str = "photos/";

/// A display name for a file, safe to put in a header or a page: the last path segment, only
/// printable ASCII letters, digits and `._-`, at most 100 characters.
pub fn safe_filename(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(100)
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_unknown_text_is_refused() {
        for s in [PhotoState::Signed, PhotoState::Ready, PhotoState::InUse, PhotoState::Released, PhotoState::Deleted] {
            assert_eq!(PhotoState::parse(s.as_str()), Some(s));
        }
        assert_eq!(PhotoState::parse("uploaded"), None);
    }

    #[test]
    fn keys_live_under_their_prefixes() {
        assert_eq!(incoming_key("abc"), "incoming/abc");
        assert_eq!(served_key("abc", ImageType::Png), "photos/abc/original.png");
    }

    #[test]
    fn filenames_are_reduced_to_a_safe_last_segment() {
        assert_eq!(safe_filename("C:\\Users\\ann\\IMG 1.JPG").as_deref(), Some("IMG_1.JPG"));
        assert_eq!(safe_filename("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(safe_filename("a\"b\r\nc.jpg").as_deref(), Some("a_b__c.jpg"));
        assert_eq!(safe_filename("..."), None);
        assert_eq!(safe_filename(&"x".repeat(500)).map(|s| s.len()), Some(100));
    }
}
