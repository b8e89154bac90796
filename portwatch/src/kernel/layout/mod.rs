//! Where things are in the running kernel: struct member offsets from its BTF and record field
//! offsets from tracefs format files. This is the only place that knows kernel layouts; the kernel
//! programs get the result as the `OFFSETS` global before they load.
use std::{fs, path::Path};

use portwatch_common::{ABSENT, KernelOffsets};

use crate::{
    error::{Error, Result},
    kernel::btf::{Btf, BtfError, TypeRef},
};

mod io_uring;

/// A member's position and width in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: usize,
}

pub struct KernelTypes {
    btf: Btf,
}

fn layout_error(e: BtfError) -> Error {
    Error::Layout(e.to_string())
}

impl KernelTypes {
    pub fn open(path: &Path) -> Result<Self> {
        let btf = Btf::from_file(path).map_err(|e| Error::NoBtf {
            path: path.to_path_buf(),
            reason: format!("unreadable BTF ({e})"),
        })?;
        Ok(Self { btf })
    }

    pub fn btf(&self) -> &Btf {
        &self.btf
    }

    /// Offset and size of `path` (e.g. `__sk_common.skc_num`) inside `struct strukt`, looking
    /// through anonymous unions and structs as C does.
    pub fn field(&self, strukt: &str, path: &str) -> Result<Field> {
        let missing = || Error::Layout(format!("struct {strukt} has no member `{path}`"));
        let mut current = self
            .btf
            .struct_by_name(strukt)
            .ok_or_else(|| Error::Layout(format!("BTF has no struct `{strukt}`")))?;
        let mut bits = 0u32;
        let mut size = 0usize;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let (offset, member_type) = self.find_member(&current, part)?.ok_or_else(missing)?;
            bits += offset;
            size = self
                .btf
                .size_of(&member_type)
                .map_err(layout_error)?
                .ok_or_else(missing)?;
            if parts.peek().is_some() {
                if !Btf::is_composite(&member_type) {
                    return Err(missing());
                }
                current = member_type;
            }
        }
        if !bits.is_multiple_of(8) {
            return Err(Error::Layout(format!("{strukt}.{path} is a bitfield")));
        }
        Ok(Field {
            offset: bits / 8,
            size,
        })
    }

    /// (bit offset, stripped type) of member `name`, searching anonymous members recursively.
    fn find_member(&self, s: &TypeRef, name: &str) -> Result<Option<(u32, TypeRef)>> {
        for m in self.btf.members(s).map_err(layout_error)? {
            if m.bitfield_size != 0 && m.name == name {
                return Err(Error::Layout(format!("member `{name}` is a bitfield")));
            }
            let ty = self.btf.strip(m.type_id).map_err(layout_error)?;
            if m.name == name {
                return Ok(Some((m.bit_offset, ty)));
            }
            if m.name.is_empty() && Btf::is_composite(&ty) {
                if let Some((off, t)) = self.find_member(&ty, name)? {
                    return Ok(Some((m.bit_offset + off, t)));
                }
            }
        }
        Ok(None)
    }
}

/// A field of a tracepoint record, from its tracefs `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpField {
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

