//! Interpreters' command lines, read the way the interpreters read them: short options combined
//! in one argument (`python3 -Ic`, `perl -we`), options with their value attached or next
//! (`-Wignore`, `-W ignore`), `--` and `-`, and the first operand (a script, or awk's program).
//! What matters to the rules is what the interpreter was told to run.

/// What an interpreter was told to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs<'a> {
    /// A program given on the command line, by this argument (`-c`, `-Ic`, `--eval`, or awk's
    /// first operand).
    Inline(&'a str),
    /// Its program on standard input: `-`, or no script at all.
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
    /// Short options whose optional value can only be attached (`perl -l0`, `ruby -W2`).
    pub attached: &'static [char],
    /// Long options that take a value (`--require x`; `--require=x` is one argument anyway).
    pub valued_long: &'static [&'static str],
    /// Short options naming a module or server to run, which ends the interpreter's options.
    pub module: &'static [char],
    /// Short options naming the script file (`awk -f`, `php -f`).
    pub script: &'static [char],
    /// The first operand is the program itself, not a script's name (awk).
    pub program_operand: bool,
}

impl Syntax {
    /// What `args` (argv, the interpreter's own name first) tell it to run.
    pub fn runs<'a>(&self, args: &'a [String]) -> Runs<'a> {
        let mut i = 1;
        while let Some(a) = args.get(i) {
            if a == "--" {
                i += 1;
                break;
            }
            if a == "-" || !a.starts_with('-') {
                break;
            }
            if let Some(long) = a.strip_prefix("--") {
                let name = long.split('=').next().unwrap_or(long);
                if self.inline_long.contains(&name) {
                    return Runs::Inline(a);
                }
                if self.valued_long.contains(&name) && !long.contains('=') {
                    i += 1;
                }
                i += 1;
                continue;
            }
            match self.short(a, args.get(i + 1)) {
                Short::Flags => i += 1,
                Short::TookNext => i += 2,
                Short::Found(runs) => return runs,
            }
        }
        match args.get(i) {
            None => Runs::Stdin("(no script)"),
            Some(op) if op == "-" => Runs::Stdin(op),
            Some(op) if self.program_operand => Runs::Inline(op),
            Some(op) => Runs::Script(op),
        }
    }

    /// One argument of short options (`-Ic`), `next` the argument after it.
    fn short<'a>(&self, a: &'a str, next: Option<&'a String>) -> Short<'a> {
        for (at, c) in a.char_indices().skip(1) {
            let rest = &a[at + c.len_utf8()..];
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
            if self.module.contains(&c) {
                return Short::Found(Runs::Module(value()));
            }
            if self.script.contains(&c) {
                return Short::Found(Runs::Script(value()));
            }
            if self.valued.contains(&c) {
                return if rest.is_empty() {
                    Short::TookNext
                } else {
                    Short::Flags
                };
            }
            if self.attached.contains(&c) {
                return Short::Flags;
            }
        }
        Short::Flags
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
    use crate::judge::rules::program::INTERPRETERS;

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
            ("perl", "perl -M IO::Socket -e x", "Inline(\"-e\")"),
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
