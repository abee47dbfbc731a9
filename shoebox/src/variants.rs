//! Variants: the smaller renditions of a photo (`thumb`, `display`, ...) that pages show
//! instead of the original, made once and served from the bucket like the original.
//!
//! Each variant may have a lossy WebP twin, named `{name}.webp` (`display.webp`), which pages
//! offer to browsers that accept WebP through `<picture>`, under a URL of its own rather than
//! by `Accept` and `Vary` (which CDNs honour unevenly). A twin is a rendition like any other:
//! claimed, made, recorded and served on its own, from the same decode as its JPEG.
//!
//! A variant may also have an AVIF twin (`display.avif`), smaller again but seconds per photo
//! to encode: it is never made while a request waits. Completion makes it in the background
//! after the JPEG and WebP ([`make_background`]), one photo at a time across the process;
//! `resize-all` makes those missing; until then its URL answers 404 and pages do not offer it.
//!
//! Each is made at most once per recipe and format: the `variants` row is written before the
//! work starts (its uniqueness constraint is the claim), so two requests, dynos or resize-all
//! runs wanting the same variant never both make it; the others wait briefly for it or use
//! the original. Completion makes a kind's variants from the bytes it already holds
//! ([`make_from_bytes`]); the first request for one that is missing makes it ([`locate`]);
//! `resize-all` catches the rest ([`make_missing`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::Instrument as _;

use crate::app::Shoebox;
use crate::db::variants::{self as rows, Made, VariantRow, VariantState};
use crate::db::{DbError, claims, photos as photo_rows};
use crate::domain::photo;
use crate::domain::{Kind, Millis, Photo, PhotoId, UserId, VariantSpec, now_millis};
use crate::fault::Fault;
use crate::imaging::{self, ImageType, ImagingError, OutputFormat, Recipe, Rendition};
use crate::photos::{self, Location, PhotoError};
use crate::storage::{Bucket, ServedHeaders, StorageError};
use crate::telemetry::{RESIZE_DURATION, VARIANT_DURATION, VARIANT_MAKES, seconds};

/// A `making` claim older than this belongs to a process that died: another may take it over.
/// Far longer than any variant takes (seconds), so a slow maker is never raced.
pub const STALE_CLAIM_MS: Millis = 5 * 60 * 1000;
/// How long a request waits for a variant another process is making before it answers with
/// the original instead.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(8);
const POLL: Duration = Duration::from_millis(50);

/// Why a variant could not be found or made. Each has one HTTP status, in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum VariantError {
    /// The photo's kind has no variant of this name. The client's fault.
    #[error("Photos of this kind have no size called {0:?}.")]
    NoSuchVariant(String),
    /// A background twin (`display.avif`) that is not made yet: requests never make it.
    #[error("This size is not made yet: {0:?}.")]
    NotMadeYet(String),
    /// Finding the photo failed (see [`PhotoError::fault`]).
    #[error(transparent)]
    Photo(#[from] PhotoError),
    /// The database failed: an outage or a bug.
    #[error(transparent)]
    Db(#[from] DbError),
    /// S3 failed while reading the original or writing the variant: an outage when
    /// unavailable, else a bug.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl VariantError {
    /// Whose fault this is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::NoSuchVariant(_) | Self::NotMadeYet(_) => Fault::Client,
            Self::Photo(e) => e.fault(),
            Self::Db(e) => e.fault(),
            Self::Storage(e) => e.fault(),
        }
    }
}

/// The suffix that names a variant's WebP twin: `display.webp`.
const WEBP_SUFFIX: &str = ".webp";
/// The suffix that names a variant's AVIF twin: `display.avif`.
const AVIF_SUFFIX: &str = ".avif";

/// The format of one rendition of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Twin {
    /// The variant itself: JPEG, or PNG where the source has alpha.
    Main,
    /// Its lossy WebP twin.
    Webp,
    /// Its AVIF twin, made in the background only.
    Avif,
}

/// One rendition a kind makes of each photo: a variant in its main format, or one of its twins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub spec: VariantSpec,
    pub twin: Twin,
}

