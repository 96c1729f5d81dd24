//! The node trace: per node, what its last decision rested on, so that
//! a build after a small edit decides each untouched node with a few
//! `stat` calls instead of hashing, keying and looking it up.
//!
//! After every build, `<store>/runs/<workflow-id>/nodes` records, for each
//! node that ran or came from the store: its key and output digest, the
//! stat each input had when it was hashed, the output digests of its
//! upstream nodes, the stat of each workspace output, and the stat of
//! each blob file of its entry. The next build uses it only when the
//! graph came from the graph cache file the trace was written against
//! (so every config is the one keyed) and the store's `index/` directory
//! is unchanged (gc and repair change it when they remove entries).
//!
//! A node is then settled from the trace, as a hit, exactly when the full
//! rule would find the same key and an intact entry with its outputs in
//! place: every input has its recorded stat (so the same content), every
//! upstream node ended with its recorded output digest (so the same
//! ingredients), every workspace output is still a plain file with its
//! recorded stat, and every blob file of the entry is unchanged. Nodes
//! that are forced, have a `when:`, or are named by some `when:` (their
//! metrics are read) always take the full rule.
//!
//! Stats are trusted as the stat cache trusts them, with the same racy
//! rule ([`crate::file_stat::is_racy`]): a stat too close to the moment it
//! was taken is not recorded, and that node takes the full rule next time.
//!
//! # File format
//!
//! ```text
//! admf-nodes 2
//! invocation <blake3 hex>
//! file <size> <mtime ns> <inode> <device> <ctime ns> <path>     (global evidence: graph cache, index/)
//! node <key> <output digest> <id>
//! up <digest>                   (one per upstream node, in declared order)
//! in <size> <mtime ns> <inode> <device> <ctime ns> <path>
//! out <size> <mtime ns> <inode> <device> <ctime ns> <path>
//! blob <size> <mtime ns> <inode> <device> <ctime ns> <path>
//! sum <blake3 of every byte before this line>
//! ```
//! Ids and paths are escaped as in the stat cache. A malformed trace is
//! no trace, and so is one whose closing `sum <blake3>` line does not
//! match the bytes before it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::file_stat::{Stat, is_racy, push_escaped_path, system_time_ns, unescape_path};
use crate::reads::Reads;

const HEADER: &str = "admf-nodes 2";
const FILE_NAME: &str = "nodes";

/// What one node's decision rested on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TracedNode {
    pub key: String,
    pub output_digest: String,
    pub upstream: Vec<String>,
    pub inputs: Vec<(PathBuf, Stat)>,
    pub outputs: Vec<(PathBuf, Stat)>,
    pub blobs: Vec<(PathBuf, Stat)>,
}

impl TracedNode {
    /// Whether the node would be decided the same way now: its upstream
    /// nodes ended with `upstream` digests, and every file it rested on
    /// has its recorded stat. Each file's stat is noted in `reads`.
    pub fn holds(&self, inputs: &[PathBuf], upstream: &[&str], reads: &Reads) -> bool {
        if self.upstream.len() != upstream.len()
            || self.upstream.iter().zip(upstream).any(|(a, b)| a != b)
            || self.inputs.len() != inputs.len()
            || self.inputs.iter().zip(inputs).any(|((a, _), b)| a != b)
        {
            return false;
        }
        let same = |path: &Path, recorded: &Stat, plain: bool| {
            let meta = if plain {
                fs::symlink_metadata(path)
                    .ok()
                    .filter(|m| m.file_type().is_file())
            } else {
                fs::metadata(path).ok()
            };
            meta.is_some_and(|m| Stat::of(&m) == *recorded)
        };
        let holds = self.inputs.iter().all(|(p, s)| same(p, s, false))
            && self.outputs.iter().all(|(p, s)| same(p, s, true))
            && self.blobs.iter().all(|(p, s)| same(p, s, true));
        if holds {
            for (path, stat) in self.inputs.iter().chain(&self.outputs).chain(&self.blobs) {
                reads.note(path, *stat);
            }
        }
        holds
    }
}

