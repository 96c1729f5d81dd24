//! `admf export` and the workflow's `results:` folder, kept in line with
//! every build.

use std::path::{Path, PathBuf};

use super::Session;
use crate::cli::WorkflowArgs;
use crate::dispatch::{BuildReport, Final};
use crate::error::Error;
use crate::phases::Role;
use crate::results::sync::{self, NodeResult};
use crate::run::{Outcome, RunContext};

/// `admf export WF NODE... DIR` (or `--all DIR`): copies each node's
/// stored outputs into `DIR/<node>/`.
pub fn export(wf: &WorkflowArgs, items: &[String], all: bool) -> Result<i32, Error> {
    let Some((dir, nodes)) = items.split_last() else {
        return Err(usage("name the folder to export into"));
    };
    if nodes.is_empty() && !all {
        return Err(usage("name the nodes to export, or pass --all"));
    }
    let session = Session::open(wf)?;
    let ctx = &session.ctx;
    let graph = session.graph();
    let ids: Vec<String> = if all {
        // A sweep's trials are inside its gather node's folder
        // (`trials.json`, `signals/`); `--all` leaves their own out.
        graph
            .order
            .iter()
            .map(|&i| &graph.nodes[i])
            .filter(|n| !matches!(n.role, Role::Trial { .. }))
            .map(|n| n.id.clone())
            .collect()
    } else {
        nodes
            .iter()
            .map(|n| graph.find(n).map(|i| graph.nodes[i].id.clone()))
            .collect::<Result<_, _>>()?
    };
    let dir = PathBuf::from(dir);
    sync::claim(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut exported = 0;
    for id in &ids {
        let entry = match crate::results::stored_entry(&ctx.store, &ctx.stats, &ctx.workflow_id, id)
        {
            Ok(Some(entry)) => entry,
            Ok(None) if all => continue,
            Ok(None) => {
                return Err(Error::Usage {
                    message: format!("`{id}` has not been built with this store yet"),
                    hint: Some(format!("run `admf build {}`", wf.workflow.display())),
                });
            }
            Err(message) => return Err(usage(&message)),
        };
        sync::sync_node(&dir, id, &entry, None).map_err(|e| Error::io(&dir, e))?;
        crate::errln!("{id} -> {}", sync::node_dir(&dir, id).display());
        exported += 1;
    }
    crate::errln!("exported {exported} node(s) into {}", dir.display());
    Ok(0)
}

fn usage(message: &str) -> Error {
    Error::Usage {
        message: message.to_string(),
        hint: None,
    }
}

/// After a build: brings the workflow's `results:` folder (if any) in
/// line with the selected nodes. Trials are left out, as in `--all`.
pub fn sync_after_build(ctx: &RunContext, report: &BuildReport) -> Result<(), Error> {
    let Some(dir) = &ctx.graph.workflow.results else {
        return Ok(());
    };
    let entries: Vec<(usize, Option<crate::store::Entry>)> = report
        .selected
        .iter()
        .filter(|&&i| !matches!(ctx.graph.nodes[i].role, Role::Trial { .. }))
        .map(|&i| {
            let entry = match &report.nodes[i] {
                Final::Done(r) if matches!(r.outcome, Outcome::Ran | Outcome::Cached) => {
                    r.entry_in(ctx)
                }
                _ => None,
            };
            (i, entry)
        })
        .collect();
    let nodes: Vec<(&str, NodeResult<'_>)> = entries
        .iter()
        .map(|(i, e)| {
            let id = ctx.graph.nodes[*i].id.as_str();
            (id, e.as_ref().map_or(NodeResult::Gone, NodeResult::Built))
        })
        .collect();
    sync_into(ctx.store.root(), &ctx.workflow_id, dir, &nodes)
}

/// After a build the up-to-date record proved a no-op: the workflow was
/// not compiled, so the folder and its nodes come from the record the
/// last full build left in the store.
pub fn sync_after_noop(store_root: &Path, workflow_id: &str) -> Result<(), Error> {
    let path = sync::record_path(store_root, workflow_id);
    let Some(record) = sync::ResultsRecord::load(&path) else {
        return Ok(());
    };
    let store = crate::store::Store::open(store_root).map_err(|e| Error::io(store_root, e))?;
    // After the build and its record: no evidence is taken from here.
    let stats =
        crate::stat_cache::StatCache::load(&store.stat_cache_path(), crate::reads::Reads::new());
    let entries: Vec<(String, Option<crate::store::Entry>)> = record
        .nodes
        .iter()
        .map(|(id, state)| (id.clone(), store.lookup(&state.key, &stats).hit()))
        .collect();
    let nodes: Vec<(&str, NodeResult<'_>)> = entries
        .iter()
        .map(|(id, e)| {
            (
                id.as_str(),
                e.as_ref().map_or(NodeResult::Gone, NodeResult::Built),
            )
        })
        .collect();
    sync_into(store_root, workflow_id, &record.dir, &nodes)
}

fn sync_into(
    store_root: &Path,
    workflow_id: &str,
    dir: &Path,
    nodes: &[(&str, NodeResult<'_>)],
) -> Result<(), Error> {
    match sync::sync_results(store_root, workflow_id, dir, nodes) {
        Ok((written, removed)) => {
            if written + removed > 0 {
                crate::errln!(
                    "results: {} ({written} node(s) written, {removed} removed)",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) => Err(Error::Usage {
            message: format!("cannot update the results folder {}: {e}", dir.display()),
            hint: Some("point `results:` at a new or empty folder".into()),
        }),
    }
}
