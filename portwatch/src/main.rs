use std::process::ExitCode;

use clap::Parser as _;
use portwatch::{
    cli::{Cli, Command},
    cmd::{canary, doctor, ls, watch},
    error::Error,
};

/// Exit codes: 0 success (also when stdout's reader went away), 1 runtime error, 2 bad usage.
fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("portwatch: internal error (please report): {info}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portwatch: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Watch(args) => runtime.block_on(watch::run(args)),
        Command::Ls(args) => ls::run(&args),
        Command::Baseline => ls::baseline(),
        // Inside the runtime: the ring buffer registers with its reactor.
        Command::Doctor(args) => runtime.block_on(async { doctor::run(args) }),
        Command::Canary => canary::run(),
    };
    match result {
        Ok(()) | Err(Error::StdoutClosed) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portwatch: error: {e}");
            ExitCode::FAILURE
        }
    }
}
