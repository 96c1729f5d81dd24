//! Phase modes ("containers"): the domain logic the dispatcher runs.
//!
//! Every mode implements [`Phase`]; [`Factory`] maps mode names to
//! implementations. The engine never looks inside a config beyond what a
//! `Phase` tells it: the files it reads, the workspace files it produces,
//! whether it expands a `grid:` into trials.

pub mod analysis;
pub mod artifacts;
pub mod backtest;
pub mod builtin;
pub mod command;
pub mod config;
pub mod data;
pub mod driver;
pub mod holdout;
pub mod report;
pub mod schema;
pub mod signal_generation;
pub mod signal_replay;
pub mod split;
pub mod upstream;
pub mod upstream_env;
pub mod walk_forward;

pub use builtin::Builtin;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::reads::Reads;

/// A problem with a phase's config, at a dotted key path such as
/// `strategy.parameters.lookback`. The compiler turns it into an
/// [`crate::error::Error`] with the key's file:line:column.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigIssue {
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }
}

/// What a node is within its phase: the whole phase, one trial of a grid,
/// or the node that gathers a grid's trials into the phase's artifacts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    Single,
    /// The `index`-th combination of the grid (0-based), with its stable
    /// name such as `momentum_lookback=10_threshold=0.01`.
    Trial {
        index: usize,
        name: String,
    },
    Gather {
        trials: usize,
    },
}

impl Role {
    /// `single`, `trial` or `gather`: what enters the node's key (a
    /// trial's index and name do not, so reordering a grid reruns nothing).
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Single => "single",
            Role::Trial { .. } => "trial",
            Role::Gather { .. } => "gather",
        }
    }
}

/// The artifacts of one upstream node, as a phase sees them: read by name
/// through [`Upstream::read`] (or [`Upstream::path`] where a file is
/// needed), never through a hard-coded store path.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Upstream {
    pub node: String,
    pub mode: String,
    pub role: Role,
    artifacts: Artifacts,
    /// What the upstream node's phase handed over when it ran in this
    /// process during this build ([`PhaseContext::handoff`]); never sent
    /// to another process.
    #[serde(skip)]
    handoff: Option<Handoff>,
}

/// A value a phase computed while it ran and hands to a node downstream
/// in the same build, beside its stored outputs: what that node would
/// otherwise derive again from those outputs (a sweep's trial hands its
/// gather the figures of its returns). Never stored and never sent to
/// another process, so a node downstream takes it only as a shortcut:
/// it checks the value was computed as it would compute it, and without
/// one it derives the same from the stored outputs.
#[derive(Clone)]
pub struct Handoff(pub std::sync::Arc<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handoff(..)")
    }
}

impl Handoff {
    /// The value, when it is a `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

/// Where a node's result keeps its [`Handoff`] until a node downstream
/// takes it: then it lives only as long as that node's action, not until
/// the build ends (a sweep's gather takes those of all its trials).
#[derive(Debug, Default)]
pub struct HandoffSlot(std::sync::Mutex<Option<Handoff>>);

impl HandoffSlot {
    pub fn new(handoff: Option<Handoff>) -> Self {
        HandoffSlot(std::sync::Mutex::new(handoff))
    }

