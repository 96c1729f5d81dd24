//! What `admf serve` knows of each up-to-date record it was asked about:
//! the paths whose change could void it, the directories watched for
//! them (inotify), what each listed entry was when last checked, and
//! which entries an event touched since.
//!
//! # Why an answer can be trusted
//!
//! The kernel queues an inotify event inside the system call that makes
//! the change, before that call returns. A build asks only after every
//! change it could depend on has returned, so reading the queue dry when
//! the question arrives sees every such change (no sync cookie is needed,
//! unlike watchers whose events arrive asynchronously). An entry is known
//! to hold when:
//!
//! - its directories were watched *before* it was stated and found as
//!   recorded (by the rule of [`crate::uptodate::check`]), so a change
//!   after that is an event and a change before it fails the check;
//! - no event since touched it (by any of its names), a directory on the
//!   way to it (a renamed or swapped parent), or, for a listed directory,
//!   a name inside it (a new or removed entry changes its stat); an entry
//!   an event touched is stated again when asked, by the same rule;
//! - the queue never overflowed and no watch was dropped (either makes
//!   every entry unknown).
//!
//! A record is vouched for when every entry it lists holds. A record
//! written anew (a build that ran something) is checked as soon as it
//! appears: only its entries that the record before it listed alike (same
//! stat, kind and digest) and no event touched are taken as known; the
//! rest are stated.
//!
//! What inotify cannot see, and the stat check could: writes through a
//! shared memory map, and changes made by another machine on a network
//! file system. The first is rare for inputs; the second is excluded: a
//! directory on a file system that is not known to be local is not
//! watched, and its records are never vouched for (the build then stats
//! them itself). A file with other hard links is watched itself, since a
//! write through another name reaches no watched directory.

// Path-keyed maps hashed with FxHash: a record lists tens of thousands of
// paths, hashed on every check, and SipHash's resistance to chosen keys
// buys nothing for paths on the user's own disk.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rayon::prelude::*;

use crate::file_stat::Stat;
use crate::uptodate::Listed;

/// How long after an event voided a record it is checked again without a
/// question: long enough for a build that found a real change to have
/// deleted the record (which it does before running anything), so that
/// only records an event left unchanged are checked.
const RECHECK_AFTER: Duration = Duration::from_millis(500);

/// The events that can change a watched path's stat or content: not
/// opens, reads or closes without a write.
fn mask() -> WatchMask {
    WatchMask::ATTRIB
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// The paths whose change voids one record, and what to watch for them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Relevance {
    /// The listed files (and the record itself), by every name found for
    /// them (as listed, and resolved when a symlink is on the way).
    files: HashSet<PathBuf>,
    /// Every directory above a listed file, up to the root.
    ancestors: HashSet<PathBuf>,
    /// The listed entries that are directories: an entry appearing in one
    /// or leaving it changes its stat.
    listed_dirs: HashSet<PathBuf>,
    /// What to watch: directories, and files with other hard links.
    pub watch: Vec<PathBuf>,
}

