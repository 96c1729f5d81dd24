//! Store maintenance: refs, `ls`, `gc` policies and `verify --repair`.

use std::fs;
use std::time::Duration;

use admf::stat_cache::StatCache;
use admf::store::{Entry, GcPolicy, Lookup, ManifestMeta, Store};

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
        ingredients: serde_json::json!({ "n": n }),
        duration_ms: 1,
    };
    let entry = pending.commit(meta, b"").unwrap();
    if let Some(created) = created_unix {
        backdate(&entry, created);
    }
    entry
}

/// Rewrites an entry's `created_unix`, as if it had been built back then.
fn backdate(entry: &Entry, created: u64) {
    let path = entry.dir.join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    m["created_unix"] = created.into();
    fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
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
    assert_eq!(
        store.ref_path("wf", "outer/inner[3]").unwrap(),
        root.path().join("refs/wf/outer%2Finner%5B3%5D")
    );
    assert_eq!(
        fs::read_to_string(root.path().join("refs/wf/plain")).unwrap(),
        format!("{}\n", key(3))
    );
    let refs = store.refs().unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].node, "outer/inner[3]");
    assert_eq!(refs[0].workflow_id, "wf");
    assert!(store.write_ref("wf", "n", "not-a-key").is_err());
    assert!(store.write_ref("wf", "", &key(1)).is_err());
}

#[test]
fn ls_lists_valid_entries_oldest_first() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    commit(&store, 1, Some(2000));
    commit(&store, 2, Some(1000));
    fs::create_dir_all(store.entry_dir(&key(3))).unwrap(); // not an entry
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
    commit(&store, 2, Some(t - 20 * day));
    commit(&store, 3, Some(t - 10 * day));
    commit(&store, 4, Some(t - 2 * day));
    commit(&store, 5, Some(t - 60));
    store.write_ref("wf", "a/b[0]", &key(1)).unwrap();
    let junk = store.entry_dir(&key(9));
    fs::create_dir_all(junk.join("out")).unwrap();

    // Dry run: nothing removed.
    let report = store
        .gc(GcPolicy {
            dry_run: true,
            ..GcPolicy::default()
        })
        .unwrap();
    assert_eq!(report.removed.len(), 4);
    assert_eq!(store.ls().unwrap().len(), 5);

    // A lookup cache remembering entries that gc is about to remove.
    let lookups = admf::store::LookupCache::load(&store.lookup_cache_path());
    let stats = admf::stat_cache::StatCache::in_memory();
    assert!(
        store
            .lookup_cached(&key(2), &stats, &lookups)
            .hit()
            .is_some()
    );
    lookups.save().unwrap();
    assert!(store.lookup_cache_path().exists());

    // Only entries older than a week go, and the lookup cache with them.
    let report = store
        .gc(GcPolicy {
            older_than: Some(Duration::from_secs(7 * day)),
            ..GcPolicy::default()
        })
        .unwrap();
    assert_eq!(report.removed, [key(2), key(3)]);
    assert_eq!(report.kept_referenced, 1);
    assert_eq!(report.kept_unreferenced, 2);
    assert_eq!(report.removed_invalid, std::slice::from_ref(&junk));
    assert!(!junk.exists());
    assert!(!store.lookup_cache_path().exists());

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
}

#[test]
fn verify_finds_and_repairs_corrupt_entries_and_tmp_debris() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let good = commit(&store, 1, None);
    let bad = commit(&store, 2, None);
    let out = bad.out_dir().join("n.txt");
    let mut perms = fs::metadata(&out).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(&out, perms).unwrap();
    fs::write(&out, "X").unwrap();
    let no_manifest = store.entry_dir(&key(3));
    fs::create_dir_all(&no_manifest).unwrap();
    let debris = root.path().join("tmp").join(format!("{}.1.2", key(4)));
    fs::create_dir_all(debris.join("out")).unwrap();

    let report = store.verify(false).unwrap();
    assert_eq!(report.checked, 3);
    assert_eq!(report.ok, 1);
    let corrupt: Vec<_> = report
        .corrupt
        .iter()
        .map(|c| c.key.clone().unwrap())
        .collect();
    let mut expected = vec![key(2), key(3)];
    expected.sort_by_key(|k| store.entry_dir(k));
    assert_eq!(corrupt, expected);
    assert_eq!(report.stale_tmp, std::slice::from_ref(&debris));
    assert!(bad.dir.exists() && debris.exists());

    let report = store.verify(true).unwrap();
    assert!(report.repaired);
    assert!(!bad.dir.exists() && !no_manifest.exists() && !debris.exists());
    assert_eq!(
        store.lookup(&key(2), &StatCache::in_memory()),
        Lookup::Missing
    );
    assert!(
        store
            .lookup(&good.key, &StatCache::in_memory())
            .hit()
            .is_some()
    );
    assert!(store.verify(false).unwrap().is_clean());
}
