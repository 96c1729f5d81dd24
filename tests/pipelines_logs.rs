//! `logs:` and `timeout:` of command phases.

mod common;

use common::Project;
use common::fast_paths::build;

#[test]
fn a_log_is_shown_but_never_defeats_early_cutoff() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - work:
      mode: command
      inputs: [in.txt]
      outputs: [out.txt]
      logs: [work.log]
      run: "cut -c1 in.txt > out.txt && date +%s%N > work.log && echo took-some-time >> work.log"
  - after:
      mode: command
      inputs: [out.txt]
      outputs: [after.txt]
      run: "cat out.txt out.txt > after.txt"
"#,
    )
    .file("in.txt", "ab\n");
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["work", "after"]);
    let show = p.admf(&["show", "wf.yaml", "work"]);
    assert!(
        show.stdout.contains("--- log work.log ---") && show.stdout.contains("took-some-time"),
        "{}{}",
        show.stdout,
        show.stderr
    );
    // The log differs every run (a timestamp); the output does not.
    p.file("in.txt", "ac\n");
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["work"]);
}

#[test]
fn a_log_may_not_be_an_output() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - a:\n      mode: command\n      outputs: [x.log]\n      logs: [x.log]\n      run: touch x.log\n",
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(
        err.contains("`logs[0]`") && err.contains("wf.yaml:5:"),
        "{err}"
    );
}

#[test]
fn a_command_past_its_timeout_is_killed_with_what_it_started() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - slow:
      mode: command
      timeout: 0.3
      run: "(sleep 30; touch late.txt) & sleep 30"
"#,
    );
    let started = std::time::Instant::now();
    let run = build(&p, &["wf.yaml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("timed out after 0.3s"),
        "{}",
        run.stderr
    );
    // Killed, not waited for: far below the 30 s the command asked for.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let err = p.bad_input(&["validate", "wf.yaml", "--set", "slow.timeout=soon"]);
    assert!(err.contains("`timeout`"), "{err}");
}

/// Two nodes that each hold a lock directory for a while: with `-j 2`
/// and `threads: 2` they take every slot, so they never overlap and
/// neither finds the other's lock.
#[test]
fn threads_take_slots_of_j() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - heavy:
      mode: command
      foreach: [a, b]
      depends_on: []
      threads: 2
      outputs: ["{item}.txt"]
      run: "mkdir held && sleep 0.2 && rmdir held && echo {item} > {item}.txt"
  - light:
      mode: command
      depends_on: []
      outputs: [light.txt]
      run: "echo light > light.txt"
"#,
    );
    let run = build(&p, &["wf.yaml", "-j", "2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.ran(), ["heavy[item=a]", "heavy[item=b]", "light"]);
    let err = p.bad_input(&["validate", "wf.yaml", "--set", "heavy.threads=0"]);
    assert!(
        err.contains("`threads`") && err.contains("from 1 to 1024"),
        "{err}"
    );
}
