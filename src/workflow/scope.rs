//! Scopes: each workflow file names its phases locally; `depends_on`
//! and `when:` refer to names of the same scope, `include/inner` reaches
//! into an include, and depending on an include means depending on its
//! sinks. References are recorded while files are read and resolved here
//! once every file is read, so a phase may name one declared after it.

use std::collections::BTreeMap;
use std::path::Path;

use super::Loader;
use crate::error::{Error, Location, did_you_mean};
use crate::ir::condition::Condition;
use crate::ir::{PhaseIr, Workflow};

pub(super) struct Scope {
    pub(super) locals: BTreeMap<String, Local>,
    /// Local names that no other phase of the scope depends on.
    pub(super) sinks: Vec<String>,
    /// Deps of the include that opened this scope (in the parent scope).
    pub(super) entry: Vec<Dep>,
}

#[derive(Clone, Copy)]
pub(super) enum Local {
    Node(usize),
    Include(usize),
    /// A fan-out phase: its instances, pending indices `start..end`.
    Group(usize, usize),
    /// An include with `foreach:` or `matrix:`: its instances are
    /// `Loader::include_groups[i]`.
    IncludeGroup(usize),
}

#[derive(Clone)]
pub(super) enum Dep {
    Name {
        scope: usize,
        name: String,
        location: Location,
        key: String,
        /// The binding of the depending instance: naming a fan-out phase
        /// from it means the instances that agree on the names both bind.
        binding: Vec<(String, String)>,
    },
    Entry(usize),
}

pub(super) struct Pending {
    pub(super) phase: PhaseIr,
    pub(super) scope: usize,
    pub(super) deps: Vec<Dep>,
    pub(super) when: Option<(Condition, Location)>,
    /// A fan-out instance's names and values; empty otherwise.
    pub(super) binding: Vec<(String, String)>,
}

impl Loader {
    /// The node indices a dependency reference stands for.
    pub(super) fn resolve(&self, dep: &Dep, out: &mut Vec<usize>) -> Result<(), Error> {
        match dep {
            Dep::Entry(scope) => {
                for d in &self.scopes[*scope].entry {
                    self.resolve(d, out)?;
                }
                Ok(())
            }
            Dep::Name {
                scope,
                name,
                location,
                key,
                binding,
            } => match self.lookup(*scope, name, location, key)? {
                Local::Node(i) => {
                    out.push(i);
                    Ok(())
                }
                Local::Group(start, end) => {
                    out.extend(
                        (start..end)
                            .filter(|&i| super::fanout::agree(&self.pending[i].binding, binding)),
                    );
                    Ok(())
                }
                Local::Include(inner) => self.sinks(inner, out),
                Local::IncludeGroup(g) => {
                    for (inner, b) in &self.include_groups[g] {
                        if super::fanout::agree(b, binding) {
                            self.sinks(*inner, out)?;
                        }
                    }
                    Ok(())
                }
            },
        }
    }

    fn sinks(&self, scope: usize, out: &mut Vec<usize>) -> Result<(), Error> {
        for name in &self.scopes[scope].sinks {
            match self.scopes[scope].locals[name] {
                Local::Node(i) => out.push(i),
                Local::Group(start, end) => out.extend(start..end),
                Local::Include(inner) => self.sinks(inner, out)?,
                Local::IncludeGroup(g) => {
                    for (inner, _) in &self.include_groups[g] {
                        self.sinks(*inner, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A local name, or `include/inner` reaching into an include.
    pub(super) fn lookup(
        &self,
        scope: usize,
        name: &str,
        location: &Location,
        key: &str,
    ) -> Result<Local, Error> {
        let (head, rest) = match name.split_once('/') {
            Some((h, r)) => (h, Some(r)),
            None => (name, None),
        };
        let locals = &self.scopes[scope].locals;
        let found = locals.get(head).copied().ok_or_else(|| {
            Error::invalid(
                location.clone(),
                key,
                format!("no phase named `{head}` in this workflow"),
            )
            .with_hint(did_you_mean(head, locals.keys().map(String::as_str)))
        })?;
        match (found, rest) {
            (_, None) => Ok(found),
            (Local::Include(inner), Some(rest)) => self.lookup(inner, rest, location, key),
            (Local::Node(_) | Local::Group(..), Some(_)) => Err(Error::invalid(
                location.clone(),
                key,
                format!("`{head}` is a phase, not an included workflow"),
            )),
            (Local::IncludeGroup(_), Some(_)) => Err(Error::invalid(
                location.clone(),
                key,
                format!(
                    "`{head}` is included once per item; name one instance (`{head}[...]/{}`)",
                    rest.unwrap_or_default()
                ),
            )),
        }
    }

    pub(super) fn finish(self, root: &Path) -> Result<Workflow, Error> {
        let mut phases = Vec::with_capacity(self.pending.len());
        for p in &self.pending {
            let mut idx = Vec::new();
            for d in &p.deps {
                self.resolve(d, &mut idx)?;
            }
            let mut depends_on: Vec<String> = Vec::new();
            for i in idx {
                let name = &self.pending[i].phase.name;
                if !depends_on.contains(name) {
                    depends_on.push(name.clone());
                }
            }
            let mut phase = p.phase.clone();
            phase.depends_on = depends_on;
            if let Some((cond, location)) = &p.when {
                let mut cond = cond.clone();
                let mut names = BTreeMap::new();
                for name in cond.phases() {
                    let local = self.lookup(p.scope, name, location, "when")?;
                    if let Local::Group(..) = local {
                        return Err(Error::invalid(
                            location.clone(),
                            "when",
                            format!(
                                "`{name}` is a fan-out phase; name one of its instances (`{name}[...]`)"
                            ),
                        ));
                    }
                    let Local::Node(i) = local else {
                        return Err(Error::invalid(
                            location.clone(),
                            "when",
                            format!(
                                "`{name}` is an included workflow; name one of its phases (`{name}/phase`)"
                            ),
                        ));
                    };
                    names.insert(name.to_string(), self.pending[i].phase.name.clone());
                }
                cond.map_phases(&|n| names[n].clone());
                phase.when = Some(cond);
            }
            phases.push(phase);
        }
        Ok(Workflow {
            root_file: root.to_path_buf(),
            files: self.files,
            files_digest: self.files_digest.finalize().to_hex().to_string(),
            phases,
            confinement: self.confinement,
            triggers: Vec::new(),
            executor: Default::default(),
            results: None,
        })
    }
}
