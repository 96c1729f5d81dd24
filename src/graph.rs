//! Compile: [`Workflow`] IR → [`Graph`], an immutable DAG of nodes.
//!
//! Every phase becomes one node, except a grid phase of a mode that
//! [`expands_grid`](crate::phases::Phase::expands_grid): it becomes one
//! trial node per combination (`sweep[0]`, `sweep[1]`, ...) followed by a
//! gather node named after the phase, so each trial is cached on its own.
//! Compiling checks modes, configs, conditions, inputs and outputs, and
//! rejects dependency cycles with the whole cycle and each member's
//! location. Node indices follow declaration order, which is also the
//! tie-break of the planned sequence ([`Graph::order`]).

pub mod checks;
pub mod grid;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::{Path, PathBuf};

use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::{Map, Value};

use crate::error::{CycleMember, Error, Location, did_you_mean};
use crate::ir::condition::Condition;
use crate::ir::{PhaseIr, Workflow};
use crate::paths::normalize;
use crate::phases::{ConfigIssue, Factory, Role};
use crate::reads::Reads;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// `phase`, `outer/inner`, or `phase[N]` for trial N of a grid.
    pub id: String,
    /// Index of the phase in [`Workflow::phases`].
    pub phase: usize,
    pub mode: String,
    pub role: Role,
    /// Inherited keys applied; a trial's grid values applied.
    pub config: std::sync::Arc<Value>,
    /// Node indices this node reads, in declared order.
    pub deps: Vec<usize>,
    pub when: Option<Condition>,
    /// Files whose content enters the key.
    pub inputs: Vec<PathBuf>,
    /// (path in the entry's `out/`, workspace path) restored on a hit.
    pub workspace_outputs: Vec<(String, PathBuf)>,
    /// How each workspace output is kept, in the same order; shorter
    /// (empty for most nodes): the rest are stored.
    #[serde(default)]
    pub keeps: Vec<crate::workspace::Keep>,
    pub base_dir: PathBuf,
    pub location: Location,
    pub retries: u32,
    /// How many of the `-j` slots the node takes while it executes.
    #[serde(default = "one_thread")]
    pub threads: usize,
    /// For trials: the grid phase's id (the gather node's id).
    pub group: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Graph {
    /// The IR the graph came from: names, modes, dependencies and
    /// locations; after compiling, the resolved configs live only in
    /// [`Node::config`].
    pub workflow: Workflow,
    pub nodes: Vec<Node>,
    /// The planned sequence: Kahn's algorithm, the earliest declared ready
    /// node first. A function of the workflow alone.
    pub order: Vec<usize>,
    /// Derived from `nodes`; rebuilt when a graph is read back.
    #[serde(skip)]
    by_id: HashMap<String, usize>,
    /// Derived: whether some node's `when:` reads node i's metrics.
    #[serde(skip)]
    condition_read: Vec<bool>,
}

impl Graph {
    /// Rebuild what is derived from `nodes` (a graph read back from the
    /// graph cache carries only the nodes).
    pub fn reindex(&mut self) {
        self.by_id = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let mut read = vec![false; self.nodes.len()];
        for node in &self.nodes {
            for phase in node.when.iter().flat_map(|c| c.phases()) {
                if let Some(i) = self.by_id.get(phase) {
                    read[*i] = true;
                }
            }
        }
        self.condition_read = read;
    }

    /// Whether some node's `when:` reads the metrics of node `index`.
    pub fn read_by_condition(&self, index: usize) -> bool {
        self.condition_read.get(index).copied().unwrap_or(true)
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Resolve a user-given node name (a target, `--force`, `explain`).
    /// A grid phase's name means its gather node.
    pub fn find(&self, id: &str) -> Result<usize, Error> {
        self.index_of(id).ok_or_else(|| Error::Usage {
            message: format!(
                "no node named `{id}` in {}",
                self.workflow.root_file.display()
            ),
            hint: did_you_mean(id, self.nodes.iter().map(|n| n.id.as_str())),
        })
    }

    /// Resolve build targets (`admf build WF PATTERN...`), each one of: a
    /// node id; a fan-out phase's name (every instance); a pattern over
    /// node ids where `*` is any text and `?` one character, brackets
    /// being literal (`'map[*]'`, `'*[sample=A]'`); a workspace output
    /// path (relative to the working directory, or absolute), or a
    /// pattern over them. Each must select at least one node.
    pub fn resolve_targets(&self, patterns: &[String]) -> Result<Vec<usize>, Error> {
        let mut out = Vec::new();
        for pattern in patterns {
            let before = out.len();
            if let Some(i) = self.index_of(pattern) {
                out.push(i);
                continue;
            }
            let instance_of = |n: &Node| {
                n.id.strip_prefix(pattern.as_str())
                    .is_some_and(|rest| rest.starts_with('[') && n.group.is_none())
            };
            out.extend((0..self.nodes.len()).filter(|&i| instance_of(&self.nodes[i])));
            if out.len() == before && pattern.contains(['*', '?']) {
                out.extend(
                    (0..self.nodes.len()).filter(|&i| wildcard_match(pattern, &self.nodes[i].id)),
                );
            }
            if out.len() == before {
                let wanted = absolute_normal(std::path::Path::new(pattern));
                let wanted = wanted.to_string_lossy();
                out.extend((0..self.nodes.len()).filter(|&i| {
                    self.nodes[i].workspace_outputs.iter().any(|(_, path)| {
                        let path = absolute_normal(path);
                        let path = path.to_string_lossy();
                        path == wanted
                            || (pattern.contains(['*', '?']) && wildcard_match(&wanted, &path))
                    })
                }));
            }
            if out.len() == before {
                return Err(Error::Usage {
                    message: format!(
                        "no node named `{pattern}` in {}, and no node id or declared output matches it",
                        self.workflow.root_file.display()
                    ),
                    hint: did_you_mean(pattern, self.nodes.iter().map(|n| n.id.as_str())),
                });
            }
        }
        Ok(out)
    }

    /// `roots` and every node that depends on them, directly or not.
    pub fn downstream(&self, roots: &[usize]) -> Vec<usize> {
        let dependents = self.dependents();
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = roots.to_vec();
        while let Some(i) = stack.pop() {
            if !seen[i] {
                seen[i] = true;
                stack.extend(&dependents[i]);
            }
        }
        (0..self.nodes.len()).filter(|&i| seen[i]).collect()
    }

    /// Node indices that depend on `index`, in index order.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &d in &n.deps {
                out[d].push(i);
            }
        }
        out
    }

    /// `targets` and everything they depend on, as a mask.
    pub fn closure(&self, targets: &[usize]) -> Vec<bool> {
        let mut keep = vec![false; self.nodes.len()];
        let mut stack = targets.to_vec();
        while let Some(i) = stack.pop() {
            if !keep[i] {
                keep[i] = true;
                stack.extend(&self.nodes[i].deps);
            }
        }
        keep
    }
}

