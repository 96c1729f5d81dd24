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
//! admf-nodes 3
//! invocation <blake3 hex>
//! file <size> <mtime ns> <inode> <device> <ctime ns> <path>     (global evidence: graph cache, index/)
//! node <key> <output digest> <id>
//! up <digest>                   (one per upstream node, in declared order)
//! in <size> <mtime ns> <inode> <device> <ctime ns> <path>
//! out <size> <mtime ns> <inode> <device> <ctime ns> <path>
//! blob <size> <mtime ns> <inode> <device> <ctime ns> <path>
//! gone <id>                     (only in an appended segment: the node is dropped)
//! sum <blake3 of every byte before this line>
//! ```
//! The lines up to the first `sum` are the trace as last written whole.
//! A build that changes a few nodes appends a segment of the same lines
//! and its own `sum` (over every byte of the file before it): its `file`
//! lines replace the global evidence, each `node` replaces the node of
//! that id, each `gone` drops one. Ids and paths are escaped as in the
//! stat cache. A malformed first segment is no trace, and so is one whose
//! `sum` does not match; a later segment that is malformed or unsealed (a
//! torn append) ends the trace before it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::file_stat::{Stat, is_racy, push_escaped_path, system_time_ns, unescape_path};
use crate::reads::Reads;

const HEADER: &str = "admf-nodes 3";
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
    /// has its recorded stat. The files are not noted in `reads`: a node
    /// settled so carries this trace as its evidence, whose files the
    /// build adds to what it read when it saves its record
    /// ([`TracedNode::files`]), off the path to its answer.
    pub fn holds(&self, inputs: &[PathBuf], upstream: &[&str], reads: &Reads) -> bool {
        self.same_upstream_and_inputs(inputs, upstream) && self.files_hold(reads)
    }

    /// Whether its upstream nodes ended with `upstream` digests and it
    /// declares the input paths `inputs`, as traced.
    pub fn same_upstream_and_inputs(&self, inputs: &[PathBuf], upstream: &[&str]) -> bool {
        // Bytes first: equal bytes are equal paths, and `Path`'s own
        // comparison goes component by component.
        let same_path = |a: &Path, b: &Path| a.as_os_str() == b.as_os_str() || a == b;
        self.upstream.len() == upstream.len()
            && self.upstream.iter().zip(upstream).all(|(a, b)| a == b)
            && self.inputs.len() == inputs.len()
            && self
                .inputs
                .iter()
                .zip(inputs)
                .all(|((a, _), b)| same_path(a, b))
    }

    /// Whether every file it rested on has its recorded stat: the part of
    /// [`TracedNode::holds`] that needs nothing from its upstream nodes,
    /// so it can be checked ahead of the decision ([`CheckedAhead`]).
    pub fn files_hold(&self, reads: &Reads) -> bool {
        let same_plain = |path: &Path, recorded: &Stat| reads.plain_stat(path) == Some(*recorded);
        self.inputs
            .iter()
            .all(|(p, s)| reads.input_stat(p) == Some(*s))
            && self.outputs.iter().all(|(p, s)| same_plain(p, s))
            && self.blobs.iter().all(|(p, s)| same_plain(p, s))
    }

    /// Every file the node rested on, with the stat [`TracedNode::holds`]
    /// found it with.
    pub fn files(&self) -> impl Iterator<Item = &(PathBuf, Stat)> {
        self.inputs.iter().chain(&self.outputs).chain(&self.blobs)
    }

    fn is_racy(&self, started_ns: i64, now_ns: i64) -> bool {
        self.inputs.iter().any(|(_, s)| is_racy(s, started_ns))
            || self
                .outputs
                .iter()
                .chain(&self.blobs)
                .any(|(_, s)| is_racy(s, now_ns))
    }
}

