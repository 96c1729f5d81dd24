//! Paths as admf compares and matches them: lexical normalisation,
//! paths relative to a workflow's directory, and the globs workflows write.
//! The ground floor: it knows nothing of workflows, graphs or keys.

pub mod glob;
pub mod root;

use std::path::{Component, Path, PathBuf};

pub use glob::{PathGlob, is_glob};

/// Lexical normalisation (`a/./b/../c` → `a/c`) so two spellings of one
/// output collide.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // `..` after `..` climbs further: popping it would turn
                // `a/../../../x` into `x`.
                let climbing = matches!(
                    out.components().next_back(),
                    None | Some(Component::ParentDir)
                );
                if climbing || !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `path` relative to `base`, lexically, with `/` separators: the same on
/// every machine and whatever the current directory.
pub fn relative_to(path: &Path, base: &Path) -> String {
    let abs = |p: &Path| {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().unwrap_or_default().join(p)
        };
        normalize(&joined)
    };
    let (path, base) = (abs(path), abs(base));
    let p: Vec<Component> = path.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
    parts.extend(
        p[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_keeps_every_climb_above_the_start() {
        for (raw, want) in [
            ("a/./b/../c", "a/c"),
            ("../x", "../x"),
            ("../../x.txt", "../../x.txt"),
            ("a/../../../x.txt", "../../x.txt"),
            ("a/b/../../c", "c"),
        ] {
            assert_eq!(normalize(Path::new(raw)), Path::new(want), "{raw}");
        }
    }
}
