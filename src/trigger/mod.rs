//! Triggers: the root workflow's `on:` key, and what `admf watch` builds
//! when one fires. A trigger only chooses *what to build* (the whole
//! workflow or its `targets:`); what runs is decided by keys and the
//! store, exactly as for `admf build WF.yaml TARGET...`.
//!
//! - `data_available:` globs fire when a matching file is created,
//!   written or renamed into place;
//! - `schedule:` cron entries fire on the clock ([`schedule`], [`cron`]).
//!
//! `admf build` and `admf validate` check triggers and otherwise ignore
//! them. The `on:` syntax is read by `workflow::on`.

pub mod cron;
pub mod schedule;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{Value, json};

use self::schedule::Schedule;
use crate::error::{Error, Location, did_you_mean};
use crate::graph::Graph;
use crate::workflow::glob::PathGlob;

#[derive(Clone, Debug)]
pub struct Trigger {
    pub event: Event,
    /// Nodes to build with what they need; empty: the whole workflow.
    pub targets: Vec<Target>,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub enum Event {
    DataAvailable(Vec<PathGlob>),
    Schedule(Schedule),
}

#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub location: Location,
}

impl Trigger {
    pub fn schedule(&self) -> Option<&Schedule> {
        match &self.event {
            Event::Schedule(s) => Some(s),
            Event::DataAvailable(_) => None,
        }
    }

    pub fn globs(&self) -> &[PathGlob] {
        match &self.event {
            Event::DataAvailable(globs) => globs,
            Event::Schedule(_) => &[],
        }
    }

    fn target_names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }
}

/// Every trigger target must name a node, as `admf build` targets do.
pub fn check_targets(graph: &Graph) -> Result<(), Error> {
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

/// Why a build of `admf watch` starts: one or more of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    pub kind: Kind,
    /// When it fired: the scheduled time for a schedule, else the clock's
    /// time when the build was decided.
    pub time: Timestamp,
    /// Nodes to build; empty: the whole workflow.
    pub targets: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The first build of a watch session.
    Start,
    /// A file the workflow reads (or a workflow file) changed.
    Change(Vec<String>),
    /// Files matching a `data_available` glob.
    DataAvailable(Vec<String>),
    Schedule {
        cron: String,
        tz: String,
    },
}

impl Fired {
    /// The `trigger` line of `events.jsonl`.
    pub fn event_line(&self) -> Value {
        let mut line = json!({"event": "trigger"});
        let (kind, extra) = match &self.kind {
            Kind::Start => ("start", json!({})),
            Kind::Change(paths) => ("change", json!({"paths": paths})),
            Kind::DataAvailable(paths) => ("data_available", json!({"paths": paths})),
            Kind::Schedule { cron, tz } => ("schedule", json!({"cron": cron, "tz": tz})),
        };
        line["kind"] = kind.into();
        line["time"] = self.time.to_string().into();
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                line[k] = v;
            }
        }
        line["targets"] = json!(self.targets);
        line
    }

    /// One line for the terminal.
    pub fn describe(&self) -> String {
        let what = match &self.kind {
            Kind::Start => "start".to_string(),
            Kind::Change(paths) => format!("changed: {}", paths.join(", ")),
            Kind::DataAvailable(paths) => format!("data available: {}", paths.join(", ")),
            Kind::Schedule { cron, tz } => {
                let tz_obj = jiff::tz::db().get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
                format!(
                    "schedule `{cron}` ({tz}) fired for {}",
                    self.time.to_zoned(tz_obj).strftime("%Y-%m-%d %H:%M %Z")
                )
            }
        };
        if self.targets.is_empty() {
            what
        } else {
            format!("{what} → building {}", self.targets.join(", "))
        }
    }
}

/// The targets of one build serving all of `fired`: the union of theirs,
/// or none (the whole workflow) when one of them wants everything.
pub fn targets(fired: &[Fired]) -> Vec<String> {
    if fired.iter().any(|f| f.targets.is_empty()) {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for name in fired.iter().flat_map(|f| &f.targets) {
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// Paths as recorded: relative to `root` when inside it.
pub fn shown(paths: &BTreeSet<PathBuf>, root: &Path) -> Vec<String> {
    paths
        .iter()
        .map(|p| match p.strip_prefix(root) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => p.display().to_string(),
        })
        .collect()
}

/// The data triggers fired by `changed` (absolute, normalised paths that
/// exist as files): for each trigger by position, its matching paths.
pub fn data_fired(
    triggers: &[Trigger],
    changed: &BTreeSet<PathBuf>,
) -> Vec<(usize, BTreeSet<PathBuf>)> {
    triggers
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let hits: BTreeSet<PathBuf> = changed
                .iter()
                .filter(|p| t.globs().iter().any(|g| g.is_match(p)))
                .cloned()
                .collect();
            (!hits.is_empty()).then_some((i, hits))
        })
        .collect()
}

/// A `schedule` firing of `trigger` at `time`.
pub fn schedule_fired(trigger: &Trigger, time: Timestamp) -> Option<Fired> {
    let s = trigger.schedule()?;
    Some(Fired {
        kind: Kind::Schedule {
            cron: s.expression.clone(),
            tz: s.tz_name.clone(),
        },
        time,
        targets: trigger.target_names(),
    })
}

/// A `data_available` firing of `trigger` for `paths`.
pub fn data_available(trigger: &Trigger, paths: Vec<String>, time: Timestamp) -> Fired {
    Fired {
        kind: Kind::DataAvailable(paths),
        time,
        targets: trigger.target_names(),
    }
}
