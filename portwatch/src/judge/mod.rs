//! The judge stage: every verdict on a record comes from here, one entry point per situation
//! (a new listener, an accept, a program started on sockets, a stats interval), each returning
//! one `Verdicts` (the baseline's alert, the detections, reachability). The stream, the
//! start-up snapshot, reconciliation and `ls` call it the same way. It judges what was gathered
//! before it (enrichment: the process and its capabilities; state: the listener table's
//! neighbours, the firewall's rulesets) and reads nothing else.
//!
//! `rules` are the built-in detections, `baseline` the user's allowlist; reachability is the
//! firewall's verdict (`state::firewall`).
pub mod baseline;
pub mod rules;

use std::{
    borrow::Cow,
    net::{IpAddr, SocketAddr},
};

use baseline::Baseline;
use rules::{Rules, Subject};

pub use crate::model::verdict::Verdicts;
use crate::{
    model::{
        health::{Health, Rising},
        listener::{Listener, Neighbour},
        net::{Proto, protocol_name},
        process::{Identity, ListenerOwner, ProcessContext},
        socket::StdioSocket,
    },
    state::firewall::Firewall,
};

/// Baseline, detections and firewall, as configured for this run.
#[derive(Default)]
pub struct Judge {
    rules: Rules,
    baseline: Option<Baseline>,
    /// Off: `--no-reachability`, and in tests.
    firewall: Option<Firewall>,
}

/// Who a verdict is about.
#[derive(Clone)]
pub struct Who<'a> {
    /// 0: not known.
    pub pid: u32,
    /// The task that holds the socket (pid, tid), to enter its network namespace.
    pub holder: Option<(u32, u32)>,
    pub uid: Option<u32>,
    pub comm: Cow<'a, str>,
    pub process: &'a ProcessContext,
    /// Its effective capabilities, read while it ran (`enrich::capabilities`).
    pub caps: Option<u64>,
    /// What its executable is by content (`Enricher::identity`), when examined.
    pub identity: Option<&'a Identity>,
}

impl<'a> Who<'a> {
    /// The owner of a listener found by listing (none known: pid 0, comm "?").
    pub fn owner(
        owner: &'a ListenerOwner,
        caps: Option<u64>,
        identity: Option<&'a Identity>,
    ) -> Self {
        let task = owner.task.as_ref();
        Self {
            pid: task.map_or(0, |t| t.pid),
            holder: task.map(|t| (t.pid, t.tid)),
            uid: task.map(|t| t.uid),
            comm: task.map_or(Cow::Borrowed("?"), |t| t.comm.text()),
            process: &owner.process,
            caps,
            identity,
        }
    }
}

/// A socket that listens now: a listen, a UDP socket's bind, one found by listing.
pub struct NewListener<'a> {
    pub proto: Proto,
    pub local: SocketAddr,
    pub v6only: Option<bool>,
    /// The network namespace (inode; 0: not known).
    pub netns: u32,
    /// The socket's own uid, for the rules when the owner's is not known (a listed socket).
    pub socket_uid: Option<u32>,
    /// TCP: the listeners already serving an overlapping address and port (only SO_REUSEPORT
    /// lets a second one listen there).
    pub joined: Option<&'a [Neighbour]>,
    pub io_uring: bool,
}

impl<'a> NewListener<'a> {
    /// A listener found by listing.
    pub fn listed(l: &Listener) -> Self {
        let s = &l.socket;
        Self {
            proto: s.proto,
            local: s.local,
            v6only: s.v6only,
            netns: s.netns,
            socket_uid: Some(s.uid),
            joined: None,
            io_uring: false,
        }
    }
}

/// Where a socket is, as far as known.
#[derive(Clone, Copy, Default)]
pub struct Place {
    /// The IP protocol number.
    pub protocol: Option<u16>,
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

impl Judge {
    pub fn new(rules: Rules, baseline: Option<Baseline>, firewall: Option<Firewall>) -> Self {
        Self {
            rules,
            baseline,
            firewall,
        }
    }

    /// A new baseline (SIGHUP), for the listeners from now on.
    pub fn set_baseline(&mut self, baseline: Baseline) {
        self.baseline = Some(baseline);
    }

    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    pub fn set_firewall(&mut self, firewall: Firewall) {
        self.firewall = Some(firewall);
    }

    /// Whether a new listener's owner's capabilities are asked for (the privileged-port rule
    /// is on): gathered only then, and only for a privileged port without root.
    pub fn needs_caps(&self) -> bool {
        self.rules.judges_privilege()
    }

    /// Whether a program started on sockets is judged (and so reported: `exec` records).
    pub fn judges_stdio(&self) -> bool {
        self.rules.judges_stdio()
    }

