//! Store maintenance: refs, `ls`, `gc` policies, `verify --repair`, the
//! run ledger and the cache trait.

mod store_support;

use std::fs;
use std::time::Duration;

use admf::stat_cache::StatCache;
use admf::store::{
    Cache, Entry, GcPolicy, INLINE_MAX, Lookup, ManifestMeta, RunNode, RunRecord, Store,
    copy_action,
};
use store_support::{blob, blob_file, blob_files, sql, tamper_blob};

fn key(n: u32) -> String {
    blake3::hash(&n.to_le_bytes()).to_hex().to_string()
}

fn commit(store: &Store, n: u32, created_unix: Option<u64>) -> Entry {
    let k = key(n);
    let pending = store.begin(&k).unwrap();
    fs::write(pending.out_dir().join("n.txt"), n.to_string()).unwrap();
    let meta = ManifestMeta {
        node: format!("node{n}"),
        mode: "report".to_string(),
        ingredients: serde_json::json!({ "n": n }).into(),
        duration_ms: 1,
    };
    let entry = pending.commit(meta, b"").unwrap();
    if let Some(created) = created_unix {
        backdate(store, &entry, created);
    }
    entry
}

/// Rewrites an entry's `created_unix`, as if it had been built back then.
fn backdate(store: &Store, entry: &Entry, created: u64) {
    let changed = sql(
        store.root(),
        "UPDATE actions SET created_unix = ?1 WHERE key = ?2",
        &[&(created as i64), &entry.key],
    );
    assert_eq!(changed, 1);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn refs_round_trip_with_namespaced_and_trial_nodes() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    assert_eq!(store.read_ref("wf", "outer/inner[3]"), None);
    store.write_ref("wf", "outer/inner[3]", &key(1)).unwrap();
    store.write_ref("wf", "outer/inner[3]", &key(2)).unwrap();
    store.write_ref("wf", "plain", &key(3)).unwrap();
    assert_eq!(store.read_ref("wf", "outer/inner[3]"), Some(key(2)));
    assert_eq!(store.read_ref("other", "plain"), None);
    // Another process sees them.
    let again = Store::open(root.path()).unwrap();
    assert_eq!(again.read_ref("wf", "plain"), Some(key(3)));
    let refs = store.refs().unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].node, "outer/inner[3]");
    assert_eq!(refs[0].workflow_id, "wf");
    assert!(store.write_ref("wf", "n", "not-a-key").is_err());
}

#[test]
fn ls_lists_readable_entries_oldest_first() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    commit(&store, 1, Some(2000));
    commit(&store, 2, Some(1000));
    let bad = commit(&store, 3, None);
    sql(
        root.path(),
        "UPDATE actions SET outputs = 'junk' WHERE key = ?1",
        &[&bad.key],
    );
    store.write_ref("wf", "node1", &key(1)).unwrap();
    let ls = store.ls().unwrap();
    assert_eq!(ls.len(), 2);
    assert_eq!(ls[0].key, key(2));
    assert_eq!(ls[0].created_unix, 1000);
    assert_eq!(ls[1].node, "node1");
    assert_eq!(ls[1].size, 1);
    assert!(ls[1].referenced && !ls[0].referenced);
}

