//! `--remote grpc://...` against a real REAPI v2 server (BuildGrid 0.4.4,
//! started by the tests on 127.0.0.1): a second clone builds from the
//! server without running anything, a blob missing or corrupt on the
//! server is a miss and never a wrong result, blobs over the batch limit
//! go through ByteStream, and a server that is down costs one warning,
//! never the build.

mod cluster_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use admf::remote::{ReapiCache, RemoteCache, pack};
use admf::store::{Cache, Store};
use cluster_support::{admf_with, buildgrid, node_statuses as statuses, research_clone as clone};

fn admf(dir: &Path, args: &[&str]) -> Output {
    admf_with(dir, &[], args)
}

const WORKFLOW: &str = "workflows/parameter_optimization.yaml";

fn build(dir: &Path, url: &str) -> (Vec<(String, String, String)>, String) {
    let out = admf(dir, &["build", WORKFLOW, "--json", "--remote", url]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (statuses(&out), stderr)
}

/// Every output blob of every node, by node, read from a clone's store.
fn outputs(dir: &Path, nodes: &[(String, String, String)]) -> BTreeMap<String, Vec<Vec<u8>>> {
    let store = Store::open(&dir.join("cache")).unwrap();
    nodes
        .iter()
        .map(|(id, _, key)| {
            let manifest = store.get_action(key).unwrap().unwrap();
            let blobs = manifest
                .outputs
                .values()
                .map(|o| store.get_blob(&o.blake3).unwrap().unwrap())
                .collect();
            (id.clone(), blobs)
        })
        .collect()
}

/// The SHA-256 of `bytes` by the system's `sha256sum`, an implementation
/// independent of the one admf uses.
fn sha256sum(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn a_second_clone_builds_the_research_workflow_from_the_reapi_server_alone() {
    let url = buildgrid().url("main");
    let first = clone();
    let (built, stderr) = build(first.path(), &url);
    assert!(built.iter().all(|(_, s, _)| s == "ran"), "{built:?}");
    assert!(
        stderr.contains(&format!("remote: 0 hits, {} published", built.len())),
        "{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");

    // Another folder, an empty store, the same server.
    let second = clone();
    let (fetched, stderr) = build(second.path(), &url);
    assert!(fetched.iter().all(|(_, s, _)| s == "cached"), "{fetched:?}");
    assert!(
        stderr.contains(&format!("remote: {} hits, 0 published", built.len())),
        "{stderr}"
    );
    let keys = |rows: &[(String, String, String)]| {
        rows.iter()
            .map(|(id, _, k)| (id.clone(), k.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&built), keys(&fetched));
    assert_eq!(
        outputs(first.path(), &built),
        outputs(second.path(), &fetched)
    );
    // The report the second clone shows is the first one's, byte for byte.
    let report = |dir: &Path| {
        let out = admf(dir, &["show", WORKFLOW, "report"]);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let folder = text
            .lines()
            .find_map(|l| l.strip_prefix("artifacts:"))
            .map(|d| Path::new(d.trim()).join("report.html"))
            .unwrap_or_else(|| panic!("{text}"));
        std::fs::read(folder).unwrap()
    };
    assert_eq!(report(first.path()), report(second.path()));

    // What the server holds is a REAPI action result under the action
    // digest derived from the key, naming each blob by its SHA-256.
    let remote = ReapiCache::open(&url).unwrap();
    let store = Store::open(&first.path().join("cache")).unwrap();
    let (_, _, key) = &built[0];
    let manifest = remote.get_action(key).unwrap().unwrap();
    assert_eq!(manifest, store.get_action(key).unwrap().unwrap());
    for output in manifest.outputs.values() {
        let bytes = store.get_blob(&output.blake3).unwrap().unwrap();
        assert!(
            buildgrid().blob_path("main", &sha256sum(&bytes)).is_file(),
            "no blob on the server by the SHA-256 of {}",
            output.blake3
        );
    }
}

#[test]
fn a_blob_missing_or_corrupt_on_the_server_is_a_miss_not_a_wrong_result() {
    let url = buildgrid().url("corrupt");
    let first = clone();
    let (built, _) = build(first.path(), &url);
    assert!(built.iter().all(|(_, s, _)| s == "ran"), "{built:?}");
    let before = outputs(first.path(), &built);

    // Two nodes whose output is theirs alone: one has its blob removed
    // from the server, the other's is overwritten with other bytes.
    let mut owners: BTreeMap<&Vec<u8>, Vec<&String>> = BTreeMap::new();
    for (id, blobs) in &before {
        for blob in blobs {
            owners.entry(blob).or_default().push(id);
        }
    }
    let mut victims = before.iter().filter_map(|(id, blobs)| {
        let own = blobs.iter().find(|b| owners[b] == [id] && !b.is_empty())?;
        Some((id.clone(), own.clone()))
    });
    let (removed, removed_blob) = victims.next().expect("a node with an output of its own");
    let (corrupted, corrupted_blob) = victims.next().expect("two such nodes");
    std::fs::remove_file(buildgrid().blob_path("corrupt", &sha256sum(&removed_blob))).unwrap();
    let mut flipped = corrupted_blob.clone();
    flipped[0] ^= 1;
    std::fs::write(
        buildgrid().blob_path("corrupt", &sha256sum(&corrupted_blob)),
        flipped,
    )
    .unwrap();

    let second = clone();
    let (fetched, stderr) = build(second.path(), &url);
    for (id, status, _) in &fetched {
        let expected = if *id == removed || *id == corrupted {
            "ran"
        } else {
            "cached"
        };
        assert_eq!(status, expected, "{id}: {stderr}");
    }
    assert!(!stderr.contains("warning"), "{stderr}");
    // Whatever came from where, the bytes are the first build's.
    assert_eq!(before, outputs(second.path(), &fetched));
}

#[test]
fn blobs_over_the_batch_limit_go_through_bytestream() {
    let remote = ReapiCache::open(&buildgrid().url("main")).unwrap();
    // 6 MiB: over the 4 MiB a batch may carry.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let big: Vec<u8> = (0..6 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let digest = remote.put_blob(&big).unwrap();
    assert_eq!(digest, blake3::hash(&big).to_hex().as_str());
    assert!(remote.has_blob(&digest).unwrap());
    let on_disk = std::fs::read(buildgrid().blob_path("main", &sha256sum(&big))).unwrap();
    assert!(on_disk == big, "the server holds other bytes");
    assert!(remote.get_blob(&digest).unwrap().unwrap() == big);
    // A blob this tier never saw is absent, not an error.
    assert!(!remote.has_blob(&"0".repeat(64)).unwrap());
    assert_eq!(remote.get_blob(&"0".repeat(64)).unwrap(), None);
}

#[test]
fn a_reapi_server_that_is_down_costs_one_warning_not_the_build() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = clone();
    let (built, stderr) = build(dir.path(), &format!("grpc://127.0.0.1:{port}/main"));
    assert!(built.iter().all(|(_, s, _)| s == "ran"), "{built:?}");
    assert_eq!(
        stderr.matches("warning: the remote cache").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("local cache only"), "{stderr}");
}

#[test]
fn a_sweeps_trials_are_fetched_as_a_group_and_give_the_same_bytes() {
    // Forty-one trials ready at once: their entries are fetched together
    // before they are decided, whatever `-j`.
    let url = buildgrid().url("pull");
    let sweep = |dir: &Path| {
        std::fs::write(
            dir.join("workflows/sweep.yaml"),
            "data: {source: csv, symbols: [SPY], path: ../data/SPY_D.csv}\n\
             strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}\n\
             phases:\n  - sweep:\n      mode: signal_generation\n\
             \x20     grid: {lookback: \"range(2, 42, 1)\"}\n",
        )
        .unwrap();
    };
    let run = |dir: &Path, jobs: &str| {
        let out = admf(
            dir,
            &[
                "build",
                "workflows/sweep.yaml",
                "--json",
                "-j",
                jobs,
                "--remote",
                &url,
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        (statuses(&out), stderr)
    };
    let first = clone();
    sweep(first.path());
    let (built, _) = run(first.path(), "1");
    // `range` includes its end: 41 trials and their gather.
    assert_eq!(built.len(), 42, "{built:?}");
    // The trials were ready at once: the build published their group's
    // pack, which gives every trial's entry in one read.
    let group: Vec<String> = built
        .iter()
        .filter(|(id, _, _)| id.contains('['))
        .map(|(_, _, key)| key.clone())
        .collect();
    assert_eq!(group.len(), 41);
    let probe = tempfile::tempdir().unwrap();
    let probe = Store::open(&probe.path().join("cache")).unwrap();
    let remote = ReapiCache::open(&url).unwrap();
    let copied = remote
        .fetch_pack(&pack::group_id(&group), &group, &probe)
        .unwrap();
    assert_eq!(copied, Some(vec![true; 41]));
    for jobs in ["1", "4"] {
        let second = clone();
        sweep(second.path());
        let (fetched, stderr) = run(second.path(), jobs);
        assert!(fetched.iter().all(|(_, s, _)| s == "cached"), "{fetched:?}");
        assert!(stderr.contains("remote: 42 hits, 0 published"), "{stderr}");
        assert_eq!(
            outputs(first.path(), &built),
            outputs(second.path(), &fetched)
        );
    }
}
