//! What a `command` phase sees of its upstream nodes: each node's outputs
//! as a folder of files, named by `ADMF_UPSTREAM_<NAME>`, and
//! `ADMF_UPSTREAM_JSON`, the path of a JSON file listing every node's
//! folder, files and metrics file. `<NAME>` is the node id in capitals
//! with every character other than a letter or digit turned into `_`
//! (`parameter_discovery` → `ADMF_UPSTREAM_PARAMETER_DISCOVERY`,
//! `sweep[3]` → `ADMF_UPSTREAM_SWEEP_3_`).
//!
//! An upstream entry of an open store is laid out once and kept from one
//! build to the next in the store's `upstream/` directory (see
//! `upstream_env/kept.rs`), so that a rerun lays out only the entries that
//! changed. A build that finds those folders held by another build lays
//! out its own in its scratch directory instead, as follows.
//!
//! In a build, each upstream entry is laid out once, in the store's scratch
//! directory (see [`crate::store::Store::scratch_dir`]), and shared by
//! every node that reads it: its files are read-only (a hard link to the
//! stored blob where the blob is a file, else a copy written read-only)
//! and so are its directories. The stat of every file and directory is
//! noted when it is laid out and compared before each reuse and after
//! each command that used it: a folder that changed is laid out afresh
//! for the next reader, and the command that ran while it changed fails,
//! so no node can change what another reads or build on what it changed
//! itself. The listing is written per execution, read-only, beside the
//! folders. Everything goes when the build's store is closed.
//!
//! New files and directories are what a layout costs most: on ext4
//! without a journal, each new inode is found by scanning past every
//! inode freed in the last minutes, a millisecond apiece after a large
//! build was removed. So a layout makes as few as it can. An artifact
//! with no file of its own in the store (a small one kept inside the
//! index) gets one read-only scratch copy per digest, hard-linked into
//! every folder that holds it; a listing whose command has finished
//! with it unchanged is rewritten in place for a later execution (through
//! a descriptor kept open from its creation, so it stays read-only)
//! rather than left for a new file; and a folder that no execution holds
//! is emptied and filled in place for another entry, keeping the
//! directories both need, and only those where entries change are made
//! writable meanwhile (its own entry is laid out again if read later).
//! A scratch copy is checked with its ctime: the links this module makes
//! are the only changes it accepts, so a rewrite that keeps size and
//! mtime is still seen.
//!
//! An upstream `command` node whose outputs are all plain stored files in
//! the workspace gets no folder: the decision checked them against the
//! store under read locks held until the reading node is committed
//! ([`Upstream::in_workspace`]), so its "folder" is the workspace
//! directory they are in, and only their stamps are taken, for the same
//! check after the command.
//!
//! Artifacts that do not come from an open store (an action run in
//! another process, a plain directory) are laid out per execution in a
//! temp dir removed after it, as before. Folder paths differ from run to
//! run and enter no key (a key rests on the upstream outputs' digests,
//! which are what the files hold).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::Upstream;
use crate::store::{OutputRecord, Store};

mod kept;

/// Read the record of the kept upstream folders of the store at
/// `store_root` ahead of a build ([`crate::preload`]); false when there
/// is nothing whole and steady to read.
pub fn preload_kept(store_root: &Path) -> bool {
    kept::preload(&store_root.join("upstream"))
}

/// `ADMF_UPSTREAM_<NAME>` for node `id`.
pub fn var_name(id: &str) -> String {
    let tail: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("ADMF_UPSTREAM_{tail}")
}

/// The upstream folders of one execution. Shared folders stay for the
/// next reader; a folder made for this execution alone goes when dropped.
pub struct UpstreamFolders {
    _own: Option<tempfile::TempDir>,
    /// The listing made for this execution alone, outside any folder.
    _own_listing: Option<tempfile::TempPath>,
    /// Shared folders (and the listing) this execution reads, by node,
    /// checked by [`UpstreamFolders::changed`].
    used: Vec<(String, Arc<Folder>)>,
    listing: Option<Listing>,
    /// Where the listing goes back for reuse when this execution is done.
    listings: Option<Arc<ListingPool>>,
    /// (variable, value) pairs to set, `ADMF_UPSTREAM_JSON` last.
    pub env: Vec<(String, String)>,
    /// The build's reads, when `admf serve` may say which of the
    /// workspace files read in place changed ([`Upstream::in_workspace`]).
    watched: Option<crate::reads::Reads>,
}

impl Drop for UpstreamFolders {
    fn drop(&mut self) {
        // The listing goes back for a later execution, which checks that
        // it is as this one left it: one that was changed stays where it
        // is, unused.
        if let (Some(pool), Some(listing)) = (&self.listings, self.listing.take()) {
            locked(pool).push(listing);
        }
    }
}

/// A shared listing file, read-only, with a descriptor open for writing
/// kept from its creation: it is rewritten through that descriptor, with
/// no change of mode and no new open.
struct Listing {
    path: PathBuf,
    stamp: Stamp,
    file: fs::File,
}

impl Listing {
    /// Whether the path still names the file as this module left it.
    fn as_left(&self) -> bool {
        Stamp::of(&self.path).is_ok_and(|now| now.matches(&self.stamp))
    }

    /// Replaces the content with `listed`, in place (its inode is kept).
    /// Written over from the start and cut to its new length, never to
    /// zero first: on ext4 a file truncated to nothing and rewritten is
    /// flushed when closed.
    fn rewrite(&mut self, listed: &Listed<'_>) -> io::Result<()> {
        use std::io::Seek;
        (&self.file).seek(io::SeekFrom::Start(0))?;
        write_listing(listed, &self.file)?;
        let end = (&self.file).stream_position()?;
        if end < self.stamp.size {
            self.file.set_len(end)?;
        }
        self.stamp = Stamp::of_file(&self.file)?;
        Ok(())
    }
}

/// Listings whose executions are done, free to be rewritten.
type ListingPool = Mutex<Vec<Listing>>;

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl UpstreamFolders {
    /// What changed in the shared folders or the listing since they were
    /// laid out, said in one line; `None` when nothing did. A command
    /// whose upstream changed while it ran must not be stored.
    pub fn changed(&self) -> Option<String> {
        // The command may have moved the kept folders' directory: the
        // handle their stats go through is checked against its path first.
        if let Some(root) = self.used.iter().find_map(|(_, f)| f.root.as_ref()) {
            root.recheck();
        }
        // The workspace files read in place that `admf serve` saw no
        // event on since it vouched for them still have the stat it
        // vouched for: one question instead of a stat each.
        let now = self
            .watched
            .as_ref()
            .and_then(|reads| reads.still_vouched());
        let intact =
            crate::par::map_in_parallel(&self.used, |_, (_, folder)| folder.intact(now.as_ref()));
        if let Some(((node, _), _)) = self.used.iter().zip(intact).find(|(_, ok)| !ok) {
            return Some(format!(
                "the upstream folder of `{node}` (${}) was changed while the command ran; upstream folders are read-only",
                var_name(node)
            ));
        }
        let listing = self.listing.as_ref()?;
        (!listing.as_left()).then(|| {
            format!(
                "{} was changed while the command ran; it is read-only",
                listing.path.display()
            )
        })
    }
}

/// One upstream entry laid out as a folder.
struct Folder {
    path: PathBuf,
    /// The files placed, by artifact name.
    files: Vec<(String, PathBuf)>,
    /// Artifacts that could not be read (a corrupt blob), with the error.
    left_out: Vec<(String, String)>,
    /// Every file and directory as laid out (empty when not shared).
    stamps: Vec<(PathBuf, Laid)>,
    /// The directory its stamps are taken through, for a kept folder.
    root: Option<Arc<StatRoot>>,
}

/// How a file or directory of a shared folder is checked.
enum Laid {
    /// Made for this folder: its stamp as laid out.
    Own(Stamp),
    /// A hard link to a stored blob: its stamp without the ctime, which
    /// any new link to the blob changes.
    StoreLink(Stamp),
    /// A hard link to a scratch copy: the copy's stamp as this module
    /// last left it, ctime included.
    ScratchLink(Arc<ScratchBlob>),
    /// A workspace file the decision checked: the stat it saw then.
    Checked(crate::file_stat::Stat),
}

impl Laid {
    /// `now`: the files known to still have the stat `admf serve`
    /// vouched for.
    fn intact(
        &self,
        path: &Path,
        root: Option<&StatRoot>,
        now: Option<&crate::reads::StillVouched>,
    ) -> bool {
        match self {
            Laid::Own(stamp) | Laid::StoreLink(stamp) => {
                Stamp::of_in(path, root).is_ok_and(|now| now.matches(stamp))
            }
            // Under the copy's lock: a link being made meanwhile changes
            // the ctime before the stamp is updated.
            Laid::ScratchLink(blob) => {
                let stamp = locked(&blob.stamp);
                Stamp::of_in(path, root).is_ok_and(|now| now.matches(&stamp))
            }
            Laid::Checked(stat) => match now.and_then(|now| now.plain_stat(path)) {
                Some(vouched) => vouched == *stat,
                None => crate::file_stat::Stat::of_plain_file(path) == Some(*stat),
            },
        }
    }
}

