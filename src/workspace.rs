//! Writing a cache hit's outputs back into the workspace.
//!
//! A restored file is written to a temp file next to it
//! (`.<name>.admf-tmp.<pid>`) and renamed over the destination, so a kill
//! never leaves half a file, and a symlink at the destination is replaced,
//! never written through. The destination's directory, symlinks resolved,
//! must lie inside the declaring workflow's directory: a symlinked
//! directory pointing elsewhere is refused before anything is created.
//! Temp files left by a killed admf (their pid is gone) are removed the
//! first time a later admf process restores or runs an output in the same
//! directory.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// How a workspace output is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Keep {
    /// Copied into the store, restored into the workspace on a hit.
    #[default]
    Stored,
    /// `temp:`: copied into the store, but in the workspace only while a
    /// node that reads it may run: not restored on a hit, restored for a
    /// reader that runs, removed once every reader of the build finished.
    Temp,
    /// `cache: false`: left in the workspace only; the entry records its
    /// digest (in [`UNCACHED_RECORD`]), and a hit whose file is missing
    /// or differs from it runs the node again.
    Uncached,
}

/// The entry artifact holding the digests of a node's `cache: false`
/// outputs: a JSON object of path → `{blake3, size}`.
pub const UNCACHED_RECORD: &str = "uncached.json";

/// Removes a workspace output (a file, or a directory output's tree);
/// true when something was there.
pub fn remove_output(rel: &str, path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() && is_dir_output(rel) => fs::remove_dir_all(path).map(|()| true),
        Ok(_) => fs::remove_file(path).map(|()| true),
    }
}

/// blake3 (hex) and size of the file at `path`, read as a stream.
pub fn file_digest(path: &Path) -> io::Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let size = io::copy(&mut fs::File::open(path)?, &mut hasher)?;
    Ok((hasher.finalize().to_hex().to_string(), size))
}

/// Whether a workspace output (as named in the entry) is a directory
/// output: declared with a trailing `/`, stored and restored as a tree of
/// files under that name.
pub fn is_dir_output(rel: &str) -> bool {
    rel.ends_with('/')
}

/// Whether `path` is a regular file itself (not a symlink to one).
pub fn is_plain_file(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// Writes `bytes` (a stored output, already checked against its digest)
/// to `to` through a temp file and a rename. `root` is the directory `to`
/// must stay inside. The file is created afresh, so its mode follows the
/// umask like any file the user's tools create.
///
/// Every create, write and rename happens relative to a descriptor of
/// `to`'s directory opened without following symlinks from `root` down
/// (see [`open_dir_inside`]), so a symlink swapped in while it runs makes
/// it fail, never write elsewhere.
pub fn restore_bytes(bytes: &[u8], to: &Path, root: &Path) -> io::Result<()> {
    let (dir, name) = open_parent_inside(to, root)?;
    remove_dead_temps(to);
    let tmp = format!("{}{}", temp_prefix(to), std::process::id());
    let written = (|| {
        use rustix::fs::{Mode, OFlags};
        // A temp file of this pid left by an earlier failed restore is
        // replaced (`TRUNC`), never appended to; a symlink there is
        // refused (`NOFOLLOW`).
        let fd = rustix::fs::openat(
            &dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )?;
        let mut file = fs::File::from(fd);
        io::Write::write_all(&mut file, bytes)?;
        drop(file);
        rustix::fs::renameat(&dir, tmp.as_str(), &dir, name.as_os_str())?;
        Ok(())
    })();
    if written.is_err() {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), rustix::fs::AtFlags::empty());
    }
    written
}

