//! `shoebox reconcile`: compare every bucket with the table and print what disagrees;
//! `--delete` removes unknown objects where that is safe.

use anyhow::Context as _;
use clap::Args;

use shoebox::human_bytes;
use shoebox::jobs::reconcile::{Options, Summary};

use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Delete objects no row knows that are older than the grace period, in buckets marked
    /// `owned = true` only; refused where the table looks empty or foreign.
    #[arg(long)]
    pub delete: bool,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: &ReconcileArgs) -> anyhow::Result<Summary> {
    let settings = Settings::from_env()?;
    let app = super::open(&settings).await?;
    let opts = Options { delete: args.delete, as_of: app.now() };
    let summary = app.reconcile(&opts).await.context("reconcile stopped: the database failed")?;
    let text =
        if args.json { format!("{}\n", serde_json::to_string(&summary)?) } else { render(&summary, args.delete) };
    std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()).context("writing the summary")?;
    app.db().close().await;
    Ok(summary)
}

/// Whether the run should exit 1: an error, or a deletion that was asked for and refused.
pub fn failed(s: &Summary) -> bool {
    s.errors > 0 || s.buckets.iter().any(|b| b.refused.is_some())
}

/// The summary for people.
pub fn render(s: &Summary, delete: bool) -> String {
    let mut out = String::new();
    for b in &s.buckets {
        out.push_str(&format!(
            "bucket {}{}: {} objects, {} unknown ({}), {} missing\n",
            b.bucket,
            if b.owned { " (owned)" } else { "" },
            b.objects,
            b.unknown,
            human_bytes(b.unknown_bytes),
            b.missing
        ));
        for k in &b.unknown_keys {
            out.push_str(&format!("  unknown: {k}\n"));
        }
        for k in &b.missing_keys {
            out.push_str(&format!("  missing: {k}\n"));
        }
        if delete {
            match &b.refused {
                Some(why) => out.push_str(&format!("  refused to delete: {why}\n")),
                None => out.push_str(&format!(
                    "  deleted {} unknown objects ({}); younger ones are left for a later run\n",
                    b.deleted,
                    human_bytes(b.deleted_bytes)
                )),
            }
        }
    }
    out.push_str(&format!("S3 requests: {}; errors: {}\n", s.s3_requests, s.errors));
    for e in &s.error_messages {
        out.push_str(&format!("  error: {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoebox::jobs::reconcile::BucketReport;

    #[test]
    fn a_refusal_is_printed_and_fails_the_run() {
        let b = BucketReport {
            bucket: "photos".into(),
            objects: 3,
            unknown: 3,
            unknown_keys: vec!["photos/x/original.jpg".into()],
            refused: Some("looks foreign".into()),
            ..Default::default()
        };
        let s = Summary { buckets: vec![b], ..Summary::default() };
        let text = render(&s, true);
        assert!(text.contains("3 objects, 3 unknown") && text.contains("refused to delete: looks foreign"), "{text}");
        assert!(text.contains("unknown: photos/x/original.jpg"), "{text}");
        assert!(failed(&s));
        assert!(!failed(&Summary::default()));
    }
}
