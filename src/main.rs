//! The `shoebox` binary: parse the command line and run.

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    shoebox::cli::run(shoebox::cli::Cli::parse())
}
