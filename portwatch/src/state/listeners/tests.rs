use super::*;

fn live(proto: Proto, addr: &str, pid: u32, exe: &str, since_ns: u64) -> Live {
    Live {
        proto,
        bound: Bound {
            local: addr.parse().unwrap(),
            v6only: None,
        },
        since_ns,
        from_snapshot: false,
        accepted: 0,
        owner: Holder {
            pid,
            exe: Some(exe.into()),
            ..Holder::default()
        },
        netns: NETNS,
        owner_exited: false,
    }
}

const NETNS: u32 = 4026531840;

/// sock_diag's answer: these sockets, in the one namespace it listed.
fn present(inodes: &[u64]) -> Present {
    Present {
        inodes: inodes.iter().copied().collect(),
        namespaces: [NETNS].into_iter().collect(),
        unlisted: 0,
    }
}
#[test]
fn lifetime_and_accepted_connections() {
    let mut t = ListenerTable::default();
    t.insert(
        7,
        live(
            Proto::Tcp,
            "0.0.0.0:80",
            1,
            "/usr/sbin/nginx",
            1_000_000_000,
        ),
    );
    t.accepted(7);
    t.accepted(7);
    t.accepted(8); // another socket: ignored
    let (_, ended) = t.close(7, 3_500_000_000).unwrap();
    assert_eq!(ended.lifetime_s, 2.5);
    assert_eq!(ended.accepted, Some(2));
    assert!(t.close(7, 4_000_000_000).is_none(), "closed once");
}

#[test]
fn names_other_programs_on_the_same_port() {
    let mut t = ListenerTable::default();
    t.insert(1, live(Proto::Tcp, "0.0.0.0:8080", 10, "/usr/bin/app", 0));
    t.insert(2, live(Proto::Tcp, "[::]:8081", 11, "/usr/bin/other", 0));
    t.insert(3, live(Proto::Udp, "0.0.0.0:8080", 12, "/usr/bin/dns", 0));
    let local = Bound {
        local: "127.0.0.1:8080".parse().unwrap(),
        v6only: None,
    };
    let joiner = |exe: &str| Live {
        bound: local,
        ..live(Proto::Tcp, "127.0.0.1:8080", 12, exe, 0)
    };
    let same_exe = t.neighbours(9, &joiner("/usr/bin/app"));
    assert!(
        same_exe.is_empty(),
        "SO_REUSEPORT workers of one program are not flagged"
    );
    let other = t.neighbours(9, &joiner("/tmp/intruder"));
    assert_eq!(
        other,
        vec![Neighbour {
            pid: 10,
            exe: Some("/usr/bin/app".into()),
            uid: 0,
        }]
    );
    let mut other_user = joiner("/usr/bin/app");
    other_user.owner.uid = 1000;
    assert_eq!(
        t.neighbours(9, &other_user).len(),
        1,
        "another user of the same program"
    );
    let mut elsewhere = joiner("/tmp/intruder");
    elsewhere.netns = NETNS + 1;
    assert!(
        t.neighbours(9, &elsewhere).is_empty(),
        "the same port in another network namespace is another port"
    );
}

/// The table and the inventory agree on overlap: a v6-only `::` socket does not take IPv4,
/// so an IPv4 listener on its port shares nothing with it (the table once assumed every
/// `::` socket was dual-stack).
#[test]
fn a_v6only_wildcard_does_not_overlap_ipv4() {
    let mut t = ListenerTable::default();
    let mut v6 = live(Proto::Tcp, "[::]:80", 10, "/usr/sbin/web6", 0);
    v6.bound.v6only = Some(true);
    t.insert(1, v6);
    let ipv4 = |a: &str| live(Proto::Tcp, a, 20, "/x", 0);
    assert!(t.neighbours(2, &ipv4("127.0.0.1:80")).is_empty());
    assert_eq!(t.neighbours(2, &ipv4("[::1]:80")).len(), 1);
    t.insert(3, live(Proto::Tcp, "[::]:81", 11, "/usr/sbin/dual", 0));
    assert_eq!(
        t.neighbours(4, &ipv4("127.0.0.1:81")).len(),
        1,
        "v6only unknown: dual-stack, the Linux default"
    );
}

#[test]
fn udp_sockets_that_left_with_their_owner_are_closed() {
    let mut t = ListenerTable::new(false);
    t.insert(1, live(Proto::Udp, "0.0.0.0:53", 10, "/usr/sbin/dnsd", 0));
    t.insert(2, live(Proto::Udp, "0.0.0.0:54", 11, "/usr/sbin/other", 0));
    t.owner_exited(99);
    assert!(!t.check_due());
    t.owner_exited(10);
    assert!(t.check_due());
    let gone = t.reconcile(&present(&[2]), 1_000_000_000);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].0, 1);
    assert!(gone[0].1.owner_exited);
    assert_eq!(t.len(), 1);
    assert!(!t.check_due());
}

/// With the kernel reporting UDP closes, an exit needs no check; a lost close does, and
/// the close record that arrives after the check is known as a duplicate.
#[test]
fn a_check_after_lost_closes_and_the_late_close_record() {
    let mut t = ListenerTable::new(true);
    t.insert(1, live(Proto::Tcp, "0.0.0.0:80", 10, "/usr/sbin/web", 0));
    t.owner_exited(10);
    assert!(!t.check_due());
    t.closes_lost();
    assert!(t.check_due());
    let gone = t.reconcile(&present(&[]), 1);
    assert_eq!(gone.len(), 1);
    assert!(!gone[0].1.owner_exited);
    let close = crate::testkit::socket_event(SockKind::Close, 1);
    let update = t.apply(&close, &Process::new(Default::default()), true);
    assert!(update.already_closed);
    let update = t.apply(&close, &Process::new(Default::default()), true);
    assert!(!update.already_closed, "only once");
}

/// Sockets of a namespace sock_diag could not list are never checked away.
#[test]
fn the_check_leaves_other_namespaces_alone() {
    let mut t = ListenerTable::new(true);
    let mut other = live(Proto::Udp, "0.0.0.0:53", 10, "/usr/sbin/dnsd", 0);
    other.netns = NETNS + 1;
    t.insert(1, other);
    assert!(t.reconcile(&present(&[]), 1).is_empty());
    assert_eq!(t.len(), 1);
}

/// No table grows with the sockets ever seen: once it has doubled since the last check,
/// one is due, so stale entries never exceed the live ones.
#[test]
fn growth_makes_a_check_due() {
    let mut t = ListenerTable::new(true);
    for i in 0..CHECK_MIN as u64 {
        t.insert(i, live(Proto::Udp, "0.0.0.0:53", 10, "/x", 0));
    }
    assert!(!t.check_due());
    t.insert(
        CHECK_MIN as u64,
        live(Proto::Udp, "0.0.0.0:53", 10, "/x", 0),
    );
    assert!(t.check_due());
    let live: Vec<u64> = (0..10).collect();
    assert_eq!(t.reconcile(&present(&live), 1).len(), CHECK_MIN + 1 - 10);
    assert_eq!(t.len(), 10);
}
