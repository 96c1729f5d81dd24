//! The run history as tables: `admf runs`, `admf diff`, `admf log` and
//! `admf exp show`, and how a run is named on the command line.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::table::Table;
use crate::store::{RunNode, RunRecord};

/// `2026-11-30 02:21:36` (UTC) for a time in ms since the epoch.
pub fn time_text(unix_ms: u64) -> String {
    jiff::Timestamp::from_millisecond(unix_ms as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Per status, how many nodes of `run` had it.
pub fn counts(run: &RunRecord) -> Map<String, Value> {
    let mut m = Map::new();
    for s in crate::status::Status::ALL.map(|s| s.name()) {
        let n = run.nodes.iter().filter(|n| n.status == s).count();
        m.insert(s.to_string(), json!(n));
    }
    m
}

fn commit_text(run: &RunRecord) -> Value {
    match (&run.git_commit, run.git_dirty) {
        (Some(c), Some(true)) => json!(format!("{}+", &c[..c.len().min(10)])),
        (Some(c), _) => json!(&c[..c.len().min(10)]),
        _ => Value::Null,
    }
}

/// One row per run, oldest first.
pub fn runs_table(runs: &[RunRecord]) -> Table {
    let mut t = Table::new(
        [
            "run", "started", "name", "workflow", "commit", "sets", "ran", "cached", "skipped",
            "failed", "not_run", "seconds",
        ]
        .map(String::from)
        .to_vec(),
    );
    for r in runs {
        let c = counts(r);
        let mut row = vec![
            json!(r.run_id),
            json!(time_text(r.started_unix_ms)),
            json!(r.name),
            json!(r.workflow),
            commit_text(r),
            json!(r.sets.join(" ")),
        ];
        row.extend(c.values().cloned());
        row.push(json!(
            (r.finished_unix_ms.saturating_sub(r.started_unix_ms)) as f64 / 1000.0
        ));
        t.rows.push(row);
    }
    t
}

/// A run as `--json` prints it: everything but the nodes, which
/// `admf diff` and `admf log` show.
pub fn run_json(r: &RunRecord) -> Value {
    json!({
        "run": r.run_id,
        "name": r.name,
        "workflow": r.workflow,
        "workflow_id": r.workflow_id,
        "started_unix_ms": r.started_unix_ms,
        "finished_unix_ms": r.finished_unix_ms,
        "git_commit": r.git_commit,
        "git_dirty": r.git_dirty,
        "digest": r.digest,
        "sets": r.sets,
        "targets": r.targets,
        "nodes": counts(r),
    })
}

/// How a run is named: a run id or a unique prefix of one, an experiment
/// name (its latest run), or through a workflow: `WF` (its latest run),
/// `WF@-N` (N runs before it), `WF@NAME`.
pub enum RunSpec<'a> {
    /// Runs of one workflow (its id) and the selector after `@`.
    Workflow { id: String, selector: &'a str },
    /// A run id, id prefix or experiment name.
    Plain(&'a str),
}

/// Picks the run `spec` names among `runs` (oldest first).
pub fn resolve<'r>(runs: &'r [RunRecord], spec: &RunSpec<'_>) -> Result<&'r RunRecord, String> {
    match spec {
        RunSpec::Workflow { id, selector } => {
            let mine: Vec<&RunRecord> = runs.iter().filter(|r| &r.workflow_id == id).collect();
            if mine.is_empty() {
                return Err("the workflow has no recorded runs in this store".into());
            }
            if selector.is_empty() || *selector == "0" || *selector == "-0" {
                return Ok(mine[mine.len() - 1]);
            }
            if let Some(n) = selector.strip_prefix('-')
                && let Ok(n) = n.parse::<usize>()
            {
                return mine
                    .len()
                    .checked_sub(n + 1)
                    .map(|i| mine[i])
                    .ok_or_else(|| {
                        format!(
                            "`@-{n}`: the workflow has only {} recorded runs",
                            mine.len()
                        )
                    });
            }
            mine.iter()
                .rev()
                .find(|r| r.name.as_deref() == Some(*selector))
                .copied()
                .ok_or_else(|| format!("no run of the workflow is named `{selector}`"))
        }
        RunSpec::Plain(text) => {
            if let Some(r) = runs.iter().find(|r| r.run_id == *text) {
                return Ok(r);
            }
            if let Some(r) = runs.iter().rev().find(|r| r.name.as_deref() == Some(*text)) {
                return Ok(r);
            }
            let prefixed: Vec<&RunRecord> =
                runs.iter().filter(|r| r.run_id.starts_with(text)).collect();
            match prefixed.as_slice() {
                [one] => Ok(one),
                [] => Err(format!(
                    "no run `{text}` (a run id, an experiment name, `WF`, `WF@-1` or `WF@NAME`; `admf runs` lists them)"
                )),
                many => Err(format!(
                    "`{text}` is the start of {} run ids; give more of it",
                    many.len()
                )),
            }
        }
    }
}

/// `--set` values as key → value (the last one wins, as in a build).
fn sets_map(r: &RunRecord) -> BTreeMap<String, String> {
    r.sets
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (s.clone(), String::new()),
        })
        .collect()
}

/// What differs between two runs, `dvc params diff` / `dvc metrics diff`
/// style. With `all`, unchanged rows too.
pub struct Diff {
    pub params: Table,
    pub keys: Table,
    pub metrics: Table,
    pub digest_changed: Option<bool>,
}

pub fn diff(a: &RunRecord, b: &RunRecord, all: bool) -> Diff {
    let (pa, pb) = (sets_map(a), sets_map(b));
    let mut params = Table::new(vec!["param".into(), "a".into(), "b".into()]);
    let names: std::collections::BTreeSet<&String> = pa.keys().chain(pb.keys()).collect();
    for k in names {
        let (va, vb) = (pa.get(k), pb.get(k));
        if all || va != vb {
            params.rows.push(vec![json!(k), json!(va), json!(vb)]);
        }
    }
    let by_node = |r: &'_ RunRecord| -> BTreeMap<String, RunNode> {
        r.nodes
            .iter()
            .map(|n| (n.node.clone(), n.clone()))
            .collect()
    };
    let (na, nb) = (by_node(a), by_node(b));
    let mut order: Vec<&String> = b.nodes.iter().map(|n| &n.node).collect();
    order.extend(
        a.nodes
            .iter()
            .map(|n| &n.node)
            .filter(|n| !nb.contains_key(*n)),
    );
    let short = |k: &Option<String>| k.as_ref().map(|k| k[..k.len().min(12)].to_string());
    let mut keys = Table::new(
        ["node", "a_key", "b_key", "a_status", "b_status"]
            .map(String::from)
            .to_vec(),
    );
    let mut metrics = Table::new(
        ["node", "metric", "a", "b", "change"]
            .map(String::from)
            .to_vec(),
    );
    for node in order {
        let (x, y) = (na.get(node), nb.get(node));
        let (kx, ky) = (x.and_then(|n| n.key.clone()), y.and_then(|n| n.key.clone()));
        if all || kx != ky {
            keys.rows.push(vec![
                json!(node),
                json!(short(&kx)),
                json!(short(&ky)),
                json!(x.map(|n| &n.status)),
                json!(y.map(|n| &n.status)),
            ]);
        }
        let empty = Map::new();
        let mx = x.map_or(&empty, |n| &n.metrics);
        let my = y.map_or(&empty, |n| &n.metrics);
        let mut paths: Vec<&String> = my.keys().collect();
        paths.extend(mx.keys().filter(|k| !my.contains_key(*k)));
        for path in paths {
            let (vx, vy) = (
                mx.get(path).cloned().unwrap_or(Value::Null),
                my.get(path).cloned().unwrap_or(Value::Null),
            );
            if !all && vx == vy {
                continue;
            }
            let change = match (vx.as_i64(), vy.as_i64(), vx.as_f64(), vy.as_f64()) {
                (Some(p), Some(q), _, _) => json!(q.saturating_sub(p)),
                (_, _, Some(p), Some(q)) => {
                    serde_json::Number::from_f64(q - p).map_or(Value::Null, Value::Number)
                }
                _ => Value::Null,
            };
            metrics
                .rows
                .push(vec![json!(node), json!(path), vx, vy, change]);
        }
    }
    let digest_changed = match (&a.digest, &b.digest) {
        (Some(x), Some(y)) => Some(x != y),
        _ => None,
    };
    Diff {
        params,
        keys,
        metrics,
        digest_changed,
    }
}

