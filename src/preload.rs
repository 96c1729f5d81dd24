//! Files a build would decode, decoded ahead of it: the graph cache, the
//! node trace and the stat cache of the store's last build. The process
//! that forks builds for `admf serve` reads them while it waits, and each
//! build it forks starts with the decoded copies in its memory instead of
//! reading and decoding the files again.
//!
//! A copy stands for the file only while the file is as it was read: the
//! same size, mtime, ctime, inode and device, and not modified within the
//! racy window before it was read (a later write in the same timestamp
//! tick could keep every one of those). Whoever takes a copy compares the
//! file's stat with the copy's first; a file written since, replaced or
//! removed makes the copy void and the taker reads the file as without
//! it. Everything else a loader checks (the header, the invocation, the
//! evidence each file holds) it still checks on the copy.

use std::any::Any;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::file_stat::{Stat, is_racy, system_time_ns};

/// One decoded file: the stat it had while read, and what it decoded to.
struct Copy {
    stat: Stat,
    value: Box<dyn Any + Send>,
}

fn table() -> &'static Mutex<HashMap<PathBuf, Copy>> {
    static TABLE: std::sync::OnceLock<Mutex<HashMap<PathBuf, Copy>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(Default::default)
}

fn locked() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Copy>> {
    table().lock().unwrap_or_else(|e| e.into_inner())
}

/// The table's key for `path`: one spelling for the server that reads a
/// file and the build that takes it (which may name its store relatively).
fn key(path: &Path) -> PathBuf {
    std::path::absolute(path)
        .map(|abs| crate::paths::normalize(&abs))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// The bytes of the file at `path` with the stat they were read under,
/// when that stat held from before the read to after it and was not racy.
pub fn read_steady(path: &Path) -> io::Result<Option<(Vec<u8>, Stat)>> {
    read_steady_from(path, 0)
}

/// [`read_steady`] of the bytes from `offset` on; `None` also when the
/// file is shorter than that.
pub fn read_steady_from(path: &Path, offset: u64) -> io::Result<Option<(Vec<u8>, Stat)>> {
    use std::io::{Seek, SeekFrom};
    let mut file = fs::File::open(path)?;
    let read_at = system_time_ns(std::time::SystemTime::now());
    let before = Stat::of(&file.metadata()?);
    if before.size < offset {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity((before.size - offset) as usize);
    file.read_to_end(&mut bytes)?;
    let after = Stat::of(&file.metadata()?);
    Ok((before == after && !is_racy(&before, read_at)).then_some((bytes, before)))
}

/// Keep `value` as the decoded copy of the file at `path` read with `stat`.
pub fn put<T: Any + Send>(path: &Path, stat: Stat, value: T) {
    locked().insert(
        key(path),
        Copy {
            stat,
            value: Box::new(value),
        },
    );
}

/// The stat the copy of `path` was read with, if there is one.
pub fn stat_of(path: &Path) -> Option<Stat> {
    locked().get(&key(path)).map(|copy| copy.stat)
}

/// Take the decoded copy of the file at `path` when the file is still as
/// it was read; `None` (and the copy dropped) otherwise. A copy is taken
/// once: the process that forked this one keeps its own.
pub fn take<T: Any>(path: &Path) -> Option<T> {
    let copy = locked().remove(&key(path))?;
    let now = Stat::of(&fs::metadata(path).ok()?);
    if now != copy.stat {
        return None;
    }
    let value = copy.value.downcast::<T>().ok().map(|value| *value)?;
    if std::env::var_os("ADMF_TRACE").is_some() {
        crate::errln!("trace: decoded ahead: {}", path.display());
    }
    Some(value)
}

/// `f` of the copy of `path` kept in this process, left in place: what
/// the process that keeps the copies reads of one for another copy.
pub fn peek<T: Any, R>(path: &Path, f: impl FnOnce(&T) -> R) -> Option<R> {
    locked().get(&key(path))?.value.downcast_ref::<T>().map(f)
}

/// Bring the copy of `path` kept in this process up to the file as it is
/// now: `f` gives the stat the file had when it brought the copy up to
/// it, or `None` (and leaves the copy as it was) when it cannot. False
/// when there is no such copy or `f` gave `None`.
pub fn update<T: Any>(path: &Path, f: impl FnOnce(&mut T) -> Option<Stat>) -> bool {
    let mut table = locked();
    let Some(copy) = table.get_mut(&key(path)) else {
        return false;
    };
    let Some(now) = copy.value.downcast_mut::<T>().and_then(f) else {
        return false;
    };
    copy.stat = now;
    true
}

/// Drop every copy but those of `paths`.
pub fn keep_only(paths: &[PathBuf]) {
    let keep: Vec<PathBuf> = paths.iter().map(|p| key(p)).collect();
    locked().retain(|path, _| keep.contains(path));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn old_file(path: &Path, text: &str) {
        fs::write(path, text).unwrap();
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }

    #[test]
    fn a_copy_is_taken_once_while_its_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("graph");
        old_file(&path, "one");
        let (bytes, stat) = read_steady(&path).unwrap().expect("an old file is steady");
        assert_eq!(bytes, b"one");
        put(&path, stat, String::from("decoded"));
        assert_eq!(stat_of(&path), Some(stat));
        assert_eq!(take::<String>(&path).as_deref(), Some("decoded"));
        assert_eq!(take::<String>(&path), None, "a copy is taken once");
    }

    #[test]
    fn a_file_written_since_voids_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes");
        old_file(&path, "one");
        let (_, stat) = read_steady(&path).unwrap().unwrap();
        put(&path, stat, 1u32);
        // Same length, new content: the mtime and ctime tell.
        fs::write(&path, "two").unwrap();
        assert_eq!(take::<u32>(&path), None);
        // A copy of another type than asked for is no copy either.
        old_file(&path, "one");
        let (_, stat) = read_steady(&path).unwrap().unwrap();
        put(&path, stat, 1u32);
        assert_eq!(take::<String>(&path), None);
    }

    #[test]
    fn a_file_modified_just_before_it_was_read_is_not_steady() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statcache");
        fs::write(&path, "fresh").unwrap();
        assert_eq!(read_steady(&path).unwrap(), None);
    }
}
