//! The one intermediate representation every workflow form is normalised
//! into: a flat list of phases in declaration order. Nothing after the
//! loader knows which surface form a phase came from.

pub mod condition;
pub mod executor;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use self::condition::Condition;
use crate::error::Location;
use crate::paths::root::Confinement;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Workflow {
    /// The file given on the command line.
    pub root_file: PathBuf,
    /// Every file read, root first, for `watch` and error context.
    pub files: Vec<PathBuf>,
    /// blake3 over `files` in that order, each its path, a 0 byte, the
    /// bytes the loader read and a 0 byte: what the run ledger records as
    /// the workflow's digest. Kept in the graph cache, so a build that
    /// takes its graph from there reads none of the files again.
    pub files_digest: String,
    pub phases: Vec<PhaseIr>,
    /// Where includes, inputs and data must lie (see [`crate::paths::root`]).
    pub confinement: Confinement,
    /// The root file's `on:` triggers, served by `admf watch`. Not kept
    /// in the graph cache ([`crate::graph_cache`]): only `build` reads it,
    /// and a build serves no triggers.
    #[serde(skip)]
    pub triggers: Vec<crate::trigger::Trigger>,
    /// The root file's `executor:` block: where misses run by default.
    #[serde(default)]
    pub executor: self::executor::ExecutorConfig,
    /// The root file's `results:` folder, absolute: where each build
    /// copies every node's outputs (see `results::sync`).
    #[serde(default)]
    pub results: Option<PathBuf>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PhaseIr {
    /// Fully qualified: `outer/inner` for phases of included workflows.
    pub name: String,
    pub mode: String,
    /// The phase's own config keys (`--set` overrides applied), without the
    /// engine's keys (`name`, `mode`, `depends_on`, `when`, ...).
    pub config: serde_json::Map<String, Value>,
    /// `data`/`strategy`/`costs` in scope where the phase is declared; the
    /// compiler merges the ones its mode uses under `config` (the phase's own
    /// value replaces an inherited one whole).
    pub inherited: serde_json::Map<String, Value>,
    /// The directory of the file that wrote each inherited key: a path
    /// in it that the mode names ([`crate::phases::Phase::relative_paths`])
    /// means "relative to that file" wherever it is inherited.
    #[serde(default)]
    pub inherited_from: BTreeMap<String, PathBuf>,
    /// How many times a failed execution is tried again.
    pub retries: u32,
    /// How many of the `-j` slots the node takes while it executes.
    #[serde(default = "one")]
    pub threads: usize,
    /// Fully qualified names of the phases this one reads, in declared order.
    pub depends_on: Vec<String>,
    pub when: Option<Condition>,
    /// Where the phase is declared.
    pub location: Location,
    /// Directory of the declaring file; relative paths in `config` resolve
    /// against it and commands run in it.
    pub base_dir: PathBuf,
    /// Source position of each config key (dotted path), for error messages.
    pub key_locations: BTreeMap<String, Location>,
    /// What one execution asks of a cluster node (`resources:`); not
    /// part of any key.
    #[serde(default)]
    pub resources: self::executor::Resources,
}

fn one() -> usize {
    1
}

impl PhaseIr {
    /// The location of a dotted config key, or of the phase when unknown.
    pub fn locate(&self, key: &str) -> Location {
        let mut probe = key;
        loop {
            if let Some(loc) = self.key_locations.get(probe) {
                return loc.clone();
            }
            match probe.rfind(['.', '[']) {
                Some(i) => probe = &probe[..i],
                None => return self.location.clone(),
            }
        }
    }
}
