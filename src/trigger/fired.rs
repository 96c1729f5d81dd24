//! Why a build of `admf watch` starts ([`Fired`]): its `trigger` line in
//! `events.jsonl` (format in `events`) and its line on the terminal.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::Trigger;
use super::schedule::Schedule;

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
    /// Files the workflow reads (or workflow files) changed.
    Change(Vec<String>),
    /// Files matching a `data_available` glob arrived.
    DataAvailable(Vec<String>),
    Schedule {
        cron: String,
        tz: String,
    },
}

impl Fired {
    pub fn data_available(trigger: &Trigger, paths: Vec<String>, time: Timestamp) -> Fired {
        Fired {
            kind: Kind::DataAvailable(paths),
            time,
            targets: trigger.target_names(),
        }
    }

    pub fn schedule(trigger: &Trigger, schedule: &Schedule, time: Timestamp) -> Fired {
        Fired {
            kind: Kind::Schedule {
                cron: schedule.expression.clone(),
                tz: schedule.tz_name.clone(),
            },
            time,
            targets: trigger.target_names(),
        }
    }

    /// The `trigger` line of `events.jsonl`.
    pub fn event_line(&self) -> Value {
        let mut line = Map::new();
        line.insert("event".into(), "trigger".into());
        let kind = match &self.kind {
            Kind::Start => "start",
            Kind::Change(_) => "change",
            Kind::DataAvailable(_) => "data_available",
            Kind::Schedule { .. } => "schedule",
        };
        line.insert("kind".into(), kind.into());
        line.insert("time".into(), self.time.to_string().into());
        match &self.kind {
            Kind::Start => {}
            Kind::Change(paths) | Kind::DataAvailable(paths) => {
                line.insert("paths".into(), json!(paths));
            }
            Kind::Schedule { cron, tz } => {
                line.insert("cron".into(), cron.as_str().into());
                line.insert("tz".into(), tz.as_str().into());
            }
        }
        line.insert("targets".into(), json!(self.targets));
        Value::Object(line)
    }

    /// One line for the terminal.
    pub fn describe(&self) -> String {
        let what = match &self.kind {
            Kind::Start => "start".to_string(),
            Kind::Change(paths) => format!("changed: {}", paths.join(", ")),
            Kind::DataAvailable(paths) => format!("data available: {}", paths.join(", ")),
            Kind::Schedule { cron, tz } => {
                let zone = jiff::tz::db().get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
                format!(
                    "schedule `{cron}` ({tz}) fired for {}",
                    self.time.to_zoned(zone).strftime("%Y-%m-%d %H:%M %Z")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(targets: &[&str]) -> Fired {
        Fired {
            kind: Kind::Change(vec!["in/a.txt".into()]),
            time: Timestamp::UNIX_EPOCH,
            targets: targets.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn one_build_serves_the_union_of_targets() {
        assert_eq!(
            targets(&[fired(&["b", "a"]), fired(&["a", "c"])]),
            ["b", "a", "c"]
        );
        assert!(targets(&[fired(&["a"]), fired(&[])]).is_empty());
    }

    #[test]
    fn the_event_line_names_kind_time_paths_and_targets() {
        assert_eq!(
            serde_json::to_string(&fired(&["b"]).event_line()).unwrap(),
            r#"{"event":"trigger","kind":"change","time":"1970-01-01T00:00:00Z","paths":["in/a.txt"],"targets":["b"]}"#
        );
    }
}
