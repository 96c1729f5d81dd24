//! Listing entries (`admf cache ls`) and collecting garbage (`admf cache gc`).

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::fsutil::{now_unix, tree_size};
use super::lookup::read_manifest;
use super::manifest::Manifest;
use super::{Store, is_valid_key};

/// One entry as `cache ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySummary {
    /// The entry's key.
    pub key: String,
    /// The node that produced it.
    pub node: String,
    /// The phase mode that produced it.
    pub mode: String,
    /// Total size of its outputs in bytes.
    pub size: u64,
    /// When it was committed, seconds since the Unix epoch.
    pub created_unix: u64,
    /// Whether some ref points at it.
    pub referenced: bool,
}

/// What `gc` removes. Entries named by a ref are always kept; among the
/// others, an entry is removed unless one of the set rules keeps it. The
/// default policy removes every unreferenced entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPolicy {
    /// Keep the N most recently created unreferenced entries (`--keep N`).
    pub keep_recent: Option<usize>,
    /// Keep unreferenced entries younger than this (`--older-than D`
    /// removes only entries older than D).
    pub older_than: Option<Duration>,
    /// Wait for running builds to finish instead of failing with
    /// [`io::ErrorKind::WouldBlock`] ("a build is running").
    pub wait: bool,
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
}

/// What `gc` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Keys of the removed entries, oldest first.
    pub removed: Vec<String>,
    /// Bytes freed by removing entries and invalid directories.
    pub removed_bytes: u64,
    /// Entries kept because a ref names them.
    pub kept_referenced: usize,
    /// Unreferenced entries kept by the policy.
    pub kept_unreferenced: usize,
    /// Directories under `objects/` that were not valid entries, removed.
    pub removed_invalid: Vec<PathBuf>,
    /// Leftovers of dead writers under `tmp/`, `locks/` and `refs/`, removed.
    pub removed_debris: Vec<PathBuf>,
}

/// A directory found under `objects/`, with its manifest or why it has none.
pub(crate) struct ObjectDir {
    pub(crate) dir: PathBuf,
    pub(crate) key: Option<String>,
    pub(crate) manifest: Result<Manifest, String>,
}

impl Store {
    /// Every directory under `objects/<xx>/`, sorted by path, with its
    /// manifest read and checked (outputs are not hashed).
    pub(crate) fn scan_objects(&self) -> io::Result<Vec<ObjectDir>> {
        let mut found = Vec::new();
        if !self.objects_dir().exists() {
            return Ok(found);
        }
        for item in walkdir::WalkDir::new(self.objects_dir())
            .min_depth(1)
            .max_depth(2)
            .sort_by_file_name()
        {
            let item = item.map_err(io::Error::from)?;
            let name = item.file_name().to_string_lossy().into_owned();
            if item.depth() == 1 {
                if !item.file_type().is_dir() {
                    found.push(invalid(item.into_path(), "stray file in objects/"));
                }
                continue;
            }
            let parent_ok = item
                .path()
                .parent()
                .and_then(|p| p.file_name())
                .is_some_and(|p| name.get(..2) == p.to_str());
            if !is_valid_key(&name) || !parent_ok || !item.file_type().is_dir() {
                found.push(invalid(item.into_path(), "not an entry name"));
                continue;
            }
            let manifest = read_manifest(item.path(), &name);
            found.push(ObjectDir {
                dir: item.into_path(),
                key: Some(name),
                manifest,
            });
        }
        Ok(found)
    }

    /// Every valid entry (judged by its manifest; outputs are not hashed),
    /// oldest first.
    pub fn ls(&self) -> io::Result<Vec<EntrySummary>> {
        let refs = self.referenced_keys()?;
        let mut out: Vec<EntrySummary> = self
            .scan_objects()?
            .into_iter()
            .filter_map(|o| {
                let m = o.manifest.ok()?;
                Some(EntrySummary {
                    referenced: refs.contains(&m.key),
                    size: m.output_size(),
                    key: m.key,
                    node: m.node,
                    mode: m.mode,
                    created_unix: m.created_unix,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.created_unix, &a.key).cmp(&(b.created_unix, &b.key)));
        Ok(out)
    }

    /// Removes unreferenced entries per `policy`, every directory under
    /// `objects/` that is not a valid entry, and leftovers of dead writers.
    ///
    /// Takes `gc.lock` exclusively, so it never runs while a build holds a
    /// [`BuildGuard`](super::BuildGuard): without `policy.wait` it fails
    /// at once with [`io::ErrorKind::WouldBlock`] and "a build is running".
    /// Entries vanish atomically (renamed into `tmp/`, then deleted).
    pub fn gc(&self, policy: GcPolicy) -> io::Result<GcReport> {
        let _exclusive = self.gc_exclusive(policy.wait)?;
        let refs = self.referenced_keys()?;
        let mut report = GcReport::default();
        let mut unreferenced = Vec::new();
        for object in self.scan_objects()? {
            match object.manifest {
                Ok(m) if refs.contains(&m.key) => report.kept_referenced += 1,
                Ok(m) => unreferenced.push((m.created_unix, m.key, object.dir)),
                Err(_) => {
                    report.removed_bytes += tree_size(&object.dir);
                    if !policy.dry_run {
                        self.discard_dir(&object.dir)?;
                    }
                    report.removed_invalid.push(object.dir);
                }
            }
        }
        // Newest first, so the first `keep_recent` are the ones to keep.
        unreferenced.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        let now = now_unix();
        let mut removed = Vec::new();
        for (rank, (created, key, dir)) in unreferenced.into_iter().enumerate() {
            let recent = policy.keep_recent.is_some_and(|n| rank < n);
            let young = policy
                .older_than
                .is_some_and(|d| now.saturating_sub(created) < d.as_secs());
            if recent || young {
                report.kept_unreferenced += 1;
                continue;
            }
            report.removed_bytes += tree_size(&dir);
            if !policy.dry_run {
                self.discard_dir(&dir)?;
                if let Some(parent) = dir.parent() {
                    let _ = fs::remove_dir(parent);
                }
            }
            removed.push(key);
        }
        removed.reverse();
        let removed_any = !removed.is_empty() || !report.removed_invalid.is_empty();
        report.removed = removed;
        report.removed_debris = self.sweep_debris(!policy.dry_run)?;
        if removed_any && !policy.dry_run {
            // The lookup cache only speeds up hits; dropping it beats
            // keeping records of entries that no longer exist.
            super::fsutil::remove_file_if_exists(&self.lookup_cache_path())?;
        }
        Ok(report)
    }
}

fn invalid(dir: PathBuf, reason: &str) -> ObjectDir {
    ObjectDir {
        dir,
        key: None,
        manifest: Err(reason.to_string()),
    }
}
