//! The trials of a grid decided, executed and committed in batches.
//!
//! A sweep of thousands of trials makes thousands of small nodes, each
//! cheaper to run (tens of microseconds) than the coordinator's work
//! around it when that work is done one trial at a time. So the ready
//! trials of one grid (siblings: same grid, same mode, same upstream) are
//! taken off the ready queue together and:
//!
//! - decided as one batch ([`decide_batch`]): their inputs hashed once,
//!   every key looked up in one statement of the index, the key locks of
//!   the misses taken in one wave and the misses looked up again in one
//!   statement (another build may have stored one in between); hits are
//!   settled there and never take an executor slot;
//! - executed in chunks: one job runs a chunk of misses one after the
//!   other ([`crate::executor::Executor::submit_chunk`]), and where it ran
//!   hashes each trial's outputs and lays out its rows
//!   ([`crate::commit::ChunkOutput::prepare`]);
//! - committed chunk by chunk in one call of the index
//!   ([`crate::commit::commit_chunk`]), inside the dispatcher's open group
//!   transaction.
//!
//! Each trial stays its own entry under its own key, with the bytes,
//! ref and result it would have had when decided alone: batching changes
//! only how much of the coordinator's work is shared. A kill at any
//! moment leaves whole entries only (rows are written in a transaction).
//!
//! Only trials whose outputs live in memory are batched, without a
//! `when:`, workspace outputs, more than one thread, a remote tier or
//! `-j1` (which keeps the planned order of starts and finishes); every
//! other node takes the decision of [`crate::decide`].

use std::sync::Arc;
use std::time::Instant;

use crate::decide::{
    Decision, Prepared, cached, from_trace, gather_config, ingredients_with, input_ingredients,
    local_hit, restore_upstream_temps, upstream_entries, upstream_of,
};
use crate::file_stat::Stat;
use crate::graph::Graph;
use crate::key::FileIngredient;
use crate::phases::Role;
use crate::run::{NodeResult, RunContext};
use crate::store::{Entry, KeyLock, PathLocks};

/// The most trials decided at once.
pub const MAX_BATCH: usize = 256;

/// The most trials one job runs: enough that the coordinator hears from
/// a worker once per tens of trials, few enough that a chunk of slow
/// trials does not keep the other workers waiting at the end of a grid.
pub const MAX_CHUNK: usize = 32;

/// Whether node `index` may be decided with its siblings in a build
/// running `jobs` actions at once.
pub fn batchable(ctx: &RunContext, index: usize, jobs: usize) -> bool {
    let node = &ctx.graph.nodes[index];
    jobs > 1
        && ctx.remote.is_none()
        && matches!(node.role, Role::Trial { .. })
        && node.when.is_none()
        && !ctx.graph.read_by_condition(index)
        && node.workspace_outputs.is_empty()
        && node.threads <= 1
        && node.mode != "command"
        && ctx
            .factory
            .get(&node.mode)
            .is_some_and(|phase| !phase.writes_files(&node.role))
}

/// Whether trials `a` and `b` are siblings: of the same grid, with the
/// same mode and the same upstream nodes.
pub fn siblings(graph: &Graph, a: usize, b: usize) -> bool {
    let (a, b) = (&graph.nodes[a], &graph.nodes[b]);
    a.group.is_some() && a.group == b.group && a.mode == b.mode && a.deps == b.deps
}

/// How many trials of `misses` each chunk runs, with `free` executor
/// slots to fill: spread over all of them, at most [`MAX_CHUNK`].
pub fn chunk_size(misses: usize, free: usize) -> usize {
    misses.div_ceil(free.max(1)).clamp(1, MAX_CHUNK)
}

/// A node's input files as key ingredients with their stats, or why
/// they could not be hashed.
type HashedInputs = Result<(Vec<FileIngredient>, Vec<Stat>), String>;

