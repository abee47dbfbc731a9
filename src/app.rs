//! The assembled service: database, buckets, kinds and limits, shared by the HTTP layer, the
//! CLI and (later) the jobs. Cheap to clone.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::Semaphore;

use crate::config::{Limits, Settings};
use crate::db::Db;
use crate::domain::{ConfiguredKind, ImageLimits, KeepRules, Kind, KindError, Kinds, VariantSpec};
use crate::storage::Storage;

/// Everything the domain operations need, behind one `Arc`.
#[derive(Debug, Clone)]
pub struct Shoebox(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub db: Db,
    pub storage: Storage,
    pub kinds: Kinds,
    pub limits: Limits,
    /// Bounds image work on the blocking pool: it must not starve the pool or the dyno's two
    /// cores.
    pub blocking: Semaphore,
    /// Bounds password hashing, apart from image work: with one shared bound, 64 bogus logins
    /// queued ahead of a real upload's verification (5 ms became 1.5 s). One permit by default:
    /// a login flood takes at most one of the dyno's two cores and 19 MiB, and ~30 hashes a
    /// second is far more than the login limits let through.
    pub hashing: Semaphore,
    /// Argon2's working memory, one array per hashing permit, reused.
    pub passwords: crate::accounts::Passwords,
    /// Live sessions looked up in the last second.
    pub sessions: crate::accounts::SessionCache,
    /// Bounds how many upload verifications hold a whole upload in memory at once.
    pub verifying: Semaphore,
    /// Variant objects this process has written: what the tests count to prove a variant is
    /// made once under concurrent first requests.
    pub variant_writes: AtomicU64,
}

impl Shoebox {
    pub fn new(db: Db, storage: Storage, kinds: Kinds, limits: Limits) -> Self {
        let permits = limits.blocking_permits.max(1);
        let hashing = limits.hashing_permits.max(1);
        Self(Arc::new(Inner {
            db,
            storage,
            kinds,
            limits,
            blocking: Semaphore::new(permits),
            hashing: Semaphore::new(hashing),
            passwords: crate::accounts::Passwords::new(hashing),
            sessions: crate::accounts::SessionCache::default(),
            verifying: Semaphore::new(permits),
            variant_writes: AtomicU64::new(0),
        }))
    }

    /// Run CPU-heavy image work `f` on the blocking pool, at most `blocking_permits` at a time.
    pub async fn run_blocking<T, F>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        run_on(&self.0.blocking, f).await
    }

    /// Run password hashing `f` on the blocking pool, at most `hashing_permits` at a time.
    pub async fn run_hashing<T, F>(&self, f: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        run_on(&self.0.hashing, f).await
    }
}

async fn run_on<T, F>(permits: &Semaphore, f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The semaphore is never closed, so acquiring only fails if it were; then run anyway.
    let _permit = permits.acquire().await.ok();
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

impl std::ops::Deref for Shoebox {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The kinds the settings describe, checked: each names a configured bucket, no two share a
/// name, and each accepts only types Shoebox can verify. Applications that embed Shoebox build
/// [`Kinds`] from their own [`Kind`] implementations instead.
pub fn configured_kinds(settings: &Settings) -> Result<Kinds, KindError> {
    let kinds = settings
        .kinds
        .iter()
        .map(|k| {
            let limits = ImageLimits { max_width: k.max_width, max_height: k.max_height, max_pixels: k.max_pixels };
            let keep = KeepRules { keep_for_days: k.keep_for_days, latest_only: k.latest_only };
            let mut kind = ConfiguredKind::new(&k.name, k.label.as_deref(), &k.bucket, &k.types, k.max_bytes, limits)?
                .with_private_delivery(k.private_delivery)
                .with_keep(keep);
            if let Some(variants) = &k.variants {
                let specs = variants
                    .iter()
                    .map(|v| VariantSpec::new(&v.name, v.max_width, v.max_height, v.quality))
                    .collect::<Result<Vec<_>, _>>()?;
                kind = kind.with_variants(specs)?;
            }
            Ok(Arc::new(kind) as Arc<dyn Kind>)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Kinds::new(kinds, settings.buckets.iter().map(|b| b.name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(kinds.get("id_document").map(|k| k.bucket()), Some("private"));
    }

    #[test]
    fn a_kind_naming_an_unknown_bucket_or_type_or_twice_is_refused() {
        let err = configured_kinds(&settings_with("[[kinds]]\nname = \"x\"\nbucket = \"nope\"\n")).expect_err("bucket");
        assert!(err.to_string().contains("nope"), "{err}");
        let svg = "[[kinds]]\nname = \"x\"\nbucket = \"public\"\ntypes = [\"image/svg+xml\"]\n";
        let err = configured_kinds(&settings_with(svg)).expect_err("svg");
        assert!(err.to_string().contains("svg"), "{err}");
        let twice = "[[kinds]]\nname = \"x\"\nbucket = \"public\"\n[[kinds]]\nname = \"x\"\nbucket = \"private\"\n";
        assert_eq!(configured_kinds(&settings_with(twice)).expect_err("twice"), KindError::Duplicate("x".into()));
    }

    #[test]
    fn a_kind_may_name_its_own_variants_in_toml() {
        let toml = "[[kinds]]\nname = \"x\"\nbucket = \"public\"\n\
                    [[kinds.variants]]\nname = \"small\"\nmax_width = 100\nmax_height = 50\n";
        let kinds = configured_kinds(&settings_with(toml)).expect("kinds");
        let variants = kinds.get("x").expect("x").variants();
        assert_eq!(variants, [VariantSpec::new("small", 100, 50, 80).expect("spec")]);
        let bad = "[[kinds]]\nname = \"x\"\nbucket = \"public\"\n\
                   [[kinds.variants]]\nname = \"original\"\nmax_width = 1\nmax_height = 1\n";
        assert!(configured_kinds(&settings_with(bad)).expect_err("original").to_string().contains("original"));
    }
}