impl Target {
    /// Its name in URLs and its row: `display`, `display.webp` or `display.avif`.
    pub fn name(&self) -> String {
        match self.twin {
            Twin::Main => self.spec.name.clone(),
            Twin::Webp => format!("{}{WEBP_SUFFIX}", self.spec.name),
            Twin::Avif => format!("{}{AVIF_SUFFIX}", self.spec.name),
        }
    }

    /// See [`VariantSpec::recipe_hash`] and the twins' hashes beside it.
    pub fn recipe_hash(&self) -> String {
        match self.twin {
            Twin::Main => self.spec.recipe_hash(),
            Twin::Webp => self.spec.webp_recipe_hash().unwrap_or_default(),
            Twin::Avif => self.spec.avif_recipe_hash().unwrap_or_default(),
        }
    }

    /// Made only in the background: too slow for a request or for completion to wait on.
    pub fn background(&self) -> bool {
        self.twin == Twin::Avif
    }
}

/// Every rendition a kind makes: each variant, followed by its WebP and AVIF twins if it has
/// them.
pub(crate) fn targets(kind: &dyn Kind) -> Vec<Target> {
    kind.variants()
        .into_iter()
        .flat_map(|spec| {
            let webp = spec.webp_quality.is_some().then(|| Target { spec: spec.clone(), twin: Twin::Webp });
            let avif = spec.avif_quality.is_some().then(|| Target { spec: spec.clone(), twin: Twin::Avif });
            std::iter::once(Target { spec, twin: Twin::Main }).chain(webp).chain(avif)
        })
        .collect()
}

/// The renditions completion makes while the uploader's page waits, and a first request on
/// demand: all but the background ones.
pub(crate) fn foreground_targets(kind: &dyn Kind) -> Vec<Target> {
    targets(kind).into_iter().filter(|t| !t.background()).collect()
}

fn background_targets(kind: &dyn Kind) -> Vec<Target> {
    targets(kind).into_iter().filter(Target::background).collect()
}

/// The rendition a URL names, if the kind makes it.
fn target_named(kind: &dyn Kind, name: &str) -> Option<Target> {
    targets(kind).into_iter().find(|t| t.name() == name)
}

/// See [`VariantSpec::recipe_hash`].
#[cfg(test)]
pub(crate) fn recipe_hash(spec: &VariantSpec) -> String {
    spec.recipe_hash()
}

/// Where a variant of `photo` is stored (see [`photo::variant_key`]).
pub(crate) fn variant_key(photo: &Photo, name: &str, hash: &str, image_type: ImageType) -> String {
    photo::variant_key(token(photo), name, hash, image_type)
}

/// The upload's random token, which names every object of the photo.
pub(crate) fn token(photo: &Photo) -> &str {
    photo.incoming_key.rsplit('/').next().unwrap_or_default()
}

/// What a viewer is served for `GET /photos/{id}/{name}`.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub location: Location,
    /// The served object's type (the original's when the variant is not there yet).
    pub image_type: Option<ImageType>,
    /// The photo and its kind, for the proxy's delivery choice and its log lines.
    pub photo: Photo,
    pub kind: Arc<dyn Kind>,
}

/// Where the `name` rendition (`original` or one of the kind's variants) of a photo `viewer`
/// may see is, making the variant first if it is missing. While another process is making
/// it, this waits a few seconds, then answers with the original rather than keep a page
/// waiting; the same when the variant cannot be made from this photo.
pub(crate) async fn locate(
    app: &Shoebox,
    viewer: Option<&UserId>,
    id: PhotoId,
    name: &str,
) -> Result<Served, VariantError> {
    let photos::Viewable { photo, kind, location: original } = app.viewable(viewer, id).await?;
    if name == "original" {
        let image_type = photo.image_type;
        return Ok(Served { location: original, image_type, photo, kind });
    }
    let target = target_named(kind.as_ref(), name).ok_or_else(|| VariantError::NoSuchVariant(name.to_owned()))?;
    let row = if target.background() {
        // Never made here: a page offers it only once it is made, and seconds of encoding
        // must not hold a request. Before then it is not there, rather than the original in
        // a format the browser did not ask for.
        let made = rows::get(&app.db, photo.id, name, &target.recipe_hash()).await?;
        Some(made.filter(|r| r.state == VariantState::Ready).ok_or_else(|| VariantError::NotMadeYet(name.to_owned()))?)
    } else {
        ensure(app, &photo, kind.as_ref(), &target).await?
    };
    let Some(row) = row else {
        let image_type = photo.image_type;
        return Ok(Served { location: original, image_type, photo, kind });
    };
    let key = row.object_key.unwrap_or_default();
    let location = match original {
        Location::Public(url) => Location::Public(app.storage.bucket(&photo.bucket)?.public_url(&key).unwrap_or(url)),
        Location::Private { bucket, .. } => Location::Private { bucket, key },
    };
    Ok(Served { location, image_type: row.image_type, photo, kind })
}

