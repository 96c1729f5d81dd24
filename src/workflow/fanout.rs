//! Fan-out, templating, gathers and parameters from files: what turns one
//! written phase into the phases the compiler sees.
//!
//! - `foreach: [A, B]` (binding `{item}`), `foreach: {values: [...], as:
//!   name}`, `foreach: {glob: "books/*.txt", as: book}` (each matching
//!   file's stem, listed whenever the workflow is loaded) or `foreach:
//!   {file: samples.yaml, key: samples, as: sample}`; `matrix: {sample:
//!   [A, B], ref: [hg38]}` takes the product of its axes in declared order,
//!   the last fastest. Each binding becomes its own phase, named
//!   `phase[sample=A]` (`phase[sample=A,ref=hg38]`).
//! - In a phase with bindings or `params:`, every string is a template:
//!   `{name}` is replaced by the bound value, `{params.a.b}` by a value
//!   read from the params file; `{{` and `}}` are literal braces, `${...}`
//!   (shell) and braces around anything but a name are left alone. A name
//!   that is not bound is an error at the string's key.
//! - A list item `{expand: "mapped/{sample}.bam", over: map}` becomes one
//!   string per instance of the fan-out phase `map` of the same file (the
//!   gather, like Snakemake's `expand`); in a phase that is itself bound,
//!   only the instances agreeing on the names both bind.
//! - `params: {file: params.yaml, keys: [train.n_est]}` reads those values
//!   (with `--set params.train.n_est=V` overriding one for a build); a
//!   command phase gets each as `ADMF_PARAM_TRAIN_N_EST` in its `env:`, so
//!   exactly those values enter its key.
//!
//! Every file read here (a listed directory, a params file) is noted in
//! the build's [`Reads`], so the up-to-date record and the graph cache are
//! voided when it changes: a file dropped into `books/` is processed by
//! the next build.

use std::collections::BTreeMap;
use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::forms::RawPhase;
use super::yaml::{self, Document};
use crate::error::Error;
use crate::paths::PathGlob;
use crate::reads::Reads;

/// One instance's names and values, in declared order.
pub(super) type Binding = Vec<(String, String)>;

/// More instances than this from one phase is almost certainly a mistake.
pub const MAX_INSTANCES: usize = 100_000;

/// The name a `foreach:` list binds without `as:`.
pub const DEFAULT_NAME: &str = "item";

/// `--set params.K=V`: values replacing key `K` of every params file.
pub(super) type ParamOverrides = Vec<(String, serde_json::Value)>;

/// The bindings of a phase with `foreach:` or `matrix:`, or `None`.
pub(super) fn bindings(
    doc: &Document,
    raw: &RawPhase,
    base_dir: &Path,
    reads: &Reads,
) -> Result<Option<Vec<Binding>>, Error> {
    let f = &raw.fields;
    let at = |key: &str| doc.locate(&format!("{}.{key}", raw.path));
    match (f.get("foreach"), f.get("matrix")) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(Error::invalid(
            at("matrix"),
            "matrix",
            "give `foreach:` or `matrix:`, not both (a matrix takes the product of several lists)",
        )),
        (Some(spec), None) => {
            let (name, values) =
                foreach(doc, &format!("{}.foreach", raw.path), spec, base_dir, reads)?;
            Ok(Some(
                values
                    .into_iter()
                    .map(|v| vec![(name.clone(), v)])
                    .collect(),
            ))
        }
        (None, Some(spec)) => {
            let path = format!("{}.matrix", raw.path);
            let Some(map) = spec.as_mapping().filter(|m| !m.is_empty()) else {
                return Err(Error::invalid(
                    doc.locate(&path),
                    "matrix",
                    "must be a mapping of name → list of values, such as {sample: [A, B], ref: [hg38]}",
                ));
            };
            let mut out: Vec<Binding> = vec![Vec::new()];
            for (k, axis) in map {
                let name = k.as_str().unwrap_or("?").to_string();
                let axis_path = format!("{path}.{name}");
                check_binding_name(doc, &axis_path, "matrix", &name)?;
                let values = source(
                    doc,
                    &axis_path,
                    &format!("matrix.{name}"),
                    axis,
                    base_dir,
                    reads,
                )?;
                if out.len().saturating_mul(values.len()) > MAX_INSTANCES {
                    return Err(Error::invalid(
                        doc.locate(&path),
                        "matrix",
                        format!("the matrix has more than {MAX_INSTANCES} combinations"),
                    ));
                }
                let mut next = Vec::with_capacity(out.len() * values.len());
                for b in &out {
                    for v in &values {
                        let mut b = b.clone();
                        b.push((name.clone(), v.clone()));
                        next.push(b);
                    }
                }
                out = next;
            }
            Ok(Some(out))
        }
    }
}

