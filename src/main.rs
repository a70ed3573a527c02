//! The `cpwatch` command: sets up logging and the runtime, then parses the
//! command line and runs it (`cli`).
#![deny(clippy::unwrap_used)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use cpwatch::cli::{self, Cli, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CPWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only for a person at a terminal: journald, a pipe or a log file
    // would keep the escape codes as text (and NO_COLOR turns them off).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(cli::run(cli)),
        Err(e) => {
            eprintln!("cpwatch: cannot start the async runtime: {e}");
            ExitCode::from(2)
        }
    }
}
