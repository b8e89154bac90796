use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, parser::ValueSource};
use portwatch::{
    cli::{Cli, Command},
    cmd::{canary, doctor, ls, timeline, watch},
    config,
    error::Error,
};

/// Exit codes: 0 success (also when stdout's reader went away), 1 runtime error, 2 bad usage.
fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("portwatch: internal error (please report): {info}");
    }));
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (mut cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("portwatch: error: {}", usage_line(&e));
            return ExitCode::from(2);
        }
    };
    if let (Command::Watch(args), Some(m)) = (&mut cli.command, matches.subcommand_matches("watch"))
    {
        let on_command_line = |id| m.value_source(id) == Some(ValueSource::CommandLine);
        let given = config::Given {
            format: on_command_line("format"),
            ring_buffer_size: on_command_line("ring_buffer_size"),
        };
        if let Err(e) = config::apply(args, &given) {
            eprintln!("portwatch: error: {e}; see `portwatch watch --help`");
            return ExitCode::from(2);
        }
    }
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
        Command::Timeline(args) => timeline::run(&args),
    };
    match result {
        Ok(()) | Err(Error::StdoutClosed) => ExitCode::SUCCESS,
        Err(e @ Error::Usage(_)) => {
            eprintln!("portwatch: error: {e}; see `{}`", help_command());
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("portwatch: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A parser error in one line, as every other error: clap's first line (it names the flag and
/// the value), without its usage block, and where to read more.
fn usage_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("bad usage");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first}; see `{}`", help_command())
}

/// Where the flags of the command given are described.
fn help_command() -> String {
    let known = ["watch", "ls", "baseline", "doctor"];
    match std::env::args()
        .nth(1)
        .filter(|c| known.contains(&c.as_str()))
    {
        Some(c) => format!("portwatch {c} --help"),
        None => "portwatch --help".into(),
    }
}