    /// The hand-off, leaving the slot empty: a second taker gets none
    /// and derives what it needs from the stored outputs.
    pub fn take(&self) -> Option<Handoff> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl Clone for HandoffSlot {
    fn clone(&self) -> Self {
        HandoffSlot::new(
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Where an upstream node's artifacts are: plain, serialisable locations,
/// so that an action can run in another process.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Artifacts {
    /// A committed store entry: its outputs by name, as blob digests in
    /// the store at `store`. Every read is checked against the digest.
    Stored {
        store: std::sync::Arc<Path>,
        outputs: OutputRecords,
        /// The open store, when this process has one (not serialised).
        #[serde(skip)]
        open: Option<crate::store::Store>,
        /// Where every output is also in the workspace, checked to hold
        /// the stored bytes: the directory `d` with each output `name` at
        /// `d/name` ([`Upstream::in_workspace`]; not serialised).
        #[serde(skip)]
        workspace: Option<std::sync::Arc<Path>>,
        /// The stat each of those files had when checked, by output name
        /// (not serialised).
        #[serde(skip)]
        workspace_stats: Vec<(String, crate::file_stat::Stat)>,
        /// The build's reads, when the check after the command may ask
        /// `admf serve` which of those files changed rather than stating
        /// each ([`Reads::still_vouched`]; not serialised).
        #[serde(skip)]
        watched: Option<Reads>,
    },
    /// A plain directory of files (phases run outside a build, in tests).
    Dir { dir: PathBuf },
    /// Outputs a phase holds in memory, read back as an upstream's within
    /// the same phase (never sent to another process).
    #[serde(skip)]
    Memory { files: MemoryOutputs },
}

/// The output records of a stored upstream entry: its manifest's, shared
/// (a command reading the outputs of thousands of upstream nodes would
/// otherwise copy thousands of maps), or owned when read from another
/// process. Serialised as the map alone.
#[derive(Clone, Debug)]
enum OutputRecords {
    Entry(std::sync::Arc<crate::store::Manifest>),
    Owned(std::collections::BTreeMap<String, crate::store::OutputRecord>),
}

impl std::ops::Deref for OutputRecords {
    type Target = std::collections::BTreeMap<String, crate::store::OutputRecord>;

    fn deref(&self) -> &Self::Target {
        match self {
            OutputRecords::Entry(manifest) => &manifest.outputs,
            OutputRecords::Owned(outputs) => outputs,
        }
    }
}

impl serde::Serialize for OutputRecords {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for OutputRecords {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::Deserialize::deserialize(deserializer).map(OutputRecords::Owned)
    }
}

impl Upstream {
    /// The artifacts of a committed store entry.
    pub fn stored(node: String, mode: String, role: Role, entry: crate::store::Entry) -> Self {
        Upstream {
            node,
            mode,
            role,
            artifacts: Artifacts::Stored {
                store: entry.store().shared_root(),
                outputs: OutputRecords::Entry(entry.manifest),
                open: Some(entry.store),
                workspace: None,
                workspace_stats: Vec::new(),
                watched: None,
            },
            handoff: None,
        }
    }

    /// This upstream with its outputs read in place in the workspace,
    /// under `dir` (each output `name` at `dir/name`), where the caller
    /// checked they hold the stored bytes and holds read locks on them
    /// until the reading action is committed; `stats` are those it saw
    /// then, by output name (the folder's check after the command
    /// compares with them; one not given is taken before the command).
    /// `reads`: the build's, when that check may ask `admf serve`
    /// ([`Reads::still_vouched`]).
    pub fn in_workspace(
        mut self,
        dir: impl Into<std::sync::Arc<Path>>,
        stats: Vec<(String, crate::file_stat::Stat)>,
        reads: Option<Reads>,
    ) -> Self {
        if let Artifacts::Stored {
            workspace,
            workspace_stats,
            watched,
            ..
        } = &mut self.artifacts
        {
            *workspace = Some(dir.into());
            *workspace_stats = stats;
            *watched = reads;
        }
        self
    }

    /// The reads of [`Upstream::in_workspace`], when given.
    pub(crate) fn workspace_watched(&self) -> Option<&Reads> {
        match &self.artifacts {
            Artifacts::Stored { watched, .. } => watched.as_ref(),
            _ => None,
        }
    }

    /// The stats of [`Upstream::in_workspace`], by output name.
    pub(crate) fn workspace_stats(&self) -> &[(String, crate::file_stat::Stat)] {
        match &self.artifacts {
            Artifacts::Stored {
                workspace_stats, ..
            } => workspace_stats,
            _ => &[],
        }
    }

    /// The directory of [`Upstream::in_workspace`], when set.
    pub(crate) fn workspace_dir(&self) -> Option<&Path> {
        match &self.artifacts {
            Artifacts::Stored {
                workspace: Some(dir),
                ..
            } => Some(dir),
            _ => None,
        }
    }

    /// This upstream with `handoff`, what its phase handed over in this
    /// build.
    pub fn with_handoff(mut self, handoff: Option<Handoff>) -> Self {
        self.handoff = handoff;
        self
    }

    /// What the upstream node's phase handed over when it ran in this
    /// process during this build, if it did.
    pub fn handoff(&self) -> Option<&Handoff> {
        self.handoff.as_ref()
    }

    /// The artifacts in a plain directory.
    pub fn from_dir(node: String, mode: String, role: Role, dir: PathBuf) -> Self {
        Upstream {
            node,
            mode,
            role,
            artifacts: Artifacts::Dir { dir },
            handoff: None,
        }
    }

    /// A phase's own outputs, read as an upstream's; see
    /// [`Upstream::into_memory`] to take them back.
    pub fn from_memory(node: String, mode: String, role: Role, files: MemoryOutputs) -> Self {
        Upstream {
            node,
            mode,
            role,
            artifacts: Artifacts::Memory { files },
            handoff: None,
        }
    }

    /// The outputs of [`Upstream::from_memory`]; empty for other kinds.
    pub fn into_memory(self) -> MemoryOutputs {
        match self.artifacts {
            Artifacts::Memory { files } => files,
            _ => MemoryOutputs::default(),
        }
    }

    /// The store and the blob digest of stored artifact `name`.
    fn blob(&self, name: &str) -> Option<std::io::Result<(crate::store::Store, String)>> {
        let Artifacts::Stored {
            store,
            outputs,
            open,
            ..
        } = &self.artifacts
        else {
            return None;
        };
        let digest = match outputs.get(name) {
            Some(o) => o.blake3.clone(),
            None => {
                return Some(Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} does not exist", self.describe(name)),
                )));
            }
        };
        let store = match open {
            Some(s) => Ok(s.clone()),
            None => crate::store::Store::open_shared(store),
        };
        Some(store.map(|s| (s, digest)))
    }

