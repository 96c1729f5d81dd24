//! `admf watch`: build, then build again whenever something happens:
//!
//! - a file the workflow reads changes: a workflow file (included ones
//!   too), a data file, an `inputs:` file, or a new file in one of their
//!   directories (a new CSV for a `dir:` + `pattern:` data spec or an
//!   `inputs:` glob). This rebuilds what `admf watch` was asked to build.
//! - a file matching a `data_available` glob of the root file's `on:` is
//!   created, written or renamed into place (its directory may not even
//!   exist yet): its trigger's targets are built. Such a file fires only
//!   its trigger, also when the workflow reads it elsewhere.
//! - a `schedule` entry's time comes: its targets are built.
//!
//! Each build is an ordinary `admf build` of the chosen targets (the union
//! over everything that fired at once), so only the nodes whose keys
//! changed run, and its `events.jsonl` starts with one `trigger` line per
//! reason (see `events`). Bursts of file events are debounced; changes to
//! the store and to the workflow's own outputs are ignored. A workflow
//! edit that breaks it prints the error and keeps watching with the last
//! good triggers. Stopping with Ctrl-C at any moment is safe: the store
//! never holds a half entry.
//!
//! Testing hook: `ADMF_WATCH_CLOCK=2026-11-27T09:29:58-05:00` starts the
//! schedule clock at that instant; it then runs in real time.

mod dirs;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use notify::{Event, EventKind};

use self::dirs::{Watched, Watches, absolute, dir_of};
use super::{build, color, project_root};
use crate::cli::{BuildArgs, WorkflowArgs};
use crate::error::Error;
use crate::trigger::schedule::{Clock, Scheduler, StartedAt, SystemClock};
use crate::trigger::{self, Fired, Kind};

/// Quiet time after the last event before a rebuild starts.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// The longest wait before the clock is looked at again.
const CLOCK_CHECK: Duration = Duration::from_secs(60);

/// The environment variable that sets the schedule clock (for tests).
pub const CLOCK_ENV: &str = "ADMF_WATCH_CLOCK";

fn clock() -> Result<Box<dyn Clock>, Error> {
    let Some(text) = std::env::var_os(CLOCK_ENV) else {
        return Ok(Box::new(SystemClock));
    };
    let text = text.to_string_lossy();
    let start: jiff::Timestamp = text.parse().map_err(|e| Error::Usage {
        message: format!("{CLOCK_ENV}=`{text}`: {e}"),
        hint: Some("give an instant with its offset, e.g. 2026-11-27T09:29:58-05:00".into()),
    })?;
    Ok(Box::new(StartedAt::new(start)))
}

/// One session's state between builds.
struct Session<'a> {
    wf: &'a WorkflowArgs,
    args: &'a BuildArgs,
    clock: Box<dyn Clock>,
    scheduler: Scheduler,
    store: PathBuf,
    root: PathBuf,
    rx: Receiver<notify::Result<Event>>,
    watches: Watches,
    watched: Watched,
}

pub fn watch(wf: &WorkflowArgs, args: &BuildArgs) -> Result<i32, Error> {
    let clock = clock()?;
    // One watcher for the whole session: a change made while a build runs
    // waits in the channel and starts the next build.
    let (tx, rx) = channel();
    let mut s = Session {
        wf,
        args,
        scheduler: Scheduler::new(clock.now()),
        store: absolute(&super::store_root(wf)),
        root: absolute(&project_root(&wf.workflow)),
        rx,
        watches: Watches::new(tx, &wf.workflow)?,
        watched: Watched::default(),
        clock,
    };
    let mut fired = vec![Fired {
        kind: Kind::Start,
        time: s.clock.now(),
        targets: args.targets.clone(),
    }];
    loop {
        s.build(&fired);
        crate::errln!(
            "watching {} director{} for changes (Ctrl-C stops)",
            s.watches.count(),
            if s.watches.count() == 1 { "y" } else { "ies" }
        );
        match s.wait() {
            Some(next) => fired = next,
            None => return Ok(0),
        }
    }
}

