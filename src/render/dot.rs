//! Graphviz output: `dot -Tsvg graph.dot > graph.svg`.
//!
//! Nodes are boxes labelled `id\nmode` (plus the status word with
//! `--status`, which also sets the fill colour); include namespaces and
//! expanded trial groups are `cluster_` subgraphs.

use super::cluster::{Cluster, clusters};
use super::view::{Drawn, NodeStatus, RenderOptions, local_name};
use super::{status_label, title};

pub(crate) fn render(drawn: &Drawn, opts: &RenderOptions) -> String {
    let view = &drawn.view;
    let mut out = String::from("digraph admf {\n");
    out.push_str("  rankdir=LR;\n");
    out.push_str(&format!(
        "  graph [label={}, labelloc=t, fontname=\"Helvetica\", fontsize=12];\n",
        quote(&view.workflow)
    ));
    out.push_str(
        "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\", fontsize=10];\n",
    );
    out.push_str("  edge [color=\"#555555\", arrowsize=0.7];\n");
    write_cluster(&mut out, drawn, opts, &clusters(drawn), 1);
    for node in &view.nodes {
        for &d in &node.deps {
            out.push_str(&format!(
                "  {} -> {};\n",
                quote(&view.nodes[d].id),
                quote(&node.id)
            ));
        }
    }
    out.push_str("}\n");
    out
}

fn write_cluster(
    out: &mut String,
    drawn: &Drawn,
    opts: &RenderOptions,
    cluster: &Cluster,
    level: usize,
) {
    let indent = "  ".repeat(level);
    for &i in &cluster.nodes {
        out.push_str(&format!("{indent}{};\n", node_statement(drawn, opts, i)));
    }
    for child in &cluster.children {
        out.push_str(&format!(
            "{indent}subgraph {} {{\n",
            quote(&format!("cluster_{}", child.key))
        ));
        out.push_str(&format!(
            "{indent}  graph [label={}, style=\"rounded,dashed\", color=\"#888888\", fontsize=11];\n",
            quote(&child.label)
        ));
        write_cluster(out, drawn, opts, child, level + 1);
        out.push_str(&format!("{indent}}}\n"));
    }
}

fn node_statement(drawn: &Drawn, opts: &RenderOptions, i: usize) -> String {
    let node = &drawn.view.nodes[i];
    let name = local_name(&node.id);
    let name = match drawn.trials(i) {
        Some(n) => format!("{name} ×{n} trials"),
        None => name.to_string(),
    };
    let mut label = format!("{name}\n{}", node.mode);
    let mut attrs = Vec::new();
    if opts.status
        && let Some(status) = &node.status
    {
        label.push('\n');
        label.push_str(&status_label(drawn, i, status));
        attrs.push(format!("fillcolor=\"{}\"", fill(status)));
        if matches!(status, NodeStatus::Skipped { .. }) {
            attrs.push("style=\"rounded,filled,dashed\"".to_string());
        }
    }
    if drawn.trials(i).is_some() {
        attrs.push("peripheries=2".to_string());
    }
    let mut tooltip = title(drawn, i);
    if let Some(trial) = &node.trial_name {
        tooltip.push_str(&format!(" {trial}"));
    }
    if opts.status
        && let Some(status) = &node.status
    {
        tooltip.push_str(&format!(": {}", status.describe()));
    }
    attrs.insert(0, format!("label={}", quote(&label)));
    attrs.push(format!("tooltip={}", quote(&tooltip)));
    format!("{} [{}]", quote(&node.id), attrs.join(", "))
}

fn fill(status: &NodeStatus) -> &'static str {
    match status {
        NodeStatus::Fresh => "#cdebd3",
        NodeStatus::Stale { .. } => "#fff0b3",
        NodeStatus::Missing => "#d6e4f5",
        NodeStatus::Skipped { .. } => "#eeeeee",
        NodeStatus::Failed => "#f6c6c6",
    }
}

/// A double-quoted DOT string. Backslashes are doubled (so an id ending in
/// one cannot escape the closing quote) and newlines become `\n`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(quote(r"trailing\"), r#""trailing\\""#);
        assert_eq!(quote("a [b] {c}; d -> e"), r#""a [b] {c}; d -> e""#);
        assert_eq!(quote("two\nlines"), r#""two\nlines""#);
    }
}
