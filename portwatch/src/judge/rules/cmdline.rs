//! Interpreters' command lines, read the way the interpreters read them: short options combined
//! in one argument (`python3 -Ic`, `perl -we`), options with their value attached or next
//! (`-Wignore`, `-W ignore`), `--` and `-`, and the first operand (a script, or awk's program).
//! What matters to the rules is what the interpreter was told to run. Where the reading is
//! unsure (a long option it does not know, which may take the next argument), it takes the
//! reading that runs code rather than the one that hides it.

/// What an interpreter was told to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs<'a> {
    /// A program given on the command line, by this argument (`-c`, `-Ic`, `--eval`, awk's
    /// first operand, or code in a module's name: `-M'strict;system ...'`).
    Inline(&'a str),
    /// Its program on standard input: `-`, `/dev/stdin`, `/dev/fd/N`, or no script at all.
    Stdin(&'a str),
    /// A script file.
    Script(&'a str),
    /// A module, library or built-in server of its own (`python3 -m http.server`, `php -S`).
    Module(&'a str),
}

/// How one interpreter reads its options.
pub struct Syntax {
    /// Short options whose value is an inline program.
    pub inline: &'static [char],
    /// Long options whose value is an inline program.
    pub inline_long: &'static [&'static str],
    /// Short options that take a value, attached or as the next argument.
    pub valued: &'static [char],
    /// Short options whose optional value can only be attached, and is the rest of the
    /// argument (`perl -Mstrict`, `perl -F:`).
    pub attached: &'static [char],
    /// Short options followed by an optional number, after which more options may follow in
    /// the same argument (`perl -l012e`, `perl -0e`, `ruby -W2e`).
    pub numbered: &'static [char],
    /// Short options that leave it reading standard input after its script (`python3 -i`).
    pub interactive: &'static [char],
    /// Modules whose argument, or standard input, is code (`python3 -m timeit CODE`,
    /// `python3 -m code`).
    pub code_modules: &'static [&'static str],
    /// Long options that take a value (`--require x`; `--require=x` is one argument anyway).
    pub valued_long: &'static [&'static str],
    /// Short and long options naming a module loaded before the program: code when the value
    /// is code rather than a name (`data:` URLs, statements).
    pub loads: &'static [char],
    pub loads_long: &'static [&'static str],
    /// Short options naming a module or server to run, which ends the interpreter's options.
    pub module: &'static [char],
    /// Short options naming the script file (`awk -f`, `php -f`).
    pub script: &'static [char],
    /// The first operand is the program itself, not a script's name (awk).
    pub program_operand: bool,
    /// tclsh: `[-encoding NAME] [SCRIPT]`, and any other first argument starting with `-`
    /// leaves it reading standard input.
    pub tcl: bool,
}

/// A module's name that is code: a `data:` URL, or statements (`-M'if EXPR, strict'`).
fn is_code(value: &str) -> bool {
    value.starts_with("data:") || value.contains([';', '{', '}', '(', ')', '`', '\n', ' '])
}

/// A script path that is the interpreter's own standard input or an inherited descriptor,
/// however it is spelt (`/dev//stdin`, `/dev/./fd/0`).
pub fn is_stdin(path: &str) -> bool {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    path == "-"
        || (path.starts_with('/')
            && matches!(
                parts.as_slice(),
                ["dev", "stdin"] | ["dev", "fd", _] | ["proc", _, "fd", _]
            ))
}

/// What follows a numbered option's number: octal digits, or `x` and hex digits after `0`.
fn past_number(option: char, rest: &str) -> &str {
    let hex = option == '0' && rest.starts_with(['x', 'X']);
    let body = if hex { &rest[1..] } else { rest };
    let digit = |d: char| {
        if hex {
            d.is_ascii_hexdigit()
        } else {
            ('0'..='7').contains(&d)
        }
    };
    body.trim_start_matches(digit)
}

