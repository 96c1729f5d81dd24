//! Bad input: exit code 2 with file:line:column and the key; a failing
//! command: exit code 1 with its log, nothing stored.

mod common;
mod store_support;

use common::Project;

fn fails(p: &Project, args: &[&str]) -> String {
    let out = p.admf(args);
    assert_eq!(
        out.code, 2,
        "expected exit 2, got {}:\n{}",
        out.code, out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out.stderr
}

fn validate_error(yaml: &str) -> String {
    let p = Project::new();
    p.file("wf.yaml", yaml);
    fails(&p, &["validate", "wf.yaml"])
}

#[test]
fn yaml_syntax_error_names_the_position() {
    let err = validate_error("phases:\n  - name: a\n    mode: [command\n");
    assert!(err.contains("invalid YAML"), "{err}");
    assert!(err.contains("wf.yaml:4:"), "{err}");
}

#[test]
fn unknown_mode_suggests_the_closest() {
    let err = validate_error("phases:\n  - name: a\n    mode: comand\n    run: x\n");
    assert!(err.contains("unknown mode `comand`"), "{err}");
    // The `mode:` line, not the phase's name.
    assert!(err.contains("wf.yaml:3:5"), "{err}");
    assert!(err.contains("did you mean `command`?"), "{err}");
}

#[test]
fn unknown_dependency_names_the_item() {
    let err = validate_error(
        "phases:\n  - {name: prep, mode: command, run: x}\n  - name: b\n    mode: command\n    run: y\n    depends_on: [perp]\n",
    );
    assert!(err.contains("no phase named `perp`"), "{err}");
    assert!(err.contains("wf.yaml:6:18"), "{err}");
    assert!(err.contains("did you mean `prep`?"), "{err}");
}

#[test]
fn duplicate_phase_names_both_places() {
    let err = validate_error(
        "phases:\n  - {name: a, mode: command, run: x}\n  - {name: a, mode: command, run: y}\n",
    );
    assert!(err.contains("duplicate phase name `a`"), "{err}");
    assert!(err.contains("wf.yaml:3:"), "{err}");
    assert!(err.contains("first defined at wf.yaml:2:"), "{err}");
}

#[test]
fn missing_include_names_the_key() {
    let err = validate_error("phases:\n  - name: inc\n    workflow: nowhere.yaml\n");
    assert!(err.contains("nowhere.yaml` not found"), "{err}");
    assert!(err.contains("wf.yaml:3:5"), "{err}");
}

#[test]
fn include_cycle_prints_every_member() {
    let p = Project::new();
    p.file("wf.yaml", "phases:\n  - name: x\n    workflow: a.yaml\n")
        .file("a.yaml", "phases:\n  - name: y\n    workflow: b.yaml\n")
        .file("b.yaml", "phases:\n  - name: z\n    workflow: a.yaml\n");
    let err = fails(&p, &["validate", "wf.yaml"]);
    assert!(err.contains("include cycle"), "{err}");
    assert!(
        err.contains("includes")
            && err.contains("b.yaml")
            && err.contains("includes b.yaml (a.yaml:3:5)")
            && err.contains("includes a.yaml (b.yaml:3:5)"),
        "{err}"
    );
}

#[test]
fn dependency_cycle_prints_the_whole_cycle() {
    let err = validate_error(
        "phases:\n  - {name: a, mode: command, run: x, depends_on: [c]}\n  - {name: b, mode: command, run: x, depends_on: [a]}\n  - {name: c, mode: command, run: x, depends_on: [b]}\n",
    );
    assert!(err.contains("dependency cycle"), "{err}");
    for member in ["a (wf.yaml:2:", "b (wf.yaml:3:", "c (wf.yaml:4:"] {
        assert!(err.contains(member), "missing {member}:\n{err}");
    }
}

#[test]
fn missing_input_names_the_file() {
    let err = validate_error(
        "phases:\n  - name: a\n    mode: command\n    run: x\n    inputs: [absent.txt]\n",
    );
    assert!(err.contains("absent.txt` of `a` does not exist"), "{err}");
    assert!(err.contains("wf.yaml:5:"), "{err}");
}

#[test]
fn unknown_config_key_suggests() {
    let err =
        validate_error("phases:\n  - name: a\n    mode: command\n    run: x\n    outptus: [a]\n");
    assert!(err.contains("`outptus`: unknown key"), "{err}");
    assert!(err.contains("wf.yaml:5:5"), "{err}");
    assert!(err.contains("did you mean `outputs`?"), "{err}");
}

#[test]
fn duplicate_outputs_are_a_compile_error() {
    let err = validate_error(
        "phases:\n  - {name: a, mode: command, run: x, outputs: [o.txt]}\n  - {name: b, mode: command, run: y, outputs: [./o.txt]}\n",
    );
    assert!(err.contains("declared by both `a` and `b`"), "{err}");
}

#[test]
fn bad_set_path_is_a_usage_error() {
    let p = Project::new();
    p.file("wf.yaml", "phases:\n  - {name: a, mode: command, run: x}\n");
    let err = fails(&p, &["validate", "wf.yaml", "--set", "nope.x=1"]);
    assert!(
        err.contains("`nope` is neither a top-level key nor a phase"),
        "{err}"
    );
    let err = fails(&p, &["validate", "wf.yaml", "--set", "a.run"]);
    assert!(err.contains("expected KEY=VALUE"), "{err}");
}

#[test]
fn nan_and_tags_are_rejected_at_the_value() {
    let err =
        validate_error("phases:\n  - name: a\n    mode: command\n    run: x\n    env: {X: .nan}\n");
    assert!(
        err.contains("not a finite number") && err.contains("wf.yaml:5:"),
        "{err}"
    );
}

#[test]
fn empty_and_non_utf8_files() {
    assert!(validate_error("").contains("the file is empty"));
    let p = Project::new();
    std::fs::write(p.path("wf.yaml"), b"phases:\n  - name: \xff\n").unwrap();
    let err = fails(&p, &["validate", "wf.yaml"]);
    assert!(
        err.contains("not valid UTF-8") && err.contains("wf.yaml:2:11"),
        "{err}"
    );
}

#[test]
fn unknown_target_suggests() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: alpha, mode: command, run: x}\n",
    );
    let err = fails(&p, &["build", "wf.yaml", "alpah"]);
    assert!(
        err.contains("no node named `alpah`") && err.contains("did you mean `alpha`?"),
        "{err}"
    );
}

