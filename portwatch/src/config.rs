//! The configuration file (`watch --config FILE`, e.g. /etc/portwatch/portwatch.toml): what the
//! flags hold, in TOML. A flag given on the command line wins over the file (a repeatable flag
//! replaces the file's whole list). An unknown key or a bad value is refused with the file, the
//! line and what to write; the file must be one only root (or portwatch's user) can change, as
//! it chooses where records go (`trusted`).
use std::{ops::Range, path::PathBuf, str::FromStr};

use serde::Deserialize;
use toml::Spanned;

use crate::{
    cli::{WatchArgs, parse_ring_size},
    error::{Error, Result},
    kernel::hooks::Forced,
    model::socket::socket_kind_names,
    output::{format::Format, spec::OutputSpec},
    trusted::{self, Refused},
};

/// The largest configuration file read.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: Option<Spanned<String>>,
    ring_buffer_size: Option<Spanned<u64>>,
    flood_rate: Option<u32>,
    flood_burst: Option<u32>,
    btf: Option<PathBuf>,
    baseline: Option<PathBuf>,
    metrics: Option<Spanned<String>>,
    ancestry: Option<bool>,
    reachability: Option<bool>,
    stats: Option<Spanned<String>>,
    #[serde(default)]
    attach: Vec<Spanned<String>>,
    #[serde(default)]
    events: Vec<Spanned<String>>,
    filters: Option<Filters>,
    detections: Option<Detections>,
    #[serde(default)]
    output: Vec<Spanned<Output>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Detections {
    #[serde(default)]
    disable: Vec<String>,
    #[serde(default)]
    backdoor_ports: Vec<u16>,
    #[serde(default)]
    uring_allow: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    #[serde(default)]
    pid: Vec<u32>,
    #[serde(default)]
    port: Vec<u16>,
    #[serde(default)]
    uid: Vec<u32>,
    #[serde(default)]
    cgroup: Vec<String>,
    #[serde(default)]
    netns: Vec<String>,
    #[serde(default)]
    exe: Vec<PathBuf>,
    #[serde(default)]
    container: Vec<String>,
}

/// One `[[output]]` table: the `--output` value and its options, as keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Output {
    sink: String,
    format: Option<String>,
    max_size: Option<String>,
    backups: Option<u32>,
    facility: Option<String>,
    max_line: Option<usize>,
}

impl Output {
    /// The `--output` value these keys make.
    fn spec(&self) -> String {
        let mut spec = self.sink.clone();
        let options = [
            ("format", self.format.clone()),
            ("max-size", self.max_size.clone()),
            ("backups", self.backups.map(|n| n.to_string())),
            ("facility", self.facility.clone()),
            ("max-line", self.max_line.map(|n| n.to_string())),
        ];
        for (key, value) in options {
            if let Some(v) = value {
                spec.push_str(&format!(",{key}={v}"));
            }
        }
        spec
    }
}

/// Which flags were given on the command line (the others may come from the file).
pub struct Given {
    pub format: bool,
    pub ring_buffer_size: bool,
}

/// `args` with the values of the file at `args.config` for every flag not given.
pub fn apply(args: &mut WatchArgs, given: &Given) -> Result<()> {
    let Some(path) = args.config.clone() else {
        return Ok(());
    };
    let shown = path.display().to_string();
    let text = match trusted::read(
        &path,
        MAX_BYTES,
        "configuration file",
        "redirect every record",
    ) {
        Ok(text) => text,
        Err(Refused::Io(e)) => return Err(Error::io(format!("cannot read --config {shown}"), e)),
        Err(Refused::Problem(problem)) => {
            return Err(Error::Usage(format!("--config {shown}: {problem}")));
        }
        Err(Refused::NotUtf8 { line }) => {
            return Err(bad(&shown, line, "not UTF-8 text".into()));
        }
    };
    merge(args, given, &text, &shown)
}

fn bad(path: &str, line: usize, problem: String) -> Error {
    Error::Usage(format!("config {path} line {line}: {problem}"))
}

