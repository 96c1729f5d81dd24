//! Entries: the committed [`Entry`] and the [`PendingEntry`] being written.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::cas::{INLINE_MAX, digest_of};
use super::fsutil::{now_unix, remove_tree, unique_suffix};
use super::lock::same_file;
use super::manifest::{MANIFEST_SCHEMA, Manifest, ManifestMeta, OutputRecord, output_digest};
use super::outputs::list_outputs;
use super::{Lookup, Store, check_key};
use crate::stat_cache::StatCache;

/// A committed, verified entry of the store.
#[derive(Clone)]
pub struct Entry {
    /// The entry's key.
    pub key: String,
    /// Its action record.
    pub manifest: std::sync::Arc<Manifest>,
    pub(crate) store: Store,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("manifest", &self.manifest)
            .finish()
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.manifest == other.manifest
            && self.store.root == other.store.root
    }
}

impl Entry {
    /// The store holding the entry.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The digest downstream keys hash (see [`output_digest`]).
    pub fn output_digest(&self) -> &str {
        &self.manifest.output_digest
    }

    /// Whether the entry has an output of this name.
    pub fn has(&self, name: &str) -> bool {
        self.manifest.outputs.contains_key(name)
    }

    /// The output names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.manifest.outputs.keys().map(String::as_str)
    }

    fn record(&self, name: &str) -> io::Result<&OutputRecord> {
        self.manifest.outputs.get(name).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("entry {} has no output {name:?}", &self.key[..12]),
            )
        })
    }

    /// The bytes of output `name`, checked against their digest.
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let record = self.record(name)?;
        self.store.read_blob(&record.blake3)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob of output {name:?} is missing from the store"),
            )
        })
    }

    /// A readable file holding output `name`: the blob's file, written
    /// first when the blob lives inside the index. Its content is checked
    /// when it was stored and on every lookup, not on each use of the path:
    /// prefer [`Entry::read`] where bytes will do.
    pub fn path(&self, name: &str) -> io::Result<PathBuf> {
        let record = self.record(name)?;
        let path = self.store.blob_path(&record.blake3);
        if path.is_file() {
            return Ok(path);
        }
        let bytes = self.read(name)?;
        self.store.put_blob_file(&record.blake3, &bytes)
    }

    /// Where the file of blob `digest` lives when the blob is large (see
    /// [`Store::blob_path`]).
    pub fn store_blob_path(&self, digest: &str) -> PathBuf {
        self.store.blob_path(digest)
    }

    /// The captured log.
    pub fn log(&self) -> io::Result<Vec<u8>> {
        Ok(self
            .store
            .read_blob(&self.manifest.log_digest)?
            .unwrap_or_default())
    }

    /// The outputs as ordinary files in `<store>/views/<key>/` (made once,
    /// through a temp dir and a rename; gc removes views): what `admf show`
    /// and a report's path point at.
    pub fn view(&self) -> io::Result<PathBuf> {
        let target = self.store.views_dir().join(&self.key);
        if target.is_dir() {
            return Ok(target);
        }
        let tmp = self
            .store
            .tmp_dir()
            .join(format!("view.{}", unique_suffix()));
        let result = (|| {
            for name in self.names() {
                let to = tmp.join(name);
                fs::create_dir_all(to.parent().expect("output has a parent"))?;
                let blob = self.store.blob_path(&self.record(name)?.blake3);
                if fs::hard_link(&blob, &to).is_err() {
                    fs::write(&to, self.read(name)?)?;
                }
            }
            fs::create_dir_all(self.store.views_dir())?;
            match fs::rename(&tmp, &target) {
                Ok(()) => Ok(()),
                Err(_) if target.is_dir() => remove_tree(&tmp),
                Err(e) => Err(e),
            }
        })();
        if result.is_err() {
            let _ = remove_tree(&tmp);
        }
        result.map(|()| target)
    }
}