impl Folder {
    fn intact(&self, now: Option<&crate::reads::StillVouched>) -> bool {
        let root = self.root.as_deref().filter(|root| root.usable());
        self.stamps
            .iter()
            .all(|(path, laid)| laid.intact(path, root, now))
    }
}

/// A directory that holds many folders (the kept folders' `upstream/`),
/// open, so that a stat of a file in it resolves only the components
/// below it (`statx(dirfd, rest)`) rather than the whole absolute path:
/// a node with ten thousand upstream folders stats some forty thousand
/// paths. The handle names the directory the path named when it was
/// opened; [`StatRoot::recheck`] compares the two before the stats that
/// rely on it, and once they differ it is not used again.
struct StatRoot {
    path: PathBuf,
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
    usable: std::sync::atomic::AtomicBool,
}

impl StatRoot {
    /// `dir` opened; `None` where the shortcut does not apply.
    #[cfg(target_os = "linux")]
    fn open(dir: &Path) -> Option<StatRoot> {
        Some(StatRoot {
            path: dir.to_path_buf(),
            fd: crate::dir_stat::open_handle(dir)?,
            usable: std::sync::atomic::AtomicBool::new(true),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn open(_dir: &Path) -> Option<StatRoot> {
        None
    }

    fn usable(&self) -> bool {
        self.usable.load(Ordering::Relaxed)
    }

    /// Whether the path still names the directory the handle holds; once
    /// it does not, every stat goes by the full path.
    fn recheck(&self) -> bool {
        #[cfg(target_os = "linux")]
        if self.usable() {
            let same = match (rustix::fs::stat(&self.path), rustix::fs::fstat(&self.fd)) {
                (Ok(now), Ok(held)) => now.st_dev == held.st_dev && now.st_ino == held.st_ino,
                _ => false,
            };
            if !same {
                self.usable.store(false, Ordering::Relaxed);
            }
        }
        self.usable()
    }

    /// The stamp of `path` through the handle, when `path` is below it.
    #[cfg(target_os = "linux")]
    fn stamp(&self, path: &Path) -> Option<io::Result<Stamp>> {
        use std::os::unix::ffi::OsStrExt;
        let rest = path
            .as_os_str()
            .as_bytes()
            .strip_prefix(self.path.as_os_str().as_bytes())?
            .strip_prefix(b"/")?;
        let found = crate::dir_stat::statx_at(&self.fd, std::ffi::OsStr::from_bytes(rest), false)?;
        Some(found.map_err(io::Error::from).map(|x| {
            let time = |t: &rustix::fs::StatxTimestamp| (t.tv_sec, i64::from(t.tv_nsec));
            Stamp {
                ino: (libc::makedev(x.stx_dev_major, x.stx_dev_minor), x.stx_ino),
                mode: u32::from(x.stx_mode),
                size: x.stx_size,
                mtime: time(&x.stx_mtime),
                ctime: Some(time(&x.stx_ctime)),
            }
        }))
    }

    #[cfg(not(target_os = "linux"))]
    fn stamp(&self, _path: &Path) -> Option<io::Result<Stamp>> {
        None
    }
}

/// One read-only scratch copy of a blob, linked into the folders that
/// hold it.
struct ScratchBlob {
    path: PathBuf,
    stamp: Mutex<Stamp>,
}

/// The scratch copies by blob digest.
type ScratchBlobs = Mutex<std::collections::HashMap<String, Arc<ScratchBlob>>>;

/// What a file's stat says of its identity and content. Writing a file
/// changes its ctime even when its mtime is set back; a hard link to a
/// blob is checked without its ctime, which any new link to the blob
/// changes.
#[derive(Debug, Clone, PartialEq)]
struct Stamp {
    ino: (u64, u64),
    mode: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: Option<(i64, i64)>,
}

impl Stamp {
    fn of(path: &Path) -> io::Result<Stamp> {
        Stamp::of_metadata(&fs::symlink_metadata(path)?)
    }

    /// [`Stamp::of`], through `root` where `path` is below it.
    fn of_in(path: &Path, root: Option<&StatRoot>) -> io::Result<Stamp> {
        match root.and_then(|root| root.stamp(path)) {
            Some(found) => found,
            None => Stamp::of(path),
        }
    }

    /// The stamp of an open file.
    fn of_file(file: &fs::File) -> io::Result<Stamp> {
        Stamp::of_metadata(&file.metadata()?)
    }

    #[cfg(unix)]
    fn of_metadata(m: &fs::Metadata) -> io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        Ok(Stamp {
            ino: (m.dev(), m.ino()),
            mode: m.mode(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: Some((m.ctime(), m.ctime_nsec())),
        })
    }

    #[cfg(not(unix))]
    fn of_metadata(m: &fs::Metadata) -> io::Result<Stamp> {
        let mtime = m
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| (d.as_secs() as i64, d.subsec_nanos() as i64))
            .unwrap_or((0, 0));
        Ok(Stamp {
            ino: (0, 0),
            mode: u32::from(m.permissions().readonly()),
            size: m.len(),
            mtime,
            ctime: Some(mtime),
        })
    }

    fn without_ctime(mut self) -> Stamp {
        self.ctime = None;
        self
    }

    fn matches(&self, laid_out: &Stamp) -> bool {
        self.ino == laid_out.ino
            && self.mode == laid_out.mode
            && self.size == laid_out.size
            && self.mtime == laid_out.mtime
            && (laid_out.ctime.is_none() || self.ctime == laid_out.ctime)
    }
}

/// Names shared folders and listings apart within one scratch dir.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Lays `upstream` out as folders and returns the variables naming them.
/// A file that cannot be read (its blob is corrupt) is left out and said
/// so in `log`: the command fails only if it reads that file.
pub fn prepare(upstream: &[Upstream], log: &mut dyn io::Write) -> io::Result<UpstreamFolders> {
    let mut own: Option<tempfile::TempDir> = None;
    let scratch = match store_of(upstream) {
        Some(store) => {
            if let Some(kept) = kept::KeptFolders::of(store) {
                kept.recheck_root();
            }
            Some(store.scratch_dir()?)
        }
        None => None,
    };
    if upstream.iter().any(|up| up.open_entry().is_none()) {
        own_dir(&mut own)?;
    }
    let own_path = own.as_ref().map(|dir| dir.path());
    // Each folder is checked or laid out on its own (slots and records
    // are locked per entry), so a node with thousands of upstream nodes
    // has them checked on several threads.
    let folders = crate::par::map_in_parallel(upstream, |i, up| match up.open_entry() {
        Some((_, outputs)) if let Some(folder) = in_workspace(up, outputs) => Ok((folder, true)),
        Some((store, outputs)) => shared_folder(store, up, outputs).map(|f| (f, true)),
        None => {
            // A numbered folder: two node ids may share a variable name.
            let to = own_path.expect("made above").join(i.to_string());
            lay_out(up, &to, Layout::Own, None).map(|f| (Arc::new(f), false))
        }
    });
    let per_node_vars = upstream.len() <= MAX_NODE_VARS;
    if !per_node_vars {
        writeln!(
            log,
            "admf: {} upstream nodes, more than {MAX_NODE_VARS}: their folders are named in $ADMF_UPSTREAM_JSON only, with no ADMF_UPSTREAM_<NAME> variable each",
            upstream.len()
        )?;
    }
    let mut used = Vec::new();
    let mut env = Vec::with_capacity(upstream.len().min(MAX_NODE_VARS) + 1);
    let mut nodes: Vec<ListedNode<'_>> = Vec::with_capacity(upstream.len());
    let mut positions = std::collections::HashMap::new();
    for (up, folder) in upstream.iter().zip(folders) {
        let (folder, shared) = folder?;
        if shared {
            used.push((up.node.clone(), folder.clone()));
        }
        for (name, error) in &folder.left_out {
            writeln!(
                log,
                "admf: {} is left out of ${}: {error}",
                up.describe(name),
                var_name(&up.node)
            )?;
        }
        let var = per_node_vars.then(|| var_name(&up.node));
        if let Some(var) = &var {
            env.push((var.clone(), folder.path.to_string_lossy().into_owned()));
        }
        let node = ListedNode {
            id: &up.node,
            var,
            mode: &up.mode,
            folder,
        };
        // A node named twice keeps its first place and its last folder.
        match positions.entry(up.node.as_str()) {
            std::collections::hash_map::Entry::Occupied(at) => nodes[*at.get()] = node,
            std::collections::hash_map::Entry::Vacant(at) => {
                at.insert(nodes.len());
                nodes.push(node);
            }
        }
    }
    let listed = Listed { nodes: &nodes };
    let mut listings = None;
    let mut own_listing = None;
    let (path, listing) = match scratch {
        Some(dir) => {
            let pool = store_of(upstream)
                .expect("a scratch dir comes from a store")
                .shared::<ListingPool>("upstream-listings");
            let listing = match reuse_listing(&pool, &listed) {
                Some(reused) => reused,
                None => {
                    let path = dir.join(format!(
                        "upstream.{}.json",
                        NEXT.fetch_add(1, Ordering::Relaxed)
                    ));
                    let file = create_new(&path, true)?;
                    write_listing(&listed, &file)?;
                    let stamp = Stamp::of(&path)?;
                    Listing { path, stamp, file }
                }
            };
            listings = Some(pool);
            (listing.path.clone(), Some(listing))
        }
        // No store (no upstream node, or none stored here): a listing of
        // its own, in the folder made for the upstream laid out, or else
        // one temp file. A command with no upstream node (each root of a
        // graph) then makes one new file, not a folder and a file: on a
        // file system that has just freed many inodes each new one costs
        // a search past them.
        None => match &own {
            Some(dir) => {
                let path = dir.path().join("upstream.json");
                write_listing(&listed, &fs::File::create(&path)?)?;
                (path, None)
            }
            None => {
                let file = tempfile::Builder::new()
                    .prefix("admf-upstream")
                    .suffix(".json")
                    .tempfile()?;
                write_listing(&listed, file.as_file())?;
                let path = file.into_temp_path();
                own_listing = Some(path);
                (own_listing.as_ref().expect("set above").to_path_buf(), None)
            }
        },
    };
    env.push((
        "ADMF_UPSTREAM_JSON".into(),
        path.to_string_lossy().into_owned(),
    ));
    Ok(UpstreamFolders {
        _own: own,
        _own_listing: own_listing,
        used,
        listing,
        listings,
        env,
        watched: upstream
            .iter()
            .find_map(|up| up.workspace_watched())
            .cloned(),
    })
}

/// A node with more upstream nodes than this gets `ADMF_UPSTREAM_JSON`
/// only, no variable per node: every process the command starts copies
/// its environment and a shell reads it all in (ten thousand paths made
/// a 113 ms command take 205 ms in one run of `bench/env_vars.py`), and some twenty
/// thousand would pass Linux's limit on a command's arguments and
/// environment together (2 MiB by default): the command could not start.
pub const MAX_NODE_VARS: usize = 1000;

/// Writes the listing to `file` from where its cursor is, through a
/// buffer (a listing of ten thousand nodes is megabytes: made whole in
/// memory first, its pages cost more than writing it).
fn write_listing(listed: &Listed<'_>, file: &fs::File) -> io::Result<()> {
    use std::io::Write;
    let mut out = io::BufWriter::with_capacity(1 << 16, file);
    serde_json::to_writer_pretty(&mut out, listed)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// The listing `ADMF_UPSTREAM_JSON` names: `{"nodes": {id: node}}`, in
/// upstream order. Written straight from the folders (no JSON tree made
/// first: a node may have ten thousand upstream nodes).
struct Listed<'a> {
    nodes: &'a [ListedNode<'a>],
}

/// One node of the listing: `{"dir", "env", "mode", "files", "metrics"}`,
/// `env` null above [`MAX_NODE_VARS`] upstream nodes, `files` by artifact
/// name, `metrics` the path of `metrics.json` or null.
struct ListedNode<'a> {
    id: &'a str,
    /// Its `ADMF_UPSTREAM_<NAME>`, when set ([`MAX_NODE_VARS`]).
    var: Option<String>,
    mode: &'a str,
    folder: Arc<Folder>,
}

