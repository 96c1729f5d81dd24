//! What a `command` phase sees of its upstream nodes: each node's outputs
//! as a folder of files, named by `ADMF_UPSTREAM_<NAME>`, and
//! `ADMF_UPSTREAM_JSON`, the path of a JSON file listing every node's
//! folder, files and metrics file. `<NAME>` is the node id in capitals
//! with every character other than a letter or digit turned into `_`
//! (`parameter_discovery` → `ADMF_UPSTREAM_PARAMETER_DISCOVERY`,
//! `sweep[3]` → `ADMF_UPSTREAM_SWEEP_3_`).
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
//! Artifacts that do not come from an open store (an action run in
//! another process, a plain directory) are laid out per execution in a
//! temp dir removed after it, as before. Folder paths differ from run to
//! run and enter no key (a key rests on the upstream outputs' digests,
//! which are what the files hold).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value, json};

use super::Upstream;
use crate::store::{OutputRecord, Store};

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
    /// Shared folders (and the listing) this execution reads, by node,
    /// checked by [`UpstreamFolders::changed`].
    used: Vec<(String, Arc<Folder>)>,
    listing: Option<(PathBuf, Stamp)>,
    /// (variable, value) pairs to set, `ADMF_UPSTREAM_JSON` last.
    pub env: Vec<(String, String)>,
}

