//! Mermaid `flowchart LR` output, for Markdown viewers.
//!
//! Node ids are `n0`, `n1`… (drawn order) and subgraph ids `s0`, `s1`…, so
//! no workflow id can clash with Mermaid syntax or keywords; labels are
//! quoted with every character Mermaid or HTML could read as markup written
//! as an entity code. Statuses are `classDef` classes.

use super::cluster::{Cluster, clusters};
use super::status_label;
use super::view::{Drawn, NodeStatus, RenderOptions, local_name};

const CLASSES: [(&str, &str); 5] = [
    ("fresh", "fill:#cdebd3,stroke:#3b7d4a"),
    ("stale", "fill:#fff0b3,stroke:#a8870c"),
    ("missing", "fill:#d6e4f5,stroke:#3d6aa3"),
    (
        "skipped",
        "fill:#eeeeee,stroke:#888888,stroke-dasharray:4 3",
    ),
    ("failed", "fill:#f6c6c6,stroke:#b03a3a"),
];

pub(crate) fn render(drawn: &Drawn, opts: &RenderOptions) -> String {
    let view = &drawn.view;
    let mut out = String::from("flowchart LR\n");
    out.push_str(&format!("  %% workflow: {}\n", comment(&view.workflow)));
    let mut next_subgraph = 0;
    write_cluster(
        &mut out,
        drawn,
        opts,
        &clusters(drawn),
        1,
        &mut next_subgraph,
    );
    for (i, node) in view.nodes.iter().enumerate() {
        for &d in &node.deps {
            out.push_str(&format!("  n{d} --> n{i}\n"));
        }
    }
    if opts.status {
        for (class, style) in CLASSES {
            let members: Vec<String> = view
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.status.as_ref().map(NodeStatus::name) == Some(class))
                .map(|(i, _)| format!("n{i}"))
                .collect();
            if !members.is_empty() {
                out.push_str(&format!("  classDef {class} {style}\n"));
                out.push_str(&format!("  class {} {class}\n", members.join(",")));
            }
        }
    }
    out
}

fn write_cluster(
    out: &mut String,
    drawn: &Drawn,
    opts: &RenderOptions,
    cluster: &Cluster,
    level: usize,
    next_subgraph: &mut usize,
) {
    let indent = "  ".repeat(level);
    for &i in &cluster.nodes {
        let node = &drawn.view.nodes[i];
        let mut lines = vec![match drawn.trials(i) {
            Some(n) => format!("{} ×{n} trials", local_name(&node.id)),
            None => local_name(&node.id).to_string(),
        }];
        lines.push(node.mode.clone());
        if opts.status
            && let Some(status) = &node.status
        {
            lines.push(status_label(drawn, i, status));
        }
        let label: Vec<String> = lines.iter().map(|l| escape(l)).collect();
        out.push_str(&format!("{indent}n{i}[\"{}\"]\n", label.join("<br/>")));
    }
    for child in &cluster.children {
        let id = *next_subgraph;
        *next_subgraph += 1;
        out.push_str(&format!(
            "{indent}subgraph s{id} [\"{}\"]\n",
            escape(&child.label)
        ));
        write_cluster(out, drawn, opts, child, level + 1, next_subgraph);
        out.push_str(&format!("{indent}end\n"));
    }
}

/// Text safe inside a quoted Mermaid label: quotes, entity and HTML
/// delimiters, backticks (Markdown strings) and brackets become `#…;` codes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '`' => out.push_str("#96;"),
            '[' | ']' | '{' | '}' | '(' | ')' | '|' => out.push_str(&format!("#{};", c as u32)),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Mermaid `%%` comment runs to the end of the line; keep it on one.
fn comment(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escaping() {
        assert_eq!(escape("ingest"), "ingest");
        assert_eq!(escape(r#"say "hi""#), "say #quot;hi#quot;");
        assert_eq!(escape("sweep[0..5]"), "sweep#91;0..5#93;");
        assert_eq!(escape("(a) {b} x|y"), "#40;a#41; #123;b#125; x#124;y");
        assert_eq!(escape("<b>&#1;`md`"), "#lt;b#gt;#amp;#35;1;#96;md#96;");
        assert_eq!(escape("a\nb"), "a b");
        assert_eq!(escape("×6 é"), "×6 é");
    }
}
