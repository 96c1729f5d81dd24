//! Refs: `refs/<workflow-id>/<node>` names the key of a node's last
//! successful build. They give stable human paths, `explain`'s "previous
//! build", and the roots that `gc` keeps.
//!
//! Node ids contain `/` and `[N]`; both names are escaped by
//! [`escape_name`] into one flat file name. A ref file holds a key and a
//! newline; it is replaced by writing a temp file `~tmp.<pid>.<nonce>` in
//! the same directory and renaming it (`~` never occurs in an escaped name).

use std::fs;
use std::io;
use std::path::PathBuf;

use super::fsutil::{fsync_dir, unique_suffix, write_synced};
use super::{Store, check_key, is_valid_key};

/// The longest escaped name accepted (a common file-name limit).
const MAX_NAME: usize = 255;

/// One ref: which node of which workflow last built which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefRecord {
    /// The workflow id (unescaped).
    pub workflow_id: String,
    /// The node id (unescaped).
    pub node: String,
    /// The key the ref points at.
    pub key: String,
}

/// Escapes a name into a single flat file name, reversibly: every byte
/// outside `[A-Za-z0-9._=-]` becomes `%XX` (uppercase hex), and a name made
/// only of dots (`.`, `..`) has its dots escaped too. The empty name
/// escapes to the empty string, which no caller may use as a file name.
pub fn escape_name(name: &str) -> String {
    let all_dots = !name.is_empty() && name.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        let plain = matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'=' | b'-')
            || (b == b'.' && !all_dots);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reverses [`escape_name`]; `None` for a malformed escape or non-UTF-8.
pub fn unescape_name(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = escaped.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn flat_name(what: &str, name: &str) -> io::Result<String> {
    let escaped = escape_name(name);
    if escaped.is_empty() || escaped.len() > MAX_NAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {name:?} is empty or too long for a ref file name"),
        ));
    }
    Ok(escaped)
}

impl Store {
    /// The path of a ref file, `refs/<escaped workflow-id>/<escaped node>`.
    pub fn ref_path(&self, workflow_id: &str, node: &str) -> io::Result<PathBuf> {
        Ok(self
            .refs_dir()
            .join(flat_name("workflow id", workflow_id)?)
            .join(flat_name("node id", node)?))
    }

    /// The key a ref points at; `None` when there is no ref or it does not
    /// hold a key.
    pub fn read_ref(&self, workflow_id: &str, node: &str) -> Option<String> {
        let text = fs::read_to_string(self.ref_path(workflow_id, node).ok()?).ok()?;
        let key = text.trim_end();
        is_valid_key(key).then(|| key.to_string())
    }

    /// Points a ref at `key`, atomically (temp file + rename).
    pub fn write_ref(&self, workflow_id: &str, node: &str, key: &str) -> io::Result<()> {
        check_key(key)?;
        let path = self.ref_path(workflow_id, node)?;
        let dir = path.parent().expect("ref has a parent dir");
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("~tmp.{}", unique_suffix()));
        let result = write_synced(&tmp, format!("{key}\n").as_bytes())
            .and_then(|()| fs::rename(&tmp, &path))
            .and_then(|()| fsync_dir(dir));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Every readable ref, sorted by workflow id then node. Files that are
    /// not refs (temp files, bad names, contents that are not a key) are
    /// skipped.
    pub fn refs(&self) -> io::Result<Vec<RefRecord>> {
        let mut refs = Vec::new();
        for wf in read_dir_or_empty(&self.refs_dir())? {
            let wf = wf?;
            if !wf.file_type()?.is_dir() {
                continue;
            }
            let Some(workflow_id) = wf.file_name().to_str().and_then(unescape_name) else {
                continue;
            };
            for node in fs::read_dir(wf.path())? {
                let node = node?;
                let name = node.file_name();
                let Some(name) = name.to_str().filter(|n| !n.contains('~')) else {
                    continue;
                };
                let Some(node_id) = unescape_name(name) else {
                    continue;
                };
                let Ok(text) = fs::read_to_string(node.path()) else {
                    continue;
                };
                let key = text.trim_end();
                if is_valid_key(key) {
                    refs.push(RefRecord {
                        workflow_id: workflow_id.clone(),
                        node: node_id,
                        key: key.to_string(),
                    });
                }
            }
        }
        refs.sort_by(|a, b| (&a.workflow_id, &a.node).cmp(&(&b.workflow_id, &b.node)));
        Ok(refs)
    }

    /// Every key any file under `refs/` names, including half-written temp
    /// refs: gc keeps all of them, erring on the side of keeping.
    pub(crate) fn referenced_keys(&self) -> io::Result<std::collections::BTreeSet<String>> {
        let mut keys = std::collections::BTreeSet::new();
        if !self.refs_dir().exists() {
            return Ok(keys);
        }
        for item in walkdir::WalkDir::new(self.refs_dir())
            .min_depth(2)
            .max_depth(2)
        {
            let item = item.map_err(io::Error::from)?;
            if !item.file_type().is_file() {
                continue;
            }
            if let Ok(text) = fs::read_to_string(item.path()) {
                let key = text.trim_end();
                if is_valid_key(key) {
                    keys.insert(key.to_string());
                }
            }
        }
        Ok(keys)
    }
}

fn read_dir_or_empty(dir: &std::path::Path) -> io::Result<Vec<io::Result<fs::DirEntry>>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(rd.collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_namespaces_and_trials() {
        assert_eq!(escape_name("outer/inner[3]"), "outer%2Finner%5B3%5D");
        assert_eq!(escape_name("a b%"), "a%20b%25");
        assert_eq!(escape_name("lookback=10_x-y.z"), "lookback=10_x-y.z");
        assert_eq!(escape_name(".."), "%2E%2E");
        assert_eq!(escape_name("."), "%2E");
        assert_eq!(unescape_name("%2"), None);
        assert_eq!(unescape_name("%zz"), None);
    }

    proptest! {
        #[test]
        fn escape_round_trips(name in any::<String>()) {
            let escaped = escape_name(&name);
            prop_assert!(escaped.bytes().all(|b| b.is_ascii_alphanumeric() || b"._=-%".contains(&b)));
            prop_assert!(!escaped.contains('/'));
            prop_assert!(escaped != "." && escaped != "..");
            prop_assert_eq!(unescape_name(&escaped), Some(name));
        }

        #[test]
        fn node_like_ids_round_trip(name in "[a-z_]{1,8}(/[a-z_]{1,8}){0,3}(\\[[0-9]{1,3}\\])?") {
            prop_assert_eq!(unescape_name(&escape_name(&name)), Some(name));
        }
    }
}
