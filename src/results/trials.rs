//! The table of a sweep: one row per trial of a grid phase, with its
//! parameters, its status and the metrics of its last build.

use serde_json::{Value, json};

use super::table::{Table, compare};
use crate::graph::Graph;
use crate::phases::Role;
use crate::phases::split::Split;
use crate::plan::{Prediction, Verdict};
use crate::run::RunContext;

/// The metrics a trial row shows, in this order (see `docs/reference.md`,
/// Metrics). `--sort` orders these descending.
pub const METRICS: &[&str] = &[
    "sharpe",
    "sortino",
    "total_return",
    "cagr",
    "max_drawdown",
    "calmar",
    "volatility",
    "trades",
    "win_rate",
    "exposure",
];

/// The train and test figures of a trial in a research workflow.
pub const SPLIT_METRICS: &[&str] = &[
    "train_sharpe",
    "test_sharpe",
    "train_total_return",
    "test_total_return",
];

/// The modes that choose on the train part of the split.
const RESEARCH_MODES: &[&str] = &["analysis", "signal_replay"];

/// The split of the workflow's research phases: the `split` of the first
/// node of a [`RESEARCH_MODES`] mode (every such node's config holds its
/// split, the default written out); `None` without a research phase.
fn research_split(graph: &Graph) -> Option<Split> {
    graph
        .nodes
        .iter()
        .find(|n| RESEARCH_MODES.contains(&n.mode.as_str()) && n.config.get("split").is_some())
        .and_then(|n| crate::phases::split::split(&n.config).ok())
}

/// A trial's figures on the train part of the bars and on the test part,
/// as the research phases split them ([`Split::parts`]): the trial's
/// strategy is run over its data once, the equity curve is cut at the
/// end of the train part, and the test part (after any validation part)
/// is rebased to 1 where it starts. `None` for several symbols, or when
/// the data cannot be read or split.
pub fn split_figures(node: &crate::graph::Node, split: &Split) -> Option<[Value; 4]> {
    use crate::market::Metrics;
    use crate::phases::{config, data, driver};
    let config = &node.config;
    let spec = config::data_spec(config, &node.base_dir).ok()?;
    if spec.symbols.len() != 1 {
        return None;
    }
    let strategy = config::strategy(config).ok()?;
    let fee = config::fee(config).ok()?;
    let fill = config::fill(config).ok()?;
    let bars = data::load_bars(&spec, &mut std::io::sink()).ok()?;
    let b = bars.first()?;
    let run = driver::run(b, strategy.positions(b), fee, fill);
    let e = &run.equity;
    let n = e.len();
    if n < 3 {
        return None;
    }
    let parts = split.parts(&b.ts).ok()?;
    let (train_end, test_start) = (parts.train_end, parts.validation_end);
    if train_end < 2 || test_start < 1 || test_start >= n {
        return None;
    }
    let ppy = b.periods_per_year();
    let train = Metrics::from_equity(&e[..train_end], ppy);
    let base = e[test_start - 1];
    let test_e: Vec<f64> = if base > 0.0 {
        e[test_start - 1..].iter().map(|x| x / base).collect()
    } else {
        vec![0.0; n - test_start + 1]
    };
    let test = Metrics::from_equity(&test_e, ppy);
    let num = |x: Option<f64>| {
        x.and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number)
    };
    Some([
        num(train.sharpe),
        num(test.sharpe),
        num(Some(train.total_return)),
        num(Some(test.total_return)),
    ])
}

/// The grid phases of `graph`: the ids of its gather nodes, in order.
pub fn grid_phases(graph: &Graph) -> Vec<String> {
    graph
        .order
        .iter()
        .map(|&i| &graph.nodes[i])
        .filter(|n| matches!(n.role, Role::Gather { .. }))
        .map(|n| n.id.clone())
        .collect()
}