/// `foreach:`: a list (binding `item`), or a mapping with `as:` and one
/// source (`values:`, `glob:`, or `file:` with `key:`).
fn foreach(
    doc: &Document,
    path: &str,
    spec: &Value,
    base_dir: &Path,
    reads: &Reads,
) -> Result<(String, Vec<String>), Error> {
    if spec.is_sequence() {
        let values = source(doc, path, "foreach", spec, base_dir, reads)?;
        return Ok((DEFAULT_NAME.to_string(), values));
    }
    let Some(map) = spec.as_mapping() else {
        return Err(Error::invalid(
            doc.locate(path),
            "foreach",
            "must be a list of values or a mapping with `values:`, `glob:` or `file:` (and `as:`)",
        ));
    };
    let name = match map.get("as") {
        None => DEFAULT_NAME.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(Error::invalid(
                doc.locate(&format!("{path}.as")),
                "foreach.as",
                "must be a name",
            ));
        }
    };
    check_binding_name(doc, &format!("{path}.as"), "foreach.as", &name)?;
    let mut rest = map.clone();
    rest.remove("as");
    Ok((
        name,
        source(doc, path, "foreach", &Value::Mapping(rest), base_dir, reads)?,
    ))
}

fn check_binding_name(doc: &Document, path: &str, key: &str, name: &str) -> Result<(), Error> {
    if is_identifier(name) && name != "params" {
        return Ok(());
    }
    Err(Error::invalid(
        doc.locate(path),
        key,
        format!(
            "`{name}` cannot be a placeholder name (a letter or `_`, then letters, digits or `_`; not `params`)"
        ),
    ))
}

