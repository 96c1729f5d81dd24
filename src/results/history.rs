//! What a build adds to the run ledger besides its nodes' keys and
//! statuses: the experiment name, the git commit of the workflow's
//! repository, the workflow digest and each node's metrics.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::store::{RunNode, Store, flatten_metrics};

/// The commit checked out in the git repository holding `dir`, and
/// whether tracked files differ from it; `None` outside a repository or
/// without a `git` program (git is never required). One `git status`
/// gives both.
pub fn git_state(dir: &Path) -> Option<(String, bool)> {
    // A workflow named without a directory (`wf.yaml`) has an empty
    // parent: the working directory.
    let dir = std::path::absolute(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })
    .ok()?;
    // Only ask git where a repository exists: no process otherwise.
    dir.ancestors().find(|d| d.join(".git").exists())?;
    let out = Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args([
            "status",
            "--porcelain=v2",
            "--branch",
            "--untracked-files=no",
        ])
        // Never take the index lock: a user's git command may be running.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?;
    let commit = text
        .lines()
        .find_map(|l| l.strip_prefix("# branch.oid "))
        .filter(|oid| oid.chars().all(|c| c.is_ascii_hexdigit()))?
        .to_string();
    let dirty = text.lines().any(|l| !l.starts_with('#'));
    Some((commit, dirty))
}

type Probe = std::thread::JoinHandle<Option<(String, bool)>>;

static PROBE: std::sync::Mutex<Option<(PathBuf, Probe)>> = std::sync::Mutex::new(None);

/// Starts [`git_state`] for the workflow's directory on a thread, so
/// that the `git` process runs while the build does.
pub fn start_git_probe(workflow: &Path) {
    let dir = workflow.parent().unwrap_or(Path::new(".")).to_path_buf();
    let probe_dir = dir.clone();
    if let Ok(handle) = std::thread::Builder::new()
        .name("git-probe".into())
        .spawn(move || git_state(&probe_dir))
        && let Ok(mut slot) = PROBE.lock()
    {
        *slot = Some((dir, handle));
    }
}

/// The git state of the workflow's directory: the probe's answer when one
/// was started for it, else asked now.
pub fn git_state_of(workflow: &Path) -> Option<(String, bool)> {
    let dir = workflow.parent().unwrap_or(Path::new("."));
    let probe = PROBE.lock().ok().and_then(|mut slot| slot.take());
    match probe {
        Some((probed, handle)) if probed == dir => handle.join().ok().flatten(),
        _ => git_state(dir),
    }
}

/// Fills each node's metrics from its entry, for the keys the ledger
/// does not hold metrics for yet (a cached node's were recorded when it
/// ran): a no-op build reads no `metrics.json`.
pub fn add_metrics(store: &Store, nodes: &mut [RunNode]) {
    // Nodes whose metrics were flattened where they ran need nothing read,
    // and neither do nodes known to have none: a key without a metrics row
    // reads as empty metrics, as one recorded absent does.
    let keys: Vec<&str> = nodes
        .iter()
        .filter(|n| n.metrics_text.is_none() && n.metrics_blob != Some(None))
        .filter_map(|n| n.key.as_deref())
        .collect();
    if keys.is_empty() {
        return;
    }
    let Ok(missing) = store.keys_without_metrics(&keys) else {
        return;
    };
    let missing: std::collections::HashSet<String> =
        missing.into_iter().map(str::to_string).collect();
    if missing.is_empty() {
        return;
    }
    // The metrics blobs the build knows, read together.
    let digests: Vec<&str> = nodes
        .iter()
        .filter(|n| n.metrics_text.is_none())
        .filter(|n| n.key.as_deref().is_some_and(|k| missing.contains(k)))
        .filter_map(|n| n.metrics_blob.as_ref()?.as_deref())
        .collect();
    let inline = store.checked_inline_blobs(&digests).unwrap_or_default();
    for n in nodes.iter_mut() {
        let Some(key) = n
            .key
            .as_deref()
            .filter(|k| n.metrics_text.is_none() && missing.contains(*k))
        else {
            continue;
        };
        // The digest the build knows spares reading (and parsing) the
        // action row: a sweep's gather row names every trial's signal.
        let metrics = match &n.metrics_blob {
            Some(Some(digest)) => match inline.get(digest) {
                Some(bytes) => Some(Some(bytes.clone())),
                None => store.read_blob(digest).ok().flatten().map(Some),
            },
            Some(None) => Some(None),
            None => store.checked_metrics(key),
        };
        match metrics {
            Some(Some(bytes)) => {
                if let Ok(metrics) = serde_json::from_slice(&bytes) {
                    n.metrics = flatten_metrics(&metrics);
                }
            }
            // An entry without metrics (a command's, say) is recorded as
            // such: otherwise every later build would look again.
            Some(None) => n.metrics_absent = true,
            None => {}
        }
    }
}
