//! Store entries: commit, lookup, and every way an entry can fail to be a hit.

use std::fs;
use std::path::Path;

use admf::stat_cache::StatCache;
use admf::store::{Lookup, ManifestMeta, Store, output_digest};

fn key(n: u32) -> String {
    blake3::hash(&n.to_le_bytes()).to_hex().to_string()
}

fn meta(node: &str) -> ManifestMeta {
    ManifestMeta {
        node: node.to_string(),
        mode: "backtest".to_string(),
        ingredients: serde_json::json!({"config": {"lookback": 20}}),
        duration_ms: 7,
    }
}

fn commit_sample(store: &Store, key: &str) -> admf::store::Entry {
    let pending = store.begin(key).unwrap();
    let out = pending.out_dir().to_path_buf();
    fs::write(out.join("metrics.json"), b"{\"sharpe\": 1.5}").unwrap();
    fs::create_dir_all(out.join("signals")).unwrap();
    fs::write(out.join("signals/trial_0.jsonl"), b"{\"i\":0}\n").unwrap();
    pending
        .commit(meta("outer/inner[0]"), b"ran fine\n")
        .unwrap()
}

/// Overwrites a (read-only) output file.
fn tamper(path: &Path, bytes: &[u8]) {
    let mut perms = fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(path, perms).unwrap();
    fs::write(path, bytes).unwrap();
}

fn corrupt_reason(lookup: Lookup) -> String {
    match lookup {
        Lookup::Corrupt(reason) => reason,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn commit_then_lookup_hits() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(1);
    assert_eq!(store.lookup(&k, &StatCache::in_memory()), Lookup::Missing);

    let entry = commit_sample(&store, &k);
    assert_eq!(entry.dir, store.entry_dir(&k));
    assert_eq!(
        entry.dir,
        root.path().join("objects").join(&k[..2]).join(&k)
    );
    let m = &entry.manifest;
    assert_eq!(m.schema, 1);
    assert_eq!(m.key, k);
    assert_eq!(m.node, "outer/inner[0]");
    assert_eq!(
        m.outputs.keys().collect::<Vec<_>>(),
        ["metrics.json", "signals/trial_0.jsonl"]
    );
    assert_eq!(m.outputs["metrics.json"].size, 15);
    assert_eq!(
        m.outputs["metrics.json"].blake3,
        blake3::hash(b"{\"sharpe\": 1.5}").to_hex().to_string()
    );
    assert_eq!(m.output_digest, output_digest(&m.outputs));
    assert_eq!(fs::read(entry.log_path()).unwrap(), b"ran fine\n");
    assert!(
        fs::metadata(entry.out_dir().join("metrics.json"))
            .unwrap()
            .permissions()
            .readonly()
    );

    let stats = StatCache::in_memory();
    let hit = store.lookup(&k, &stats).hit().expect("hit");
    assert_eq!(hit, entry);
    // Nothing is left in tmp/ after a commit.
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn output_digest_ignores_node_timing_and_key() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let a = commit_sample(&store, &key(1));
    let pending = store.begin(&key(2)).unwrap();
    let out = pending.out_dir().to_path_buf();
    fs::create_dir_all(out.join("signals")).unwrap();
    fs::write(out.join("signals/trial_0.jsonl"), b"{\"i\":0}\n").unwrap();
    fs::write(out.join("metrics.json"), b"{\"sharpe\": 1.5}").unwrap();
    let mut other = meta("another");
    other.duration_ms = 99_999;
    let b = pending.commit(other, b"different log").unwrap();
    assert_eq!(a.manifest.output_digest, b.manifest.output_digest);
}

#[test]
fn tampered_outputs_are_corrupt() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();

    let k = key(10);
    let e = commit_sample(&store, &k);
    tamper(&e.out_dir().join("metrics.json"), b"{\"sharpe\": 9.9}");
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("content changed"), "{reason}");

    let k = key(11);
    let e = commit_sample(&store, &k);
    fs::remove_file(e.out_dir().join("signals/trial_0.jsonl")).unwrap();
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("missing"), "{reason}");

    let k = key(12);
    let e = commit_sample(&store, &k);
    tamper(&e.out_dir().join("metrics.json"), b"{}");
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("bytes"), "{reason}");

    let k = key(13);
    let e = commit_sample(&store, &k);
    fs::write(e.out_dir().join("extra.csv"), b"x").unwrap();
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("unexpected"), "{reason}");
}

