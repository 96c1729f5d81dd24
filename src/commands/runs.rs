//! `admf runs`, `admf diff`, `admf log` and `admf exp show`: the run
//! history the store's ledger keeps.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::error::Error;
use crate::paths::root::ProjectRoot;
use crate::results::runs::{self, RunSpec};
use crate::results::table::Format;
use crate::store::{RunRecord, Store};

fn usage(message: String) -> Error {
    Error::Usage {
        message,
        hint: None,
    }
}

/// The store of `workflow` (or of the current directory's project), or
/// `None` when it does not exist: a read must not create one.
fn open(cache_dir: Option<&Path>, workflow: Option<&Path>) -> Result<Option<Store>, Error> {
    let root = match (cache_dir, workflow) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(wf)) => ProjectRoot::of_workflow(wf).store(),
        (None, None) => super::cache_store(None)?,
    };
    if !root.is_dir() {
        return Ok(None);
    }
    Store::open(&root)
        .map(Some)
        .map_err(|e| Error::io(&root, e))
}

fn all_runs(store: &Option<Store>, workflow_id: Option<&str>) -> Result<Vec<RunRecord>, Error> {
    match store {
        Some(s) => s.runs(workflow_id).map_err(|e| Error::io(s.root(), e)),
        None => Ok(Vec::new()),
    }
}

fn format_of(format: &str, as_json: bool) -> Result<Format, Error> {
    if as_json {
        Ok(Format::Json)
    } else {
        format.parse()
    }
}

pub fn runs(
    workflow: Option<&Path>,
    cache_dir: Option<&Path>,
    format: &str,
    as_json: bool,
) -> Result<i32, Error> {
    let format = format_of(format, as_json)?;
    let store = open(cache_dir, workflow)?;
    let id = workflow.map(super::workflow_id);
    let runs = all_runs(&store, id.as_deref())?;
    if format == Format::Json {
        let list: Vec<_> = runs.iter().map(runs::run_json).collect();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
    } else {
        crate::out!("{}", runs::runs_table(&runs).render(format));
    }
    Ok(0)
}

/// A run spec as typed: `WF`, `WF@SELECTOR` where WF is a file, or a run
/// id, id prefix or experiment name.
fn spec(text: &str) -> (Option<PathBuf>, RunSpec<'_>) {
    let (path, selector) = match text.rsplit_once('@') {
        Some((p, s)) if Path::new(p).is_file() => (p, s),
        _ => (text, ""),
    };
    if Path::new(path).is_file() {
        let wf = PathBuf::from(path);
        let id = super::workflow_id(&wf);
        return (Some(wf), RunSpec::Workflow { id, selector });
    }
    (None, RunSpec::Plain(text))
}

pub fn diff(
    a: &str,
    b: &str,
    cache_dir: Option<&Path>,
    all: bool,
    as_json: bool,
) -> Result<i32, Error> {
    let (wa, sa) = spec(a);
    let (wb, sb) = spec(b);
    let store = open(cache_dir, wa.as_deref().or(wb.as_deref()))?;
    let history = all_runs(&store, None)?;
    let ra = runs::resolve(&history, &sa).map_err(|e| usage(format!("`{a}`: {e}")))?;
    let rb = runs::resolve(&history, &sb).map_err(|e| usage(format!("`{b}`: {e}")))?;
    let d = runs::diff(ra, rb, all);
    if as_json {
        let out = json!({
            "a": runs::run_json(ra),
            "b": runs::run_json(rb),
            "workflow_changed": d.digest_changed,
            "params": d.params.to_json(),
            "keys": d.keys.to_json(),
            "metrics": d.metrics.to_json(),
        });
        crate::outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(0);
    }
    crate::outln!("a: {} ({})", ra.run_id, runs::time_text(ra.started_unix_ms));
    crate::outln!("b: {} ({})", rb.run_id, runs::time_text(rb.started_unix_ms));
    crate::outln!(
        "workflow files: {}",
        match d.digest_changed {
            Some(true) => "changed",
            Some(false) => "unchanged",
            None => "unknown",
        }
    );
    for (title, table) in [
        ("parameters (--set)", &d.params),
        ("keys", &d.keys),
        ("metrics", &d.metrics),
    ] {
        if table.rows.is_empty() {
            crate::outln!("{title}: no change");
        } else {
            crate::outln!("{title}:");
            crate::out!("{}", table.render(Format::Table));
        }
    }
    Ok(0)
}

pub fn log(
    wf: &crate::cli::WorkflowArgs,
    node: &str,
    format: &str,
    as_json: bool,
) -> Result<i32, Error> {
    let format = format_of(format, as_json)?;
    let store = open(wf.cache_dir.as_deref(), Some(&wf.workflow))?;
    let runs = all_runs(&store, Some(&super::workflow_id(&wf.workflow)))?;
    let table = runs::log_table(&runs, node);
    if table.rows.is_empty() {
        let known: std::collections::BTreeSet<&str> = runs
            .iter()
            .flat_map(|r| r.nodes.iter().map(|n| n.node.as_str()))
            .collect();
        return Err(Error::Usage {
            message: format!(
                "no recorded run of {} built `{node}`",
                wf.workflow.display()
            ),
            hint: crate::error::did_you_mean(node, known),
        });
    }
    crate::out!("{}", table.render(format));
    Ok(0)
}

pub fn exp_show(
    wf: &crate::cli::WorkflowArgs,
    metrics: &[String],
    format: &str,
    as_json: bool,
) -> Result<i32, Error> {
    let format = format_of(format, as_json)?;
    let store = open(wf.cache_dir.as_deref(), Some(&wf.workflow))?;
    let runs = all_runs(&store, Some(&super::workflow_id(&wf.workflow)))?;
    let leaves: Vec<String> = if metrics.is_empty() {
        vec!["sharpe".into()]
    } else {
        metrics.to_vec()
    };
    let table = runs::experiments_table(&runs, &leaves);
    if table.rows.is_empty() {
        crate::errln!(
            "no named runs of {} (name one with `admf build {} --name NAME`)",
            wf.workflow.display(),
            wf.workflow.display()
        );
    }
    crate::out!("{}", table.render(format));
    Ok(0)
}
