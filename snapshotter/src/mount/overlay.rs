//! Performing an overlay [`Mount`]: the new mount API first, legacy `mount(2)` as the fallback.
//!
//! Why two paths: `mount(2)` copies at most one page (4096 bytes) of option data, and 200 absolute layer
//! paths take far more. With `fsopen`/`fsconfig`, each layer is its own `lowerdir+` call (Linux >= 6.8),
//! so only the kernel's stacking limit (500 layers) applies. `fsconfig` caps each value at 256 bytes, so a
//! layer path that long sends the mount to the legacy path too. There, when absolute paths overflow the
//! page, they are rewritten relative to their common directory and the mount is made from a short-lived
//! thread that has its own working directory (`unshare(CLONE_FS)`), so the process's cwd never changes.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags};

use super::{Mount, MountApi};
use crate::error::{Error, Result};

/// The most option data `mount(2)` reads: one page, NUL included.
const MOUNT_DATA_MAX: usize = 4095;
/// The longest string value `fsconfig` accepts (the kernel copies at most 256 bytes, NUL included).
const FSCONFIG_VALUE_MAX: usize = 255;

/// What `MountApi::Auto` has learnt about this kernel.
static AUTO_STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const FSCONFIG_WORKS: u8 = 1;
const LEGACY_ONLY: u8 = 2;

/// The parts of an overlay mount's options.
struct Config<'a> {
    lowers: Vec<&'a str>,
    upper: Option<&'a str>,
    work: Option<&'a str>,
    /// Everything else overlay understands (`userxattr`, `index=off`, ...), passed through.
    other: Vec<&'a str>,
    readonly: bool,
}

impl<'a> Config<'a> {
    fn parse(mount: &'a Mount) -> Config<'a> {
        let mut config = Config {
            lowers: Vec::new(),
            upper: None,
            work: None,
            other: Vec::new(),
            readonly: false,
        };
        for option in &mount.options {
            if let Some(lowers) = option.strip_prefix("lowerdir=") {
                config.lowers.extend(lowers.split(':').filter(|l| !l.is_empty()));
            } else if let Some(upper) = option.strip_prefix("upperdir=") {
                config.upper = Some(upper);
            } else if let Some(work) = option.strip_prefix("workdir=") {
                config.work = Some(work);
            } else if option == "ro" {
                config.readonly = true;
            } else if option != "rw" {
                config.other.push(option);
            }
        }
        config
    }

    fn paths(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.lowers.iter().copied().chain(self.upper).chain(self.work)
    }

    /// The `mount(2)` option string, with paths made relative to `base` if given.
    fn data(&self, base: Option<&Path>) -> String {
        let path = |p: &'a str| -> String {
            match base {
                Some(base) => Path::new(p)
                    .strip_prefix(base)
                    .map_or(p, |r| r.to_str().unwrap_or(p))
                    .to_owned(),
                None => p.to_owned(),
            }
        };
        let mut options: Vec<String> = self.other.iter().map(|o| (*o).to_owned()).collect();
        let lowers: Vec<String> = self.lowers.iter().map(|l| path(l)).collect();
        options.push(format!("lowerdir={}", lowers.join(":")));
        if let Some(upper) = self.upper {
            options.push(format!("upperdir={}", path(upper)));
        }
        if let Some(work) = self.work {
            options.push(format!("workdir={}", path(work)));
        }
        options.join(",")
    }
}

/// Mounts the overlay described by `mount` at `at` (absolute).
pub(super) fn mount(mount: &Mount, at: &Path, api: MountApi) -> Result<()> {
    let config = Config::parse(mount);
    let fits_fsconfig = config
        .paths()
        .chain(config.other.iter().copied())
        .all(|p| p.len() <= FSCONFIG_VALUE_MAX);
    let try_fsconfig = match api {
        MountApi::FsConfig => true,
        MountApi::Legacy => false,
        MountApi::Auto => fits_fsconfig && AUTO_STATE.load(Ordering::Relaxed) != LEGACY_ONLY,
    };
    if try_fsconfig {
        match mount_fsconfig(&config, at) {
            Ok(()) => {
                AUTO_STATE.store(FSCONFIG_WORKS, Ordering::Relaxed);
                return Ok(());
            }
            Err(Attempt::Unsupported(_)) if api == MountApi::Auto => {
                AUTO_STATE.store(LEGACY_ONLY, Ordering::Relaxed);
            }
            Err(Attempt::Unsupported(error) | Attempt::Failed(error)) => return Err(error),
        }
    }
    mount_legacy(&config, at)
}

enum Attempt {
    /// The kernel lacks the new mount API or overlay's `lowerdir+`.
    Unsupported(Error),
    Failed(Error),
}

fn mount_error(at: &Path, fs: Option<&OwnedFd>, source: Errno) -> Error {
    Error::Mount {
        kind: "overlay".to_owned(),
        target: at.to_owned(),
        detail: fs.and_then(read_fs_log),
        source: source.into(),
    }
}