#[test]
fn directories_without_a_valid_manifest_are_never_hits() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();

    // A bare directory with outputs but no manifest.
    let k = key(20);
    fs::create_dir_all(store.entry_dir(&k).join("out")).unwrap();
    fs::write(store.entry_dir(&k).join("out/a"), b"a").unwrap();
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("no manifest.json"), "{reason}");

    // A truncated manifest.
    let k = key(21);
    let e = commit_sample(&store, &k);
    let manifest = e.dir.join("manifest.json");
    let text = fs::read(&manifest).unwrap();
    fs::write(&manifest, &text[..text.len() / 2]).unwrap();
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("does not parse"), "{reason}");

    // A manifest copied from another key.
    let k = key(22);
    fs::create_dir_all(store.entry_dir(&k)).unwrap();
    fs::copy(&manifest, store.entry_dir(&k).join("manifest.json")).unwrap();
    let k2 = key(23);
    let e2 = commit_sample(&store, &k2);
    fs::copy(
        e2.dir.join("manifest.json"),
        store.entry_dir(&k).join("manifest.json"),
    )
    .unwrap();
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("is for key"), "{reason}");
}

#[test]
fn dropped_pending_entry_leaves_no_debris() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(30);
    {
        let pending = store.begin(&k).unwrap();
        fs::create_dir_all(pending.out_dir().join("deep/er")).unwrap();
        fs::write(pending.out_dir().join("deep/er/file"), b"x").unwrap();
        assert!(pending.out_dir().starts_with(root.path().join("tmp")));
    }
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
    assert_eq!(store.lookup(&k, &StatCache::in_memory()), Lookup::Missing);
}

#[test]
fn committing_over_an_existing_entry_returns_it() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(40);
    let first = commit_sample(&store, &k);
    let second = commit_sample(&store, &k);
    assert_eq!(first.manifest.output_digest, second.manifest.output_digest);
    assert_eq!(second.dir, first.dir);
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn committing_over_a_corrupt_entry_replaces_it() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(41);
    fs::create_dir_all(store.entry_dir(&k).join("out")).unwrap();
    fs::write(store.entry_dir(&k).join("out/junk"), b"junk").unwrap();
    commit_sample(&store, &k);
    assert!(store.lookup(&k, &StatCache::in_memory()).hit().is_some());
}

#[test]
fn symlinked_outputs_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let pending = store.begin(&key(50)).unwrap();
    fs::write(pending.out_dir().join("real"), b"x").unwrap();
    std::os::unix::fs::symlink("real", pending.out_dir().join("link")).unwrap();
    let err = pending.commit(meta("n"), b"").unwrap_err();
    assert!(err.to_string().contains("link"), "{err}");
    assert_eq!(
        store.lookup(&key(50), &StatCache::in_memory()),
        Lookup::Missing
    );
}

#[test]
fn invalid_keys_are_rejected() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    assert!(store.begin("../../etc").is_err());
    assert!(store.lock_key("ABC").is_err());
    assert!(matches!(
        store.lookup("nope", &StatCache::in_memory()),
        Lookup::Corrupt(_)
    ));
}

#[test]
fn lookups_through_a_stat_cache_do_not_reread_old_outputs() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(60);
    let e = commit_sample(&store, &k);
    // Age the outputs past the racy window so the cache may trust them.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for name in ["metrics.json", "signals/trial_0.jsonl"] {
        let f = fs::File::open(e.out_dir().join(name)).unwrap();
        f.set_times(fs::FileTimes::new().set_modified(old)).unwrap();
    }
    let stats = StatCache::load(&store.stat_cache_path());
    assert!(store.lookup(&k, &stats).hit().is_some());
    assert_eq!(stats.counts().misses, 2);
    assert!(store.lookup(&k, &stats).hit().is_some());
    assert_eq!(stats.counts().hits, 2);
    stats.save().unwrap();
    let reloaded = StatCache::load(&store.stat_cache_path());
    assert!(store.lookup(&k, &reloaded).hit().is_some());
    assert_eq!(reloaded.counts().misses, 0);
}
