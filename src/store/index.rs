//! The action index: one SQLite database in WAL mode (see the module docs
//! of [`crate::store`] for the tables and why SQLite).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::manifest::{MANIFEST_SCHEMA, Manifest, RawJson};
use super::pack::{PackedBlob, is_pack_name, read_range};
use super::{STORE_LAYOUT, sql_err};

/// `blobs` is a rowid table on purpose: its rows are kilobytes, and a
/// `WITHOUT ROWID` table keeps whole rows in the key's B-tree, where a
/// lookup copies every overflowing row it compares against. Here the
/// digest index holds only digests, and new rows append to the table.
/// Stores created with the older `WITHOUT ROWID` table keep it; the SQL
/// is the same for both.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS packed (
    digest TEXT PRIMARY KEY,
    pack TEXT NOT NULL,
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS actions (
    key TEXT PRIMARY KEY,
    schema INTEGER NOT NULL,
    node TEXT NOT NULL,
    mode TEXT NOT NULL,
    ingredients TEXT NOT NULL,
    outputs TEXT NOT NULL,
    output_digest TEXT NOT NULL,
    log_digest TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    created_unix INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    workflow_id TEXT NOT NULL,
    node TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (workflow_id, node)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_unix_ms INTEGER NOT NULL,
    finished_unix_ms INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    workflow_id TEXT NOT NULL,
    sets TEXT NOT NULL,
    targets TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_nodes (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    node TEXT NOT NULL,
    key TEXT,
    status TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
";

/// The open index. One connection per process, shared by its threads:
/// statements take microseconds, and one connection keeps SQLite's page
/// cache warm for all of them.
pub(crate) struct Index {
    conn: Mutex<Connection>,
    /// Whether commits join one open transaction ([`Index::set_grouping`]).
    grouping: AtomicBool,
    /// Whether that transaction is open; changed only while `conn` is locked.
    group_open: AtomicBool,
    /// Why the open group was rolled back, when a node's rows failed to
    /// write: the next [`Index::flush`] reports it, so that the nodes
    /// committed earlier in the group fail too instead of passing for
    /// stored. Changed only while `conn` is locked.
    group_lost: Mutex<Option<String>>,
    /// The background checkpointer while grouping ([`Checkpointer`]).
    checkpointer: Mutex<Option<Checkpointer>>,
    path: PathBuf,
    /// The store's `packs/` directory.
    packs: PathBuf,
    /// The pack read last, kept open: the blobs of a chunk's trials are
    /// read together, and one open file is all this keeps.
    open_pack: Mutex<Option<(Arc<str>, std::fs::File)>>,
}

/// The WAL is copied into the database by this many pages at a time: by
/// SQLite itself on the commit that crosses it (`wal_autocheckpoint`),
/// or, while grouping, by the [`Checkpointer`] thread.
const CHECKPOINT_PAGES: i32 = 1000;

/// While a build groups its commits, the WAL is checkpointed by a thread
/// of its own, on a connection of its own, instead of by the coordinator
/// inside the commit that crosses [`CHECKPOINT_PAGES`]: copying the pages
/// into the database (about a quarter of the coordinator's time in the
/// index on a cold sweep) then overlaps with the coordinator deciding and
/// committing the next trials. A passive checkpoint neither blocks nor
/// waits for writers, and copies only committed frames, so it changes
/// nothing of what a kill leaves: a committed group is in the WAL
/// whether or not it was copied yet, and SQLite recovers it on the next
/// open. A checkpoint that cannot finish (a reader of another process
/// holds an older snapshot) is retried at the next crossing; the build's
/// final `TRUNCATE` ([`Index::checkpoint`]) and other processes'
/// automatic checkpoints still run as before.
struct Checkpointer {
    /// What the WAL hook of the coordinator's connection reads: boxed,
    /// so that its address, handed to SQLite, stays put.
    hook: Box<WalHookState>,
    thread: JoinHandle<()>,
}

struct WalHookState {
    /// Wakes the checkpointer; a full channel means it is already awake.
    nudge: SyncSender<()>,
}

/// Called by SQLite after each commit of the connection it is registered
/// on, with the number of pages in the WAL. It runs inside the commit, so
/// it only nudges the checkpointer (it must not unwind into SQLite; a
/// `try_send` does not panic).
unsafe extern "C" fn nudge_checkpointer(
    state: *mut std::ffi::c_void,
    _db: *mut rusqlite::ffi::sqlite3,
    _schema: *const std::ffi::c_char,
    pages: std::ffi::c_int,
) -> std::ffi::c_int {
    if pages >= CHECKPOINT_PAGES {
        // SAFETY: `state` is the `WalHookState` of the `Checkpointer`
        // that registered this hook; the hook is unregistered
        // ([`Index::stop_checkpointer`]) before that box is dropped.
        let state = unsafe { &*(state as *const WalHookState) };
        match state.nudge.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
    rusqlite::ffi::SQLITE_OK
}

/// The checkpointer's loop: one passive checkpoint per wake-up (wake-ups
/// that arrive meanwhile are merged), until the hook's side is dropped.
fn run_checkpoints(conn: Connection, nudges: Receiver<()>) {
    while nudges.recv().is_ok() {
        while nudges.try_recv().is_ok() {}
        // Best effort: a checkpoint that fails leaves the frames in the
        // WAL, where readers find them and the next checkpoint copies them.
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);");
    }
}

/// Run `step`, again while another process holds a lock it needs. Turning
/// a new database to WAL mode and creating its tables take locks that
/// SQLite's busy handler does not wait for, so builds that open a new
/// store together would otherwise fail with "database is locked".
fn retry_while_locked(mut step: impl FnMut() -> rusqlite::Result<()>) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut pause = Duration::from_millis(2);
    loop {
        match step() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// A connection to the index at `path`, with the store's pragmas.
fn open_connection(path: &Path) -> io::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
    // Other processes hold the write lock for one short transaction at a
    // time; waiting a long while beats failing a build.
    conn.busy_timeout(Duration::from_secs(120))
        .map_err(sql_err)?;
    // Without ADMF_DURABLE nothing is flushed, as for blob files: a
    // killed process loses no committed transaction either way (the
    // kernel holds its writes), and the fsyncs that `NORMAL` makes at
    // every checkpoint cost a build seconds on a busy disk. Only a power
    // loss or an OS crash can then damage the index; `FULL` survives
    // those too.
    let sync = if super::fsutil::durable() {
        "FULL"
    } else {
        "OFF"
    };
    // Pages of 16 KiB (set when the file is created; an existing index
    // keeps its size): a trial's signal fits in one or two instead of four
    // or five, and each page is one write to the WAL, which is
    // checkpointed every 1,000 pages (16 MB; in the background while a
    // build groups its commits, see [`Checkpointer`]) and truncated when a
    // build ends ([`Index::checkpoint`]). Pages are read through a memory
    // map instead of a `pread` each. The cache (8 MB) holds the pages a
    // commit group dirties (256 trials of a sweep take about 5 MB); a
    // larger one only makes SQLite take fresh memory for pages it could
    // recycle.
    let pragmas = format!(
        "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=OFF;
         PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}; PRAGMA cache_size=-8192;
         PRAGMA mmap_size=268435456; PRAGMA temp_store=MEMORY;"
    );
    retry_while_locked(|| conn.execute_batch(&pragmas))
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
    keep_wal_files(&conn);
    Ok(conn)
}

impl Index {
    pub(crate) fn open(path: &Path) -> io::Result<Index> {
        let conn = open_connection(path)?;
        retry_while_locked(|| conn.execute_batch(SCHEMA)).map_err(|e| {
            io::Error::other(format!(
                "{}: {e} (if the machine lost power during a build, remove the {} directory: \
                 the entries are lost, the blobs are kept until gc)",
                path.display(),
                path.parent().unwrap_or(path).display()
            ))
        })?;
        let layout: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE name = 'layout'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql_err)?;
        match layout {
            None => {
                conn.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('layout', ?1)",
                    params![STORE_LAYOUT.to_string()],
                )
                .map_err(sql_err)?;
            }
            Some(v) if v == STORE_LAYOUT.to_string() => {}
            Some(v) => {
                return Err(io::Error::other(format!(
                    "{} is a store of layout {v}; this admf reads layout {STORE_LAYOUT}",
                    path.display()
                )));
            }
        }
        Ok(Index {
            conn: Mutex::new(conn),
            grouping: AtomicBool::new(false),
            group_open: AtomicBool::new(false),
            group_lost: Mutex::new(None),
            checkpointer: Mutex::new(None),
            path: path.to_path_buf(),
            packs: super::pack::packs_dir(
                path.parent()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new(".")),
            ),
            open_pack: Mutex::new(None),
        })
    }

    /// Starts the [`Checkpointer`], unless it runs: SQLite's automatic
    /// checkpoint of the coordinator's connection gives way to a WAL hook
    /// that wakes it. Without a connection of its own (it could not be
    /// opened), the automatic checkpoint stays.
    fn start_checkpointer(&self, conn: &Connection) {
        let mut slot = self.checkpointer.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return;
        }
        let Ok(own) = open_connection(&self.path) else {
            return;
        };
        let (nudge, nudges) = sync_channel(1);
        let Ok(thread) = std::thread::Builder::new()
            .name("admf-checkpoint".into())
            .spawn(move || run_checkpoints(own, nudges))
        else {
            return;
        };
        let hook = Box::new(WalHookState { nudge });
        // SAFETY: the handle is the live connection `conn`, locked by the
        // caller; the state outlives the registration (see
        // `nudge_checkpointer`).
        unsafe {
            rusqlite::ffi::sqlite3_wal_hook(
                conn.handle(),
                Some(nudge_checkpointer),
                (&*hook as *const WalHookState).cast_mut().cast(),
            );
        }
        *slot = Some(Checkpointer { hook, thread });
    }

    /// Stops the [`Checkpointer`], if it runs, and gives the checkpoints
    /// back to SQLite.
    fn stop_checkpointer(&self, conn: &Connection) {
        let Some(checkpointer) = self
            .checkpointer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        // Setting the automatic checkpoint replaces the WAL hook; should
        // even that fail, the hook is removed, so that its state may go.
        let restored =
            conn.execute_batch(&format!("PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES};"));
        if restored.is_err() {
            // SAFETY: as in `start_checkpointer`.
            unsafe {
                rusqlite::ffi::sqlite3_wal_hook(conn.handle(), None, std::ptr::null_mut());
            }
        }
        let Checkpointer { hook, thread } = checkpointer;
        // Dropping the only sender ends the thread's loop.
        drop(hook);
        let _ = thread.join();
    }

    /// Copies the WAL into the database and truncates it, as far as
    /// readers of other processes allow (they keep what they read).
    pub(crate) fn checkpoint(&self) -> io::Result<()> {
        self.conn_for_transaction()?
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(sql_err)
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Group commit: while on, each [`Index::insert_with_ref`] writes its
    /// rows inside one open write transaction, committed by
    /// [`Index::flush`]; a committed node then costs a few row writes
    /// instead of a transaction of its own (a WAL commit, its page writes
    /// and the locking around it). Rows of the open group are visible
    /// through this connection (every reader in this process) and to other
    /// processes only once flushed; a kill before that loses them, which
    /// only means they are computed again. Turning it off flushes.
    ///
    /// While on, the WAL is checkpointed by a thread of its own
    /// ([`Checkpointer`]).
    pub(crate) fn set_grouping(&self, on: bool) -> io::Result<()> {
        let conn = self.conn();
        if on {
            self.start_checkpointer(&conn);
        } else {
            let flushed = self.flush_locked(&conn);
            self.stop_checkpointer(&conn);
            flushed?;
        }
        self.grouping.store(on, Ordering::SeqCst);
        Ok(())
    }

    /// Commits the open group transaction, if any.
    pub(crate) fn flush(&self) -> io::Result<()> {
        let conn = self.conn();
        self.flush_locked(&conn)
    }

    fn flush_locked(&self, conn: &Connection) -> io::Result<()> {
        let lost = self
            .group_lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(why) = lost {
            return Err(lost_group(&why));
        }
        if !self.group_open.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        conn.execute_batch("COMMIT").map_err(|e| {
            // A failed COMMIT can leave the transaction open: end it, so
            // that the next write starts clean.
            let _ = conn.execute_batch("ROLLBACK");
            sql_err(e)
        })
    }

    /// The connection, for a write transaction of its own: the open
    /// group, if any, is committed first.
    pub(crate) fn conn_for_transaction(&self) -> io::Result<MutexGuard<'_, Connection>> {
        let conn = self.conn();
        self.flush_locked(&conn)?;
        Ok(conn)
    }

    /// The bytes of a blob the index holds: inline, or in a pack (as far
    /// as the pack holds them, see [`super::pack`]). Not checked against
    /// the digest.
    pub(crate) fn indexed_blob(&self, digest: &str) -> io::Result<Option<Vec<u8>>> {
        let conn = self.conn();
        let inline: Option<Vec<u8>> = conn
            .prepare_cached("SELECT data FROM blobs WHERE digest = ?1")
            .and_then(|mut s| s.query_row([digest], |r| r.get(0)).optional())
            .map_err(sql_err)?;
        if inline.is_some() {
            return Ok(inline);
        }
        let place = packed_place(&conn, digest)?;
        drop(conn);
        place
            .map(|(pack, offset, size)| self.read_packed(&pack, offset, size))
            .transpose()
    }

    pub(crate) fn has_indexed_blob(&self, digest: &str) -> io::Result<bool> {
        Ok(self.has_indexed_blobs(&[digest])?[0])
    }

    /// The bytes of a packed blob as its pack holds them.
    pub(crate) fn packed_bytes(&self, row: &PackedBlob) -> io::Result<Vec<u8>> {
        self.read_packed(&row.pack, row.offset, row.size)
    }

    /// Removes the `packed` rows of `digests` (their inline rows stay).
    pub(crate) fn forget_packed(&self, digests: &[String]) -> io::Result<()> {
        self.own_transaction(|tx| delete_each(tx, "DELETE FROM packed WHERE digest = ?1", digests))
    }

    /// Runs `body` in a write transaction of its own, the open group (if
    /// any) committed first: what maintenance (gc, repair) writes.
    fn own_transaction(&self, body: impl FnOnce(&Connection) -> io::Result<()>) -> io::Result<()> {
        let mut conn = self.conn_for_transaction()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        body(&tx)?;
        tx.commit().map_err(sql_err)
    }

    /// The bytes at `offset` of pack `pack` ([`super::pack::read_range`]),
    /// none when the pack cannot be read, the name is not a pack's or the
    /// range is not one a pack holds (a row written by anything but
    /// admf): bytes that do not hash to the digest, so the blob is taken
    /// as corrupt, and never an allocation the row's size asks for.
    fn read_packed(&self, pack: &str, offset: u64, size: u64) -> io::Result<Vec<u8>> {
        let range_ok = size <= super::cas::INLINE_MAX
            && offset
                .checked_add(size)
                .is_some_and(|end| end <= i64::MAX as u64);
        if !is_pack_name(pack) || !range_ok {
            return Ok(Vec::new());
        }
        let mut open = self.open_pack.lock().unwrap_or_else(|e| e.into_inner());
        // A pack removed since it was opened (its last link gone) is
        // opened again by name, so that this process sees what others do.
        let current = open.as_ref().is_some_and(|(name, file)| {
            &**name == pack
                && file
                    .metadata()
                    .is_ok_and(|m| std::os::unix::fs::MetadataExt::nlink(&m) > 0)
        });
        if !current {
            *open = match std::fs::File::open(self.packs.join(pack)) {
                Ok(file) => Some((pack.into(), file)),
                Err(_) => return Ok(Vec::new()),
            };
        }
        let (_, file) = open.as_ref().expect("opened above");
        Ok(read_range(file, offset, size).unwrap_or_default())
    }

    /// Every packed blob's row.
    pub(crate) fn packed_rows(&self) -> io::Result<Vec<PackedBlob>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT digest, pack, offset, size FROM packed ORDER BY pack, offset")
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PackedBlob {
                    digest: r.get(0)?,
                    pack: r.get::<_, String>(1)?.into(),
                    offset: r.get::<_, i64>(2)? as u64,
                    size: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(sql_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
    }

    /// Points the rows of `moved` blobs at their new places, in one
    /// transaction (gc's rewrite of a pack).
    pub(crate) fn repoint_packed(&self, moved: &[PackedBlob]) -> io::Result<()> {
        self.own_transaction(|tx| put_packed(tx, moved))
    }

    /// [`Index::has_indexed_blob`] of each digest, under one lock.
    pub(crate) fn has_indexed_blobs(&self, digests: &[&str]) -> io::Result<Vec<bool>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for all: a gather names the blobs of thousands of
        // trials.
        let list = serde_json::to_string(digests).map_err(io::Error::other)?;
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT j.key FROM json_each(?1) j WHERE EXISTS (SELECT 1 FROM blobs WHERE digest = j.value) OR EXISTS (SELECT 1 FROM packed WHERE digest = j.value)",
            )
            .map_err(sql_err)?;
        let mut held = vec![false; digests.len()];
        let found = stmt
            .query_map([list], |r| r.get::<_, i64>(0))
            .map_err(sql_err)?;
        for at in found {
            if let Some(slot) = held.get_mut(at.map_err(sql_err)? as usize) {
                *slot = true;
            }
        }
        Ok(held)
    }

    /// Inserts inline blobs and, when given, an action, in one transaction.
    /// An existing action is kept unless `replace`. Returns whether the
    /// action row was written.
    pub(crate) fn insert(
        &self,
        blobs: &[(String, Vec<u8>)],
        action: Option<&Manifest>,
        replace: bool,
    ) -> io::Result<bool> {
        self.insert_with_ref(blobs, action, replace, None)
    }

    /// [`Index::insert`], also pointing the ref `(workflow id, node)` at
    /// the action's key in the same transaction: a committed node costs
    /// one transaction, not two.
    pub(crate) fn insert_with_ref(
        &self,
        blobs: &[(String, Vec<u8>)],
        action: Option<&Manifest>,
        replace: bool,
        ref_to: Option<(&str, &str)>,
    ) -> io::Result<bool> {
        self.write(|tx| write_rows(tx, blobs, &[], action, None, replace, ref_to))
    }

    /// The rows of many committed entries (the trials of one chunk),
    /// written under one lock of the connection and in one transaction
    /// (the open group's while grouping), each statement prepared once.
    /// Returns, per entry, whether its action row was written (see
    /// [`Index::insert`]).
    pub(crate) fn insert_batch(&self, rows: &[ActionRows<'_>]) -> io::Result<Vec<bool>> {
        self.write(|tx| {
            rows.iter()
                .map(|r| {
                    write_rows(
                        tx,
                        r.blobs,
                        r.packed,
                        Some(r.action),
                        Some(r.outputs_json),
                        r.replace,
                        r.ref_to,
                    )
                })
                .collect()
        })
    }

    /// Runs `rows` in the open group transaction while grouping (opening
    /// it when needed), else in a write transaction of its own.
    fn write<T>(&self, rows: impl FnOnce(&Connection) -> io::Result<T>) -> io::Result<T> {
        let mut conn = self.conn();
        if self.grouping.load(Ordering::SeqCst) {
            // Nodes of a group already rolled back fail with it until the
            // flush has reported it.
            if let Some(why) = &*self.group_lost.lock().unwrap_or_else(|e| e.into_inner()) {
                return Err(lost_group(why));
            }
            if !self.group_open.load(Ordering::SeqCst) {
                conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_err)?;
                self.group_open.store(true, Ordering::SeqCst);
            }
            // No savepoint per node: each would copy every page the node
            // touches into a statement journal. A node whose rows fail to
            // write (a full disk, an I/O error) takes the whole group back
            // instead, and the group's flush fails every node in it.
            return match rows(&conn) {
                Ok(written) => Ok(written),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    self.group_open.store(false, Ordering::SeqCst);
                    *self.group_lost.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(e.to_string());
                    Err(e)
                }
            };
        }
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let written = rows(&tx)?;
        tx.commit().map_err(sql_err)?;
        Ok(written)
    }
}