/// The files of traced nodes checked ahead of their decisions, by node
/// index, on a thread of its own ([`CheckedAhead::run`]): while the
/// coordinator settles one node after another, the stats (or the lookups
/// of the stats `admf serve` vouched for) of those to come are taken on
/// another core. A decision takes the answer found ahead, as if it had
/// checked its files then: a check made earlier in the same build, as the
/// input stats the graph cache's check took before any decision are. A
/// node not reached yet is checked by its decision itself.
#[derive(Default)]
pub struct CheckedAhead {
    /// Each node's [`NOT_CHECKED`], [`HOLD`], [`DO_NOT_HOLD`], [`CHECKING`],
    /// [`TAKEN`] or [`PASSED_OVER`].
    states: Vec<std::sync::atomic::AtomicU8>,
    stop: std::sync::atomic::AtomicBool,
}

const NOT_CHECKED: u8 = 0;
const HOLD: u8 = 1;
const DO_NOT_HOLD: u8 = 2;
/// Being checked ahead.
const CHECKING: u8 = 3;
/// Its decision came first and checks the files itself: not checked
/// ahead (a thread that fell behind skips what was decided meanwhile).
const TAKEN: u8 = 4;
/// Downstream of a node whose files do not hold (or of one passed over):
/// that node runs, so this one's decision most likely finds other
/// upstream digests and never looks at its files. Left to its decision.
const PASSED_OVER: u8 = 5;

impl CheckedAhead {
    /// Room for the nodes of a graph of `nodes` nodes.
    pub fn new(nodes: usize) -> CheckedAhead {
        CheckedAhead {
            states: (0..nodes).map(|_| Default::default()).collect(),
            stop: Default::default(),
        }
    }

    /// Whether node `index`'s files hold, when checked ahead already;
    /// `None`: its decision checks them itself, and they are no longer
    /// checked ahead.
    pub fn take(&self, index: usize) -> Option<bool> {
        let state = self.states.get(index)?;
        match state.compare_exchange(NOT_CHECKED, TAKEN, Ordering::AcqRel, Ordering::Acquire) {
            Err(HOLD) => Some(true),
            Err(DO_NOT_HOLD) => Some(false),
            _ => None,
        }
    }