    /// The store this process has open and the output records, for stored
    /// artifacts read in the building process (not in another process an
    /// action was sent to).
    pub(crate) fn open_entry(
        &self,
    ) -> Option<(
        &crate::store::Store,
        &std::collections::BTreeMap<String, crate::store::OutputRecord>,
    )> {
        match &self.artifacts {
            Artifacts::Stored {
                outputs,
                open: Some(store),
                ..
            } => Some((store, &**outputs)),
            _ => None,
        }
    }

    /// Whether the node has an artifact of this name (a `/`-separated path).
    pub fn has(&self, name: &str) -> bool {
        match &self.artifacts {
            Artifacts::Stored { outputs, .. } => outputs.contains_key(name),
            Artifacts::Dir { dir } => dir.join(name).is_file(),
            Artifacts::Memory { files } => files.get(name).is_some(),
        }
    }

    /// The bytes of artifact `name` (for a stored one, checked against its
    /// digest).
    pub fn read(&self, name: &str) -> std::io::Result<Vec<u8>> {
        match &self.artifacts {
            Artifacts::Stored { .. } => {
                let (store, digest) = self.blob(name).expect("stored artifacts")?;
                store.read_blob(&digest)?.ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!(
                            "the blob of {} is missing from the store",
                            self.describe(name)
                        ),
                    )
                })
            }
            Artifacts::Dir { dir } => std::fs::read(dir.join(name)),
            Artifacts::Memory { files } => files.get(name).map(<[u8]>::to_vec).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} does not exist", self.describe(name)),
                )
            }),
        }
    }

    /// Every artifact's name (a `/`-separated path), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.artifacts {
            Artifacts::Stored { outputs, .. } => outputs.keys().cloned().collect(),
            Artifacts::Memory { files } => files.0.keys().cloned().collect(),
            Artifacts::Dir { dir } => walkdir::WalkDir::new(dir)
                .min_depth(1)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .filter_map(|e| {
                    let rel = e.path().strip_prefix(dir).ok()?;
                    Some(rel.to_string_lossy().replace('\\', "/"))
                })
                .collect(),
        };
        names.sort();
        names
    }

    /// The file already holding artifact `name`, when there is one (a
    /// large stored blob, a plain directory's file); `None` for bytes
    /// that live in the index or in memory.
    pub fn existing_file(&self, name: &str) -> Option<PathBuf> {
        match &self.artifacts {
            Artifacts::Stored { .. } => {
                let (store, digest) = self.blob(name)?.ok()?;
                Some(store.blob_path(&digest)).filter(|p| p.is_file())
            }
            Artifacts::Dir { dir } => Some(dir.join(name)).filter(|p| p.is_file()),
            Artifacts::Memory { .. } => None,
        }
    }

    /// A readable file holding artifact `name`. Prefer [`Upstream::read`]:
    /// a small stored artifact lives inside the store's index and gets a
    /// file of its own only when asked for one here.
    pub fn path(&self, name: &str) -> std::io::Result<PathBuf> {
        match &self.artifacts {
            Artifacts::Stored { .. } => {
                let (store, digest) = self.blob(name).expect("stored artifacts")?;
                let path = store.blob_path(&digest);
                if path.is_file() {
                    return Ok(path);
                }
                let bytes = self.read(name)?;
                store.put_blob_file(&digest, &bytes)
            }
            Artifacts::Dir { dir } => Ok(dir.join(name)),
            Artifacts::Memory { .. } => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("{} is held in memory, not in a file", self.describe(name)),
            )),
        }
    }

    /// Where errors about artifact `name` point: the node and the name.
    pub fn describe(&self, name: &str) -> String {
        format!("{name} of upstream `{}`", self.node)
    }

    /// Puts artifact `name` at `dest` (a new file): a hard link where the
    /// artifact is an immutable file already (it costs neither an inode nor
    /// the bytes again), else its bytes written.
    pub fn copy_to(&self, name: &str, dest: &Path) -> std::io::Result<()> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let source = match &self.artifacts {
            Artifacts::Stored { .. } => {
                let (store, digest) = self.blob(name).expect("stored artifacts")?;
                Some(store.blob_path(&digest)).filter(|p| p.is_file())
            }
            Artifacts::Dir { dir } => Some(dir.join(name)),
            Artifacts::Memory { .. } => None,
        };
        if let Some(source) = source
            && std::fs::hard_link(&source, dest).is_ok()
        {
            return Ok(());
        }
        std::fs::write(dest, self.read(name)?)
    }
}

