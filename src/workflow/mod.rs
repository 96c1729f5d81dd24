//! Load: workflow files → [`Workflow`] IR.
//!
//! Each file is a *scope*: its phases are named locally, `depends_on` and
//! `when:` refer to names of the same scope, and an include (`workflow:`)
//! opens a child scope whose nodes are named `outer/inner`. Dependencies
//! are first recorded as references and resolved once every file is read,
//! so a phase may name one declared after it.
//!
//! Rules (docs/design.md §2): a phase without `depends_on` follows the phase listed
//! before it; `depends_on: []` makes it a root of its scope, which inside an
//! include means it follows whatever the include itself depends on.
//! Depending on an include means depending on its sinks. Inherited keys are
//! scoped lexically: outer file → include phase → inner file's top level,
//! the innermost one winning.

pub mod cluster;
pub mod fanout;
pub mod forms;
mod inherit;
mod json;
pub mod on;
pub mod overrides;
mod scope;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Map;
use serde_yaml::Value;

use self::forms::{INHERITED_KEYS, PHASE_KEYS, RawPhase};
use self::inherit::{Inherited, file_dir};
pub use self::json::to_json;
use self::scope::{Dep, Local, Pending, Scope};
use self::yaml::Document;
use crate::error::{CycleMember, Error, Location, did_you_mean};
use crate::ir::condition::Condition;
use crate::ir::{PhaseIr, Workflow};
use crate::paths::root::{ALLOW_OUTSIDE, Confinement};
use crate::reads::Reads;

/// Read `root` and everything it includes, with `--set` overrides applied.
/// The most further attempts a phase may ask for: each attempt's log is
/// kept, and a phase that fails this often will not succeed on the next.
pub const MAX_RETRIES: u32 = 100;
/// The longest fan-out node name (`phase[name=value,...]`): refs and
/// files are named after nodes, and file names stop at 255 bytes.
pub const MAX_INSTANCE_NAME_LEN: usize = forms::MAX_NAME_LEN + 64;
/// The most `-j` slots a phase may ask for with `threads:`.
pub const MAX_THREADS: usize = 1024;

/// Every file it reads and directory it lists is noted in `reads`.
pub fn load(root: &Path, sets: &[String], reads: &Reads) -> Result<Workflow, Error> {
    let mut doc = read_doc(root, None, reads)?;
    let (param_sets, sets) = split_param_sets(sets)?;
    overrides::apply(&mut doc.value, &sets)?;
    let mut loader = Loader {
        confinement: Confinement::new(root, allow_outside(&doc)?),
        param_overrides: param_sets,
        reads: reads.clone(),
        ..Loader::default()
    };
    let triggers = on::read(&doc, &loader.confinement)?;
    let executor = match forms::top_level(&doc) {
        Ok(top) => cluster::read_executor(&doc, &top)?,
        Err(_) => Default::default(),
    };
    let results = results_dir(&doc)?;
    let stack = vec![(canonical(root), root.to_path_buf(), Location::file(root))];
    loader.load_scope(doc, String::new(), Inherited::default(), None, stack)?;
    if let Some((key, _)) = loader
        .param_overrides
        .iter()
        .find(|(k, _)| !loader.params_read.contains(k))
    {
        return Err(Error::Usage {
            message: format!("--set `params.{key}`: no phase reads `{key}` through `params:`"),
            hint: did_you_mean(key, loader.params_read.iter().map(String::as_str)),
        });
    }
    let mut workflow = loader.finish(root)?;
    workflow.triggers = triggers;
    workflow.executor = executor;
    workflow.results = results;
    Ok(workflow)
}

/// `--set params.K=V` overrides the value of `K` for every phase that
/// reads it through `params:`; the other `--set`s edit the workflow.
fn split_param_sets(sets: &[String]) -> Result<(fanout::ParamOverrides, Vec<String>), Error> {
    let mut params = Vec::new();
    let mut rest = Vec::new();
    for set in sets {
        match set.strip_prefix("params.").and_then(|s| s.split_once('=')) {
            Some((key, raw)) => {
                let invalid = |e: String| Error::Usage {
                    message: format!("--set `{set}`: value is not valid YAML: {e}"),
                    hint: None,
                };
                yaml::parse_value(raw).map_err(invalid)?;
                let doc = yaml::parse(raw.as_bytes(), Path::new("--set"))
                    .map_err(|e| invalid(e.to_string()))?;
                let value = to_json(&doc, "", &doc.value).map_err(|e| invalid(e.to_string()))?;
                params.push((key.to_string(), value));
            }
            None => rest.push(set.clone()),
        }
    }
    Ok((params, rest))
}