    /// Checks the files of each node of `order` (upstream nodes first)
    /// that `trace` lists, in that order, until every one is checked or
    /// [`CheckedAhead::stop`]; `deps_of` gives a node's upstream nodes.
    /// A node downstream of one whose files do not hold is passed over
    /// ([`PASSED_OVER`]): after an edit near the roots, nearly every node
    /// would be stated for nothing.
    pub fn run<'a>(
        &self,
        order: &[usize],
        id_of: impl Fn(usize) -> &'a str,
        deps_of: impl Fn(usize) -> &'a [usize],
        trace: &NodeTrace,
        reads: &Reads,
    ) {
        let doubted = |d: usize| {
            self.states
                .get(d)
                .is_some_and(|s| matches!(s.load(Ordering::Acquire), DO_NOT_HOLD | PASSED_OVER))
        };
        for &index in order {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let (Some(state), Some(traced)) = (self.states.get(index), trace.get(id_of(index)))
            else {
                continue;
            };
            let next = if deps_of(index).iter().any(|&d| doubted(d)) {
                PASSED_OVER
            } else {
                CHECKING
            };
            if state
                .compare_exchange(NOT_CHECKED, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
                || next == PASSED_OVER
            {
                continue;
            }
            let holds = traced.files_hold(reads);
            state.store(if holds { HOLD } else { DO_NOT_HOLD }, Ordering::Release);
        }
    }

    /// Stops [`CheckedAhead::run`] at its next node.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The trace of the last build, by node id.
#[derive(Debug, Default)]
pub struct NodeTrace {
    nodes: rustc_hash::FxHashMap<String, Arc<TracedNode>>,
    /// The global evidence it was written with.
    global: Vec<(PathBuf, Stat)>,
    /// Where the file ended when it was read, when every byte of it was a
    /// sealed segment: what a later segment may be appended to.
    file: Option<crate::file_stat::AppendPoint>,
}

impl NodeTrace {
    pub fn get(&self, id: &str) -> Option<&Arc<TracedNode>> {
        self.nodes.get(id)
    }
}

/// What [`save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// The trace already said it all: nothing written.
    Unchanged,
    /// A segment with the changes was appended.
    Appended,
    /// The whole file was written again.
    Rewritten,
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

/// Make the trace at `path` say `global` and `nodes`, and nothing else.
/// Nodes with a racy stat are left out; `started` is when the build began
/// reading (inputs are compared with it, outputs and blobs with now).
///
/// `previous` is the trace this build loaded from `path`: when the file is
/// still the one it was read from, only what changed is appended (a
/// segment with the global evidence, the nodes that differ and a `gone`
/// line per node dropped), so an edit that reran one node writes a few
/// hundred bytes rather than every node again. Once the appended segments
/// outgrow the last whole write, the file is written whole again.
pub fn save(
    path: &Path,
    invocation: &str,
    global: &[(PathBuf, Stat)],
    nodes: &[(&str, &Arc<TracedNode>)],
    started: SystemTime,
    previous: Option<&NodeTrace>,
) -> std::io::Result<Saved> {
    let started_ns = system_time_ns(started);
    let now_ns = system_time_ns(SystemTime::now());
    let kept = |node: &TracedNode| !node.is_racy(started_ns, now_ns);
    if let Some(previous) = previous
        && let Some(point) = &previous.file
    {
        let Some(mut segment) = changes(previous, global, nodes, &kept) else {
            return Ok(Saved::Unchanged);
        };
        if crate::file_stat::append_segment(path, point, &mut segment)? {
            return Ok(Saved::Appended);
        }
    }
    let mut text = String::with_capacity(256 * nodes.len() + 256);
    text.push_str(&format!("{HEADER}\ninvocation {invocation}\n"));
    for (file, s) in global {
        push_stat(&mut text, "file", file, s);
    }
    for (id, node) in nodes {
        if kept(node) {
            push_node(&mut text, id, node);
        }
    }
    crate::file_stat::push_checksum(&mut text);
    crate::atomic_file::write(path, text.as_bytes())?;
    Ok(Saved::Rewritten)
}

/// The segment that turns `previous` into (`global`, the `kept` of
/// `nodes`), without its `sum` line; `None` when they say the same.
fn changes(
    previous: &NodeTrace,
    global: &[(PathBuf, Stat)],
    nodes: &[(&str, &Arc<TracedNode>)],
    kept: &dyn Fn(&TracedNode) -> bool,
) -> Option<String> {
    let mut segment = String::new();
    for (file, s) in global {
        push_stat(&mut segment, "file", file, s);
    }
    let mut changed = previous.global != global;
    let mut still_there = 0;
    for (id, node) in nodes {
        let before = previous.nodes.get(*id);
        if before.is_some() {
            still_there += 1;
        }
        // A node settled from the trace carries the very evidence read
        // from it, and that evidence was checked by this build.
        let same = before.is_some_and(|b| Arc::ptr_eq(b, node) || **b == ***node);
        if same {
            continue;
        }
        if kept(node) {
            push_node(&mut segment, id, node);
            changed = true;
        } else if before.is_some() {
            push_gone(&mut segment, id);
            changed = true;
        }
    }
    if still_there != previous.nodes.len() {
        let ids: std::collections::HashSet<&str> = nodes.iter().map(|(id, _)| *id).collect();
        let mut gone: Vec<&str> = previous
            .nodes
            .keys()
            .map(String::as_str)
            .filter(|id| !ids.contains(id))
            .collect();
        // Sorted: the same changes append the same bytes.
        gone.sort_unstable();
        for id in gone {
            push_gone(&mut segment, id);
            changed = true;
        }
    }
    changed.then_some(segment)
}

fn push_node(text: &mut String, id: &str, node: &TracedNode) {
    for part in ["node ", &node.key, " ", &node.output_digest, " "] {
        text.push_str(part);
    }
    push_escaped_path(text, Path::new(id));
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
            push_stat(text, tag, file, s);
        }
    }
}

fn push_gone(text: &mut String, id: &str) {
    text.push_str("gone ");
    push_escaped_path(text, Path::new(id));
    text.push('\n');
}

