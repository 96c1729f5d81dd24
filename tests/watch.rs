//! `admf watch` against real file events: an input edit rebuilds what
//! reads it, a broken workflow is reported and watching goes on, a new
//! file in a watched directory is noticed. Every wait is bounded.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use common::{DIAMOND, Project};

const WAIT: Duration = Duration::from_secs(30);

struct Watch {
    child: Child,
    lines: Receiver<String>,
}

impl Watch {
    fn start(p: &Project) -> Watch {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("admf"))
            .args(["watch", "wf.yaml", "-j1"])
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
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => {
                    let done = line.starts_with("watching ");
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("no rebuild within {WAIT:?}; saw {seen:#?}"),
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
    assert!(lines.iter().any(|l| l.ends_with("/in/a.txt")), "{lines:#?}");
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
