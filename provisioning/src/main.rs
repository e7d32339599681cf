//! `phare`: the Phare operator tool. The command line is in `cli/`, what
//! the commands do in the library.

use clap::Parser;

mod cli;

fn main() -> std::process::ExitCode {
    phare_common::exit_code(run())
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    cli::Cli::parse().run()
}
