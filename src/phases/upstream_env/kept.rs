//! Upstream folders kept from one build to the next, in the store's
//! `upstream/` directory, so that a node with thousands of upstream
//! nodes pays a stat or two per upstream entry when it reruns, not a
//! directory and a file made anew for each.
//!
//! A kept folder holds the outputs of one upstream entry (folders are
//! named by what they hold: the outputs' names and digests), laid out
//! once, read-only, and never changed afterwards: an entry whose outputs
//! differ gets another folder. So after a leaf edit only the edited
//! node's new entry is laid out; every other folder is reused.
//!
//! What a folder is trusted with is recorded in `upstream/record`: for
//! each folder, its name, how each file was placed (a hard link to the
//! stored blob or a copy) and a seal, a digest of the stat (inode, mode,
//! size, mtime and ctime) of its every directory and file as laid out.
//! Before a build hands a kept folder to a command for the first time,
//! it stats them again and compares the seal; a file added, removed,
//! rewritten, replaced by a link or made writable changes an mtime or a
//! ctime, which no one can set back. A hard link to a blob is checked
//! without its ctime (any new link to the blob changes it) but must be
//! the store's current blob file, so a blob the store has replaced (after
//! finding it corrupt) is not read through an old link. A folder whose
//! seal does not match is never used again; a new one is laid out and the
//! old one removed when the build closes the store.
//!
//! One build at a time keeps folders: it holds an exclusive flock on
//! `upstream/lock` while its store is open, and a build that finds the
//! lock taken lays out its folders in its scratch directory, as all builds
//! once did. The record is rewritten (into a new file renamed over it)
//! when the store is closed; a folder made since is unknown to the record
//! on disk until then, so one left half made by a kill is never trusted.
//! `upstream/dirty` is made before the first folder is made or doomed and
//! removed once the record is written and the doomed folders are gone; a
//! build that finds it removes every folder the record does not name.
//!
//! Folders not used in the last [`KEEP_GENERATIONS`] rewrites of the
//! record are removed, and `cache gc` removes them all when it removes
//! anything (a kept folder holds hard links to blobs).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Folder, Laid, Layout, Stamp, StatRoot, Upstream, lay_out, locked, needed_dirs};
use crate::store::Store;
use crate::store::fsutil::{remove_file_if_exists, remove_tree, unique_suffix};

const LOCK: &str = "lock";
const RECORD: &str = "record";
const DIRTY: &str = "dirty";
/// The first line of the record; another one makes the record unknown.
const HEADER: &str = "admf-upstream-folders 1";

/// How many rewrites of the record a folder stays through unused.
pub(super) const KEEP_GENERATIONS: u64 = 16;

/// The kept folders of one store, held by one build.
pub(super) struct KeptFolders {
    dir: PathBuf,
    /// `dir`, open for the stats of the folders' files.
    root: Option<Arc<StatRoot>>,
    state: Mutex<State>,
    /// Held exclusively (flock) while this value lives.
    _lock: fs::File,
}

struct State {
    /// This build's generation: one more than the record's.
    generation: u64,
    /// The record, by folder id.
    kept: HashMap<String, Kept>,
    /// Folders to remove when the store is closed, by name.
    doomed: Vec<String>,
    /// Whether `dirty` is there (made by this build or found).
    dirty: bool,
    /// Whether the record must be rewritten.
    changed: bool,
}

/// What the record says of one folder.
struct Kept {
    name: String,
    last_used: u64,
    /// How each file was placed, in name order: `l` a hard link to the
    /// stored blob, `c` a copy.
    kinds: String,
    seal: String,
}

/// The kept folders of a store: not tried yet, not to be had (another
/// build holds them, or the directory cannot be made), or held.
type Slot = Mutex<Option<Option<Arc<KeptFolders>>>>;

impl KeptFolders {
    /// This build's kept folders, taken on first use; `None` when another
    /// build holds them.
    pub(super) fn of(store: &Store) -> Option<Arc<KeptFolders>> {
        let shared = store.shared::<Slot>("upstream-kept");
        let mut slot = locked(&shared);
        slot.get_or_insert_with(|| {
            let kept = KeptFolders::open(&store.upstream_dir()).ok().flatten()?;
            // Closed (its record written) when the build releases the
            // store, also in a process that never frees what it holds.
            let closing = shared.clone();
            store.on_release(move || drop(locked(&closing).take()));
            Some(Arc::new(kept))
        })
        .clone()
    }

    fn open(dir: &Path) -> io::Result<Option<KeptFolders>> {
        fs::create_dir_all(dir)?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        // A copy parsed ahead (`admf serve`) stands for the record while
        // the record is as it was read.
        let parsed = crate::preload::take::<Parsed>(&dir.join(RECORD)).or_else(|| {
            let record = fs::read_to_string(dir.join(RECORD)).ok();
            record.as_deref().and_then(parse_record)
        });
        // No record, or one this admf cannot read: nothing is trusted.
        let dirty = dir.join(DIRTY).exists() || parsed.is_none();
        let (generation, kept) = parsed.unwrap_or_default();
        if dirty {
            sweep(dir, &kept)?;
        }
        Ok(Some(KeptFolders {
            dir: dir.to_path_buf(),
            root: StatRoot::open(dir).map(Arc::new),
            state: Mutex::new(State {
                generation: generation + 1,
                kept,
                doomed: Vec::new(),
                dirty,
                changed: dirty,
            }),
            _lock: lock,
        }))
    }

