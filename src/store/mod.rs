//! The store: a content-addressed blob store (CAS) and one action index.
//!
//! A store lives under a root directory (default `cache/`). Everything in
//! it is written so that a kill (even `SIGKILL`) at any moment leaves
//! either the old state or the new one, never a half entry that is taken
//! as valid.
//!
//! # On-disk format
//!
//! ```text
//! <root>/
//!   index/index.db (+ -wal, -shm)  SQLite in WAL mode: actions, refs, small blobs, the run ledger
//!   index/generation          rewritten whenever gc or repair removes something
//!   blobs/<d[0..2]>/<d>       a blob of more than INLINE_MAX bytes, named by its blake3, read-only
//!   packs/<pid>-<nonce>.pack  the larger outputs of one chunk of trials, back to back (see
//!                             [`pack`]): written whole before any row names it, never changed
//!   tmp/<key>.<pid>.<nonce>/  an action being written: `out/` is where the phase writes;
//!                             flocked by its live writer
//!   tmp/blob.<pid>.<nonce>    a blob file being written (flocked), renamed into blobs/
//!   tmp/scratch.<pid>.<nonce>/ what one open store shares between the nodes of a build
//!                             (read-only upstream folders); flocked, removed with the store
//!   views/<key>/              a materialised copy of an entry's outputs (`admf show`, reports);
//!                             derived, removed by gc
//!   upstream/                 upstream folders kept from one build to the next (read-only;
//!                             see `phases/upstream_env/kept.rs`); derived, removed by gc
//!   locks/keys.ofd            per-key locks: one byte each (Linux; elsewhere
//!                             locks/<key[0..2]>.lock stripes; see [`Store::lock_key`])
//!   locks/paths-<xx>.ofd      workspace path locks: one byte per path over 64 files (Linux;
//!                             elsewhere locks/path-<xx>.lock stripes; see [`PathLocks`])
//!   gc.lock                   shared flock held by builds, exclusive by gc
//!   ledger.lock               exclusive flock held by a build that answered before adding
//!                             its run ledger row; readers of the ledger wait on it
//!   statcache                 the [`StatCache`](crate::stat_cache::StatCache) file
//!   runs/<workflow-id>/       the up-to-date record and the `events.jsonl` export
//!   serve.sock                where `admf serve` answers while it runs (Linux)
//! ```
//!
//! The index (`index.db`) has these tables:
//!
//! - `actions`: key → node, mode, ingredients (JSON text), outputs (JSON
//!   object `name → {blake3, size}`), output digest, log digest, duration,
//!   creation time. One row is one entry.
//! - `blobs`: digest → bytes, for blobs of at most [`INLINE_MAX`] bytes.
//!   Larger blobs are files under `blobs/`. Either way a blob is stored
//!   once, whichever actions name it.
//! - `packed`: digest → pack, offset and size, for the outputs of at least
//!   [`pack::PACKED_MIN`] (and at most [`INLINE_MAX`]) bytes of trials
//!   committed in chunks: a sweep's signals. A pack is one file per chunk
//!   written where the chunk ran, so a trial's signal costs the
//!   coordinator a row of four small columns instead of its bytes through
//!   SQLite's pages, WAL and checkpoint. Reads and checks treat a packed
//!   blob as an inline one (its bytes rehashed on every lookup).
//! - `refs`: (workflow id, node) → key of the node's last successful build.
//! - `runs` and `run_nodes`: the run ledger, one row per build and one per
//!   node of it (see [`RunRecord`]).
//!
//! # Why SQLite
//!
//! Several admf processes share one store, each from several threads, and
//! a kill at any moment must leave a consistent index. SQLite in WAL mode
//! (through rusqlite, built from the bundled amalgamation, so nothing is
//! needed on the host) gives that with one file, readers that never block
//! the writer, and `busy_timeout` for writers of other processes. LMDB
//! (through heed) was the alternative. Measured (`bench/store/index_choice.py`,
//! 1,000 sweep-like commits, neither engine syncing), LMDB commits in
//! 19–21 µs against SQLite's 59 µs and looks up in 3 µs against 18 µs.
//! That 40 µs per cold node is small next to the rest of a node's cost
//! (its temp dir and output files, about a millisecond here), and SQLite
//! keeps what LMDB does not: no map size to choose up front, no reader
//! slots left behind by killed processes that pin pages until someone
//! runs a reader check, and SQL for the run ledger that reports query.
//! See BENCHMARKS.md, "Store v2". With `synchronous=OFF` (the default, as
//! nothing else in the store is flushed either) every committed
//! transaction survives a process kill; with `ADMF_DURABLE=1` it is
//! `FULL`, which also survives a power loss or an OS crash.
//!
//! # Writing an entry
//!
//! [`Store::begin`] makes a flocked temp dir with an `out/` subdir for the
//! node to write into; [`Store::begin_in_memory`] makes nothing, for a
//! node that hands its outputs over as bytes. [`PendingEntry::seal`]
//! hashes those bytes and every file under `out/`; small ones go into the
//! `blobs` table (a chunk of trials first writes its larger ones into a
//! pack where it ran, [`Store::pack_sealed`], and the commit adds their
//! `packed` rows), large ones are made read-only and renamed into `blobs/`
//! (a blob already there is kept: the content is the same). Then one
//! transaction inserts the small blobs, the action row and the node's ref.
//! A kill before that transaction leaves at most unreferenced blob files,
//! which gc removes; after it, the entry is complete. A build turns on
//! group commit ([`Store::set_group_commit`]): its commits write their
//! rows inside one open transaction, committed when the build waits or has
//! grouped enough, so that a cold sweep pays one WAL commit per group of
//! trials rather than one per trial. A commit whose rows fail to write
//! rolls the whole group back, and the group's flush then fails every
//! node in it.
//!
//! # Reading an entry
//!
//! [`Store::lookup`] reads the action row and checks it (schema, key,
//! output digest) and every blob it names: an inline blob is rehashed, a
//! blob file is checked by size and blake3 (through the stat cache, so an
//! unchanged file is not reread). Anything else is [`Lookup::Corrupt`],
//! which callers treat as a miss and report. Every byte an entry hands
//! out later ([`Entry::read`], restores) is hashed again as it is read, so
//! a blob changed after the lookup is an error, never a wrong input.

