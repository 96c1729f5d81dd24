//! Inherited `data`, `strategy` and `costs`: scoped lexically from the
//! outer file through an include phase to the inner file's top level,
//! the innermost value winning, each with the directory of the file that
//! wrote it (a mode's relative paths mean "relative to that file").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Map;

use super::forms::INHERITED_KEYS;
use super::json::to_json;
use super::yaml::Document;
use crate::error::{Error, Location};

/// Inherited config in scope, with where each key was written.
#[derive(Clone, Default)]
pub(super) struct Inherited {
    pub(super) values: Map<String, serde_json::Value>,
    pub(super) locations: BTreeMap<String, Location>,
    /// Directory of the file that declared each key: relative data paths
    /// mean "relative to the file that wrote them", wherever inherited.
    pub(super) dirs: BTreeMap<String, PathBuf>,
}

impl Inherited {
    pub(super) fn overlay(
        &mut self,
        doc: &Document,
        map: &serde_yaml::Mapping,
        prefix: &str,
    ) -> Result<(), Error> {
        for key in INHERITED_KEYS {
            if let Some(v) = map.get(*key) {
                let path = format!("{prefix}{key}");
                self.values.insert(key.to_string(), to_json(doc, &path, v)?);
                self.dirs.insert(key.to_string(), file_dir(doc));
                self.locations
                    .retain(|k, _| k != key && !k.starts_with(&format!("{key}.")));
                self.locations.insert(key.to_string(), doc.locate(&path));
                for (sub, loc) in doc.positions_under(&path) {
                    self.locations.insert(format!("{key}.{sub}"), loc);
                }
            }
        }
        Ok(())
    }
}

/// The absolute directory of a workflow file: paths joined to it never
/// need the current directory again.
pub(super) fn file_dir(doc: &Document) -> PathBuf {
    let parent = match doc.file().parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(parent)
        .map(|p| crate::paths::normalize(&p))
        .unwrap_or_else(|_| parent.to_path_buf())
}
