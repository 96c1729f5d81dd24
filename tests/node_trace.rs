//! The node trace (src/node_trace.rs): after an edit, untouched nodes are
//! settled by stats alone, and every build decides exactly what a build
//! by the full rule (`ADMF_FULL_PATH=1`) decides, whatever sequence of
//! edits, touches, deletions and store tampering came before.

mod common;

use std::path::Path;

use common::{Project, TRACE, past_racy_window, with_status};
use proptest::prelude::*;

/// (exit code, ran node ids, nodes settled by the trace, stderr)
fn build(p: &Project, full_rule: bool) -> (i32, Vec<String>, Option<usize>, String) {
    build_with(p, full_rule, &[])
}

/// `admf build --json -j 2 wf.yaml EXTRA`, traced, and by the full rule
/// (`ADMF_FULL_PATH=1`) when `full_rule`.
fn build_with(
    p: &Project,
    full_rule: bool,
    extra: &[&str],
) -> (i32, Vec<String>, Option<usize>, String) {
    let mut args = vec!["-j", "2", "wf.yaml"];
    args.extend_from_slice(extra);
    let mut env = TRACE.to_vec();
    if full_rule {
        env.push(("ADMF_FULL_PATH", "1"));
    }
    let (out, statuses) = p.build_env(&args, &env);
    let settled = out
        .stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("trace: ")?
                .strip_suffix(" nodes settled by the node trace")
        })
        .map(|n| n.parse().unwrap());
    (out.code, with_status(&statuses, "ran"), settled, out.stderr)
}

/// a → b → c, and d beside them; `big` writes an output larger than the
/// store keeps inline, so it lives in a blob file.
const WORKFLOW: &str = r#"phases:
  - name: a
    mode: command
    run: "cat in/a.txt > out/a.txt"
    inputs: [in/a.txt]
    outputs: [out/a.txt]
  - name: b
    mode: command
    run: "tr a-z A-Z < out/a.txt > out/b.txt"
    outputs: [out/b.txt]
  - name: c
    mode: command
    run: "wc -c < out/b.txt > out/c.txt"
    outputs: [out/c.txt]
  - name: d
    mode: command
    run: "cat in/d.txt in/d.txt > out/d.txt"
    inputs: [in/d.txt]
    outputs: [out/d.txt]
    depends_on: []
  - name: big
    mode: command
    run: "yes \"$(cat in/d.txt)\" | head -n 40000 > out/big.txt"
    inputs: [in/d.txt]
    outputs: [out/big.txt]
    depends_on: []
"#;

fn project() -> Project {
    let p = Project::new();
    p.file("wf.yaml", WORKFLOW)
        .file("in/a.txt", "alpha\n")
        .file("in/d.txt", "delta\n")
        .file("out/.keep", "");
    p
}

#[test]
fn an_edit_settles_every_untouched_node_from_the_trace() {
    let p = project();
    past_racy_window();
    assert_eq!(build(&p, false).0, 0);
    // Outputs written in the last instant of a build are racy and left out
    // of its trace; a verbose build (never answered by the up-to-date
    // record) writes the trace again once they are old enough.
    past_racy_window();
    let (_, ran, _, stderr) = build_with(&p, false, &["-v"]);
    assert!(ran.is_empty(), "{stderr}");
    past_racy_window();
    p.file("in/a.txt", "alpha\nbeta\n");
    let (code, ran, settled, stderr) = build(&p, false);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ran, ["a", "b", "c"], "{stderr}");
    assert_eq!(settled, Some(2), "d and big come from the trace:\n{stderr}");
    assert_eq!(p.read("out/b.txt"), "ALPHA\nBETA\n");
    past_racy_window();
    // The edit's build left an up-to-date record (its recent outputs
    // vouched for by their digests): the next build is answered by it.
    let (_, ran, _, stderr) = build(&p, false);
    assert!(ran.is_empty(), "{stderr}");
    assert!(stderr.contains("trace: up to date by"), "{stderr}");
    // A build never answered by the record decides from the trace: the
    // nodes that just ran wrote their outputs in the edit build's last
    // instant, so they may take the full rule once more; the others stay
    // settled by the trace.
    let (_, ran, settled, stderr) = build_with(&p, false, &["-v"]);
    assert!(ran.is_empty(), "{stderr}");
    assert!(settled.is_some_and(|n| n >= 2), "{stderr}");
}

