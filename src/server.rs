//! Assembling the service from settings: listener, embedded endpoint, database, buckets, router.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;

use crate::app::Shoebox;
use crate::config::{BucketSettings, Settings, StorageSettings};
use crate::db::Db;
use crate::http::{self, AppState, WebSettings};
use crate::storage::{SigningCredentials, Storage};

/// A service ready to serve: bound, migrated, connected.
#[derive(Debug)]
pub struct Built {
    pub listener: tokio::net::TcpListener,
    pub addr: SocketAddr,
    pub router: Router,
    pub state: AppState,
    /// The embedded S3 endpoint, when used; it stops when this is dropped.
    #[cfg(feature = "embedded-s3")]
    pub embedded: Option<crate::storage::embedded::EmbeddedS3>,
}

/// Bind the listener first (Heroku kills a dyno that has not bound `$PORT` within 60 s), then
/// start the embedded endpoint if configured, connect and migrate the database, and build the
/// router.
pub async fn build(settings: &Settings) -> anyhow::Result<Built> {
    let listener =
        tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let mut origins = vec![format!("http://localhost:{}", addr.port()), format!("http://127.0.0.1:{}", addr.port())];
    if let Some(u) = &settings.public_url {
        origins.push(u.origin().ascii_serialization());
    }
    let buckets = connect_buckets(settings, &origins).await?;
    let db = Db::connect_with(settings.database_url.expose(), settings.limits.database_connections)
        .await
        .context("connecting to the database")?;
    // Safe with several machines starting at once: sqlx takes a lock while migrating.
    db.migrate().await.context("migrating the database")?;
    let storage = buckets.storage;
    let kinds = crate::app::configured_kinds(settings).context("checking the configured kinds")?;
    crate::imaging::set_max_concurrent_images(settings.limits.blocking_permits);
    let app = Shoebox::new(db, storage, kinds, settings.limits.clone());
    let storage_origins = app
        .storage
        .buckets()
        .flat_map(|b| b.origins())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let web = Arc::new(WebSettings {
        public_url: settings.public_url.clone(),
        allowed_hosts: settings.allowed_hosts.clone(),
        storage_origins,
    });
    let state = AppState { app, web };
    Ok(Built {
        listener,
        addr,
        router: http::router(state.clone()),
        state,
        #[cfg(feature = "embedded-s3")]
        embedded: buckets.embedded,
    })
}

/// The configured buckets, reachable: with the embedded defaults, the endpoint is started first
/// (allowing form posts from `origins`) and every bucket points at it.
#[derive(Debug)]
pub struct Buckets {
    /// The buckets' settings, with the embedded endpoint filled in when it is used.
    pub settings: Vec<BucketSettings>,
    pub storage: Storage,
    /// The embedded S3 endpoint, when used; it stops when this is dropped.
    #[cfg(feature = "embedded-s3")]
    pub embedded: Option<crate::storage::embedded::EmbeddedS3>,
}

/// Start the embedded endpoint if the settings ask for it, and build a client per bucket.
pub async fn connect_buckets(settings: &Settings, origins: &[String]) -> anyhow::Result<Buckets> {
    let mut buckets = settings.buckets.clone();
    let mut credentials: Option<SigningCredentials> = None;
    #[cfg(feature = "embedded-s3")]
    let mut embedded = None;
    match &settings.storage {
        StorageSettings::External => {}
        #[cfg(feature = "embedded-s3")]
        StorageSettings::Embedded { root, listen } => {
            let largest_upload = settings.kinds.iter().map(|k| k.max_bytes).max().unwrap_or(0);
            let e = crate::storage::embedded::start(root, *listen, &buckets, origins, largest_upload).await?;
            for b in &mut buckets {
                b.endpoint = Some(e.endpoint.clone());
            }
            credentials = Some(e.credentials.clone());
            tracing::info!(endpoint = %e.endpoint, root = %root.display(), "embedded S3 endpoint started");
            embedded = Some(e);
        }
        #[cfg(not(feature = "embedded-s3"))]
        StorageSettings::Embedded { .. } => {
            anyhow::bail!("no buckets are configured and this build has no embedded S3 endpoint (feature embedded-s3)")
        }
    }
    let storage = Storage::new(&buckets, credentials.as_ref()).await.context("setting up the buckets")?;
    Ok(Buckets {
        settings: buckets,
        storage,
        #[cfg(feature = "embedded-s3")]
        embedded,
    })
}
