//! `shoebox resize-all`: make every missing variant, with a progress bar on a terminal and a
//! plain line per photo elsewhere (a log), then a summary (`--json`: one JSON object).

use std::io::{IsTerminal as _, Write as _};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use shoebox::jobs::resize_all::{Options, Progress, Summary, resize_all};

use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct ResizeAllArgs {
    /// Try again the photos an earlier run could not make variants of.
    #[arg(long)]
    pub retry_failed: bool,
    /// Stop after this many photos; the next run carries on.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print the summary as one JSON object (`made`, `skipped`, `failed`, ...).
    #[arg(long)]
    pub json: bool,
}

/// Run resize-all against the configured database and buckets.
pub async fn run(args: &ResizeAllArgs) -> anyhow::Result<Summary> {
    let settings = Settings::from_env()?;
    let app = super::open(&settings).await?;
    let options = Options { retry_failed: args.retry_failed, limit: args.limit };

    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} photos, {elapsed} ({eta} left) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |p: Progress<'_>| match (&bar, p) {
        (Some(bar), Progress::Start { photos }) => bar.set_length(photos),
        (Some(bar), Progress::Photo { failed, id, .. }) => {
            if let Some(why) = failed {
                bar.println(format!("failed {id}: {why}"));
            }
            bar.inc(1);
        }
        (None, Progress::Start { photos }) => eprintln!("resize-all: {photos} live photos"),
        (None, Progress::Photo { id, made, failed: None }) => eprintln!("{id}: made {made}"),
        (None, Progress::Photo { id, failed: Some(why), .. }) => eprintln!("{id}: failed: {why}"),
    };
    let summary = resize_all(&app, &options, &progress).await.context("resize-all")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    app.db().close().await;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
    } else {
        writeln!(
            out,
            "resize-all: {} photos, {} variants made, {} skipped, {} placeholders filled in, {} photos failed",
            summary.photos, summary.made, summary.skipped, summary.placeholders, summary.failed
        )?;
        for f in &summary.failures {
            writeln!(out, "  {}: {}", f.photo, f.reason)?;
        }
    }
    Ok(summary)
}
