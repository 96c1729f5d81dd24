//! Reading an entry back, and deciding whether it can be trusted.

use std::fs;
use std::io;

use super::manifest::{Manifest, output_digest};
use super::{Entry, Store, is_valid_key};
use crate::stat_cache::StatCache;

/// The result of [`Store::lookup`].
// A `Lookup` is consumed at once, never stored in bulk: boxing the entry
// would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A complete entry whose blobs match its manifest.
    Hit(Entry),
    /// No entry for the key.
    Missing,
    /// An entry exists but cannot be trusted; the reason says why.
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
    /// [`Lookup::Hit`] only when the action row parses, has the supported
    /// schema and this key, its `output_digest` matches its outputs, and
    /// every output's blob is stored with the recorded size and blake3 (a
    /// blob file hashed through `stats`, so a file unchanged since it was
    /// last hashed is not reread; an inline blob rehashed). The `index/`
    /// directory and every blob file are noted in `stats`' reads.
    pub fn lookup(&self, key: &str, stats: &StatCache) -> Lookup {
        if !is_valid_key(key) {
            return Lookup::Corrupt(format!("not a store key: {key:?}"));
        }
        self.note_index(stats.reads());
        let manifest = match self.index().action(key) {
            Ok(None) => return Lookup::Missing,
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(reason))) => return Lookup::Corrupt(reason),
            Err(e) => return Lookup::Corrupt(format!("cannot read the index: {e}")),
        };
        match self.check_manifest(key, &manifest, stats) {
            Ok(()) => Lookup::Hit(Entry {
                key: key.to_string(),
                manifest,
                store: self.clone(),
            }),
            Err(reason) => Lookup::Corrupt(reason),
        }
    }

    /// The bytes of output `name` of the entry of `key`, when its action
    /// row parses and names it and the bytes hash to the recorded digest;
    /// the entry's other blobs are not checked. For readers of one small
    /// output of many entries (the run ledger's metrics), where a whole
    /// [`Store::lookup`] would hash every output.
    pub fn verified_output(&self, key: &str, name: &str) -> Option<Vec<u8>> {
        if !is_valid_key(key) {
            return None;
        }
        let manifest = self.index().action(key).ok()??.ok()?;
        let record = manifest.outputs.get(name)?;
        let bytes = self.read_blob(&record.blake3).ok()??;
        (super::cas::digest_of(&bytes) == record.blake3).then_some(bytes)
    }

    /// The ingredients recorded for `key`, even when its blobs are gone
    /// or corrupt (for `explain`'s comparison with the previous build).
    pub fn ingredients(&self, key: &str) -> Option<serde_json::Value> {
        match self.index().action(key) {
            Ok(Some(Ok(m))) => Some(m.ingredients.to_value()),
            _ => None,
        }
    }

    /// Checks an action record and every blob it names.
    pub(crate) fn check_manifest(
        &self,
        key: &str,
        manifest: &Manifest,
        stats: &StatCache,
    ) -> Result<(), String> {
        if manifest.key != key {
            return Err(format!("action is for key {}", manifest.key));
        }
        if output_digest(&manifest.outputs) != manifest.output_digest {
            return Err("output_digest does not match its outputs".to_string());
        }
        for (name, record) in &manifest.outputs {
            self.check_blob(&record.blake3, Some(record.size), stats)
                .map_err(|e| format!("output {name:?}: {e}"))?;
        }
        self.check_blob(&manifest.log_digest, None, stats)
            .map_err(|e| format!("log: {e}"))
    }

    /// Whether blob `digest` is stored with this size and content.
    pub(crate) fn check_blob(
        &self,
        digest: &str,
        size: Option<u64>,
        stats: &StatCache,
    ) -> Result<(), String> {
        let inline = self
            .index()
            .inline_blob(digest)
            .map_err(|e| format!("cannot read the index: {e}"))?;
        let (actual_size, actual) = match inline {
            Some(bytes) => (bytes.len() as u64, super::cas::digest_of(&bytes)),
            None => {
                let path = self.blob_path(digest);
                let meta = match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_file() => m,
                    Ok(_) => return Err(format!("{} is not a file", path.display())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(format!("blob {digest} is missing"));
                    }
                    Err(e) => return Err(format!("cannot stat {}: {e}", path.display())),
                };
                let hash = stats
                    .hash_file(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                (meta.len(), hash)
            }
        };
        if let Some(size) = size
            && size != actual_size
        {
            return Err(format!(
                "blob {digest} has {actual_size} bytes, the action says {size}"
            ));
        }
        if actual != digest {
            return Err(format!(
                "blob {digest} content changed (its bytes hash to {actual})"
            ));
        }
        Ok(())
    }
}
