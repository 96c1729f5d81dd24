//! Fan-out (`foreach:`, `matrix:`), gathers and dependencies from files,
//! through the binary, with the fast paths on: every change is seen by
//! the next build, and exactly the nodes it touches run.

mod common;

use common::Project;
use common::fast_paths::{build, settle};

const MAP: &str = r#"phases:
  - map:
      mode: command
      foreach: {values: [A, B], as: sample}
      inputs: ["reads/{sample}.txt"]
      outputs: ["mapped/{sample}.txt"]
      env: {WHO: "{sample}"}
      run: "mkdir -p mapped && printf '%s:' \"$WHO\" > mapped/{sample}.txt && tr a-z A-Z < reads/{sample}.txt >> mapped/{sample}.txt"
  - merge:
      mode: command
      inputs: [{expand: "mapped/{sample}.txt", over: map}]
      outputs: [merged.txt]
      run: "cat mapped/*.txt > merged.txt"
"#;

fn mapping() -> Project {
    let p = Project::new();
    p.file("wf.yaml", MAP)
        .file("reads/A.txt", "aa\n")
        .file("reads/B.txt", "bb\n")
        .file("reads/C.txt", "cc\n");
    p
}

#[test]
fn each_value_is_its_own_node_and_the_gather_reads_every_instance() {
    let p = mapping();
    let first = settle(&p, &["wf.yaml"]);
    assert_eq!(first.ran(), ["map[sample=A]", "map[sample=B]", "merge"]);
    assert_eq!(p.read("merged.txt"), "A:AA\nB:BB\n");

    // Editing one sample's input reruns that instance and the gather only.
    p.file("reads/B.txt", "bbb\n");
    let edit = build(&p, &["wf.yaml"]);
    assert!(!edit.fast, "{}", edit.stderr);
    assert_eq!(edit.ran(), ["map[sample=B]", "merge"]);
    assert_eq!(p.read("merged.txt"), "A:AA\nB:BBB\n");

    // Adding a sample edits the list and nothing else: one new node, and
    // the gather that now reads it.
    p.file("wf.yaml", &MAP.replace("[A, B]", "[A, B, C]"));
    let added = build(&p, &["wf.yaml"]);
    assert!(!added.fast, "{}", added.stderr);
    assert_eq!(added.ran(), ["map[sample=C]", "merge"]);
    assert_eq!(p.read("merged.txt"), "A:AA\nB:BBB\nC:CC\n");
    let graph = p.admf(&["graph", "wf.yaml"]).stdout;
    assert!(
        graph.contains("command  <- map[sample=A], map[sample=B], map[sample=C]\n"),
        "{graph}"
    );
}

#[test]
fn a_file_dropped_into_a_globbed_folder_is_processed_by_the_next_build() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - count:
      mode: command
      foreach: {glob: "books/*.txt", as: book}
      inputs: ["books/{book}.txt"]
      outputs: ["counts/{book}.txt"]
      run: "mkdir -p counts && wc -w < books/{book}.txt | tr -d ' ' > counts/{book}.txt"
  - total:
      mode: command
      inputs: ["counts/*.txt"]
      outputs: [total.txt]
      run: "cat counts/*.txt | awk '{s += $1} END {print s}' > total.txt"
"#,
    )
    .file("books/a.txt", "the cat sat\n")
    .file("books/b.txt", "a dog ran far\n");
    let first = settle(&p, &["wf.yaml"]);
    assert_eq!(first.ran(), ["count[book=a]", "count[book=b]", "total"]);
    assert_eq!(p.read("total.txt"), "7\n");

    p.file("books/c.txt", "one two\n");
    let dropped = build(&p, &["wf.yaml"]);
    assert!(!dropped.fast, "a new book answered from the record");
    assert_eq!(dropped.ran(), ["count[book=c]", "total"]);
    assert_eq!(p.read("total.txt"), "9\n");

    // Settled again, then a book removed: its node goes, the total follows.
    common::fast_paths::age(p.dir.path());
    assert!(build(&p, &["wf.yaml"]).ran().is_empty());
    assert!(build(&p, &["wf.yaml"]).fast);
    std::fs::remove_file(p.path("books/a.txt")).unwrap();
    std::fs::remove_file(p.path("counts/a.txt")).unwrap();
    let removed = build(&p, &["wf.yaml"]);
    assert!(!removed.fast);
    assert_eq!(removed.ran(), ["total"]);
    assert_eq!(removed.ids(), ["count[book=b]", "count[book=c]", "total"]);
    assert_eq!(p.read("total.txt"), "6\n");
}

