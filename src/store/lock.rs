//! File locks: per-key locks, the build/gc guard, and temp-dir writer locks.
//!
//! All locks are `flock`s (std `File::lock`), which belong to an open file
//! description: two threads of one process that each open the lock file
//! exclude each other just like two processes do, and a killed process
//! releases its locks.
//!
//! Lock files that get deleted (temp-dir locks by their holder, per-key
//! locks by `cache gc`) are deleted while the deleter holds the lock. A waiter that then obtains a
//! lock on the deleted inode notices that the path no longer names the file
//! it locked, and starts over; so at most one holder per path at a time.
//!
//! Per-key locks on Linux are the exception: one byte each of one file,
//! `locks/keys.ofd`, taken with open-file-description (OFD) record locks,
//! which behave like `flock`s (per open file description, released when
//! the holder dies) but need no file per key. A cold store would
//! otherwise create a lock file per key prefix, and creating a file is
//! what a cold sweep trial costs most once its outputs stay in memory.
//! The slot is the key's first four hex digits (65,536 slots). That file
//! is never deleted. Elsewhere keys lock `locks/<first two hex>.lock`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use super::fsutil::remove_file_if_exists;
use super::{Store, check_key};

/// How to take a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    Exclusive,
    Shared,
}

/// Opens `path` (creating it) and locks it. With `wait == false` returns
/// `Ok(None)` when someone else holds a conflicting lock.
pub(crate) fn lock_file(path: &Path, kind: LockKind, wait: bool) -> io::Result<Option<File>> {
    loop {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if wait {
            match kind {
                LockKind::Exclusive => file.lock()?,
                LockKind::Shared => file.lock_shared()?,
            }
        } else {
            let attempt = match kind {
                LockKind::Exclusive => file.try_lock(),
                LockKind::Shared => file.try_lock_shared(),
            };
            match attempt {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
        if same_file(&file, path)? {
            return Ok(Some(file));
        }
    }
}

/// Whether `path` still names the open `file` (it may have been deleted
/// and recreated while we waited for the lock).
pub(crate) fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let held = file.metadata()?;
        match std::fs::metadata(path) {
            Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        Ok(true)
    }
}

/// An exclusive lock on one key, released on drop.
///
/// Taken around "look up, and on a miss compute and commit", so that two
/// builds needing the same key compute it once: the second waits, then
/// finds the entry.
///
/// Keys share lock files by stripe (the first two hex digits), so a
/// store holds at most 256 lock files rather than one per entry. They
/// stay: `cache gc` removes those nobody holds.
#[derive(Debug)]
pub struct KeyLock {
    path: PathBuf,
    _file: File,
}

impl KeyLock {
    /// The lock file of the key's stripe, `locks/<key[0..2]>.lock`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A shared lock on `gc.lock`, held by a build for its whole run.
///
/// [`Store::gc`] needs the lock exclusively, so it never deletes anything
/// while a build runs.
#[derive(Debug)]
pub struct BuildGuard {
    _file: File,
}

/// A lock file that is removed, then unlocked, when dropped.
#[derive(Debug)]
pub(crate) struct HeldLock {
    path: PathBuf,
    file: Option<File>,
}

impl HeldLock {
    pub(crate) fn new(path: PathBuf, file: File) -> HeldLock {
        HeldLock {
            path,
            file: Some(file),
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, then close (which unlocks).
        let _ = remove_file_if_exists(&self.path);
        drop(self.file.take());
    }
}

impl Store {
    /// Takes the exclusive lock for `key`, waiting as long as another
    /// thread or process holds it. Released on drop.
    pub fn lock_key(&self, key: &str) -> io::Result<KeyLock> {
        Ok(self.key_lock(key, true)?.expect("blocking lock"))
    }

    /// Like [`Store::lock_key`] but returns `Ok(None)` instead of waiting
    /// (useful to report "waiting for another build" before blocking).
    pub fn try_lock_key(&self, key: &str) -> io::Result<Option<KeyLock>> {
        self.key_lock(key, false)
    }

    #[cfg(target_os = "linux")]
    fn key_lock(&self, key: &str, wait: bool) -> io::Result<Option<KeyLock>> {
        check_key(key)?;
        let path = self.locks_dir().join(KEY_LOCK_FILE);
        // A new open file description per lock: two holders in one
        // process exclude each other as two processes do.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let slot = u64::from_str_radix(&key[..4], 16).expect("a checked key is hex");
        Ok(lock_byte(&file, slot, wait)?.then_some(KeyLock { path, _file: file }))
    }

    #[cfg(not(target_os = "linux"))]
    fn key_lock(&self, key: &str, wait: bool) -> io::Result<Option<KeyLock>> {
        check_key(key)?;
        let path = self.key_lock_path(key);
        Ok(lock_file(&path, LockKind::Exclusive, wait)?.map(|file| KeyLock { path, _file: file }))
    }

    /// Takes the shared build lock on `gc.lock` (waiting while a gc runs).
    /// Hold it for the whole build.
    pub fn build_guard(&self) -> io::Result<BuildGuard> {
        let file = lock_file(&self.gc_lock_path(), LockKind::Shared, true)?.expect("blocking lock");
        Ok(BuildGuard { _file: file })
    }

    /// Takes `gc.lock` exclusively. With `wait == false`, fails with
    /// [`io::ErrorKind::WouldBlock`] and the message "a build is running"
    /// when any [`BuildGuard`] is held.
    pub(crate) fn gc_exclusive(&self, wait: bool) -> io::Result<File> {
        lock_file(&self.gc_lock_path(), LockKind::Exclusive, wait)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "a build is running (it holds {}); try again when it has finished",
                    self.gc_lock_path().display()
                ),
            )
        })
    }

    /// The lock file of `key`'s stripe, `locks/<key[0..2]>.lock`: 256
    /// lock files at most, however many keys the store holds. Two keys of
    /// one stripe exclude each other, which only ever makes one wait: a
    /// holder never blocks on another lock (a build waits for a contended
    /// key on a thread of its own while its held keys run), so no cycle
    /// of waits can form.
    #[cfg(not(target_os = "linux"))]
    fn key_lock_path(&self, key: &str) -> PathBuf {
        self.locks_dir().join(format!("{}.lock", &key[..2]))
    }
}

