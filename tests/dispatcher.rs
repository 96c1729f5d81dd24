//! The dispatcher runs exactly what the configuration says, in the planned
//! order, through a fake factory that records each execution.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use admf::dispatch::{DispatchOptions, Observer, dispatch};
use admf::executor::LocalExecutor;
use admf::phases::{ConfigIssue, Factory, Phase, PhaseContext, PhaseError};
use admf::run::RunContext;
use admf::stat_cache::StatCache;
use admf::store::Store;
use serde_json::Value;

struct Recorder {
    mode: &'static str,
    order: Arc<Mutex<Vec<String>>>,
}

impl Phase for Recorder {
    fn version(&self) -> &'static str {
        "fake-1"
    }
    fn validate(&self, _: &Value) -> Result<(), ConfigIssue> {
        Ok(())
    }
    fn inputs(&self, _: &Value, _: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(Vec::new())
    }
    fn expands_grid(&self) -> bool {
        self.mode == "signal_generation"
    }
    fn execute(&self, ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        self.order.lock().unwrap().push(ctx.node.to_string());
        let upstream: Vec<&str> = ctx.upstream.iter().map(|u| u.node.as_str()).collect();
        let text = format!("{} {} after [{}]", self.mode, ctx.node, upstream.join(","));
        std::fs::write(
            ctx.out_dir.join("metrics.json"),
            format!("{{\"note\": \"{text}\"}}"),
        )?;
        Ok(())
    }
}

struct FakeFactory {
    phases: Vec<Recorder>,
}

impl FakeFactory {
    fn new(order: &Arc<Mutex<Vec<String>>>) -> Self {
        let phases = [
            "backtest",
            "analysis",
            "report",
            "signal_generation",
            "signal_replay",
        ]
        .into_iter()
        .map(|mode| Recorder {
            mode,
            order: order.clone(),
        })
        .collect();
        FakeFactory { phases }
    }
}

impl Factory for FakeFactory {
    fn get(&self, mode: &str) -> Option<&dyn Phase> {
        self.phases
            .iter()
            .find(|p| p.mode == mode)
            .map(|p| p as &dyn Phase)
    }
    fn modes(&self) -> Vec<&str> {
        self.phases.iter().map(|p| p.mode).collect()
    }
}

struct Quiet;
impl Observer for Quiet {}

/// Build `files` (name, text; the first is the root workflow) with the fake
/// factory and `jobs` threads; return the executed nodes in order.
fn run(files: &[(&str, &str)], jobs: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    let factory: Arc<dyn Factory> = Arc::new(FakeFactory::new(&order));
    let reads = admf::reads::Reads::new();
    let workflow = admf::workflow::load(&dir.path().join(files[0].0), &[], &reads).unwrap();
    let graph = Arc::new(admf::graph::compile(workflow, factory.as_ref(), &reads).unwrap());
    let ctx = Arc::new(RunContext {
        force: vec![false; graph.nodes.len()],
        graph,
        store: Store::open(&dir.path().join("cache")).unwrap(),
        stats: Arc::new(StatCache::in_memory()),
        factory: factory.clone(),
        workflow_id: "test".into(),
        trace: None,
        remote: None,
        prefetch: Default::default(),
        checked_ahead: Default::default(),
    });
    let executor = LocalExecutor::new(jobs, factory).unwrap();
    let report = dispatch(ctx, &executor, &DispatchOptions::default(), &mut Quiet);
    assert!(report.failed().is_empty());
    order.lock().unwrap().clone()
}

fn position(order: &[String], node: &str) -> usize {
    order
        .iter()
        .position(|n| n == node)
        .unwrap_or_else(|| panic!("{node} did not run: {order:?}"))
}

#[test]
fn test_dispatcher_sequence() {
    let wf = "phases:\n  - {name: phase1, type: backtest}\n  - {name: phase2, type: analysis}\n  - {name: phase3, type: report}\n";
    for jobs in [1, 2] {
        assert_eq!(
            run(&[("wf.yaml", wf)], jobs),
            ["phase1", "phase2", "phase3"]
        );
    }
}

#[test]
fn fan_out_runs_in_declaration_order_with_one_job() {
    let wf = "phases:\n  - {name: root, mode: backtest}\n  - {name: c, mode: analysis, tag: c, depends_on: [root]}\n  - {name: a, mode: analysis, tag: a, depends_on: [root]}\n  - {name: b, mode: analysis, tag: b, depends_on: [root]}\n  - {name: sink, mode: report, depends_on: [a, b, c]}\n";
    assert_eq!(run(&[("wf.yaml", wf)], 1), ["root", "c", "a", "b", "sink"]);
    let parallel = run(&[("wf.yaml", wf)], 2);
    assert_eq!(parallel.first().map(String::as_str), Some("root"));
    assert_eq!(parallel.last().map(String::as_str), Some("sink"));
    assert_eq!(parallel.len(), 5);
}

