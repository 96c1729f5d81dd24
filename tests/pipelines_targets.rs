//! `admf build WF PATTERN...`: node ids, a fan-out phase's name, globs
//! over node ids and output paths, `--until` and `--downstream`.

mod common;

use common::Project;
use common::fast_paths::build;

const WF: &str = r#"phases:
  - map:
      mode: command
      foreach: {values: [A, B, C], as: sample}
      outputs: ["mapped/{sample}.txt"]
      run: "mkdir -p mapped && echo {sample} > mapped/{sample}.txt"
  - merge:
      mode: command
      inputs: [{expand: "mapped/{sample}.txt", over: map}]
      outputs: [merged.txt]
      run: "cat mapped/*.txt > merged.txt"
  - publish:
      mode: command
      inputs: [merged.txt]
      outputs: [published.txt]
      run: "cp merged.txt published.txt"
  - side:
      mode: command
      depends_on: []
      outputs: [side.txt]
      run: "echo side > side.txt"
"#;

fn project() -> Project {
    let p = Project::new();
    p.file("wf.yaml", WF);
    p
}

fn selected(p: &Project, args: &[&str]) -> Vec<String> {
    let mut all = vec!["wf.yaml"];
    all.extend_from_slice(args);
    let run = build(p, &all);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.ids()
}

#[test]
fn targets_are_node_ids_phase_names_globs_and_output_paths() {
    let p = project();
    assert_eq!(selected(&p, &["map[sample=B]"]), ["map[sample=B]"]);
    assert_eq!(
        selected(&p, &["map"]),
        ["map[sample=A]", "map[sample=B]", "map[sample=C]"]
    );
    assert_eq!(
        selected(&p, &["map[*]"]),
        ["map[sample=A]", "map[sample=B]", "map[sample=C]"]
    );
    assert_eq!(
        selected(&p, &["*[sample=?]"]),
        ["map[sample=A]", "map[sample=B]", "map[sample=C]"]
    );
    assert_eq!(selected(&p, &["mapped/C.txt"]), ["map[sample=C]"]);
    assert_eq!(
        selected(&p, &["published.txt"]),
        [
            "map[sample=A]",
            "map[sample=B]",
            "map[sample=C]",
            "merge",
            "publish"
        ]
    );
    assert_eq!(
        selected(&p, &["mapped/*.txt"]),
        ["map[sample=A]", "map[sample=B]", "map[sample=C]"]
    );
    assert!(!p.path("side.txt").exists());
}

#[test]
fn until_builds_up_to_a_node_and_downstream_below_one() {
    let p = project();
    assert_eq!(
        selected(&p, &["--until", "merge"]),
        ["map[sample=A]", "map[sample=B]", "map[sample=C]", "merge"]
    );
    assert!(!p.path("published.txt").exists());
    // Everything below `map[sample=B]`, with what those need (cached).
    let run = build(&p, &["wf.yaml", "--downstream", "map[sample=B]"]);
    assert_eq!(
        run.ids(),
        [
            "map[sample=A]",
            "map[sample=B]",
            "map[sample=C]",
            "merge",
            "publish"
        ]
    );
    assert_eq!(run.ran(), ["publish"]);
    assert!(!p.path("side.txt").exists());
    // Forcing the subtree: `side` is never selected.
    let forced = build(
        &p,
        &["wf.yaml", "--downstream", "merge", "--force", "merge"],
    );
    assert_eq!(forced.ran(), ["merge"]);
    assert_eq!(
        forced.with("cached"),
        ["map[sample=A]", "map[sample=B]", "map[sample=C]", "publish"]
    );
}

#[test]
fn a_target_matching_nothing_is_bad_input() {
    let p = project();
    let err = p.bad_input(&["build", "wf.yaml", "mapp[*]x"]);
    assert!(err.contains("no node named `mapp[*]x`"), "{err}");
    let err = p.bad_input(&["build", "wf.yaml", "--downstream", "nothing.txt"]);
    assert!(err.contains("nothing.txt"), "{err}");
}

#[test]
fn wildcards_match_any_text_and_one_character_with_literal_brackets() {
    use admf::graph::wildcard_match as m;
    assert!(m("map[*]", "map[sample=A]"));
    assert!(!m("map[*]", "mapx[sample=A]"));
    assert!(m("*[sample=?]", "map[sample=B]"));
    assert!(!m("*[sample=?]", "map[sample=BB]"));
    assert!(m("a*b*c", "abbbc"));
    assert!(m("a*b*c", "abc"));
    assert!(!m("a*b*c", "acb"));
    assert!(m("*", ""));
    assert!(!m("?", ""));
}

#[test]
fn force_takes_a_fan_out_phase_name_like_a_target() {
    let p = project();
    assert_eq!(build(&p, &["wf.yaml"]).ran().len(), 6);
    // Re-executed with the same outputs: everything below is cut off.
    let forced = build(&p, &["wf.yaml", "--force", "map"]);
    assert_eq!(
        forced.ran(),
        ["map[sample=A]", "map[sample=B]", "map[sample=C]"]
    );
    let one = build(&p, &["wf.yaml", "--force", "map[sample=B]"]);
    assert_eq!(one.ran(), ["map[sample=B]"]);
}

/// The same pattern as a glob with brackets escaped: the reference.
fn reference_match(pattern: &str, text: &str) -> bool {
    let escaped: String = pattern
        .chars()
        .map(|c| match c {
            '[' => "[[]".to_string(),
            ']' => "[]]".to_string(),
            other => other.to_string(),
        })
        .collect();
    globset::GlobBuilder::new(&escaped)
        .literal_separator(false)
        .build()
        .unwrap()
        .compile_matcher()
        .is_match(text)
}

proptest::proptest! {
    #[test]
    fn wildcards_agree_with_globs_with_literal_brackets(
        pattern in "[ab*?\\[\\]=]{0,8}",
        text in "[ab\\[\\]=]{0,10}",
    ) {
        proptest::prop_assert_eq!(
            admf::graph::wildcard_match(&pattern, &text),
            reference_match(&pattern, &text),
            "{} ~ {}", pattern, text
        );
    }
}
