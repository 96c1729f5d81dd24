//! Honest metrics through `admf build` on the shipped data: the
//! annualisation base follows the bar spacing (or the workflow's
//! `data.periods_per_year`), undefined metrics are `null` with the reason
//! in the log, ruin stops a run.
//!
//! Reference figures were printed by `scripts/reference_metrics.py`
//! (numpy 2.4 / pandas 3.1, run once from the repository root) and pasted
//! here unchanged.

mod common;
mod research;

use serde_json::Value;

use research::{outputs, project};

/// The `metrics.json` of the one node whose outputs hold `file` as well.
fn node_json(p: &common::Project, node_file: &str) -> Vec<Value> {
    outputs(&p.path("cache"))
        .into_iter()
        .filter(|(path, _)| path.ends_with(&format!("/{node_file}")))
        .map(|(_, bytes)| serde_json::from_slice(&bytes).unwrap())
        .collect()
}

fn close(got: &Value, want: f64) {
    let v = got
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {got}"));
    let tol = 1e-9 * want.abs().max(1e-12);
    assert!((v - want).abs() <= tol, "got {v}, want {want}");
}

/// SPY daily reduced to weekly bars: the last bar of each Monday-to-Sunday
/// week, as `pandas ... groupby(index.to_period("W")).tail(1)`.
fn weekly_spy(p: &common::Project) {
    let daily = p.read("data/SPY_D.csv");
    let mut lines: Vec<&str> = daily.lines().collect();
    let header = lines.remove(0);
    let week = |line: &str| {
        let date = line.split(',').nth(1).unwrap();
        let days = admf::market::timestamp::parse(date)
            .unwrap()
            .div_euclid(86_400);
        // 1970-01-01 was a Thursday: shift so that weeks start on Monday.
        (days + 3).div_euclid(7)
    };
    let mut out = vec![header.to_string()];
    for (i, line) in lines.iter().enumerate() {
        if lines.get(i + 1).is_none_or(|next| week(next) != week(line)) {
            out.push(line.to_string());
        }
    }
    p.file("data/SPY_W.csv", &(out.join("\n") + "\n"));
}

