//! What a `command` phase sees of its upstream nodes: each node's outputs
//! as a folder of files, named by `ADMF_UPSTREAM_<NAME>`, and
//! `ADMF_UPSTREAM_JSON`, the path of a JSON file listing every node's
//! folder, files and metrics file. `<NAME>` is the node id in capitals
//! with every character other than a letter or digit turned into `_`
//! (`parameter_discovery` → `ADMF_UPSTREAM_PARAMETER_DISCOVERY`,
//! `sweep[3]` → `ADMF_UPSTREAM_SWEEP_3_`).
//!
//! The folders are made for the one execution in a temp dir and removed
//! after it; their paths differ from run to run and enter no key (a key
//! rests on the upstream outputs' digests, which are what the files hold).
//! A file is a hard link to the stored blob where the blob is a file (as
//! in `admf show`'s folders), otherwise a copy.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::Upstream;

/// `ADMF_UPSTREAM_<NAME>` for node `id`.
pub fn var_name(id: &str) -> String {
    let tail: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("ADMF_UPSTREAM_{tail}")
}

/// The upstream folders of one execution; removed when dropped.
pub struct UpstreamFolders {
    _dir: tempfile::TempDir,
    /// (variable, value) pairs to set, `ADMF_UPSTREAM_JSON` last.
    pub env: Vec<(String, String)>,
}

/// Lays `upstream` out as folders and returns the variables naming them.
/// A file that cannot be read (its blob is corrupt) is left out and said
/// so in `log`: the command fails only if it reads that file.
pub fn prepare(
    upstream: &[Upstream],
    log: &mut dyn std::io::Write,
) -> std::io::Result<UpstreamFolders> {
    let dir = tempfile::Builder::new().prefix("admf-upstream").tempdir()?;
    let mut env = Vec::new();
    let mut nodes = Map::new();
    for (i, up) in upstream.iter().enumerate() {
        // A numbered folder: two node ids may share a variable name.
        let folder = dir.path().join(i.to_string());
        std::fs::create_dir_all(&folder)?;
        let mut files = Map::new();
        for name in up.names() {
            let to = folder.join(&name);
            match place(up, &name, &to) {
                Ok(()) => {
                    files.insert(name, json!(to));
                }
                Err(e) => writeln!(
                    log,
                    "admf: {} is left out of ${}: {e}",
                    up.describe(&name),
                    var_name(&up.node)
                )?,
            }
        }
        let metrics = files.get("metrics.json").cloned().unwrap_or(Value::Null);
        let var = var_name(&up.node);
        env.push((var.clone(), folder.to_string_lossy().into_owned()));
        nodes.insert(
            up.node.clone(),
            json!({"dir": folder, "env": var, "mode": up.mode, "files": files, "metrics": metrics}),
        );
    }
    let listing = dir.path().join("upstream.json");
    let mut text = serde_json::to_vec_pretty(&json!({"nodes": nodes}))?;
    text.push(b'\n');
    std::fs::write(&listing, text)?;
    env.push((
        "ADMF_UPSTREAM_JSON".into(),
        listing.to_string_lossy().into_owned(),
    ));
    Ok(UpstreamFolders { _dir: dir, env })
}

fn place(up: &Upstream, name: &str, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if let Some(file) = up.existing_file(name)
        && std::fs::hard_link(&file, to).is_ok()
    {
        return Ok(());
    }
    std::fs::write(to, up.read(name)?)
}

/// The folder `prepare` made for node `id`, from its variables.
pub fn folder_of(folders: &UpstreamFolders, id: &str) -> Option<PathBuf> {
    let var = var_name(id);
    folders
        .env
        .iter()
        .find(|(k, _)| *k == var)
        .map(|(_, v)| PathBuf::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::Role;

    #[test]
    fn names_are_shell_safe() {
        assert_eq!(
            var_name("parameter_discovery"),
            "ADMF_UPSTREAM_PARAMETER_DISCOVERY"
        );
        assert_eq!(var_name("sweep[3]"), "ADMF_UPSTREAM_SWEEP_3_");
        assert_eq!(var_name("outer/inner-x"), "ADMF_UPSTREAM_OUTER_INNER_X");
    }

    #[test]
    fn folders_hold_every_file_and_the_listing_names_them() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("signals")).unwrap();
        std::fs::write(src.path().join("metrics.json"), "{\"sharpe\": 1}").unwrap();
        std::fs::write(src.path().join("signals/trial_0.jsonl"), "x").unwrap();
        let up = Upstream::from_dir(
            "sweep".into(),
            "signal_generation".into(),
            Role::Single,
            src.path().into(),
        );
        let folders = prepare(&[up], &mut std::io::sink()).unwrap();
        let dir = folder_of(&folders, "sweep").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("signals/trial_0.jsonl")).unwrap(),
            "x"
        );
        let (k, listing) = folders.env.last().unwrap();
        assert_eq!(k, "ADMF_UPSTREAM_JSON");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(listing).unwrap()).unwrap();
        let node = &v["nodes"]["sweep"];
        assert_eq!(node["env"], "ADMF_UPSTREAM_SWEEP");
        assert_eq!(node["metrics"], json!(dir.join("metrics.json")));
        assert_eq!(
            node["files"]["signals/trial_0.jsonl"],
            json!(dir.join("signals/trial_0.jsonl"))
        );
        let kept = dir.clone();
        drop(folders);
        assert!(!kept.exists());
    }
}
