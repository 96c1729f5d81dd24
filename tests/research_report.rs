//! The report is one self-contained HTML page: no network, no script,
//! charts as inline SVG.

mod common;
mod research;

use research::{project, reports, workflow};

#[test]
fn report_is_self_contained_with_svg_charts() {
    let p = project();
    let (out, _) = p.build(&[&workflow("parameter_optimization")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let html = std::fs::read_to_string(&reports(&out)[0]).unwrap();
    for banned in ["http://", "https://", "<script", "<link", "@import", "url("] {
        assert!(!html.contains(banned), "report.html contains `{banned}`");
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    // The Sharpe heatmap; the ensemble's equity and drawdown.
    assert_eq!(html.matches("<svg").count(), 2);
    for text in [
        "parameter_discovery",
        "regime_analysis",
        "ensemble_optimization",
        "lookback",
        "threshold",
        "volatility",
        "momentum",
        // The overfitting panel of the sweep, with its verdicts.
        "Deflated Sharpe ratio 0.080",
        "not distinguishable from luck",
        "Probability of backtest overfitting 0.614",
        "likely overfit",
        // The header: data, range, costs, fill rule, split.
        "../data/SPY_D.csv (SPY)",
        "5241 from 1999-11-01 to 2020-08-28",
        "fee 0.001, slippage 0 bps",
        "<td class=\"l\">close</td>",
        "the first 80% of the bars train every selection",
    ] {
        assert!(html.contains(text), "report.html lacks `{text}`");
    }
}
