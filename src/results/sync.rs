//! Copying stored outputs out as ordinary files: `admf export` and the
//! workflow's `results:` folder.
//!
//! A node's outputs go to `DIR/<node id>/`, one ordinary file per output
//! (never a link into the store, so editing a copy cannot damage an
//! entry); files under `DIR/<node id>/` that the entry does not hold are
//! removed, so the folder never mixes two builds. Each file is replaced
//! through a rename: a reader sees the old file or the new one.
//!
//! Since it removes files, admf only writes into a folder it made: one
//! that does not exist yet, is empty, or holds the marker file
//! [`MARKER`] that admf writes when it first fills it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::file_stat::Stat;
use crate::store::Entry;

/// The file that marks a folder as one admf fills.
pub const MARKER: &str = ".admf-results";

/// What a synced node folder held when admf last wrote it: the entry's
/// key and each file's stat, so that the next sync of the same key can
/// tell by a `stat` per file that nothing needs writing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub key: String,
    /// Output name → (size, mtime in ns, inode).
    pub files: BTreeMap<String, (u64, i64, u64)>,
}

/// Makes `dir` a results folder (creating it and its marker), or refuses
/// one that holds other files: syncing removes what it does not know.
pub fn claim(dir: &Path) -> io::Result<()> {
    if dir.join(MARKER).is_file() {
        return Ok(());
    }
    match fs::read_dir(dir) {
        Ok(mut items) => {
            if items.next().is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} is not empty and was not made by admf (no {MARKER} file); \
                         name a new or empty folder",
                        dir.display()
                    ),
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir)?,
        Err(e) => return Err(e),
    }
    fs::write(
        dir.join(MARKER),
        "This folder is filled by admf: files under a node's folder that the node's \
         last build did not write are removed.\n",
    )
}

/// The folder of node `id` under `dir`.
pub fn node_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join(id)
}

fn stat_of(path: &Path) -> Option<(u64, i64, u64)> {
    let s = Stat::of(&fs::symlink_metadata(path).ok()?);
    Some((s.size, s.mtime_ns, s.inode))
}

/// Writes `entry`'s outputs into `DIR/<id>/` and removes every other file
/// there. With `previous` of the same key whose files all still have
/// their recorded stats, writes nothing.
pub fn sync_node(
    dir: &Path,
    id: &str,
    entry: &Entry,
    previous: Option<&NodeState>,
) -> io::Result<NodeState> {
    let to = node_dir(dir, id);
    if let Some(p) = previous
        && p.key == entry.key
        && p.files.len() == entry.manifest.outputs.len()
        && p.files
            .iter()
            .all(|(name, st)| stat_of(&to.join(name)) == Some(*st))
        && only_files(&to, &p.files)?
    {
        return Ok(p.clone());
    }
    let mut state = NodeState {
        key: entry.key.clone(),
        files: BTreeMap::new(),
    };
    for name in entry.names() {
        let path = to.join(name);
        write_file(&path, &entry.read(name)?)?;
        let st = stat_of(&path)
            .ok_or_else(|| io::Error::other(format!("{} vanished", path.display())))?;
        state.files.insert(name.to_string(), st);
    }
    remove_others(&to, &state.files)?;
    Ok(state)
}

/// Removes `DIR/<id>/` (a node that was skipped or failed has no current
/// outputs).
pub fn remove_node(dir: &Path, id: &str) -> io::Result<bool> {
    let to = node_dir(dir, id);
    match fs::remove_dir_all(&to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces `path` through a temp file and a rename; readable by all,
/// like a file the user wrote.
fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    if parent.is_file() {
        fs::remove_file(parent)?;
    }
    fs::create_dir_all(parent)?;
    if path.is_dir() {
        fs::remove_dir_all(path)?;
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".admf-tmp")
        .tempfile_in(parent)?;
    tmp.write_all(bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Every file under `root`, as `/`-separated paths relative to it.
fn files_under(root: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    if !root.is_dir() {
        return Ok(out);
    }
    for item in walkdir::WalkDir::new(root).min_depth(1) {
        let item = item.map_err(io::Error::other)?;
        if !item.file_type().is_dir() {
            let rel = item.path().strip_prefix(root).unwrap_or(item.path());
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(out)
}

fn only_files(root: &Path, keep: &BTreeMap<String, (u64, i64, u64)>) -> io::Result<bool> {
    Ok(files_under(root)?.iter().all(|f| keep.contains_key(f)))
}

/// Removes files under `root` not in `keep`, then the folders left empty.
fn remove_others(root: &Path, keep: &BTreeMap<String, (u64, i64, u64)>) -> io::Result<()> {
    for rel in files_under(root)? {
        if !keep.contains_key(&rel) {
            fs::remove_file(root.join(&rel))?;
        }
    }
    let mut dirs: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
        .map(|e| e.into_path())
        .collect();
    // Deepest first, so a parent is empty once its children are gone.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let _ = fs::remove_dir(d);
    }
    Ok(())
}

/// The record of a workflow's `results:` folder, kept in the store at
/// `runs/<workflow id>/results.json`: which folder, and each node's
/// [`NodeState`]. A build that the up-to-date record proves a no-op reads
/// it to restore the folder without compiling the workflow.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ResultsRecord {
    pub dir: PathBuf,
    pub nodes: BTreeMap<String, NodeState>,
}

pub fn record_path(store_root: &Path, workflow_id: &str) -> PathBuf {
    store_root
        .join("runs")
        .join(workflow_id)
        .join("results.json")
}

impl ResultsRecord {
    pub fn load(path: &Path) -> Option<ResultsRecord> {
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        crate::atomic_file::write(path, &text)
    }
}

/// One node of a finished build as the results folder sees it.
pub enum NodeResult<'a> {
    /// Ran or came from the cache: these are its outputs.
    Built(&'a Entry),
    /// Skipped or failed: it has no current outputs.
    Gone,
}

/// Brings `dir` in line with a build's nodes; returns how many node
/// folders were written and removed.
pub fn sync_results(
    store_root: &Path,
    workflow_id: &str,
    dir: &Path,
    nodes: &[(&str, NodeResult<'_>)],
) -> io::Result<(usize, usize)> {
    claim(dir)?;
    let path = record_path(store_root, workflow_id);
    let mut record = ResultsRecord::load(&path)
        .filter(|r| r.dir == dir)
        .unwrap_or_else(|| ResultsRecord {
            dir: dir.to_path_buf(),
            nodes: BTreeMap::new(),
        });
    let (mut written, mut removed) = (0, 0);
    for (id, result) in nodes {
        match result {
            NodeResult::Built(entry) => {
                let previous = record.nodes.get(*id);
                let state = sync_node(dir, id, entry, previous)?;
                if previous != Some(&state) {
                    written += 1;
                }
                record.nodes.insert(id.to_string(), state);
            }
            NodeResult::Gone => {
                record.nodes.remove(*id);
                if remove_node(dir, id)? {
                    removed += 1;
                }
            }
        }
    }
    record.save(&path)?;
    Ok((written, removed))
}