impl serde::Serialize for Listed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut outer = serializer.serialize_map(Some(1))?;
        outer.serialize_entry("nodes", &NodesByID(self.nodes))?;
        outer.end()
    }
}

struct NodesByID<'a>(&'a [ListedNode<'a>]);

impl serde::Serialize for NodesByID<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|node| (node.id, node)))
    }
}

impl serde::Serialize for ListedNode<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let files = &self.folder.files;
        let metrics = files
            .iter()
            .find(|(name, _)| name == "metrics.json")
            .map(|(_, path)| path);
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("dir", &self.folder.path)?;
        map.serialize_entry("env", &self.var)?;
        map.serialize_entry("mode", self.mode)?;
        map.serialize_entry("files", &FilesByName(files))?;
        map.serialize_entry("metrics", &metrics)?;
        map.end()
    }
}

struct FilesByName<'a>(&'a [(String, PathBuf)]);

impl serde::Serialize for FilesByName<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, path)| (name, path)))
    }
}

/// The open store of the first stored upstream.
fn store_of(upstream: &[Upstream]) -> Option<&Store> {
    upstream
        .iter()
        .find_map(|up| up.open_entry().map(|(store, _)| store))
}

/// A listing from the pool rewritten to hold `listed`; `None` when the
/// pool has none that is still as it was left.
fn reuse_listing(pool: &ListingPool, listed: &Listed<'_>) -> Option<Listing> {
    loop {
        let mut listing = locked(pool).pop()?;
        if listing.as_left() && listing.rewrite(listed).is_ok() {
            return Some(listing);
        }
    }
}

fn own_dir(own: &mut Option<tempfile::TempDir>) -> io::Result<PathBuf> {
    if own.is_none() {
        *own = Some(tempfile::Builder::new().prefix("admf-upstream").tempdir()?);
    }
    Ok(own.as_ref().expect("made above").path().to_path_buf())
}

type Slot = Mutex<Option<Arc<Folder>>>;

