//! Stock Debian kernels from the archive, through a private apt configuration, and the
//! initramfs each one boots with (the shared payload plus its sock_diag modules).
use super::*;

/// apt with its own sources, lists and cache under `dir`: the system's configuration stays as is.
pub(super) fn private_apt(dir: &Path) -> Result<Vec<String>> {
    let sources = dir.join("sources.list.d");
    fs::create_dir_all(&sources)?;
    fs::create_dir_all(dir.join("lists/partial"))?;
    fs::create_dir_all(dir.join("cache/archives/partial"))?;
    fs::write(
        sources.join("debian.list"),
        KERNELS
            .iter()
            .map(|k| format!("deb http://deb.debian.org/debian {} main\n", k.suite))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<String>(),
    )?;
    let d = dir.display();
    Ok(vec![
        "-o".into(),
        "Dir::Etc::SourceList=/dev/null".into(),
        "-o".into(),
        format!("Dir::Etc::SourceParts={d}/sources.list.d"),
        "-o".into(),
        format!("Dir::State::Lists={d}/lists"),
        "-o".into(),
        format!("Dir::Cache={d}/cache"),
        "-o".into(),
        "APT::Architecture=amd64".into(),
        // Its files are root's (the `_apt` sandbox user could not write them).
        "-o".into(),
        "APT::Sandbox::User=root".into(),
    ])
}

/// Modules the guest loads: Debian builds socket diagnostics (sock_diag for TCP and UDP, which
/// portwatch's start-up snapshot uses) as modules, which a host loads on demand.
pub(super) const MODULES: &[&str] = &["inet_diag", "tcp_diag", "udp_diag"];

/// The kernel's bzImage and the modules in `MODULES`, downloaded and unpacked once.
pub(super) fn fetch_kernel(kernel: &Kernel, cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(format!("linux-{}", kernel.name));
    if let Some(found) = find_vmlinuz(&dir).filter(|_| dir.join("modules/done").exists()) {
        return Ok(found);
    }
    eprintln!(
        "xtask: vm-test: downloading Debian's Linux {} ({})",
        kernel.name, kernel.suite
    );
    let apt_dir = cache.join("apt");
    let opts = private_apt(&apt_dir)?;
    run(Command::new("apt-get").args(&opts).args(["update", "-q"]))?;
    let names = output(
        Command::new("apt-cache")
            .args(&opts)
            .args(["pkgnames", "linux-image-"]),
    )
    .unwrap_or_default();
    let package = names
        .lines()
        .filter_map(|n| n.strip_prefix("linux-image-"))
        // The generic flavour, not -rt- (PREEMPT_RT) or -cloud-.
        .filter(|n| n.starts_with(kernel.prefix) && n.ends_with("-amd64-unsigned"))
        .filter(|n| !n.contains("-rt-") && !n.contains("-cloud-"))
        .max_by(|a, b| version_key(a).cmp(&version_key(b)))
        .map(|n| format!("linux-image-{n}"))
        .with_context(|| format!("no linux-image-{}*-amd64-unsigned package", kernel.prefix))?;
    let download = cache.join("download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download)?;
    run(Command::new("apt-get")
        .args(&opts)
        .args(["download", "-q", &package])
        .current_dir(&download))?;
    let deb = fs::read_dir(&download)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let unpacked = download.join("unpacked");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let image = find_vmlinuz(&unpacked.join("boot")).context("the package has no vmlinuz")?;
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("modules"))?;
    let target = dir.join(image.file_name().context("vmlinuz name")?);
    fs::copy(&image, &target)?;
    for module in MODULES {
        let found = find_file(&unpacked.join("lib/modules"), &|name| {
            name == format!("{module}.ko") || name.starts_with(&format!("{module}.ko."))
        })
        .with_context(|| format!("the package has no {module} module"))?;
        let out = dir.join(format!("modules/{module}.ko"));
        // busybox insmod takes uncompressed modules only.
        let name = found.to_string_lossy();
        if name.ends_with(".xz") || name.ends_with(".zst") {
            let tool = if name.ends_with(".xz") { "xz" } else { "zstd" };
            let data = Command::new(tool)
                .args(["-d", "-c"])
                .arg(&found)
                .output()
                .with_context(|| format!("starting {tool}"))?;
            if !data.status.success() {
                bail!("{tool} could not decompress {name}");
            }
            fs::write(&out, data.stdout)?;
        } else {
            fs::copy(&found, &out)?;
        }
    }
    fs::write(dir.join("modules/done"), "")?;
    fs::remove_dir_all(&download)?;
    Ok(target)
}

/// The first file under `dir` (recursively) whose name `wanted` accepts.
pub(super) fn find_file(dir: &Path, wanted: &dyn Fn(&str) -> bool) -> Option<PathBuf> {
    for entry in fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, wanted) {
                return Some(found);
            }
        } else if wanted(&entry.file_name().to_string_lossy()) {
            return Some(path);
        }
    }
    None
}

/// The initramfs for `kernel`: the shared payload and, appended as a second archive (the
/// kernel unpacks them in turn), that kernel's modules.
pub(super) fn initramfs_for(
    kernel: &Kernel,
    image: &Path,
    payload: &Path,
    cache: &Path,
) -> Result<PathBuf> {
    let mut cpio = Cpio::default();
    cpio.dir("modules");
    let dir = image.parent().context("kernel directory")?;
    for module in MODULES {
        let data = fs::read(dir.join(format!("modules/{module}.ko")))?;
        cpio.file(&format!("modules/{module}.ko"), &data, 0o644);
    }
    let mut bytes = fs::read(payload)?;
    bytes.extend(cpio.finish());
    let path = cache.join(format!("initramfs-{}.cpio", kernel.name));
    fs::write(&path, bytes)?;
    Ok(path)
}

pub(super) fn find_vmlinuz(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

/// Orders `6.1.0-41-amd64-unsigned` after `6.1.0-9-...`: numbers compare as numbers.
pub(super) fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

// --- the guest's files --------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_kernel_packages_sort_last() {
        let mut names = ["6.1.0-9-amd64-unsigned", "6.1.0-41-amd64-unsigned"];
        names.sort_by_key(|n| version_key(n));
        assert_eq!(names[1], "6.1.0-41-amd64-unsigned");
    }
}
