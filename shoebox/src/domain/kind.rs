//! Kinds: what a photo is for, and the rules that come with it.
//!
//! The reference app configures kinds in TOML ([`ConfiguredKind`]); an application embedding
//! Shoebox implements [`Kind`] itself, so that who may upload or view and how long a photo is
//! kept are code, not configuration.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use super::{Millis, Photo, PhotoId, PhotoState, UserId};
use crate::imaging::ImageType;

/// Size limits checked from the image header before anything is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// The widest image accepted, in pixels.
    pub max_width: u32,
    /// The tallest image accepted, in pixels.
    pub max_height: u32,
    /// The most pixels accepted (width × height): what decoding costs in memory.
    pub max_pixels: u64,
}

impl ImageLimits {
    /// The imaging engine's limits for a decode under these: the kind's sizes, with the
    /// engine's own bound on the memory one image may hold.
    pub(crate) fn for_engine(self) -> crate::imaging::Limits {
        crate::imaging::Limits {
            max_pixels: self.max_pixels,
            max_width: self.max_width,
            max_height: self.max_height,
            ..crate::imaging::Limits::default()
        }
    }
}

impl Default for ImageLimits {
    /// 12 000 px a side and 50 megapixels: any camera photo, and no decompression bomb.
    fn default() -> Self {
        Self { max_width: 12_000, max_height: 12_000, max_pixels: 50_000_000 }
    }
}

/// How an authorized viewer gets a private photo's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivateDelivery {
    /// Streamed through Shoebox, so the bytes never leave our server by another path: the
    /// default, as the seed asks.
    #[default]
    Proxy,
    /// A redirect to a presigned S3 GET valid about a minute: S3 carries the bytes, and anyone
    /// holding the link can fetch it until it expires.
    Redirect,
}

/// What the clean-up job knows when it asks a kind about an in-use or released photo. The photo
/// itself is passed beside it; an embedding application reads its own data through its own
/// handles (the kind is its own value and may hold the host's pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepContext {
    /// The time the decision is made for (`--as-of`, else the service's clock).
    pub now: Millis,
    /// A newer in-use photo of the same kind by the same uploader, if there is one.
    pub newer: Option<PhotoId>,
}

pub(crate) const DAY_MS: Millis = 24 * 60 * 60 * 1000;

/// The image types a kind takes unless it says otherwise: every type Shoebox can verify.
pub const DEFAULT_TYPES: &[ImageType] = &[ImageType::Jpeg, ImageType::Png, ImageType::Webp, ImageType::Gif];

/// The largest upload a kind takes unless it says otherwise: 15 MB.
pub const DEFAULT_MAX_BYTES: u64 = 15_000_000;