/// Everything a phase may use while it runs. It hands its artifacts to
/// `memory` or writes them into `out_dir` (only when [`Phase::writes_files`]
/// says so; otherwise that directory does not exist), and its
/// human-readable log into `log`; nothing else.
pub struct PhaseContext<'a> {
    pub node: &'a str,
    pub config: &'a Value,
    pub role: &'a Role,
    pub base_dir: &'a Path,
    pub upstream: &'a [Upstream],
    pub out_dir: &'a Path,
    pub memory: &'a mut MemoryOutputs,
    pub log: &'a mut dyn Write,
    /// For a trial run by the building process: the config of the node
    /// that gathers it, so that the trial can compute what the gather
    /// would derive from its outputs ([`Handoff`]).
    pub gather_config: Option<&'a Value>,
    /// What this phase hands to nodes downstream in this build.
    pub handoff: &'a mut Option<Handoff>,
}

/// Artifacts a phase hands to the commit without writing them into
/// `out_dir`, by name: bytes, or a file elsewhere that the commit stores
/// a copy of (a command's output in the workspace). The store takes them
/// without a file being written into a temp dir, read back and removed,
/// which is most of what a small cached node costs (a sweep trial's
/// signal and metrics). A name may not be both here and a file in
/// `out_dir`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct MemoryOutputs(std::collections::BTreeMap<String, crate::store::OutputSource>);

impl MemoryOutputs {
    /// Sets artifact `name` (a `/`-separated path), replacing an earlier one.
    pub fn put(&mut self, name: &str, bytes: impl Into<Vec<u8>>) {
        self.0.insert(
            name.to_string(),
            crate::store::OutputSource::Bytes(bytes.into()),
        );
    }

    /// Sets artifact `name` to a copy of the file at `path`, taken when the
    /// outputs are committed.
    pub fn put_file(&mut self, name: &str, path: PathBuf) {
        self.0
            .insert(name.to_string(), crate::store::OutputSource::File(path));
    }

    /// Sets artifact `name` to stored artifact `from` of upstream `up`,
    /// passed on as the blob the store already holds (not read, hashed or
    /// written again); `false`, and nothing set, when `up`'s artifacts are
    /// not in this process's store (a plain directory, another process).
    pub fn put_upstream(&mut self, name: &str, up: &Upstream, from: &str) -> bool {
        let Some((_, outputs)) = up.open_entry() else {
            return false;
        };
        let Some(record) = outputs.get(from) else {
            return false;
        };
        self.0.insert(
            name.to_string(),
            crate::store::OutputSource::Stored(record.clone()),
        );
        true
    }