impl Syntax {
    /// No options of any kind.
    pub const PLAIN: Syntax = Syntax {
        inline: &[],
        inline_long: &[],
        valued: &[],
        attached: &[],
        numbered: &[],
        interactive: &[],
        code_modules: &[],
        valued_long: &[],
        loads: &[],
        loads_long: &[],
        module: &[],
        script: &[],
        program_operand: false,
        tcl: false,
    };

    /// What `args` (argv, the interpreter's own name first) tell it to run.
    pub fn runs<'a>(&self, args: &'a [String]) -> Runs<'a> {
        self.read(args, true)
    }

    /// `runs`, reading again once past an unknown option's possible value when `may_retry`.
    fn read<'a>(&self, args: &'a [String], may_retry: bool) -> Runs<'a> {
        if self.tcl {
            return tcl(args);
        }
        let mut i = 1;
        // The previous argument was a long option this does not know, without `=VALUE`.
        let mut unknown_long = false;
        while let Some(a) = args.get(i) {
            if a == "--" {
                i += 1;
                break;
            }
            if a == "-" || !a.starts_with('-') {
                break;
            }
            unknown_long = false;
            if let Some(long) = a.strip_prefix("--") {
                let (name, value) = long.split_once('=').unwrap_or((long, ""));
                let next = args.get(i + 1).map_or("", String::as_str);
                if self.inline_long.contains(&name) {
                    return Runs::Inline(a);
                }
                let takes_next = self.valued_long.contains(&name) && !long.contains('=');
                let loaded = if takes_next { next } else { value };
                if self.loads_long.contains(&name) && is_code(loaded) {
                    return Runs::Inline(a);
                }
                unknown_long = !self.valued_long.contains(&name) && !long.contains('=');
                i += 1 + usize::from(takes_next);
                continue;
            }
            match self.short(a, args.get(i + 1)) {
                Short::Flags => i += 1,
                Short::TookNext => i += 2,
                Short::Found(Runs::Module(m)) if self.code_modules.contains(&m) => {
                    return Runs::Inline(a);
                }
                Short::Found(runs) => return runs,
            }
        }
        let runs = match args.get(i) {
            None => Runs::Stdin("(no script)"),
            Some(op) if is_stdin(op) => Runs::Stdin(op),
            Some(op) if self.program_operand => Runs::Inline(op),
            Some(op) => Runs::Script(op),
        };
        // `node --some-option VALUE -e CODE`: if the option took the operand as its value,
        // the options go on; when what follows runs code, that is the reading taken (once:
        // a command line of a thousand such pairs costs one more reading, not a thousand).
        if may_retry && unknown_long && matches!(runs, Runs::Script(_)) {
            let rest = &args[i..];
            match self.read(rest, false) {
                found @ (Runs::Inline(_) | Runs::Stdin(_)) if rest.len() > 1 => return found,
                _ => {}
            }
        }
        runs
    }

    /// One argument of short options (`-Ic`), `next` the argument after it.
    fn short<'a>(&self, a: &'a str, next: Option<&'a String>) -> Short<'a> {
        let mut rest = &a[1..];
        while let Some(c) = rest.chars().next() {
            rest = &rest[c.len_utf8()..];
            let value = || {
                if rest.is_empty() {
                    next.map_or("", String::as_str)
                } else {
                    rest
                }
            };
            if self.inline.contains(&c) {
                return Short::Found(Runs::Inline(a));
            }
            if self.interactive.contains(&c) {
                return Short::Found(Runs::Stdin(a));
            }
            if self.module.contains(&c) {
                return Short::Found(Runs::Module(value()));
            }
            if self.script.contains(&c) {
                let path = value();
                return Short::Found(if is_stdin(path) {
                    Runs::Stdin(path)
                } else {
                    Runs::Script(path)
                });
            }
            if self.numbered.contains(&c) {
                rest = past_number(c, rest);
                // `ruby -W:no-deprecated`: the rest is its value.
                if rest.starts_with(':') {
                    return Short::Flags;
                }
                continue;
            }
            let attached_only = self.attached.contains(&c);
            if self.loads.contains(&c) && is_code(if attached_only { rest } else { value() }) {
                return Short::Found(Runs::Inline(a));
            }
            if self.valued.contains(&c) {
                return if rest.is_empty() {
                    Short::TookNext
                } else {
                    Short::Flags
                };
            }
            if attached_only {
                return Short::Flags;
            }
        }
        Short::Flags
    }
}