/// An entry being written: outputs handed over in memory and, for a
/// writer of files, a temp dir `tmp/<key>.<pid>.<nonce>/` with an `out/`
/// subdir, locked by this writer so gc and verify leave it alone.
///
/// [`PendingEntry::commit`] turns it into an [`Entry`]; dropping it without
/// commit removes the temp dir.
#[derive(Debug)]
pub struct PendingEntry {
    store: Store,
    key: String,
    dir: PathBuf,
    out: PathBuf,
    // Whether `dir` was made (by [`Store::begin`]); an entry begun with
    // [`Store::begin_in_memory`] takes no file at all.
    made: bool,
    // Whether the commit found `dir` absent (an entry in memory whose
    // phase wrote no file after all): nothing is left to remove.
    absent: bool,
    // The ref (workflow id, node) the commit points at the key.
    ref_to: Option<(String, String)>,
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
        let out = dir.join("out");
        let pending = PendingEntry {
            store: self.clone(),
            key: key.to_string(),
            dir,
            out,
            made: true,
            absent: false,
            ref_to: None,
            lock: Some(lock),
        };
        fs::create_dir(&pending.out)?;
        Ok(pending)
    }

    /// Starts a new entry for `key` whose outputs all come as bytes (see
    /// [`PendingEntry::commit`]): nothing is created. The `out/` path it
    /// names is private to it all the same, and a phase that writes there
    /// after all fails its commit rather than losing the files.
    pub fn begin_in_memory(&self, key: &str) -> io::Result<PendingEntry> {
        check_key(key)?;
        let dir = self.tmp_dir().join(format!("{key}.{}", unique_suffix()));
        Ok(PendingEntry {
            store: self.clone(),
            key: key.to_string(),
            out: dir.join("out"),
            dir,
            made: false,
            absent: false,
            ref_to: None,
            lock: None,
        })
    }
}

/// One output file hashed at commit time; `bytes` for a small one.
struct Sealed {
    rel: String,
    path: PathBuf,
    record: OutputRecord,
    bytes: Option<Vec<u8>>,
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

    /// Makes the commit also point the ref of `node` in the workflow
    /// `workflow_id` at this key, in the same transaction.
    pub fn with_ref(mut self, workflow_id: &str, node: &str) -> Self {
        self.ref_to = Some((workflow_id.to_string(), node.to_string()));
        self
    }

    /// Seals the entry into the store.
    ///
    /// The outputs are the bytes in `memory` and every file under `out/`
    /// (sorted `/`-separated relative paths); a name in both is an error.
    /// Small outputs and the log become inline blobs; large files are made
    /// read-only and renamed into `blobs/`, large bytes written there.
    /// Then one transaction inserts the inline blobs and the action.
    ///
    /// If an entry for the key already exists (a concurrent writer won),
    /// it is kept and returned. Callers that hold [`Store::lock_key`]
    /// around lookup-and-commit never race here.
    ///
    /// Fails on symlinks or non-UTF-8 names under `out/`.
    pub fn commit(self, meta: ManifestMeta, log: &[u8]) -> io::Result<Entry> {
        self.seal(meta, log, BTreeMap::new(), false)
    }

    /// Like [`PendingEntry::commit`], but an existing entry for the key is
    /// replaced: what `--force` asks for, so a re-executed node whose
    /// outputs differ from the stored ones keeps the new ones. The caller
    /// must hold [`Store::lock_key`].
    pub fn commit_replacing(self, meta: ManifestMeta, log: &[u8]) -> io::Result<Entry> {
        self.seal(meta, log, BTreeMap::new(), true)
    }