impl UpstreamFolders {
    /// What changed in the shared folders or the listing since they were
    /// laid out, said in one line; `None` when nothing did. A command
    /// whose upstream changed while it ran must not be stored.
    pub fn changed(&self) -> Option<String> {
        for (node, folder) in &self.used {
            if !folder.intact() {
                return Some(format!(
                    "the upstream folder of `{node}` (${}) was changed while the command ran; upstream folders are read-only",
                    var_name(node)
                ));
            }
        }
        let (path, stamp) = self.listing.as_ref()?;
        (!Stamp::of(path).is_ok_and(|now| now.matches(stamp))).then(|| {
            format!(
                "{} was changed while the command ran; it is read-only",
                path.display()
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
    stamps: Vec<(PathBuf, Stamp)>,
}

impl Folder {
    fn intact(&self) -> bool {
        self.stamps
            .iter()
            .all(|(path, stamp)| Stamp::of(path).is_ok_and(|now| now.matches(stamp)))
    }
}

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
    #[cfg(unix)]
    fn of(path: &Path) -> io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::symlink_metadata(path)?;
        Ok(Stamp {
            ino: (m.dev(), m.ino()),
            mode: m.mode(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: Some((m.ctime(), m.ctime_nsec())),
        })
    }

    #[cfg(not(unix))]
    fn of(path: &Path) -> io::Result<Stamp> {
        let m = fs::symlink_metadata(path)?;
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
    let mut scratch: Option<PathBuf> = None;
    let mut used = Vec::new();
    let mut env = Vec::new();
    let mut nodes = Map::new();
    for (i, up) in upstream.iter().enumerate() {
        let folder = match up.open_entry() {
            Some((store, outputs)) => {
                if scratch.is_none() {
                    scratch = Some(store.scratch_dir()?);
                }
                let folder = shared_folder(store, up, outputs)?;
                used.push((up.node.clone(), folder.clone()));
                folder
            }
            None => {
                // A numbered folder: two node ids may share a variable name.
                let to = own_dir(&mut own)?.join(i.to_string());
                Arc::new(lay_out(up, &to, false)?)
            }
        };
        for (name, error) in &folder.left_out {
            writeln!(
                log,
                "admf: {} is left out of ${}: {error}",
                up.describe(name),
                var_name(&up.node)
            )?;
        }
        let files: Map<String, Value> = folder
            .files
            .iter()
            .map(|(name, path)| (name.clone(), json!(path)))
            .collect();
        let metrics = files.get("metrics.json").cloned().unwrap_or(Value::Null);
        let var = var_name(&up.node);
        env.push((var.clone(), folder.path.to_string_lossy().into_owned()));
        nodes.insert(
            up.node.clone(),
            json!({"dir": folder.path, "env": var, "mode": up.mode, "files": files, "metrics": metrics}),
        );
    }
    let mut text = serde_json::to_vec_pretty(&json!({"nodes": nodes}))?;
    text.push(b'\n');
    let (listing, stamp) = match scratch {
        Some(dir) => {
            let path = dir.join(format!(
                "upstream.{}.json",
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            write_new(&path, &text, true)?;
            let stamp = Stamp::of(&path)?;
            (path, Some(stamp))
        }
        None => {
            let path = own_dir(&mut own)?.join("upstream.json");
            fs::write(&path, text)?;
            (path, None)
        }
    };
    env.push((
        "ADMF_UPSTREAM_JSON".into(),
        listing.to_string_lossy().into_owned(),
    ));
    Ok(UpstreamFolders {
        _own: own,
        used,
        listing: stamp.map(|s| (listing, s)),
        env,
    })
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
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(folder) = slot.as_ref()
        && folder.intact()
    {
        return Ok(folder.clone());
    }
    // A changed folder stays where it is (a command may still be reading
    // it); the new one gets a new name.
    let path = store.scratch_dir()?.join(format!(
        "{}.{}",
        &id.as_str()[..16],
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let folder = Arc::new(lay_out(up, &path, true)?);
    *slot = Some(folder.clone());
    Ok(folder)
}

/// Lays out every artifact of `up` under `dir`; `shared` makes the files
/// and directories read-only and notes their stamps.
fn lay_out(up: &Upstream, dir: &Path, shared: bool) -> io::Result<Folder> {
    fs::create_dir_all(dir)?;
    let mut folder = Folder {
        path: dir.to_path_buf(),
        files: Vec::new(),
        left_out: Vec::new(),
        stamps: Vec::new(),
    };
    let mut linked = Vec::new();
    for name in up.names() {
        let to = dir.join(&name);
        match place(up, &name, &to, shared) {
            Ok(link) => {
                linked.push(link);
                folder.files.push((name, to));
            }
            Err(e) => folder.left_out.push((name, e.to_string())),
        }
    }
    if shared {
        for item in walkdir::WalkDir::new(dir) {
            let item = item?;
            if item.file_type().is_dir() {
                let mut perms = item.metadata()?.permissions();
                perms.set_readonly(true);
                fs::set_permissions(item.path(), perms)?;
                folder
                    .stamps
                    .push((item.path().to_path_buf(), Stamp::of(item.path())?));
            }
        }
        for ((_, path), link) in folder.files.iter().zip(linked) {
            let stamp = Stamp::of(path)?;
            let stamp = if link { stamp.without_ctime() } else { stamp };
            folder.stamps.push((path.clone(), stamp));
        }
    }
    Ok(folder)
}

/// Puts artifact `name` at `to`; returns whether it is a hard link to a
/// stored file. A shared folder links only to read-only files and writes
/// its copies read-only.
fn place(up: &Upstream, name: &str, to: &Path, shared: bool) -> io::Result<bool> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    if let Some(file) = up.existing_file(name)
        && (!shared || fs::metadata(&file).is_ok_and(|m| m.permissions().readonly()))
        && fs::hard_link(&file, to).is_ok()
    {
        return Ok(true);
    }
    write_new(to, &up.read(name)?, shared)?;
    Ok(false)
}

/// Writes a new file, read-only from the start when asked.
fn write_new(path: &Path, bytes: &[u8], read_only: bool) -> io::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if read_only {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o444);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    #[cfg(not(unix))]
    if read_only {
        let mut perms = file.metadata()?.permissions();
        perms.set_readonly(true);
        file.set_permissions(perms)?;
    }
    Ok(())
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

    /// A stored entry with a small output (inline in the index) and a
    /// large one (a blob file), read as an upstream of this process.
    fn stored_upstream(store: &Store) -> Upstream {
        let pending = store.begin(&"ab".repeat(32)).unwrap();
        std::fs::create_dir_all(pending.out_dir().join("signals")).unwrap();
        std::fs::write(pending.out_dir().join("metrics.json"), "{\"sharpe\": 1}").unwrap();
        std::fs::write(
            pending.out_dir().join("signals/big.bin"),
            vec![7u8; 100 * 1024],
        )
        .unwrap();
        let meta = crate::store::ManifestMeta {
            node: "gen".into(),
            mode: "command".into(),
            ingredients: json!({}),
            duration_ms: 0,
        };
        let entry = pending.commit(meta, b"").unwrap();
        Upstream::stored("gen".into(), "command".into(), Role::Single, &entry)
    }

    fn is_read_only(path: &Path) -> bool {
        std::fs::metadata(path).unwrap().permissions().readonly()
    }

    #[test]
    fn a_stored_upstream_is_laid_out_once_read_only_and_shared() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
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
        let store = Store::open(root.path()).unwrap();
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

    #[test]
    fn a_changed_listing_fails_its_reader() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let up = stored_upstream(&store);
        let running = prepare(std::slice::from_ref(&up), &mut std::io::sink()).unwrap();
        let listing = PathBuf::from(&running.env.last().unwrap().1);
        make_writable(&listing);
        std::fs::write(&listing, "{}").unwrap();
        let change = running.changed().expect("the change is seen");
        assert!(change.contains("read-only"), "{change}");
    }
}