impl Session<'_> {
    /// One build for everything in `fired`; errors are shown, not returned.
    fn build(&mut self, fired: &[Fired]) {
        for f in fired.iter().filter(|f| f.kind != Kind::Start) {
            crate::errln!("{}", f.describe());
        }
        let args = BuildArgs {
            targets: trigger::targets(fired),
            ..self.args.clone()
        };
        let why: Vec<serde_json::Value> = fired.iter().map(Fired::event_line).collect();
        // One compile serves the build and the list of what to watch.
        let started = Instant::now();
        // Each build notes its reads afresh: what an earlier build read is
        // no evidence for this one.
        let reads = crate::reads::Reads::new();
        let outcome = super::compile(self.wf, &reads).and_then(|graph| {
            self.watched = Watched::of(&graph);
            build::build_compiled(self.wf, graph, &args, started, &why, reads)
        });
        if let Err(e) = outcome {
            crate::err!("{}", e.render(color()));
            // Ctrl-C during a build stops the watch too, as it does
            // between builds (where the signal's default action runs).
            if let crate::error::Error::Interrupted { signal } = e {
                std::process::exit(128 + signal);
            }
            // Keep watching what we knew, and the root file itself.
            self.watched.dirs.insert(dir_of(&self.wf.workflow));
        }
        self.watches.ensure(&self.watched.wanted());
    }

    /// What to build next; `None` when the watcher is gone.
    fn wait(&mut self) -> Option<Vec<Fired>> {
        let mut changed: BTreeSet<PathBuf> = BTreeSet::new();
        let mut quiet_at = Instant::now();
        loop {
            let timeout = if changed.is_empty() {
                let next = self.scheduler.next(self.schedules());
                Scheduler::wait(self.clock.now(), next, CLOCK_CHECK)
            } else {
                quiet_at.saturating_duration_since(Instant::now())
            };
            match self.rx.recv_timeout(timeout) {
                Ok(Ok(event)) => {
                    if self.take(event, &mut changed) {
                        quiet_at = Instant::now() + DEBOUNCE;
                    }
                }
                Ok(Err(_)) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    let fired = self.decide(std::mem::take(&mut changed));
                    if !fired.is_empty() {
                        return Some(fired);
                    }
                }
            }
        }
    }

    fn schedules(&self) -> impl Iterator<Item = &trigger::schedule::Schedule> {
        self.watched.triggers.iter().filter_map(|t| t.schedule())
    }

    /// Note the paths of `event` that may matter; whether there were any.
    fn take(&mut self, event: Event, changed: &mut BTreeSet<PathBuf>) -> bool {
        if !matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        ) {
            return false;
        }
        let before = changed.len();
        for path in event.paths.iter().map(|p| absolute(p)) {
            if self.watches.may_bring_missing(&path) {
                // A data directory appeared: what is already in it is new.
                for dir in self.watches.ensure(&self.watched.wanted()) {
                    for glob in self.watched.triggers.iter().flat_map(|t| t.globs()) {
                        if glob.dir().starts_with(&dir) {
                            changed.extend(glob.files(&crate::reads::Reads::new()));
                        }
                    }
                }
            }
            if self.watched.relevant(&path, &self.store) {
                changed.insert(path);
            }
        }
        changed.len() > before
    }

    /// What fires for the `changed` paths (after debouncing) and the
    /// schedules due now.
    fn decide(&mut self, changed: BTreeSet<PathBuf>) -> Vec<Fired> {
        let now = self.clock.now();
        let w = &self.watched;
        let arrived: BTreeSet<PathBuf> = changed
            .iter()
            .filter(|p| p.is_file() && w.confinement.check(p).is_ok())
            .cloned()
            .collect();
        let data = trigger::data_fired(&w.triggers, &arrived);
        let claimed: BTreeSet<&PathBuf> = data.iter().flat_map(|(_, paths)| paths).collect();
        let plain: BTreeSet<PathBuf> = changed
            .iter()
            .filter(|p| !claimed.contains(p) && w.changes_reads(p))
            .cloned()
            .collect();
        let mut fired = Vec::new();
        if !plain.is_empty() {
            fired.push(Fired {
                kind: Kind::Change(trigger::shown(&plain, &self.root)),
                time: now,
                targets: self.args.targets.clone(),
            });
        }
        for (i, paths) in &data {
            let shown = trigger::shown(paths, &self.root);
            fired.push(Fired::data_available(&w.triggers[*i], shown, now));
        }
        let scheduled: Vec<_> = w
            .triggers
            .iter()
            .filter_map(|t| Some((t, t.schedule()?)))
            .collect();
        let due = self.scheduler.due(scheduled.iter().map(|(_, s)| *s), now);
        for (i, time) in due {
            let (t, s) = scheduled[i];
            fired.push(Fired::schedule(t, s, time));
        }
        fired
    }
}