/// tclsh's command line: `tclsh [-encoding NAME] [SCRIPT [ARG ...]]`.
fn tcl(args: &[String]) -> Runs<'_> {
    let first = match args.get(1).map(String::as_str) {
        Some("-encoding") => 3,
        _ => 1,
    };
    match args.get(first) {
        None => Runs::Stdin("(no script)"),
        Some(a) if a.starts_with('-') || is_stdin(a) => Runs::Stdin(a),
        Some(script) => Runs::Script(script),
    }
}

enum Short<'a> {
    /// Flags only (or an option with its value attached).
    Flags,
    /// An option whose value is the next argument.
    TookNext,
    Found(Runs<'a>),
}

#[cfg(test)]
mod tests {
    use crate::judge::rules::interpreters::INTERPRETERS;

    fn runs(family: &str, line: &str) -> String {
        let i = INTERPRETERS.iter().find(|i| i.family == family).unwrap();
        let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
        format!("{:?}", i.syntax.runs(&args))
    }

    #[test]
    fn combined_short_options_and_values_are_read_as_the_interpreters_read_them() {
        for (family, line, want) in [
            ("python", "python3 -Ic print(1)", "Inline(\"-Ic\")"),
            ("python", "python3 -I -c x", "Inline(\"-c\")"),
            ("python", "python3 -W ignore -c x", "Inline(\"-c\")"),
            ("python", "python3 -Wignore -c x", "Inline(\"-c\")"),
            ("python", "python3 -uc x", "Inline(\"-uc\")"),
            ("python", "python3 -", "Stdin(\"-\")"),
            ("python", "python3 -u", "Stdin(\"(no script)\")"),
            ("python", "python3", "Stdin(\"(no script)\")"),
            (
                "python",
                "python3 -m http.server",
                "Module(\"http.server\")",
            ),
            ("python", "python3 -mhttp.server", "Module(\"http.server\")"),
            ("python", "python3 app.py -c conf", "Script(\"app.py\")"),
            ("python", "python3 -- app.py -c x", "Script(\"app.py\")"),
            ("python", "python3 -X dev app.py", "Script(\"app.py\")"),
            ("perl", "perl -we x", "Inline(\"-we\")"),
            ("perl", "perl -MIO::Socket -e x", "Inline(\"-e\")"),
            ("perl", "perl -MIO::Socket -e x", "Inline(\"-e\")"),
            // An option this does not know, with an attached value: -F's is `I`, not -I.
            ("perl", "perl -FI -e x", "Inline(\"-e\")"),
            ("perl", "perl -C7 -e x", "Inline(\"-e\")"),
            (
                "perl",
                "perl -Mstrict;system(1) srv.pl",
                "Inline(\"-Mstrict;system(1)\")",
            ),
            ("perl", "perl -Mstrict srv.pl", "Script(\"srv.pl\")"),
            ("python", "python3 /dev/stdin", "Stdin(\"/dev/stdin\")"),
            ("python", "python3 -u /dev/fd/3", "Stdin(\"/dev/fd/3\")"),
            (
                "python",
                "python3 /proc/self/fd/0",
                "Stdin(\"/proc/self/fd/0\")",
            ),
            ("awk", "gawk -f /dev/stdin", "Stdin(\"/dev/stdin\")"),
            ("awk", "gawk -W posix BEGIN{x}", "Inline(\"BEGIN{x}\")"),
            ("node", "node --inspect-port 9229 -e x", "Inline(\"-e\")"),
            ("node", "node --stack-trace-limit 50 -e x", "Inline(\"-e\")"),
            ("node", "node --no-warnings app.js -e x", "Inline(\"-e\")"),
            ("node", "node --trace-warnings app.js", "Script(\"app.js\")"),
            (
                "node",
                "node --import data:text/javascript,x app.js",
                "Inline(\"--import\")",
            ),
            (
                "node",
                "node --import=data:x app.js",
                "Inline(\"--import=data:x\")",
            ),
            (
                "node",
                "node --import ./setup.mjs app.js",
                "Script(\"app.js\")",
            ),
            (
                "ruby",
                "ruby --enable frozen-string-literal -e x",
                "Inline(\"-e\")",
            ),
            ("ruby", "ruby -Fx -e x", "Inline(\"-e\")"),
            ("tclsh", "tclsh", "Stdin(\"(no script)\")"),
            ("tclsh", "tclsh -x", "Stdin(\"-x\")"),
            (
                "tclsh",
                "tclsh -encoding utf-8 srv.tcl",
                "Script(\"srv.tcl\")",
            ),
            ("tclsh", "tclsh srv.tcl -x", "Script(\"srv.tcl\")"),
            ("php", "php -F /dev/stdin", "Stdin(\"/dev/stdin\")"),
            ("php", "php --run x", "Inline(\"--run\")"),
            ("perl", "perl -le x", "Inline(\"-le\")"),
            ("perl", "perl -0e x", "Inline(\"-0e\")"),
            ("perl", "perl -l012e x", "Inline(\"-l012e\")"),
            // Hex digits take the e, as perl reads it.
            ("perl", "perl -0x1Fe x", "Script(\"x\")"),
            ("perl", "perl -0x1F -e x", "Inline(\"-e\")"),
            (
                "perl",
                "perl -Mif(1),strict srv.pl",
                "Inline(\"-Mif(1),strict\")",
            ),
            ("ruby", "ruby -le x", "Inline(\"-le\")"),
            ("ruby", "ruby -W2e x", "Inline(\"-W2e\")"),
            ("ruby", "ruby -W:no-deprecated app.rb", "Script(\"app.rb\")"),
            ("python", "python3 /dev//stdin", "Stdin(\"/dev//stdin\")"),
            ("python", "python3 -i /dev/null", "Stdin(\"-i\")"),
            ("python", "python3 -m timeit x", "Inline(\"-m\")"),
            ("python", "python3 -mcode", "Inline(\"-mcode\")"),
            (
                "node",
                "node --max-old-space-size=4096 srv.js -p 3000",
                "Script(\"srv.js\")",
            ),
            ("perl", "perl -l0 -ne x", "Inline(\"-ne\")"),
            ("perl", "perl -I lib server.pl", "Script(\"server.pl\")"),
            ("ruby", "ruby -rsocket -e x", "Inline(\"-e\")"),
            ("ruby", "ruby -we x", "Inline(\"-we\")"),
            ("ruby", "ruby -W2 app.rb", "Script(\"app.rb\")"),
            ("php", "php -r x", "Inline(\"-r\")"),
            ("php", "php -d x=1 -r x", "Inline(\"-r\")"),
            ("php", "php -S 0.0.0.0:8000", "Module(\"0.0.0.0:8000\")"),
            ("php", "php -f srv.php", "Script(\"srv.php\")"),
            ("node", "node --eval x", "Inline(\"--eval\")"),
            ("node", "node --eval=x", "Inline(\"--eval=x\")"),
            ("node", "node -r dotenv/config -e x", "Inline(\"-e\")"),
            (
                "node",
                "node --require dotenv/config app.js",
                "Script(\"app.js\")",
            ),
            ("node", "node -", "Stdin(\"-\")"),
            ("lua", "lua -lsocket -e x", "Inline(\"-e\")"),
            ("awk", "gawk BEGIN{x}", "Inline(\"BEGIN{x}\")"),
            ("awk", "gawk -v p=1 BEGIN{x}", "Inline(\"BEGIN{x}\")"),
            ("awk", "gawk -f prog.awk", "Script(\"prog.awk\")"),
            ("awk", "gawk --source x", "Inline(\"--source\")"),
        ] {
            assert_eq!(runs(family, line), want, "{line}");
        }
    }
}
