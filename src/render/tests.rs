//! Snapshot tests of every format over small graphs of each shape.

use super::*;
use crate::status::Status;

fn node(id: &str, mode: &str, deps: &[usize]) -> NodeView {
    NodeView {
        id: id.to_string(),
        mode: mode.to_string(),
        key: None,
        status: None,
        deps: deps.to_vec(),
        group: None,
        trial_name: None,
        location: format!("wf.yaml:{}:5", 3 + deps.len()),
    }
}

fn graph(workflow: &str, nodes: Vec<NodeView>) -> GraphView {
    GraphView {
        workflow: workflow.to_string(),
        nodes,
    }
}

fn chain() -> GraphView {
    graph(
        "chain",
        vec![
            node("ingest", "command", &[]),
            node("features", "command", &[0]),
            node("backtest", "backtest", &[1]),
        ],
    )
}

fn diamond() -> GraphView {
    graph(
        "diamond",
        vec![
            node("ingest", "command", &[]),
            node("fast", "backtest", &[0]),
            node("slow", "backtest", &[0]),
            node("report", "report", &[1, 2]),
        ],
    )
}

fn fan() -> GraphView {
    graph(
        "fan",
        vec![
            node("prices", "command", &[]),
            node("calendar", "command", &[]),
            node("spy", "backtest", &[0, 1]),
            node("qqq", "backtest", &[0, 1]),
            node("iwm", "backtest", &[0]),
            node("tlt", "backtest", &[0]),
            node("combine", "signal_replay", &[2, 3, 4, 5]),
            node("report", "report", &[6, 0]),
        ],
    )
}

fn composite() -> GraphView {
    graph(
        "daily",
        vec![
            node("morning/ingest", "command", &[]),
            node("morning/features", "analysis", &[0]),
            node("selection", "signal_replay", &[1]),
        ],
    )
}

const TRIALS: [&str; 6] = [
    "momentum_lookback=10_threshold=0.01",
    "momentum_lookback=10_threshold=0.02",
    "momentum_lookback=20_threshold=0.01",
    "momentum_lookback=20_threshold=0.02",
    "momentum_lookback=30_threshold=0.01",
    "momentum_lookback=30_threshold=0.02",
];

/// `ingest`, six trials of `sweep`, then `regime` over all of them and
/// `ingest`, and a conditional `report`.
fn grid() -> GraphView {
    let mut nodes = vec![node("ingest", "command", &[])];
    for (n, name) in TRIALS.iter().enumerate() {
        nodes.push(NodeView {
            group: Some("sweep".to_string()),
            trial_name: Some(name.to_string()),
            location: "wf.yaml:6:5".to_string(),
            ..node(&format!("sweep[{n}]"), "signal_generation", &[0])
        });
    }
    nodes.push(node("regime", "analysis", &[1, 2, 3, 4, 5, 6, 0]));
    nodes.push(node("report", "report", &[7]));
    graph("grid", nodes)
}

fn stale(reason: &str) -> NodeStatus {
    NodeStatus::Stale {
        reason: reason.to_string(),
    }
}

/// [`grid`] with keys and every kind of status.
fn grid_status() -> GraphView {
    let mut view = grid();
    let statuses = [
        NodeStatus::Fresh,
        NodeStatus::Fresh,
        NodeStatus::Fresh,
        stale("config changed: strategy.parameters.threshold"),
        NodeStatus::Fresh,
        NodeStatus::Missing,
        NodeStatus::Fresh,
        stale("upstream sweep[2] changed"),
        NodeStatus::Skipped {
            reason: "when: regime.best.sharpe > 0.5 is false".to_string(),
        },
    ];
    for (n, (node, status)) in view.nodes.iter_mut().zip(statuses).enumerate() {
        node.status = Some(status);
        node.key = Some(format!("{n:x}").repeat(64));
    }
    view
}

fn all_fresh_grid() -> GraphView {
    let mut view = grid();
    for node in &mut view.nodes {
        node.status = Some(NodeStatus::Fresh);
    }
    view.nodes[8].status = Some(NodeStatus::Failed);
    view
}

const PLAIN: RenderOptions = RenderOptions {
    expand: false,
    status: false,
    color: false,
};
const STATUS: RenderOptions = RenderOptions {
    status: true,
    ..PLAIN
};
const EXPAND: RenderOptions = RenderOptions {
    expand: true,
    ..PLAIN
};
const EXPAND_STATUS: RenderOptions = RenderOptions {
    expand: true,
    status: true,
    color: false,
};

/// Snapshots `view` in all four formats as `<name>_<format>`.
fn snapshot_all(name: &str, view: &GraphView, opts: &RenderOptions) {
    for format in Format::ALL {
        let out = render(view, format, opts);
        assert_eq!(out, render(view, format, opts), "deterministic");
        insta::assert_snapshot!(format!("{name}_{format}"), out);
    }
}

#[test]
fn chain_of_three() {
    snapshot_all("chain", &chain(), &PLAIN);
}

