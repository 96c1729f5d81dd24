//! Failure handling beyond `tests/errors.rs`: `--keep-going` finishes
//! exactly the nodes not downstream of a failure, `retries:` re-executes
//! only the failing node, and a full disk while an entry is written fails
//! the node cleanly and leaves the store valid.

mod common;
mod store_support;

use common::Project;

fn statuses(p: &Project, args: &[&str]) -> (i32, Vec<(String, String)>) {
    let (out, statuses) = p.build(args);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    (out.code, statuses)
}

fn status<'a>(all: &'a [(String, String)], id: &str) -> &'a str {
    &all.iter().find(|(n, _)| n == id).unwrap().1
}

#[test]
fn keep_going_runs_everything_not_below_the_failure() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: a, mode: command, run: 'echo a > a.txt', outputs: [a.txt]}\n  - {name: bad, mode: command, run: 'echo half > bad.txt; exit 4', outputs: [bad.txt]}\n  - {name: c, mode: command, run: 'cat a.txt > c.txt', outputs: [c.txt], depends_on: [a]}\n  - {name: below, mode: command, run: 'true', depends_on: [bad, c]}\n  - {name: further, mode: command, run: 'true', depends_on: [below]}\n  - {name: alone, mode: command, run: 'echo x > alone.txt', outputs: [alone.txt], depends_on: []}\n",
    );
    let (code, all) = statuses(&p, &["wf.yaml", "-j1", "--keep-going"]);
    assert_eq!(code, 1);
    for (id, want) in [
        ("a", "ran"),
        ("bad", "failed"),
        ("c", "ran"),
        ("below", "not_run"),
        ("further", "not_run"),
        ("alone", "ran"),
    ] {
        assert_eq!(status(&all, id), want, "{id}: {all:?}");
    }
    // The failed node stored nothing: three entries, no temp dirs.
    assert_eq!(store_support::action_keys(&p.path("cache")).len(), 3);
    assert!(common::tree(&p.path("cache/tmp")).is_empty());
    // Without --keep-going, nothing new starts after the failure.
    let (code, all) = statuses(&p, &["wf.yaml", "-j1", "--force-all"]);
    assert_eq!(code, 1);
    assert_eq!(status(&all, "bad"), "failed");
    assert_eq!(status(&all, "alone"), "not_run", "{all:?}");
}

/// With `-j2` the coordinator hands commands over while both workers are
/// busy, to wait in the executor's queue. A failure stops the build
/// before the worker that saw it takes a queued one: what waited is
/// withdrawn, never started, and says "not run" like every node the
/// build did not reach; `--keep-going` runs them all.
#[test]
fn a_failure_withdraws_the_commands_queued_behind_it() {
    let p = Project::new();
    let mut wf = String::from(
        "phases:\n  - {name: bad, mode: command, run: 'exit 3'}\n  - {name: slow, mode: command, run: 'sleep 1; touch slow.ran', depends_on: []}\n",
    );
    for i in 0..6 {
        wf.push_str(&format!(
            "  - {{name: q{i}, mode: command, run: 'touch q{i}.ran', outputs: [q{i}.ran], depends_on: []}}\n"
        ));
    }
    p.file("wf.yaml", &wf);
    let (code, all) = statuses(&p, &["wf.yaml", "-j2"]);
    assert_eq!(code, 1);
    assert_eq!(status(&all, "bad"), "failed");
    // Started with `bad`, before any failure: it runs to its end.
    assert_eq!(status(&all, "slow"), "ran", "{all:?}");
    for i in 0..6 {
        assert_eq!(status(&all, &format!("q{i}")), "not_run", "q{i}: {all:?}");
        assert!(!p.path(&format!("q{i}.ran")).exists(), "q{i} ran");
    }
    // Nothing of theirs was left behind: no entry (`slow`'s only), no
    // temp dir.
    assert!(common::tree(&p.path("cache/tmp")).is_empty());
    assert_eq!(store_support::action_keys(&p.path("cache")).len(), 1);
    let (code, all) = statuses(&p, &["wf.yaml", "-j2", "--keep-going"]);
    assert_eq!(code, 1);
    for i in 0..6 {
        assert_eq!(status(&all, &format!("q{i}")), "ran", "q{i}: {all:?}");
        assert!(p.path(&format!("q{i}.ran")).exists());
    }
}

#[test]
fn retries_reexecute_only_the_failing_node() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: up, mode: command, run: 'echo up >> runs.log; echo u > u.txt', outputs: [u.txt]}\n  - name: flaky\n    mode: command\n    retries: 3\n    run: 'echo flaky >> runs.log; test $(grep -c flaky runs.log) -ge 3 && cat u.txt > f.txt'\n    outputs: [f.txt]\n  - {name: down, mode: command, run: 'echo down >> runs.log; cat f.txt > d.txt', outputs: [d.txt]}\n",
    );
    let (out, all) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(all.iter().all(|(_, s)| s == "ran"), "{all:?}");
    assert_eq!(p.read("runs.log"), "up\nflaky\nflaky\nflaky\ndown\n");
    let shown = p.admf(&["show", "wf.yaml", "flaky"]).stdout;
    assert!(shown.contains("attempt 3 of 4"), "{shown}");

    // Retries exhausted: the node fails, and the log shown holds the last
    // attempt's output, after a note of the earlier failures.
    p.file(
        "wf.yaml",
        "phases:\n  - name: never\n    mode: command\n    retries: 2\n    run: 'echo attempt-output; exit 9'\n",
    );
    let out = p.admf(&["build", "wf.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("attempt-output").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("attempt 3 of 3"), "{}", out.stderr);
    assert!(out.stderr.contains("status 9"), "{}", out.stderr);
}

/// A 1 MB tmpfs as the store: a node whose outputs do not fit fails with
/// the disk error, nothing half-written stays, and the store still works.
///
/// The tmpfs is mounted in a private user and mount namespace
/// ([`Project::run_in_namespace`]); the three admf runs happen inside it
/// and the mount vanishes with it.
#[test]
fn a_full_disk_fails_the_node_and_leaves_the_store_valid() {
    let p = Project::new();
    std::fs::create_dir(p.path("small-cache")).unwrap();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: small, mode: command, run: 'echo ok > small.txt', outputs: [small.txt]}\n  - {name: big, mode: command, run: 'head -c 3000000 /dev/zero > big.bin', outputs: [big.bin], depends_on: []}\n  - {name: after, mode: command, run: 'true', depends_on: [big]}\n",
    );
    // Each run leaves <name>.out, <name>.err and <name>.code beside wf.yaml.
    p.file(
        "full_disk.sh",
        r#"mount -t tmpfs -o size=1m tmpfs small-cache || exit 97
run full build --json wf.yaml -j1 --keep-going --cache-dir small-cache
run verify cache --cache-dir small-cache verify
run again build --json wf.yaml small --cache-dir small-cache
"#,
    );
    p.run_in_namespace("full_disk.sh");
    let run = |name: &str| p.script_run(name);
    let out = run("full");
    let all = common::node_statuses(&out, "admf build (full disk)");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(status(&all, "small"), "ran");
    assert_eq!(status(&all, "big"), "failed");
    assert_eq!(status(&all, "after"), "not_run");
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    let verify = run("verify");
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert!(
        verify.stderr.contains("1 ok, 0 corrupt, 0 temporaries"),
        "{}",
        verify.stderr
    );
    // The store still serves what it holds.
    let out = run("again");
    let all = common::node_statuses(&out, "admf build (again)");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(status(&all, "small"), "cached");
}