fn one_thread() -> usize {
    1
}

impl Node {
    /// How workspace output `i` is kept.
    pub fn keep(&self, i: usize) -> crate::workspace::Keep {
        self.keeps.get(i).copied().unwrap_or_default()
    }

    /// The workspace outputs with how each is kept.
    pub fn outputs_kept(
        &self,
    ) -> impl Iterator<Item = (&String, &PathBuf, crate::workspace::Keep)> {
        self.workspace_outputs
            .iter()
            .enumerate()
            .map(|(i, (rel, path))| (rel, path, self.keep(i)))
    }

    /// Whether some workspace output is `temp:`.
    pub fn has_temp(&self) -> bool {
        self.keeps.contains(&crate::workspace::Keep::Temp)
    }
}

/// A node about to be created: id, role, config, deps, grid group.
type NodeSpec = (String, Role, Value, Vec<usize>, Option<String>);

pub fn compile(workflow: Workflow, factory: &dyn Factory, reads: &Reads) -> Result<Graph, Error> {
    compile_with(workflow, factory, |_, _| Ok(()), reads)
}

/// [`compile`], then `checks` on the graph while the IR still locates
/// every key (the built-in modes' checks: [`checks::check`]). Files and
/// directories the phases and checks read are noted in `reads`.
pub fn compile_with(
    mut workflow: Workflow,
    factory: &dyn Factory,
    checks: fn(&Graph, &Reads) -> Result<(), Error>,
    reads: &Reads,
) -> Result<Graph, Error> {
    let produced = produced_outputs(&workflow, factory);
    // Directory outputs with a trailing `/`: a glob reaching into one
    // stands for the whole directory (see the command mode's inputs).
    let produced_paths: Vec<PathBuf> = produced
        .paths
        .keys()
        .map(|p| {
            if produced.dirs.contains_key(p) {
                let mut dir = p.clone().into_os_string();
                dir.push("/");
                PathBuf::from(dir)
            } else {
                p.clone()
            }
        })
        .collect();
    add_file_edges(&mut workflow, factory, &produced, &produced_paths, reads);
    check_phase_cycles(&workflow)?;
    let phase_index: HashMap<&str, usize> = workflow
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    let mut nodes: Vec<Node> = Vec::new();
    // The node standing for each phase downstream: the single or gather node.
    let mut output_node: Vec<usize> = Vec::with_capacity(workflow.phases.len());
    let mut phase_order: Vec<usize> = (0..workflow.phases.len()).collect();
    // Declaration order, except a phase never precedes a phase it depends on
    // (a forward `depends_on`): a stable topological order of phases.
    topo_sort_phases(&workflow, &phase_index, &mut phase_order);
    let mut output_of_phase: Vec<usize> = vec![usize::MAX; workflow.phases.len()];
    let mut real_dirs = HashMap::new();
    let mut input_states: HashMap<PathBuf, InputState> = HashMap::new();
    check_trial_budget(&workflow, factory, &phase_order)?;
    for &pi in &phase_order {
        let phase = &workflow.phases[pi];
        let location_of = |issue: &ConfigIssue| phase.locate(&issue.key);
        let issue_error = |issue: ConfigIssue| {
            Error::invalid(
                location_of(&issue),
                issue.key.clone(),
                issue.message.clone(),
            )
            .with_hint(issue.hint.clone())
        };
        let implementation = factory.get(&phase.mode).ok_or_else(|| {
            let key = if phase.key_locations.contains_key("mode") {
                "mode"
            } else {
                "type"
            };
            Error::invalid(
                phase.locate(key),
                key,
                format!(
                    "unknown mode `{}` (modes: {})",
                    phase.mode,
                    factory.modes().join(", ")
                ),
            )
            .with_hint(did_you_mean(&phase.mode, factory.modes()))
        })?;
        let config = resolved_config(phase, implementation);
        let deps: Vec<usize> = phase
            .depends_on
            .iter()
            .map(|d| output_of_phase[phase_index[d.as_str()]])
            .collect();
        if let Some(known) = implementation.config_keys() {
            for key in phase.config.keys() {
                if key != "description" && !known.contains(&key.as_str()) {
                    return Err(Error::invalid(
                        phase.locate(key),
                        key.clone(),
                        format!("unknown key for mode `{}`", phase.mode),
                    )
                    .with_hint(did_you_mean(key, known.iter().copied())));
                }
            }
        }
        let grid = config.get("grid").cloned();
        let expand = implementation.expands_grid() && grid.is_some();
        // Each node's config in the mode's normal form, the one it is keyed
        // and run with.
        let normalize = |role: &Role, config: Value| {
            implementation.normalize(config, role).map_err(|issue| {
                // A trial's bad value came from the grid: point there.
                match (role, grid_entry(&issue.key, grid.as_ref(), implementation)) {
                    (Role::Trial { name, .. }, Some(entry)) => issue_error(ConfigIssue {
                        key: format!("grid.{entry}"),
                        message: format!("{} (in trial {name})", issue.message),
                        hint: issue.hint,
                    }),
                    _ => issue_error(issue),
                }
            })
        };
        let mut specs: Vec<NodeSpec> = Vec::new();
        if expand {
            let prefix = implementation.trial_prefix(&Value::Object(config.clone()));
            let trials = grid::expand(grid.as_ref().unwrap_or(&Value::Null), prefix.as_deref())
                .map_err(issue_error)?;
            let plain_key_path = |key: &str| implementation.grid_key_path(key);
            let first = nodes.len();
            let patched = patched_trial_configs(
                &config,
                grid.as_ref().unwrap_or(&Value::Null),
                &trials,
                implementation,
                &normalize,
            );
            let mut patched = patched.map(Vec::into_iter);
            for t in &trials {
                let role = Role::Trial {
                    index: t.index,
                    name: t.name.clone(),
                };
                let trial_config = match patched.as_mut().and_then(Iterator::next) {
                    Some(config) => config,
                    None => normalize(
                        &role,
                        Value::Object(grid::trial_config(&config, t, &plain_key_path)),
                    )?,
                };
                specs.push((
                    format!("{}[{}]", phase.name, t.index),
                    role,
                    trial_config,
                    deps.clone(),
                    Some(phase.name.clone()),
                ));
            }
            let trial_ids = (first..first + trials.len()).collect();
            let role = Role::Gather {
                trials: trials.len(),
            };
            let gather_config = normalize(&role, Value::Object(config.clone()))?;
            specs.push((phase.name.clone(), role, gather_config, trial_ids, None));
        } else {
            let single = normalize(&Role::Single, Value::Object(config.clone()))?;
            match implementation
                .parts(&single, &phase.base_dir, reads)
                .map_err(issue_error)?
            {
                Some(parts) => {
                    let first = nodes.len();
                    let last = parts.len().saturating_sub(1);
                    for (i, part) in parts.into_iter().enumerate() {
                        let mut part_deps = if part.phase_deps {
                            deps.clone()
                        } else {
                            Vec::new()
                        };
                        part_deps.extend(part.after.iter().map(|p| first + p));
                        let id = if i == last {
                            phase.name.clone()
                        } else {
                            format!("{}[{}]", phase.name, part.suffix)
                        };
                        let part_config = normalize(&Role::Single, Value::Object(part.config))?;
                        specs.push((id, Role::Single, part_config, part_deps, None));
                    }
                }
                None => specs.push((phase.name.clone(), Role::Single, single, deps.clone(), None)),
            }
        }
        for (id, role, config, deps, group) in specs {
            let mut inputs = implementation
                .inputs_given(&config, &phase.base_dir, &produced_paths, reads)
                .map_err(issue_error)?;
            // A file another phase declares as an output is that phase's
            // (an edge, added above): its digest enters the key through
            // the upstream's outputs, and it need not exist yet.
            inputs.retain(|input| {
                input_states
                    .entry(input.clone())
                    .or_insert_with(|| InputState::of(input, &produced))
                    .producer
                    .is_none_or(|producer| producer == pi)
            });
            for input in &inputs {
                // The key naming the file: one the mode reads paths
                // from, or the section holding it.
                let paths = implementation.relative_paths();
                let key = paths
                    .iter()
                    .copied()
                    .chain(paths.iter().filter_map(|p| p.split('.').next()))
                    .find(|k| phase.key_locations.contains_key(*k))
                    .unwrap_or("");
                // Trials of a grid read the same files: each is checked once.
                let state = input_states
                    .entry(input.clone())
                    .or_insert_with(|| InputState::of(input, &produced));
                let file = state.file.get_or_insert_with(|| {
                    match workflow.confinement.check_with(input, &mut real_dirs) {
                        Err(root) => FileState::Outside(root.display()),
                        // One stat (following symlinks) tells both.
                        Ok(()) => match std::fs::metadata(input) {
                            Ok(m) if m.is_dir() => FileState::Directory,
                            Ok(m) if m.is_file() => FileState::File,
                            _ => FileState::Missing,
                        },
                    }
                });
                match file {
                    FileState::File => {}
                    FileState::Outside(root) => {
                        return Err(Error::invalid(
                            phase.locate(key),
                            key,
                            format!(
                                "`{}` of `{id}` is outside the workflow root {} (through `..` or a symlink)",
                                input.display(),
                                root
                            ),
                        )
                        .with_hint(Some(
                            "add `allow_outside: true` at the top of the root workflow file to read it anyway".into(),
                        )));
                    }
                    FileState::Directory => {
                        return Err(Error::invalid(
                            phase.locate(key),
                            key,
                            format!("`{}` of `{id}` is a directory, not a file", input.display()),
                        )
                        .with_hint(Some(
                            "`data.path` names one CSV file; for a directory of files use `dir:`, `pattern:` and `symbols:`".into(),
                        )));
                    }
                    FileState::Missing => {
                        return Err(Error::MissingInput {
                            location: phase.locate(key),
                            node: id,
                            path: input.clone(),
                        });
                    }
                }
            }
            let workspace_outputs = implementation.workspace_outputs(&config, &phase.base_dir);
            let keeps = implementation.output_keeps(&config);
            let when = match role {
                Role::Gather { .. } => None,
                _ => phase.when.clone(),
            };
            nodes.push(Node {
                id,
                phase: pi,
                mode: phase.mode.clone(),
                role,
                config: config.into(),
                deps,
                when,
                inputs,
                workspace_outputs,
                keeps,
                base_dir: phase.base_dir.clone(),
                location: phase.location.clone(),
                retries: phase.retries,
                threads: phase.threads,
                group,
            });
        }
        output_of_phase[pi] = nodes.len() - 1;
        output_node.push(nodes.len() - 1);
    }
    check_outputs(&workflow, &nodes)?;
    let mut graph = Graph {
        workflow,
        nodes,
        order: Vec::new(),
        by_id: HashMap::new(),
        condition_read: Vec::new(),
    };
    graph.reindex();
    check_conditions(&graph)?;
    checks(&graph, reads)?;
    graph.order = plan_order(&graph.nodes);
    // From here on configs live in the nodes and errors point at node
    // locations: the IR's copies would only hold memory through the build.
    for phase in &mut graph.workflow.phases {
        phase.config = Default::default();
        phase.inherited = Default::default();
        phase.inherited_from = Default::default();
        phase.key_locations = Default::default();
    }
    Ok(graph)
}