impl Relevance {
    /// The relevance of `record`, from what was found of each entry it
    /// lists and of itself.
    fn of(entries: &[&Entry]) -> Relevance {
        let mut r = Relevance::default();
        let mut watch: HashSet<PathBuf> = HashSet::default();
        let mut parents: HashSet<PathBuf> = HashSet::default();
        for entry in entries {
            for name in &entry.names {
                r.files.insert(name.clone());
                if let Some(parent) = name.parent() {
                    parents.insert(parent.to_path_buf());
                }
            }
            match entry.kind {
                EntryKind::ListedDir => {
                    for name in &entry.names {
                        r.listed_dirs.insert(name.clone());
                        watch.insert(name.clone());
                    }
                }
                EntryKind::Linked => watch.extend(entry.names.iter().cloned()),
                EntryKind::Single => {}
            }
        }
        // A directory on the way may itself be reached through a symlink:
        // the resolved directories and theirs are watched too.
        let mut dirs: HashSet<PathBuf> = HashSet::default();
        for parent in &parents {
            dirs.insert(parent.clone());
            if let Ok(resolved) = fs::canonicalize(parent) {
                dirs.insert(resolved);
            }
        }
        for dir in &dirs {
            for ancestor in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
                if r.ancestors.insert(ancestor.to_path_buf()) {
                    watch.insert(ancestor.to_path_buf());
                }
            }
        }
        r.watch = watch.into_iter().collect();
        // Shallow first, so that a missing deep directory fails late.
        r.watch
            .sort_by_key(|p| (p.components().count(), p.as_os_str().to_owned()));
        r
    }

    /// What an event on `path` tells of the record; `listing`: the event
    /// adds, removes or renames `path` in its directory.
    fn touch(&self, path: &Path, listing: bool) -> Touch {
        if self.files.contains(path) {
            Touch::Entry(path.to_path_buf())
        } else if self.ancestors.contains(path) {
            Touch::Whole
        } else if listing && let Some(dir) = path.parent().filter(|p| self.listed_dirs.contains(*p))
        {
            // The listed directory's own stat changed.
            Touch::Entry(dir.to_path_buf())
        } else {
            Touch::Nothing
        }
    }
}

/// What one event tells of a record.
#[derive(Debug, PartialEq, Eq)]
enum Touch {
    Nothing,
    /// A listed entry (or the record itself), by one of its names, may
    /// have changed: stating it again tells.
    Entry(PathBuf),
    /// A directory on the way changed: any entry may now be another file.
    Whole,
}

/// One listed entry as found on disk.
#[derive(Clone)]
struct Entry {
    /// Its path, and the resolved one when it is a symlink.
    names: Vec<PathBuf>,
    kind: EntryKind,
    /// Whether it is a regular file (following a symlink).
    file: bool,
}

#[derive(Clone, Copy)]
enum EntryKind {
    /// A directory listed as such: its own watch sees entries come and go.
    ListedDir,
    /// A file with other hard links: its own watch sees writes through them.
    Linked,
    /// Seen through its directory's watch alone (or gone: the check fails).
    Single,
}

impl Entry {
    fn of(path: &Path, plain: bool) -> Entry {
        let meta = fs::symlink_metadata(path).ok();
        let is_link = meta.as_ref().is_some_and(|m| m.file_type().is_symlink());
        let mut names = vec![path.to_path_buf()];
        if is_link && let Ok(target) = fs::canonicalize(path) {
            names.push(target);
        }
        let target_meta = if is_link {
            fs::metadata(path).ok()
        } else {
            meta
        };
        let kind = match &target_meta {
            Some(meta) if !plain && meta.is_dir() => EntryKind::ListedDir,
            Some(meta) if nlink(meta) > 1 => EntryKind::Linked,
            _ => EntryKind::Single,
        };
        let file = target_meta.as_ref().is_some_and(|m| m.is_file());
        Entry { names, kind, file }
    }
}

#[cfg(unix)]
fn nlink(meta: &fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::nlink(meta)
}

/// Whether `dir` lies on a file system whose changes all pass through
/// this machine's kernel (so inotify sees them): the common local disk
/// and memory file systems. Network and FUSE file systems are not.
fn local_file_system(dir: &Path) -> bool {
    const LOCAL: &[u64] = &[
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0x794C_7630, // overlayfs
        0x2FC1_2FC1, // zfs
        0xF2F5_2010, // f2fs
        0x0000_9660, // iso9660 (read-only)
    ];
    rustix::fs::statfs(dir).is_ok_and(|s| LOCAL.contains(&(s.f_type as u64)))
}