    /// A listener that is new to portwatch: the baseline, the firewall and the rules.
    pub fn new_listener(&mut self, l: &NewListener, who: &Who) -> Verdicts {
        let p = who.process;
        let alert = self.baseline.as_ref().and_then(|b| {
            b.check(&baseline::Subject {
                proto: l.proto,
                address: l.local.ip(),
                port: l.local.port(),
                uid: who.uid,
                user: p.user.as_deref(),
                exe: p.exe.as_deref(),
            })
        });
        let reachability = self
            .firewall
            .as_mut()
            .map(|f| f.judge(l.netns, who.holder, l.proto, l.local, l.v6only));
        let verb = match l.proto {
            Proto::Tcp => "listening on",
            Proto::Udp => "bound to",
        };
        let place = Place {
            protocol: Some(l.proto.number()),
            ip: Some(l.local.ip()),
            port: Some(l.local.port()),
        };
        let doing = doing(verb, &place);
        let detections = self.rules.judge(&Subject {
            uid: who.uid.or(l.socket_uid),
            port: Some(l.local.port()),
            joined: l.joined,
            io_uring: l.io_uring,
            ..subject(&doing, who)
        });
        Verdicts {
            alert,
            detections,
            reachability,
        }
    }

    /// An accepted connection on `at`.
    pub fn accept(&self, at: &Place, io_uring: bool, who: &Who) -> Verdicts {
        let doing = doing("accepting on", at);
        Verdicts::found(self.rules.judge(&Subject {
            accept: true,
            port: at.port,
            io_uring,
            ..subject(&doing, who)
        }))
    }

    /// A program started with sockets as its standard streams.
    pub fn exec(&self, stdio: &StdioSocket, who: &Who) -> Verdicts {
        let socket = stdio.socket.as_ref();
        let at = Place {
            protocol: socket.map(|s| s.protocol),
            ip: socket.map(|s| s.local.ip()),
            port: socket.map(|s| s.local.port()),
        };
        let local = doing("on", &at);
        let on = match socket.map(|s| s.remote) {
            None => "on an IP socket".to_owned(),
            Some(Some(peer)) => format!("{local} connected to {peer}"),
            Some(None) => local,
        };
        let streams: Vec<&str> = stdio.streams().collect();
        let doing = format!("started with {} {on}", streams.join(", "));
        Verdicts::found(self.rules.judge_stdio(&subject(&doing, who)))
    }

    /// A TCP listener's health at a stats interval, its CLOSE_WAIT run if rising (UDP: none).
    pub fn stats(
        &self,
        l: &NewListener,
        health: &Health,
        rising: Option<Rising>,
        who: &Who,
    ) -> Verdicts {
        if l.proto != Proto::Tcp {
            return Verdicts::default();
        }
        let place = Place {
            protocol: Some(l.proto.number()),
            ip: Some(l.local.ip()),
            port: Some(l.local.port()),
        };
        let doing = doing("listening on", &place);
        let s = Subject {
            uid: None,
            args: None,
            ancestors: &[],
            ..subject(&doing, who)
        };
        Verdicts::found(self.rules.judge_health(&s, health, rising))
    }
}

/// What every rule knows of `who`.
fn subject<'a>(doing: &'a str, who: &'a Who) -> Subject<'a> {
    let p = who.process;
    Subject {
        doing,
        accept: false,
        pid: who.pid,
        comm: &who.comm,
        exe: p.exe.as_deref(),
        known_as: who.identity.and_then(|i| i.known_as.as_deref()),
        exe_at: who.identity.and_then(|i| i.exe_at.as_ref()),
        script_at: who.identity.and_then(|i| i.script_at.as_ref()),
        aliases: who.identity.map_or(&[], |i| &i.aliases),
        loaded: who.identity.and_then(|i| i.loaded.as_ref()),
        exe_deleted: p.exe_deleted,
        args: p.args.as_deref(),
        exec_args: p.exec_args.as_deref(),
        uid: who.uid,
        caps: who.caps,
        port: None,
        joined: None,
        io_uring: false,
        ancestors: &p.lineage,
    }
}

/// "listening on tcp 0.0.0.0:4444", for the detections' reasons.
fn doing(verb: &str, at: &Place) -> String {
    let addr = match (at.ip, at.port) {
        (Some(IpAddr::V6(ip)), Some(p)) => format!("[{ip}]:{p}"),
        (Some(ip), Some(p)) => format!("{ip}:{p}"),
        _ => "an unknown address".into(),
    };
    let proto = at.protocol.map_or(Cow::Borrowed("socket"), protocol_name);
    format!("{verb} {proto} {addr}")
}