fn mount_fsconfig(config: &Config<'_>, at: &Path) -> Result<(), Attempt> {
    let fs = match rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fs) => fs,
        Err(e @ (Errno::NOSYS | Errno::PERM)) => return Err(Attempt::Unsupported(mount_error(at, None, e))),
        Err(e) => return Err(Attempt::Failed(mount_error(at, None, e))),
    };
    let failed = |e: Errno| Attempt::Failed(mount_error(at, Some(&fs), e));
    for (i, lower) in config.lowers.iter().enumerate() {
        match rustix::mount::fsconfig_set_string(&fs, "lowerdir+", *lower) {
            Ok(()) => {}
            // Before 6.8 overlay rejects the parameter name itself.
            Err(Errno::INVAL) if i == 0 => {
                return Err(Attempt::Unsupported(mount_error(at, Some(&fs), Errno::INVAL)));
            }
            Err(e) => return Err(failed(e)),
        }
    }
    for (key, value) in [("upperdir", config.upper), ("workdir", config.work)] {
        if let Some(value) = value {
            rustix::mount::fsconfig_set_string(&fs, key, value).map_err(failed)?;
        }
    }
    for option in &config.other {
        match option.split_once('=') {
            Some((key, value)) => rustix::mount::fsconfig_set_string(&fs, key, value),
            None => rustix::mount::fsconfig_set_flag(&fs, *option),
        }
        .map_err(failed)?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(failed)?;
    let attrs = if config.readonly {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(failed)?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        at,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(failed)
}

/// The messages the kernel left on a filesystem context ("e overlayfs: failed to resolve ..."), joined.
fn read_fs_log(fs: &OwnedFd) -> Option<String> {
    let mut messages = Vec::new();
    let mut buf = [0u8; 1024];
    // Each read returns one message; the log ends with ENODATA.
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        let line = line.trim_end();
        messages.push(line.get(2..).unwrap_or(line).to_owned());
    }
    (!messages.is_empty()).then(|| messages.join("; "))
}

fn mount_legacy(config: &Config<'_>, at: &Path) -> Result<()> {
    let flags = if config.readonly {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    let absolute = config.data(None);
    if absolute.len() <= MOUNT_DATA_MAX {
        return rustix::mount::mount(
            "overlay",
            at,
            "overlay",
            flags,
            Some(cstring(&absolute).as_c_str()),
        )
        .map_err(|e| mount_error(at, None, e));
    }
    let base = common_dir(config.paths());
    let relative = config.data(Some(&base));
    if relative.len() > MOUNT_DATA_MAX {
        return Err(Error::MountDataTooLong {
            target: at.to_owned(),
            len: relative.len(),
            max: MOUNT_DATA_MAX,
        });
    }
    let data = cstring(&relative);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: CLONE_FS only gives this thread its own cwd, root and umask; it does not touch the
                // file descriptor table other threads share (the hazard `unshare_unsafe` warns about).
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }?;
                rustix::process::chdir(&base)?;
                rustix::mount::mount("overlay", at, "overlay", flags, Some(data.as_c_str()))
            })
            .join()
            .unwrap_or(Err(Errno::IO))
    })
    .map_err(|e| mount_error(at, None, e))
}

fn cstring(data: &str) -> std::ffi::CString {
    // Option data built from paths that are valid C strings (they came from the filesystem) has no NUL.
    std::ffi::CString::new(data).unwrap_or_default()
}

/// The deepest directory containing every path.
fn common_dir<'a>(paths: impl Iterator<Item = &'a str>) -> PathBuf {
    let mut common: Option<Vec<Component<'a>>> = None;
    for path in paths {
        let parent = Path::new(path).parent().unwrap_or(Path::new("/"));
        let components: Vec<Component<'a>> = parent.components().collect();
        common = Some(match common {
            None => components,
            Some(prefix) => prefix
                .iter()
                .zip(&components)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| *a)
                .collect(),
        });
    }
    common.map_or_else(|| PathBuf::from("/"), |c| c.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_dir_is_the_deepest_shared_parent() {
        let paths = ["/r/snapshots/1/fs", "/r/snapshots/22/fs", "/r/snapshots/3/work"];
        assert_eq!(common_dir(paths.into_iter()), PathBuf::from("/r/snapshots"));
        assert_eq!(common_dir(["/r/s/1/fs"].into_iter()), PathBuf::from("/r/s/1"));
    }

    #[test]
    fn relative_data_strips_the_base() {
        let mount = Mount {
            kind: super::super::MountKind::Overlay,
            source: "overlay".into(),
            target: None,
            options: vec![
                "index=off".into(),
                "lowerdir=/r/s/2/fs:/r/s/1/fs".into(),
                "upperdir=/r/s/3/fs".into(),
                "workdir=/r/s/3/work".into(),
            ],
        };
        let config = Config::parse(&mount);
        assert_eq!(
            config.data(Some(Path::new("/r/s"))),
            "index=off,lowerdir=2/fs:1/fs,upperdir=3/fs,workdir=3/work"
        );
        assert_eq!(config.data(None), mount.options.join(","));
    }
}
