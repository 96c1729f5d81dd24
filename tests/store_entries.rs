//! Store entries: commit, lookup, and every way an entry can fail to be a hit.

mod store_support;

use std::fs;

use admf::stat_cache::StatCache;
use admf::store::{INLINE_MAX, Lookup, ManifestMeta, OutputSource, Store};
use store_support::{blob, blob_file, blob_files, sql, tamper_blob};

fn key(n: u32) -> String {
    blake3::hash(&n.to_le_bytes()).to_hex().to_string()
}

fn meta(node: &str) -> ManifestMeta {
    ManifestMeta {
        node: node.to_string(),
        mode: "backtest".to_string(),
        ingredients: serde_json::json!({"config": {"lookback": 20}}).into(),
        duration_ms: 7,
    }
}

/// More than [`INLINE_MAX`] bytes: stored as a blob file.
fn large() -> Vec<u8> {
    (0..INLINE_MAX as usize + 100)
        .map(|i| (i % 251) as u8)
        .collect()
}

fn commit_sample(store: &Store, key: &str) -> admf::store::Entry {
    let pending = store.begin(key).unwrap();
    let out = pending.out_dir().to_path_buf();
    fs::write(out.join("metrics.json"), b"{\"sharpe\": 1.5}").unwrap();
    fs::create_dir_all(out.join("signals")).unwrap();
    fs::write(out.join("signals/trial_0.jsonl"), b"{\"i\":0}\n").unwrap();
    fs::write(out.join("equity.csv"), large()).unwrap();
    pending
        .commit(meta("outer/inner[0]"), b"ran fine\n")
        .unwrap()
}

/// The output digest as src/store/manifest.rs documents it, computed here
/// with blake3 alone: `admf-output-digest-v1\n`, then per output in path
/// order the path's length (u64 LE), the path, its 64-char hex blake3 and
/// its size (u64 LE).
fn documented_digest(outputs: &[(&str, &[u8])]) -> String {
    let mut sorted = outputs.to_vec();
    sorted.sort();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"admf-output-digest-v1\n");
    for (path, bytes) in sorted {
        hasher.update(&(path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update(blake3::hash(bytes).to_hex().as_bytes());
        hasher.update(&(bytes.len() as u64).to_le_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

fn digest(entry: &admf::store::Entry, name: &str) -> String {
    entry.manifest.outputs[name].blake3.clone()
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
    let m = &entry.manifest;
    assert_eq!(m.schema, 1);
    assert_eq!(m.key, k);
    assert_eq!(m.node, "outer/inner[0]");
    assert_eq!(
        m.outputs.keys().collect::<Vec<_>>(),
        ["equity.csv", "metrics.json", "signals/trial_0.jsonl"]
    );
    assert_eq!(m.outputs["metrics.json"].size, 15);
    assert_eq!(
        m.outputs["metrics.json"].blake3,
        blake3::hash(b"{\"sharpe\": 1.5}").to_hex().to_string()
    );
    assert_eq!(
        m.output_digest,
        documented_digest(&[
            ("equity.csv", &large()),
            ("metrics.json", b"{\"sharpe\": 1.5}"),
            ("signals/trial_0.jsonl", b"{\"i\":0}\n"),
        ])
    );
    assert_eq!(entry.log().unwrap(), b"ran fine\n");
    assert_eq!(entry.read("metrics.json").unwrap(), b"{\"sharpe\": 1.5}");
    assert_eq!(entry.read("equity.csv").unwrap(), large());

    // Small outputs live in the index; only the large one is a file, and
    // it is read-only.
    let equity = blob_file(root.path(), &digest(&entry, "equity.csv"));
    assert_eq!(blob_files(root.path()), std::slice::from_ref(&equity));
    assert!(fs::metadata(&equity).unwrap().permissions().readonly());
    assert!(!blob_file(root.path(), &digest(&entry, "metrics.json")).exists());
    assert_eq!(
        blob(root.path(), &digest(&entry, "metrics.json")).unwrap(),
        b"{\"sharpe\": 1.5}"
    );

    let stats = StatCache::in_memory();
    let hit = store.lookup(&k, &stats).hit().expect("hit");
    assert_eq!(hit, entry);
    // Nothing is left in tmp/ after a commit.
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn identical_outputs_are_stored_once() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let a = commit_sample(&store, &key(1));
    let pending = store.begin(&key(2)).unwrap();
    let out = pending.out_dir().to_path_buf();
    fs::create_dir_all(out.join("signals")).unwrap();
    fs::write(out.join("signals/trial_0.jsonl"), b"{\"i\":0}\n").unwrap();
    fs::write(out.join("metrics.json"), b"{\"sharpe\": 1.5}").unwrap();
    fs::write(out.join("equity.csv"), large()).unwrap();
    let mut other = meta("another");
    other.duration_ms = 99_999;
    let b = pending.commit(other, b"different log").unwrap();
    // The output digest ignores node, timing and key.
    assert_eq!(a.manifest.output_digest, b.manifest.output_digest);
    // Two entries, one copy of each output: one blob file, and inline the
    // two small outputs plus the two logs.
    assert_eq!(blob_files(root.path()).len(), 1);
    let inline = store_support::sql_strings(root.path(), "SELECT digest FROM blobs");
    assert_eq!(inline.len(), 4);
}

#[test]
fn tampered_blobs_are_corrupt() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();

    // An inline blob changed in the index.
    let k = key(10);
    let e = commit_sample(&store, &k);
    let d = digest(&e, "metrics.json");
    tamper_blob(root.path(), &d, b"{\"sharpe\": 9.9}");
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("content changed"), "{reason}");
    // And reading it through the entry fails instead of returning it.
    assert!(e.read("metrics.json").is_err());

    // A blob file removed.
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(11);
    let e = commit_sample(&store, &k);
    fs::remove_file(blob_file(root.path(), &digest(&e, "equity.csv"))).unwrap();
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("missing"), "{reason}");

    // A blob file shortened.
    let k = key(12);
    let e = commit_sample(&store, &k);
    tamper_blob(root.path(), &digest(&e, "equity.csv"), b"{}");
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("bytes"), "{reason}");

    // A blob file with the same size and a flipped byte.
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(13);
    let e = commit_sample(&store, &k);
    let mut bytes = large();
    bytes[1000] ^= 1;
    tamper_blob(root.path(), &digest(&e, "equity.csv"), &bytes);
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("content changed"), "{reason}");
}

