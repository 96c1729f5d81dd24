//! Decide, on the coordinator: whether a ready node is skipped, comes from
//! the store, or must run. This is the rebuild rule (constructive traces
//! with early cutoff): evaluate the node's `when:`, compute its key from
//! its ingredients, look the key up, and for a miss take the key's lock
//! and open a pending entry whose private directory the action writes
//! into. The dispatcher only decides *when* a node is decided, never
//! *whether* it runs.
//!
//! A hit is settled here, outputs restored, without an executor slot.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::action::Action;
use crate::graph::{Graph, Node};
use std::path::{Path, PathBuf};

use crate::file_stat::Stat;
use crate::key::{self, FileIngredient, Ingredients, UpstreamIngredient};
use crate::node_trace::TracedNode;
use crate::phases::Upstream;
use crate::run::{NodeResult, Outcome, RunContext};
use crate::store::{Entry, KeyLock, Lookup, PathAccess, PathLocks, PendingEntry};
use crate::workspace::{Keep, UNCACHED_RECORD};

/// What the coordinator does with a ready node.
pub enum Decision {
    /// Settled without running: skipped, cached, or failed before it could run.
    Done(NodeResult),
    /// Another build holds the key's lock: wait for it, then
    /// [`after_lock`] (the entry may exist by then).
    Contended(Prepared),
    /// A miss, locked and with a pending entry: execute the action.
    Execute(Box<Pending>, Box<Action>),
}

/// A node whose key is known, not yet locked.
pub struct Prepared {
    pub index: usize,
    pub key: String,
    pub ingredients: Ingredients,
    /// The stat of each input when it was hashed.
    pub input_stats: Vec<Stat>,
    /// The workspace paths to lock before its outputs are written or
    /// restored (see [`PathLocks`]).
    pub paths: Vec<(std::path::PathBuf, PathAccess)>,
    pub log: Vec<u8>,
    pub started: Instant,
    /// The entry exists but a `cache: false` output is missing or edited:
    /// the node runs again and its entry is replaced.
    pub replace: bool,
}

/// A miss being executed: what [`crate::commit`] needs afterwards.
pub struct Pending {
    pub index: usize,
    pub key: String,
    pub ingredients: Ingredients,
    pub input_stats: Vec<Stat>,
    pub entry: PendingEntry,
    pub log: Vec<u8>,
    pub started: Instant,
    /// Replace the entry under the key (see [`Prepared::replace`]).
    pub replace: bool,
    /// `ingredients` as JSON, when the decision serialised them for the
    /// key: the commit stores this text rather than serialising again.
    pub ingredients_json: Option<String>,
    /// Held from the decision to the commit, so a concurrent build of the
    /// same key waits and then finds the entry.
    pub lock: KeyLock,
    /// Held from the decision until the commit has copied the outputs
    /// into the store: no other build writes them (or the upstream
    /// outputs the command reads) in between.
    pub paths: PathLocks,
}

/// A node's key computed ahead of its decision (by the remote prefetch),
/// handed to the decision so that it is not computed twice.
pub struct Keyed {
    pub ingredients: Ingredients,
    pub input_stats: Vec<Stat>,
    pub key: String,
    /// The entry the local store held under the key when it was computed;
    /// `None` when it held none (the decision looks again: the prefetch
    /// may have fetched it since) or one it could not trust.
    pub local: Option<Entry>,
}

/// The key ingredients of `node`, given its dependencies' results, and
/// the stat each input had when it was hashed.
pub fn ingredients(
    ctx: &RunContext,
    node: &Node,
    deps: &[Arc<NodeResult>],
) -> Result<(Ingredients, Vec<Stat>), String> {
    let (inputs, stats) = input_ingredients(ctx, node)?;
    Ok((ingredients_with(ctx, node, deps, inputs)?, stats))
}

/// The input files of `node` as key ingredients, hashed through the
/// stat cache, and the stat each had when it was hashed.
pub(crate) fn input_ingredients(
    ctx: &RunContext,
    node: &Node,
) -> Result<(Vec<FileIngredient>, Vec<Stat>), String> {
    let mut inputs = Vec::with_capacity(node.inputs.len());
    let mut stats = Vec::with_capacity(node.inputs.len());
    for path in &node.inputs {
        let (blake3, stat) = ctx
            .stats
            .hash_file_stat(path)
            .map_err(|e| format!("cannot read an input: {e}"))?;
        inputs.push(FileIngredient {
            path: crate::paths::relative_to(path, &node.base_dir),
            blake3,
        });
        stats.push(stat);
    }
    Ok((inputs, stats))
}

