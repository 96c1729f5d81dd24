//! The split's validation part, splits by date and the sweep's
//! `train_best`, through `admf build` on the shipped data, against
//! `scripts/reference_split.py` (numpy) run once on the artifacts.

mod common;
mod research;

use research::{project, workflow};
use serde_json::Value;

fn close(got: &Value, want: f64) {
    let got = got.as_f64().unwrap_or(f64::NAN);
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

/// The artifacts directory of `node` (from `admf show`).
fn artifacts(p: &common::Project, wf: &str, node: &str) -> std::path::PathBuf {
    let show = p.admf(&["show", wf, node]).stdout;
    let dir = show
        .lines()
        .find_map(|l| l.strip_prefix("artifacts: "))
        .unwrap_or_else(|| panic!("{show}"));
    std::path::PathBuf::from(dir.trim())
}

fn json(dir: &std::path::Path, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

/// `parameter_optimization.yaml` with its split replaced.
fn with_split(p: &common::Project, split: &str) -> String {
    let text = p.read("workflows/parameter_optimization.yaml");
    assert!(text.contains("split: {train: 0.8}"));
    p.file(
        "workflows/split_variant.yaml",
        &text.replace("split: {train: 0.8}", split),
    );
    workflow("split_variant")
}

#[test]
fn a_validation_part_is_measured_between_train_and_test() {
    let p = project();
    let (out, _) = p.build(&[&workflow("parameter_optimization")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let wf = with_split(&p, "split: {train: 0.6, validation: 0.2, test: 0.2}");
    // The trials run over every bar whatever the split: none reruns.
    let ran = p.ran(&[&wf]);
    assert!(
        !ran.iter().any(|n| n.starts_with("parameter_discovery[")),
        "{ran:?}"
    );
    let dir = artifacts(&p, &wf, "ensemble_optimization");
    let m = json(&dir, "metrics.json");
    // scripts/reference_split.py equity.csv 3144 4192
    for (part, bars, sharpe, total) in [
        ("train", 3144, -0.16955637965026377, -0.2334522095965207),
        (
            "validation",
            1048,
            -0.1330209772382996,
            -0.04981591521233353,
        ),
        ("test", 1049, 0.7156369841110396, 0.2772809848081661),
    ] {
        assert_eq!(m[part]["bars"], bars, "{part}");
        close(&m[part]["sharpe"], sharpe);
        close(&m[part]["total_return"], total);
    }
    assert!(m["benchmark"]["validation"]["metrics"]["sharpe"].is_number());
    let w = json(&dir, "weights.json");
    assert_eq!(
        (
            &w["split_index"],
            &w["split_ts"],
            &w["test_index"],
            &w["test_ts"]
        ),
        (
            &Value::from(3144),
            &Value::from("2012-05-01"),
            &Value::from(4192),
            &Value::from("2016-06-30")
        )
    );
    let equity = std::fs::read_to_string(dir.join("equity.csv")).unwrap();
    let parts: Vec<&str> = equity
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap())
        .collect();
    assert_eq!(
        (
            parts.iter().filter(|p| **p == "train").count(),
            parts.iter().filter(|p| **p == "validation").count(),
            parts.iter().filter(|p| **p == "test").count()
        ),
        (3144, 1048, 1049)
    ); // The report shows the part and marks both boundaries.
    let html = std::fs::read_to_string(artifacts(&p, &wf, "report").join("report.html")).unwrap();
    for text in [
        "<th>validation</th>",
        "<th>buy-and-hold validation</th>",
        "train | validation",
        "validation | test",
        "train 60% of the bars (every selection sees it only), then validation 20%, then test 20%",
    ] {
        assert!(html.contains(text), "report.html lacks `{text}`");
    }
}

#[test]
fn a_split_by_dates_ends_each_part_with_its_day() {
    let p = project();
    let wf = with_split(&p, "split: {train: 2012-12-31, validation: 2016-12-31}");
    let (out, _) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let w = json(&artifacts(&p, &wf, "ensemble_optimization"), "weights.json");
    // The first bars of 2013 and of 2017.
    assert_eq!(w["split_ts"], "2013-01-02");
    assert_eq!(w["test_ts"], "2017-01-03");
    assert_eq!(
        w["split"],
        serde_json::json!({"train": "2012-12-31", "validation": "2016-12-31"})
    );
    let regimes = json(&artifacts(&p, &wf, "regime_analysis"), "regimes.json");
    assert_eq!(regimes["train_bars"], w["split_index"]);
}

#[test]
fn bad_splits_are_refused_at_their_line() {
    let p = project();
    for (split, key, message) in [
        (
            "split: {train: 0.6, validation: 0.2, test: 0.3}",
            "split.test",
            "sum to",
        ),
        (
            "split: {train: 0.6, validation: 2016-12-31}",
            "split",
            "not both",
        ),
        ("split: {train: someday}", "split.train", "not a date"),
    ] {
        let wf = with_split(&p, split);
        let out = p.admf(&["build", &wf]);
        assert_eq!(out.code, 2, "{split}: {}", out.stderr);
        assert!(out.stderr.contains(key), "{split}: {}", out.stderr);
        assert!(out.stderr.contains(message), "{split}: {}", out.stderr);
        assert!(out.stderr.contains("split_variant.yaml:"), "{}", out.stderr);
    }
}

/// The sweep's `train_best` ranks the trials on the train bars only: its
/// figure is the train Sharpe ratio of that trial alone (numpy on the
/// trial's backtest equity, r_1..r_4191), and an ensemble of the top
/// trial by train Sharpe picks the same one.
#[test]
fn train_best_ranks_on_the_train_part() {
    let p = project();
    let wf = workflow("parameter_optimization");
    let (out, _) = p.build(&[&wf]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = json(&artifacts(&p, &wf, "parameter_discovery"), "metrics.json");
    let t = &m["train_best"];
    assert_eq!(t["trial"], 5);
    assert_eq!(t["name"], "momentum_lookback=30_threshold=0.02");
    close(&t["sharpe"], -0.1713813365004308);
    close(&t["total_return"], -0.2794745431525665);
    let html = std::fs::read_to_string(&research::reports(&out)[0]).unwrap();
    assert!(
        html.contains("best on the train part alone: trial 5 <code>momentum_lookback=30_threshold=0.02</code>, train Sharpe -0.171, train return -27.95%"),
        "report.html lacks the train_best line"
    );
    // Over every bar the same trial is best here, with another figure
    // (numpy over r_1..r_5240).
    close(&m["best"]["sharpe"], 0.014910291353901203);
}

/// Every file under `dir`, by path relative to it, with its bytes.
fn files(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap();
            (rel.display().to_string(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// A sweep's trials that run in the build hand their gather the figures
/// of their returns (computed four trials side by side where they ran);
/// trials taken from the store do not, and the gather derives the same
/// from their stored signals. Both must write the same bytes: here the
/// split changes, so the second build gathers cached trials, and a fresh
/// project builds the same workflow from nothing. Sixteen trials at
/// `-j 2` run in chunks of eight, so the side-by-side figures are taken.
#[test]
fn a_gather_over_cached_trials_writes_what_one_over_trials_just_run_writes() {
    let grid = "grid: {lookback: [10, 20, 30, 40, 50, 60, 70, 80], threshold: [0.01, 0.02]}";
    let with = |p: &common::Project, split: &str| {
        let text = p.read("workflows/parameter_optimization.yaml");
        let old_grid = "grid: {lookback: [10, 20, 30], threshold: [0.01, 0.02]}";
        assert!(text.contains(old_grid) && text.contains("split: {train: 0.8}"));
        // The sweep alone: an ensemble of sixteen signals is another test.
        let sweep = &text[..text.find("  - regime_analysis:").unwrap()];
        let name = format!("workflows/v{}.yaml", split.len());
        p.file(
            &name,
            &sweep
                .replace(old_grid, grid)
                .replace("split: {train: 0.8}", split),
        );
        name
    };
    let ran = |p: &common::Project, wf: &str| p.ran(&[wf, "-j", "2"]);
    let (before, after) = ("split: {train: 0.8}", "split: {train: 0.6}");
    let cached = project();
    ran(&cached, &with(&cached, before));
    let wf = with(&cached, after);
    let again = ran(&cached, &wf);
    assert!(
        again.contains(&"parameter_discovery".to_string()),
        "{again:?}"
    );
    assert!(
        !again.iter().any(|n| n.starts_with("parameter_discovery[")),
        "{again:?}"
    );
    let fresh = project();
    let wf = with(&fresh, after);
    let first = ran(&fresh, &wf);
    assert!(
        first.contains(&"parameter_discovery[15]".to_string()),
        "{first:?}"
    );
    let gathered = |p: &common::Project| files(&artifacts(p, &wf, "parameter_discovery"));
    let (from_store, handed) = (gathered(&cached), gathered(&fresh));
    assert_eq!(
        from_store.keys().collect::<Vec<_>>(),
        handed.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &from_store {
        assert!(bytes == &handed[name], "{name} differs");
    }
    // The train part moved: the figures that depend on it are there.
    let m = json(
        &artifacts(&fresh, &wf, "parameter_discovery"),
        "metrics.json",
    );
    assert!(m["train_best"]["sharpe"].is_f64(), "{m}");
    assert!(m["overfitting"]["pbo"].is_f64(), "{m}");
}
