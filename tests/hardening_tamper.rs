//! Stat-preserving tampering: a stored or workspace output whose content
//! is replaced with its size and mtime put back, or a forged line in the
//! stat cache, must never reach a phase as if it were the recorded
//! content; and `cache verify --repair` removes what was built on a
//! corrupt entry along with it.

mod common;

use std::fs::{self, File, FileTimes};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use common::Project;

/// `a` writes 1..=N, `b` sums what it reads (through the workspace, or
/// through its upstream folder when `via_upstream`).
fn workflow(n: u32, via_upstream: bool) -> String {
    let source = if via_upstream {
        "$ADMF_UPSTREAM_A/nums.txt"
    } else {
        "nums.txt"
    };
    format!(
        "phases:\n  - name: a\n    mode: command\n    run: \"seq 1 {n} > nums.txt\"\n    outputs: [nums.txt]\n  - name: b\n    mode: command\n    run: \"awk '{{s += $1}} END {{print s}}' {source} > sum.txt\"\n    outputs: [sum.txt]\n    env: {{V: '1'}}\n"
    )
}

/// Builds, waits past the racy window and builds again, so that every
/// file's stat is recorded as trustworthy.
fn build_and_settle(p: &Project) {
    assert_eq!(p.ran(&["wf.yaml"]), ["a", "b"]);
    std::thread::sleep(Duration::from_millis(300));
    let (out, _) = p.build(&["wf.yaml", "--force-all"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::thread::sleep(Duration::from_millis(300));
    let (out, _) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// Replaces the line `500` by `508` in `path` (same size), then puts its
/// mtime back, as `touch -d` would.
fn tamper_keeping_mtime(path: &Path) {
    let meta = fs::metadata(path).unwrap();
    let mtime = meta.modified().unwrap();
    let mode = meta.permissions().mode();
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains("\n500\n"));
    fs::write(path, text.replacen("\n500\n", "\n508\n", 1)).unwrap();
    let file = File::options().write(true).open(path).unwrap();
    file.set_times(FileTimes::new().set_modified(mtime))
        .unwrap();
    drop(file);
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    let after = fs::metadata(path).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap(), after.ino()),
        (meta.len(), mtime, meta.ino())
    );
}

/// The one blob file of more than 64 KiB: `a`'s output.
fn the_large_blob(p: &Project) -> PathBuf {
    let blobs: Vec<PathBuf> = walkdir::WalkDir::new(p.path("cache/blobs"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.metadata().unwrap().len() > 64 * 1024)
        .map(|e| e.into_path())
        .collect();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    blobs.into_iter().next().unwrap()
}

#[test]
fn a_workspace_output_rewritten_with_its_mtime_put_back_is_not_consumed() {
    let p = Project::new();
    p.file("wf.yaml", &workflow(1000, false));
    build_and_settle(&p);
    assert_eq!(p.read("sum.txt"), "500500\n");
    tamper_keeping_mtime(&p.path("nums.txt"));
    let (out, statuses) = p.build(&["wf.yaml", "--set", "b.env.V=2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        statuses,
        [("a".into(), "cached".into()), ("b".into(), "ran".into())]
    );
    assert_eq!(p.read("nums.txt").lines().nth(499), Some("500"));
    assert_eq!(p.read("sum.txt"), "500500\n");
}

#[test]
fn a_stored_blob_rewritten_with_its_mtime_put_back_is_not_consumed() {
    let p = Project::new();
    p.file("wf.yaml", &workflow(20_000, true));
    build_and_settle(&p);
    assert_eq!(p.read("sum.txt"), "200010000\n");
    tamper_keeping_mtime(&the_large_blob(&p));
    let (out, statuses) = p.build(&["wf.yaml", "--set", "b.env.V=2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(statuses[1], ("b".into(), "ran".into()));
    assert_eq!(p.read("sum.txt"), "200010000\n");
    // The corrupt blob file was replaced by the recomputed content.
    let verify = p.admf(&["cache", "verify"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
}

#[test]
fn a_forged_stat_cache_line_does_not_vouch_for_a_changed_file() {
    let p = Project::new();
    p.file("wf.yaml", &workflow(1000, false));
    build_and_settle(&p);
    let nums = fs::canonicalize(p.path("nums.txt")).unwrap();
    tamper_keeping_mtime(&nums);
    // The forger writes the tampered file's stat next to the digest the
    // original content had: the record is well formed, but the file's
    // closing checksum no longer matches.
    let statcache = p.path("cache/statcache");
    let text = fs::read_to_string(&statcache).unwrap();
    let suffix = format!(" {}", nums.display());
    let meta = fs::metadata(&nums).unwrap();
    let mtime_ns = meta
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let ctime_ns = meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128;
    let mut forged = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| match line.strip_suffix(&suffix) {
            Some(head) => {
                forged += 1;
                let digest = head.split(' ').next().unwrap();
                format!(
                    "{digest} {} {mtime_ns} {} {} {ctime_ns}{suffix}",
                    meta.len(),
                    meta.ino(),
                    meta.dev()
                )
            }
            None => line.to_string(),
        })
        .collect();
    assert_eq!(forged, 1, "{text}");
    fs::write(&statcache, lines.join("\n") + "\n").unwrap();
    let (out, statuses) = p.build(&["wf.yaml", "--set", "b.env.V=2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(statuses[1], ("b".into(), "ran".into()));
    assert_eq!(p.read("sum.txt"), "500500\n");
}

#[test]
fn repair_removes_every_entry_built_on_a_corrupt_one() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        &(workflow(20_000, true)
            + "  - name: c\n    mode: command\n    run: \"cat $ADMF_UPSTREAM_B/sum.txt > c.txt\"\n    outputs: [c.txt]\n"),
    );
    assert_eq!(p.ran(&["wf.yaml"]), ["a", "b", "c"]);
    let blob = the_large_blob(&p);
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&blob, "rotten").unwrap();
    let verify = p.admf(&["cache", "verify"]);
    assert_ne!(verify.code, 0, "{}", verify.stdout);
    let all = format!("{}{}", verify.stdout, verify.stderr);
    assert_eq!(
        all.matches("built on upstream outputs").count(),
        2,
        "b and c are named: {all}"
    );
    let repair = p.admf(&["cache", "verify", "--repair"]);
    assert_eq!(repair.code, 0, "{}\n{}", repair.stdout, repair.stderr);
    let verify = p.admf(&["cache", "verify"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    // Nothing built on the corrupt blob is served again.
    assert_eq!(p.ran(&["wf.yaml"]), ["a", "b", "c"]);
    assert_eq!(p.read("c.txt"), "200010000\n");
}
