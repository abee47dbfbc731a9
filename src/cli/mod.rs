//! Subcommands: parse, then call one library function each.

pub mod clean_up;
pub mod doctor;
pub mod reconcile;
pub mod resize;
pub mod resize_all;
pub mod s3_config;

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use shoebox::{Db, Shoebox};

use crate::observability::{Metrics, start_logging};
use crate::settings::{Settings, StorageSettings};

/// Photos that users upload: direct-to-S3 upload, lifecycle, resizing, private proxy.
#[derive(Debug, Parser)]
#[command(name = "shoebox", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app (the default). Binds 0.0.0.0:$PORT (3000 when unset).
    Serve,
    /// Apply database migrations, then exit (Heroku's release phase runs this).
    Migrate,
    /// Resize one image with the server's engine, limits and errors: `resize IN --fit 1280x1280 -o OUT.jpg`.
    Resize(resize::ResizeArgs),
    /// Make every missing variant of every live photo (safe beside the web and other runs);
    /// exit 1 when a photo failed.
    ResizeAll(resize_all::ResizeAllArgs),
    /// Print what each bucket needs (CORS, public access, ownership, policy, lifecycle, IAM);
    /// `--apply` writes the bucket-level parts.
    S3Config(s3_config::S3ConfigArgs),
    /// Check the database and every bucket for real; exit 1 when a check fails.
    Doctor(doctor::DoctorArgs),
    /// Delete abandoned uploads, photos past keep-until with a reason, leftovers under incoming/
    /// and expired sessions; `--dry-run`, `--as-of TIME`, `--json`. Exit 1 when an item failed.
    CleanUp(clean_up::CleanUpArgs),
    /// Compare each bucket with the table both ways (unknown objects, missing objects);
    /// `--delete` removes old unknown objects in owned buckets; `--json`. Exit 1 on an error
    /// or a refused deletion.
    Reconcile(reconcile::ReconcileArgs),
}

/// Run the chosen subcommand. Only the commands that do I/O start an async runtime: `resize`
/// runs on this thread, so a one-off resize pays for no worker threads (its peak memory is
/// what the benchmark compares with vipsthumbnail).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime =
        || tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            start_logging()?;
            runtime()?.block_on(serve())
        }
        Command::Migrate => {
            start_logging()?;
            runtime()?.block_on(migrate())
        }
        Command::Resize(args) => resize::run(&args),
        Command::ResizeAll(args) => {
            if runtime()?.block_on(resize_all::run(&args))?.failed == 0 {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        // No log lines for these two: they print their own findings, and the embedded
        // endpoint logs every refusal the doctor provokes on purpose.
        Command::S3Config(args) => runtime()?.block_on(s3_config::run(&args)),
        Command::CleanUp(args) => {
            start_logging()?;
            let summary = runtime()?.block_on(clean_up::run(&args))?;
            if summary.photos.errors > 0 { std::process::exit(1) } else { Ok(()) }
        }
        Command::Reconcile(args) => {
            start_logging()?;
            let summary = runtime()?.block_on(reconcile::run(&args))?;
            if reconcile::failed(&summary) { std::process::exit(1) } else { Ok(()) }
        }
        Command::Doctor(args) => {
            if runtime()?.block_on(doctor::run(&args))? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let metrics = Metrics::install(|k| std::env::var(k).ok())?;
    if metrics.is_some() {
        tracing::info!("metrics at /metrics, for requests bearing SHOEBOX_METRICS_TOKEN");
    }
    let built = crate::server::build_with(&settings, metrics).await?;
    if let Some(every) = settings.app.clean_up_every {
        tracing::info!(every_secs = every.as_secs(), "clean-up runs inside serve, one process at a time");
        tokio::spawn(shoebox::jobs::clean_up_every(built.state.shoebox.clone(), every));
    }
    tracing::info!("Shoebox is running: open http://localhost:{}/", built.addr.port());
    let drain = settings.app.drain;
    shoebox::http::serve(built.listener, built.router, shutdown_signal(drain), drain).await.context("serving")?;
    built.state.shoebox.db().close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let db = Db::connect(settings.database_url.expose(), 2).await.context("connecting to the database")?;
    db.migrate().await.context("migrating Shoebox's tables")?;
    crate::accounts::store::migrate(&db).await.context("migrating the account tables")?;
    tracing::info!("migrations applied");
    Ok(())
}

/// The service the jobs run on: the database (migrated) and the buckets, without the web
/// server. With the embedded defaults it opens the same data folder as a running `serve`.
pub async fn open(settings: &Settings) -> anyhow::Result<Shoebox> {
    let db = Db::connect(settings.database_url.expose(), 2).await.context("connecting to the database")?;
    let shoebox = crate::server::shoebox(settings, db.clone(), &[]).await?;
    crate::server::migrate(&shoebox, &db).await?;
    Ok(shoebox)
}

/// The configured buckets, reachable without a database (the doctor, `s3-config`): with the
/// embedded defaults, the endpoint is started first (allowing form posts from `origins`) and
/// every bucket points at it. The endpoint, if any, stops when the last value is dropped.
pub async fn buckets(
    settings: &Settings,
    origins: &[String],
) -> anyhow::Result<(Vec<shoebox::BucketSettings>, shoebox::Storage, Option<shoebox::embedded::EmbeddedS3>)> {
    let mut buckets = settings.buckets.clone();
    let mut credentials = None;
    let mut embedded = None;
    if let StorageSettings::Endpoint { url, credentials: keys } = &settings.storage {
        for b in &mut buckets {
            b.endpoint = Some(url.clone());
        }
        credentials = Some(keys.clone());
    }
    if let StorageSettings::Embedded { root, listen } = &settings.storage {
        let largest = settings.kinds.iter().map(|k| k.max_bytes).max().unwrap_or(0);
        let e = shoebox::embedded::start(root, *listen, &buckets, origins, largest).await?;
        for b in &mut buckets {
            b.endpoint = Some(e.endpoint.clone());
        }
        credentials = Some(e.credentials.clone());
        embedded = Some(e);
    }
    let storage = shoebox::Storage::new(&buckets, credentials.as_ref()).await.context("setting up the buckets")?;
    Ok((buckets, storage, embedded))
}

/// SIGTERM (what Heroku and Docker send) or Ctrl-C; then requests in flight have `drain`.
fn shutdown_signal(drain: Duration) -> impl Future<Output = ()> + Send + 'static {
    let terminated = terminated();
    async move {
        terminated.await;
        tracing::info!(
            "shutting down: refusing new connections, finishing requests in flight ({} s at most)",
            drain.as_secs()
        );
    }
}

/// Start listening for SIGTERM (what Heroku and Docker send, and what ends a one-off dyno) and
/// Ctrl-C; the future resolves when either comes. SIGTERM is listened for from this call on,
/// not from the first poll, so one sent meanwhile is not the default "die at once".
pub fn terminated() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
    }
}