/// The key ingredients of `node` whose inputs were hashed as `inputs`.
pub(crate) fn ingredients_with(
    ctx: &RunContext,
    node: &Node,
    deps: &[Arc<NodeResult>],
    inputs: Vec<FileIngredient>,
) -> Result<Ingredients, String> {
    let phase = ctx
        .factory
        .get(&node.mode)
        .ok_or_else(|| format!("unknown mode `{}`", node.mode))?;
    let upstream = node
        .deps
        .iter()
        .zip(deps)
        .map(|(&d, r)| UpstreamIngredient {
            node: ctx.graph.nodes[d].id.clone(),
            digest: r.output_digest.clone().unwrap_or_default(),
        })
        .collect();
    let ingredients = Ingredients {
        schema: key::KEY_SCHEMA,
        mode: node.mode.clone(),
        version: phase.version().to_string(),
        role: node.role.kind().to_string(),
        config: key::canonical(&node.config),
        inputs,
        upstream,
        platform: phase.platform_dependent().then(key::platform),
        env: key::env_ingredient(phase.passed_env(&node.config)),
    };
    Ok(ingredients)
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

/// Decide node `index`, whose dependencies finished with `deps` and whose
/// `when:` names the results in `named`.
pub fn decide(
    ctx: &RunContext,
    index: usize,
    deps: &[Arc<NodeResult>],
    named: &[(String, Arc<NodeResult>)],
) -> Decision {
    let started = Instant::now();
    let node = &ctx.graph.nodes[index];
    let keyed = ctx.prefetch.take_keyed(index);
    match skip_reason(node, named) {
        Ok(None) => {}
        Ok(Some(reason)) => return Decision::Done(NodeResult::skipped(reason)),
        Err(e) => return Decision::Done(NodeResult::failed(e, None, Vec::new(), 0.0)),
    }
    if let Some(result) = from_trace(ctx, index, deps, started) {
        return Decision::Done(result);
    }
    let keyed = match keyed {
        Some(keyed) => keyed,
        None => match ingredients(ctx, node, deps) {
            Ok((ingredients, input_stats)) => Keyed {
                key: ingredients.key(),
                ingredients,
                input_stats,
                local: None,
            },
            Err(e) => return Decision::Done(NodeResult::failed(e, None, Vec::new(), 0.0)),
        },
    };
    let mut prepared = Prepared {
        index,
        key: keyed.key,
        ingredients: keyed.ingredients,
        input_stats: keyed.input_stats,
        paths: workspace_claims(ctx, node),
        log: Vec::new(),
        started,
        replace: false,
    };
    let found = match keyed.local {
        Some(entry) => Some(local_hit(ctx, &prepared.key, entry)),
        None if !ctx.force[index] => lookup(ctx, &prepared.key, &mut prepared.log),
        None => None,
    };
    if !ctx.force[index]
        && let Some(entry) = found
        && uncached_intact(ctx, node, &entry, &mut prepared)
    {
        let restore_only: Vec<_> = prepared
            .paths
            .iter()
            .filter(|(_, access)| *access == PathAccess::Write)
            .cloned()
            .collect();
        return match ctx.store.lock_paths(&restore_only, false) {
            Ok(Some(_paths)) => Decision::Done(cached(ctx, node, prepared, entry)),
            // Another build writes an output path: wait for it (and the
            // key) off the coordinator, then decide again.
            Ok(None) => Decision::Contended(prepared),
            Err(e) => Decision::Done(prepared.fail(format!("cannot lock the store: {e}"))),
        };
    }
    let locked = ctx.store.try_lock_key(&prepared.key).and_then(|lock| {
        let Some(lock) = lock else { return Ok(None) };
        // Dropping the key's lock when a path is taken lets the waiting
        // thread take both in the one order every build uses.
        Ok(ctx
            .store
            .lock_paths(&prepared.paths, false)?
            .map(|paths| (lock, paths)))
    });
    match locked {
        Ok(Some((lock, paths))) => after_lock(ctx, deps, prepared, lock, paths),
        Ok(None) => Decision::Contended(prepared),
        Err(e) => {
            let message = format!("cannot lock the store: {e}");
            Decision::Done(prepared.fail(message))
        }
    }
}

/// The workspace paths node's outputs are written to (by its command or
/// a restore) and, for a command, the upstream outputs it may read.
fn workspace_claims(ctx: &RunContext, node: &Node) -> Vec<(std::path::PathBuf, PathAccess)> {
    let absolute = |path: &Path| {
        crate::paths::normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
    };
    let mut claims: Vec<_> = node
        .workspace_outputs
        .iter()
        .map(|(_, path)| (absolute(path), PathAccess::Write))
        .collect();
    if node.mode == "command" {
        for &d in &node.deps {
            claims.extend(
                ctx.graph.nodes[d]
                    .workspace_outputs
                    .iter()
                    .map(|(_, path)| (absolute(path), PathAccess::Read)),
            );
        }
    }
    claims
}

/// From how many upstream nodes a command's decision asks `admf serve`
/// which of their outputs changed ([`crate::reads::Reads::still_vouched`])
/// rather than stating each: a question costs about what a few dozen
/// stats do.
pub(crate) const ASK_WATCHER_FROM: usize = 128;

/// Continue a decision once the key's lock is held: another build may
/// have stored the entry while we waited.
pub fn after_lock(
    ctx: &RunContext,
    deps: &[Arc<NodeResult>],
    mut prepared: Prepared,
    lock: KeyLock,
    paths: PathLocks,
) -> Decision {
    let node = &ctx.graph.nodes[prepared.index];
    if !ctx.force[prepared.index]
        && !prepared.replace
        && let Some(entry) = lookup(ctx, &prepared.key, &mut prepared.log)
        && uncached_intact(ctx, node, &entry, &mut prepared)
    {
        return Decision::Done(cached(ctx, node, prepared, entry));
    }
    // Each upstream entry is looked up (and verified) once here: a node
    // with thousands of upstream nodes would otherwise pay it per use.
    let dep_entries = upstream_entries(ctx, deps);
    let mut checked: Vec<Option<Vec<(String, Stat)>>> = Vec::new();
    // The node reads its upstream's temp outputs from the workspace.
    if let Err(e) = restore_upstream_temps(ctx, node, &dep_entries) {
        return Decision::Done(prepared.fail(e));
    }
    // A command reads its upstream's outputs in the workspace, where
    // another build of other values may have put its own since they were
    // settled: put this build's back (under the read locks just taken).
    if node.mode == "command" {
        // With many upstream files, `admf serve` (when it vouched for this
        // build's files) is asked which it saw touched since: the rest
        // still have the stats it vouched for, now that the locks are held.
        let now = (node.deps.len() >= ASK_WATCHER_FROM)
            .then(|| ctx.reads().still_vouched())
            .flatten();
        // Whether each is in place is checked first, on several threads
        // for thousands of upstream nodes; restoring (rare) comes after.
        // The stats taken here are those the command's upstream folders
        // are checked against after it ran: they were taken under the
        // read locks it runs under.
        checked = crate::par::map_in_parallel(&dep_entries, |i, entry| {
            let dep = &ctx.graph.nodes[node.deps[i]];
            outputs_in_place(ctx, dep, entry.as_ref()?, now.as_ref())
        });
        for ((&d, entry), in_place) in node.deps.iter().zip(&dep_entries).zip(&mut checked) {
            let dep = &ctx.graph.nodes[d];
            let Some(entry) = entry else {
                continue;
            };
            // In place also when it has no workspace outputs.
            if in_place.is_some() {
                continue;
            }
            if let Err(e) = restore_outputs(ctx, dep, entry) {
                let message = format!("cannot restore the outputs of `{}`: {e}", dep.id);
                return Decision::Done(prepared.fail(message));
            }
            // Restored: their stats are taken afresh before the command.
            *in_place = None;
        }
    }
    let writes_files = ctx
        .factory
        .get(&node.mode)
        .is_none_or(|phase| phase.writes_files(&node.role));
    let begun = if writes_files {
        ctx.store.begin(&prepared.key)
    } else {
        ctx.store.begin_in_memory(&prepared.key)
    };
    let entry = match begun {
        Ok(p) => p,
        Err(e) => return Decision::Done(prepared.fail(format!("cannot write to the store: {e}"))),
    };
    let upstream = upstream_of(ctx, node, deps, dep_entries, checked);
    let gather = gather_config(ctx, node);
    let (pending, action) =
        prepared.into_pending(ctx, entry, (upstream, gather), None, lock, paths);
    Decision::Execute(Box::new(pending), Box::new(action))
}

/// The directory a command reads upstream command `dep`'s outputs in,
/// in the workspace: `dep`'s own, when each output of its `entry` is one
/// of its stored workspace files at `dir/name` and nothing else is (no
/// directory output, no temp or uncached one). A folder laid out of the
/// store would hold the same bytes in new files.
///
/// `dirs` remembers the last base directory made absolute: the upstream
/// nodes of one node mostly share theirs.
fn workspace_of(
    dep: &Node,
    entry: &Entry,
    dirs: &mut Option<(PathBuf, Arc<Path>)>,
) -> Option<Arc<Path>> {
    if dep.mode != "command" {
        return None;
    }
    let dir = match dirs {
        Some((base, dir)) if *base == dep.base_dir => dir.clone(),
        _ => {
            let base = if dep.base_dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dep.base_dir.as_path()
            };
            let dir: Arc<Path> = crate::paths::normalize(&std::path::absolute(base).ok()?).into();
            *dirs = Some((dep.base_dir.clone(), dir.clone()));
            dir
        }
    };
    let mut outputs = 0;
    for (rel, path, keep) in dep.outputs_kept() {
        if keep != Keep::Stored
            || crate::workspace::is_dir_output(rel)
            || !entry.manifest.outputs.contains_key(rel.as_str())
        {
            return None;
        }
        // An output declared as `rel` under the base directory is there;
        // another spelling is compared in full.
        let under_base = crate::paths::is_joined(path, &dep.base_dir, rel);
        if !under_base
            && crate::paths::normalize(&std::path::absolute(path).ok()?)
                != crate::paths::normalize(&dir.join(rel))
        {
            return None;
        }
        outputs += 1;
    }
    (outputs > 0 && outputs == entry.manifest.outputs.len()).then_some(dir)
}