/// One record being watched.
struct Tracked {
    invocation: String,
    /// The record file's stat when its files were checked: a rewritten
    /// record is another record.
    record_stat: Stat,
    relevance: Relevance,
    /// Each listed file as it was checked, with what was found of it.
    checked: HashMap<PathBuf, (Listed, Entry)>,
    /// The listed entries (by any of their names) an event touched since
    /// they were checked.
    touched: HashSet<PathBuf>,
    /// The listed paths of the entries reached through a symlink, by the
    /// resolved name: an event names a file by either
    /// ([`Tracked::touched_entries`]).
    resolved: HashMap<PathBuf, Vec<PathBuf>>,
    /// The listed paths of the entries that were no regular file when
    /// checked: never vouched for as files ([`Watched::uncertain`]).
    not_files: Vec<PathBuf>,
    /// An event that could have changed any entry (a directory on the
    /// way renamed, the queue overflowed): nothing is known any more.
    whole: bool,
}

impl Tracked {
    fn vouched(&self) -> bool {
        !self.whole && self.touched.is_empty()
    }

    /// The checked entries an event touched by one of their names, each
    /// once, in path order: found from the touched names, so a question
    /// after an edit costs what was touched, not what the record lists.
    fn touched_entries(&self) -> Vec<&Listed> {
        let mut found: Vec<&Listed> = Vec::new();
        for name in &self.touched {
            found.extend(self.checked.get(name).map(|(listed, _)| listed));
            for path in self.resolved.get(name).into_iter().flatten() {
                found.extend(self.checked.get(path).map(|(listed, _)| listed));
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        found.dedup_by(|a, b| a.path == b.path);
        found
    }

    /// Whether the checked `listed` entry is still known to hold:
    /// untouched since, and recorded alike (stat, kind, digest).
    fn still_holds(&self, listed: &Listed) -> Option<&Entry> {
        if self.whole {
            return None;
        }
        let (checked, entry) = self.checked.get(&listed.path)?;
        (checked == listed && !entry.names.iter().any(|n| self.touched.contains(n)))
            .then_some(entry)
    }
}

/// The inotify instance and the records it watches for.
pub struct Watched {
    inotify: Inotify,
    /// Each watch's paths: one directory reached by several names (a
    /// symlink on the way) has one descriptor.
    paths: HashMap<WatchDescriptor, Vec<PathBuf>>,
    watched: HashSet<PathBuf>,
    records: HashMap<PathBuf, Tracked>,
    /// Records to check again without a question, each with when
    /// ([`Watched::check_due`]): at once when written anew, a little later
    /// when an event made every entry unknown.
    due: HashMap<PathBuf, Instant>,
    buffer: Vec<u8>,
}

impl Watched {
    pub fn new() -> std::io::Result<Watched> {
        Ok(Watched {
            inotify: Inotify::init()?,
            paths: HashMap::default(),
            watched: HashSet::default(),
            records: HashMap::default(),
            due: HashMap::default(),
            buffer: vec![0; 64 * 1024],
        })
    }

    /// Reads every queued event (without waiting) and marks what each
    /// touched ([`Touch`]).
    pub fn drain(&mut self) {
        loop {
            let events = match self.inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // The queue cannot be read: nothing is known any more.
                    void_all(&mut self.records);
                    return;
                }
            };
            let mut any = false;
            for event in events {
                any = true;
                if event.mask.intersects(EventMask::Q_OVERFLOW) {
                    void_all(&mut self.records);
                    continue;
                }
                if event.mask.contains(EventMask::IGNORED) {
                    // The watch is gone (its directory was removed): watched
                    // again at the next check.
                    for path in self.paths.remove(&event.wd).unwrap_or_default() {
                        self.watched.remove(&path);
                    }
                    void_all(&mut self.records);
                    continue;
                }
                let listing = event.mask.intersects(
                    EventMask::CREATE
                        | EventMask::DELETE
                        | EventMask::MOVED_FROM
                        | EventMask::MOVED_TO,
                );
                let written = event
                    .mask
                    .intersects(EventMask::MOVED_TO | EventMask::CLOSE_WRITE);
                let Some(bases) = self.paths.get(&event.wd) else {
                    continue;
                };
                for base in bases {
                    let path = match event.name {
                        Some(name) => base.join(name),
                        None => base.clone(),
                    };
                    if written && self.records.contains_key(&path) {
                        self.due.insert(path.clone(), Instant::now());
                    }
                    for (record, tracked) in self.records.iter_mut() {
                        if *record == path || tracked.whole {
                            // The record's own stat is compared when asked.
                            continue;
                        }
                        match tracked.relevance.touch(&path, listing) {
                            Touch::Nothing => {}
                            Touch::Entry(entry) => {
                                tracked.touched.insert(entry);
                            }
                            Touch::Whole => tracked.whole = true,
                        }
                    }
                }
            }
            if !any {
                return;
            }
        }
    }

