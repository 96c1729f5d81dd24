//! What one build read from the file system, with the stat each file or
//! directory had when it was read: workflow files by the loader, input and
//! store files by the stat cache, store manifests by the lookup that
//! parses them, directories by glob expansion.
//!
//! It is the evidence behind the up-to-date record ([`crate::uptodate`]),
//! the graph cache and the node trace: a build whose every observation
//! still holds would read the same bytes and so do the same thing. Each
//! stat is taken *before* the read (or on the open handle), so an edit or
//! a rename-over after it always shows as a different stat later. A file
//! seen changing while it was read marks the observations unstable, and
//! no record is written from them.
//!
//! A build makes one [`Reads`] and hands it to everything that reads for
//! it (the loader, the compiler's checks, the stat cache, the store
//! lookup, the decide and dispatch steps); the readers take it as a
//! parameter, so no read for a build can bypass it. Two builds in one
//! process (`admf watch`, tests) each have their own and never see each
//! other's reads.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::file_stat::Stat;

/// Stats by path, keyed by the path's bytes: a build looks paths up here
/// per node, and `Path`'s own hash and comparison go component by
/// component. Paths are compared as written, so one written another way
/// is not found and is stat'ed instead.
pub type StatsByPath = rustc_hash::FxHashMap<OsString, Stat>;

/// A file's stat that `admf serve` vouched for: unchanged since its
/// record listed it, and a regular file (the server leaves out what it
/// found to be anything else). `plain`: listed as a plain file (the
/// stat of the path itself); else the stat through a final symlink.
/// Either is the stat through a symlink, since a plain file is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vouched {
    pub stat: Stat,
    pub plain: bool,
}

/// [`Vouched`] stats by path, keyed as [`StatsByPath`].
pub type VouchedStats = rustc_hash::FxHashMap<OsString, Vouched>;

/// Whoever vouched for a build's [`VouchedStats`] (`admf serve`, which
/// watches those files), asked again later in the build.
pub trait Watcher: Send + Sync {
    /// The vouched files an event touched since they were vouched for,
    /// by their paths as vouched: every other one still has its vouched
    /// stat now. `None` when it cannot say any more.
    fn touched(&self) -> Option<Vec<PathBuf>>;
}

/// The files `admf serve` vouched for at the start of a build that no
/// event touched since, as found when asked ([`Reads::still_vouched`]).
pub struct StillVouched {
    reads: Reads,
    touched: rustc_hash::FxHashSet<OsString>,
}

impl StillVouched {
    /// The stat `path` has now when it was vouched for as a plain file
    /// and nothing touched it since; `None` when that is not known (the
    /// caller stats it).
    pub fn plain_stat(&self, path: &Path) -> Option<Stat> {
        if self.touched.contains(path.as_os_str()) {
            return None;
        }
        match self.reads.vouched(path) {
            Some(Vouched { stat, plain: true }) => Some(stat),
            _ => None,
        }
    }
}

/// The reads of one build. Cloning gives another handle on the same list.
#[derive(Clone, Default)]
pub struct Reads {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: Mutex<Vec<(PathBuf, Stat)>>,
    /// Directories noted through [`Reads::note_dir_once`], with the stat
    /// each had the first time (`None`: it could not be stat'ed).
    dirs_once: Mutex<Vec<(PathBuf, Option<Stat>)>>,
    unstable: AtomicBool,
    /// Inputs stat'ed once already by this build, before any decision.
    input_stats: OnceLock<StatsByPath>,
    /// Files `admf serve` vouched for at the start of this build.
    vouched_stats: OnceLock<VouchedStats>,
    /// Who vouched for them, to ask again ([`Reads::still_vouched`]).
    watcher: OnceLock<Arc<dyn Watcher>>,
    /// Directory handles the stats of this build are taken through.
    dirs: crate::dir_stat::DirStats,
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads")
            .field("seen", &self.lock().len())
            .field("unstable", &self.unstable())
            .finish()
    }
}

