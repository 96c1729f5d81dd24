//! The workflow root: the directory a workflow's reads are confined to.
//!
//! It is the project root of the root workflow file: the nearest ancestor
//! of its directory holding `.git` or a `cache/` directory, else that
//! directory itself (the same directory whose `cache/` is the default
//! store). The shipped `workflows/*.yaml` read `../data/...`, which stays
//! inside the repository, so they need nothing special.
//!
//! Include files (`workflow:`), `inputs:` and data paths (`data.path`,
//! `data.dir`) must resolve, symlinks followed, to a path inside the root.
//! A top-level `allow_outside: true` in the root workflow file lifts the
//! rule for everything it reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The top-level key that lifts the confinement.
pub const ALLOW_OUTSIDE: &str = "allow_outside";

/// The project root of `workflow` (see the module docs).
pub fn project_root(workflow: &Path) -> PathBuf {
    let dir = std::path::absolute(workflow)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    dir.ancestors()
        .find(|d| d.join(".git").exists() || d.join("cache").is_dir())
        .unwrap_or(&dir)
        .to_path_buf()
}

/// Where reads are confined: the canonical project root, or `None` when
/// `allow_outside` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Confinement {
    pub root: Option<PathBuf>,
}

impl Confinement {
    pub fn new(workflow: &Path, allow_outside: bool) -> Self {
        let root = project_root(workflow);
        Confinement {
            root: (!allow_outside).then(|| std::fs::canonicalize(&root).unwrap_or(root)),
        }
    }

    /// `Err(root)` when `path` exists and resolves outside the root. A
    /// missing path passes: its own "not found" error is clearer.
    pub fn check(&self, path: &Path) -> Result<(), &Path> {
        self.check_with(path, &mut HashMap::new())
    }

    /// [`Confinement::check`] remembering resolved directories in `dirs`,
    /// so many inputs in one directory cost one `canonicalize`.
    pub fn check_with(
        &self,
        path: &Path,
        dirs: &mut HashMap<PathBuf, Option<PathBuf>>,
    ) -> Result<(), &Path> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let plain = std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_symlink());
        let real = match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) if plain => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                dirs.entry(parent.to_path_buf())
                    .or_insert_with(|| std::fs::canonicalize(parent).ok())
                    .as_ref()
                    .map(|d| d.join(name))
            }
            _ => std::fs::canonicalize(path).ok(),
        };
        match real {
            Some(real) if !real.starts_with(root) => Err(root),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_out_through_dots_or_symlinks_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::create_dir(dir.path().join("wf")).unwrap();
        std::fs::write(dir.path().join("in.csv"), "x").unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let wf = dir.path().join("wf/w.yaml");
        let c = Confinement::new(&wf, false);
        assert!(c.check(&dir.path().join("wf/../in.csv")).is_ok());
        assert!(c.check(&dir.path().join("link/secret")).is_err());
        assert!(c.check(&outside.path().join("secret")).is_err());
        assert!(c.check(&dir.path().join("absent")).is_ok());
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("s")).unwrap();
        assert!(c.check(&dir.path().join("s")).is_err());
        let open = Confinement::new(&wf, true);
        assert!(open.check(&dir.path().join("link/secret")).is_ok());
    }
}