/// The top-level key naming the folder every build fills with outputs.
pub const RESULTS: &str = "results";

/// The root file's `results:`, a non-empty path relative to the file.
fn results_dir(doc: &Document) -> Result<Option<PathBuf>, Error> {
    let Ok(top) = forms::top_level(doc) else {
        return Ok(None);
    };
    match top.map.get(RESULTS) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => {
            let dir = inherit::file_dir(doc).join(s);
            Ok(Some(std::path::absolute(&dir).unwrap_or(dir)))
        }
        Some(_) => Err(Error::invalid(
            doc.locate(&format!("{}{RESULTS}", top.prefix)),
            RESULTS,
            "must be a folder path, such as `results`",
        )),
    }
}

/// The root file's `allow_outside:`, which must be a boolean.
fn allow_outside(doc: &Document) -> Result<bool, Error> {
    let Ok(top) = forms::top_level(doc) else {
        return Ok(false);
    };
    match top.map.get(ALLOW_OUTSIDE) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Error::invalid(
            doc.locate(&format!("{}{ALLOW_OUTSIDE}", top.prefix)),
            ALLOW_OUTSIDE,
            "must be true or false",
        )),
    }
}

/// The phases of the scope named by `deps` (an instance `map[sample=A]`
/// counts for its phase `map`): those are not sinks.
fn note_depended(deps: &[Dep], depended: &mut std::collections::HashSet<String>) {
    for d in deps {
        if let Dep::Name { name, .. } = d {
            let head = name.split('/').next().unwrap_or(name);
            depended.insert(fanout::phase_of_instance(head).to_string());
        }
    }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn read_doc(
    path: &Path,
    included_at: Option<(&Location, &str)>,
    reads: &Reads,
) -> Result<Document, Error> {
    let bytes = reads.read(path).map_err(|e| match included_at {
        Some((location, key)) if e.kind() == std::io::ErrorKind::NotFound => {
            Error::IncludeNotFound {
                location: location.clone(),
                key: key.to_string(),
                path: path.to_path_buf(),
            }
        }
        _ => Error::io(path, e),
    })?;
    let mut doc = yaml::parse(&bytes, path)?;
    doc.source = bytes.into();
    Ok(doc)
}

#[derive(Default)]
struct Loader {
    scopes: Vec<Scope>,
    pending: Vec<Pending>,
    files: Vec<PathBuf>,
    /// blake3 over each of `files` as it was read: its path, a 0 byte,
    /// its bytes, a 0 byte ([`Workflow::files_digest`]).
    files_digest: blake3::Hasher,
    confinement: Confinement,
    param_overrides: fanout::ParamOverrides,
    /// Every dotted key some phase read through `params:`.
    params_read: Vec<String>,
    /// The instances of each include with `foreach:` or `matrix:`: the
    /// scope of each and its binding ([`Local::IncludeGroup`]).
    include_groups: Vec<Vec<(usize, fanout::Binding)>>,
    /// Where every file read and directory listed is noted.
    reads: Reads,
}

/// Where an include sits: the node-name prefix and inherited keys of the
/// including scope, and the chain of files including it.
#[derive(Clone, Copy)]
struct IncludeAt<'a> {
    prefix: &'a str,
    inherited: &'a Inherited,
    stack: &'a [(PathBuf, PathBuf, Location)],
}

