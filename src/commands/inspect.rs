//! The read-only commands: `graph`, `status`, `explain`, `show`.

use serde_json::json;

use super::{Session, color};
use crate::cli::WorkflowArgs;
use crate::error::Error;
use crate::graph::Graph;
use crate::phases::Role;
use crate::plan::{self, Prediction, Reason, Verdict};
use crate::render::view::{GraphView, NodeStatus, NodeView, RenderOptions};
use crate::render::{Format, render};

fn node_status(graph: &Graph, p: &Prediction) -> NodeStatus {
    match &p.verdict {
        Verdict::Fresh => NodeStatus::Fresh,
        Verdict::Missing => NodeStatus::Missing,
        Verdict::Skipped(reason) => NodeStatus::Skipped {
            reason: reason.clone(),
        },
        Verdict::Stale(reason) => NodeStatus::Stale {
            reason: describe(graph, reason),
        },
    }
}

fn describe(graph: &Graph, reason: &Reason) -> String {
    match reason {
        Reason::Upstream(d) => format!("upstream `{}` is stale", graph.nodes[*d].id),
        Reason::Changed(changes) => changes.join("; "),
        Reason::Error(e) => e.clone(),
    }
}

pub fn view(graph: &Graph, predictions: Option<&[Prediction]>) -> GraphView {
    GraphView {
        workflow: graph.workflow.root_file.display().to_string(),
        nodes: graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeView {
                id: n.id.clone(),
                mode: n.mode.clone(),
                key: predictions.and_then(|p| p[i].key.clone()),
                status: predictions.map(|p| node_status(graph, &p[i])),
                deps: n.deps.clone(),
                group: n.group.clone(),
                trial_name: match &n.role {
                    Role::Trial { name, .. } => Some(name.clone()),
                    _ => None,
                },
                location: n.location.to_string(),
            })
            .collect(),
    }
}

pub fn graph(wf: &WorkflowArgs, format: &str, status: bool, expand: bool) -> Result<i32, Error> {
    let format: Format = format.parse().map_err(|_| Error::Usage {
        message: format!("unknown format `{format}`"),
        hint: None,
    })?;
    let session;
    let compiled;
    let (graph, predictions) = if status {
        session = Session::open(wf)?;
        (session.graph(), Some(plan::predict(&session.ctx)))
    } else {
        compiled = super::compile(wf, &crate::reads::Reads::new())?;
        (&compiled, None)
    };
    let view = view(graph, predictions.as_deref());
    let opts = RenderOptions {
        expand,
        status,
        color: format == Format::Text
            && color()
            && std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    crate::out!("{}", render(&view, format, &opts));
    Ok(0)
}

pub fn status(wf: &WorkflowArgs, as_json: bool) -> Result<i32, Error> {
    let session = Session::open(wf)?;
    let graph = session.graph();
    let predictions = plan::predict(&session.ctx);
    if as_json {
        let nodes: Vec<_> = graph
            .order
            .iter()
            .map(|&i| {
                let s = node_status(graph, &predictions[i]);
                json!({"id": graph.nodes[i].id, "status": s.name(), "reason": match &s {
                    NodeStatus::Stale { reason } | NodeStatus::Skipped { reason } => Some(reason.clone()),
                    _ => None,
                }, "key": predictions[i].key})
            })
            .collect();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"nodes": nodes})).unwrap_or_default()
        );
    } else {
        let title = |n: &crate::graph::Node| match &n.role {
            // A trial says which parameters it runs.
            Role::Trial { name, .. } => format!("{} ({name})", n.id),
            _ => n.id.clone(),
        };
        let width = graph
            .nodes
            .iter()
            .map(|n| title(n).len())
            .max()
            .unwrap_or(0);
        for &i in &graph.order {
            let s = node_status(graph, &predictions[i]);
            crate::outln!("{:<width$}  {}", title(&graph.nodes[i]), s.describe());
        }
    }
    Ok(0)
}

pub fn explain(wf: &WorkflowArgs, name: &str) -> Result<i32, Error> {
    let session = Session::open(wf)?;
    let graph = session.graph();
    let mut i = graph.find(name)?;
    let predictions = plan::predict(&session.ctx);
    let mut indent = String::new();
    loop {
        let id = &graph.nodes[i].id;
        match &predictions[i].verdict {
            Verdict::Fresh => {
                crate::outln!("{indent}{id} is fresh: nothing changed since its last build");
                break;
            }
            Verdict::Missing => {
                crate::outln!("{indent}{id} would run: it was never built with this store");
                break;
            }
            Verdict::Skipped(reason) => {
                crate::outln!("{indent}{id} would be skipped: {reason}");
                break;
            }
            Verdict::Stale(Reason::Upstream(d)) => {
                crate::outln!(
                    "{indent}{id} would run: upstream `{}` would run",
                    graph.nodes[*d].id
                );
                i = *d;
            }
            Verdict::Stale(Reason::Changed(changes)) => {
                crate::outln!("{indent}{id} would run:");
                for c in changes {
                    crate::outln!("{indent}  - {c}");
                }
                break;
            }
            Verdict::Stale(Reason::Error(e)) => {
                crate::outln!("{indent}{id} would run: {e}");
                break;
            }
        }
        indent.push_str("  ");
    }
    Ok(0)
}

pub fn show(wf: &WorkflowArgs, name: &str, as_json: bool) -> Result<i32, Error> {
    let session = Session::open(wf)?;
    let graph = session.graph();
    let i = graph.find(name)?;
    let ctx = &session.ctx;
    let id = &graph.nodes[i].id;
    let Some(key) = ctx.store.read_ref(&ctx.workflow_id, id) else {
        return Err(Error::Usage {
            message: format!("`{id}` has not been built with this store yet"),
            hint: Some(format!("run `admf build {}`", wf.workflow.display())),
        });
    };
    let entry = match ctx.store.lookup(&key, &ctx.stats) {
        crate::store::Lookup::Hit(entry) => entry,
        crate::store::Lookup::Missing => {
            return Err(Error::Usage {
                message: format!("the stored entry of `{id}` is gone (removed by gc)"),
                hint: Some(format!("run `admf build {}`", wf.workflow.display())),
            });
        }
        crate::store::Lookup::Corrupt(reason) => {
            return Err(Error::Usage {
                message: format!("the stored entry of `{id}` is corrupt: {reason}"),
                hint: Some(format!("run `admf build {}`", wf.workflow.display())),
            });
        }
    };
    let root = ctx.store.root().to_path_buf();
    if as_json {
        let described = crate::results::describe(id, &entry).map_err(|e| Error::io(&root, e))?;
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&described).unwrap_or_default()
        );
        return Ok(0);
    }
    let view = entry.view().map_err(|e| Error::io(&root, e))?;
    crate::outln!("node:      {id}");
    crate::outln!("key:       {key}");
    crate::outln!("artifacts: {}", view.display());
    let files: Vec<&str> = entry.names().collect();
    for f in files.iter().take(50) {
        crate::outln!("  {f}");
    }
    if files.len() > 50 {
        crate::outln!("  ... and {} more", files.len() - 50);
    }
    if let Ok(metrics) = entry.read("metrics.json") {
        crate::outln!("metrics:\n{}", String::from_utf8_lossy(&metrics).trim_end());
    }
    let log = String::from_utf8_lossy(&entry.log().unwrap_or_default()).into_owned();
    if log.is_empty() {
        crate::outln!("log:       (empty)");
    } else {
        crate::outln!("log:\n{}", log.trim_end());
    }
    Ok(0)
}
