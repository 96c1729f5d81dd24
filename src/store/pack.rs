//! Packs: the larger outputs of a chunk of trials, written back to back
//! into one file `packs/<name>` where the chunk ran, and found through the
//! index's `packed` table (digest → pack, offset, size).
//!
//! A sweep's trial signals are a few to some tens of KiB each. Inline in
//! the index, every byte is copied into SQLite's pages, written to the
//! WAL, checksummed there and copied again into the database by the
//! checkpoint, all of it on the coordinator while it also decides and
//! commits; in a pack it is one `write` on the worker that ran the chunk,
//! and the coordinator inserts a row of four small columns per blob.
//!
//! A pack is written whole before any row names it and never changed
//! after: a kill before the rows commit leaves a pack no row names, which
//! gc removes (it runs only while no build does, so no pack is being
//! written then). Reads check every blob against its digest as inline
//! blobs are: a pack cut short or gone reads as fewer bytes than its rows
//! say, which never hash to their digests. gc drops the rows of dead
//! blobs, removes packs no row names and rewrites a pack whose live bytes
//! are less than half of it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Store;
use super::fsutil::{fsync_dir, remove_file_if_exists, unique_suffix};

/// Blobs of a chunk at least this large go into its pack; smaller ones
/// (a trial's metrics and log) stay inline, where a statement reads many
/// of them at once (the run ledger's metrics).
pub const PACKED_MIN: u64 = 4 * 1024;

/// Where a packed blob lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBlob {
    pub digest: String,
    /// The pack's file name under `packs/`.
    pub pack: Arc<str>,
    pub offset: u64,
    pub size: u64,
}

/// The directory of packs under a store's root.
pub(crate) fn packs_dir(root: &Path) -> PathBuf {
    root.join("packs")
}

