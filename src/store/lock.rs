//! File locks: per-key locks, the build/gc guard, the pending ledger row,
//! and temp-dir writer locks.
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
//! The slot is the key's first ten hex digits (2^40 slots, as for the
//! path locks): two keys of one slot exclude each other, and with 65,536
//! slots a 10,000-trial sweep had hundreds of such pairs, each of which
//! held a trial back until the other had committed. That file is never
//! deleted. Elsewhere keys lock `locks/<first two hex>.lock`.
//!
//! An OFD lock belongs to its open file description, so each holder needs
//! one of its own; but opening the file per key costs a path lookup and a
//! close per node. A released lock hands its description, unlocked, to
//! the open store's idle list ([`IdleLockFiles`]), and the next lock takes
//! it from there: the lock files stay open for the store's lifetime, one
//! description per lock held at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

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
    file: Option<File>,
    /// Where the unlocked description goes when released (Linux).
    idle: Option<Arc<IdleLockFiles>>,
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        if let (Some(file), Some(idle)) = (self.file.take(), &self.idle) {
            idle.put_back(file);
        }
    }
}

/// Open descriptions of one lock file that hold no lock, for the next
/// lock to use instead of opening the file again. Shared by the clones of
/// an open store.
#[derive(Debug, Default)]
pub(crate) struct IdleLockFiles(Mutex<Vec<File>>);

/// How many idle descriptions a list keeps: as many as locks are held at
/// once in a build, which `-j` bounds; more are closed.
const IDLE_LOCK_FILES: usize = 256;

impl IdleLockFiles {
    /// An idle description of `path`, or a new one (the file is created
    /// when missing).
    fn take(&self, path: &Path) -> io::Result<File> {
        let idle = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match idle {
            Some(file) => Ok(file),
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path),
        }
    }

    /// Releases every lock `file` holds and keeps it for the next lock;
    /// one that cannot be unlocked is closed, which releases its locks.
    fn put_back(&self, file: File) {
        #[cfg(target_os = "linux")]
        if unlock_all(&file).is_ok() {
            let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < IDLE_LOCK_FILES {
                idle.push(file);
            }
        }
        #[cfg(not(target_os = "linux"))]
        drop(file);
    }
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

/// The exclusive lock on `ledger.lock` ([`Store::ledger_pending`]),
/// released when dropped.
#[derive(Debug)]
pub struct LedgerPending {
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
        // An open file description per lock held: two holders in one
        // process exclude each other as two processes do.
        let idle = self.scratch.idle_key_lock_files.clone();
        let file = idle.take(&path)?;
        let slot = u64::from_str_radix(&key[..10], 16).expect("a checked key is hex");
        let locked = lock_byte(&file, slot, wait)?;
        let lock = KeyLock {
            path,
            file: Some(file),
            idle: Some(idle),
        };
        // A refused lock holds nothing: its description goes back idle.
        Ok(locked.then_some(lock))
    }

    #[cfg(not(target_os = "linux"))]
    fn key_lock(&self, key: &str, wait: bool) -> io::Result<Option<KeyLock>> {
        check_key(key)?;
        let path = self.key_lock_path(key);
        Ok(
            lock_file(&path, LockKind::Exclusive, wait)?.map(|file| KeyLock {
                path,
                file: Some(file),
                idle: None,
            }),
        )
    }

    /// Takes the shared build lock on `gc.lock` (waiting while a gc runs).
    /// Hold it for the whole build.
    pub fn build_guard(&self) -> io::Result<BuildGuard> {
        let file = lock_file(&self.gc_lock_path(), LockKind::Shared, true)?.expect("blocking lock");
        Ok(BuildGuard { _file: file })
    }

    /// Takes `ledger.lock` exclusively: held by a build that answers its
    /// caller before it adds its row to the run ledger (a build `admf
    /// serve` forked, [`crate::commands::serve`]), from before that answer
    /// until the row is written, so that a reader of the ledger
    /// ([`Store::wait_for_ledger`]) started after the answer finds the row.
    pub fn ledger_pending(&self) -> io::Result<LedgerPending> {
        let file =
            lock_file(&self.ledger_lock_path(), LockKind::Exclusive, true)?.expect("blocking lock");
        Ok(LedgerPending { _file: file })
    }

    /// Waits while a build holds [`Store::ledger_pending`]: what the ledger
    /// holds then includes every build that has answered. A store whose
    /// lock cannot be taken (read-only, say) has no build writing to it.
    /// Never called while this process holds the pending lock itself: it
    /// would wait for itself.
    pub(crate) fn wait_for_ledger(&self) {
        let _ = lock_file(&self.ledger_lock_path(), LockKind::Shared, true);
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

/// Releases every OFD record lock `file`'s open file description holds.
#[cfg(target_os = "linux")]
fn unlock_all(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: as in `lock_range`: all zero bytes is a valid `flock`.
    let mut range: libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = libc::F_UNLCK as libc::c_short;
    range.l_whence = libc::SEEK_SET as libc::c_short;
    // From 0, length 0: the whole file, however far it extends.
    range.l_start = 0;
    range.l_len = 0;
    loop {
        // SAFETY: the descriptor is open for the duration of the call and
        // `range` is a valid, initialised `flock` it reads.
        let status = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &range) };
        if status == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EINTR) {
            return Err(error);
        }
    }
}

