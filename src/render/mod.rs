//! Renderers of the build graph (`admf graph --format text|dot|mermaid|json`)
//! and of the summary table printed after `admf build`.
//!
//! They draw a plain [`GraphView`] that the engine fills, so they know
//! nothing of petgraph, keys or the store. Every renderer first passes the
//! view through [`Drawn::new`], which collapses the trials of each grid phase
//! into one node unless `--expand` is given. Output depends on the view
//! alone: same view, same bytes.

mod cluster;
pub mod dot;
pub mod json;
pub mod mermaid;
pub mod summary;
pub mod text;
pub mod view;

use std::fmt;
use std::str::FromStr;

pub use summary::{SummaryRow, render_summary};
pub use view::{Drawn, GraphView, NodeStatus, NodeView, RenderOptions, collapse};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    Dot,
    Mermaid,
    Json,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Text, Format::Dot, Format::Mermaid, Format::Json];

    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Dot => "dot",
            Format::Mermaid => "mermaid",
            Format::Json => "json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("unknown graph format `{s}` (expected text, dot, mermaid or json)")
            })
    }
}

/// Renders `view` in `format`. Only `text` uses `opts.color`.
pub fn render(view: &GraphView, format: Format, opts: &RenderOptions) -> String {
    let drawn = Drawn::new(view, opts.expand);
    match format {
        Format::Text => text::render(&drawn, opts),
        Format::Dot => dot::render(&drawn, opts),
        Format::Mermaid => mermaid::render(&drawn, opts),
        Format::Json => json::render(&drawn, opts, view),
    }
}

/// A node's display name: its id, plus `×6 trials` for a collapsed group.
fn title(drawn: &Drawn, i: usize) -> String {
    let id = &drawn.view.nodes[i].id;
    match drawn.trials(i) {
        Some(n) => format!("{id} ×{n} trials"),
        None => id.clone(),
    }
}

/// The status line of a drawn node: the word, or for a collapsed group
/// with trials to run, the share (`stale (2/6 trials)`).
fn status_label(drawn: &Drawn, i: usize, status: &NodeStatus) -> String {
    match (drawn.trials(i), status) {
        (Some(_), NodeStatus::Stale { .. }) => status.describe(),
        _ => status.name().to_string(),
    }
}

/// Wraps `text` in an ANSI colour when `color` is on.
fn paint(text: &str, code: &str, color: bool) -> String {
    if color && !code.is_empty() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests;
