//! Path globs as workflows write them (`on: data_available:`): relative to
//! the declaring file's directory, `*` and `?` never crossing a `/`, `**`
//! crossing any number. The pattern's leading components without glob
//! characters name the directory every match lies under, which is what a
//! walk or a file watcher needs.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use crate::graph::normalize;

/// Whether a path pattern has glob characters.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

#[derive(Clone, Debug)]
pub struct PathGlob {
    /// The pattern as written.
    pub pattern: String,
    /// The directory the pattern is relative to (absolute, normalised).
    base: PathBuf,
    /// The pattern's literal leading part, joined to `base` and normalised.
    dir: PathBuf,
    /// Whether matches can lie deeper than directly in `dir`.
    deep: bool,
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
        let dir: PathBuf = components[..literal].iter().collect();
        let base = normalize(base);
        Ok(PathGlob {
            pattern: pattern.to_string(),
            dir: normalize(&base.join(dir)),
            deep: components.len() - literal > 1 || trimmed.contains("**"),
            base,
            matcher,
        })
    }

    /// The directory below which every match lies.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether matches can lie in subdirectories of [`PathGlob::dir`].
    pub fn deep(&self) -> bool {
        self.deep
    }

    /// Whether the absolute, normalised `path` matches.
    pub fn is_match(&self, path: &Path) -> bool {
        if !path.starts_with(&self.dir) {
            return false;
        }
        match path.strip_prefix(&self.base) {
            Ok(rel) => self.matcher.is_match(rel),
            Err(_) => self
                .matcher
                .is_match(crate::key::relative_to(path, &self.base)),
        }
    }

    /// Every file that matches now, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let depth = if self.deep { usize::MAX } else { 1 };
        let mut found: Vec<PathBuf> = walkdir::WalkDir::new(&self.dir)
            .min_depth(1)
            .max_depth(depth)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file() && self.is_match(e.path()))
            .map(|e| e.into_path())
            .collect();
        found.sort();
        found
    }
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
        assert_eq!(g.files(), [base.join("in/a.csv"), base.join("in/b.csv")]);
        let deep = PathGlob::new("in/**/*.csv", &base).unwrap();
        assert_eq!(deep.files().len(), 3);
    }
}