/// What compiling learnt of one input path, kept for the other nodes
/// reading it (the trials of a grid all read the same data).
struct InputState {
    /// The phase declaring it as an output, if any.
    producer: Option<usize>,
    /// Its confinement and kind, once some node keeps it as an input.
    file: Option<FileState>,
}

impl InputState {
    fn of(input: &Path, produced: &Produced) -> InputState {
        InputState {
            producer: produced.producer_of(input),
            file: None,
        }
    }
}

enum FileState {
    File,
    /// Outside the workflow root, described.
    Outside(String),
    Directory,
    Missing,
}

/// The normal configs of a grid's trials, in trial order, built without
/// normalising each trial's whole config: the steps of the normal form
/// owning the sections the grid writes ([`normal::SECTION_STEPS`]) run
/// over each trial's own sections alone, and their output replaces those
/// sections in the normal config of the first trial, which every trial
/// shares otherwise. The steps still check every trial, so values that
/// are only bad together (`fast` not below `slow`) are caught.
///
/// Before it is trusted, this is compared byte for byte with the full
/// normalisation on the first trial and, for each key, on the trial of
/// each of its values with every other key at its first value. `None`
/// when the grid writes a section without such a step, when the mode
/// normalises those sections otherwise (a comparison differs), or when
/// any trial is refused: the caller then normalises every trial in full,
/// which reports the first bad trial exactly as it always has.
fn patched_trial_configs(
    config: &Map<String, Value>,
    grid: &Value,
    trials: &[grid::Trial],
    implementation: &dyn crate::phases::Phase,
    normalize: &dyn Fn(&Role, Value) -> Result<Value, Error>,
) -> Option<Vec<Value>> {
    use crate::phases::config::normal::{SECTION_STEPS, section_step};
    let plain_key_path = |key: &str| implementation.grid_key_path(key);
    #[cfg(test)]
    if tests::FULL_NORMALISATION.get() {
        return None;
    }
    let mut steps: Vec<usize> = Vec::new();
    for key in grid.as_object()?.keys() {
        let path = grid::key_path(key, &plain_key_path);
        let step = section_step(path.first()?)?;
        if !steps.contains(&step) {
            steps.push(step);
        }
    }
    steps.sort_unstable();
    let sections: Vec<&str> = steps
        .iter()
        .flat_map(|&i| SECTION_STEPS[i].0.iter().copied())
        .collect();
    let role_of = |t: &grid::Trial| Role::Trial {
        index: t.index,
        name: t.name.clone(),
    };
    let full = |t: &grid::Trial| {
        normalize(
            &role_of(t),
            Value::Object(grid::trial_config(config, t, &plain_key_path)),
        )
        .ok()
    };
    let Value::Object(shared) = full(trials.first()?)? else {
        return None;
    };
    let patch = |t: &grid::Trial| -> Option<Value> {
        let mut own = grid::trial_sections(config, t, &plain_key_path, &sections);
        for &i in &steps {
            (SECTION_STEPS[i].1)(&mut own).ok()?;
        }
        let mut out = Map::with_capacity(shared.len());
        for (key, value) in &shared {
            let value = if sections.contains(&key.as_str()) {
                // A section the mode keeps but the step drops.
                own.shift_remove(key)?
            } else {
                value.clone()
            };
            out.insert(key.clone(), value);
        }
        // A section the step writes and the mode drops.
        own.is_empty().then_some(Value::Object(out))
    };
    let lengths = grid::axis_lengths(grid).ok()?;
    let mut stride = trials.len();
    for len in lengths {
        stride /= len.max(1);
        for value in 0..len {
            let probe = trials.get(value * stride)?;
            let bytes = |v: &Value| serde_json::to_vec(v).ok();
            if bytes(&full(probe)?)? != bytes(&patch(probe)?)? {
                return None;
            }
        }
    }
    // Trial by trial in parallel (a grid of 10,000 trials is most of a
    // compile), collected in trial order.
    use rayon::prelude::*;
    trials.par_iter().map(patch).collect()
}

