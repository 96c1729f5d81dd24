//! What a build shares and what it learns per node: the build's
//! read-only context and each node's result. The rebuild rule itself is
//! [`crate::decide`] (skip, hit or miss), [`crate::action`] (execute a
//! miss) and [`crate::commit`] (store its outputs).

use std::sync::Arc;

use serde_json::Value;

use crate::graph::{Graph, Node};
use crate::node_trace::{NodeTrace, TracedNode};
use crate::phases::{Factory, PhaseError};
use crate::stat_cache::StatCache;
use crate::store::{Entry, Store};

/// Shared, read-only state of one build.
pub struct RunContext {
    pub graph: Arc<Graph>,
    pub store: Store,
    pub stats: Arc<StatCache>,
    pub factory: Arc<dyn Factory>,
    pub workflow_id: String,
    /// Nodes that must execute even when their entry exists.
    pub force: Vec<bool>,
    /// What the last build's decisions rested on, when it still applies
    /// ([`crate::node_trace`]); nodes it vouches for are settled by stats.
    pub trace: Option<Arc<NodeTrace>>,
    /// The remote cache tier (`--remote`): looked up after the store,
    /// filled after each commit.
    pub remote: Option<Arc<crate::remote::RemoteTier>>,
    /// Keys of ready nodes computed ahead while their remote entries were
    /// fetched as a group.
    pub prefetch: crate::prefetch::Prefetch,
    /// The files of the nodes the trace lists, checked ahead of their
    /// decisions ([`crate::node_trace::CheckedAhead`]); sized for the
    /// graph only when there is a trace.
    pub checked_ahead: crate::node_trace::CheckedAhead,
}

impl RunContext {
    /// What this build read: the stat cache's list, which every reader
    /// of the build notes in.
    pub fn reads(&self) -> &crate::reads::Reads {
        self.stats.reads()
    }

    /// Record `key` as the node's last successful build; a ref that cannot be
    /// written costs only `status` and `explain` their history, so it is
    /// noted in the log rather than failing the node.
    pub fn record_ref(&self, node: &Node, key: &str, log: &mut Vec<u8>) {
        if self.store.read_ref(&self.workflow_id, &node.id).as_deref() == Some(key) {
            return;
        }
        if let Err(e) = self.store.write_ref(&self.workflow_id, &node.id, key) {
            log.extend_from_slice(format!("admf: cannot record the build: {e}\n").as_bytes());
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ran,
    Cached,
    Skipped(String),
    Failed(PhaseError),
}

impl Outcome {
    pub fn status(&self) -> crate::status::Status {
        use crate::status::Status;
        match self {
            Outcome::Ran => Status::Ran,
            Outcome::Cached => Status::Cached,
            Outcome::Skipped(_) => Status::Skipped,
            Outcome::Failed(_) => Status::Failed,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NodeResult {
    pub outcome: Outcome,
    pub key: Option<String>,
    /// The stored entry, when this build looked it up or wrote it; `None`
    /// for a node settled from the node trace ([`NodeResult::entry_in`]).
    pub entry: Option<Entry>,
    /// The digest downstream keys take (early cutoff).
    pub output_digest: Option<String>,
    /// What the decision rested on, for the next build's node trace.
    pub evidence: Option<Arc<TracedNode>>,
    /// The phase's captured output, plus notes from the engine.
    pub log: Vec<u8>,
    pub seconds: f64,
    /// What the phase handed to nodes downstream, when it ran in this
    /// process ([`crate::phases::Handoff`]).
    pub handoff: crate::phases::HandoffSlot,
    /// Its metrics as the run ledger stores them, made where it ran
    /// ([`crate::store::ledger_metrics`]), when they were.
    pub ledger_metrics: Option<Arc<str>>,
}

impl NodeResult {
    /// The node trace's entry for a node it settled (cached, with no
    /// store entry looked up): what the node rested on, read as recorded.
    pub fn settled_by_trace(&self) -> Option<&TracedNode> {
        match (&self.outcome, &self.entry) {
            (Outcome::Cached, None) => self.evidence.as_deref(),
            _ => None,
        }
    }

    pub fn skipped(reason: String) -> Self {
        NodeResult {
            outcome: Outcome::Skipped(reason),
            key: None,
            entry: None,
            output_digest: None,
            evidence: None,
            log: Vec::new(),
            seconds: 0.0,
            handoff: Default::default(),
            ledger_metrics: None,
        }
    }

    pub(crate) fn failed(message: String, key: Option<String>, log: Vec<u8>, seconds: f64) -> Self {
        NodeResult {
            outcome: Outcome::Failed(PhaseError::new(message)),
            key,
            entry: None,
            output_digest: None,
            evidence: None,
            log,
            seconds,
            handoff: Default::default(),
            ledger_metrics: None,
        }
    }

    /// The node's stored entry: the one this build holds, or for a node
    /// settled from the node trace, looked up (and verified) now.
    pub fn entry_in(&self, ctx: &RunContext) -> Option<Entry> {
        if let Some(entry) = &self.entry {
            return Some(entry.clone());
        }
        ctx.store.lookup(self.key.as_deref()?, &ctx.stats).hit()
    }

    /// `metrics.json` of the node's entry, for conditions.
    pub fn metrics(&self) -> Option<Value> {
        let entry = self.entry.as_ref()?;
        let bytes = entry.read("metrics.json").ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
