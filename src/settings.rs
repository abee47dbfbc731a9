//! Settings from the environment and an optional TOML file.
//!
//! With nothing configured, Shoebox runs on embedded defaults: a SQLite file and an in-process
//! S3-compatible endpoint under `./data`, one public and one private bucket and two example
//! kinds. Production sets `DATABASE_URL`, `PORT` and the standard AWS variables, and names its
//! buckets either in the environment alone (`SHOEBOX_PUBLIC_BUCKET`, `SHOEBOX_PRIVATE_BUCKET`,
//! for the example kinds) or in the TOML file named by `SHOEBOX_CONFIG`, whose strings may take
//! values from the environment (`bucket = "${PHOTOS_BUCKET}"`). Secrets are read from the
//! environment only (the file names the variables, never the values), and `Debug` redacts them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

use shoebox::{
    BucketSettings, ConfiguredKind, ImageLimits, KeepRules, Kind, KindError, Limits, PrivateDelivery, VariantSpec,
};

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the web server listens: `0.0.0.0:$PORT` (Heroku routes to it), default port 3000.
    pub listen: SocketAddr,
    /// The address people use to reach the app, when it differs from what the request says
    /// (behind a proxy). Used for the upload redirect and to decide on `Secure` cookies.
    pub public_url: Option<url::Url>,
    /// Host names the app answers to when `public_url` is not set (its origin then follows the
    /// request's `Host`, which a client chooses). Always the loopback names, plus
    /// `SHOEBOX_ALLOWED_HOSTS` (comma-separated).
    pub allowed_hosts: Vec<String>,
    pub database_url: Secret,
    pub storage: StorageSettings,
    pub buckets: Vec<BucketSettings>,
    pub kinds: Vec<KindSettings>,
    /// Shoebox's own limits (forms, image work, grace period).
    pub limits: Limits,
    /// The reference app's.
    pub app: AppLimits,
}

/// Where objects live.
#[derive(Debug, Clone)]
pub enum StorageSettings {
    /// The in-process S3-compatible endpoint, storing objects under `root`.
    Embedded { root: PathBuf, listen: SocketAddr },
    /// Real S3 or another S3-compatible service, described by each bucket.
    External,
    /// Every bucket at one S3-compatible endpoint that is already running, signed with these
    /// keys: what the tests use, with an embedded endpoint they started (and can stop).
    Endpoint { url: String, credentials: shoebox::SigningCredentials },
}

/// One configured kind, as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindSettings {
    pub name: String,
    pub label: Option<String>,
    pub bucket: String,
    #[serde(default = "default_types")]
    pub types: Vec<String>,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    #[serde(default = "default_max_side")]
    pub max_width: u32,
    #[serde(default = "default_max_side")]
    pub max_height: u32,
    /// The most bytes of this kind each uploader may hold (unset: no limit).
    #[serde(default)]
    pub max_bytes_per_user: Option<u64>,
    /// The most photos of this kind each uploader may hold (unset: no limit).
    #[serde(default)]
    pub max_photos_per_user: Option<u64>,
    /// `"proxy"` (the default) or `"redirect"`: how viewers get this kind's private photos.
    #[serde(default)]
    pub private_delivery: PrivateDelivery,
    /// Delete an in-use photo this many days after it was attached.
    pub keep_for_days: Option<u32>,
    /// Keep only each uploader's latest saved photo of this kind.
    #[serde(default)]
    pub latest_only: bool,
    /// The variants made of each photo; unset means `thumb` (320 px) and `display` (1280 px),
    /// an empty list means none.
    #[serde(default)]
    pub variants: Option<Vec<VariantSettings>>,
}

/// One variant of a kind, as written in the file: `{ name = "thumb", max_width = 320,
/// max_height = 320, quality = 80 }`; `webp_quality = 86` adds a lossy WebP twin, and
/// `avif_quality = 86` an AVIF twin made in the background.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSettings {
    pub name: String,
    pub max_width: u32,
    pub max_height: u32,
    #[serde(default = "default_variant_quality")]
    pub quality: u8,
    /// The quality of its WebP twin; unset, it has none.
    #[serde(default)]
    pub webp_quality: Option<u8>,
    /// The quality of its AVIF twin; unset, it has none.
    #[serde(default)]
    pub avif_quality: Option<u8>,
}

