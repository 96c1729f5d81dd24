//! The content-addressed store: one directory per node key.
//!
//! A store lives under a root directory (default `cache/`). Everything in
//! it is written so that a kill (even `SIGKILL`) at any moment leaves either
//! the old state or the new one, never a half entry that is taken as valid.
//!
//! # On-disk format
//!
//! ```text
//! <root>/
//!   objects/<key[0..2]>/<key>/      one entry (a complete, immutable directory)
//!     manifest.json                 see below; written last, so no manifest = no entry
//!     log.txt                       the phase's captured output
//!     out/...                       the node's output files, any nesting, read-only
//!   tmp/<key>.<pid>.<nonce>/        an entry being written (same filesystem as objects/),
//!                                   flocked by its live writer
//!   tmp/<name>.discard.<nonce>/     an entry being deleted (renamed here first)
//!   locks/<key>.lock                per-key exclusive flock (see [`Store::lock_key`]); kept, gc removes free ones
//!   refs/<workflow-id>/<node>       a key and a newline; both names escaped by [`escape_name`]
//!   refs/<workflow-id>/~tmp.<nonce> a ref being replaced (renamed over the ref)
//!   gc.lock                         shared flock held by builds, exclusive by gc
//!   statcache                       the [`StatCache`](crate::stat_cache::StatCache) file
//! ```
//!
//! Keys are 64 lowercase hex characters (blake3). An entry is created by
//! [`Store::begin`], which makes a temp dir with an `out/` subdir for the
//! node to write into, and [`PendingEntry::commit`], which hashes the
//! outputs, writes `log.txt` and `manifest.json` (last), fsyncs everything
//! when `ADMF_DURABLE=1` (see `fsutil::durable` for why that is optional),
//! and renames the temp dir into `objects/` in one step.
//! `lookups` remembers verified entries so a no-op build checks each with a
//! few `stat` calls ([`LookupCache`]).
//!
//! `manifest.json` (schema 1) is a JSON object:
//!
//! ```json
//! {
//!   "schema": 1,
//!   "key": "<64 hex>",
//!   "node": "outer/inner[3]",
//!   "mode": "backtest",
//!   "ingredients": { "...": "everything that went into the key" },
//!   "outputs": { "metrics.json": { "blake3": "<64 hex>", "size": 123 } },
//!   "output_digest": "<64 hex>",
//!   "duration_ms": 42,
//!   "created_unix": 1700000000
//! }
//! ```
//!
//! Output paths are relative to `out/`, use `/` separators and are sorted.
//! `output_digest` depends only on output names and contents (see
//! [`output_digest`]); it is what downstream keys hash, which gives early
//! cutoff.
//!
//! A read ([`Store::lookup`]) checks the manifest, the key, the exact set of
//! files under `out/`, and every file's size and blake3 (through the stat
//! cache, so unchanged files are not reread). Anything else is
//! [`Lookup::Corrupt`], which callers treat as a miss and report.
//!
//! [`Store::gc`] and [`Store::verify`] remove stale temp dirs, but only those
//! whose `.lock` can be taken, so a live writer is never disturbed.

mod debris;
mod entry;
mod fsutil;
mod gc;
mod lock;
mod lookup;
mod lookup_cache;
mod manifest;
mod outputs;
mod refs;
mod verify;

use std::io;
use std::path::{Path, PathBuf};

pub use entry::{Entry, PendingEntry};
pub use gc::{EntrySummary, GcPolicy, GcReport};
pub use lock::{BuildGuard, KeyLock};
pub use lookup::Lookup;
pub use lookup_cache::LookupCache;
pub use manifest::{MANIFEST_SCHEMA, Manifest, ManifestMeta, OutputRecord, output_digest};
pub use refs::{RefRecord, escape_name, unescape_name};
pub use verify::{CorruptEntry, VerifyReport};

/// File name of the manifest inside an entry.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the captured log inside an entry.
pub const LOG_FILE: &str = "log.txt";
/// Directory holding the node's outputs inside an entry.
pub const OUT_DIR: &str = "out";

/// A content-addressed store rooted at one directory.
///
/// Cheap to clone; all state is on disk.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (and creates if needed) a store under `root`, with its
    /// `objects/`, `tmp/`, `locks/` and `refs/` subdirectories.
    pub fn open(root: &Path) -> io::Result<Store> {
        // Absolute, so no path under the store needs the current directory
        // again (a syscall per file in a no-op build).
        let store = Store {
            root: std::path::absolute(root)?,
        };
        for dir in [
            store.objects_dir(),
            store.tmp_dir(),
            store.locks_dir(),
            store.refs_dir(),
        ] {
            std::fs::create_dir_all(&dir)?;
        }
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the entry for `key`: `objects/<key[0..2]>/<key>`.
    ///
    /// Only meaningful for a valid key (see [`is_valid_key`]).
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        let prefix = key.get(..2).unwrap_or(key);
        self.objects_dir().join(prefix).join(key)
    }

    /// Where the stat cache of this store lives: `<root>/statcache`.
    pub fn stat_cache_path(&self) -> PathBuf {
        self.root.join("statcache")
    }

    pub(crate) fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub(crate) fn refs_dir(&self) -> PathBuf {
        self.root.join("refs")
    }

    pub(crate) fn gc_lock_path(&self) -> PathBuf {
        self.root.join("gc.lock")
    }
}

/// Whether `key` has the shape of a store key: 64 lowercase hex characters.
pub fn is_valid_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn check_key(key: &str) -> io::Result<()> {
    if is_valid_key(key) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a store key (want 64 lowercase hex chars): {key:?}"),
        ))
    }
}