fn merge(args: &mut WatchArgs, given: &Given, text: &str, path: &str) -> Result<()> {
    let line_of = |span: Range<usize>| text[..span.start.min(text.len())].matches('\n').count() + 1;
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, line_of);
        bad(path, line, e.message().trim().replace('\n', " "))
    })?;
    let at = |span: Range<usize>, problem: String| bad(path, line_of(span), problem);
    if let Some(f) = &file.format {
        if !given.format {
            let value = f.get_ref();
            args.format = <Format as clap::ValueEnum>::from_str(value, false).map_err(|_| {
                at(
                    f.span(),
                    format!("format `{value}`: write native, ecs or ocsf"),
                )
            })?;
        }
    }
    if let Some(n) = &file.ring_buffer_size {
        if !given.ring_buffer_size {
            args.ring_buffer_size = parse_ring_size(&n.get_ref().to_string())
                .map_err(|e| at(n.span(), format!("ring_buffer_size: {e}")))?;
        }
    }
    if let (None, Some(m)) = (args.metrics, &file.metrics) {
        args.metrics = Some(
            crate::metrics::parse_addr(m.get_ref())
                .map_err(|e| at(m.span(), format!("metrics {e}")))?,
        );
    }
    if let (None, Some(i)) = (args.stats, &file.stats) {
        args.stats = Some(
            crate::cli::parse_interval(i.get_ref())
                .map_err(|e| at(i.span(), format!("stats {e}")))?,
        );
    }
    if args.btf.is_none() {
        args.btf = file.btf.clone();
    }
    if let (None, Some(rate)) = (args.flood_rate, file.flood_rate) {
        if rate > 1_000_000 {
            return Err(bad(
                path,
                1,
                format!("flood_rate {rate}: at most 1000000 (0: no limit)"),
            ));
        }
        args.flood_rate = Some(rate);
    }
    args.flood_burst = args.flood_burst.or(file.flood_burst);
    // A flag can only turn it on: the file's `true` holds unless --ancestry was given anyway.
    args.ancestry |= file.ancestry.unwrap_or(false);
    // Likewise `reachability = false` turns it off, and --no-reachability wins over `true`.
    args.no_reachability |= file.reachability == Some(false);
    if args.baseline.is_none() {
        args.baseline = file.baseline.clone();
    }
    merge_lists(args, file, &at)
}

/// The file's lists (attach types, events, outputs, detections, filters), each unless the
/// command line gave one.
fn merge_lists(
    args: &mut WatchArgs,
    file: File,
    at: &impl Fn(Range<usize>, String) -> Error,
) -> Result<()> {
    if args.attach.is_empty() {
        args.attach = parsed(&file.attach, Forced::from_str, at)?;
    }
    if args.events.is_empty() {
        let known = socket_kind_names();
        for e in &file.events {
            if !known.split(", ").any(|k| k == e.get_ref()) {
                return Err(at(
                    e.span(),
                    format!("events: unknown kind `{}` (known: {known})", e.get_ref()),
                ));
            }
        }
        args.events = file.events.iter().map(|e| e.get_ref().clone()).collect();
    }
    if args.output.is_empty() {
        for o in &file.output {
            let spec = o.get_ref().spec();
            let parsed = OutputSpec::from_str(&spec)
                .map_err(|e| at(o.span(), format!("[[output]]: {e}")))?;
            args.output.push(parsed);
        }
    }
    if let Some(d) = file.detections {
        take(&mut args.no_detection, d.disable);
        take(&mut args.backdoor_port, d.backdoor_ports);
        take(&mut args.uring_allow, d.uring_allow);
    }
    if let Some(f) = file.filters {
        take(&mut args.pid, f.pid);
        take(&mut args.port, f.port);
        take(&mut args.uid, f.uid);
        take(&mut args.cgroup, f.cgroup);
        take(&mut args.netns, f.netns);
        take(&mut args.exe, f.exe);
        take(&mut args.container, f.container);
    }
    Ok(())
}

/// The file's list, unless the command line gave one.
fn take<T>(flag: &mut Vec<T>, file: Vec<T>) {
    if flag.is_empty() {
        *flag = file;
    }
}

