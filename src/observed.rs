//! What this process read from the file system, with the stat each file
//! or directory had when it was read: workflow files by the loader, input
//! and store files by the stat cache, store manifests by the lookup that
//! parses them, directories by glob expansion.
//!
//! It is the evidence behind the up-to-date record ([`crate::uptodate`]):
//! a build whose every observation still holds would read the same bytes
//! and so do the same thing. Each stat is taken *before* the read (or on
//! the open handle), so an edit or a rename-over after it always shows as
//! a different stat later. A file seen changing while it was read marks
//! the observations unstable, and no record is written from them.
//!
//! The list is process-wide because the readers (phase input expansion,
//! the YAML loader, the stat cache) have no common context object; a
//! command that wants a record calls [`reset`] before it loads anything.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::file_stat::Stat;

static SEEN: Mutex<Vec<(PathBuf, Stat)>> = Mutex::new(Vec::new());
static UNSTABLE: AtomicBool = AtomicBool::new(false);

/// `path` (absolute) was read while it had `stat`.
pub fn note(path: &Path, stat: Stat) {
    lock().push((path.to_path_buf(), stat));
}

/// The file's bytes, its stat noted (taken on the open handle, before
/// reading).
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let stat = Stat::of(&file.metadata()?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    note(&absolute(path), stat);
    Ok(bytes)
}

/// The directory at `path` is about to be listed.
pub fn note_dir(path: &Path) {
    match std::fs::metadata(path) {
        Ok(meta) => note(&absolute(path), Stat::of(&meta)),
        Err(_) => note_unstable(),
    }
}

/// A file changed while it was being read: no record may rest on this run.
pub fn note_unstable() {
    UNSTABLE.store(true, Ordering::Relaxed);
}

/// The build wrote a file it would otherwise vouch for (a restored
/// workspace output): it was no no-op, and no record may rest on it.
pub fn note_written() {
    note_unstable();
}

/// Everything observed so far, as it was noted (unsorted, with repeats),
/// without forgetting it.
pub fn snapshot() -> Vec<(PathBuf, Stat)> {
    lock().clone()
}

/// Whether something changed while it was being read since [`reset`].
pub fn unstable() -> bool {
    UNSTABLE.load(Ordering::Relaxed)
}

/// Forget everything observed so far.
pub fn reset() {
    lock().clear();
    UNSTABLE.store(false, Ordering::Relaxed);
}

/// Everything observed since [`reset`], sorted and without repeats, or
/// `None` when something changed while it was read.
pub fn take() -> Option<Vec<(PathBuf, Stat)>> {
    let mut seen = std::mem::take(&mut *lock());
    if UNSTABLE.load(Ordering::Relaxed) {
        return None;
    }
    // By bytes: `Path` compares component by component, much slower.
    seen.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    seen.dedup_by(|a, b| a.0.as_os_str() == b.0.as_os_str() && a.1 == b.1);
    // One path seen with two different stats changed during the run.
    if seen
        .windows(2)
        .any(|w| w[0].0.as_os_str() == w[1].0.as_os_str())
    {
        return None;
    }
    Some(seen)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(PathBuf, Stat)>> {
    SEEN.lock().unwrap_or_else(|e| e.into_inner())
}
