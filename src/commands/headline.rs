//! The headline figures a build prints for each backtest it ran or took
//! from the store, so a simple backtest answers "how did it do?" without
//! `admf show`.

use serde_json::Value;

use crate::graph::Node;
use crate::run::{NodeResult, RunContext};

/// At most this many backtests get a headline line; a workflow with more
/// has a report for that.
pub const MAX_LINES: usize = 5;

/// `total return 85.31%, CAGR 2.99%, Sharpe 0.321, max drawdown -48.09%,
/// 64 trades` for a backtest node's metrics; `None` for other modes.
pub fn headline(ctx: &RunContext, node: &Node, result: &NodeResult) -> Option<String> {
    if node.mode == "holdout" {
        return holdout(ctx, node, result);
    }
    if node.mode != "backtest" {
        return None;
    }
    // A node settled from the node trace holds no entry: look it up.
    let bytes = result.entry_in(ctx)?.read("metrics.json").ok()?;
    Some(describe(&serde_json::from_slice(&bytes).ok()?))
}

fn describe(m: &Value) -> String {
    let percent = |key: &str| {
        m.get(key)
            .and_then(Value::as_f64)
            .map_or("n/a".to_string(), |x| format!("{:.2}%", x * 100.0))
    };
    let sharpe = m
        .get("sharpe")
        .and_then(Value::as_f64)
        .map_or("n/a".to_string(), |x| format!("{x:.3}"));
    let trades = m.get("trades").and_then(Value::as_u64).unwrap_or(0);
    format!(
        "total return {}, CAGR {}, Sharpe {sharpe}, max drawdown {}, {trades} trades",
        percent("total_return"),
        percent("cagr"),
        percent("max_drawdown"),
    )
}

/// A sealed holdout's figures and how many builds of this workflow have
/// looked at them, this one included (the run ledger counts every build
/// that ran the node or took it from the store).
fn holdout(ctx: &RunContext, node: &Node, result: &NodeResult) -> Option<String> {
    let bytes = result.entry_in(ctx)?.read("metrics.json").ok()?;
    let m: Value = serde_json::from_slice(&bytes).ok()?;
    let before = ctx
        .store
        .builds_with_node(&ctx.workflow_id, &node.id)
        .ok()?;
    let looks = before + 1;
    Some(format!(
        "holdout from {} ({} bars): {}; seen by {looks} build{} of this workflow{}",
        m["from_ts"].as_str().unwrap_or(""),
        m["bars"],
        describe(&m["holdout"]),
        if looks == 1 { "" } else { "s" },
        if looks > 1 {
            ", so it is no longer untouched"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn figures_are_percentages_and_an_undefined_one_says_so() {
        let m = json!({"total_return": 0.853125, "cagr": 0.0299, "sharpe": 0.32149,
                       "max_drawdown": -0.4809, "trades": 64});
        assert_eq!(
            describe(&m),
            "total return 85.31%, CAGR 2.99%, Sharpe 0.321, max drawdown -48.09%, 64 trades"
        );
        let m = json!({"total_return": 0.0, "cagr": 0.0, "sharpe": null, "max_drawdown": 0.0, "trades": 0});
        assert!(describe(&m).contains("Sharpe n/a"));
    }
}