/// A phase's config: the inherited keys its mode uses, then its own.
/// One bound on the trials of all the grids of the graph together,
/// counted from their declarations before any grid is expanded: a
/// workflow of many large grids is refused at the grid that passes the
/// bound without first listing the trials of the others. A grid that
/// does not count is left to the expansion to report.
fn check_trial_budget(
    workflow: &Workflow,
    factory: &dyn Factory,
    phase_order: &[usize],
) -> Result<(), Error> {
    let mut trials: u128 = 0;
    for &pi in phase_order {
        let phase = &workflow.phases[pi];
        let expands = factory.get(&phase.mode).is_some_and(|p| p.expands_grid());
        let Some(declared) = phase.config.get("grid").filter(|_| expands) else {
            continue;
        };
        let Ok(count) = grid::count(declared) else {
            continue;
        };
        trials += count;
        if trials > grid::MAX_TRIALS as u128 {
            return Err(Error::invalid(
                phase.locate("grid"),
                "grid",
                format!(
                    "this grid's {count} trials bring the workflow to {trials}, above the bound of {} trials for one build",
                    grid::MAX_TRIALS
                ),
            ));
        }
    }
    Ok(())
}

fn resolved_config(
    phase: &PhaseIr,
    implementation: &dyn crate::phases::Phase,
) -> Map<String, Value> {
    let mut config = Map::new();
    for key in implementation.inherits() {
        if let Some(v) = phase.inherited.get(*key) {
            let mut v = v.clone();
            if let Some(from) = phase.inherited_from.get(*key)
                && *from != phase.base_dir
            {
                rebase_paths(
                    &mut v,
                    key,
                    implementation.relative_paths(),
                    from,
                    &phase.base_dir,
                );
            }
            config.insert(key.to_string(), v);
        }
    }
    for (k, v) in &phase.config {
        config.insert(k.clone(), v.clone());
    }
    config
}