    /// Sets artifact `name` to `value` as pretty JSON with a final newline,
    /// the form every JSON artifact has.
    pub fn put_json(&mut self, name: &str, value: &Value) -> Result<(), PhaseError> {
        let mut text = serde_json::to_vec_pretty(value)?;
        text.push(b'\n');
        self.put(name, text);
        Ok(())
    }

    /// The bytes of artifact `name`, when it was put as bytes.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        match self.0.get(name) {
            Some(crate::store::OutputSource::Bytes(bytes)) => Some(bytes),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every artifact, sorted by name.
    pub fn into_inner(self) -> std::collections::BTreeMap<String, crate::store::OutputSource> {
        self.0
    }

    /// The inverse of [`MemoryOutputs::into_inner`].
    pub fn from_inner(map: std::collections::BTreeMap<String, crate::store::OutputSource>) -> Self {
        MemoryOutputs(map)
    }
}

/// Why a node failed: shown with its log. The build exits 1, or 2 when
/// every failure was bad input (docs/design.md §1).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseError {
    pub message: String,
    /// The fault lies in what the user supplied (a data file breaking a
    /// rule of the data format, a config value only checkable at run time), not
    /// in the phase or the machine.
    pub bad_input: bool,
}

impl PhaseError {
    pub fn new(message: impl Into<String>) -> Self {
        PhaseError {
            message: message.into(),
            bad_input: false,
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        PhaseError {
            message: message.into(),
            bad_input: true,
        }
    }
}

impl std::fmt::Display for PhaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for PhaseError {
    fn from(e: E) -> Self {
        PhaseError::new(e.to_string())
    }
}

pub trait Phase: Send + Sync {
    /// Part of every key: bump it when the mode's outputs change for the
    /// same inputs.
    fn version(&self) -> &'static str;

    /// Which inherited top-level keys (`data`, `strategy`, `costs`) the mode
    /// takes into its config. A mode that ignores market data takes none, so
    /// editing `strategy:` does not touch its key.
    fn inherits(&self) -> &'static [&'static str] {
        &["data", "strategy", "costs"]
    }

    /// The config keys the mode understands (inherited ones included), for
    /// an "unknown key" error with a "did you mean" at compile time; `None`
    /// leaves every key to [`Phase::validate`]. `description` is always
    /// allowed.
    fn config_keys(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Check the resolved config at compile time.
    fn validate(&self, config: &Value) -> Result<(), ConfigIssue>;

    /// The config the node is keyed and run with: the resolved `config`,
    /// checked as by [`Phase::validate`], with every default the mode
    /// applies written out, each value in the one form it parses from,
    /// and any inherited key the mode never reads taken out. Omitting a
    /// key and writing its default then give the same node key, and the
    /// phase runs with exactly what was keyed. `role` tells a grid's
    /// trials from its gather. The default checks the config and keeps it.
    fn normalize(&self, config: Value, _role: &Role) -> Result<Value, ConfigIssue> {
        self.validate(&config)?;
        Ok(config)
    }

    /// Files the phase reads (relative paths resolved against `base_dir`).
    /// Their content hashes go into the node key.
    fn inputs(&self, config: &Value, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue>;

    /// [`Phase::inputs`], knowing the workspace files other phases declare
    /// as outputs (absolute, normalised): a mode whose inputs may be globs
    /// lets a glob match those too, so it need not match an existing file
    /// on a cold build. The compiler turns each such input into an edge.
    /// Directories listed to expand a glob are noted in `reads`.
    fn inputs_given(
        &self,
        config: &Value,
        base_dir: &Path,
        _produced: &[PathBuf],
        _reads: &Reads,
    ) -> Result<Vec<PathBuf>, ConfigIssue> {
        self.inputs(config, base_dir)
    }

    /// Files the phase produces in the workspace, as pairs of (path inside
    /// the entry's output directory, workspace path). They are restored into
    /// the workspace on a cache hit. Two nodes may not declare the same one.
    fn workspace_outputs(&self, _config: &Value, _base_dir: &Path) -> Vec<(String, PathBuf)> {
        Vec::new()
    }

    /// How each of [`Phase::workspace_outputs`] is kept, in the same
    /// order; shorter (empty by default): the rest are stored.
    fn output_keeps(&self, _config: &Value) -> Vec<crate::workspace::Keep> {
        Vec::new()
    }

    /// Whether the mode's outputs may differ between platforms (operating
    /// system, architecture) for the same config and inputs: its keys then
    /// name the platform, so a shared cache serves an entry only to a
    /// machine of the same platform.
    fn platform_dependent(&self) -> bool {
        false
    }

    /// The environment variables the mode takes from the build's
    /// environment beyond the fixed allow-list; their values enter the key.
    fn passed_env<'a>(&self, _config: &'a Value) -> Vec<&'a str> {
        Vec::new()
    }

