//! The up-to-date record (src/uptodate.rs): a repeated no-op build is
//! answered from one stat per file, says exactly what the full no-op
//! build says, and any change that could alter the build voids it.
//!
//! Files are aged (mtime set an hour back) before the build that writes a
//! record, because a record is never written while an observed file is
//! recent enough to change again within its timestamp tick.

mod common;
mod store_support;

use std::time::{Duration, SystemTime};

use common::fast_paths::{FAST, Run, build, settle};
use common::{DIAMOND, Project};
use serde_json::Value;

fn diamond() -> Project {
    let p = Project::new();
    p.file("wf.yaml", DIAMOND).file("in/a.txt", "hello\n");
    p
}

/// The summary lines without timings, and the JSON without seconds.
fn said(run: &Run) -> (Vec<String>, Value) {
    let lines = run
        .stderr
        .lines()
        .filter(|l| !l.starts_with("trace:"))
        .map(|l| l.split(" in ").next().unwrap_or(l).trim_end().to_string())
        .map(|l| {
            l.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == 's')
                .to_string()
        })
        .collect();
    let mut json = run.json.clone();
    for node in json["nodes"].as_array_mut().into_iter().flatten() {
        node["seconds"] = Value::Null;
    }
    (lines, json)
}

fn events(p: &Project) -> Vec<Value> {
    let runs = p.path("cache/runs");
    let dir = std::fs::read_dir(&runs)
        .expect("runs dir")
        .next()
        .expect("one workflow")
        .expect("entry")
        .path();
    std::fs::read_to_string(dir.join("events.jsonl"))
        .expect("events")
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("json line");
            if let Some(o) = v.as_object_mut() {
                o.remove("ms");
            }
            v
        })
        .collect()
}

#[test]
fn a_repeated_no_op_is_answered_by_the_record_and_says_the_same() {
    for (workflow, files) in [
        (
            "wf.yaml",
            vec![("wf.yaml", DIAMOND), ("in/a.txt", "hello\n")],
        ),
        (
            "workflow.yaml",
            vec![(
                "workflow.yaml",
                include_str!("../examples/conditional/workflow.yaml"),
            )],
        ),
    ] {
        let p = Project::new();
        for (path, text) in files {
            p.file(path, text);
        }
        // One job, so that the full build's events come in planned order.
        let args = [workflow, "-j", "1"];
        assert_eq!(build(&p, &args).code, 0);
        common::fast_paths::age(p.dir.path());
        let slow = build(&p, &args);
        let slow_events = events(&p);
        let fast = build(&p, &args);
        assert!(!slow.fast && fast.fast, "{}\n{}", slow.stderr, fast.stderr);
        assert_eq!(said(&slow), said(&fast), "{workflow}");
        assert_eq!(slow_events, events(&p), "{workflow}");
        assert_eq!(fast.code, 0);
    }
}

#[test]
fn a_skipped_node_is_reported_with_its_reason_from_the_record() {
    let p = Project::new();
    p.file(
        "workflow.yaml",
        include_str!("../examples/conditional/workflow.yaml"),
    );
    settle(&p, &["workflow.yaml"]);
    let fast = build(&p, &["workflow.yaml"]);
    assert!(fast.fast);
    assert_eq!(fast.with("skipped"), ["publish", "announce"]);
    for line in [
        "skipped publish (condition `score.sharpe > 0.5` is false)",
        "skipped announce (",
    ] {
        assert!(fast.stderr.contains(line), "{line}\n{}", fast.stderr);
    }
}