    /// [`PendingEntry::commit`] (or, with `replace`,
    /// [`PendingEntry::commit_replacing`]) of the files under `out/` and
    /// the outputs handed over as bytes in `memory`.
    pub fn seal(
        mut self,
        meta: ManifestMeta,
        log: &[u8],
        memory: BTreeMap<String, OutputSource>,
        replace: bool,
    ) -> io::Result<Entry> {
        let files = if self.made {
            list_outputs(&self.out)?
        } else if fs::symlink_metadata(&self.dir).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the phase wrote files although it declared that it hands every output over in memory",
            ));
        } else {
            self.absent = true;
            Vec::new()
        };
        if let Some(both) = files.iter().find(|f| memory.contains_key(&f.rel)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "output {:?} was both written as a file and handed over in memory",
                    both.rel
                ),
            ));
        }
        // In parallel only when there are many: for the two files of a
        // trial, waking the thread pool costs more than hashing them.
        let sealed: Vec<Sealed> = if files.len() > 16 {
            files
                .into_par_iter()
                .map(|f| seal_file(f.rel, f.path))
                .collect::<io::Result<_>>()?
        } else {
            files
                .into_iter()
                .map(|f| seal_file(f.rel, f.path))
                .collect::<io::Result<_>>()?
        };
        let mut inline = Vec::new();
        let mut outputs = BTreeMap::new();
        for file in sealed {
            match file.bytes {
                Some(bytes) => inline.push((file.record.blake3.clone(), bytes)),
                None => {
                    // Over any file there: a corrupt one (the reason this
                    // node ran again) must not outlive the commit.
                    let target = self.store.blob_path(&file.record.blake3);
                    self.store.install_blob_file(&file.path, &target)?;
                }
            }
            outputs.insert(file.rel, file.record);
        }
        // Outputs naming blobs of this store: checked to be there, all
        // under one lock of the index, and recorded as they are.
        let mut stored: Vec<(String, OutputRecord)> = Vec::new();
        let mut handed = Vec::with_capacity(memory.len());
        for (rel, source) in memory {
            match source {
                OutputSource::Stored(record) => stored.push((rel, record)),
                other => handed.push((rel, other)),
            }
        }
        let digests: Vec<&str> = stored.iter().map(|(_, r)| r.blake3.as_str()).collect();
        for (digest, present) in digests.iter().zip(self.store.has_blobs(&digests)?) {
            if !present {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("an output names blob {digest}, which the store does not hold"),
                ));
            }
        }
        outputs.extend(stored);
        for (rel, source) in handed {
            let bytes = match source {
                OutputSource::Stored(_) => unreachable!("set apart above"),
                OutputSource::Bytes(bytes) => bytes,
                OutputSource::File(path) => match read_if_small(&path)? {
                    Some(bytes) => bytes,
                    None => {
                        outputs.insert(rel, self.store.put_blob_copy(&path)?);
                        continue;
                    }
                },
            };
            let record = OutputRecord {
                blake3: digest_of(&bytes),
                size: bytes.len() as u64,
            };
            if record.size <= INLINE_MAX {
                inline.push((record.blake3.clone(), bytes));
            } else {
                self.store.put_blob_file(&record.blake3, &bytes)?;
            }
            outputs.insert(rel, record);
        }
        let log_digest = digest_of(log);
        if log.len() as u64 <= INLINE_MAX {
            inline.push((log_digest.clone(), log.to_vec()));
        } else {
            self.store.put_blob_file(&log_digest, log)?;
        }
        let ingredients = meta.ingredients;
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA,
            key: self.key.clone(),
            node: meta.node,
            mode: meta.mode,
            ingredients,
            output_digest: output_digest(&outputs),
            outputs,
            log_digest,
            duration_ms: meta.duration_ms,
            created_unix: now_unix(),
        };
        let ref_to = self.ref_to.as_ref().map(|(w, n)| (w.as_str(), n.as_str()));
        let written =
            self.store
                .index()
                .insert_with_ref(&inline, Some(&manifest), replace, ref_to)?;
        if !written {
            return self.keep_existing_or_replace(manifest);
        }
        Ok(Entry {
            key: self.key.clone(),
            manifest: manifest.into(),
            store: self.store.clone(),
        })
    }
}

/// An output handed to [`PendingEntry::seal`] without a file in `out/`:
/// its bytes, a file elsewhere (a command's output in the workspace)
/// that the commit stores a copy of, or a blob the store already holds
/// (an upstream entry's output passed on unchanged, as a sweep's gather
/// passes on its trials' signals): recorded without being hashed or
/// written again.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputSource {
    Bytes(#[serde(with = "base64_bytes")] Vec<u8>),
    File(PathBuf),
    Stored(OutputRecord),
}

/// Bytes as base64 text in JSON: an action's outputs cross a process
/// boundary (`admf exec-action`) at a third over their size, not as a
/// list of numbers.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The bytes of the file at `path` when it is small enough to go inline.
fn read_if_small(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    if size > INLINE_MAX {
        return Ok(None);
    }
    let bytes = crate::file_stat::read_rest(&mut file, size)?;
    // Grown past the limit since the stat: still one read, still inline
    // only when small.
    Ok((bytes.len() as u64 <= INLINE_MAX).then_some(bytes))
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        // The outputs are in the store now (or were never wanted).
        if !self.absent {
            let _ = remove_tree(&self.dir);
        }
        drop(self.lock.take());
    }
}

/// Hashes one output file; keeps its bytes when it is small enough to go
/// inline, else fsyncs it (when durable) for the rename into `blobs/`.
fn seal_file(rel: String, path: PathBuf) -> io::Result<Sealed> {
    let mut file = File::open(&path)?;
    let size = file.metadata()?.len();
    if size <= INLINE_MAX {
        let bytes = crate::file_stat::read_rest(&mut file, size)?;
        return Ok(Sealed {
            rel,
            path,
            record: OutputRecord {
                blake3: digest_of(&bytes),
                size: bytes.len() as u64,
            },
            bytes: Some(bytes),
        });
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&file)?;
    if super::fsutil::durable() {
        file.sync_all()?;
    }
    Ok(Sealed {
        rel,
        path,
        record: OutputRecord {
            blake3: hasher.finalize().to_hex().to_string(),
            size,
        },
        bytes: None,
    })
}