/// The rows of one entry for [`Index::insert_batch`], laid out before the
/// coordinator writes them: its `outputs` column is already JSON.
pub(crate) struct ActionRows<'a> {
    pub blobs: &'a [(String, Vec<u8>)],
    /// Blobs written to a pack where the action ran.
    pub packed: &'a [PackedBlob],
    pub action: &'a Manifest,
    /// `action.outputs` as the `outputs` column holds it.
    pub outputs_json: &'a str,
    pub replace: bool,
    pub ref_to: Option<(&'a str, &'a str)>,
}

fn lost_group(why: &str) -> io::Error {
    io::Error::other(format!("the group of commits was rolled back: {why}"))
}

/// Runs `delete` (one `?1`) once for each of `keys`.
fn delete_each(tx: &Connection, delete: &str, keys: &[String]) -> io::Result<()> {
    let mut stmt = tx.prepare_cached(delete).map_err(sql_err)?;
    for key in keys {
        stmt.execute([key]).map_err(sql_err)?;
    }
    Ok(())
}

/// Writes the `packed` rows of `rows`, over any row of the same digest.
fn put_packed(tx: &Connection, rows: &[PackedBlob]) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut put = tx
        .prepare_cached(
            "INSERT OR REPLACE INTO packed (digest, pack, offset, size) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sql_err)?;
    for p in rows {
        put.execute(params![p.digest, &*p.pack, p.offset as i64, p.size as i64])
            .map_err(sql_err)?;
    }
    Ok(())
}