#[test]
fn diamond_respects_every_edge() {
    let wf = "phases:\n  - {name: top, mode: backtest}\n  - {name: left, mode: analysis, tag: l}\n  - {name: right, mode: analysis, tag: r, depends_on: [top]}\n  - {name: bottom, mode: report, depends_on: [left, right]}\n";
    for jobs in [1, 2] {
        let order = run(&[("wf.yaml", wf)], jobs);
        assert!(position(&order, "top") < position(&order, "left"));
        assert!(position(&order, "top") < position(&order, "right"));
        assert!(
            position(&order, "bottom") > position(&order, "left").max(position(&order, "right"))
        );
    }
}

#[test]
fn identical_nodes_share_one_entry() {
    // Content addressing: same mode, config and upstream outputs → one execution.
    let wf = "phases:\n  - {name: root, mode: backtest}\n  - {name: a, mode: analysis, depends_on: [root]}\n  - {name: b, mode: analysis, depends_on: [root]}\n";
    assert_eq!(run(&[("wf.yaml", wf)], 1), ["root", "a"]);
}

#[test]
fn forward_references_and_roots() {
    // `later` is declared after its dependent; `[]` makes a root.
    let wf = "phases:\n  - {name: first, mode: report, depends_on: [later]}\n  - {name: later, mode: backtest, depends_on: []}\n";
    assert_eq!(run(&[("wf.yaml", wf)], 1), ["later", "first"]);
}

#[test]
fn composites_nest_three_deep_with_namespaced_nodes() {
    let files = [
        (
            "wf.yaml",
            "composite_workflow:\n  phases:\n    - {name: prep, mode: backtest}\n    - name: morning\n      workflow: configs/morning.yaml\n    - {name: wrap, mode: report, depends_on: [morning]}\n",
        ),
        (
            "configs/morning.yaml",
            "phases:\n  - name: scan\n    workflow: deeper/scan.yaml\n  - {name: pick, mode: analysis}\n",
        ),
        (
            "configs/deeper/scan.yaml",
            "phases:\n  - {name: a, mode: backtest}\n  - name: inner\n    workflow: leaf.yaml\n    depends_on: []\n",
        ),
        (
            "configs/deeper/leaf.yaml",
            "phases:\n  - {name: x, mode: signal_generation}\n",
        ),
    ];
    let order = run(&files, 1);
    assert_eq!(
        order,
        [
            "prep",
            "morning/scan/a",
            "morning/scan/inner/x",
            "morning/pick",
            "wrap"
        ]
    );
    // The include follows `prep`, so its roots do; `pick` waits for both sinks of `scan`.
    let parallel = run(&files, 2);
    assert!(position(&parallel, "prep") < position(&parallel, "morning/scan/inner/x"));
    assert!(position(&parallel, "morning/pick") > position(&parallel, "morning/scan/a"));
    assert!(position(&parallel, "morning/pick") > position(&parallel, "morning/scan/inner/x"));
    assert_eq!(position(&parallel, "wrap"), 4);
}

#[test]
fn every_surface_form_yields_the_same_plan() {
    let named = "phases:\n  - {name: discovery, mode: signal_generation}\n  - {name: regimes, mode: analysis}\n  - {name: ensemble, mode: signal_replay}\n";
    let single_key = "phases:\n  - discovery: {mode: signal_generation}\n  - regimes:\n      mode: analysis\n  - ensemble:\n      type: signal_replay\n";
    let wrapped = "research:\n  phases:\n    - {name: discovery, type: signal_generation}\n    - {name: regimes, type: analysis}\n    - {name: ensemble, type: signal_replay}\n";
    let expected = ["discovery", "regimes", "ensemble"];
    for wf in [named, single_key, wrapped] {
        assert_eq!(run(&[("wf.yaml", wf)], 1), expected, "{wf}");
    }
    let simple = "data: {source: csv, symbols: [SPY], path: x.csv}\nstrategy: {type: momentum, parameters: {lookback: 20}}\n";
    assert_eq!(run(&[("wf.yaml", simple)], 1), ["backtest"]);
}

#[test]
fn grid_trials_run_before_their_gather_node() {
    let wf = "strategy: {type: momentum}\nphases:\n  - name: sweep\n    mode: signal_generation\n    grid: {lookback: [10, 20], threshold: \"range(1, 3, 1)\"}\n  - {name: after, mode: report}\n";
    let order = run(&[("wf.yaml", wf)], 1);
    assert_eq!(
        order,
        [
            "sweep[0]", "sweep[1]", "sweep[2]", "sweep[3]", "sweep[4]", "sweep[5]", "sweep",
            "after"
        ]
    );
}
