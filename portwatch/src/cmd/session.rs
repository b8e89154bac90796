//! The start-up `watch` and `doctor` share (and `ls` its warnings): the run's plan checked, the
//! kernel checked, this kernel's layout read, the programs loaded with the filters, every hook
//! attached, the ring buffer and counters ready, the snapshot reported.
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, PerCpuHashMap, RingBuf},
};
use portwatch_common::names;
use tokio::io::unix::AsyncFd;

use crate::{
    cli::WatchArgs,
    clock::{self, Clock},
    enrich::{Enricher, identify::Catalog},
    error::{Error, Result},
    filter::Filters,
    judge::{baseline::Baseline, rules::Rules},
    kernel::{
        bound_udp::BoundUdp,
        counters::KernelCounters,
        diagnostics::KernelLog,
        hooks::{self, Chosen},
        layout, loader, preflight,
    },
    model::listener::Listener,
    output::{Output, sink::Sink},
    pipeline::stream::Stream,
    state::{inventory, listeners::ListenerTable, sockdiag::SockDiag},
};

/// The kernel side, attached and ready to read. Dropping it detaches every program.
pub struct Session {
    pub ebpf: Ebpf,
    pub hooks: Vec<Chosen>,
    pub ring: AsyncFd<RingBuf<MapData>>,
    pub counters: KernelCounters,
    pub tracing: Tracing,
    /// The programs' diagnostics, when loaded with them (`doctor --verbose`).
    pub log: Option<KernelLog>,
}

/// What the attached hooks trace, which the stream's tables rely on.
#[derive(Clone, Copy, Debug)]
pub struct Tracing {
    /// When the exec hook started tracing every execve (None: it is not attached).
    pub exec_since: Option<u64>,
    /// The `udp_close` hook is attached.
    pub udp_closes: bool,
}

/// `diagnostics`: load the programs with their diagnostics on (see `kernel::diagnostics`).
pub fn start(args: &WatchArgs, filters: &Filters, diagnostics: bool) -> Result<Session> {
    let machine = preflight::check(args.btf.as_deref())?;
    let offsets = {
        let types = layout::KernelTypes::open(&machine.btf)?;
        layout::kernel_offsets(&types, &machine.tracefs)?
    };
    let (mut ebpf, btf) = loader::load(
        &offsets,
        &filters.config,
        &args.flood_limit(),
        args.ring_buffer_size,
        &machine.btf,
        diagnostics,
    )?;
    let log = diagnostics
        .then(|| KernelLog::open(&mut ebpf))
        .transpose()?;
    filters.install(&mut ebpf)?;
    let hooks = hooks::attach_all(&mut ebpf, &btf, &offsets, &args.attach, |k| {
        filters.selects(k)
    })?;
    // The kernel's types (about 15 MiB) are not needed once everything is attached; give the
    // memory back rather than keep it for the daemon's lifetime.
    drop(btf);
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory.
    let _ = unsafe { libc::malloc_trim(0) };
    // From now on every execve is traced (if the exec hook attached); what ran before is read
    // from /proc once, below.
    let exec_traced = hooks.iter().any(|h| h.hook == "exec" && h.attach.is_some());
    let exec_traced_since = exec_traced.then(clock::boottime_ns);
    let udp_closes_traced = hooks
        .iter()
        .any(|h| h.hook == "udp_close" && h.attach.is_some());

    let mut map = |name: &str| {
        ebpf.take_map(name)
            .ok_or_else(|| Error::Load(format!("map {name} is missing from the object")))
    };
    let ring = RingBuf::try_from(map(names::EVENTS_MAP)?)
        .map_err(|e| Error::Load(format!("ring buffer: {e}")))?;
    let counters = KernelCounters::new(
        PerCpuArray::try_from(map(names::COUNTERS_MAP)?)
            .map_err(|e| Error::Load(format!("counters: {e}")))?,
        PerCpuHashMap::try_from(map(names::FLOOD_MAP)?)
            .map_err(|e| Error::Load(format!("flood table: {e}")))?,
    );
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged while the AsyncFd
    // owns the RingBuf.
    let ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| Error::io("polling the ring buffer", e.into_parts().1))?;

    Ok(Session {
        ebpf,
        hooks,
        ring,
        counters,
        tracing: Tracing {
            exec_since: exec_traced_since,
            udp_closes: udp_closes_traced,
        },
        log,
    })
}

