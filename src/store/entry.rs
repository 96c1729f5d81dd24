//! Entries: the committed [`Entry`] and the [`PendingEntry`] being written.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::fsutil::{fsync_dir, now_unix, remove_tree, unique_suffix, write_synced};
use super::lock::same_file;
use super::manifest::{MANIFEST_SCHEMA, Manifest, ManifestMeta, OutputRecord, output_digest};
use super::outputs::{OutputFile, list_dirs, list_outputs};
use super::{LOG_FILE, Lookup, MANIFEST_FILE, OUT_DIR, Store, check_key};
use crate::stat_cache::StatCache;

/// A committed, verified entry of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The entry's key.
    pub key: String,
    /// `objects/<key[0..2]>/<key>`.
    pub dir: PathBuf,
    /// Its parsed manifest.
    pub manifest: Manifest,
}

impl Entry {
    /// The directory holding the outputs: `dir/out`.
    pub fn out_dir(&self) -> PathBuf {
        self.dir.join(OUT_DIR)
    }

    /// The captured log: `dir/log.txt`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// The digest downstream keys hash (see [`output_digest`]).
    pub fn output_digest(&self) -> &str {
        &self.manifest.output_digest
    }
}

/// An entry being written: a temp dir `tmp/<key>.<pid>.<nonce>/` with an
/// `out/` subdir, locked by this writer so gc and verify leave it alone.
///
/// [`PendingEntry::commit`] turns it into an [`Entry`]; dropping it without
/// commit removes the temp dir.
#[derive(Debug)]
pub struct PendingEntry {
    store: Store,
    key: String,
    dir: PathBuf,
    out: PathBuf,
    // The flock on `dir`, dropped after `dir` is removed (see `Drop`),
    // so the lock covers it.
    lock: Option<File>,
}

impl Store {
    /// Starts a new entry for `key`: creates and locks a temp dir under
    /// `tmp/` with an empty `out/` for the node to write into.
    pub fn begin(&self, key: &str) -> io::Result<PendingEntry> {
        check_key(key)?;
        let (dir, lock) = loop {
            let dir = self.tmp_dir().join(format!("{key}.{}", unique_suffix()));
            fs::create_dir(&dir)?;
            // The flock is on the directory itself, so a writer creates
            // and deletes no lock file. A sweeper that got in between
            // creating and locking has deleted the dir: start over.
            let lock = File::open(&dir)?;
            lock.lock()?;
            if same_file(&lock, &dir)? {
                break (dir, lock);
            }
        };
        let out = dir.join(OUT_DIR);
        let pending = PendingEntry {
            store: self.clone(),
            key: key.to_string(),
            dir,
            out,
            lock: Some(lock),
        };
        fs::create_dir(&pending.out)?;
        Ok(pending)
    }
}

impl PendingEntry {
    /// Where the node writes its outputs.
    pub fn out_dir(&self) -> &Path {
        &self.out
    }

    /// The key this entry is for.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Seals the entry and moves it into `objects/`.
    ///
    /// Hashes every file under `out/` (sorted `/`-separated relative paths),
    /// makes them read-only and fsyncs them, writes `log.txt`, then
    /// `manifest.json` last, fsyncs the directories, and renames the temp
    /// dir to `objects/<key[0..2]>/<key>` in one step.
    ///
    /// If a valid entry for the key already exists (a concurrent writer
    /// won), ours is discarded and the existing entry returned. An existing
    /// corrupt entry is moved aside and replaced. Callers that hold
    /// [`Store::lock_key`] around lookup-and-commit never race here.
    ///
    /// Fails on symlinks or non-UTF-8 names under `out/`.
    pub fn commit(self, meta: ManifestMeta, log: &[u8]) -> io::Result<Entry> {
        self.seal(meta, log, false)
    }

    /// Like [`PendingEntry::commit`], but an existing entry for the key is
    /// discarded and replaced: what `--force` asks for, so a re-executed
    /// node whose outputs differ from the stored ones keeps the new ones.
    /// The caller must hold [`Store::lock_key`].
    pub fn commit_replacing(self, meta: ManifestMeta, log: &[u8]) -> io::Result<Entry> {
        self.seal(meta, log, true)
    }

    fn seal(self, meta: ManifestMeta, log: &[u8], replace: bool) -> io::Result<Entry> {
        let files = list_outputs(&self.out)?;
        let outputs = seal_outputs(&files)?;
        for dir in list_dirs(&self.out) {
            fsync_dir(&dir)?;
        }
        write_synced(&self.dir.join(LOG_FILE), log)?;
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA,
            key: self.key.clone(),
            node: meta.node,
            mode: meta.mode,
            ingredients: super::manifest::RawJson::from_value(&meta.ingredients)?,
            output_digest: output_digest(&outputs),
            outputs,
            duration_ms: meta.duration_ms,
            created_unix: now_unix(),
        };
        let mut json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
        json.push(b'\n');
        write_synced(&self.dir.join(MANIFEST_FILE), &json)?;
        fsync_dir(&self.dir)?;
        self.install(manifest, replace)
    }

    fn install(self, manifest: Manifest, replace: bool) -> io::Result<Entry> {
        let target = self.store.entry_dir(&self.key);
        let parent = target.parent().expect("entry dir has a parent");
        fs::create_dir_all(parent)?;
        if replace && target.exists() {
            self.store.discard_dir(&target)?;
        }
        let mut last_err = None;
        for _ in 0..4 {
            match fs::rename(&self.dir, &target) {
                Ok(()) => {
                    fsync_dir(parent)?;
                    return Ok(Entry {
                        key: self.key.clone(),
                        dir: target,
                        manifest,
                    });
                }
                Err(e) if target.exists() => {
                    match self.store.lookup(&self.key, &StatCache::in_memory()) {
                        Lookup::Hit(existing) => return Ok(existing),
                        Lookup::Missing => {}
                        Lookup::Corrupt(_) => self.store.discard_dir(&target)?,
                    }
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("could not install entry")))
    }
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        // After a successful rename the temp dir is gone and this is a no-op.
        let _ = remove_tree(&self.dir);
        drop(self.lock.take());
    }
}

/// Hashes, fsyncs and write-protects every output file, in parallel.
fn seal_outputs(files: &[OutputFile]) -> io::Result<BTreeMap<String, OutputRecord>> {
    files
        .par_iter()
        .map(|file| {
            let record = seal_file(&file.path)?;
            Ok((file.rel.clone(), record))
        })
        .collect()
}

fn seal_file(path: &Path) -> io::Result<OutputRecord> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&file)?;
    if super::fsutil::durable() {
        file.sync_all()?;
    }
    let mut perms = meta.permissions();
    perms.set_readonly(true);
    fs::set_permissions(path, perms)?;
    Ok(OutputRecord {
        blake3: hasher.finalize().to_hex().to_string(),
        size: meta.len(),
    })
}

impl Store {
    /// Removes a directory (or stray file) under the store atomically from
    /// the point of view of readers: renamed into `tmp/` first, then deleted.
    pub(crate) fn discard_dir(&self, dir: &Path) -> io::Result<()> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let aside = self
            .tmp_dir()
            .join(format!("{name}.discard.{}", unique_suffix()));
        match fs::rename(dir, &aside) {
            Ok(()) if aside.is_dir() => remove_tree(&aside),
            Ok(()) => fs::remove_file(&aside),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
