//! Reading an entry back, and deciding whether it can be trusted.

use std::fs;
use std::io;
use std::sync::Arc;

use super::manifest::Manifest;
use super::{Entry, Store, is_valid_key};
use crate::stat_cache::StatCache;

/// The bytes of a blob the index holds (inline or packed) by digest;
/// `None` when it holds none (a blob file, or missing).
type IndexedBlobs<'a> = dyn Fn(&str) -> io::Result<Option<Vec<u8>>> + 'a;

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
        let indexed_of = |digest: &str| self.index().indexed_blob(digest);
        self.lookup_row(key, self.index().action(key), stats, &indexed_of)
    }

    /// [`Store::lookup`] of each of `keys`, in order, the index read in
    /// one transaction (see [`super::index::Index::actions_with_indexed_blobs`])
    /// and the `index/` directory noted once: what a node with thousands
    /// of upstream entries looks up before it runs. Each result is what
    /// [`Store::lookup`] would have said of its key.
    pub fn lookup_many(&self, keys: &[&str], stats: &StatCache) -> Vec<Lookup> {
        if keys.is_empty() {
            return Vec::new();
        }
        self.note_index(stats.reads());
        let valid: Vec<&str> = keys.iter().copied().filter(|k| is_valid_key(k)).collect();
        let (mut rows, indexed) = match self.index().actions_with_indexed_blobs(&valid) {
            Ok((rows, indexed)) => (rows.into_iter(), indexed),
            Err(e) => {
                let reason = format!("cannot read the index: {e}");
                return keys
                    .iter()
                    .map(|key| {
                        if is_valid_key(key) {
                            Lookup::Corrupt(reason.clone())
                        } else {
                            Lookup::Corrupt(format!("not a store key: {key:?}"))
                        }
                    })
                    .collect();
            }
        };
        let indexed_of = |digest: &str| Ok(indexed.get(digest).cloned());
        keys.iter()
            .map(|key| {
                if !is_valid_key(key) {
                    return Lookup::Corrupt(format!("not a store key: {key:?}"));
                }
                let row = rows.next().expect("one row per valid key");
                self.lookup_row(key, Ok(row), stats, &indexed_of)
            })
            .collect()
    }

    /// The entries of nodes the node trace settled in this build, each
    /// given as its key and the output digest the trace recorded: their
    /// action rows read in one statement, each checked against its key
    /// and that digest, but their blobs not read again. The trace settled
    /// them only because every blob file each rests on still has the
    /// stat it had when last verified and the index is unchanged, which
    /// is the trust a hit from the trace already gets. `None` for a key
    /// whose row is missing or does not match: the caller looks it up in
    /// full.
    pub fn settled_entries(
        &self,
        settled: &[(&str, &str)],
        stats: &StatCache,
    ) -> Vec<Option<Entry>> {
        if settled.is_empty() {
            return Vec::new();
        }
        self.note_index(stats.reads());
        let entry = |key: &str, digest: &str, manifest: Arc<Manifest>| {
            (is_valid_key(key) && manifest.key == key && manifest.output_digest == digest).then(
                || Entry {
                    key: key.to_string(),
                    manifest,
                    store: self.clone(),
                },
            )
        };
        // Rows `admf serve` read ahead first ([`super::ahead`]), each
        // checked whole when read, then the index for the rest.
        let ahead = self.rows_ahead();
        let mut found: Vec<Option<Entry>> = settled
            .iter()
            .map(|&(key, digest)| {
                let manifest = ahead.as_ref()?.get(key)?.clone();
                entry(key, digest, manifest)
            })
            .collect();
        let rest: Vec<(usize, &str)> = settled
            .iter()
            .enumerate()
            .filter(|(i, _)| found[*i].is_none())
            .map(|(i, (key, _))| (i, *key))
            .collect();
        if rest.is_empty() {
            return found;
        }
        let keys: Vec<&str> = rest.iter().map(|(_, key)| *key).collect();
        let Ok(rows) = self.index().actions_of_keys(&keys) else {
            return found;
        };
        for ((i, key), row) in rest.into_iter().zip(rows) {
            if let Some(Ok(manifest)) = row
                && manifest.outputs_match_digest()
            {
                found[i] = entry(key, settled[i].1, Arc::new(manifest));
            }
        }
        found
    }

    /// The lookup of `key` given its action row as read from the index,
    /// with `indexed` giving the bytes of a blob the index holds (`None`:
    /// it holds none).
    fn lookup_row(
        &self,
        key: &str,
        row: io::Result<Option<Result<Manifest, String>>>,
        stats: &StatCache,
        indexed: &IndexedBlobs<'_>,
    ) -> Lookup {
        let manifest = match row {
            Ok(None) => return Lookup::Missing,
            Ok(Some(Ok(m))) => m,
            Ok(Some(Err(reason))) => return Lookup::Corrupt(reason),
            Err(e) => return Lookup::Corrupt(format!("cannot read the index: {e}")),
        };
        match self.check_manifest_with(key, &manifest, stats, indexed) {
            Ok(()) => Lookup::Hit(Entry {
                key: key.to_string(),
                manifest: manifest.into(),
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
        let indexed_of = |digest: &str| self.index().indexed_blob(digest);
        self.check_manifest_with(key, manifest, stats, &indexed_of)
    }

    /// [`Store::check_manifest`], blobs the index holds read through
    /// `indexed`.
    fn check_manifest_with(
        &self,
        key: &str,
        manifest: &Manifest,
        stats: &StatCache,
        indexed: &IndexedBlobs<'_>,
    ) -> Result<(), String> {
        if manifest.key != key {
            return Err(format!("action is for key {}", manifest.key));
        }
        if !manifest.outputs_match_digest() {
            return Err("output_digest does not match its outputs".to_string());
        }
        for (name, record) in &manifest.outputs {
            self.check_blob(&record.blake3, Some(record.size), stats, indexed)
                .map_err(|e| format!("output {name:?}: {e}"))?;
        }
        self.check_blob(&manifest.log_digest, None, stats, indexed)
            .map_err(|e| format!("log: {e}"))
    }

    /// Whether blob `digest` is stored with this size and content, a blob
    /// the index holds read through `indexed`.
    fn check_blob(
        &self,
        digest: &str,
        size: Option<u64>,
        stats: &StatCache,
        indexed: &IndexedBlobs<'_>,
    ) -> Result<(), String> {
        let held = indexed(digest).map_err(|e| format!("cannot read the index: {e}"))?;
        let (actual_size, actual) = match held {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ManifestMeta;
    use proptest::prelude::*;
    use std::path::Path;

    /// Commits an entry under `key` with one output `name` holding `bytes`.
    fn commit(store: &Store, key: &str, name: &str, bytes: &[u8]) -> Entry {
        let pending = store.begin(key).unwrap();
        std::fs::write(pending.out_dir().join(name), bytes).unwrap();
        let meta = ManifestMeta {
            node: "n".into(),
            mode: "command".into(),
            ingredients: serde_json::json!({}).into(),
            duration_ms: 0,
        };
        pending.commit(meta, b"log").unwrap()
    }

    #[test]
    fn a_settled_entry_is_its_row_only_when_the_row_ends_with_the_traced_digest() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let stats = StatCache::in_memory();
        let key = "7".repeat(64);
        let entry = commit(&store, &key, "out.txt", b"kept");
        let digest = entry.manifest.output_digest.clone();
        let missing = "8".repeat(64);
        let found = store.settled_entries(
            &[
                (key.as_str(), digest.as_str()),
                (key.as_str(), "another digest"),
                (missing.as_str(), digest.as_str()),
                ("not a key", digest.as_str()),
            ],
            &stats,
        );
        assert_eq!(found.len(), 4);
        assert_eq!(found[0].as_ref(), Some(&entry));
        // A row since replaced for its key, a row gone, no key: the caller
        // looks these up in full.
        assert_eq!(found[1..], [None, None, None]);
    }

    /// A store of entries in every state a lookup tells apart, and the
    /// keys to ask for: a hit with an inline output, a hit with a blob
    /// file, a blob file rewritten, an inline blob gone from the index,
    /// a key with no entry and a string that is no key.
    fn store_of_every_kind(root: &Path) -> (Store, Vec<String>) {
        let store = Store::open(root).unwrap();
        let key = |c: &str| c.repeat(64);
        commit(&store, &key("1"), "small.txt", b"small");
        commit(&store, &key("2"), "big.bin", &[2u8; 100 * 1024]);
        let rewritten = commit(&store, &key("3"), "big.bin", &[3u8; 100 * 1024]);
        let blob = rewritten.store_blob_path(&rewritten.manifest.outputs["big.bin"].blake3);
        let mut perms = std::fs::metadata(&blob).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&blob, perms).unwrap();
        std::fs::write(&blob, [9u8; 100 * 1024]).unwrap();
        let lost = commit(&store, &key("4"), "lost.txt", b"lost inline");
        store
            .index()
            .conn()
            .execute(
                "DELETE FROM blobs WHERE digest = ?1",
                [&lost.manifest.outputs["lost.txt"].blake3],
            )
            .unwrap();
        let keys = vec![
            key("1"),
            key("2"),
            key("3"),
            key("4"),
            key("5"),
            "xyz".into(),
        ];
        (store, keys)
    }

    #[test]
    fn a_batch_lookup_says_of_each_key_what_a_lookup_says() {
        let root = tempfile::tempdir().unwrap();
        let (store, keys) = store_of_every_kind(root.path());
        let stats = StatCache::in_memory();
        let asked: Vec<&str> = keys.iter().map(String::as_str).collect();
        let batch = store.lookup_many(&asked, &stats);
        let single: Vec<Lookup> = asked.iter().map(|k| store.lookup(k, &stats)).collect();
        assert_eq!(batch, single);
        assert!(matches!(batch[0], Lookup::Hit(_)));
        assert!(matches!(batch[1], Lookup::Hit(_)));
        assert!(
            matches!(&batch[2], Lookup::Corrupt(r) if r.contains("content changed")),
            "{:?}",
            batch[2]
        );
        assert!(
            matches!(&batch[3], Lookup::Corrupt(r) if r.contains("missing")),
            "{:?}",
            batch[3]
        );
        assert_eq!(batch[4], Lookup::Missing);
        assert!(matches!(&batch[5], Lookup::Corrupt(r) if r.contains("not a store key")));
    }

    #[test]
    fn a_batch_lookup_inside_an_open_commit_group_sees_the_group() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        store.set_group_commit(true).unwrap();
        let entry = commit(&store, &"6".repeat(64), "small.txt", b"grouped");
        let stats = StatCache::in_memory();
        let found = store.lookup_many(&[entry.key.as_str(), &"7".repeat(64)], &stats);
        assert_eq!(found, [Lookup::Hit(entry.clone()), Lookup::Missing]);
        // The group is still open and commits as it would have.
        let later = commit(&store, &"8".repeat(64), "small.txt", b"later");
        store.set_group_commit(false).unwrap();
        let again = store.lookup_many(&[entry.key.as_str(), later.key.as_str()], &stats);
        assert_eq!(again, [Lookup::Hit(entry), Lookup::Hit(later)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Any sequence of keys, repeats and non-keys among them: the
        /// batch gives each its own lookup's answer, in order.
        #[test]
        fn a_batch_lookup_keeps_the_order_of_any_keys(picks in proptest::collection::vec(0usize..6, 0..12)) {
            let root = tempfile::tempdir().unwrap();
            let (store, keys) = store_of_every_kind(root.path());
            let stats = StatCache::in_memory();
            let asked: Vec<&str> = picks.iter().map(|&i| keys[i].as_str()).collect();
            let single: Vec<Lookup> = asked.iter().map(|k| store.lookup(k, &stats)).collect();
            prop_assert_eq!(store.lookup_many(&asked, &stats), single);
        }
    }
}