/// Whether `name` could be a pack's file name (what a row may name: no
/// path separators, so a forged row cannot point outside `packs/`).
pub(crate) fn is_pack_name(name: &str) -> bool {
    !name.is_empty()
        && name.ends_with(".pack")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Writes every byte of `pieces` (`Write::write_all_vectored`, which is
/// not stable yet): `writev` takes a limited number of pieces per call
/// and may write part of them.
fn write_all_vectored(file: &mut File, mut pieces: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    io::IoSlice::advance_slices(&mut pieces, 0);
    while !pieces.is_empty() {
        match file.write_vectored(pieces) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut pieces, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads `size` bytes at `offset` of `file`: fewer when the file ends
/// first (see the module docs).
pub(crate) fn read_range(file: &File, offset: u64, size: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; size as usize];
    let mut filled = 0usize;
    while filled < bytes.len() {
        match file.read_at(&mut bytes[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

impl Store {
    pub(crate) fn packs_dir(&self) -> PathBuf {
        packs_dir(self.root())
    }

    /// Writes `blobs` (digest, bytes) back to back into a new pack, each
    /// digest once, and says where each went. Flushed to disk before it
    /// returns when writes are durable, so that no row can name bytes a
    /// power loss could take. A failed write leaves no pack behind.
    pub fn write_pack(&self, blobs: &[(&str, &[u8])]) -> io::Result<Vec<PackedBlob>> {
        let dir = self.packs_dir();
        fs::create_dir_all(&dir)?;
        let name: Arc<str> = format!("{}.pack", unique_suffix().replace('.', "-")).into();
        let path = dir.join(&*name);
        let mut placed = Vec::with_capacity(blobs.len());
        let mut at: std::collections::HashMap<&str, (u64, u64)> = Default::default();
        // The blobs are written from where they are (`writev`), not
        // copied into one buffer first: a 10,000-trial sweep writes
        // 140 MB of signals.
        let mut pieces: Vec<io::IoSlice<'_>> = Vec::with_capacity(blobs.len());
        let mut end = 0u64;
        for &(digest, blob) in blobs {
            let (offset, size) = *at.entry(digest).or_insert_with(|| {
                let offset = end;
                end += blob.len() as u64;
                pieces.push(io::IoSlice::new(blob));
                (offset, blob.len() as u64)
            });
            placed.push(PackedBlob {
                digest: digest.to_string(),
                pack: name.clone(),
                offset,
                size,
            });
        }
        let written = (|| {
            let mut file = File::options().write(true).create_new(true).open(&path)?;
            write_all_vectored(&mut file, &mut pieces)?;
            if super::fsutil::durable() {
                file.sync_all()?;
                fsync_dir(&dir)?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            let _ = remove_file_if_exists(&path);
            return Err(e);
        }
        Ok(placed)
    }

    /// Every file under `packs/`, by name.
    pub(crate) fn pack_files(&self) -> io::Result<Vec<(String, PathBuf)>> {
        let dir = self.packs_dir();
        let items = match fs::read_dir(&dir) {
            Ok(items) => items,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for item in items {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            files.push((name, item.path()));
        }
        files.sort();
        Ok(files)
    }
}

impl Store {
    /// gc's part of packs, given the rows of the live packed blobs:
    /// removes every file under `packs/` that none of them is in, and
    /// rewrites a pack whose live bytes are less than half of it into a
    /// new one (the rows pointed at it in one transaction, then the old
    /// file removed). Returns the bytes this frees (or, with `dry_run`,
    /// would free). A kill part way leaves a pack no row names, which the
    /// next gc removes; gc runs while no build does, so no pack is being
    /// written meanwhile.
    pub(crate) fn collect_packs(
        &self,
        live: &[PackedBlob],
        dry_run: bool,
        not_removed: &mut Vec<(PathBuf, String)>,
    ) -> io::Result<u64> {
        let mut by_pack: std::collections::HashMap<&str, Vec<&PackedBlob>> = Default::default();
        for row in live {
            by_pack.entry(&row.pack).or_default().push(row);
        }
        let mut freed = 0;
        for (name, path) in self.pack_files()? {
            let size = fs::symlink_metadata(&path).map_or(0, |m| m.len());
            let rows = by_pack.get(name.as_str()).map_or(&[][..], Vec::as_slice);
            // Saturating: a row written by anything but admf may say anything.
            let live_bytes = rows.iter().fold(0u64, |sum, r| sum.saturating_add(r.size));
            if live_bytes == 0 {
                freed += size;
                if !dry_run && let Err(e) = remove_file_if_exists(&path) {
                    not_removed.push((path, e.to_string()));
                }
            } else if live_bytes.saturating_mul(2) < size {
                freed += size - live_bytes;
                if !dry_run {
                    let bytes = rows
                        .iter()
                        .map(|r| self.index().packed_bytes(r))
                        .collect::<io::Result<Vec<_>>>()?;
                    let blobs: Vec<(&str, &[u8])> = rows
                        .iter()
                        .zip(&bytes)
                        .map(|(r, b)| (r.digest.as_str(), b.as_slice()))
                        .collect();
                    let moved = self.write_pack(&blobs)?;
                    self.index().repoint_packed(&moved)?;
                    if let Err(e) = remove_file_if_exists(&path) {
                        not_removed.push((path, e.to_string()));
                    }
                }
            }
        }
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat_cache::StatCache;
    use crate::store::{BatchSeal, Entry, Lookup, OutputSource, RawJson, SealedOutputs};
    use std::collections::BTreeMap;

    /// Seals one entry per `(key, signal bytes)` the way a chunk of trials
    /// is committed: prepared and packed where it "ran", then its rows
    /// written together.
    fn commit_chunk(store: &Store, trials: &[(String, Vec<u8>)]) -> Vec<Entry> {
        let mut prepared: Vec<(String, SealedOutputs)> = trials
            .iter()
            .map(|(key, signal)| {
                let pending = store.begin_in_memory(key).unwrap();
                let memory = BTreeMap::from([
                    (
                        "signal.jsonl".to_string(),
                        OutputSource::Bytes(signal.clone()),
                    ),
                    (
                        "metrics.json".to_string(),
                        OutputSource::Bytes(format!("{{\"key\": \"{key}\"}}").into_bytes()),
                    ),
                ]);
                let sealed = SealedOutputs::prepare(memory, b"log", pending.out_dir()).unwrap();
                (key.clone(), sealed)
            })
            .collect();
        let mut refs: Vec<&mut SealedOutputs> = prepared.iter_mut().map(|(_, s)| s).collect();
        store.pack_sealed(&mut refs);
        let seals = prepared
            .into_iter()
            .map(|(key, sealed)| BatchSeal {
                entry: store.begin_in_memory(&key).unwrap(),
                node: format!("n[{}]", &key[..4]),
                mode: "signal_generation".into(),
                ingredients: RawJson::of(&serde_json::json!({})).unwrap(),
                duration_ms: 1,
                sealed,
                replace: false,
            })
            .collect();
        store
            .seal_batch(seals)
            .into_iter()
            .map(Result::unwrap)
            .collect()
    }

    fn key(i: u8) -> String {
        format!("{i:02x}").repeat(32)
    }

    fn signal(i: u8, len: usize) -> Vec<u8> {
        (0..len).map(|k| (k as u8).wrapping_mul(31) ^ i).collect()
    }

    fn rows(store: &Store) -> Vec<PackedBlob> {
        store.index().packed_rows().unwrap()
    }

    #[test]
    fn a_chunks_large_outputs_share_one_pack_and_read_back_checked() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let trials: Vec<(String, Vec<u8>)> = (0..3).map(|i| (key(i), signal(i, 6000))).collect();
        let entries = commit_chunk(&store, &trials);
        // One pack with the three signals; the small metrics and logs inline.
        assert_eq!(store.pack_files().unwrap().len(), 1);
        assert_eq!(rows(&store).len(), 3);
        let stats = StatCache::in_memory();
        for ((key, bytes), entry) in trials.iter().zip(&entries) {
            assert_eq!(store.lookup(key, &stats), Lookup::Hit(entry.clone()));
            assert_eq!(&entry.read("signal.jsonl").unwrap(), bytes);
            assert!(entry.read("metrics.json").unwrap().starts_with(b"{\"key\""));
        }
        let keys: Vec<&str> = trials.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            store
                .lookup_many(&keys, &stats)
                .iter()
                .all(|l| matches!(l, Lookup::Hit(_)))
        );
        let digests: Vec<String> = rows(&store).into_iter().map(|r| r.digest).collect();
        let digests: Vec<&str> = digests.iter().map(String::as_str).collect();
        assert_eq!(store.has_blobs(&digests).unwrap(), [true, true, true]);
    }

    #[test]
    fn a_pack_gone_or_rewritten_makes_its_entries_corrupt_and_a_new_commit_heals_them() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let trials = vec![(key(1), signal(1, 5000)), (key(2), signal(2, 5000))];
        commit_chunk(&store, &trials);
        let pack = store.pack_files().unwrap().remove(0).1;
        let stats = StatCache::in_memory();
        // A flipped byte in the second blob: only its entry is corrupt.
        let mut bytes = fs::read(&pack).unwrap();
        bytes[7000] ^= 1;
        fs::write(&pack, &bytes).unwrap();
        assert!(matches!(store.lookup(&trials[0].0, &stats), Lookup::Hit(_)));
        assert!(
            matches!(&store.lookup(&trials[1].0, &stats), Lookup::Corrupt(r) if r.contains("content changed")),
            "{:?}",
            store.lookup(&trials[1].0, &stats)
        );
        // The pack gone: both.
        fs::remove_file(&pack).unwrap();
        for (key, _) in &trials {
            assert!(matches!(store.lookup(key, &stats), Lookup::Corrupt(_)));
            let Lookup::Corrupt(_) = store.lookup_many(&[key.as_str()], &stats)[0] else {
                panic!("a batch lookup of {key} must be corrupt too");
            };
        }
        let digest = rows(&store)[0].digest.clone();
        assert!(
            store.read_blob(&digest).is_err(),
            "a blob of a gone pack reads as corrupt"
        );
        // Computed again and committed: the packed rows now name the new
        // pack, and the action rows stand.
        let again = commit_chunk(&store, &trials);
        for ((key, bytes), entry) in trials.iter().zip(&again) {
            assert!(matches!(store.lookup(key, &stats), Lookup::Hit(_)));
            assert_eq!(&entry.read("signal.jsonl").unwrap(), bytes);
        }
    }

    #[test]
    fn a_forged_packed_row_reads_as_corrupt_without_a_large_allocation() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let trials = vec![(key(1), signal(1, 5000))];
        commit_chunk(&store, &trials);
        let row = rows(&store).remove(0);
        let stats = StatCache::in_memory();
        for (pack, offset, size) in [
            ("../../escape.pack", 0, 5000),
            (&*row.pack, 0, i64::MAX),
            (&*row.pack, -1, 5000),
            (&*row.pack, i64::MAX - 10, 5000),
        ] {
            store
                .index()
                .conn()
                .execute(
                    "UPDATE packed SET pack = ?1, offset = ?2, size = ?3",
                    rusqlite::params![pack, offset, size],
                )
                .unwrap();
            assert!(
                matches!(store.lookup(&trials[0].0, &stats), Lookup::Corrupt(_)),
                "{pack} {offset} {size}"
            );
            assert!(store.read_blob(&row.digest).is_err());
            let report = store.verify(false).unwrap();
            assert!(report.found_corruption(), "{report:?}");
        }
    }

    #[test]
    fn gc_removes_dead_packs_and_rewrites_mostly_dead_ones() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        // Pack A: four trials, three of which die. Pack B: one trial, dead.
        let a: Vec<(String, Vec<u8>)> = (0..4).map(|i| (key(i), signal(i, 8000))).collect();
        let a_entries = commit_chunk(&store, &a);
        let b = vec![(key(9), signal(9, 9000))];
        commit_chunk(&store, &b);
        // An orphan: a pack whose rows never committed (a killed build).
        let orphan = store.write_pack(&[("dd", &[7u8; 4096])]).unwrap();
        assert_eq!(store.pack_files().unwrap().len(), 3);
        // Trial 2 stays, referenced by a ref.
        store
            .index()
            .insert_with_ref(&[], Some(&*a_entries[2].manifest), true, Some(("w", "n")))
            .unwrap();
        let dry = store
            .gc(crate::store::GcPolicy {
                dry_run: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            store.pack_files().unwrap().len(),
            3,
            "a dry run removes nothing"
        );
        let report = store.gc(Default::default()).unwrap();
        assert_eq!(report.removed_bytes, dry.removed_bytes);
        // Freed: B whole, the orphan whole, A less its live 8000 bytes,
        // and the inline metrics of the four removed entries (75 bytes
        // each; the log, the same bytes for all, lives on).
        assert_eq!(
            report.removed_bytes,
            9000 + 4096 + 3 * 8000 + 4 * 75,
            "{report:?}"
        );
        let packs = store.pack_files().unwrap();
        assert_eq!(packs.len(), 1, "{packs:?}");
        assert!(!packs.iter().any(|(name, _)| *name == *orphan[0].pack));
        assert_eq!(fs::metadata(&packs[0].1).unwrap().len(), 8000);
        // The survivor reads back from its new pack.
        let rows = rows(&store);
        assert_eq!(rows.len(), 1);
        assert_eq!(&*rows[0].pack, packs[0].0.as_str());
        let stats = StatCache::in_memory();
        let Lookup::Hit(entry) = store.lookup(&a[2].0, &stats) else {
            panic!("the referenced trial survives gc");
        };
        assert_eq!(entry.read("signal.jsonl").unwrap(), a[2].1);
        assert_eq!(store.lookup(&a[0].0, &stats), Lookup::Missing);
        // Nothing left to do.
        let again = store.gc(Default::default()).unwrap();
        assert_eq!(again.removed_bytes, 0, "{again:?}");
    }

    #[test]
    fn verify_finds_a_rotten_packed_blob_and_repair_turns_its_entry_into_a_miss() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let trials = vec![(key(1), signal(1, 5000)), (key(2), signal(2, 5000))];
        commit_chunk(&store, &trials);
        let report = store.verify(false).unwrap();
        assert!(report.is_clean(), "{report:?}");
        let pack = store.pack_files().unwrap().remove(0).1;
        let mut bytes = fs::read(&pack).unwrap();
        bytes[10] ^= 1;
        fs::write(&pack, &bytes).unwrap();
        let report = store.verify(false).unwrap();
        let found: Vec<&str> = report.corrupt.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("in pack"), "{found:?}");
        assert_eq!(report.corrupt[1].key.as_deref(), Some(trials[0].0.as_str()));
        let repaired = store.verify(true).unwrap();
        assert!(repaired.repaired);
        let stats = StatCache::in_memory();
        assert_eq!(store.lookup(&trials[0].0, &stats), Lookup::Missing);
        assert!(matches!(store.lookup(&trials[1].0, &stats), Lookup::Hit(_)));
        assert!(store.verify(false).unwrap().is_clean());
    }

    #[test]
    fn a_pack_holds_each_digest_once_and_reads_back_by_range() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let a = vec![1u8; 5000];
        let b = vec![2u8; 7000];
        let placed = store
            .write_pack(&[("da", &a), ("db", &b), ("da", &a)])
            .unwrap();
        assert_eq!(placed.len(), 3);
        assert_eq!((placed[0].offset, placed[0].size), (0, 5000));
        assert_eq!((placed[1].offset, placed[1].size), (5000, 7000));
        assert_eq!(placed[2], placed[0]);
        assert!(is_pack_name(&placed[0].pack), "{}", placed[0].pack);
        let path = store.packs_dir().join(&*placed[0].pack);
        assert_eq!(fs::metadata(&path).unwrap().len(), 12_000);
        let file = File::open(&path).unwrap();
        assert_eq!(read_range(&file, 5000, 7000).unwrap(), b);
        // Past the end: what is there, short.
        assert_eq!(read_range(&file, 11_000, 7000).unwrap(), vec![2u8; 1000]);
        assert!(read_range(&file, 12_000, 10).unwrap().is_empty());
    }

    #[test]
    fn pack_names_cannot_leave_the_packs_directory() {
        assert!(is_pack_name("123-45678.pack"));
        for bad in [
            "",
            "../x.pack",
            "a/b.pack",
            "x.blob",
            ".pack/..",
            "a b.pack",
        ] {
            assert!(!is_pack_name(bad), "{bad}");
        }
    }
}