/// A kind of photo: what it is for, where it lives, who may upload and see it, and how long it
/// is kept. Methods with defaults are the hooks an application overrides; the hooks that decide
/// are async, so a kind can ask the host's own database (who is friends with whom, how old
/// Steve was in this photo).
///
/// ```
/// use shoebox::{Kind, Photo, UserId};
///
/// /// A profile photo anyone may see, in the bucket the host called `public`.
/// #[derive(Debug)]
/// struct Avatar;
///
/// #[shoebox::async_trait]
/// impl Kind for Avatar {
///     fn name(&self) -> &str { "avatar" }
///     fn bucket(&self) -> &str { "public" }
///     async fn may_view(&self, _viewer: &UserId, _photo: &Photo) -> bool { true }
///     fn one_per_user(&self) -> bool { true }
/// }
/// ```
#[async_trait::async_trait]
pub trait Kind: Send + Sync + Debug + 'static {
    /// The kind's name in URLs and the database (`avatar`): lowercase letters, digits and `_`.
    fn name(&self) -> &str;
    /// What people call it (`Profile photo`). Default: the name.
    fn label(&self) -> &str {
        self.name()
    }
    /// The name of the configured bucket its photos go to.
    fn bucket(&self) -> &str;
    /// The image types it accepts. Default: JPEG, PNG, WebP and GIF.
    fn accepts(&self) -> &[ImageType] {
        DEFAULT_TYPES
    }
    /// The largest upload in bytes. Default: 15 MB.
    fn max_bytes(&self) -> u64 {
        DEFAULT_MAX_BYTES
    }
    /// The largest image in pixels. Default: [`ImageLimits::default`].
    fn limits(&self) -> ImageLimits {
        ImageLimits::default()
    }
    /// The most bytes of this kind one uploader may hold, counted from Shoebox's own rows:
    /// verified photos by their stored size, and forms signed but not yet completed by the
    /// size declared for them until they expire. A deleted photo frees its share at once.
    /// Checked when a form is signed and again when an upload completes. Default: no limit.
    fn max_bytes_per_user(&self) -> Option<u64> {
        None
    }
    /// The most photos of this kind one uploader may hold, counted as
    /// [`Kind::max_bytes_per_user`] counts bytes. Default: no limit.
    fn max_photos_per_user(&self) -> Option<u64> {
        None
    }
    /// May this user ask for an upload form? Default: anyone the host says is signed in.
    async fn may_upload(&self, _uploader: &UserId) -> bool {
        true
    }
    /// May this signed-in viewer see this photo's bytes, if it lives in a private bucket?
    /// (A public bucket's photos are anyone's to see.) Default: only its uploader.
    async fn may_view(&self, viewer: &UserId, photo: &Photo) -> bool {
        &photo.uploader == viewer
    }
    /// How authorized viewers get its private photos. Default: through the proxy.
    fn private_delivery(&self) -> PrivateDelivery {
        PrivateDelivery::Proxy
    }
    /// Does attaching a photo of this kind release the uploader's earlier in-use ones (a
    /// profile photo: only the latest counts)? Released photos get a keep-until of now, and
    /// clean-up then asks [`Kind::reason_to_delete`]. Default: no.
    fn one_per_user(&self) -> bool {
        false
    }
    /// Until when a photo must be kept: asked when it is attached or released without a time,
    /// and again by clean-up when its keep-until has passed and there is no reason to delete it
    /// (the seed's `calc_and_set_keep`). `None` keeps an in-use photo for as long as it is in
    /// use. Default: `None`.
    async fn keep_until(&self, _photo: &Photo, _cx: &KeepContext) -> Option<Millis> {
        None
    }
    /// Why a photo whose keep-until has passed may be deleted, stored on its tombstone (the
    /// seed's `explain_why_can_delete`); `None` keeps it. Default: a released photo may go,
    /// an in-use one is kept.
    async fn reason_to_delete(&self, photo: &Photo, _cx: &KeepContext) -> Option<String> {
        (photo.state == PhotoState::Released).then(|| RELEASED_REASON.to_owned())
    }
    /// The smaller renditions made of each photo, besides the original. Default: `thumb`
    /// (fits 320 px) and `display` (fits 1280 px).
    fn variants(&self) -> Vec<VariantSpec> {
        VariantSpec::defaults()
    }
}

/// What a released photo's tombstone says when its kind has no rule of its own.
pub const RELEASED_REASON: &str = "released by the application and no longer needed";

/// Keep rules a configured kind can have (`keep_for_days`, `latest_only` in the TOML).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeepRules {
    /// Keep an in-use photo this many days after it was attached, then delete it.
    pub keep_for_days: Option<u32>,
    /// Keep only each uploader's latest in-use photo of this kind.
    pub latest_only: bool,
}

/// Changes whenever the engine would make different bytes from the same spec, so that
/// changing it makes new objects instead of serving stale ones forever (they are immutable).
const RECIPE_REVISION: &str = "shoebox-variant-1: upright, sRGB, no metadata, JPEG unless alpha then PNG";
/// The same for the WebP twins.
const WEBP_REVISION: &str = "shoebox-variant-webp-1: upright, sRGB, no metadata, lossy WebP (libwebp, method 4)";
/// The same for the AVIF twins.
const AVIF_REVISION: &str = "shoebox-variant-avif-1: upright, sRGB, no metadata, AVIF (ravif, speed 6, one thread)";