/// Takes an exclusive OFD record lock on byte `slot` of `file`; with
/// `wait == false`, `Ok(false)` when another open file description holds
/// it. Closing `file` releases it.
#[cfg(target_os = "linux")]
fn lock_byte(file: &File, slot: u64, wait: bool) -> io::Result<bool> {
    lock_range(file, (slot, 1), LockKind::Exclusive, wait)
}

/// Takes an OFD record lock of `kind` on byte `slot` of `file`; with
/// `wait == false`, `Ok(false)` when another open file description holds
/// a conflicting one. Closing `file` releases it.
#[cfg(target_os = "linux")]
fn lock_range(
    file: &File,
    (start, len): (u64, u64),
    kind: LockKind,
    wait: bool,
) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is a plain C struct for which all zero bytes is a
    // valid value; every field the call reads is set below.
    let mut range: libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = match kind {
        LockKind::Exclusive => libc::F_WRLCK,
        LockKind::Shared => libc::F_RDLCK,
    } as libc::c_short;
    range.l_whence = libc::SEEK_SET as libc::c_short;
    range.l_start = start as libc::off_t;
    range.l_len = len as libc::off_t;
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
/// On Linux each path is one byte of one of [`PATH_LOCK_FILES`] files
/// `locks/paths-<xx>.ofd`, the slot taken from the blake3 of its absolute
/// path (2^40 slots; two paths sharing a slot only ever make one wait),
/// locked with OFD record locks as the per-key locks are. The slots are
/// spread over several files because the kernel keeps one list of record
/// locks per file and walks all of it for each new lock: a command with
/// 10,000 upstream outputs holds 10,000 read locks, which in one file
/// cost the square of that; a build reading more than [`MANY_READS`]
/// paths takes ranges of slots instead ([`slot_ranges`]). Elsewhere they
/// are flocks on 256 stripes,
/// `locks/path-<xx>.lock`. Slots are always taken in ascending order (the
/// file's number is the slot's high bits) and only ever after the key
/// lock, so waits cannot form a cycle.
#[derive(Debug, Default)]
pub struct PathLocks {
    /// Each description with the number of the lock file it is of.
    files: Vec<(usize, File)>,
    /// Where the unlocked descriptions go when released (Linux), one list
    /// per lock file.
    idle: Option<Arc<Vec<IdleLockFiles>>>,
}

impl Drop for PathLocks {
    fn drop(&mut self) {
        if let Some(idle) = &self.idle {
            for (number, file) in self.files.drain(..) {
                idle[number].put_back(file);
            }
        }
    }
}

/// How many files hold the workspace path locks on Linux.
pub(crate) const PATH_LOCK_FILES: usize = 64;

/// The bits of a path's slot that are its offset in its lock file; the
/// bits above them number the file (2^40 slots over 64 files).
const PATH_SLOT_OFFSET_BITS: u32 = 34;

/// The name of path lock file `number` on Linux; never removed.
pub(crate) fn path_lock_file(number: usize) -> String {
    format!("paths-{number:02x}.ofd")
}

/// A build reading more paths than this locks ranges of slots rather
/// than each slot ([`slot_ranges`]).
const MANY_READS: usize = 256;