/// The trace of the last build, by node id.
#[derive(Debug, Default)]
pub struct NodeTrace {
    nodes: HashMap<String, Arc<TracedNode>>,
    /// The global evidence it was written with.
    global: Vec<(PathBuf, Stat)>,
}

impl NodeTrace {
    pub fn get(&self, id: &str) -> Option<&Arc<TracedNode>> {
        self.nodes.get(id)
    }

    /// Whether writing `nodes` with `global` would record what this trace
    /// already says: the same global evidence and exactly its nodes, each
    /// with the very evidence read from it (a node settled from the
    /// trace). Then the file need not be written again.
    pub fn would_rewrite_same(
        &self,
        global: &[(PathBuf, Stat)],
        nodes: &[(&str, &Arc<TracedNode>)],
    ) -> bool {
        self.global == global
            && self.nodes.len() == nodes.len()
            && nodes
                .iter()
                .all(|(id, node)| self.nodes.get(*id).is_some_and(|t| Arc::ptr_eq(t, node)))
    }
}

/// Where the trace of workflow `workflow_id` lives in the store.
pub fn path(store_root: &Path, workflow_id: &str) -> PathBuf {
    store_root.join("runs").join(workflow_id).join(FILE_NAME)
}

/// The global evidence a trace rests on, with the stats they have now.
pub fn global_evidence(files: &[PathBuf]) -> Option<Vec<(PathBuf, Stat)>> {
    files
        .iter()
        .map(|f| Some((f.clone(), Stat::of(&fs::metadata(f).ok()?))))
        .collect()
}

/// Remove the trace (a build that cannot write a new one).
pub fn remove(path: &Path) {
    let _ = fs::remove_file(path);
}

/// Write the trace. Nodes with a racy stat are left out; `started` is when
/// the build began reading, `now` when the outputs were last stat'ed.
pub fn save(
    path: &Path,
    invocation: &str,
    global: &[(PathBuf, Stat)],
    nodes: &[(&str, &Arc<TracedNode>)],
    started: SystemTime,
) -> std::io::Result<()> {
    let started_ns = system_time_ns(started);
    let now_ns = system_time_ns(SystemTime::now());
    let mut text = String::with_capacity(256 * nodes.len() + 256);
    text.push_str(&format!("{HEADER}\ninvocation {invocation}\n"));
    for (file, s) in global {
        push_stat(&mut text, "file", file, s);
    }
    for (id, node) in nodes {
        let racy = node.inputs.iter().any(|(_, s)| is_racy(s, started_ns))
            || node
                .outputs
                .iter()
                .chain(&node.blobs)
                .any(|(_, s)| is_racy(s, now_ns));
        if racy {
            continue;
        }
        for part in ["node ", &node.key, " ", &node.output_digest, " "] {
            text.push_str(part);
        }
        push_escaped_path(&mut text, Path::new(id));
        text.push('\n');
        for digest in &node.upstream {
            text.push_str("up ");
            text.push_str(digest);
            text.push('\n');
        }
        for (tag, files) in [
            ("in", &node.inputs),
            ("out", &node.outputs),
            ("blob", &node.blobs),
        ] {
            for (file, s) in files {
                push_stat(&mut text, tag, file, s);
            }
        }
    }
    crate::file_stat::push_checksum(&mut text);
    crate::atomic_file::write(path, text.as_bytes())
}

fn push_stat(text: &mut String, tag: &str, file: &Path, s: &Stat) {
    text.push_str(tag);
    text.push(' ');
    crate::file_stat::push_stat(text, s);
    text.push(' ');
    push_escaped_path(text, file);
    text.push('\n');
}