impl Reads {
    /// A new, empty list of reads.
    pub fn new() -> Reads {
        Reads::default()
    }

    /// `path` (absolute) was read while it had `stat`.
    pub fn note(&self, path: &Path, stat: Stat) {
        self.lock().push((path.to_path_buf(), stat));
    }

    /// The file's bytes, its stat noted (taken on the open handle, before
    /// reading).
    pub fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let stat = Stat::of(&file.metadata()?);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        self.note(&absolute(path), stat);
        Ok(bytes)
    }

    /// The directory at `path` is about to be listed.
    pub fn note_dir(&self, path: &Path) {
        match std::fs::metadata(path) {
            Ok(meta) => self.note(&absolute(path), Stat::of(&meta)),
            Err(_) => self.note_unstable(),
        }
    }

    /// [`Reads::note_dir`] of a directory this build notes again and
    /// again (the store's `index/`, at every lookup): stat'ed the first
    /// time only, each later note repeating that stat. Nothing the build
    /// does changes it (gc and repair, which do, wait until no build
    /// runs); a change from outside after the first stat shows to the
    /// next build as a different stat, as a change after any read does.
    pub fn note_dir_once(&self, path: &Path) {
        let mut once = self
            .inner
            .dirs_once
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let stat = match once.iter().find(|(dir, _)| dir == path) {
            Some((_, stat)) => *stat,
            None => {
                let stat = std::fs::metadata(path).ok().map(|meta| Stat::of(&meta));
                once.push((path.to_path_buf(), stat));
                stat
            }
        };
        drop(once);
        match stat {
            Some(stat) => self.note(&absolute(path), stat),
            None => self.note_unstable(),
        }
    }

    /// A file changed while it was being read: no record may rest on
    /// these reads.
    pub fn note_unstable(&self) {
        self.inner.unstable.store(true, Ordering::Relaxed);
    }

    /// The build wrote a file it would otherwise vouch for (a restored
    /// workspace output): it was no no-op, and no record may rest on it.
    pub fn note_written(&self) {
        self.note_unstable();
    }

    /// Everything observed so far, as it was noted (unsorted, with
    /// repeats), without forgetting it.
    pub fn snapshot(&self) -> Vec<(PathBuf, Stat)> {
        self.lock().clone()
    }

    /// Keep the stats this build took of node inputs before deciding
    /// anything (the graph cache's check that each still exists), so a
    /// later check in the same build compares against them instead of
    /// taking each again. Whatever that check concludes rests on the stat
    /// it compared, and that is the one noted: a change after it shows as
    /// a different stat to the next build. Only the first call counts.
    pub fn keep_input_stats(&self, stats: StatsByPath) {
        let _ = self.inner.input_stats.set(stats);
    }

    /// Keep the stats `admf serve` vouched for at the start of this build:
    /// regular files an up-to-date record lists, unchanged since (the
    /// server saw no event on them, [`crate::uptodate::ListedStats`]). The
    /// graph cache's check that each input is still a file
    /// ([`Reads::vouched_file_stat`]) and the node trace's checks of
    /// inputs and outputs ([`Reads::input_stat`], [`Reads::plain_stat`])
    /// take them instead of a stat each; a change after the server's
    /// answer shows to the next build as a different stat, as for
    /// [`Reads::keep_input_stats`]. Only the first call counts.
    /// `watcher`: who vouched, asked again by [`Reads::still_vouched`].
    pub fn keep_vouched_stats(&self, stats: VouchedStats, watcher: Arc<dyn Watcher>) {
        if self.inner.vouched_stats.set(stats).is_ok() {
            let _ = self.inner.watcher.set(watcher);
        }
    }

    /// The vouched files ([`Reads::keep_vouched_stats`]) no event touched
    /// since, asked of their watcher now: each still has its vouched stat,
    /// so a check that must see the file as it is *now* (under locks just
    /// taken, after a command) can take that stat instead of one of its
    /// own. For checks of many files: the question costs about what a few
    /// dozen stats do. `None` when nothing was vouched for or the watcher
    /// cannot say.
    pub fn still_vouched(&self) -> Option<StillVouched> {
        let touched = self.inner.watcher.get()?.touched()?;
        Some(StillVouched {
            reads: self.clone(),
            touched: touched.into_iter().map(PathBuf::into_os_string).collect(),
        })
    }

    fn vouched(&self, path: &Path) -> Option<Vouched> {
        self.inner
            .vouched_stats
            .get()
            .and_then(|m| m.get(path.as_os_str()))
            .copied()
    }

    /// The stat through a final symlink of `path` when `admf serve`
    /// vouched for it as a regular file ([`Reads::keep_vouched_stats`]):
    /// what a stat taken now would find.
    pub fn vouched_file_stat(&self, path: &Path) -> Option<Stat> {
        self.vouched(path).map(|v| v.stat)
    }

    /// The stat of `path` when it is a plain file (a node's output, a
    /// stored blob): the one `admf serve` vouched for as such
    /// ([`Reads::keep_vouched_stats`]), or one taken now.
    pub fn plain_stat(&self, path: &Path) -> Option<Stat> {
        match self.vouched(path) {
            Some(Vouched { stat, plain: true }) => Some(stat),
            _ => self.plain_file_stat(path),
        }
    }

    /// The stat of input `path`, following symlinks: the one this build
    /// already took ([`Reads::keep_input_stats`]) or `admf serve` vouched
    /// for ([`Reads::keep_vouched_stats`]), or one taken now.
    pub fn input_stat(&self, path: &Path) -> Option<Stat> {
        if let Some(stat) = self
            .inner
            .input_stats
            .get()
            .and_then(|m| m.get(path.as_os_str()))
        {
            return Some(*stat);
        }
        if let Some(stat) = self.vouched_file_stat(path) {
            return Some(stat);
        }
        self.inner.dirs.stat(path, true).map(|(stat, _)| stat)
    }

    /// The stat of `path` when it is a plain file (not a symlink to one),
    /// taken now through this build's directory handles
    /// ([`crate::dir_stat`]).
    pub fn plain_file_stat(&self, path: &Path) -> Option<Stat> {
        match self.inner.dirs.stat(path, false)? {
            (stat, crate::dir_stat::Kind::File) => Some(stat),
            _ => None,
        }
    }

    /// Closes the directory handles stats are taken through
    /// ([`crate::dir_stat::DirStats::forget`]): called whenever an action
    /// ran, since its command may have replaced a directory.
    pub fn forget_directories(&self) {
        self.inner.dirs.forget();
    }

    /// Whether something changed while it was being read.
    pub fn unstable(&self) -> bool {
        self.inner.unstable.load(Ordering::Relaxed)
    }

    /// Everything observed, sorted and without repeats, or `None` when
    /// something changed while it was read. The list is emptied.
    pub fn take(&self) -> Option<Vec<(PathBuf, Stat)>> {
        self.take_unsorted().and_then(Observed::sorted)
    }

    /// Everything observed as noted, or `None` when a write voided it;
    /// the list is emptied. Taking is cheap where sorting a build's
    /// tens of thousands of reads is not: the sort can wait for a
    /// thread of its own ([`Observed::sorted`]).
    pub fn take_unsorted(&self) -> Option<Observed> {
        let seen = std::mem::take(&mut *self.lock());
        (!self.unstable()).then_some(Observed(seen))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(PathBuf, Stat)>> {
        self.inner.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a build read, as noted, not yet sorted ([`Reads::take_unsorted`]).
pub struct Observed(Vec<(PathBuf, Stat)>);

impl Observed {
    /// Add files read as noted, each with its stat.
    pub fn extend<'a>(&mut self, files: impl Iterator<Item = &'a (PathBuf, Stat)>) {
        self.0.extend(files.cloned());
    }

    /// The reads sorted and without repeats, or `None` when one path was
    /// seen with two different stats (it changed during the build).
    pub fn sorted(self) -> Option<Vec<(PathBuf, Stat)>> {
        let Observed(mut seen) = self;
        // By bytes: `Path` compares component by component, much slower.
        seen.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
        seen.dedup_by(|a, b| a.0.as_os_str() == b.0.as_os_str() && a.1 == b.1);
        if seen
            .windows(2)
            .any(|w| w[0].0.as_os_str() == w[1].0.as_os_str())
        {
            return None;
        }
        Some(seen)
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_noted_once_keeps_its_first_stat_for_every_note() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("index");
        std::fs::create_dir(&dir).unwrap();
        let reads = Reads::new();
        reads.note_dir_once(&dir);
        let first = Stat::of(&std::fs::metadata(&dir).unwrap());
        // Changed after the first note: later notes still say what the
        // build first saw, so the next build finds a different stat.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.join("generation"), "1").unwrap();
        let now = Stat::of(&std::fs::metadata(&dir).unwrap());
        assert_ne!(now, first);
        reads.note_dir_once(&dir);
        let noted: Vec<Stat> = reads.snapshot().into_iter().map(|(_, s)| s).collect();
        assert_eq!(noted, [first, first]);
        assert!(!reads.unstable());
        // One that cannot be stat'ed makes the reads unstable, every time.
        let gone = Reads::new();
        gone.note_dir_once(&root.path().join("missing"));
        assert!(gone.unstable());
    }

    fn stat(size: u64) -> Stat {
        Stat {
            size,
            mtime_ns: 1,
            inode: 2,
            device: 3,
            ctime_ns: 1,
        }
    }

    #[test]
    fn two_handles_do_not_share_reads() {
        let a = Reads::new();
        let b = Reads::new();
        a.note(Path::new("/a"), stat(1));
        b.note_unstable();
        assert_eq!(a.take(), Some(vec![(PathBuf::from("/a"), stat(1))]));
        assert!(!a.unstable());
        assert!(b.snapshot().is_empty());
        assert_eq!(b.take(), None);
    }

    #[test]
    fn clones_share_one_list() {
        let a = Reads::new();
        let b = a.clone();
        b.note(Path::new("/x"), stat(1));
        assert_eq!(a.snapshot().len(), 1);
        b.note_written();
        assert!(a.unstable());
    }

    #[test]
    fn the_same_stat_twice_is_one_read() {
        let reads = Reads::new();
        reads.note(Path::new("/b"), stat(5));
        reads.note(Path::new("/a"), stat(4));
        reads.note(Path::new("/b"), stat(5));
        assert_eq!(
            reads.take(),
            Some(vec![
                (PathBuf::from("/a"), stat(4)),
                (PathBuf::from("/b"), stat(5))
            ])
        );
    }

    #[test]
    fn one_path_with_two_stats_is_unstable() {
        let reads = Reads::new();
        reads.note(Path::new("/b"), stat(5));
        reads.note(Path::new("/a"), stat(4));
        reads.note(Path::new("/b"), stat(6));
        assert_eq!(reads.take(), None);
    }

    #[test]
    fn a_write_voids_the_record() {
        let reads = Reads::new();
        reads.note(Path::new("/a"), stat(4));
        reads.note_written();
        assert_eq!(reads.take(), None);
    }

    #[test]
    fn read_notes_the_stat_of_the_open_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "abc").unwrap();
        let reads = Reads::new();
        assert_eq!(reads.read(&file).unwrap(), b"abc");
        reads.note_dir(dir.path());
        let seen = reads.take().unwrap();
        let now = Stat::of(&std::fs::metadata(&file).unwrap());
        assert!(seen.contains(&(file.clone(), now)), "{seen:?}");
        assert_eq!(seen.len(), 2);
    }

    #[test]
    fn a_missing_directory_is_unstable() {
        let dir = tempfile::tempdir().unwrap();
        let reads = Reads::new();
        reads.note_dir(&dir.path().join("gone"));
        assert!(reads.unstable());
    }
}
