//! Output a person reads: a backtest's headline figures at the end of the
//! build, trials named by their parameters in `status` and
//! `graph --expand`, `-j 0` as all cores, `cache ls` with a header.

mod common;

use common::Project;

fn project() -> Project {
    let p = Project::new();
    p.file(".admf", "");
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p.repo_file(
        "workflows/simple_backtest.yaml",
        "workflows/simple_backtest.yaml",
    );
    p
}

#[test]
fn a_backtest_build_ends_with_its_headline_figures() {
    let p = project();
    let out = p.admf(&["build", "workflows/simple_backtest.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("backtest: total return "),
        "{}",
        out.stderr
    );
    // The figures are those of the stored metrics.json.
    let show = p.admf(&["show", "workflows/simple_backtest.yaml", "backtest"]);
    let shown = format!("{}{}", show.stdout, show.stderr);
    let sharpe = shown
        .split("\"sharpe\": ")
        .nth(1)
        .and_then(|s| s.split([',', '\n']).next())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .expect("show prints the metrics");
    assert!(
        last.contains(&format!("Sharpe {sharpe:.3}")),
        "{last} vs {sharpe}"
    );
    // Again from the store: the same line.
    let again = p.admf(&["build", "workflows/simple_backtest.yaml"]);
    assert_eq!(again.stderr.lines().last(), Some(last));
}

const SWEEP: &str = "data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum, parameters: {lookback: 20}}
phases:
  - sweep:
      mode: signal_generation
      grid: {lookback: [10, 30], threshold: [0.01, 0.02]}
";

#[test]
fn trials_are_named_by_their_parameters() {
    let p = project();
    p.file("sweep.yaml", SWEEP);
    let status = p.admf(&["status", "sweep.yaml"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status
            .stdout
            .contains("sweep[3] (momentum_lookback=30_threshold=0.02)  missing"),
        "{}",
        status.stdout
    );
    let graph = p.admf(&["graph", "sweep.yaml", "--expand"]);
    assert!(
        graph
            .stdout
            .contains("sweep[1]  signal_generation  momentum_lookback=10_threshold=0.02"),
        "{}",
        graph.stdout
    );
}

#[test]
fn jobs_zero_means_every_core() {
    let p = project();
    p.file("sweep.yaml", SWEEP);
    let ran = p.ran(&["sweep.yaml", "-j", "0"]);
    assert_eq!(ran.len(), 5, "{ran:?}");
}

#[test]
fn cache_ls_has_a_header_and_names_the_workflow() {
    let p = project();
    assert_eq!(p.admf(&["build", "workflows/simple_backtest.yaml"]).code, 0);
    let ls = p.admf(&["cache", "ls"]);
    assert_eq!(ls.code, 0, "{}", ls.stderr);
    let lines: Vec<&str> = ls.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", ls.stdout);
    assert!(lines[0].starts_with("KEY "), "{}", ls.stdout);
    for column in ["SIZE", "CREATED (UTC)", "MODE", "WORKFLOW", "NODE"] {
        assert!(lines[0].contains(column), "{}", ls.stdout);
    }
    assert!(
        lines[1].ends_with("backtest  simple_backtest  backtest"),
        "{}",
        ls.stdout
    );
}

/// `admf ARGS` under a pseudo-terminal (util-linux `script`); everything drawn.
fn on_terminal(p: &Project, args: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("admf");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{} {args}", bin.display()), "/dev/null"])
        .current_dir(p.dir.path())
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1")
        .env_remove("CI")
        .env_remove("ADMF_CACHE_DIR")
        .output()
        .expect("script runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_sweep_on_a_terminal_collapses_its_ran_lines_into_a_count() {
    let p = project();
    p.file(
        "big.yaml",
        &SWEEP.replace(
            "{lookback: [10, 30], threshold: [0.01, 0.02]}",
            "{lookback: \"range(5, 34, 1)\"}",
        ),
    );
    let drawn = on_terminal(&p, "build big.yaml -j 2");
    assert!(drawn.contains("ran     sweep: 30 trials ("), "{drawn:?}");
    assert!(!drawn.contains("ran     sweep[0]"), "{drawn:?}");
    // Without a terminal each trial keeps its line, for logs.
    let q = project();
    q.file("big.yaml", &p.read("big.yaml"));
    let out = q.admf(&["build", "big.yaml"]);
    assert_eq!(
        out.stderr.matches("ran     sweep[").count(),
        30,
        "{}",
        out.stderr
    );
}
