//! The store through the binary: the run ledger, `cache verify`'s exit
//! codes, restored files' modes, and the old layout's migration.

mod common;
mod store_support;

use common::Project;

const WF: &str = "phases:\n  - {name: a, mode: command, run: 'echo a > a.txt', outputs: [a.txt]}\n  - {name: b, mode: command, run: 'cat a.txt > b.txt', outputs: [b.txt], depends_on: [a]}\n";

fn built() -> Project {
    let p = Project::new();
    p.file("wf.yaml", WF);
    let out = p.admf(&["build", "wf.yaml", "-j1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    p
}

#[test]
fn every_build_adds_a_row_to_the_ledger() {
    let p = built();
    let out = p.admf(&["build", "wf.yaml", "--set", "a.env.X=1", "b"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let cache = p.path("cache");
    let runs = store_support::sql_strings(
        &cache,
        "SELECT workflow || ' ' || sets || ' ' || targets FROM runs ORDER BY started_unix_ms, run_id",
    );
    assert_eq!(runs, ["wf.yaml [] []", "wf.yaml [\"a.env.X=1\"] [\"b\"]"]);
    let nodes = store_support::sql_strings(
        &cache,
        "SELECT (n.value ->> 0) || ' ' || (n.value ->> 2) || ' ' || length(n.value ->> 1) \
         FROM runs r, json_each(r.nodes) n ORDER BY r.run_id, n.key",
    );
    // `a` ran again for its new environment; its output did not change, so
    // `b` came from the cache (early cutoff).
    assert_eq!(nodes, ["a ran 64", "b ran 64", "a ran 64", "b cached 64"]);
    // A no-op answered without loading the workflow is a build too.
    for _ in 0..2 {
        assert_eq!(p.admf(&["build", "wf.yaml"]).code, 0);
    }
    let last = store_support::sql_strings(
        &cache,
        "SELECT group_concat(n.value ->> 2, ',') FROM runs r, json_each(r.nodes) n \
         GROUP BY r.run_id ORDER BY r.run_id DESC LIMIT 1",
    );
    assert_eq!(last, ["cached,cached"]);
    assert_eq!(
        store_support::sql_strings(&cache, "SELECT count(*) || '' FROM runs"),
        ["4"]
    );
}

/// A repeated no-op (its nodes the last run's to the byte) takes its
/// keys' metrics rows as the last run left them; any other no-op the
/// record answers looks them up, and adds those missing: for the nodes
/// whose entries can hold a `metrics.json` (here `b`), the record
/// telling which cannot (`a`, never looked up).
#[test]
fn a_no_op_after_a_build_that_ran_looks_its_metrics_rows_up() {
    const WF: &str = "phases:\n  - {name: a, mode: command, run: 'echo a > a.txt', outputs: [a.txt]}\n  - {name: b, mode: command, run: 'cat a.txt > b.txt && printf \"{\\\"x\\\": 1}\" > metrics.json', outputs: [b.txt, metrics.json], depends_on: [a]}\n";
    let p = Project::new();
    p.file("wf.yaml", WF);
    assert_eq!(p.admf(&["build", "wf.yaml", "-j1"]).code, 0);
    let cache = p.path("cache");
    let rows = || store_support::sql_strings(&cache, "SELECT metrics FROM key_metrics");
    let traced = |args: &[&str]| {
        let out = p.admf_env(args, &[("ADMF_TRACE", "1")]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stderr.contains("trace: up to date by")
    };
    // b runs again; its build writes a record (vouching for its fresh
    // output by digest) that answers the next build.
    p.file(
        "wf.yaml",
        &WF.replace("cat a.txt > b.txt", "cat < a.txt > b.txt"),
    );
    // Old enough for the record to trust by their stats.
    common::fast_paths::age(p.dir.path());
    assert!(!traced(&["build", "wf.yaml"]));
    // Rows missing as after a ledger trimmed by hand. The connection
    // stays open: closing the last one removes the WAL files, which
    // changes `index/` and so voids the record.
    let conn = rusqlite::Connection::open(cache.join("index/index.db")).unwrap();
    conn.execute("DELETE FROM key_metrics", []).unwrap();
    assert!(traced(&["build", "wf.yaml"]), "answered by the record");
    assert_eq!(rows(), ["{\"x\":1}"]);
    // The same no-op again keeps them.
    assert!(traced(&["build", "wf.yaml"]));
    assert_eq!(rows(), ["{\"x\":1}"]);
    drop(conn);
}

/// A command the node trace settles is looked up for ledger metrics
/// only when its entry can hold a `metrics.json` (an output declared under
/// that name): after the metrics rows are lost, the one that has metrics
/// gets its row back, and the commands that cannot have any are never
/// looked up (a key without a row reads as no metrics).
#[test]
fn only_a_command_that_can_have_metrics_is_looked_up_for_them() {
    let p = Project::new();
    p.file("in.txt", "one\n");
    p.file("other.txt", "two\n");
    p.file(
        "wf.yaml",
        "phases:\n  - {name: m, mode: command, run: 'printf \"{\\\"sharpe\\\": 1.5}\" > metrics.json', outputs: [metrics.json]}\n  - {name: o, mode: command, run: 'cat in.txt > o.txt', inputs: [in.txt], outputs: [o.txt]}\n  - {name: c, mode: command, run: 'cat other.txt > c.txt', inputs: [other.txt], outputs: [c.txt]}\n",
    );
    let build = || {
        let out = p.admf_env(&["build", "wf.yaml", "-j1"], &[("ADMF_TRACE", "1")]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stderr
    };
    build();
    let cache = p.path("cache");
    let keyed = |node: &str| {
        store_support::sql_strings(
            &cache,
            &format!(
                "SELECT coalesce((SELECT metrics FROM key_metrics WHERE key = n.value ->> 1), 'none') \
                 FROM runs r, json_each(r.nodes) n WHERE n.value ->> 0 = '{node}' \
                 ORDER BY r.started_unix_ms DESC, r.run_id DESC LIMIT 1"
            ),
        )
    };
    assert_eq!(keyed("m"), ["{\"sharpe\":1.5}"]);
    assert_eq!(keyed("o"), ["none"]);
    // Outputs written in a build's last instant are left out of its
    // trace; a verbose build (never answered by the up-to-date record)
    // writes the trace again once they are old enough.
    common::past_racy_window();
    let out = p.admf(&["build", "wf.yaml", "-j1", "-v"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    common::past_racy_window();
    // The connection stays open: closing the last one removes the WAL
    // files, which changes `index/` and so voids the graph cache.
    let conn = rusqlite::Connection::open(cache.join("index/index.db")).unwrap();
    conn.execute("DELETE FROM key_metrics", []).unwrap();
    p.file("other.txt", "three\n");
    common::past_racy_window();
    let stderr = build();
    assert!(
        stderr.contains("trace: 2 nodes settled by the node trace"),
        "{stderr}"
    );
    assert_eq!(keyed("m"), ["{\"sharpe\":1.5}"], "looked up again");
    assert_eq!(keyed("o"), ["none"]);
    assert_eq!(keyed("c"), ["none"]);
    let log = p.admf(&["log", "wf.yaml", "m", "--json"]);
    assert_eq!(log.code, 0, "{}", log.stderr);
    let log: serde_json::Value = serde_json::from_str(&log.stdout).unwrap();
    assert_eq!(log[1]["sharpe"], 1.5, "{log}");
    drop(conn);
}

#[test]
fn verify_exits_1_for_corruption_and_0_for_leftover_temporaries() {
    let p = built();
    std::fs::write(p.path("cache/tmp/blob.123.456"), "half a blob").unwrap();
    let out = p.admf(&["cache", "verify"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("0 corrupt, 1 temporaries"),
        "{}",
        out.stderr
    );

    let key = store_support::action_keys(&p.path("cache"))[0].clone();
    let (_, digest) = store_support::outputs(&p.path("cache"), &key)[0].clone();
    store_support::tamper_blob(&p.path("cache"), &digest, b"rot\n");
    let out = p.admf(&["cache", "verify"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(&digest), "{}", out.stderr);
    // The corrupt entry is a miss: the next build recomputes it.
    let out = p.admf(&["build", "wf.yaml", "-j1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("ran"), "{}", out.stderr);
    let out = p.admf(&["cache", "verify", "--repair"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = p.admf(&["cache", "verify"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(" 0 corrupt, 0 temporaries"),
        "{}",
        out.stderr
    );
}

#[cfg(unix)]
#[test]
fn restored_outputs_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let p = built();
    let made = std::fs::metadata(p.path("b.txt"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    std::fs::remove_file(p.path("b.txt")).unwrap();
    let out = p.admf(&["build", "wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(p.read("b.txt"), "a\n");
    let restored = std::fs::metadata(p.path("b.txt"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    // The same mode the command's own file got from the umask, never
    // the store's read-only mode nor a world-writable one.
    assert_eq!(restored, made);
    assert_eq!(restored & 0o002, 0);
}

#[test]
fn an_old_layout_store_is_reported_once_and_gc_all_removes_it() {
    let p = Project::new();
    p.file("wf.yaml", WF);
    let key = "ab".repeat(32);
    p.file(&format!("cache/objects/ab/{key}/manifest.json"), "{}");
    p.file(&format!("cache/objects/ab/{key}/out/a.txt"), "a\n");
    p.file("cache/refs/wf/a", &format!("{key}\n"));
    let out = p.admf(&["build", "wf.yaml", "-j1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let notices: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("older store layout"))
        .collect();
    assert_eq!(notices.len(), 1, "{}", out.stderr);
    assert!(notices[0].contains("admf cache gc --all"), "{}", notices[0]);
    // Nothing was taken from it: both nodes ran.
    assert!(out.stderr.contains("2 ran"), "{}", out.stderr);
    let out = p.admf(&["cache", "gc", "--all"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!p.path("cache/objects").exists() && !p.path("cache/refs").exists());
    let out = p.admf(&["build", "wf.yaml", "-j1"]);
    assert!(!out.stderr.contains("older store layout"), "{}", out.stderr);
    assert!(
        out.stderr.contains("2 ran"),
        "gc --all removes every entry: {}",
        out.stderr
    );
}

#[test]
fn show_prints_a_directory_of_plain_files() {
    let p = built();
    let out = p.admf(&["show", "wf.yaml", "b"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let dir = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("artifacts: "))
        .expect("an artifacts line");
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(dir).join("b.txt")).unwrap(),
        "a\n"
    );
}
