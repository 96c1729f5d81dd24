//! Bad input, generated: workflow YAML (every form, includes, grids,
//! conditions, `--set`) and CSV data mutated with nasty bytes. Whatever
//! the input, admf never panics, rejects bad input with exit 2 naming
//! file:line, and leaves no partial entry in the store.
//!
//! `cargo test` tries a few dozen cases; `PROPTEST_CASES=2000 cargo test
//! --test reliability_fuzz` tries more.

mod common;
mod store_support;

use common::Project;
use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const BASES: &[&str] = &[
    "phases:\n  - name: a\n    mode: command\n    run: 'echo a > a.txt'\n    outputs: [a.txt]\n  - name: b\n    mode: command\n    run: 'cat a.txt > b.txt'\n    outputs: [b.txt]\n    when: \"a.x > 1\"\n    depends_on: [a]\n",
    "data: {source: csv, symbols: [SPY], path: data.csv}\nstrategy:\n  type: momentum\n  parameters: {lookback: 5, threshold: 0.0}\n",
    "data: {source: csv, symbols: [SPY], path: data.csv}\nstrategy: {type: momentum, parameters: {lookback: 5}}\nphases:\n  - sweep:\n      mode: signal_generation\n      grid: {lookback: [3, 5], threshold: 'range(0, 0.02, 0.01)'}\n  - regimes:\n      mode: analysis\n      classifiers: [volatility]\n",
    "composite_workflow:\n  phases:\n    - name: inc\n      workflow: inc.yaml\n    - name: after\n      mode: command\n      run: 'true'\n      depends_on: [inc]\n",
    "phases:\n  - {name: p1, type: command, run: 'true', retries: 1}\n  - {name: p2, type: command, run: 'true', depends_on: []}\n  - {name: p3, type: command, run: 'true', depends_on: [p1, p2], env: {X: 1}}\n",
];

const INCLUDE: &str = "phases:\n  - {name: x, mode: command, run: 'true'}\n";

const NASTY: &[&str] = &[
    "\u{feff}",
    "\t",
    "\n",
    ": ",
    "- ",
    "{",
    "]",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    ".nan",
    "-.inf",
    "1e999",
    "99999999999999999999999",
    "-0",
    "~",
    "\"\\u0000\"",
    "'",
    "workflow: wf.yaml\n",
    "depends_on: [a, a]\n",
    "name: a\n",
    "phases: []\n",
    "when: \"a.b.c >= 1 or\"\n",
    "grid: {lookback: 'range(1, 9e18, 1)'}\n",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "../",
];

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, usize),
    Delete(usize, usize),
    Byte(usize, u8),
    DuplicateLine(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..NASTY.len()).prop_map(|(p, i)| Mutation::Insert(p, i)),
        (any::<usize>(), 1usize..12).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Byte(p, b)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Insert(p, i) => {
                let at = p % (bytes.len() + 1);
                bytes.splice(at..at, NASTY[*i].bytes());
            }
            Mutation::Delete(p, n) => {
                let at = p % len;
                let end = (at + n).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            Mutation::Byte(p, b) => {
                if !bytes.is_empty() {
                    let at = p % bytes.len();
                    bytes[at] = *b;
                }
            }
            Mutation::DuplicateLine(p) => {
                let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
                let i = p % lines.len();
                let mut out = Vec::new();
                for (j, l) in lines.iter().enumerate() {
                    out.extend_from_slice(l);
                    out.push(b'\n');
                    if j == i {
                        out.extend_from_slice(l);
                        out.push(b'\n');
                    }
                }
                bytes = out;
            }
        }
    }
    bytes
}

const SET_KEYS: &[&str] = &[
    "strategy.parameters.lookback",
    "a.run",
    "sweep.grid.lookback",
    "data.path",
    "nope.x",
    "phases",
    "",
];
const SET_VALUES: &[&str] = &["30", "[1, 2]", ".nan", "{", "''", "1e999", "x: y", "../x"];