/// Where the index says blob `digest` is packed: pack, offset, size.
fn packed_place(conn: &Connection, digest: &str) -> io::Result<Option<(String, u64, u64)>> {
    conn.prepare_cached("SELECT pack, offset, size FROM packed WHERE digest = ?1")
        .and_then(|mut s| {
            s.query_row([digest], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .optional()
        })
        .map_err(sql_err)
}

/// The rows of one committed node, inside the caller's transaction;
/// `outputs_json` is the action's outputs as JSON when already known.
fn write_rows(
    tx: &Connection,
    blobs: &[(String, Vec<u8>)],
    packed: &[PackedBlob],
    action: Option<&Manifest>,
    outputs_json: Option<&str>,
    replace: bool,
    ref_to: Option<(&str, &str)>,
) -> io::Result<bool> {
    let mut written = false;
    {
        {
            let mut put = tx
                .prepare_cached("INSERT OR IGNORE INTO blobs (digest, data) VALUES (?1, ?2)")
                .map_err(sql_err)?;
            for (digest, data) in blobs {
                put.execute(params![digest, data]).map_err(sql_err)?;
            }
            // Over a row already there: these bytes were hashed as they
            // were written, while an older row may name a pack that is
            // gone or rotten (why the node ran again).
            put_packed(tx, packed)?;
            if let Some(m) = action {
                let verb = if replace {
                    "INSERT OR REPLACE"
                } else {
                    "INSERT OR IGNORE"
                };
                let outputs = match outputs_json {
                    Some(json) => std::borrow::Cow::Borrowed(json),
                    None => serde_json::to_string(&m.outputs)
                        .map_err(io::Error::other)?
                        .into(),
                };
                tx.prepare_cached(&format!(
                    "{verb} INTO actions (key, schema, node, mode, ingredients, outputs, output_digest, log_digest, duration_ms, created_unix) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        m.key,
                        m.schema,
                        m.node,
                        m.mode,
                        m.ingredients.0.get(),
                        outputs.as_ref(),
                        m.output_digest,
                        m.log_digest,
                        m.duration_ms as i64,
                        m.created_unix as i64
                    ])
                })
                .map_err(sql_err)?;
                written = tx.changes() > 0;
                if let Some((workflow_id, node)) = ref_to {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO refs (workflow_id, node, key) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute([workflow_id, node, m.key.as_str()]))
                    .map_err(sql_err)?;
                }
            }
        }
    }
    Ok(written)
}

