//! Progress output: a live bar on a terminal, plain lines otherwise,
//! colour only on a terminal and never with `NO_COLOR`. A terminal is
//! provided by util-linux `script`.

mod common;

use std::process::Command;

use common::{DIAMOND, Project};

fn diamond() -> Project {
    let p = Project::new();
    p.file("wf.yaml", DIAMOND).file("in/a.txt", "hello\n");
    p
}

/// Run `admf build` under a pseudo-terminal; return everything it drew.
fn on_terminal(p: &Project, no_color: bool) -> String {
    let bin = assert_cmd::cargo::cargo_bin("admf");
    let mut cmd = Command::new("script");
    cmd.args([
        "-qec",
        &format!("{} build wf.yaml -j1", bin.display()),
        "/dev/null",
    ])
    .current_dir(p.dir.path())
    .env("TERM", "xterm-256color")
    .env_remove("CI")
    .env_remove("ADMF_CACHE_DIR");
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let out = cmd.output().expect("script runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn plain_lines_without_a_terminal() {
    let p = diamond();
    let out = p.admf(&["build", "wf.yaml", "-j1"]);
    assert_eq!(out.code, 0);
    let ran: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("ran "))
        .collect();
    assert_eq!(ran.len(), 4, "{}", out.stderr);
    assert!(ran[0].starts_with("ran     a ("), "{}", ran[0]);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "escape codes in plain output"
    );
    assert!(
        !out.stderr.contains('\r'),
        "carriage returns in plain output"
    );
}

#[test]
fn live_bar_and_colour_on_a_terminal() {
    let p = diamond();
    let drawn = on_terminal(&p, false);
    assert!(drawn.contains("4/4"), "no progress count in {drawn:?}");
    assert!(
        drawn.contains("\u{1b}[2K"),
        "the bar is not redrawn in place"
    );
    assert!(drawn.contains("\u{1b}[32m"), "no colour in the summary");
    assert!(drawn.contains("4 ran"), "{drawn:?}");
}

#[test]
fn no_color_is_honoured_on_a_terminal() {
    let p = diamond();
    let drawn = on_terminal(&p, true);
    assert!(drawn.contains("4 ran"), "{drawn:?}");
    assert!(!drawn.contains("\u{1b}[32m"), "colour despite NO_COLOR");
}
