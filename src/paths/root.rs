//! The project root: where the default store lives (`<root>/cache`) and
//! the directory a workflow's reads are confined to.
//!
//! One rule for every command. Starting from a directory (the workflow
//! file's directory for commands that read a workflow, the current
//! directory for `admf cache ...`), the root is:
//!
//! 1. the nearest ancestor (the directory itself included) holding a
//!    `.admf` marker (a file or a directory) or `.git`;
//! 2. else the nearest ancestor holding a `cache/` directory (a store
//!    built there before);
//! 3. else the starting directory itself.
//!
//! The marker comes first so that a copy without `.git` (a release
//! tarball, a zip download) finds the same root as the checkout did, and
//! so that a stray `cache/` in a subdirectory cannot move the root of a
//! project that has a marker. `admf init` writes `.admf` when it finds no
//! marker. The shipped `workflows/*.yaml` read `../data/...`, which stays
//! inside the repository root.
//!
//! Include files (`workflow:`), `inputs:` and data paths (`data.path`,
//! `data.dir`) must resolve, symlinks followed, to a path inside the root.
//! A top-level `allow_outside: true` in the root workflow file lifts the
//! rule for everything it reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The top-level key that lifts the confinement.
pub const ALLOW_OUTSIDE: &str = "allow_outside";

/// The file (or directory) that marks a project root.
pub const MARKER: &str = ".admf";

/// Why a directory was chosen as the project root.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reason {
    /// It holds this marker (`.admf` or `.git`).
    Marker(String),
    /// No marker above; it holds a `cache/` directory.
    Store,
    /// Nothing above marks a root: the starting directory.
    Start,
}

/// A project root and why it was chosen.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProjectRoot {
    pub dir: PathBuf,
    pub reason: Reason,
}

impl ProjectRoot {
    /// The root found from directory `start` (see the module docs).
    pub fn find(start: &Path) -> ProjectRoot {
        let start = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
        if let Some((dir, marker)) = start.ancestors().find_map(|d| {
            [MARKER, ".git"]
                .into_iter()
                .find(|m| d.join(m).exists())
                .map(|m| (d, m))
        }) {
            return ProjectRoot {
                dir: dir.to_path_buf(),
                reason: Reason::Marker(marker.to_string()),
            };
        }
        if let Some(dir) = start.ancestors().find(|d| d.join("cache").is_dir()) {
            return ProjectRoot {
                dir: dir.to_path_buf(),
                reason: Reason::Store,
            };
        }
        ProjectRoot {
            dir: start,
            reason: Reason::Start,
        }
    }

    /// The root of the project `workflow` belongs to.
    pub fn of_workflow(workflow: &Path) -> ProjectRoot {
        let abs = std::path::absolute(workflow).unwrap_or_else(|_| workflow.to_path_buf());
        ProjectRoot::find(abs.parent().unwrap_or(Path::new("/")))
    }

    /// The default store: `cache/` in the root.
    pub fn store(&self) -> PathBuf {
        self.dir.join("cache")
    }

    /// "`/p` (it holds `.git`)": the root and why, for messages.
    pub fn describe(&self) -> String {
        let why = match &self.reason {
            Reason::Marker(m) => format!("it holds `{m}`"),
            Reason::Store => {
                format!("it holds a `cache/` store and no ancestor holds `{MARKER}` or `.git`")
            }
            Reason::Start => format!(
                "no ancestor holds `{MARKER}`, `.git` or `cache/`, so the starting directory is the root"
            ),
        };
        format!("{} ({why})", self.dir.display())
    }
}

/// The project root directory of `workflow` (see the module docs).
pub fn project_root(workflow: &Path) -> PathBuf {
    ProjectRoot::of_workflow(workflow).dir
}

/// Where reads are confined: the canonical project root, or `None` when
/// `allow_outside` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Confinement {
    pub root: Option<PathBuf>,
    /// The root as found, with the reason it was chosen, for messages.
    pub found: Option<ProjectRoot>,
}

/// The root a path fell outside of; `display()` names it and why it is
/// the root.
#[derive(Debug)]
pub struct Outside<'a>(&'a Confinement);

impl Outside<'_> {
    pub fn display(&self) -> String {
        match &self.0.found {
            Some(found) => found.describe(),
            None => self
                .0
                .root
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
                .to_string(),
        }
    }
}

impl Confinement {
    pub fn new(workflow: &Path, allow_outside: bool) -> Self {
        let found = ProjectRoot::of_workflow(workflow);
        let root = std::fs::canonicalize(&found.dir).unwrap_or_else(|_| found.dir.clone());
        Confinement {
            root: (!allow_outside).then_some(root),
            found: Some(found),
        }
    }

    /// `Err` naming the root when `path` exists and resolves outside it. A
    /// missing path passes: its own "not found" error is clearer.
    pub fn check(&self, path: &Path) -> Result<(), Outside<'_>> {
        self.check_with(path, &mut HashMap::new())
    }

    /// [`Confinement::check`] remembering resolved directories in `dirs`,
    /// so many inputs in one directory cost one `canonicalize`.
    pub fn check_with(
        &self,
        path: &Path,
        dirs: &mut HashMap<PathBuf, Option<PathBuf>>,
    ) -> Result<(), Outside<'_>> {
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
            Some(real) if !real.starts_with(root) => Err(Outside(self)),
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

    #[test]
    fn a_marker_beats_a_nearer_store_and_a_store_beats_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        std::fs::create_dir_all(base.join("workflows/cache")).unwrap();
        // No marker anywhere: the stray store wins over the start.
        let found = ProjectRoot::find(&base.join("workflows"));
        assert_eq!(found.reason, Reason::Store);
        assert_eq!(found.dir, base.join("workflows"));
        // A marker above makes the stray store irrelevant.
        std::fs::write(base.join(MARKER), "").unwrap();
        let found = ProjectRoot::find(&base.join("workflows"));
        assert_eq!(found.dir, base);
        assert_eq!(found.reason, Reason::Marker(MARKER.into()));
        assert!(
            found.describe().contains("it holds `.admf`"),
            "{}",
            found.describe()
        );
        assert_eq!(
            ProjectRoot::of_workflow(&base.join("workflows/w.yaml")).store(),
            base.join("cache")
        );
        // The nearest marker of either kind wins.
        std::fs::create_dir_all(base.join("workflows/sub/.git")).unwrap();
        let found = ProjectRoot::find(&base.join("workflows/sub"));
        assert_eq!(found.reason, Reason::Marker(".git".into()));
        assert_eq!(found.dir, base.join("workflows/sub"));
    }

    #[test]
    fn without_anything_the_start_is_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let found = ProjectRoot::find(dir.path());
        assert_eq!(
            (found.dir.as_path(), &found.reason),
            (dir.path(), &Reason::Start)
        );
        assert!(found.describe().contains("no ancestor holds"));
    }
}
