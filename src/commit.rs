//! Commit, on the coordinator: seal an executed action's outputs into the
//! store under its key and record the node's ref. Only the coordinator
//! writes entries and refs, whichever executor ran the action.

use crate::action::ActionOutput;
use crate::decide::Pending;
use crate::run::{NodeResult, Outcome, RunContext};
use crate::store::{KeyLock, ManifestMeta};

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
        return NodeResult::failed(
            format!(
                "input {} changed while the phase ran; its outputs are not stored (build again)",
                path.display()
            ),
            Some(key),
            log,
            seconds(),
        );
    }
    let meta = ManifestMeta {
        node: node.id.clone(),
        mode: node.mode.clone(),
        ingredients: ingredients.to_value(),
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
    match committed {
        Ok(entry) => {
            let evidence = crate::decide::evidence(node, &key, &entry, &input_stats, &ingredients);
            NodeResult {
                outcome: Outcome::Ran,
                key: Some(key),
                output_digest: Some(entry.output_digest().to_string()),
                evidence: Some(std::sync::Arc::new(evidence)),
                entry: Some(entry),
                log,
                seconds: seconds(),
            }
        }
        Err(e) => NodeResult::failed(
            format!("cannot store the outputs: {e}"),
            Some(key),
            log,
            seconds(),
        ),
    }
}

/// The first input whose stat differs from the one it had when it was
/// hashed for the key (or that is gone).
fn changed_input<'a>(
    inputs: &'a [std::path::PathBuf],
    hashed: &[crate::file_stat::Stat],
) -> Option<&'a std::path::Path> {
    inputs.iter().zip(hashed).find_map(|(path, before)| {
        let now = std::fs::metadata(path)
            .ok()
            .map(|m| crate::file_stat::Stat::of(&m));
        (now != Some(*before)).then_some(path.as_path())
    })
}