#[test]
fn unreadable_action_rows_are_never_hits() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();

    // Outputs that do not parse.
    let k = key(21);
    commit_sample(&store, &k);
    sql(
        root.path(),
        "UPDATE actions SET outputs = '{\"metrics.json\": ' WHERE key = ?1",
        &[&k],
    );
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("do not parse"), "{reason}");

    // An output list that does not match its digest.
    let k = key(22);
    commit_sample(&store, &k);
    sql(
        root.path(),
        "UPDATE actions SET output_digest = ?1 WHERE key = ?2",
        &[&"0".repeat(64), &k],
    );
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("output_digest"), "{reason}");

    // A row of another schema.
    let k = key(23);
    commit_sample(&store, &k);
    sql(
        root.path(),
        "UPDATE actions SET schema = 99 WHERE key = ?1",
        &[&k],
    );
    let reason = corrupt_reason(store.lookup(&k, &StatCache::in_memory()));
    assert!(reason.contains("schema"), "{reason}");
}

/// Outputs handed over as bytes, mixed with files or alone.
fn memory(items: &[(&str, Vec<u8>)]) -> std::collections::BTreeMap<String, OutputSource> {
    items
        .iter()
        .map(|(name, bytes)| (name.to_string(), OutputSource::Bytes(bytes.clone())))
        .collect()
}

