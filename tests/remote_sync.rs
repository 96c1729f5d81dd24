//! `admf cache push` / `admf cache pull` / `admf cache ls --remote`
//! through the real binary, against a real REAPI server (BuildGrid) and a
//! real S3 server (SeaweedFS), both started by the tests on 127.0.0.1.

mod cluster_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use admf::store::{Cache, Store};
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
fn pushing_or_listing_against_a_server_that_is_down_fails_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = clone();
    let out = admf(dir.path(), &[], &["build", WORKFLOW]);
    assert_eq!(out.status.code(), Some(0));
    let url = format!("grpc://127.0.0.1:{port}");
    for command in ["push", "ls"] {
        let out = admf(dir.path(), &[], &["cache", command, "--remote", &url]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains(&format!("the remote cache {url}")),
            "{command}: {stderr}"
        );
    }
    // `cache ls --remote` without a URL takes ADMF_REMOTE, here unset.
    let out = admf(dir.path(), &[], &["cache", "ls", "--remote"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ADMF_REMOTE is not set"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admf(dir.path(), &[], &["cache", "push", "--remote", "ftp://x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a remote cache URL"));
}

/// The rows of an `admf cache ls` table: the key prefix and the last
/// column (REMOTE with --remote, NODE without), by key prefix.
fn ls_rows(out: &Output) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("KEY "), "{text}");
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells[0].to_string(), cells[cells.len() - 1].to_string())
        })
        .collect()
}

