//! The assembled service, [`Shoebox`]: the host's pool, the buckets, the kinds, the limits and
//! where its routes are mounted. Every operation, job and route takes it. Cheap to clone.
//!
//! The operations themselves live beside what they do (`impl Shoebox` blocks in `uploads`,
//! `photos`, `variants` and `jobs`), so this module depends on none of them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::db::Db;
use crate::db::form_writer::FormWriter;
use crate::domain::{BucketAccess, Clock, Kind, KindError, Kinds, Millis, SystemClock};
use crate::storage::{BucketSettings, SigningCredentials, Storage, StorageError};

/// Photos that users upload, as one service: what a host builds once at start-up and keeps in
/// its state. Cheap to clone (one `Arc`).
///
/// Built on the host's own pool, with its buckets and kinds; here SQLite in memory and the
/// in-process S3 endpoint, so it runs anywhere:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use shoebox::{Actor, ConfiguredKind, EmbeddedS3Options, FormStyle, ImageLimits, PhotoState, Shoebox, SignRequest, UserId};
///
/// let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
/// let avatar = ConfiguredKind::new("avatar", None, "public", &["image/jpeg".into()], 5_000_000, ImageLimits::default())?;
/// let s3 = tempfile::tempdir()?;
/// let shoebox = Shoebox::builder(pool)
///     .kind(avatar)
///     .base_path("/media")
///     .embedded_s3(EmbeddedS3Options::new(s3.path(), &["http://localhost:3000"]))
///     .build()
///     .await?;
/// shoebox.migrate().await?;
///
/// // A form for exactly one upload, and the row that tracks it from now on.
/// let ann = UserId::new("ann")?;
/// let request = SignRequest { kind: "avatar".into(), filename: None, content_type: Some("image/jpeg".into()), size: Some(1000) };
/// let signed = shoebox.sign(&ann, request, FormStyle::Script).await?;
/// assert!(signed.form.fields.iter().any(|(k, v)| k == "key" && v.starts_with("incoming/")));
/// let photo = shoebox.photo(signed.photo_id).await?.expect("recorded before any byte is sent");
/// assert_eq!((photo.state, photo.uploader), (PhotoState::Signed, ann.clone()));
/// // Nothing was uploaded yet, so completing it says so (and the form stays usable).
/// assert!(shoebox.complete(&Actor::User(ann), signed.photo_id).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Shoebox(Arc<Inner>);

/// What the service holds. The crate's own modules reach it through `Deref`; nothing in it is
/// public, so hosts see only [`Shoebox`]'s methods.
#[doc(hidden)]
#[derive(Debug)]
pub struct Inner {
    pub(crate) db: Db,
    pub(crate) storage: Storage,
    /// The buckets as configured, with the embedded endpoint filled in when it is used.
    bucket_settings: Vec<BucketSettings>,
    pub(crate) kinds: Kinds,
    pub(crate) limits: Limits,
    pub(crate) web: WebSettings,
    pub(crate) clock: Arc<dyn Clock>,
    /// Bounds image work on the blocking pool: it must not starve the pool or the dyno's two
    /// cores.
    blocking: Semaphore,
    /// One background rendition (AVIF) at a time, so that the others' permits stay free for
    /// the work requests wait on.
    background: Semaphore,
    /// Bounds how many upload verifications hold a whole upload in memory at once.
    pub(crate) verifying: Semaphore,
    /// Signing's queue of forms waiting to be written together (group commit).
    pub(crate) forms: FormWriter,
    /// Variant objects this process has written.
    variant_writes: AtomicU64,
    /// The in-process S3 endpoint, when the builder started one; it stops with the service.
    #[cfg(feature = "embedded-s3")]
    _embedded: Option<crate::storage::embedded::EmbeddedS3>,
}