/// The ranges of lock slots to take for `slots` (ascending, each once),
/// as (first slot, length, access), ascending and disjoint. Each slot is
/// its own range, except for a build reading more than [`MANY_READS`]
/// paths: within a lock file, a run of read slots with no write slot
/// between them is one shared range from the first to the last. Ten
/// thousand read locks cost some ten thousand calls (and each walks the
/// file's list of locks); the few ranges cover other paths' slots too,
/// so a build writing one of those waits until the reader is done,
/// which is safe and only slower. The ranges stay ascending and
/// disjoint, so waits still cannot form a cycle: a build waits only for
/// a holder whose next lock lies beyond what it waits for.
fn slot_ranges(slots: &[(u64, PathAccess)]) -> Vec<(u64, u64, PathAccess)> {
    let reads = slots.iter().filter(|(_, a)| *a == PathAccess::Read).count();
    let mut out: Vec<(u64, u64, PathAccess)> = Vec::with_capacity(slots.len());
    for &(slot, access) in slots {
        match out.last_mut() {
            Some((start, len, PathAccess::Read))
                if reads > MANY_READS
                    && access == PathAccess::Read
                    && *start >> PATH_SLOT_OFFSET_BITS == slot >> PATH_SLOT_OFFSET_BITS =>
            {
                *len = slot - *start + 1;
            }
            _ => out.push((slot, 1, access)),
        }
    }
    out
}

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
        let idle = self.scratch.idle_path_lock_files.clone();
        // One open file description per lock file holds every slot in it;
        // on a refusal or an error they go back idle, which releases those
        // already taken.
        let mut locks = PathLocks {
            files: Vec::new(),
            idle: Some(idle.clone()),
        };
        for (slot, len, access) in slot_ranges(&path_slots(paths, 1 << 40)) {
            let number = (slot >> PATH_SLOT_OFFSET_BITS) as usize;
            if locks.files.last().is_none_or(|(last, _)| *last != number) {
                let path = self.locks_dir().join(path_lock_file(number));
                locks.files.push((number, idle[number].take(&path)?));
            }
            let kind = match access {
                PathAccess::Read => LockKind::Shared,
                PathAccess::Write => LockKind::Exclusive,
            };
            let offset = slot & ((1 << PATH_SLOT_OFFSET_BITS) - 1);
            let (_, file) = locks.files.last().expect("pushed above");
            if !lock_range(file, (offset, len), kind, wait)? {
                return Ok(None);
            }
        }
        Ok(Some(locks))
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
                Some(file) => files.push((slot as usize, file)),
                None => return Ok(None),
            }
        }
        Ok(Some(PathLocks { files, idle: None }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(prefix: &str) -> String {
        format!("{prefix}{}", "0".repeat(64 - prefix.len()))
    }

    fn idle_count(idle: &IdleLockFiles) -> usize {
        idle.0.lock().unwrap().len()
    }

    #[test]
    fn a_released_key_lock_is_unlocked_and_its_description_reused() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let (a, b) = (key("aaaa"), key("bbbb"));
        let held = store.lock_key(&a).unwrap();
        // Another holder in the same process is refused, as another
        // process would be; the refused attempt leaves its description idle.
        assert!(store.try_lock_key(&a).unwrap().is_none());
        let idle = &store.scratch.idle_key_lock_files;
        assert_eq!(idle_count(idle), usize::from(cfg!(target_os = "linux")));
        drop(held);
        // The next lock takes an idle description instead of a new one.
        let other = store.lock_key(&b).unwrap();
        assert_eq!(idle_count(idle), usize::from(cfg!(target_os = "linux")));
        // Whichever description held `a` released it when put back.
        let again = store.try_lock_key(&a).unwrap().expect("a is free");
        assert!(store.try_lock_key(&b).unwrap().is_none());
        drop((other, again));
        assert!(store.try_lock_key(&b).unwrap().is_some());
    }

    /// Keys exclude each other only when their first ten hex digits
    /// agree: a sweep's keys, which share a four-digit prefix by the
    /// thousand, never hold each other back.
    #[cfg(target_os = "linux")]
    #[test]
    fn keys_sharing_a_short_prefix_lock_apart() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let held = store.lock_key(&key("abcd000001")).unwrap();
        assert!(store.try_lock_key(&key("abcd000002")).unwrap().is_some());
        assert!(store.try_lock_key(&key("abcd0000011")).unwrap().is_none());
        drop(held);
    }

    #[test]
    fn released_path_locks_are_unlocked_and_refused_ones_hold_nothing() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let out = root.path().join("out.txt");
        let other = root.path().join("other.txt");
        let write = |p: &Path| vec![(p.to_path_buf(), PathAccess::Write)];
        let read = |p: &Path| vec![(p.to_path_buf(), PathAccess::Read)];
        let writer = store.lock_paths(&write(&out), true).unwrap().unwrap();
        assert!(store.lock_paths(&read(&out), false).unwrap().is_none());
        // Refused on `out` after `other` was taken: `other` is free again.
        let both = vec![
            (other.clone(), PathAccess::Write),
            (out.clone(), PathAccess::Write),
        ];
        assert!(store.lock_paths(&both, false).unwrap().is_none());
        let on_other = store.lock_paths(&write(&other), false).unwrap();
        assert!(on_other.is_some());
        drop((writer, on_other));
        // Two readers share; a writer waits for both.
        let r1 = store.lock_paths(&read(&out), false).unwrap().unwrap();
        let r2 = store.lock_paths(&read(&out), false).unwrap().unwrap();
        assert!(store.lock_paths(&write(&out), false).unwrap().is_none());
        drop((r1, r2));
        assert!(store.lock_paths(&both, false).unwrap().is_some());
    }

    /// Few reads: a range per slot. Many: in each lock file, the reads
    /// between two writes make one shared range; every slot is covered
    /// with at least the access asked, writes stay one slot, and the
    /// ranges are ascending, disjoint and never cross a file.
    #[test]
    fn many_reads_lock_ranges_of_slots_split_around_writes() {
        use PathAccess::{Read, Write};
        let file = |n: u64| n << PATH_SLOT_OFFSET_BITS;
        let few = [(3, Read), (9, Write), (file(1) + 2, Read)];
        assert_eq!(
            slot_ranges(&few),
            vec![(3, 1, Read), (9, 1, Write), (file(1) + 2, 1, Read)]
        );
        let mut many: Vec<(u64, PathAccess)> = (0..600).map(|i| (i * 7, Read)).collect();
        many.push((file(1) + 5, Read));
        many.push((file(1) + 9, Read));
        many[300].1 = Write;
        let ranges = slot_ranges(&many);
        assert_eq!(
            ranges,
            vec![
                (0, 299 * 7 + 1, Read),
                (300 * 7, 1, Write),
                (301 * 7, (599 - 301) * 7 + 1, Read),
                (file(1) + 5, 5, Read),
            ]
        );
        for pair in ranges.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{pair:?}");
        }
        for &(slot, access) in &many {
            let covering = ranges
                .iter()
                .find(|(start, len, _)| (*start..start + len).contains(&slot))
                .unwrap();
            assert!(covering.2 >= access, "{slot} {covering:?}");
        }
    }

    /// A command reading thousands of upstream outputs holds their read
    /// locks over several lock files (one list of locks per file in the
    /// kernel); each still excludes a writer, a refusal in a later file
    /// releases what earlier files took, and a release frees all.
    #[cfg(target_os = "linux")]
    #[test]
    fn many_path_locks_spread_over_files_and_each_still_excludes() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let paths: Vec<PathBuf> = (0..2000)
            .map(|i| root.path().join(format!("up/{i}/out.txt")))
            .collect();
        let reads: Vec<_> = paths
            .iter()
            .map(|p| (p.clone(), PathAccess::Read))
            .collect();
        let readers = store.lock_paths(&reads, false).unwrap().unwrap();
        let files_used = readers.files.len();
        let lock_files = std::fs::read_dir(store.locks_dir())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("paths-")
            })
            .count();
        assert!(files_used > PATH_LOCK_FILES / 2, "{files_used} files");
        assert_eq!(lock_files, files_used);
        for path in [&paths[0], &paths[999], &paths[1999]] {
            let write = vec![(path.clone(), PathAccess::Write)];
            assert!(store.lock_paths(&write, false).unwrap().is_none());
        }
        // A writer of every path but the last: refused at the last file
        // it needs, holding nothing afterwards.
        let mut writes: Vec<_> = paths
            .iter()
            .map(|p| (p.clone(), PathAccess::Write))
            .collect();
        drop(readers);
        let last = store
            .lock_paths(&writes[1999..], false)
            .unwrap()
            .expect("free once the readers are gone");
        writes.truncate(1999);
        writes.push((paths[1999].clone(), PathAccess::Write));
        assert!(store.lock_paths(&writes, false).unwrap().is_none());
        writes.pop();
        let all_but_last = store.lock_paths(&writes, false).unwrap();
        assert!(all_but_last.is_some(), "a refused attempt left locks held");
        drop((last, all_but_last));
        let idle: usize = store
            .scratch
            .idle_path_lock_files
            .iter()
            .map(idle_count)
            .sum();
        assert!(idle >= files_used);
    }
}
