//! A newcomer's path: `admf init` in an empty folder builds as is, and a
//! workflow written from `admf modes` / `admf strategies` alone (an SMA
//! sweep, an RSI backtest, a `when:` and a shell step) builds.

mod common;

use common::Project;

#[test]
fn every_template_builds_in_an_empty_folder_without_git() {
    for template in ["backtest", "research", "pipeline"] {
        let p = Project::new();
        let out = p.admf(&["init", "--template", template]);
        assert_eq!(out.code, 0, "{template}: {}", out.stderr);
        assert!(p.path(".admf").is_file());
        assert_eq!(
            std::fs::read(p.path("data/SPY_D.csv")).unwrap(),
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/SPY_D.csv")).unwrap(),
            "the bundled sample is the repository's, byte for byte"
        );
        let wf = format!("{template}.yaml");
        assert!(p.read(&wf).starts_with("# A starter admf"), "commented");
        let ran = p.ran(&[&wf]);
        assert!(!ran.is_empty(), "{template}: nothing ran");
        assert!(p.ran(&[&wf]).is_empty(), "{template}: second build ran");
        // Running it again refuses to overwrite the edited file.
        let again = p.admf(&["init", "--template", template]);
        assert_eq!(again.code, 2, "{}", again.stderr);
        assert!(again.stderr.contains("--force"), "{}", again.stderr);
    }
}

#[test]
fn init_keeps_data_at_hand_and_a_marker_above() {
    let p = Project::new();
    p.file(".git/HEAD", "ref: refs/heads/main\n");
    p.file("data/SPY_D.csv", "date,open,high,low,close\n");
    let out = common::admf_in(&p.path(""), &["init"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(p.read("data/SPY_D.csv"), "date,open,high,low,close\n");
    assert!(
        !p.path(".admf").exists(),
        "a .git above already marks the root"
    );
    assert!(p.path("backtest.yaml").is_file());
}

/// The newcomer's workflow: only keys `admf modes` documents.
const NEWCOMER: &str = r#"data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
costs: {fee: 0.0005}
phases:
  - sma_sweep:
      mode: signal_generation
      strategy: {type: sma_crossover, parameters: {fast: 10, slow: 100}}
      grid: {fast: [10, 20], slow: [100, 200]}
  - rsi:
      mode: backtest
      depends_on: []
      strategy: {type: rsi, parameters: {period: 14, lower: 30, upper: 70}}
  - summary:
      mode: command
      depends_on: [sma_sweep, rsi]
      when: "sma_sweep.best.sharpe > 0"
      run: "echo sweep cleared the bar > summary.txt"
      outputs: [summary.txt]
"#;

#[test]
fn a_workflow_written_from_the_reference_alone_builds() {
    let p = Project::new();
    assert_eq!(p.admf(&["init"]).code, 0);
    let modes = p.admf(&["modes", "--markdown"]);
    assert_eq!(modes.code, 0);
    let strategies = p.admf(&["strategies"]).stdout;
    // Every key the workflow uses is documented.
    for key in [
        "data",
        "costs",
        "phases",
        "mode",
        "strategy",
        "grid",
        "depends_on",
        "when",
        "run",
        "outputs",
        "source",
        "symbols",
        "path",
        "fee",
        "type",
        "parameters",
    ] {
        assert!(
            modes.stdout.contains(&format!("| `{key}` |")),
            "`{key}` is not documented"
        );
    }
    for (strategy, params) in [
        ("sma_crossover", &["fast", "slow"][..]),
        ("rsi", &["period", "lower", "upper"]),
    ] {
        assert!(strategies.contains(&format!("{strategy}: ")), "{strategy}");
        for param in params {
            assert!(
                strategies.contains(&format!("    {param} ")),
                "{strategy}.{param}"
            );
        }
    }
    assert!(
        p.admf(&["modes", "signal_generation"])
            .stdout
            .contains("best.sharpe"),
        "the condition path is documented"
    );
    p.file("newcomer.yaml", NEWCOMER);
    let (out, statuses) = p.build(&["newcomer.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status = |id: &str| {
        statuses
            .iter()
            .find(|(n, _)| n == id)
            .map(|(_, s)| s.as_str())
            .unwrap_or("absent")
    };
    for id in [
        "sma_sweep[0]",
        "sma_sweep[3]",
        "sma_sweep",
        "rsi",
        "summary",
    ] {
        assert_eq!(status(id), "ran", "{id}");
    }
    assert_eq!(p.read("summary.txt"), "sweep cleared the bar\n");
}
