//! The interpreters the rules know, and how each reads its command line (checked against the
//! real ones: `perl -M strict` is refused, so perl's `-M` takes its value attached only;
//! `node --inspect-port 9229` takes the next argument; `tclsh -x` reads its program from
//! standard input; `perl -le CODE` and `ruby -W2e CODE` run CODE).
use super::cmdline::Syntax;

/// An interpreter: how it reads its command line (`cmdline::Syntax`) and its technique.
pub(super) struct Interpreter {
    pub family: &'static str,
    pub syntax: Syntax,
    pub technique: &'static str,
}

pub(super) const INTERPRETERS: [Interpreter; 8] = [
    Interpreter {
        family: "python",
        syntax: Syntax {
            inline: &['c'],
            interactive: &['i'],
            code_modules: &["code", "timeit", "pdb"],
            valued: &['W', 'X'],
            valued_long: &["check-hash-based-pycs"],
            module: &['m'],
            ..Syntax::PLAIN
        },
        technique: "T1059.006",
    },
    Interpreter {
        family: "perl",
        syntax: Syntax {
            inline: &['e', 'E'],
            valued: &['I'],
            attached: &['x', 'i', 'C', 'd', 'D', 'F', 'M', 'm'],
            numbered: &['l', '0'],
            // `-M'strict;system ...'` is `use strict;system ...;`.
            loads: &['M', 'm'],
            ..Syntax::PLAIN
        },
        technique: "T1059",
    },
    Interpreter {
        family: "ruby",
        syntax: Syntax {
            inline: &['e'],
            valued: &['I', 'r', 'C', 'E'],
            attached: &['x', 'T', 'K', 'F', 'i'],
            numbered: &['W', '0'],
            valued_long: &[
                "encoding",
                "external-encoding",
                "internal-encoding",
                "enable",
                "disable",
                "dump",
            ],
            ..Syntax::PLAIN
        },
        technique: "T1059",
    },
    Interpreter {
        family: "php",
        syntax: Syntax {
            inline: &['r', 'B', 'R', 'E'],
            inline_long: &["run", "process-begin", "process-code", "process-end"],
            valued: &['c', 'd', 't', 'z'],
            valued_long: &["php-ini", "define", "docroot", "zend-extension"],
            module: &['S'],
            script: &['f', 'F'],
            ..Syntax::PLAIN
        },
        technique: "T1059",
    },
    Interpreter {
        family: "node",
        syntax: Syntax {
            inline: &['e', 'p'],
            inline_long: &["eval", "print"],
            valued: &['r', 'C'],
            valued_long: &[
                "require",
                "import",
                "loader",
                "experimental-loader",
                "input-type",
                "conditions",
                "title",
                "env-file",
                "inspect-port",
            ],
            // `--import data:text/javascript,...` runs the code in the URL.
            loads: &['r'],
            loads_long: &["require", "import", "loader", "experimental-loader"],
            ..Syntax::PLAIN
        },
        technique: "T1059.007",
    },
    Interpreter {
        family: "lua",
        syntax: Syntax {
            inline: &['e'],
            interactive: &['i'],
            valued: &['l'],
            ..Syntax::PLAIN
        },
        technique: "T1059",
    },
    Interpreter {
        family: "awk",
        syntax: Syntax {
            inline: &['e'],
            inline_long: &["source"],
            valued: &['F', 'v', 'i', 'l', 'W'],
            valued_long: &["assign", "field-separator", "include", "load"],
            script: &['f', 'E'],
            program_operand: true,
            ..Syntax::PLAIN
        },
        technique: "T1059",
    },
    Interpreter {
        family: "tclsh",
        syntax: Syntax {
            tcl: true,
            ..Syntax::PLAIN
        },
        technique: "T1059",
    },
];

/// `python3.11` → `python`; `nodejs` → `node`; `gawk`, `mawk` → `awk`; `tclsh8.6` → `tclsh`.
pub(super) fn family(name: &str) -> &str {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    match base {
        "nodejs" => "node",
        "gawk" | "mawk" | "nawk" | "original-awk" => "awk",
        _ => base,
    }
}
