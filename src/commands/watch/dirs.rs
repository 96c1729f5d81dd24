//! What `admf watch` watches: the directories of workflow files and
//! inputs, the directories of `data_available` globs, and which changed
//! paths matter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use notify::{RecursiveMode, Watcher};

use crate::error::Error;
use crate::graph::Graph;
use crate::paths::root::Confinement;
use crate::trigger::Trigger;

pub fn absolute(path: &Path) -> PathBuf {
    crate::paths::normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

pub fn dir_of(path: &Path) -> PathBuf {
    match absolute(path).parent() {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("/"),
    }
}

/// What to watch, and what to ignore, from the last successful compile.
#[derive(Default)]
pub struct Watched {
    /// Directories whose files the workflow reads (not their subdirectories).
    pub dirs: BTreeSet<PathBuf>,
    /// The files it reads: workflow files and inputs.
    pub read: BTreeSet<PathBuf>,
    pub outputs: BTreeSet<PathBuf>,
    pub triggers: Vec<Trigger>,
    pub confinement: Confinement,
}

impl Watched {
    pub fn of(graph: &Graph) -> Watched {
        let mut w = Watched {
            triggers: graph.workflow.triggers.clone(),
            confinement: graph.workflow.confinement.clone(),
            ..Watched::default()
        };
        for file in graph
            .workflow
            .files
            .iter()
            .chain(graph.nodes.iter().flat_map(|n| &n.inputs))
        {
            w.dirs.insert(dir_of(file));
            w.read.insert(absolute(file));
        }
        for node in &graph.nodes {
            for (_, output) in &node.workspace_outputs {
                w.outputs.insert(absolute(output));
            }
        }
        w
    }

    /// Every directory to watch, and whether its subdirectories too.
    pub fn wanted(&self) -> BTreeMap<PathBuf, bool> {
        let mut wanted: BTreeMap<PathBuf, bool> =
            self.dirs.iter().map(|d| (d.clone(), false)).collect();
        for glob in self.triggers.iter().flat_map(Trigger::globs) {
            let deep = wanted.entry(glob.dir()).or_default();
            *deep |= glob.deep();
        }
        wanted
    }

    /// Whether a change to `path` can matter: not in the store, not one
    /// of the workflow's own outputs or temporary files.
    pub fn relevant(&self, path: &Path, store: &Path) -> bool {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let own_temp = name.contains(".admf-tmp.");
        // A file inside a directory output is the output's too.
        let output = path.ancestors().any(|a| self.outputs.contains(a));
        !(path.starts_with(store) || output || own_temp)
    }

    /// Whether a change to `path` can change what the workflow reads: a
    /// file it reads, or a file now present in a directory it reads (which
    /// a glob or a data `dir:` may pick up). A temporary file already gone
    /// or a new subdirectory cannot.
    pub fn changes_reads(&self, path: &Path) -> bool {
        self.read.contains(path)
            || (path.parent().is_some_and(|p| self.dirs.contains(p)) && path.is_file())
    }
}

/// The directories being watched. A wanted directory that does not
/// exist yet is stood in for by its nearest existing ancestor until it
/// appears.
pub struct Watches {
    watcher: notify::RecommendedWatcher,
    /// Watched directories, and whether recursively.
    active: BTreeMap<PathBuf, bool>,
    /// Wanted directories that did not exist at the last look.
    missing: BTreeSet<PathBuf>,
}

impl Watches {
    pub fn new(
        tx: Sender<notify::Result<notify::Event>>,
        workflow: &Path,
    ) -> Result<Watches, Error> {
        let watcher = notify::recommended_watcher(tx)
            .map_err(|e| Error::io(workflow, std::io::Error::other(e)))?;
        Ok(Watches {
            watcher,
            active: BTreeMap::new(),
            missing: BTreeSet::new(),
        })
    }

    /// Watch every wanted directory not watched yet; returns those that
    /// started being watched now.
    pub fn ensure(&mut self, wanted: &BTreeMap<PathBuf, bool>) -> Vec<PathBuf> {
        self.missing.clear();
        let mut started = Vec::new();
        for (dir, &deep) in wanted {
            // A directory made between a look and the watch that would see
            // it sends no event, so after watching an ancestor, look again:
            // each round watches a deeper ancestor or the directory itself.
            loop {
                if dir.is_dir() {
                    if self.add(dir, deep) {
                        started.push(dir.clone());
                    }
                    break;
                }
                let ancestor = dir.ancestors().skip(1).find(|a| a.is_dir());
                if !ancestor.is_some_and(|a| self.add(a, false)) {
                    self.missing.insert(dir.clone());
                    break;
                }
            }
        }
        started
    }

    fn add(&mut self, dir: &Path, deep: bool) -> bool {
        if self.active.get(dir).is_some_and(|&d| d || !deep) {
            return false;
        }
        let mode = if deep {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        // A directory that cannot be watched is tried again next time.
        if self.watcher.watch(dir, mode).is_err() {
            return false;
        }
        self.active.insert(dir.to_path_buf(), deep);
        true
    }

    /// Whether `path` appearing may bring a missing wanted directory.
    pub fn may_bring_missing(&self, path: &Path) -> bool {
        self.missing.iter().any(|m| m.starts_with(path))
    }

    pub fn count(&self) -> usize {
        self.active.len()
    }
}