fn push_stat(text: &mut String, tag: &str, file: &Path, s: &Stat) {
    text.push_str(tag);
    text.push(' ');
    crate::file_stat::push_stat(text, s);
    text.push(' ');
    push_escaped_path(text, file);
    text.push('\n');
}

/// One segment's lines, applied once its `sum` line is checked.
#[derive(Default)]
struct Segment {
    global: Vec<(PathBuf, Stat)>,
    nodes: Vec<(String, TracedNode)>,
    gone: Vec<String>,
}

impl Segment {
    /// Take in one line; `None` when it is malformed.
    fn line(&mut self, line: &str) -> Option<()> {
        let (tag, rest) = line.split_once(' ')?;
        match tag {
            "file" => self.global.push(parse_stat(rest)?),
            "node" => {
                let mut fields = rest.splitn(3, ' ');
                let key = fields.next()?.to_string();
                let output_digest = fields.next()?.to_string();
                let id = parse_id(fields.next()?)?;
                self.nodes.push((
                    id,
                    TracedNode {
                        key,
                        output_digest,
                        ..TracedNode::default()
                    },
                ));
            }
            "gone" => self.gone.push(parse_id(rest)?),
            "up" => self.last()?.upstream.push(rest.to_string()),
            "in" => self.last()?.inputs.push(parse_stat(rest)?),
            "out" => self.last()?.outputs.push(parse_stat(rest)?),
            "blob" => self.last()?.blobs.push(parse_stat(rest)?),
            _ => return None,
        }
        Some(())
    }

    fn last(&mut self) -> Option<&mut TracedNode> {
        self.nodes.last_mut().map(|(_, node)| node)
    }

    fn apply(self, trace: &mut NodeTrace) {
        trace.global = self.global;
        for id in self.gone {
            trace.nodes.remove(&id);
        }
        for (id, node) in self.nodes {
            trace.nodes.insert(id, Arc::new(node));
        }
    }
}

fn parse_id(text: &str) -> Option<String> {
    unescape_path(text)?.into_os_string().into_string().ok()
}

/// The trace, if it was written for `invocation` and its global evidence
/// still holds (each of those files noted in `reads`). Segments are
/// applied in order up to the last one whose `sum` matches; what follows
/// it (a torn append) is ignored, and the next save writes the file whole.
pub fn load(path: &Path, invocation: &str, reads: &Reads) -> Option<NodeTrace> {
    // A copy parsed ahead (`admf serve`) stands for the file while the
    // file is as it was read; its global evidence is checked below.
    let trace = match crate::preload::take::<Preloaded>(path) {
        Some(copy) => (copy.invocation == invocation).then_some(copy.trace)?,
        None => {
            use std::io::Read;
            let mut file = fs::File::open(path).ok()?;
            let meta = file.metadata().ok()?;
            let mut text = String::with_capacity(meta.len() as usize + 1);
            file.read_to_string(&mut text).ok()?;
            let (written_for, trace) = parse(&text, &meta)?;
            (written_for == invocation).then_some(trace)?
        }
    };
    for (file, recorded) in &trace.global {
        let now = Stat::of(&fs::metadata(file).ok()?);
        if now != *recorded {
            return None;
        }
        reads.note(file, now);
    }
    Some(trace)
}

/// A node trace parsed ahead of the build that loads it, with the
/// invocation it was written for ([`crate::preload`]).
struct Preloaded {
    invocation: String,
    trace: NodeTrace,
}

/// Read and parse the node trace at `path` ahead of a build, for
/// whichever invocation it was written; false when there is nothing
/// whole and steady to parse. Uses no thread besides the caller's.
pub fn preload(path: &Path) -> bool {
    let Ok(Some((bytes, stat))) = crate::preload::read_steady(path) else {
        return false;
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return false;
    };
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    if Stat::of(&meta) != stat {
        return false;
    }
    let Some((invocation, trace)) = parse(&text, &meta) else {
        return false;
    };
    let invocation = invocation.to_string();
    crate::preload::put(path, stat, Preloaded { invocation, trace });
    true
}