#[test]
fn outputs_handed_over_in_memory_are_the_same_entry_as_the_same_files() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let files = commit_sample(&store, &key(40));

    // All in memory: no temp dir is ever made.
    let k = key(41);
    let pending = store.begin_in_memory(&k).unwrap();
    assert!(!pending.out_dir().exists());
    let outputs = memory(&[
        ("metrics.json", b"{\"sharpe\": 1.5}".to_vec()),
        ("signals/trial_0.jsonl", b"{\"i\":0}\n".to_vec()),
        ("equity.csv", large()),
    ]);
    let entry = pending
        .seal(meta("outer/inner[0]"), b"ran fine\n", outputs, false)
        .unwrap();
    assert_eq!(entry.manifest.outputs, files.manifest.outputs);
    assert_eq!(entry.output_digest(), files.output_digest());
    assert_eq!(entry.read("equity.csv").unwrap(), large());
    assert_eq!(entry.read("metrics.json").unwrap(), b"{\"sharpe\": 1.5}");
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
    assert_eq!(
        store
            .lookup(&k, &StatCache::in_memory())
            .hit()
            .expect("hit"),
        entry
    );

    // Files and bytes together.
    let k = key(42);
    let pending = store.begin(&k).unwrap();
    fs::write(pending.out_dir().join("equity.csv"), large()).unwrap();
    let outputs = memory(&[
        ("metrics.json", b"{\"sharpe\": 1.5}".to_vec()),
        ("signals/trial_0.jsonl", b"{\"i\":0}\n".to_vec()),
    ]);
    let mixed = pending
        .seal(meta("outer/inner[0]"), b"", outputs, false)
        .unwrap();
    assert_eq!(mixed.output_digest(), files.output_digest());
}

/// An output naming a blob the store holds (an upstream entry's, passed
/// on) is the same entry as its bytes handed over again, inline or as a
/// file; a blob the store lacks fails the commit and stores nothing.
#[test]
fn outputs_naming_stored_blobs_are_the_entry_of_their_bytes() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let files = commit_sample(&store, &key(44));
    let passed_on: std::collections::BTreeMap<String, OutputSource> = files
        .manifest
        .outputs
        .iter()
        .map(|(name, record)| (name.clone(), OutputSource::Stored(record.clone())))
        .collect();
    let k = key(45);
    let entry = store
        .begin_in_memory(&k)
        .unwrap()
        .seal(meta("outer/inner[0]"), b"", passed_on, false)
        .unwrap();
    assert_eq!(entry.manifest.outputs, files.manifest.outputs);
    assert_eq!(entry.output_digest(), files.output_digest());
    let hit = store
        .lookup(&k, &StatCache::in_memory())
        .hit()
        .expect("hit");
    assert_eq!(hit.read("equity.csv").unwrap(), large());
    assert_eq!(hit.read("signals/trial_0.jsonl").unwrap(), b"{\"i\":0}\n");

    let mut missing = files.manifest.outputs["metrics.json"].clone();
    missing.blake3 = blake3::hash(b"never stored").to_hex().to_string();
    let k = key(46);
    let err = store
        .begin_in_memory(&k)
        .unwrap()
        .seal(
            meta("n"),
            b"",
            [(
                "metrics.json".to_string(),
                OutputSource::Stored(missing.clone()),
            )]
            .into(),
            false,
        )
        .unwrap_err();
    assert!(err.to_string().contains(&missing.blake3), "{err}");
    assert_eq!(store.lookup(&k, &StatCache::in_memory()), Lookup::Missing);
}

#[test]
fn an_output_both_in_memory_and_a_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(43);
    let pending = store.begin(&k).unwrap();
    fs::write(pending.out_dir().join("metrics.json"), b"{}").unwrap();
    let err = pending
        .seal(
            meta("n"),
            b"",
            memory(&[("metrics.json", b"{}".to_vec())]),
            false,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("\"metrics.json\" was both"),
        "{err}"
    );
    assert_eq!(store.lookup(&k, &StatCache::in_memory()), Lookup::Missing);
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn files_written_by_a_phase_that_promised_memory_fail_the_commit_and_are_removed() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(44);
    let pending = store.begin_in_memory(&k).unwrap();
    // Such files would be neither locked nor stored: a silent loss.
    fs::create_dir_all(pending.out_dir()).unwrap();
    fs::write(pending.out_dir().join("equity.csv"), b"x").unwrap();
    let err = pending
        .seal(
            meta("n"),
            b"",
            memory(&[("metrics.json", b"{}".to_vec())]),
            false,
        )
        .unwrap_err();
    assert!(err.to_string().contains("wrote files"), "{err}");
    assert_eq!(store.lookup(&k, &StatCache::in_memory()), Lookup::Missing);
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
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
    let pending = store.begin(&k).unwrap();
    fs::write(pending.out_dir().join("other.txt"), b"other").unwrap();
    let second = pending.commit(meta("n"), b"").unwrap();
    assert_eq!(second, first);
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn committing_over_a_corrupt_entry_replaces_it() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(41);
    commit_sample(&store, &k);
    sql(
        root.path(),
        "UPDATE actions SET outputs = 'junk' WHERE key = ?1",
        &[&k],
    );
    assert!(matches!(
        store.lookup(&k, &StatCache::in_memory()),
        Lookup::Corrupt(_)
    ));
    commit_sample(&store, &k);
    assert!(store.lookup(&k, &StatCache::in_memory()).hit().is_some());
}

