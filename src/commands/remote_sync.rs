//! `admf cache push [WF]` and `admf cache pull WF`: explicit sync of the
//! store with a remote cache (S3 or REAPI), for when builds do not run
//! with `--remote` themselves.
//!
//! A push copies entries the remote lacks: with WF, those its last build
//! recorded (its refs); without, every entry of the store. With WF it also
//! publishes the workflow's ref set: which key each node had, named by the
//! workflow's path inside its project, so that `pull WF` in another clone
//! knows which entries to fetch. A pull fetches them into the store, each
//! checked as a remote hit is; the next build finds them as local hits.
//! A pull writes no refs and restores no workspace outputs: the build does.

use std::path::{Path, PathBuf};

use crate::cli::WorkflowArgs;
use crate::error::Error;
use crate::paths::root::ProjectRoot;
use crate::remote::{RemoteCache, open_remote};
use crate::store::{Cache, Store};

use super::{Session, compile};

fn remote_of(url: &str) -> Result<std::sync::Arc<dyn RemoteCache>, Error> {
    open_remote(url).map_err(|e| Error::Usage {
        message: format!("--remote {url}: {e}"),
        hint: None,
    })
}

/// What a sync that the remote failed prints: the remote is named, and
/// the exit code is 1 (the input was fine; the remote was not).
fn remote_failed(url: &str, e: &std::io::Error) -> i32 {
    crate::errln!("admf: the remote cache {url}: {e}");
    1
}

/// The name a workflow's ref set has on a remote: its path inside its
/// project, the same in every clone.
pub fn ref_set_name(workflow: &Path) -> String {
    let abs = std::fs::canonicalize(workflow).unwrap_or_else(|_| workflow.to_path_buf());
    let root = ProjectRoot::of_workflow(workflow).dir;
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    let rel = abs.strip_prefix(&root).unwrap_or(&abs);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// `admf cache push [WF]`.
pub fn push(
    workflow: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    store_dir: &Path,
    url: &str,
) -> Result<i32, Error> {
    let remote = remote_of(url)?;
    let (store, keys, ref_set) = match workflow {
        Some(workflow) => {
            let wf = WorkflowArgs {
                workflow,
                sets: Vec::new(),
                cache_dir,
            };
            let reads = crate::reads::Reads::new();
            let session = Session::with_graph(&wf, compile(&wf, &reads)?, Vec::new(), reads)?;
            let ctx = &session.ctx;
            let mut refs = Vec::new();
            for node in &ctx.graph.nodes {
                if let Some(key) = ctx.store.read_ref(&ctx.workflow_id, &node.id) {
                    refs.push((node.id.clone(), key));
                }
            }
            if refs.is_empty() {
                return Err(Error::Usage {
                    message: format!(
                        "{} has not been built into {}: nothing to push",
                        wf.workflow.display(),
                        ctx.store.root().display()
                    ),
                    hint: Some(format!("run `admf build {}` first", wf.workflow.display())),
                });
            }
            let keys: Vec<String> = refs.iter().map(|(_, k)| k.clone()).collect();
            (
                ctx.store.clone(),
                keys,
                Some((ref_set_name(&wf.workflow), refs)),
            )
        }
        None => {
            let store = Store::open(store_dir).map_err(|e| Error::io(store_dir, e))?;
            let keys = Cache::list_actions(&store).map_err(|e| Error::io(store_dir, e))?;
            (store, keys, None)
        }
    };
    let mut published = 0;
    let mut present = 0;
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    for key in &unique {
        match remote.publish_from(&store, key) {
            Ok(true) => published += 1,
            Ok(false) => present += 1,
            Err(e) => return Ok(remote_failed(url, &e)),
        }
    }
    if let Some((name, refs)) = &ref_set
        && let Err(e) = remote.put_ref_set(name, refs)
    {
        return Ok(remote_failed(url, &e));
    }
    crate::errln!(
        "pushed {published} entr{} to {url} ({present} already there){}",
        if published == 1 { "y" } else { "ies" },
        ref_set
            .map(|(name, refs)| format!("; the ref set of {name} ({} nodes)", refs.len()))
            .unwrap_or_default()
    );
    Ok(0)
}

/// `admf cache pull WF`.
pub fn pull(workflow: PathBuf, cache_dir: Option<PathBuf>, url: &str) -> Result<i32, Error> {
    let remote = remote_of(url)?;
    let wf = WorkflowArgs {
        workflow,
        sets: Vec::new(),
        cache_dir,
    };
    // The workflow must be one admf reads; its ref set names the entries.
    let reads = crate::reads::Reads::new();
    let session = Session::with_graph(&wf, compile(&wf, &reads)?, Vec::new(), reads)?;
    let store = &session.ctx.store;
    let name = ref_set_name(&wf.workflow);
    let refs = match remote.get_ref_set(&name) {
        Ok(Some(refs)) => refs,
        Ok(None) => {
            return Err(Error::Usage {
                message: format!("{url} holds no ref set of {name}"),
                hint: Some(format!(
                    "push one from a clone that built it: `admf cache push {name} --remote {url}`"
                )),
            });
        }
        Err(e) => return Ok(remote_failed(url, &e)),
    };
    let mut keys: Vec<&String> = refs.iter().map(|(_, k)| k).collect();
    keys.sort();
    keys.dedup();
    let (mut pulled, mut here, mut missing) = (0, 0, 0);
    for key in keys {
        if Cache::get_action(store, key)
            .map_err(|e| Error::io(store.root(), e))?
            .is_some()
        {
            here += 1;
            continue;
        }
        match remote.fetch_into(key, store) {
            Ok(true) => pulled += 1,
            Ok(false) => missing += 1,
            Err(e) => return Ok(remote_failed(url, &e)),
        }
    }
    crate::errln!(
        "pulled {pulled} entr{} of {name} from {url} ({here} already here, {missing} missing or unsound there)",
        if pulled == 1 { "y" } else { "ies" },
    );
    Ok(if missing == 0 { 0 } else { 1 })
}