/// The key of every node of the trace at `path` read ahead in this
/// process ([`preload`]), whichever invocation it was written for.
pub fn preloaded_keys(path: &Path) -> Option<Vec<String>> {
    crate::preload::peek::<Preloaded, _>(path, |preloaded| {
        preloaded
            .trace
            .nodes
            .values()
            .map(|node| node.key.clone())
            .collect()
    })
}

/// The invocation a trace file was written for and what it holds; `meta`
/// is the file's as read (where a later segment may be appended).
fn parse<'a>(text: &'a str, meta: &fs::Metadata) -> Option<(&'a str, NodeTrace)> {
    let rest = text.strip_prefix(HEADER)?.strip_prefix("\ninvocation ")?;
    let invocation = &rest[..rest.find('\n')?];
    let header_len = HEADER.len() + "\ninvocation ".len() + invocation.len() + 1;
    let (segments, append_at) = crate::file_stat::sealed_segments(text, header_len, meta);
    let mut trace = NodeTrace {
        file: append_at,
        ..NodeTrace::default()
    };
    for (n, body) in segments.iter().enumerate() {
        let mut segment = Segment::default();
        let malformed = body
            .split('\n')
            .filter(|line| !line.is_empty())
            .try_for_each(|line| segment.line(line))
            .is_none();
        match (malformed, n) {
            // A malformed first segment is no trace; a later one ends the
            // trace before it.
            (true, 0) => return None,
            (true, _) => {
                trace.file = None;
                break;
            }
            (false, _) => segment.apply(&mut trace),
        }
    }
    if segments.is_empty() {
        return None;
    }
    Some((invocation, trace))
}

