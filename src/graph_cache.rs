//! The graph cache: the compiled graph of the last build, with the
//! evidence it was compiled from, so that a build whose workflow files
//! are unchanged skips YAML and compiling.
//!
//! It lives at `<store>/runs/<workflow-id>/graph` and is used only when
//! it was written for the same invocation (workflow path, working
//! directory, `--set` values, admf binary) and every piece of evidence
//! still holds:
//!
//! - every file and directory the loader and compiler read (workflow
//!   files, directories listed by globs), by full stat;
//! - every node input still exists as a file (the compiler refuses a
//!   missing one), whatever its content: contents enter keys, not the
//!   graph, so editing an input keeps the graph;
//! - the directory of every input is still the same directory (inode and
//!   device), so a directory swapped for a symlink elsewhere is compiled,
//!   and confined, again.
//!
//! Nothing is written while any evidence is racy (see
//! [`crate::file_stat::is_racy`]). A cache that does not parse, or any
//! mismatch, means compiling as usual.
//!
//! # File format
//!
//! ```text
//! admf-graph 2
//! invocation <blake3 hex>
//! file <size> <mtime ns> <inode> <device> <ctime ns> <-|e|d> <path>
//! graph <the Graph as one line of JSON>
//! sum <blake3 of every byte before this line>
//! ```
//! Flags: `-` the full stat must match, `e` must exist as a file, `d`
//! inode and device must match. Paths are escaped as in the stat cache.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;

use crate::file_stat::{Stat, escape_path, is_racy, system_time_ns, unescape_path};
use crate::graph::Graph;
use crate::reads::Reads;

const HEADER: &str = "admf-graph 2";
const FILE_NAME: &str = "graph";

/// How a piece of evidence is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// Size, mtime, inode and device must match.
    Stat,
    /// Must still exist as a file (following symlinks).
    Exists,
    /// Must still be the same directory (inode and device).
    SameDir,
}

impl Check {
    fn flag(self) -> char {
        match self {
            Check::Stat => '-',
            Check::Exists => 'e',
            Check::SameDir => 'd',
        }
    }

    fn from_flag(flag: &str) -> Option<Check> {
        match flag {
            "-" => Some(Check::Stat),
            "e" => Some(Check::Exists),
            "d" => Some(Check::SameDir),
            _ => None,
        }
    }

    /// The stat `path` has now, when the check holds.
    fn holds(self, path: &Path, recorded: &Stat) -> Option<Stat> {
        let meta = fs::metadata(path).ok()?;
        let now = Stat::of(&meta);
        let holds = match self {
            Check::Stat => now == *recorded,
            Check::Exists => meta.is_file(),
            Check::SameDir => {
                meta.is_dir() && now.inode == recorded.inode && now.device == recorded.device
            }
        };
        holds.then_some(now)
    }
}

/// Where the graph cache of workflow `workflow_id` lives in the store.
pub fn path(store_root: &Path, workflow_id: &str) -> PathBuf {
    store_root.join("runs").join(workflow_id).join(FILE_NAME)
}

/// The evidence of a freshly compiled `graph`: what the loader and
/// compiler read (`read`, by full stat), each node input's existence and
/// its directory's identity.
pub fn evidence(graph: &Graph, read: Vec<(PathBuf, Stat)>) -> Option<Vec<(PathBuf, Stat, Check)>> {
    let mut all: BTreeMap<(PathBuf, Check), Stat> = read
        .into_iter()
        .map(|(path, stat)| ((path, Check::Stat), stat))
        .collect();
    for node in &graph.nodes {
        for input in &node.inputs {
            let input = std::path::absolute(input).ok()?;
            let dir = input.parent()?.to_path_buf();
            if let std::collections::btree_map::Entry::Vacant(slot) =
                all.entry((dir.clone(), Check::SameDir))
            {
                slot.insert(Stat::of(&fs::metadata(&dir).ok()?));
            }
            let exists = Stat {
                size: 0,
                mtime_ns: 0,
                inode: 0,
                device: 0,
                ctime_ns: 0,
            };
            all.insert((input, Check::Exists), exists);
        }
    }
    Some(
        all.into_iter()
            .map(|((path, check), stat)| (path, stat, check))
            .collect(),
    )
}