/// Removes the file (or symlink) at `path` through a descriptor of its
/// directory opened inside `root` (see [`open_dir_inside`]), creating the
/// directory when missing; nothing to do when the file is absent.
pub fn remove_file_inside(path: &Path, root: &Path) -> io::Result<()> {
    let (dir, name) = open_parent_inside(path, root)?;
    // Looked up first: an unlink takes the directory's lock even when
    // there is nothing to remove, and spins for it while a command
    // creates a file there, as parallel commands writing one output
    // directory do all the time.
    let flags = rustix::fs::AtFlags::SYMLINK_NOFOLLOW;
    if let Err(rustix::io::Errno::NOENT) = rustix::fs::statat(&dir, name.as_os_str(), flags) {
        return Ok(());
    }
    match rustix::fs::unlinkat(&dir, name.as_os_str(), rustix::fs::AtFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// The directory of `path`, opened inside `root` and created when
/// missing, and `path`'s file name.
fn open_parent_inside(path: &Path, root: &Path) -> io::Result<(Arc<OwnedFd>, std::ffi::OsString)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((open_dir_inside(parent, root)?, name.to_os_string()))
}

/// Opens directory `dir`, creating what is missing of it, as a descriptor
/// reached from `root` one component at a time without following a
/// symlink. A symlink `dir` passes through must resolve inside `root`
/// (checked first, with a clear error); the walk then follows the
/// resolved path with `O_NOFOLLOW`, so a symlink swapped in after the
/// check is an error, not a way out of `root`.
///
/// A directory opened this way is kept open for the process and given
/// again while `dir`, its last component not followed, still names that
/// same directory (device and inode; the kept descriptor keeps the inode
/// number from being reused). A directory replaced by a symlink or by
/// another directory, or one whose parents now lead elsewhere, names
/// another inode and is walked again.
pub fn open_dir_inside(dir: &Path, root: &Path) -> io::Result<Arc<OwnedFd>> {
    let root = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    let dir = crate::paths::normalize(&std::path::absolute(dir)?);
    let key = (root.to_path_buf(), dir);
    if let Some(fd) = OPENED_DIRS.still_there(&key) {
        return Ok(fd);
    }
    let fd = Arc::new(walk_dir_inside(&key.1, root)?);
    OPENED_DIRS.keep(key, &fd);
    Ok(fd)
}

/// Directories [`open_dir_inside`] opened, by root and directory.
static OPENED_DIRS: OpenedDirs = OpenedDirs(Mutex::new(None));

/// At most this many directories are kept open (each holds a descriptor).
const OPENED_DIRS_KEPT: usize = 256;

type OpenedDir = (Arc<OwnedFd>, (u64, u64));

struct OpenedDirs(Mutex<Option<HashMap<(PathBuf, PathBuf), OpenedDir>>>);

impl OpenedDirs {
    fn still_there(&self, key: &(PathBuf, PathBuf)) -> Option<Arc<OwnedFd>> {
        let (fd, id) = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .get(key)
            .cloned()?;
        let now = rustix::fs::lstat(&key.1).ok()?;
        (dev_ino(&now) == id).then_some(fd)
    }

    fn keep(&self, key: (PathBuf, PathBuf), fd: &Arc<OwnedFd>) {
        let Ok(stat) = rustix::fs::fstat(fd) else {
            return;
        };
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let kept = kept.get_or_insert_with(HashMap::new);
        if kept.len() < OPENED_DIRS_KEPT || kept.contains_key(&key) {
            kept.insert(key, (fd.clone(), dev_ino(&stat)));
        }
    }
}

fn dev_ino(stat: &rustix::fs::Stat) -> (u64, u64) {
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    (stat.st_dev as u64, stat.st_ino as u64)
}

/// [`open_dir_inside`]'s walk from `root` to `dir` (absolute, normal).
fn walk_dir_inside(dir: &Path, root: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let real_root = fs::canonicalize(root)?;
    let existing = dir
        .ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"));
    let real = fs::canonicalize(existing)?;
    let Ok(inside) = real.strip_prefix(&real_root) else {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} leads outside {} (through a symlink); admf writes no output there",
                dir.display(),
                root.display()
            ),
        ));
    };
    let missing = dir.strip_prefix(existing).unwrap_or(Path::new(""));
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
    let mut fd = rustix::fs::open(&real_root, flags, Mode::empty())?;
    for (i, part) in inside.components().chain(missing.components()).enumerate() {
        let part = part.as_os_str();
        let create = i >= inside.components().count();
        let next = match rustix::fs::openat(&fd, part, flags, Mode::empty()) {
            Err(rustix::io::Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&fd, part, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                rustix::fs::openat(&fd, part, flags, Mode::empty())
            }
            other => other,
        };
        fd = next.map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} changed into a symlink or a file while admf wrote there",
                    dir.display()
                ),
            ),
            e => e.into(),
        })?;
    }
    Ok(fd)
}

