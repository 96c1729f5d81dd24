//! Path globs as workflows write them (`inputs:`, `on: data_available:`):
//! relative to the declaring file's directory, `*` and `?` never crossing a `/`, `**`
//! crossing any number. The pattern's leading components without glob
//! characters name the directory every match lies under, which is what a
//! walk or a file watcher needs.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use super::normalize;
use crate::reads::Reads;

/// Whether a path pattern has glob characters.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

#[derive(Clone, Debug)]
pub struct PathGlob {
    /// The pattern as written.
    pub pattern: String,
    /// The directory the pattern is relative to.
    base: PathBuf,
    /// The pattern's leading components without glob characters.
    literal: PathBuf,
    /// How many components below the literal part a match lies; `None`
    /// for any number (`**`).
    depth: Option<usize>,
    matcher: GlobMatcher,
}

impl PathGlob {
    /// `pattern` relative to `base`; the error is the glob parser's.
    pub fn new(pattern: &str, base: &Path) -> Result<PathGlob, String> {
        let trimmed = pattern.trim_start_matches("./");
        let matcher = GlobBuilder::new(trimmed)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("bad glob: {}", e.kind()))?
            .compile_matcher();
        let components: Vec<_> = Path::new(trimmed).components().collect();
        let literal = components
            .iter()
            .take_while(|c| !is_glob(&c.as_os_str().to_string_lossy()))
            .count();
        // A pattern without glob characters names one file: its directory.
        let literal = literal.min(components.len().saturating_sub(1));
        Ok(PathGlob {
            pattern: pattern.to_string(),
            base: base.to_path_buf(),
            literal: components[..literal].iter().collect(),
            depth: (!trimmed.contains("**")).then_some(components.len() - literal),
            matcher,
        })
    }

    /// The directory below which every match lies (absolute, normalised).
    pub fn dir(&self) -> PathBuf {
        normalize(&std::path::absolute(self.base.join(&self.literal)).unwrap_or_default())
    }

    /// Whether matches can lie in subdirectories of [`PathGlob::dir`].
    pub fn deep(&self) -> bool {
        self.depth != Some(1)
    }

    /// Whether a match can lie below the directory `dir`, which lies
    /// below [`PathGlob::dir`]: it is not deeper than matches reach.
    pub fn may_match_below(&self, dir: &Path) -> bool {
        let below = dir
            .strip_prefix(self.dir())
            .map_or(0, |rel| rel.components().count());
        self.depth.is_none_or(|depth| depth > below)
    }

    /// Whether the absolute, normalised `path` matches.
    pub fn is_match(&self, path: &Path) -> bool {
        let base = normalize(&std::path::absolute(&self.base).unwrap_or_default());
        match path.strip_prefix(&base) {
            Ok(rel) => self.matcher.is_match(rel),
            Err(_) => self.matcher.is_match(super::relative_to(path, &base)),
        }
    }

    /// Every file that matches now, sorted, as `base` joined to its path
    /// relative to `base`. Walks only below the literal part, noting each
    /// directory in `reads` before listing it.
    pub fn files(&self, reads: &Reads) -> Vec<PathBuf> {
        let depth = self.depth.unwrap_or(usize::MAX);
        let mut found: Vec<PathBuf> = walkdir::WalkDir::new(self.base.join(&self.literal))
            .max_depth(depth)
            .sort_by_file_name()
            .into_iter()
            // A store below the pattern's directory (`cache/` under a
            // `**/*` at the root) is admf's, never an input: hashing it
            // would change with every build.
            .filter_entry(|e| !(e.file_type().is_dir() && is_store(e.path())))
            .filter_map(Result::ok)
            .filter(|e| {
                if e.file_type().is_dir() && e.depth() < depth {
                    reads.note_dir(e.path());
                }
                e.file_type().is_file()
            })
            .filter_map(|e| {
                let rel = e.path().strip_prefix(&self.base).ok()?;
                self.matcher.is_match(rel).then(|| self.base.join(rel))
            })
            .collect();
        found.sort();
        found
    }
}

/// Whether `dir` is the root of an admf store: it holds the store's
/// `gc.lock` and `index/`.
fn is_store(dir: &Path) -> bool {
    dir.join("gc.lock").is_file() && dir.join("index").is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str) -> PathGlob {
        PathGlob::new(pattern, Path::new("/p/wf")).unwrap()
    }

    #[test]
    fn the_literal_prefix_is_the_directory() {
        assert_eq!(
            glob("data/incoming/*.csv").dir(),
            Path::new("/p/wf/data/incoming")
        );
        assert!(!glob("data/incoming/*.csv").deep());
        assert_eq!(glob("../data/*.csv").dir(), Path::new("/p/data"));
        assert_eq!(glob("./in/a.txt").dir(), Path::new("/p/wf/in"));
        assert!(glob("data/**/*.csv").deep());
        assert!(glob("data/*/x.csv").deep());
        assert_eq!(glob("*.csv").dir(), Path::new("/p/wf"));
    }

    #[test]
    fn matches_relative_to_the_base_and_through_dot_dot() {
        let g = glob("data/incoming/*.csv");
        assert!(g.is_match(Path::new("/p/wf/data/incoming/SPY.csv")));
        assert!(!g.is_match(Path::new("/p/wf/data/incoming/notes.txt")));
        assert!(!g.is_match(Path::new("/p/wf/data/incoming/sub/SPY.csv")));
        assert!(!g.is_match(Path::new("/p/wf/data/SPY.csv")));
        let up = glob("../data/*.csv");
        assert!(up.is_match(Path::new("/p/data/SPY.csv")));
        assert!(!up.is_match(Path::new("/p/wf/data/SPY.csv")));
        let deep = glob("data/**/*.csv");
        assert!(deep.is_match(Path::new("/p/wf/data/a/b/SPY.csv")));
        assert!(glob("./in/a.txt").is_match(Path::new("/p/wf/in/a.txt")));
    }

    #[test]
    fn matches_reach_below_a_directory_only_as_deep_as_the_pattern() {
        let out = Path::new("/p/wf/out/chunks");
        assert!(glob("out/*/*.csv").may_match_below(out));
        assert!(glob("out/**/*.csv").may_match_below(out));
        assert!(!glob("out/*.csv").may_match_below(out));
        assert!(!glob("out/*/*.csv").may_match_below(Path::new("/p/wf/out/a/b")));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(PathGlob::new("data/[.csv", Path::new("/p")).is_err());
    }

    #[test]
    fn files_lists_current_matches() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::path::absolute(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("in/sub")).unwrap();
        for f in ["in/b.csv", "in/a.csv", "in/x.txt", "in/sub/c.csv"] {
            std::fs::write(base.join(f), "x").unwrap();
        }
        let g = PathGlob::new("in/*.csv", &base).unwrap();
        assert_eq!(
            g.files(&Reads::new()),
            [base.join("in/a.csv"), base.join("in/b.csv")]
        );
        let deep = PathGlob::new("in/**/*.csv", &base).unwrap();
        assert_eq!(deep.files(&Reads::new()).len(), 3);
        let reads = Reads::new();
        g.files(&reads);
        let listed: Vec<PathBuf> = reads.snapshot().into_iter().map(|(d, _)| d).collect();
        assert_eq!(listed, [base.join("in")]);
    }
}
