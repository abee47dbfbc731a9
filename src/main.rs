//! The `shoebox` binary: parse the command line and run.

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    shoebox_app::cli::run(shoebox_app::cli::Cli::parse())
}