fn ls(dir: &Path, env: &[(&str, String)], args: &[&str]) -> (BTreeMap<String, String>, String) {
    let mut all = vec!["cache", "ls"];
    all.extend_from_slice(args);
    let out = admf(dir, env, &all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    (ls_rows(&out), stderr)
}

/// `cache ls --remote` in a clone that published its build, then built a
/// second workflow without the remote; in a fresh clone by workflow,
/// before and after a push; and once `remove_blob` took one blob (its
/// bytes given) off the remote.
fn ls_against_a_remote(
    url: &str,
    env: &[(&str, String)],
    listable: bool,
    remove_blob: &dyn Fn(&[u8]),
) {
    let first = clone();
    let out = admf(
        first.path(),
        env,
        &["build", WORKFLOW, "--json", "--remote", url],
    );
    assert_eq!(out.status.code(), Some(0));
    let published: Vec<String> = node_statuses(&out)
        .into_iter()
        .map(|(_, _, key)| key[..16].to_string())
        .collect();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/simple_backtest.yaml"),
        first.path().join("workflows/simple_backtest.yaml"),
    )
    .unwrap();
    let out = admf(
        first.path(),
        env,
        &["build", "workflows/simple_backtest.yaml", "--json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let local_only = node_statuses(&out)[0].2[..16].to_string();

    // Every entry of the local listing, and whether the remote holds it.
    let (local, _) = ls(first.path(), env, &[]);
    let (rows, stderr) = ls(first.path(), env, &["--remote", url]);
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>()
    );
    for (key, remote) in &rows {
        let want = if published.contains(key) {
            "hit"
        } else {
            "miss"
        };
        assert_eq!(remote, want, "{key}: {rows:?}");
    }
    assert_eq!(rows[&local_only], "miss");
    let hits = rows.values().filter(|r| *r == "hit").count();
    assert!(
        stderr.contains(&format!(
            "{url} holds {hits} of these {} entries",
            rows.len()
        )),
        "{stderr}"
    );
    // The same through ADMF_REMOTE.
    let mut with_env = env.to_vec();
    with_env.push(("ADMF_REMOTE", url.to_string()));
    assert_eq!(ls(first.path(), &with_env, &["--remote"]).0, rows);

    // A fresh clone knows nothing of the workflow's keys until its ref
    // set is pushed; then it lists every node's entry as held.
    let second = clone();
    let (rows, stderr) = ls(second.path(), env, &["--remote", url, WORKFLOW]);
    assert!(rows.is_empty(), "{rows:?}");
    if listable {
        // S3 lists what it holds: everything the first clone published.
        let unique: std::collections::BTreeSet<&String> = published.iter().collect();
        assert!(
            stderr.contains(&format!("it holds {} other entries", unique.len())),
            "{stderr}"
        );
    } else {
        assert!(stderr.contains("cannot be listed"), "{stderr}");
    }
    let out = admf(
        first.path(),
        env,
        &["cache", "push", WORKFLOW, "--remote", url],
    );
    assert_eq!(out.status.code(), Some(0));
    let (rows, stderr) = ls(second.path(), &with_env, &["--remote", WORKFLOW]);
    let unique: std::collections::BTreeSet<&String> = published.iter().collect();
    assert_eq!(
        rows.keys().collect::<std::collections::BTreeSet<_>>(),
        unique
    );
    assert!(rows.values().all(|r| r == "hit"), "{rows:?}");
    assert!(
        stderr.contains(&format!("names {} nodes", published.len())),
        "{stderr}"
    );
    // Listing copied nothing into the second clone.
    let out = admf(second.path(), env, &["cache", "ls"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).lines().count() <= 1,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // An entry one of whose blobs is gone is not held: a build would not
    // find it a hit.
    let store = Store::open(&first.path().join("cache")).unwrap();
    let blobs_of = |key: &str| -> Vec<String> {
        let manifest = store.get_action(key).unwrap().unwrap();
        manifest
            .outputs
            .values()
            .map(|o| o.blake3.clone())
            .collect()
    };
    let keys: Vec<String> = node_statuses(&admf(first.path(), env, &["build", WORKFLOW, "--json"]))
        .into_iter()
        .map(|(_, _, key)| key)
        .collect();
    let (victim, blob) = keys
        .iter()
        .find_map(|key| {
            let others: Vec<String> = keys
                .iter()
                .filter(|k| *k != key)
                .flat_map(|k| blobs_of(k))
                .collect();
            let own = blobs_of(key).into_iter().find(|b| !others.contains(b))?;
            Some((key.clone(), own))
        })
        .expect("an entry with a blob of its own");
    remove_blob(&store.get_blob(&blob).unwrap().unwrap());
    let (rows, _) = ls(second.path(), &with_env, &["--remote", WORKFLOW]);
    for (key, remote) in &rows {
        let want = if victim.starts_with(key.as_str()) {
            "miss"
        } else {
            "hit"
        };
        assert_eq!(remote, want, "{key}: {rows:?}");
    }
}

#[test]
fn ls_remote_says_which_entries_a_reapi_server_holds() {
    ls_against_a_remote(&buildgrid().url("main"), &[], false, &|bytes| {
        let sha = admf::remote::reapi::sha256_digest(bytes).hash;
        std::fs::remove_file(buildgrid().blob_path("main", &sha)).unwrap();
    });
}

#[test]
fn ls_remote_says_which_entries_an_s3_bucket_holds() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("ls-{nanos:x}");
    ls_against_a_remote(
        &format!("s3://admf/{prefix}"),
        &s3().env(),
        true,
        &|bytes| {
            use object_store::ObjectStore;
            let var = |name: &str| {
                s3().env()
                    .into_iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v)
                    .unwrap()
            };
            let bucket = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(&s3().bucket)
                .with_endpoint(var("AWS_ENDPOINT_URL"))
                .with_allow_http(true)
                .with_region(var("AWS_DEFAULT_REGION"))
                .with_access_key_id(var("AWS_ACCESS_KEY_ID"))
                .with_secret_access_key(var("AWS_SECRET_ACCESS_KEY"))
                .build()
                .unwrap();
            let path = object_store::path::Path::from(format!(
                "{prefix}/cas/{}",
                blake3::hash(bytes).to_hex()
            ));
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(bucket.delete(&path))
                .unwrap();
        },
    );
}