/// The stored artifacts of `node`'s upstream nodes `deps`, for its
/// action, each with what its phase handed over if it ran in this build
/// (taken from its result: it lives as long as this action). A command
/// reads those of upstream commands where they are ([`workspace_of`]):
/// [`after_lock`] put every one in place, under read locks held until the
/// command is committed (commands are never decided in batches), with
/// the stats in `checked` (by dep, by output name, where it took them).
pub(crate) fn upstream_of(
    ctx: &RunContext,
    node: &Node,
    deps: &[Arc<NodeResult>],
    dep_entries: Vec<Option<Entry>>,
    checked: Vec<Option<Vec<(String, Stat)>>>,
) -> Vec<Upstream> {
    let mut dirs = None;
    let mut checked = checked.into_iter();
    let watched = (node.deps.len() >= ASK_WATCHER_FROM).then(|| ctx.reads().clone());
    let mut upstream = Vec::with_capacity(node.deps.len());
    for ((&d, result), entry) in node.deps.iter().zip(deps).zip(dep_entries) {
        let stats = checked.next().flatten();
        let dep = &ctx.graph.nodes[d];
        let Some(entry) = entry else {
            continue;
        };
        let in_place = (node.mode == "command")
            .then(|| workspace_of(dep, &entry, &mut dirs))
            .flatten();
        let up = Upstream::stored(dep.id.clone(), dep.mode.clone(), dep.role.clone(), entry)
            .with_handoff(result.handoff.take());
        upstream.push(match in_place {
            Some(dir) => up.in_workspace(dir, stats.unwrap_or_default(), watched.clone()),
            None => up,
        });
    }
    upstream
}

