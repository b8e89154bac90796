//! `watch`'s filters: most go into the kernel (pid, uid, cgroup, network namespace, port,
//! event kinds, and portwatch itself) before the programs attach; executable and container can
//! only be judged after enrichment and are applied before formatting.
mod flags;

use aya::{
    Ebpf,
    maps::{HashMap, MapData},
};
use portwatch_common::{EventKind, FilterConfig, filter, names};

use crate::{
    error::{Error, Result},
    model::socket::socket_kind_names,
    model::{
        listener::Listener,
        process::{ListenerOwner, ProcessContext},
    },
};

/// The filters of one `watch` run, resolved (paths to inodes, names to kinds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pub config: FilterConfig,
    pub pids: Vec<u32>,
    pub uids: Vec<u32>,
    pub cgroups: Vec<u64>,
    pub netns: Vec<u32>,
    pub ports: Vec<u16>,
    /// Userspace: only processes running one of these executables.
    pub exes: Vec<String>,
    /// Userspace: only processes in containers whose id starts with one of these.
    pub containers: Vec<String>,
}

/// `--events`: the kinds' bits (every socket kind when none is named).
fn kinds(events: &[String]) -> Result<u32> {
    if events.is_empty() {
        return Ok(EventKind::SOCKET
            .into_iter()
            .fold(0, |m, k| m | 1 << k as u32));
    }
    let mut kinds = 0;
    for name in events {
        let kind = EventKind::SOCKET
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "unknown event kind `{name}` for --events (known: {})",
                    socket_kind_names()
                ))
            })?;
        kinds |= 1 << kind as u32;
    }
    Ok(kinds)
}

/// The filter flags as given, on the command line or in the configuration file.
#[derive(Clone, Copy, Debug, Default)]
pub struct Asked<'a> {
    pub events: &'a [String],
    pub pid: &'a [u32],
    pub uid: &'a [u32],
    pub port: &'a [u16],
    pub cgroup: &'a [String],
    pub netns: &'a [String],
    pub exe: &'a [std::path::PathBuf],
    pub container: &'a [String],
}

impl Filters {
    pub fn new(args: Asked) -> Result<Self> {
        let kinds = kinds(args.events)?;
        let mut f = Self {
            pids: args
                .pid
                .iter()
                .map(|&p| flags::pid(p))
                .collect::<Result<_>>()?,
            uids: args
                .uid
                .iter()
                .map(|&u| flags::uid(u))
                .collect::<Result<_>>()?,
            ports: args.port.to_vec(),
            containers: args.container.to_vec(),
            ..Self::default()
        };
        for path in args.exe {
            // Compared with the executables as records write them (`text::escape`).
            let path = flags::exe(path)?;
            f.exes
                .push(crate::model::text::escape_os(path.as_os_str()).into_owned());
        }
        let root = crate::host::cgroup::v2_root();
        for c in args.cgroup {
            f.cgroups.push(flags::cgroup(c, root)?);
        }
        for n in args.netns {
            f.netns.push(flags::netns(n)?);
        }
        let mut active = 0;
        for (on, bit) in [
            (!f.pids.is_empty(), filter::PIDS),
            (!f.uids.is_empty(), filter::UIDS),
            (!f.cgroups.is_empty(), filter::CGROUPS),
            (!f.netns.is_empty(), filter::NETNS),
            (!f.ports.is_empty(), filter::PORTS),
        ] {
            if on {
                active |= bit;
            }
        }
        let too_many = [
            f.pids.len(),
            f.uids.len(),
            f.cgroups.len(),
            f.netns.len(),
            f.ports.len(),
        ]
        .into_iter()
        .any(|n| n > filter::MAX_ENTRIES as usize);
        if too_many {
            return Err(Error::Usage(format!(
                "at most {} values per filter",
                filter::MAX_ENTRIES
            )));
        }
        f.config = FilterConfig {
            active,
            kinds,
            self_tgid: std::process::id(),
            _pad: 0,
        };
        Ok(f)
    }

