//! Action rows read ahead of a build by the process that forks builds for
//! `admf serve`: those of every node the last build's node trace holds.
//! After a leaf edit, a node with thousands of upstream nodes needs the
//! row of each (the files its upstream folders hold); a fork finds them
//! decoded in its memory instead of reading thousands of rows.
//!
//! The copy stands for the index while the `index/` directory keeps the
//! stat it had when the rows were read ([`crate::preload`]): the store
//! changes that directory whenever it removes or replaces entries (gc,
//! repair, a new index), and nothing else does, since the index keeps its
//! `-wal` and `-shm` files. A row is only ever used for a node the node
//! trace settled, and only when it ends with the output digest the trace
//! recorded ([`Store::settled_entries`]), so a row replaced since for the
//! same key is never taken for its successor.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Manifest, Store};
use crate::file_stat::{Stat, is_racy, system_time_ns};

/// Rows by key, each whole: its output digest is the digest of its
/// outputs (checked when read ahead, so not again by every fork).
pub(super) type Rows = rustc_hash::FxHashMap<String, Arc<Manifest>>;

/// Reads ahead the rows of `keys` in the store at `root` and keeps them
/// as the decoded copy of its `index/` directory, reading only the keys
/// the copy kept before does not hold when the directory is unchanged;
/// false when there is nothing steady to keep.
pub fn preload_rows(root: &Path, keys: &[&str]) -> bool {
    let dir = root.join("index");
    let stat_now = || fs::metadata(&dir).ok().map(|m| Stat::of(&m));
    let Some(before) = stat_now() else {
        return false;
    };
    if is_racy(&before, system_time_ns(std::time::SystemTime::now())) {
        return false;
    }
    let mut rows: Rows = crate::preload::take(&dir).unwrap_or_default();
    let missing: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|key| !rows.contains_key(*key))
        .collect();
    // Rows of keys the trace no longer holds are dropped once the copy
    // would hold twice as many rows as the trace has nodes, so that it
    // never holds more; below that (a leaf edit replaces one key) no set
    // of the keys is built for every build.
    if rows.len() + missing.len() > 2 * keys.len() {
        let wanted: rustc_hash::FxHashSet<&str> = keys.iter().copied().collect();
        rows.retain(|key, _| wanted.contains(key.as_str()));
    }
    if !missing.is_empty() {
        let Ok(store) = Store::open(root) else {
            return false;
        };
        let Ok(found) = store.index().actions_of_keys(&missing) else {
            return false;
        };
        for (key, row) in missing.iter().zip(found) {
            if let Some(Ok(manifest)) = row
                && manifest.outputs_match_digest()
            {
                rows.insert((*key).to_string(), Arc::new(manifest));
            }
        }
    }
    if stat_now() != Some(before) {
        return false;
    }
    crate::preload::put(&dir, before, rows);
    true
}

/// What a build's store holds of the rows read ahead: taken on first use.
type Slot = Mutex<Option<Option<Arc<Rows>>>>;

impl Store {
    /// The rows read ahead for this build, when `admf serve` read them and
    /// the `index/` directory is unchanged since.
    pub(super) fn rows_ahead(&self) -> Option<Arc<Rows>> {
        let slot = self.shared::<Slot>("rows-ahead");
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| crate::preload::take::<Rows>(&self.index_dir()).map(Arc::new))
            .clone()
    }
}