#[test]
fn forced_commits_replace_the_entry() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(42);
    commit_sample(&store, &k);
    let pending = store.begin(&k).unwrap();
    fs::write(pending.out_dir().join("other.txt"), b"other").unwrap();
    pending.commit_replacing(meta("n"), b"").unwrap();
    let hit = store.lookup(&k, &StatCache::in_memory()).hit().unwrap();
    assert_eq!(hit.names().collect::<Vec<_>>(), ["other.txt"]);
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
fn lookups_through_a_stat_cache_do_not_reread_old_blob_files() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(60);
    let e = commit_sample(&store, &k);
    // Age the blob file past the racy window so the cache may trust it.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let file = blob_file(root.path(), &digest(&e, "equity.csv"));
    let f = fs::File::open(&file).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(old)).unwrap();
    let stats = StatCache::load(&store.stat_cache_path(), admf::reads::Reads::new());
    assert!(store.lookup(&k, &stats).hit().is_some());
    assert_eq!(stats.counts().misses, 1);
    assert!(store.lookup(&k, &stats).hit().is_some());
    assert_eq!(stats.counts().hits, 1);
    stats.save().unwrap();
    let reloaded = StatCache::load(&store.stat_cache_path(), admf::reads::Reads::new());
    assert!(store.lookup(&k, &reloaded).hit().is_some());
    assert_eq!(reloaded.counts().misses, 0);
}

#[test]
fn a_view_holds_the_outputs_as_plain_files() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let e = commit_sample(&store, &key(70));
    let view = e.view().unwrap();
    assert!(view.starts_with(root.path().join("views")));
    assert_eq!(
        fs::read(view.join("signals/trial_0.jsonl")).unwrap(),
        b"{\"i\":0}\n"
    );
    assert_eq!(fs::read(view.join("equity.csv")).unwrap(), large());
    assert_eq!(e.view().unwrap(), view);
}

#[test]
fn an_old_layout_store_is_reported_and_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let old = root.path().join("objects/ab").join("ab".repeat(32));
    fs::create_dir_all(old.join("out")).unwrap();
    fs::write(old.join("manifest.json"), "{}").unwrap();
    let store = Store::open(root.path()).unwrap();
    let notice = store.old_layout_notice().unwrap();
    assert!(notice.contains("objects"), "{notice}");
    assert!(notice.contains("admf cache gc --all"), "{notice}");
    assert!(old.join("manifest.json").exists());
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(Store::open(fresh.path()).unwrap().old_layout_notice(), None);
}

#[test]
fn upstream_artifacts_survive_serialisation_and_are_checked_on_read() {
    use admf::phases::{Role, Upstream};
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let e = commit_sample(&store, &key(80));
    let up = Upstream::stored("n".into(), "backtest".into(), Role::Single, e.clone());
    // What an action carries to another process: locations, not handles.
    let text = serde_json::to_string(&up).unwrap();
    assert!(text.contains(&digest(&e, "metrics.json")), "{text}");
    let back: Upstream = serde_json::from_str(&text).unwrap();
    assert!(back.has("signals/trial_0.jsonl") && !back.has("nope"));
    assert_eq!(back.read("metrics.json").unwrap(), b"{\"sharpe\": 1.5}");
    assert_eq!(back.read("equity.csv").unwrap(), large());
    let path = back.path("metrics.json").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"{\"sharpe\": 1.5}");
    assert!(back.read("nope").is_err());
    // A blob changed after the lookup never reaches the phase.
    tamper_blob(
        root.path(),
        &digest(&e, "metrics.json"),
        b"{\"sharpe\": 9.9}",
    );
    assert!(back.read("metrics.json").is_err());
    assert!(up.read("metrics.json").is_err());
}

