//! Commit, on the coordinator: seal an executed action's outputs into the
//! store under its key and record the node's ref. Only the coordinator
//! writes entries and refs, whichever executor ran the action.

use crate::action::ActionOutput;
use crate::decide::Pending;
use crate::phases::MemoryOutputs;
use crate::run::{NodeResult, Outcome, RunContext};
use crate::store::{BatchSeal, Entry, KeyLock, ManifestMeta, RawJson, SealedOutputs};

/// The result of node `pending.index` after its action ran with `output`.
/// The key's lock goes to `held`: with group commit on, the rows are not
/// visible to other processes before [`crate::store::Store::flush`], and
/// until then another build must wait for the key rather than compute it
/// again.
pub fn commit(
    ctx: &RunContext,
    pending: Pending,
    output: ActionOutput,
    held: &mut Vec<KeyLock>,
) -> NodeResult {
    let Pending {
        index,
        key,
        ingredients,
        input_stats,
        entry,
        mut log,
        started,
        replace,
        lock,
        paths,
        ..
    } = pending;
    let node = &ctx.graph.nodes[index];
    log.extend_from_slice(&output.log);
    let seconds = || started.elapsed().as_secs_f64();
    if let Err(error) = output.result {
        let mut failed = NodeResult::failed(String::new(), Some(key), log, seconds());
        failed.outcome = Outcome::Failed(error);
        return failed;
    }
    // The key was computed from the inputs as they were before the
    // phase ran; outputs made from an edit in between must not be stored
    // under it (restoring the old content would make them a hit).
    if let Some(path) = changed_input(&node.inputs, &input_stats) {
        return changed_input_failure(path, key, log, seconds());
    }
    let meta = ManifestMeta {
        node: node.id.clone(),
        mode: node.mode.clone(),
        ingredients: match crate::store::RawJson::of(&ingredients) {
            Ok(json) => json,
            Err(e) => {
                let failed = format!("cannot serialise the key's ingredients: {e}");
                return NodeResult::failed(failed, Some(key), log, seconds());
            }
        },
        duration_ms: output.duration_ms,
    };
    let committed = entry.with_ref(&ctx.workflow_id, &node.id).seal(
        meta,
        &log,
        output.memory.into_inner(),
        ctx.force[index] || replace,
    );
    // The outputs are in the store now; other builds may write the paths.
    drop(paths);
    held.push(lock);
    let stored = Stored {
        key,
        ingredients,
        input_stats,
        log,
        seconds: seconds(),
        handoff: output.handoff,
        ledger_metrics: None,
    };
    stored.result(ctx, index, committed)
}

/// What a committed node's result is made of besides its entry.
struct Stored {
    key: String,
    ingredients: crate::key::Ingredients,
    input_stats: Vec<crate::file_stat::Stat>,
    log: Vec<u8>,
    seconds: f64,
    handoff: Option<crate::phases::Handoff>,
    ledger_metrics: Option<std::sync::Arc<str>>,
}

impl Stored {
    /// The result of node `index` whose outputs were `committed`.
    fn result(
        self,
        ctx: &RunContext,
        index: usize,
        committed: std::io::Result<Entry>,
    ) -> NodeResult {
        let Stored {
            key,
            ingredients,
            input_stats,
            log,
            seconds,
            handoff,
            ledger_metrics,
        } = self;
        match committed {
            Ok(entry) => {
                let node = &ctx.graph.nodes[index];
                let evidence =
                    crate::decide::evidence(node, &key, &entry, &input_stats, &ingredients);
                NodeResult {
                    outcome: Outcome::Ran,
                    key: Some(key),
                    output_digest: Some(entry.output_digest().to_string()),
                    evidence: Some(std::sync::Arc::new(evidence)),
                    entry: Some(entry),
                    log,
                    seconds,
                    handoff: crate::phases::HandoffSlot::new(handoff),
                    ledger_metrics,
                }
            }
            Err(e) => NodeResult::failed(
                format!("cannot store the outputs: {e}"),
                Some(key),
                log,
                seconds,
            ),
        }
    }
}

/// One executed action of a chunk, with what its worker prepared for
/// the commit ([`ChunkOutput::prepare`]).
pub struct ChunkOutput {
    /// Its outputs are gone from `memory` when `sealed` holds them.
    output: ActionOutput,
    /// The wall time it took where it ran: the node's time, rather than
    /// its wait behind the trials before it in the chunk.
    ran_for: std::time::Duration,
    sealed: Option<SealedOnWorker>,
}

/// A succeeded action's outputs hashed, its ingredients parsed and its
/// whole log, made where the action ran.
struct SealedOnWorker {
    outputs: SealedOutputs,
    ingredients: RawJson,
    log: Vec<u8>,
    /// Its `metrics.json` as the run ledger stores it.
    ledger_metrics: Option<std::sync::Arc<str>>,
}

impl ChunkOutput {
    /// Runs where the action ran, off the coordinator: hashes the outputs
    /// of a succeeded action whose entry lives in memory and lays out its
    /// rows; `log_before` is what the decision noted (the log starts with
    /// it), `ingredients_json` the key's ingredients as JSON. Outputs of
    /// other kinds are left for [`commit`].
    pub fn prepare(
        (mut output, ran_for): (ActionOutput, std::time::Duration),
        out_dir: &std::path::Path,
        log_before: &[u8],
        ingredients_json: Option<String>,
    ) -> ChunkOutput {
        let (Ok(()), Some(json)) = (&output.result, ingredients_json) else {
            return ChunkOutput {
                output,
                ran_for,
                sealed: None,
            };
        };
        let Ok(ingredients) = serde_json::value::RawValue::from_string(json) else {
            return ChunkOutput {
                output,
                ran_for,
                sealed: None,
            };
        };
        let mut log = Vec::with_capacity(log_before.len() + output.log.len());
        log.extend_from_slice(log_before);
        log.extend_from_slice(&output.log);
        let memory = std::mem::take(&mut output.memory).into_inner();
        let ledger_metrics = match memory.get("metrics.json") {
            Some(crate::store::OutputSource::Bytes(bytes)) => crate::store::ledger_metrics(bytes),
            _ => None,
        };
        match SealedOutputs::prepare(memory, &log, out_dir) {
            Ok(outputs) => ChunkOutput {
                output,
                ran_for,
                sealed: Some(SealedOnWorker {
                    outputs,
                    ingredients: RawJson(ingredients),
                    log,
                    ledger_metrics,
                }),
            },
            Err(memory) => {
                output.memory = MemoryOutputs::from_inner(memory);
                ChunkOutput {
                    output,
                    ran_for,
                    sealed: None,
                }
            }
        }
    }
}

