//! The `shoebox` binary: parse the command line, start logging, run.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn,s3s=warn".into()),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    shoebox::cli::run(shoebox::cli::Cli::parse()).await
}