    /// Whether the record at `record`, written for `invocation`, still
    /// holds: every file it lists as recorded. Answered from the events
    /// when the record was checked before: yes when nothing touched its
    /// entries since, or when the few entries an event touched still hold
    /// (stated again now); no when one does not; `None` (not known) when
    /// an event could have changed any entry (the build then checks for
    /// itself, and the server checks the record again a little later). A record not
    /// checked yet (new, or written anew) has its paths watched and its
    /// entries checked now, but for those an earlier record listed alike
    /// and no event touched since.
    pub fn holds(&mut self, record: &Path, invocation: &str) -> Option<bool> {
        self.drain();
        let Some(stat) = stat_of(record) else {
            self.records.remove(record);
            return Some(false);
        };
        if let Some(t) = self.records.get_mut(record)
            && t.invocation == invocation
            && t.record_stat == stat
        {
            if t.vouched() {
                return Some(true);
            }
            if !t.whole {
                if crate::uptodate::all_hold(&t.touched_entries()) {
                    t.touched.clear();
                    return Some(true);
                }
                return Some(false);
            }
            // A build that finds a change deletes the record before this
            // comes due; one that finds none leaves it here.
            self.due
                .entry(record.to_path_buf())
                .or_insert_with(|| Instant::now() + RECHECK_AFTER);
            return None;
        }
        Some(self.check_now(record, invocation, stat))
    }

    /// The entries of the record at `record`, written for `invocation`,
    /// that an event touched since they were checked, when every other
    /// entry is known to hold (by the rule of [`Watched::holds`]), and
    /// those that were no regular file, with the record's stat; `None`
    /// when nothing is known of it (not checked yet, checked for another
    /// invocation or as another file, or an event that could have changed
    /// any entry).
    pub fn uncertain(&mut self, record: &Path, invocation: &str) -> Option<super::Uncertain> {
        self.drain();
        let stat = stat_of(record)?;
        let t = self.records.get(record)?;
        if t.whole || t.invocation != invocation || t.record_stat != stat {
            return None;
        }
        Some(super::Uncertain {
            record: stat,
            touched: t
                .touched_entries()
                .into_iter()
                .map(|l| l.path.clone())
                .collect(),
            not_files: t.not_files.clone(),
        })
    }

    /// The entries of the record that was checked at `record` with the
    /// stat `record_stat`, written for `invocation`, that an event touched
    /// since they were checked: every other entry still has its listed
    /// stat. Asked by a build that started from that record, later in the
    /// build (when the record may be gone: the build removes it before it
    /// runs anything). `None` when nothing is known of that record any
    /// more (checked anew since, for another invocation, or an event that
    /// could have changed any entry).
    pub fn touched_since_checked(
        &mut self,
        record: &Path,
        invocation: &str,
        record_stat: Stat,
    ) -> Option<Vec<PathBuf>> {
        self.drain();
        let t = self.records.get(record)?;
        if t.whole || t.invocation != invocation || t.record_stat != record_stat {
            return None;
        }
        Some(
            t.touched_entries()
                .into_iter()
                .map(|l| l.path.clone())
                .collect(),
        )
    }