fn parsed<T>(
    values: &[Spanned<String>],
    parse: impl Fn(&str) -> std::result::Result<T, String>,
    at: &impl Fn(Range<usize>, String) -> Error,
) -> Result<Vec<T>> {
    values
        .iter()
        .map(|v| parse(v.get_ref()).map_err(|e| at(v.span(), e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn watch(flags: &[&str]) -> WatchArgs {
        let mut argv = vec!["portwatch", "watch"];
        argv.extend(flags);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Watch(w) => w,
            _ => unreachable!(),
        }
    }

    const NOT_GIVEN: Given = Given {
        format: false,
        ring_buffer_size: false,
    };

    const FILE: &str = r#"
format = "ocsf"
ring_buffer_size = 4194304
flood_rate = 50
metrics = "9464"
stats = "30s"
reachability = false
events = ["listen", "bind"]
attach = ["listen=kprobe"]

[filters]
port = [22, 443]
exe = ["/usr/sbin/sshd"]

[detections]
disable = ["backdoor-port"]
uring_allow = ["/usr/sbin/nginx"]

[[output]]
sink = "file:/var/log/portwatch/events.json"
max-size = "50M"
backups = 3

[[output]]
sink = "syslog:tcp://127.0.0.1:514"
format = "ecs"
facility = "local3"
"#;

    #[test]
    fn the_file_fills_what_the_flags_leave_out() {
        let mut args = watch(&[]);
        merge(&mut args, &NOT_GIVEN, FILE, "pw.toml").unwrap();
        assert_eq!(args.format, Format::Ocsf);
        assert_eq!(args.ring_buffer_size, 4 << 20);
        assert_eq!(args.flood_limit().period_ns, 20_000_000);
        assert_eq!(args.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(args.stats, Some(std::time::Duration::from_secs(30)));
        assert!(args.no_reachability);
        assert_eq!(args.events, ["listen", "bind"]);
        assert_eq!(args.port, [22, 443]);
        assert_eq!(args.no_detection, ["backdoor-port"]);
        assert_eq!(args.uring_allow, ["/usr/sbin/nginx"]);
        assert_eq!(args.exe, [PathBuf::from("/usr/sbin/sshd")]);
        assert_eq!(args.attach.len(), 1);
        let names: Vec<String> = args.output.iter().map(OutputSpec::name).collect();
        assert_eq!(
            names,
            [
                "file:/var/log/portwatch/events.json",
                "syslog:tcp://127.0.0.1:514"
            ]
        );
        assert_eq!(args.output[1].format, Some(Format::Ecs));
    }

    #[test]
    fn flags_win_over_the_file() {
        let mut args = watch(&["--format", "native", "--port", "8080", "--output", "stdout"]);
        let given = Given {
            format: true,
            ring_buffer_size: false,
        };
        merge(&mut args, &given, FILE, "pw.toml").unwrap();
        assert_eq!(args.format, Format::Native);
        assert_eq!(args.port, [8080]);
        assert_eq!(args.output, [OutputSpec::STDOUT]);
        assert_eq!(args.ring_buffer_size, 4 << 20, "not given: the file's");
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line_and_the_fix() {
        for (text, line, says) in [
            ("formt = \"ocsf\"\n", 1, "unknown field `formt`"),
            ("\n\nformat = \"xml\"\n", 3, "write native, ecs or ocsf"),
            ("ring_buffer_size = 1000\n", 1, "ring_buffer_size"),
            ("[filters]\nport = [70000]\n", 2, "`70000`, expected u16"),
            ("events = [\"lisen\"]\n", 1, "unknown kind `lisen`"),
            ("attach = [\"listen=magic\"]\n", 1, "magic"),
            ("[[output]]\nsink = \"kafka://x\"\n", 1, "unknown output"),
            (
                "[[output]]\nsink = \"stdout\"\nbackups = 2\n",
                1,
                "not an option of `stdout`",
            ),
            (
                "[[output]]\nsinks = \"stdout\"\n",
                2,
                "unknown field `sinks`",
            ),
            ("format = \n", 1, ""),
        ] {
            let mut args = watch(&[]);
            let e = merge(&mut args, &NOT_GIVEN, text, "pw.toml")
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("config pw.toml line {line}: ")),
                "{text:?}: {e}"
            );
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    /// The README's example is a real file: it parses, and every key lands where it says.
    #[test]
    fn the_readme_example_is_a_valid_file() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Configuration file").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let text = &section[start..start + section[start..].find("```").unwrap()];
        let mut args = watch(&[]);
        merge(&mut args, &NOT_GIVEN, text, "README.md").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.format, Format::Ocsf);
        assert_eq!(
            args.baseline,
            Some(PathBuf::from("/etc/portwatch/baseline"))
        );
        assert_eq!(args.no_detection, ["backdoor-port"]);
        assert_eq!(args.port, [22, 443]);
        assert_eq!(args.output.len(), 2);
    }
}