#[test]
fn a_tampered_blob_file_is_not_vouched_for() {
    let p = project();
    past_racy_window();
    assert_eq!(build(&p, false).0, 0);
    let blob = walkdir::WalkDir::new(p.path("cache/blobs"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_type().is_file())
        .expect("the big output is a blob file")
        .into_path();
    past_racy_window();
    p.file("in/a.txt", "alpha2\n");
    assert_eq!(build(&p, false).1, ["a", "b", "c"]);
    make_writable_and_flip(&blob);
    past_racy_window();
    let (_, ran, _, stderr) = build(&p, false);
    assert_eq!(
        ran,
        ["big"],
        "the corrupt entry must be recomputed:\n{stderr}"
    );
}

fn make_writable_and_flip(path: &Path) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(path, bytes).unwrap();
}

#[derive(Debug, Clone)]
enum Op {
    /// New content for an input (`a` or `d`).
    EditInput(bool, String),
    /// Same content, new mtime.
    TouchInput(bool),
    /// Remove a workspace output.
    DeleteOutput(usize),
    /// Change a workspace output's content.
    EditOutput(usize),
    /// Replace a workspace output by a copy with the same bytes.
    RenameOverOutput(usize),
    /// Flip a byte of every blob file in the store.
    TamperBlobs,
    /// Nothing at all: a no-op build, settled from the trace.
    Nothing,
    /// Write the workflow (`true`: with `d` changed) just before the
    /// build, so the graph it compiles is too recent to cache at first.
    RacyWorkflow(bool),
    /// Damage one of the fast paths' files (`BOOKKEEPING`): cut it short,
    /// flip a byte, or put a file of an older format in its place.
    DamageBookkeeping(usize, Damage),
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncate,
    FlipByte,
    OldFormat,
}

/// The graph cache, the up-to-date record and the node trace.
const BOOKKEEPING: [&str; 3] = ["graph", "uptodate", "nodes"];

const OUTPUTS: [&str; 5] = [
    "out/a.txt",
    "out/b.txt",
    "out/c.txt",
    "out/d.txt",
    "out/big.txt",
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), "[a-z]{1,6}").prop_map(|(a, s)| Op::EditInput(a, s)),
        any::<bool>().prop_map(Op::TouchInput),
        (0..OUTPUTS.len()).prop_map(Op::DeleteOutput),
        (0..OUTPUTS.len()).prop_map(Op::EditOutput),
        (0..OUTPUTS.len()).prop_map(Op::RenameOverOutput),
        Just(Op::TamperBlobs),
        Just(Op::Nothing),
        any::<bool>().prop_map(Op::RacyWorkflow),
        (
            0..BOOKKEEPING.len(),
            prop_oneof![
                Just(Damage::Truncate),
                Just(Damage::FlipByte),
                Just(Damage::OldFormat)
            ]
        )
            .prop_map(|(i, how)| Op::DamageBookkeeping(i, how)),
    ]
}

/// The workflow with `d` reading its input three times instead of two.
fn changed_workflow() -> String {
    WORKFLOW.replace(
        "cat in/d.txt in/d.txt > out/d.txt",
        "cat in/d.txt in/d.txt in/d.txt > out/d.txt",
    )
}

/// What an operation does right before the builds, after the racy
/// window of the earlier ones has passed.
fn apply_late(p: &Project, op: &Op) {
    if let Op::RacyWorkflow(changed) = op {
        let text = if *changed {
            changed_workflow()
        } else {
            WORKFLOW.to_string()
        };
        p.file("wf.yaml", &text);
    }
}