/// The trace, if it was written for `invocation` and its global evidence
/// still holds (each of those files noted in `reads`).
pub fn load(path: &Path, invocation: &str, reads: &Reads) -> Option<NodeTrace> {
    let text = fs::read_to_string(path).ok()?;
    let text = crate::file_stat::checked_body(&text)?;
    let mut lines = text.split('\n');
    if lines.next()? != HEADER || lines.next()? != format!("invocation {invocation}") {
        return None;
    }
    let mut trace = NodeTrace::default();
    let mut current: Option<(String, TracedNode)> = None;
    let mut global = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (tag, rest) = line.split_once(' ')?;
        match tag {
            "file" => global.push(parse_stat(rest)?),
            "node" => {
                if let Some((id, node)) = current.take() {
                    trace.nodes.insert(id, Arc::new(node));
                }
                let mut fields = rest.splitn(3, ' ');
                let key = fields.next()?.to_string();
                let output_digest = fields.next()?.to_string();
                let id = unescape_path(fields.next()?)?
                    .into_os_string()
                    .into_string()
                    .ok()?;
                current = Some((
                    id,
                    TracedNode {
                        key,
                        output_digest,
                        ..TracedNode::default()
                    },
                ));
            }
            "up" => current.as_mut()?.1.upstream.push(rest.to_string()),
            "in" => current.as_mut()?.1.inputs.push(parse_stat(rest)?),
            "out" => current.as_mut()?.1.outputs.push(parse_stat(rest)?),
            "blob" => current.as_mut()?.1.blobs.push(parse_stat(rest)?),
            _ => return None,
        }
    }
    if let Some((id, node)) = current.take() {
        trace.nodes.insert(id, Arc::new(node));
    }
    for (file, recorded) in &global {
        let now = Stat::of(&fs::metadata(file).ok()?);
        if now != *recorded {
            return None;
        }
        reads.note(file, now);
    }
    trace.global = global;
    Some(trace)
}

fn parse_stat(rest: &str) -> Option<(PathBuf, Stat)> {
    let mut fields = rest.splitn(6, ' ');
    let stat = Stat::parse(&mut fields)?;
    Some((unescape_path(fields.next()?)?, stat))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn old_file(dir: &Path, name: &str, text: &str) -> (PathBuf, Stat) {
        let path = dir.join(name);
        fs::write(&path, text).unwrap();
        let file = fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        let stat = Stat::of(&fs::metadata(&path).unwrap());
        (path, stat)
    }

    #[test]
    fn a_trace_reads_back_and_holds_until_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let input = old_file(dir.path(), "in 1.txt", "a");
        let output = old_file(dir.path(), "out.txt", "b");
        let global = old_file(dir.path(), "graph", "g");
        let node = TracedNode {
            key: "k".repeat(64),
            output_digest: "d".repeat(64),
            upstream: vec!["u".repeat(64)],
            inputs: vec![input.clone()],
            outputs: vec![output.clone()],
            blobs: Vec::new(),
        };
        let path = dir.path().join("runs/nodes");
        save(
            &path,
            "inv",
            std::slice::from_ref(&global),
            &[("a[1] b", &Arc::new(node.clone()))],
            SystemTime::now(),
        )
        .unwrap();
        assert!(load(&path, "other", &Reads::new()).is_none());
        let trace = load(&path, "inv", &Reads::new()).unwrap();
        let back = trace.get("a[1] b").unwrap();
        assert_eq!(**back, node);
        let up = "u".repeat(64);
        assert!(back.holds(
            std::slice::from_ref(&input.0),
            &[up.as_str()],
            &Reads::new()
        ));
        assert!(!back.holds(std::slice::from_ref(&input.0), &["x"], &Reads::new()));
        assert!(!back.holds(&[dir.path().join("other")], &[up.as_str()], &Reads::new()));
        fs::write(&output.0, "changed").unwrap();
        assert!(!back.holds(
            std::slice::from_ref(&input.0),
            &[up.as_str()],
            &Reads::new()
        ));
        fs::write(&global.0, "changed graph").unwrap();
        assert!(load(&path, "inv", &Reads::new()).is_none());
    }

    #[test]
    fn a_node_with_a_fresh_file_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.txt");
        fs::write(&fresh, "new").unwrap();
        let stat = Stat::of(&fs::metadata(&fresh).unwrap());
        let node = TracedNode {
            key: "k".into(),
            output_digest: "d".into(),
            outputs: vec![(fresh, stat)],
            ..TracedNode::default()
        };
        let path = dir.path().join("nodes");
        save(
            &path,
            "inv",
            &[],
            &[("n", &Arc::new(node))],
            SystemTime::now(),
        )
        .unwrap();
        assert!(
            load(&path, "inv", &Reads::new())
                .unwrap()
                .get("n")
                .is_none()
        );
    }
}