/// The URL a page uses for a variant: the bucket's (or CDN's) when it is made and public,
/// otherwise the route that makes or streams it.
pub(crate) fn src(app: &Shoebox, photo: &Photo, name: &str, made: &[VariantRow]) -> String {
    let route = app.url(&format!("/photos/{}/{name}", photo.id));
    let Ok(bucket) = app.storage.bucket(&photo.bucket) else { return route };
    let kind = app.kinds.get(&photo.kind);
    let current = kind.and_then(|k| target_named(k.as_ref(), name)).map(|t| t.recipe_hash());
    made.iter()
        .find(|r| r.photo_id == photo.id.to_string() && r.name == name && Some(&r.recipe_hash) == current.as_ref())
        .and_then(|r| bucket.public_url(r.object_key.as_deref()?))
        .unwrap_or(route)
}

/// The URL of a variant's WebP twin (see [`src`]), or `None` when the kind makes none.
pub(crate) fn webp_src(app: &Shoebox, photo: &Photo, name: &str, made: &[VariantRow]) -> Option<String> {
    let twin = format!("{name}{WEBP_SUFFIX}");
    let kind = app.kinds.get(&photo.kind)?;
    target_named(kind.as_ref(), &twin)?;
    Some(src(app, photo, &twin, made))
}

/// The URL of a variant's AVIF twin (see [`src`]), only once it is made with the current
/// recipe: its route never makes it, so a page must not offer one that is not there.
pub(crate) fn avif_src(app: &Shoebox, photo: &Photo, name: &str, made: &[VariantRow]) -> Option<String> {
    let twin = format!("{name}{AVIF_SUFFIX}");
    let kind = app.kinds.get(&photo.kind)?;
    let hash = target_named(kind.as_ref(), &twin)?.recipe_hash();
    let id = photo.id.to_string();
    made.iter()
        .any(|r| r.photo_id == id && r.name == twin && r.recipe_hash == hash && r.state == VariantState::Ready)
        .then(|| src(app, photo, &twin, made))
}

/// The variant rows of one photo, for a page that shows it; pass them to [`avif_src`].
pub(crate) async fn made_for_photo(app: &Shoebox, photo: &Photo) -> Result<Vec<VariantRow>, VariantError> {
    Ok(rows::list_for_photo(&app.db, photo.id).await?)
}

/// The made variants of all of a user's photos, for a page that lists them (one query, not
/// one per photo); pass them to [`src`].
pub(crate) async fn made_for_uploader(app: &Shoebox, user: &UserId) -> Result<Vec<VariantRow>, VariantError> {
    Ok(rows::ready_for_uploader(&app.db, user).await?)
}

impl Shoebox {
    /// Every rendition's URL, by name: `original`, each of the kind's variants, their WebP
    /// twins (`display.webp`) and their AVIF twins once made (`display.avif`). A public photo's made variants are the bucket's (or CDN's) URLs;
    /// the rest are Shoebox's routes (under the base path), which make a missing variant on
    /// first request and stream private ones after the kind's check. For a host's own pages and
    /// JSON.
    pub async fn variant_urls(&self, photo: &Photo) -> Result<Vec<(String, String)>, VariantError> {
        let made = rows::list_for_photo(&self.db, photo.id).await?;
        let mut out: Vec<(String, String)> =
            self.original_url(photo).map(|s| ("original".to_owned(), s)).into_iter().collect();
        if let Some(kind) = self.kinds.get(&photo.kind) {
            out.extend(targets(kind.as_ref()).into_iter().filter_map(|t| {
                let name = t.name();
                let url = match t.twin {
                    // Listed once made: its route never makes it.
                    Twin::Avif => avif_src(self, photo, &t.spec.name, &made)?,
                    Twin::Main | Twin::Webp => src(self, photo, &name, &made),
                };
                Some((name, url))
            }));
        }
        Ok(out)
    }
}