fn temp_prefix(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!(".{name}.admf-tmp.")
}

/// Removes the restore temp files (`.<name>.admf-tmp.<pid>`) whose
/// process no longer runs from the directory of `path`. Only where `/proc`
/// tells which run.
///
/// Each directory is swept once per process: the temps a killed build
/// left are all there at the start, and sweeping per output would read a
/// directory of N outputs N times.
pub fn remove_dead_temps(path: &Path) {
    static SWEPT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let proc = Path::new("/proc");
    static HAS_PROC: OnceLock<bool> = OnceLock::new();
    if !*HAS_PROC.get_or_init(|| proc.join("self").exists()) {
        return;
    }
    let first_visit = SWEPT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert(std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
    if !first_visit {
        return;
    }
    let Ok(items) = fs::read_dir(dir) else { return };
    for item in items.flatten() {
        let name = item.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.rsplit_once(".admf-tmp."))
            .map(|(_, pid)| pid)
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !proc.join(pid).exists() {
            let _ = fs::remove_file(item.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_a_symlink_instead_of_writing_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim.txt");
        fs::write(&victim, "keep me").unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir(&ws).unwrap();
        std::os::unix::fs::symlink(&victim, ws.join("out.txt")).unwrap();
        assert!(!is_plain_file(&ws.join("out.txt")));
        restore_bytes(b"restored", &ws.join("out.txt"), &ws).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
        assert!(is_plain_file(&ws.join("out.txt")));
        assert_eq!(fs::read_to_string(ws.join("out.txt")).unwrap(), "restored");
    }

    #[test]
    fn refuses_a_symlinked_directory_leading_out() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir(&ws).unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.join("out")).unwrap();
        for to in ["out/a.txt", "out/deeper/a.txt"] {
            let err = restore_bytes(b"restored", &ws.join(to), &ws).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{to}");
        }
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_opened_directory_is_kept_while_its_path_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir_all(ws.join("out")).unwrap();
        let first = open_dir_inside(&ws.join("out"), &ws).unwrap();
        let again = open_dir_inside(&ws.join("out"), &ws).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Replaced by a symlink leading out: walked again, and refused.
        fs::rename(ws.join("out"), ws.join("old")).unwrap();
        std::os::unix::fs::symlink(outside.path(), ws.join("out")).unwrap();
        let err = restore_bytes(b"x", &ws.join("out/a.txt"), &ws).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // Replaced by another directory: that one is written, not the old.
        fs::remove_file(ws.join("out")).unwrap();
        fs::create_dir(ws.join("out")).unwrap();
        restore_bytes(b"new", &ws.join("out/a.txt"), &ws).unwrap();
        assert_eq!(fs::read_to_string(ws.join("out/a.txt")).unwrap(), "new");
        assert!(!ws.join("old/a.txt").exists());
        // Removed: made again.
        fs::remove_dir_all(ws.join("out")).unwrap();
        remove_file_inside(&ws.join("out/a.txt"), &ws).unwrap();
        assert!(ws.join("out").is_dir());
    }

    #[test]
    fn removes_temp_files_of_dead_processes_only() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(".a.txt.admf-tmp.4000000000");
        let dead_other = dir.path().join(".b.txt.admf-tmp.4000000000");
        let live = dir
            .path()
            .join(format!(".c.txt.admf-tmp.{}", std::process::id()));
        let unrelated = dir.path().join(".d.txt.admf-tmp.notapid");
        for f in [&dead, &dead_other, &live, &unrelated] {
            fs::write(f, "debris").unwrap();
        }
        restore_bytes(b"x", &dir.path().join("a.txt"), dir.path()).unwrap();
        assert!(!dead.exists() && !dead_other.exists());
        assert!(live.exists() && unrelated.exists());
    }

    #[test]
    fn a_restored_file_follows_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // What the umask makes of a new file, as any tool would create it.
        let probe = dir.path().join("probe");
        fs::write(&probe, "p").unwrap();
        let expected = fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        let to = dir.path().join("restored.txt");
        restore_bytes(b"content", &to, dir.path()).unwrap();
        let mode = fs::metadata(&to).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected);
        assert_eq!(fs::read_to_string(&to).unwrap(), "content");
    }
}