fn default_variant_quality() -> u8 {
    VariantSpec::DEFAULT_QUALITY
}

/// The reference app's own limits: its accounts, its process.
#[derive(Debug, Clone)]
pub struct AppLimits {
    /// How long a login lasts.
    pub session_ttl: Duration,
    /// How many password hashes may run at once: apart from image work, so a login flood
    /// cannot slow uploads. Each Argon2id hash holds 19 MiB and one core for ~20 ms.
    pub hashing_permits: usize,
    /// Wrong passwords allowed per client address, and per account, in a window.
    pub login_per_address: AttemptLimit,
    /// See [`AppLimits::login_per_address`].
    pub login_per_account: AttemptLimit,
    /// Sign-up attempts allowed per client address, and per email address, in a window.
    pub signup_per_address: AttemptLimit,
    /// See [`AppLimits::signup_per_address`].
    pub signup_per_account: AttemptLimit,
    /// Whose word to take for the client's address (`SHOEBOX_TRUST_PROXY`).
    pub trust_proxy: TrustProxy,
    /// Run clean-up inside `serve` this often (`SHOEBOX_CLEAN_UP_EVERY`, e.g. `1h`); `None`
    /// leaves it to a scheduler running `shoebox clean-up`.
    pub clean_up_every: Option<Duration>,
    /// Postgres connections `serve` keeps open (`SHOEBOX_DATABASE_CONNECTIONS`). Every dyno
    /// and one-off job has its own pool, and the plan caps them all together (20 on Heroku's
    /// entry plans), so this is the plan's cap shared out, not a speed knob to turn up.
    pub database_connections: u32,
    /// How long `serve` lets requests in flight finish after SIGTERM before it stops anyway
    /// (`SHOEBOX_DRAIN_SECS`). Heroku sends SIGKILL 30 s after SIGTERM, Docker 10 s after
    /// (`docker stop`'s default): the drain must end before that.
    pub drain: Duration,
}

/// At most `max` attempts in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimit {
    pub max: u32,
    pub window: Duration,
}

/// Where the client's address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustProxy {
    /// The TCP peer: nothing in the request is believed.
    #[default]
    None,
    /// Heroku's router: it appends the address it saw to `X-Forwarded-For`, so the LAST entry
    /// is the client and every earlier one is whatever the client chose to send.
    Heroku,
}

impl Default for AppLimits {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            hashing_permits: 1,
            // An office or a mobile carrier puts many people behind one address: generous per
            // address, strict per account, where guessing is aimed.
            login_per_address: AttemptLimit { max: 30, window: Duration::from_secs(15 * 60) },
            login_per_account: AttemptLimit { max: 10, window: Duration::from_secs(15 * 60) },
            signup_per_address: AttemptLimit { max: 20, window: Duration::from_secs(60 * 60) },
            signup_per_account: AttemptLimit { max: 5, window: Duration::from_secs(60 * 60) },
            trust_proxy: TrustProxy::None,
            clean_up_every: None,
            database_connections: DEFAULT_CONNECTIONS,
            drain: DEFAULT_DRAIN,
        }
    }
}

/// How long `serve` drains unless configured: inside the 30 s Heroku allows after SIGTERM.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(25);

/// Postgres connections per pool unless configured: entry Heroku Postgres plans allow 20 for
/// all dynos and one-off jobs together.
pub const DEFAULT_CONNECTIONS: u32 = 10;

/// A string that never appears in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    buckets: Vec<BucketSettings>,
    #[serde(default)]
    kinds: Vec<KindSettings>,
    forms_per_minute: Option<u32>,
    /// Hours an upload may wait to be attached before clean-up deletes it (default 24).
    clean_up_grace_hours: Option<u64>,
}

fn default_types() -> Vec<String> {
    ["image/jpeg", "image/png", "image/webp", "image/gif"].map(String::from).to_vec()
}
fn default_max_bytes() -> u64 {
    15_000_000
}
fn default_max_pixels() -> u64 {
    50_000_000
}
fn default_max_side() -> u32 {
    12_000
}

