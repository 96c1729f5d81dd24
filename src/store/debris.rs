//! Finding leftovers of dead writers: temp dirs and blob files under
//! `tmp/`, and orphan lock files.
//!
//! A temp dir `tmp/X` is debris only when a flock on it can be taken: a
//! live writer holds one on the directory itself from just after creating
//! it until after it has removed or renamed it (and starts over with a
//! new dir if a sweeper deleted its dir before it got the lock). Lock
//! files `tmp/X.lock` are what older versions locked instead; those whose
//! dir is gone are removed too.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use super::Store;
use super::fsutil::{remove_file_if_exists, remove_tree};
use super::lock::{HeldLock, LockKind, lock_file};

impl Store {
    /// Lists (and with `remove`, deletes) everything under `tmp/` not held
    /// by a live writer, and orphan lock files. Returns the paths found.
    pub(crate) fn sweep_debris(&self, remove: bool) -> io::Result<Vec<PathBuf>> {
        let mut found = Vec::new();
        let tmp = self.tmp_dir();
        let mut lock_files = Vec::new();
        for item in read_dir_sorted(&tmp)? {
            let name = item.to_string_lossy().into_owned();
            if name.ends_with(".lock") {
                lock_files.push(tmp.join(&name));
                continue;
            }
            let path = tmp.join(&name);
            if sweep_unlocked(&path, remove)? {
                found.push(path);
            }
        }
        if remove {
            // Lock files whose dir is gone (the writer died between the two
            // removals) and per-key locks of killed processes.
            let locks = self.locks_dir();
            // The record-lock files (`*.ofd`) are held by OFD locks, which
            // a flock does not see: they stay.
            let key_locks = read_dir_sorted(&locks)?
                .into_iter()
                .filter(|n| !n.as_encoded_bytes().ends_with(b".ofd"))
                .map(|n| locks.join(n));
            for lock_path in lock_files.into_iter().chain(key_locks) {
                if let Some(file) = lock_file(&lock_path, LockKind::Exclusive, false)? {
                    drop(HeldLock::new(lock_path, file));
                }
            }
        }
        Ok(found)
    }
}

/// Whether `path` is debris (no live writer holds a flock on it);
/// removes it when asked, while holding that flock.
fn sweep_unlocked(path: &Path, remove: bool) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(false),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    if remove {
        if path.is_dir() {
            remove_tree(path)?;
        } else {
            remove_file_if_exists(path)?;
        }
    }
    Ok(true)
}

fn read_dir_sorted(dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    names.sort();
    Ok(names)
}