/// The outputs of an action that handed every one over as bytes, hashed
/// and laid out for the index where the action ran ([`SealedOutputs::prepare`]),
/// so that committing them ([`Store::seal_batch`]) costs the coordinator
/// only the row writes.
#[derive(Debug)]
pub struct SealedOutputs {
    outputs: BTreeMap<String, OutputRecord>,
    /// `outputs` as the action row's `outputs` column holds it.
    outputs_json: String,
    output_digest: String,
    log_digest: String,
    /// Blobs small enough for the index: outputs, then the log.
    inline: Vec<(String, Vec<u8>)>,
    /// Larger outputs and log, written as blob files by the commit.
    large: Vec<(String, Vec<u8>)>,
    /// Blobs moved out of `inline` into a pack ([`Store::pack_sealed`]).
    packed: Vec<super::pack::PackedBlob>,
    /// The phase wrote into the private directory it was told it would
    /// not need: the commit fails, as [`PendingEntry::seal`] does.
    wrote_files: bool,
}

impl SealedOutputs {
    /// Hashes the outputs in `memory` and the `log` of an action whose
    /// entry was begun with [`Store::begin_in_memory`] at `out_dir`.
    /// Gives `memory` back when an output is not bytes (a file elsewhere,
    /// a stored blob): those take [`PendingEntry::seal`].
    pub fn prepare(
        memory: BTreeMap<String, OutputSource>,
        log: &[u8],
        out_dir: &Path,
    ) -> Result<SealedOutputs, BTreeMap<String, OutputSource>> {
        if !memory
            .values()
            .all(|source| matches!(source, OutputSource::Bytes(_)))
        {
            return Err(memory);
        }
        let wrote_files = out_dir
            .parent()
            .is_some_and(|dir| fs::symlink_metadata(dir).is_ok());
        let mut inline = Vec::with_capacity(memory.len() + 1);
        let mut large = Vec::new();
        let mut outputs = BTreeMap::new();
        let mut keep = |digest: &str, bytes: Vec<u8>| {
            if bytes.len() as u64 <= INLINE_MAX {
                inline.push((digest.to_string(), bytes));
            } else {
                large.push((digest.to_string(), bytes));
            }
        };
        for (rel, source) in memory {
            let OutputSource::Bytes(bytes) = source else {
                unreachable!("only bytes pass the check above");
            };
            let record = OutputRecord {
                blake3: digest_of(&bytes),
                size: bytes.len() as u64,
            };
            keep(&record.blake3, bytes);
            outputs.insert(rel, record);
        }
        let log_digest = digest_of(log);
        keep(&log_digest, log.to_vec());
        let outputs_json = serde_json::to_string(&outputs).unwrap_or_default();
        Ok(SealedOutputs {
            output_digest: output_digest(&outputs),
            outputs,
            outputs_json,
            log_digest,
            inline,
            large,
            packed: Vec::new(),
            wrote_files,
        })
    }
}

impl Store {
    /// Moves the inline blobs of at least [`super::pack::PACKED_MIN`]
    /// bytes of every one of `sealed` (the outputs of a chunk's trials,
    /// where the chunk ran) into one new pack. When the pack cannot be
    /// written they stay inline: nothing is lost but the speed.
    pub fn pack_sealed(&self, sealed: &mut [&mut SealedOutputs]) {
        let packable = |bytes: &Vec<u8>| bytes.len() as u64 >= super::pack::PACKED_MIN;
        let blobs: Vec<(&str, &[u8])> = sealed
            .iter()
            .flat_map(|s| s.inline.iter())
            .filter(|(_, bytes)| packable(bytes))
            .map(|(digest, bytes)| (digest.as_str(), bytes.as_slice()))
            .collect();
        if blobs.is_empty() {
            return;
        }
        let Ok(placed) = self.write_pack(&blobs) else {
            return;
        };
        let mut placed = placed.into_iter();
        for s in sealed.iter_mut() {
            s.inline.retain(|(_, bytes)| {
                if packable(bytes) {
                    s.packed
                        .push(placed.next().expect("one place per packed blob"));
                    false
                } else {
                    true
                }
            });
        }
    }
}