fn set_arg() -> impl Strategy<Value = String> {
    (0..SET_KEYS.len(), 0..SET_VALUES.len(), any::<bool>()).prop_map(|(k, v, eq)| {
        if eq {
            format!("{}={}", SET_KEYS[k], SET_VALUES[v])
        } else {
            SET_KEYS[k].to_string()
        }
    })
}

fn spy_head(lines: usize) -> String {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/SPY_D.csv")).unwrap();
    text.lines().take(lines).map(|l| format!("{l}\n")).collect()
}

/// Exit 0 or 2, never a panic; a 2 names file:line (or is about `--set`).
fn check_rejection(out: &common::Output, file_pattern: &[&str], sets: bool) {
    assert!(
        !out.stderr.contains("panicked") && out.code != 101,
        "panic:\n{}",
        out.stderr
    );
    if out.code == 2 {
        let located = file_pattern.iter().any(|f| {
            out.stderr.match_indices(f).any(|(i, _)| {
                out.stderr[i + f.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            })
        });
        let about_set = sets && (out.stderr.contains("--set") || out.stderr.contains("KEY=VALUE"));
        assert!(
            located || about_set,
            "exit 2 without file:line:\n{}",
            out.stderr
        );
    }
}

/// No temporary left behind anywhere in the project, and every store
/// entry valid. A run that `built` successfully must have made the store;
/// one that did not build (or was rejected) may have made none, and then
/// `cache verify` must say there is none.
fn store_is_clean(p: &Project, out: &common::Output, built: bool) {
    // `tempfile` names its files `.tmp…`: one left behind is a write that
    // was neither renamed into place nor cleaned up.
    let temporaries: Vec<_> = walkdir::WalkDir::new(p.dir.path())
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .map(|e| e.into_path())
        .collect();
    assert!(temporaries.is_empty(), "temporaries left: {temporaries:?}");
    let verify = p.admf(&["cache", "verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    if p.path("cache").exists() {
        assert!(
            verify.stderr.contains(" 0 corrupt, 0 temporaries"),
            "{}",
            verify.stderr
        );
    } else {
        assert!(
            !(built && out.code == 0),
            "a successful build left no store:\n{}",
            out.stderr
        );
        assert!(verify.stderr.contains("no store at"), "{}", verify.stderr);
    }
}

/// What the documented CSV rules (src/market/csv_load.rs) say of a mutated
/// copy of the `spy_head` file, worked out here without the loader.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Every rule holds: the build must succeed.
    Valid,
    /// A rule is broken for certain: the build must exit 2.
    Invalid(String),
    /// The mutation reached something this check does not model
    /// (quoting, whitespace, other delimiters or time formats): either is
    /// acceptable, as long as it is clean.
    Unsure,
}

fn csv_verdict(bytes: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Verdict::Unsure;
    };
    let unmodelled = |c: char| {
        c != '\n' && (c.is_whitespace() || c.is_control() || matches!(c, '"' | ';' | '\u{feff}'))
    };
    if text.contains(unmodelled) || text.lines().any(|l| l.len() > 10_000) {
        return Verdict::Unsure;
    }
    let mut lines = text.split('\n').enumerate().filter(|(_, l)| !l.is_empty());
    let Some((_, header)) = lines.next() else {
        return Verdict::Unsure;
    };
    let names: Vec<&str> = header.split(',').collect();
    let known = ["", "date", "open", "high", "low", "close", "volume"];
    if names.iter().any(|n| !known.contains(n))
        || (1..names.len()).any(|i| names[..i].contains(&names[i]))
    {
        return Verdict::Unsure;
    }
    let column = |name: &str| names.iter().position(|n| *n == name);
    let (Some(date), Some(open), Some(high), Some(low), Some(close)) = (
        column("date"),
        column("open"),
        column("high"),
        column("low"),
        column("close"),
    ) else {
        return Verdict::Invalid("a required column is missing".into());
    };
    let volume = column("volume");
    let mut previous: Option<String> = None;
    let mut rows = 0;
    for (i, line) in lines {
        let at = |why: &str| Verdict::Invalid(format!("line {}: {why}", i + 1));
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != names.len() || fields.iter().any(|f| f.is_empty()) {
            return Verdict::Unsure;
        }
        let day = fields[date];
        let shape = day.len() == 10
            && day.char_indices().all(|(k, c)| {
                if k == 4 || k == 7 {
                    c == '-'
                } else {
                    c.is_ascii_digit()
                }
            });
        if !shape {
            if day.chars().any(|c| c.is_ascii_digit()) {
                return Verdict::Unsure;
            }
            return at("no time");
        }
        let (month, dom): (u32, u32) = (day[5..7].parse().unwrap(), day[8..].parse().unwrap());
        if !(1..=12).contains(&month) || !(1..=28).contains(&dom) {
            // Leave the calendar (and 29..31) to the loader.
            return Verdict::Unsure;
        }
        let number = |k: usize| fields[k].parse::<f64>().ok().filter(|x| x.is_finite());
        let (Some(o), Some(h), Some(l), Some(c)) =
            (number(open), number(high), number(low), number(close))
        else {
            return at("a price is not a finite number");
        };
        if let Some(v) = volume {
            match number(v) {
                Some(v) if v >= 0.0 => {}
                _ => return at("volume is not a number >= 0"),
            }
        }
        if o <= 0.0 || h <= 0.0 || l <= 0.0 || c <= 0.0 {
            return at("a price <= 0");
        }
        if h < o.max(c) || l > o.min(c) {
            return at("high/low do not cover open and close");
        }
        if previous.as_deref().is_some_and(|p| p >= day) {
            return at("time not after the previous row");
        }
        previous = Some(day.to_string());
        rows += 1;
    }
    if rows == 0 {
        return Verdict::Unsure;
    }
    Verdict::Valid
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(24), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_workflows_are_rejected_cleanly(
        base in 0..BASES.len(),
        mutations in prop::collection::vec(mutation(), 0..4),
        sets in prop::collection::vec(set_arg(), 0..2),
        build in prop::bool::weighted(0.25),
    ) {
        let p = Project::new();
        p.file("inc.yaml", INCLUDE);
        p.file("data.csv", &spy_head(40));
        std::fs::write(p.path("wf.yaml"), apply(BASES[base].as_bytes().to_vec(), &mutations)).unwrap();
        let mut args = vec![if build { "build" } else { "validate" }, "wf.yaml"];
        if build {
            args.extend(["-j1", "--cache-dir", "cache"]);
        }
        for s in &sets {
            args.extend(["--set", s.as_str()]);
        }
        let out = p.admf(&args);
        prop_assert!((0..=2).contains(&out.code), "exit {}:\n{}", out.code, out.stderr);
        prop_assert!(build || out.code != 1, "validate exit 1:\n{}", out.stderr);
        check_rejection(&out, &["wf.yaml:", "inc.yaml:", "data.csv:"], !sets.is_empty());
        store_is_clean(&p, &out, build);
    }

    #[test]
    fn mutated_csv_data_is_rejected_cleanly(
        mutations in prop::collection::vec(csv_mutation(), 1..4),
    ) {
        let p = Project::new();
        p.file("wf.yaml", BASES[1]);
        let csv = apply_csv(spy_head(40), &mutations);
        std::fs::write(p.path("data.csv"), &csv).unwrap();
        let verdict = csv_verdict(&csv);
        let out = p.admf(&["build", "wf.yaml", "-j1", "--cache-dir", "cache"]);
        prop_assert!(matches!(out.code, 0 | 2), "exit {}:\n{}", out.code, out.stderr);
        match &verdict {
            Verdict::Valid => prop_assert_eq!(out.code, 0, "valid data rejected:\n{}", out.stderr),
            Verdict::Invalid(why) => prop_assert_eq!(out.code, 2, "accepted data where {}", why),
            Verdict::Unsure => {}
        }
        check_rejection(&out, &["data.csv:", "wf.yaml:"], false);
        store_is_clean(&p, &out, true);
        if out.code == 2 {
            let entries = store_support::action_keys(&p.path("cache"));
            prop_assert!(entries.is_empty(), "an entry for bad data: {entries:?}");
        }
    }
}