#[test]
fn weekly_bars_are_annualised_weekly() {
    let p = project();
    weekly_spy(&p);
    p.file(
        "weekly.yaml",
        "data: {source: csv, symbols: [SPY], path: data/SPY_W.csv}\n\
         strategy: {type: momentum, parameters: {lookback: 4, threshold: 0}}\n\
         phases:\n  - inferred:\n      mode: backtest\n  \
         - declared:\n      mode: backtest\n      data: {source: csv, symbols: [SPY], path: data/SPY_W.csv, periods_per_year: 252}\n",
    );
    let (out, _) = p.build(&["weekly.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let metrics = node_json(&p, "metrics.json");
    assert_eq!(metrics.len(), 2);
    let (weekly, daily): (Vec<&Value>, Vec<&Value>) = metrics
        .iter()
        .partition(|m| m["periods_per_year"].as_f64() == Some(52.0));
    // weekly SPY momentum lookback=4 threshold=0 fee=0, P = 52
    let w = weekly[0];
    assert_eq!(w["bars"], 1087);
    for (key, want) in [
        ("total_return", 0.3400481666589741),
        ("cagr", 0.014114043161588263),
        ("volatility", 0.10312700946901793),
        ("sharpe", 0.1881288232534355),
        ("sortino", 0.24662867540942388),
        ("max_drawdown", -0.383035543911014),
        ("calmar", 0.036847868000644886),
        ("entries", 107.0),
        ("trades", 106.0),
        ("win_rate", 0.41509433962264153),
        ("exposure", 0.609935602575897),
        ("turnover", 10.18951241950322),
    ] {
        close(&w[key], want);
    }
    // The same series annualised as if daily: what the declared key gives.
    let d = daily[0];
    assert_eq!(d["periods_per_year"].as_f64(), Some(252.0));
    close(&d["sharpe"], 0.41414644481052);
    close(&d["volatility"], 0.2270236085939833);
    let show = p.admf(&["show", "weekly.yaml", "inferred"]);
    assert!(
        show.stdout.contains("(weekly, ") && show.stdout.contains("52 bars per year, inferred"),
        "{}",
        show.stdout
    );
}

#[test]
fn undefined_metrics_are_null_with_the_reason_in_the_log() {
    let p = project();
    // No 20-bar return exceeds 100,000%: the strategy never takes a
    // position (a lookback longer than the data would be refused first).
    p.file(
        "flat.yaml",
        "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}\n\
         phases:\n  - never:\n      mode: backtest\n      \
         strategy: {type: momentum, parameters: {lookback: 20, threshold: 1000}}\n",
    );
    let (out, _) = p.build(&["flat.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = &node_json(&p, "metrics.json")[0];
    for key in ["sharpe", "sortino", "calmar", "win_rate"] {
        assert!(m[key].is_null(), "{key}: {m}");
        assert!(m["undefined"][key].is_string(), "{key}: {m}");
    }
    // Defined, and 0: a flat line has no volatility and no drawdown.
    assert_eq!(m["volatility"].as_f64(), Some(0.0));
    assert_eq!(m["max_drawdown"].as_f64(), Some(0.0));
    let show = p.admf(&["show", "flat.yaml", "never"]);
    assert!(
        show.stdout.contains("win_rate is null: no closed trade")
            && show.stdout.contains("sharpe is null: 0/0"),
        "{}",
        show.stdout
    );
}

#[test]
fn a_short_through_a_tripling_is_ruin() {
    let p = project();
    let mut csv = String::from("date,open,high,low,close,volume\n");
    // Momentum(1) with shorts: short after the first fall, held through
    // a tripling (1 − 2.06 < 0).
    let closes = [100.0, 99.0, 98.0, 300.0, 310.0, 100.0];
    for (i, c) in closes.iter().enumerate() {
        csv.push_str(&format!("2020-01-{:02},{c},{c},{c},{c},1\n", i + 1));
    }
    p.file("data/UP.csv", &csv);
    p.file(
        "ruin.yaml",
        "data: {source: csv, symbols: [UP], path: data/UP.csv}\n\
         phases:\n  - short:\n      mode: backtest\n      \
         strategy: {type: momentum, parameters: {lookback: 1, threshold: 0, allow_short: true}}\n",
    );
    let (out, _) = p.build(&["ruin.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = &node_json(&p, "metrics.json")[0];
    assert_eq!(m["total_return"].as_f64(), Some(-1.0), "{m}");
    assert_eq!(m["max_drawdown"].as_f64(), Some(-1.0), "{m}");
    assert_eq!(m["ruin"].as_u64(), Some(3), "{m}");
    assert_eq!(m["cagr"].as_f64(), Some(-1.0), "{m}");
    // The run stopped at the ruin: the short closed there, nothing after.
    let trades = outputs(&p.path("cache"))
        .into_iter()
        .find(|(path, _)| path.ends_with("/trades.csv"))
        .map(|(_, b)| String::from_utf8(b).unwrap())
        .unwrap();
    let rows: Vec<&str> = trades.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{trades}");
    assert!(
        rows[0].starts_with("UP,short,2020-01-02,2020-01-04,2,true,-1"),
        "{trades}"
    );
}

/// The gather node of the shipped sweep: its `metrics.json` is the one
/// with `overfitting`.
fn sweep_metrics(p: &common::Project) -> Value {
    node_json(p, "metrics.json")
        .into_iter()
        .find(|m| m.get("overfitting").is_some())
        .expect("a metrics.json with overfitting statistics")
}

#[test]
fn the_sweep_reports_its_overfitting_statistics() {
    let p = project();
    let (out, _) = p.build(&[
        &research::workflow("parameter_optimization"),
        "parameter_discovery",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = sweep_metrics(&p);
    let o = &m["overfitting"];
    // parameter_optimization sweep: deflated Sharpe ratio of the best trial
    // (momentum lookback 30, threshold 0.02) among 6, and CSCV with S = 16.
    assert_eq!(o["trials"], 6);
    assert_eq!(o["selected"], 5);
    assert_eq!(m["best"]["trial"], 5);
    close(&o["dsr"], 0.07973576394111476);
    close(&o["sharpe_variance"], 0.0002458305430802088);
    close(&o["expected_max_sharpe"], 0.020384886768260814);
    close(&o["min_backtest_years"], 7603.411696719793);
    close(&o["pbo"], 0.6135975135975136);
    assert_eq!(o["pbo_combinations"], 12870);
    close(&o["backtest_years"], 5240.0 / 252.0);
}

fn check_all(m: &Value, expected: &[(&str, f64)]) {
    for (key, want) in expected {
        let tol = 1e-9 * want.abs().max(1e-12);
        let v = m[key].as_f64().unwrap_or_else(|| panic!("{key}: {m}"));
        assert!((v - want).abs() <= tol, "{key}: got {v}, want {want}");
    }
}

#[test]
fn next_open_fill_and_slippage_match_the_reference() {
    let p = project();
    p.file(
        "fills.yaml",
        "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}\n\
         strategy: {type: momentum, parameters: {lookback: 20, threshold: 0}}\n\
         costs: {fee: 0.001, slippage_bps: 5}\n\
         phases:\n  - at_close:\n      mode: backtest\n  \
         - at_next_open:\n      mode: backtest\n      execution: {fill: next_open}\n",
    );
    let (out, _) = p.build(&["fills.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let all = node_json(&p, "metrics.json");
    let by_fill = |f: &str| all.iter().find(|m| m["fill"] == f).unwrap().clone();
    let open = by_fill("next_open");
    assert_eq!(
        (open["fee"].as_f64(), open["slippage_bps"].as_f64()),
        (Some(0.001), Some(5.0))
    );
    // SPY_D momentum lookback=20 threshold=0, fee 0.001 + slippage 5 bps,
    // fill next_open
    check_all(
        &open,
        &[
            ("total_return", -0.1613097344280865),
            ("cagr", -0.00842429229531072),
            ("volatility", 0.1075368957253064),
            ("sharpe", -0.024762995411844513),
            ("sortino", -0.03334450760006499),
            ("max_drawdown", -0.5854222176044468),
            ("calmar", -0.01439011373668564),
            ("entries", 256.0),
            ("trades", 255.0),
            ("win_rate", 0.3764705882352941),
            ("exposure", 0.6182026330852891),
            ("turnover", 24.570120206067543),
        ],
    );
    // ... and the same costs filled at the close.
    check_all(
        &by_fill("close"),
        &[
            ("total_return", -0.31760918980016106),
            ("cagr", -0.018210486539858572),
            ("volatility", 0.10844243942973579),
            ("sharpe", -0.11508826611310874),
            ("sortino", -0.15434213973878813),
            ("max_drawdown", -0.6154338148298985),
            ("calmar", -0.02958967495942975),
            ("win_rate", 0.3411764705882353),
            ("exposure", 0.6183934363671055),
        ],
    );
}

#[test]
fn a_mode_that_fills_at_the_close_only_says_so() {
    let p = project();
    let wf = p.read("workflows/parameter_optimization.yaml");
    p.file(
        "workflows/next_open.yaml",
        &wf.replace(
            "costs: {fee: 0.001}",
            "costs: {fee: 0.001}\nexecution: {fill: next_open}",
        ),
    );
    let out = p.admf(&["build", "workflows/next_open.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("execution.fill") && out.stderr.contains("fills at the close only"),
        "{}",
        out.stderr
    );
    let out = p.admf(&["build", "workflows/next_open.yaml", "parameter_discovery"]);
    assert_eq!(
        out.code, 2,
        "validation covers the whole workflow: {}",
        out.stderr
    );
}

/// The file `name` of the node whose outputs also hold `marker`.
fn artifact(p: &common::Project, marker: &str, name: &str) -> String {
    let files = outputs(&p.path("cache"));
    let key = files
        .iter()
        .find(|(path, _)| path.ends_with(&format!("/{marker}")))
        .map(|(path, _)| path.split('/').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no node with {marker}"));
    let (_, bytes) = files
        .iter()
        .find(|(path, _)| *path == format!("{key}/{name}"))
        .unwrap();
    String::from_utf8(bytes.clone()).unwrap()
}

#[test]
fn regime_winners_never_see_the_test_bars() {
    let p = project();
    let wf = research::workflow("parameter_optimization");
    let (out, _) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let regimes = artifact(&p, "regimes.json", "regimes.json");
    let test_before = artifact(&p, "weights.json", "metrics.json");
    // Rewrite every bar after 85 % of the file (the split is at 80 %):
    // prices scaled by 1.5 from there on.
    let data = p.read("data/SPY_D.csv");
    let lines: Vec<&str> = data.lines().collect();
    let from = 1 + (lines.len() - 1) * 85 / 100;
    let mut out_lines: Vec<String> = lines[..from].iter().map(|l| l.to_string()).collect();
    for line in &lines[from..] {
        let f: Vec<&str> = line.split(',').collect();
        let scaled: Vec<String> = f[2..6]
            .iter()
            .map(|x| {
                (x.parse::<f64>().unwrap() * (1.5 + (out_lines.len() % 7) as f64 / 10.0))
                    .to_string()
            })
            .collect();
        out_lines.push(format!("{},{},{},{}", f[0], f[1], scaled.join(","), f[6]));
    }
    p.file("data/SPY_D.csv", &(out_lines.join("\n") + "\n"));
    let (out, _) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let files = outputs(&p.path("cache"));
    let all_regimes: Vec<&Vec<u8>> = files
        .iter()
        .filter(|(path, _)| path.ends_with("/regimes.json"))
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        all_regimes.len(),
        2,
        "the analysis ran again on the new data"
    );
    assert!(
        all_regimes.iter().all(|b| **b == regimes.as_bytes()),
        "regime figures changed when only test bars changed"
    );
    // The ensemble did run on different test bars: two different results.
    let keys: Vec<&str> = files
        .iter()
        .filter(|(path, _)| path.ends_with("/weights.json"))
        .map(|(path, _)| path.split('/').next().unwrap())
        .collect();
    assert_eq!(keys.len(), 2);
    let metrics: Vec<&Vec<u8>> = keys
        .iter()
        .map(|k| {
            &files
                .iter()
                .find(|(path, _)| *path == format!("{k}/metrics.json"))
                .unwrap()
                .1
        })
        .collect();
    assert!(metrics.contains(&&test_before.into_bytes()));
    assert_ne!(metrics[0], metrics[1]);
}

#[test]
fn a_backtest_is_measured_against_buy_and_hold() {
    let p = project();
    let (out, _) = p.build(&[&research::workflow("simple_backtest")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = &node_json(&p, "metrics.json")[0];
    let b = &m["benchmark"];
    assert_eq!(b["name"], "buy_and_hold");
    // simple_backtest against buy-and-hold
    check_all(
        b,
        &[
            ("beta", 0.2875317377784088),
            ("alpha", 0.005385477883752078),
            ("information_ratio", -0.24582649184182886),
            ("excess_return", -1.1166126905809757),
        ],
    );
    // buy-and-hold SPY_D, no costs
    let bm = &b["metrics"];
    check_all(
        bm,
        &[
            ("total_return", 1.5861134163208779),
            ("cagr", 0.046754611856930195),
            ("volatility", 0.19891562666337717),
            ("sharpe", 0.3292576177720582),
            ("sortino", 0.46285457224462945),
            ("max_drawdown", -0.564736707566463),
            ("calmar", 0.08279010595646064),
            ("exposure", 1.0),
            ("turnover", 0.048082427017744706),
        ],
    );
    assert!(bm["win_rate"].is_null(), "{bm}");
}

#[test]
fn the_ensemble_is_shown_next_to_buy_and_hold() {
    let p = project();
    let (out, _) = p.build(&[&research::workflow("parameter_optimization")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m: Value = serde_json::from_str(&artifact(&p, "weights.json", "metrics.json")).unwrap();
    // numpy: buy-and-hold of SPY_D with fee 0.001, split at ⌊5241·0.8⌋.
    close(
        &m["benchmark"]["train"]["metrics"]["sharpe"],
        0.22661384164825485,
    );
    close(
        &m["benchmark"]["test"]["metrics"]["sharpe"],
        0.7555124991439037,
    );
    close(
        &m["benchmark"]["test"]["metrics"]["total_return"],
        0.6964095615987622,
    );
    let excess = m["test"]["total_return"].as_f64().unwrap() - 0.6964095615987622;
    close(&m["benchmark"]["test"]["excess_return"], excess);
    // The weight search tried 3,003 weightings: numpy scores them all
    // (ensemble search, best [0, 0, 0.5, 0, 0.5, 0], train Sharpe −0.139).
    let o = &m["overfitting"];
    assert_eq!(o["trials"], 3003);
    close(&m["train"]["sharpe"], -0.1386639840716017);
    close(&o["sharpe_variance"], 8.230703748377159e-05);
    close(&o["expected_max_sharpe"], 0.032258600479190026);
    close(&o["dsr"], 0.003930193154318971);
    // A negative Sharpe ratio needs no minimum length: it is not a claim.
    assert!(o["min_backtest_years"].is_null());
    let html = std::fs::read_to_string(&research::reports(&out)[0]).unwrap();
    assert!(
        html.contains("buy-and-hold test"),
        "the report shows the benchmark"
    );
    assert!(
        html.contains("3003 weightings"),
        "the report shows the ensemble's DSR"
    );
}

#[test]
fn walk_forward_matches_the_reference() {
    let p = project();
    let (out, _) = p.build(&[&research::workflow("walk_forward")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m: Value = serde_json::from_str(&artifact(&p, "folds.csv", "metrics.json")).unwrap();
    // walk-forward: 18 folds, picks [4, 5, 3, 3, 5, 5, 5, 5, 5, 5, 4, 4,
    // 4, 3, 1, 2, 2, 2], 4483 returns
    assert_eq!(m["folds"], 18);
    let picks: Vec<u64> = m["per_fold"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["trial"].as_u64().unwrap())
        .collect();
    assert_eq!(
        picks,
        [4, 5, 3, 3, 5, 5, 5, 5, 5, 5, 4, 4, 4, 3, 1, 2, 2, 2]
    );
    assert_eq!(m["oos"]["bars"], 4484);
    close(&m["oos"]["sharpe"], 0.1476485063178655);
    close(&m["oos"]["total_return"], 0.17959960701048816);
    let equity = artifact(&p, "folds.csv", "equity.csv");
    assert_eq!(equity.lines().count(), 1 + 4484);
    assert!(
        equity.starts_with("ts,equity,fold\n2002-11-06,1,\n"),
        "{}",
        &equity[..60]
    );
}

#[test]
fn the_lag_check_reruns_the_selection_one_bar_later() {
    let p = project();
    let wf = research::workflow("parameter_optimization");
    let (out, _) = p.build(&[
        &wf,
        "ensemble_optimization",
        "--set",
        "ensemble_optimization.lag=1",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m: Value = serde_json::from_str(&artifact(&p, "weights.json", "metrics.json")).unwrap();
    let c = &m["lag_check"];
    // numpy, lag 1: the search redone on signals one bar late.
    assert_eq!(c["lag"], 1);
    close(&c["train_sharpe"], -0.04780782329621306);
    close(&c["test_sharpe"], 0.9681294282102482);
    // 0.968 against 1.175 without the lag: not a collapse.
    assert_eq!(c["collapse"], false);
    close(&m["test"]["sharpe"], 1.1747122259776699);
}