impl Index {
    /// The action row of `key`, parsed; `Ok(Err(reason))` for a row that
    /// does not parse.
    pub(crate) fn action(&self, key: &str) -> io::Result<Option<Result<Manifest, String>>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, schema, node, mode, ingredients, outputs, output_digest, log_digest, duration_ms, created_unix FROM actions WHERE key = ?1",
            )
            .map_err(sql_err)?;
        stmt.query_row([key], row_to_manifest)
            .optional()
            .map_err(sql_err)
    }

    /// The action row of each of `keys` (as [`Index::action`] reads it)
    /// and the inline bytes of every blob the rows that parse name (their
    /// outputs and log; a digest not there is not inline), read in one
    /// transaction: one snapshot and one round of SQLite's locks for the
    /// upstream entries of a node, which may number thousands, instead
    /// of three statements of their own per entry. Inside an open commit
    /// group the reads join it, as single reads do.
    pub(crate) fn actions_with_indexed_blobs(
        &self,
        keys: &[&str],
    ) -> io::Result<(ParsedActions, std::collections::HashMap<String, Vec<u8>>)> {
        let conn = self.conn();
        // A deferred read transaction, rolled back when dropped (it
        // writes nothing); none when the group's write transaction is open.
        let snapshot = if conn.is_autocommit() {
            Some(conn.unchecked_transaction().map_err(sql_err)?)
        } else {
            None
        };
        let mut rows = Vec::with_capacity(keys.len());
        {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT key, schema, node, mode, ingredients, outputs, output_digest, log_digest, duration_ms, created_unix FROM actions WHERE key = ?1",
                )
                .map_err(sql_err)?;
            for key in keys {
                rows.push(
                    stmt.query_row([key], row_to_manifest)
                        .optional()
                        .map_err(sql_err)?,
                );
            }
        }
        let mut inline = std::collections::HashMap::new();
        let mut in_packs = Vec::new();
        {
            let mut stmt = conn
                .prepare_cached("SELECT data FROM blobs WHERE digest = ?1")
                .map_err(sql_err)?;
            let digests = rows.iter().flatten().flatten().flat_map(|m| {
                m.outputs
                    .values()
                    .map(|o| o.blake3.as_str())
                    .chain(std::iter::once(m.log_digest.as_str()))
            });
            for digest in digests {
                if inline.contains_key(digest) {
                    continue;
                }
                let bytes: Option<Vec<u8>> = stmt
                    .query_row([digest], |r| r.get(0))
                    .optional()
                    .map_err(sql_err)?;
                match bytes {
                    Some(bytes) => {
                        inline.insert(digest.to_string(), bytes);
                    }
                    None => {
                        if let Some(place) = packed_place(&conn, digest)? {
                            in_packs.push((digest.to_string(), place));
                        }
                    }
                }
            }
        }
        drop(snapshot);
        drop(conn);
        for (digest, (pack, offset, size)) in in_packs {
            let bytes = self.read_packed(&pack, offset, size)?;
            inline.insert(digest, bytes);
        }
        Ok((rows, inline))
    }

    /// [`Index::action`] of each of `keys`, in their order, in one
    /// statement: a grid's ready trials are looked up together.
    pub(crate) fn actions_of_keys(&self, keys: &[&str]) -> io::Result<ParsedActions> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(keys).map_err(io::Error::other)?;
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT a.key, a.schema, a.node, a.mode, a.ingredients, a.outputs, a.output_digest, a.log_digest, a.duration_ms, a.created_unix FROM json_each(?1) j JOIN actions a ON a.key = j.value",
            )
            .map_err(sql_err)?;
        let mut found: std::collections::HashMap<String, Result<Manifest, String>> = stmt
            .query_map([list], |r| {
                Ok((r.get::<_, String>(0)?, row_to_manifest(r)?))
            })
            .map_err(sql_err)?
            .collect::<Result<_, _>>()
            .map_err(sql_err)?;
        let mut rows: ParsedActions = Vec::with_capacity(keys.len());
        let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (at, key) in keys.iter().enumerate() {
            // A key asked for twice gets its row twice.
            let row = match first.get(key) {
                Some(&earlier) => rows[earlier].clone(),
                None => {
                    first.insert(key, at);
                    found.remove(*key)
                }
            };
            rows.push(row);
        }
        Ok(rows)
    }

    /// Every action row, parsed (or why not), by key.
    pub(crate) fn actions(&self) -> io::Result<Vec<(String, Result<Manifest, String>)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT key, schema, node, mode, ingredients, outputs, output_digest, log_digest, duration_ms, created_unix FROM actions ORDER BY key",
            )
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, row_to_manifest(r)?)))
            .map_err(sql_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
    }

    /// Every inline blob's digest and size.
    pub(crate) fn inline_sizes(&self) -> io::Result<Vec<(String, u64)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT digest, length(data) FROM blobs ORDER BY digest")
            .map_err(sql_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(sql_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql_err)
    }

    /// Removes actions and the rows of blobs (inline and packed), in one
    /// transaction.
    pub(crate) fn remove(&self, keys: &[String], digests: &[String]) -> io::Result<()> {
        self.own_transaction(|tx| {
            delete_each(tx, "DELETE FROM actions WHERE key = ?1", keys)?;
            delete_each(tx, "DELETE FROM blobs WHERE digest = ?1", digests)?;
            delete_each(tx, "DELETE FROM packed WHERE digest = ?1", digests)
        })
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        // The WAL hook must not outlive its state.
        let conn = self.conn();
        self.stop_checkpointer(&conn);
    }
}