/// A named rendition a kind makes of each photo: fits within a box, never upscaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantSpec {
    /// Its name in URLs and the database (`thumb`); never `original`.
    pub name: String,
    /// The widest it may be, in pixels.
    pub max_width: u32,
    /// The tallest it may be, in pixels.
    pub max_height: u32,
    /// JPEG quality, 1 to 100 (PNG variants are lossless).
    pub quality: u8,
    /// The quality of its lossy WebP twin (`{name}.webp`), 1 to 100, which pages offer to
    /// browsers that accept WebP; `None` (the default) makes JPEG (or PNG) only. Off by
    /// default because, measured at one fixed setting on the camera photos, WebP did not meet
    /// its targets against our JPEGs (`scripts/bench-formats`, figures in BENCHMARKS.md).
    pub webp_quality: Option<u8>,
    /// The quality of its AVIF twin (`{name}.avif`), 1 to 100, which pages offer before the
    /// WebP and JPEG once it is made; `None` (the default) makes none. Encoding takes seconds
    /// per photo, so it is made only in the background after completion and by `resize-all`,
    /// never while a request waits (figures in BENCHMARKS.md).
    pub avif_quality: Option<u8>,
}

impl VariantSpec {
    /// JPEG quality of variants unless configured: about 80, as the web commonly serves.
    pub const DEFAULT_QUALITY: u8 = 80;

    /// A checked spec: a usable name other than `original`, a non-empty box and a quality.
    pub fn new(name: &str, max_width: u32, max_height: u32, quality: u8) -> Result<Self, KindError> {
        let bad = |why: &str| Err(KindError::BadVariant(format!("{name:?}: {why}")));
        if name.is_empty()
            || name.len() > 32
            || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return bad("a name must be 1 to 32 lowercase letters, digits and '_'");
        }
        if name == "original" {
            return bad("\"original\" is the uploaded image itself; choose another name");
        }
        if max_width == 0 || max_height == 0 {
            return bad("the box must be at least 1x1");
        }
        if !(1..=100).contains(&quality) {
            return bad("quality must be between 1 and 100");
        }
        Ok(Self { name: name.to_owned(), max_width, max_height, quality, webp_quality: None, avif_quality: None })
    }

    /// The same spec with a WebP twin at this quality, or none (JPEG or PNG only).
    pub fn with_webp(self, webp_quality: Option<u8>) -> Result<Self, KindError> {
        if webp_quality.is_some_and(|q| !(1..=100).contains(&q)) {
            return Err(KindError::BadVariant(format!("{:?}: the WebP quality must be between 1 and 100", self.name)));
        }
        Ok(Self { webp_quality, ..self })
    }

    /// The same spec with an AVIF twin at this quality, or none.
    pub fn with_avif(self, avif_quality: Option<u8>) -> Result<Self, KindError> {
        if avif_quality.is_some_and(|q| !(1..=100).contains(&q)) {
            return Err(KindError::BadVariant(format!("{:?}: the AVIF quality must be between 1 and 100", self.name)));
        }
        Ok(Self { avif_quality, ..self })
    }

    /// A short hash of everything that decides this variant's bytes (its box, its quality and
    /// the engine's revision): part of its object key, so a changed recipe makes new objects
    /// instead of overwriting cached ones.
    pub fn recipe_hash(&self) -> String {
        use sha2::Digest as _;
        let recipe = format!("{RECIPE_REVISION}; fit {}x{}; quality {}", self.max_width, self.max_height, self.quality);
        hex::encode(&sha2::Sha256::digest(recipe.as_bytes())[..5])
    }

    /// The hash of its WebP twin's recipe (see [`VariantSpec::recipe_hash`]); `None` when it
    /// has none.
    pub fn webp_recipe_hash(&self) -> Option<String> {
        use sha2::Digest as _;
        let q = self.webp_quality?;
        let recipe = format!("{WEBP_REVISION}; fit {}x{}; quality {q}", self.max_width, self.max_height);
        Some(hex::encode(&sha2::Sha256::digest(recipe.as_bytes())[..5]))
    }

    /// The hash of its AVIF twin's recipe (see [`VariantSpec::recipe_hash`]); `None` when it
    /// has none.
    pub fn avif_recipe_hash(&self) -> Option<String> {
        use sha2::Digest as _;
        let q = self.avif_quality?;
        let recipe = format!("{AVIF_REVISION}; fit {}x{}; quality {q}", self.max_width, self.max_height);
        Some(hex::encode(&sha2::Sha256::digest(recipe.as_bytes())[..5]))
    }

    /// `thumb` fits 320 px and `display` 1280 px, JPEG (or PNG) only.
    pub fn defaults() -> Vec<VariantSpec> {
        let fit = |name: &str, side| VariantSpec {
            name: name.to_owned(),
            max_width: side,
            max_height: side,
            quality: Self::DEFAULT_QUALITY,
            webp_quality: None,
            avif_quality: None,
        };
        vec![fit("thumb", 320), fit("display", 1280)]
    }
}

