//! The seed's `StevePhoto` example as a host app that adopts Shoebox: its own trivial login
//! (choose a name), its own SQLite pool and table for the kind's data, Shoebox's routes nested
//! under `/media`, and clean-up on a schedule. Runs on the embedded defaults:
//!
//! ```sh
//! cargo run --example steve    # then open http://localhost:3001, log in as steve or anyone
//! ```
//!
//! README's "Embedding Shoebox" walks through it.

#[path = "steve/app.rs"]
mod app;
#[path = "steve/photo.rs"]
mod photo;

use std::sync::Arc;
use std::time::Duration;

use shoebox::jobs::{clean_up, resize_all};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info,s3s=warn,aws_config=warn").init();
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3001);
    let data = std::path::PathBuf::from(std::env::var("STEVE_DATA").unwrap_or_else(|_| "data/steve".into()));
    std::fs::create_dir_all(&data)?;
    // The host's own pool: Shoebox runs on it, beside the host's own tables.
    let url = format!("sqlite://{}?mode=rwc", data.join("steve.db").display());
    let db = sqlx::sqlite::SqlitePoolOptions::new().max_connections(4).connect(&url).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let origin = format!("http://localhost:{port}");
    let origins = [origin.clone(), format!("http://127.0.0.1:{port}")];
    let (state, router) = app::build(db, &data, &origins, Arc::new(shoebox::SystemClock)).await?;
    tokio::spawn(jobs(state.shoebox.clone()));
    tracing::info!("Steve's photos: open {origin}/");
    axum::serve(listener, router).await?;
    Ok(())
}

/// The seed's cron: clean up never-used uploads, clean up photos no longer needed, resize all.
async fn jobs(shoebox: shoebox::Shoebox) {
    let mut every = tokio::time::interval(Duration::from_secs(60 * 60));
    loop {
        every.tick().await;
        let opts = clean_up::Options::new(shoebox.now());
        match shoebox.clean_up_never_used(&opts).await {
            Ok(s) => tracing::info!(deleted = s.deleted, "clean_up_never_used"),
            Err(e) => tracing::warn!(error = %e, "clean_up_never_used failed; next hour"),
        }
        match shoebox.clean_up_no_longer_needed(&opts).await {
            Ok(s) => tracing::info!(deleted = s.deleted, kept = s.kept_longer, "clean_up_no_longer_needed"),
            Err(e) => tracing::warn!(error = %e, "clean_up_no_longer_needed failed; next hour"),
        }
        match shoebox.resize_all(&resize_all::Options::default()).await {
            Ok(s) => tracing::info!(made = s.made, "resize_all"),
            Err(e) => tracing::warn!(error = %e, "resize_all failed; next hour"),
        }
    }
}
