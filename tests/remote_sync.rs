//! `admf cache push` / `admf cache pull` through the real binary, against
//! a real REAPI server (BuildGrid) and a real S3 server (SeaweedFS), both
//! started by the tests on 127.0.0.1.

mod cluster_support;

use std::process::Output;

use cluster_support::{admf_with as admf, buildgrid, node_statuses, research_clone as clone, s3};

const WORKFLOW: &str = "workflows/parameter_optimization.yaml";

/// The status of every node in a `--json` build report.
fn statuses(out: &Output) -> Vec<String> {
    node_statuses(out)
        .into_iter()
        .map(|(_, status, _)| status)
        .collect()
}

/// Builds in one clone without a remote, pushes, pulls into another clone,
/// and builds there without a remote: every node a local hit.
fn push_then_pull(url: &str, env: &[(&str, String)]) {
    let first = clone();
    let out = admf(first.path(), env, &["build", WORKFLOW, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let nodes = statuses(&out).len();

    let second = clone();
    // Nothing pushed yet: a pull says so.
    let out = admf(
        second.path(),
        env,
        &["cache", "pull", WORKFLOW, "--remote", url],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("holds no ref set of workflows/parameter_optimization.yaml"),
        "{stderr}"
    );

    let out = admf(
        first.path(),
        env,
        &["cache", "push", WORKFLOW, "--remote", url],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Keys are unique per node except where two nodes compute the same
    // thing; at least one entry each, and the ref set of every node.
    assert!(stderr.contains(" (0 already there)"), "{stderr}");
    assert!(
        stderr.contains(&format!("({nodes} nodes)")),
        "{nodes}: {stderr}"
    );
    // Pushing again publishes nothing new.
    let out = admf(
        first.path(),
        env,
        &["cache", "push", WORKFLOW, "--remote", url],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pushed 0 entries"), "{stderr}");

    let out = admf(
        second.path(),
        env,
        &["cache", "pull", WORKFLOW, "--remote", url],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("(0 already here, 0 missing"), "{stderr}");
    let out = admf(second.path(), env, &["build", WORKFLOW, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let after = statuses(&out);
    assert_eq!(after.len(), nodes);
    assert!(after.iter().all(|s| s == "cached"), "{after:?}");
    // A second pull finds everything here.
    let out = admf(
        second.path(),
        env,
        &["cache", "pull", WORKFLOW, "--remote", url],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pulled 0 entries"), "{stderr}");
}

#[test]
fn push_and_pull_through_a_reapi_server() {
    push_then_pull(&buildgrid().url("push"), &[]);
}

#[test]
fn push_and_pull_through_s3() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    push_then_pull(&format!("s3://admf/sync-{nanos:x}"), &s3().env());
}

#[test]
fn pushing_everything_to_a_server_that_is_down_fails_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = clone();
    let out = admf(dir.path(), &[], &["build", WORKFLOW]);
    assert_eq!(out.status.code(), Some(0));
    let url = format!("grpc://127.0.0.1:{port}");
    let out = admf(dir.path(), &[], &["cache", "push", "--remote", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("the remote cache {url}")),
        "{stderr}"
    );
    let out = admf(dir.path(), &[], &["cache", "push", "--remote", "ftp://x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a remote cache URL"));
}