/// How the variants of one photo went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PhotoOutcome {
    /// Variants made by this call.
    pub made: usize,
    /// Already made, being made elsewhere, or failed before (and not retried).
    pub skipped: usize,
    /// Why the image could not be made into variants (recorded, so not retried by default).
    pub failed: Option<String>,
}

/// What to claim: the rendition, its recipe hash.
type Claimed = Vec<(Target, String)>;

/// Where the variants' pixels come from.
enum Source {
    /// The original, read from its bucket.
    Bucket,
    /// The upload, already in memory.
    Bytes(Bytes),
    /// Already rendered (by verification), one for each claimed variant, in claim order.
    Rendered(Vec<Rendition>),
}

/// Store the kind's variants of a photo just verified, rendered from the verification decode
/// (`rendered`, in [`foreground_targets`] order), or made from the upload's bytes already in
/// memory when they were not: no second read from the bucket, and no second decode.
pub(crate) async fn make_from_bytes(
    app: &Shoebox,
    photo: &Photo,
    kind: &dyn Kind,
    bytes: Bytes,
    rendered: Option<Vec<Rendition>>,
) -> Result<PhotoOutcome, VariantError> {
    let targets = foreground_targets(kind);
    let (claimed, mut outcome) = claim_all(app, photo.id, &targets, false).await?;
    // Those claimed, in claim order (a request may have claimed one meanwhile).
    let mut rendered: Vec<(Target, Rendition)> =
        rendered.filter(|r| r.len() == targets.len()).map(|r| targets.into_iter().zip(r).collect()).unwrap_or_default();
    let picked: Vec<Rendition> = claimed
        .iter()
        .filter_map(|(spec, _)| rendered.iter().position(|(s, _)| s == spec).map(|at| rendered.swap_remove(at).1))
        .collect();
    let source = if picked.len() == claimed.len() { Source::Rendered(picked) } else { Source::Bytes(bytes) };
    make_claimed(app, photo, kind, claimed, source, &mut outcome).await?;
    Ok(outcome)
}

/// Make whichever of the kind's variants of a live photo are missing, reading the original
/// from its bucket only if one is (resize-all). `retry_failed` tries again those that failed.
pub(crate) async fn make_missing(
    app: &Shoebox,
    photo: &Photo,
    kind: &dyn Kind,
    retry_failed: bool,
) -> Result<PhotoOutcome, VariantError> {
    let (claimed, mut outcome) = claim_all(app, photo.id, &foreground_targets(kind), retry_failed).await?;
    make_claimed(app, photo, kind, claimed, Source::Bucket, &mut outcome).await?;
    let background = make_background(app, photo, kind, None, retry_failed).await?;
    outcome.made += background.made;
    outcome.skipped += background.skipped;
    outcome.failed = outcome.failed.or(background.failed);
    Ok(outcome)
}

/// Make whichever of the kind's background twins (AVIF) of a photo are missing, from `bytes`
/// when the caller holds the original, else read from its bucket. In a pass of their own, one
/// photo at a time across the process (besides holding an image-work permit while encoding),
/// so that a burst of uploads never has every permit encoding AVIF while verifications wait;
/// and apart from the JPEG and WebP, so a twin that cannot be made fails alone.
pub(crate) async fn make_background(
    app: &Shoebox,
    photo: &Photo,
    kind: &dyn Kind,
    bytes: Option<Bytes>,
    retry_failed: bool,
) -> Result<PhotoOutcome, VariantError> {
    let targets = background_targets(kind);
    if targets.is_empty() {
        return Ok(PhotoOutcome::default());
    }
    let _turn = app.background_turn().await;
    let (claimed, mut outcome) = claim_all(app, photo.id, &targets, retry_failed).await?;
    let source = bytes.map_or(Source::Bucket, Source::Bytes);
    make_claimed(app, photo, kind, claimed, source, &mut outcome).await?;
    Ok(outcome)
}

