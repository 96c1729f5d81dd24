//! The surface forms of a workflow file (docs/design.md §2) and how each is read
//! into [`RawPhase`]s: simple (data + strategy), multi-phase (list of
//! single-key maps), named list (`name:` + `mode:`/`type:`), composite
//! (`workflow:` includes), optionally under one wrapper key.

use serde_yaml::{Mapping, Value};

use super::yaml::Document;
use crate::error::{Error, did_you_mean};

/// Keys allowed at the top of a workflow file. `data`, `strategy`,
/// `costs`, `execution` and `split` are inherited by every phase that uses
/// them.
pub const TOP_KEYS: &[&str] = &[
    "phases",
    "data",
    "strategy",
    "costs",
    "execution",
    "split",
    "name",
    "description",
    "on",
    "allow_outside",
    "executor",
    "results",
    "pass_env",
];
pub const INHERITED_KEYS: &[&str] = &[
    "data",
    "strategy",
    "costs",
    "execution",
    "split",
    "pass_env",
];
/// Keys of a phase that steer the engine rather than configure the mode.
pub const PHASE_KEYS: &[&str] = &[
    "name",
    "mode",
    "type",
    "depends_on",
    "when",
    "workflow",
    "retries",
    "description",
    "foreach",
    "matrix",
    "params",
    "threads",
    "resources",
];

/// One phase as written, before names are qualified and deps resolved.
#[derive(Debug, Clone)]
pub struct RawPhase {
    pub name: String,
    /// YAML path of the phase's own mapping, for locating its keys.
    pub path: String,
    /// YAML path of the phase's name (the `name:` value or the single key).
    pub name_path: String,
    pub fields: Mapping,
}

/// The top-level mapping of a file and the YAML path prefix it sits under.
pub struct TopLevel<'a> {
    pub map: &'a Mapping,
    pub prefix: String,
}

fn wrapper_key(map: &Mapping) -> Option<&Value> {
    if map.len() != 1 {
        return None;
    }
    let (k, v) = map.iter().next()?;
    let k = k.as_str()?;
    let wrapped =
        !TOP_KEYS.contains(&k) && v.as_mapping().is_some_and(|m| m.contains_key("phases"));
    wrapped.then_some(v)
}

pub fn top_level(doc: &Document) -> Result<TopLevel<'_>, Error> {
    let map = match &doc.value {
        Value::Mapping(m) => m,
        Value::Null => {
            return Err(
                Error::invalid(doc.locate(""), "workflow", "the file is empty")
                    .with_hint(Some("start with `phases:` or `strategy:`".into())),
            );
        }
        _ => {
            return Err(Error::invalid(
                doc.locate(""),
                "workflow",
                "a workflow must be a mapping with `phases:` or `strategy:`",
            ));
        }
    };
    if let Some(Value::Mapping(inner)) = wrapper_key(map) {
        let key = map
            .keys()
            .next()
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Ok(TopLevel {
            map: inner,
            prefix: format!("{key}."),
        });
    }
    Ok(TopLevel {
        map,
        prefix: String::new(),
    })
}

/// Mutable access to the (possibly wrapped) top-level mapping.
pub fn unwrap_top_mut(root: &mut Value) -> Option<&mut Mapping> {
    let map = root.as_mapping_mut()?;
    if wrapper_key(map).is_some() {
        return map.values_mut().next()?.as_mapping_mut();
    }
    Some(map)
}

/// Names of the phases of a top-level mapping, in either list form.
pub fn phase_names(top: &Mapping) -> Vec<String> {
    let Some(Value::Sequence(items)) = top.get("phases") else {
        return Vec::new();
    };
    items.iter().filter_map(item_name).collect()
}

fn item_name(item: &Value) -> Option<String> {
    let map = item.as_mapping()?;
    if let Some(name) = map.get("name") {
        return name.as_str().map(str::to_string);
    }
    if map.len() == 1 {
        return map.keys().next()?.as_str().map(str::to_string);
    }
    None
}

