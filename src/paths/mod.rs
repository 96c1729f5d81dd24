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
    // Most paths are normal already (those made by joining normal
    // ones): copied whole rather than rebuilt component by component.
    if is_normal(path) {
        return path.to_path_buf();
    }
    normalize_components(path)
}

/// Whether [`normalize`] gives `path` back as it is: no `.` or `..`
/// component, no doubled separator, no trailing one.
fn is_normal(path: &Path) -> bool {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes == b"/" {
        return true;
    }
    !bytes.ends_with(b"/")
        && bytes
            .split(|&b| b == b'/')
            .enumerate()
            .all(|(i, part)| match part {
                // Only the root's empty part before the first separator.
                b"" => i == 0,
                b"." | b".." => false,
                _ => true,
            })
}

/// Whether `path` is `base` joined with `rel` (`rel` alone when `base`
/// is empty), compared component by component as `strip_prefix` does.
/// The bytes decide at once when they are exactly that and `rel` is a
/// plain relative path, as a node's declared outputs mostly are (a
/// command reading 10,000 upstream outputs asks this 10,000 times); any
/// other spelling is compared by components.
pub fn is_joined(path: &Path, base: &Path, rel: &str) -> bool {
    let (path_bytes, base_bytes) = (
        path.as_os_str().as_encoded_bytes(),
        base.as_os_str().as_encoded_bytes(),
    );
    let plain = !rel.is_empty() && !rel.starts_with('/') && is_normal(Path::new(rel));
    let exact = plain
        && if base_bytes.is_empty() {
            path_bytes == rel.as_bytes()
        } else {
            path_bytes.len() == base_bytes.len() + 1 + rel.len()
                && path_bytes.starts_with(base_bytes)
                && path_bytes[base_bytes.len()] == b'/'
                && path_bytes.ends_with(rel.as_bytes())
        };
    exact || is_joined_by_components(path, base, rel)
}

fn is_joined_by_components(path: &Path, base: &Path, rel: &str) -> bool {
    path.strip_prefix(base).ok() == Some(Path::new(rel))
}

fn normalize_components(path: &Path) -> PathBuf {
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

    proptest::proptest! {
        /// A path taken whole as normal normalises to itself component
        /// by component, and the shortcut never changes what comes out.
        #[test]
        fn the_shortcut_for_normal_paths_gives_what_the_components_give(
            parts in proptest::collection::vec(
                proptest::sample::select(vec!["a", "bc", ".", "..", "", "d.e", "..f"]),
                0..7,
            ),
            rooted in proptest::bool::ANY,
            trailing in proptest::bool::ANY,
        ) {
            let mut text = parts.join("/");
            if rooted {
                text.insert(0, '/');
            }
            if trailing {
                text.push('/');
            }
            let path = Path::new(&text);
            // As bytes: `PathBuf`'s own equality ignores doubled separators.
            proptest::prop_assert_eq!(
                normalize(path).into_os_string(),
                normalize_components(path).into_os_string()
            );
            if is_normal(path) {
                proptest::prop_assert_eq!(
                    normalize_components(path).into_os_string(),
                    path.as_os_str().to_owned()
                );
            }
        }
    }

    /// A path of parts from `parts`, rooted and with a trailing separator
    /// as asked.
    fn path_text(parts: &[&str], rooted: bool, trailing: bool) -> String {
        let mut text = parts.join("/");
        if rooted {
            text.insert(0, '/');
        }
        if trailing {
            text.push('/');
        }
        text
    }

    proptest::proptest! {
        /// The bytes' shortcut of `is_joined` answers what the components
        /// answer, for paths built as base + `/` + rel and for others.
        #[test]
        fn is_joined_answers_what_the_components_answer(
            base in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", ".", "..", ""]),
                0..4,
            ),
            rel in proptest::collection::vec(
                proptest::sample::select(vec!["a", "x", ".", "..", ""]),
                0..4,
            ),
            other in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "x", ".", ""]),
                0..6,
            ),
            flags in proptest::collection::vec(proptest::bool::ANY, 5),
        ) {
            let base = path_text(&base, flags[0], flags[1]);
            let rel = path_text(&rel, flags[2], flags[3]);
            let joined = if base.is_empty() { rel.clone() } else { format!("{base}/{rel}") };
            let other = path_text(&other, flags[4], false);
            for path in [joined.as_str(), other.as_str()] {
                let (path, base_path) = (Path::new(path), Path::new(&base));
                proptest::prop_assert_eq!(
                    is_joined(path, base_path, &rel),
                    is_joined_by_components(path, base_path, &rel),
                    "path {:?} base {:?} rel {:?}", path, base, rel
                );
            }
        }
    }

    #[test]
    fn is_joined_takes_the_plain_spelling_and_others_by_components() {
        assert!(is_joined(
            Path::new("out/n1.txt"),
            Path::new(""),
            "out/n1.txt"
        ));
        assert!(is_joined(
            Path::new("sub/out/n1.txt"),
            Path::new("sub"),
            "out/n1.txt"
        ));
        assert!(is_joined(
            Path::new("sub//out/n1.txt"),
            Path::new("sub"),
            "out/n1.txt"
        ));
        assert!(!is_joined(
            Path::new("sub/out/n1.txt"),
            Path::new("su"),
            "b/out/n1.txt"
        ));
        assert!(!is_joined(Path::new("sub/./x"), Path::new("sub"), "./x"));
    }

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