/// The config of the node that gathers trial `node`, for its action
/// ([`crate::phases::PhaseContext::gather_config`]); `None` for other
/// roles.
pub(crate) fn gather_config(ctx: &RunContext, node: &Node) -> Option<Arc<serde_json::Value>> {
    if !matches!(node.role, crate::phases::Role::Trial { .. }) {
        return None;
    }
    let gather = ctx.graph.index_of(node.group.as_deref()?)?;
    Some(ctx.graph.nodes[gather].config.clone())
}

/// [`NodeResult::entry_in`] of each of `deps`. Those not at hand are
/// nodes the node trace settled: their rows are read together (one
/// statement for thousands of upstream nodes) and taken with the trust
/// the trace gave them ([`crate::store::Store::settled_entries`]); a row
/// that does not match what the trace recorded is looked up and verified
/// in full.
pub(crate) fn upstream_entries(ctx: &RunContext, deps: &[Arc<NodeResult>]) -> Vec<Option<Entry>> {
    let not_at_hand: Vec<&NodeResult> = deps
        .iter()
        .filter(|r| r.entry.is_none())
        .map(|r| &**r)
        .collect();
    // Settled by the trace: a cached outcome with no entry, its key and
    // digest known.
    let settled: Vec<Option<(&str, &str)>> = not_at_hand
        .iter()
        .map(|r| {
            let traced = matches!(r.outcome, Outcome::Cached) && r.evidence.is_some();
            Some((
                r.key.as_deref()?,
                r.output_digest.as_deref().filter(|_| traced)?,
            ))
        })
        .collect();
    let asked: Vec<(&str, &str)> = settled.iter().flatten().copied().collect();
    let mut trusted = ctx.store.settled_entries(&asked, &ctx.stats).into_iter();
    let mut found: Vec<Option<Entry>> = settled
        .iter()
        .map(|s| s.and_then(|_| trusted.next().flatten()))
        .collect();
    let unsure: Vec<&str> = not_at_hand
        .iter()
        .zip(&found)
        .filter(|(_, entry)| entry.is_none())
        .filter_map(|(r, _)| r.key.as_deref())
        .collect();
    let mut verified = ctx.store.lookup_many(&unsure, &ctx.stats).into_iter();
    for (r, slot) in not_at_hand.iter().zip(found.iter_mut()) {
        if slot.is_none() && r.key.is_some() {
            *slot = verified.next().and_then(Lookup::hit);
        }
    }
    let mut found = found.into_iter();
    deps.iter()
        .map(|r| match &r.entry {
            Some(entry) => Some(entry.clone()),
            None => found.next().flatten(),
        })
        .collect()
}