    /// Whether the phase, in this role, writes files into
    /// [`PhaseContext::out_dir`]. A phase that hands every artifact to
    /// [`PhaseContext::memory`] returns false and then gets no directory
    /// at all: no temp dir is made, locked, listed and removed for it.
    fn writes_files(&self, _role: &Role) -> bool {
        true
    }

    /// Whether an entry of a node of this mode can hold a `metrics.json`
    /// for the run ledger, given the node's workspace outputs (as
    /// [`Phase::workspace_outputs`] gave them). A phase whose entry holds
    /// only the outputs it declares can tell; the ledger then looks
    /// nothing up for it.
    fn may_store_metrics(&self, _workspace_outputs: &[(String, PathBuf)]) -> bool {
        true
    }

    /// Finishes the [`Handoff`]s of actions of this mode that ran one
    /// after the other where they ran (a chunk of trials, or one action
    /// alone), before they reach the coordinator: a phase may hand over
    /// raw material from each action and turn it into what it hands
    /// downstream several at a time (a sweep's trials, their figures four
    /// side by side). By default they pass as they are.
    fn finish_handoffs(&self, _handoffs: &mut [Option<Handoff>]) {}

    /// Modes that return true have their `grid:` expanded by the compiler
    /// into one `Role::Trial` node per combination plus a `Role::Gather`
    /// node, so that every trial is cached on its own.
    fn expands_grid(&self) -> bool {
        false
    }

    /// The dotted config paths (`data.path`, `inputs`) that name files
    /// relative to the file that wrote them. An inherited one written in
    /// another directory is rebased onto the phase's own directory, and
    /// an input that is missing or outside the root is reported at the
    /// first of them the phase sets. None by default.
    fn relative_paths(&self) -> &'static [&'static str] {
        &[]
    }

    /// The config path that a plain (undotted) `grid:` key sets in each
    /// trial; a dotted key is that path already (`costs.fee`). By
    /// default the key itself, at the top of the config.
    fn grid_key_path(&self, key: &str) -> Vec<String> {
        vec![key.to_string()]
    }

    /// The artifact a build names as the node's page for a person to open
    /// (`report.html`); `None` for a mode without one.
    fn page(&self) -> Option<&'static str> {
        None
    }

    /// What the names of a grid's trials start with (`momentum` in
    /// `momentum_lookback=10`); `None` names them `trial_...`.
    fn trial_prefix(&self, _config: &Value) -> Option<String> {
        None
    }

    /// A mode that splits into several nodes of its own, known at compile
    /// time (walk_forward: one node per fold, so that each fold is cached
    /// on its own), returns them here from the phase's resolved config;
    /// `None` (the default) makes one node. The last part stands for the
    /// phase downstream and takes the phase's name. Files read to split
    /// it are noted in `reads`.
    fn parts(
        &self,
        _config: &Value,
        _base_dir: &Path,
        _reads: &Reads,
    ) -> Result<Option<Vec<Part>>, ConfigIssue> {
        Ok(None)
    }

    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError>;
}

/// One node of a phase that [`Phase::parts`] splits.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// The node is named `phase[suffix]`; the last part's suffix is unused.
    pub suffix: String,
    /// The node's whole config, the key's config ingredient.
    pub config: serde_json::Map<String, Value>,
    /// Earlier parts (by position) the node depends on.
    pub after: Vec<usize>,
    /// Whether the node also depends on the phase's `depends_on`.
    pub phase_deps: bool,
}

/// Every mode name the factory knows, for "did you mean" hints.
pub const MODES: &[&str] = &[
    "backtest",
    "signal_generation",
    "analysis",
    "signal_replay",
    "report",
    "command",
    "walk_forward",
    "holdout",
];

/// Maps mode names to implementations. Tests substitute their own to
/// record what runs.
pub trait Factory: Send + Sync {
    fn get(&self, mode: &str) -> Option<&dyn Phase>;
    fn modes(&self) -> Vec<&str>;
}