/// A kind described by values rather than code (the reference app reads them from TOML): the
/// usual rules, without writing a [`Kind`] of one's own.
///
/// ```
/// use shoebox::{ConfiguredKind, ImageLimits, KeepRules};
/// let avatar = ConfiguredKind::new("avatar", Some("Profile photo"), "public", &["image/jpeg".into()], 5_000_000, ImageLimits::default())
///     .expect("a valid kind")
///     .with_keep(KeepRules { keep_for_days: None, latest_only: true });
/// assert_eq!(avatar.label, "Profile photo");
/// ```
#[derive(Debug, Clone)]
pub struct ConfiguredKind {
    /// See [`Kind::name`].
    pub name: String,
    /// See [`Kind::label`].
    pub label: String,
    /// See [`Kind::bucket`].
    pub bucket: String,
    /// See [`Kind::accepts`].
    pub accepts: Vec<ImageType>,
    /// See [`Kind::max_bytes`].
    pub max_bytes: u64,
    /// See [`Kind::limits`].
    pub limits: ImageLimits,
    /// See [`Kind::max_bytes_per_user`].
    pub max_bytes_per_user: Option<u64>,
    /// See [`Kind::max_photos_per_user`].
    pub max_photos_per_user: Option<u64>,
    /// See [`Kind::private_delivery`].
    pub private_delivery: PrivateDelivery,
    /// How long its photos are kept.
    pub keep: KeepRules,
    /// See [`Kind::variants`].
    pub variants: Vec<VariantSpec>,
}

impl ConfiguredKind {
    fn kept_until(&self, photo: &Photo) -> Option<Millis> {
        let days = Millis::from(self.keep.keep_for_days?);
        Some(photo.attached_at?.saturating_add(days.saturating_mul(DAY_MS)))
    }
}

#[async_trait::async_trait]
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
    fn max_bytes_per_user(&self) -> Option<u64> {
        self.max_bytes_per_user
    }
    fn max_photos_per_user(&self) -> Option<u64> {
        self.max_photos_per_user
    }
    fn private_delivery(&self) -> PrivateDelivery {
        self.private_delivery
    }
    fn one_per_user(&self) -> bool {
        self.keep.latest_only
    }
    async fn keep_until(&self, photo: &Photo, _cx: &KeepContext) -> Option<Millis> {
        self.kept_until(photo)
    }
    async fn reason_to_delete(&self, photo: &Photo, cx: &KeepContext) -> Option<String> {
        if self.keep.latest_only && cx.newer.is_some() {
            return Some(format!("replaced by a newer {}", self.label.to_lowercase()));
        }
        let Some(days) = self.keep.keep_for_days else {
            return (photo.state == PhotoState::Released).then(|| RELEASED_REASON.to_owned());
        };
        (self.kept_until(photo)? <= cx.now).then(|| format!("kept for the {days} days its kind keeps photos"))
    }
    fn variants(&self) -> Vec<VariantSpec> {
        self.variants.clone()
    }
}