impl Loader {
    fn load_scope(
        &mut self,
        doc: Document,
        prefix: String,
        mut inherited: Inherited,
        entry: Option<Vec<Dep>>,
        stack: Vec<(PathBuf, PathBuf, Location)>,
    ) -> Result<usize, Error> {
        self.files.push(doc.file().to_path_buf());
        self.files_digest
            .update(doc.file().to_string_lossy().as_bytes())
            .update(&[0])
            .update(&doc.source)
            .update(&[0]);
        let top = forms::top_level(&doc)?;
        if self.files.len() > 1 && top.map.contains_key(ALLOW_OUTSIDE) {
            return Err(Error::invalid(
                doc.locate(&format!("{}{ALLOW_OUTSIDE}", top.prefix)),
                ALLOW_OUTSIDE,
                "only the root workflow file (the one given to admf) may set it",
            ));
        }
        if self.files.len() > 1 && top.map.contains_key(RESULTS) {
            return Err(Error::invalid(
                doc.locate(&format!("{}{RESULTS}", top.prefix)),
                RESULTS,
                "only the root workflow file (the one given to admf) may set it",
            ));
        }
        if self.files.len() > 1
            && let Some(e) =
                on::not_in_include(&doc, &top).or_else(|| cluster::not_in_include(&doc, &top))
        {
            return Err(e);
        }
        let raw = forms::raw_phases(&doc, &top)?;
        inherited.overlay(&doc, top.map, &top.prefix)?;
        let scope = self.scopes.len();
        self.scopes.push(Scope {
            locals: BTreeMap::new(),
            sinks: Vec::new(),
            entry: entry.unwrap_or_default(),
        });
        let base_dir = file_dir(&doc);
        let mut first_seen: BTreeMap<String, Location> = BTreeMap::new();
        let mut depended: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut previous: Option<String> = None;
        let mut fanouts = fanout::FanOuts::new();
        for phase in &raw {
            if phase.fields.contains_key("workflow") {
                continue;
            }
            if let Some(bindings) = fanout::bindings(&doc, phase, &base_dir, &self.reads)? {
                fanouts.insert(phase.name.clone(), bindings);
            }
        }
        for phase in &raw {
            forms::check_name(&doc, phase)?;
            let here = doc.locate(&phase.name_path);
            if let Some(first) = first_seen.get(&phase.name) {
                return Err(Error::DuplicatePhase {
                    location: here,
                    first: first.clone(),
                    name: phase.name.clone(),
                });
            }
            first_seen.insert(phase.name.clone(), here);
            let local = if phase.fields.contains_key("workflow") {
                match fanout::bindings(&doc, phase, &base_dir, &self.reads)? {
                    None => {
                        let deps = self.deps_of(&doc, phase, scope, previous.as_deref(), &[])?;
                        note_depended(&deps, &mut depended);
                        let at = IncludeAt {
                            prefix: &prefix,
                            inherited: &inherited,
                            stack: &stack,
                        };
                        Local::Include(self.include(&doc, phase, None, &at, deps)?)
                    }
                    // Included once per binding, as `name[item=A]`.
                    Some(bindings) => {
                        let mut members = Vec::with_capacity(bindings.len());
                        for binding in bindings {
                            let deps =
                                self.deps_of(&doc, phase, scope, previous.as_deref(), &binding)?;
                            note_depended(&deps, &mut depended);
                            let at = IncludeAt {
                                prefix: &prefix,
                                inherited: &inherited,
                                stack: &stack,
                            };
                            let inner = self.include(&doc, phase, Some(&binding), &at, deps)?;
                            self.scopes[scope].locals.insert(
                                fanout::instance_name(&phase.name, &binding),
                                Local::Include(inner),
                            );
                            members.push((inner, binding));
                        }
                        self.include_groups.push(members);
                        Local::IncludeGroup(self.include_groups.len() - 1)
                    }
                }
            } else {
                let bindings: Vec<Option<&fanout::Binding>> = match fanouts.get(&phase.name) {
                    Some(all) => all.iter().map(Some).collect(),
                    None => vec![None],
                };
                let first = self.pending.len();
                for binding in &bindings {
                    let instance = fanout::instantiate(
                        &doc,
                        phase,
                        *binding,
                        &fanouts,
                        &base_dir,
                        &self.reads,
                        &self.param_overrides,
                        &mut self.params_read,
                    )?;
                    if instance.name.len() > MAX_INSTANCE_NAME_LEN {
                        let key = if phase.fields.contains_key("matrix") {
                            "matrix"
                        } else {
                            "foreach"
                        };
                        return Err(Error::invalid(
                            doc.locate(&format!("{}.{key}", phase.path)),
                            key,
                            format!(
                                "the node name `{}` is {} bytes, above {MAX_INSTANCE_NAME_LEN}: use shorter names or values",
                                instance.name,
                                instance.name.len()
                            ),
                        ));
                    }
                    let binding = binding.cloned().unwrap_or_default();
                    let deps =
                        self.deps_of(&doc, &instance, scope, previous.as_deref(), &binding)?;
                    note_depended(&deps, &mut depended);
                    let local =
                        self.phase(&doc, &instance, &prefix, &inherited, scope, deps, &base_dir)?;
                    if !binding.is_empty() {
                        self.scopes[scope]
                            .locals
                            .insert(instance.name.clone(), local);
                    }
                    if let Local::Node(i) = local {
                        self.pending[i].binding = binding;
                    }
                }
                if fanouts.contains_key(&phase.name) {
                    Local::Group(first, self.pending.len())
                } else {
                    Local::Node(first)
                }
            };
            self.scopes[scope].locals.insert(phase.name.clone(), local);
            previous = Some(phase.name.clone());
        }
        self.scopes[scope].sinks = raw
            .iter()
            .map(|p| p.name.clone())
            .filter(|n| !depended.contains(n))
            .collect();
        Ok(scope)
    }