#[test]
fn diamond_graph() {
    snapshot_all("diamond", &diamond(), &PLAIN);
}

#[test]
fn fan_out_fan_in() {
    snapshot_all("fan", &fan(), &PLAIN);
}

#[test]
fn composite_namespaces() {
    snapshot_all("composite", &composite(), &PLAIN);
}

#[test]
fn grid_collapsed() {
    snapshot_all("grid_collapsed", &grid(), &PLAIN);
}

#[test]
fn grid_expanded() {
    snapshot_all("grid_expanded", &grid(), &EXPAND);
}

#[test]
fn grid_with_status_collapsed() {
    snapshot_all("grid_status_collapsed", &grid_status(), &STATUS);
}

#[test]
fn grid_with_status_expanded() {
    snapshot_all("grid_status_expanded", &grid_status(), &EXPAND_STATUS);
}

#[test]
fn fresh_group_and_failed_node() {
    snapshot_all("grid_fresh_failed", &all_fresh_grid(), &STATUS);
}

#[test]
fn status_hidden_unless_asked() {
    let mut view = grid_status();
    for node in &mut view.nodes {
        node.key = None;
    }
    for opts in [PLAIN, EXPAND] {
        for format in Format::ALL {
            assert_eq!(
                render(&view, format, &opts),
                render(&grid(), format, &opts),
                "{format}"
            );
        }
    }
}

#[test]
fn text_in_colour() {
    let opts = RenderOptions {
        color: true,
        ..STATUS
    };
    insta::assert_snapshot!(render(&grid_status(), Format::Text, &opts));
}

#[test]
fn composite_with_status_and_nesting() {
    let mut view = composite();
    view.nodes
        .insert(0, node("morning/prices/fetch", "command", &[]));
    for node in &mut view.nodes[1..] {
        node.deps = node.deps.iter().map(|d| d + 1).collect();
    }
    view.nodes[1].deps = vec![0];
    view.nodes[0].status = Some(NodeStatus::Fresh);
    view.nodes[1].status = Some(NodeStatus::Fresh);
    view.nodes[2].status = Some(NodeStatus::Failed);
    view.nodes[3].status = Some(NodeStatus::Missing);
    snapshot_all("composite_nested_status", &view, &STATUS);
}

#[test]
fn awkward_ids_are_escaped() {
    let view = graph(
        "odd \"names\"",
        vec![
            node("say \"hi\"", "command", &[]),
            node("a [b] (c) {d}", "command", &[0]),
            node("x\\", "command", &[1]),
            node("ns with space/<b>&#amp;`tick`|end", "command", &[2]),
            node("end", "command", &[3]),
        ],
    );
    snapshot_all("awkward", &view, &PLAIN);
}

#[test]
fn format_names_round_trip() {
    for format in Format::ALL {
        assert_eq!(format.name().parse::<Format>(), Ok(format));
    }
    assert!("svg".parse::<Format>().is_err());
}

fn row(node: &str, outcome: Status, seconds: Option<f64>) -> SummaryRow {
    SummaryRow {
        node: node.to_string(),
        outcome,
        seconds,
    }
}

#[test]
fn summary_table() {
    let rows = vec![
        row("ingest", Status::Ran, Some(0.123)),
        row("morning/features", Status::Cached, None),
        row("sweep[0]", Status::Ran, Some(1.5)),
        row("sweep[1]", Status::Cached, None),
        row("regime", Status::Failed, Some(12.0)),
        row("report", Status::Skipped, None),
    ];
    insta::assert_snapshot!(render_summary(&rows, 14.016, false));
}

#[test]
fn summary_collapses_many_trials() {
    let mut rows = vec![row("ingest", Status::Cached, None)];
    for n in 0..100 {
        let outcome = if n % 40 == 7 {
            Status::Ran
        } else {
            Status::Cached
        };
        let seconds = (outcome == Status::Ran).then_some(0.5);
        rows.push(row(&format!("sweep[{n}]"), outcome, seconds));
    }
    rows.push(row("regime", Status::Ran, Some(2.25)));
    let out = render_summary(&rows, 3.9, false);
    insta::assert_snapshot!(out);
    assert!(out.contains("sweep[0..99] ×100 trials  3 ran, 97 cached"));
}

#[test]
fn summary_in_colour() {
    let mut rows = vec![row("ingest", Status::Ran, Some(0.2))];
    for n in 0..5 {
        let outcome = if n == 2 {
            Status::Failed
        } else {
            Status::Cached
        };
        rows.push(row(&format!("sweep[{n}]"), outcome, None));
    }
    insta::assert_snapshot!(render_summary(&rows, 0.25, true));
}

#[test]
fn empty_inputs() {
    let view = graph("empty", vec![]);
    for format in Format::ALL {
        let out = render(&view, format, &STATUS);
        insta::assert_snapshot!(format!("empty_{format}"), out);
    }
    assert_eq!(
        render_summary(&[], 0.0, false),
        "0 ran, 0 cached, 0 skipped, 0 failed in 0.00s\n"
    );
}
