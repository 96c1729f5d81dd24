//! The terminal view: nodes grouped by layer (longest path from a root),
//! one line each with its mode, optional status and dependencies; a stale
//! or skipped node's reason goes on the line below.
//!
//! ```text
//! diamond: 4 nodes, 3 layers
//! layer 0
//!   ingest  command   fresh
//! layer 1
//!   fast    backtest  fresh  <- ingest
//!   slow    backtest  stale  <- ingest
//!                     ↳ config changed: strategy.parameters.lookback
//! layer 2
//!   report  report    stale  <- fast, slow
//!                     ↳ upstream slow changed
//! ```

use super::view::{Drawn, NodeStatus, RenderOptions, depths};
use super::{paint, title};

/// Dependency lists wrap past this many characters.
const MAX_DEPS: usize = 60;

pub(crate) fn render(drawn: &Drawn, opts: &RenderOptions) -> String {
    let view = &drawn.view;
    let depth = depths(view);
    let layers = depth.iter().max().map_or(0, |d| d + 1);
    let titles: Vec<String> = (0..view.nodes.len()).map(|i| title(drawn, i)).collect();
    let statuses: Vec<&str> = view
        .nodes
        .iter()
        .map(|n| n.status.as_ref().map_or("-", NodeStatus::name))
        .collect();
    let id_width = width(titles.iter().map(String::as_str));
    let mode_width = width(view.nodes.iter().map(|n| n.mode.as_str()));
    let status_width = width(statuses.iter().copied());
    let status_column = 2 + id_width + 2 + mode_width + 2;
    let deps_column = if opts.status {
        status_column + status_width + 2
    } else {
        status_column
    };

    let shown = plural(view.nodes.len(), "node");
    let all = drawn.members.iter().map(Vec::len).sum::<usize>();
    let nodes = if all == view.nodes.len() {
        shown
    } else {
        format!("{shown} ({all} with trials expanded)")
    };
    let mut out = format!("{}: {nodes}, {}\n", view.workflow, plural(layers, "layer"));
    for layer in 0..layers {
        out.push_str(&format!("layer {layer}\n"));
        for (i, node) in view.nodes.iter().enumerate() {
            if depth[i] != layer {
                continue;
            }
            let mut line = format!(
                "  {}  {}",
                pad(&titles[i], id_width),
                pad(&node.mode, mode_width)
            );
            let status = node.status.as_ref().filter(|_| opts.status);
            if opts.status {
                let code = status.map_or("", status_color);
                line.push_str("  ");
                line.push_str(&paint(statuses[i], code, opts.color));
                line.push_str(&" ".repeat(status_width - statuses[i].len()));
            }
            // An expanded trial says which parameters it runs.
            if let Some(trial) = &node.trial_name {
                line.push_str(&format!("  {trial}"));
            }
            let deps: Vec<&str> = node.deps.iter().map(|&d| titles[d].as_str()).collect();
            for (n, chunk) in wrap(&deps).iter().enumerate() {
                if n == 0 {
                    line.push_str(&format!("  <- {chunk}"));
                } else {
                    line = format!("{}     {chunk}", " ".repeat(deps_column - 2));
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
            if deps.is_empty() {
                out.push_str(line.trim_end());
                out.push('\n');
            }
            if let Some(NodeStatus::Stale { reason } | NodeStatus::Skipped { reason }) = status
                && !reason.is_empty()
            {
                let why = paint(&format!("↳ {reason}"), "2", opts.color);
                out.push_str(&format!("{}{why}\n", " ".repeat(status_column)));
            }
        }
    }
    out
}

/// ANSI colour of a status.
pub(crate) fn status_color(status: &NodeStatus) -> &'static str {
    match status {
        NodeStatus::Fresh => "32",
        NodeStatus::Stale { .. } => "33",
        NodeStatus::Missing => "36",
        NodeStatus::Skipped { .. } => "2",
        NodeStatus::Failed => "31",
    }
}

/// Joins dependency names with `, `, starting a new line past [`MAX_DEPS`].
fn wrap(deps: &[&str]) -> Vec<String> {
    if deps.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![String::new()];
    for (n, dep) in deps.iter().enumerate() {
        let last = lines.last_mut().expect("never empty");
        let comma = if n + 1 < deps.len() { "," } else { "" };
        if !last.is_empty() && last.chars().count() + 1 + dep.chars().count() > MAX_DEPS {
            lines.push(String::new());
        }
        let last = lines.last_mut().expect("never empty");
        if !last.is_empty() {
            last.push(' ');
        }
        last.push_str(dep);
        last.push_str(comma);
    }
    lines
}

fn width<'a>(items: impl Iterator<Item = &'a str>) -> usize {
    items.map(|s| s.chars().count()).max().unwrap_or(0)
}

fn pad(s: &str, width: usize) -> String {
    let len = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(len)))
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