#[test]
fn the_csv_verdict_follows_the_documented_rules() {
    let good = spy_head(6);
    assert_eq!(csv_verdict(good.as_bytes()), Verdict::Valid);
    let rows: Vec<&str> = good.lines().collect();
    let with = |i: usize, row: &str| {
        let mut r = rows.clone();
        r[i] = row;
        r.join("\n") + "\n"
    };
    // Row 1 is `0,1999-11-01,136.5,137.0,135.5625,135.5625,4006500.0`.
    for (row, why) in [
        ("0,1999-11-01,136.5,137.0,135.5625,135.5625,-1", "volume"),
        ("0,1999-11-01,136.5,137.0,135.5625,abc,4006500.0", "finite"),
        (
            "0,1999-11-01,136.5,137.0,135.5625,1e400,4006500.0",
            "finite",
        ),
        (
            "0,1999-11-01,136.5,136.0,135.5625,135.5625,4006500.0",
            "cover",
        ),
        ("0,1999-11-01,0,137.0,135.5625,135.5625,4006500.0", "<= 0"),
        (
            "0,1999-11-02,136.5,137.0,135.5625,135.5625,4006500.0",
            "after",
        ),
        ("0,abc,136.5,137.0,135.5625,135.5625,4006500.0", "no time"),
    ] {
        match csv_verdict(with(1, row).as_bytes()) {
            Verdict::Invalid(w) => assert!(w.contains(why), "{row}: {w}"),
            other => panic!("{row}: {other:?}"),
        }
    }
    assert_eq!(
        csv_verdict(with(1, "0,1999-11-01,136.5,137.0,135.5625,135.5625,0").as_bytes()),
        Verdict::Valid
    );
    assert_eq!(
        csv_verdict(with(1, "0,1999-11-01,136.5,137.0,135.5625,\"135.5625\",1").as_bytes()),
        Verdict::Unsure
    );
}

