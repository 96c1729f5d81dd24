//! The view model every renderer draws from, and the one place where the
//! trials of a grid phase are collapsed into a single node.

use serde::Serialize;

/// A build graph as the renderers see it: no petgraph, no engine types.
#[derive(Clone, Debug, Serialize)]
pub struct GraphView {
    pub workflow: String,
    /// Nodes in declaration (topological-compatible) order.
    pub nodes: Vec<NodeView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeView {
    /// `ingest`, `morning/ingest` (namespaced by includes), `sweep[3]` (trial 3 of `sweep`).
    pub id: String,
    pub mode: String,
    /// The 64-hex node key, when known.
    pub key: Option<String>,
    pub status: Option<NodeStatus>,
    /// Indices into [`GraphView::nodes`], in declared order.
    pub deps: Vec<usize>,
    /// For trial nodes, the grid phase they belong to.
    pub group: Option<String>,
    /// For trial nodes, the stable trial name (`momentum_lookback=10_threshold=0.01`).
    pub trial_name: Option<String>,
    /// `workflows/x.yaml:12:5`
    pub location: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NodeStatus {
    Fresh,
    Stale { reason: String },
    Missing,
    Skipped { reason: String },
    Failed,
}

impl NodeStatus {
    /// The one-word name: `fresh`, `stale`, `missing`, `skipped`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            NodeStatus::Fresh => "fresh",
            NodeStatus::Stale { .. } => "stale",
            NodeStatus::Missing => "missing",
            NodeStatus::Skipped { .. } => "skipped",
            NodeStatus::Failed => "failed",
        }
    }

    /// The name with its reason, if any: `stale (config changed)`.
    pub fn describe(&self) -> String {
        match self {
            NodeStatus::Stale { reason } | NodeStatus::Skipped { reason } if !reason.is_empty() => {
                format!("{} ({reason})", self.name())
            }
            _ => self.name().to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Show every trial of a grid phase instead of one node per phase.
    pub expand: bool,
    /// Show each node's status.
    pub status: bool,
    /// Use ANSI colours (text output only).
    pub color: bool,
}

/// A view ready to draw: for each of its nodes, the indices of the original
/// nodes it stands for (one, or every trial of a collapsed group).
#[derive(Clone, Debug)]
pub struct Drawn {
    pub view: GraphView,
    pub members: Vec<Vec<usize>>,
}

impl Drawn {
    /// The view as given (`expand`) or with trial groups collapsed.
    pub fn new(view: &GraphView, expand: bool) -> Drawn {
        if expand {
            Drawn {
                view: view.clone(),
                members: (0..view.nodes.len()).map(|i| vec![i]).collect(),
            }
        } else {
            collapse_members(view)
        }
    }

    /// How many trials node `i` stands for, when it is a collapsed group.
    pub fn trials(&self, i: usize) -> Option<usize> {
        let n = self.members[i].len();
        (n > 1).then_some(n)
    }
}

/// Collapses the trial nodes of each group into one node named
/// `sweep[0..5]`, placed where the group's first trial was, with the union
/// of the trials' dependencies and every edge into a trial redirected to it.
/// Its status is the aggregate: fresh if all trials are, failed if any is,
/// otherwise stale with the share of trials that need a run.
pub fn collapse(view: &GraphView) -> GraphView {
    collapse_members(view).view
}

fn collapse_members(view: &GraphView) -> Drawn {
    let nodes = &view.nodes;
    // new_index[i]: where original node i lands; groups land on their first trial.
    let mut new_index = vec![usize::MAX; nodes.len()];
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if new_index[i] != usize::MAX {
            continue;
        }
        let group: Vec<usize> = match &node.group {
            Some(g) => (i..nodes.len())
                .filter(|&j| nodes[j].group.as_ref() == Some(g))
                .collect(),
            None => vec![i],
        };
        for &j in &group {
            new_index[j] = members.len();
        }
        members.push(group);
    }

    let collapsed = members
        .iter()
        .enumerate()
        .map(|(at, group)| {
            let mut deps = Vec::new();
            for &m in group {
                for &d in &nodes[m].deps {
                    let nd = new_index[d];
                    if nd != at && !deps.contains(&nd) {
                        deps.push(nd);
                    }
                }
            }
            let first = &nodes[group[0]];
            if group.len() == 1 {
                return NodeView {
                    deps,
                    ..first.clone()
                };
            }
            NodeView {
                id: group_id(nodes, group),
                mode: first.mode.clone(),
                key: None,
                status: aggregate_status(group.iter().map(|&m| nodes[m].status.as_ref())),
                deps,
                group: first.group.clone(),
                trial_name: None,
                location: first.location.clone(),
            }
        })
        .collect();

    Drawn {
        view: GraphView {
            workflow: view.workflow.clone(),
            nodes: collapsed,
        },
        members,
    }
}

/// `sweep[0..5]` from trials `sweep[0]`…`sweep[5]`; falls back to the group
/// name and the trials' positions when ids do not carry an index.
fn group_id(nodes: &[NodeView], group: &[usize]) -> String {
    let first = &nodes[group[0]];
    let indices: Option<Vec<(&str, usize)>> =
        group.iter().map(|&m| trial_index(&nodes[m].id)).collect();
    match indices {
        Some(ix) if ix.iter().all(|(p, _)| *p == ix[0].0) => {
            let lo = ix.iter().map(|(_, n)| *n).min().unwrap_or(0);
            let hi = ix.iter().map(|(_, n)| *n).max().unwrap_or(0);
            format!("{}[{lo}..{hi}]", ix[0].0)
        }
        _ => {
            let name = first.group.as_deref().unwrap_or(&first.id);
            format!("{name}[0..{}]", group.len() - 1)
        }
    }
}

/// Splits `sweep[3]` into (`sweep`, 3).
pub(crate) fn trial_index(id: &str) -> Option<(&str, usize)> {
    let body = id.strip_suffix(']')?;
    let open = body.rfind('[')?;
    let n = body[open + 1..].parse().ok()?;
    Some((&body[..open], n))
}

fn aggregate_status<'a>(
    statuses: impl Iterator<Item = Option<&'a NodeStatus>>,
) -> Option<NodeStatus> {
    let statuses: Vec<&NodeStatus> = statuses.collect::<Option<_>>()?;
    let total = statuses.len();
    let count = |name: &str| statuses.iter().filter(|s| s.name() == name).count();
    let status = if count("failed") > 0 {
        NodeStatus::Failed
    } else if count("fresh") == total {
        NodeStatus::Fresh
    } else if count("missing") == total {
        NodeStatus::Missing
    } else if count("skipped") == total {
        statuses[0].clone()
    } else {
        let pending = count("stale") + count("missing");
        NodeStatus::Stale {
            reason: format!("{pending}/{total} trials"),
        }
    };
    Some(status)
}

