//! Running one node: evaluate its condition, compute its key, take the
//! stored entry or execute the phase into a new one. This is the whole
//! rebuild rule (constructive traces with early cutoff); the dispatcher
//! only decides *when* a node is run, never *whether*.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::graph::{Graph, Node};
use crate::key::{self, Ingredients, UpstreamIngredient};
use crate::phases::{Factory, PhaseContext, PhaseError, Upstream};
use crate::stat_cache::StatCache;
use crate::store::{Entry, Lookup, LookupCache, ManifestMeta, Store};

/// Shared, read-only state of one build.
pub struct RunContext {
    pub graph: Arc<Graph>,
    pub store: Store,
    pub stats: Arc<StatCache>,
    pub lookups: Arc<LookupCache>,
    pub factory: Arc<dyn Factory>,
    pub workflow_id: String,
    /// Nodes that must execute even when their entry exists.
    pub force: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ran,
    Cached,
    Skipped(String),
    Failed(PhaseError),
}

#[derive(Debug, Clone)]
pub struct NodeResult {
    pub outcome: Outcome,
    pub key: Option<String>,
    pub entry: Option<Entry>,
    /// The phase's captured output, plus notes from the engine.
    pub log: Vec<u8>,
    pub seconds: f64,
}

impl NodeResult {
    pub fn skipped(reason: String) -> Self {
        NodeResult {
            outcome: Outcome::Skipped(reason),
            key: None,
            entry: None,
            log: Vec::new(),
            seconds: 0.0,
        }
    }

    fn failed(message: String, key: Option<String>, log: Vec<u8>, seconds: f64) -> Self {
        NodeResult {
            outcome: Outcome::Failed(PhaseError::new(message)),
            key,
            entry: None,
            log,
            seconds,
        }
    }

