//! Store concurrency: per-key locks, racing commits, the build guard, and
//! writers that die without cleaning up.

use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use admf::stat_cache::StatCache;
use admf::store::{GcPolicy, Lookup, ManifestMeta, Store};

fn key(n: u32) -> String {
    blake3::hash(&n.to_le_bytes()).to_hex().to_string()
}

fn meta() -> ManifestMeta {
    ManifestMeta {
        node: "n".to_string(),
        mode: "command".to_string(),
        ingredients: serde_json::Value::Null.into(),
        duration_ms: 0,
    }
}

#[test]
fn two_threads_committing_the_same_key_both_get_a_valid_entry() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(1);
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let (store, k, barrier) = (store.clone(), k.clone(), barrier.clone());
            thread::spawn(move || {
                let pending = store.begin(&k).unwrap();
                fs::write(pending.out_dir().join("result.txt"), b"same result").unwrap();
                barrier.wait();
                let log = format!("writer {i}");
                pending.commit(meta(), log.as_bytes()).unwrap()
            })
        })
        .collect();
    let entries: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(entries[0], entries[1]);
    assert_eq!(
        entries[0].manifest.output_digest,
        entries[1].manifest.output_digest
    );
    let hit = store.lookup(&k, &StatCache::in_memory()).hit().unwrap();
    assert_eq!(
        hit.manifest.output_digest,
        entries[0].manifest.output_digest
    );
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn lock_key_serialises_and_the_second_finds_the_entry() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(2);
    let computed = Arc::new(AtomicUsize::new(0));
    let inside = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (store, k) = (store.clone(), k.clone());
            let (computed, inside) = (computed.clone(), inside.clone());
            thread::spawn(move || {
                let _lock = store.lock_key(&k).unwrap();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                let entry = match store.lookup(&k, &StatCache::in_memory()) {
                    Lookup::Hit(entry) => entry,
                    _ => {
                        computed.fetch_add(1, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(100));
                        let pending = store.begin(&k).unwrap();
                        fs::write(pending.out_dir().join("x"), b"x").unwrap();
                        pending.commit(meta(), b"").unwrap()
                    }
                };
                inside.fetch_sub(1, Ordering::SeqCst);
                entry
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1);
}

#[test]
fn try_lock_key_reports_a_held_lock_and_drop_releases_it() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(3);
    let held = store.lock_key(&k).unwrap();
    assert!(store.try_lock_key(&k).unwrap().is_none());
    let waiter = {
        let (store, k) = (store.clone(), k.clone());
        thread::spawn(move || store.lock_key(&k).map(|_| ()))
    };
    thread::sleep(Duration::from_millis(50));
    assert!(!waiter.is_finished());
    drop(held);
    waiter.join().unwrap().unwrap();
    assert!(store.try_lock_key(&k).unwrap().is_some());
    // Keys lock bytes of one file, which a repair leaves alone: a lock
    // held through a repair still excludes.
    assert_eq!(lock_files(root.path()), ["keys.ofd"]);
    let held = store.lock_key(&k).unwrap();
    store.verify(true).unwrap();
    assert_eq!(lock_files(root.path()), ["keys.ofd"]);
    assert!(store.try_lock_key(&k).unwrap().is_none());
    // Another key (another byte) is free meanwhile.
    assert!(store.try_lock_key(&key(4)).unwrap().is_some());
    drop(held);
    store.verify(true).unwrap();
    assert_eq!(lock_files(root.path()), ["keys.ofd"]);
    assert!(store.try_lock_key(&k).unwrap().is_some());
}

/// The files under `locks/`, sorted.
fn lock_files(root: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root.join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn gc_never_runs_while_a_build_guard_is_held() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let k = key(4);
    let pending = store.begin(&k).unwrap();
    fs::write(pending.out_dir().join("x"), b"x").unwrap();
    pending.commit(meta(), b"").unwrap();

    let guard = store.build_guard().unwrap();
    let second_build = store.build_guard().unwrap();
    let err = store.gc(GcPolicy::default()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    assert!(err.to_string().contains("a build is running"), "{err}");
    assert!(store.verify(true).is_err());
    assert!(store.lookup(&k, &StatCache::in_memory()).hit().is_some());

    // A waiting gc runs once every build has finished.
    let waiting = {
        let store = store.clone();
        thread::spawn(move || {
            store.gc(GcPolicy {
                wait: true,
                ..GcPolicy::default()
            })
        })
    };
    thread::sleep(Duration::from_millis(50));
    assert!(!waiting.is_finished());
    drop(guard);
    drop(second_build);
    let report = waiting.join().unwrap().unwrap();
    assert_eq!(report.removed, std::slice::from_ref(&k));
    assert_eq!(store.lookup(&k, &StatCache::in_memory()), Lookup::Missing);
}

#[test]
fn sweeping_leaves_live_writers_alone() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let pending = store.begin(&key(5)).unwrap();
    fs::write(pending.out_dir().join("partial"), b"half").unwrap();
    let report = store.verify(true).unwrap();
    assert!(report.stale_tmp.is_empty(), "{report:?}");
    let report = store.gc(GcPolicy::default()).unwrap();
    assert!(report.removed_debris.is_empty(), "{report:?}");
    assert!(pending.out_dir().join("partial").exists());
    let entry = pending.commit(meta(), b"").unwrap();
    assert!(
        store
            .lookup(&entry.key, &StatCache::in_memory())
            .hit()
            .is_some()
    );
}

