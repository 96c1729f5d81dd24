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