enum Claim {
    Mine,
    Ready(VariantRow),
    Busy,
    Failed,
}

async fn claim(app: &Shoebox, id: PhotoId, name: &str, hash: &str, retry_failed: bool) -> Result<Claim, DbError> {
    let now = now_millis();
    if rows::claim_new(&app.db, id, name, hash, now).await? {
        return Ok(Claim::Mine);
    }
    let Some(row) = rows::get(&app.db, id, name, hash).await? else { return Ok(Claim::Busy) };
    let take = match row.state {
        VariantState::Ready => return Ok(Claim::Ready(row)),
        VariantState::Making => row.claimed_at < now - STALE_CLAIM_MS,
        VariantState::Failed if retry_failed => true,
        VariantState::Failed => return Ok(Claim::Failed),
    };
    if take && rows::take_over(&app.db, &row, now).await? { Ok(Claim::Mine) } else { Ok(Claim::Busy) }
}

async fn claim_all(
    app: &Shoebox,
    id: PhotoId,
    targets: &[Target],
    retry_failed: bool,
) -> Result<(Claimed, PhotoOutcome), VariantError> {
    let mut claimed = Vec::new();
    let mut outcome = PhotoOutcome::default();
    for target in targets {
        let hash = target.recipe_hash();
        match claim(app, id, &target.name(), &hash, retry_failed).await? {
            Claim::Mine => claimed.push((target.clone(), hash)),
            Claim::Ready(_) | Claim::Busy | Claim::Failed => outcome.skipped += 1,
        }
    }
    Ok((claimed, outcome))
}

/// The variant, made by this process if nobody has: `None` when it cannot be made or another
/// process is still making it after a short wait (the caller serves the original).
async fn ensure(
    app: &Shoebox,
    photo: &Photo,
    kind: &dyn Kind,
    target: &Target,
) -> Result<Option<VariantRow>, VariantError> {
    let (name, hash) = (target.name(), target.recipe_hash());
    let deadline = Instant::now() + WAIT_FOR_OTHERS;
    loop {
        match claim(app, photo.id, &name, &hash, false).await? {
            Claim::Ready(row) => return Ok(Some(row)),
            Claim::Failed => return Ok(None),
            Claim::Mine => {
                // Its own task: a client that gives up must not leave a claim half done.
                let task = tokio::spawn({
                    let (app, photo, target, hash) = (app.clone(), photo.clone(), target.clone(), hash.clone());
                    let kind = app.kinds.get(kind.name()).cloned();
                    async move {
                        let Some(kind) = kind else { return Ok(PhotoOutcome::default()) };
                        let mut outcome = PhotoOutcome::default();
                        make_claimed(&app, &photo, kind.as_ref(), vec![(target, hash)], Source::Bucket, &mut outcome)
                            .await?;
                        Ok::<_, VariantError>(outcome)
                    }
                    .in_current_span()
                });
                match task.await {
                    Ok(outcome) => outcome?,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                };
                let row = rows::get(&app.db, photo.id, &name, &hash).await?;
                return Ok(row.filter(|r| r.state == VariantState::Ready));
            }
            Claim::Busy if Instant::now() >= deadline => return Ok(None),
            Claim::Busy => tokio::time::sleep(POLL).await,
        }
    }
}