    /// Fills the kernel's filter maps (the `FILTER` global is set at load).
    pub fn install(&self, ebpf: &mut Ebpf) -> Result<()> {
        fn fill<K: aya::Pod>(ebpf: &mut Ebpf, name: &str, keys: &[K]) -> Result<()> {
            let map = ebpf
                .map_mut(name)
                .ok_or_else(|| Error::Load(format!("map {name} is missing from the object")))?;
            let mut set: HashMap<&mut MapData, K, u8> =
                HashMap::try_from(map).map_err(|e| Error::Load(format!("{name}: {e}")))?;
            for k in keys {
                set.insert(k, 1, 0)
                    .map_err(|e| Error::Load(format!("filling {name}: {e}")))?;
            }
            Ok(())
        }
        fill(ebpf, names::FILTER_PIDS_MAP, &self.pids)?;
        fill(ebpf, names::FILTER_UIDS_MAP, &self.uids)?;
        fill(ebpf, names::FILTER_CGROUPS_MAP, &self.cgroups)?;
        fill(ebpf, names::FILTER_NETNS_MAP, &self.netns)?;
        fill(ebpf, names::FILTER_PORTS_MAP, &self.ports)
    }

    /// All filters, on a snapshot listener (the kernel's did not see it), with the kernel's
    /// rule (`FilterConfig::passes`): a listener passes the pid filter when any holder is listed,
    /// and portwatch's own never do.
    pub fn allows_listener(&self, l: &Listener, owner: &ListenerOwner) -> bool {
        let c = &self.config;
        let p = &owner.process;
        // portwatch never reports itself (the kernel's filter skips it too): its metrics port.
        !l.owners.contains(&std::process::id())
            && (c.selects(EventKind::Listen) || c.selects(EventKind::Bind))
            && c.passes(filter::PIDS, || {
                l.owners.iter().any(|o| self.pids.contains(o))
            })
            && c.passes(filter::UIDS, || {
                owner
                    .task
                    .as_ref()
                    .is_some_and(|t| self.uids.contains(&t.uid))
            })
            && c.passes(filter::PORTS, || {
                self.ports.contains(&l.socket.local.port())
            })
            && c.passes(filter::CGROUPS, || self.cgroups.contains(&p.cgroup_id))
            && c.passes(filter::NETNS, || {
                p.netns.is_some_and(|n| self.netns.contains(&n))
            })
            && self.allows(p)
    }

    /// The port filter on a record the kernel's filter did not see (an `exec` on sockets):
    /// any of `ports` listed.
    pub fn allows_ports(&self, ports: &[u16]) -> bool {
        self.config.passes(filter::PORTS, || {
            ports.iter().any(|p| self.ports.contains(p))
        })
    }

    /// Whether `--events` selects this kind (all four without `--events`).
    pub fn selects(&self, kind: EventKind) -> bool {
        self.config.selects(kind)
    }

    /// Whether close events reach the daemon (the listener table needs them).
    pub fn traces_closes(&self) -> bool {
        self.selects(EventKind::Close)
    }

    /// The userspace filters, on an enriched record.
    pub fn allows(&self, p: &ProcessContext) -> bool {
        (self.exes.is_empty()
            || p.exe
                .as_deref()
                .is_some_and(|e| self.exes.iter().any(|x| x == e)))
            && (self.containers.is_empty()
                || p.container
                    .as_ref()
                    .is_some_and(|c| self.containers.iter().any(|x| c.id.starts_with(x.as_str()))))
    }
}

#[cfg(test)]
mod tests {
    use std::{os::unix::fs::MetadataExt, sync::Arc};

    use super::*;
    use crate::{
        model::{net::Proto, process::Container, task::Task},
        testkit::{self, try_watch_filters, watch_filters},
    };

    fn listener(port: u16, owners: &[u32]) -> Listener {
        testkit::listener(Proto::Tcp, &format!("127.0.0.1:{port}"), 1, owners)
    }