/// Why a set of kinds cannot be used; said at start-up, before anything is served.
///
/// All of these are the host's (or its configuration's) mistakes, found when the service is
/// built: nothing to retry, and nothing a user did.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    /// A name with other than lowercase letters, digits and `_` (or none, or over 64).
    #[error("kind name {0:?} must be 1 to 64 lowercase letters, digits and '_'")]
    BadName(String),
    /// Two kinds with one name.
    #[error("two kinds are called {0:?}; each kind needs its own name")]
    Duplicate(String),
    /// A kind naming a bucket that was not configured.
    #[error("kind {kind:?} names bucket {bucket:?}, which is not configured (configured: {known})")]
    UnknownBucket {
        /// The kind.
        kind: String,
        /// The bucket it names.
        bucket: String,
        /// The buckets there are.
        known: String,
    },
    /// A type Shoebox cannot decode, so cannot verify (SVG, HEIC, AVIF).
    #[error("kind {kind:?}: type {mime:?} is not one Shoebox can verify (JPEG, PNG, WebP, GIF)")]
    UnverifiableType {
        /// The kind.
        kind: String,
        /// The type.
        mime: String,
    },
    /// A kind that accepts nothing.
    #[error("kind {0:?} accepts no image type")]
    NoTypes(String),
    /// A size limit of zero.
    #[error("kind {0:?}: max_bytes must be at least 1")]
    NoBytes(String),
    /// A quota of zero bytes or zero photos: nobody could upload anything.
    #[error("kind {0:?}: max_bytes_per_user and max_photos_per_user must be at least 1 when set")]
    EmptyQuota(String),
    /// A malformed variant (its name, box or quality).
    #[error("variant {0}")]
    BadVariant(String),
    /// Two variants with one name.
    #[error("kind {kind:?} names variant {variant:?} twice")]
    DuplicateVariant {
        /// The kind.
        kind: String,
        /// The variant.
        variant: String,
    },
}