/// In the inherited value of `key`, each relative path the mode names
/// (dotted, from the top of the config: `data.path`) rebased from `from`,
/// the directory of the file that wrote it, onto `to`, the phase's.
fn rebase_paths(value: &mut Value, key: &str, paths: &[&str], from: &Path, to: &Path) {
    for dotted in paths {
        let mut parts = dotted.split('.');
        if parts.next() != Some(key) {
            continue;
        }
        let mut at = Some(&mut *value);
        for part in parts {
            at = at.and_then(|v| v.get_mut(part));
        }
        if let Some(Value::String(p)) = at
            && Path::new(p.as_str()).is_relative()
        {
            *p = crate::paths::relative_to(&from.join(&*p), to);
        }
    }
}

/// `*` any text (also empty), `?` one character, everything else itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Greedy matching with backtracking to the last `*`: linear in practice.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn absolute_normal(path: &std::path::Path) -> PathBuf {
    normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// Every workspace output a phase declares.
fn produced_outputs(workflow: &Workflow, factory: &dyn Factory) -> Produced {
    let mut produced = Produced::default();
    for (pi, phase) in workflow.phases.iter().enumerate() {
        let Some(implementation) = factory.get(&phase.mode) else {
            continue;
        };
        let config = Value::Object(resolved_config(phase, implementation));
        for (rel, path) in implementation.workspace_outputs(&config, &phase.base_dir) {
            let path = absolute_normal(&path);
            if crate::workspace::is_dir_output(&rel) {
                produced.dirs.entry(path.clone()).or_insert(pi);
            }
            produced.paths.entry(path).or_insert(pi);
        }
    }
    produced
}

/// The workspace outputs the phases declare (absolute, normalised), by
/// the phase declaring each: files and directory outputs.
#[derive(Default)]
struct Produced {
    /// Every declared output, directories included; where two phases
    /// declare one (an error, reported by [`check_outputs`]), the first.
    paths: BTreeMap<PathBuf, usize>,
    dirs: BTreeMap<PathBuf, usize>,
}

impl Produced {
    /// The phase declaring `input` as an output, or a directory output
    /// holding it.
    fn producer_of(&self, input: &std::path::Path) -> Option<usize> {
        let input = absolute_normal(input);
        if let Some(&p) = self.paths.get(&input) {
            return Some(p);
        }
        input.ancestors().find_map(|a| self.dirs.get(a).copied())
    }
}

/// Dependencies from files: a phase whose input another phase declares
/// as an output depends on that phase, as in make. Inputs that cannot be
/// listed are left for the compile loop to report.
fn add_file_edges(
    workflow: &mut Workflow,
    factory: &dyn Factory,
    produced: &Produced,
    produced_paths: &[PathBuf],
    reads: &Reads,
) {
    if produced.paths.is_empty() {
        return;
    }
    let names: Vec<String> = workflow.phases.iter().map(|p| p.name.clone()).collect();
    for phase in &mut workflow.phases {
        let Some(implementation) = factory.get(&phase.mode) else {
            continue;
        };
        let config = Value::Object(resolved_config(phase, implementation));
        let Ok(inputs) =
            implementation.inputs_given(&config, &phase.base_dir, produced_paths, reads)
        else {
            continue;
        };
        for input in inputs {
            // A phase producing its own input is refused later, by
            // `check_outputs`, with its own message rather than a cycle.
            if let Some(producer) = produced.producer_of(&input)
                && names[producer] != phase.name
                && !phase.depends_on.contains(&names[producer])
            {
                phase.depends_on.push(names[producer].clone());
            }
        }
    }
}

