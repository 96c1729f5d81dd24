//! Machine-readable graph for tools (`admf graph --format json`).
//!
//! ```json
//! {
//!   "workflow": "demo",
//!   "nodes": [
//!     { "id": "sweep[0..5]", "mode": "signal_generation", "key": null,
//!       "status": {"state": "stale", "reason": "2/6 trials"},
//!       "deps": ["ingest"], "location": "demo.yaml:4:5",
//!       "trials": {"count": 6, "ids": ["sweep[0]", …]} }
//!   ]
//! }
//! ```
//!
//! Every node has `id`, `mode`, `key`, `status`, `deps` (ids, declared
//! order) and `location`; `key` and `status` are `null` when unknown, and
//! `status` is `null` unless `--status` is given. Trial nodes add `group`
//! and, when expanded, `trial` (its name); a collapsed group adds `trials`.

use serde::Serialize;

use super::view::{Drawn, NodeStatus, RenderOptions};

#[derive(Serialize)]
struct Graph<'a> {
    workflow: &'a str,
    nodes: Vec<Node<'a>>,
}

#[derive(Serialize)]
struct Node<'a> {
    id: &'a str,
    mode: &'a str,
    key: Option<&'a str>,
    status: Option<&'a NodeStatus>,
    deps: Vec<&'a str>,
    location: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trial: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trials: Option<Trials<'a>>,
}

#[derive(Serialize)]
struct Trials<'a> {
    count: usize,
    ids: Vec<&'a str>,
}

pub(crate) fn render(drawn: &Drawn, opts: &RenderOptions, original: &super::GraphView) -> String {
    let view = &drawn.view;
    let nodes = view
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let collapsed = drawn.trials(i).is_some();
            Node {
                id: &node.id,
                mode: &node.mode,
                key: node.key.as_deref(),
                status: node.status.as_ref().filter(|_| opts.status),
                deps: node
                    .deps
                    .iter()
                    .map(|&d| view.nodes[d].id.as_str())
                    .collect(),
                location: &node.location,
                group: node.group.as_deref(),
                trial: node.trial_name.as_deref(),
                trials: collapsed.then(|| Trials {
                    count: drawn.members[i].len(),
                    ids: drawn.members[i]
                        .iter()
                        .map(|&m| original.nodes[m].id.as_str())
                        .collect(),
                }),
            }
        })
        .collect();
    let graph = Graph {
        workflow: &view.workflow,
        nodes,
    };
    let mut out = serde_json::to_string_pretty(&graph).expect("graph view serialises");
    out.push('\n');
    out
}
