//! Two builds in one process (as under `admf watch`, or tests) note their
//! reads apart: one build starting or finishing while another is loading
//! its workflow must not drop the other's evidence, or its up-to-date
//! record would vouch for a workflow file it no longer names.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use common::fast_paths::age;
use common::{DIAMOND, Project};

/// `admf build WORKFLOW` in this process; the exit code.
fn build_here(workflow: &Path) -> i32 {
    let cli = admf::cli::Cli::parse_from(["admf", "build", workflow.to_str().expect("utf-8")]);
    match admf::commands::run(cli) {
        Ok(code) => code,
        Err(e) => panic!("build of {}: {}", workflow.display(), e.render(false)),
    }
}

const WITH_PARAMS: &str = r#"phases:
  - make:
      mode: command
      params: {file: params.yaml, keys: [x]}
      outputs: [out.txt]
      run: "echo v1 $ADMF_PARAM_X > out.txt"
"#;

const WITHOUT_PARAMS: &str = r#"phases:
  - make:
      mode: command
      outputs: [out.txt]
      run: "echo v2 > out.txt"
"#;

/// Build B loads a params file that is a pipe, so it waits in the loader
/// (its workflow file already read) while build A runs from start to end
/// in the same process. B is a no-op and writes an up-to-date record.
/// Its workflow is then edited to stop reading the params file: the
/// record must not vouch for the edited workflow, so `make` runs again.
///
/// With one process-wide list of reads, A's start cleared the list and
/// A's end took it, so B's record lacked B's workflow file and the edit
/// was answered "up to date" (out.txt kept saying v1).
#[test]
fn a_build_running_meanwhile_does_not_drop_the_evidence_of_another() {
    let a = Project::new();
    a.file("wf.yaml", DIAMOND).file("in/a.txt", "hello\n");
    let b = Project::new();
    b.file("wf.yaml", WITH_PARAMS).file("params.yaml", "x: 1\n");
    let wf_a = a.path("wf.yaml");
    let wf_b = b.path("wf.yaml");
    assert_eq!(build_here(&wf_b), 0);
    assert_eq!(b.read("out.txt"), "v1 1\n");
    age(b.dir.path());

    // The same values again, through a pipe held open for writing: B
    // reads them to the end only once this handle is dropped.
    let params = b.path("params.yaml");
    std::fs::remove_file(&params).expect("remove params");
    let made = std::process::Command::new("mkfifo")
        .arg(&params)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let mut writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&params)
        .expect("open the pipe");
    writer.write_all(b"x: 1\n").expect("fill the pipe");
    // Past the racy window: the pipe's stat must not keep B from writing
    // its record.
    std::thread::sleep(Duration::from_millis(300));

    let b_build = {
        let wf_b = wf_b.clone();
        std::thread::spawn(move || build_here(&wf_b))
    };
    // Let B reach the pipe, then run A from start to end.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!b_build.is_finished(), "B did not wait on the pipe");
    assert_eq!(build_here(&wf_a), 0);
    drop(writer);
    assert_eq!(b_build.join().expect("build B"), 0);
    assert_eq!(b.read("out.txt"), "v1 1\n");
    let record = b.path("cache/runs");
    assert!(
        walkdir::WalkDir::new(&record)
            .into_iter()
            .filter_map(Result::ok)
            .any(|e| e.file_name() == "uptodate"),
        "B, a no-op, wrote no up-to-date record: the test proves nothing"
    );

    b.file("wf.yaml", WITHOUT_PARAMS);
    assert_eq!(build_here(&wf_b), 0);
    assert_eq!(
        b.read("out.txt"),
        "v2\n",
        "the edited workflow was answered from a record that did not name it"
    );
}