/// Phases in declaration order, moved only as far as a forward
/// `depends_on` requires (Kahn with a min-heap on declaration index).
fn topo_sort_phases(workflow: &Workflow, index: &HashMap<&str, usize>, order: &mut Vec<usize>) {
    let n = workflow.phases.len();
    let mut indegree = vec![0usize; n];
    let mut dependents = vec![Vec::new(); n];
    for (i, p) in workflow.phases.iter().enumerate() {
        for d in &p.depends_on {
            indegree[i] += 1;
            dependents[index[d.as_str()]].push(i);
        }
    }
    *order = kahn(&indegree, &dependents);
}

/// The `grid:` key that sets config key `key` in a trial: a dotted grid key
/// names a config path, a plain one the path the mode gives it.
fn grid_entry(
    key: &str,
    grid: Option<&Value>,
    implementation: &dyn crate::phases::Phase,
) -> Option<String> {
    let grid = grid?.as_object()?;
    grid.keys()
        .find(|g| {
            let path = if g.contains('.') {
                g.to_string()
            } else {
                implementation.grid_key_path(g).join(".")
            };
            key == path || key.starts_with(&format!("{path}."))
        })
        .cloned()
}

fn kahn(indegree: &[usize], dependents: &[Vec<usize>]) -> Vec<usize> {
    let mut indegree = indegree.to_vec();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..indegree.len())
        .filter(|&i| indegree[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(indegree.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    order
}

/// The planned sequence: Kahn's algorithm taking the lowest-index ready
/// node first, the same at any `-j` (docs/design.md §4).
pub fn plan_order(nodes: &[Node]) -> Vec<usize> {
    let mut indegree = vec![0usize; nodes.len()];
    let mut dependents = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        indegree[i] = n.deps.len();
        for &d in &n.deps {
            dependents[d].push(i);
        }
    }
    kahn(&indegree, &dependents)
}

fn check_phase_cycles(workflow: &Workflow) -> Result<(), Error> {
    let mut g: DiGraph<usize, ()> = DiGraph::new();
    let ids: Vec<NodeIndex> = (0..workflow.phases.len()).map(|i| g.add_node(i)).collect();
    let index: HashMap<&str, usize> = workflow
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    for (i, p) in workflow.phases.iter().enumerate() {
        for d in &p.depends_on {
            g.add_edge(ids[index[d.as_str()]], ids[i], ());
        }
    }
    for scc in petgraph::algo::tarjan_scc(&g) {
        let cyclic = scc.len() > 1 || g.contains_edge(scc[0], scc[0]);
        if !cyclic {
            continue;
        }
        let members: Vec<usize> = scc.iter().map(|n| g[*n]).collect();
        let path = cycle_path(workflow, &index, &members);
        return Err(Error::DependencyCycle {
            cycle: path
                .into_iter()
                .map(|i| CycleMember {
                    name: workflow.phases[i].name.clone(),
                    location: workflow.phases[i].location.clone(),
                })
                .collect(),
        });
    }
    Ok(())
}

/// One simple cycle through the strongly connected `members`, starting at
/// the earliest declared, each member followed by one it depends on... in
/// reading order: `a` needs `b` needs `c` needs `a`.
fn cycle_path(workflow: &Workflow, index: &HashMap<&str, usize>, members: &[usize]) -> Vec<usize> {
    let start = *members.iter().min().unwrap_or(&0);
    let mut path = vec![start];
    let mut seen = vec![start];
    let mut current = start;
    loop {
        let next = workflow.phases[current]
            .depends_on
            .iter()
            .map(|d| index[d.as_str()])
            .filter(|d| members.contains(d))
            .min_by_key(|d| (seen.contains(d) && *d != start, *d));
        match next {
            Some(n) if n == start => return path,
            Some(n) if !seen.contains(&n) => {
                path.push(n);
                seen.push(n);
                current = n;
            }
            _ => return path,
        }
    }
}

fn check_outputs(workflow: &Workflow, nodes: &[Node]) -> Result<(), Error> {
    let mut seen: BTreeMap<PathBuf, &str> = BTreeMap::new();
    let dirs: Vec<(PathBuf, &str)> = nodes
        .iter()
        .flat_map(|n| {
            n.workspace_outputs
                .iter()
                .filter(|(rel, _)| crate::workspace::is_dir_output(rel))
                .map(|(_, path)| (normalize(path), n.id.as_str()))
        })
        .collect();
    let workflow_files: Vec<PathBuf> = workflow.files.iter().map(|f| absolute_normal(f)).collect();
    for node in nodes {
        let inputs: Vec<PathBuf> = node.inputs.iter().map(|f| absolute_normal(f)).collect();
        for (_, path) in &node.workspace_outputs {
            check_output_path(workflow, node, path, &workflow_files, &inputs)?;
            let normal = normalize(path);
            // A path inside a directory output is that output's.
            if let Some((dir, owner)) = dirs
                .iter()
                .find(|(dir, _)| normal != *dir && normal.starts_with(dir))
            {
                return Err(Error::DuplicateOutput {
                    location: workflow.phases[node.phase].locate("outputs"),
                    path: normal.clone(),
                    first_node: format!("{owner} (directory output {})", dir.display()),
                    second_node: node.id.clone(),
                });
            }
            if let Some(first) = seen.insert(normal.clone(), &node.id) {
                return Err(Error::DuplicateOutput {
                    location: workflow.phases[node.phase].locate("outputs"),
                    path: normal,
                    first_node: first.to_string(),
                    second_node: node.id.clone(),
                });
            }
        }
    }
    Ok(())
}

/// An output may not be a workflow file or an input of its own node:
/// running the command removes it first.
fn check_output_path(
    workflow: &Workflow,
    node: &Node,
    path: &std::path::Path,
    workflow_files: &[PathBuf],
    inputs: &[PathBuf],
) -> Result<(), Error> {
    let absolute = absolute_normal(path);
    let refuse = |message: String| {
        Err(Error::invalid(
            workflow.phases[node.phase].locate("outputs"),
            "outputs",
            message,
        ))
    };
    if workflow_files.contains(&absolute) {
        return refuse(format!(
            "{} is a workflow file; running the command would remove it",
            path.display()
        ));
    }
    if inputs.contains(&absolute) {
        return refuse(format!(
            "{} is also an input of `{}`; running the command would remove it first",
            path.display(),
            node.id
        ));
    }
    // A symlink on the way out is the file system's state, not the
    // workflow's (a cached graph is not compiled again): the node's
    // execution and restores refuse it (`crate::workspace::open_dir_inside`).
    Ok(())
}

/// Every trigger target must name a node, as `admf build` targets do.
pub fn check_trigger_targets(graph: &Graph) -> Result<(), Error> {
    for trigger in &graph.workflow.triggers {
        for target in &trigger.targets {
            if graph.index_of(&target.name).is_none() {
                return Err(Error::invalid(
                    target.location.clone(),
                    "targets",
                    format!("no node named `{}` in this workflow", target.name),
                )
                .with_hint(did_you_mean(
                    &target.name,
                    graph.nodes.iter().map(|n| n.id.as_str()),
                )));
            }
        }
    }
    Ok(())
}

/// A condition may only read phases upstream of the node: that keeps the
/// dispatcher's decisions a function of upstream outputs.
fn check_conditions(graph: &Graph) -> Result<(), Error> {
    for (i, node) in graph.nodes.iter().enumerate() {
        let Some(cond) = &node.when else { continue };
        let ancestors = graph.closure(&node.deps);
        for phase in cond.phases() {
            let upstream = graph
                .index_of(phase)
                .is_some_and(|j| ancestors[j] && j != i);
            if !upstream {
                let p: &PhaseIr = &graph.workflow.phases[node.phase];
                return Err(Error::invalid(
                    p.locate("when"),
                    "when",
                    format!("`{phase}` is not upstream of `{}`", p.name),
                )
                .with_hint(Some(format!("add `{phase}` to depends_on"))));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    thread_local! {
        /// Makes [`super::patched_trial_configs`] decline, so that every
        /// trial is normalised in full: the reference it is compared with.
        pub static FULL_NORMALISATION: Cell<bool> = const { Cell::new(false) };
    }

    /// A workflow folder with 120 bars of data and `workflow.yaml`
    /// sweeping `grid` over `strategy` and `costs`.
    fn workflow_dir(name: &str, strategy: &Value, costs: &Value, grid: &Value) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "admf-graph-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".git"), "").unwrap();
        let bars =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/SPY_D.csv"))
                .unwrap();
        let bars: Vec<&str> = bars.lines().take(121).collect();
        std::fs::write(dir.join("SPY.csv"), bars.join("\n") + "\n").unwrap();
        std::fs::write(
            dir.join("workflow.yaml"),
            format!(
                "data: {{source: csv, symbols: [SPY], path: SPY.csv}}\nstrategy: {strategy}\ncosts: {costs}\nphases:\n  - sweep:\n      mode: signal_generation\n      grid: {grid}\n"
            ),
        )
        .unwrap();
        dir
    }

    /// The nodes of the compiled workflow in `dir` as JSON, or the error
    /// in full (location, key, message, hint).
    fn compiled(dir: &Path, full: bool) -> Result<String, String> {
        let reads = Reads::new();
        let workflow = crate::workflow::load(&dir.join("workflow.yaml"), &[], &reads)
            .map_err(|e| format!("load: {e:?}"))?;
        FULL_NORMALISATION.set(full);
        let graph = super::compile_with(
            workflow,
            crate::commands::factory().as_ref(),
            super::checks::check,
            &reads,
        );
        FULL_NORMALISATION.set(false);
        let graph = graph.map_err(|e| format!("{e:?}"))?;
        Ok(serde_json::to_string(&graph.nodes).unwrap())
    }

    #[test]
    fn a_sweep_takes_the_patched_path_and_matches_the_full_one() {
        let grid = json!({"lookback": "range(5, 50, 5)", "threshold": [0.0, 0.01, 0.02]});
        let dir = workflow_dir(
            "patched",
            &json!({"type": "momentum", "parameters": {"lookback": 20}}),
            &json!({"fee": 0.001}),
            &grid,
        );
        let workflow =
            crate::workflow::load(&dir.join("workflow.yaml"), &[], &Reads::new()).unwrap();
        let factory = crate::commands::factory();
        let phase = &workflow.phases[0];
        let implementation = factory.get(&phase.mode).unwrap();
        let config = super::resolved_config(phase, implementation);
        let trials = super::grid::expand(&grid, Some("momentum")).unwrap();
        let normalize = |role: &Role, config: Value| {
            implementation
                .normalize(config, role)
                .map_err(|issue| Error::invalid(Location::default(), issue.key, issue.message))
        };
        let patched =
            super::patched_trial_configs(&config, &grid, &trials, implementation, &normalize)
                .expect("a grid of strategy parameters is patched");
        assert_eq!(patched.len(), 30);
        assert_eq!(
            patched[4],
            json!({
                "data": {"source": "csv", "symbols": ["SPY"], "path": "SPY.csv", "on_bad_rows": "error"},
                "strategy": {"type": "momentum", "parameters": {"lookback": 10, "threshold": 0.01, "allow_short": false}},
                "costs": {"fee": 0.001, "slippage_bps": 0.0},
                "execution": {"fill": "close"}
            })
        );
        let fast = compiled(&dir, false).unwrap();
        assert_eq!(fast, compiled(&dir, true).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn values_bad_only_together_are_refused_at_the_first_trial_holding_them() {
        // Each value is fine on its own; fast 30 with slow 20 is not.
        let grid = json!({"fast": [5, 30], "slow": [20, 60]});
        let dir = workflow_dir(
            "together",
            &json!({"type": "sma_crossover"}),
            &json!({}),
            &grid,
        );
        let err = compiled(&dir, false).unwrap_err();
        assert_eq!(err, compiled(&dir, true).unwrap_err());
        assert!(err.contains("key: \"grid.fast\""), "{err}");
        assert!(
            err.contains("in trial sma_crossover_fast=30_slow=20"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A value for grid key `key`: mostly one it accepts, sometimes one
    /// of a wrong type or out of range.
    fn value_for(key: &str) -> BoxedStrategy<Value> {
        let good = match key {
            "lookback" | "fast" | "slow" | "period" => (1i64..60).prop_map(Value::from).boxed(),
            "allow_short" => any::<bool>().prop_map(Value::from).boxed(),
            "costs.fee" => (0u32..20)
                .prop_map(|x| json!(f64::from(x) / 1000.0))
                .boxed(),
            "costs.slippage_bps" => (0i64..50).prop_map(Value::from).boxed(),
            "execution.fill" => {
                proptest::sample::select(vec![json!("close"), json!("next_open")]).boxed()
            }
            _ => (0u32..400).prop_map(|x| json!(f64::from(x) / 4.0)).boxed(),
        };
        let bad = proptest::sample::select(vec![
            json!(0),
            json!(-2),
            json!(2.5),
            json!(500),
            json!(1.5),
            json!("x"),
            json!(true),
        ]);
        prop_oneof![12 => good, 1 => bad].boxed()
    }

    fn sweep() -> impl Strategy<Value = (Value, Value, Value)> {
        let kinds = ["momentum", "sma_crossover", "rsi", "bollinger", "breakout"];
        (
            proptest::sample::select(kinds.to_vec()),
            proptest::collection::vec(any::<bool>(), 7),
            any::<bool>(),
            any::<u64>(),
        )
            .prop_flat_map(|(kind, chosen, costs_in_base, seed)| {
                let names = crate::market::strategy::parameter_names(kind);
                let extra = ["costs.fee", "costs.slippage_bps", "execution.fill"];
                let mut keys: Vec<&str> = names
                    .iter()
                    .copied()
                    .chain(extra)
                    .zip(&chosen)
                    .filter(|(_, on)| **on)
                    .map(|(k, _)| k)
                    .collect();
                if keys.is_empty() {
                    keys.push(names[0]);
                }
                // Now and then a key the mode does not know.
                if seed % 10 == 0 {
                    keys.push("lookbak");
                }
                let axes: Vec<_> = keys
                    .iter()
                    .map(|k| proptest::collection::vec(value_for(k), 1..4))
                    .collect();
                let base: Vec<_> = names.iter().map(|k| value_for(k)).collect();
                let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
                (Just((kind, keys, costs_in_base, seed)), axes, base)
            })
            .prop_map(|((kind, keys, costs_in_base, seed), axes, base)| {
                let names = crate::market::strategy::parameter_names(kind);
                // Some base parameters written out, others left to defaults.
                let parameters: serde_json::Map<String, Value> = names
                    .iter()
                    .zip(base)
                    .enumerate()
                    .filter(|(i, _)| seed >> (i + 8) & 1 == 1)
                    .map(|(_, (k, v))| (k.to_string(), v))
                    .collect();
                let strategy = json!({"type": kind, "parameters": parameters});
                let grid: serde_json::Map<String, Value> = keys
                    .into_iter()
                    .zip(axes)
                    .map(|(k, values)| (k, Value::Array(values)))
                    .collect();
                let costs = if costs_in_base {
                    json!({"fee": 0.001})
                } else {
                    json!({})
                };
                (strategy, costs, Value::Object(grid))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The patched trial configs are the fully normalised ones, byte
        /// for byte, and a bad grid is refused with the same error
        /// (file, line, key, message, hint).
        #[test]
        fn patched_trials_equal_fully_normalised_ones((strategy, costs, grid) in sweep()) {
            let dir = workflow_dir("prop", &strategy, &costs, &grid);
            let fast = compiled(&dir, false);
            let full = compiled(&dir, true);
            std::fs::remove_dir_all(&dir).unwrap();
            prop_assert_eq!(fast, full, "grid {} over {} costs {}", grid, strategy, costs);
        }
    }
}