    /// `metrics.json` of the node's entry, for conditions.
    pub fn metrics(&self) -> Option<Value> {
        let entry = self.entry.as_ref()?;
        let bytes = std::fs::read(entry.out_dir().join("metrics.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The key ingredients of `node`, given its dependencies' entries.
pub fn ingredients(
    ctx: &RunContext,
    node: &Node,
    deps: &[Arc<NodeResult>],
) -> Result<Ingredients, String> {
    let phase = ctx
        .factory
        .get(&node.mode)
        .ok_or_else(|| format!("unknown mode `{}`", node.mode))?;
    let inputs = key::file_ingredients(&node.inputs, &node.base_dir, &ctx.stats)
        .map_err(|e| format!("cannot read an input: {e}"))?;
    let upstream = node
        .deps
        .iter()
        .zip(deps)
        .map(|(&d, r)| UpstreamIngredient {
            node: ctx.graph.nodes[d].id.clone(),
            digest: r
                .entry
                .as_ref()
                .map(|e| e.output_digest().to_string())
                .unwrap_or_default(),
        })
        .collect();
    Ok(Ingredients {
        schema: key::KEY_SCHEMA,
        mode: node.mode.clone(),
        version: phase.version().to_string(),
        role: key::role_name(&node.role).to_string(),
        config: key::canonical(&node.config),
        inputs,
        upstream,
    })
}

/// The results of the ancestors a node's `when:` names, by node id, as
/// far as `result_of` knows them.
pub fn condition_inputs(
    graph: &Graph,
    node: &Node,
    result_of: impl Fn(usize) -> Option<Arc<NodeResult>>,
) -> Vec<(String, Arc<NodeResult>)> {
    let Some(cond) = &node.when else {
        return Vec::new();
    };
    cond.phases()
        .into_iter()
        .filter_map(|p| Some((p.to_string(), result_of(graph.index_of(p)?)?)))
        .collect()
}

/// Evaluate a node's `when:` against the metrics of the ancestors it
/// names; `Some(reason)` when the node is to be skipped.
pub fn skip_reason(
    node: &Node,
    named: &[(String, Arc<NodeResult>)],
) -> Result<Option<String>, String> {
    let Some(cond) = &node.when else {
        return Ok(None);
    };
    let metrics = |phase: &str| -> Option<Value> {
        named
            .iter()
            .find(|(id, _)| id == phase)
            .and_then(|(_, r)| r.metrics())
    };
    match cond.eval(&metrics) {
        Ok(true) => Ok(None),
        Ok(false) => Ok(Some(format!("condition `{cond}` is false"))),
        Err(e) => Err(format!("condition `{cond}`: {e}")),
    }
}

pub fn run_node(
    ctx: &RunContext,
    index: usize,
    deps: &[Arc<NodeResult>],
    named: &[(String, Arc<NodeResult>)],
) -> NodeResult {
    let started = Instant::now();
    let node = &ctx.graph.nodes[index];
    match skip_reason(node, named) {
        Ok(None) => {}
        Ok(Some(reason)) => return NodeResult::skipped(reason),
        Err(e) => return NodeResult::failed(e, None, Vec::new(), 0.0),
    }
    let ingredients = match ingredients(ctx, node, deps) {
        Ok(i) => i,
        Err(e) => return NodeResult::failed(e, None, Vec::new(), 0.0),
    };
    let key = ingredients.key();
    let mut log = Vec::new();
    let elapsed = |s: &Instant| s.elapsed().as_secs_f64();
    if !ctx.force[index]
        && let Some(entry) = lookup(ctx, &key, &mut log)
    {
        return cached(ctx, node, key, entry, log, elapsed(&started));
    }
    let _lock = match ctx.store.lock_key(&key) {
        Ok(l) => l,
        Err(e) => {
            return NodeResult::failed(format!("cannot lock the store: {e}"), Some(key), log, 0.0);
        }
    };
    // Another build may have computed it while we waited for the lock.
    if !ctx.force[index]
        && let Some(entry) = lookup(ctx, &key, &mut log)
    {
        return cached(ctx, node, key, entry, log, elapsed(&started));
    }
    let upstream: Vec<Upstream> = node
        .deps
        .iter()
        .zip(deps)
        .filter_map(|(&d, r)| {
            let dep = &ctx.graph.nodes[d];
            Some(Upstream {
                node: dep.id.clone(),
                mode: dep.mode.clone(),
                role: dep.role.clone(),
                dir: r.entry.as_ref()?.out_dir(),
            })
        })
        .collect();
    let phase = match ctx.factory.get(&node.mode) {
        Some(p) => p,
        None => {
            return NodeResult::failed(
                format!("unknown mode `{}`", node.mode),
                Some(key),
                log,
                0.0,
            );
        }
    };
    let mut last_error = PhaseError::new("");
    for attempt in 0..=node.retries {
        if attempt > 0 {
            log.extend_from_slice(
                format!("admf: attempt {} of {}\n", attempt + 1, node.retries + 1).as_bytes(),
            );
        }
        let pending = match ctx.store.begin(&key) {
            Ok(p) => p,
            Err(e) => {
                return NodeResult::failed(
                    format!("cannot write to the store: {e}"),
                    Some(key),
                    log,
                    0.0,
                );
            }
        };
        let t0 = Instant::now();
        let mut phase_ctx = PhaseContext {
            node: &node.id,
            config: &node.config,
            role: &node.role,
            base_dir: &node.base_dir,
            upstream: &upstream,
            out_dir: pending.out_dir(),
            log: &mut log,
        };
        match phase.execute(&mut phase_ctx) {
            Ok(()) => {
                let meta = ManifestMeta {
                    node: node.id.clone(),
                    mode: node.mode.clone(),
                    ingredients: ingredients.to_value(),
                    duration_ms: t0.elapsed().as_millis() as u64,
                };
                let committed = if ctx.force[index] {
                    pending.commit_replacing(meta, &log)
                } else {
                    pending.commit(meta, &log)
                };
                return match committed {
                    Ok(entry) => {
                        if let Err(e) = write_ref(ctx, node, &key) {
                            log.extend_from_slice(
                                format!("admf: cannot record the build: {e}\n").as_bytes(),
                            );
                        }
                        NodeResult {
                            outcome: Outcome::Ran,
                            key: Some(key),
                            entry: Some(entry),
                            log,
                            seconds: elapsed(&started),
                        }
                    }
                    Err(e) => NodeResult::failed(
                        format!("cannot store the outputs: {e}"),
                        Some(key),
                        log,
                        elapsed(&started),
                    ),
                };
            }
            Err(e) => last_error = e,
        }
    }
    let mut failed = NodeResult::failed(String::new(), Some(key), log, elapsed(&started));
    failed.outcome = Outcome::Failed(last_error);
    failed
}

fn lookup(ctx: &RunContext, key: &str, log: &mut Vec<u8>) -> Option<Entry> {
    match ctx.store.lookup_cached(key, &ctx.stats, &ctx.lookups) {
        Lookup::Hit(entry) => Some(entry),
        Lookup::Missing => None,
        Lookup::Corrupt(reason) => {
            log.extend_from_slice(
                format!("admf: ignoring a corrupt entry ({reason}); recomputing\n").as_bytes(),
            );
            None
        }
    }
}

fn cached(
    ctx: &RunContext,
    node: &Node,
    key: String,
    entry: Entry,
    mut log: Vec<u8>,
    seconds: f64,
) -> NodeResult {
    if let Err(e) = restore_outputs(ctx, node, &entry) {
        return NodeResult::failed(
            format!("cannot restore outputs: {e}"),
            Some(key),
            log,
            seconds,
        );
    }
    if let Err(e) = write_ref(ctx, node, &key) {
        log.extend_from_slice(format!("admf: cannot record the build: {e}\n").as_bytes());
    }
    NodeResult {
        outcome: Outcome::Cached,
        key: Some(key),
        entry: Some(entry),
        log,
        seconds,
    }
}

fn write_ref(ctx: &RunContext, node: &Node, key: &str) -> std::io::Result<()> {
    if ctx.store.read_ref(&ctx.workflow_id, &node.id).as_deref() == Some(key) {
        return Ok(());
    }
    ctx.store.write_ref(&ctx.workflow_id, &node.id, key)
}

/// Put a hit's workspace outputs back where the workflow expects them,
/// unless they are already there with the stored content.
fn restore_outputs(ctx: &RunContext, node: &Node, entry: &Entry) -> std::io::Result<()> {
    for (rel, path) in &node.workspace_outputs {
        let Some(record) = entry.manifest.outputs.get(rel) else {
            return Err(std::io::Error::other(format!(
                "entry has no output `{rel}`"
            )));
        };
        if crate::workspace::is_plain_file(path)
            && ctx.stats.hash_file(path).ok().as_deref() == Some(record.blake3.as_str())
        {
            continue;
        }
        crate::workspace::restore_file(&entry.out_dir().join(rel), path, &node.base_dir)?;
        crate::observed::note_written();
    }
    Ok(())
}