    /// The kept folder of entry `id` holding the artifacts of `up`: the
    /// recorded one if its seal still matches, else a new one. The caller
    /// holds the entry's slot, so no other thread asks for `id` meanwhile.
    pub(super) fn folder(&self, up: &Upstream, id: &str) -> io::Result<Folder> {
        let id = &id[..id.len().min(32)];
        let recorded = {
            let state = locked(&self.state);
            state
                .kept
                .get(id)
                .map(|k| (k.name.clone(), k.kinds.clone(), k.seal.clone()))
        };
        if let Some((name, kinds, seal)) = recorded {
            let root = self.root.clone().filter(|root| root.usable());
            if let Some(folder) = check(up, &self.dir.join(&name), &kinds, &seal, root) {
                let mut state = locked(&self.state);
                let generation = state.generation;
                if let Some(kept) = state.kept.get_mut(id)
                    && generation.saturating_sub(kept.last_used) >= KEEP_GENERATIONS / 2
                {
                    kept.last_used = generation;
                    state.changed = true;
                }
                return Ok(folder);
            }
            let mut state = locked(&self.state);
            self.mark_dirty(&mut state)?;
            state.kept.remove(id);
            state.doomed.push(name);
            state.changed = true;
        }
        let name = format!("{id}.{}", unique_suffix());
        self.mark_dirty(&mut locked(&self.state))?;
        let laid = lay_out(up, &self.dir.join(&name), Layout::Kept, None).map(|mut folder| {
            folder.root = self.root.clone();
            folder
        });
        let mut state = locked(&self.state);
        match &laid {
            Ok(folder) if folder.left_out.is_empty() => {
                let (kinds, seal) = seal_of(folder);
                let generation = state.generation;
                state.kept.insert(
                    id.to_string(),
                    Kept {
                        name,
                        last_used: generation,
                        kinds,
                        seal,
                    },
                );
                state.changed = true;
            }
            // Half made, or missing a file: used by this build at most.
            _ => {
                state.doomed.push(name);
                state.changed = true;
            }
        }
        laid
    }

    /// Checks that the directory the folders' stats go through is still
    /// the one at its path (once per execution, before its folders are
    /// checked).
    pub(super) fn recheck_root(&self) {
        if let Some(root) = &self.root {
            root.recheck();
        }
    }

    fn mark_dirty(&self, state: &mut State) -> io::Result<()> {
        if !state.dirty {
            fs::File::create(self.dir.join(DIRTY))?;
            state.dirty = true;
        }
        Ok(())
    }

    /// Writes the record, then removes the doomed folders and the marker.
    fn close(&mut self) -> io::Result<()> {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !state.changed {
            return Ok(());
        }
        let generation = state.generation;
        let expired: Vec<String> = state
            .kept
            .iter()
            .filter(|(_, k)| generation.saturating_sub(k.last_used) >= KEEP_GENERATIONS)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(kept) = state.kept.remove(&id) {
                state.doomed.push(kept.name);
            }
        }
        if !state.doomed.is_empty() && !state.dirty {
            fs::File::create(self.dir.join(DIRTY))?;
            state.dirty = true;
        }
        let mut text = format!("{HEADER} {generation}\n");
        let mut ids: Vec<&String> = state.kept.keys().collect();
        ids.sort();
        for id in ids {
            let k = &state.kept[id];
            text.push_str(&format!(
                "{id} {} {} {} {}\n",
                k.name, k.last_used, k.kinds, k.seal
            ));
        }
        crate::atomic_file::write(&self.dir.join(RECORD), text.as_bytes())?;
        for name in state.doomed.drain(..) {
            remove_tree(&self.dir.join(name))?;
        }
        if state.dirty {
            remove_file_if_exists(&self.dir.join(DIRTY))?;
        }
        Ok(())
    }
}

impl Drop for KeptFolders {
    fn drop(&mut self) {
        // On failure `dirty` stays, and the next build sweeps.
        let _ = self.close();
    }
}

/// The generation and folders of a record; `None` when it is not one.
/// A record's generation and folders.
type Parsed = (u64, HashMap<String, Kept>);

/// Read and parse the record of the kept folders in `dir` (a store's
/// `upstream/`) ahead of a build; false when there is nothing whole and
/// steady to parse. Uses no thread besides the caller's.
pub(super) fn preload(dir: &Path) -> bool {
    let path = dir.join(RECORD);
    let Ok(Some((bytes, stat))) = crate::preload::read_steady(&path) else {
        return false;
    };
    let Some(parsed) = std::str::from_utf8(&bytes).ok().and_then(parse_record) else {
        return false;
    };
    crate::preload::put(&path, stat, parsed);
    true
}