#[test]
fn gc_keeps_referenced_entries_and_applies_the_policy() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let day = 86_400;
    let t = now();
    // 1 is referenced (and old); 2..=5 unreferenced, 5 the newest.
    commit(&store, 1, Some(t - 30 * day));
    let two = commit(&store, 2, Some(t - 20 * day));
    commit(&store, 3, Some(t - 10 * day));
    commit(&store, 4, Some(t - 2 * day));
    commit(&store, 5, Some(t - 60));
    store.write_ref("wf", "a/b[0]", &key(1)).unwrap();
    let junk = commit(&store, 9, None);
    sql(
        root.path(),
        "UPDATE actions SET outputs = 'junk' WHERE key = ?1",
        &[&junk.key],
    );
    let two_blob = two.manifest.outputs["n.txt"].blake3.clone();

    // Dry run: nothing removed.
    let report = store
        .gc(GcPolicy {
            dry_run: true,
            ..GcPolicy::default()
        })
        .unwrap();
    assert_eq!(report.removed.len(), 4);
    assert_eq!(store.ls().unwrap().len(), 5);
    assert!(blob(root.path(), &two_blob).is_some());

    // Only entries older than a week go, with the blobs only they named.
    let report = store
        .gc(GcPolicy {
            older_than: Some(Duration::from_secs(7 * day)),
            ..GcPolicy::default()
        })
        .unwrap();
    assert_eq!(report.removed, [key(2), key(3)]);
    assert_eq!(report.kept_referenced, 1);
    assert_eq!(report.kept_unreferenced, 2);
    assert_eq!(report.removed_invalid, [key(9)]);
    // "2", "3" and "9" (the unreadable row's output) are gone.
    assert_eq!(report.removed_blobs, 3);
    assert!(blob(root.path(), &two_blob).is_none());
    assert_eq!(
        store.lookup(&key(2), &StatCache::in_memory()),
        Lookup::Missing
    );

    // Keep the single most recent unreferenced entry.
    let report = store
        .gc(GcPolicy {
            keep_recent: Some(1),
            ..GcPolicy::default()
        })
        .unwrap();
    assert_eq!(report.removed, [key(4)]);
    let left: Vec<_> = store.ls().unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(left, [key(1), key(5)]);

    // Default: every unreferenced entry.
    let report = store.gc(GcPolicy::default()).unwrap();
    assert_eq!(report.removed, [key(5)]);
    assert!(
        store
            .lookup(&key(1), &StatCache::in_memory())
            .hit()
            .is_some()
    );

    // --all: refs and entries alike.
    let report = store
        .gc(GcPolicy {
            all: true,
            ..GcPolicy::default()
        })
        .unwrap();
    assert_eq!(report.removed, [key(1)]);
    assert!(store.ls().unwrap().is_empty() && store.refs().unwrap().is_empty());
}

#[test]
fn gc_keeps_a_blob_that_a_kept_entry_shares_and_removes_orphan_files() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let big: Vec<u8> = vec![7; INLINE_MAX as usize + 1];
    for n in [1, 2] {
        let pending = store.begin(&key(n)).unwrap();
        fs::write(pending.out_dir().join("big.bin"), &big).unwrap();
        pending
            .commit(
                ManifestMeta {
                    node: format!("n{n}"),
                    mode: "command".into(),
                    ingredients: serde_json::json!(n).into(),
                    duration_ms: 0,
                },
                b"",
            )
            .unwrap();
    }
    store.write_ref("wf", "n1", &key(1)).unwrap();
    // A blob file no entry names, as a kill between rename and commit leaves.
    let orphan = store.put_blob(&vec![9; INLINE_MAX as usize + 1]).unwrap();
    assert_eq!(blob_files(root.path()).len(), 2);
    let report = store.gc(GcPolicy::default()).unwrap();
    assert_eq!(report.removed, [key(2)]);
    assert_eq!(report.removed_blobs, 1);
    assert!(!blob_file(root.path(), &orphan).exists());
    assert_eq!(
        store
            .lookup(&key(1), &StatCache::in_memory())
            .hit()
            .unwrap()
            .read("big.bin")
            .unwrap(),
        big
    );
}

#[test]
fn gc_all_removes_an_old_layout_store() {
    let root = tempfile::tempdir().unwrap();
    let old = root.path().join("objects/ab").join("ab".repeat(32));
    fs::create_dir_all(old.join("out")).unwrap();
    fs::write(old.join("out/x"), "x").unwrap();
    fs::create_dir_all(root.path().join("refs/wf")).unwrap();
    fs::write(root.path().join("lookups"), "").unwrap();
    let store = Store::open(root.path()).unwrap();
    // A plain gc leaves it alone.
    store.gc(GcPolicy::default()).unwrap();
    assert!(old.exists());
    let report = store
        .gc(GcPolicy {
            all: true,
            ..GcPolicy::default()
        })
        .unwrap();
    assert_eq!(report.removed_old_layout, Some(root.path().join("objects")));
    for gone in ["objects", "refs", "lookups"] {
        assert!(!root.path().join(gone).exists(), "{gone}");
    }
    assert_eq!(store.old_layout_notice(), None);
}