/// Render the claimed variants in one decode, write them, and record them; a bad image marks
/// them failed with the reason, a storage or database failure releases the claims.
async fn make_claimed(
    app: &Shoebox,
    photo: &Photo,
    kind: &dyn Kind,
    claimed: Claimed,
    source: Source,
    outcome: &mut PhotoOutcome,
) -> Result<(), VariantError> {
    if claimed.is_empty() {
        return Ok(());
    }
    let bucket = app.storage.bucket(&photo.bucket)?;
    let started = Instant::now();
    let result = render_and_store(app, photo, kind, bucket, &claimed, source).await;
    match result {
        Ok(Ok(made)) => {
            let now = now_millis();
            for ((target, hash), made) in claimed.iter().zip(&made) {
                rows::mark_ready(&app.db, photo.id, &target.name(), hash, made, now).await?;
                metrics::counter!(VARIANT_MAKES, "variant" => target.name(), "outcome" => "made").increment(1);
                metrics::histogram!(VARIANT_DURATION, "variant" => target.name()).record(seconds(started));
            }
            outcome.made += made.len();
            // A photo deleted while its variants were being made: they must not stay behind. A
            // claimed photo is being deleted (its keys may have been listed and deleted before
            // these were written), so it counts as gone too.
            let live = photo_rows::get(&app.db, photo.id).await?.is_some_and(|p| p.state.is_live())
                && !claims::is_claimed(&app.db, photo.id).await?;
            if !live {
                for m in &made {
                    bucket.delete(&m.object_key).await?;
                }
            }
            Ok(())
        }
        Ok(Err(image)) => {
            let reason = image.to_string();
            for (target, hash) in &claimed {
                rows::mark_failed(&app.db, photo.id, &target.name(), hash, &reason).await?;
                metrics::counter!(VARIANT_MAKES, "variant" => target.name(), "outcome" => "failed").increment(1);
            }
            tracing::warn!(photo = %photo.id, error = %reason, "variants could not be made");
            outcome.failed = Some(reason);
            Ok(())
        }
        Err(e) => {
            for (target, hash) in &claimed {
                rows::release(&app.db, photo.id, &target.name(), hash).await?;
            }
            Err(e)
        }
    }
}

/// The outer error is the bucket's (worth retrying); the inner one the image's (not).
async fn render_and_store(
    app: &Shoebox,
    photo: &Photo,
    kind: &dyn Kind,
    bucket: &Bucket,
    claimed: &Claimed,
    source: Source,
) -> Result<Result<Vec<Made>, ImagingError>, VariantError> {
    let bytes = match source {
        Source::Rendered(renditions) => return store(app, photo, bucket, claimed, renditions).await,
        Source::Bytes(b) => b,
        Source::Bucket => {
            let key = photo.object_key.as_deref().ok_or(PhotoError::NotReady)?;
            let (_, stream) = bucket.get_stream(key).await?;
            stream.collect().await.map_err(|_| bucket.body_cut("GetObject"))?.into_bytes()
        }
    };
    let targets: Vec<Target> = claimed.iter().map(|(t, _)| t.clone()).collect();
    let limits = kind.limits().for_engine();
    let rendered = app.run_blocking(move || render(&bytes, &targets, &limits, |_| ())).await;
    match rendered {
        Ok(renditions) => store(app, photo, bucket, claimed, renditions).await,
        Err(e) => Ok(Err(e)),
    }
}

/// Write the renditions of the claimed variants (in claim order) to the bucket.
async fn store(
    app: &Shoebox,
    photo: &Photo,
    bucket: &Bucket,
    claimed: &Claimed,
    renditions: Vec<Rendition>,
) -> Result<Result<Vec<Made>, ImagingError>, VariantError> {
    let mut made = Vec::with_capacity(renditions.len());
    for ((target, hash), r) in claimed.iter().zip(renditions) {
        let spec = &target.spec;
        // The extension tells the twins apart (`display-{hash}.webp`), as do their hashes.
        let key = variant_key(photo, &spec.name, hash, r.image_type);
        let headers = ServedHeaders {
            content_type: r.image_type.mime().to_owned(),
            content_disposition: format!("inline; filename=\"photo-{}.{}\"", spec.name, r.image_type.extension()),
            cache_control: bucket.access().stored_cache_control().to_owned(),
        };
        let byte_size = i64::try_from(r.bytes.len()).unwrap_or(i64::MAX);
        bucket.put(&key, r.bytes.into(), &headers).await?;
        app.count_variant_write();
        made.push(Made {
            object_key: key,
            image_type: r.image_type,
            width: i64::from(r.width),
            height: i64::from(r.height),
            byte_size,
        });
    }
    Ok(Ok(made))
}

