//! Boxes drawn around nodes: one per include namespace (`morning/…`), nested
//! as the namespaces are, and one per grid phase whose trials are expanded.

use super::view::{Drawn, namespace, trial_index};

#[derive(Debug, Default)]
pub(crate) struct Cluster {
    /// Unique among all clusters: the namespace path, or `<prefix>[]` for trials.
    pub key: String,
    pub label: String,
    /// Drawn node indices directly inside, in order.
    pub nodes: Vec<usize>,
    pub children: Vec<Cluster>,
}

/// The cluster tree of a drawn view; the root has an empty key and holds
/// the nodes outside every namespace.
pub(crate) fn clusters(drawn: &Drawn) -> Cluster {
    let nodes = &drawn.view.nodes;
    let mut root = Cluster::default();
    for (i, node) in nodes.iter().enumerate() {
        let mut path: Vec<(String, String)> = Vec::new();
        if let Some(ns) = namespace(&node.id) {
            let mut at = 0;
            for segment in ns.split('/') {
                at += segment.len();
                path.push((ns[..at].to_string(), segment.to_string()));
                at += 1;
            }
        }
        if let Some(group) = &node.group
            && drawn.trials(i).is_none()
        {
            let count = nodes
                .iter()
                .filter(|n| n.group.as_ref() == Some(group))
                .count();
            if count > 1 {
                let prefix = trial_index(&node.id).map_or(group.as_str(), |(p, _)| p);
                let local = super::view::local_name(prefix);
                path.push((format!("{prefix}[]"), format!("{local} ×{count} trials")));
            }
        }
        let mut cluster = &mut root;
        for (key, label) in path {
            let at = match cluster.children.iter().position(|c| c.key == key) {
                Some(at) => at,
                None => {
                    cluster.children.push(Cluster {
                        key,
                        label,
                        ..Cluster::default()
                    });
                    cluster.children.len() - 1
                }
            };
            cluster = &mut cluster.children[at];
        }
        cluster.nodes.push(i);
    }
    root
}
