//! `docs/reference.md` is `admf modes --markdown`: this test fails when it
//! is stale. Regenerate it with
//! `cargo run -- modes --markdown > docs/reference.md`
//! (or run this test with `ADMF_BLESS=1`).

use assert_cmd::Command;

fn admf(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("admf")
        .expect("binary")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run admf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn docs_reference_is_generated_from_the_declarations() {
    let (code, generated, err) = admf(&["modes", "--markdown"]);
    assert_eq!(code, 0, "{err}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
    if std::env::var_os("ADMF_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/reference.md is stale: run `cargo run -- modes --markdown > docs/reference.md`"
    );
    // It holds what a newcomer looks for.
    for needle in [
        "### `sma_crossover`",
        "| `fast` | int >= 1 | `10` |",
        "| `sharpe` | mean(r) / std(r, ddof 1) * sqrt(P)",
        "### `signal_replay`",
        "## Execution convention",
        "| `when` |",
        "`signals/trial_N.jsonl`",
    ] {
        assert!(generated.contains(needle), "missing {needle}");
    }
}

#[test]
fn modes_and_strategies_print_keys_defaults_and_parameters() {
    let (code, out, _) = admf(&["modes"]);
    assert_eq!(code, 0);
    for mode in [
        "backtest",
        "signal_generation",
        "analysis",
        "signal_replay",
        "report",
        "command",
    ] {
        assert!(out.contains(mode), "{out}");
    }
    let (code, out, _) = admf(&["modes", "signal_generation"]);
    assert_eq!(code, 0);
    assert!(out.contains("grid"), "{out}");
    assert!(out.contains("(default: no grid: one run)"), "{out}");
    let (code, out, _) = admf(&["strategies"]);
    assert_eq!(code, 0);
    assert!(out.contains("rsi: Wilder RSI(period)"), "{out}");
    assert!(
        out.contains("lower        number in [0, 100] (default 30)"),
        "{out}"
    );
    let (code, _, err) = admf(&["modes", "comand"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown mode `comand`"), "{err}");
    assert!(err.contains("did you mean `command`?"), "{err}");
    assert!(err.contains("backtest, signal_generation"), "{err}");
}
