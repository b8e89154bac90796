//! The sinks of `--output`, opened and started, each on its own thread behind a bounded queue.
use std::{io, os::fd::AsFd};

use crate::{
    cli::WatchArgs,
    error::{Error, Result},
    output::{
        format::Format,
        sink::{File, QUEUE_BYTES, Queued, Sink, Stdout, Syslog, widen_pipe},
        spec::{OutputKind, OutputSpec},
    },
};

/// A sink, its name and its format.
pub(super) type NamedSink = (String, Format, Box<dyn Sink>);

/// The sinks of `--output` (stdout when none is named), each with its format, started.
pub(super) fn open(args: &WatchArgs) -> Result<Vec<NamedSink>> {
    let specs = if args.output.is_empty() {
        vec![OutputSpec::STDOUT]
    } else {
        args.output.clone()
    };
    let mut sinks = Vec::new();
    for spec in specs {
        let name = spec.name();
        if sinks.iter().any(|(n, _, _)| *n == name) {
            return Err(Error::Usage(format!("--output {name} is named twice")));
        }
        let thread = |e| Error::io("starting an output thread", e);
        let sink: Box<dyn Sink> = match &spec.kind {
            OutputKind::Stdout => {
                widen_pipe(io::stdout().as_fd());
                // Straight to the descriptor: `io::stdout()` would copy every line through its
                // line buffer.
                let stdout = io::stdout()
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::io("duplicating stdout", e))?;
                let dest = Stdout::new(std::fs::File::from(stdout));
                Box::new(Queued::new(dest, QUEUE_BYTES, "output-stdout").map_err(thread)?)
            }
            OutputKind::File { path, rotation } => {
                let dest = File::open(path, *rotation)
                    .map_err(|e| Error::io(format!("opening --output {name}"), e))?;
                Box::new(Queued::new(dest, QUEUE_BYTES, "output-file").map_err(thread)?)
            }
            OutputKind::Syslog { target, framing } => {
                let dest = Syslog::new(target.clone(), *framing);
                Box::new(Queued::new(dest, QUEUE_BYTES, "output-syslog").map_err(thread)?)
            }
        };
        sinks.push((name, spec.format.unwrap_or(args.format), sink));
    }
    Ok(sinks)
}
