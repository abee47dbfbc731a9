//! `shoebox clean-up`: run the clean-up job once and print its summary.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::app::Shoebox;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::{Millis, now_millis};
use crate::jobs::clean_up::{self, Options, Summary};

#[derive(Debug, Args)]
pub struct CleanUpArgs {
    /// Say what would be deleted; delete and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Decide as if it were this time (RFC 3339, e.g. 2027-01-31T04:00:00Z): preview tomorrow's run.
    #[arg(long, value_parser = parse_rfc3339)]
    pub as_of: Option<Millis>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// An RFC 3339 time as [`Millis`], with a message saying what is expected.
pub fn parse_rfc3339(s: &str) -> Result<Millis, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| format!("{s:?} is not an RFC 3339 time like 2027-01-31T04:00:00Z"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| format!("{s:?} is out of range"))
}

/// The service the jobs run on: the database and the buckets, without the web server. With the
/// embedded defaults it opens the same data folder as a running `serve`.
pub async fn open(settings: &Settings) -> anyhow::Result<(Shoebox, crate::server::Buckets)> {
    let buckets = crate::server::connect_buckets(settings, &[]).await?;
    let db = Db::connect(settings.database_url.expose()).await.context("connecting to the database")?;
    db.migrate().await.context("migrating the database")?;
    let kinds = crate::app::configured_kinds(settings).context("checking the configured kinds")?;
    let app = Shoebox::new(db, buckets.storage.clone(), kinds, settings.limits.clone());
    Ok((app, buckets))
}

pub async fn run(args: &CleanUpArgs) -> anyhow::Result<Summary> {
    let settings = Settings::from_env()?;
    let (app, _buckets) = open(&settings).await?;
    let opts = Options { dry_run: args.dry_run, ..Options::new(args.as_of.unwrap_or_else(now_millis)) };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let progress = |s: &Summary| match &bar {
        Some(b) => {
            b.set_message(format!("deleted {} photos, {} errors, {} S3 requests", s.deleted, s.errors, s.s3_requests))
        }
        None => {
            tracing::info!(deleted = s.deleted, errors = s.errors, s3_requests = s.s3_requests, "clean-up progress")
        }
    };
    let summary = clean_up::run(&app, &opts, &progress).await.context("clean-up stopped: the database failed")?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let text = if args.json { format!("{}\n", serde_json::to_string(&summary)?) } else { render(&summary) };
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()).context("writing the summary")?;
    app.db.close().await;
    Ok(summary)
}

/// The summary for people.
pub fn render(s: &Summary) -> String {
    let verb = if s.dry_run { "would delete" } else { "deleted" };
    let mut out = format!(
        "clean-up {verb} {} photos ({}), {} incoming leftovers, {} expired sessions\n",
        s.deleted,
        crate::domain::text::human_bytes(s.bytes_freed),
        s.incoming_leftovers,
        s.sessions_expired
    );
    for (reason, n) in &s.by_reason {
        out.push_str(&format!("  {n:>8}  {reason}\n"));
    }
    out.push_str(&format!(
        "kept longer: {}; S3 requests: {} ({} DeleteObjects); errors: {}\n",
        s.kept_longer, s.s3_requests, s.delete_requests, s.errors
    ));
    for e in &s.error_messages {
        out.push_str(&format!("  error: {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_takes_rfc3339_and_says_what_it_wants_otherwise() {
        assert_eq!(parse_rfc3339("1970-01-02T00:00:00Z"), Ok(86_400_000));
        for bad in ["tomorrow", "2027-01-31", "2027-13-01T00:00:00Z", ""] {
            let err = parse_rfc3339(bad).expect_err(bad);
            assert!(err.contains("RFC 3339"), "{err}");
        }
    }

    #[test]
    fn the_summary_reads_as_a_sentence_with_reasons() {
        let mut s = Summary { deleted: 2, errors: 1, s3_requests: 1, ..Summary::default() };
        s.by_reason.insert("It was not saved within 24 hours.".into(), 2);
        s.error_messages.push("deleting x: AccessDenied".into());
        let text = render(&s);
        assert!(text.starts_with("clean-up deleted 2 photos"), "{text}");
        assert!(text.contains("2  It was not saved") && text.contains("error: deleting x"), "{text}");
    }
}
