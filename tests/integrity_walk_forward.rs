//! Walk-forward folds are nodes of their own: data longer by one fold
//! runs one more fold's selection and the stitch, and keeps every earlier
//! fold from the store, with the same figures as a cold build.

mod common;
mod research;

use research::project;

/// A rolling walk-forward over the first `bars` bars of the shipped SPY
/// data: train 756 returns, purge 1, test 252.
fn walk_forward_project(bars: usize) -> common::Project {
    let p = project();
    write_data(&p, bars);
    p.file(
        "workflows/wf.yaml",
        "data: {source: csv, symbols: [SPY], path: ../data/short.csv}
strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}
costs: {fee: 0.001}
phases:
  - sweep:
      mode: signal_generation
      grid: {lookback: [10, 20, 30], threshold: [0.01, 0.02]}
  - walk:
      mode: walk_forward
      depends_on: [sweep]
      windows: {train: 756, test: 252, purge: 1}
",
    );
    p
}

fn write_data(p: &common::Project, bars: usize) {
    let all = p.read("data/SPY_D.csv");
    let lines: Vec<&str> = all.lines().take(bars + 1).collect();
    p.file("data/short.csv", &(lines.join("\n") + "\n"));
}

/// The stitch's artifacts as the last build left them, by name.
fn stitched(p: &common::Project) -> Vec<(String, String)> {
    let show = p.admf(&["show", "workflows/wf.yaml", "walk"]).stdout;
    let dir = show
        .lines()
        .find_map(|l| l.strip_prefix("artifacts: "))
        .unwrap_or_else(|| panic!("{show}"));
    ["folds.csv", "equity.csv", "metrics.json"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(std::path::Path::new(dir.trim()).join(name));
            (name.to_string(), text.unwrap())
        })
        .collect()
}

fn with_status<'a>(statuses: &'a [(String, String)], prefix: &str) -> Vec<(&'a str, &'a str)> {
    statuses
        .iter()
        .filter(|(id, _)| id.starts_with(prefix))
        .map(|(id, s)| (id.as_str(), s.as_str()))
        .collect()
}

#[test]
fn one_more_fold_runs_one_fold_and_the_stitch() {
    // 3 full folds: 757 + 3·252 = 1513 returns, 1514 bars.
    let p = walk_forward_project(1514);
    let (out, statuses) = p.build(&["workflows/wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let folds = with_status(&statuses, "walk[fold=");
    assert_eq!(
        folds,
        [
            ("walk[fold=0]", "ran"),
            ("walk[fold=1]", "ran"),
            ("walk[fold=2]", "ran")
        ]
    );
    // Four more bars than a fold needs would not make a fold: 252 do.
    write_data(&p, 1514 + 252);
    let (out, statuses) = p.build(&["workflows/wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        with_status(&statuses, "walk[fold="),
        [
            ("walk[fold=0]", "cached"),
            ("walk[fold=1]", "cached"),
            ("walk[fold=2]", "cached"),
            ("walk[fold=3]", "ran")
        ],
        "{statuses:?}"
    );
    let stitch = statuses.iter().find(|(id, _)| id == "walk").unwrap();
    assert_eq!(stitch.1, "ran");
    // The returns and the slices run again (the data changed) and come
    // out the same for the earlier folds, which is what stops there.
    assert_eq!(
        with_status(&statuses, "walk[returns]"),
        [("walk[returns]", "ran")]
    );
    assert_eq!(
        with_status(&statuses, "walk[window="),
        [
            ("walk[window=0-1009]", "ran"),
            ("walk[window=252-1261]", "ran"),
            ("walk[window=504-1513]", "ran"),
            ("walk[window=756-1765]", "ran")
        ]
    );
    let incremental = stitched(&p);

    // A cold build of the longer data writes the same bytes.
    let cold = walk_forward_project(1514 + 252);
    let (out, _) = cold.build(&["workflows/wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(stitched(&cold), incremental);
    let metrics: serde_json::Value = serde_json::from_str(&incremental[2].1).unwrap();
    assert_eq!(metrics["folds"], 4);
    assert_eq!(metrics["oos"]["bars"], 4 * 252 + 1);
}

#[test]
fn a_wider_step_keeps_the_windows_it_shares() {
    // step 504 keeps folds 0 and 2 of step 252 as its folds 0 and 1.
    let p = walk_forward_project(1766);
    let (out, _) = p.build(&["workflows/wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = p
        .read("workflows/wf.yaml")
        .replace("purge: 1}", "purge: 1, step: 504}");
    p.file("workflows/wf.yaml", &text);
    let (out, statuses) = p.build(&["workflows/wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        with_status(&statuses, "walk[fold="),
        [("walk[fold=0]", "cached"), ("walk[fold=1]", "cached")],
        "{statuses:?}"
    );
    assert_eq!(
        with_status(&statuses, "walk[returns]"),
        [("walk[returns]", "cached")]
    );
}

#[test]
fn data_too_short_for_one_fold_is_refused_at_its_key() {
    let p = walk_forward_project(700);
    let out = p.admf(&["validate", "workflows/wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("wf.yaml:11")
            && out
                .stderr
                .contains("699 returns, too few for a train window of 756"),
        "{}",
        out.stderr
    );
}
