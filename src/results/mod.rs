//! Getting results out of the store: a node's stored outputs as ordinary
//! files ([`sync`]), the table of a sweep's trials ([`trials`]) and the
//! filter language of `admf trials --filter` ([`filter`]).

pub mod build_json;
pub mod filter;
pub mod history;
pub mod runs;
pub mod sync;
pub mod table;
pub mod trials;

use std::io;
use std::path::PathBuf;

use serde_json::Value;

use crate::store::{Entry, Lookup, Store};

/// Where the captured log of `entry` lies as a file: `views/<key>.log`,
/// written once (through a rename) and removed by gc like the views.
pub fn log_file(entry: &Entry) -> io::Result<PathBuf> {
    let path = entry
        .store()
        .root()
        .join("views")
        .join(format!("{}.log", entry.key));
    if !path.is_file() {
        crate::atomic_file::write(&path, &entry.log()?)?;
    }
    Ok(path)
}

/// `metrics.json` of an entry, parsed; `None` when it has none.
pub fn metrics_of(entry: &Entry) -> Option<Value> {
    serde_json::from_slice(&entry.read("metrics.json").ok()?).ok()
}

/// The entry a node's ref names in `store`: `Ok(None)` when the node was
/// never built, `Err` with the reason when the entry is gone or corrupt.
pub fn stored_entry(
    store: &Store,
    stats: &crate::stat_cache::StatCache,
    workflow_id: &str,
    node: &str,
) -> Result<Option<Entry>, String> {
    let Some(key) = store.read_ref(workflow_id, node) else {
        return Ok(None);
    };
    match store.lookup(&key, stats) {
        Lookup::Hit(entry) => Ok(Some(entry)),
        Lookup::Missing => Err(format!(
            "the stored entry of `{node}` is gone (removed by gc)"
        )),
        Lookup::Corrupt(reason) => {
            Err(format!("the stored entry of `{node}` is corrupt: {reason}"))
        }
    }
}

/// What `admf show --json` says of a built node.
pub fn describe(node: &str, entry: &Entry) -> io::Result<Value> {
    let dir = entry.view()?;
    let files: Vec<Value> = entry
        .names()
        .map(|name| {
            serde_json::json!({
                "name": name,
                "path": dir.join(name),
                "size": entry.manifest.outputs[name].size,
            })
        })
        .collect();
    Ok(serde_json::json!({
        "node": node,
        "key": entry.key,
        "dir": dir,
        "files": files,
        "metrics": metrics_of(entry),
        "log": log_file(entry)?,
    }))
}