/// Asks SQLite to keep the `-wal` and `-shm` files when the last
/// connection closes (`SQLITE_FCNTL_PERSIST_WAL`), so that a build neither
/// creates nor deletes files in `index/`: the directory's stat then only
/// changes when the index is replaced or entries are removed.
fn keep_wal_files(conn: &Connection) {
    let mut on: std::ffi::c_int = 1;
    // SAFETY: the handle is a live connection owned by `conn`; the op
    // reads and writes one c_int through the pointer, which outlives the
    // call.
    unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::ffi::c_int).cast(),
        );
    }
}

/// Action rows by position, as [`Index::action`] gives each.
pub(crate) type ParsedActions = Vec<Option<Result<Manifest, String>>>;

fn row_to_manifest(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Manifest, String>> {
    let key: String = r.get(0)?;
    let schema: u32 = r.get(1)?;
    let ingredients: String = r.get(4)?;
    let outputs: String = r.get(5)?;
    let parsed = (|| {
        if schema != MANIFEST_SCHEMA {
            return Err(format!(
                "action has schema {schema} (this admf reads {MANIFEST_SCHEMA})"
            ));
        }
        let ingredients = serde_json::value::RawValue::from_string(ingredients)
            .map_err(|e| format!("ingredients do not parse: {e}"))?;
        let outputs =
            serde_json::from_str(&outputs).map_err(|e| format!("outputs do not parse: {e}"))?;
        Ok(Manifest {
            schema,
            key: key.clone(),
            node: r.get(2).map_err(|e| e.to_string())?,
            mode: r.get(3).map_err(|e| e.to_string())?,
            ingredients: RawJson(ingredients),
            outputs,
            output_digest: r.get(6).map_err(|e| e.to_string())?,
            log_digest: r.get(7).map_err(|e| e.to_string())?,
            duration_ms: r.get::<_, i64>(8).map_err(|e| e.to_string())? as u64,
            created_unix: r.get::<_, i64>(9).map_err(|e| e.to_string())? as u64,
        })
    })();
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(key: &str) -> Manifest {
        Manifest {
            schema: MANIFEST_SCHEMA,
            key: key.to_string(),
            node: format!("node-{key}"),
            mode: "test".into(),
            ingredients: RawJson::of(&serde_json::json!({})).unwrap(),
            outputs: Default::default(),
            output_digest: String::new(),
            log_digest: String::new(),
            duration_ms: 0,
            created_unix: 0,
        }
    }

    #[test]
    fn a_node_that_fails_to_write_takes_back_its_group_and_fails_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.db")).unwrap();
        // Writing the ref of node `bad` fails, as a full disk would.
        index
            .conn()
            .execute_batch(
                "CREATE TRIGGER fail BEFORE INSERT ON refs WHEN NEW.node = 'bad' \
                 BEGIN SELECT RAISE(ABORT, 'no space'); END;",
            )
            .unwrap();
        index.set_grouping(true).unwrap();
        let blob = ("a".repeat(64), b"bytes".to_vec());
        assert!(
            index
                .insert_with_ref(&[blob], Some(&manifest("k1")), false, Some(("w", "good")))
                .unwrap()
        );
        assert!(
            index.action("k1").unwrap().is_some(),
            "visible in its group"
        );
        let failed = index.insert_with_ref(&[], Some(&manifest("k2")), false, Some(("w", "bad")));
        assert!(failed.is_err());
        // The node committed before it in the group is gone with it, and
        // the flush says so rather than passing the group for stored.
        assert!(index.action("k1").unwrap().is_none());
        assert!(index.indexed_blob(&"a".repeat(64)).unwrap().is_none());
        // A node committed after it in the same group fails too.
        let later = index.insert_with_ref(&[], Some(&manifest("k4")), false, Some(("w", "good")));
        assert!(later.unwrap_err().to_string().contains("rolled back"));
        let flushed = index.flush().unwrap_err().to_string();
        assert!(
            flushed.contains("rolled back") && flushed.contains("no space"),
            "{flushed}"
        );
        // The next group starts clean.
        index
            .insert_with_ref(&[], Some(&manifest("k3")), false, Some(("w", "good")))
            .unwrap();
        index.set_grouping(false).unwrap();
        assert!(index.action("k3").unwrap().is_some());
        assert!(index.action("k2").unwrap().is_none());
        assert!(index.action("k4").unwrap().is_none());
    }

    #[test]
    fn a_batch_writes_each_entry_as_its_own_row_and_keeps_existing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index.db")).unwrap();
        let mut old = manifest("k2");
        old.log_digest = "old".into();
        assert!(index.insert(&[], Some(&old), false).unwrap());
        let manifests: Vec<Manifest> = ["k1", "k2", "k3"].iter().map(|k| manifest(k)).collect();
        let blobs: Vec<Vec<(String, Vec<u8>)>> = (0..3)
            .map(|i| vec![(format!("{i}").repeat(64), vec![i as u8; 3])])
            .collect();
        let rows: Vec<ActionRows<'_>> = manifests
            .iter()
            .zip(&blobs)
            .map(|(m, b)| ActionRows {
                blobs: b,
                packed: &[],
                action: m,
                outputs_json: "{}",
                replace: false,
                ref_to: Some(("w", m.node.as_str())),
            })
            .collect();
        assert_eq!(index.insert_batch(&rows).unwrap(), [true, false, true]);
        let found = index
            .actions_of_keys(&["k3", "missing", "k2", "k1", "k3"])
            .unwrap();
        let keys: Vec<Option<(String, String)>> = found
            .into_iter()
            .map(|row| row.map(|m| m.unwrap()).map(|m| (m.key, m.log_digest)))
            .collect();
        let row = |k: &str, log: &str| Some((k.to_string(), log.to_string()));
        assert_eq!(
            keys,
            [
                row("k3", ""),
                None,
                row("k2", "old"),
                row("k1", ""),
                row("k3", "")
            ]
        );
        for (digest, data) in blobs.iter().flatten() {
            assert_eq!(index.indexed_blob(digest).unwrap().as_ref(), Some(data));
        }
        let refs: i64 = index
            .conn()
            .query_row(
                "SELECT count(*) FROM refs WHERE workflow_id = 'w'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // The ref points at the key whichever writer stored its entry.
        assert_eq!(refs, 3);
    }

    fn pragma(index: &Index, name: &str) -> i64 {
        index
            .conn()
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_index_takes_large_pages_and_an_existing_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let new = Index::open(&dir.path().join("new.db")).unwrap();
        assert_eq!(pragma(&new, "page_size"), 16384);
        let mode: String = new
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // OFF (0) unless ADMF_DURABLE asks for FULL (2): a killed process
        // loses no committed transaction either way.
        let sync = if crate::store::fsutil::durable() {
            2
        } else {
            0
        };
        assert_eq!(pragma(&new, "synchronous"), sync);
        assert_eq!(pragma(&new, "wal_autocheckpoint"), CHECKPOINT_PAGES as i64);
        // A database made with SQLite's default pages keeps them: the size
        // of an existing file changes only through a VACUUM.
        let old_path = dir.path().join("old.db");
        Connection::open(&old_path)
            .unwrap()
            .execute_batch("PRAGMA page_size=4096; CREATE TABLE t (x);")
            .unwrap();
        let old = Index::open(&old_path).unwrap();
        assert_eq!(pragma(&old, "page_size"), 4096);
        old.insert(
            &[("b".repeat(64), vec![7; 10_000])],
            Some(&manifest("k")),
            false,
        )
        .unwrap();
        assert_eq!(pragma(&old, "page_size"), 4096);
        assert!(old.action("k").unwrap().is_some());
    }

    #[test]
    fn while_grouping_the_wal_is_checkpointed_by_a_thread_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let index = Index::open(&path).unwrap();
        index.set_grouping(true).unwrap();
        // The coordinator's connection no longer checkpoints in its commits.
        assert_eq!(pragma(&index, "wal_autocheckpoint"), 0);
        // Groups of inline blobs past the checkpoint's page count (about
        // 24 MB against 1,000 pages of 16 KiB).
        for group in 0..8 {
            for n in 0..50 {
                let digest = format!("{group:032}{n:032}");
                let bytes = vec![(group * 50 + n) as u8; 60_000];
                index.insert(&[(digest, bytes)], None, false).unwrap();
            }
            index.flush().unwrap();
        }
        // Only a checkpoint copies pages into the database file; the
        // checkpointer does it while the group stays on.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&path).unwrap().len() < 1 << 20 {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing was checkpointed while grouping"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        index.set_grouping(false).unwrap();
        assert_eq!(
            pragma(&index, "wal_autocheckpoint"),
            CHECKPOINT_PAGES as i64
        );
        assert!(index.checkpointer.lock().unwrap().is_none());
        let all = index.inline_sizes().unwrap();
        assert_eq!(all.len(), 400);
        assert!(all.iter().all(|(_, size)| *size == 60_000));
        // Grouping again starts a new checkpointer.
        index.set_grouping(true).unwrap();
        assert!(index.checkpointer.lock().unwrap().is_some());
        drop(index);
        let reopened = Index::open(&path).unwrap();
        assert_eq!(reopened.inline_sizes().unwrap().len(), 400);
    }
}
