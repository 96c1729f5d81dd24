//! The trading modes driven through the `Phase` trait, on the shipped
//! daily file: artifacts, roles, determinism.

use std::path::{Path, PathBuf};

use admf::phases::{MemoryOutputs, Phase, PhaseContext, Role, Upstream};
use admf::store::OutputSource;
use serde_json::{Value, json};

fn base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn data() -> Value {
    json!({"source": "csv", "symbols": ["SPY"], "path": "../data/SPY_D.csv"})
}

struct Out {
    dir: tempfile::TempDir,
    log: String,
}

impl Out {
    fn json(&self, name: &str) -> Value {
        serde_json::from_str(&self.text(name)).unwrap()
    }
    fn text(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap()
    }
    fn upstream(&self, mode: &str, role: Role) -> Upstream {
        Upstream::from_dir(
            mode.into(),
            mode.into(),
            role,
            self.dir.path().to_path_buf(),
        )
    }
}

fn exec(phase: &dyn Phase, config: Value, role: Role, upstream: &[Upstream]) -> Out {
    phase.validate(&config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut log = Vec::new();
    let mut memory = MemoryOutputs::default();
    let mut handoff = None;
    let mut ctx = PhaseContext {
        node: "n",
        config: &config,
        role: &role,
        base_dir: &base(),
        upstream,
        out_dir: dir.path(),
        memory: &mut memory,
        log: &mut log,
        gather_config: None,
        handoff: &mut handoff,
    };
    phase.execute(&mut ctx).unwrap_or_else(|e| panic!("{e}"));
    // What the commit does: outputs handed over in memory join the files,
    // and no name may be both.
    for (name, source) in memory.into_inner() {
        let path = dir.path().join(&name);
        assert!(!path.exists(), "{name} is both a file and in memory");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        match source {
            OutputSource::Bytes(bytes) => std::fs::write(path, bytes).unwrap(),
            OutputSource::File(from) => {
                std::fs::copy(from, path).unwrap();
            }
            // Upstream artifacts here are plain directories, never a store's.
            OutputSource::Stored(record) => panic!("{name} names blob {}", record.blake3),
        }
    }
    Out {
        dir,
        log: String::from_utf8(log).unwrap(),
    }
}

fn momentum(lookback: u32) -> Value {
    json!({"type": "momentum", "parameters": {"lookback": lookback, "threshold": 0}})
}

#[test]
fn backtest_writes_metrics_equity_and_trades() {
    let config = json!({"data": data(), "strategy": momentum(20)});
    let b = admf::phases::backtest::Backtest;
    assert_eq!(
        b.inputs(&config, &base()).unwrap(),
        vec![base().join("../data/SPY_D.csv")]
    );
    let out = exec(&b, config, Role::Single, &[]);
    let m = out.json("metrics.json");
    assert!((m["total_return"].as_f64().unwrap() - 0.4695007257399022).abs() < 1e-9);
    assert_eq!(m["periods_per_year"], json!(252.0));
    assert_eq!(m["params"]["lookback"], json!(20));
    let equity = out.text("equity.csv");
    assert_eq!(equity.lines().count(), 5242);
    assert!(equity.starts_with("ts,equity,position\n1999-11-01,1,0\n"));
    let trades = out.text("trades.csv");
    assert_eq!(trades.lines().count(), 257);
    assert!(out.log.contains("SPY: 5241 bars"), "{}", out.log);
}

#[test]
fn validate_names_keys_with_hints() {
    let b = admf::phases::backtest::Backtest;
    let e = b
        .validate(&json!({"data": data(), "strategy": {"type": "momentun"}}))
        .unwrap_err();
    assert_eq!(e.key, "strategy.type");
    assert_eq!(e.hint.as_deref(), Some("did you mean `momentum`?"));
    let g = admf::phases::signal_generation::SignalGeneration;
    let e = g
        .validate(&json!({"data": data(), "strategy": momentum(5), "grid": {"lookbak": [1, 2]}}))
        .unwrap_err();
    assert_eq!(e.key, "grid.lookbak");
    assert_eq!(e.hint.as_deref(), Some("did you mean `lookback`?"));
}

/// Runs a momentum lookback grid as the engine would: trials then gather.
fn sweep(lookbacks: &[u32]) -> (Vec<Out>, Out) {
    let combos: Vec<Vec<(&str, Value)>> = lookbacks
        .iter()
        .map(|l| vec![("lookback", json!(l))])
        .collect();
    sweep_with(&combos)
}

/// Trials for each combination of momentum parameters, then the gather.
fn sweep_with(combos: &[Vec<(&str, Value)>]) -> (Vec<Out>, Out) {
    let g = admf::phases::signal_generation::SignalGeneration;
    let roles: Vec<Role> = combos
        .iter()
        .enumerate()
        .map(|(index, c)| {
            let parts: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Role::Trial {
                index,
                name: format!("momentum_{}", parts.join("_")),
            }
        })
        .collect();
    let trials: Vec<Out> = combos
        .iter()
        .zip(&roles)
        .map(|(c, role)| {
            let mut s = momentum(20);
            for (k, v) in c {
                s["parameters"][*k] = v.clone();
            }
            exec(
                &g,
                json!({"data": data(), "strategy": s}),
                role.clone(),
                &[],
            )
        })
        .collect();
    let ups: Vec<Upstream> = trials
        .iter()
        .zip(&roles)
        .map(|(t, role)| t.upstream("signal_generation", role.clone()))
        .collect();
    let config = json!({"data": data(), "strategy": momentum(20), "grid": {}});
    let gather = exec(
        &g,
        config,
        Role::Gather {
            trials: combos.len(),
        },
        &ups,
    );
    (trials, gather)
}

#[test]
fn signal_generation_trials_and_gather() {
    let (trials, gather) = sweep(&[10, 20, 30]);
    let m1 = trials[1].json("metrics.json");
    assert_eq!(m1["name"], json!("momentum_lookback=20"));
    assert!((m1["sharpe"].as_f64().unwrap() - 0.22700571774434425).abs() < 1e-9);
    let sig = trials[1].text("signal.jsonl");
    assert!(
        sig.starts_with("{\"i\":20,\"ts\":\"1999-11-30\",\"sym\":\"SPY\",\"v\":1}\n"),
        "{sig}"
    );
    assert_eq!(gather.text("signals/trial_1.jsonl"), sig);
    let t = gather.json("trials.json");
    assert_eq!(t.as_array().unwrap().len(), 3);
    assert_eq!(t[2]["params"]["lookback"], json!(30));
    let m = gather.json("metrics.json");
    assert_eq!(m["trials"], json!(3));
    let best = m["best"]["trial"].as_u64().unwrap() as usize;
    let sharpes: Vec<f64> = (0..3)
        .map(|i| t[i]["metrics"]["sharpe"].as_f64().unwrap())
        .collect();
    assert!(sharpes.iter().all(|s| *s <= sharpes[best]));
}

#[test]
fn single_signal_generation_writes_gather_artifacts_too() {
    let g = admf::phases::signal_generation::SignalGeneration;
    let out = exec(
        &g,
        json!({"data": data(), "strategy": momentum(30)}),
        Role::Single,
        &[],
    );
    assert_eq!(out.text("signals/trial_0.jsonl"), out.text("signal.jsonl"));
    let m = out.json("metrics.json");
    // Named by the parameters that differ from the defaults (threshold 0
    // is one): written out or left out, a default gives the same key, so
    // it must give the same name.
    assert_eq!(m["best"]["name"], json!("momentum_lookback=30"));
    assert_eq!(m["trials"], json!(1));
}

fn analysis_of(gather: &Out) -> Out {
    let a = admf::phases::analysis::Analysis;
    let config = json!({"data": data(), "strategy": momentum(20), "classifiers": ["volatility", {"momentum": {"period": 10}}]});
    let up = [gather.upstream("signal_generation", Role::Gather { trials: 3 })];
    exec(&a, config, Role::Single, &up)
}

#[test]
fn analysis_finds_best_trial_per_regime() {
    let (_, gather) = sweep(&[10, 20, 30]);
    let out = analysis_of(&gather);
    let r = out.json("regimes.json");
    let vol = &r["classifiers"]["volatility"];
    assert_eq!(vol["parameters"]["period"], json!(14));
    assert_eq!(
        r["classifiers"]["momentum"]["parameters"]["period"],
        json!(10)
    );
    let counts = &vol["counts"];
    let total: u64 = ["low", "normal", "high", "warmup"]
        .iter()
        .map(|k| counts[k].as_u64().unwrap())
        .sum();
    // Regimes are measured on the train part only: ⌊5241 · 0.8⌋ bars.
    assert_eq!(total, 4192);
    assert_eq!(r["train_bars"], json!(4192));
    // Train returns r_1..r_{s−1} go to the labels of bars 0..s−2.
    let in_regimes: u64 = ["low", "normal", "high"]
        .iter()
        .map(|k| vol["regimes"][k]["bars"].as_u64().unwrap())
        .sum();
    assert_eq!(in_regimes, 4191 - counts["warmup"].as_u64().unwrap());
    let labels = out.text("labels_momentum.csv");
    assert_eq!(labels.lines().count(), 5242);
    assert!(labels.starts_with("ts,label\n1999-11-01,warmup\n"));
    let m = out.json("metrics.json");
    assert!(m["best"]["sharpe"].as_f64().is_some());
    assert!(m["volatility"]["high"]["trial"].as_u64().is_some());
    assert_eq!(out.text("trials.json"), gather.text("trials.json"));
    assert_eq!(
        out.text("regime_metrics.csv").lines().count(),
        1 + 3 * 3 * 2
    );
}

#[test]
fn signal_replay_grid_and_per_regime() {
    let (_, gather) = sweep(&[10, 20, 30]);
    let analysis = analysis_of(&gather);
    let r = admf::phases::signal_replay::SignalReplay;
    let config = json!({"data": data(), "strategy": momentum(20), "weights": {"method": "grid", "step": 0.1}});
    let up = [gather.upstream("signal_generation", Role::Gather { trials: 3 })];
    let out = exec(&r, config.clone(), Role::Single, &up);
    let m = out.json("metrics.json");
    assert_eq!(m["weightings"], json!(66));
    assert_eq!(m["train"]["bars"], json!(4192));
    assert_eq!(m["test"]["bars"], json!(1049));
    let w = out.json("weights.json");
    let total: f64 = w["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["weight"].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-12);
    assert_eq!(w["split_ts"], json!("2016-06-30"));
    assert!(out.log.contains("weightings/s"));
    assert!(!out.text("metrics.json").contains("per_second"));
    assert_eq!(out.text("equity.csv").lines().count(), 5242);
    // Same inputs, same bytes.
    let again = exec(&r, config, Role::Single, &up);
    for f in ["metrics.json", "weights.json", "equity.csv"] {
        assert_eq!(out.text(f), again.text(f), "{f}");
    }
    // Through the analysis only, per regime, with random weights.
    let config = json!({"data": data(), "select": "regime_winners", "per_regime": "volatility",
        "weights": {"method": "random", "samples": 200, "seed": 7}});
    let up = [analysis.upstream("analysis", Role::Single)];
    let out = exec(&r, config, Role::Single, &up);
    let w = out.json("weights.json");
    assert_eq!(w["per_regime"]["classifier"], json!("volatility"));
    assert!(w["per_regime"]["regimes"]["high"]["weights"].is_array());
    assert_eq!(out.json("metrics.json")["weightings"], json!(800));
}

#[test]
fn signal_replay_rejects_bad_config_with_hints() {
    let r = admf::phases::signal_replay::SignalReplay;
    let e = r
        .validate(&json!({"data": data(), "weights": {"method": "randm"}}))
        .unwrap_err();
    assert_eq!(e.key, "weights.method");
    assert_eq!(e.hint.as_deref(), Some("did you mean `random`?"));
    let e = r
        .validate(&json!({"data": data(), "select": "regime_winner"}))
        .unwrap_err();
    assert_eq!(e.hint.as_deref(), Some("did you mean `regime_winners`?"));
}

#[test]
fn report_is_self_contained_with_charts() {
    let mut combos = Vec::new();
    for l in [10, 20, 40] {
        for t in [0.0, 0.01] {
            combos.push(vec![("lookback", json!(l)), ("threshold", json!(t))]);
        }
    }
    let (_, gather) = sweep_with(&combos);
    let analysis = analysis_of(&gather);
    let replay = exec(
        &admf::phases::signal_replay::SignalReplay,
        json!({"data": data(), "weights": {"method": "random", "samples": 100, "seed": 1}, "per_regime": "momentum"}),
        Role::Single,
        &[analysis.upstream("analysis", Role::Single)],
    );
    let backtest = exec(
        &admf::phases::backtest::Backtest,
        json!({"data": data(), "strategy": momentum(20)}),
        Role::Single,
        &[],
    );
    let ups = [
        backtest.upstream("backtest", Role::Single),
        gather.upstream("signal_generation", Role::Gather { trials: 6 }),
        analysis.upstream("analysis", Role::Single),
        replay.upstream("signal_replay", Role::Single),
    ];
    let r = admf::phases::report::Report;
    let out = exec(&r, json!({}), Role::Single, &ups);
    let html = out.text("report.html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    // No network, not even the SVG namespace URL.
    assert!(!html.contains("http"));
    assert!(!html.contains("<script"));
    assert!(!html.contains("<link"));
    assert_eq!(
        html.matches("<svg").count(),
        5,
        "two equity charts, two rolling Sharpe charts and one heatmap"
    );
    assert!(html.contains("sharpe by lookback × threshold"));
    assert!(html.contains("volatility") && html.contains("bullish"));
    assert_eq!(
        out.json("metrics.json")["sections"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let again = exec(&r, json!({}), Role::Single, &ups);
    assert_eq!(html, again.text("report.html"));
    std::fs::write(std::env::temp_dir().join("admf_report_test.html"), &html).unwrap();
}

#[test]
fn backtest_several_symbols_and_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let spy = std::fs::read_to_string(base().join("../data/SPY_D.csv")).unwrap();
    std::fs::write(dir.path().join("SPY.csv"), &spy).unwrap();
    // A shorter second symbol with one duplicated row to drop.
    let lines: Vec<&str> = spy.lines().collect();
    let mut short: Vec<&str> = lines[..3001].to_vec();
    short.insert(100, lines[99]);
    std::fs::write(dir.path().join("QQQ.csv"), short.join("\n")).unwrap();
    let config = json!({
        "data": {"source": "csv", "symbols": ["SPY", "QQQ"], "dir": dir.path().to_str().unwrap(),
                 "pattern": "{symbol}.csv", "on_bad_rows": "drop"},
        "strategy": momentum(20),
    });
    let b = admf::phases::backtest::Backtest;
    let out = exec(&b, config, Role::Single, &[]);
    assert!(
        out.log.contains(
            "QQQ: on_bad_rows dropped 1 and fixed 0 row(s); first at line 101: duplicate timestamp"
        ),
        "{}",
        out.log
    );
    let m = out.json("metrics.json");
    let spy_m = &m["per_symbol"]["SPY"];
    let qqq_m = &m["per_symbol"]["QQQ"];
    assert_eq!(spy_m["bars"], json!(5241));
    assert_eq!(qqq_m["bars"], json!(3000));
    assert_eq!(m["bars"], json!(5241));
    assert_eq!(
        m["entries"].as_u64().unwrap(),
        spy_m["entries"].as_u64().unwrap() + qqq_m["entries"].as_u64().unwrap()
    );
    // The portfolio ends at the mean of the two final equities.
    let last = |name: &str| -> f64 {
        let text = out.text(name);
        let row = text.lines().last().unwrap().to_string();
        row.split(',').nth(1).unwrap().parse().unwrap()
    };
    let want = (last("equity_SPY.csv") + last("equity_QQQ.csv")) / 2.0;
    assert!((last("equity.csv") - want).abs() < 1e-12);
    assert!(out.text("trades.csv").contains("\nQQQ,long,"));
}
