//! Listing entries (`admf cache ls`) and collecting garbage (`admf cache gc`).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use super::Store;
use super::fsutil::{now_unix, remove_file_if_exists, remove_tree, tree_size};
use super::manifest::Manifest;

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

/// What `gc` removes. Entries named by a ref are always kept (unless
/// `all`); among the others, an entry is removed unless one of the set
/// rules keeps it. The default policy removes every unreferenced entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPolicy {
    /// Keep the N most recently created unreferenced entries (`--keep N`).
    pub keep_recent: Option<usize>,
    /// Keep unreferenced entries younger than this (`--older-than D`
    /// removes only entries older than D).
    pub older_than: Option<Duration>,
    /// Remove everything: refs, every entry, and a store of the old layout
    /// (`--all`).
    pub all: bool,
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
    /// Bytes freed by removing blobs.
    pub removed_bytes: u64,
    /// Blobs removed (no remaining entry names them).
    pub removed_blobs: usize,
    /// Entries kept because a ref names them.
    pub kept_referenced: usize,
    /// Unreferenced entries kept by the policy.
    pub kept_unreferenced: usize,
    /// Keys of action rows that could not be read, removed.
    pub removed_invalid: Vec<String>,
    /// Leftovers of dead writers under `tmp/` and `locks/`, removed.
    pub removed_debris: Vec<PathBuf>,
    /// The old-layout store removed by `all`.
    pub removed_old_layout: Option<PathBuf>,
    /// Blob files that could not be removed, with why: the collection
    /// goes on past them.
    pub not_removed: Vec<(PathBuf, String)>,
}

