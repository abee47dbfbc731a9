//! Kinds: what a photo is for, and the rules that come with it.
//!
//! The reference app configures kinds in TOML ([`ConfiguredKind`]); an application embedding
//! Shoebox implements [`Kind`] itself, so that who may upload or view and how long a photo is
//! kept are code, not configuration.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use super::{Photo, UserId};
use crate::imaging::ImageType;

/// Size limits checked from the image header before anything is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_pixels: u64,
}

/// A kind of photo. Methods with defaults are the hooks an application overrides.
pub trait Kind: Send + Sync + Debug {
    /// The kind's name in URLs and the database (`avatar`).
    fn name(&self) -> &str;
    /// What people call it (`Profile photo`).
    fn label(&self) -> &str;
    /// The configured bucket its photos go to.
    fn bucket(&self) -> &str;
    /// The image types it accepts.
    fn accepts(&self) -> &[ImageType];
    /// The largest upload in bytes.
    fn max_bytes(&self) -> u64;
    fn limits(&self) -> ImageLimits;
    /// May this user ask for an upload form? Default: any signed-in user.
    fn may_upload(&self, _user: UserId) -> bool {
        true
    }
    /// May this viewer see this photo? Default: only its uploader.
    fn may_view(&self, viewer: UserId, photo: &Photo) -> bool {
        photo.uploader == viewer
    }
}

/// A kind described by configuration.
#[derive(Debug, Clone)]
pub struct ConfiguredKind {
    pub name: String,
    pub label: String,
    pub bucket: String,
    pub accepts: Vec<ImageType>,
    pub max_bytes: u64,
    pub limits: ImageLimits,
}

impl Kind for ConfiguredKind {
    fn name(&self) -> &str {
        &self.name
    }
    fn label(&self) -> &str {
        &self.label
    }
    fn bucket(&self) -> &str {
        &self.bucket
    }
    fn accepts(&self) -> &[ImageType] {
        &self.accepts
    }
    fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
    fn limits(&self) -> ImageLimits {
        self.limits
    }
}

/// Every kind the application knows, by name.
#[derive(Debug, Clone, Default)]
pub struct Kinds(BTreeMap<String, Arc<dyn Kind>>);

impl Kinds {
    pub fn new(kinds: impl IntoIterator<Item = Arc<dyn Kind>>) -> Self {
        Self(kinds.into_iter().map(|k| (k.name().to_owned(), k)).collect())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Kind>> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Kind>> {
        self.0.values()
    }
}