fn status_name(p: &Prediction) -> &'static str {
    match &p.verdict {
        Verdict::Fresh => "fresh",
        Verdict::Missing => "missing",
        Verdict::Skipped(_) => "skipped",
        Verdict::Stale(_) => "stale",
    }
}

/// A trial before it becomes a row: its phase, index, grid values and
/// node index.
type TrialRow = (String, usize, Vec<(String, Value)>, usize);

/// One row per trial of `phases`: `phase` (when there are several),
/// `trial`, each grid parameter, `status` (fresh, stale, missing), then
/// [`METRICS`] from the trial's last stored build (null when it has none
/// or the metric is undefined), then, when the workflow has a research
/// phase (one with a train/test `split`), [`SPLIT_METRICS`].
pub fn table(ctx: &RunContext, predictions: &[Prediction], phases: &[String]) -> Table {
    let graph = &ctx.graph;
    let mut params: Vec<String> = Vec::new();
    let mut rows: Vec<TrialRow> = Vec::new();
    let mut grids: std::collections::HashMap<String, Vec<crate::graph::grid::Trial>> =
        std::collections::HashMap::new();
    for &i in &graph.order {
        let node = &graph.nodes[i];
        let (Role::Trial { index, .. }, Some(group)) = (&node.role, &node.group) else {
            continue;
        };
        if !phases.contains(group) {
            continue;
        }
        let expanded = grids.entry(group.clone()).or_insert_with(|| {
            // The gather node keeps the phase's `grid:`; trials lose it.
            let gather = graph.index_of(group).map(|g| &graph.nodes[g].config);
            let prefix = gather.and_then(|c| ctx.factory.get(&node.mode)?.trial_prefix(c));
            gather
                .and_then(|c| crate::graph::grid::expand(c.get("grid")?, prefix.as_deref()).ok())
                .unwrap_or_default()
        });
        let trial_params = expanded
            .get(*index)
            .map(|t| t.params.clone())
            .unwrap_or_default();
        for (k, _) in &trial_params {
            if !params.contains(k) {
                params.push(k.clone());
            }
        }
        rows.push((group.clone(), *index, trial_params, i));
    }
    let several = phases.len() > 1;
    let mut columns = Vec::new();
    if several {
        columns.push("phase".to_string());
    }
    columns.push("trial".into());
    columns.extend(params.iter().cloned());
    columns.push("status".into());
    columns.extend(METRICS.iter().map(|m| m.to_string()));
    let split = research_split(graph);
    if split.is_some() {
        columns.extend(SPLIT_METRICS.iter().map(|m| m.to_string()));
    }
    let mut t = Table::new(columns);
    for (group, index, trial_params, i) in rows {
        let mut row = Vec::new();
        if several {
            row.push(json!(group));
        }
        row.push(json!(index));
        for p in &params {
            row.push(
                trial_params
                    .iter()
                    .find(|(k, _)| k == p)
                    .map_or(Value::Null, |(_, v)| v.clone()),
            );
        }
        row.push(json!(status_name(&predictions[i])));
        let metrics =
            super::stored_entry(&ctx.store, &ctx.stats, &ctx.workflow_id, &graph.nodes[i].id)
                .ok()
                .flatten()
                .and_then(|e| super::metrics_of(&e))
                .unwrap_or(Value::Null);
        for m in METRICS {
            row.push(metrics.get(*m).cloned().unwrap_or(Value::Null));
        }
        if let Some(split) = &split {
            let figures = split_figures(&graph.nodes[i], split);
            row.extend(figures.unwrap_or([Value::Null, Value::Null, Value::Null, Value::Null]));
        }
        t.rows.push(row);
    }
    t
}

