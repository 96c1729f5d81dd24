//! A grid's trials are decided, executed and committed in batches when a
//! build runs more than one job (`-j1` decides them one by one): the store
//! must not be able to tell. The same entries, byte for byte, whatever
//! `-j`; each trial its own entry; concurrent builds computing each trial
//! once between them.

mod common;
mod store_support;

use std::process::Child;

use common::{Project, with_status};

/// 8 lookbacks × 5 thresholds: 40 trials and the gather.
const SWEEP: &str = r#"data: {source: csv, symbols: [SPY], path: data/SPY.csv}
strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}
costs: {fee: 0.0}
phases:
  - sweep:
      mode: signal_generation
      grid: {lookback: "range(5, 40, 5)", threshold: [0.0, 0.002, 0.004, 0.006, 0.008]}
"#;

const TRIALS: usize = 40;

fn project() -> Project {
    let p = Project::new();
    p.file("sweep.yaml", SWEEP)
        .repo_file("data/SPY_D.csv", "data/SPY.csv");
    p
}

/// Action rows (columns as text) and the index's blobs (digest, bytes).
type Rows = (Vec<Vec<String>>, Vec<(String, Vec<u8>)>);

/// What the index holds for each action, less the times: key, node, mode,
/// ingredients, outputs, output digest and log digest, by key; and every
/// blob of the index (inline or packed), by digest.
fn index_rows(p: &Project, cache: &str) -> Rows {
    let db = rusqlite::Connection::open(p.path(&format!("{cache}/index/index.db"))).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT key, node, mode, ingredients, outputs, output_digest, log_digest FROM actions ORDER BY key",
        )
        .unwrap();
    let actions = stmt
        .query_map([], |r| (0..7).map(|i| r.get::<_, String>(i)).collect())
        .unwrap()
        .collect::<Result<Vec<Vec<String>>, _>>()
        .unwrap();
    // Inline or packed: a batched sweep packs its trials' larger outputs,
    // one by one they stay inline; the blobs are the same.
    (actions, store_support::index_blobs(&p.path(cache)))
}

