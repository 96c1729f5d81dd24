//! `admf build --json` says where each node's outputs and log are, and
//! for a failed node its error and a file holding its log (docs/json.md).

mod common;

use common::Project;
use serde_json::Value;

const WF: &str = r#"data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}
phases:
  - bt:
      mode: backtest
      depends_on: []
  - broken:
      mode: command
      depends_on: [bt]
      run: 'echo "looking at $ADMF_UPSTREAM_BT"; echo "no such model" >&2; exit 3'
      outputs: [never.txt]
  - after:
      mode: command
      depends_on: [broken]
      run: 'touch after.txt'
      outputs: [after.txt]
  - report:
      mode: report
      depends_on: [bt]
"#;

#[test]
fn build_json_carries_paths_errors_and_logs() {
    let p = Project::new();
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p.file("wf.yaml", WF);
    p.file(".admf", "");
    let out = p.admf(&["build", "wf.yaml", "--json", "-k"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let node = |id: &str| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()
            .clone()
    };
    let bt = node("bt");
    assert_eq!(bt["status"], "ran");
    assert!(bt["error"].is_null());
    let dir = std::path::PathBuf::from(bt["dir"].as_str().unwrap());
    let files: Vec<&str> = bt["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for want in ["equity.csv", "metrics.json", "trades.csv"] {
        assert!(files.contains(&want), "{files:?}");
    }
    for f in files {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let log = std::fs::read_to_string(bt["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("SPY"), "{log}");

    let broken = node("broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["error"], "command exited with status 3");
    let log = std::fs::read_to_string(broken["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("no such model"), "{log}");
    assert!(log.contains("looking at /"), "{log}");
    assert!(broken["dir"].is_null());

    assert_eq!(node("after")["status"], "not_run");
    let report = node("report");
    let path = report["report"].as_str().unwrap();
    assert!(path.ends_with("report.html") && std::path::Path::new(path).is_file());
    assert_eq!(v["reports"][0], report["report"]);
    assert_eq!(
        (v["ran"].as_u64(), v["failed"].as_u64()),
        (Some(2), Some(1))
    );
}