    /// Checks the records that came due ([`Watched::due`]). The
    /// invocation is the record's own; a build with another one is then
    /// answered no.
    pub fn check_due(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(record, _)| record.clone())
            .collect();
        for record in due {
            self.due.remove(&record);
            let Some(stat) = stat_of(&record) else {
                self.records.remove(&record);
                continue;
            };
            if self
                .records
                .get(&record)
                .is_some_and(|t| t.vouched() && t.record_stat == stat)
            {
                continue;
            }
            let invocation = fs::read_to_string(&record).ok().and_then(|text| {
                let second = text.lines().nth(1)?;
                Some(second.strip_prefix("invocation ")?.to_string())
            });
            if let Some(invocation) = invocation {
                self.check_now(&record, &invocation, stat);
            }
        }
    }

    fn check_now(&mut self, record: &Path, invocation: &str, stat: Stat) -> bool {
        self.due.remove(record);
        let checking = Instant::now();
        let (holds, stated, listed) = self.check(record, invocation, stat);
        if std::env::var_os("ADMF_TRACE").is_some() {
            crate::errln!(
                "trace: checked {} in {:?}: {} ({stated} of {listed} entries stated)",
                record.display(),
                checking.elapsed(),
                if holds { "holds" } else { "does not hold" }
            );
        }
        holds
    }

    /// Watches what `record` rests on, then checks its entries: all of
    /// them, but for those the record's previous check saw listed alike
    /// and no event touched since.
    /// Whether it holds, how many entries were stated, how many listed.
    fn check(&mut self, record: &Path, invocation: &str, stat: Stat) -> (bool, usize, usize) {
        let basis = self.records.remove(record);
        let Ok(text) = fs::read_to_string(record) else {
            return (false, 0, 0);
        };
        let Some(listed) = crate::uptodate::listed(&text, invocation) else {
            return (false, 0, 0);
        };
        let known: Vec<Option<Entry>> = listed
            .iter()
            .map(|l| basis.as_ref()?.still_holds(l).cloned())
            .collect();
        // One `lstat` for each entry not known (every one, the first
        // time: a record lists every input and output), on every core.
        let to_check: Vec<&Listed> = listed
            .iter()
            .zip(&known)
            .filter(|(_, known)| known.is_none())
            .map(|(l, _)| l)
            .collect();
        let entries: Vec<Entry> = listed
            .par_iter()
            .zip(known)
            .map(|(l, known)| known.unwrap_or_else(|| Entry::of(&l.path, l.plain)))
            .collect();
        let own = Entry::of(record, true);
        let relevance = Relevance::of(&entries.iter().chain([&own]).collect::<Vec<_>>());
        for path in &relevance.watch {
            if !self.watch(path) {
                return (false, 0, listed.len());
            }
        }
        // Any event from here on is read at the next question.
        let holds = crate::uptodate::all_hold(&to_check) && stat_of(record) == Some(stat);
        let (stated, count) = (to_check.len(), listed.len());
        drop(to_check);
        let resolved = resolved_names(&listed, &entries);
        let not_files = listed
            .iter()
            .zip(&entries)
            .filter(|(_, e)| !e.file)
            .map(|(l, _)| l.path.clone())
            .collect();
        let checked = listed
            .into_iter()
            .zip(entries)
            .map(|(l, e)| (l.path.clone(), (l, e)))
            .collect();
        self.records.insert(
            record.to_path_buf(),
            Tracked {
                invocation: invocation.to_string(),
                record_stat: stat,
                relevance,
                checked,
                touched: HashSet::default(),
                resolved,
                not_files,
                whole: !holds,
            },
        );
        (holds, stated, count)
    }

    /// Watches `path` unless it is watched; false when it cannot be (it
    /// is gone, the watch limit is reached, or its file system may change
    /// without this kernel knowing).
    fn watch(&mut self, path: &Path) -> bool {
        if self.watched.contains(path) {
            return true;
        }
        let dir = if path.is_dir() {
            path
        } else {
            path.parent().unwrap_or(path)
        };
        if !local_file_system(dir) {
            return false;
        }
        let Ok(wd) = self.inotify.watches().add(path, mask()) else {
            return false;
        };
        self.paths.entry(wd).or_default().push(path.to_path_buf());
        self.watched.insert(path.to_path_buf());
        true
    }
}

