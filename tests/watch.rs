//! `admf watch` against real file events: an input edit rebuilds what
//! reads it, a broken workflow is reported and watching goes on, a new
//! file in a watched directory is noticed; `on:` triggers: a file matching
//! a `data_available` glob builds that trigger's targets (new, written or
//! renamed into place, also in a folder created later), other files build
//! nothing, and a schedule fires on an injected clock. Every wait is
//! bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::{DIAMOND, Project, example};
use serde_json::Value;

/// How long one build may take to be reported. A passing test waits only
/// as long as the build takes, so the bound is generous: three minutes
/// holds on a two-core machine busy with other compilers (30 s did not).
/// `ADMF_TEST_WAIT_SECS` raises it for slower machines still.
fn wait_limit() -> Duration {
    let secs = std::env::var("ADMF_TEST_WAIT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(180);
    Duration::from_secs(secs)
}

struct Watch {
    child: Child,
    lines: Receiver<String>,
}

impl Watch {
    fn start(p: &Project) -> Watch {
        Watch::with(p, &["wf.yaml"], None)
    }

    /// `admf watch -j1 ARGS...`, with the schedule clock starting at `clock`.
    fn with(p: &Project, args: &[&str], clock: Option<&str>) -> Watch {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("admf"));
        cmd.arg("watch").args(args).arg("-j1");
        match clock {
            Some(c) => cmd.env("ADMF_WATCH_CLOCK", c),
            None => cmd.env_remove("ADMF_WATCH_CLOCK"),
        };
        let mut child = cmd
            .current_dir(p.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("ADMF_CACHE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start admf watch");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    /// Every line up to and including the next "watching …" line.
    fn until_watching(&self) -> Vec<String> {
        let limit = wait_limit();
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with("watching ");
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!("no rebuild within {limit:?} ({e}); saw {seen:#?}"),
            }
        }
    }
}