impl Settings {
    /// Read settings from the process environment (and the file it names).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read settings through `env`, so tests can supply their own environment.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let port: u16 = match env("PORT") {
            Some(p) => p.parse().with_context(|| format!("PORT must be a port number, not {p:?}"))?,
            None => 3000,
        };
        let data_dir = PathBuf::from(env("SHOEBOX_DATA_DIR").unwrap_or_else(|| "data".into()));
        let file = match env("SHOEBOX_CONFIG").filter(|p| !p.is_empty()) {
            Some(path) => read_file_config(Path::new(&path), &env)?,
            None => FileConfig::default(),
        };
        let database_url = match env("DATABASE_URL") {
            Some(url) => url,
            None => format!("sqlite://{}?mode=rwc", data_dir.join("shoebox.db").display()),
        };
        let public_url = env("SHOEBOX_PUBLIC_URL")
            .map(|u| url::Url::parse(&u).with_context(|| format!("SHOEBOX_PUBLIC_URL is not a URL: {u:?}")))
            .transpose()?;

        let mut allowed_hosts = default_allowed_hosts();
        if let Some(list) = env("SHOEBOX_ALLOWED_HOSTS") {
            allowed_hosts.extend(list.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()));
        }

        let from_env = buckets_from_env(&env, !file.kinds.is_empty())?;
        let (storage, mut buckets, kinds) = match (file.buckets.is_empty(), from_env) {
            (true, None) => {
                let listen = env("SHOEBOX_EMBEDDED_S3_ADDR").unwrap_or_else(|| "127.0.0.1:0".into());
                let storage = StorageSettings::Embedded {
                    root: data_dir.join("s3"),
                    listen: listen.parse().with_context(|| format!("SHOEBOX_EMBEDDED_S3_ADDR: {listen:?}"))?,
                };
                let kinds = if file.kinds.is_empty() { example_kinds() } else { file.kinds };
                (storage, embedded_buckets(), kinds)
            }
            (true, Some(buckets)) => {
                let kinds = if file.kinds.is_empty() { example_kinds() } else { file.kinds };
                (StorageSettings::External, buckets, kinds)
            }
            (false, None) => (StorageSettings::External, file.buckets, file.kinds),
            (false, Some(_)) => anyhow::bail!(
                "buckets are described both in the config file and in SHOEBOX_PUBLIC_BUCKET / SHOEBOX_PRIVATE_BUCKET: \
                 describe them in one place"
            ),
        };
        // The AWS SDKs' own variables for an S3-compatible service (R2, B2, MinIO): the SDK
        // would send requests there anyway, so forms and public URLs must point there too.
        let endpoint = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")).filter(|e| !e.is_empty());
        if let (StorageSettings::External, Some(endpoint)) = (&storage, endpoint) {
            for b in buckets.iter_mut().filter(|b| b.endpoint.is_none()) {
                b.endpoint = Some(endpoint.clone());
            }
        }
        let mut limits = Limits::default();
        let mut app = AppLimits::default();
        if let Some(n) = file.forms_per_minute {
            limits.forms_per_minute = n;
        }
        app.trust_proxy = match env("SHOEBOX_TRUST_PROXY").as_deref() {
            None | Some("" | "none") => TrustProxy::None,
            Some("heroku") => TrustProxy::Heroku,
            Some(other) => anyhow::bail!("SHOEBOX_TRUST_PROXY must be heroku or none, not {other:?}"),
        };
        if let Some(every) = env("SHOEBOX_CLEAN_UP_EVERY").filter(|v| !v.is_empty()) {
            let parsed = parse_interval(&every);
            app.clean_up_every = Some(parsed.with_context(|| {
                format!("SHOEBOX_CLEAN_UP_EVERY must be a number and a unit (30m, 1h, 1d), not {every:?}")
            })?);
        }
        if let Some(n) = env("SHOEBOX_DATABASE_CONNECTIONS").filter(|v| !v.is_empty()) {
            app.database_connections = n.parse().ok().filter(|n| (1..=1000).contains(n)).with_context(|| {
                format!("SHOEBOX_DATABASE_CONNECTIONS must be a number of connections from 1 to 1000, not {n:?}")
            })?;
        }
        if let Some(n) = env("SHOEBOX_DRAIN_SECS").filter(|v| !v.is_empty()) {
            let secs =
                n.parse().ok().filter(|n| *n <= 3600).with_context(|| {
                    format!("SHOEBOX_DRAIN_SECS must be a number of seconds from 0 to 3600, not {n:?}")
                })?;
            app.drain = Duration::from_secs(secs);
        }
        if let Some(h) = file.clean_up_grace_hours {
            limits.clean_up_grace = Duration::from_secs(h.saturating_mul(3600));
        }
        let settings = Self {
            listen: SocketAddr::from(([0, 0, 0, 0], port)),
            public_url,
            allowed_hosts,
            database_url: Secret::new(database_url),
            storage,
            buckets,
            kinds,
            limits,
            app,
        };
        Ok(settings)
    }
}