/// The metric columns of a node's history: those of
/// [`super::trials::METRICS`] it has, else its first eight.
fn log_metrics(nodes: &[&RunNode]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for n in nodes {
        for k in n.metrics.keys() {
            if !seen.contains(k) {
                seen.push(k.clone());
            }
        }
    }
    let known: Vec<String> = super::trials::METRICS
        .iter()
        .filter(|m| seen.iter().any(|s| s == *m))
        .map(|m| m.to_string())
        .collect();
    if known.is_empty() {
        seen.truncate(8);
        seen
    } else {
        known
    }
}

/// One row per run of the workflow that selected `node`, oldest first.
pub fn log_table(runs: &[RunRecord], node: &str) -> Table {
    let hits: Vec<(&RunRecord, &RunNode)> = runs
        .iter()
        .filter_map(|r| r.nodes.iter().find(|n| n.node == node).map(|n| (r, n)))
        .collect();
    let nodes: Vec<&RunNode> = hits.iter().map(|(_, n)| *n).collect();
    let metrics = log_metrics(&nodes);
    let mut columns: Vec<String> = ["run", "started", "name", "status", "key", "seconds"]
        .map(String::from)
        .to_vec();
    columns.extend(metrics.iter().cloned());
    let mut t = Table::new(columns);
    for (r, n) in hits {
        let mut row = vec![
            json!(r.run_id),
            json!(time_text(r.started_unix_ms)),
            json!(r.name),
            json!(n.status),
            json!(n.key.as_ref().map(|k| &k[..k.len().min(12)])),
            json!(n.duration_ms / 1000.0),
        ];
        row.extend(
            metrics
                .iter()
                .map(|m| n.metrics.get(m).cloned().unwrap_or(Value::Null)),
        );
        t.rows.push(row);
    }
    t
}