impl Prepared {
    /// A locked miss with its pending `entry`: what the commit needs, and
    /// the action to execute, with its `upstream` artifacts and, for a
    /// trial, its gather's config ([`gather_config`]).
    pub(crate) fn into_pending(
        self,
        ctx: &RunContext,
        entry: PendingEntry,
        (upstream, gather_config): (Vec<Upstream>, Option<Arc<serde_json::Value>>),
        ingredients_json: Option<String>,
        lock: KeyLock,
        paths: PathLocks,
    ) -> (Pending, Action) {
        let node = &ctx.graph.nodes[self.index];
        let action = Action {
            node: node.id.clone(),
            key: self.key.clone(),
            mode: node.mode.clone(),
            version: self.ingredients.version.clone(),
            role: node.role.clone(),
            config: node.config.clone(),
            base_dir: node.base_dir.clone(),
            inputs: self
                .ingredients
                .inputs
                .iter()
                .map(|f| (f.path.clone(), f.blake3.clone()))
                .collect(),
            upstream,
            out_dir: entry.out_dir().to_path_buf(),
            retries: node.retries,
            gather_config,
        };
        let pending = Pending {
            index: self.index,
            key: self.key,
            ingredients: self.ingredients,
            input_stats: self.input_stats,
            entry,
            log: self.log,
            started: self.started,
            replace: self.replace,
            ingredients_json,
            lock,
            paths,
        };
        (pending, action)
    }

    pub(crate) fn fail(self, message: String) -> NodeResult {
        NodeResult::failed(
            message,
            Some(self.key),
            self.log,
            self.started.elapsed().as_secs_f64(),
        )
    }
}

