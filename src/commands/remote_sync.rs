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
use crate::store::{Cache, Manifest, Store};

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

/// The remote `admf cache ls --remote [URL] [WF]` asks: URL, else
/// `ADMF_REMOTE`. `--remote WF` (a value that is no URL, with no workflow
/// after it) names the workflow, the remote coming from `ADMF_REMOTE`.
fn ls_target(workflow: Option<PathBuf>, remote: &str) -> Result<(Option<PathBuf>, String), Error> {
    let (workflow, given) = match workflow {
        None if !remote.is_empty() && !remote.contains("://") => {
            (Some(PathBuf::from(remote)), None)
        }
        _ => (workflow, Some(remote).filter(|r| !r.is_empty())),
    };
    let url = match given {
        Some(url) => url.to_string(),
        None => std::env::var("ADMF_REMOTE")
            .ok()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::Usage {
                message: "--remote names no URL and ADMF_REMOTE is not set".into(),
                hint: Some(
                    "pass --remote s3://bucket/prefix or --remote grpc://host:port[/instance]"
                        .into(),
                ),
            })?,
    };
    Ok((workflow, url))
}

/// A key `cache ls --remote` asks about, with what is known of it here.
#[derive(Default)]
struct Known {
    entry: Option<crate::store::EntrySummary>,
    /// Workflow names and nodes of the refs that name the key.
    workflows: std::collections::BTreeSet<String>,
    nodes: std::collections::BTreeSet<String>,
}

/// `admf cache ls --remote [URL] [WF]`: for every key this store knows
/// (its entries and its refs), or with WF the keys of that workflow (its
/// refs here and the ref set pushed to the remote), whether the remote
/// holds the entry whole, as the table of `admf cache ls` with a REMOTE
/// column. A REAPI action cache cannot be listed, so only known keys are
/// asked; on S3 the listing of `ac/` also counts the entries held there
/// that none of these keys name.
pub fn ls(
    workflow: Option<PathBuf>,
    remote: &str,
    cache_dir: Option<PathBuf>,
    store_dir: &Path,
) -> Result<i32, Error> {
    use std::collections::BTreeMap;
    let (workflow, url) = ls_target(workflow, remote)?;
    let remote = remote_of(&url)?;
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    let mut ref_set = None;
    match &workflow {
        Some(workflow) => {
            let wf = WorkflowArgs {
                workflow: workflow.clone(),
                sets: Vec::new(),
                cache_dir,
            };
            let session = Session::open(&wf)?;
            let ctx = &session.ctx;
            let name = super::cache::workflow_name(&ctx.workflow_id).to_string();
            for node in &ctx.graph.nodes {
                if let Some(key) = ctx.store.read_ref(&ctx.workflow_id, &node.id) {
                    let k = known.entry(key).or_default();
                    k.workflows.insert(name.clone());
                    k.nodes.insert(node.id.clone());
                }
            }
            let set_name = ref_set_name(&wf.workflow);
            match remote.get_ref_set(&set_name) {
                Ok(Some(refs)) => {
                    ref_set = Some((set_name, refs.len()));
                    for (node, key) in refs {
                        let k = known.entry(key).or_default();
                        k.workflows.insert(name.clone());
                        k.nodes.insert(node);
                    }
                }
                Ok(None) => {}
                Err(e) => return Ok(remote_failed(&url, &e)),
            }
            let entries = ctx.store.ls().map_err(|e| Error::io(ctx.store.root(), e))?;
            for entry in entries {
                if let Some(k) = known.get_mut(&entry.key) {
                    k.entry = Some(entry);
                }
            }
        }
        None if store_dir.is_dir() => {
            let store = Store::open(store_dir).map_err(|e| Error::io(store_dir, e))?;
            let io = |e| Error::io(store_dir, e);
            for entry in store.ls().map_err(io)? {
                let key = entry.key.clone();
                known.entry(key).or_default().entry = Some(entry);
            }
            for r in store.refs().map_err(io)? {
                let k = known.entry(r.key).or_default();
                k.workflows
                    .insert(super::cache::workflow_name(&r.workflow_id).to_string());
                k.nodes.insert(r.node);
            }
        }
        None => {}
    }
    // S3 lists what it holds: keys it does not list need no request, and
    // the rest of the listing is counted. REAPI answers Unsupported.
    let listed: Option<std::collections::HashSet<String>> = match Cache::list_actions(&*remote) {
        Ok(keys) => Some(keys.into_iter().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => None,
        Err(e) => return Ok(remote_failed(&url, &e)),
    };
    let asked: Vec<String> = known
        .keys()
        .filter(|k| listed.as_ref().is_none_or(|l| l.contains(*k)))
        .cloned()
        .collect();
    let held = match remote.held(&asked) {
        Ok(held) => held,
        Err(e) => return Ok(remote_failed(&url, &e)),
    };
    let mut held: BTreeMap<String, Manifest> = asked
        .into_iter()
        .zip(held)
        .filter_map(|(key, manifest)| Some((key, manifest?)))
        .collect();
    let hits = held.len();
    let mut rows: Vec<super::cache::LsRow> = known
        .iter()
        .map(|(key, k)| {
            let remote = held.remove(key);
            let (size, created, mode, node) = match (&k.entry, &remote) {
                (Some(e), _) => (
                    Some(e.size),
                    Some(e.created_unix),
                    e.mode.clone(),
                    e.node.clone(),
                ),
                (None, Some(m)) => (
                    Some(m.output_size()),
                    Some(m.created_unix),
                    m.mode.clone(),
                    m.node.clone(),
                ),
                (None, None) => (
                    None,
                    None,
                    "-".to_string(),
                    k.nodes.iter().next().cloned().unwrap_or_default(),
                ),
            };
            super::cache::LsRow {
                key: key.clone(),
                size,
                created_unix: created,
                mode,
                workflows: if k.workflows.is_empty() {
                    "-".into()
                } else {
                    k.workflows.iter().cloned().collect::<Vec<_>>().join(",")
                },
                node,
                remote: Some(remote.is_some()),
            }
        })
        .collect();
    // Oldest first, as `cache ls`; keys known from a ref alone last.
    rows.sort_by(|a, b| {
        (a.created_unix.is_none(), a.created_unix, &a.key).cmp(&(
            b.created_unix.is_none(),
            b.created_unix,
            &b.key,
        ))
    });
    crate::out!("{}", super::cache::render_rows(&rows, true));
    let others = listed.map(|l| l.iter().filter(|k| !known.contains_key(*k)).count());
    crate::errln!(
        "{url} holds {hits} of these {} entries; {}{}",
        known.len(),
        match others {
            Some(n) => format!("it holds {n} other entries"),
            None => "a REAPI action cache cannot be listed: only these keys were asked".into(),
        },
        ref_set
            .map(|(name, n)| format!("; its ref set of {name} names {n} nodes"))
            .unwrap_or_default()
    );
    Ok(0)
}
