//! `shoebox s3-config`: print (and with `--apply`, write) what each bucket needs.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use clap::Args;

use shoebox::doctor::s3_config::{Plan, plan};
use shoebox::doctor::{SectionState, apply_plan};
use shoebox::{BucketSettings, Storage};

use crate::settings::{Settings, app_origins};

#[derive(Debug, Args)]
pub struct S3ConfigArgs {
    /// Only this bucket (its configured name or its S3 name); every bucket when absent.
    pub bucket: Option<String>,
    /// An origin the app's pages are served from (repeatable); default SHOEBOX_ORIGINS, else
    /// the origin of SHOEBOX_PUBLIC_URL.
    #[arg(long = "origin")]
    pub origins: Vec<String>,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Write the bucket-level settings through the S3 API, after showing what will change.
    #[arg(long)]
    pub apply: bool,
}

/// The buckets and origins chosen on the command line.
pub fn chosen(settings: &Settings, args: &S3ConfigArgs) -> anyhow::Result<(Vec<BucketSettings>, Vec<String>)> {
    let buckets: Vec<BucketSettings> = settings
        .buckets
        .iter()
        .filter(|b| args.bucket.as_ref().is_none_or(|n| &b.name == n || &b.bucket == n))
        .cloned()
        .collect();
    if buckets.is_empty() {
        bail!("no configured bucket is named {:?}", args.bucket.as_deref().unwrap_or(""));
    }
    let origins = if args.origins.is_empty() {
        app_origins(|k| std::env::var(k).ok())?
    } else {
        app_origins(|k| (k == "SHOEBOX_ORIGINS").then(|| args.origins.join(",")))?
    };
    if origins.is_empty() {
        bail!("say where the app's pages are served from: --origin https://app.example.com (or SHOEBOX_ORIGINS)");
    }
    Ok((buckets, origins))
}

pub async fn run(args: &S3ConfigArgs) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let (buckets, origins) = chosen(&settings, args)?;
    let plan = plan(&buckets, &origins);
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&plan.to_json())?)?;
    } else {
        write_plan(&mut out, &plan)?;
    }
    if args.apply {
        let storage = Storage::new(&buckets, None).await.context("setting up the buckets")?;
        write_applied(&mut out, &storage, &plan).await?;
    }
    Ok(())
}

/// The plan as text: each section's reason, document and command.
pub fn write_plan(out: &mut impl std::io::Write, plan: &Plan) -> std::io::Result<()> {
    for b in &plan.buckets {
        writeln!(
            out,
            "# Bucket {} ({}, {}, {})\n",
            b.name,
            b.s3_name,
            shoebox::doctor::s3_config::access_word(b.access),
            b.region
        )?;
        for s in b.sections() {
            writeln!(out, "## {}\n{}\n", s.name, s.why)?;
            if let Some(d) = &s.document {
                writeln!(out, "{}\n", serde_json::to_string_pretty(d).unwrap_or_default())?;
            }
            writeln!(out, "    {}\n", s.cli)?;
        }
    }
    let iam = plan.iam_section();
    writeln!(out, "# The app user's IAM policy\n\n## {}\n{}\n", iam.name, iam.why)?;
    if let Some(d) = &iam.document {
        writeln!(out, "{}\n", serde_json::to_string_pretty(d).unwrap_or_default())?;
    }
    writeln!(out, "    {}\n", iam.cli)
}

/// Show what will change, bucket by bucket, then write it.
pub async fn write_applied(out: &mut impl std::io::Write, storage: &Storage, plan: &Plan) -> anyhow::Result<()> {
    for applied in apply_plan(storage, plan).await? {
        writeln!(out, "# Applying to {} ({})", applied.name, applied.s3_name)?;
        for (section, st) in &applied.sections {
            match st {
                SectionState::AsPlanned => writeln!(out, "  {section}: already as planned")?,
                SectionState::Unsupported => writeln!(out, "  {section}: not supported by this endpoint, left alone")?,
                SectionState::Unreadable(f) => {
                    writeln!(out, "  {section}: could not read ({}), will write", f.summary())?
                }
                SectionState::Differs { now, wanted } => writeln!(out, "  {section}: {now}\n    -> {wanted}")?,
            }
        }
        let written = applied.written.map_err(|e| anyhow::anyhow!("{} ({}): {e}", applied.name, applied.s3_name))?;
        writeln!(out, "  written: {}", if written.is_empty() { "nothing".to_owned() } else { written.join(", ") })?;
    }
    Ok(())
}
