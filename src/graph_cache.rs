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
//! Binary, read in one `read` and decoded without parsing text (a text
//! form of a 10,000-node graph took a fifth of a leaf edit's time):
//!
//! ```text
//! admf-graph 3\n                  the format's version
//! invocation <blake3 hex>\n
//! <u64 n>                         evidence count, then n times:
//!   <u8 check> <u64 size> <i64 mtime ns> <u64 inode> <u64 device> <i64 ctime ns>
//!   <u32 len> <path bytes>
//! <u64 len> <the Graph as MessagePack, struct fields in declaration order>
//! <32 bytes: blake3 of every byte before them>
//! ```
//! Integers are little-endian. Checks: `0` the full stat must match, `1`
//! must exist as a file, `2` inode and device must match. A file of
//! another version, a foreign or damaged one (the sum), or one that does
//! not decode whole is no cache: the build compiles as usual.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;

use crate::dir_stat::{DirStats, Kind};
use crate::file_stat::{Stat, is_racy, system_time_ns};
use crate::graph::Graph;
use crate::reads::Reads;

const HEADER: &str = "admf-graph 3";
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
    fn flag(self) -> u8 {
        match self {
            Check::Stat => 0,
            Check::Exists => 1,
            Check::SameDir => 2,
        }
    }

    fn from_flag(flag: u8) -> Option<Check> {
        match flag {
            0 => Some(Check::Stat),
            1 => Some(Check::Exists),
            2 => Some(Check::SameDir),
            _ => None,
        }
    }

    /// The stat `path` has now, when the check holds.
    fn holds(self, dirs: &DirStats, path: &Path, recorded: &Stat) -> Option<Stat> {
        let (now, kind) = dirs.stat(path, true)?;
        let holds = match self {
            Check::Stat => now == *recorded,
            Check::Exists => kind == Kind::File,
            Check::SameDir => {
                kind == Kind::Dir && now.inode == recorded.inode && now.device == recorded.device
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
    // Structs as arrays, fields by position: a third smaller than by
    // name. Only the admf binary that wrote the file reads it (the
    // invocation holds the binary's identity), so the field order is its own.
    let graph = rmp_serde::to_vec(graph).map_err(std::io::Error::other)?;
    let mut bytes = format!("{HEADER}\ninvocation {invocation}\n").into_bytes();
    bytes.reserve(evidence.len() * 100 + graph.len() + 64);
    bytes.extend_from_slice(&(evidence.len() as u64).to_le_bytes());
    for (file, s, check) in evidence {
        bytes.push(check.flag());
        for field in [
            s.size,
            s.mtime_ns as u64,
            s.inode,
            s.device,
            s.ctime_ns as u64,
        ] {
            bytes.extend_from_slice(&field.to_le_bytes());
        }
        let path =
            path_bytes(file).ok_or_else(|| std::io::Error::other("a path that is not UTF-8"))?;
        let len = u32::try_from(path.len()).map_err(std::io::Error::other)?;
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(path);
    }
    bytes.extend_from_slice(&(graph.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&graph);
    let sum = blake3::hash(&bytes);
    bytes.extend_from_slice(sum.as_bytes());
    crate::atomic_file::write(path, &bytes)?;
    Ok(true)
}

/// The cached graph, if it was written for `invocation` and all its
/// evidence holds; the files it was compiled from are noted in `reads`.
pub fn load(path: &Path, invocation: &str, reads: &Reads) -> Option<Graph> {
    // A copy decoded ahead (`admf serve`) saves reading and decoding the
    // graph; its evidence is checked as the file's would be.
    let (bytes, decoded) = match crate::preload::take::<Preloaded>(path) {
        Some(copy) => (copy.bytes, Some(copy.graph)),
        None => (fs::read(path).ok()?, None),
    };
    let (evidence, graph) = decode(&bytes, invocation)?;
    let dirs = DirStats::new();
    // A file `admf serve` vouches for is a regular file with that stat
    // now: an input needs no stat of its own, nor a workflow file whose
    // stat is the recorded one.
    let vouched = |path: &Path, recorded: &Stat, check: Check| match check {
        Check::Exists => reads.vouched_file_stat(path),
        Check::Stat => reads.vouched_file_stat(path).filter(|now| now == recorded),
        Check::SameDir => None,
    };
    let now: Vec<(Stat, bool)> = evidence
        .par_iter()
        .map(|(path, stat, check)| match vouched(path, stat, *check) {
            Some(now) => Some((now, true)),
            None => check.holds(&dirs, path, stat).map(|now| (now, false)),
        })
        .collect::<Option<_>>()?;
    let graph = match decoded {
        Some(graph) => graph,
        None => decode_graph(graph)?,
    };
    let mut inputs = crate::reads::StatsByPath::default();
    for ((path, stat, check), (now, vouched)) in evidence.into_iter().zip(now) {
        match check {
            Check::Stat => reads.note(path, stat),
            // Each input was just stat'ed: the node trace compares that
            // stat rather than taking another (or the vouched one, which
            // it finds itself).
            Check::Exists if !vouched => {
                inputs.insert(path.as_os_str().to_owned(), now);
            }
            Check::Exists | Check::SameDir => {}
        }
    }
    reads.keep_input_stats(inputs);
    Some(graph)
}

fn decode_graph(encoded: &[u8]) -> Option<Graph> {
    let mut graph: Graph = rmp_serde::from_slice(encoded).ok()?;
    graph.reindex();
    Some(graph)
}

/// A graph cache file read and decoded ahead of the build that loads it
/// ([`crate::preload`]).
struct Preloaded {
    bytes: Vec<u8>,
    graph: Graph,
}

/// Read and decode the graph cache at `path` ahead of a build, for
/// whichever invocation it was written; false when there is nothing
/// whole and steady to decode. Uses no thread besides the caller's.
pub fn preload(path: &Path) -> bool {
    let Ok(Some((bytes, stat))) = crate::preload::read_steady(path) else {
        return false;
    };
    let Some(graph) = split(&bytes).and_then(|(_, _, encoded)| decode_graph(encoded)) else {
        return false;
    };
    crate::preload::put(path, stat, Preloaded { bytes, graph });
    true
}

/// Evidence with its paths borrowed from the cache file's bytes.
type Evidence<'a> = Vec<(&'a Path, Stat, Check)>;

/// Evidence and the encoded graph of a cache file written for
/// `invocation`, when it is whole and of this version.
fn decode<'a>(bytes: &'a [u8], invocation: &str) -> Option<(Evidence<'a>, &'a [u8])> {
    let (written_for, evidence, graph) = split(bytes)?;
    (written_for == invocation).then_some((evidence, graph))
}

/// The invocation a whole cache file of this version was written for,
/// its evidence and its encoded graph.
fn split<'a>(bytes: &'a [u8]) -> Option<(&'a str, Evidence<'a>, &'a [u8])> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let rest = body.strip_prefix(format!("{HEADER}\ninvocation ").as_bytes())?;
    let end = rest.iter().position(|&b| b == b'\n')?;
    let invocation = std::str::from_utf8(&rest[..end]).ok()?;
    let mut rest = &rest[end + 1..];
    let mut take = |n: usize| -> Option<&'a [u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let mut u64_at = || Some(u64::from_le_bytes(take(8)?.try_into().ok()?));
    let count = usize::try_from(u64_at()?).ok()?;
    let mut evidence = Vec::with_capacity(count.min(body.len() / 45));
    for _ in 0..count {
        let check = Check::from_flag(take(1)?[0])?;
        let mut field = || Some(u64::from_le_bytes(take(8)?.try_into().ok()?));
        let stat = Stat {
            size: field()?,
            mtime_ns: field()? as i64,
            inode: field()?,
            device: field()?,
            ctime_ns: field()? as i64,
        };
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        evidence.push((path_of(take(len)?)?, stat, check));
    }
    let len = usize::try_from(u64::from_le_bytes(take(8)?.try_into().ok()?)).ok()?;
    let graph = take(len)?;
    take(1).is_none().then_some((invocation, evidence, graph))
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Option<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    Some(path.as_os_str().as_bytes())
}