impl std::ops::Deref for Shoebox {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Upload and image-work limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Upload forms one uploader may be issued per minute (pages and scripts counted apart).
    pub forms_per_minute: u32,
    /// How long a form the page's script asks for just before it uploads stays valid.
    pub api_form_ttl: Duration,
    /// How long the form rendered into the page (for browsers without JavaScript) stays valid.
    pub page_form_ttl: Duration,
    /// How many image jobs (verification decodes, variants) may run at once on the blocking
    /// pool: each holds a decoded image, so this bounds memory.
    pub blocking_permits: usize,
    /// How long an upload may wait to be attached before clean-up deletes it.
    pub clean_up_grace: Duration,
    /// How long a completion waits for another completion of the same upload (a retry, a
    /// second tab, another dyno) that is verifying it, before answering
    /// [`UploadError::Verifying`](crate::UploadError::Verifying) (409 with `Retry-After`). Keep
    /// it below the request timeout.
    pub verification_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            forms_per_minute: 30,
            api_form_ttl: Duration::from_secs(10 * 60),
            page_form_ttl: Duration::from_secs(60 * 60),
            blocking_permits: 2,
            clean_up_grace: Duration::from_secs(24 * 60 * 60),
            verification_wait: Duration::from_secs(10),
        }
    }
}

/// Where the service is reached, for the URLs it writes and the origin checks it makes.
#[derive(Debug, Clone, Default)]
pub(crate) struct WebSettings {
    /// The path the host nests Shoebox's routes under (`/media`), or empty at the root.
    pub(crate) base_path: String,
    /// The app's own origin when configured (`https://photos.example.com`): what production
    /// sets, so no request can choose where S3 sends a browser back to.
    pub(crate) public_url: Option<url::Url>,
    /// Without `public_url`, the hosts whose `Host` header is taken as the app's origin.
    pub(crate) allowed_hosts: Vec<String>,
    /// Origins of the buckets the pages talk to, for the Content-Security-Policy.
    pub(crate) storage_origins: Vec<String>,
}

