//! Bad market data stops the build with the file, line and rule broken,
//! and exits 2 (bad input), not 1.

mod common;
mod research;

use common::Project;
use research::{project, workflow};

/// The shipped data with line `line` (1-based) rewritten by `edit`.
fn corrupt(p: &Project, file: &str, line: usize, edit: impl Fn(&str) -> String) {
    let text = p.read(file);
    let out: Vec<String> = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i + 1 == line {
                edit(l)
            } else {
                l.to_string()
            }
        })
        .collect();
    p.file(file, &out.join("\n"));
}

fn bad_build(p: &Project, wf: &str) -> String {
    let out = p.admf(&["build", wf]);
    assert_eq!(out.code, 2, "expected exit 2:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out.stderr
}

/// Rewrites one line of a data file.
type Edit = fn(&str) -> String;

#[test]
fn each_rule_on_the_daily_file_names_file_line_and_rule() {
    // Line 4 of SPY_D.csv is `2,1999-11-03,136.0,136.375,135.125,135.5,7222300.0`.
    let cases: [(&str, Edit, &str); 5] = [
        (
            "SPY_D.csv:4:14",
            |l| l.replacen(",136.0,", ",-136.0,", 1),
            "non-positive price: open = -136.0",
        ),
        (
            "SPY_D.csv:4:3",
            |l| l.replacen("1999-11-03", "1999-11-02", 1),
            "duplicate timestamp `1999-11-02` (also at line 3)",
        ),
        (
            "SPY_D.csv:4:3",
            |l| l.replacen("1999-11-03", "1999-10-03", 1),
            "rows not in time order",
        ),
        (
            "SPY_D.csv:4:20",
            |l| l.replacen(",136.375,", ",130.0,", 1),
            "high 130 is below max(open, close)",
        ),
        (
            "SPY_D.csv:4:36",
            |l| l.replacen(",135.5,", ",n/a,", 1),
            "unparsable `close`: `n/a`",
        ),
    ];
    for (at, edit, rule) in cases {
        let p = project();
        corrupt(&p, "data/SPY_D.csv", 4, edit);
        let err = bad_build(&p, &workflow("simple_backtest"));
        assert!(err.contains(at), "{rule}: expected {at}:\n{err}");
        assert!(err.contains(rule), "expected `{rule}`:\n{err}");
        assert!(err.contains("bad data"), "{err}");
    }
}

#[test]
fn bad_minute_bar_stops_every_phase_that_reads_it() {
    let p = project();
    corrupt(&p, "data/nt-spy-minute-2011.csv", 100, |l| {
        // `YYYYMMDD HHMMSS;O;H;L;C;V`: a low above the open.
        let mut f: Vec<String> = l.split(';').map(str::to_string).collect();
        f[3] = "999".into();
        f.join(";")
    });
    let err = bad_build(&p, &workflow("minute_research"));
    assert!(err.contains("nt-spy-minute-2011.csv:100:"), "{err}");
    assert!(err.contains("low 999 is above min(open, close)"), "{err}");
    // Nothing after the failing trials started: fail fast.
    assert!(err.contains("not run because of a failure"), "{err}");
}

#[test]
fn drop_policy_reports_how_many_rows_it_dropped() {
    let p = project();
    corrupt(&p, "data/SPY_D.csv", 4, |l| l.replacen(",136.0,", ",0,", 1));
    let wf = workflow("simple_backtest");
    let out = p.admf(&["build", &wf, "--set", "data.on_bad_rows=drop"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let show = p.admf(&["show", &wf, "backtest"]).stdout;
    assert!(
        show.contains("on_bad_rows dropped 1 and fixed 0 row(s); first at line 4"),
        "{show}"
    );
}

#[test]
fn a_phase_failure_among_bad_data_failures_exits_1() {
    let p = project();
    corrupt(&p, "data/SPY_D.csv", 4, |l| l.replacen(",136.0,", ",0,", 1));
    p.file(
        "workflows/mixed.yaml",
        "data: {source: csv, symbols: [SPY], path: ../data/SPY_D.csv}\n\
         strategy: {type: momentum, parameters: {lookback: 20}}\n\
         phases:\n\
         \x20 - bt: {mode: backtest}\n\
         \x20 - broken: {mode: command, run: 'exit 3', depends_on: []}\n",
    );
    let out = p.admf(&["build", "workflows/mixed.yaml", "--keep-going", "-j1"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("SPY_D.csv:4:"), "{}", out.stderr);
    assert!(out.stderr.contains("2 phase(s) failed"), "{}", out.stderr);
}
