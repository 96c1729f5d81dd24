//! Determinism: `-j1` and `-j2`, each twice in a fresh store, give the same
//! planned sequence and byte-identical artifacts (every file under the
//! entries' `out/` dirs and every workspace output; manifests are left
//! out because they hold timings).

mod common;
mod store_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree;

/// Relative path → bytes, sorted (see [`tree`]).
type Tree = Vec<(String, Vec<u8>)>;

struct Build {
    /// Entry key → its `out/` tree.
    artifacts: Vec<(String, Vec<u8>)>,
    /// The first line of `events.jsonl`: the planned sequence.
    plan: String,
    workspace: Tree,
}

fn build(dir: &Path, workflow: &str, jobs: &str, outputs: Option<&str>) -> Build {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_admf"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(["build", workflow, "-j", jobs, "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let artifacts = store_support::artifacts(cache.path());
    let runs = cache.path().join("runs");
    let run = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
    let events = std::fs::read_to_string(run.path().join("events.jsonl")).unwrap();
    Build {
        artifacts,
        plan: events.lines().next().unwrap().to_string(),
        workspace: outputs.map(|o| tree(&dir.join(o))).unwrap_or_default(),
    }
}

/// Four builds (-j1, -j2, -j1, -j2), two at a time, each in a fresh store.
fn four_builds(dirs: [PathBuf; 4], workflow: &str, outputs: Option<&str>) -> Vec<Build> {
    let jobs = ["1", "2", "1", "2"];
    let mut builds = Vec::new();
    for pair in [[0, 1], [2, 3]] {
        std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|&i| {
                    let dir = &dirs[i];
                    s.spawn(move || build(dir, workflow, jobs[i], outputs))
                })
                .collect();
            builds.extend(handles.into_iter().map(|h| h.join().unwrap()));
        });
    }
    builds
}

fn assert_identical(builds: &[Build]) {
    let first = &builds[0];
    assert!(!first.artifacts.is_empty());
    for (i, b) in builds.iter().enumerate().skip(1) {
        assert_eq!(b.plan, first.plan, "build {i}: planned sequence");
        let keys: Vec<&String> = b.artifacts.iter().map(|(k, _)| k).collect();
        let want: Vec<&String> = first.artifacts.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, want, "build {i}: keys");
        for ((key, got), (_, want)) in b.artifacts.iter().zip(&first.artifacts) {
            assert!(got == want, "build {i}: entry {key} differs");
        }
        assert!(b.workspace == first.workspace, "build {i}: workspace");
    }
}

#[test]
fn parameter_optimization_is_identical_for_any_j() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dirs = [repo.clone(), repo.clone(), repo.clone(), repo];
    let builds = four_builds(dirs, "workflows/parameter_optimization.yaml", None);
    assert_identical(&builds);
    assert!(
        builds[0]
            .plan
            .starts_with(r#"{"event":"plan","order":["parameter_discovery[0]""#)
    );
}

#[test]
fn composite_example_is_identical_for_any_j() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/composite");
    let temps: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    for t in &temps {
        for entry in walkdir::WalkDir::new(&src)
            .into_iter()
            .filter_map(Result::ok)
        {
            let rel = entry.path().strip_prefix(&src).unwrap();
            let to = t.path().join(rel);
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(&to).unwrap();
            } else {
                std::fs::copy(entry.path(), &to).unwrap();
            }
        }
    }
    let dirs = [0, 1, 2, 3].map(|i| temps[i].path().to_path_buf());
    let builds = four_builds(dirs, "workflow.yaml", Some("."));
    assert_identical(&builds);
    assert!(builds[0].workspace.iter().any(|(p, _)| p == "risk.txt"));
}
