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
mod fired;
pub mod schedule;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::PathBuf;

pub use self::fired::{Fired, Kind, shown, targets};
use self::schedule::Schedule;
use crate::error::Location;
use crate::paths::PathGlob;

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

    pub fn target_names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }
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