/// Sorts by `column`: descending for a metric (a name in [`METRICS`]),
/// ascending for anything else; a leading `-` or `+` forces descending or
/// ascending. Empty cells go last either way; ties keep their order.
pub fn sort(t: &mut Table, column: &str) -> Result<(), String> {
    let (name, descending) = match column.split_at_checked(1) {
        Some(("-", rest)) => (rest, true),
        Some(("+", rest)) => (rest, false),
        _ => (
            column,
            METRICS.contains(&column) || SPLIT_METRICS.contains(&column),
        ),
    };
    let i = t.column(name).ok_or_else(|| {
        format!(
            "no column `{name}` to sort by (columns: {})",
            t.columns.join(", ")
        )
    })?;
    t.rows.sort_by(|a, b| compare(&a[i], &b[i], descending));
    Ok(())
}

/// A two-parameter grid as a matrix: one row per value of `rows`, one
/// column per value of `cols` (both ascending), cells from `value`.
pub fn pivot(t: &Table, rows: &str, cols: &str, value: &str) -> Result<Table, String> {
    let find = |name: &str| {
        t.column(name).ok_or_else(|| {
            format!(
                "no column `{name}` to pivot on (columns: {})",
                t.columns.join(", ")
            )
        })
    };
    let (r, c, v) = (find(rows)?, find(cols)?, find(value)?);
    let distinct = |i: usize| {
        let mut vals: Vec<Value> = Vec::new();
        for row in &t.rows {
            if !vals.contains(&row[i]) {
                vals.push(row[i].clone());
            }
        }
        vals.sort_by(|a, b| compare(a, b, false));
        vals
    };
    let (row_vals, col_vals) = (distinct(r), distinct(c));
    let mut columns = vec![format!("{rows} \\ {cols}")];
    columns.extend(col_vals.iter().map(super::table::full));
    let mut out = Table::new(columns);
    for rv in &row_vals {
        let mut line = vec![rv.clone()];
        for cv in &col_vals {
            let mut hits = t.rows.iter().filter(|row| &row[r] == rv && &row[c] == cv);
            let cell = hits.next().map_or(Value::Null, |row| row[v].clone());
            if hits.next().is_some() {
                return Err(format!(
                    "several trials have {rows}={} and {cols}={}: filter to one first (--filter)",
                    super::table::full(rv),
                    super::table::full(cv)
                ));
            }
            line.push(cell);
        }
        out.rows.push(line);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table {
            columns: vec!["trial".into(), "a".into(), "b".into(), "sharpe".into()],
            rows: vec![
                vec![json!(0), json!(10), json!(1), json!(0.5)],
                vec![json!(1), json!(10), json!(2), Value::Null],
                vec![json!(2), json!(20), json!(1), json!(-0.2)],
                vec![json!(3), json!(20), json!(2), json!(0.9)],
            ],
        }
    }

    #[test]
    fn metrics_sort_descending_with_null_last() {
        let mut t = sample();
        sort(&mut t, "sharpe").unwrap();
        let order: Vec<_> = t.rows.iter().map(|r| r[0].clone()).collect();
        assert_eq!(order, [json!(3), json!(0), json!(2), json!(1)]);
        sort(&mut t, "+sharpe").unwrap();
        assert_eq!(t.rows[0][0], json!(2));
        assert_eq!(t.rows[3][0], json!(1));
        sort(&mut t, "a").unwrap();
        assert_eq!(t.rows[0][1], json!(10));
        assert!(
            sort(&mut t, "nope")
                .unwrap_err()
                .contains("columns: trial, a, b, sharpe")
        );
    }

    #[test]
    fn pivot_lays_values_out_by_two_parameters() {
        let p = pivot(&sample(), "a", "b", "sharpe").unwrap();
        assert_eq!(p.columns, ["a \\ b", "1", "2"]);
        assert_eq!(p.rows[0], [json!(10), json!(0.5), Value::Null]);
        assert_eq!(p.rows[1], [json!(20), json!(-0.2), json!(0.9)]);
        let err = pivot(&sample(), "a", "a", "sharpe").unwrap_err();
        assert!(err.contains("several trials"), "{err}");
    }
}