mod ahead;
mod cache;
mod cas;
mod debris;
mod entry;
pub(crate) mod fsutil;
mod gc;
mod index;
mod ledger;
mod lock;
mod looks;
mod lookup;
mod manifest;
mod outputs;
mod pack;
mod refs;
mod scratch;
mod verify;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use ahead::preload_rows;
pub use cache::{Cache, copy_action};
pub use cas::INLINE_MAX;
pub use entry::{BatchSeal, Entry, OutputSource, PendingEntry, SealedOutputs};
pub use gc::{EntrySummary, GcPolicy, GcReport};
pub use ledger::{RunNode, RunRecord, encode_nodes, flatten_metrics, ledger_metrics, new_run_id};
pub use lock::{BuildGuard, KeyLock, LedgerPending, PathAccess, PathLocks};
pub use lookup::Lookup;
pub use manifest::{MANIFEST_SCHEMA, Manifest, ManifestMeta, OutputRecord, RawJson, output_digest};
pub use refs::RefRecord;
pub use scratch::process_ends_with_build;
pub use verify::{CorruptEntry, VerifyReport};

/// The store layout this code reads and writes, recorded in the index.
pub const STORE_LAYOUT: u32 = 2;

/// A content-addressed store rooted at one directory.
///
/// Cheap to clone: the open index is shared.
#[derive(Clone)]
pub struct Store {
    /// Shared, so that a clone (an entry holds one; a fan-in of thousands
    /// of upstream entries makes thousands) allocates nothing.
    root: Arc<Path>,
    index: Arc<index::Index>,
    scratch: Arc<scratch::Scratch>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish()
    }
}

/// Stores opened by [`Store::open_shared`], by root.
type SharedStores = std::collections::HashMap<PathBuf, Store>;
static OPEN_SHARED: std::sync::Mutex<Option<SharedStores>> = std::sync::Mutex::new(None);

/// Why the store at `root` cannot be written, if it cannot: a read-only
/// mount, or a directory without write permission for this user. `None`
/// also when `root` does not exist yet ([`Store::open`] creates it).
pub fn not_writable(root: &Path) -> Option<io::Error> {
    match rustix::fs::access(root, rustix::fs::Access::WRITE_OK) {
        Ok(()) => None,
        Err(rustix::io::Errno::NOENT) => None,
        Err(e) => Some(e.into()),
    }
}

impl Store {
    /// Opens (and creates if needed) a store under `root`: its index and
    /// its `blobs/`, `tmp/` and `locks/` directories.
    pub fn open(root: &Path) -> io::Result<Store> {
        // Absolute, so no path under the store needs the current directory
        // again (a syscall per file in a no-op build).
        let root = std::path::absolute(root)?;
        for dir in ["blobs", "tmp", "locks", "index"] {
            std::fs::create_dir_all(root.join(dir))?;
        }
        let index = index::Index::open(&root.join("index").join("index.db"))?;
        let scratch = Arc::new(scratch::Scratch::new(root.join("tmp")));
        Ok(Store {
            root: root.into(),
            index: Arc::new(index),
            scratch,
        })
    }