fn apply(p: &Project, op: &Op) {
    let input = |a: bool| if a { "in/a.txt" } else { "in/d.txt" };
    match op {
        Op::EditInput(a, text) => {
            p.file(input(*a), &format!("{text}\n"));
        }
        Op::TouchInput(a) => {
            let file = std::fs::File::options()
                .write(true)
                .open(p.path(input(*a)))
                .unwrap();
            file.set_modified(std::time::SystemTime::now()).unwrap();
        }
        Op::DeleteOutput(i) => {
            let _ = std::fs::remove_file(p.path(OUTPUTS[*i]));
        }
        Op::EditOutput(i) => {
            p.file(OUTPUTS[*i], "edited by hand\n");
        }
        Op::RenameOverOutput(i) => {
            let path = p.path(OUTPUTS[*i]);
            if let Ok(bytes) = std::fs::read(&path) {
                let tmp = p.path("out/.copy");
                std::fs::write(&tmp, bytes).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
            }
        }
        Op::Nothing | Op::RacyWorkflow(_) => {}
        Op::DamageBookkeeping(i, how) => {
            let name = BOOKKEEPING[*i];
            for file in walkdir::WalkDir::new(p.path("cache/runs"))
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file() && e.file_name() == name)
            {
                let mut bytes = std::fs::read(file.path()).unwrap();
                match how {
                    Damage::Truncate => bytes.truncate(bytes.len() / 2),
                    Damage::FlipByte => {
                        let at = bytes.len() / 2;
                        bytes[at] ^= 0x01;
                    }
                    Damage::OldFormat => {
                        bytes = format!("admf-{name} 2\ninvocation x\nsum 00\n").into_bytes()
                    }
                }
                std::fs::write(file.path(), bytes).unwrap();
            }
        }
        Op::TamperBlobs => {
            for blob in walkdir::WalkDir::new(p.path("cache/blobs"))
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
            {
                make_writable_and_flip(blob.path());
            }
        }
    }
}

fn workspace(p: &Project) -> Vec<Option<String>> {
    OUTPUTS
        .iter()
        .map(|o| std::fs::read_to_string(p.path(o)).ok())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5, ..ProptestConfig::default() })]

    /// Three copies of one project see the same operations; one builds
    /// with every fast path, one with them and `admf serve` watching its
    /// store, the third by the full rule. After each build all three ran
    /// the same nodes and hold the same outputs.
    #[test]
    fn the_fast_paths_decide_what_the_full_rule_decides(ops in prop::collection::vec(op(), 1..6)) {
        let fast = project();
        let served = project();
        let full = project();
        let _server = common::server::Server::start(&served);
        past_racy_window();
        let first = build(&full, true).1;
        prop_assert_eq!(&build(&fast, false).1, &first);
        prop_assert_eq!(&build(&served, false).1, &first);
        for op in &ops {
            past_racy_window();
            // A build with nothing changed: the server has then checked
            // the record itself and answers the next question from the
            // events since, which the operation must void.
            let again = build(&served, false);
            prop_assert_eq!(&again.1, &build(&full, true).1, "{}", again.3);
            prop_assert_eq!(&build(&fast, false).1, &again.1);
            for p in [&fast, &served, &full] {
                apply(p, op);
            }
            past_racy_window();
            for p in [&fast, &served, &full] {
                apply_late(p, op);
            }
            let (code_fast, ran_fast, _, err_fast) = build(&fast, false);
            let (code_served, ran_served, _, err_served) = build(&served, false);
            let (code_full, ran_full, _, err_full) = build(&full, true);
            prop_assert_eq!(code_fast, code_full, "{:?}\n{}\n{}", op, err_fast, err_full);
            prop_assert_eq!(&ran_fast, &ran_full, "{:?}\n{}\n{}", op, err_fast, err_full);
            prop_assert_eq!(workspace(&fast), workspace(&full), "{:?}", op);
            prop_assert_eq!(code_served, code_full, "{:?}\n{}\n{}", op, err_served, err_full);
            prop_assert_eq!(&ran_served, &ran_full, "{:?}\n{}\n{}", op, err_served, err_full);
            prop_assert_eq!(workspace(&served), workspace(&full), "{:?}", op);
        }
    }
}
