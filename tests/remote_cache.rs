//! `--remote s3://...` against a real S3 server (SeaweedFS, started by the
//! tests on 127.0.0.1): a second clone builds from the remote without
//! running anything, a kill leaves no half entry there, and a remote that
//! is down or refuses writes costs one warning, never the build.

mod cluster_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use admf::remote::{RemoteCache, S3Cache, pack};
use admf::store::{Cache, Store};
use cluster_support::{admf_with as admf, node_statuses as statuses, research_clone as clone, s3};

fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("s3://admf/{name}-{nanos:x}")
}

fn remote_of(url: &str) -> S3Cache {
    let env = s3().env().into_iter().map(|(k, v)| (k.to_string(), v));
    S3Cache::open_with(url, env).unwrap()
}

const WORKFLOW: &str = "workflows/parameter_optimization.yaml";

#[test]
fn a_second_clone_builds_the_research_workflow_from_the_remote_alone() {
    let url = unique_prefix("clone");
    let env = s3().env();
    let first = clone();
    let out = admf(
        first.path(),
        &env,
        &["build", WORKFLOW, "--json", "--remote", &url],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let built = statuses(&out);
    assert!(built.iter().all(|(_, s, _)| s == "ran"), "{built:?}");
    assert!(
        stderr.contains(&format!("remote: 0 hits, {} published", built.len())),
        "{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");

    // Another folder, an empty store, the same remote.
    let second = clone();
    let out = admf(
        second.path(),
        &env,
        &["build", WORKFLOW, "--json", "--remote", &url],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let fetched = statuses(&out);
    assert!(fetched.iter().all(|(_, s, _)| s == "cached"), "{fetched:?}");
    assert!(
        stderr.contains(&format!("remote: {} hits, 0 published", built.len())),
        "{stderr}"
    );
    // Same keys, and the same bytes under them.
    let keys = |rows: &[(String, String, String)]| {
        rows.iter()
            .map(|(id, _, k)| (id.clone(), k.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&built), keys(&fetched));
    let a = Store::open(&first.path().join("cache")).unwrap();
    let b = Store::open(&second.path().join("cache")).unwrap();
    for (_, _, key) in &built {
        let (ma, mb) = (
            a.get_action(key).unwrap().unwrap(),
            b.get_action(key).unwrap().unwrap(),
        );
        assert_eq!(ma.outputs, mb.outputs, "{key}");
        for output in ma.outputs.values() {
            assert_eq!(
                a.get_blob(&output.blake3).unwrap(),
                b.get_blob(&output.blake3).unwrap()
            );
        }
    }
    // The report the second clone shows is the first one's, byte for byte.
    let report = |dir: &Path| {
        let out = admf(dir, &env, &["show", WORKFLOW, "report"]);
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (ra, rb) = (report(first.path()), report(second.path()));
    let html = |text: &str| {
        let dir = text
            .lines()
            .find_map(|l| l.strip_prefix("artifacts:"))
            .map(|d| Path::new(d.trim()).join("report.html"));
        dir.map(|p| std::fs::read(p).unwrap())
    };
    assert!(html(&ra).is_some(), "{ra}");
    assert_eq!(html(&ra), html(&rb));
}

#[test]
fn a_remote_that_is_down_costs_one_warning_not_the_build() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = vec![
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ACCESS_KEY_ID", "k".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "s".to_string()),
    ];
    let dir = clone();
    let started = Instant::now();
    let out = admf(
        dir.path(),
        &env,
        &["build", WORKFLOW, "--json", "--remote", "s3://admf/down"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(statuses(&out).iter().all(|(_, s, _)| s == "ran"));
    assert_eq!(
        stderr.matches("warning: the remote cache").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("local cache only"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_remote_that_refuses_writes_costs_one_warning_not_the_build() {
    let env = s3().env();
    let dir = clone();
    // A bucket that does not exist: every lookup misses, every write fails.
    let out = admf(
        dir.path(),
        &env,
        &[
            "build",
            WORKFLOW,
            "--json",
            "--remote",
            "s3://no-such-bucket-admf/x",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(statuses(&out).iter().all(|(_, s, _)| s == "ran"));
    assert_eq!(
        stderr.matches("warning: the remote cache").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_kill_mid_build_leaves_no_half_entry_remotely() {
    let url = unique_prefix("kill");
    let env = s3().env();
    let dir = clone();
    std::fs::write(
        dir.path().join("workflows/steps.yaml"),
        "data: {source: csv, symbols: [SPY], path: ../data/SPY_D.csv}\n\
         strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}\n\
         phases:\n  - sweep:\n      mode: signal_generation\n\
         \x20     grid: {lookback: \"range(2, 201, 1)\"}\n",
    )
    .unwrap();
    let remote = remote_of(&url);
    let mut command = Command::new(env!("CARGO_BIN_EXE_admf"));
    command
        .current_dir(dir.path())
        .args(["build", "workflows/steps.yaml", "-j", "4", "--remote", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if remote.list_actions().unwrap().len() >= 3 {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            panic!("the build ended before the kill");
        }
        assert!(Instant::now() < deadline, "nothing was published");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Every action published is whole: all its blobs are there.
    let published = remote.list_actions().unwrap();
    assert!(!published.is_empty());
    for key in &published {
        assert!(
            remote.get_action(key).unwrap().is_some(),
            "half entry {key}"
        );
    }
    // The next build finishes and publishes the rest.
    let out = admf(
        dir.path(),
        &env,
        &["build", "workflows/steps.yaml", "--remote", &url],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // 200 trials and their gather.
    assert_eq!(remote.list_actions().unwrap().len(), 201, "{stderr}");
}

#[test]
fn entries_pushed_one_by_one_are_hits_and_the_group_is_packed_for_the_next_clone() {
    let url = unique_prefix("pack");
    let env = s3().env();
    let sweep = |dir: &Path| {
        std::fs::write(
            dir.join("workflows/sweep.yaml"),
            "data: {source: csv, symbols: [SPY], path: ../data/SPY_D.csv}\n\
             strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}\n\
             phases:\n  - sweep:\n      mode: signal_generation\n\
             \x20     grid: {lookback: \"range(2, 22, 1)\"}\n",
        )
        .unwrap();
    };
    let build = |dir: &Path| {
        let out = admf(
            dir,
            &env,
            &["build", "workflows/sweep.yaml", "--json", "--remote", &url],
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("warning"), "{stderr}");
        (statuses(&out), stderr)
    };
    // Built locally and pushed entry by entry: the remote holds every
    // entry in the per-key layout and no pack.
    let first = clone();
    sweep(first.path());
    let out = admf(
        first.path(),
        &env,
        &["build", "workflows/sweep.yaml", "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let built = statuses(&out);
    let out = admf(
        first.path(),
        &env,
        &["cache", "push", "workflows/sweep.yaml", "--remote", &url],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The ready group: the 21 trials (their gather waits for them).
    let group: Vec<String> = built
        .iter()
        .filter(|(id, _, _)| id.contains('['))
        .map(|(_, _, key)| key.clone())
        .collect();
    assert_eq!(group.len(), 21);
    let remote = remote_of(&url);
    let probe = tempfile::tempdir().unwrap();
    let probe = Store::open(&probe.path().join("cache")).unwrap();
    let id = pack::group_id(&group);
    assert!(remote.fetch_pack(&id, &group, &probe).unwrap().is_none());

    // A clone with an empty store: every entry a hit, read one by one;
    // holding the whole group at its end, it publishes the group's pack.
    let second = clone();
    sweep(second.path());
    let (fetched, stderr) = build(second.path());
    assert!(fetched.iter().all(|(_, s, _)| s == "cached"), "{fetched:?}");
    assert!(stderr.contains("remote: 22 hits, 0 published"), "{stderr}");
    let copied = remote.fetch_pack(&id, &group, &probe).unwrap();
    assert_eq!(copied, Some(vec![true; 21]));
    // What the pack gave is the first build's entries, byte for byte.
    let source = Store::open(&first.path().join("cache")).unwrap();
    for key in &group {
        let manifest = probe.get_action(key).unwrap().unwrap();
        assert_eq!(Some(&manifest), source.get_action(key).unwrap().as_ref());
        for output in manifest.outputs.values() {
            assert_eq!(
                probe.get_blob(&output.blake3).unwrap(),
                source.get_blob(&output.blake3).unwrap()
            );
        }
    }

    // A third clone reads the group from the pack: the same hits.
    let third = clone();
    sweep(third.path());
    let (again, stderr) = build(third.path());
    assert!(again.iter().all(|(_, s, _)| s == "cached"), "{again:?}");
    assert!(stderr.contains("remote: 22 hits, 0 published"), "{stderr}");
    assert_eq!(again, fetched);
}
