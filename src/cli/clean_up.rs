//! `shoebox clean-up`: run the clean-up job once and print its summary.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use serde::Serialize;
use shoebox::Millis;
use shoebox::jobs::clean_up::{self, Options, Summary};

use crate::accounts::store;
use crate::settings::Settings;

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

/// What `shoebox clean-up` did: Shoebox's clean-up, and this app's expired sessions.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    #[serde(flatten)]
    pub photos: Summary,
    pub sessions_expired: u64,
}

pub async fn run(args: &CleanUpArgs) -> anyhow::Result<Report> {
    let settings = Settings::from_env()?;
    let app = super::open(&settings).await?;
    let as_of = args.as_of.unwrap_or_else(|| app.now());
    let opts = Options { dry_run: args.dry_run, ..Options::new(as_of) };
    // SIGTERM (a deploy, the end of a one-off dyno's time) stops the run between batches
    // instead of killing it inside one: the batch in hand is finished, so no rows are left
    // claimed until their lease runs out, and the next run deletes exactly what is left.
    let (stop, terminated) = (opts.stop.clone(), super::terminated());
    let on_signal = tokio::spawn(async move {
        terminated.await;
        tracing::info!("asked to stop: finishing this batch, then stopping; the next run carries on");
        stop.request();
    });
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
    let photos = clean_up::run(&app, &opts, &progress).await.context("clean-up stopped: the database failed")?;
    on_signal.abort();
    let sessions_expired = if photos.stopped {
        0
    } else if opts.dry_run {
        u64::try_from(store::count_expired_sessions(app.db(), as_of).await?).unwrap_or(0)
    } else {
        store::delete_expired_sessions(app.db(), as_of).await?
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = Report { photos, sessions_expired };
    let text = if args.json { format!("{}\n", serde_json::to_string(&report)?) } else { render(&report) };
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()).context("writing the summary")?;
    app.db().close().await;
    Ok(report)
}

/// The summary for people.
pub fn render(r: &Report) -> String {
    let s = &r.photos;
    let verb = if s.dry_run { "would delete" } else { "deleted" };
    let mut out = format!(
        "clean-up {verb} {} photos ({}), {} incoming leftovers, {} expired sessions\n",
        s.deleted,
        shoebox::human_bytes(s.bytes_freed),
        s.incoming_leftovers,
        r.sessions_expired
    );
    for (reason, n) in &s.by_reason {
        out.push_str(&format!("  {n:>8}  {reason}\n"));
    }
    out.push_str(&format!(
        "kept longer: {}; S3 requests: {} ({} DeleteObjects); errors: {}\n",
        s.kept_longer, s.s3_requests, s.delete_requests, s.errors
    ));
    if s.stopped {
        out.push_str("stopped early when asked (SIGTERM): the next run deletes what is left\n");
    }
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
        let text = render(&Report { photos: s.clone(), sessions_expired: 0 });
        assert!(text.starts_with("clean-up deleted 2 photos"), "{text}");
        assert!(text.contains("2  It was not saved") && text.contains("error: deleting x"), "{text}");
        assert!(!text.contains("stopped early"), "{text}");
        let stopped = render(&Report { photos: Summary { stopped: true, ..s }, sessions_expired: 0 });
        assert!(stopped.contains("stopped early when asked (SIGTERM)"), "{stopped}");
    }
}