    fn deps_of(
        &self,
        doc: &Document,
        phase: &RawPhase,
        scope: usize,
        previous: Option<&str>,
        binding: &[(String, String)],
    ) -> Result<Vec<Dep>, Error> {
        let path = format!("{}.depends_on", phase.path);
        let names: Vec<(String, String)> = match phase.fields.get("depends_on") {
            None => {
                return Ok(match previous {
                    Some(p) => vec![Dep::Name {
                        scope,
                        name: p.to_string(),
                        location: doc.locate(&phase.path),
                        key: "depends_on".into(),
                        binding: binding.to_vec(),
                    }],
                    None => vec![Dep::Entry(scope)],
                });
            }
            Some(Value::String(s)) => vec![(s.clone(), path.clone())],
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let item_path = format!("{path}[{i}]");
                    v.as_str()
                        .map(|s| (s.to_string(), item_path.clone()))
                        .ok_or_else(|| {
                            Error::invalid(
                                doc.locate(&item_path),
                                "depends_on",
                                "must be a phase name",
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(Error::invalid(
                    doc.locate(&path),
                    "depends_on",
                    "must be a phase name or a list of phase names",
                ));
            }
        };
        if names.is_empty() {
            return Ok(vec![Dep::Entry(scope)]);
        }
        Ok(names
            .into_iter()
            .map(|(name, p)| Dep::Name {
                scope,
                name,
                location: doc.locate(&p),
                key: "depends_on".into(),
                binding: binding.to_vec(),
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn phase(
        &mut self,
        doc: &Document,
        raw: &RawPhase,
        prefix: &str,
        inherited: &Inherited,
        scope: usize,
        deps: Vec<Dep>,
        base_dir: &Path,
    ) -> Result<Local, Error> {
        let f = &raw.fields;
        let at = |key: &str| doc.locate(&format!("{}.{key}", raw.path));
        let mode = match (f.get("mode"), f.get("type")) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    at("type"),
                    "type",
                    "`type:` is an alias of `mode:`; give only one",
                ));
            }
            (Some(m), None) | (None, Some(m)) => {
                let key = if f.contains_key("mode") {
                    "mode"
                } else {
                    "type"
                };
                m.as_str()
                    .ok_or_else(|| Error::invalid(at(key), key, "must be a mode name"))?
                    .to_string()
            }
            (None, None) => {
                return Err(Error::invalid(
                    doc.locate(&raw.path),
                    &raw.name,
                    "the phase has no `mode:` (or `workflow:` to include another file)",
                ));
            }
        };
        let retries = match f.get("retries") {
            None => 0,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n <= MAX_RETRIES)
                .ok_or_else(|| {
                    Error::invalid(
                        at("retries"),
                        "retries",
                        format!("must be an integer from 0 to {MAX_RETRIES}"),
                    )
                })?,
        };
        let threads = match f.get("threads") {
            None => 1,
            Some(v) => v
                .as_u64()
                .filter(|&n| (1..=MAX_THREADS as u64).contains(&n))
                .map(|n| n as usize)
                .ok_or_else(|| {
                    Error::invalid(
                        at("threads"),
                        "threads",
                        format!("must be an integer from 1 to {MAX_THREADS}"),
                    )
                })?,
        };
        let resources = cluster::read_resources(doc, &raw.path, f)?;
        let when = match f.get("when") {
            None => None,
            Some(Value::String(text)) => {
                let cond =
                    Condition::parse(text).map_err(|e| Error::invalid(at("when"), "when", e))?;
                Some((cond, at("when")))
            }
            Some(_) => {
                return Err(Error::invalid(
                    at("when"),
                    "when",
                    "must be a condition such as \"analysis.best.sharpe > 0.5\"",
                ));
            }
        };
        let mut config = Map::new();
        let mut key_locations = inherited.locations.clone();
        for (k, v) in f {
            let key = k.as_str().unwrap_or("?");
            if PHASE_KEYS.contains(&key) {
                continue;
            }
            let path = format!("{}.{key}", raw.path);
            config.insert(key.to_string(), to_json(doc, &path, v)?);
            key_locations.retain(|k, _| {
                k != key && !k.starts_with(&format!("{key}.")) && !k.starts_with(&format!("{key}["))
            });
            key_locations.insert(key.to_string(), doc.locate(&path));
            for (sub, loc) in doc.positions_under(&path) {
                key_locations.insert(format!("{key}.{sub}"), loc);
            }
            for (item, loc) in doc.item_positions_under(&path) {
                key_locations.insert(format!("{key}{item}"), loc);
            }
        }
        // Where the engine keys are, so errors about them point at their line.
        for key in ["mode", "type", "when", "depends_on"]
            .into_iter()
            .filter(|k| f.contains_key(*k))
        {
            key_locations.insert(key.to_string(), at(key));
        }
        let index = self.pending.len();
        self.pending.push(Pending {
            phase: PhaseIr {
                name: format!("{prefix}{}", raw.name),
                mode,
                config,
                inherited: inherited.values.clone(),
                inherited_from: inherited.dirs.clone(),
                retries,
                threads,
                depends_on: Vec::new(),
                when: None,
                location: doc.locate(&raw.path),
                base_dir: base_dir.to_path_buf(),
                key_locations,
                resources,
            },
            scope,
            deps,
            when,
            binding: Vec::new(),
        });
        Ok(Local::Node(index))
    }

    /// Include the file `raw` names as a scope of its own; with a
    /// `binding` (an include with `foreach:` or `matrix:`), as the
    /// instance `name[item=A]`, its bound names templated into `workflow:`
    /// and `vars:` and passed as vars themselves.
    fn include(
        &mut self,
        doc: &Document,
        raw: &RawPhase,
        binding: Option<&fanout::Binding>,
        at: &IncludeAt<'_>,
        deps: Vec<Dep>,
    ) -> Result<usize, Error> {
        let IncludeAt {
            prefix,
            inherited,
            stack,
        } = *at;
        let path_key = format!("{}.workflow", raw.path);
        let location = doc.locate(&path_key);
        let written = raw
            .fields
            .get("workflow")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid(location.clone(), "workflow", "must be a file path"))?;
        for (k, _) in &raw.fields {
            let key = k.as_str().unwrap_or("?");
            let allowed = [
                "name",
                "workflow",
                "depends_on",
                "description",
                "vars",
                "foreach",
                "matrix",
            ];
            if !allowed.contains(&key) && !INHERITED_KEYS.contains(&key) {
                return Err(Error::invalid(
                    doc.locate(&format!("{}.{key}", raw.path)),
                    key,
                    "not allowed on a workflow include (only depends_on, vars, foreach, matrix, data, strategy, costs)",
                ));
            }
        }
        let bound = binding.map(Vec::as_slice).unwrap_or_default();
        let rel = fanout::bind_include_text(doc, &path_key, "workflow", written, bound)?;
        let rel = rel.as_str();
        let name = match binding {
            Some(b) => fanout::instance_name(&raw.name, b),
            None => raw.name.clone(),
        };
        let file = doc.file().parent().unwrap_or(Path::new("")).join(rel);
        let id = canonical(&file);
        if let Err(root) = self.confinement.check(&file) {
            return Err(Error::invalid(
                location,
                "workflow",
                format!(
                    "`{rel}` is outside the workflow root {} (through `..` or a symlink)",
                    root.display()
                ),
            )
            .with_hint(Some(format!(
                "add `{ALLOW_OUTSIDE}: true` at the top of the root workflow file to include it anyway"
            ))));
        }
        if let Some(start) = stack.iter().position(|(p, _, _)| *p == id) {
            let mut cycle: Vec<CycleMember> = stack[start..]
                .iter()
                .skip(1)
                .map(|(_, p, loc)| CycleMember {
                    name: format!("includes {}", p.display()),
                    location: loc.clone(),
                })
                .collect();
            cycle.push(CycleMember {
                name: format!("includes {}", file.display()),
                location: location.clone(),
            });
            return Err(Error::IncludeCycle { cycle });
        }
        let mut child = read_doc(&file, Some((&location, "workflow")), &self.reads)?;
        let mut vars = match raw.fields.get("vars") {
            Some(vars) => fanout::include_vars(doc, &format!("{}.vars", raw.path), vars)?,
            None => Vec::new(),
        };
        for (name, value) in vars.iter_mut() {
            let at = format!("{}.vars.{name}", raw.path);
            *value = fanout::bind_include_text(doc, &at, &format!("vars.{name}"), value, bound)?;
        }
        for (name, value) in bound {
            if !vars.iter().any(|(n, _)| n == name) {
                vars.push((name.clone(), value.clone()));
            }
        }
        if !vars.is_empty() {
            fanout::substitute_vars(&mut child.value, &vars);
        }
        let mut scope_inherited = inherited.clone();
        scope_inherited.overlay(doc, &raw.fields, &format!("{}.", raw.path))?;
        let mut stack = stack.to_vec();
        stack.push((id, file.clone(), location));
        self.load_scope(
            child,
            format!("{prefix}{name}/"),
            scope_inherited,
            Some(deps),
            stack,
        )
    }
}