/// What a run is asked for, checked before anything touches the kernel (a malformed baseline,
/// filter or detection name is refused first): the filters, and what judges the records.
pub struct Plan {
    pub filters: Filters,
    pub baseline: Option<Baseline>,
    pub rules: Rules,
    /// `--ancestry`: records carry their process's chain of ancestors.
    pub ancestry: bool,
    /// Listener and listen records say whether the firewall lets connections reach them.
    pub reachability: bool,
}

impl Plan {
    /// `watch`'s, from its flags.
    pub fn new(args: &WatchArgs) -> Result<Self> {
        let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
        let filters = Filters::new(args.asked())?;
        let ports = (!args.backdoor_port.is_empty()).then(|| args.backdoor_port.clone());
        let rules = Rules::new(args.no_detection.clone(), ports, args.uring_allow.clone())
            .map_err(Error::Usage)?;
        Ok(Self {
            filters,
            baseline,
            rules,
            ancestry: args.ancestry,
            reachability: !args.no_reachability,
        })
    }

    /// The filters alone, the default detections, nothing else (`doctor`).
    pub fn plain(args: &WatchArgs) -> Result<Self> {
        Ok(Self {
            filters: Filters::new(args.asked())?,
            baseline: None,
            rules: Rules::default(),
            ancestry: false,
            reachability: false,
        })
    }
}

/// Says on stderr what each optional capability portwatch lacks hides (`watch`, `ls`), and
/// returns them for the start record.
pub fn warn_missing_privileges() -> &'static [crate::host::caps::Missing] {
    let missing = crate::host::caps::missing();
    for m in missing {
        eprintln!(
            "portwatch: warning: without {}, {}",
            m.capability, m.without
        );
    }
    missing
}

/// The stream, once it has reported the listeners that existed before the hooks attached
/// (their UDP sockets handed to the kernel's close tracking): what `watch` and `doctor` read
/// the ring buffer through.
pub fn snapshot_stream<S: Sink>(
    ebpf: &mut Ebpf,
    counters: KernelCounters,
    tracing: Tracing,
    out: Output<S>,
    plan: Plan,
    clock: &Clock,
) -> Result<Stream<S>> {
    let (enricher, listeners) = survey(tracing.exec_since, plan.ancestry)?;
    let mut stream = Stream::new(
        out,
        enricher,
        Box::new(counters),
        Box::new(SockDiag),
        plan.baseline,
        plan.filters,
        ListenerTable::new(tracing.udp_closes),
    );
    // Before the snapshot, whose listeners are judged too.
    stream.set_rules(plan.rules);
    if plan.reachability {
        stream.set_firewall(crate::state::firewall::Firewall::default());
    }
    // Only the sockets the filters let through are handed over: the kernel reports the close
    // of every socket in its table, whoever closes it.
    if tracing.udp_closes {
        stream.set_udp_closes(Box::new(BoundUdp::take(ebpf)?));
    }
    stream.snapshot(&listeners, clock)?;
    Ok(stream)
}

/// What exists now, as `watch`, `doctor` and `ls` start from: the host's tools that the rules
/// know (fingerprinted), the processes, read from /proc (`exec_since`: when the exec hook began
/// tracing, if it did), and every listener.
pub fn survey(exec_since: Option<u64>, ancestry: bool) -> Result<(Enricher, Vec<Listener>)> {
    let mut enricher = Enricher::new(exec_since);
    enricher.set_ancestry(ancestry);
    enricher.examine_with(
        Catalog::of_host(&crate::judge::rules::is_tool),
        crate::judge::rules::script,
    );
    enricher.seed_from_proc();
    Ok((enricher, inventory::listed()?))
}

/// Each hook's attach type, in one line for stderr.
pub fn summary(hooks: &[Chosen]) -> String {
    hooks
        .iter()
        .map(|h| match h.attach {
            Some(a) => format!("{}: {a}", h.hook),
            None if h.skipped.is_some() => format!("{}: not needed", h.hook),
            None => format!("{}: unavailable", h.hook),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