/// Named runs side by side, like `dvc exp show`: the latest run of each
/// name, oldest first; a column per `--set` key, then per metric whose
/// last path segment is in `leaves` and that lies at most one level deep
/// (`sharpe`, `best.sharpe`, `test.sharpe`, not per-regime figures), of
/// every node but single trials, as `node:path`.
pub fn experiments_table(runs: &[RunRecord], leaves: &[String]) -> Table {
    let mut latest: Vec<&RunRecord> = Vec::new();
    for r in runs.iter().rev() {
        if let Some(name) = &r.name
            && !latest.iter().any(|l| l.name.as_ref() == Some(name))
        {
            latest.push(r);
        }
    }
    latest.reverse();
    let mut params: Vec<String> = Vec::new();
    let mut metrics: Vec<(String, String)> = Vec::new();
    for r in &latest {
        for k in sets_map(r).keys() {
            if !params.contains(k) {
                params.push(k.clone());
            }
        }
        for n in r.nodes.iter().filter(|n| !n.node.ends_with(']')) {
            for path in n.metrics.keys() {
                let leaf = path.rsplit('.').next().unwrap_or(path);
                let col = (n.node.clone(), path.clone());
                let shallow = path.matches('.').count() <= 1;
                if shallow && leaves.iter().any(|l| l == leaf) && !metrics.contains(&col) {
                    metrics.push(col);
                }
            }
        }
    }
    let mut columns: Vec<String> = ["name", "run", "started", "commit"]
        .map(String::from)
        .to_vec();
    columns.extend(params.iter().cloned());
    columns.extend(metrics.iter().map(|(n, p)| format!("{n}:{p}")));
    let mut t = Table::new(columns);
    for r in latest {
        let sets = sets_map(r);
        let mut row = vec![
            json!(r.name),
            json!(r.run_id),
            json!(time_text(r.started_unix_ms)),
            commit_text(r),
        ];
        row.extend(params.iter().map(|p| json!(sets.get(p))));
        for (node, path) in &metrics {
            row.push(
                r.nodes
                    .iter()
                    .find(|n| &n.node == node)
                    .and_then(|n| n.metrics.get(path).cloned())
                    .unwrap_or(Value::Null),
            );
        }
        t.rows.push(row);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, name: Option<&str>, sets: &[&str], sharpe: Option<f64>) -> RunRecord {
        let mut metrics = Map::new();
        metrics.insert("sharpe".into(), json!(sharpe));
        RunRecord {
            run_id: id.into(),
            workflow_id: "wf".into(),
            name: name.map(String::from),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            nodes: vec![RunNode {
                node: "bt".into(),
                key: Some(format!("{id}aaaaaaaaaaaaaaaaaaaaaaaa")),
                status: "ran".into(),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn resolves_ids_prefixes_names_and_workflow_offsets() {
        let runs = vec![
            run("100-1-0", Some("base"), &[], Some(0.5)),
            run("200-1-0", None, &[], None),
            run("300-1-0", Some("fast"), &[], None),
        ];
        let wf = |s| RunSpec::Workflow {
            id: "wf".into(),
            selector: s,
        };
        assert_eq!(resolve(&runs, &wf("")).unwrap().run_id, "300-1-0");
        assert_eq!(resolve(&runs, &wf("-1")).unwrap().run_id, "200-1-0");
        assert_eq!(resolve(&runs, &wf("base")).unwrap().run_id, "100-1-0");
        assert!(resolve(&runs, &wf("-3")).unwrap_err().contains("only 3"));
        assert_eq!(
            resolve(&runs, &RunSpec::Plain("2")).unwrap().run_id,
            "200-1-0"
        );
        assert_eq!(
            resolve(&runs, &RunSpec::Plain("fast")).unwrap().run_id,
            "300-1-0"
        );
        assert!(resolve(&runs, &RunSpec::Plain("nope")).is_err());
        let twins = vec![
            run("100-1-0", None, &[], None),
            run("100-2-0", None, &[], None),
        ];
        assert!(
            resolve(&twins, &RunSpec::Plain("100"))
                .unwrap_err()
                .contains("start of 2")
        );
    }

    #[test]
    fn diff_shows_changed_params_keys_and_metric_deltas() {
        let a = run(
            "1",
            None,
            &["bt.strategy.parameters.lookback=20"],
            Some(0.5),
        );
        let b = run(
            "2",
            None,
            &["bt.strategy.parameters.lookback=30"],
            Some(0.75),
        );
        let d = diff(&a, &b, false);
        assert_eq!(
            d.params.rows,
            [vec![
                json!("bt.strategy.parameters.lookback"),
                json!("20"),
                json!("30")
            ]]
        );
        assert_eq!(d.keys.rows.len(), 1);
        assert_eq!(
            d.metrics.rows,
            [vec![
                json!("bt"),
                json!("sharpe"),
                json!(0.5),
                json!(0.75),
                json!(0.25)
            ]]
        );
        // An undefined metric has no change, not a change from 0.
        let c = run("3", None, &[], None);
        let d = diff(&a, &c, false);
        assert_eq!(d.metrics.rows[0][3], Value::Null);
        assert_eq!(d.metrics.rows[0][4], Value::Null);
        assert!(diff(&a, &a, false).metrics.rows.is_empty());
        assert_eq!(diff(&a, &a, true).metrics.rows.len(), 1);
    }

    #[test]
    fn experiments_show_the_latest_run_of_each_name() {
        let runs = vec![
            run("1", Some("base"), &["x=1"], Some(0.1)),
            run("2", Some("wide"), &["x=2"], Some(0.2)),
            run("3", Some("base"), &["x=3"], Some(0.3)),
            run("4", None, &["x=4"], Some(0.4)),
        ];
        let t = experiments_table(&runs, &["sharpe".to_string()]);
        assert_eq!(t.columns[4..], ["x", "bt:sharpe"]);
        let names: Vec<_> = t
            .rows
            .iter()
            .map(|r| (r[0].clone(), r[4].clone(), r[5].clone()))
            .collect();
        assert_eq!(
            names,
            [
                (json!("wide"), json!("2"), json!(0.2)),
                (json!("base"), json!("3"), json!(0.3))
            ]
        );
    }
}
