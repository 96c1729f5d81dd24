//! The three ported pipelines in `examples/` (DVC, Snakemake, make): each
//! builds, then exactly the right nodes rerun after a parameter change,
//! an input edit and an added item, with the fast paths on (each change
//! is made after a build answered by the up-to-date record).

mod common;

use common::example_all;
use common::fast_paths::{age, build, settle};

const WF: &[&str] = &["workflow.yaml"];

/// Age the project and check the next build is answered by the record,
/// so the change that follows is made against both fast paths. (A build
/// that restored an output leaves a fresh file: aged again.)
fn resettle(p: &common::Project) {
    age(p.dir.path());
    assert!(build(p, WF).ran().is_empty());
    age(p.dir.path());
    assert!(build(p, WF).ran().is_empty());
    assert!(build(p, WF).fast, "the record should answer");
}

#[test]
fn dvc_pipeline_reruns_by_parameter_key() {
    let p = example_all("dvc_ml");
    let first = settle(&p, WF);
    assert_eq!(
        first.ran(),
        [
            "prepare",
            "featurize",
            "train",
            "evaluate[metric=mae]",
            "evaluate[metric=max_err]"
        ]
    );
    // Figures checked against an independent Python computation: slope =
    // 42.3 / 210 on
    // the scaled train rows, errors on the two test rows.
    assert_eq!(p.read("model.txt"), "slope 0.2014285714 n_est 50 seed 7\n");
    assert_eq!(p.read("eval/mae.json"), "{\"mae\": 0.157143}\n");
    assert_eq!(p.read("eval/max_err.json"), "{\"max_err\": 0.300000}\n");

    // A key no stage lists: the file changed, every key is the same.
    let params = p.read("params.yaml");
    p.file(
        "params.yaml",
        &params.replace("reruns nothing", "still nothing"),
    );
    let unrelated = build(&p, WF);
    assert!(
        !unrelated.fast,
        "an edited params file answered from the record"
    );
    assert!(unrelated.ran().is_empty(), "{}", unrelated.stderr);

    // A parameter of `train`: it and what reads its model.
    resettle(&p);
    p.file("params.yaml", &params.replace("n_est: 50", "n_est: 80"));
    assert_eq!(
        build(&p, WF).ran(),
        ["train", "evaluate[metric=mae]", "evaluate[metric=max_err]"]
    );
    assert_eq!(p.read("model.txt"), "slope 0.2014285714 n_est 80 seed 7\n");

    // `--set params.K=V` is the same value for one build: back to 50, and
    // since those entries are stored nothing runs; then the file again.
    let set = build(&p, &["workflow.yaml", "--set", "params.train.n_est=50"]);
    assert!(set.ran().is_empty(), "{}", set.stderr);
    assert_eq!(p.read("model.txt"), "slope 0.2014285714 n_est 50 seed 7\n");

    // An input edit in the test rows: every stage below the data.
    resettle(&p);
    let data = p.read("data/data.csv");
    p.file("data/data.csv", &data.replace("8,16.1", "8,17.1"));
    assert_eq!(
        build(&p, WF).ran(),
        [
            "prepare",
            "featurize",
            "train",
            "evaluate[metric=mae]",
            "evaluate[metric=max_err]"
        ]
    );
    // The train rows did not change: neither did the model.
    assert_eq!(p.read("model.txt"), "slope 0.2014285714 n_est 80 seed 7\n");

    // An added item: one more metric is one more node.
    resettle(&p);
    let params = p.read("params.yaml");
    p.file(
        "params.yaml",
        &params.replace("[mae, max_err]", "[mae, max_err, bias]"),
    );
    assert_eq!(build(&p, WF).ran(), ["evaluate[metric=bias]"]);
    // Signed errors on the test rows: -0.3 and 17.1 - 16.1142857 = 0.9857143.
    assert_eq!(p.read("eval/bias.json"), "{\"bias\": 0.342857}\n");
}

#[test]
fn snakemake_pipeline_fans_out_per_sample_and_gathers() {
    let p = example_all("snakemake_mapping");
    assert!(
        std::fs::read_to_string(p.path("workflow.yaml"))
            .unwrap()
            .lines()
            .count()
            < 30
    );
    let first = settle(&p, WF);
    assert_eq!(
        first.ran(),
        [
            "map[sample=A]",
            "map[sample=B]",
            "map[sample=C]",
            "sort[sample=A]",
            "sort[sample=B]",
            "sort[sample=C]",
            "call"
        ]
    );
    assert_eq!(p.read("calls/all.txt"), "ACGT 3\nGGCA 2\n");

    // A parameter only `call` reads.
    let config = p.read("config.yaml");
    p.file(
        "config.yaml",
        &config.replace("min_count: 2", "min_count: 1"),
    );
    let param = build(&p, WF);
    assert!(!param.fast);
    assert_eq!(param.ran(), ["call"]);
    assert_eq!(p.read("calls/all.txt"), "ACGT 3\nCCCC 1\nGGCA 2\nTTAG 1\n");

    // One sample's reads edited: its chain and the gather.
    resettle(&p);
    p.file(
        "samples/B.fastq",
        "@r1\nGGCA\n+\nIIII\n@r2\nACGT\n+\nIIII\n",
    );
    assert_eq!(
        build(&p, WF).ran(),
        ["map[sample=B]", "sort[sample=B]", "call"]
    );
    assert_eq!(p.read("calls/all.txt"), "ACGT 4\nCCCC 1\nGGCA 2\n");

    // A sample added to config.yaml, nothing else edited.
    resettle(&p);
    p.file("samples/D.fastq", "@r1\nTTAG\n+\nIIII\n")
        .file("config.yaml", &p.read("config.yaml").replace("C]", "C, D]"));
    assert_eq!(
        build(&p, WF).ran(),
        ["map[sample=D]", "sort[sample=D]", "call"]
    );
    assert_eq!(p.read("calls/all.txt"), "ACGT 4\nCCCC 1\nGGCA 2\nTTAG 1\n");
}

#[test]
fn make_pipeline_processes_a_book_dropped_into_the_folder() {
    let p = example_all("make_books");
    let first = settle(&p, WF);
    assert_eq!(
        first.ran(),
        ["count[book=cat]", "count[book=dog]", "report"]
    );
    assert_eq!(p.read("report.txt"), "5 the\n2 cat\n");

    // A parameter only the report reads.
    p.file("params.yaml", "top: 3\n");
    let param = build(&p, WF);
    assert!(!param.fast);
    assert_eq!(param.ran(), ["report"]);
    assert_eq!(p.read("report.txt"), "5 the\n2 cat\n2 dog\n");

    // One book edited.
    resettle(&p);
    p.file("books/cat.txt", "the cat sat on the cat\n");
    assert_eq!(build(&p, WF).ran(), ["count[book=cat]", "report"]);
    assert_eq!(p.read("report.txt"), "5 the\n3 cat\n2 dog\n");

    // A book dropped in: counted by the next build, nothing else edited.
    resettle(&p);
    p.file("books/owl.txt", "owl owl owl owl owl owl\n");
    let dropped = build(&p, WF);
    assert!(!dropped.fast, "a new book answered from the record");
    assert_eq!(dropped.ran(), ["count[book=owl]", "report"]);
    assert_eq!(p.read("report.txt"), "6 owl\n5 the\n3 cat\n");
}
