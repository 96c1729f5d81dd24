//! A `command` sees an allow-listed environment: PATH, HOME, locale and
//! TMPDIR from the build, the variables named in `pass_env:` (whose values
//! enter the key), the `ADMF_UPSTREAM_*` variables and `env:`. Anything
//! else in the build's environment, credentials included, is invisible.

mod common;

use common::Project;

const WF: &str = r#"phases:
  - show:
      mode: command
      pass_env: [SEED]
      env: {GIVEN: from-workflow}
      outputs: [seen.txt]
      run: |
        for v in SEED GIVEN ADMF_TEST_SECRET ADMF_REMOTE_HEADER AWS_SECRET_ACCESS_KEY HOME; do
          eval "echo $v=\${$v-unset}"
        done > seen.txt
        command -v cat >/dev/null && echo path-ok >> seen.txt
"#;

fn project() -> Project {
    let p = Project::new();
    p.file("wf.yaml", WF);
    p
}

const OUTSIDE: &[(&str, &str)] = &[
    ("ADMF_TEST_SECRET", "s3cr3t"),
    ("ADMF_REMOTE_HEADER", "authorization=Bearer tok"),
    ("AWS_SECRET_ACCESS_KEY", "aws-key"),
    ("HOME", "/home/somebody"),
];

fn build_with(p: &Project, seed: &str) -> Vec<String> {
    let mut env = OUTSIDE.to_vec();
    env.push(("SEED", seed));
    let (out, statuses) = p.build_env(&["wf.yaml"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    common::with_status(&statuses, "ran")
}

#[test]
fn only_allowed_and_passed_variables_reach_the_command() {
    let p = project();
    assert_eq!(build_with(&p, "7"), ["show"]);
    assert_eq!(
        p.read("seen.txt"),
        "SEED=7\nGIVEN=from-workflow\nADMF_TEST_SECRET=unset\nADMF_REMOTE_HEADER=unset\n\
         AWS_SECRET_ACCESS_KEY=unset\nHOME=/home/somebody\npath-ok\n"
    );
}

#[test]
fn a_passed_variable_enters_the_key_and_others_do_not() {
    let p = project();
    assert_eq!(build_with(&p, "7"), ["show"]);
    assert!(build_with(&p, "7").is_empty(), "same value: a hit");
    assert_eq!(build_with(&p, "8"), ["show"], "new value: reruns");
    assert!(p.read("seen.txt").starts_with("SEED=8\n"));
    // Back to the first value: its entry is still in the store.
    let mut env = OUTSIDE.to_vec();
    env.push(("SEED", "7"));
    let (out, statuses) = p.build_env(&["wf.yaml"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(common::with_status(&statuses, "cached"), ["show"]);
    assert!(p.read("seen.txt").starts_with("SEED=7\n"));
    // Unset is a value of its own.
    assert_eq!(build_with(&p, ""), ["show"]);
    assert!(p.read("seen.txt").starts_with("SEED=unset\n"));
    // A variable outside the allow-list changes nothing.
    let (out, statuses) = p.build_env(&["wf.yaml"], &[("ADMF_TEST_SECRET", "other")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(common::with_status(&statuses, "ran").is_empty());
}

/// The fast paths (node trace, up-to-date record) hold no environment:
/// after a no-op build they must still see a changed passed variable.
#[test]
fn the_fast_paths_do_not_hide_a_changed_passed_variable() {
    let p = project();
    let with_seed = |seed: &str| {
        let out = p.admf_env(
            &["build", "--json", "wf.yaml"],
            &[("SEED", seed), ("ADMF_TRACE", "1")],
        );
        assert_eq!(out.code, 0, "{}", out.stderr);
        common::with_status(&common::node_statuses(&out, "build"), "ran")
    };
    assert_eq!(with_seed("1"), ["show"]);
    common::past_racy_window();
    assert!(with_seed("1").is_empty());
    assert!(with_seed("1").is_empty());
    assert_eq!(with_seed("2"), ["show"]);
    assert!(p.read("seen.txt").starts_with("SEED=2\n"));
}

#[test]
fn a_workflow_wide_pass_env_applies_where_a_phase_has_none() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"pass_env: [SEED]
phases:
  - a:
      mode: command
      outputs: [a.txt]
      run: echo "${SEED:+seed} ${OTHER-unset}" > a.txt
  - b:
      mode: command
      pass_env: [OTHER]
      outputs: [b.txt]
      run: echo "${SEED-unset} ${OTHER-unset}" > b.txt
"#,
    );
    let env = [("SEED", "1"), ("OTHER", "2")];
    let (out, _) = p.build_env(&["wf.yaml"], &env);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(p.read("a.txt"), "seed unset\n");
    assert_eq!(p.read("b.txt"), "unset 2\n");
    // SEED is in `a`'s key only; `a` writes the same bytes, so `b` (after
    // it in the list) stops there.
    let (out, statuses) = p.build_env(&["wf.yaml"], &[("SEED", "3"), ("OTHER", "2")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(common::with_status(&statuses, "ran"), ["a"]);
    let (out, statuses) = p.build_env(&["wf.yaml"], &[("SEED", "3"), ("OTHER", "4")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(common::with_status(&statuses, "ran"), ["b"]);
    assert_eq!(p.read("b.txt"), "unset 4\n");
}

#[test]
fn explain_names_the_changed_variable_but_not_its_value() {
    let p = project();
    assert_eq!(build_with(&p, "7"), ["show"]);
    let out = p.admf_env(&["explain", "wf.yaml", "show"], &[("SEED", "8")]);
    assert!(
        out.stdout.contains("environment variable SEED changed"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let digest = blake3::hash(b"8").to_hex().to_string();
    assert!(!out.stdout.contains(&digest[..12]), "{}", out.stdout);
}

#[test]
fn a_bad_pass_env_names_the_file_line_and_key() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - a:\n      mode: command\n      pass_env: [OK, 9bad]\n      run: 'true'\n",
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(err.contains("wf.yaml:4"), "{err}");
    assert!(err.contains("pass_env[1]"), "{err}");
    p.file(
        "wf.yaml",
        "phases:\n  - a:\n      mode: command\n      pass_env: SEED\n      run: 'true'\n",
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(err.contains("pass_env"), "{err}");
}