/// The listed paths of the entries found through a symlink, by the
/// name it resolved to ([`Tracked::resolved`]).
fn resolved_names(listed: &[Listed], entries: &[Entry]) -> HashMap<PathBuf, Vec<PathBuf>> {
    let mut resolved: HashMap<PathBuf, Vec<PathBuf>> = HashMap::default();
    for (l, e) in listed.iter().zip(entries) {
        for name in e.names.iter().filter(|n| **n != l.path) {
            resolved
                .entry(name.clone())
                .or_default()
                .push(l.path.clone());
        }
    }
    resolved
}

fn void_all(records: &mut HashMap<PathBuf, Tracked>) {
    for t in records.values_mut() {
        t.whole = true;
    }
}

fn stat_of(path: &Path) -> Option<Stat> {
    fs::symlink_metadata(path).ok().map(|m| Stat::of(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relevance of a record at `record` listing `files` as found now.
    fn relevance(record: &Path, files: &[(PathBuf, bool)]) -> Relevance {
        let entries: Vec<Entry> = files
            .iter()
            .map(|(path, plain)| Entry::of(path, *plain))
            .chain([Entry::of(record, true)])
            .collect();
        Relevance::of(&entries.iter().collect::<Vec<_>>())
    }

    fn entry(path: PathBuf) -> Touch {
        Touch::Entry(path)
    }

    /// A record checked with the stat `record_stat` for invocation `i`,
    /// listing `names` under `root` as found now (not as plain files), no
    /// event since.
    fn tracked(root: &Path, names: &[&str], record_stat: Stat) -> Tracked {
        let listed: Vec<Listed> = names
            .iter()
            .map(|name| Listed {
                path: root.join(name),
                stat: stat_of(&root.join(name)).unwrap(),
                plain: false,
                digest: None,
            })
            .collect();
        let entries: Vec<Entry> = listed.iter().map(|l| Entry::of(&l.path, false)).collect();
        let resolved = resolved_names(&listed, &entries);
        Tracked {
            invocation: "i".into(),
            record_stat,
            relevance: Relevance::default(),
            checked: listed
                .into_iter()
                .zip(entries)
                .map(|(l, e)| (l.path.clone(), (l, e)))
                .collect(),
            touched: HashSet::default(),
            resolved,
            not_files: Vec::new(),
            whole: false,
        }
    }

    #[test]
    fn an_event_touches_an_entry_or_the_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("in")).unwrap();
        fs::create_dir_all(root.join("listed")).unwrap();
        fs::write(root.join("in/a.txt"), "a").unwrap();
        let record = root.join("runs/wf/uptodate");
        let r = relevance(
            &record,
            &[(root.join("in/a.txt"), true), (root.join("listed"), false)],
        );
        // A listed file: that entry; a directory on the way, up to the
        // root: any entry.
        assert_eq!(
            r.touch(&root.join("in/a.txt"), false),
            entry(root.join("in/a.txt"))
        );
        assert_eq!(r.touch(&root.join("in"), true), Touch::Whole);
        assert_eq!(r.touch(&root.join("runs"), true), Touch::Whole);
        assert_eq!(r.touch(Path::new("/"), false), Touch::Whole);
        // A neighbour of a listed file touches nothing; an entry coming or
        // going in a listed directory touches that directory, a write
        // inside one of its files does not.
        assert_eq!(r.touch(&root.join("in/b.txt"), true), Touch::Nothing);
        assert_eq!(
            r.touch(&root.join("runs/wf/events.jsonl"), true),
            Touch::Nothing
        );
        assert_eq!(
            r.touch(&root.join("listed/new.csv"), true),
            entry(root.join("listed"))
        );
        assert_eq!(r.touch(&root.join("listed/new.csv"), false), Touch::Nothing);
        // Watched: the listed directory and every directory on the way,
        // not the plain file (one link).
        assert!(r.watch.contains(&root.join("listed")));
        assert!(r.watch.contains(&root.join("in")));
        assert!(r.watch.contains(&root.join("runs/wf")));
        assert!(r.watch.contains(&PathBuf::from("/")));
        assert!(!r.watch.contains(&root.join("in/a.txt")));
    }

    #[test]
    fn a_file_with_another_hard_link_is_watched_itself() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
        fs::hard_link(root.join("a.txt"), root.join("elsewhere.txt")).unwrap();
        let r = relevance(&root.join("uptodate"), &[(root.join("a.txt"), true)]);
        assert!(r.watch.contains(&root.join("a.txt")));
    }

    #[test]
    fn a_symlinked_input_is_known_by_its_target_too() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("real")).unwrap();
        fs::write(root.join("real/data.csv"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("real/data.csv"), root.join("data.csv")).unwrap();
        let r = relevance(&root.join("uptodate"), &[(root.join("data.csv"), false)]);
        assert_eq!(
            r.touch(&root.join("real/data.csv"), false),
            entry(root.join("real/data.csv"))
        );
        assert!(r.watch.contains(&root.join("real")));
    }

    #[test]
    fn touched_entries_are_found_by_listed_or_resolved_name_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("real")).unwrap();
        for name in ["a.txt", "b.txt", "real/data.csv"] {
            fs::write(root.join(name), name).unwrap();
        }
        // Two listed symlinks to one file: an event on the file touches both.
        for link in ["data.csv", "same.csv"] {
            std::os::unix::fs::symlink(root.join("real/data.csv"), root.join(link)).unwrap();
        }
        let mut tracked = tracked(
            &root,
            &["a.txt", "b.txt", "data.csv", "same.csv"],
            stat_of(&root.join("a.txt")).unwrap(),
        );
        let paths = |t: &Tracked| -> Vec<PathBuf> {
            t.touched_entries()
                .into_iter()
                .map(|l| l.path.clone())
                .collect()
        };
        assert!(paths(&tracked).is_empty());
        tracked.touched.insert(root.join("b.txt"));
        tracked.touched.insert(root.join("real/data.csv"));
        tracked.touched.insert(root.join("data.csv"));
        tracked.touched.insert(root.join("not-listed.txt"));
        assert_eq!(
            paths(&tracked),
            vec![
                root.join("b.txt"),
                root.join("data.csv"),
                root.join("same.csv")
            ]
        );
    }

    #[test]
    fn a_build_asking_later_hears_what_was_touched_since_its_record_was_checked() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        for name in ["a.txt", "b.txt"] {
            fs::write(root.join(name), name).unwrap();
        }
        let record_stat = stat_of(&root.join("a.txt")).unwrap();
        let other_stat = stat_of(&root.join("b.txt")).unwrap();
        let record = root.join("runs/wf/uptodate");
        let mut watched = Watched::new().unwrap();
        watched.records.insert(
            record.clone(),
            tracked(&root, &["a.txt", "b.txt"], record_stat),
        );
        // The record file itself is gone (the build removed it): the
        // question names it by the stat it was checked with.
        assert_eq!(
            watched.touched_since_checked(&record, "i", record_stat),
            Some(Vec::new())
        );
        watched
            .records
            .get_mut(&record)
            .unwrap()
            .touched
            .insert(root.join("b.txt"));
        assert_eq!(
            watched.touched_since_checked(&record, "i", record_stat),
            Some(vec![root.join("b.txt")])
        );
        // Another record at that path, another invocation: nothing known.
        assert_eq!(
            watched.touched_since_checked(&record, "i", other_stat),
            None
        );
        assert_eq!(
            watched.touched_since_checked(&record, "j", record_stat),
            None
        );
        // An event that could have changed any entry: nothing known.
        watched.records.get_mut(&record).unwrap().whole = true;
        assert_eq!(
            watched.touched_since_checked(&record, "i", record_stat),
            None
        );
    }
}