/// The file whose bytes are the per-key locks on Linux (see the module
/// docs); `cache gc` never removes it.
pub(crate) const KEY_LOCK_FILE: &str = "keys.ofd";

/// Takes an exclusive OFD record lock on byte `slot` of `file`; with
/// `wait == false`, `Ok(false)` when another open file description holds
/// it. Closing `file` releases it.
#[cfg(target_os = "linux")]
fn lock_byte(file: &File, slot: u64, wait: bool) -> io::Result<bool> {
    lock_range(file, slot, LockKind::Exclusive, wait)
}

/// Takes an OFD record lock of `kind` on byte `slot` of `file`; with
/// `wait == false`, `Ok(false)` when another open file description holds
/// a conflicting one. Closing `file` releases it.
#[cfg(target_os = "linux")]
fn lock_range(file: &File, slot: u64, kind: LockKind, wait: bool) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is a plain C struct for which all zero bytes is a
    // valid value; every field the call reads is set below.
    let mut range: libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = match kind {
        LockKind::Exclusive => libc::F_WRLCK,
        LockKind::Shared => libc::F_RDLCK,
    } as libc::c_short;
    range.l_whence = libc::SEEK_SET as libc::c_short;
    range.l_start = slot as libc::off_t;
    range.l_len = 1;
    range.l_pid = 0;
    let command = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    loop {
        // SAFETY: the descriptor is open for the duration of the call and
        // `range` is a valid, initialised `flock` it reads.
        let status = unsafe { libc::fcntl(file.as_raw_fd(), command, &range) };
        if status == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN | libc::EACCES) if !wait => return Ok(false),
            _ => return Err(error),
        }
    }
}

/// How a build uses a workspace path while it holds [`PathLocks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathAccess {
    /// It reads the path (a command reads its upstream's outputs).
    Read,
    /// It writes the path: a command producing it, or a restore.
    Write,
}