const CSV_NASTY: &[&str] = &[
    "NaN",
    "inf",
    "-inf",
    "1e308",
    "1e400",
    "-1",
    "0",
    "",
    "\t1.0",
    "1,0",
    "\"",
    "abc",
    "99999999999999999999999999",
    "2000-13-45",
    "\u{feff}",
    "1.0\r",
];

#[derive(Debug, Clone)]
enum CsvMutation {
    Field(usize, usize, usize),
    SwapLines(usize, usize),
    DuplicateLine(usize),
    DropColumn(usize),
    Bytes(usize, Vec<u8>),
    LongLine(usize),
}

fn csv_mutation() -> impl Strategy<Value = CsvMutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 0..CSV_NASTY.len())
            .prop_map(|(l, f, v)| CsvMutation::Field(l, f, v)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| CsvMutation::SwapLines(a, b)),
        any::<usize>().prop_map(CsvMutation::DuplicateLine),
        any::<usize>().prop_map(CsvMutation::DropColumn),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(p, b)| CsvMutation::Bytes(p, b)),
        any::<usize>().prop_map(CsvMutation::LongLine),
    ]
}

fn apply_csv(text: String, mutations: &[CsvMutation]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    for m in mutations {
        let n = lines.len().max(1);
        match m {
            CsvMutation::Field(l, f, v) => {
                let line = String::from_utf8_lossy(&lines[l % n]).into_owned();
                let mut fields: Vec<String> = line.split(',').map(String::from).collect();
                let i = f % fields.len();
                fields[i] = CSV_NASTY[*v].to_string();
                lines[l % n] = fields.join(",").into_bytes();
            }
            CsvMutation::SwapLines(a, b) => lines.swap(a % n, b % n),
            CsvMutation::DuplicateLine(l) => {
                let line = lines[l % n].clone();
                lines.insert(l % n, line);
            }
            CsvMutation::DropColumn(c) => {
                for line in &mut lines {
                    let s = String::from_utf8_lossy(line).into_owned();
                    let mut fields: Vec<&str> = s.split(',').collect();
                    if fields.len() > 1 {
                        fields.remove(c % fields.len());
                    }
                    *line = fields.join(",").into_bytes();
                }
            }
            CsvMutation::Bytes(p, b) => {
                let line = &mut lines[p % n];
                let at = p % (line.len() + 1);
                line.splice(at..at, b.iter().copied());
            }
            CsvMutation::LongLine(l) => {
                lines[l % n].extend(std::iter::repeat_n(b'7', 200_000));
            }
        }
    }
    lines.join(&b'\n').into_iter().chain([b'\n']).collect()
}

