//! `admf watch`: build, then build again whenever a file the workflow
//! reads changes: a workflow file (included ones too), a data file, an
//! `inputs:` file, or a new file in one of their directories (a new CSV
//! for a `dir:` + `pattern:` data spec or an `inputs:` glob). Each rebuild
//! is an ordinary `admf build`, so only the nodes whose keys changed run.
//!
//! Bursts of events are debounced; changes to the store and to the
//! workflow's own outputs are ignored. A workflow edit that breaks it
//! prints the error and keeps watching. Stopping with Ctrl-C at any moment
//! is safe: the store never holds a half entry.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use notify::{Event, EventKind, RecursiveMode, Watcher};

use super::{build, color, project_root};
use crate::cli::{BuildArgs, WorkflowArgs};
use crate::error::Error;
use crate::graph::Graph;

/// Quiet time after the last event before a rebuild starts.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// What to watch, and what to ignore, from the last successful compile.
#[derive(Default)]
struct Watched {
    dirs: BTreeSet<PathBuf>,
    outputs: BTreeSet<PathBuf>,
}

fn absolute(path: &Path) -> PathBuf {
    crate::graph::normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

fn dir_of(path: &Path) -> PathBuf {
    match absolute(path).parent() {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("/"),
    }
}

fn watched(graph: &Graph) -> Watched {
    let mut w = Watched::default();
    for file in &graph.workflow.files {
        w.dirs.insert(dir_of(file));
    }
    for node in &graph.nodes {
        for input in &node.inputs {
            w.dirs.insert(dir_of(input));
        }
        for (_, output) in &node.workspace_outputs {
            w.outputs.insert(absolute(output));
        }
    }
    w
}

pub fn watch(wf: &WorkflowArgs, args: &BuildArgs) -> Result<i32, Error> {
    let store = absolute(
        &wf.cache_dir
            .clone()
            .unwrap_or_else(|| project_root(&wf.workflow).join("cache")),
    );
    // One watcher for the whole session: a change made while a build runs
    // waits in the channel and starts the next build.
    let (tx, rx) = channel();
    let mut watcher = notify::recommended_watcher(tx)
        .map_err(|e| Error::io(&wf.workflow, std::io::Error::other(e)))?;
    let mut watching: BTreeSet<PathBuf> = BTreeSet::new();
    let mut w = Watched::default();
    loop {
        // One compile serves both the build and the list of what to watch.
        let started = std::time::Instant::now();
        let outcome = super::compile(wf).and_then(|graph| {
            w = watched(&graph);
            build::build_compiled(wf, graph, args, started)
        });
        if let Err(e) = outcome {
            crate::err!("{}", e.render(color()));
            // Keep watching what we knew, and the root file itself.
            w.dirs.insert(dir_of(&wf.workflow));
        }
        for dir in w.dirs.difference(&watching.clone()) {
            // A directory that does not exist yet is tried again next time.
            if watcher.watch(dir, RecursiveMode::NonRecursive).is_ok() {
                watching.insert(dir.clone());
            }
        }
        crate::errln!(
            "watching {} director{} for changes (Ctrl-C stops)",
            watching.len(),
            if watching.len() == 1 { "y" } else { "ies" }
        );
        let Some(first) = next_change(&rx, &store, &w, None) else {
            return Ok(0);
        };
        // Debounce: wait until the burst is over.
        while next_change(&rx, &store, &w, Some(DEBOUNCE)).is_some() {}
        crate::errln!("changed: {}", first.display());
    }
}

/// The next relevant changed path; `None` when `timeout` passes first or
/// the watcher is gone.
fn next_change(
    rx: &Receiver<notify::Result<Event>>,
    store: &Path,
    w: &Watched,
    timeout: Option<Duration>,
) -> Option<PathBuf> {
    loop {
        let event = match timeout {
            Some(t) => match rx.recv_timeout(t) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            },
            None => rx.recv().ok()?,
        };
        let Ok(event) = event else { continue };
        if !matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        ) {
            continue;
        }
        if let Some(path) = event.paths.iter().find(|p| relevant(p, store, w)) {
            return Some(path.clone());
        }
    }
}

fn relevant(path: &Path, store: &Path, w: &Watched) -> bool {
    let path = absolute(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let own_temp = name.contains(".admf-tmp.");
    !(path.starts_with(store) || w.outputs.contains(&path) || own_temp)
}