/// Write the cache, unless some evidence is too recent to trust
/// (`Ok(false)`). `started` is when the build began reading.
pub fn save(
    path: &Path,
    invocation: &str,
    evidence: &[(PathBuf, Stat, Check)],
    graph: &Graph,
    started: SystemTime,
) -> std::io::Result<bool> {
    let started_ns = system_time_ns(started);
    if evidence
        .iter()
        .any(|(_, s, c)| *c == Check::Stat && is_racy(s, started_ns))
    {
        return Ok(false);
    }
    let mut text = format!("{HEADER}\ninvocation {invocation}\n");
    for (file, s, check) in evidence {
        text.push_str(&format!(
            "file {s} {} {}\n",
            check.flag(),
            escape_path(file)
        ));
    }
    text.push_str("graph ");
    text.push_str(&serde_json::to_string(graph).map_err(std::io::Error::other)?);
    text.push('\n');
    crate::file_stat::push_checksum(&mut text);
    crate::atomic_file::write(path, text.as_bytes())?;
    Ok(true)
}

/// The cached graph, if it was written for `invocation` and all its
/// evidence holds; the files it was compiled from are noted in `reads`.
pub fn load(path: &Path, invocation: &str, reads: &Reads) -> Option<Graph> {
    let text = fs::read_to_string(path).ok()?;
    let text = crate::file_stat::checked_body(&text)?;
    let mut lines = text.split('\n');
    if lines.next()? != HEADER || lines.next()? != format!("invocation {invocation}") {
        return None;
    }
    let mut evidence = Vec::new();
    let mut graph_json = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (tag, rest) = line.split_once(' ')?;
        match tag {
            "file" => {
                let mut fields = rest.splitn(7, ' ');
                let stat = Stat::parse(&mut fields)?;
                let check = Check::from_flag(fields.next()?)?;
                evidence.push((unescape_path(fields.next()?)?, stat, check));
            }
            "graph" => graph_json = Some(rest),
            _ => return None,
        }
    }
    let now: Vec<Stat> = evidence
        .par_iter()
        .map(|(path, stat, check)| check.holds(path, stat))
        .collect::<Option<_>>()?;
    let mut graph: Graph = serde_json::from_str(graph_json?).ok()?;
    graph.reindex();
    let mut inputs = std::collections::HashMap::new();
    for ((path, stat, check), now) in evidence.into_iter().zip(now) {
        match check {
            Check::Stat => reads.note(&path, stat),
            // Each input was just stat'ed: the node trace compares that
            // stat rather than taking another.
            Check::Exists => {
                inputs.insert(path, now);
            }
            Check::SameDir => {}
        }
    }
    reads.keep_input_stats(inputs);
    Some(graph)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::graph::Graph;

    fn compiled(rel: &str) -> Graph {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
        let reads = crate::reads::Reads::new();
        let workflow = crate::workflow::load(&path, &[], &reads).unwrap();
        crate::graph::compile(workflow, crate::commands::factory().as_ref(), &reads).unwrap()
    }

    /// Every shipped workflow reads back as the graph that was written:
    /// the same JSON again, and every node found by its id.
    #[test]
    fn shipped_graphs_survive_the_round_trip() {
        for rel in [
            "workflows/parameter_optimization.yaml",
            "workflows/composite_research.yaml",
            "workflows/conditional_ensemble.yaml",
            "workflows/minute_research.yaml",
            "examples/composite/workflow.yaml",
            "examples/conditional/workflow.yaml",
            "examples/watch_data/workflow.yaml",
            "examples/command_pipeline/workflow.yaml",
            "examples/dvc_ml/workflow.yaml",
            "examples/snakemake_mapping/workflow.yaml",
            "examples/make_books/workflow.yaml",
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
            if !path.exists() {
                panic!("{rel} is not a shipped workflow any more: update this list");
            }
            let graph = compiled(rel);
            let text = serde_json::to_string(&graph).unwrap();
            let mut back: Graph = serde_json::from_str(&text).unwrap();
            back.reindex();
            assert_eq!(serde_json::to_string(&back).unwrap(), text, "{rel}");
            for (i, node) in graph.nodes.iter().enumerate() {
                assert_eq!(back.index_of(&node.id), Some(i), "{rel}: {}", node.id);
            }
        }
    }

    #[test]
    fn a_config_number_keeps_every_bit() {
        let value: serde_json::Value = serde_json::from_str("0.30000000000000004").unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&value).unwrap()).unwrap();
        assert_eq!(
            value.as_f64().unwrap().to_bits(),
            back.as_f64().unwrap().to_bits()
        );
    }
}
