//! `portwatch canary` (hidden): the sockets `portwatch doctor` watches for, made in a process of
//! their own, since portwatch never reports itself. One line per canary on stdout
//! (`NAME key=value ...`), then `ready`; the sockets stay open until stdin closes, and then
//! close, which the listener closes are seen by.
use std::{
    io::{self, BufRead, Write},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::fs::MetadataExt,
    },
};

use io_uring::{IoUring, opcode, squeue, types::Fd};

use crate::error::{Error, Result};

pub fn run() -> Result<()> {
    let out = &mut io::stdout().lock();
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    let io = |e: io::Error| Error::io("making the canary sockets", e);

    // bind(2), listen(2) twice (the second only sets the backlog), accept(2).
    let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io)?;
    let port = tcp.local_addr().map_err(io)?.port();
    // SAFETY: listen(2) on a socket this process owns.
    unsafe { libc::listen(tcp.as_raw_fd(), 9) };
    let client = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(io)?;
    let (accepted, _) = tcp.accept().map_err(io)?;
    let client_port = client.local_addr().map_err(io)?.port();
    line(out, &format!("tcp port={port} client={client_port}"))?;
    // A bind of the same port fails with EADDRINUSE.
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err();
    line(out, &format!("eaddrinuse port={port} failed={taken}"))?;
    keep.extend([
        Box::new(tcp) as Box<dyn std::any::Any>,
        Box::new(client),
        Box::new(accepted),
    ]);

    // A UDP socket closed while this process keeps running.
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io)?;
    let udp_port = udp.local_addr().map_err(io)?.port();
    drop(udp);
    line(out, &format!("udp port={udp_port}"))?;

    match uring() {
        Ok((listener, port, full, conns)) => {
            line(out, &format!("uring port={port} bind_and_listen={full}"))?;
            keep.push(Box::new(listener));
            keep.push(Box::new(conns));
        }
        Err(e) => line(out, &format!("uring unavailable={}", one_word(&e)))?,
    }

    match in_new_netns() {
        Ok((listener, port, netns, thread)) => {
            line(out, &format!("netns port={port} netns={netns}"))?;
            keep.push(Box::new(listener));
            keep.push(Box::new(thread));
        }
        Err(e) => line(out, &format!("netns unavailable={}", one_word(&e)))?,
    }

    line(out, "ready")?;
    // Until the doctor has looked; then every socket closes.
    let mut rest = String::new();
    let _ = io::stdin().lock().read_line(&mut rest);
    drop(keep);
    Ok(())
}

fn line(out: &mut impl Write, text: &str) -> Result<()> {
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(Error::from_output)
}

fn one_word(e: &io::Error) -> String {
    e.to_string().replace(' ', "_")
}

/// Runs one io_uring request and returns its result.
fn submit(ring: &mut IoUring, entry: squeue::Entry) -> io::Result<i32> {
    // SAFETY: every buffer the entry points at outlives the request, which completes here.
    unsafe { ring.submission().push(&entry) }.map_err(io::Error::other)?;
    ring.submit_and_wait(1)?;
    let cqe = ring
        .completion()
        .next()
        .ok_or_else(|| io::Error::other("no completion"))?;
    Ok(cqe.result())
}

/// bind, listen and accept through io_uring only; a kernel without `IORING_OP_BIND` (before
/// 6.11) answers EINVAL, and then bind(2) and listen(2) make the listener and only the accept
/// goes through io_uring. Returns the listener, its port, whether all three went through
/// io_uring, and the connection's two ends.
fn uring() -> io::Result<(OwnedFd, u16, bool, (TcpStream, OwnedFd))> {
    let mut ring = IoUring::new(8)?;
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of_val(&addr) as libc::socklen_t;
    let bind = opcode::Bind::new(Fd(fd), (&raw const addr).cast(), len).build();
    let res = submit(&mut ring, bind)?;
    let full = res != -libc::EINVAL;
    if full {
        check(res)?;
        check(submit(&mut ring, opcode::Listen::new(Fd(fd), 7).build())?)?;
    } else {
        // SAFETY: bind(2) and listen(2) on our socket with a valid address.
        unsafe {
            check(libc::bind(fd, (&raw const addr).cast(), len))?;
            check(libc::listen(fd, 7))?;
        }
    }
    let port = port_of(fd)?;
    let client = TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
    let conn = check(submit(
        &mut ring,
        opcode::Accept::new(Fd(fd), std::ptr::null_mut(), std::ptr::null_mut()).build(),
    )?)?;
    // SAFETY: the descriptor io_uring's accept installed for us.
    let conn = unsafe { OwnedFd::from_raw_fd(conn) };
    Ok((sock, port, full, (client, conn)))
}

fn check(res: i32) -> io::Result<i32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res)
    }
}

fn port_of(fd: i32) -> io::Result<u16> {
    // SAFETY: all-zero is a valid sockaddr_in; getsockname writes at most `len` bytes.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&addr) as libc::socklen_t;
    // SAFETY: valid buffer and length.
    check(unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut len) })?;
    Ok(u16::from_be(addr.sin_port))
}

/// A listener made in a fresh network namespace by a thread that entered it (a namespace is
/// per thread): the listener, its port, the namespace's inode, and the thread's stop, which
/// ends it when dropped. The thread stays in the namespace meanwhile, as a server's would, so
/// the inventory finds the namespace through it.
fn in_new_netns() -> io::Result<(TcpListener, u16, u64, std::sync::mpsc::Sender<()>)> {
    let (made, take) = std::sync::mpsc::channel();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let listen = || -> io::Result<(TcpListener, u16, u64)> {
            // SAFETY: unshare affects this thread only.
            check(unsafe { libc::unshare(libc::CLONE_NEWNET) })?;
            loopback_up()?;
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            let port = l.local_addr()?.port();
            let netns = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
            Ok((l, port, netns))
        };
        let _ = made.send(listen());
        let _ = stopped.recv();
    });
    let (l, port, netns) = take
        .recv()
        .map_err(|_| io::Error::other("the namespace thread ended"))??;
    Ok((l, port, netns, stop))
}

/// `ip link set lo up`, with the ioctls it uses.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a datagram socket for the ioctls; owned at once.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(s)?;
    // SAFETY: a fresh descriptor nothing else owns.
    let s = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: all-zero is a valid ifreq; the name is NUL-terminated.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *c as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq given.
    unsafe {
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr))?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        check(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr))?;
    }
    Ok(())
}