#[test]
fn verify_finds_and_repairs_corrupt_blobs_and_tmp_debris() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let good = commit(&store, 1, None);
    let bad = commit(&store, 2, None);
    let bad_blob = bad.manifest.outputs["n.txt"].blake3.clone();
    tamper_blob(root.path(), &bad_blob, b"X");
    let missing = commit(&store, 3, None);
    let missing_blob = missing.manifest.outputs["n.txt"].blake3.clone();
    sql(
        root.path(),
        "DELETE FROM blobs WHERE digest = ?1",
        &[&missing_blob],
    );
    let debris = root.path().join("tmp").join(format!("{}.1.2", key(4)));
    fs::create_dir_all(debris.join("out")).unwrap();

    let report = store.verify(false).unwrap();
    assert_eq!(report.checked, 3);
    assert_eq!(report.ok, 1);
    assert!(report.found_corruption());
    let actions: Vec<_> = report
        .corrupt
        .iter()
        .filter_map(|c| c.key.clone())
        .collect();
    let mut expected = vec![key(2), key(3)];
    expected.sort();
    assert_eq!(actions, expected);
    assert!(
        report
            .corrupt
            .iter()
            .any(|c| c.key.is_none() && c.what.contains(&bad_blob))
    );
    assert_eq!(report.stale_tmp, std::slice::from_ref(&debris));
    assert!(debris.exists());

    let report = store.verify(true).unwrap();
    assert!(report.repaired);
    assert!(!debris.exists());
    assert!(blob(root.path(), &bad_blob).is_none());
    for k in [key(2), key(3)] {
        assert_eq!(store.lookup(&k, &StatCache::in_memory()), Lookup::Missing);
    }
    assert!(
        store
            .lookup(&good.key, &StatCache::in_memory())
            .hit()
            .is_some()
    );
    assert!(store.verify(false).unwrap().is_clean());
}

#[test]
fn leftover_temporaries_alone_are_no_corruption() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    commit(&store, 1, None);
    fs::write(root.path().join("tmp/blob.1.2"), "half a blob").unwrap();
    let report = store.verify(false).unwrap();
    assert!(!report.is_clean());
    assert!(!report.found_corruption());
    assert_eq!(report.stale_tmp.len(), 1);
}

#[test]
fn the_ledger_keeps_every_run() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let run = |id: &str, started: u64, status: &str| RunRecord {
        run_id: id.into(),
        started_unix_ms: started,
        finished_unix_ms: started + 5,
        workflow: "wf.yaml".into(),
        workflow_id: "wf".into(),
        sets: vec!["a.x=1".into()],
        targets: vec![],
        nodes: vec![
            RunNode {
                node: "a".into(),
                key: Some(key(1)),
                status: status.into(),
                duration_ms: 1.5,
                ..Default::default()
            },
            RunNode {
                node: "b".into(),
                key: None,
                status: "skipped".into(),
                duration_ms: 0.0,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    store.record_run(&run("r1", 100, "ran")).unwrap();
    store.record_run(&run("r2", 200, "cached")).unwrap();
    let mut other = run("r3", 150, "ran");
    other.workflow_id = "other".into();
    store.record_run(&other).unwrap();
    let runs = Store::open(root.path()).unwrap().runs(Some("wf")).unwrap();
    assert_eq!(runs, [run("r1", 100, "ran"), run("r2", 200, "cached")]);
    assert_eq!(store.runs(None).unwrap().len(), 3);
    // A duplicate run id is refused, not merged.
    assert!(store.record_run(&run("r1", 300, "ran")).is_err());
}

#[test]
fn an_action_copied_through_the_cache_trait_is_a_hit_in_the_other_store() {
    let a_root = tempfile::tempdir().unwrap();
    let b_root = tempfile::tempdir().unwrap();
    let a = Store::open(a_root.path()).unwrap();
    let b = Store::open(b_root.path()).unwrap();
    let pending = a.begin(&key(1)).unwrap();
    fs::write(pending.out_dir().join("small.txt"), "small").unwrap();
    fs::write(
        pending.out_dir().join("big.bin"),
        vec![3; INLINE_MAX as usize + 10],
    )
    .unwrap();
    let entry = pending
        .commit(
            ManifestMeta {
                node: "n".into(),
                mode: "command".into(),
                ingredients: serde_json::json!({}).into(),
                duration_ms: 3,
            },
            b"the log",
        )
        .unwrap();
    let (from, to): (&dyn Cache, &dyn Cache) = (&a, &b);
    assert!(!copy_action(to, from, &key(2)).unwrap());
    assert!(copy_action(from, to, &key(1)).unwrap());
    let copied = b.lookup(&key(1), &StatCache::in_memory()).hit().unwrap();
    assert_eq!(copied.manifest, entry.manifest);
    assert_eq!(
        copied.read("big.bin").unwrap(),
        entry.read("big.bin").unwrap()
    );
    assert_eq!(copied.log().unwrap(), b"the log");
    assert_eq!(to.list_actions().unwrap(), [key(1)]);

    // An action whose blobs the tier lacks is refused.
    let c_root = tempfile::tempdir().unwrap();
    let c = Store::open(c_root.path()).unwrap();
    let err = Cache::put_action(&c, &entry.manifest).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(c.lookup(&key(1), &StatCache::in_memory()), Lookup::Missing);
}