/// The mapping holding a phase's own keys, whichever form it was written in.
pub fn phase_map_mut<'a>(top: &'a mut Mapping, name: &str) -> Option<&'a mut Mapping> {
    let Some(Value::Sequence(items)) = top.get_mut("phases") else {
        return None;
    };
    let item = items
        .iter_mut()
        .find(|i| item_name(i).as_deref() == Some(name))?;
    let map = item.as_mapping_mut()?;
    if map.contains_key("name") {
        return Some(map);
    }
    let inner = map.values_mut().next()?;
    if inner.is_null() {
        *inner = Value::Mapping(Mapping::new());
    }
    inner.as_mapping_mut()
}

/// Read the phases of a file in declaration order. A file with no
/// `phases:` but a `strategy:` is the simple form: one `backtest` phase.
pub fn raw_phases(doc: &Document, top: &TopLevel<'_>) -> Result<Vec<RawPhase>, Error> {
    for key in top.map.keys() {
        let name = key.as_str().unwrap_or("?");
        if !TOP_KEYS.contains(&name) {
            return Err(Error::invalid(
                doc.locate(&format!("{}{name}", top.prefix)),
                name,
                "unknown top-level key",
            )
            .with_hint(did_you_mean(name, TOP_KEYS.iter().copied())));
        }
    }
    let phases_path = format!("{}phases", top.prefix);
    match top.map.get("phases") {
        None if top.map.contains_key("strategy") => {
            let mut fields = Mapping::new();
            fields.insert("mode".into(), "backtest".into());
            Ok(vec![RawPhase {
                name: "backtest".to_string(),
                path: top.prefix.trim_end_matches('.').to_string(),
                name_path: format!("{}strategy", top.prefix),
                fields,
            }])
        }
        None => Err(Error::invalid(
            doc.locate(top.prefix.trim_end_matches('.')),
            "phases",
            "the workflow has neither `phases:` nor `strategy:`",
        )),
        Some(Value::Sequence(items)) if items.is_empty() => Err(Error::invalid(
            doc.locate(&phases_path),
            "phases",
            "the list of phases is empty",
        )),
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| raw_phase(doc, &format!("{phases_path}[{i}]"), item))
            .collect(),
        Some(_) => Err(Error::invalid(
            doc.locate(&phases_path),
            "phases",
            "`phases:` must be a list",
        )),
    }
}

fn raw_phase(doc: &Document, path: &str, item: &Value) -> Result<RawPhase, Error> {
    let shape_error = || {
        Error::invalid(
            doc.locate(path),
            "phases",
            "a phase is `{name: x, mode: ...}` or `x: {mode: ...}`",
        )
    };
    let map = item.as_mapping().ok_or_else(shape_error)?;
    if let Some(name) = map.get("name") {
        let name = name.as_str().ok_or_else(|| {
            Error::invalid(
                doc.locate(&format!("{path}.name")),
                "name",
                "must be a string",
            )
        })?;
        return Ok(RawPhase {
            name: name.to_string(),
            path: path.to_string(),
            name_path: format!("{path}.name"),
            fields: map.clone(),
        });
    }
    if map.len() == 1 {
        let (k, v) = map.iter().next().ok_or_else(shape_error)?;
        let name = k.as_str().ok_or_else(shape_error)?;
        let fields = match v {
            Value::Mapping(m) => m.clone(),
            Value::Null => Mapping::new(),
            _ => return Err(shape_error()),
        };
        return Ok(RawPhase {
            name: name.to_string(),
            path: format!("{path}.{name}"),
            name_path: format!("{path}.{name}"),
            fields,
        });
    }
    Err(shape_error())
}

/// The longest phase name: a node's ref and its files are named after
/// it (with a namespace and a trial suffix), and file names stop at 255
/// bytes.
pub const MAX_NAME_LEN: usize = 128;

/// A phase or node name: letters, digits, `_` and `-`. `/`, `.` and `[`
/// are reserved for namespaces, metric paths and trials.
pub fn check_name(doc: &Document, phase: &RawPhase) -> Result<(), Error> {
    if phase.name.len() > MAX_NAME_LEN {
        return Err(Error::invalid(
            doc.locate(&phase.name_path),
            "name",
            format!(
                "a phase name of {} bytes is too long (at most {MAX_NAME_LEN})",
                phase.name.len()
            ),
        ));
    }
    let ok = !phase.name.is_empty()
        && phase
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            doc.locate(&phase.name_path),
            "name",
            format!(
                "`{}` is not a valid phase name (letters, digits, `_` and `-` only)",
                phase.name
            ),
        ))
    }
}