#[test]
fn a_list_from_a_file_key_adds_a_node_when_the_file_gains_a_value() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - greet:
      mode: command
      foreach: {file: config.yaml, key: run.samples, as: s}
      outputs: ["out/{s}.txt"]
      run: "mkdir -p out && echo hi {s} > out/{s}.txt"
"#,
    )
    .file("config.yaml", "run:\n  samples: [x1, x2]\n");
    assert_eq!(
        settle(&p, &["wf.yaml"]).ran(),
        ["greet[s=x1]", "greet[s=x2]"]
    );
    p.file("config.yaml", "run:\n  samples: [x1, x2, x3]\n");
    let added = build(&p, &["wf.yaml"]);
    assert!(!added.fast);
    assert_eq!(added.ran(), ["greet[s=x3]"]);
    assert_eq!(p.read("out/x3.txt"), "hi x3\n");
}

#[test]
fn a_matrix_takes_the_product_and_a_bound_gather_keeps_its_own_values() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - align:
      mode: command
      matrix: {sample: [A, B], ref: [hg19, hg38]}
      outputs: ["al/{sample}.{ref}"]
      run: "mkdir -p al && echo {sample}-{ref} > al/{sample}.{ref}"
  - per_sample:
      mode: command
      foreach: {values: [A, B], as: sample}
      inputs: [{expand: "al/{sample}.{ref}", over: align}]
      outputs: ["per/{sample}.txt"]
      run: "mkdir -p per && cat al/{sample}.* > per/{sample}.txt"
"#,
    );
    let first = build(&p, &["wf.yaml"]);
    assert_eq!(
        first.ran(),
        [
            "align[sample=A,ref=hg19]",
            "align[sample=A,ref=hg38]",
            "align[sample=B,ref=hg19]",
            "align[sample=B,ref=hg38]",
            "per_sample[sample=A]",
            "per_sample[sample=B]",
        ]
    );
    assert_eq!(p.read("per/B.txt"), "B-hg19\nB-hg38\n");
    let graph = p.admf(&["graph", "wf.yaml"]).stdout;
    assert!(
        graph.contains(
            "per_sample[sample=A]      command  <- align[sample=A,ref=hg19], align[sample=A,ref=hg38]\n"
        ),
        "the gather in a bound phase reads only its own sample's instances:\n{graph}"
    );
}

#[test]
fn an_output_named_as_an_input_is_an_edge_and_need_not_exist_yet() {
    let p = Project::new();
    // `report` is declared first and names no dependency: the file makes
    // the edge, and a cold build runs `make` before it.
    p.file(
        "wf.yaml",
        r#"phases:
  - report:
      mode: command
      depends_on: []
      inputs: [gen/data.txt, "gen/*.part"]
      outputs: [report.txt]
      run: "cat gen/data.txt gen/*.part > report.txt"
  - make:
      mode: command
      depends_on: []
      inputs: [src.txt]
      outputs: [gen/data.txt, gen/x.part]
      run: "mkdir -p gen && cp src.txt gen/data.txt && echo part > gen/x.part"
"#,
    )
    .file("src.txt", "v1\n");
    let first = settle(&p, &["wf.yaml"]);
    assert_eq!(first.ran(), ["make", "report"]);
    assert_eq!(p.read("report.txt"), "v1\npart\n");
    p.file("src.txt", "v2\n");
    let edit = build(&p, &["wf.yaml"]);
    assert!(!edit.fast);
    assert_eq!(edit.ran(), ["make", "report"]);
    assert_eq!(p.read("report.txt"), "v2\npart\n");
}