/// Parses a tracefs `format` file into its fields.
pub fn parse_format(text: &str) -> Vec<TpField> {
    text.lines()
        .filter_map(|line| {
            let mut decl = None;
            let mut offset = None;
            let mut size = None;
            for part in line.trim().split(';') {
                let part = part.trim();
                if let Some(v) = part.strip_prefix("field:") {
                    decl = Some(v);
                } else if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            let name = decl?.split_whitespace().last()?;
            let name = name.split('[').next()?.trim_start_matches('*');
            Some(TpField {
                name: name.to_owned(),
                offset: offset?,
                size: size?,
            })
        })
        .collect()
}

struct Tracepoint {
    id: String,
    fields: Vec<TpField>,
}

impl Tracepoint {
    fn read(tracefs: &Path, category: &str, name: &str) -> Result<Self> {
        let path = tracefs
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let text = fs::read_to_string(&path).map_err(|e| {
            Error::Layout(format!(
                "tracepoint {category}/{name} is missing ({}: {e})",
                path.display()
            ))
        })?;
        Ok(Self {
            id: format!("{category}/{name}"),
            fields: parse_format(&text),
        })
    }

    /// Offset of `name`, checking its size.
    fn offset(&self, name: &str, size: u32) -> Result<u32> {
        let f = self.fields.iter().find(|f| f.name == name).ok_or_else(|| {
            Error::Layout(format!("tracepoint {} has no field `{name}`", self.id))
        })?;
        if f.size != size {
            return Err(Error::Layout(format!(
                "tracepoint {} field `{name}` is {} bytes, expected {size}",
                self.id, f.size
            )));
        }
        Ok(f.offset)
    }
}

impl KernelTypes {
    /// The offset of `path` in `struct strukt`, checked to be `size` bytes wide (the width the
    /// kernel programs read).
    pub fn sized(&self, strukt: &str, path: &str, size: usize) -> Result<u32> {
        let field = self.field(strukt, path)?;
        if field.size != size {
            return Err(Error::Layout(format!(
                "{strukt}.{path} is {} bytes, expected {size}",
                field.size
            )));
        }
        Ok(field.offset)
    }
}

/// Reads every offset the kernel programs need, checking that each has the width they read.
pub fn kernel_offsets(types: &KernelTypes, tracefs: &Path) -> Result<KernelOffsets> {
    // The tracepoints first: a kernel without one is told so before any BTF complaint.
    let mut tracepoints = KernelOffsets::default();
    tracepoint_fields(&mut tracepoints, tracefs)?;
    let tasks = task_offsets(types, tracepoints)?;
    let sockets = socket_offsets(types, tasks)?;
    io_uring::offsets(types, sockets)
}

/// Tasks, their files, paths and mounts, on top of `base`.
fn task_offsets(types: &KernelTypes, base: KernelOffsets) -> Result<KernelOffsets> {
    let f = |strukt: &str, path: &str, size: usize| types.sized(strukt, path, size);
    // Without CONFIG_AUDIT there is no login uid: records then say so instead of guessing.
    let loginuid = match types.field("task_struct", "loginuid") {
        Ok(field) if field.size == 4 => field.offset,
        Ok(field) => {
            return Err(Error::Layout(format!(
                "task_struct.loginuid is {} bytes, expected 4",
                field.size
            )));
        }
        Err(_) => ABSENT,
    };
    Ok(KernelOffsets {
        valid: 1,
        task_files: f("task_struct", "files", 8)?,
        task_tgid: f("task_struct", "tgid", 4)?,
        task_group_leader: f("task_struct", "group_leader", 8)?,
        task_real_parent: f("task_struct", "real_parent", 8)?,
        task_start_boottime: f("task_struct", "start_boottime", 8)?,
        task_loginuid: loginuid,
        task_nsproxy: f("task_struct", "nsproxy", 8)?,
        nsproxy_net_ns: f("nsproxy", "net_ns", 8)?,
        net_ns_inum: f("net", "ns.inum", 4)?,
        task_mm: f("task_struct", "mm", 8)?,
        mm_arg_start: f("mm_struct", "arg_start", 8)?,
        mm_arg_end: f("mm_struct", "arg_end", 8)?,
        mm_exe_file: f("mm_struct", "exe_file", 8)?,
        file_inode: f("file", "f_inode", 8)?,
        file_path_mnt: f("file", "f_path.mnt", 8)?,
        file_path_dentry: f("file", "f_path.dentry", 8)?,
        inode_sb: f("inode", "i_sb", 8)?,
        inode_nlink: f("inode", "__i_nlink", 4)?,
        sb_dev: f("super_block", "s_dev", 4)?,
        dentry_parent: f("dentry", "d_parent", 8)?,
        dentry_name_len: f("dentry", "d_name.len", 4)?,
        dentry_name: f("dentry", "d_name.name", 8)?,
        vfsmount_root: f("vfsmount", "mnt_root", 8)?,
        mount_mnt: types.field("mount", "mnt")?.offset,
        mount_parent: f("mount", "mnt_parent", 8)?,
        mount_mountpoint: f("mount", "mnt_mountpoint", 8)?,
        task_fs: f("task_struct", "fs", 8)?,
        fs_root_mnt: f("fs_struct", "root.mnt", 8)?,
        fs_root_dentry: f("fs_struct", "root.dentry", 8)?,
        files_fdt: f("files_struct", "fdt", 8)?,
        fdtable_max_fds: f("fdtable", "max_fds", 4)?,
        fdtable_fd: f("fdtable", "fd", 8)?,
        ..base
    })
}

/// Sockets, from a file to its `struct sock`, and the syscall registers, on top of `base`.
fn socket_offsets(types: &KernelTypes, base: KernelOffsets) -> Result<KernelOffsets> {
    let f = |strukt: &str, path: &str, size: usize| types.sized(strukt, path, size);
    let sk = |path: &str, size: usize| f("sock", path, size);
    Ok(KernelOffsets {
        file_private_data: f("file", "private_data", 8)?,
        socket_file: f("socket", "file", 8)?,
        socket_sk: f("socket", "sk", 8)?,
        sk_family: sk("__sk_common.skc_family", 2)?,
        sk_num: sk("__sk_common.skc_num", 2)?,
        sk_sport: {
            if types.field("inet_sock", "sk")?.offset != 0 {
                return Err(Error::Layout(
                    "struct inet_sock does not start with its sock".into(),
                ));
            }
            f("inet_sock", "inet_sport", 2)?
        },
        sk_dport: sk("__sk_common.skc_dport", 2)?,
        sk_daddr: sk("__sk_common.skc_daddr", 4)?,
        sk_rcv_saddr: sk("__sk_common.skc_rcv_saddr", 4)?,
        sk_v6_daddr: sk("__sk_common.skc_v6_daddr", 16)?,
        sk_v6_rcv_saddr: sk("__sk_common.skc_v6_rcv_saddr", 16)?,
        sk_protocol: sk("sk_protocol", 2)?,
        sk_type: sk("sk_type", 2)?,
        sk_socket: sk("sk_socket", 8)?,
        socket_alloc_socket: types.field("socket_alloc", "socket")?.offset,
        socket_alloc_inode: types.field("socket_alloc", "vfs_inode")?.offset,
        inode_ino: f("inode", "i_ino", 8)?,
        sk_max_ack_backlog: sk("sk_max_ack_backlog", 4)?,
        sk_state: sk("__sk_common.skc_state", 1)?,
        pt_regs_orig_ax: f("pt_regs", "orig_ax", 8)?,
        pt_regs_di: f("pt_regs", "di", 8)?,
        ..base
    })
}

/// Where the tracepoints' fields are, from their tracefs `format` files: the syscalls'
/// arguments and return value (listen's and accept's must sit where bind's do, which the
/// programs rely on), inet_sock_set_state's, and the process tracepoints'.
fn tracepoint_fields(o: &mut KernelOffsets, tracefs: &Path) -> Result<()> {
    let bind_enter = Tracepoint::read(tracefs, "syscalls", "sys_enter_bind")?;
    let listen_enter = Tracepoint::read(tracefs, "syscalls", "sys_enter_listen")?;
    let (arg0, arg1, arg2) = (
        bind_enter.offset("fd", 8)?,
        bind_enter.offset("umyaddr", 8)?,
        bind_enter.offset("addrlen", 8)?,
    );
    // The programs read listen's arguments at bind's argument slots: check that holds.
    if listen_enter.offset("fd", 8)? != arg0 || listen_enter.offset("backlog", 8)? != arg1 {
        return Err(Error::Layout(
            "sys_enter_listen's arguments are not where sys_enter_bind's are".into(),
        ));
    }
    let ret = Tracepoint::read(tracefs, "syscalls", "sys_exit_bind")?.offset("ret", 8)?;
    for exit in ["sys_exit_listen", "sys_exit_accept", "sys_exit_accept4"] {
        if Tracepoint::read(tracefs, "syscalls", exit)?.offset("ret", 8)? != ret {
            return Err(Error::Layout(format!(
                "{exit}'s `ret` is not where sys_exit_bind's is"
            )));
        }
    }
    let iss = Tracepoint::read(tracefs, "sock", "inet_sock_set_state")?;
    let exec = Tracepoint::read(tracefs, "sched", "sched_process_exec")?;
    let fork = Tracepoint::read(tracefs, "sched", "sched_process_fork")?;
    o.tp_enter_arg0 = arg0;
    o.tp_enter_arg1 = arg1;
    o.tp_enter_arg2 = arg2;
    o.tp_exit_ret = ret;
    o.tp_iss_oldstate = iss.offset("oldstate", 4)?;
    o.tp_iss_newstate = iss.offset("newstate", 4)?;
    o.tp_iss_sport = iss.offset("sport", 2)?;
    o.tp_iss_family = iss.offset("family", 2)?;
    o.tp_iss_protocol = iss.offset("protocol", 2)?;
    o.tp_iss_saddr = iss.offset("saddr", 4)?;
    o.tp_iss_saddr_v6 = iss.offset("saddr_v6", 16)?;
    o.tp_iss_skaddr = iss.offset("skaddr", 8)?;
    o.tp_exec_filename = exec.offset("filename", 4)?;
    o.tp_exec_old_pid = exec.offset("old_pid", 4)?;
    o.tp_fork_child_pid = fork.offset("child_pid", 4)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: &str = "name: inet_sock_set_state\nID: 2287\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n\
\tfield:struct sockaddr * umyaddr;\toffset:24;\tsize:8;\tsigned:0;\n\
\nprint fmt: \"family=%s\", REC->family\n";

    #[test]
    fn parses_tracefs_format() {
        let fields = parse_format(FORMAT);
        let get = |n: &str| fields.iter().find(|f| f.name == n).cloned();
        assert_eq!(fields.len(), 4);
        assert_eq!(get("skaddr").map(|f| (f.offset, f.size)), Some((8, 8)));
        assert_eq!(get("saddr_v6").map(|f| (f.offset, f.size)), Some((40, 16)));
        assert_eq!(get("umyaddr").map(|f| (f.offset, f.size)), Some((24, 8)));
        assert_eq!(get("common_type").map(|f| (f.offset, f.size)), Some((0, 2)));
    }

    /// The running kernel's BTF resolves every member the programs read (and anonymous unions).
    #[test]
    fn resolves_members_from_running_kernel() {
        let path = Path::new(crate::kernel::preflight::DEFAULT_BTF);
        if !path.exists() {
            panic!(
                "{} is missing: these tests need a kernel with BTF",
                path.display()
            );
        }
        let types = KernelTypes::open(path).expect("vmlinux BTF parses");
        let num = types.field("sock", "__sk_common.skc_num").unwrap();
        assert_eq!(num.size, 2);
        let dport = types.field("sock", "__sk_common.skc_dport").unwrap();
        // skc_dport and skc_num share one 32-bit word (skc_portpair).
        assert_eq!(dport.offset + 2, num.offset);
        let v6 = types.field("sock", "__sk_common.skc_v6_rcv_saddr").unwrap();
        assert_eq!(v6.size, 16);
        assert!(types.field("sock", "no_such_member").is_err());
        assert!(types.field("no_such_struct", "x").is_err());
    }
}