/// One entry of [`Store::seal_batch`].
pub struct BatchSeal {
    /// Begun with [`Store::begin_in_memory`], its ref set with
    /// [`PendingEntry::with_ref`].
    pub entry: PendingEntry,
    pub node: String,
    pub mode: String,
    /// The key's ingredients as JSON, as the key was computed from them.
    pub ingredients: super::manifest::RawJson,
    pub duration_ms: u64,
    pub sealed: SealedOutputs,
    /// Replace an existing entry (see [`PendingEntry::commit_replacing`]).
    pub replace: bool,
}

impl Store {
    /// The entry of `key` whose action row `manifest` was read and checked.
    pub(crate) fn entry_of(&self, key: &str, manifest: Manifest) -> Entry {
        Entry {
            key: key.to_string(),
            manifest: manifest.into(),
            store: self.clone(),
        }
    }

    /// Seals many entries whose outputs were prepared where their actions
    /// ran, writing all their rows in one call of the index (one
    /// transaction, the open group's while grouping). Each entry stays its
    /// own: the result of each is what [`PendingEntry::seal`] would give.
    pub fn seal_batch(&self, seals: Vec<BatchSeal>) -> Vec<io::Result<Entry>> {
        let created_unix = now_unix();
        let mut results: Vec<Option<io::Result<Entry>>> = Vec::with_capacity(seals.len());
        // (index in `results`, manifest, entry, what to write)
        let mut ready = Vec::with_capacity(seals.len());
        for seal in seals {
            let BatchSeal {
                mut entry,
                node,
                mode,
                ingredients,
                duration_ms,
                sealed,
                replace,
            } = seal;
            if entry.made || sealed.wrote_files {
                results.push(Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the phase wrote files although it declared that it hands every output over in memory",
                ))));
                continue;
            }
            entry.absent = true;
            let large = sealed
                .large
                .iter()
                .try_for_each(|(digest, bytes)| self.put_blob_file(digest, bytes).map(drop));
            if let Err(e) = large {
                results.push(Some(Err(e)));
                continue;
            }
            let manifest = Manifest {
                schema: MANIFEST_SCHEMA,
                key: entry.key.clone(),
                node,
                mode,
                ingredients,
                output_digest: sealed.output_digest,
                outputs: sealed.outputs,
                log_digest: sealed.log_digest,
                duration_ms,
                created_unix,
            };
            results.push(None);
            ready.push((
                results.len() - 1,
                manifest,
                entry,
                sealed.inline,
                sealed.packed,
                sealed.outputs_json,
                replace,
            ));
        }
        let rows: Vec<super::index::ActionRows<'_>> = ready
            .iter()
            .map(
                |(_, manifest, entry, inline, packed, outputs_json, replace)| {
                    super::index::ActionRows {
                        blobs: inline,
                        packed,
                        action: manifest,
                        outputs_json,
                        replace: *replace,
                        ref_to: entry.ref_to.as_ref().map(|(w, n)| (w.as_str(), n.as_str())),
                    }
                },
            )
            .collect();
        let written = self.index().insert_batch(&rows);
        drop(rows);
        match written {
            Ok(written) => {
                for ((at, manifest, entry, ..), written) in ready.into_iter().zip(written) {
                    results[at] = Some(if written {
                        Ok(Entry {
                            key: entry.key.clone(),
                            manifest: manifest.into(),
                            store: self.clone(),
                        })
                    } else {
                        entry.keep_existing_or_replace(manifest)
                    });
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (at, ..) in ready {
                    results[at] = Some(Err(io::Error::new(e.kind(), message.clone())));
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every entry has its result"))
            .collect()
    }
}

impl PendingEntry {
    /// The commit of `manifest` found an action row under the key (a
    /// concurrent writer won): its entry stands unless it cannot be
    /// trusted, and then `manifest` replaces it.
    fn keep_existing_or_replace(&self, manifest: Manifest) -> io::Result<Entry> {
        match self.store.lookup(&self.key, &StatCache::in_memory()) {
            Lookup::Hit(existing) => return Ok(existing),
            Lookup::Missing | Lookup::Corrupt(_) => {
                self.store.index().insert(&[], Some(&manifest), true)?;
            }
        }
        Ok(Entry {
            key: self.key.clone(),
            manifest: manifest.into(),
            store: self.store.clone(),
        })
    }
}
