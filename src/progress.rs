//! Build progress on stderr: a live bar naming the running nodes on a
//! terminal, one plain line per finished node otherwise (CI, pipes).
//! Cached nodes print nothing in plain mode; the summary counts them. On a
//! terminal the trials of a grid print no line each: their count and time
//! come in one line when the grid's gather node finishes.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::dispatch::Observer;
use crate::events::EventLog;
use crate::graph::Graph;
use crate::run::{NodeResult, Outcome};

pub struct Progress {
    bar: Option<ProgressBar>,
    running: Vec<usize>,
    /// Which nodes got a job (a node settled by its upstream never does).
    pub started: Vec<bool>,
    pub events: EventLog,
    verbose: bool,
    quiet: bool,
    /// On a terminal: trials that ran, and their seconds, per grid phase.
    trials_ran: std::collections::HashMap<String, (usize, f64)>,
}

impl Progress {
    pub fn new(total: usize, events: EventLog, verbose: bool, quiet: bool) -> Self {
        let live = !quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        let bar = live.then(|| {
            let bar = ProgressBar::new(total as u64);
            let style = ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            running: Vec::new(),
            started: vec![false; total],
            events,
            verbose,
            quiet,
            trials_ran: Default::default(),
        }
    }

    fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(|| crate::err!("{line}")),
            None => crate::err!("{line}"),
        }
    }

    fn update(&self, graph: &Graph) {
        if let Some(bar) = &self.bar {
            let names: Vec<&str> = self
                .running
                .iter()
                .map(|&i| graph.nodes[i].id.as_str())
                .collect();
            bar.set_message(names.join(", "));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn planned(&mut self, graph: &Graph, selected: &[usize]) {
        self.events.plan(
            selected
                .iter()
                .map(|&i| graph.nodes[i].id.as_str())
                .collect(),
        );
    }

    fn started(&mut self, graph: &Graph, index: usize) {
        self.running.push(index);
        if let Some(started) = self.started.get_mut(index) {
            *started = true;
        }
        self.events.start(&graph.nodes[index].id);
        self.update(graph);
    }

    fn finished(&mut self, graph: &Graph, index: usize, result: &NodeResult) {
        self.running.retain(|&i| i != index);
        let node = &graph.nodes[index];
        let status = result.outcome.status().name();
        self.events.finish(
            &node.id,
            status,
            result.key.as_deref(),
            (result.seconds * 1000.0).round() as u64,
        );
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        if let Some((count, seconds)) = self.trials_ran.remove(&node.id) {
            self.say(&format!(
                "{:<8}{}: {count} trials ({seconds:.2}s)\n",
                "ran", node.id
            ));
        }
        match &result.outcome {
            Outcome::Cached => {}
            Outcome::Ran if self.bar.is_some() && node.group.is_some() => {
                let group = node.group.clone().unwrap_or_default();
                let entry = self.trials_ran.entry(group).or_default();
                entry.0 += 1;
                entry.1 += result.seconds;
            }
            Outcome::Ran => self.say(&format!(
                "{:<8}{} ({:.2}s)\n",
                "ran", node.id, result.seconds
            )),
            Outcome::Skipped(reason) => self.say(&skipped_line(&node.id, reason)),
            Outcome::Failed(message) => {
                let log = if self.verbose {
                    String::from_utf8_lossy(&result.log)
                } else {
                    failure_tail(&result.log)
                };
                let mut text = format!("{:<8}{}: {message}\n", "FAILED", node.id);
                if !log.trim().is_empty() {
                    text.push_str(&format!("--- log of {} ---\n{log}", node.id));
                    if !log.ends_with('\n') {
                        text.push('\n');
                    }
                    text.push_str("---\n");
                }
                self.say(&text);
            }
        }
        if self.verbose && !matches!(result.outcome, Outcome::Failed(_)) && !result.log.is_empty() {
            self.say(&format!(
                "--- log of {} ---\n{}",
                node.id,
                String::from_utf8_lossy(&result.log)
            ));
        }
        self.update(graph);
    }
}

/// How much of a failed node's log is shown: its last lines, at most
/// this many and this many bytes (`--verbose` shows the whole log).
pub const FAILURE_TAIL_LINES: usize = 50;
pub const FAILURE_TAIL_BYTES: usize = 64 * 1024;

/// The end of a failed node's log, with a line saying how much came
/// before: the cause is nearly always at the end, and a log of a
/// hundred megabytes would bury it.
fn failure_tail(log: &[u8]) -> std::borrow::Cow<'_, str> {
    let mut start = log.len().saturating_sub(FAILURE_TAIL_BYTES);
    // The final newline ends the last line rather than starting another.
    let body = log.strip_suffix(b"\n").unwrap_or(log);
    if let Some(i) = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(FAILURE_TAIL_LINES - 1)
        .map(|(i, _)| i + 1)
    {
        start = start.max(i);
    }
    if start == 0 {
        return String::from_utf8_lossy(log);
    }
    let left_out = &log[..start];
    let lines = left_out.iter().filter(|b| **b == b'\n').count();
    let mut text = format!(
        "[{} earlier bytes ({lines} lines) not shown; --verbose shows the whole log]\n",
        left_out.len()
    );
    text.push_str(&String::from_utf8_lossy(&log[start..]));
    std::borrow::Cow::Owned(text)
}

/// The line a skipped node prints.
pub fn skipped_line(node: &str, reason: &str) -> String {
    format!("{:<8}{node} ({reason})\n", "skipped")
}
