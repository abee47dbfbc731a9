//! `shoebox doctor`: check the database and every bucket, print the findings.

use std::io::Write as _;

use clap::Args;

use shoebox::Db;
use shoebox::doctor::{Check, Outcome, Report, check_buckets, database, s3_config};

use crate::settings::{Settings, StorageSettings, app_origins};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// Run the checks; the process exits 1 when any failed.
pub async fn run(args: &DoctorArgs) -> anyhow::Result<bool> {
    let settings = Settings::from_env()?;
    let mut origins = app_origins(|k| std::env::var(k).ok())?;
    if origins.is_empty() && matches!(settings.storage, StorageSettings::Embedded { .. }) {
        origins.push(format!("http://localhost:{}", settings.listen.port()));
    }
    // Keeps the embedded endpoint, if used, running while the checks run.
    let (buckets, storage, _embedded) = super::buckets(&settings, &origins).await?;
    // First what /healthz sees, then each part in depth.
    let mut report = Report::default();
    if let Ok(db) = Db::connect(settings.database_url.expose(), 1).await {
        let health = shoebox::health::check_parts(&db, &storage).await;
        report.checks.extend(health.checks.iter().map(Check::from_health));
        db.close().await;
    }
    report.checks.extend(database::check_url(settings.database_url.expose()).await);
    let plan = s3_config::plan(&buckets, &origins);
    report.checks.extend(check_buckets(&storage, &plan, &origins).await);
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({ "passed": report.passed(), "checks": report.checks });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        write_report(&mut out, &report)?;
    }
    Ok(report.passed())
}

/// One line per check; a failure also says what was tried, the answer, the cause and the fix.
pub fn write_report(out: &mut impl std::io::Write, report: &Report) -> std::io::Result<()> {
    for c in &report.checks {
        let mark = match c.outcome {
            Outcome::Pass => "ok  ",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "skip",
        };
        write!(out, "{mark} {:<10} {}", c.subject, c.name)?;
        match c.outcome {
            Outcome::Pass => writeln!(out)?,
            Outcome::Skipped => writeln!(out, ": {}", c.cause.as_deref().unwrap_or(""))?,
            Outcome::Fail => {
                writeln!(out)?;
                writeln!(out, "       tried:  {}", c.tried)?;
                if let Some(a) = &c.answer {
                    writeln!(out, "       answer: {a}")?;
                }
                writeln!(out, "       cause:  {}", c.cause.as_deref().unwrap_or(""))?;
                writeln!(out, "       fix:    {}", c.fix.as_deref().unwrap_or(""))?;
            }
        }
    }
    let failed = report.failures().count();
    if failed == 0 { writeln!(out, "\nall checks passed") } else { writeln!(out, "\n{failed} check(s) failed") }
}