/// The namespace of a node id: `morning` for `morning/ingest`, `a/b` for `a/b/c`.
pub(crate) fn namespace(id: &str) -> Option<&str> {
    id.rfind('/').map(|at| &id[..at])
}

/// The id without its namespace.
pub(crate) fn local_name(id: &str) -> &str {
    id.rfind('/').map_or(id, |at| &id[at + 1..])
}

/// Longest-path depth of every node (roots are 0); tolerant of any order.
pub(crate) fn depths(view: &GraphView) -> Vec<usize> {
    fn visit(
        view: &GraphView,
        i: usize,
        memo: &mut [Option<usize>],
        on_path: &mut [bool],
    ) -> usize {
        if let Some(d) = memo[i] {
            return d;
        }
        on_path[i] = true;
        let mut depth = 0;
        for &d in &view.nodes[i].deps {
            if d < view.nodes.len() && !on_path[d] {
                depth = depth.max(visit(view, d, memo, on_path) + 1);
            }
        }
        on_path[i] = false;
        memo[i] = Some(depth);
        depth
    }
    let n = view.nodes.len();
    let mut memo = vec![None; n];
    let mut on_path = vec![false; n];
    (0..n)
        .map(|i| visit(view, i, &mut memo, &mut on_path))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(id: &str, group: Option<&str>, deps: &[usize]) -> NodeView {
        NodeView {
            id: id.to_string(),
            mode: "command".to_string(),
            key: None,
            status: None,
            deps: deps.to_vec(),
            group: group.map(str::to_string),
            trial_name: None,
            location: String::new(),
        }
    }

    fn ids(view: &GraphView) -> Vec<(&str, Vec<&str>)> {
        view.nodes
            .iter()
            .map(|n| {
                let deps = n.deps.iter().map(|&d| view.nodes[d].id.as_str()).collect();
                (n.id.as_str(), deps)
            })
            .collect()
    }

    #[test]
    fn collapse_merges_edges_into_and_out_of_a_group() {
        let view = GraphView {
            workflow: "w".to_string(),
            nodes: vec![
                node("a", None, &[]),
                node("b", None, &[]),
                node("g[0]", Some("g"), &[0]),
                node("g[1]", Some("g"), &[0, 1]),
                node("g[2]", Some("g"), &[1]),
                node("c", None, &[2, 3, 0, 4]),
                node("d", None, &[3]),
            ],
        };
        let collapsed = collapse(&view);
        assert_eq!(
            ids(&collapsed),
            vec![
                ("a", vec![]),
                ("b", vec![]),
                ("g[0..2]", vec!["a", "b"]),
                ("c", vec!["g[0..2]", "a"]),
                ("d", vec!["g[0..2]"]),
            ]
        );
        let drawn = Drawn::new(&view, false);
        assert_eq!(drawn.members[2], vec![2, 3, 4]);
        assert_eq!(drawn.trials(2), Some(3));
        assert_eq!(drawn.trials(0), None);
    }

    #[test]
    fn interleaved_groups_land_on_their_first_trial() {
        let view = GraphView {
            workflow: "w".to_string(),
            nodes: vec![
                node("x[0]", Some("x"), &[]),
                node("y[0]", Some("y"), &[]),
                node("x[1]", Some("x"), &[]),
                node("y[1]", Some("y"), &[]),
                node("z", None, &[3, 2]),
            ],
        };
        assert_eq!(
            ids(&collapse(&view)),
            vec![
                ("x[0..1]", vec![]),
                ("y[0..1]", vec![]),
                ("z", vec!["y[0..1]", "x[0..1]"])
            ]
        );
    }

    #[test]
    fn a_single_trial_is_left_alone() {
        let view = GraphView {
            workflow: "w".to_string(),
            nodes: vec![node("s[0]", Some("s"), &[])],
        };
        assert_eq!(collapse(&view).nodes[0].id, "s[0]");
        assert_eq!(collapse(&view).nodes[0].group.as_deref(), Some("s"));
    }

    #[test]
    fn ids_without_an_index_use_the_group_name() {
        let view = GraphView {
            workflow: "w".to_string(),
            nodes: vec![
                node("fast", Some("sweep"), &[]),
                node("slow", Some("sweep"), &[]),
            ],
        };
        assert_eq!(collapse(&view).nodes[0].id, "sweep[0..1]");
    }

    #[test]
    fn aggregate_status_of_a_group() {
        use NodeStatus::*;
        let stale = || Stale {
            reason: "x".to_string(),
        };
        let skipped = || Skipped {
            reason: "cond".to_string(),
        };
        let of = |s: Vec<NodeStatus>| aggregate_status(s.iter().map(Some));
        assert_eq!(of(vec![Fresh, Fresh]), Some(Fresh));
        assert_eq!(of(vec![Fresh, Failed, stale()]), Some(Failed));
        assert_eq!(of(vec![Missing, Missing]), Some(Missing));
        assert_eq!(of(vec![skipped(), skipped()]), Some(skipped()));
        assert_eq!(
            of(vec![Fresh, stale(), Missing, Fresh]),
            Some(Stale {
                reason: "2/4 trials".to_string()
            })
        );
        assert_eq!(aggregate_status([Some(&Fresh), None].into_iter()), None);
    }

    #[test]
    fn depths_are_longest_paths() {
        let view = GraphView {
            workflow: "w".to_string(),
            nodes: vec![
                node("a", None, &[]),
                node("b", None, &[0]),
                node("c", None, &[0, 1]),
            ],
        };
        assert_eq!(depths(&view), vec![0, 1, 2]);
    }

    /// Random DAGs: each node depends on some earlier ones; some nodes are
    /// trials of one of two groups.
    fn dag() -> impl Strategy<Value = GraphView> {
        (1usize..14).prop_flat_map(|n| {
            let nodes: Vec<_> = (0..n)
                .map(|i| {
                    let deps = proptest::collection::btree_set(0..i.max(1), 0..=i.min(3));
                    (deps, 0u8..4)
                })
                .collect();
            nodes.prop_map(move |spec| {
                let nodes = spec
                    .into_iter()
                    .enumerate()
                    .map(|(i, (deps, g))| {
                        let deps: Vec<usize> = deps.into_iter().filter(|&d| d < i).collect();
                        match g {
                            0 => node(&format!("p[{i}]"), Some("p"), &deps),
                            1 => node(&format!("q[{i}]"), Some("q"), &deps),
                            _ => node(&format!("n{i}"), None, &deps),
                        }
                    })
                    .collect();
                GraphView {
                    workflow: "w".to_string(),
                    nodes,
                }
            })
        })
    }

    proptest! {
        #[test]
        fn collapse_keeps_every_edge_between_distinct_nodes(view in dag()) {
            let drawn = Drawn::new(&view, false);
            let mut home = vec![usize::MAX; view.nodes.len()];
            for (at, members) in drawn.members.iter().enumerate() {
                for &m in members {
                    prop_assert_eq!(home[m], usize::MAX, "each node drawn once");
                    home[m] = at;
                }
            }
            prop_assert!(home.iter().all(|&h| h != usize::MAX));
            for (at, node) in drawn.view.nodes.iter().enumerate() {
                let mut seen = node.deps.clone();
                seen.sort_unstable();
                seen.dedup();
                prop_assert_eq!(seen.len(), node.deps.len(), "no duplicate edges");
                prop_assert!(!node.deps.contains(&at), "no self edges");
            }
            for (i, node) in view.nodes.iter().enumerate() {
                for &d in &node.deps {
                    if home[i] != home[d] {
                        prop_assert!(drawn.view.nodes[home[i]].deps.contains(&home[d]));
                    }
                }
            }
            let edges: usize = drawn.view.nodes.iter().map(|n| n.deps.len()).sum();
            let distinct: std::collections::BTreeSet<(usize, usize)> = view
                .nodes
                .iter()
                .enumerate()
                .flat_map(|(i, n)| n.deps.iter().map(move |&d| (i, d)))
                .map(|(i, d)| (home[i], home[d]))
                .filter(|(a, b)| a != b)
                .collect();
            prop_assert_eq!(edges, distinct.len(), "no invented edges");
        }
    }
}
