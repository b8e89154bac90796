//! What this machine and this test process are, read independently of portwatch: /proc,
//! cgroups, lockdown, kprobes, and the attach types they imply.
use std::path::Path;

/// What /proc and sysfs say about this test process, to compare with the daemon's context.
pub struct ProcSelf {
    pub ppid: u32,
    pub exe: String,
    pub args: Vec<String>,
    pub netns: u64,
    pub cgroup_id: u64,
    pub parent_exe: String,
    /// Process start as wall-clock ns since the epoch.
    pub start_wall_ns: u64,
}

pub fn proc_self() -> ProcSelf {
    use std::os::unix::fs::MetadataExt;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ppid: u32 = fields[1].parse().unwrap();
    let start_ticks: u64 = fields[19].parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let boot_now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    let wall_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let start_wall_ns = wall_now - boot_now + start_ticks * (1_000_000_000 / hz);
    // The cgroup v2 id is the inode of the cgroup's directory in the v2 hierarchy.
    let v2_root = cgroup2_root();
    let v2_path = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        .expect("a cgroup v2 line");
    let cgroup_dir = format!("{v2_root}{}", v2_path.trim_end_matches('/'));
    ProcSelf {
        ppid,
        exe: std::env::current_exe()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        args: std::env::args().collect(),
        netns: std::fs::metadata("/proc/self/ns/net").unwrap().ino(),
        cgroup_id: std::fs::metadata(&cgroup_dir).unwrap().ino(),
        parent_exe: std::fs::read_link(format!("/proc/{ppid}/exe"))
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        start_wall_ns,
    }
}

/// Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo.
pub fn cgroup2_root() -> String {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split_whitespace().nth(4).unwrap().to_owned())
        })
        .expect("a cgroup2 mount")
}

/// `--attach` for every daemon of the run, from `PORTWATCH_TEST_ATTACH` (`hook=type,...`):
/// `cargo xtask vm-test` runs the suite once more with kprobes forced.
pub fn forced_attach_args() -> Vec<String> {
    std::env::var("PORTWATCH_TEST_ATTACH")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .flat_map(|s| ["--attach".to_owned(), s.to_owned()])
        .collect()
}

/// The attach types the running kernel should give each hook (`hook=type,...`):
/// `PORTWATCH_EXPECT_ATTACH` in qemu guests; else what this machine's facts imply (see
/// `machine_attach`).
pub fn expected_attach() -> Vec<(String, String)> {
    std::env::var("PORTWATCH_EXPECT_ATTACH")
        .unwrap_or_else(|_| machine_attach())
        .split(',')
        .filter_map(|s| s.split_once('='))
        .map(|(h, t)| (h.to_owned(), t.to_owned()))
        .collect()
}

/// The best attach types for bind, listen and accept, from facts read independently of
/// portwatch: kernel lockdown refuses BPF trampolines (fentry), and kprobes need a kernel that
/// has them (their event source). close always has its BTF tracepoint on kernels with BTF.
fn machine_attach() -> String {
    let function = if lockdown().is_none_or(|mode| mode == "none") {
        "fentry"
    } else if kprobes_available() {
        "kprobe"
    } else {
        "tracepoint"
    };
    // io_uring's tracepoints complete the syscall tracepoints; kernel functions need no help.
    let uring = if function == "tracepoint" {
        ",io_uring=tp_btf"
    } else {
        ""
    };
    format!(
        "bind={function},listen={function},accept={function},close=tp_btf{uring},udp_close=cgroup,exec=tracepoint,exit=tracepoint,fork=tracepoint"
    )
}

pub fn kprobes_available() -> bool {
    Path::new("/sys/bus/event_source/devices/kprobe").exists()
}

/// The kernel lockdown mode (`none`, `integrity`, `confidentiality`), from securityfs, mounted
/// for the occasion where it is not; None when the kernel has no lockdown support.
pub fn lockdown() -> Option<String> {
    let read = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("lockdown")).ok()?;
        // "none [integrity] confidentiality": the bracketed one is in force.
        let mode = text.split_once('[')?.1.split_once(']')?.0;
        Some(mode.to_owned())
    };
    if let Some(mode) = read(Path::new("/sys/kernel/security")) {
        return Some(mode);
    }
    let dir = std::env::temp_dir().join(format!("portwatch-securityfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let target = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: valid NUL-terminated strings; unmounted below.
    let mounted = unsafe {
        libc::mount(
            c"none".as_ptr(),
            target.as_ptr(),
            c"securityfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    } == 0;
    let mode = if mounted { read(&dir) } else { None };
    if mounted {
        // SAFETY: the mount made above.
        unsafe { libc::umount(target.as_ptr()) };
    }
    let _ = std::fs::remove_dir(&dir);
    mode
}

/// The inode of this process's file descriptor `fd` (a socket's, as portwatch reports it).
pub fn fd_inode(fd: i32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .ino()
}

/// RFC 3339 UTC with 9 fractional digits (portwatch's format) to ns since the epoch.
pub fn parse_time(s: &str) -> u64 {
    let t = humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("bad time {s}: {e}"));
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// The names of every BPF program loaded on the host (the kernel keeps 15 bytes of a name), from
/// the kernel itself (BPF_PROG_GET_NEXT_ID, BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD).
pub fn loaded_bpf_programs() -> Vec<String> {
    const GET_NEXT_ID: libc::c_long = 11;
    const GET_FD_BY_ID: libc::c_long = 13;
    const GET_INFO_BY_FD: libc::c_long = 15;
    let bpf = |cmd: libc::c_long, attr: &mut [u8; 128]| {
        // SAFETY: attr is a zero-padded bpf_attr of 128 bytes, as each command expects.
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) }
    };
    let mut names = Vec::new();
    let mut id = 0u32;
    loop {
        let mut attr = [0u8; 128];
        attr[..4].copy_from_slice(&id.to_ne_bytes());
        if bpf(GET_NEXT_ID, &mut attr) < 0 {
            break;
        }
        id = u32::from_ne_bytes(attr[4..8].try_into().unwrap());
        let mut attr = [0u8; 128];
        attr[..4].copy_from_slice(&id.to_ne_bytes());
        let fd = bpf(GET_FD_BY_ID, &mut attr);
        if fd < 0 {
            continue; // gone meanwhile
        }
        // struct bpf_prog_info: name[16] at offset 64.
        let mut info = [0u8; 256];
        let mut attr = [0u8; 128];
        attr[..4].copy_from_slice(&(fd as u32).to_ne_bytes());
        attr[4..8].copy_from_slice(&(info.len() as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(info.as_mut_ptr() as u64).to_ne_bytes());
        if bpf(GET_INFO_BY_FD, &mut attr) == 0 {
            let name = &info[64..80];
            let end = name.iter().position(|&b| b == 0).unwrap_or(16);
            names.push(String::from_utf8_lossy(&name[..end]).into_owned());
        }
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd as i32) };
    }
    names
}