impl Watch {
    /// The first build (of at most three) whose lines satisfy `done`: on a
    /// slow machine one save can arrive as two bursts of events.
    fn until(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let mut lines = self.until_watching();
        for _ in 0..2 {
            if done(&lines) {
                break;
            }
            lines = self.until_watching();
        }
        lines
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of the last build's `events.jsonl`.
fn events(p: &Project) -> Vec<Value> {
    let runs = p.path("cache/runs");
    let dir = std::fs::read_dir(&runs)
        .unwrap_or_else(|e| panic!("{}: {e}", runs.display()))
        .next()
        .expect("one workflow's runs")
        .unwrap()
        .path();
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `trigger` lines of the last build, and its planned order.
fn triggers_and_plan(p: &Project) -> (Vec<Value>, Vec<String>) {
    let events = events(p);
    let triggers = events
        .iter()
        .filter(|e| e["event"] == "trigger")
        .cloned()
        .collect();
    let plan = events
        .iter()
        .find(|e| e["event"] == "plan")
        .and_then(|e| e["order"].as_array())
        .map(|o| o.iter().map(|n| n.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (triggers, plan)
}

fn ran(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ran     "))
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect()
}

#[test]
fn rebuilds_on_input_change_and_survives_a_broken_workflow() {
    let p = Project::new();
    p.file("wf.yaml", DIAMOND).file("in/a.txt", "hello\n");
    let w = Watch::start(&p);
    assert_eq!(ran(&w.until_watching()), ["a", "b", "c", "d"]);

    p.file("in/a.txt", "howdy\n");
    let lines = w.until(|l| !ran(l).is_empty());
    assert!(lines.iter().any(|l| l == "changed: in/a.txt"), "{lines:#?}");
    assert_eq!(ran(&lines), ["a", "b", "c", "d"]);
    assert_eq!(p.read("out/d.txt"), "HOWDY\nh");

    // A broken workflow: the error is shown and watching goes on.
    p.file("wf.yaml", "phases: [\n");
    let lines = w.until(|l| l.iter().any(|l| l.contains("invalid YAML")));
    assert!(
        lines.iter().any(|l| l.contains("invalid YAML")),
        "{lines:#?}"
    );

    // Fixed again with one command changed: only that node and below run.
    p.file("wf.yaml", &DIAMOND.replace("tr a-z A-Z", "tr a-y A-Y"));
    let lines = w.until(|l| !ran(l).is_empty());
    assert_eq!(ran(&lines), ["b"], "{lines:#?}");
}

#[test]
fn a_file_that_no_node_reads_runs_nothing() {
    let p = Project::new();
    p.file("wf.yaml", DIAMOND).file("in/a.txt", "hello\n");
    let w = Watch::start(&p);
    w.until_watching();
    p.file("in/notes.txt", "not an input\n");
    let lines = w.until_watching();
    assert!(ran(&lines).is_empty(), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.starts_with("0 ran, 4 cached")),
        "{lines:#?}"
    );
}

#[test]
fn an_atomic_rename_over_an_input_is_noticed() {
    let p = Project::new();
    p.file("wf.yaml", DIAMOND).file("in/a.txt", "hello\n");
    let w = Watch::start(&p);
    w.until_watching();
    // How editors and sync tools save: write a temp file, rename it over.
    p.file("in/.a.txt.swp", "renamed\n");
    std::fs::rename(p.path("in/.a.txt.swp"), p.path("in/a.txt")).unwrap();
    // The temp file alone may already start a (no-op) build on a slow
    // machine; the rename must start one that runs the nodes.
    let lines = w.until(|l| !ran(l).is_empty());
    assert_eq!(ran(&lines), ["a", "b", "c", "d"], "{lines:#?}");
    assert_eq!(p.read("out/d.txt"), "RENAMED\nr");
}

#[test]
fn a_new_csv_in_a_data_folder_builds_the_trigger_targets() {
    let p = example("watch_data");
    let w = Watch::with(&p, &["workflow.yaml"], None);
    assert_eq!(
        ran(&w.until_watching()),
        ["merge", "summary", "open_report"]
    );
    let (triggers, _) = triggers_and_plan(&p);
    assert_eq!(triggers[0]["kind"], "start", "{triggers:#?}");

    p.file("incoming/2020-08-25.csv", "date,close\n2020-08-25,347.57\n");
    let lines = w.until(|l| !ran(l).is_empty());
    // `merge` reads the folder through its glob; `open_report` is not a
    // target of this trigger.
    assert_eq!(ran(&lines), ["merge", "summary"], "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l == "data available: incoming/2020-08-25.csv → building summary"),
        "{lines:#?}"
    );
    assert_eq!(p.read("build/summary.txt"), "days 2, last close 347.57\n");
    let (triggers, plan) = triggers_and_plan(&p);
    assert_eq!(triggers.len(), 1, "{triggers:#?}");
    assert_eq!(triggers[0]["kind"], "data_available");
    assert_eq!(
        triggers[0]["paths"],
        serde_json::json!(["incoming/2020-08-25.csv"])
    );
    assert_eq!(triggers[0]["targets"], serde_json::json!(["summary"]));
    assert!(triggers[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(plan, ["merge", "summary"]);
}

#[test]
fn a_matching_file_written_or_renamed_over_builds_again() {
    let p = example("watch_data");
    let w = Watch::with(&p, &["workflow.yaml"], None);
    w.until_watching();

    // Written in place.
    p.file("incoming/2020-08-24.csv", "date,close\n2020-08-24,344.00\n");
    let lines = w.until(|l| !ran(l).is_empty());
    assert_eq!(ran(&lines), ["merge", "summary"], "{lines:#?}");
    assert_eq!(p.read("build/summary.txt"), "days 1, last close 344.00\n");

    // Written under another name, then renamed over it: the temporary file
    // does not match `*.csv` and is gone by the time the build starts.
    p.file(
        "incoming/2020-08-24.csv.part",
        "date,close\n2020-08-24,345.00\n",
    );
    std::fs::rename(
        p.path("incoming/2020-08-24.csv.part"),
        p.path("incoming/2020-08-24.csv"),
    )
    .unwrap();
    let lines = w.until(|l| !ran(l).is_empty());
    assert_eq!(ran(&lines), ["merge", "summary"], "{lines:#?}");
    assert_eq!(p.read("build/summary.txt"), "days 1, last close 345.00\n");
    let (triggers, _) = triggers_and_plan(&p);
    let last = triggers.last().unwrap();
    assert_eq!(last["kind"], "data_available", "{triggers:#?}");
    assert_eq!(
        last["paths"],
        serde_json::json!(["incoming/2020-08-24.csv"])
    );
}

/// DIAMOND plus a trigger on a folder no phase reads.
fn diamond_with_drop(glob: &str) -> Project {
    let p = Project::new();
    let on = format!("on:\n  data_available: {glob}\n  targets: [b]\n");
    p.file("wf.yaml", &format!("{on}{DIAMOND}"))
        .file("in/a.txt", "hello\n");
    p
}

#[test]
fn a_file_not_matching_the_globs_builds_nothing() {
    let p = diamond_with_drop("drop/*.csv");
    p.file("drop/.keep", "");
    let w = Watch::start(&p);
    w.until_watching();
    p.file("drop/notes.txt", "not data\n");
    // No build starts for it; the next one is the matching file's, and
    // names that file alone.
    std::thread::sleep(Duration::from_millis(500));
    p.file("drop/x.csv", "1\n");
    let lines = w.until_watching();
    assert!(
        lines
            .iter()
            .any(|l| l == "data available: drop/x.csv → building b"),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("notes.txt")), "{lines:#?}");
    assert!(ran(&lines).is_empty(), "{lines:#?}");
    let (triggers, plan) = triggers_and_plan(&p);
    assert_eq!(triggers.len(), 1, "{triggers:#?}");
    assert_eq!(triggers[0]["paths"], serde_json::json!(["drop/x.csv"]));
    assert_eq!(plan, ["a", "b"]);
}

#[test]
fn a_data_folder_created_after_the_start_is_watched() {
    let p = diamond_with_drop("later/deeper/*.csv");
    let w = Watch::start(&p);
    w.until_watching();
    p.file("later/deeper/y.csv", "1\n");
    let lines = w.until(|l| l.iter().any(|l| l.starts_with("data available")));
    assert!(
        lines
            .iter()
            .any(|l| l == "data available: later/deeper/y.csv → building b"),
        "{lines:#?}"
    );
}

#[test]
fn a_schedule_fires_on_the_injected_clock_and_builds_only_its_targets() {
    let p = example("watch_data");
    // A Friday, two seconds before the New York open.
    let w = Watch::with(
        &p,
        &["workflow.yaml", "summary"],
        Some("2026-11-27T09:29:58-05:00"),
    );
    assert_eq!(ran(&w.until_watching()), ["merge", "summary"]);
    let lines = w.until_watching();
    assert_eq!(ran(&lines), ["open_report"], "{lines:#?}");
    assert!(
        lines.iter().any(|l| l
            == "schedule `30 9 * * 1-5` (America/New_York) fired for 2026-11-27 09:30 EST → building open_report"),
        "{lines:#?}"
    );
    let (triggers, plan) = triggers_and_plan(&p);
    assert_eq!(
        triggers,
        [serde_json::json!({
            "event": "trigger",
            "kind": "schedule",
            "time": "2026-11-27T14:30:00Z",
            "cron": "30 9 * * 1-5",
            "tz": "America/New_York",
            "targets": ["open_report"],
        })]
    );
    assert_eq!(plan, ["merge", "summary", "open_report"]);
    assert_eq!(
        p.read("build/open_report.txt"),
        "at the open: days 1, last close 343.92\n"
    );
}