fn lookup(ctx: &RunContext, key: &str, log: &mut Vec<u8>) -> Option<Entry> {
    match ctx.store.lookup(key, &ctx.stats) {
        Lookup::Hit(entry) => Some(local_hit(ctx, key, entry)),
        // Copied into the store when the remote tier has it.
        Lookup::Missing => match &ctx.remote {
            Some(remote) if remote.fetch(key, &ctx.store) => {
                ctx.store.lookup(key, &ctx.stats).hit()
            }
            _ => None,
        },
        Lookup::Corrupt(reason) => {
            log.extend_from_slice(
                format!("admf: ignoring a corrupt entry ({reason}); recomputing\n").as_bytes(),
            );
            None
        }
    }
}

/// An entry found in the local store, offered to the remote when it
/// lacks it.
pub(crate) fn local_hit(ctx: &RunContext, key: &str, entry: Entry) -> Entry {
    if let Some(remote) = &ctx.remote {
        remote.publish(key);
    }
    entry
}

/// A hit: its workspace outputs restored and its ref written.
pub(crate) fn cached(
    ctx: &RunContext,
    node: &Node,
    prepared: Prepared,
    entry: Entry,
) -> NodeResult {
    if let Err(e) = restore_outputs(ctx, node, &entry) {
        return prepared.fail(format!("cannot restore outputs: {e}"));
    }
    let mut log = prepared.log;
    ctx.record_ref(node, &prepared.key, &mut log);
    let evidence = evidence(
        node,
        &prepared.key,
        &entry,
        &prepared.input_stats,
        &prepared.ingredients,
    );
    NodeResult {
        outcome: Outcome::Cached,
        key: Some(prepared.key),
        output_digest: Some(entry.output_digest().to_string()),
        entry: Some(entry),
        evidence: Some(Arc::new(evidence)),
        log,
        seconds: prepared.started.elapsed().as_secs_f64(),
        handoff: Default::default(),
        ledger_metrics: None,
    }
}

/// What a node's decision rests on, for the next build's node trace:
/// its inputs as hashed, its upstream digests, and the stats its
/// workspace outputs and its entry's blob files have now.
pub(crate) fn evidence(
    node: &Node,
    key: &str,
    entry: &Entry,
    input_stats: &[Stat],
    ingredients: &Ingredients,
) -> TracedNode {
    let lstat = |path: &Path| Stat::of_plain_file(path).map(|stat| (path.to_path_buf(), stat));
    TracedNode {
        key: key.to_string(),
        output_digest: entry.output_digest().to_string(),
        upstream: ingredients
            .upstream
            .iter()
            .map(|u| u.digest.clone())
            .collect(),
        inputs: node
            .inputs
            .iter()
            .cloned()
            .zip(input_stats.iter().copied())
            .collect(),
        // A temp output is gone once its readers ran: never evidence.
        outputs: node
            .outputs_kept()
            .filter(|(_, _, keep)| *keep != Keep::Temp)
            .filter_map(|(_, path, _)| lstat(path))
            .collect(),
        blobs: entry
            .manifest
            .outputs
            .values()
            .filter(|o| o.size > crate::store::INLINE_MAX)
            .filter_map(|o| lstat(&entry.store_blob_path(&o.blake3)))
            .collect(),
    }
}

/// Node `index` settled as a hit from the node trace, when the trace
/// vouches for it: see [`crate::node_trace`] for the rule.
pub(crate) fn from_trace(
    ctx: &RunContext,
    index: usize,
    deps: &[Arc<NodeResult>],
    started: Instant,
) -> Option<NodeResult> {
    let trace = ctx.trace.as_ref()?;
    let node = &ctx.graph.nodes[index];
    if ctx.force[index] || node.when.is_some() || ctx.graph.read_by_condition(index) {
        return None;
    }
    // The trace holds no environment: a node keyed on passed variables
    // takes the full rule, which reads them.
    if ctx
        .factory
        .get(&node.mode)
        .is_some_and(|phase| !phase.passed_env(&node.config).is_empty())
    {
        return None;
    }
    let traced = trace.get(&node.id)?;
    let upstream: Vec<&str> = deps
        .iter()
        .map(|r| r.output_digest.as_deref())
        .collect::<Option<_>>()?;
    let kept: Vec<&std::path::PathBuf> = node
        .outputs_kept()
        .filter(|(_, _, keep)| *keep != Keep::Temp)
        .map(|(_, path, _)| path)
        .collect();
    // Bytes first: `Path`'s own comparison goes component by component.
    let outputs_declared = traced.outputs.len() == kept.len()
        && traced
            .outputs
            .iter()
            .zip(kept)
            .all(|((a, _), b)| a.as_os_str() == b.as_os_str() || a == b);
    // Its files as checked ahead, when they were ([`crate::node_trace::CheckedAhead`]).
    let files_hold = || {
        ctx.checked_ahead
            .take(index)
            .unwrap_or_else(|| traced.files_hold(ctx.reads()))
    };
    if !outputs_declared
        || !traced.same_upstream_and_inputs(&node.inputs, &upstream)
        || !files_hold()
    {
        return None;
    }
    Some(NodeResult {
        outcome: Outcome::Cached,
        key: Some(traced.key.clone()),
        entry: None,
        output_digest: Some(traced.output_digest.clone()),
        evidence: Some(traced.clone()),
        log: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
        handoff: Default::default(),
        ledger_metrics: None,
    })
}

