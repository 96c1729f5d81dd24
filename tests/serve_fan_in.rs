//! A command with many upstream commands, built by a fork of `admf
//! serve`: its decision (under its read locks) and its check after the
//! command ask the server which upstream files an event touched since it
//! vouched for them, instead of stating each. Whatever changed those
//! files after the server's first answer, in this very build, must still
//! be seen: an upstream output changed before the decision is put back,
//! one changed by the command fails it.

mod common;

use std::time::{Duration, Instant};

use common::Project;
use common::server::Server;

/// More upstream nodes than the decision asks the server from.
const SOURCES: usize = 130;

/// `SOURCES` source nodes, a node `edit` that runs `edit_run`, and a
/// sink reading every source's output in the workspace that runs
/// `sink_run`.
fn fan_in(edit_run: &str, sink_run: &str) -> Project {
    let mut wf = String::from("phases:\n");
    let mut deps = Vec::new();
    for i in 0..SOURCES {
        wf.push_str(&format!(
            "  - name: s{i}\n    mode: command\n    run: \"cp in/s{i}.txt out/s{i}.txt\"\n    inputs: [in/s{i}.txt]\n    outputs: [out/s{i}.txt]\n"
        ));
        deps.push(format!("s{i}"));
    }
    wf.push_str(&format!(
        "  - name: edit\n    mode: command\n    run: \"{edit_run}\"\n    inputs: [in/e.txt]\n    outputs: [out/e.txt]\n"
    ));
    deps.push("edit".into());
    wf.push_str(&format!(
        "  - name: sink\n    mode: command\n    run: \"{sink_run}\"\n    outputs: [out/sink.txt]\n    depends_on: [{}]\n",
        deps.join(", ")
    ));
    let p = Project::new();
    p.file("wf.yaml", &wf).file("in/e.txt", "e0\n");
    for i in 0..SOURCES {
        p.file(&format!("in/s{i}.txt"), &format!("source {i}\n"));
    }
    p
}

fn traced(p: &Project) -> common::Output {
    p.admf_env(&["build", "wf.yaml"], &[("ADMF_TRACE", "1")])
}

/// What the trace says when the sink's decision asked the server.
const ASKED: &str = "vouched files touched since";

/// Edit `in/e.txt` and build until a build handed to the server asks it
/// what was touched (at most 60 s). A build that ran writes no up-to-date
/// record while its outputs are racily new, so each round ends with a
/// no-op build past that window, which writes the record the server
/// checks and the next round's build starts from.
fn until_asked(p: &Project) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for round in 1.. {
        p.file("in/e.txt", &format!("e{round}\n"));
        std::thread::sleep(Duration::from_millis(300));
        let out = traced(p);
        assert_eq!(out.code, 0, "{}", out.stderr);
        recorded(p);
        if out.stderr.contains(ASKED) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no build asked the server:\n{}",
            out.stderr
        );
    }
}

/// A no-op build past the racy window after the last build: it leaves
/// the up-to-date record the server checks and vouches for.
fn recorded(p: &Project) {
    std::thread::sleep(Duration::from_millis(300));
    let out = traced(p);
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::thread::sleep(Duration::from_millis(300));
}

/// The fan-in of [`fan_in`], built, served, brought to where a handed
/// build asks the server ([`until_asked`]); then `in/e.txt` says
/// `tamper` and the returned build runs with that.
fn served_tamper_build(edit_run: &str, sink_run: &str) -> (Project, common::Output) {
    let p = fan_in(edit_run, sink_run);
    assert_eq!(p.admf(&["build", "wf.yaml"]).code, 0);
    let _server = Server::start(&p);
    until_asked(&p);
    p.file("in/e.txt", "tamper\n");
    std::thread::sleep(Duration::from_millis(300));
    let out = traced(&p);
    assert!(out.stderr.contains(ASKED), "{}", out.stderr);
    (p, out)
}

#[test]
fn an_upstream_output_changed_during_a_served_build_is_put_back_before_the_sink_reads_it() {
    // `edit` runs before the sink and overwrites a source's output: after
    // the server vouched for it, before the sink's decision.
    let (p, out) = served_tamper_build(
        "cp in/e.txt out/e.txt && if grep -q tamper in/e.txt; then echo tampered > out/s7.txt; fi",
        "cat out/s*.txt out/e.txt > out/sink.txt",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Put back from the store before the sink ran, and the sink read it.
    assert_eq!(p.read("out/s7.txt"), "source 7\n");
    let sink = p.read("out/sink.txt");
    assert!(sink.contains("source 7\n"), "{sink}");
    assert!(!sink.contains("tampered"), "{sink}");
}

#[test]
fn a_served_sink_that_changes_an_upstream_output_fails() {
    let (_p, out) = served_tamper_build(
        "cp in/e.txt out/e.txt",
        "cat out/s*.txt > out/sink.txt && if grep -q tamper in/e.txt; then echo x >> out/s3.txt; fi",
    );
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`s3` ($ADMF_UPSTREAM_S3) was changed while the command ran"),
        "{}",
        out.stderr
    );
}