    fn owner(uid: Option<u32>, exe: &str) -> ListenerOwner {
        let task = uid.map(|uid| Task {
            uid,
            ..Task::default()
        });
        let context = ProcessContext {
            exe: Some(exe.into()),
            cgroup_id: 77,
            ..ProcessContext::default()
        };
        testkit::listener_owner(task, context)
    }

    #[test]
    fn event_kinds_and_their_errors() {
        let all = watch_filters(&[]);
        assert!(EventKind::SOCKET.into_iter().all(|k| all.selects(k)));
        let some = watch_filters(&["--events", "bind,close"]);
        assert!(some.selects(EventKind::Bind) && some.selects(EventKind::Close));
        assert!(!some.selects(EventKind::Listen) && !some.selects(EventKind::Accept));
        let err = try_watch_filters(&["--events", "exec"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`exec`") && err.contains("bind, listen, accept, close"),
            "{err}"
        );
    }

    #[test]
    fn paths_are_resolved_to_inodes_and_bad_ones_refused() {
        let f = watch_filters(&["--netns", "/proc/self/ns/net", "--cgroup", "12345"]);
        let mine = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        assert_eq!(f.netns, vec![mine as u32]);
        assert_eq!(f.cgroups, vec![12345]);
        assert_eq!(f.config.active, filter::NETNS | filter::CGROUPS);
        let err = try_watch_filters(&["--netns", "/no/such/ns"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/ns"), "{err}");
    }

    #[test]
    fn userspace_filters_match_the_executable_and_a_container_id_prefix() {
        let f = watch_filters(&["--exe", "/usr/sbin/sshd", "--container", "abc"]);
        let mut p = ProcessContext {
            exe: Some("/usr/sbin/sshd".into()),
            container: Some(
                Container {
                    runtime: "docker",
                    id: "abcdef".into(),
                    ..Container::default()
                }
                .into(),
            ),
            ..ProcessContext::default()
        };
        assert!(f.allows(&p));
        p.container = Some(
            Container {
                runtime: "docker",
                id: "fedcba".into(),
                ..Container::default()
            }
            .into(),
        );
        assert!(!f.allows(&p), "container");
        p.container = None;
        assert!(!f.allows(&p), "no container");
        let exe_only = watch_filters(&["--exe", "/usr/sbin/sshd"]);
        p.exe = Some(Arc::from("/tmp/sshd"));
        assert!(!exe_only.allows(&p), "exe");
    }

    #[test]
    fn snapshot_listeners_pass_the_kernels_filters_the_same_way() {
        let sshd = owner(Some(0), "/usr/sbin/sshd");
        assert!(watch_filters(&[]).allows_listener(&listener(22, &[10]), &sshd));
        // pid: any holder of the socket.
        let by_pid = watch_filters(&["--pid", "11"]);
        assert!(by_pid.allows_listener(&listener(22, &[10, 11]), &sshd));
        assert!(!by_pid.allows_listener(&listener(22, &[10]), &sshd));
        // uid: the first owner's; an unreadable owner does not pass an active uid filter.
        let by_uid = watch_filters(&["--uid", "0"]);
        assert!(by_uid.allows_listener(&listener(22, &[10]), &sshd));
        assert!(!by_uid.allows_listener(&listener(22, &[10]), &owner(None, "/x")));
        assert!(!by_uid.allows_listener(&listener(22, &[10]), &owner(Some(1000), "/x")));
        // port, cgroup, and the userspace filters too.
        assert!(!watch_filters(&["--port", "80"]).allows_listener(&listener(22, &[]), &sshd));
        assert!(watch_filters(&["--cgroup", "77"]).allows_listener(&listener(22, &[]), &sshd));
        assert!(!watch_filters(&["--cgroup", "78"]).allows_listener(&listener(22, &[]), &sshd));
        assert!(!watch_filters(&["--exe", "/bin/nc"]).allows_listener(&listener(22, &[]), &sshd));
        // Listeners are what binds and listens report: not with --events accept,close.
        let no_listens = watch_filters(&["--events", "accept,close"]);
        assert!(!no_listens.allows_listener(&listener(22, &[10]), &sshd));
    }
}