#[test]
fn a_sweep_stores_the_same_entries_whatever_the_jobs() {
    // One project (logs name the data file's path), a store per `-j`.
    let p = project();
    let mut stores = Vec::new();
    for jobs in ["-j1", "-j2", "-j5"] {
        let cache = format!("cache{jobs}");
        let (out, statuses) = p.build(&["sweep.yaml", jobs, "--cache-dir", &cache]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(with_status(&statuses, "ran").len(), TRIALS + 1, "{jobs}");
        let (actions, blobs) = index_rows(&p, &cache);
        assert_eq!(actions.len(), TRIALS + 1, "{jobs}");
        // Each trial is its own action, under its own node.
        let trials: Vec<&String> = actions
            .iter()
            .map(|row| &row[1])
            .filter(|node| node.starts_with("sweep["))
            .collect();
        assert_eq!(trials.len(), TRIALS, "{jobs}");
        stores.push((jobs, statuses, actions, blobs));
    }
    let (_, statuses, actions, blobs) = &stores[0];
    for (jobs, other_statuses, other_actions, other_blobs) in &stores[1..] {
        assert_eq!(other_statuses, statuses, "{jobs}: statuses and keys");
        for (row, other) in actions.iter().zip(other_actions) {
            for (column, (a, b)) in [
                "key",
                "node",
                "mode",
                "ingredients",
                "outputs",
                "output_digest",
                "log_digest",
            ]
            .iter()
            .zip(row.iter().zip(other))
            {
                assert!(a == b, "{jobs}: {column} of {} differs:\n{a}\n{b}", row[1]);
            }
        }
        assert!(other_blobs == blobs, "{jobs}: the blobs differ");
    }
}

#[test]
fn adding_one_grid_value_to_a_batched_sweep_runs_its_trials_only() {
    let p = project();
    assert_eq!(p.ran(&["sweep.yaml", "-j3"]).len(), TRIALS + 1);
    // A sixth threshold adds one combination per lookback: trials 5, 11,
    // ... of the new product (the last key varies fastest).
    let ran = p.ran(&[
        "sweep.yaml",
        "-j3",
        "--set",
        "sweep.grid.threshold=[0.0, 0.002, 0.004, 0.006, 0.008, 0.01]",
    ]);
    let expected: Vec<String> = (0..8)
        .map(|l| format!("sweep[{}]", l * 6 + 5))
        .chain(["sweep".to_string()])
        .collect();
    assert_eq!(ran, expected);
    // Every earlier trial came from the store.
    let (out, statuses) = p.build(&["sweep.yaml", "-j3"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(with_status(&statuses, "ran").is_empty(), "{statuses:?}");
    assert_eq!(with_status(&statuses, "cached").len(), TRIALS + 1);
}

#[test]
fn a_forced_batched_sweep_runs_every_trial_again_into_the_same_entries() {
    let p = project();
    assert_eq!(p.ran(&["sweep.yaml", "-j2"]).len(), TRIALS + 1);
    let before = index_rows(&p, "cache");
    let ran = p.ran(&["sweep.yaml", "-j2", "--force-all"]);
    assert_eq!(ran.len(), TRIALS + 1);
    assert!(index_rows(&p, "cache") == before, "the entries changed");
}

fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn concurrent_batched_sweeps_compute_each_trial_once_between_them() {
    let p = project();
    let children: Vec<Child> = ["-j2", "-j4", "-j3"]
        .iter()
        .map(|jobs| p.spawn(&["build", "sweep.yaml", "--json", jobs]))
        .collect();
    let mut ran: Vec<String> = Vec::new();
    let mut keys: Option<Vec<(String, String)>> = None;
    for child in children {
        let (code, stdout, stderr) = finish(child);
        assert_eq!(code, 0, "{stderr}");
        assert!(!stderr.contains("corrupt"), "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let nodes = v["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), TRIALS + 1);
        let these: Vec<(String, String)> = nodes
            .iter()
            .map(|n| {
                let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
                (s("id"), s("key"))
            })
            .collect();
        if let Some(first) = &keys {
            assert_eq!(&these, first, "the builds disagree on keys");
        }
        keys = Some(these);
        for n in nodes {
            assert!(
                n["status"] == "ran" || n["status"] == "cached",
                "{n}: {stderr}"
            );
            if n["status"] == "ran" {
                ran.push(n["id"].as_str().unwrap().to_string());
            }
        }
    }
    ran.sort();
    let mut once: Vec<String> = (0..TRIALS)
        .map(|i| format!("sweep[{i}]"))
        .chain(["sweep".to_string()])
        .collect();
    once.sort();
    assert_eq!(ran, once, "each node runs in exactly one build");
    let verify = p.admf(&["cache", "verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stderr);
}

#[test]
fn a_batched_sweep_packs_its_signals_and_a_rotten_one_is_computed_again() {
    let p = project();
    assert_eq!(p.ran(&["sweep.yaml", "-j2"]).len(), TRIALS + 1);
    let cache = p.path("cache");
    // The signals went into packs, a few trials' each (one per chunk),
    // not a file per trial; the metrics and logs stayed inline.
    let packs = store_support::pack_files(&cache);
    assert!(!packs.is_empty() && packs.len() < TRIALS, "{packs:?}");
    let key = store_support::sql_strings(&cache, "SELECT key FROM refs WHERE node = 'sweep[3]'");
    let outputs: std::collections::BTreeMap<String, String> =
        store_support::outputs(&cache, &key[0])
            .into_iter()
            .collect();
    let signal = &outputs["signal.jsonl"];
    let (pack, _, _) = store_support::packed_place(&cache, signal).expect("packed");
    assert!(store_support::packed_place(&cache, &outputs["metrics.json"]).is_none());
    let good = store_support::blob(&cache, signal).unwrap();
    assert!(
        good.starts_with(b"{\"i\":"),
        "{}",
        String::from_utf8_lossy(&good)
    );

    // A flipped byte in that signal, as bit rot would.
    let mut rotten = good.clone();
    rotten[0] ^= 1;
    store_support::tamper_blob(&cache, signal, &rotten);
    assert!(pack.exists());
    let verify = p.admf(&["cache", "verify"]);
    assert_ne!(verify.code, 0, "verify must find the rotten signal");
    let said = format!("{}{}", verify.stdout, verify.stderr);
    assert!(said.contains("in pack"), "{said}");
    // A build that looks the entries up (no fast path) computes that
    // trial again, and only it: its outputs are the same bytes, so the
    // gather is still cached.
    let (out, statuses) = p.build_env(&["sweep.yaml", "-j2"], &[("ADMF_FULL_PATH", "1")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(with_status(&statuses, "ran"), ["sweep[3]"]);
    assert_eq!(store_support::blob(&cache, signal).unwrap(), good);
    let verify = p.admf(&["cache", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}

#[test]
fn gc_of_every_entry_leaves_no_pack_and_a_rebuild_packs_again() {
    let p = project();
    assert_eq!(p.ran(&["sweep.yaml", "-j2"]).len(), TRIALS + 1);
    let cache = p.path("cache");
    assert!(!store_support::pack_files(&cache).is_empty());
    let gc = p.admf(&["cache", "gc", "--all"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(
        store_support::pack_files(&cache).is_empty(),
        "{:?}",
        store_support::pack_files(&cache)
    );
    assert!(store_support::sql_strings(&cache, "SELECT digest FROM packed").is_empty());
    // Everything runs again, into new packs, and reads back whole.
    assert_eq!(p.ran(&["sweep.yaml", "-j2"]).len(), TRIALS + 1);
    assert!(!store_support::pack_files(&cache).is_empty());
    let verify = p.admf(&["cache", "verify"]);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
}
