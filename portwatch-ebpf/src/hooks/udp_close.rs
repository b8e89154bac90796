//! UDP sockets closing, from the cgroup socket hooks on the cgroup v2 root: they run for every
//! inet socket of every process in its own context, however the socket was bound (bind(2),
//! io_uring) and closed (close(2), exit, the last reference going).
//!
//! `post_bind4`/`post_bind6` run after each successful bind and remember the bound UDP sockets
//! of user processes in `BOUND_UDP` by socket cookie; `sock_release` sends a `close` for a
//! remembered socket. So only sockets that were bound explicitly (or listed by the start-up
//! snapshot, which the daemon adds) are reported, not every DNS client's ephemeral socket.
//!
//! These are enforcement hooks: a program returning 0 would deny the bind, so each returns 1.
//! The context is the `struct sock` itself; it is read through the same offsets as elsewhere.
use aya_ebpf::{
    EbpfContext as _, helpers::generated::bpf_get_socket_cookie, macros::cgroup_sock,
    programs::SockContext,
};
use portwatch_common::{EventKind, IPPROTO_UDP, SockEvent, counters};

use crate::{
    diag::At,
    emit::{init_event, send, sock_unreadable},
    filter::task_allowed,
    kernel::{ReadError, fill_from_sock, user_socket_inode},
    maps::{BOUND_UDP, bump, offsets_valid},
};

#[cgroup_sock(post_bind4)]
pub fn udp_post_bind4(ctx: SockContext) -> i32 {
    remember_bound(&ctx);
    1
}

#[cgroup_sock(post_bind6)]
pub fn udp_post_bind6(ctx: SockContext) -> i32 {
    remember_bound(&ctx);
    1
}

#[cgroup_sock(sock_release)]
pub fn udp_release(ctx: SockContext) -> i32 {
    released(&ctx);
    1
}

#[inline(always)]
fn remember_bound(ctx: &SockContext) {
    // SAFETY: the context's fields the verifier lets post_bind read.
    let protocol = unsafe { (*ctx.sock).protocol };
    if protocol != u32::from(IPPROTO_UDP)
        || !offsets_valid()
        || !task_allowed(Some(EventKind::Close))
    {
        return;
    }
    // A kernel socket has no file, and its release skips the hook: never remembered.
    let inode = user_socket_inode(ctx.as_ptr() as *const u8);
    if inode == 0 {
        return;
    }
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    if BOUND_UDP.insert(&cookie, &inode, 0).is_err() {
        // Its close cannot be seen: the daemon then checks sock_diag for what went away.
        bump(counters::pending_full(EventKind::Close));
    }
}

#[inline(always)]
fn released(ctx: &SockContext) {
    // Every socket's release runs this (TCP's too: two per accepted connection): the protocol is
    // checked before the cookie, whose first use on a socket costs an atomic on a shared counter.
    // SAFETY: the context's fields the verifier lets sock_release read.
    let protocol = unsafe { (*ctx.sock).protocol };
    if protocol != u32::from(IPPROTO_UDP) || !offsets_valid() {
        return;
    }
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let Some(&inode) = (unsafe { BOUND_UDP.get(&cookie) }) else {
        return;
    };
    let _ = BOUND_UDP.remove(&cookie);
    crate::emit::zeroed!(ev: SockEvent);
    init_event(ev, EventKind::Close);
    if let Err(ReadError(why)) = fill_from_sock(ctx.as_ptr() as *const u8, ev) {
        sock_unreadable(ev, why);
    }
    ev.inode = inode;
    send(ev, EventKind::Close, At::Cgroup);
}