/// The origins the app's pages are served from, which each bucket's CORS must allow:
/// `SHOEBOX_ORIGINS` (comma-separated), else the origin of `SHOEBOX_PUBLIC_URL`, else none.
/// Read apart from [`Settings`] because only `s3-config` and `doctor` need them.
pub fn app_origins(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Vec<String>> {
    let raw: Vec<String> = match env("SHOEBOX_ORIGINS") {
        Some(list) => list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        None => env("SHOEBOX_PUBLIC_URL").into_iter().collect(),
    };
    raw.iter()
        .map(|o| {
            let url =
                url::Url::parse(o).with_context(|| format!("{o:?} is not an origin like https://app.example.com"))?;
            if !matches!(url.scheme(), "http" | "https") {
                anyhow::bail!("origin {o:?} must be http or https");
            }
            Ok(url.origin().ascii_serialization())
        })
        .collect()
}

/// The names a browser on this machine uses: enough for `cargo run` and the tests.
pub fn default_allowed_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "[::1]"].map(String::from).to_vec()
}

/// `30m`, `1h`, `2d`, `90s`: the interval as people write it.
fn parse_interval(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// The two buckets the example kinds use, from the environment alone (Heroku's way, and
/// Docker's): `SHOEBOX_PUBLIC_BUCKET` and `SHOEBOX_PRIVATE_BUCKET` name the S3 buckets behind
/// `public` and `private`, in `AWS_REGION`, the public one behind `SHOEBOX_PUBLIC_CDN_URL` if
/// set. `None` when neither is set. Both are needed unless the config file describes kinds of
/// its own (which may use one).
fn buckets_from_env(
    env: &impl Fn(&str) -> Option<String>,
    own_kinds: bool,
) -> anyhow::Result<Option<Vec<BucketSettings>>> {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_owned());
    let (public, private) = (var("SHOEBOX_PUBLIC_BUCKET"), var("SHOEBOX_PRIVATE_BUCKET"));
    if public.is_none() && private.is_none() {
        return Ok(None);
    }
    if !own_kinds && (public.is_none() || private.is_none()) {
        anyhow::bail!(
            "set both SHOEBOX_PUBLIC_BUCKET and SHOEBOX_PRIVATE_BUCKET: the example kinds keep profile photos in \
             the public one and identity documents in the private one (or describe kinds in SHOEBOX_CONFIG)"
        );
    }
    let region = var("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
    let mut buckets = Vec::new();
    if let Some(name) = public {
        let mut b = BucketSettings::public("public", &name).in_region(&region);
        if let Some(cdn) = var("SHOEBOX_PUBLIC_CDN_URL") {
            b = b.behind_cdn(&cdn);
        }
        buckets.push(b);
    }
    if let Some(name) = private {
        buckets.push(BucketSettings::private("private", &name).in_region(&region));
    }
    Ok(Some(buckets))
}

/// Read the TOML file, with `${NAME}` in any string replaced by the environment variable NAME,
/// so a committed file can take bucket names, regions and endpoints from each deployment's
/// environment. A variable that is not set is an error naming it.
fn read_file_config(path: &Path, env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the config file {}", path.display()))?;
    let mut value: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing the config file {}", path.display()))?;
    expand_strings(&mut value, env).with_context(|| format!("in the config file {}", path.display()))?;
    value.try_into().with_context(|| format!("reading the config file {}", path.display()))
}

fn expand_strings(value: &mut toml::Value, env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    match value {
        toml::Value::String(s) => *s = expand(s, env)?,
        toml::Value::Array(items) => items.iter_mut().try_for_each(|v| expand_strings(v, env))?,
        toml::Value::Table(table) => table.iter_mut().try_for_each(|(_, v)| expand_strings(v, env))?,
        _ => {}
    }
    Ok(())
}

/// `acme-${STAGE}-photos` with STAGE=prod is `acme-prod-photos`. Only `${NAME}` is special.
fn expand(text: &str, env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').with_context(|| format!("{text:?} has a ${{ without its closing }}"))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            anyhow::bail!("{text:?}: ${{{name}}} is not a variable name (letters, digits and _)");
        }
        let value = env(name).with_context(|| format!("{text:?} uses ${{{name}}}, but {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The embedded endpoint's two buckets.
pub fn embedded_buckets() -> Vec<BucketSettings> {
    // The embedded endpoint's buckets exist only for this database.
    vec![
        BucketSettings::public("public", "shoebox-public").in_region("us-east-1").owned(),
        BucketSettings::private("private", "shoebox-private").in_region("us-east-1").owned(),
    ]
}

/// The kinds the settings describe, as values Shoebox checks when it is built (each names a
/// configured bucket, no two share a name, each accepts only types Shoebox can verify).
pub fn configured_kinds(settings: &Settings) -> Result<Vec<Arc<dyn Kind>>, KindError> {
    settings
        .kinds
        .iter()
        .map(|k| {
            let limits = ImageLimits { max_width: k.max_width, max_height: k.max_height, max_pixels: k.max_pixels };
            let keep = KeepRules { keep_for_days: k.keep_for_days, latest_only: k.latest_only };
            let mut kind = ConfiguredKind::new(&k.name, k.label.as_deref(), &k.bucket, &k.types, k.max_bytes, limits)?
                .with_private_delivery(k.private_delivery)
                .with_keep(keep)
                .with_quota(k.max_bytes_per_user, k.max_photos_per_user)?;
            if let Some(variants) = &k.variants {
                let specs = variants
                    .iter()
                    .map(|v| {
                        VariantSpec::new(&v.name, v.max_width, v.max_height, v.quality)?
                            .with_webp(v.webp_quality)?
                            .with_avif(v.avif_quality)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                kind = kind.with_variants(specs)?;
            }
            Ok(Arc::new(kind) as Arc<dyn Kind>)
        })
        .collect()
}

/// Example kinds for a fresh checkout: a public avatar and a private identity document.
pub fn example_kinds() -> Vec<KindSettings> {
    let kind = |name: &str, label: &str, bucket: &str, max_bytes, latest_only| KindSettings {
        name: name.into(),
        label: Some(label.into()),
        bucket: bucket.into(),
        types: default_types(),
        max_bytes,
        max_pixels: default_max_pixels(),
        max_width: default_max_side(),
        max_height: default_max_side(),
        max_bytes_per_user: None,
        max_photos_per_user: None,
        private_delivery: PrivateDelivery::Proxy,
        keep_for_days: None,
        latest_only,
        variants: None,
    };
    vec![
        // A profile photo: only the latest saved one is kept.
        kind("avatar", "Profile photo", "public", 10_000_000, true),
        kind("id_document", "Identity document", "private", 15_000_000, false),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoebox::BucketAccess;
    use std::collections::HashMap;

    fn settings_with(kinds: &str) -> Settings {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, kinds).expect("write");
        let path = path.to_str().expect("utf8").to_owned();
        Settings::from_lookup(|k| (k == "SHOEBOX_CONFIG").then(|| path.clone())).expect("settings")
    }

    #[test]
    fn the_embedded_defaults_have_the_two_example_kinds() {
        let kinds = configured_kinds(&Settings::from_lookup(|_| None).expect("defaults")).expect("kinds");
        assert_eq!(kinds.iter().map(|k| k.name()).collect::<Vec<_>>(), ["avatar", "id_document"]);
        assert_eq!(kinds[1].bucket(), "private");
    }

    #[test]
    fn a_kind_naming_an_unverifiable_type_is_refused() {
        let svg = "[[kinds]]\nname = \"x\"\nbucket = \"public\"\ntypes = [\"image/svg+xml\"]\n";
        let err = configured_kinds(&settings_with(svg)).expect_err("svg");
        assert!(err.to_string().contains("svg"), "{err}");
    }

    #[test]
    fn a_kind_may_name_its_own_variants_in_toml() {
        let toml = "[[kinds]]\nname = \"x\"\nbucket = \"public\"\n\
                    [[kinds.variants]]\nname = \"small\"\nmax_width = 100\nmax_height = 50\n";
        let kinds = configured_kinds(&settings_with(toml)).expect("kinds");
        assert_eq!(kinds[0].variants(), [VariantSpec::new("small", 100, 50, 80).expect("spec")]);
        assert_eq!(kinds[0].variants()[0].webp_quality, None, "JPEG only unless asked");
        let twin = "[[kinds]]\nname = \"x\"\nbucket = \"public\"\n\
                    [[kinds.variants]]\nname = \"small\"\nmax_width = 100\nmax_height = 50\nwebp_quality = 86\n";
        let kinds = configured_kinds(&settings_with(twin)).expect("kinds");
        assert_eq!(kinds[0].variants()[0].webp_quality, Some(86));
        let bad = twin.replace("86", "101");
        assert!(configured_kinds(&settings_with(&bad)).expect_err("101").to_string().contains("WebP quality"));
        assert_eq!(kinds[0].variants()[0].avif_quality, None, "no AVIF unless asked");
        let avif = twin.replace("webp_quality = 86", "avif_quality = 88");
        let kinds = configured_kinds(&settings_with(&avif)).expect("kinds");
        assert_eq!((kinds[0].variants()[0].webp_quality, kinds[0].variants()[0].avif_quality), (None, Some(88)));
        let bad = avif.replace("88", "0");
        assert!(configured_kinds(&settings_with(&bad)).expect_err("0").to_string().contains("AVIF quality"));
        let bad = "[[kinds]]\nname = \"x\"\nbucket = \"public\"\n\
                   [[kinds.variants]]\nname = \"original\"\nmax_width = 1\nmax_height = 1\n";
        assert!(configured_kinds(&settings_with(bad)).expect_err("original").to_string().contains("original"));
    }

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_configured_means_embedded_defaults_on_port_3000() {
        let s = settings(&[]).expect("defaults");
        assert_eq!(s.listen.port(), 3000);
        assert!(s.listen.ip().is_unspecified());
        assert!(matches!(s.storage, StorageSettings::Embedded { .. }));
        assert!(s.database_url.expose().starts_with("sqlite://"));
        assert_eq!(s.buckets.len(), 2);
        assert_eq!(s.kinds.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["avatar", "id_document"]);
        assert!(
            s.kinds.iter().all(|k| k.private_delivery == PrivateDelivery::Proxy),
            "redirect mode is off by default"
        );
    }

    #[test]
    fn port_and_database_come_from_the_environment_and_stay_out_of_debug() {
        let s = settings(&[("PORT", "8123"), ("DATABASE_URL", "postgres://u:hunter2@db/x")]).expect("env");
        assert_eq!(s.listen.port(), 8123);
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_proxy_is_trusted_only_when_configured() {
        assert_eq!(settings(&[]).expect("defaults").app.trust_proxy, TrustProxy::None);
        let s = settings(&[("SHOEBOX_TRUST_PROXY", "heroku")]).expect("heroku");
        assert_eq!(s.app.trust_proxy, TrustProxy::Heroku);
        let err = settings(&[("SHOEBOX_TRUST_PROXY", "all")]).expect_err("unknown");
        assert!(err.to_string().contains("SHOEBOX_TRUST_PROXY"), "{err}");
    }

    #[test]
    fn a_bad_port_is_a_clear_error() {
        let err = settings(&[("PORT", "eighty")]).expect_err("must fail");
        assert!(err.to_string().contains("PORT"));
    }

    #[test]
    fn a_config_file_describes_external_buckets_and_kinds() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("shoebox.toml");
        std::fs::write(
            &path,
            r#"
            forms_per_minute = 5
            clean_up_grace_hours = 2
            [[buckets]]
            name = "ids"
            bucket = "acme-ids"
            access = "private"
            region = "eu-west-1"
            owned = true
            [[kinds]]
            name = "passport"
            bucket = "ids"
            types = ["image/jpeg"]
            max_bytes = 1000
            private_delivery = "redirect"
            keep_for_days = 30
            max_bytes_per_user = 50_000_000
            max_photos_per_user = 20
            "#,
        )
        .expect("write");
        let s = settings(&[("SHOEBOX_CONFIG", path.to_str().expect("utf8"))]).expect("file");
        assert!(matches!(s.storage, StorageSettings::External));
        assert_eq!(s.limits.forms_per_minute, 5);
        assert_eq!(s.buckets[0].access, BucketAccess::Private);
        let passport = &s.kinds[0];
        assert_eq!((passport.name.as_str(), passport.types.as_slice()), ("passport", &["image/jpeg".to_owned()][..]));
        assert_eq!(passport.max_bytes, 1000);
        assert_eq!(passport.private_delivery, PrivateDelivery::Redirect);
        assert_eq!((passport.keep_for_days, passport.latest_only), (Some(30), false));
        let kind = &configured_kinds(&s).expect("kinds")[0];
        assert_eq!((kind.max_bytes_per_user(), kind.max_photos_per_user()), (Some(50_000_000), Some(20)));
        assert_eq!(s.limits.clean_up_grace, Duration::from_secs(2 * 3600));
        assert!(s.buckets[0].owned);
    }

    #[test]
    fn buckets_can_be_named_in_the_environment_alone() {
        let s = settings(&[
            ("SHOEBOX_PUBLIC_BUCKET", "acme-public"),
            ("SHOEBOX_PRIVATE_BUCKET", "acme-private"),
            ("AWS_REGION", "eu-west-1"),
            ("SHOEBOX_PUBLIC_CDN_URL", "https://cdn.example.com"),
        ])
        .expect("env");
        assert!(matches!(s.storage, StorageSettings::External));
        let b: Vec<_> =
            s.buckets.iter().map(|b| (b.name.as_str(), b.bucket.as_str(), b.access, b.region.as_str())).collect();
        assert_eq!(
            b,
            [
                ("public", "acme-public", BucketAccess::Public, "eu-west-1"),
                ("private", "acme-private", BucketAccess::Private, "eu-west-1")
            ]
        );
        assert_eq!(s.buckets[0].cdn_base_url.as_deref(), Some("https://cdn.example.com"));
        assert!(s.buckets.iter().all(|b| b.endpoint.is_none() && !b.owned), "AWS, and never owned unless said");
        assert_eq!(s.kinds.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["avatar", "id_document"]);

        let err = settings(&[("SHOEBOX_PRIVATE_BUCKET", "acme-private")]).expect_err("one of two").to_string();
        assert!(err.contains("set both SHOEBOX_PUBLIC_BUCKET and SHOEBOX_PRIVATE_BUCKET"), "{err}");
        let blank =
            settings(&[("SHOEBOX_PUBLIC_BUCKET", ""), ("SHOEBOX_PRIVATE_BUCKET", " ")]).expect("blank is unset");
        assert!(matches!(blank.storage, StorageSettings::Embedded { .. }));
    }

    #[test]
    fn an_s3_compatible_endpoint_comes_from_the_aws_sdks_own_variables() {
        let both = [("SHOEBOX_PUBLIC_BUCKET", "p"), ("SHOEBOX_PRIVATE_BUCKET", "q")];
        let s = settings(&[both[0], both[1], ("AWS_ENDPOINT_URL", "http://minio:9000")]).expect("env");
        assert!(s.buckets.iter().all(|b| b.endpoint.as_deref() == Some("http://minio:9000")));
        let s = settings(&[both[0], both[1], ("AWS_ENDPOINT_URL", "http://a"), ("AWS_ENDPOINT_URL_S3", "http://s3")])
            .expect("env");
        assert!(s.buckets.iter().all(|b| b.endpoint.as_deref() == Some("http://s3")), "the S3-specific one wins");
        let s = settings(&[both[0], both[1], ("AWS_ENDPOINT_URL_S3", "")]).expect("env");
        assert!(s.buckets.iter().all(|b| b.endpoint.is_none()), "empty means AWS");
    }

    #[test]
    fn config_file_strings_take_values_from_the_environment() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("shoebox.toml");
        std::fs::write(
            &path,
            "[[buckets]]\nname = \"ids\"\nbucket = \"acme-${STAGE}-ids\"\naccess = \"private\"\nregion = \"${REGION}\"\n\
             [[kinds]]\nname = \"passport\"\nbucket = \"ids\"\n",
        )
        .expect("write");
        let path = path.to_str().expect("utf8");
        let s = settings(&[("SHOEBOX_CONFIG", path), ("STAGE", "prod"), ("REGION", "eu-west-1")]).expect("file");
        assert_eq!((s.buckets[0].bucket.as_str(), s.buckets[0].region.as_str()), ("acme-prod-ids", "eu-west-1"));
        let err = format!("{:#}", settings(&[("SHOEBOX_CONFIG", path), ("STAGE", "prod")]).expect_err("unset"));
        assert!(err.contains("uses ${REGION}, but REGION is not set") && err.contains("shoebox.toml"), "{err}");
        let both =
            settings(&[("SHOEBOX_CONFIG", path), ("STAGE", "p"), ("REGION", "r"), ("SHOEBOX_PUBLIC_BUCKET", "x")]);
        assert!(both.expect_err("two places").to_string().contains("describe them in one place"));
    }

    #[test]
    fn only_whole_variable_names_expand() {
        let env = |k: &str| (k == "A").then(|| "1".to_owned());
        assert_eq!(expand("x-${A}-${A}", &env).expect("ok"), "x-1-1");
        assert_eq!(expand("$A and $ alone", &env).expect("ok"), "$A and $ alone");
        assert!(expand("${A", &env).is_err());
        assert!(expand("${A B}", &env).is_err());
        assert!(expand("${}", &env).is_err());
    }

    #[test]
    fn origins_come_from_shoebox_origins_else_the_public_url() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        let o = app_origins(env(&[("SHOEBOX_ORIGINS", "https://a.example, http://localhost:3000/")])).expect("ok");
        assert_eq!(o, ["https://a.example", "http://localhost:3000"]);
        let o = app_origins(env(&[("SHOEBOX_PUBLIC_URL", "https://app.example/x")])).expect("ok");
        assert_eq!(o, ["https://app.example"]);
        assert!(app_origins(env(&[])).expect("ok").is_empty());
        assert!(app_origins(env(&[("SHOEBOX_ORIGINS", "ftp://x")])).is_err());
        assert!(app_origins(env(&[("SHOEBOX_ORIGINS", "not a url")])).is_err());
    }

    #[test]
    fn intervals_read_as_people_write_them_and_nonsense_is_refused() {
        assert_eq!(parse_interval("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_interval("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_interval("2d"), Some(Duration::from_secs(172_800)));
        for bad in ["", "m", "0h", "10", "1w", "-1h", "1.5h"] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_drain_time_is_read_and_nonsense_is_refused() {
        let env = |value: &'static str| move |k: &str| (k == "SHOEBOX_DRAIN_SECS").then(|| value.to_owned());
        assert_eq!(Settings::from_lookup(|_| None).expect("defaults").app.drain, Duration::from_secs(25));
        assert_eq!(Settings::from_lookup(env("8")).expect("eight").app.drain, Duration::from_secs(8));
        for bad in ["-1", "10s", "99999"] {
            let err = Settings::from_lookup(env(bad)).expect_err(bad).to_string();
            assert!(err.contains("SHOEBOX_DRAIN_SECS must be a number"), "{err}");
        }
    }

    #[test]
    fn the_database_pool_size_is_read_and_nonsense_is_refused() {
        let env = |value: &'static str| move |k: &str| (k == "SHOEBOX_DATABASE_CONNECTIONS").then(|| value.to_owned());
        assert_eq!(Settings::from_lookup(|_| None).expect("defaults").app.database_connections, 10);
        assert_eq!(Settings::from_lookup(env("4")).expect("four").app.database_connections, 4);
        for bad in ["0", "many", "-3", "100000"] {
            let err = Settings::from_lookup(env(bad)).expect_err(bad).to_string();
            assert!(err.contains("SHOEBOX_DATABASE_CONNECTIONS must be a number"), "{err}");
        }
    }
}
