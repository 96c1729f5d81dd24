//! Concurrency through the binary: several `admf build`s of one workflow on
//! one store compute every node exactly once between them and agree byte
//! for byte; `admf cache gc` alongside a build never removes what the
//! build needs. (`tests/store_concurrency.rs` covers the store API itself.)

mod common;
mod store_support;

use std::process::Child;

use common::{Project, tree};

/// Every command appends its name to `counter.log`, which is not an output:
/// the file counts executions across all builds.
const WORKFLOW: &str = r#"data: {source: csv, symbols: [SPY], path: data/SPY.csv}
strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}
phases:
  - name: a
    mode: command
    run: 'echo a >> counter.log; sleep 0.2; yes alpha | head -c 200000 > out/a.txt'
    outputs: [out/a.txt]
    depends_on: []
  - name: b
    mode: command
    run: 'echo b >> counter.log; sleep 0.1; tr a-z A-Z < out/a.txt > out/b.txt'
    outputs: [out/b.txt]
  - name: c
    mode: command
    run: 'echo c >> counter.log; cut -c1-3 < out/a.txt > out/c.txt'
    outputs: [out/c.txt]
    depends_on: [a]
  - name: d
    mode: command
    run: 'echo d >> counter.log; cat out/b.txt out/c.txt > out/d.txt'
    outputs: [out/d.txt]
    depends_on: [b, c]
  - name: bt
    mode: backtest
    depends_on: []
  - name: sweep
    mode: signal_generation
    grid: {lookback: [10, 20, 30]}
    depends_on: []
"#;

const NODES: usize = 9; // a b c d bt sweep[0..2] sweep

fn project() -> Project {
    let p = Project::new();
    p.file("wf.yaml", WORKFLOW)
        .repo_file("data/SPY_D.csv", "data/SPY.csv");
    p
}

struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
}

fn finish(child: Child) -> Finished {
    let out = child.wait_with_output().unwrap();
    Finished {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// (node id, status, key) from `build --json`.
fn nodes(stdout: &str) -> Vec<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("status"), s("key"))
        })
        .collect()
}

/// `n` builds started together; all must succeed, each node must run in
/// exactly one of them, and all must agree on every key.
fn concurrent_builds(n: usize) {
    let p = project();
    let children: Vec<Child> = (0..n)
        .map(|i| {
            p.spawn(&[
                "build",
                "wf.yaml",
                "--json",
                if i % 2 == 0 { "-j2" } else { "-j1" },
            ])
        })
        .collect();
    let results: Vec<Finished> = children.into_iter().map(finish).collect();
    for r in &results {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(!r.stderr.contains("corrupt"), "{}", r.stderr);
    }
    let reports: Vec<_> = results.iter().map(|r| nodes(&r.stdout)).collect();
    for report in &reports {
        assert_eq!(report.len(), NODES);
        let keys: Vec<_> = report.iter().map(|(id, _, k)| (id, k)).collect();
        let first: Vec<_> = reports[0].iter().map(|(id, _, k)| (id, k)).collect();
        assert_eq!(keys, first, "builds disagree on keys");
    }
    for i in 0..NODES {
        let ran = reports.iter().filter(|r| r[i].1 == "ran").count();
        let cached = reports.iter().filter(|r| r[i].1 == "cached").count();
        assert_eq!(
            (ran, cached),
            (1, n - 1),
            "node {} ran {ran} times across {n} builds",
            reports[0][i].0
        );
    }
    let mut counted: Vec<String> = p.read("counter.log").lines().map(String::from).collect();
    counted.sort();
    assert_eq!(counted, ["a", "b", "c", "d"], "commands executed");

    // The artifacts match a build of the same workflow alone, byte for byte.
    let alone = project();
    assert_eq!(alone.ran(&["wf.yaml"]).len(), NODES);
    assert_eq!(tree(&p.path("out")), tree(&alone.path("out")));
    for (_, _, key) in &reports[0] {
        let stored = store_support::entry_files(&p.path("cache"), key);
        assert!(!stored.is_empty(), "{key}");
        assert_eq!(
            stored,
            store_support::entry_files(&alone.path("cache"), key),
            "{key}"
        );
    }
    let verify = p.admf(&["cache", "verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert!(p.ran(&["wf.yaml"]).is_empty());
}

#[test]
fn two_builds_together_run_each_node_once() {
    concurrent_builds(2);
}

#[test]
fn four_builds_together_run_each_node_once() {
    concurrent_builds(4);
}

#[test]
fn gc_alongside_a_build_never_removes_what_it_needs() {
    let p = project();
    // A first build whose entries the second build partly reuses.
    assert_eq!(p.ran(&["wf.yaml"]).len(), NODES);
    std::fs::remove_file(p.path("counter.log")).unwrap();
    // The second build changes `b` (and so `d` below it); `a`, `c`, `bt`
    // and the sweep come from the store.
    let set = "b.run=echo b >> counter.log; sleep 0.3; tr a-z A-Z < out/a.txt > out/b.txt; echo >> out/b.txt";
    let build = p.spawn(&["build", "wf.yaml", "--json", "-j2", "--set", set]);
    let mut gcs = Vec::new();
    for i in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(60));
        let wait = i % 2 == 0;
        let mut args = vec!["cache", "gc"];
        if wait {
            args.push("--wait");
        }
        gcs.push((wait, p.spawn(&args)));
    }
    let built = finish(build);
    assert_eq!(built.code, 0, "{}", built.stderr);
    let report = nodes(&built.stdout);
    let ran: Vec<&str> = report
        .iter()
        .filter(|(_, s, _)| s == "ran")
        .map(|(id, _, _)| id.as_str())
        .collect();
    assert_eq!(ran, ["b", "d"]);
    for (wait, gc) in gcs {
        let gc = finish(gc);
        assert!(!gc.stderr.contains("panicked"), "{}", gc.stderr);
        if wait {
            assert_eq!(gc.code, 0, "{}", gc.stderr);
        } else {
            // Either refused while the build ran, or ran after it.
            assert!(
                gc.code == 0 || gc.stderr.contains("a build is running"),
                "{}",
                gc.stderr
            );
        }
    }
    // Everything the build produced survived: the next build is a no-op
    // and the store verifies clean.
    let (again, statuses) = p.build(&["wf.yaml", "--set", set]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(statuses.iter().all(|(_, s)| s == "cached"), "{statuses:?}");
    let verify = p.admf(&["cache", "verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert_eq!(p.read("counter.log"), "b\nd\n");
}