/// Put a directory output back whole unless it holds exactly the stored
/// files with the stored content: a file added, edited or removed in it
/// means the tree is replaced by the stored one.
fn restore_dir_output(
    ctx: &RunContext,
    node: &Node,
    entry: &Entry,
    rel: &str,
    path: &Path,
) -> std::io::Result<()> {
    let stored: Vec<(&str, &str)> = entry
        .manifest
        .outputs
        .iter()
        .filter_map(|(name, record)| Some((name.strip_prefix(rel)?, record.blake3.as_str())))
        .collect();
    if tree_matches(ctx, path, &stored) {
        return Ok(());
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(at_path(path))?,
        Ok(_) => std::fs::remove_file(path).map_err(at_path(path))?,
        Err(_) => {}
    }
    std::fs::create_dir_all(path).map_err(at_path(path))?;
    for (name, _) in &stored {
        let full = format!("{rel}{name}");
        let to = path.join(name);
        crate::workspace::restore_bytes(&entry.read(&full)?, &to, &node.base_dir)
            .map_err(at_path(&to))?;
    }
    ctx.reads().note_written();
    Ok(())
}

/// Put a hit's workspace outputs back where the workflow expects them,
/// unless they are already there with the stored content.
fn restore_outputs(ctx: &RunContext, node: &Node, entry: &Entry) -> std::io::Result<()> {
    restore_kept(ctx, node, entry, Keep::Stored)
}

/// When every stored workspace output of `node` is in place with the
/// content of `entry`, so that [`restore_outputs`] would write nothing:
/// the stat each had, by output name; `None` when one is not, or is a
/// directory output (its check is the restore's own).
fn outputs_in_place(
    ctx: &RunContext,
    node: &Node,
    entry: &Entry,
    now: Option<&crate::reads::StillVouched>,
) -> Option<Vec<(String, Stat)>> {
    node.outputs_kept()
        .filter(|(_, _, keep)| *keep == Keep::Stored)
        .map(|(rel, path, _)| {
            if crate::workspace::is_dir_output(rel) {
                return None;
            }
            let record = entry.manifest.outputs.get(rel)?;
            let stat = ctx.stats.plain_file_holding(path, &record.blake3, now)?;
            Some((rel.clone(), stat))
        })
        .collect()
}

/// Put back the workspace outputs of `node` kept as `which`.
fn restore_kept(ctx: &RunContext, node: &Node, entry: &Entry, which: Keep) -> std::io::Result<()> {
    for (rel, path, keep) in node.outputs_kept() {
        if keep != which {
            continue;
        }
        if crate::workspace::is_dir_output(rel) {
            restore_dir_output(ctx, node, entry, rel, path)?;
            continue;
        }
        let Some(record) = entry.manifest.outputs.get(rel) else {
            return Err(std::io::Error::other(format!(
                "entry has no output `{rel}`"
            )));
        };
        if ctx
            .stats
            .plain_file_holding(path, &record.blake3, None)
            .is_some()
        {
            continue;
        }
        crate::workspace::restore_bytes(&entry.read(rel)?, path, &node.base_dir)
            .map_err(at_path(path))?;
        ctx.reads().note_written();
    }
    Ok(())
}

