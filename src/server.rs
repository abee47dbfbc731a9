//! Assembling the reference app from settings, as a host assembles its own: a pool, Shoebox
//! built on it, the account tables, and the router.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use shoebox::{Db, Shoebox};

use crate::accounts::{self, Accounts};
use crate::settings::{Settings, StorageSettings, configured_kinds};
use crate::web::{self, AppState};

/// The app ready to serve: bound, migrated, connected.
#[derive(Debug)]
pub struct Built {
    pub listener: tokio::net::TcpListener,
    pub addr: SocketAddr,
    pub router: Router,
    pub state: AppState,
}

/// Bind the listener first (Heroku kills a dyno that has not bound `$PORT` within 60 s), then
/// open the database, build Shoebox on it (starting the embedded endpoint if configured, with
/// this app's origins allowed), migrate both Shoebox's tables and the accounts', and build the
/// router.
pub async fn build(settings: &Settings) -> anyhow::Result<Built> {
    build_with(settings, None).await
}

/// [`build`], serving `metrics` at `/metrics` when given.
pub async fn build_with(settings: &Settings, metrics: Option<crate::observability::Metrics>) -> anyhow::Result<Built> {
    let listener =
        tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let mut origins = vec![format!("http://localhost:{}", addr.port()), format!("http://127.0.0.1:{}", addr.port())];
    if let Some(u) = &settings.public_url {
        origins.push(u.origin().ascii_serialization());
    }
    let db = Db::connect(settings.database_url.expose(), settings.app.database_connections)
        .await
        .context("connecting to the database")?;
    let shoebox = shoebox(settings, db.clone(), &origins).await?;
    migrate(&shoebox, &db).await?;
    let state = AppState { shoebox, accounts: Accounts::new(db, settings.app.clone()) };
    Ok(Built { listener, addr, router: web::router_with(state.clone(), metrics), state })
}

/// Shoebox on `db`, as the settings describe it: the buckets (or the embedded endpoint, which
/// lets pages from `origins` post forms to it), the kinds from TOML, the limits.
pub async fn shoebox(settings: &Settings, db: Db, origins: &[String]) -> anyhow::Result<Shoebox> {
    let mut builder =
        Shoebox::builder(db).limits(settings.limits.clone()).allowed_hosts(settings.allowed_hosts.clone());
    if let Some(u) = &settings.public_url {
        builder = builder.public_url(u.clone());
    }
    if !matches!(settings.storage, StorageSettings::Endpoint { .. }) {
        for b in &settings.buckets {
            builder = builder.bucket(b.clone());
        }
    }
    for k in configured_kinds(settings).context("checking the configured kinds")? {
        builder = builder.shared_kind(k);
    }
    match &settings.storage {
        StorageSettings::External => {}
        StorageSettings::Endpoint { url, credentials } => {
            builder = builder.credentials(credentials.clone());
            for b in &settings.buckets {
                builder = builder.bucket(b.clone().at_endpoint(url));
            }
        }
        #[cfg(feature = "embedded-s3")]
        StorageSettings::Embedded { root, listen } => {
            let options = shoebox::EmbeddedS3Options { root: root.clone(), listen: *listen, origins: origins.to_vec() };
            builder = builder.embedded_s3(options);
        }
        #[cfg(not(feature = "embedded-s3"))]
        StorageSettings::Embedded { .. } => {
            anyhow::bail!("no buckets are configured and this build has no embedded S3 endpoint (feature embedded-s3)")
        }
    }
    builder.build().await.context("setting up Shoebox")
}

/// Shoebox's tables, then the accounts'. Safe with several machines starting at once: each
/// takes a lock while migrating.
pub async fn migrate(shoebox: &Shoebox, db: &Db) -> anyhow::Result<()> {
    shoebox.migrate().await.context("migrating Shoebox's tables")?;
    accounts::store::migrate(db).await.context("migrating the account tables")?;
    Ok(())
}