impl Store {
    /// Every readable entry (judged by its action row; blobs are not
    /// checked), oldest first.
    pub fn ls(&self) -> io::Result<Vec<EntrySummary>> {
        let refs = self.referenced_keys()?;
        let mut out: Vec<EntrySummary> = self
            .index()
            .actions()?
            .into_iter()
            .filter_map(|(_, m)| {
                let m = m.ok()?;
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

    /// Removes unreferenced entries per `policy`, action rows that cannot
    /// be read, blobs no remaining entry names, views of removed entries,
    /// and leftovers of dead writers.
    ///
    /// Takes `gc.lock` exclusively, so it never runs while a build holds a
    /// [`BuildGuard`](super::BuildGuard): without `policy.wait` it fails
    /// at once with [`io::ErrorKind::WouldBlock`] and "a build is running".
    /// Entries go in one transaction, then their blobs: a kill in between
    /// leaves unreferenced blobs, which the next gc removes.
    pub fn gc(&self, policy: GcPolicy) -> io::Result<GcReport> {
        let _exclusive = self.gc_exclusive(policy.wait)?;
        let mut report = GcReport::default();
        if policy.all && !policy.dry_run {
            self.clear_refs()?;
        }
        let refs = if policy.all {
            Default::default()
        } else {
            self.referenced_keys()?
        };
        let mut unreferenced = Vec::new();
        let mut kept: Vec<Manifest> = Vec::new();
        for (key, manifest) in self.index().actions()? {
            match manifest {
                Ok(m) if refs.contains(&m.key) => {
                    report.kept_referenced += 1;
                    kept.push(m);
                }
                Ok(m) => unreferenced.push(m),
                Err(_) => report.removed_invalid.push(key),
            }
        }
        // Newest first, so the first `keep_recent` are the ones to keep.
        unreferenced.sort_by(|a, b| (b.created_unix, &b.key).cmp(&(a.created_unix, &a.key)));
        let now = now_unix();
        let mut removed = Vec::new();
        for (rank, m) in unreferenced.into_iter().enumerate() {
            let recent = policy.keep_recent.is_some_and(|n| rank < n);
            let young = policy
                .older_than
                .is_some_and(|d| now.saturating_sub(m.created_unix) < d.as_secs());
            if !policy.all && (recent || young) {
                report.kept_unreferenced += 1;
                kept.push(m);
            } else {
                removed.push(m.key);
            }
        }
        let live: HashSet<&str> = kept
            .iter()
            .flat_map(|m| {
                m.outputs
                    .values()
                    .map(|o| o.blake3.as_str())
                    .chain([m.log_digest.as_str()])
            })
            .collect();
        let mut dead_rows = Vec::new();
        for (digest, size) in self.index().inline_sizes()? {
            if !live.contains(digest.as_str()) {
                report.removed_bytes += size;
                dead_rows.push(digest);
            }
        }
        let mut live_packed = Vec::new();
        for row in self.index().packed_rows()? {
            if live.contains(row.digest.as_str()) {
                live_packed.push(row);
            } else {
                // Its bytes are freed with its pack, counted below.
                dead_rows.push(row.digest);
            }
        }
        let mut dead_files = Vec::new();
        for (digest, path) in self.blob_files()? {
            if !live.contains(digest.as_str()) {
                report.removed_bytes += fs::symlink_metadata(&path).map_or(0, |m| m.len());
                dead_files.push(path);
            }
        }
        // A digest both inline and packed counts once.
        dead_rows.sort();
        dead_rows.dedup();
        report.removed_blobs = dead_rows.len() + dead_files.len();
        let mut doomed = removed.clone();
        doomed.extend(report.removed_invalid.iter().cloned());
        let anything = !doomed.is_empty() || report.removed_blobs > 0;
        if !policy.dry_run {
            if anything {
                // First, so that a build started after a kill of this gc
                // stops trusting what it recorded about removed entries.
                self.bump_generation()?;
            }
            self.index().remove(&doomed, &dead_rows)?;
            for path in &dead_files {
                if let Err(e) = remove_file_if_exists(path) {
                    report.not_removed.push((path.clone(), e.to_string()));
                }
            }
            self.remove_views(&kept)?;
            // Kept upstream folders hold hard links to blobs: a removed
            // blob's bytes would live on in them. They are derived, so
            // they all go, and the next build lays out what it reads.
            if anything && self.upstream_dir().exists() {
                self.discard(&self.upstream_dir())?;
            }
        }
        // After the rows are gone: a pack only they named goes too.
        report.removed_bytes +=
            self.collect_packs(&live_packed, policy.dry_run, &mut report.not_removed)?;
        removed.reverse();
        report.removed = removed;
        report.removed_debris = self.sweep_debris(!policy.dry_run)?;
        if policy.all
            && let Some(old) = self.old_layout()
        {
            report.removed_bytes += tree_size(&old);
            if !policy.dry_run {
                self.remove_old_layout()?;
            }
            report.removed_old_layout = Some(old);
        }
        Ok(report)
    }

    /// Removes every view but those of `kept` entries.
    fn remove_views(&self, kept: &[Manifest]) -> io::Result<()> {
        let keep: HashSet<&str> = kept.iter().map(|m| m.key.as_str()).collect();
        let dir = self.views_dir();
        let items = match fs::read_dir(&dir) {
            Ok(items) => items,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for item in items {
            let item = item?;
            if !item.file_name().to_str().is_some_and(|n| keep.contains(n)) {
                let path = item.path();
                self.discard(&path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            }
        }
        Ok(())
    }

    /// Everything of the one-directory-per-entry layout: `objects/`,
    /// `refs/`, the `lookups` file, and per-key lock files.
    fn remove_old_layout(&self) -> io::Result<()> {
        for dir in ["objects", "refs"] {
            let path = self.root().join(dir);
            if path.exists() {
                self.discard(&path)?;
            }
        }
        remove_file_if_exists(&self.root().join("lookups"))
    }

    /// Removes a directory (or file) under the store atomically from the
    /// point of view of readers: renamed into `tmp/` first, then deleted.
    pub(crate) fn discard(&self, path: &std::path::Path) -> io::Result<()> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let aside = self
            .tmp_dir()
            .join(format!("{name}.discard.{}", super::fsutil::unique_suffix()));
        match fs::rename(path, &aside) {
            Ok(()) if aside.is_dir() => remove_tree(&aside),
            Ok(()) => fs::remove_file(&aside),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}
