//! Verified lookups remembered across builds, so a no-op build checks an
//! entry with a few `stat` calls instead of reading and parsing its
//! manifest and listing its output directories.
//!
//! A record says: "the entry for this key was fully verified when its
//! manifest had this blake3 and its output directories these mtimes".
//! The fast path re-checks exactly that (the manifest through the stat
//! cache, each directory's mtime, each output through the stat cache);
//! anything that differs falls back to the full [`Store::lookup`]. Adding
//! or removing a file under `out/` changes a directory's mtime, so the
//! strictness of the full check (no extra files) is kept.
//!
//! On disk: `<store>/lookups`, JSON lines of [`Record`], replaced through a
//! temp file and a rename, only when something changed; a missing or
//! unreadable file is an empty cache.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::manifest::{Manifest, RawJson};
use super::{Entry, Lookup, MANIFEST_FILE, OUT_DIR, Store};
use crate::stat_cache::StatCache;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    key: String,
    manifest_blake3: String,
    /// Directories under the entry (`out`, `out/signals`, ...) and their
    /// modification times in nanoseconds.
    dirs: Vec<(String, i128)>,
    /// The manifest without its ingredients (read from disk when needed).
    manifest: Manifest,
}

pub struct LookupCache {
    path: PathBuf,
    records: Mutex<HashMap<String, Record>>,
    dirty: AtomicBool,
}

/// The directory's mtime; the stat is noted for the up-to-date record,
/// since a file added to or removed from the directory changes it.
fn dir_mtime_ns(path: &Path) -> Option<i128> {
    let meta = fs::metadata(path).ok()?;
    crate::observed::note(path, crate::file_stat::Stat::of(&meta));
    let modified = meta.modified().ok()?;
    let d = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(d.as_nanos() as i128)
}

fn entry_dirs(dir: &Path) -> Vec<(String, i128)> {
    walkdir::WalkDir::new(dir.join(OUT_DIR))
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
        .filter_map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            Some((rel, dir_mtime_ns(e.path())?))
        })
        .collect()
}

impl LookupCache {
    pub fn load(path: &Path) -> LookupCache {
        let records = fs::read_to_string(path)
            .map(|text| {
                text.lines()
                    .filter_map(|line| serde_json::from_str::<Record>(line).ok())
                    .map(|r| (r.key.clone(), r))
                    .collect()
            })
            .unwrap_or_default();
        LookupCache {
            path: path.to_path_buf(),
            records: Mutex::new(records),
            dirty: AtomicBool::new(false),
        }
    }

    /// Write the records if any changed.
    pub fn save(&self) -> std::io::Result<()> {
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<&String> = records.keys().collect();
        keys.sort();
        let mut text = Vec::new();
        for k in keys {
            serde_json::to_writer(&mut text, &records[k]).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        crate::atomic_file::write(&self.path, &text)
    }

    fn fast(&self, store: &Store, key: &str, stats: &StatCache) -> Option<Entry> {
        let record = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)?
            .clone();
        let dir = store.entry_dir(key);
        if stats.hash_file(&dir.join(MANIFEST_FILE)).ok()? != record.manifest_blake3 {
            return None;
        }
        for (rel, mtime) in &record.dirs {
            if dir_mtime_ns(&dir.join(rel))? != *mtime {
                return None;
            }
        }
        let out = dir.join(OUT_DIR);
        for (rel, output) in &record.manifest.outputs {
            if stats.hash_file(&out.join(rel)).ok()? != output.blake3 {
                return None;
            }
        }
        Some(Entry {
            key: key.to_string(),
            dir,
            manifest: record.manifest,
        })
    }

    fn remember(&self, entry: &Entry, stats: &StatCache) {
        let Ok(manifest_blake3) = stats.hash_file(&entry.dir.join(MANIFEST_FILE)) else {
            return;
        };
        let Ok(ingredients) = RawJson::from_value(&serde_json::Value::Null) else {
            return;
        };
        let record = Record {
            key: entry.key.clone(),
            manifest_blake3,
            dirs: entry_dirs(&entry.dir),
            manifest: Manifest {
                ingredients,
                ..entry.manifest.clone()
            },
        };
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.key.clone(), record);
        self.dirty.store(true, Ordering::Relaxed);
    }
}

impl Store {
    /// [`Store::lookup`] with a fast path through `cache`. The entry of a
    /// fast hit carries its manifest without `ingredients` (`null`); read
    /// `manifest.json` for those.
    pub fn lookup_cached(&self, key: &str, stats: &StatCache, cache: &LookupCache) -> Lookup {
        if let Some(entry) = cache.fast(self, key, stats) {
            return Lookup::Hit(entry);
        }
        let found = self.lookup(key, stats);
        if let Lookup::Hit(entry) = &found {
            cache.remember(entry, stats);
        }
        found
    }

    pub fn lookup_cache_path(&self) -> PathBuf {
        self.root().join("lookups")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ManifestMeta;

    fn committed(store: &Store, key: &str) -> Entry {
        let pending = store.begin(key).unwrap();
        fs::create_dir_all(pending.out_dir().join("signals")).unwrap();
        fs::write(pending.out_dir().join("signals/a.jsonl"), "1\n").unwrap();
        fs::write(pending.out_dir().join("metrics.json"), "{}").unwrap();
        let meta = ManifestMeta {
            node: "n".into(),
            mode: "m".into(),
            ingredients: serde_json::json!({"x": 1}),
            duration_ms: 0,
        };
        pending.commit(meta, b"").unwrap()
    }

    #[test]
    fn fast_hits_match_full_lookups_and_tampering_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stats = StatCache::in_memory();
        let key = "ab".repeat(32);
        let entry = committed(&store, &key);
        let cache = LookupCache::load(&store.lookup_cache_path());
        let Lookup::Hit(first) = store.lookup_cached(&key, &stats, &cache) else {
            panic!("expected a hit")
        };
        assert_eq!(first.manifest.outputs, entry.manifest.outputs);
        cache.save().unwrap();
        let reloaded = LookupCache::load(&store.lookup_cache_path());
        let fast = reloaded.fast(&store, &key, &stats).expect("fast path");
        assert_eq!(fast.manifest.output_digest, entry.manifest.output_digest);

        // An extra file changes the directory's mtime: the fast path steps
        // aside and the full lookup reports the entry as corrupt.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(entry.out_dir().join("signals/extra.jsonl"), "x").unwrap();
        assert!(reloaded.fast(&store, &key, &stats).is_none());
        assert!(matches!(
            store.lookup_cached(&key, &stats, &reloaded),
            Lookup::Corrupt(_)
        ));
    }

    #[test]
    fn a_removed_entry_is_not_a_fast_hit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stats = StatCache::in_memory();
        let key = "cd".repeat(32);
        let entry = committed(&store, &key);
        let cache = LookupCache::load(&store.lookup_cache_path());
        assert!(matches!(
            store.lookup_cached(&key, &stats, &cache),
            Lookup::Hit(_)
        ));
        crate::store::fsutil::remove_tree(&entry.dir).unwrap();
        assert!(matches!(
            store.lookup_cached(&key, &stats, &cache),
            Lookup::Missing
        ));
    }
}