/// The values of one list source: a YAML list, `{values: [...]}`,
/// `{glob: pattern}` (each matching file's stem) or `{file:, key:}`.
fn source(
    doc: &Document,
    path: &str,
    key: &str,
    spec: &Value,
    base_dir: &Path,
    reads: &Reads,
) -> Result<Vec<String>, Error> {
    let bad_shape = || {
        Error::invalid(
            doc.locate(path),
            key,
            "must be a list of values, or a mapping with one of `values:`, `glob:`, `file:` (with `key:`)",
        )
    };
    let (values, from): (Vec<String>, String) = match spec {
        Value::Sequence(items) => (scalars(doc, path, key, items)?, path.to_string()),
        Value::Mapping(map) => {
            let keys: Vec<&str> = map.keys().filter_map(Value::as_str).collect();
            if keys.contains(&"values") && keys.len() == 1 {
                let items = map
                    .get("values")
                    .and_then(Value::as_sequence)
                    .ok_or_else(bad_shape)?;
                let p = format!("{path}.values");
                (scalars(doc, &p, key, items)?, p)
            } else if keys.contains(&"glob") && keys.len() == 1 {
                let p = format!("{path}.glob");
                let pattern = map.get("glob").and_then(Value::as_str).ok_or_else(|| {
                    Error::invalid(doc.locate(&p), format!("{key}.glob"), "must be a glob")
                })?;
                (glob_stems(doc, &p, key, pattern, base_dir, reads)?, p)
            } else if keys.contains(&"file") && keys.contains(&"key") && keys.len() == 2 {
                let (file, dotted) = (map.get("file"), map.get("key"));
                let (Some(Value::String(file)), Some(Value::String(dotted))) = (file, dotted)
                else {
                    return Err(bad_shape());
                };
                let p = format!("{path}.key");
                let value = read_key(
                    doc,
                    &format!("{path}.file"),
                    key,
                    file,
                    dotted,
                    base_dir,
                    reads,
                )?;
                let items: Option<Vec<Value>> = value.as_array().map(|a| {
                    a.iter()
                        .filter_map(|v| serde_yaml::to_value(v).ok())
                        .collect()
                });
                let Some(items) = items else {
                    return Err(Error::invalid(
                        doc.locate(&p),
                        format!("{key}.key"),
                        format!("`{dotted}` in {file} is not a list"),
                    ));
                };
                (scalars(doc, &p, key, &items)?, p)
            } else {
                return Err(bad_shape());
            }
        }
        _ => return Err(bad_shape()),
    };
    if values.is_empty() {
        return Err(Error::invalid(
            doc.locate(&from),
            key,
            "the list is empty: a fan-out needs at least one value",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for v in &values {
        if !seen.insert(v) {
            return Err(Error::invalid(
                doc.locate(&from),
                key,
                format!("`{v}` appears twice: each value names one node"),
            ));
        }
    }
    if values.len() > MAX_INSTANCES {
        return Err(Error::invalid(
            doc.locate(&from),
            key,
            format!("more than {MAX_INSTANCES} values"),
        ));
    }
    Ok(values)
}

/// Values that name nodes and go into paths: letters, digits, `_ . + -`.
fn check_value(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{value}` cannot be a fan-out value (1 to 64 of letters, digits, `_ . + -`, not starting with `.`): it names a node and goes into paths"
        ))
    }
}

fn scalars(doc: &Document, path: &str, key: &str, items: &[Value]) -> Result<Vec<String>, Error> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let item_path = format!("{path}[{i}]");
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(Error::invalid(
                        doc.locate(&item_path),
                        key,
                        "values must be strings, numbers or booleans",
                    ));
                }
            };
            check_value(&text).map_err(|m| Error::invalid(doc.locate(&item_path), key, m))?;
            Ok(text)
        })
        .collect()
}

fn glob_stems(
    doc: &Document,
    path: &str,
    key: &str,
    pattern: &str,
    base_dir: &Path,
    reads: &Reads,
) -> Result<Vec<String>, Error> {
    let key = format!("{key}.glob");
    let glob = PathGlob::new(pattern, base_dir)
        .map_err(|e| Error::invalid(doc.locate(path), key.clone(), e))?;
    // Each listed directory is noted: a file added or removed later
    // changes its stat, which voids the up-to-date record and the graph
    // cache, so the next build lists it again.
    reads.note_dir(&glob.dir());
    let files = glob.files(reads);
    let mut stems = Vec::with_capacity(files.len());
    for file in &files {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        check_value(&stem).map_err(|m| {
            Error::invalid(
                doc.locate(path),
                key.clone(),
                format!("{}: {m}", file.display()),
            )
        })?;
        if stems.contains(&stem) {
            return Err(Error::invalid(
                doc.locate(path),
                key.clone(),
                format!(
                    "two files matching `{pattern}` have the stem `{stem}`: each stem names one node"
                ),
            ));
        }
        stems.push(stem);
    }
    if stems.is_empty() {
        return Err(Error::invalid(
            doc.locate(path),
            key,
            format!("`{pattern}` matches no file: a fan-out needs at least one value"),
        ));
    }
    Ok(stems)
}

/// The value at dotted `key` of the YAML file `file` (relative to
/// `base_dir`), the file's stat noted.
fn read_key(
    doc: &Document,
    file_path: &str,
    key: &str,
    file: &str,
    dotted: &str,
    base_dir: &Path,
    reads: &Reads,
) -> Result<serde_json::Value, Error> {
    let values = read_params_file(doc, file_path, key, file, base_dir, reads)?;
    lookup(&values, dotted).cloned().ok_or_else(|| {
        Error::invalid(
            doc.locate(file_path),
            format!("{key}.key"),
            format!("{file} has no key `{dotted}`"),
        )
    })
}

fn read_params_file(
    doc: &Document,
    at: &str,
    key: &str,
    file: &str,
    base_dir: &Path,
    reads: &Reads,
) -> Result<serde_json::Value, Error> {
    let full = base_dir.join(file);
    let bytes = reads.read(&full).map_err(|e| {
        Error::invalid(
            doc.locate(at),
            key,
            format!("cannot read {}: {e}", full.display()),
        )
    })?;
    let parsed = yaml::parse(&bytes, &full)?;
    super::json::to_json(&parsed, "", &parsed.value)
}

fn lookup<'a>(value: &'a serde_json::Value, dotted: &str) -> Option<&'a serde_json::Value> {
    dotted.split('.').try_fold(value, |v, seg| v.get(seg))
}

/// `params:` of a phase: the values of its keys (overrides applied), as
/// a nested object for `{params.a.b}` and as (env name, value) pairs.
pub(super) struct Params {
    pub(super) tree: serde_json::Value,
    pub(super) env: Vec<(String, String)>,
    /// The dotted keys read, so an override no phase reads is reported.
    pub(super) keys: Vec<String>,
}

pub(super) fn params(
    doc: &Document,
    raw: &RawPhase,
    spec: &Value,
    base_dir: &Path,
    reads: &Reads,
    overrides: &ParamOverrides,
) -> Result<Params, Error> {
    let path = format!("{}.params", raw.path);
    let shape = || {
        Error::invalid(
            doc.locate(&path),
            "params",
            "must be {file: params.yaml, keys: [train.n_est, ...]}",
        )
    };
    let map = spec.as_mapping().ok_or_else(shape)?;
    for k in map.keys() {
        let k = k.as_str().unwrap_or("?");
        if k != "file" && k != "keys" {
            return Err(Error::invalid(
                doc.locate(&format!("{path}.{k}")),
                format!("params.{k}"),
                "unknown key (params takes `file:` and `keys:`)",
            ));
        }
    }
    let file = map.get("file").and_then(Value::as_str).ok_or_else(shape)?;
    let keys = map
        .get("keys")
        .and_then(Value::as_sequence)
        .filter(|k| !k.is_empty())
        .ok_or_else(shape)?;
    let values = read_params_file(
        doc,
        &format!("{path}.file"),
        "params.file",
        file,
        base_dir,
        reads,
    )?;
    let mut tree = serde_json::Value::Object(Default::default());
    let mut env = Vec::new();
    let mut read = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let at = format!("{path}.keys[{i}]");
        let dotted = k.as_str().filter(|s| valid_dotted(s)).ok_or_else(|| {
            Error::invalid(
                doc.locate(&at),
                "params.keys",
                "must be a dotted key such as train.n_est",
            )
        })?;
        let overridden = overrides
            .iter()
            .rev()
            .find(|(o, _)| o == dotted)
            .map(|(_, v)| v);
        let value = overridden
            .or_else(|| lookup(&values, dotted))
            .ok_or_else(|| {
                Error::invalid(
                    doc.locate(&at),
                    "params.keys",
                    format!("{file} has no key `{dotted}`"),
                )
            })?
            .clone();
        env.push((env_name(dotted), plain(&value)));
        read.push(dotted.to_string());
        insert_dotted(&mut tree, dotted, value);
    }
    Ok(Params {
        tree,
        env,
        keys: read,
    })
}

fn valid_dotted(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// `train.n_est` → `ADMF_PARAM_TRAIN_N_EST`.
pub fn env_name(dotted: &str) -> String {
    let mut out = String::from("ADMF_PARAM_");
    for c in dotted.chars() {
        out.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    out
}

/// A value as a command sees it: strings bare, anything else as JSON.
fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn insert_dotted(tree: &mut serde_json::Value, dotted: &str, value: serde_json::Value) {
    let mut node = tree;
    let segments: Vec<&str> = dotted.split('.').collect();
    for seg in &segments[..segments.len() - 1] {
        if !node.get(*seg).is_some_and(serde_json::Value::is_object) {
            node[*seg] = serde_json::Value::Object(Default::default());
        }
        node = &mut node[*seg];
    }
    node[segments[segments.len() - 1]] = value;
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a template may name.
pub(super) struct Vars<'a> {
    /// The YAML path of the phase, for naming keys in errors.
    pub(super) phase_path: &'a str,
    pub(super) binding: &'a [(String, String)],
    pub(super) params: Option<&'a serde_json::Value>,
    /// A string that is one placeholder takes the value's own type (a
    /// number stays a number): for modes whose configs are typed, not
    /// for `command`, whose keys are strings.
    pub(super) typed: bool,
}

impl Vars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        if let Some(rest) = name.strip_prefix("params.") {
            return self.params.and_then(|p| lookup(p, rest)).map(plain);
        }
        self.binding
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn names(&self) -> Vec<String> {
        self.binding.iter().map(|(k, _)| k.clone()).collect()
    }
}

/// An include's `vars: {name: value}`: names as placeholders take them,
/// values are scalars.
pub(super) fn include_vars(
    doc: &Document,
    path: &str,
    spec: &Value,
) -> Result<Vec<(String, String)>, Error> {
    let map = spec.as_mapping().ok_or_else(|| {
        Error::invalid(doc.locate(path), "vars", "must be a mapping of name: value")
    })?;
    let mut out = Vec::new();
    for (k, v) in map {
        let name = k.as_str().unwrap_or("?");
        let at = format!("{path}.{name}");
        check_binding_name(doc, &at, "vars", name)?;
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(Error::invalid(
                    doc.locate(&at),
                    format!("vars.{name}"),
                    "must be a string, number or boolean",
                ));
            }
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// Replace `{name}` for each of `vars` in every string of an included
/// file. Other placeholders and `{{`/`}}` stay as written: the included
/// file's own fan-outs template them later.
pub(super) fn substitute_vars(value: &mut Value, vars: &[(String, String)]) {
    match value {
        Value::String(s) => {
            if let Ok(done) = substitute_with(s, &|n| lookup_var(vars, n), true) {
                *s = done;
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(|i| substitute_vars(i, vars)),
        Value::Mapping(map) => map.values_mut().for_each(|v| substitute_vars(v, vars)),
        _ => {}
    }
}

/// `text` of an include (its `workflow:` path or a `vars:` value) with
/// the include's bound names substituted; another name is an error at
/// `path`. Without bindings, the text as written.
pub(super) fn bind_include_text(
    doc: &Document,
    path: &str,
    key: &str,
    text: &str,
    binding: &[(String, String)],
) -> Result<String, Error> {
    if binding.is_empty() {
        return Ok(text.to_string());
    }
    substitute(text, &|name| {
        binding
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .map_err(|unknown| {
        let bound: Vec<&str> = binding.iter().map(|(k, _)| k.as_str()).collect();
        Error::invalid(
            doc.locate(path),
            key,
            format!(
                "`{{{unknown}}}` is not bound here (bound: {}); write `{{{{` and `}}}}` for literal braces",
                bound.join(", ")
            ),
        )
    })
}

fn lookup_var(vars: &[(String, String)], name: &str) -> Option<String> {
    Some(
        vars.iter()
            .find(|(k, _)| k == name)
            .map_or_else(|| format!("{{{name}}}"), |(_, v)| v.clone()),
    )
}

/// Substitute `{name}` placeholders; `{{`/`}}` are literal braces and
/// `${...}` is left to the shell. Err: the unknown name.
pub fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    substitute_with(text, lookup, false)
}

/// [`substitute`]; with `keep_escapes`, `{{` and `}}` are kept as written.
fn substitute_with(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    keep_escapes: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}', '$']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..if keep_escapes { 2 } else { 1 }]);
            rest = &tail[2..];
        } else if tail.starts_with("${") {
            let end = tail.find('}').map_or(tail.len(), |e| e + 1);
            out.push_str(&tail[..end]);
            rest = &tail[end..];
        } else if tail.starts_with('{')
            && let Some(end) = tail.find('}')
            && is_placeholder(&tail[1..end])
        {
            let name = &tail[1..end];
            out.push_str(&lookup(name).ok_or_else(|| name.to_string())?);
            rest = &tail[end + 1..];
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `name` or `params.a.b`: what a placeholder looks like; any other text
/// in braces (`{print $1}`, `{}`) is not one.
fn is_placeholder(inner: &str) -> bool {
    !inner.is_empty() && inner.split('.').all(is_identifier)
}

/// Names of the fan-out phases of a file and their bindings.
pub(super) type FanOuts = BTreeMap<String, Vec<Binding>>;

/// The phase as it is for one binding: every string templated (when the
/// phase has bindings or params), gathers expanded, `foreach`/`matrix`
/// removed, params added to a command's `env:`, and the instance name.
// The loader's state (file, reads, `--set params.` overrides and what
// was read) comes piecemeal so this stays a free function.
#[allow(clippy::too_many_arguments)]
pub(super) fn instantiate(
    doc: &Document,
    raw: &RawPhase,
    binding: Option<&Binding>,
    fanouts: &FanOuts,
    base_dir: &Path,
    reads: &Reads,
    overrides: &ParamOverrides,
    params_read: &mut Vec<String>,
) -> Result<RawPhase, Error> {
    let mut fields = raw.fields.clone();
    fields.remove("foreach");
    fields.remove("matrix");
    let empty: Binding = Vec::new();
    let binding_ref = binding.unwrap_or(&empty);
    let params = match fields.get("params").cloned() {
        None => None,
        Some(mut spec) => {
            let vars = Vars {
                phase_path: &raw.path,
                binding: binding_ref,
                params: None,
                typed: false,
            };
            template_value(doc, &format!("{}.params", raw.path), &mut spec, &vars, true)?;
            let p = params(doc, raw, &spec, base_dir, reads, overrides)?;
            params_read.extend(p.keys.iter().cloned());
            Some(p)
        }
    };
    let templated = binding.is_some() || params.is_some();
    let is_command = ["mode", "type"]
        .iter()
        .any(|m| fields.get(*m).and_then(Value::as_str) == Some("command"));
    let vars = Vars {
        phase_path: &raw.path,
        binding: binding_ref,
        params: params.as_ref().map(|p| &p.tree),
        typed: !is_command,
    };
    let mut out = Mapping::new();
    for (k, v) in &fields {
        let key = k.as_str().unwrap_or("?");
        let mut v = v.clone();
        if !matches!(key, "name" | "params" | "when") {
            let path = format!("{}.{key}", raw.path);
            expand_gathers(doc, &path, &mut v, &vars, fanouts)?;
            template_value(doc, &path, &mut v, &vars, templated)?;
        }
        out.insert(k.clone(), v);
    }
    if let Some(p) = &params
        && is_command
    {
        let env = out
            .entry("env".into())
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if let Value::Mapping(env) = env {
            for (name, value) in &p.env {
                env.insert(name.clone().into(), value.clone().into());
            }
        }
    }
    let name = match binding {
        None => raw.name.clone(),
        Some(b) => instance_name(&raw.name, b),
    };
    Ok(RawPhase {
        name,
        path: raw.path.clone(),
        name_path: raw.name_path.clone(),
        fields: out,
    })
}

/// Whether two bindings give the same value to every name both bind.
pub(super) fn agree(a: &[(String, String)], b: &[(String, String)]) -> bool {
    a.iter().all(|(k, v)| {
        b.iter()
            .find(|(bk, _)| bk == k)
            .is_none_or(|(_, bv)| bv == v)
    })
}

/// `map[sample=A]`, `map[sample=A,ref=hg38]`.
pub fn instance_name(phase: &str, binding: &[(String, String)]) -> String {
    let pairs: Vec<String> = binding.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{phase}[{}]", pairs.join(","))
}

/// The phase name an instance name belongs to (`map[sample=A]` → `map`).
pub fn phase_of_instance(name: &str) -> &str {
    name.split_once('[').map_or(name, |(head, _)| head)
}

fn template_value(
    doc: &Document,
    path: &str,
    value: &mut Value,
    vars: &Vars<'_>,
    templated: bool,
) -> Result<(), Error> {
    if !templated {
        return Ok(());
    }
    match value {
        Value::String(s) => {
            if vars.typed
                && let Some(typed) = whole_placeholder(s, vars)
            {
                *value = typed;
                return Ok(());
            }
            *s = template_string(doc, path, s, vars)?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                template_value(doc, &format!("{path}[{i}]"), item, vars, true)?;
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let k = k.as_str().unwrap_or("?");
                template_value(doc, &format!("{path}.{k}"), v, vars, true)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The typed value of a string that is exactly one bound placeholder: a
/// params value as it is in the file; a bound value as the YAML scalar it
/// spells when it reads back the same (`10` a number, `007` a string).
fn whole_placeholder(text: &str, vars: &Vars<'_>) -> Option<Value> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    if !is_placeholder(inner) {
        return None;
    }
    if let Some(rest) = inner.strip_prefix("params.") {
        let value = lookup(vars.params?, rest)?;
        return serde_yaml::to_value(value).ok();
    }
    let bound = vars.get(inner)?;
    let parsed: Value = serde_yaml::from_str(&bound).ok()?;
    let same = match &parsed {
        Value::Number(n) => n.to_string() == bound,
        Value::Bool(b) => b.to_string() == bound,
        _ => false,
    };
    Some(if same { parsed } else { Value::String(bound) })
}

/// The key a YAML path names within its phase (`inputs[0]`, `env.A`).
fn key_of(phase_path: &str, path: &str) -> String {
    path.strip_prefix(phase_path)
        .and_then(|p| p.strip_prefix('.'))
        .unwrap_or(path)
        .to_string()
}

fn template_string(
    doc: &Document,
    path: &str,
    text: &str,
    vars: &Vars<'_>,
) -> Result<String, Error> {
    substitute(text, &|name| vars.get(name)).map_err(|unknown| {
        let known = vars.names();
        let message = if unknown.starts_with("params.") {
            format!("`{{{unknown}}}` is not one of the `params:` keys")
        } else if known.is_empty() {
            format!("`{{{unknown}}}` is not bound: the phase has no `foreach:` or `matrix:`")
        } else {
            format!(
                "`{{{unknown}}}` is not bound here (bound: {}); write `{{{{` and `}}}}` for literal braces",
                known.join(", ")
            )
        };
        Error::invalid(doc.locate(path), key_of(vars.phase_path, path), message).with_hint(
            crate::error::did_you_mean(&unknown, known.iter().map(String::as_str)),
        )
    })
}

/// Replace each `{expand: pattern, over: phase}` item of a list by one
/// string per instance of `phase`.
fn expand_gathers(
    doc: &Document,
    path: &str,
    value: &mut Value,
    vars: &Vars<'_>,
    fanouts: &FanOuts,
) -> Result<(), Error> {
    match value {
        Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter_mut().enumerate() {
                let item_path = format!("{path}[{i}]");
                match item.as_mapping().filter(|m| m.contains_key("expand")) {
                    Some(map) => out.extend(gather(doc, &item_path, map, vars, fanouts)?),
                    None => {
                        expand_gathers(doc, &item_path, item, vars, fanouts)?;
                        out.push(item.clone());
                    }
                }
            }
            *items = out;
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let k = k.as_str().unwrap_or("?");
                expand_gathers(doc, &format!("{path}.{k}"), v, vars, fanouts)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn gather(
    doc: &Document,
    path: &str,
    map: &Mapping,
    vars: &Vars<'_>,
    fanouts: &FanOuts,
) -> Result<Vec<Value>, Error> {
    let key = key_of(vars.phase_path, path);
    let usage = "a gather is {expand: \"mapped/{sample}.bam\", over: PHASE}, PHASE a phase of this file with `foreach:` or `matrix:`";
    for k in map.keys() {
        let k = k.as_str().unwrap_or("?");
        if k != "expand" && k != "over" {
            return Err(Error::invalid(
                doc.locate(&format!("{path}.{k}")),
                key.clone(),
                format!("unknown key `{k}`: {usage}"),
            ));
        }
    }
    let pattern = map.get("expand").and_then(Value::as_str);
    let over = map.get("over").and_then(Value::as_str);
    let (Some(pattern), Some(over)) = (pattern, over) else {
        return Err(Error::invalid(doc.locate(path), key, usage));
    };
    let Some(instances) = fanouts.get(over) else {
        return Err(Error::invalid(
            doc.locate(&format!("{path}.over")),
            key,
            format!("`{over}` is not a phase of this file with `foreach:` or `matrix:`"),
        )
        .with_hint(crate::error::did_you_mean(
            over,
            fanouts.keys().map(String::as_str),
        )));
    };
    let pattern_path = format!("{path}.expand");
    let mut out = Vec::new();
    for instance in instances {
        // In a bound phase, only the instances that agree on shared names.
        if !agree(instance, vars.binding) {
            continue;
        }
        let mut merged: Binding = instance.clone();
        for (k, v) in vars.binding {
            if !merged.iter().any(|(mk, _)| mk == k) {
                merged.push((k.clone(), v.clone()));
            }
        }
        let merged_vars = Vars {
            phase_path: vars.phase_path,
            binding: &merged,
            params: vars.params,
            typed: false,
        };
        out.push(Value::String(template_string(
            doc,
            &pattern_path,
            pattern,
            &merged_vars,
        )?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(text: &str) -> Result<String, String> {
        let vars: Binding = vec![("sample".into(), "A".into()), ("ref".into(), "hg38".into())];
        substitute(text, &|n| {
            vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn placeholders_are_names_in_braces_and_nothing_else() {
        assert_eq!(sub("x/{sample}_{ref}.bam").unwrap(), "x/A_hg38.bam");
        assert_eq!(sub("echo ${HOME} $x").unwrap(), "echo ${HOME} $x");
        assert_eq!(sub("awk '{print $1}' {}").unwrap(), "awk '{print $1}' {}");
        assert_eq!(sub("{{sample}} }}").unwrap(), "{sample} }");
        assert_eq!(sub("{other}").unwrap_err(), "other");
        assert_eq!(sub("{params.a.b}").unwrap_err(), "params.a.b");
        assert_eq!(sub("unclosed {sample").unwrap(), "unclosed {sample");
    }

    #[test]
    fn env_names_are_upper_snake() {
        assert_eq!(env_name("train.n_est"), "ADMF_PARAM_TRAIN_N_EST");
        assert_eq!(env_name("a-b.c"), "ADMF_PARAM_A_B_C");
    }

    #[test]
    fn keys_are_named_after_the_phase() {
        assert_eq!(
            key_of("phases[2].map", "phases[2].map.inputs[0]"),
            "inputs[0]"
        );
        assert_eq!(key_of("phases[2]", "phases[2].env.A"), "env.A");
    }

    #[test]
    fn instance_names_round_trip_to_their_phase() {
        let b: Binding = vec![("sample".into(), "A".into()), ("ref".into(), "hg38".into())];
        let name = instance_name("map", &b);
        assert_eq!(name, "map[sample=A,ref=hg38]");
        assert_eq!(phase_of_instance(&name), "map");
    }

    proptest::proptest! {
        /// Text without braces or dollars comes back unchanged, and a
        /// bound placeholder is replaced wherever it sits.
        #[test]
        fn substitution_only_touches_placeholders(a in "[a-z /._-]{0,20}", b in "[a-z /._-]{0,20}") {
            proptest::prop_assert_eq!(sub(&a).unwrap(), a.clone());
            proptest::prop_assert_eq!(sub(&format!("{a}{{sample}}{b}")).unwrap(), format!("{a}A{b}"));
        }
    }
}