/// The renditions of one image, decoded once: JPEG for opaque images, PNG where the source
/// has alpha, lossy WebP and AVIF for the twins. `decoded` is called once the whole file has
/// decoded, before the renditions are made (verification needs to know no more).
/// Synchronous; runs on the blocking pool.
pub(crate) fn render(
    bytes: &[u8],
    targets: &[Target],
    limits: &imaging::Limits,
    decoded: impl FnOnce(Option<Vec<u8>>),
) -> Result<Vec<Rendition>, ImagingError> {
    // Baseline, not progressive: measured on the six camera photos at 320 and 1280 px,
    // progressive came out 5 to 16 % larger every time (see README, "Variants").
    let started = Instant::now();
    let rendered = render_untimed(bytes, targets, limits, decoded);
    metrics::histogram!(RESIZE_DURATION).record(seconds(started));
    rendered
}

fn render_untimed(
    bytes: &[u8],
    targets: &[Target],
    limits: &imaging::Limits,
    decoded: impl FnOnce(Option<Vec<u8>>),
) -> Result<Vec<Rendition>, ImagingError> {
    let jpeg = |s: &VariantSpec| Recipe::fit(s.max_width, s.max_height).with_quality(s.quality);
    // JPEG has no alpha: no PNG candidate to weigh. For other sources, whether the pixels
    // really use alpha is known only after decoding, so each main variant is made both ways
    // in the same decode and the PNG kept only where it has an alpha channel (the engine
    // drops an alpha channel that is opaque everywhere). Lossy WebP keeps alpha either way.
    let weigh_alpha = imaging::sniff(bytes)? != ImageType::Jpeg;
    let mut recipes = Vec::with_capacity(targets.len() * 2);
    for t in targets {
        let twin = |format, quality: Option<u8>| match quality {
            Some(q) => Ok(jpeg(&t.spec).with_format(format).with_quality(q)),
            None => Err(ImagingError::InvalidRecipe(format!("{} has no {format:?} quality", t.spec.name))),
        };
        match t.twin {
            Twin::Webp => recipes.push(twin(OutputFormat::LossyWebp, t.spec.webp_quality)?),
            Twin::Avif => recipes.push(twin(OutputFormat::Avif, t.spec.avif_quality)?),
            Twin::Main if weigh_alpha => recipes.extend([jpeg(&t.spec).with_format(OutputFormat::Png), jpeg(&t.spec)]),
            Twin::Main => recipes.push(jpeg(&t.spec)),
        }
    }
    let mut made = imaging::render_all_with_placeholder(bytes, &recipes, limits, decoded)?.into_iter();
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let next = if t.twin == Twin::Main && weigh_alpha {
            match (made.next(), made.next()) {
                (Some(png), Some(jpeg)) => Some(if png_has_alpha(&png.bytes) { png } else { jpeg }),
                _ => None,
            }
        } else {
            made.next()
        };
        out.push(next.ok_or_else(|| ImagingError::InvalidRecipe("a rendition was not produced".to_owned()))?);
    }
    Ok(out)
}

/// The PNG's colour type (IHDR, byte 25) is grey+alpha (4) or RGBA (6).
fn png_has_alpha(png: &[u8]) -> bool {
    png.get(25).is_some_and(|t| matches!(t, 4 | 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recipe_hash_is_short_stable_and_changes_with_the_recipe() {
        let thumb = VariantSpec::new("thumb", 320, 320, 80).expect("spec");
        assert_eq!(recipe_hash(&thumb).len(), 10);
        assert_eq!(recipe_hash(&thumb), recipe_hash(&thumb.clone()));
        let bigger = VariantSpec::new("thumb", 400, 400, 80).expect("spec");
        let better = VariantSpec::new("thumb", 320, 320, 90).expect("spec");
        assert_ne!(recipe_hash(&thumb), recipe_hash(&bigger));
        assert_ne!(recipe_hash(&thumb), recipe_hash(&better));
    }

    #[test]
    fn only_png_colour_types_with_alpha_count_as_alpha() {
        let mut ihdr = vec![0u8; 26];
        for (t, alpha) in [(0, false), (2, false), (3, false), (4, true), (6, true)] {
            ihdr[25] = t;
            assert_eq!(png_has_alpha(&ihdr), alpha, "colour type {t}");
        }
        assert!(!png_has_alpha(&[]));
    }
}