/// Adds `path` to an error's message, so that a full disk or a missing
/// directory says where.
fn at_path(path: &Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The temp outputs of `node`'s upstream nodes, put back from their
/// entries for `node` to read: it is about to run.
pub(crate) fn restore_upstream_temps(
    ctx: &RunContext,
    node: &Node,
    dep_entries: &[Option<Entry>],
) -> Result<(), String> {
    for (&d, entry) in node.deps.iter().zip(dep_entries) {
        let upstream = &ctx.graph.nodes[d];
        if !upstream.has_temp() {
            continue;
        }
        let entry = entry
            .as_ref()
            .ok_or_else(|| format!("the entry of `{}` is gone from the store", upstream.id))?;
        restore_kept(ctx, upstream, entry, Keep::Temp)
            .map_err(|e| format!("cannot restore the temp outputs of `{}`: {e}", upstream.id))?;
    }
    Ok(())
}

/// Whether every `cache: false` output of a hit is in the workspace with
/// the digest its entry recorded. When not, says so in the log and marks
/// the node to run again, replacing the entry.
fn uncached_intact(ctx: &RunContext, node: &Node, entry: &Entry, prepared: &mut Prepared) -> bool {
    match uncached_difference(ctx, node, entry) {
        None => true,
        Some(what) => {
            prepared.log.extend_from_slice(
                format!("admf: {what} (`cache: false`); running the node again\n").as_bytes(),
            );
            prepared.replace = true;
            false
        }
    }
}

/// What differs between the `cache: false` outputs of `node` in the
/// workspace and the digests its entry recorded; `None` when nothing.
pub(crate) fn uncached_difference(ctx: &RunContext, node: &Node, entry: &Entry) -> Option<String> {
    if !node.keeps.contains(&Keep::Uncached) {
        return None;
    }
    let recorded: serde_json::Map<String, Value> = entry
        .read(UNCACHED_RECORD)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let digest_of = |name: &str| recorded.get(name)?.get("blake3")?.as_str();
    for (rel, path, keep) in node.outputs_kept() {
        if keep != Keep::Uncached {
            continue;
        }
        if !crate::workspace::is_dir_output(rel) {
            let now = if crate::workspace::is_plain_file(path) {
                ctx.stats.hash_file(path).ok()
            } else {
                None
            };
            match (now, digest_of(rel)) {
                (None, _) => return Some(format!("`{rel}` is missing")),
                (Some(now), Some(was)) if now == was => continue,
                _ => return Some(format!("`{rel}` was edited")),
            }
        }
        let stored: Vec<(&str, &str)> = recorded
            .iter()
            .filter_map(|(name, r)| {
                Some((name.strip_prefix(rel.as_str())?, r.get("blake3")?.as_str()?))
            })
            .collect();
        if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            return Some(format!("`{rel}` is missing"));
        }
        if !tree_matches(ctx, path, &stored) {
            return Some(format!("`{rel}` was edited"));
        }
    }
    None
}

/// Whether the directory at `path` holds exactly the files `stored`
/// names (path inside, digest; sorted), with that content.
fn tree_matches(ctx: &RunContext, path: &Path, stored: &[(&str, &str)]) -> bool {
    dir_files(path, ctx.reads()).is_some_and(|present| {
        present.len() == stored.len()
            && present
                .iter()
                .zip(stored)
                .all(|((sub, file), (name, digest))| {
                    sub == name && ctx.stats.hash_file(file).ok().as_deref() == Some(*digest)
                })
    })
}

/// The files of the directory at `path` as (`/`-separated path inside,
/// path), sorted; `None` when it is not a directory or holds anything
/// but files and directories. Each directory is noted, so a file added
/// later voids the up-to-date record.
fn dir_files(
    path: &Path,
    reads: &crate::reads::Reads,
) -> Option<Vec<(String, std::path::PathBuf)>> {
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return None;
    }
    let mut present = Vec::new();
    for item in walkdir::WalkDir::new(path).sort_by_file_name() {
        let item = item.ok()?;
        if item.file_type().is_dir() {
            reads.note_dir(item.path());
        } else if item.file_type().is_file() {
            let sub = item.path().strip_prefix(path).unwrap_or(item.path());
            let sub = sub
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            present.push((sub, item.into_path()));
        } else {
            return None;
        }
    }
    present.sort();
    Some(present)
}