fn parse_stat(rest: &str) -> Option<(PathBuf, Stat)> {
    let (stat, path) = Stat::parse_prefix(rest)?;
    Some((unescape_path(path)?, stat))
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
    fn files_checked_ahead_answer_their_decision_and_a_decision_first_or_an_edit_upstream_leaves_them_to_it()
     {
        let dir = tempfile::tempdir().unwrap();
        let (kept, kept_stat) = old_file(dir.path(), "kept.txt", "a");
        let (edited, edited_stat) = old_file(dir.path(), "edited.txt", "b");
        fs::write(&edited, "b, edited").unwrap();
        let traced = |file: &Path, stat: Stat| {
            Arc::new(TracedNode {
                inputs: vec![(file.to_path_buf(), stat)],
                ..TracedNode::default()
            })
        };
        let ids = [
            "kept",
            "edited",
            "decided",
            "untraced",
            "after_edited",
            "after_that",
        ];
        // Nodes 4 and 5 hold on their own, downstream of node 1.
        let deps: [&[usize]; 6] = [&[], &[], &[], &[], &[1], &[4]];
        let trace = NodeTrace {
            nodes: [
                ("kept", traced(&kept, kept_stat)),
                ("edited", traced(&edited, edited_stat)),
                ("decided", traced(&kept, kept_stat)),
                ("after_edited", traced(&kept, kept_stat)),
                ("after_that", traced(&kept, kept_stat)),
            ]
            .into_iter()
            .map(|(id, node)| (id.to_string(), node))
            .collect(),
            ..NodeTrace::default()
        };
        let ahead = CheckedAhead::new(ids.len());
        // Node 2's decision comes before the thread reaches it.
        assert_eq!(ahead.take(2), None);
        let all: Vec<usize> = (0..ids.len()).collect();
        ahead.run(&all, |i| ids[i], |i| deps[i], &trace, &Reads::new());
        assert_eq!(ahead.take(0), Some(true));
        assert_eq!(ahead.take(1), Some(false));
        assert_eq!(ahead.states[2].load(Ordering::Relaxed), TAKEN);
        assert_eq!(ahead.take(3), None);
        // Downstream of the edited node, directly or not: left to their
        // decisions.
        assert_eq!(ahead.states[4].load(Ordering::Relaxed), PASSED_OVER);
        assert_eq!(ahead.states[5].load(Ordering::Relaxed), PASSED_OVER);
        assert_eq!(ahead.take(4), None);
        assert_eq!(ahead.take(5), None);
        // Out of range (no trace: sized for no node): checked by the decision.
        assert_eq!(CheckedAhead::default().take(0), None);
        // Stopped: nothing more is checked.
        let stopped = CheckedAhead::new(ids.len());
        stopped.stop();
        stopped.run(&[0, 1], |i| ids[i], |i| deps[i], &trace, &Reads::new());
        assert_eq!(stopped.take(0), None);
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
            None,
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
            None,
        )
        .unwrap();
        assert!(
            load(&path, "inv", &Reads::new())
                .unwrap()
                .get("n")
                .is_none()
        );
    }

    fn traced(dir: &Path, name: &str, key: &str) -> Arc<TracedNode> {
        Arc::new(TracedNode {
            key: key.into(),
            output_digest: format!("d-{key}"),
            upstream: vec!["u".into()],
            inputs: vec![old_file(dir, &format!("{name}.in"), key)],
            outputs: vec![old_file(dir, &format!("{name}.out"), key)],
            blobs: Vec::new(),
        })
    }

    /// What the trace holds, by id, as a whole rewrite would read back.
    fn contents(trace: &NodeTrace) -> Vec<(String, TracedNode)> {
        let mut all: Vec<_> = trace
            .nodes
            .iter()
            .map(|(id, n)| (id.clone(), (**n).clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    #[test]
    fn changes_are_appended_and_read_back_as_a_whole_write_would_be() {
        let dir = tempfile::tempdir().unwrap();
        let global = old_file(dir.path(), "graph", "g");
        let path = dir.path().join("nodes");
        let (a, b, c) = (
            traced(dir.path(), "a", "ka"),
            traced(dir.path(), "b", "kb"),
            traced(dir.path(), "c", "kc"),
        );
        let first = [("a", &a), ("b", &b), ("c", &c)];
        let g = std::slice::from_ref(&global);
        assert_eq!(
            save(&path, "inv", g, &first, SystemTime::now(), None).unwrap(),
            Saved::Rewritten
        );
        let whole_len = fs::metadata(&path).unwrap().len();
        let loaded = load(&path, "inv", &Reads::new()).unwrap();
        // Settled as they were: nothing to write.
        let same: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| (*id, loaded.get(id).unwrap()))
            .collect();
        assert_eq!(
            save(&path, "inv", g, &same, SystemTime::now(), Some(&loaded)).unwrap(),
            Saved::Unchanged
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), whole_len);
        // `b` reran with a new key, `c` was not selected, `d` is new.
        let b2 = traced(dir.path(), "b", "kb2");
        let d = traced(dir.path(), "d", "kd");
        let second = [("a", loaded.get("a").unwrap()), ("b", &b2), ("d", &d)];
        assert_eq!(
            save(&path, "inv", g, &second, SystemTime::now(), Some(&loaded)).unwrap(),
            Saved::Appended
        );
        let appended = fs::metadata(&path).unwrap().len() - whole_len;
        assert!(appended < whole_len, "{appended} of {whole_len}");
        let back = load(&path, "inv", &Reads::new()).unwrap();
        let whole = dir.path().join("whole");
        save(&whole, "inv", g, &second, SystemTime::now(), None).unwrap();
        let expected = load(&whole, "inv", &Reads::new()).unwrap();
        assert_eq!(contents(&back), contents(&expected));
        assert!(back.get("c").is_none());
        assert_eq!(back.global, expected.global);
        // And again on top of the appended segment.
        let third = [("b", back.get("b").unwrap())];
        assert_eq!(
            save(&path, "inv", g, &third, SystemTime::now(), Some(&back)).unwrap(),
            Saved::Appended
        );
        let back = load(&path, "inv", &Reads::new()).unwrap();
        assert_eq!(
            back.nodes.keys().collect::<Vec<_>>(),
            vec![&"b".to_string()]
        );
    }

    #[test]
    fn a_torn_or_tampered_segment_ends_the_trace_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes");
        let (a, b) = (traced(dir.path(), "a", "ka"), traced(dir.path(), "b", "kb"));
        save(&path, "inv", &[], &[("a", &a)], SystemTime::now(), None).unwrap();
        let whole = fs::read_to_string(&path).unwrap();
        let loaded = load(&path, "inv", &Reads::new()).unwrap();
        let pair = [("a", &a), ("b", &b)];
        save(&path, "inv", &[], &pair, SystemTime::now(), Some(&loaded)).unwrap();
        let full = fs::read_to_string(&path).unwrap();
        assert!(
            load(&path, "inv", &Reads::new())
                .unwrap()
                .get("b")
                .is_some()
        );
        // Cut anywhere inside the appended segment, or change a byte of it:
        // the first segment stands alone, and the next save writes whole.
        let tail = &full[whole.len()..];
        for cut in [1, tail.len() / 2, tail.len() - 1] {
            fs::write(&path, &full[..whole.len() + cut]).unwrap();
            let torn = load(&path, "inv", &Reads::new()).unwrap();
            assert!(
                torn.get("a").is_some() && torn.get("b").is_none(),
                "cut {cut}"
            );
            assert!(torn.file.is_none());
            let saved = save(&path, "inv", &[], &pair, SystemTime::now(), Some(&torn));
            assert_eq!(saved.unwrap(), Saved::Rewritten);
            assert!(
                load(&path, "inv", &Reads::new())
                    .unwrap()
                    .get("b")
                    .is_some()
            );
        }
        fs::write(&path, full.replacen("kb", "kx", 1)).unwrap();
        let tampered = load(&path, "inv", &Reads::new()).unwrap();
        assert!(tampered.get("b").is_none());
        fs::write(&path, whole.replacen("ka", "kx", 1)).unwrap();
        assert!(load(&path, "inv", &Reads::new()).is_none());
    }

    #[test]
    fn a_file_another_build_wrote_since_it_was_read_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes");
        let (a, b) = (traced(dir.path(), "a", "ka"), traced(dir.path(), "b", "kb"));
        save(&path, "inv", &[], &[("a", &a)], SystemTime::now(), None).unwrap();
        let first = load(&path, "inv", &Reads::new()).unwrap();
        let second = load(&path, "inv", &Reads::new()).unwrap();
        let pair = [("a", &a), ("b", &b)];
        let saved = save(&path, "inv", &[], &pair, SystemTime::now(), Some(&first));
        assert_eq!(saved.unwrap(), Saved::Appended);
        // `second` read the file before that append: it may not append.
        let only_b = [("b", &b)];
        let saved = save(&path, "inv", &[], &only_b, SystemTime::now(), Some(&second));
        assert_eq!(saved.unwrap(), Saved::Rewritten);
        let back = load(&path, "inv", &Reads::new()).unwrap();
        assert!(back.get("a").is_none() && back.get("b").is_some());
    }

    #[test]
    fn a_node_turned_racy_is_dropped_by_an_appended_segment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes");
        let a = traced(dir.path(), "a", "ka");
        save(&path, "inv", &[], &[("a", &a)], SystemTime::now(), None).unwrap();
        let loaded = load(&path, "inv", &Reads::new()).unwrap();
        let fresh = dir.path().join("a.fresh");
        fs::write(&fresh, "new").unwrap();
        let mut rerun = (*a).clone();
        rerun.key = "ka2".into();
        rerun.outputs = vec![(fresh.clone(), Stat::of(&fs::metadata(&fresh).unwrap()))];
        let rerun = Arc::new(rerun);
        let saved = save(
            &path,
            "inv",
            &[],
            &[("a", &rerun)],
            SystemTime::now(),
            Some(&loaded),
        );
        assert_eq!(saved.unwrap(), Saved::Appended);
        assert!(
            load(&path, "inv", &Reads::new())
                .unwrap()
                .get("a")
                .is_none()
        );
    }
}