/// Locks on workspace paths, released on drop.
///
/// Entries are keyed by content, but the workspace path a command writes
/// is shared by every key of its node: two builds of one workflow with
/// different configs (a sweep run as separate processes) write the same
/// `out.txt`. A writer holds [`PathAccess::Write`] from removing the old
/// output until the commit has copied the new one into the store, and a
/// restore holds it while it writes; a command holds [`PathAccess::Read`]
/// on its upstream's outputs while it runs. So no entry is sealed from a
/// file another build wrote, and no command reads an upstream output
/// another build replaced.
///
/// On Linux each path is one byte of `locks/paths.ofd`, at an offset
/// taken from the blake3 of its absolute path (2^40 slots; two paths
/// sharing a slot only ever make one wait), locked with OFD record locks
/// as the per-key locks are. Elsewhere they are flocks on 256 stripes,
/// `locks/path-<xx>.lock`. Slots are always taken in ascending order and
/// only ever after the key lock, so waits cannot form a cycle.
#[derive(Debug, Default)]
pub struct PathLocks {
    _files: Vec<File>,
}

/// The file whose bytes are the workspace path locks on Linux; never
/// removed.
pub(crate) const PATH_LOCK_FILE: &str = "paths.ofd";

/// The lock slot of each path, ascending, each once with the strongest
/// access asked for it.
fn path_slots(paths: &[(PathBuf, PathAccess)], slots: u64) -> Vec<(u64, PathAccess)> {
    let mut wanted: Vec<(u64, PathAccess)> = paths
        .iter()
        .map(|(path, access)| {
            let digest = blake3::hash(path.as_os_str().as_encoded_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest.as_bytes()[..8]);
            (u64::from_le_bytes(first) % slots, *access)
        })
        .collect();
    // Write sorts after Read: the last of each slot is the strongest.
    wanted.sort();
    let mut out: Vec<(u64, PathAccess)> = Vec::with_capacity(wanted.len());
    for (slot, access) in wanted {
        match out.last_mut() {
            Some(last) if last.0 == slot => last.1 = access,
            _ => out.push((slot, access)),
        }
    }
    out
}

impl Store {
    /// Locks the workspace `paths` (absolute and normalised) for the
    /// access given with each. With `wait == false`, `Ok(None)` when
    /// another build holds a conflicting lock on any of them, and none is
    /// held. See [`PathLocks`].
    pub fn lock_paths(
        &self,
        paths: &[(PathBuf, PathAccess)],
        wait: bool,
    ) -> io::Result<Option<PathLocks>> {
        if paths.is_empty() {
            return Ok(Some(PathLocks::default()));
        }
        self.path_locks(paths, wait)
    }

    #[cfg(target_os = "linux")]
    fn path_locks(
        &self,
        paths: &[(PathBuf, PathAccess)],
        wait: bool,
    ) -> io::Result<Option<PathLocks>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.locks_dir().join(PATH_LOCK_FILE))?;
        for (slot, access) in path_slots(paths, 1 << 40) {
            let kind = match access {
                PathAccess::Read => LockKind::Shared,
                PathAccess::Write => LockKind::Exclusive,
            };
            // One open file description holds every slot; closing it on
            // a refusal releases those already taken.
            if !lock_range(&file, slot, kind, wait)? {
                return Ok(None);
            }
        }
        Ok(Some(PathLocks { _files: vec![file] }))
    }

    #[cfg(not(target_os = "linux"))]
    fn path_locks(
        &self,
        paths: &[(PathBuf, PathAccess)],
        wait: bool,
    ) -> io::Result<Option<PathLocks>> {
        let mut files = Vec::new();
        for (slot, access) in path_slots(paths, 256) {
            let kind = match access {
                PathAccess::Read => LockKind::Shared,
                PathAccess::Write => LockKind::Exclusive,
            };
            let path = self.locks_dir().join(format!("path-{slot:02x}.lock"));
            match lock_file(&path, kind, wait)? {
                Some(file) => files.push(file),
                None => return Ok(None),
            }
        }
        Ok(Some(PathLocks { _files: files }))
    }
}