#[test]
fn failing_command_exits_1_shows_its_log_and_stores_nothing() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: ok, mode: command, run: 'echo fine > a.txt', outputs: [a.txt]}\n  - {name: bad, mode: command, run: 'echo broken-step-output; exit 3', depends_on: []}\n  - {name: after, mode: command, run: 'true', depends_on: [bad]}\n",
    );
    let out = p.admf(&["build", "wf.yaml", "-j1", "--keep-going"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("broken-step-output"), "{}", out.stderr);
    assert!(
        out.stderr.contains("command exited with status 3"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("1 not run"), "{}", out.stderr);
    // Only `ok` made an entry.
    assert_eq!(store_support::action_keys(&p.path("cache")).len(), 1);
    assert!(common::tree(&p.path("cache/tmp")).is_empty());
}

#[test]
fn missing_declared_output_fails_the_node() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: a, mode: command, run: 'true', outputs: [never.txt]}\n",
    );
    let out = p.admf(&["build", "wf.yaml"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("declared output `never.txt` was not created"),
        "{}",
        out.stderr
    );
}

#[test]
fn retries_rerun_only_the_failing_node() {
    let p = Project::new();
    p.file("wf.yaml", "phases:\n  - name: flaky\n    mode: command\n    retries: 2\n    run: 'echo x >> attempts; test $(wc -l < attempts) -ge 2'\n");
    let out = p.admf(&["build", "wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(p.read("attempts").lines().count(), 2);
}

#[test]
fn unknown_key_of_a_trading_mode_is_rejected() {
    let err = validate_error(
        "strategy: {type: momentum}\nphases:\n  - name: sweep\n    mode: signal_generation\n    allow_short: true\n    grdi: {lookback: [5]}\n",
    );
    assert!(
        err.contains("`allow_short`: unknown key for mode `signal_generation`"),
        "{err}"
    );
    assert!(err.contains("wf.yaml:5:5"), "{err}");
}
