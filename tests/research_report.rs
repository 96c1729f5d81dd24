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
    // The Sharpe heatmap; the ensemble's equity and drawdown; its rolling
    // Sharpe ratio.
    assert_eq!(html.matches("<svg").count(), 3);
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

/// A backtest and its report, log scale on.
const BACKTEST_REPORT: &str = "data:
  source: csv
  symbols: [SPY]
  path: ../data/SPY_D.csv
strategy:
  type: momentum
  parameters: {lookback: 20}
phases:
  - backtest:
      mode: backtest
  - report:
      mode: report
      depends_on: [backtest]
      log_scale: true
";

fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

/// The drawdown periods, calendar returns and rolling Sharpe ratio of
/// momentum(20) on SPY daily, against `scripts/reference_report.py`
/// (numpy and pandas) run once on the backtest's `equity.csv`.
#[test]
fn report_figures_match_an_independent_computation() {
    use admf::market::performance::{drawdown_periods, period_returns, rolling_sharpe};
    let p = project();
    p.file("workflows/backtest_report.yaml", BACKTEST_REPORT);
    let (out, _) = p.build(&[&workflow("backtest_report")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let show = p.admf(&["show", &workflow("backtest_report"), "backtest"]);
    let dir = show
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("artifacts: "))
        .unwrap()
        .trim()
        .to_string();
    let csv = std::fs::read_to_string(std::path::Path::new(&dir).join("equity.csv")).unwrap();
    let (ts, equity): (Vec<String>, Vec<f64>) = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].parse::<f64>().unwrap())
        })
        .unzip();
    let date = |i: usize| ts[i].as_str();
    let d = drawdown_periods(&equity, 5);
    let want = [
        (
            -0.4403019517353389,
            "1999-12-31",
            "2009-03-30",
            "2017-03-01",
        ),
        (
            -0.12408831774868978,
            "2018-01-26",
            "2018-11-12",
            "2019-07-03",
        ),
        (
            -0.07162747524752489,
            "2020-06-08",
            "2020-06-26",
            "2020-08-07",
        ),
        (
            -0.06472833256564037,
            "2020-02-19",
            "2020-04-21",
            "2020-04-29",
        ),
        (
            -0.04703450950107535,
            "2019-09-12",
            "2019-10-22",
            "2019-11-26",
        ),
    ];
    assert_eq!(d.len(), want.len());
    for (p, (depth, peak, trough, recovery)) in d.iter().zip(want) {
        close(p.depth, depth);
        assert_eq!(
            (date(p.peak), date(p.trough), p.recovery.map(date)),
            (peak, trough, Some(recovery))
        );
    }
    let (monthly, yearly) = period_returns(&ts, &equity);
    assert_eq!(yearly.len(), 22);
    for (year, want) in [
        (1999, 0.038710044136549326),
        (2000, -0.24475510913087806),
        (2008, -0.1178639968671027),
        (2019, 0.18955308548497518),
        (2020, 0.17476548902268485),
    ] {
        let y = yearly.iter().find(|y| y.year == year).unwrap();
        close(y.ret.unwrap(), want);
    }
    let months_2008: Vec<f64> = monthly
        .iter()
        .filter(|m| m.year == 2008)
        .map(|m| m.ret.unwrap())
        .collect();
    let want_2008 = [
        0.0,
        -0.00976764836465882,
        0.0,
        0.012078178757045643,
        0.0030195822160126173,
        -0.03189373490552638,
        -0.013226484089317592,
        -0.02122655130567419,
        -0.005983370891289086,
        0.0,
        -0.05100306728205828,
        -0.005067060074531171,
    ];
    assert_eq!(months_2008.len(), 12);
    for (got, want) in months_2008.iter().zip(want_2008) {
        close(*got, want);
    }
    close(
        rolling_sharpe(&equity, 126, 252.0).last().unwrap().unwrap(),
        1.9270297284122302,
    );

    // The same figures, as the page shows them.
    let html = std::fs::read_to_string(&reports(&out)[0]).unwrap();
    for text in [
        "<tr><td>-44.03%</td><td class=\"l\">1999-12-31</td><td class=\"l\">2009-03-30</td><td class=\"l\">2017-03-01</td>",
        "<tr><td class=\"l\">2000</td>",
        "<th>-24.5%</th>",
        "<td>-5.1%</td><td>-0.5%</td><th>-11.8%</th>",
        "equity (log scale)",
        "buy-and-hold",
        "rolling Sharpe ratio (126 bars, annualised)",
        // The trade list: the first round trip of trades.csv.
        "<td class=\"l\">SPY</td><td class=\"l\">long</td><td class=\"l\">1999-11-30</td><td class=\"l\">1999-12-20</td><td>14</td><td>1.71%</td>",
    ] {
        assert!(html.contains(text), "report.html lacks `{text}`");
    }
    assert!(!html.contains("http://"), "the page holds a URL");
}

/// Minute bars are shown as times, never as the file's raw stamps.
#[test]
fn minute_timestamps_read_as_times() {
    let p = project();
    let (out, _) = p.build(&[&workflow("minute_research")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let html = std::fs::read_to_string(&reports(&out)[0]).unwrap();
    assert!(html.contains("from 2011-01-03 09:01 to "), "header");
    assert!(html.contains("split at 2011-01-26 12:16"));
    assert!(!html.contains("20110103 090100"));
    assert!(html.contains("\ntime\n"), "the x axes are named `time`");
}

#[test]
fn bad_chart_options_name_the_key() {
    let p = project();
    p.file(
        "workflows/backtest_report.yaml",
        &BACKTEST_REPORT.replace("log_scale: true", "rolling_window: 1"),
    );
    let out = p.admf(&["build", &workflow("backtest_report")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("rolling_window"), "{}", out.stderr);
    assert!(
        out.stderr.contains("backtest_report.yaml:14"),
        "{}",
        out.stderr
    );
}