#[test]
fn nasty_workflow_files() {
    let deep_flow = format!("phases: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let deep_block: String = (0..300)
        .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
        .collect();
    let long_line = format!(
        "phases:\n  - {{name: a, mode: command, run: '{}'}}\n  - {{name: b, mode: comand}}\n",
        "x".repeat(3_000_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("only a BOM", "\u{feff}".into()),
        ("BOM then phases", "\u{feff}phases:\n  - {name: a, mode: comand}\n".into()),
        ("tabs", "phases:\n\t- {name: a}\n".into()),
        ("huge retries", "phases:\n  - {name: a, mode: command, run: x, retries: 1e30}\n".into()),
        ("duplicate keys", "phases:\n  - {name: a, mode: command, run: x, run: y}\n".into()),
        ("alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n".into()),
        ("deep flow nesting", deep_flow.into()),
        ("deep block nesting", deep_block.into()),
        ("long line", long_line.into()),
        ("non-UTF-8", b"phases:\n  - {name: a, mode: command, run: \"\xc3\x28\"}\n".to_vec()),
        ("NUL", b"phases:\n  - {name: a\x00, mode: command, run: x}\n".to_vec()),
    ];
    for (what, bytes) in cases {
        let p = Project::new();
        std::fs::write(p.path("wf.yaml"), &bytes).unwrap();
        let started = std::time::Instant::now();
        let out = p.admf(&["validate", "wf.yaml"]);
        assert_eq!(
            out.code, 2,
            "{what}: exit {}:\n{:.2000}",
            out.code, out.stderr
        );
        check_rejection(&out, &["wf.yaml:"], false);
        assert!(
            out.stderr.len() < 10_000,
            "{what}: {} bytes of error",
            out.stderr.len()
        );
        assert!(
            started.elapsed().as_secs() < 20,
            "{what}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_long_bad_csv_field_is_quoted_short() {
    let p = Project::new();
    p.file("wf.yaml", BASES[1]);
    let mut lines: Vec<String> = spy_head(40).lines().map(String::from).collect();
    lines[20] = lines[20].replacen(',', &format!(",{}", "x".repeat(2_000_000)), 1);
    p.file("data.csv", &(lines.join("\n") + "\n"));
    let out = p.admf(&["build", "wf.yaml", "--cache-dir", "cache"]);
    assert_eq!(out.code, 2, "{:.2000}", out.stderr);
    check_rejection(&out, &["data.csv:"], false);
    assert!(out.stderr.contains("data.csv:21:"), "{:.2000}", out.stderr);
    assert!(
        out.stderr.len() < 2_000,
        "{} bytes of error",
        out.stderr.len()
    );
    store_is_clean(&p, &out, true);
}

#[test]
fn huge_numbers_on_the_command_line() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: a, mode: command, run: 'true'}\n",
    );
    let out = p.admf(&["cache", "gc", "--older-than", "99999999999999999d"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--older-than"), "{}", out.stderr);
    let out = p.admf(&["cache", "gc", "--keep", "99999999999999999999999"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let out = p.admf(&["build", "wf.yaml", "-j", "99999999"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = p.admf(&["build", "wf.yaml", "-j", "0"]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}