impl ConfiguredKind {
    /// A kind from configured values, checked: a usable name, at least one type Shoebox can
    /// verify (given as MIME types), and a size limit.
    pub fn new(
        name: &str,
        label: Option<&str>,
        bucket: &str,
        mime_types: &[String],
        max_bytes: u64,
        limits: ImageLimits,
    ) -> Result<Self, KindError> {
        if !usable_name(name) {
            return Err(KindError::BadName(name.to_owned()));
        }
        let accepts = mime_types
            .iter()
            .map(|m| match ImageType::from_mime(m) {
                Some(t) if t.is_decodable() => Ok(t),
                _ => Err(KindError::UnverifiableType { kind: name.to_owned(), mime: m.clone() }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if accepts.is_empty() {
            return Err(KindError::NoTypes(name.to_owned()));
        }
        if max_bytes == 0 {
            return Err(KindError::NoBytes(name.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            label: label.map_or_else(|| name.replace('_', " "), str::to_owned),
            bucket: bucket.to_owned(),
            accepts,
            max_bytes,
            limits,
            max_bytes_per_user: None,
            max_photos_per_user: None,
            private_delivery: PrivateDelivery::default(),
            keep: KeepRules::default(),
            variants: VariantSpec::defaults(),
        })
    }

    /// The same kind, delivering private photos as `delivery` says.
    #[must_use]
    pub fn with_private_delivery(mut self, delivery: PrivateDelivery) -> Self {
        self.private_delivery = delivery;
        self
    }

    /// The same kind with a quota per uploader: at most `max_bytes` bytes and `max_photos`
    /// photos each (`None`: no limit). See [`Kind::max_bytes_per_user`].
    pub fn with_quota(mut self, max_bytes: Option<u64>, max_photos: Option<u64>) -> Result<Self, KindError> {
        if max_bytes == Some(0) || max_photos == Some(0) {
            return Err(KindError::EmptyQuota(self.name));
        }
        self.max_bytes_per_user = max_bytes;
        self.max_photos_per_user = max_photos;
        Ok(self)
    }

    /// The same kind with keep rules.
    #[must_use]
    pub fn with_keep(mut self, keep: KeepRules) -> Self {
        self.keep = keep;
        self
    }

    /// The same kind with other variants (none is allowed: only the original is served).
    pub fn with_variants(mut self, variants: Vec<VariantSpec>) -> Result<Self, KindError> {
        for (i, v) in variants.iter().enumerate() {
            if variants[..i].iter().any(|w| w.name == v.name) {
                return Err(KindError::DuplicateVariant { kind: self.name, variant: v.name.clone() });
            }
        }
        self.variants = variants;
        Ok(self)
    }
}

/// What every kind must be, however it was made: a usable name, types Shoebox can verify, a
/// size limit, a quota (if any) that lets something in, and well-formed, distinct variants. Said at start-up, not at the first upload.
fn check(kind: &dyn Kind) -> Result<(), KindError> {
    let name = kind.name();
    if !usable_name(name) {
        return Err(KindError::BadName(name.to_owned()));
    }
    if kind.accepts().is_empty() {
        return Err(KindError::NoTypes(name.to_owned()));
    }
    if let Some(t) = kind.accepts().iter().find(|t| !t.is_decodable()) {
        return Err(KindError::UnverifiableType { kind: name.to_owned(), mime: t.mime().to_owned() });
    }
    if kind.max_bytes() == 0 {
        return Err(KindError::NoBytes(name.to_owned()));
    }
    if kind.max_bytes_per_user() == Some(0) || kind.max_photos_per_user() == Some(0) {
        return Err(KindError::EmptyQuota(name.to_owned()));
    }
    let variants = kind.variants();
    for (i, v) in variants.iter().enumerate() {
        VariantSpec::new(&v.name, v.max_width, v.max_height, v.quality)?
            .with_webp(v.webp_quality)?
            .with_avif(v.avif_quality)?;
        if variants[..i].iter().any(|w| w.name == v.name) {
            return Err(KindError::DuplicateVariant { kind: name.to_owned(), variant: v.name.clone() });
        }
    }
    Ok(())
}

fn usable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Every kind the application knows, by name.
#[derive(Debug, Clone, Default)]
pub struct Kinds(BTreeMap<String, Arc<dyn Kind>>);

impl Kinds {
    /// The kinds, checked against the configured bucket names: names are unique and every kind
    /// names a bucket that exists, so a typo stops start-up instead of failing the first upload.
    pub fn new<'a>(
        kinds: impl IntoIterator<Item = Arc<dyn Kind>>,
        buckets: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, KindError> {
        let buckets: Vec<&str> = buckets.into_iter().collect();
        let mut map = BTreeMap::new();
        for kind in kinds {
            check(kind.as_ref())?;
            if !buckets.contains(&kind.bucket()) {
                return Err(KindError::UnknownBucket {
                    kind: kind.name().to_owned(),
                    bucket: kind.bucket().to_owned(),
                    known: buckets.join(", "),
                });
            }
            let name = kind.name().to_owned();
            if map.insert(name.clone(), kind).is_some() {
                return Err(KindError::Duplicate(name));
            }
        }
        Ok(Self(map))
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Kind>> {
        self.0.get(name)
    }

    /// Every kind, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Kind>> {
        self.0.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ImageLimits = ImageLimits { max_width: 100, max_height: 100, max_pixels: 10_000 };

    fn kind(name: &str, bucket: &str) -> Arc<dyn Kind> {
        Arc::new(ConfiguredKind::new(name, None, bucket, &["image/jpeg".into()], 1000, LIMITS).expect("valid kind"))
    }

    #[test]
    fn kinds_with_the_same_name_are_refused() {
        let err = Kinds::new([kind("avatar", "public"), kind("avatar", "private")], ["public", "private"])
            .expect_err("duplicate");
        assert_eq!(err, KindError::Duplicate("avatar".into()));
        assert!(err.to_string().contains("two kinds are called \"avatar\""), "{err}");
    }

    #[test]
    fn a_kind_naming_an_unknown_bucket_is_refused_with_the_known_ones() {
        let err = Kinds::new([kind("avatar", "pubic")], ["public", "private"]).expect_err("typo");
        assert!(err.to_string().contains("\"pubic\", which is not configured (configured: public, private)"), "{err}");
    }

    #[test]
    fn configured_kinds_refuse_bad_names_types_and_sizes() {
        let new = |name: &str, types: &[&str], max| {
            let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
            ConfiguredKind::new(name, None, "b", &types, max, LIMITS)
        };
        assert!(matches!(new("Avatar", &["image/jpeg"], 1), Err(KindError::BadName(_))));
        assert!(matches!(new("a", &["image/svg+xml"], 1), Err(KindError::UnverifiableType { .. })));
        assert!(matches!(new("a", &["image/heic"], 1), Err(KindError::UnverifiableType { .. })));
        assert!(matches!(new("a", &[], 1), Err(KindError::NoTypes(_))));
        assert!(matches!(new("a", &["image/png"], 0), Err(KindError::NoBytes(_))));
        let quota = |bytes, photos| new("a", &["image/png"], 1).expect("valid").with_quota(bytes, photos);
        assert!(matches!(quota(Some(0), None), Err(KindError::EmptyQuota(_))));
        assert!(matches!(quota(None, Some(0)), Err(KindError::EmptyQuota(_))));
        let limited = quota(Some(50_000_000), Some(20)).expect("a quota");
        assert_eq!((limited.max_bytes_per_user(), limited.max_photos_per_user()), (Some(50_000_000), Some(20)));
        let ok = new("id_card", &["image/png"], 1).expect("valid");
        assert_eq!((ok.max_bytes_per_user(), ok.max_photos_per_user()), (None, None), "no quota unless asked");
        assert_eq!((ok.label.as_str(), ok.accepts.as_slice()), ("id card", &[ImageType::Png][..]));
    }

    fn in_use(attached_at: Millis) -> Photo {
        Photo {
            id: PhotoId::new(),
            kind: "avatar".into(),
            bucket: "public".into(),
            uploader: UserId::from(1_i64),
            state: super::super::PhotoState::InUse,
            incoming_key: "incoming/x".into(),
            object_key: Some("photos/x/original.jpg".into()),
            declared_type: None,
            image_type: Some(ImageType::Jpeg),
            max_bytes: 1,
            byte_size: Some(1),
            width: Some(1),
            height: Some(1),
            filename: None,
            form_expires_at: 0,
            created_at: 0,
            verified_at: Some(0),
            attached_at: Some(attached_at),
            keep_until: None,
            deleted_at: None,
            deleted_reason: None,
            placeholder: None,
        }
    }

    #[tokio::test]
    async fn by_default_a_photo_in_use_is_kept() {
        let k = ConfiguredKind::new("a", None, "b", &["image/png".into()], 1, LIMITS).expect("valid");
        let cx = KeepContext { now: Millis::MAX, newer: Some(PhotoId::new()) };
        assert_eq!(k.reason_to_delete(&in_use(0), &cx).await, None);
        assert_eq!(k.keep_until(&in_use(0), &cx).await, None);
    }

    #[tokio::test]
    async fn configured_rules_keep_for_days_and_only_the_latest() {
        let k = ConfiguredKind::new("avatar", Some("Profile photo"), "b", &["image/png".into()], 1, LIMITS)
            .expect("valid")
            .with_keep(KeepRules { keep_for_days: Some(2), latest_only: true });
        let p = in_use(1000);
        let early = KeepContext { now: 1000 + DAY_MS, newer: None };
        assert_eq!(k.keep_until(&p, &early).await, Some(1000 + 2 * DAY_MS));
        assert_eq!(k.reason_to_delete(&p, &early).await, None);
        let due = KeepContext { now: 1000 + 2 * DAY_MS, newer: None };
        assert!(k.reason_to_delete(&p, &due).await.is_some_and(|r| r.contains("2 days")));
        let replaced = KeepContext { newer: Some(PhotoId::new()), ..early };
        assert_eq!(k.reason_to_delete(&p, &replaced).await.as_deref(), Some("replaced by a newer profile photo"));
    }

    #[test]
    fn variant_specs_refuse_the_original_name_empty_boxes_and_duplicates() {
        assert!(VariantSpec::new("original", 10, 10, 80).is_err());
        assert!(VariantSpec::new("Thumb", 10, 10, 80).is_err());
        assert!(VariantSpec::new("thumb", 0, 10, 80).is_err());
        assert!(VariantSpec::new("thumb", 10, 10, 0).is_err());
        let thumb = VariantSpec::new("thumb", 10, 10, 80).expect("valid");
        let kind = ConfiguredKind::new("a", None, "b", &["image/png".into()], 1, LIMITS).expect("valid");
        assert_eq!(kind.variants().iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["thumb", "display"]);
        let err = kind.with_variants(vec![thumb.clone(), thumb]).expect_err("twice");
        assert!(err.to_string().contains("names variant \"thumb\" twice"), "{err}");
    }
}