#[test]
fn each_change_that_could_matter_voids_the_record() {
    type Change = fn(&Project);
    let changes: [(&str, Change, &[&str]); 6] = [
        (
            "input edited",
            |p| {
                p.file("in/a.txt", "hullo\n");
            },
            &["a", "b", "c", "d"],
        ),
        (
            "workflow edited",
            |p| {
                p.file("wf.yaml", &DIAMOND.replace("head -c 1", "head -c 2"));
            },
            &["c", "d"],
        ),
        (
            "output deleted",
            |p| {
                std::fs::remove_file(p.path("out/b.txt")).unwrap();
            },
            &[],
        ),
        (
            "output edited",
            |p| {
                p.file("out/d.txt", "tampered");
            },
            &[],
        ),
        (
            "input renamed over, old mtime",
            |p| {
                p.file("in/new.txt", "howdy\n");
                let old = std::fs::metadata(p.path("in/a.txt"))
                    .unwrap()
                    .modified()
                    .unwrap();
                std::fs::File::options()
                    .write(true)
                    .open(p.path("in/new.txt"))
                    .unwrap()
                    .set_modified(old)
                    .unwrap();
                std::fs::rename(p.path("in/new.txt"), p.path("in/a.txt")).unwrap();
            },
            &["a", "b", "c", "d"],
        ),
        (
            "store entry removed",
            |p| {
                std::fs::remove_dir_all(p.path("cache/index")).unwrap();
            },
            &["a", "b", "c", "d"],
        ),
    ];
    for (what, change, reran) in changes {
        let p = diamond();
        settle(&p, &["wf.yaml"]);
        change(&p);
        let after = build(&p, &["wf.yaml"]);
        assert_eq!(after.code, 0, "{what}: {}", after.stderr);
        assert!(!after.fast, "{what}: the record answered");
        assert_eq!(after.with("ran"), reran, "{what}");
        assert_eq!(
            p.read("out/d.txt").lines().count(),
            2,
            "{what}: workspace restored"
        );
    }
}

#[test]
fn a_removed_entry_of_a_node_without_outputs_voids_the_record() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: side\n    mode: command\n    run: \"echo ran >> side.log\"\n",
    );
    assert_eq!(build(&p, &["wf.yaml"]).code, 0);
    common::fast_paths::age(p.dir.path());
    assert!(!build(&p, &["wf.yaml"]).fast);
    assert!(build(&p, &["wf.yaml"]).fast);
    // Entries removed the supported way: every one, refs included.
    let gc = p.admf(&["cache", "gc", "--all"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    let after = build(&p, &["wf.yaml"]);
    assert!(!after.fast, "{}", after.stderr);
    assert_eq!(after.with("ran"), ["side"]);
    assert_eq!(p.read("side.log"), "ran\nran\n");
}

#[test]
fn a_build_that_restores_an_output_writes_no_record() {
    let p = diamond();
    settle(&p, &["wf.yaml"]);
    std::fs::remove_file(p.path("out/d.txt")).unwrap();
    let restoring = build(&p, &["wf.yaml"]);
    assert!(!restoring.fast);
    assert_eq!(restoring.with("cached").len(), 4);
    // The restored file is newer than that build's start: too recent to
    // vouch for, so the next build takes the full path too.
    assert!(!build(&p, &["wf.yaml"]).fast);
    assert_eq!(p.read("out/d.txt"), "HELLO\nh");
}

#[cfg(unix)]
#[test]
fn an_output_replaced_by_a_symlink_to_the_same_bytes_is_restored() {
    let p = diamond();
    settle(&p, &["wf.yaml"]);
    std::fs::rename(p.path("out/b.txt"), p.path("elsewhere.txt")).unwrap();
    std::os::unix::fs::symlink(p.path("elsewhere.txt"), p.path("out/b.txt")).unwrap();
    let after = build(&p, &["wf.yaml"]);
    assert!(!after.fast, "{}", after.stderr);
    assert!(
        !p.path("out/b.txt").is_symlink(),
        "restored as a plain file"
    );
}

#[test]
fn a_new_file_under_a_glob_voids_the_record() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: count\n    mode: command\n    run: \"cat data/*/*.csv | wc -l > n.txt\"\n    inputs: [\"data/**/*.csv\"]\n    outputs: [n.txt]\n",
    )
    .file("data/a/1.csv", "x\n");
    settle(&p, &["wf.yaml"]);
    // A new directory with a matching file: only the listing changed.
    p.file("data/b/2.csv", "y\n");
    let after = build(&p, &["wf.yaml"]);
    assert!(!after.fast, "{}", after.stderr);
    assert_eq!(after.with("ran"), ["count"]);
    assert_eq!(p.read("n.txt").trim(), "2");
}

