//! What the current task runs: its executable file (identity, and at exec its path) and a
//! fingerprint of its arguments as they are now. A process exec'd through `/proc/self/exe`,
//! a descriptor (`/dev/fd/N`, a memfd) or a name since deleted or swapped is named by the file
//! it really runs; one that rewrote its arguments after exec is told apart.
use aya_ebpf::{helpers::generated::bpf_probe_read_user, macros::map, maps::PerCpuArray};
use portwatch_common::{
    ARGS_HASHED, EXE_NAME_LEN, EXE_PATH_DEPTH, EXE_PATH_DETACHED, EXE_PATH_FULL, ExecEvent,
    FINGERPRINT_START, IMAGE_ARGS, IMAGE_EXE, IMAGE_UNLINKED, ImageId, fingerprint_step,
};

use super::{ReadError, Why, current_task, read};
use crate::maps::offset;

/// Where the argument bytes are hashed: too big for the 512-byte stack next to a record.
#[map(name = "SCRATCH")]
static SCRATCH: PerCpuArray<[u8; ARGS_HASHED]> = PerCpuArray::with_max_entries(1, 0);

/// The current task's executable file (`mm->exe_file`).
#[inline(always)]
fn exe_file() -> Result<*const u8, ReadError> {
    let mm: *const u8 = read(current_task().wrapping_add(offset!(task_mm)))?;
    if mm.is_null() {
        return Err(ReadError(Why::Gone));
    }
    let file: *const u8 = read(mm.wrapping_add(offset!(mm_exe_file)))?;
    if file.is_null() {
        return Err(ReadError(Why::NoFile));
    }
    Ok(file)
}

/// The executable's inode and whether it has links left, and its file (for the path); read
/// whole or not at all, so each failure leaves the same state and the verifier walks what
/// follows once (see the top of `kernel`).
#[inline(always)]
pub fn read_exe() -> Result<(u64, bool, *const u8), ReadError> {
    let file = exe_file()?;
    let inode: *const u8 = read(file.wrapping_add(offset!(file_inode)))?;
    let ino: u64 = read(inode.wrapping_add(offset!(inode_ino)))?;
    let nlink: u32 = read(inode.wrapping_add(offset!(inode_nlink)))?;
    Ok((ino, nlink == 0, file))
}

/// The fingerprint of the current task's arguments (`args_fingerprint`): the first
/// `ARGS_HASHED` bytes copied into a zeroed scratch buffer and hashed whole, with no branch in
/// the loop (a branch per word made the verifier pass its limit with the diagnostics on).
#[inline(always)]
pub fn read_args() -> Result<u64, ReadError> {
    let (start, end) = super::args_range()?;
    let len = end.saturating_sub(start);
    let hashed = if len > ARGS_HASHED as u64 {
        ARGS_HASHED as u32
    } else {
        len as u32
    };
    let buf = SCRATCH
        .get_ptr_mut(0)
        .ok_or(ReadError(Why::Fault))?
        .cast::<u64>();
    // SAFETY: this CPU's scratch buffer, ARGS_HASHED bytes, 8-aligned (a map value).
    unsafe {
        for i in 0..ARGS_HASHED / 8 {
            buf.add(i).write_volatile(0);
        }
        if bpf_probe_read_user(buf.cast(), hashed, start as *const core::ffi::c_void) != 0 {
            return Err(ReadError(Why::Fault));
        }
        let mut h = FINGERPRINT_START;
        for i in 0..ARGS_HASHED / 8 {
            h = fingerprint_step(h, u64::from_le(buf.add(i).read()));
        }
        Ok(fingerprint_step(h, len))
    }
}

/// Reads what the current task runs into `image`, setting `IMAGE_*` in `flags`; returns the
/// executable's file when it was read.
#[inline(always)]
pub fn read_image(image: &mut ImageId, flags: &mut u16) -> Option<*const u8> {
    let mut file = None;
    if let Ok((ino, unlinked, f)) = read_exe() {
        image.exe_ino = ino;
        *flags |= IMAGE_EXE | if unlinked { IMAGE_UNLINKED } else { 0 };
        file = Some(f);
    }
    if let Ok(hash) = read_args() {
        image.args_hash = hash;
        *flags |= IMAGE_ARGS;
    }
    file
}

/// Writes the names on the path of `file` into `ev`'s slots, walking its dentries up to the
/// current task's root and crossing mount points on the way, as d_path does; sets
/// `EXE_PATH_FULL` when the walk reached a root, and `EXE_PATH_DETACHED` when that root is not
/// the process's own (a detached mount's, a pseudo file system's). A process in a container
/// gets its path inside the container; a memfd its name (`/memfd:NAME`).
#[inline(always)]
pub fn exe_path(file: *const u8, ev: *mut ExecEvent) {
    // SAFETY: `ev` is the record being built in the ring buffer.
    unsafe {
        (*ev).exe_path_flags = 0;
        (*ev).exe_name_lens = [0; EXE_PATH_DEPTH];
        (*ev).exe_path_flags = walk(file, ev).unwrap_or(0);
    }
}

/// The `EXE_PATH_*` flags of the walk (0: it did not reach a root in `EXE_PATH_DEPTH` steps).
#[inline(always)]
unsafe fn walk(file: *const u8, ev: *mut ExecEvent) -> Result<u32, ReadError> {
    let fs: *const u8 = read(current_task().wrapping_add(offset!(task_fs)))?;
    let root_mnt: *const u8 = read(fs.wrapping_add(offset!(fs_root_mnt)))?;
    let root_dentry: *const u8 = read(fs.wrapping_add(offset!(fs_root_dentry)))?;
    let mut vfsmnt: *const u8 = read(file.wrapping_add(offset!(file_path_mnt)))?;
    let mut dentry: *const u8 = read(file.wrapping_add(offset!(file_path_dentry)))?;
    let mut mount = vfsmnt.wrapping_sub(offset!(mount_mnt));
    for step in 0..EXE_PATH_DEPTH {
        if dentry == root_dentry && vfsmnt == root_mnt {
            return Ok(EXE_PATH_FULL);
        }
        let mnt_root: *const u8 = read(vfsmnt.wrapping_add(offset!(vfsmount_root)))?;
        if dentry == mnt_root {
            // The root of its mount: on to where the mount sits, unless it sits nowhere.
            let parent: *const u8 = read(mount.wrapping_add(offset!(mount_parent)))?;
            if parent == mount {
                return Ok(EXE_PATH_FULL | EXE_PATH_DETACHED);
            }
            dentry = read(mount.wrapping_add(offset!(mount_mountpoint)))?;
            mount = parent;
            vfsmnt = mount.wrapping_add(offset!(mount_mnt));
            continue;
        }
        let len: u32 = read(dentry.wrapping_add(offset!(dentry_name_len)))?;
        let name: *const u8 = read(dentry.wrapping_add(offset!(dentry_name)))?;
        // SAFETY: slot `step` of the record; at most EXE_NAME_LEN bytes into it.
        unsafe {
            (*ev).exe_name_lens[step] = len.min(u32::from(u16::MAX)) as u16;
            let _ = aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                (*ev).exe_names[step].as_mut_ptr().cast(),
                len.min(EXE_NAME_LEN as u32),
                name.cast(),
            );
        }
        let parent: *const u8 = read(dentry.wrapping_add(offset!(dentry_parent)))?;
        if parent == dentry {
            // A file system's root that is no mount's (a memfd's, a pipe's): its name is all.
            return Ok(EXE_PATH_FULL | EXE_PATH_DETACHED);
        }
        dentry = parent;
    }
    Ok(0)
}