#[test]
fn a_commit_with_a_ref_points_it_at_the_key_also_when_another_writer_won() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(50);
    assert_eq!(store.read_ref("wf", "n"), None);
    let first = store.begin_in_memory(&k).unwrap().with_ref("wf", "n");
    first
        .seal(meta("n"), b"", memory(&[("a", b"1".to_vec())]), false)
        .unwrap();
    assert_eq!(store.read_ref("wf", "n").as_deref(), Some(k.as_str()));
    // Another workflow commits the same key after it: the entry stands,
    // and its ref is recorded all the same.
    let second = store.begin_in_memory(&k).unwrap().with_ref("other", "m");
    let kept = second
        .seal(meta("n"), b"", memory(&[("a", b"2".to_vec())]), false)
        .unwrap();
    assert_eq!(kept.read("a").unwrap(), b"1");
    assert_eq!(store.read_ref("other", "m").as_deref(), Some(k.as_str()));
}

#[test]
fn committing_again_after_a_corrupt_lookup_repairs_the_blob_file() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let stats = StatCache::in_memory();
    // Through files, then through bytes handed over in memory.
    for (n, in_memory) in [(60, false), (61, true)] {
        let k = key(n);
        let body = {
            let mut b = large();
            b[0] = n as u8;
            b
        };
        let commit = |replace: bool| {
            if in_memory {
                let pending = store.begin_in_memory(&k).unwrap();
                pending
                    .seal(meta("n"), b"", memory(&[("big", body.clone())]), replace)
                    .unwrap()
            } else {
                let pending = store.begin(&k).unwrap();
                fs::write(pending.out_dir().join("big"), &body).unwrap();
                pending
                    .seal(meta("n"), b"", Default::default(), replace)
                    .unwrap()
            }
        };
        let entry = commit(false);
        let digest = digest(&entry, "big");
        let mut rotten = body.clone();
        rotten[100] ^= 1;
        tamper_blob(root.path(), &digest, &rotten);
        assert!(matches!(store.lookup(&k, &stats), Lookup::Corrupt(_)));
        // The node runs again and commits the same bytes under the same
        // digest: the rotten file must not stay behind its name.
        commit(true);
        let hit = store.lookup(&k, &stats).hit().expect("a sound entry");
        assert_eq!(hit.read("big").unwrap(), body);
        assert_eq!(fs::read(blob_file(root.path(), &digest)).unwrap(), body);
    }
}

#[test]
fn outputs_handed_over_as_paths_store_a_copy_and_are_the_same_entry_as_files() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let files = commit_sample(&store, &key(70));
    let workspace = tempfile::tempdir().unwrap();
    let big = workspace.path().join("equity.csv");
    fs::write(&big, large()).unwrap();
    let small = workspace.path().join("metrics.json");
    fs::write(&small, b"{\"sharpe\": 1.5}").unwrap();
    let mut outputs = memory(&[("signals/trial_0.jsonl", b"{\"i\":0}\n".to_vec())]);
    outputs.insert("equity.csv".into(), OutputSource::File(big.clone()));
    outputs.insert("metrics.json".into(), OutputSource::File(small.clone()));
    let k = key(71);
    let entry = store
        .begin_in_memory(&k)
        .unwrap()
        .seal(meta("outer/inner[0]"), b"", outputs, false)
        .unwrap();
    assert_eq!(entry.manifest.outputs, files.manifest.outputs);
    // The store holds copies: the workspace files stay the user's.
    fs::write(&big, b"edited after the build").unwrap();
    let hit = store
        .lookup(&k, &StatCache::in_memory())
        .hit()
        .expect("hit");
    assert_eq!(hit.read("equity.csv").unwrap(), large());
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
    // A missing file fails the commit and stores nothing.
    let mut outputs = std::collections::BTreeMap::new();
    outputs.insert(
        "gone.csv".to_string(),
        OutputSource::File(workspace.path().join("gone.csv")),
    );
    let k = key(72);
    assert!(
        store
            .begin_in_memory(&k)
            .unwrap()
            .seal(meta("n"), b"", outputs, false)
            .is_err()
    );
    assert_eq!(store.lookup(&k, &StatCache::in_memory()), Lookup::Missing);
}