/// Where a chunk ran: its trials' larger outputs written into one pack
/// ([`crate::store::Store::pack_sealed`]), so that the coordinator's
/// commit inserts a small row for each instead of its bytes.
pub fn pack_chunk(store: &crate::store::Store, prepared: &mut [ChunkOutput]) {
    let mut sealed: Vec<&mut SealedOutputs> = prepared
        .iter_mut()
        .filter_map(|p| p.sealed.as_mut().map(|s| &mut s.outputs))
        .collect();
    store.pack_sealed(&mut sealed);
}

/// [`commit`] of each executed action of a chunk, in order: the entries
/// whose outputs their workers prepared are written together
/// ([`crate::store::Store::seal_batch`]), the others one by one. Each
/// stays its own entry under its own key.
pub fn commit_chunk(
    ctx: &RunContext,
    executed: Vec<(Pending, ChunkOutput)>,
    held: &mut Vec<KeyLock>,
) -> Vec<(usize, NodeResult)> {
    let mut results: Vec<(usize, Option<NodeResult>)> = Vec::with_capacity(executed.len());
    let mut seals = Vec::new();
    // Per sealed entry: its slot in `results`, what its result needs,
    // and the path locks held until its outputs are in the store.
    let mut sealing = Vec::new();
    // Siblings read the same inputs: each is looked at once.
    let mut stat_now = std::collections::HashMap::new();
    for (mut pending, chunk_output) in executed {
        let index = pending.index;
        let node = &ctx.graph.nodes[index];
        let ChunkOutput {
            output,
            ran_for,
            sealed,
        } = chunk_output;
        // Its time is its own run's, as if it had been decided alone.
        pending.started = std::time::Instant::now()
            .checked_sub(ran_for)
            .unwrap_or(pending.started);
        let Some(sealed) = sealed else {
            results.push((index, Some(commit(ctx, pending, output, held))));
            continue;
        };
        let changed = node
            .inputs
            .iter()
            .zip(&pending.input_stats)
            .find(|(path, before)| {
                let now = stat_now
                    .entry((*path).clone())
                    .or_insert_with(|| current_stat(path));
                *now != Some(**before)
            });
        if let Some((path, _)) = changed {
            let seconds = pending.started.elapsed().as_secs_f64();
            results.push((
                index,
                Some(changed_input_failure(
                    path,
                    pending.key,
                    sealed.log,
                    seconds,
                )),
            ));
            continue;
        }
        let Pending {
            key,
            ingredients,
            input_stats,
            entry,
            started,
            replace,
            lock,
            paths,
            ..
        } = pending;
        seals.push(BatchSeal {
            entry: entry.with_ref(&ctx.workflow_id, &node.id),
            node: node.id.clone(),
            mode: node.mode.clone(),
            ingredients: sealed.ingredients,
            duration_ms: output.duration_ms,
            sealed: sealed.outputs,
            replace: ctx.force[index] || replace,
        });
        results.push((index, None));
        sealing.push((
            results.len() - 1,
            Stored {
                key,
                ingredients,
                input_stats,
                log: sealed.log,
                seconds: 0.0,
                handoff: output.handoff,
                ledger_metrics: sealed.ledger_metrics,
            },
            started,
            lock,
            paths,
        ));
    }
    if !seals.is_empty() {
        let committed = ctx.store.seal_batch(seals);
        for ((slot, mut stored, started, lock, paths), committed) in
            sealing.into_iter().zip(committed)
        {
            // The outputs are in the store now; other builds may write the paths.
            drop(paths);
            held.push(lock);
            stored.seconds = started.elapsed().as_secs_f64();
            let index = results[slot].0;
            results[slot].1 = Some(stored.result(ctx, index, committed));
        }
    }
    results
        .into_iter()
        .map(|(index, result)| (index, result.expect("every node has its result")))
        .collect()
}

/// The result of a node whose input `path` changed while it ran.
fn changed_input_failure(
    path: &std::path::Path,
    key: String,
    log: Vec<u8>,
    seconds: f64,
) -> NodeResult {
    NodeResult::failed(
        format!(
            "input {} changed while the phase ran; its outputs are not stored (build again)",
            path.display()
        ),
        Some(key),
        log,
        seconds,
    )
}

fn current_stat(path: &std::path::Path) -> Option<crate::file_stat::Stat> {
    std::fs::metadata(path)
        .ok()
        .map(|m| crate::file_stat::Stat::of(&m))
}

/// The first input whose stat differs from the one it had when it was
/// hashed for the key (or that is gone).
fn changed_input<'a>(
    inputs: &'a [std::path::PathBuf],
    hashed: &[crate::file_stat::Stat],
) -> Option<&'a std::path::Path> {
    inputs
        .iter()
        .zip(hashed)
        .find_map(|(path, before)| (current_stat(path) != Some(*before)).then_some(path.as_path()))
}
