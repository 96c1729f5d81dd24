//! Commit, on the coordinator: seal an executed action's outputs into the
//! store under its key and record the node's ref. Only the coordinator
//! writes entries and refs, whichever executor ran the action.

use crate::action::ActionOutput;
use crate::decide::Pending;
use crate::graph::Node;
use crate::run::{NodeResult, Outcome, RunContext};
use crate::store::ManifestMeta;

/// The result of node `pending.index` after its action ran with `output`.
pub fn commit(ctx: &RunContext, pending: Pending, output: ActionOutput) -> NodeResult {
    let Pending {
        index,
        key,
        ingredients,
        entry,
        mut log,
        started,
        lock,
    } = pending;
    let node = &ctx.graph.nodes[index];
    log.extend_from_slice(&output.log);
    let seconds = || started.elapsed().as_secs_f64();
    if let Err(error) = output.result {
        let mut failed = NodeResult::failed(String::new(), Some(key), log, seconds());
        failed.outcome = Outcome::Failed(error);
        return failed;
    }
    let meta = ManifestMeta {
        node: node.id.clone(),
        mode: node.mode.clone(),
        ingredients: ingredients.to_value(),
        duration_ms: output.duration_ms,
    };
    let committed = if ctx.force[index] {
        entry.commit_replacing(meta, &log)
    } else {
        entry.commit(meta, &log)
    };
    drop(lock);
    match committed {
        Ok(entry) => {
            record_ref(ctx, node, &key, &mut log);
            NodeResult {
                outcome: Outcome::Ran,
                key: Some(key),
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

/// Record `key` as the node's last successful build; a ref that cannot be
/// written costs only `status` and `explain` their history, so it is
/// noted in the log rather than failing the node.
pub fn record_ref(ctx: &RunContext, node: &Node, key: &str, log: &mut Vec<u8>) {
    if ctx.store.read_ref(&ctx.workflow_id, &node.id).as_deref() == Some(key) {
        return;
    }
    if let Err(e) = ctx.store.write_ref(&ctx.workflow_id, &node.id, key) {
        log.extend_from_slice(format!("admf: cannot record the build: {e}\n").as_bytes());
    }
}
