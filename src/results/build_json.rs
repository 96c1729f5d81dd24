//! Each node of `admf build --json` (schema in docs/json.md): besides its
//! status, key and time, where its outputs and log are, and for a failed
//! node the error and a file holding its log.

use crate::status::Status;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::stat_cache::StatCache;
use crate::store::Store;

/// The store a `--json` build reads its nodes' entries from; nothing
/// when `--json` was not asked for.
pub struct BuildJson {
    store: Option<(Store, StatCache)>,
    failed_dir: PathBuf,
}

impl BuildJson {
    pub fn open(wanted: bool, store_root: &Path, workflow_id: &str) -> BuildJson {
        let store = wanted
            .then(|| Store::open(store_root).ok())
            .flatten()
            .map(|s| {
                // Read once the build's record is written: no evidence.
                let stats = StatCache::load(&s.stat_cache_path(), crate::reads::Reads::new());
                (s, stats)
            });
        BuildJson {
            store,
            failed_dir: store_root.join("runs").join(workflow_id).join("failed"),
        }
    }

    /// One node: `id`, `status`, `key`, `seconds`, `dir` and `files` (its
    /// outputs as ordinary files, the folder `admf show` names), `log`,
    /// `report`, and `error` for a failed node.
    pub fn node(
        &self,
        id: &str,
        status: Status,
        key: Option<&str>,
        seconds: Option<f64>,
        report: Option<&Path>,
        failure: Option<(&str, &[u8])>,
    ) -> Value {
        let mut out = json!({
            "id": id, "status": status.name(), "key": key, "seconds": seconds,
            "dir": null, "files": [], "log": null, "report": report, "error": null,
        });
        let entry = match (&self.store, key) {
            (Some((store, stats)), Some(key)) if matches!(status, Status::Ran | Status::Cached) => {
                store.lookup(key, stats).hit()
            }
            _ => None,
        };
        if let Some(entry) = entry
            && let Ok(dir) = entry.view()
        {
            out["files"] = json!(entry.names().collect::<Vec<_>>());
            out["dir"] = json!(dir);
            out["log"] = json!(super::log_file(&entry).ok());
        }
        if let Some((message, log)) = failure {
            out["error"] = json!(message);
            let name: String = id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let path = self.failed_dir.join(format!("{name}.log"));
            if crate::atomic_file::write(&path, log).is_ok() {
                out["log"] = json!(path);
            }
        }
        out
    }
}
