//! `on:` triggers as `admf validate` and `admf build` see them: accepted
//! and otherwise ignored by a build; bad input exits 2 naming
//! file:line:column and the key.

mod common;

use common::{DIAMOND, Project};

fn with_on(on: &str) -> Project {
    let p = Project::new();
    p.file(".git/HEAD", "")
        .file("wf.yaml", &format!("{on}{DIAMOND}"))
        .file("in/a.txt", "hello\n");
    p
}

fn fails(on: &str) -> String {
    let p = with_on(on);
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "expected exit 2:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // `build` reads the same workflow and refuses it the same way.
    let build = p.admf(&["build", "wf.yaml"]);
    assert_eq!(build.code, 2, "{}", build.stderr);
    out.stderr
}

#[test]
fn validate_and_build_accept_triggers_and_build_ignores_them() {
    let p = with_on(
        "on:\n  - data_available: [drop/*.csv, \"incoming/**/*.csv\"]\n    targets: [b, d]\n  - schedule:\n      - \"30 9 * * 1-5 America/New_York\"\n      - {cron: \"@daily\", tz: Europe/London}\n      - \"*/15 * * * *\"\n",
    );
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(p.ran(&["wf.yaml"]), ["a", "b", "c", "d"]);
    assert!(p.ran(&["wf.yaml"]).is_empty());
}

#[test]
fn a_bad_cron_field_names_the_entry() {
    let err = fails("on:\n  schedule: \"61 9 * * 1-5 America/New_York\"\n");
    assert!(err.contains("`schedule`:"), "{err}");
    assert!(
        err.contains("minute field: 61 is out of range (0-59)"),
        "{err}"
    );
    assert!(err.contains("wf.yaml:2:3"), "{err}");
}

#[test]
fn an_unknown_time_zone_suggests_the_closest() {
    let err = fails("on:\n  schedule:\n    - cron: \"30 9 * * *\"\n      tz: America/New_Yrok\n");
    assert!(
        err.contains("`tz`: unknown time zone `America/New_Yrok`"),
        "{err}"
    );
    assert!(err.contains("wf.yaml:4:7"), "{err}");
    assert!(err.contains("did you mean `America/New_York`?"), "{err}");
}

#[test]
fn an_unknown_trigger_key_suggests_the_closest() {
    let err = fails("on:\n  schedul: \"0 9 * * *\"\n");
    assert!(err.contains("`schedul`: unknown key in `on:`"), "{err}");
    assert!(err.contains("wf.yaml:2:3"), "{err}");
    assert!(err.contains("did you mean `schedule`?"), "{err}");
}

#[test]
fn an_unknown_target_names_the_item() {
    let err = fails("on:\n  data_available: drop/*.csv\n  targets: [a, dd]\n");
    assert!(err.contains("`targets`: no node named `dd`"), "{err}");
    assert!(err.contains("wf.yaml:3:16"), "{err}");
    assert!(err.contains("did you mean `d`?"), "{err}");
}

#[test]
fn shapes_that_are_not_triggers_are_refused() {
    let err = fails("on: data/*.csv\n");
    assert!(err.contains("`on`: must be a mapping"), "{err}");
    assert!(err.contains("wf.yaml:1:"), "{err}");
    let err = fails("on:\n  targets: [a]\n");
    assert!(err.contains("a trigger needs `data_available:`"), "{err}");
    let err = fails("on:\n  data_available: []\n");
    assert!(err.contains("`data_available`: must be a glob"), "{err}");
    let err = fails("on:\n  data_available: \"drop/[.csv\"\n");
    assert!(err.contains("bad glob"), "{err}");
    assert!(err.contains("wf.yaml:2:3"), "{err}");
    let err = fails("on:\n  schedule: {cron: \"0 9 * * * UTC\", tz: UTC}\n");
    assert!(err.contains("the time zone is given twice"), "{err}");
    let err = fails("on:\n  schedule: \"0 0 31 2 *\"\n");
    assert!(err.contains("never fires"), "{err}");
}

#[test]
fn a_data_glob_outside_the_workflow_root_is_refused() {
    let err = fails("on:\n  data_available: ../elsewhere/*.csv\n");
    assert!(err.contains("outside the workflow root"), "{err}");
    assert!(err.contains("wf.yaml:2:3"), "{err}");
    assert!(err.contains("allow_outside: true"), "{err}");
}

#[test]
fn only_the_root_file_may_have_triggers() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: inc\n    workflow: inc.yaml\n",
    )
    .file(
        "inc.yaml",
        "on:\n  schedule: \"0 9 * * *\"\nphases:\n  - {name: x, mode: command, run: \"true\"}\n",
    );
    let out = p.admf(&["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "`on`: only the root workflow file (the one given to admf) may declare triggers"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("inc.yaml:1:1"), "{}", out.stderr);
}