/// Decide the sibling trials `indices`, whose upstream nodes finished
/// with `deps`, as one batch. Returns each trial's decision, in the
/// order given; a miss is locked, with its pending entry and action.
pub fn decide_batch(
    ctx: &RunContext,
    indices: &[usize],
    deps: &[Arc<NodeResult>],
) -> Vec<(usize, Decision)> {
    let started = Instant::now();
    let mut decided: Vec<(usize, Option<Decision>)> = Vec::with_capacity(indices.len());
    // Per trial to look up: its slot in `decided`, and its key's JSON.
    let mut keyed: Vec<(usize, Prepared, String)> = Vec::with_capacity(indices.len());
    // Siblings read the same input files: hashed once.
    let mut inputs: Option<(usize, HashedInputs)> = None;
    for &index in indices {
        if let Some(result) = from_trace(ctx, index, deps, started) {
            decided.push((index, Some(Decision::Done(result))));
            continue;
        }
        let node = &ctx.graph.nodes[index];
        let same_inputs = inputs.as_ref().is_some_and(|(first, _)| {
            let first = &ctx.graph.nodes[*first];
            first.inputs == node.inputs && first.base_dir == node.base_dir
        });
        if !same_inputs {
            inputs = Some((index, input_ingredients(ctx, node)));
        }
        let hashed = match &inputs {
            Some((_, Ok(hashed))) => hashed.clone(),
            Some((_, Err(e))) => {
                let failed = NodeResult::failed(e.clone(), None, Vec::new(), 0.0);
                decided.push((index, Some(Decision::Done(failed))));
                continue;
            }
            None => unreachable!("hashed above"),
        };
        let (files, input_stats) = hashed;
        let ingredients = match ingredients_with(ctx, node, deps, files) {
            Ok(ingredients) => ingredients,
            Err(e) => {
                let failed = NodeResult::failed(e, None, Vec::new(), 0.0);
                decided.push((index, Some(Decision::Done(failed))));
                continue;
            }
        };
        let (key, json) = ingredients.key_and_json();
        decided.push((index, None));
        keyed.push((
            decided.len() - 1,
            Prepared {
                index,
                key,
                ingredients,
                input_stats,
                paths: Vec::new(),
                log: Vec::new(),
                started,
                replace: false,
            },
            json,
        ));
    }
    if !keyed.is_empty() {
        ctx.store.note_index(ctx.reads());
    }
    // Hits settle now; the misses are locked.
    let found = look_up(ctx, &mut keyed);
    let mut locked: Vec<(usize, Prepared, String, KeyLock)> = Vec::with_capacity(keyed.len());
    for ((slot, prepared, json), entry) in keyed.into_iter().zip(found) {
        let index = prepared.index;
        if let Some(entry) = entry {
            let node = &ctx.graph.nodes[index];
            decided[slot].1 = Some(Decision::Done(cached(ctx, node, prepared, entry)));
            continue;
        }
        match ctx.store.try_lock_key(&prepared.key) {
            Ok(Some(lock)) => locked.push((slot, prepared, json, lock)),
            // Another build computes it: wait off the coordinator.
            Ok(None) => decided[slot].1 = Some(Decision::Contended(prepared)),
            Err(e) => {
                let failed = prepared.fail(format!("cannot lock the store: {e}"));
                decided[slot].1 = Some(Decision::Done(failed));
            }
        }
    }
    // Another build may have stored an entry between the look and the lock.
    let mut relook: Vec<(usize, Prepared, String)> = Vec::with_capacity(locked.len());
    let mut locks = Vec::with_capacity(locked.len());
    for (slot, prepared, json, lock) in locked {
        relook.push((slot, prepared, json));
        locks.push(lock);
    }
    let found = look_up(ctx, &mut relook);
    let mut misses = Vec::with_capacity(relook.len());
    for (((slot, prepared, json), lock), entry) in relook.into_iter().zip(locks).zip(found) {
        match entry {
            Some(entry) => {
                let node = &ctx.graph.nodes[prepared.index];
                drop(lock);
                decided[slot].1 = Some(Decision::Done(cached(ctx, node, prepared, entry)));
            }
            None => misses.push((slot, prepared, json, lock)),
        }
    }
    if let Some((_, first, ..)) = misses.first() {
        // Siblings share their upstream: its entries are read, and its
        // temp outputs restored, once.
        let node = &ctx.graph.nodes[first.index];
        let dep_entries = upstream_entries(ctx, deps);
        let upstream = restore_upstream_temps(ctx, node, &dep_entries)
            .map(|()| upstream_of(ctx, node, deps, dep_entries, Vec::new()));
        let gather = gather_config(ctx, node);
        for (slot, prepared, json, lock) in misses {
            let upstream = match &upstream {
                Ok(upstream) => upstream.clone(),
                Err(e) => {
                    decided[slot].1 = Some(Decision::Done(prepared.fail(e.clone())));
                    continue;
                }
            };
            let decision = match ctx.store.begin_in_memory(&prepared.key) {
                Ok(entry) => {
                    let (pending, action) = prepared.into_pending(
                        ctx,
                        entry,
                        (upstream, gather.clone()),
                        Some(json),
                        lock,
                        PathLocks::default(),
                    );
                    Decision::Execute(Box::new(pending), Box::new(action))
                }
                Err(e) => Decision::Done(prepared.fail(format!("cannot write to the store: {e}"))),
            };
            decided[slot].1 = Some(decision);
        }
    }
    decided
        .into_iter()
        .map(|(index, decision)| (index, decision.expect("every trial is decided")))
        .collect()
}