/// The build's read-only folder of a stored upstream entry: the one laid
/// out before if it is intact, else a new one. Entries with the same
/// outputs share a folder (its content is the same).
fn shared_folder(
    store: &Store,
    up: &Upstream,
    outputs: &BTreeMap<String, OutputRecord>,
) -> io::Result<Arc<Folder>> {
    let mut hasher = blake3::Hasher::new();
    for (name, record) in outputs {
        hasher.update(name.as_bytes());
        hasher.update(b"\0");
        hasher.update(record.blake3.as_bytes());
        hasher.update(b"\n");
    }
    let id = hasher.finalize().to_hex();
    let slot = store.shared::<Slot>(&format!("upstream-folder/{id}"));
    let mut held = locked(&slot);
    if let Some(folder) = held.as_ref()
        && folder.intact(None)
    {
        return Ok(folder.clone());
    }
    if let Some(kept) = kept::KeptFolders::of(store) {
        let folder = Arc::new(kept.folder(up, &id)?);
        *held = Some(folder.clone());
        return Ok(folder);
    }
    let all = store.shared::<LaidOut>("upstream-folders");
    // An idle folder is filled in place, where it is. One that cannot be
    // emptied stays as debris for the store's close to remove, and a
    // changed folder stays where it is (a command may still be reading
    // it): the new one gets a new name.
    let (path, kept) = match recycle(&all, &slot).and_then(|old| old.empty_for(up).ok()) {
        Some((path, kept)) => (path, Some(kept)),
        None => {
            let path = store.scratch_dir()?.join(format!(
                "{}.{}",
                &id.as_str()[..16],
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            (path, None)
        }
    };
    let folder = Arc::new(lay_out(up, &path, Layout::Scratch, kept)?);
    *held = Some(folder.clone());
    locked(&all).push((slot.clone(), folder.clone()));
    Ok(folder)
}

/// The "folder" of an upstream node whose outputs are read where they
/// are, in the workspace ([`Upstream::in_workspace`]): the workspace
/// directory itself, nothing laid out. Each file's stamp is taken now, so
/// that a command that changes one fails as it would for a folder
/// ([`UpstreamFolders::changed`]). `None` when the upstream is not read
/// in place or a file cannot be stat'ed (a folder is laid out instead).
fn in_workspace(up: &Upstream, outputs: &BTreeMap<String, OutputRecord>) -> Option<Arc<Folder>> {
    let dir = up.workspace_dir()?;
    let files: Vec<(String, PathBuf)> = outputs
        .keys()
        .map(|name| (name.clone(), dir.join(name)))
        .collect();
    // The decision's stats were taken under the read locks held until
    // the command is committed; one it did not give is taken now.
    let checked = up.workspace_stats();
    let stamps = files
        .iter()
        .map(|(name, path)| {
            let laid = match checked.iter().find(|(checked, _)| checked == name) {
                Some((_, stat)) => Laid::Checked(*stat),
                None => Laid::Own(Stamp::of(path).ok()?),
            };
            Some((path.clone(), laid))
        })
        .collect::<Option<_>>()?;
    Some(Arc::new(Folder {
        path: dir.to_path_buf(),
        files,
        left_out: Vec::new(),
        stamps,
        root: None,
    }))
}

/// Every shared folder of the build with the slot that holds it, oldest
/// first.
type LaidOut = Mutex<Vec<(Arc<Slot>, Arc<Folder>)>>;

/// An intact folder that no execution holds, taken from its slot (its
/// entry's next reader lays the entry out again): its directories are
/// used for another entry instead of new ones. `me` is the slot the
/// caller holds locked.
fn recycle(all: &LaidOut, me: &Arc<Slot>) -> Option<Folder> {
    let mut all = locked(all);
    // Folders replaced in their slot after a change are left alone.
    all.retain(|(slot, folder)| Arc::ptr_eq(slot, me) || Arc::strong_count(folder) > 1);
    let mut i = 0;
    while i < all.len() {
        let (slot, folder) = &all[i];
        // Held by its slot and this list only: no execution uses it,
        // and none can take it while the slot is locked here.
        let idle = !Arc::ptr_eq(slot, me) && Arc::strong_count(folder) == 2;
        let Some(mut held) = idle.then(|| slot.try_lock().ok()).flatten() else {
            i += 1;
            continue;
        };
        if !held.as_ref().is_some_and(|f| Arc::ptr_eq(f, folder))
            || Arc::strong_count(folder) != 2
            || !folder.intact(None)
        {
            drop(held);
            i += 1;
            continue;
        }
        *held = None;
        drop(held);
        let (_, folder) = all.remove(i);
        return Arc::try_unwrap(folder).ok();
    }
    None
}

impl Folder {
    /// Empties this folder of its files, and of the directories the
    /// artifacts of `up` do not need, for `lay_out` to fill where it is;
    /// returns its path and the directories kept (relative to it, its
    /// root as ""). Only a directory where an entry is removed or added
    /// is made writable (mode 0755; kept as `None`); any other keeps its
    /// stamp, since nothing in it changes. Unlinking a scratch copy's
    /// link changes the copy's ctime, so its stamp is renewed under its
    /// lock.
    fn empty_for(self, up: &Upstream) -> io::Result<(PathBuf, KeptDirs)> {
        let rel = |path: &Path| path.strip_prefix(&self.path).unwrap_or(path).to_path_buf();
        let parent = |rel: &Path| rel.parent().map(Path::to_path_buf).unwrap_or_default();
        let is_file = |path: &PathBuf| self.files.iter().any(|(_, file)| file == path);
        let needed = needed_dirs(up);
        let old_dirs: BTreeMap<PathBuf, &Laid> = self
            .stamps
            .iter()
            .filter(|(path, _)| !is_file(path))
            .map(|(path, laid)| (rel(path), laid))
            .collect();
        let removed_dirs: Vec<&PathBuf> = old_dirs
            .keys()
            .filter(|d| !d.as_os_str().is_empty() && !needed.contains(*d))
            .collect();
        // Where an entry is removed or added: its parent directory.
        let mut touched: BTreeSet<PathBuf> = self
            .files
            .iter()
            .map(|(_, path)| parent(&rel(path)))
            .collect();
        touched.extend(removed_dirs.iter().map(|d| parent(d)));
        touched.extend(up.names().iter().map(|name| parent(Path::new(name))));
        touched.extend(
            needed
                .iter()
                .filter(|d| !old_dirs.contains_key(*d))
                .map(|d| parent(d)),
        );
        for dir in old_dirs.keys().filter(|d| touched.contains(*d)) {
            set_mode(&self.path.join(dir), 0o755)?;
        }
        for (path, laid) in &self.stamps {
            match laid {
                Laid::ScratchLink(blob) => {
                    let mut stamp = locked(&blob.stamp);
                    fs::remove_file(path)?;
                    let now = Stamp::of(&blob.path)?;
                    // Only our own unlink may have changed it.
                    if now.matches(&stamp.clone().without_ctime()) {
                        *stamp = now;
                    }
                }
                _ if is_file(path) => fs::remove_file(path)?,
                _ => {}
            }
        }
        // Children sort after their parents: removed in reverse.
        for dir in removed_dirs.iter().rev() {
            fs::remove_dir(self.path.join(dir))?;
        }
        let kept = old_dirs
            .iter()
            .filter(|(d, _)| !removed_dirs.contains(d))
            .map(|(d, laid)| {
                let stamp = match laid {
                    Laid::Own(stamp) if !touched.contains(d) => Some(stamp.clone()),
                    _ => None,
                };
                (d.clone(), stamp)
            })
            .collect();
        Ok((self.path, kept))
    }
}

/// The directories of an emptied folder (see [`Folder::empty_for`]),
/// relative to it: each with its stamp when it stays as it was, or
/// `None` when it was made writable (mode 0755).
type KeptDirs = BTreeMap<PathBuf, Option<Stamp>>;

/// The directories a folder of `up`'s artifacts needs below its root,
/// relative to it, parents before children.
fn needed_dirs(up: &Upstream) -> BTreeSet<PathBuf> {
    up.names()
        .iter()
        .flat_map(|name| {
            Path::new(name)
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Sets the permission bits of `path` (on Windows, only read-only or not).
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    let perms = {
        use std::os::unix::fs::PermissionsExt;
        fs::Permissions::from_mode(mode)
    };
    #[cfg(not(unix))]
    let perms = {
        let mut perms = fs::metadata(path)?.permissions();
        perms.set_readonly(mode & 0o200 == 0);
        perms
    };
    fs::set_permissions(path, perms)
}

/// What a folder is laid out for.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// One execution's own folder, removed after it.
    Own,
    /// Shared by the executions of one build, in its scratch directory;
    /// small artifacts are linked to the build's scratch copies.
    Scratch,
    /// Kept from one build to the next (see [`kept`]): linked to stored
    /// blobs or copied, never linked to a scratch copy.
    Kept,
}

/// Lays out every artifact of `up` under `dir`; a shared layout (any but
/// [`Layout::Own`]) makes the files and directories read-only and notes
/// their stamps. `kept`: the directories that are there already (an
/// emptied folder, see [`Folder::empty_for`]); `None` when `dir` is new.
fn lay_out(up: &Upstream, dir: &Path, how: Layout, kept: Option<KeptDirs>) -> io::Result<Folder> {
    let shared = how != Layout::Own;
    if kept.is_none() {
        fs::create_dir_all(dir)?;
    }
    let kept = kept.unwrap_or_default();
    let needed = needed_dirs(up);
    for rel in &needed {
        if !kept.contains_key(rel) {
            match fs::create_dir(dir.join(rel)) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
    }
    let mut folder = Folder {
        path: dir.to_path_buf(),
        files: Vec::new(),
        left_out: Vec::new(),
        stamps: Vec::new(),
        root: None,
    };
    let mut placed = Vec::new();
    for name in up.names() {
        let to = dir.join(&name);
        match place(up, &name, &to, how) {
            Ok(how) => {
                placed.push(how);
                folder.files.push((name, to));
            }
            Err(e) => folder.left_out.push((name, e.to_string())),
        }
    }
    if shared {
        // Every directory of the folder: its root and those `needed` made
        // or kept, parents first. One kept as it was keeps its stamp.
        let root = PathBuf::new();
        for rel in std::iter::once(&root).chain(&needed) {
            let path = dir.join(rel);
            let stamp = match kept.get(rel) {
                Some(Some(stamp)) => stamp.clone(),
                Some(None) => {
                    set_mode(&path, 0o555)?;
                    Stamp::of(&path)?
                }
                None => {
                    let mut perms = fs::symlink_metadata(&path)?.permissions();
                    perms.set_readonly(true);
                    fs::set_permissions(&path, perms)?;
                    Stamp::of(&path)?
                }
            };
            folder.stamps.push((path, Laid::Own(stamp)));
        }
        for ((_, path), how) in folder.files.iter().zip(placed) {
            let laid = match how {
                Placed::Copy => Laid::Own(Stamp::of(path)?),
                Placed::StoreLink => Laid::StoreLink(Stamp::of(path)?.without_ctime()),
                Placed::ScratchLink(blob) => Laid::ScratchLink(blob),
            };
            folder.stamps.push((path.clone(), laid));
        }
    }
    Ok(folder)
}

/// How an artifact was put in a folder.
enum Placed {
    Copy,
    StoreLink,
    ScratchLink(Arc<ScratchBlob>),
}

/// Puts artifact `name` at `to` (its directory is there). A shared folder
/// links only to read-only files and writes its copies read-only; an
/// artifact without a stored file is linked to the scratch copy of its
/// blob where it can be, and so is one whose blob has a scratch copy
/// already (no need to look for the stored file).
fn place(up: &Upstream, name: &str, to: &Path, how: Layout) -> io::Result<Placed> {
    let shared = how != Layout::Own;
    // Only a build's own folders link to its scratch copies: those go
    // when the build ends.
    let scratch = up
        .open_entry()
        .and_then(|(store, outputs)| Some((store, &outputs.get(name)?.blake3)))
        .filter(|_| how == Layout::Scratch);
    if let Some((store, digest)) = scratch
        && let Some(blob) = link_scratch_copy(store, up, name, digest, to, false)?
    {
        return Ok(Placed::ScratchLink(blob));
    }
    if let Some(file) = up.existing_file(name)
        && (!shared || fs::metadata(&file).is_ok_and(|m| m.permissions().readonly()))
        && fs::hard_link(&file, to).is_ok()
    {
        return Ok(Placed::StoreLink);
    }
    if let Some((store, digest)) = scratch
        && let Some(blob) = link_scratch_copy(store, up, name, digest, to, true)?
    {
        return Ok(Placed::ScratchLink(blob));
    }
    write_new(to, &up.read(name)?, shared)?;
    Ok(Placed::Copy)
}

/// Links `to` to the scratch copy of blob `digest` (artifact `name` of
/// `up`), made first if there is none or the one there was changed and
/// `make` allows. `None` when no link could be made (no copy and `make`
/// false, a file system without hard links, or one at its limit of
/// links): the caller looks further or copies.
fn link_scratch_copy(
    store: &Store,
    up: &Upstream,
    name: &str,
    digest: &str,
    to: &Path,
    make: bool,
) -> io::Result<Option<Arc<ScratchBlob>>> {
    let blobs = store.shared::<ScratchBlobs>("upstream-blobs");
    let mut blobs = locked(&blobs);
    let current = blobs.get(digest).filter(|blob| {
        let stamp = locked(&blob.stamp);
        Stamp::of(&blob.path).is_ok_and(|now| now.matches(&stamp))
    });
    let blob = match current {
        Some(blob) => blob.clone(),
        None if !make => return Ok(None),
        None => {
            // A changed copy stays where it is (folders linked to it see
            // the change); the new one gets a new name.
            let path = store.scratch_dir()?.join(format!(
                "blob.{}.{}",
                &digest[..digest.len().min(16)],
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            write_new(&path, &up.read(name)?, true)?;
            let stamp = Mutex::new(Stamp::of(&path)?);
            let blob = Arc::new(ScratchBlob { path, stamp });
            blobs.insert(digest.to_string(), blob.clone());
            blob
        }
    };
    let mut stamp = locked(&blob.stamp);
    if fs::hard_link(&blob.path, to).is_err() {
        return Ok(None);
    }
    let now = Stamp::of(&blob.path)?;
    if !now.matches(&stamp.clone().without_ctime()) {
        // Changed by someone else between the check and the link: this
        // link goes, and so does the copy.
        fs::remove_file(to)?;
        drop(stamp);
        blobs.remove(digest);
        return Ok(None);
    }
    *stamp = now;
    drop(stamp);
    Ok(Some(blob))
}

/// Writes a new file, read-only from the start when asked; the returned
/// descriptor may still write it.
fn write_new(path: &Path, bytes: &[u8], read_only: bool) -> io::Result<fs::File> {
    use std::io::Write;
    let mut file = create_new(path, read_only)?;
    file.write_all(bytes)?;
    Ok(file)
}

/// Makes a new empty file, read-only from the start when asked, open for
/// writing.
fn create_new(path: &Path, read_only: bool) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if read_only {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o444);
    }
    let file = options.open(path)?;
    #[cfg(not(unix))]
    if read_only {
        let mut perms = file.metadata()?.permissions();
        perms.set_readonly(true);
        file.set_permissions(perms)?;
    }
    Ok(file)
}

/// The folder `prepare` made for node `id`, from its variables.
pub fn folder_of(folders: &UpstreamFolders, id: &str) -> Option<PathBuf> {
    let var = var_name(id);
    folders
        .env
        .iter()
        .find(|(k, _)| *k == var)
        .map(|(_, v)| PathBuf::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::Role;
    use serde_json::{Map, Value, json};

    #[test]
    fn names_are_shell_safe() {
        assert_eq!(
            var_name("parameter_discovery"),
            "ADMF_UPSTREAM_PARAMETER_DISCOVERY"
        );
        assert_eq!(var_name("sweep[3]"), "ADMF_UPSTREAM_SWEEP_3_");
        assert_eq!(var_name("outer/inner-x"), "ADMF_UPSTREAM_OUTER_INNER_X");
    }

    #[test]
    fn folders_hold_every_file_and_the_listing_names_them() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("signals")).unwrap();
        std::fs::write(src.path().join("metrics.json"), "{\"sharpe\": 1}").unwrap();
        std::fs::write(src.path().join("signals/trial_0.jsonl"), "x").unwrap();
        let up = Upstream::from_dir(
            "sweep".into(),
            "signal_generation".into(),
            Role::Single,
            src.path().into(),
        );
        let folders = prepare(&[up], &mut std::io::sink()).unwrap();
        let dir = folder_of(&folders, "sweep").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("signals/trial_0.jsonl")).unwrap(),
            "x"
        );
        let (k, listing) = folders.env.last().unwrap();
        assert_eq!(k, "ADMF_UPSTREAM_JSON");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(listing).unwrap()).unwrap();
        let node = &v["nodes"]["sweep"];
        assert_eq!(node["env"], "ADMF_UPSTREAM_SWEEP");
        assert_eq!(node["metrics"], json!(dir.join("metrics.json")));
        assert_eq!(
            node["files"]["signals/trial_0.jsonl"],
            json!(dir.join("signals/trial_0.jsonl"))
        );
        let kept = dir.clone();
        drop(folders);
        assert!(!kept.exists());
    }

    #[test]
    fn above_the_variable_limit_only_the_listing_names_the_folders_in_order() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let count = MAX_NODE_VARS + 1;
        let ups: Vec<Upstream> = (0..count)
            .map(|i| {
                let key = format!("{:064x}", i + 1);
                small_upstream(&store, &format!("n{i}"), &key, "out/x.txt", &i.to_string())
            })
            .collect();
        let mut log = Vec::new();
        let folders = prepare(&ups, &mut log).unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(log.contains(&format!("{count} upstream nodes")), "{log}");
        assert_eq!(folders.env.len(), 1, "the listing alone");
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(&folders.env[0].1).unwrap()).unwrap();
        let nodes = v["nodes"].as_object().unwrap();
        assert_eq!(nodes.len(), count);
        // In upstream order, each folder holding its own node's file.
        for (i, (id, node)) in nodes.iter().enumerate() {
            assert_eq!(id, &format!("n{i}"));
            assert_eq!(node["env"], Value::Null);
            let file = node["files"]["out/x.txt"].as_str().unwrap();
            assert_eq!(std::fs::read_to_string(file).unwrap(), i.to_string());
        }
        assert_eq!(folders.changed(), None);
        // At the limit, every node has its variable.
        let at_limit = prepare(&ups[..MAX_NODE_VARS], &mut std::io::sink()).unwrap();
        assert_eq!(at_limit.env.len(), MAX_NODE_VARS + 1);
        assert_eq!(
            folder_of(&at_limit, "n7").unwrap(),
            Path::new(nodes["n7"]["dir"].as_str().unwrap())
        );
    }

    #[test]
    fn a_stat_root_gives_the_stamp_of_the_path_until_its_directory_is_replaced() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("upstream");
        std::fs::create_dir_all(dir.join("f/out")).unwrap();
        let file = dir.join("f/out/a.txt");
        std::fs::write(&file, "A").unwrap();
        let opened = StatRoot::open(&dir);
        assert_eq!(opened.is_some(), cfg!(target_os = "linux"));
        let Some(root) = opened else {
            return;
        };
        for path in [&file, &dir.join("f/out"), &dir.join("f")] {
            assert_eq!(
                Stamp::of_in(path, Some(&root)).unwrap(),
                Stamp::of(path).unwrap()
            );
        }
        // Outside the root: the full path.
        assert_eq!(
            Stamp::of_in(top.path(), Some(&root)).unwrap(),
            Stamp::of(top.path()).unwrap()
        );
        assert!(root.recheck());
        std::fs::rename(&dir, top.path().join("moved")).unwrap();
        std::fs::create_dir_all(dir.join("f/out")).unwrap();
        std::fs::write(&file, "B").unwrap();
        assert!(!root.recheck(), "another directory at the path");
        assert!(!root.usable());
    }

    /// A store whose kept folders another build holds (the returned
    /// lock): its folders are laid out in its scratch directory.
    fn store_without_kept_folders(root: &Path) -> (Store, std::fs::File) {
        let store = Store::open(root).unwrap();
        std::fs::create_dir_all(store.upstream_dir()).unwrap();
        let lock = std::fs::File::create(store.upstream_dir().join("lock")).unwrap();
        lock.lock().unwrap();
        (store, lock)
    }

    /// A stored entry with a small output (inline in the index) and a
    /// large one (a blob file), read as an upstream of this process.
    /// The outputs of [`stored_upstream`]'s node, written into `dir`.
    fn write_gen_outputs(dir: &Path) {
        std::fs::create_dir_all(dir.join("signals")).unwrap();
        std::fs::write(dir.join("metrics.json"), "{\"sharpe\": 1}").unwrap();
        std::fs::write(dir.join("signals/big.bin"), vec![7u8; 100 * 1024]).unwrap();
    }

    fn stored_upstream(store: &Store) -> Upstream {
        let pending = store.begin(&"ab".repeat(32)).unwrap();
        write_gen_outputs(pending.out_dir());
        let meta = crate::store::ManifestMeta {
            node: "gen".into(),
            mode: "command".into(),
            ingredients: json!({}).into(),
            duration_ms: 0,
        };
        let entry = pending.commit(meta, b"").unwrap();
        Upstream::stored("gen".into(), "command".into(), Role::Single, entry)
    }

    fn is_read_only(path: &Path) -> bool {
        std::fs::metadata(path).unwrap().permissions().readonly()
    }

    /// The listing is written straight from the folders: its bytes are
    /// those of the JSON tree `{"nodes": {id: {dir, env, mode, files,
    /// metrics}}}` in upstream order, as serde_json lays that tree out.
    #[test]
    fn the_listing_is_the_json_of_every_folder_in_upstream_order() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let gen_up = stored_upstream(&store);
        let b = small_upstream(&store, "b-2", &"c1".repeat(32), "out/b.txt", "B");
        let folders = prepare(&[b.clone(), gen_up.clone()], &mut std::io::sink()).unwrap();
        let (dir_b, dir_gen) = (
            folder_of(&folders, "b-2").unwrap(),
            folder_of(&folders, "gen").unwrap(),
        );
        let mut nodes = Map::new();
        nodes.insert(
            "b-2".into(),
            json!({"dir": dir_b, "env": "ADMF_UPSTREAM_B_2", "mode": "command",
                   "files": {"out/b.txt": dir_b.join("out/b.txt")}, "metrics": null}),
        );
        nodes.insert(
            "gen".into(),
            json!({"dir": dir_gen, "env": "ADMF_UPSTREAM_GEN", "mode": "command",
                   "files": {"metrics.json": dir_gen.join("metrics.json"),
                             "signals/big.bin": dir_gen.join("signals/big.bin")},
                   "metrics": dir_gen.join("metrics.json")}),
        );
        let mut expected = serde_json::to_vec_pretty(&json!({ "nodes": nodes })).unwrap();
        expected.push(b'\n');
        let listing = PathBuf::from(&folders.env.last().unwrap().1);
        assert_eq!(
            String::from_utf8(std::fs::read(listing).unwrap()).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn a_stored_upstream_is_laid_out_once_read_only_and_shared() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        let up = stored_upstream(&store);
        let first = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        let second = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        let dir = folder_of(&first, "gen").unwrap();
        assert_eq!(folder_of(&second, "gen").unwrap(), dir);
        assert!(dir.starts_with(store.scratch_dir().unwrap()));
        assert_eq!(
            std::fs::read_to_string(dir.join("metrics.json")).unwrap(),
            "{\"sharpe\": 1}"
        );
        assert_eq!(
            std::fs::read(dir.join("signals/big.bin")).unwrap(),
            vec![7u8; 100 * 1024]
        );
        for path in [
            dir.clone(),
            dir.join("signals"),
            dir.join("metrics.json"),
            dir.join("signals/big.bin"),
        ] {
            assert!(is_read_only(&path), "{} is writable", path.display());
        }
        // Root writes through any mode; `changed` is what catches it then.
        if !rustix::process::geteuid().is_root() {
            assert!(std::fs::write(dir.join("metrics.json"), "{}").is_err());
            assert!(std::fs::write(dir.join("extra"), "x").is_err());
        }
        // Each execution has its own listing, read-only too.
        let listing = |f: &UpstreamFolders| PathBuf::from(&f.env.last().unwrap().1);
        assert_ne!(listing(&first), listing(&second));
        assert!(is_read_only(&listing(&first)));
        assert_eq!(first.changed(), None);
        // Dropping the executions keeps the shared folder; closing the
        // store removes it.
        drop((first, second));
        assert!(dir.join("metrics.json").is_file());
        drop(up);
        drop(store);
        assert!(!dir.exists());
    }

    /// Makes `path` (a file or directory) writable again, as a command
    /// set on changing its upstream could.
    fn make_writable(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let mut perms = std::fs::metadata(path).unwrap().permissions();
        perms.set_mode(perms.mode() | 0o200);
        std::fs::set_permissions(path, perms).unwrap();
    }

    #[test]
    fn a_changed_folder_fails_its_readers_and_is_laid_out_afresh() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        let up = stored_upstream(&store);
        let running = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        let dir = folder_of(&running, "gen").unwrap();
        // Rewritten in place, with the same size and its mtime set back.
        let file = dir.join("metrics.json");
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        make_writable(&file);
        std::fs::write(&file, "{\"sharpe\": 9}").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let change = running.changed().expect("the change is seen");
        assert!(change.contains("`gen`"), "{change}");
        assert!(change.contains("$ADMF_UPSTREAM_GEN"), "{change}");
        let next = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        let fresh = folder_of(&next, "gen").unwrap();
        assert_ne!(fresh, dir);
        assert_eq!(
            std::fs::read_to_string(fresh.join("metrics.json")).unwrap(),
            "{\"sharpe\": 1}"
        );
        assert_eq!(next.changed(), None);
        // A file added to a directory made writable is a change too.
        let signals = fresh.join("signals");
        make_writable(&signals);
        std::fs::write(signals.join("extra.bin"), "x").unwrap();
        assert!(next.changed().is_some());
        let third = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        let again = folder_of(&third, "gen").unwrap();
        assert_ne!(again, fresh);
        assert!(!again.join("signals/extra.bin").exists());
    }

    /// An upstream read in place names the workspace directory it was
    /// given, lays nothing out, and a change to one of its files while
    /// the command runs is seen as a folder's would be.
    #[test]
    fn an_upstream_read_in_place_is_its_workspace_directory_checked_after() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        let workspace = tempfile::tempdir().unwrap();
        write_gen_outputs(workspace.path());
        let up =
            stored_upstream(&store).in_workspace(workspace.path().to_path_buf(), Vec::new(), None);
        let running = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        assert_eq!(folder_of(&running, "gen").unwrap(), workspace.path());
        assert_eq!(running.changed(), None);
        let scratch: Vec<_> = std::fs::read_dir(store.scratch_dir().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| !n.to_string_lossy().starts_with("upstream."))
            .collect();
        assert!(scratch.is_empty(), "laid out: {scratch:?}");
        std::fs::write(workspace.path().join("metrics.json"), "{\"sharpe\": 9}").unwrap();
        let change = running.changed().expect("the change is seen");
        assert!(change.contains("$ADMF_UPSTREAM_GEN"), "{change}");
        // Without the file, the entry gets a folder of the store's bytes.
        std::fs::remove_file(workspace.path().join("metrics.json")).unwrap();
        let next = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        let dir = folder_of(&next, "gen").unwrap();
        assert_ne!(dir, workspace.path());
        assert_eq!(
            std::fs::read_to_string(dir.join("metrics.json")).unwrap(),
            "{\"sharpe\": 1}"
        );
    }

    /// The stats the decision gave are what the check after the command
    /// compares with: a file changed since it was checked is seen even
    /// though it changed before the command began.
    #[test]
    fn an_upstream_read_in_place_is_checked_against_the_decisions_stats() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        let workspace = tempfile::tempdir().unwrap();
        write_gen_outputs(workspace.path());
        let metrics = workspace.path().join("metrics.json");
        let stat_of =
            |path: &Path| crate::file_stat::Stat::of(&std::fs::symlink_metadata(path).unwrap());
        let checked = vec![("metrics.json".to_string(), stat_of(&metrics))];
        let up =
            stored_upstream(&store).in_workspace(workspace.path().to_path_buf(), checked, None);
        let steady = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        assert_eq!(steady.changed(), None);
        drop(steady);
        std::fs::remove_file(&metrics).unwrap();
        std::fs::write(&metrics, "{\"sharpe\": 1}").unwrap();
        let running = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        assert_eq!(folder_of(&running, "gen").unwrap(), workspace.path());
        let change = running
            .changed()
            .expect("the change before the command is seen");
        assert!(change.contains("$ADMF_UPSTREAM_GEN"), "{change}");
    }

    /// A committed entry of node `node` whose one output, `name`, is
    /// small enough to live inside the index (no blob file of its own).
    fn small_upstream(store: &Store, node: &str, key: &str, name: &str, text: &str) -> Upstream {
        let pending = store.begin(key).unwrap();
        let path = pending.out_dir().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        let meta = crate::store::ManifestMeta {
            node: node.into(),
            mode: "command".into(),
            ingredients: json!({}).into(),
            duration_ms: 0,
        };
        let entry = pending.commit(meta, b"").unwrap();
        Upstream::stored(node.into(), "command".into(), Role::Single, entry)
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().ino()
    }

    #[test]
    fn a_finished_listing_is_rewritten_for_the_next_execution_unless_changed() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        let a = small_upstream(&store, "a", &"a1".repeat(32), "out/a.txt", "A");
        let b = small_upstream(&store, "b", &"b1".repeat(32), "out/b.txt", "B");
        let listing = |f: &UpstreamFolders| PathBuf::from(&f.env.last().unwrap().1);
        let first = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
        let used = listing(&first);
        let ino = inode(&used);
        drop(first);
        let second = prepare(std::slice::from_ref(&b), &mut std::io::sink()).unwrap();
        assert_eq!(listing(&second), used);
        assert_eq!(inode(&used), ino, "rewritten in place");
        assert!(is_read_only(&used));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&used).unwrap()).unwrap();
        assert!(
            v["nodes"]["b"].is_object() && v["nodes"]["a"].is_null(),
            "{v}"
        );
        assert_eq!(second.changed(), None);
        // A listing changed by its command is neither passed on nor used.
        make_writable(&used);
        std::fs::write(&used, "{}").unwrap();
        assert!(second.changed().is_some());
        drop(second);
        let third = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
        assert_ne!(listing(&third), used);
        assert_eq!(std::fs::read_to_string(&used).unwrap(), "{}");
    }

    #[test]
    fn a_small_blob_is_one_scratch_copy_linked_into_each_folder_and_checked_by_ctime() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        // Two entries whose outputs differ by name only share the copy.
        let a = small_upstream(&store, "a", &"a2".repeat(32), "out/a.txt", "same");
        let b = small_upstream(&store, "b", &"b2".repeat(32), "out/b.txt", "same");
        let both = prepare(&[a.clone(), b.clone()], &mut std::io::sink()).unwrap();
        let file_a = folder_of(&both, "a").unwrap().join("out/a.txt");
        let file_b = folder_of(&both, "b").unwrap().join("out/b.txt");
        assert_eq!(inode(&file_a), inode(&file_b));
        assert_eq!(std::fs::read_to_string(&file_b).unwrap(), "same");
        assert!(is_read_only(&file_a));
        // More links (another execution's layout) are not a change.
        let again = prepare(std::slice::from_ref(&b), &mut std::io::sink()).unwrap();
        assert_eq!(both.changed(), None);
        assert_eq!(again.changed(), None);
        // A rewrite keeping size and mtime is seen through either link.
        let mtime = std::fs::metadata(&file_a).unwrap().modified().unwrap();
        make_writable(&file_a);
        std::fs::write(&file_a, "SAME").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file_a)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert!(both.changed().is_some());
        assert!(again.changed().is_some());
        // The next reader gets the stored bytes in a new copy.
        drop((both, again));
        let next = prepare(std::slice::from_ref(&b), &mut std::io::sink()).unwrap();
        let fresh = folder_of(&next, "b").unwrap().join("out/b.txt");
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "same");
        assert_ne!(inode(&fresh), inode(&file_a));
        assert_eq!(next.changed(), None);
    }

    #[test]
    fn an_idle_folder_is_recycled_for_another_entry_and_its_entry_laid_out_again() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        let a = small_upstream(&store, "a", &"a3".repeat(32), "out/deep/a.txt", "A");
        let b = small_upstream(&store, "b", &"b3".repeat(32), "out/b.txt", "B");
        let first = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
        let dir_a = folder_of(&first, "a").unwrap();
        let ino = inode(&dir_a);
        // Held by a running execution: not recycled.
        let held = prepare(std::slice::from_ref(&b), &mut std::io::sink()).unwrap();
        assert_ne!(inode(&folder_of(&held, "b").unwrap()), ino);
        drop((first, held));
        let c = small_upstream(&store, "c", &"c3".repeat(32), "out/c.txt", "C");
        let second = prepare(std::slice::from_ref(&c), &mut std::io::sink()).unwrap();
        let dir_c = folder_of(&second, "c").unwrap();
        assert_eq!(inode(&dir_c), ino, "a's directory is reused");
        // In place: the path that named a's folder now names c's.
        assert_eq!(dir_c, dir_a);
        let mut found: Vec<String> = walkdir::WalkDir::new(&dir_c)
            .min_depth(1)
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                assert!(is_read_only(e.path()), "{}", e.path().display());
                e.path().strip_prefix(&dir_c).unwrap().display().to_string()
            })
            .collect();
        found.sort();
        assert_eq!(found, ["out", "out/c.txt"]);
        assert_eq!(
            std::fs::read_to_string(dir_c.join("out/c.txt")).unwrap(),
            "C"
        );
        assert_eq!(second.changed(), None);
        // `a` is laid out again for its next reader, whole.
        let third = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
        let again = folder_of(&third, "a").unwrap();
        assert_eq!(
            std::fs::read_to_string(again.join("out/deep/a.txt")).unwrap(),
            "A"
        );
        assert_eq!(second.changed(), None);
        assert_eq!(third.changed(), None);
    }

    #[test]
    fn a_recycled_folder_watches_the_directories_it_gained() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        let a = small_upstream(&store, "a", &"a4".repeat(32), "out/a.txt", "A");
        let b = small_upstream(&store, "b", &"b4".repeat(32), "out/new/deep/b.txt", "B");
        let first = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
        let ino = inode(&folder_of(&first, "a").unwrap());
        drop(first);
        let second = prepare(std::slice::from_ref(&b), &mut std::io::sink()).unwrap();
        let dir = folder_of(&second, "b").unwrap();
        assert_eq!(inode(&dir), ino, "a's directory is reused");
        for sub in ["", "out", "out/new", "out/new/deep", "out/new/deep/b.txt"] {
            assert!(is_read_only(&dir.join(sub)), "{sub}");
        }
        assert!(!dir.join("out/a.txt").exists());
        assert_eq!(second.changed(), None);
        // A file slipped into a directory the recycled folder did not have.
        make_writable(&dir.join("out/new"));
        std::fs::write(dir.join("out/new/extra.txt"), "x").unwrap();
        let change = second.changed().expect("the new directory is watched");
        assert!(change.contains("ADMF_UPSTREAM_B"), "{change}");
    }

    #[test]
    fn recycling_a_folder_linked_to_a_shared_copy_is_no_change_to_the_others() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        let a = small_upstream(&store, "a", &"a4".repeat(32), "out/a.txt", "same");
        let b = small_upstream(&store, "b", &"b4".repeat(32), "out/b.txt", "same");
        let c = small_upstream(&store, "c", &"c4".repeat(32), "out/c.txt", "other");
        let reading_a = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
        let reading_b = prepare(std::slice::from_ref(&b), &mut std::io::sink()).unwrap();
        let dir_a = folder_of(&reading_a, "a").unwrap();
        drop(reading_a);
        // `a`'s folder goes to `c`: its link to the copy `b` shares is
        // removed while `b`'s reader runs.
        let reading_c = prepare(std::slice::from_ref(&c), &mut std::io::sink()).unwrap();
        let dir_c = folder_of(&reading_c, "c").unwrap();
        assert_eq!(dir_c, dir_a);
        assert!(!dir_c.join("out/a.txt").exists());
        assert_eq!(reading_b.changed(), None);
        assert_eq!(reading_c.changed(), None);
    }

    #[test]
    fn a_changed_listing_fails_its_reader() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        let up = stored_upstream(&store);
        let running = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        let listing = PathBuf::from(&running.env.last().unwrap().1);
        make_writable(&listing);
        std::fs::write(&listing, "{}").unwrap();
        let change = running.changed().expect("the change is seen");
        assert!(change.contains("read-only"), "{change}");
    }

    /// What `cache/upstream/record` names, beside the header.
    fn recorded_names(store: &Store) -> Vec<String> {
        let record = std::fs::read_to_string(store.upstream_dir().join("record")).unwrap();
        record
            .lines()
            .skip(1)
            .map(|line| line.split(' ').nth(1).unwrap().to_string())
            .collect()
    }

    /// Everything in the kept folders' directory but the lock and record.
    fn kept_dir_items(store: &Store) -> Vec<String> {
        let mut items: Vec<String> = std::fs::read_dir(store.upstream_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock" && n != "record")
            .collect();
        items.sort();
        items
    }

    #[test]
    fn a_kept_folder_serves_the_next_build_and_only_a_changed_entry_is_laid_out() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let gen_up = stored_upstream(&store);
        let a = small_upstream(&store, "a", &"a5".repeat(32), "out/a.txt", "A");
        let first = prepare(&[gen_up.clone(), a.clone()], &mut std::io::sink()).unwrap();
        let dir_gen = folder_of(&first, "gen").unwrap();
        let dir_a = folder_of(&first, "a").unwrap();
        assert!(dir_gen.starts_with(store.upstream_dir()), "{dir_gen:?}");
        // The large output is the store's blob itself; the small one a copy.
        let blob = gen_up.existing_file("signals/big.bin").unwrap();
        assert_eq!(inode(&dir_gen.join("signals/big.bin")), inode(&blob));
        for path in [&dir_gen, &dir_gen.join("metrics.json"), &dir_a.join("out")] {
            assert!(is_read_only(path), "{}", path.display());
        }
        assert_eq!(first.changed(), None);
        // The build ends: the record names both folders, nothing is dirty.
        drop(first);
        store.release_scratch();
        let mut names = recorded_names(&store);
        names.sort();
        assert_eq!(kept_dir_items(&store), names);
        assert_eq!(names.len(), 2);
        // The next build: `a` has a new entry, `gen` has not changed.
        let kept_inodes = (inode(&dir_gen), inode(&dir_gen.join("metrics.json")));
        let a2 = small_upstream(&store, "a", &"a6".repeat(32), "out/a.txt", "A2");
        let second = prepare(&[gen_up.clone(), a2], &mut std::io::sink()).unwrap();
        assert_eq!(folder_of(&second, "gen").unwrap(), dir_gen);
        assert_eq!(
            (inode(&dir_gen), inode(&dir_gen.join("metrics.json"))),
            kept_inodes
        );
        let dir_a2 = folder_of(&second, "a").unwrap();
        assert_ne!(dir_a2, dir_a);
        assert_eq!(
            std::fs::read_to_string(dir_a2.join("out/a.txt")).unwrap(),
            "A2"
        );
        assert_eq!(second.changed(), None);
        drop(second);
        store.release_scratch();
        // The older entry of `a` still has its folder, as it was.
        let third = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
        assert_eq!(folder_of(&third, "a").unwrap(), dir_a);
        assert_eq!(
            std::fs::read_to_string(dir_a.join("out/a.txt")).unwrap(),
            "A"
        );
        assert_eq!(recorded_names(&store).len(), 3);
    }

    /// Changes `path` (a file) to `text`, keeping its size and mtime.
    fn rewrite_keeping_mtime(path: &Path, text: &str) {
        let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
        make_writable(path);
        std::fs::write(path, text).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(mtime).unwrap();
        set_mode(path, 0o444).unwrap();
    }

    #[test]
    fn a_kept_folder_changed_between_builds_is_laid_out_anew_and_removed() {
        type Tamper = fn(&Path);
        let tampers: [(&str, Tamper); 6] = [
            ("a file added", |dir| {
                make_writable(&dir.join("out"));
                std::fs::write(dir.join("out/extra.txt"), "x").unwrap();
                set_mode(&dir.join("out"), 0o555).unwrap();
            }),
            ("a file removed", |dir| {
                make_writable(&dir.join("out"));
                std::fs::remove_file(dir.join("out/a.txt")).unwrap();
                set_mode(&dir.join("out"), 0o555).unwrap();
            }),
            ("a file rewritten with its size and mtime put back", |dir| {
                rewrite_keeping_mtime(&dir.join("out/a.txt"), "Z");
            }),
            ("a file turned into a symlink", |dir| {
                let elsewhere = dir.parent().unwrap().join("elsewhere.txt");
                std::fs::write(&elsewhere, "Z").unwrap();
                make_writable(&dir.join("out"));
                std::fs::remove_file(dir.join("out/a.txt")).unwrap();
                std::os::unix::fs::symlink(&elsewhere, dir.join("out/a.txt")).unwrap();
                set_mode(&dir.join("out"), 0o555).unwrap();
            }),
            ("a file made writable", |dir| {
                make_writable(&dir.join("out/a.txt"))
            }),
            ("the folder removed", |dir| {
                crate::store::fsutil::remove_tree(dir).unwrap();
            }),
        ];
        for (what, tamper) in tampers {
            let root = tempfile::tempdir().unwrap();
            let store = Store::open(root.path()).unwrap();
            let a = small_upstream(&store, "a", &"a7".repeat(32), "out/a.txt", "A");
            let first = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
            let old = folder_of(&first, "a").unwrap();
            drop(first);
            store.release_scratch();
            tamper(&old);
            let next = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
            let new = folder_of(&next, "a").unwrap();
            assert_ne!(new, old, "{what}");
            let mut found: Vec<String> = walkdir::WalkDir::new(&new)
                .min_depth(1)
                .into_iter()
                .map(|e| {
                    e.unwrap()
                        .path()
                        .strip_prefix(&new)
                        .unwrap()
                        .display()
                        .to_string()
                })
                .collect();
            found.sort();
            assert_eq!(found, ["out", "out/a.txt"], "{what}");
            assert_eq!(
                std::fs::read_to_string(new.join("out/a.txt")).unwrap(),
                "A",
                "{what}"
            );
            assert!(is_read_only(&new.join("out/a.txt")), "{what}");
            assert_eq!(next.changed(), None, "{what}");
            drop(next);
            store.release_scratch();
            // The changed folder is gone with the build; the new one is kept.
            assert!(!old.exists() && old.symlink_metadata().is_err(), "{what}");
            let name = new.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                recorded_names(&store),
                std::slice::from_ref(&name),
                "{what}"
            );
            let mut items = kept_dir_items(&store);
            items.retain(|n| n != "elsewhere.txt");
            assert_eq!(items, [name], "{what}");
        }
    }

    #[test]
    fn a_kept_folder_its_reader_changes_fails_it_and_the_next_reader_gets_a_new_one() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let a = small_upstream(&store, "a", &"a8".repeat(32), "out/a.txt", "A");
        let running = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
        let dir = folder_of(&running, "a").unwrap();
        rewrite_keeping_mtime(&dir.join("out/a.txt"), "Z");
        let change = running.changed().expect("the change is seen");
        assert!(change.contains("$ADMF_UPSTREAM_A"), "{change}");
        let next = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
        let fresh = folder_of(&next, "a").unwrap();
        assert_ne!(fresh, dir);
        assert_eq!(
            std::fs::read_to_string(fresh.join("out/a.txt")).unwrap(),
            "A"
        );
        drop((running, next));
        store.release_scratch();
        assert!(!dir.exists());
        let name = fresh.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(recorded_names(&store), [name]);
    }

    #[test]
    fn a_stored_blob_replaced_by_the_store_is_not_read_through_a_kept_link() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let up = stored_upstream(&store);
        let first = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        let old = folder_of(&first, "gen").unwrap();
        drop(first);
        store.release_scratch();
        // As a repair does: the same bytes in a new file at the blob's path.
        let blob = up.existing_file("signals/big.bin").unwrap();
        let aside = blob.with_extension("new");
        std::fs::copy(&blob, &aside).unwrap();
        set_mode(&aside, 0o444).unwrap();
        std::fs::rename(&aside, &blob).unwrap();
        let next = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        let new = folder_of(&next, "gen").unwrap();
        assert_ne!(new, old);
        assert_eq!(inode(&new.join("signals/big.bin")), inode(&blob));
    }

    #[test]
    fn folders_another_build_keeps_are_not_touched() {
        let root = tempfile::tempdir().unwrap();
        let (store, _elsewhere) = store_without_kept_folders(root.path());
        let a = small_upstream(&store, "a", &"a9".repeat(32), "out/a.txt", "A");
        let folders = prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap();
        let dir = folder_of(&folders, "a").unwrap();
        assert!(dir.starts_with(store.scratch_dir().unwrap()), "{dir:?}");
        drop(folders);
        store.release_scratch();
        assert!(kept_dir_items(&store).is_empty());
        assert!(!store.upstream_dir().join("record").exists());
    }

    #[test]
    fn a_build_that_sweeps_after_a_kill_keeps_the_marker_until_its_record_is_written() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let a = small_upstream(&store, "a", &"b5".repeat(32), "out/a.txt", "A");
        drop(prepare(std::slice::from_ref(&a), &mut std::io::sink()).unwrap());
        store.release_scratch();
        let kept = recorded_names(&store);
        // What a killed build leaves: the marker and an unrecorded folder.
        let dirty = store.upstream_dir().join("dirty");
        std::fs::write(&dirty, "").unwrap();
        let stray = store.upstream_dir().join(format!("{}.1.2", "c".repeat(32)));
        std::fs::create_dir(&stray).unwrap();
        let b = small_upstream(&store, "b", &"b6".repeat(32), "out/b.txt", "B");
        let running = prepare(&[a.clone(), b], &mut std::io::sink()).unwrap();
        assert!(!stray.exists(), "swept");
        assert_eq!(
            folder_of(&running, "a")
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            kept[0]
        );
        // Killed now, the next build would sweep the folder just made too.
        assert!(dirty.exists());
        drop(running);
        store.release_scratch();
        assert!(!dirty.exists());
        assert_eq!(kept_dir_items(&store).len(), 2);
    }
}
