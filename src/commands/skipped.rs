//! Skipped nodes leave no stale files: when a node is skipped (its `when:`
//! is false, or a node above it was skipped), the workspace outputs that
//! an earlier build of it put there are removed, so `published.txt` does
//! not linger after `publish` stopped running. Only a file whose content
//! is still what the node's last build stored is removed; a file edited
//! since (or never written by admf) is left alone. The store keeps the
//! entry: when the condition turns true again the outputs are restored
//! from it without running the node.

use std::path::PathBuf;

use crate::dispatch::{BuildReport, Final};
use crate::run::{Outcome, RunContext};

/// Removes the stale outputs of the skipped nodes of `report`; returns
/// (node id, path) for each file removed.
pub fn remove_stale_outputs(ctx: &RunContext, report: &BuildReport) -> Vec<(String, PathBuf)> {
    let mut removed = Vec::new();
    for &i in &report.selected {
        let Final::Done(result) = &report.nodes[i] else {
            continue;
        };
        let node = &ctx.graph.nodes[i];
        if !matches!(result.outcome, Outcome::Skipped(_)) || node.workspace_outputs.is_empty() {
            continue;
        }
        let Some(key) = ctx.store.read_ref(&ctx.workflow_id, &node.id) else {
            continue;
        };
        let Some(entry) = ctx.store.lookup(&key, &ctx.stats).hit() else {
            continue;
        };
        for (rel, path) in &node.workspace_outputs {
            let Some(stored) = entry.manifest.outputs.get(rel) else {
                continue;
            };
            let ours = crate::workspace::is_plain_file(path)
                && ctx.stats.hash_file(path).ok().as_deref() == Some(stored.blake3.as_str());
            if ours && std::fs::remove_file(path).is_ok() {
                ctx.reads().note_written();
                removed.push((node.id.clone(), path.clone()));
            }
        }
    }
    removed
}