    /// The store at `root`, opened once per process: what an action run in
    /// another process (`admf exec-action`) reads its upstream artifacts
    /// through. A process touches one store or a few, so the map stays
    /// small; [`Store::close_shared`] empties it.
    pub fn open_shared(root: &Path) -> io::Result<Store> {
        let mut open = OPEN_SHARED.lock().unwrap_or_else(|e| e.into_inner());
        let map = open.get_or_insert_with(std::collections::HashMap::new);
        if let Some(store) = map.get(root) {
            return Ok(store.clone());
        }
        let store = Store::open(root)?;
        map.insert(root.to_path_buf(), store.clone());
        Ok(store)
    }

    /// Forgets the stores [`Store::open_shared`] opened and removes their
    /// scratch directories: a static is never dropped at exit, so without
    /// this a process that read upstream artifacts would leave its scratch
    /// directory behind as debris.
    pub fn close_shared() {
        let open = OPEN_SHARED.lock().unwrap_or_else(|e| e.into_inner()).take();
        for store in open.into_iter().flat_map(|map| map.into_values()) {
            store.release_scratch();
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// [`Store::root`], shared.
    pub fn shared_root(&self) -> Arc<Path> {
        self.root.clone()
    }

    /// Where the stat cache of this store lives: `<root>/statcache`.
    pub fn stat_cache_path(&self) -> PathBuf {
        self.root.join("statcache")
    }

    /// The directory of a store of the old layout (one directory per entry
    /// under `objects/`), when one is present beside this one. It is
    /// neither read nor changed, except by `gc --all`, which removes it.
    pub fn old_layout(&self) -> Option<PathBuf> {
        let objects = self.root.join("objects");
        objects.is_dir().then_some(objects)
    }

    /// The one line that reports an old-layout store, if there is one.
    pub fn old_layout_notice(&self) -> Option<String> {
        self.old_layout().map(|dir| {
            format!(
                "admf: {} holds entries of an older store layout, which this admf ignores; `admf cache gc --all` removes them",
                dir.display()
            )
        })
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub(crate) fn views_dir(&self) -> PathBuf {
        self.root.join("views")
    }

    /// Where upstream folders are kept between builds (derived, like views).
    pub(crate) fn upstream_dir(&self) -> PathBuf {
        self.root.join("upstream")
    }

    pub(crate) fn gc_lock_path(&self) -> PathBuf {
        self.root.join("gc.lock")
    }

    pub(crate) fn ledger_lock_path(&self) -> PathBuf {
        self.root.join("ledger.lock")
    }

    fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }

    /// Records that entries or blobs were removed, by renaming a new file
    /// over `index/generation`: that changes the `index/` directory, whose
    /// stat the up-to-date record of a no-op build notes (see
    /// [`Store::note_index`]), so the record stops vouching for a build
    /// whose entries may be gone.
    pub(crate) fn bump_generation(&self) -> io::Result<()> {
        let dir = self.index_dir();
        let tmp = dir.join(format!("generation.{}", fsutil::unique_suffix()));
        std::fs::write(&tmp, format!("{}\n", fsutil::unique_suffix()))?;
        std::fs::rename(&tmp, dir.join("generation"))
    }

    /// Notes the `index/` directory as read. Its stat changes when the
    /// index is deleted or replaced, and when gc or repair remove entries
    /// ([`Store::bump_generation`]); writes that only add entries or refs
    /// leave it alone, because the WAL files are kept between processes.
    pub(crate) fn note_index(&self, reads: &crate::reads::Reads) {
        reads.note_dir_once(&self.index_dir());
    }

    pub(crate) fn index(&self) -> &index::Index {
        &self.index
    }

    /// Group commit on or off (see the index's `set_grouping`): while on,
    /// commits of this process join one open transaction until
    /// [`Store::flush`]. Turning it off flushes.
    pub fn set_group_commit(&self, on: bool) -> io::Result<()> {
        self.index.set_grouping(on)
    }

    /// Commits the open group of commits, making them visible to other
    /// processes.
    pub fn flush(&self) -> io::Result<()> {
        self.index.flush()
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

pub(crate) fn sql_err(e: rusqlite::Error) -> io::Error {
    io::Error::other(format!("store index: {e}"))
}