/// The entries of the keys of `keyed` that are not forced to run, read
/// in one statement and each checked as [`crate::store::Store::lookup`]
/// checks one; a corrupt entry is noted in its trial's log and is a miss.
fn look_up(ctx: &RunContext, keyed: &mut [(usize, Prepared, String)]) -> Vec<Option<Entry>> {
    let asked: Vec<usize> = (0..keyed.len())
        .filter(|&at| !ctx.force[keyed[at].1.index])
        .collect();
    let keys: Vec<&str> = asked.iter().map(|&at| keyed[at].1.key.as_str()).collect();
    let rows = ctx.store.index().actions_of_keys(&keys);
    let mut found: Vec<Option<Entry>> = (0..keyed.len()).map(|_| None).collect();
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            let reason = format!("cannot read the index: {e}");
            asked.iter().map(|_| Some(Err(reason.clone()))).collect()
        }
    };
    for (at, row) in asked.into_iter().zip(rows) {
        let prepared = &mut keyed[at].1;
        let checked = match row {
            None => continue,
            Some(Ok(manifest)) => ctx
                .store
                .check_manifest(&prepared.key, &manifest, &ctx.stats)
                .map(|()| manifest),
            Some(Err(reason)) => Err(reason),
        };
        match checked {
            Ok(manifest) => {
                let entry = ctx.store.entry_of(&prepared.key, manifest);
                found[at] = Some(local_hit(ctx, &prepared.key, entry));
            }
            Err(reason) => prepared.log.extend_from_slice(
                format!("admf: ignoring a corrupt entry ({reason}); recomputing\n").as_bytes(),
            ),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_spread_the_misses_over_the_free_slots_and_stay_bounded() {
        assert_eq!(chunk_size(64, 2), 32);
        assert_eq!(chunk_size(10, 2), 5);
        assert_eq!(chunk_size(3, 16), 1);
        assert_eq!(chunk_size(1000, 2), MAX_CHUNK);
        assert_eq!(chunk_size(0, 2), 1);
        assert_eq!(chunk_size(7, 0), MAX_CHUNK.min(7));
    }

    /// A batched commit stores the ingredients' JSON as serialised for
    /// the key: it must be the text the one-by-one commit stores.
    #[test]
    fn the_key_json_is_the_text_a_commit_stores() {
        let ingredients = crate::key::Ingredients {
            schema: crate::key::KEY_SCHEMA,
            mode: "signal_generation".into(),
            version: "3".into(),
            role: "trial".into(),
            config: serde_json::json!({"b": 1.5e-7, "a": [0.1, 2, "x"], "c": {"z": null, "y": true}}),
            inputs: vec![FileIngredient {
                path: "data/SPY_D.csv".into(),
                blake3: "cd".repeat(32),
            }],
            upstream: Vec::new(),
            platform: None,
            env: crate::key::env_ingredient(Vec::new()),
        };
        let (key, json) = ingredients.key_and_json();
        assert_eq!(key, ingredients.key());
        let stored = crate::store::RawJson::of(&ingredients).unwrap();
        assert_eq!(json, stored.0.get());
        // And the text an entry committed through a JSON tree holds.
        let through_tree = crate::store::RawJson::of(&ingredients.to_value()).unwrap();
        assert_eq!(json, through_tree.0.get());
    }
}