#[test]
fn another_invocation_or_a_forced_build_does_not_use_the_record() {
    let p = diamond();
    settle(&p, &["wf.yaml"]);
    let target = build(&p, &["wf.yaml", "b"]);
    assert!(!target.fast, "targets are part of the invocation");
    assert_eq!(target.with("cached"), ["a", "b"]);
    // The targeted build replaced the record: the full build is slow once.
    assert!(!build(&p, &["wf.yaml"]).fast);

    settle(&p, &["wf.yaml"]);
    let set = build(&p, &["wf.yaml", "--set", "d.run=cat out/b.txt > out/d.txt"]);
    assert!(!set.fast);
    assert_eq!(set.with("ran"), ["d"]);
    assert_eq!(p.read("out/d.txt"), "HELLO\n");
    // Back to the original settings: d's old entry is restored.
    let back = build(&p, &["wf.yaml"]);
    assert!(!back.fast);
    assert_eq!(p.read("out/d.txt"), "HELLO\nh");

    settle(&p, &["wf.yaml"]);
    let forced = build(&p, &["wf.yaml", "--force", "c"]);
    assert!(!forced.fast);
    assert_eq!(forced.with("ran"), ["c"]);
    assert!(
        !build(&p, &["wf.yaml"]).fast,
        "a forced build removes the record"
    );
}

/// An mtime at or after the build's start could hide a later edit in the
/// same timestamp tick (one in the future is always that recent): the
/// record vouches for such a file only by the digest of the content the
/// build hashed, which the next build reads again and compares.
#[test]
fn a_file_modified_too_recently_is_vouched_for_by_its_content() {
    let p = diamond();
    assert_eq!(build(&p, &["wf.yaml"]).code, 0);
    common::fast_paths::age(p.dir.path());
    let future = SystemTime::now() + Duration::from_secs(3600);
    let set_future = |p: &Project| {
        std::fs::File::options()
            .write(true)
            .open(p.path("in/a.txt"))
            .unwrap()
            .set_modified(future)
            .unwrap();
    };
    set_future(&p);
    assert!(!build(&p, &["wf.yaml"]).fast);
    let record = std::fs::read_dir(p.path("cache/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("uptodate");
    let text = std::fs::read_to_string(&record).unwrap();
    let line = text
        .lines()
        .position(|l| l.ends_with("/in/a.txt"))
        .expect("the input is in the record");
    let digest = blake3::hash(b"hello\n").to_hex().to_string();
    assert_eq!(
        text.lines().nth(line + 1),
        Some(format!("digest {digest}").as_str())
    );
    assert!(build(&p, &["wf.yaml"]).fast);
    // Other bytes of the same size under the same future mtime.
    p.file("in/a.txt", "jello\n");
    set_future(&p);
    let after = build(&p, &["wf.yaml"]);
    assert!(!after.fast, "{}", after.stderr);
    assert_eq!(after.ran(), ["a", "b", "c", "d"]);
    assert_eq!(p.read("out/d.txt"), "JELLO\nj");
}

/// A file dropped into a stored entry's outputs makes the entry corrupt
/// for the full build; the record must not vouch for it either.
#[test]
fn a_changed_blob_of_a_stored_entry_voids_the_record() {
    // Entries are no directories any more, so nothing can be dropped into
    // one; what can still change under a record is a stored blob file.
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: big, mode: command, run: 'head -c 70000 /dev/zero > big.bin', outputs: [big.bin]}\n",
    );
    settle(&p, &["wf.yaml"]);
    let key = store_support::action_keys(&p.path("cache"))[0].clone();
    let (_, digest) = store_support::outputs(&p.path("cache"), &key)[0].clone();
    let file = store_support::blob_file(&p.path("cache"), &digest);
    assert!(file.exists(), "a 70 kB output is a blob file");
    store_support::tamper_blob(&p.path("cache"), &digest, &vec![1u8; 70000]);
    let after = build(&p, &["wf.yaml"]);
    assert!(
        !after.fast,
        "the record vouched for a tampered entry:\n{}",
        after.stderr
    );
    assert!(
        after.with("ran") == ["big"],
        "the tampered entry was taken as it is:\n{}",
        after.stderr
    );
}