#[test]
fn two_phases_writing_one_path_stay_an_error() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - a:\n      mode: command\n      foreach: [x, y]\n      outputs: [same.txt]\n      run: touch same.txt\n",
    );
    let err = p.bad_input(&["validate", "wf.yaml"]);
    assert!(err.contains("same.txt"), "{err}");
    assert!(
        err.contains("a[item=x]") && err.contains("a[item=y]"),
        "{err}"
    );
}

#[test]
fn bad_fan_outs_name_the_file_line_and_key() {
    for (yaml, place, words) in [
        (
            "phases:\n  - a:\n      mode: command\n      foreach: [x]\n      run: \"echo {sample}\"\n",
            "wf.yaml:5:7",
            "`{sample}` is not bound here (bound: item)",
        ),
        (
            "phases:\n  - a:\n      mode: command\n      foreach: []\n      run: echo\n",
            "wf.yaml:4:7",
            "the list is empty",
        ),
        (
            "phases:\n  - a:\n      mode: command\n      foreach: {glob: \"none/*.txt\", as: f}\n      run: echo\n",
            "wf.yaml:4:17",
            "matches no file",
        ),
        (
            "phases:\n  - a:\n      mode: command\n      foreach: [x]\n      matrix: {y: [1]}\n      run: echo\n",
            "wf.yaml:5:7",
            "not both",
        ),
        (
            "phases:\n  - a:\n      mode: command\n      foreach: [\"has space\"]\n      run: echo\n",
            "wf.yaml:4:17",
            "cannot be a fan-out value",
        ),
        (
            &format!(
                "phases:\n  - a:\n      mode: command\n      matrix: {{x: [{}], y: [{}], z: [{}]}}\n      run: echo\n",
                "v".repeat(64),
                "w".repeat(64),
                "u".repeat(64)
            ),
            "wf.yaml:4:7",
            "bytes, above 192",
        ),
        (
            "phases:\n  - a:\n      mode: command\n      foreach: [x, x]\n      run: echo\n",
            "wf.yaml:4:7",
            "`x` appears twice",
        ),
        (
            "phases:\n  - a:\n      mode: command\n      run: echo\n      inputs: [{expand: \"o/{item}\", over: b}]\n",
            "wf.yaml:5:37",
            "`b` is not a phase of this file with `foreach:` or `matrix:`",
        ),
        (
            "phases:\n  - a:\n      mode: command\n      foreach: [x]\n      run: echo\n  - b:\n      mode: command\n      run: echo\n      when: \"a.x > 1\"\n",
            "wf.yaml:9:7",
            "fan-out phase",
        ),
    ] {
        let p = Project::new();
        p.file("wf.yaml", yaml);
        let err = p.bad_input(&["validate", "wf.yaml"]);
        assert!(err.contains(place), "{place} in:\n{err}");
        assert!(err.contains(words), "{words} in:\n{err}");
    }
}

#[test]
fn shell_braces_are_left_alone_and_doubled_braces_are_literal() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - a:
      mode: command
      foreach: [x]
      outputs: ["{item}.txt"]
      run: "X=1; echo {item} ${X} {{item}} | awk '{print $1, $2, $3}' > {item}.txt"
"#,
    );
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["a[item=x]"]);
    assert_eq!(p.read("x.txt"), "x 1 {item}\n");
}

/// Any mode fans out: a backtest per lookback, the value keeping its type
/// where a whole string is one placeholder, and params values too.
#[test]
fn a_backtest_fans_out_with_typed_values() {
    let p = Project::new();
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv")
        .file("params.yaml", "threshold: 0.01\n")
        .file(
            "wf.yaml",
            r#"data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
phases:
  - bt:
      mode: backtest
      foreach: {values: [10, 30], as: lookback}
      params: {file: params.yaml, keys: [threshold]}
      strategy:
        type: momentum
        parameters: {lookback: "{lookback}", threshold: "{params.threshold}"}
"#,
        );
    let run = build(&p, &["wf.yaml"]);
    assert_eq!(run.ran(), ["bt[lookback=10]", "bt[lookback=30]"]);
    let show = p.admf(&["show", "wf.yaml", "bt[lookback=30]"]);
    assert!(
        show.stdout.contains("\"lookback\": 30") && show.stdout.contains("\"threshold\": 0.01"),
        "{}{}",
        show.stdout,
        show.stderr
    );
}