fn parse_record(text: &str) -> Option<Parsed> {
    let mut lines = text.lines();
    let generation = lines
        .next()?
        .strip_prefix(HEADER)?
        .trim()
        .parse::<u64>()
        .ok()?;
    let mut kept = HashMap::new();
    for line in lines {
        let mut fields = line.split(' ');
        let (Some(id), Some(name), Some(last_used), Some(kinds), Some(seal), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return None;
        };
        let last_used = last_used.parse().ok()?;
        // A name is the id and a suffix: it cannot leave the directory.
        let hex = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex || !name.starts_with(id) || name.contains('/') {
            return None;
        }
        kept.insert(
            id.to_string(),
            Kept {
                name: name.to_string(),
                last_used,
                kinds: kinds.to_string(),
                seal: seal.to_string(),
            },
        );
    }
    Some((generation, kept))
}

/// Removes everything in `dir` that is neither the lock, the record, the
/// marker nor a recorded folder: what a killed build left behind. The
/// marker stays until the record is written, so that a build killed
/// after this sweep leaves it for the next one.
fn sweep(dir: &Path, kept: &HashMap<String, Kept>) -> io::Result<()> {
    let names: std::collections::HashSet<&str> = kept.values().map(|k| k.name.as_str()).collect();
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        if name == LOCK || name == RECORD || name == DIRTY || names.contains(name.as_ref()) {
            continue;
        }
        let path = item.path();
        if item.file_type()?.is_dir() {
            remove_tree(&path)?;
        } else {
            remove_file_if_exists(&path)?;
        }
    }
    Ok(())
}

/// The stamps of a folder as [`lay_out`] notes them: its root, the
/// directories it needs (parents first), then its files in name order.
fn paths_of(up: &Upstream, dir: &Path) -> (Vec<PathBuf>, Vec<(String, PathBuf)>) {
    let dirs = std::iter::once(dir.to_path_buf())
        .chain(needed_dirs(up).iter().map(|rel| dir.join(rel)))
        .collect();
    let files = up
        .names()
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            (name, path)
        })
        .collect();
    (dirs, files)
}

/// The folder at `path` if its stat still matches `seal`, its stats
/// taken through `root` (the kept folders' directory, checked against its
/// path by the caller).
fn check(
    up: &Upstream,
    path: &Path,
    kinds: &str,
    seal: &str,
    root: Option<Arc<StatRoot>>,
) -> Option<Folder> {
    let (dirs, files) = paths_of(up, path);
    if kinds.len() != files.len() {
        return None;
    }
    let mut stamps = Vec::with_capacity(dirs.len() + files.len());
    let at = root.as_deref();
    for dir in dirs {
        let stamp = Stamp::of_in(&dir, at).ok()?;
        stamps.push((dir, Laid::Own(stamp)));
    }
    for ((name, file), kind) in files.iter().zip(kinds.bytes()) {
        let stamp = Stamp::of_in(file, at).ok()?;
        let laid = match kind {
            b'c' => Laid::Own(stamp),
            b'l' => {
                // The store's current blob, not one it has since replaced:
                // one stat of its path (the link being a file of the same
                // inode, the blob is that file too).
                let (store, outputs) = up.open_entry()?;
                let blob = Stamp::of(&store.blob_path(&outputs.get(name)?.blake3)).ok()?;
                if blob.ino != stamp.ino {
                    return None;
                }
                Laid::StoreLink(stamp.without_ctime())
            }
            _ => return None,
        };
        stamps.push((file.clone(), laid));
    }
    let folder = Folder {
        path: path.to_path_buf(),
        files,
        left_out: Vec::new(),
        stamps,
        root,
    };
    (seal_of(&folder).1 == seal).then_some(folder)
}

/// The kinds string and the seal of a folder laid out for keeping.
fn seal_of(folder: &Folder) -> (String, String) {
    let mut kinds = String::new();
    let mut hasher = blake3::Hasher::new();
    // Directories come first, then one stamp per file.
    let dirs = folder.stamps.len().saturating_sub(folder.files.len());
    for (i, (_, laid)) in folder.stamps.iter().enumerate() {
        let (kind, stamp) = match laid {
            Laid::Own(stamp) => ('c', Some(stamp)),
            Laid::StoreLink(stamp) => ('l', Some(stamp)),
            // Kept folders link to no scratch copy and hold no workspace
            // file; `check` takes neither `s` nor `w`.
            Laid::ScratchLink(_) => ('s', None),
            Laid::Checked(_) => ('w', None),
        };
        if i >= dirs {
            kinds.push(kind);
        }
        let Some(Stamp {
            ino,
            mode,
            size,
            mtime,
            ctime,
        }) = stamp
        else {
            continue;
        };
        for n in [ino.0, ino.1, u64::from(*mode), *size] {
            hasher.update(&n.to_le_bytes());
        }
        for t in [Some(*mtime), *ctime].into_iter().flatten() {
            hasher.update(&t.0.to_le_bytes());
            hasher.update(&t.1.to_le_bytes());
        }
        hasher.update(if ctime.is_some() { b"c" } else { b"l" });
    }
    (kinds, hasher.finalize().to_hex()[..32].to_string())
}
