//! Reading an entry back, and deciding whether it can be trusted.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use super::manifest::{MANIFEST_SCHEMA, Manifest, OutputRecord, output_digest};
use super::outputs::list_outputs;
use super::{Entry, MANIFEST_FILE, OUT_DIR, Store, is_valid_key};
use crate::stat_cache::StatCache;

/// The result of [`Store::lookup`].
// A `Lookup` is consumed at once, never stored in bulk: boxing the entry
// would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A complete entry whose outputs match its manifest.
    Hit(Entry),
    /// No entry directory for the key.
    Missing,
    /// A directory exists but cannot be trusted; the reason says why.
    /// Callers treat it as a miss and report it.
    Corrupt(String),
}

impl Lookup {
    /// The entry, if this is a hit.
    pub fn hit(self) -> Option<Entry> {
        match self {
            Lookup::Hit(entry) => Some(entry),
            _ => None,
        }
    }
}

impl Store {
    /// Looks up the entry for `key`.
    ///
    /// [`Lookup::Hit`] only when `manifest.json` parses, has the supported
    /// schema and this key, its `output_digest` matches its outputs, and the
    /// files under `out/` are exactly the recorded ones with the recorded
    /// sizes and blake3 hashes (hashed through `stats`, so files unchanged
    /// since they were last hashed are not reread).
    pub fn lookup(&self, key: &str, stats: &StatCache) -> Lookup {
        if !is_valid_key(key) {
            return Lookup::Corrupt(format!("not a store key: {key:?}"));
        }
        let dir = self.entry_dir(key);
        match fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Lookup::Missing,
            Err(e) => return Lookup::Corrupt(format!("cannot read {}: {e}", dir.display())),
            Ok(meta) if !meta.is_dir() => {
                return Lookup::Corrupt(format!("{} is not a directory", dir.display()));
            }
            Ok(_) => {}
        }
        match read_manifest(&dir, key).and_then(|m| check_outputs(&dir, &m, stats).map(|()| m)) {
            Ok(manifest) => Lookup::Hit(Entry {
                key: key.to_string(),
                dir,
                manifest,
            }),
            Err(reason) => Lookup::Corrupt(reason),
        }
    }
}

/// Reads and checks `dir/manifest.json` without touching the outputs:
/// parses, has the supported schema, names `key`, and its digest matches
/// its output list.
pub(crate) fn read_manifest(dir: &Path, key: &str) -> Result<Manifest, String> {
    let bytes = match crate::observed::read(&dir.join(MANIFEST_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("no {MANIFEST_FILE} (incomplete entry)"));
        }
        Err(e) => return Err(format!("cannot read {MANIFEST_FILE}: {e}")),
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{MANIFEST_FILE} does not parse: {e}"))?;
    if manifest.schema != MANIFEST_SCHEMA {
        return Err(format!(
            "{MANIFEST_FILE} has schema {} (this admf reads {MANIFEST_SCHEMA})",
            manifest.schema
        ));
    }
    if manifest.key != key {
        return Err(format!("{MANIFEST_FILE} is for key {}", manifest.key));
    }
    if output_digest(&manifest.outputs) != manifest.output_digest {
        return Err(format!(
            "{MANIFEST_FILE} output_digest does not match its outputs"
        ));
    }
    Ok(manifest)
}

/// Checks that `dir/out` holds exactly the manifest's outputs, byte for byte.
fn check_outputs(dir: &Path, manifest: &Manifest, stats: &StatCache) -> Result<(), String> {
    let out = dir.join(OUT_DIR);
    if !out.is_dir() {
        return Err(format!("no {OUT_DIR}/ directory"));
    }
    // Listed directories are noted first: a file dropped into one later
    // changes its stat, which voids an up-to-date record built on this.
    for dir in super::outputs::list_dirs(&out) {
        crate::observed::note_dir(&dir);
    }
    let files = list_outputs(&out).map_err(|e| format!("cannot list {OUT_DIR}/: {e}"))?;
    let mut expected: BTreeMap<&str, &OutputRecord> = manifest
        .outputs
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    for file in &files {
        let Some(record) = expected.remove(file.rel.as_str()) else {
            return Err(format!("unexpected output {:?} not in manifest", file.rel));
        };
        let size = fs::metadata(&file.path)
            .map_err(|e| format!("cannot stat output {:?}: {e}", file.rel))?
            .len();
        if size != record.size {
            return Err(format!(
                "output {:?} has {size} bytes, manifest says {}",
                file.rel, record.size
            ));
        }
        let hash = stats
            .hash_file(&file.path)
            .map_err(|e| format!("cannot read output {:?}: {e}", file.rel))?;
        if hash != record.blake3 {
            return Err(format!(
                "output {:?} content changed (blake3 {hash}, manifest says {})",
                file.rel, record.blake3
            ));
        }
    }
    if let Some(missing) = expected.keys().next() {
        return Err(format!("output {missing:?} is missing"));
    }
    Ok(())
}
