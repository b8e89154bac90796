use super::*;

/// The bytes of a POD record.
pub(crate) fn bytes<T: Copy>(r: &T) -> Vec<u8> {
    // SAFETY: reading a POD value's bytes.
    unsafe { std::slice::from_raw_parts((r as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

pub(crate) fn sock_event(kind: EventKind) -> SockEvent {
    // SAFETY: all-zero is a valid SockEvent.
    let mut r: SockEvent = unsafe { std::mem::zeroed() };
    r.header.kind = kind as u8;
    r.task.ts_ns = 5_000_000_000;
    r.task.pid = 42;
    r.task.tid = 43;
    r.task.uid = 1000;
    r.task.gid = 100;
    r.task.ppid = 1;
    r.task.start_ns = 4_000_000_000;
    r.task.flags = TASK_READ;
    r.fd = 3;
    r.task.comm[..7].copy_from_slice(b"python3");
    r
}

fn socket_of(r: &SockEvent) -> SocketEvent {
    match decode(&bytes(r)).unwrap().record {
        KernelRecord::Socket(s) => s,
        other => panic!("not a socket record: {other:?}"),
    }
}

#[test]
fn decodes_an_ipv4_bind_with_request() {
    let mut r = sock_event(EventKind::Bind);
    r.header.flags = FLAG_SOCK | FLAG_REQ_ADDR;
    r.family = AF_INET as u8;
    r.protocol = 17;
    r.sock_type = 2;
    r.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    r.local_port = 40000;
    r.req_family = AF_INET as u8;
    r.req_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    let e = socket_of(&r);
    assert_eq!(e.kind, SockKind::Bind);
    assert_eq!(e.task.comm.as_bytes(), b"python3");
    assert_eq!(e.task.ppid, Some(1));
    assert_eq!(e.task.start_ns, Some(4_000_000_000));
    assert_eq!(e.task.loginuid, None);
    let s = e.socket.unwrap();
    assert_eq!(s.local, "127.0.0.1:40000".parse().unwrap());
    assert_eq!(s.remote, None);
    assert_eq!(e.requested, Some("127.0.0.1:0".parse().unwrap()));
    assert_eq!(e.backlog, None);
}

#[test]
fn decodes_an_ipv6_accept_with_peer() {
    let mut r = sock_event(EventKind::Accept);
    r.header.flags = FLAG_SOCK;
    r.family = AF_INET6 as u8;
    r.protocol = 6;
    r.local_addr = Ipv6Addr::LOCALHOST.octets();
    r.local_port = 8080;
    r.remote_addr = "::ffff:10.1.2.3".parse::<Ipv6Addr>().unwrap().octets();
    r.remote_port = 51000;
    let s = socket_of(&r).socket.unwrap();
    assert_eq!(s.local, "[::1]:8080".parse().unwrap());
    assert_eq!(s.remote, Some("[::ffff:10.1.2.3]:51000".parse().unwrap()));
}

/// The socket kinds are EventKind::SOCKET's, and each record is named as its kernel kind.
#[test]
fn every_socket_kind_decodes_to_the_record_of_its_name() {
    use crate::output::record::{Record, SocketRecord};
    for kind in EventKind::SOCKET {
        let s = socket_of(&sock_event(kind));
        assert_eq!(
            Record::from_socket(s.kind, SocketRecord::default()).event(),
            kind.name()
        );
    }
}

#[test]
fn rejects_wrong_length_for_the_kind() {
    let b = bytes(&sock_event(EventKind::Bind));
    assert_eq!(
        decode(&b[..10]),
        Err(DecodeError::Length {
            kind: "bind",
            got: 10,
            want: size_of::<portwatch_common::SockEvent>()
        })
    );
    let mut longer = b.clone();
    longer.push(0);
    assert!(matches!(
        decode(&longer),
        Err(DecodeError::Length { got, .. }) if got == b.len() + 1
    ));
    assert_eq!(decode(&[]), Err(DecodeError::Empty));
    // A socket-sized record claiming to be an exec record.
    let mut wrong = b;
    wrong[0] = EventKind::Exec as u8;
    assert!(matches!(
        decode(&wrong),
        Err(DecodeError::Length { kind: "exec", .. })
    ));
}

#[test]
fn rejects_unknown_kind_and_family() {
    let mut r = sock_event(EventKind::Bind);
    r.header.kind = 99;
    assert_eq!(decode(&bytes(&r)), Err(DecodeError::Kind(99)));
    let mut r = sock_event(EventKind::Listen);
    r.header.flags = FLAG_SOCK;
    r.family = 1; // AF_UNIX never reaches userspace; if it does, it is an error
    assert_eq!(decode(&bytes(&r)), Err(DecodeError::Family(1)));
}

#[test]
fn comm_without_nul_missing_socket_and_unread_task() {
    let mut r = sock_event(EventKind::Listen);
    r.task.comm = *b"0123456789abcdef";
    r.task.flags = 0;
    r.header.errno = 98;
    r.fd = -1;
    let e = socket_of(&r);
    assert_eq!(e.task.comm.as_bytes(), b"0123456789abcdef");
    assert_eq!(e.task.ppid, None);
    assert_eq!(e.task.start_ns, None);
    assert_eq!(e.socket, None);
    assert_eq!(e.fd, None);
    assert_eq!(e.errno, 98);
    assert_eq!(e.backlog, Some(0));
}

pub(crate) fn exec_event(filename: &[u8], args: &[u8]) -> ExecEvent {
    // SAFETY: all-zero is a valid ExecEvent.
    let mut r: ExecEvent = unsafe { std::mem::zeroed() };
    r.header.kind = EventKind::Exec as u8;
    r.task = sock_event(EventKind::Exec).task;
    r.filename[..filename.len()].copy_from_slice(filename);
    r.filename_len = filename.len() as u16;
    r.args[..args.len()].copy_from_slice(args);
    r.args_len = args.len() as u16;
    r
}

#[test]
fn decodes_exec_arguments_including_non_utf8_and_empty_ones() {
    let r = exec_event(b"/usr/bin/printf", b"printf\0\0a\xffb\0");
    let KernelRecord::Exec(e) = decode(&bytes(&r)).unwrap().record else {
        panic!("not an exec record")
    };
    assert_eq!(e.filename, b"/usr/bin/printf");
    assert_eq!(
        e.args,
        vec![b"printf".to_vec(), b"".to_vec(), b"a\xffb".to_vec()]
    );
    assert!(!e.args_truncated);
    // Garbage lengths are clamped to the buffers.
    let mut r = exec_event(b"x", b"");
    r.filename_len = u16::MAX;
    r.args_len = u16::MAX;
    r.header.flags = FLAG_ARGS_TRUNCATED;
    let KernelRecord::Exec(e) = decode(&bytes(&r)).unwrap().record else {
        panic!("not an exec record")
    };
    assert_eq!(e.filename.len(), portwatch_common::FILENAME_LEN);
    assert!(e.args_truncated);
    assert_eq!(e.stdio, None);
}

#[test]
fn decodes_the_sockets_on_an_exec_standard_streams() {
    let mut r = exec_event(b"/bin/sh", b"sh\0");
    // stdout and stderr; a bit past stderr is not a stream and is dropped.
    r.stdio_sockets = 0b1110;
    r.stdio.family = AF_INET6 as u8;
    r.stdio.protocol = 6;
    r.stdio.local_port = 4444;
    r.stdio.inode = 77;
    let KernelRecord::Exec(e) = decode(&bytes(&r)).unwrap().record else {
        panic!("not an exec record")
    };
    let stdio = e.stdio.unwrap();
    assert_eq!(stdio.streams().collect::<Vec<_>>(), ["stdout", "stderr"]);
    let s = stdio.socket.unwrap();
    assert_eq!(s.local, "[::]:4444".parse().unwrap());
    // Not connected: no peer.
    assert_eq!(s.remote, None);
    assert_eq!(stdio.inode, Some(77));
    // Sockets whose ends could not be read are still reported, without them.
    r.stdio.family = 0;
    let KernelRecord::Exec(e) = decode(&bytes(&r)).unwrap().record else {
        panic!("not an exec record")
    };
    assert_eq!(e.stdio.unwrap().socket, None);
    // A family the kernel cannot have sent is a decode error.
    r.stdio.family = 1;
    assert_eq!(decode(&bytes(&r)).err(), Some(DecodeError::Family(1)));
}

/// The kernel walks the executable's path from the file up: names leaf first, a mount crossing
/// a step with no name. The path is those names reversed, and only a walk that reached a root
/// with every name whole gives one.
#[test]
fn the_executable_path_is_the_walk_reversed_and_only_when_whole() {
    // SAFETY: all-zero is a valid ExecEvent.
    let mut e: ExecEvent = unsafe { std::mem::zeroed() };
    for (i, name) in [&b"python3.11"[..], b"bin", b"", b"usr"].iter().enumerate() {
        e.exe_name_lens[i] = name.len() as u16;
        e.exe_names[i][..name.len()].copy_from_slice(name);
    }
    assert_eq!(exe_path(&e), None, "the walk did not reach a root");
    e.exe_path_flags = EXE_PATH_FULL;
    assert_eq!(exe_path(&e).as_deref(), Some(&b"/usr/bin/python3.11"[..]));
    // A name longer than its slot was cut: no path rather than a wrong one.
    e.exe_name_lens[1] = portwatch_common::EXE_NAME_LEN as u16 + 1;
    assert_eq!(exe_path(&e), None);
}