/// Why a [`Shoebox`] could not be built. All of these are the host's configuration, said at
/// start-up; only [`BuildError::Storage`] with no credentials in the environment may be the
/// deployment's instead.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A kind is malformed, duplicated or names a bucket that was not configured.
    #[error(transparent)]
    Kind(#[from] KindError),
    /// A bucket's client could not be made (no credentials).
    #[error("setting up the buckets: {0}")]
    Storage(#[from] StorageError),
    /// Two buckets share a name.
    #[error("two buckets are called {0:?}; each bucket needs its own name")]
    DuplicateBucket(String),
    /// The base path is not `""` or `/a/path` without a trailing slash.
    #[error("the base path must be empty or start with / and not end with one (like /media), not {0:?}")]
    BasePath(String),
    /// The embedded S3 endpoint could not start (its folder or its port).
    #[error("starting the embedded S3 endpoint: {0}")]
    Embedded(String),
}

/// Builds a [`Shoebox`]: the host's pool, then buckets, kinds and settings.
#[derive(Debug)]
pub struct ShoeboxBuilder {
    db: Db,
    buckets: Vec<BucketSettings>,
    kinds: Vec<Arc<dyn Kind>>,
    limits: Limits,
    web: WebSettings,
    clock: Arc<dyn Clock>,
    credentials: Option<SigningCredentials>,
    #[cfg(feature = "embedded-s3")]
    embedded: Option<EmbeddedS3Options>,
}

/// Where the in-process S3 endpoint keeps its files and listens, and which pages may post
/// forms to it (its CORS). For development and tests: nothing to install, no cloud account.
#[cfg(feature = "embedded-s3")]
#[derive(Debug, Clone)]
pub struct EmbeddedS3Options {
    /// The folder holding a folder per bucket.
    pub root: PathBuf,
    /// Where it listens; port 0 picks a free one.
    pub listen: std::net::SocketAddr,
    /// The app's origins (`http://localhost:3000`), whose pages post upload forms to it.
    pub origins: Vec<String>,
}

#[cfg(feature = "embedded-s3")]
impl EmbeddedS3Options {
    /// Files under `root`, on a free loopback port, for pages served from `origins`.
    pub fn new(root: impl Into<PathBuf>, origins: &[&str]) -> Self {
        Self {
            root: root.into(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        }
    }
}

impl ShoeboxBuilder {
    /// Add a bucket.
    #[must_use]
    pub fn bucket(mut self, bucket: BucketSettings) -> Self {
        self.buckets.push(bucket);
        self
    }

    /// Add a kind of photo.
    #[must_use]
    pub fn kind(self, kind: impl Kind) -> Self {
        self.shared_kind(Arc::new(kind))
    }

    /// Add a kind the host also keeps a handle on.
    #[must_use]
    pub fn shared_kind(mut self, kind: Arc<dyn Kind>) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Upload and image-work limits (default: [`Limits::default`]).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The path the host nests Shoebox's routers under (`/media`; default: the root). Every
    /// URL Shoebox writes starts with it.
    #[must_use]
    pub fn base_path(mut self, path: &str) -> Self {
        path.clone_into(&mut self.web.base_path);
        self
    }

    /// The app's public origin (`https://photos.example.com`): where S3 sends a browser back
    /// after a no-JavaScript upload, and what `Origin` must say. Set it in production.
    #[must_use]
    pub fn public_url(mut self, url: url::Url) -> Self {
        self.web.public_url = Some(url);
        self
    }

    /// Without a public URL, host names whose `Host` header is taken as the app's origin,
    /// besides `localhost`, `127.0.0.1` and `[::1]`; any other host gets a 400.
    #[must_use]
    pub fn allowed_hosts(mut self, hosts: impl IntoIterator<Item = String>) -> Self {
        self.web.allowed_hosts.extend(hosts.into_iter().map(|h| h.to_ascii_lowercase()));
        self
    }

    /// The clock the lifecycle reads (default: the system's).
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sign with these keys instead of the AWS credentials chain (an S3-compatible service
    /// whose keys the host holds).
    #[must_use]
    pub fn credentials(mut self, credentials: SigningCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Start the in-process S3 endpoint and point every bucket at it (with no bucket added,
    /// a `public` and a `private` one). It stops when the last clone of the service is dropped.
    #[cfg(feature = "embedded-s3")]
    #[must_use]
    pub fn embedded_s3(mut self, options: EmbeddedS3Options) -> Self {
        self.embedded = Some(options);
        self
    }

    /// Check the kinds against the buckets, make a client per bucket (starting the embedded
    /// endpoint first if asked), and assemble the service. Does not touch the database: run
    /// [`Shoebox::migrate`] (or `shoebox migrate` in a release phase) before serving.
    pub async fn build(mut self) -> Result<Shoebox, BuildError> {
        let base = &self.web.base_path;
        if !base.is_empty() && (!base.starts_with('/') || base.ends_with('/') || base.contains(['?', '#', ' '])) {
            return Err(BuildError::BasePath(base.clone()));
        }
        #[cfg(feature = "embedded-s3")]
        let embedded = match self.embedded.take() {
            Some(options) => {
                if self.buckets.is_empty() {
                    self.buckets = vec![
                        BucketSettings::public("public", "shoebox-public"),
                        BucketSettings::private("private", "shoebox-private"),
                    ];
                }
                let largest = self.kinds.iter().map(|k| k.max_bytes()).max().unwrap_or(0);
                let e = crate::storage::embedded::start(
                    &options.root,
                    options.listen,
                    &self.buckets,
                    &options.origins,
                    largest,
                )
                .await
                .map_err(|e| BuildError::Embedded(format!("{e:#}")))?;
                for b in &mut self.buckets {
                    b.endpoint = Some(e.endpoint.clone());
                }
                self.credentials = Some(e.credentials.clone());
                tracing::info!(endpoint = %e.endpoint, root = %options.root.display(), "embedded S3 endpoint started");
                Some(e)
            }
            None => None,
        };
        for (i, b) in self.buckets.iter().enumerate() {
            if self.buckets[..i].iter().any(|c| c.name == b.name) {
                return Err(BuildError::DuplicateBucket(b.name.clone()));
            }
        }
        let kinds = Kinds::new(self.kinds, self.buckets.iter().map(|b| b.name.as_str()))?;
        let storage = Storage::new(&self.buckets, self.credentials.as_ref()).await?;
        let mut web = self.web;
        web.storage_origins = storage
            .buckets()
            .flat_map(|b| b.origins())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "[::1]".to_owned()];
        hosts.append(&mut web.allowed_hosts);
        web.allowed_hosts = hosts;
        let permits = self.limits.blocking_permits.max(1);
        crate::imaging::set_max_concurrent_images(permits);
        Ok(Shoebox(Arc::new(Inner {
            db: self.db,
            storage,
            bucket_settings: self.buckets,
            kinds,
            limits: self.limits,
            web,
            clock: self.clock,
            blocking: Semaphore::new(permits),
            background: Semaphore::new(1),
            verifying: Semaphore::new(permits),
            forms: FormWriter::default(),
            variant_writes: AtomicU64::new(0),
            #[cfg(feature = "embedded-s3")]
            _embedded: embedded,
        })))
    }
}

impl Shoebox {
    /// Start building a service on the host's pool (a `sqlx::PgPool` or `sqlx::SqlitePool`,
    /// or a [`Db`] from [`Db::connect`]).
    pub fn builder(db: impl Into<Db>) -> ShoeboxBuilder {
        ShoeboxBuilder {
            db: db.into(),
            buckets: Vec::new(),
            kinds: Vec::new(),
            limits: Limits::default(),
            web: WebSettings::default(),
            clock: Arc::new(SystemClock),
            credentials: None,
            #[cfg(feature = "embedded-s3")]
            embedded: None,
        }
    }

    /// Create or update Shoebox's tables in the host's database (see [`Db::migrate`]).
    pub async fn migrate(&self) -> Result<(), crate::db::DbError> {
        self.db.migrate().await
    }

    /// The pool Shoebox runs on (the host's own).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The buckets' clients, for the doctor.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The buckets as configured (with the embedded endpoint filled in when it is used), for
    /// `s3-config` and the doctor.
    pub fn bucket_settings(&self) -> &[BucketSettings] {
        &self.bucket_settings
    }

    /// The kinds, by name.
    pub fn kinds(&self) -> &Kinds {
        &self.kinds
    }

    /// The limits it was built with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The path its routes are nested under (`/media`), or `""` at the root.
    pub fn base_path(&self) -> &str {
        &self.web.base_path
    }

    /// `path` under the base path: every URL Shoebox writes goes through here. The root of
    /// the routes is the base path itself (`/media`, not `/media/`: a nested router's `/`).
    pub(crate) fn url(&self, path: &str) -> String {
        home_or(&self.web.base_path, path)
    }

    /// Now, by the service's clock.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The configured buckets' names, with whether each is private.
    pub fn buckets(&self) -> impl Iterator<Item = (&str, BucketAccess)> {
        self.storage.buckets().map(|b| (b.name(), b.access()))
    }

    /// Whether photos of this kind live in a private bucket (served only through the proxy).
    pub fn is_private(&self, kind: &dyn Kind) -> bool {
        self.storage.bucket(kind.bucket()).is_ok_and(|b| b.access() == BucketAccess::Private)
    }

    /// Run CPU-heavy image work `f` on the blocking pool, at most `blocking_permits` at a time.
    pub(crate) async fn run_blocking<T, F>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // The semaphore is never closed, so acquiring only fails if it were; then run anyway.
        let _permit = self.blocking.acquire().await.ok();
        match tokio::task::spawn_blocking(f).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Wait for this process's turn at background image work (see `variants::make_background`);
    /// the turn lasts as long as the guard.
    pub(crate) async fn background_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // Never closed, as `blocking`.
        self.background.acquire().await.ok()
    }

    /// Set the gauges that are read rather than counted to their values now: the database
    /// pool's connections and idle ones, and the image-work permits taken and there are (see
    /// [`telemetry`](crate::telemetry)). Call it before each scrape.
    pub fn record_gauges(&self) {
        use crate::telemetry::{DB_POOL_CONNECTIONS, DB_POOL_IDLE, IMAGE_PERMITS, IMAGE_PERMITS_IN_USE};
        let (size, idle) = match &self.db {
            Db::Postgres(p) => (p.size(), p.num_idle()),
            Db::Sqlite(p) => (p.size(), p.num_idle()),
        };
        metrics::gauge!(DB_POOL_CONNECTIONS).set(f64::from(size));
        metrics::gauge!(DB_POOL_IDLE).set(idle as f64);
        let permits = self.limits.blocking_permits.max(1);
        let in_use = permits.saturating_sub(self.blocking.available_permits());
        metrics::gauge!(IMAGE_PERMITS).set(permits as f64);
        metrics::gauge!(IMAGE_PERMITS_IN_USE).set(in_use as f64);
    }

    pub(crate) fn count_variant_write(&self) {
        self.variant_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Variant objects this process has written since it started.
    #[doc(hidden)] // For the tests that prove a variant is made once under concurrent first
    // requests; the operations' metrics will report it properly.
    pub fn variant_writes(&self) -> u64 {
        self.variant_writes.load(Ordering::Relaxed)
    }
}

/// `path` under `base`, where `/` under a non-empty base is the base itself.
pub(crate) fn home_or(base: &str, path: &str) -> String {
    if path == "/" && !base.is_empty() { base.to_owned() } else { format!("{base}{path}") }
}