/// A record written by one admf binary is not trusted by another (a
/// second install, a rebuilt debug binary), which may key differently.
#[test]
fn another_admf_binary_does_not_use_the_record() {
    let p = diamond();
    settle(&p, &["wf.yaml"]);
    // Another path to the same binary is another install as far as the
    // record can tell. A hard link is never "text file busy"; a copy can
    // be, while another test thread forks with its write handle open.
    let other = p.path("other-admf");
    let exe = assert_cmd::cargo::cargo_bin("admf");
    if std::fs::hard_link(&exe, &other).is_err() {
        std::fs::copy(&exe, &other).unwrap();
    }
    let run = || {
        std::process::Command::new(&other)
            .current_dir(p.dir.path())
            .env("NO_COLOR", "1")
            .env("ADMF_TRACE", "1")
            .env_remove("ADMF_CACHE_DIR")
            .args(["build", "--json", "wf.yaml"])
            .output()
    };
    let mut out = run();
    for _ in 0..50 {
        match &out {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(Duration::from_millis(100));
                out = run();
            }
            _ => break,
        }
    }
    let out = out.expect("run the other binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains(FAST),
        "another binary used the record:\n{stderr}"
    );
    // One record per workflow: the copy's build replaced it, so the
    // original takes the full path once more, and it runs nothing.
    let again = build(&p, &["wf.yaml"]);
    assert!(!again.fast, "{}", again.stderr);
    assert!(again.with("ran").is_empty(), "{}", again.stderr);
}

/// A build that ran nodes after an edit leaves a record: the input edited
/// moments before it and the outputs it wrote are too recent for their
/// stats, so the record holds their digests and the next build compares
/// content. That build is answered by the record and says what the full
/// rule says; a change after it is seen.
#[test]
fn a_build_that_ran_after_an_edit_leaves_a_record_the_next_build_uses() {
    let p = diamond();
    let args = ["wf.yaml", "-j", "1"];
    settle(&p, &args);
    // The graph cache that build wrote must be old enough to vouch for.
    common::past_racy_window();
    p.file("in/a.txt", "howdy\n");
    let edit = build(&p, &args);
    assert_eq!(edit.ran(), ["a", "b", "c", "d"]);
    let fast = build(&p, &args);
    assert!(fast.fast, "{}", fast.stderr);
    assert_eq!(fast.with("cached"), ["a", "b", "c", "d"]);
    let fast_events = events(&p);
    let out = p.admf_env(
        &["build", "--json", "wf.yaml", "-j", "1"],
        &[("ADMF_TRACE", "1"), ("ADMF_FULL_PATH", "1")],
    );
    let full = Run {
        code: out.code,
        json: common::json_report(&out, "full build"),
        fast: out.stderr.contains(FAST),
        stderr: out.stderr,
    };
    assert!(!full.fast);
    assert_eq!(said(&fast), said(&full));
    assert_eq!(fast_events, events(&p));
    assert_eq!(p.read("out/d.txt"), "HOWDY\nh");
    // The full build removed the record; the next one writes it again.
    assert!(!build(&p, &args).fast);
    assert!(build(&p, &args).fast);
    p.file("out/b.txt", "edited\n");
    let after = build(&p, &args);
    assert!(!after.fast, "{}", after.stderr);
    assert_eq!(p.read("out/b.txt"), "HOWDY\n");
}