#[cfg(unix)]
fn path_of(bytes: &[u8]) -> Option<&Path> {
    use std::os::unix::ffi::OsStrExt;
    Some(Path::new(std::ffi::OsStr::from_bytes(bytes)))
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Option<&[u8]> {
    path.to_str().map(str::as_bytes)
}

#[cfg(not(unix))]
fn path_of(bytes: &[u8]) -> Option<&Path> {
    std::str::from_utf8(bytes).ok().map(Path::new)
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
    /// encoded as the cache encodes it and decoded, the same JSON again, and every node found by its id.
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
            let mut back: Graph =
                rmp_serde::from_slice(&rmp_serde::to_vec(&graph).unwrap()).unwrap();
            back.reindex();
            assert_eq!(serde_json::to_string(&back).unwrap(), text, "{rel}");
            for (i, node) in graph.nodes.iter().enumerate() {
                assert_eq!(back.index_of(&node.id), Some(i), "{rel}: {}", node.id);
            }
        }
    }

    fn old_file(dir: &Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, name).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(60))
            .unwrap();
        path
    }

    /// A cache written by `save` and its bytes, for a workflow whose one
    /// file (and the graph's inputs) lie in a temporary directory.
    fn saved(dir: &Path) -> (std::path::PathBuf, Graph, Vec<u8>) {
        let workflow = old_file(dir, "wf.yaml");
        let graph = compiled("examples/command_pipeline/workflow.yaml");
        let stat = crate::file_stat::Stat::of(&std::fs::metadata(&workflow).unwrap());
        let evidence = super::evidence(&graph, vec![(workflow, stat)]).unwrap();
        let path = dir.join("graph");
        assert!(
            super::save(
                &path,
                "inv",
                &evidence,
                &graph,
                std::time::SystemTime::now()
            )
            .unwrap()
        );
        let bytes = std::fs::read(&path).unwrap();
        (path, graph, bytes)
    }

    #[test]
    fn a_saved_graph_loads_back_while_its_evidence_holds() {
        let dir = tempfile::tempdir().unwrap();
        let (path, graph, _) = saved(dir.path());
        let reads = crate::reads::Reads::new();
        let back = super::load(&path, "inv", &reads).expect("a cache");
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&graph).unwrap()
        );
        assert!(
            reads.snapshot().iter().any(|(p, _)| p.ends_with("wf.yaml")),
            "the workflow file is noted as read"
        );
        assert!(
            super::load(&path, "other", &reads).is_none(),
            "another invocation"
        );
        std::fs::write(dir.path().join("wf.yaml"), "edited").unwrap();
        assert!(
            super::load(&path, "inv", &reads).is_none(),
            "an edited workflow"
        );
    }

    /// Any damage, any cut, an older (text) version or a foreign file is no
    /// cache, never a panic and never another graph.
    #[test]
    fn a_damaged_truncated_or_old_cache_is_no_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _, bytes) = saved(dir.path());
        let reads = crate::reads::Reads::new();
        let mut damaged = Vec::new();
        for at in [
            0,
            5,
            20,
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() - 40,
            bytes.len() - 1,
        ] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x20;
            damaged.push(flipped);
        }
        for cut in [0, 1, 13, bytes.len() / 2, bytes.len() - 32, bytes.len() - 1] {
            damaged.push(bytes[..cut].to_vec());
        }
        let mut longer = bytes.clone();
        longer.push(b'\n');
        damaged.push(longer);
        damaged.push(b"admf-graph 2\ninvocation inv\ngraph {}\nsum 00\n".to_vec());
        damaged.push(vec![0xff; 4096]);
        for (n, bad) in damaged.iter().enumerate() {
            std::fs::write(&path, bad).unwrap();
            assert!(super::load(&path, "inv", &reads).is_none(), "case {n}");
        }
        // A body that sums right but does not decode whole.
        let mut body = bytes[..bytes.len() - 32].to_vec();
        body.truncate(body.len() - 10);
        let sum = blake3::hash(&body);
        body.extend_from_slice(sum.as_bytes());
        std::fs::write(&path, &body).unwrap();
        assert!(super::load(&path, "inv", &reads).is_none());
        std::fs::write(&path, &bytes).unwrap();
        assert!(super::load(&path, "inv", &reads).is_some());
    }

    #[test]
    fn a_config_number_keeps_every_bit() {
        let value: serde_json::Value = serde_json::from_str("0.30000000000000004").unwrap();
        let back: serde_json::Value =
            rmp_serde::from_slice(&rmp_serde::to_vec(&value).unwrap()).unwrap();
        assert_eq!(
            value.as_f64().unwrap().to_bits(),
            back.as_f64().unwrap().to_bits()
        );
    }
}