/// Runs in a child process (see `killed_writer_leaves_no_entry`): begins an
/// entry, writes into it, and exits without running any destructor, as a
/// killed process would.
#[test]
fn child_writer_that_dies() {
    let Ok(root) = std::env::var("ADMF_STORE_TEST_CHILD_ROOT") else {
        return;
    };
    let store = Store::open(std::path::Path::new(&root)).unwrap();
    let pending = store.begin(&key(6)).unwrap();
    fs::write(pending.out_dir().join("half"), b"half written").unwrap();
    let _lock = store.lock_key(&key(6)).unwrap();
    std::process::exit(0);
}

#[test]
fn killed_writer_leaves_no_entry_and_its_debris_is_swept() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer_that_dies", "--nocapture"])
        .env("ADMF_STORE_TEST_CHILD_ROOT", root.path())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        store.lookup(&key(6), &StatCache::in_memory()),
        Lookup::Missing
    );
    // The half-written temp dir; its writer's flock died with it.
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 1);

    let report = store.verify(false).unwrap();
    assert_eq!(report.stale_tmp.len(), 1, "{report:?}");
    assert!(!report.is_clean());
    let report = store.verify(true).unwrap();
    assert_eq!(report.stale_tmp.len(), 1);
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
    assert_eq!(lock_files(root.path()), ["keys.ofd"]);
    // The dead writer's key lock died with it.
    assert!(store.try_lock_key(&key(6)).unwrap().is_some());
    assert!(store.verify(false).unwrap().is_clean());
}

#[test]
fn many_threads_many_keys_compute_each_key_once() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let computed = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let (store, computed) = (store.clone(), computed.clone());
            thread::spawn(move || {
                let _guard = store.build_guard().unwrap();
                for i in 0..20u32 {
                    let k = key(1000 + (i + t) % 20);
                    let _lock = store.lock_key(&k).unwrap();
                    if store.lookup(&k, &StatCache::in_memory()).hit().is_none() {
                        computed.fetch_add(1, Ordering::SeqCst);
                        let pending = store.begin(&k).unwrap();
                        fs::write(pending.out_dir().join("v"), k.as_bytes()).unwrap();
                        pending.commit(meta(), b"").unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(computed.load(Ordering::SeqCst), 20);
    assert_eq!(store.ls().unwrap().len(), 20);
    assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
    // One lock file for every key, whatever their number.
    assert_eq!(lock_files(root.path()), ["keys.ofd"]);
    assert!(store.verify(false).unwrap().is_clean());
    store.verify(true).unwrap();
    assert_eq!(lock_files(root.path()), ["keys.ofd"]);
}

#[test]
fn grouped_commits_are_seen_by_this_store_at_once_and_by_others_after_a_flush() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    // Another connection to the same index, as another process has.
    let other = Store::open(root.path()).unwrap();
    store.set_group_commit(true).unwrap();
    let mut keys = Vec::new();
    for i in 0..3 {
        let k = key(2000 + i);
        let pending = store.begin(&k).unwrap().with_ref("wf", &format!("n{i}"));
        fs::write(pending.out_dir().join("v"), k.as_bytes()).unwrap();
        pending.commit(meta(), b"").unwrap();
        keys.push(k);
    }
    for k in &keys {
        let hit = store.lookup(k, &StatCache::in_memory()).hit().expect("hit");
        assert_eq!(hit.read("v").unwrap(), k.as_bytes());
        assert_eq!(other.lookup(k, &StatCache::in_memory()), Lookup::Missing);
    }
    assert_eq!(other.read_ref("wf", "n0"), None);
    store.flush().unwrap();
    for k in &keys {
        assert!(other.lookup(k, &StatCache::in_memory()).hit().is_some());
    }
    assert_eq!(
        other.read_ref("wf", "n2").as_deref(),
        Some(keys[2].as_str())
    );
    // Off again: each commit is its own transaction, seen by others at once.
    store.set_group_commit(false).unwrap();
    let k = key(2010);
    let pending = store.begin(&k).unwrap();
    fs::write(pending.out_dir().join("v"), b"x").unwrap();
    pending.commit(meta(), b"").unwrap();
    assert!(other.lookup(&k, &StatCache::in_memory()).hit().is_some());
}

#[test]
fn a_group_left_open_by_a_killed_build_is_lost_whole_and_the_store_stays_sound() {
    let root = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_grouping_writer_that_dies", "--nocapture"])
        .env("ADMF_STORE_TEST_CHILD_ROOT", root.path())
        .status()
        .unwrap();
    assert!(status.success());
    let store = Store::open(root.path()).unwrap();
    // The flushed group is there; the open one is gone, entry and ref.
    assert!(
        store
            .lookup(&key(3000), &StatCache::in_memory())
            .hit()
            .is_some()
    );
    assert_eq!(
        store.lookup(&key(3001), &StatCache::in_memory()),
        Lookup::Missing
    );
    assert_eq!(store.read_ref("wf", "later"), None);
    // Nobody holds the write lock of the dead process.
    let pending = store.begin(&key(3002)).unwrap();
    fs::write(pending.out_dir().join("v"), b"x").unwrap();
    pending.commit(meta(), b"").unwrap();
    assert!(store.verify(false).unwrap().is_clean());
}

/// Runs in a child process: flushes one group, then dies with a second
/// one open.
#[test]
fn child_grouping_writer_that_dies() {
    let Ok(root) = std::env::var("ADMF_STORE_TEST_CHILD_ROOT") else {
        return;
    };
    let store = Store::open(std::path::Path::new(&root)).unwrap();
    store.set_group_commit(true).unwrap();
    let pending = store.begin(&key(3000)).unwrap();
    fs::write(pending.out_dir().join("v"), b"kept").unwrap();
    pending.commit(meta(), b"").unwrap();
    store.flush().unwrap();
    let pending = store.begin(&key(3001)).unwrap().with_ref("wf", "later");
    fs::write(pending.out_dir().join("v"), b"lost").unwrap();
    pending.commit(meta(), b"").unwrap();
    std::process::exit(0);
}
