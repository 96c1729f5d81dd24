//! Bounded resources through the binary: a command's output is streamed
//! into a capped log (admf's own peak memory is measured), a failure
//! shows the log's tail, a retried node keeps only its last attempt's
//! output, and a command leaving processes behind in its group fails.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::Project;

/// What one admf run gave: exit code, stdout, stderr and admf's peak
/// resident memory in bytes.
struct Measured {
    code: i32,
    stdout: String,
    stderr: String,
    peak_rss: u64,
}

/// `admf ARGS` in `dir` under GNU time (`/usr/bin/time -f %M`, which
/// scripts/test.sh installs), for admf's own peak resident memory. Not
/// wait4(2) from here: a child's `ru_maxrss` starts from the peak of the
/// process that spawned it, this test binary. The streams go to files,
/// so a large one cannot block admf.
fn admf_measured(dir: &Path, args: &[&str]) -> Measured {
    let time = Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "these tests measure admf's peak memory with GNU time: install it (`apt-get install time`)"
    );
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let peak_file = tempfile::NamedTempFile::new().unwrap();
    let status = std::process::Command::new(time)
        .arg("-o")
        .arg(peak_file.path())
        .args(["-f", "%M"])
        .arg(assert_cmd::cargo::cargo_bin("admf"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("ADMF_CACHE_DIR")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    let read = |mut file: std::fs::File| {
        use std::io::{Read, Seek};
        file.rewind().unwrap();
        let mut text = Vec::new();
        file.read_to_end(&mut text).unwrap();
        String::from_utf8_lossy(&text).into_owned()
    };
    let report = std::fs::read_to_string(peak_file.path()).unwrap();
    // A non-zero exit adds a line before the figure.
    let kilobytes: u64 = report
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak memory in {report:?}"));
    Measured {
        code: status.code().unwrap_or(-1),
        stdout: read(out),
        stderr: read(err),
        peak_rss: kilobytes * 1024,
    }
}

const MB: u64 = 1_000_000;

#[test]
fn a_command_printing_200_mb_keeps_admf_small_and_shows_only_the_tail_of_its_failure() {
    let p = Project::new();
    // 200 MB of 41-byte lines, then a last line; fails until `pass` exists.
    p.file(
        "wf.yaml",
        "phases:\n  - name: loud\n    mode: command\n    run: \"yes 0123456789012345678901234567890123456789 | head -c 200000000; echo; echo the-last-line; test -e pass && echo done > out.txt\"\n    outputs: [out.txt]\n",
    );
    let failed = admf_measured(p.dir.path(), &["build", "wf.yaml"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let shown = failed.stdout.len() + failed.stderr.len();
    assert!(
        failed.stderr.contains("the-last-line"),
        "the tail is shown:\n{}",
        &failed.stderr[failed.stderr.len().saturating_sub(2000)..]
    );
    assert!(
        shown < 100 * 1024,
        "a failure shows the log's tail, not {shown} bytes"
    );
    assert!(
        failed.stderr.contains("earlier bytes"),
        "{}",
        &failed.stderr[..failed.stderr.len().min(2000)]
    );
    // Without streaming, the output was read whole and copied: 400 MB
    // and more.
    assert!(
        failed.peak_rss < 120 * MB,
        "admf peaked at {} MB for 200 MB of output",
        failed.peak_rss / MB
    );

    p.file("pass", "");
    let built = admf_measured(p.dir.path(), &["build", "wf.yaml"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    assert!(
        built.peak_rss < 120 * MB,
        "admf peaked at {} MB for 200 MB of output",
        built.peak_rss / MB
    );
    // The stored log keeps the first and the last MiB, and says so.
    let show = p.admf(&["show", "wf.yaml", "loud", "--json"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let shown: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    let log_path = shown["log"].as_str().expect("log path");
    let log = std::fs::read(log_path).unwrap();
    assert!(
        log.len() < 2 * 1024 * 1024 + 4096,
        "stored log is {} bytes",
        log.len()
    );
    let text = String::from_utf8_lossy(&log);
    assert!(text.starts_with("0123456789"), "{}", &text[..100]);
    assert!(text.contains("the-last-line"));
    assert!(text.contains("bytes of output left out"));
}

#[test]
fn a_retried_node_keeps_only_its_last_attempts_output() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: flaky\n    mode: command\n    retries: 2\n    run: \"echo x >> attempts; echo output-of-attempt-$(wc -l < attempts); exit 1\"\n",
    );
    let out = p.admf(&["build", "wf.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(p.read("attempts"), "x\nx\nx\n");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("output-of-attempt-3"), "{all}");
    assert!(!all.contains("output-of-attempt-1"), "{all}");
    assert!(!all.contains("output-of-attempt-2"), "{all}");
    assert!(all.contains("attempt 3 of 3"), "{all}");
}

#[test]
fn a_command_leaving_a_process_writing_its_output_fails_and_the_process_is_killed() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: daemon\n    mode: command\n    run: \"(sleep 1; echo late >> out.txt) & echo early > out.txt\"\n    outputs: [out.txt]\n  - name: waits\n    mode: command\n    depends_on: []\n    run: \"(sleep 0.3; echo late >> w.txt) & echo early > w.txt; wait\"\n    outputs: [w.txt]\n",
    );
    let (out, statuses) = p.build(&["--keep-going", "wf.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        statuses.contains(&("daemon".to_string(), "failed".to_string())),
        "{statuses:?}"
    );
    // A command that waits for what it started is fine.
    assert!(
        statuses.contains(&("waits".to_string(), "ran".to_string())),
        "{statuses:?}"
    );
    assert_eq!(p.read("w.txt"), "early\nlate\n");
    assert!(
        out.stderr.contains("left processes running"),
        "{}",
        out.stderr
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        p.read("out.txt"),
        "early\n",
        "the process left behind was killed"
    );
    // Nothing was stored for it: the next build runs it again.
    let (_, again) = p.build(&["--keep-going", "wf.yaml"]);
    assert!(
        again.contains(&("daemon".to_string(), "failed".to_string())),
        "{again:?}"
    );
    assert!(
        again.contains(&("waits".to_string(), "cached".to_string())),
        "{again:?}"
    );
}

/// A workflow replaying a small sweep with `weights:` as given.
fn replay_project(weights: &str) -> Project {
    let p = Project::new();
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p.file(
        "wf.yaml",
        &format!(
            "data: {{source: csv, symbols: [SPY], path: data/SPY_D.csv}}\nstrategy: {{type: momentum, parameters: {{lookback: 20, threshold: 0.0}}}}\nphases:\n  - sweep:\n      mode: signal_generation\n      grid: {{lookback: [10, 20]}}\n  - ensemble:\n      mode: signal_replay\n      depends_on: [sweep]\n      weights: {weights}\n"
        ),
    );
    p
}

#[test]
fn a_weight_search_beyond_its_bound_is_refused_at_its_key() {
    for samples in ["100000000", "18446744073709551615"] {
        let p = replay_project(&format!("{{method: random, samples: {samples}, seed: 1}}"));
        let err = p.bad_input(&["validate", "wf.yaml"]);
        assert!(err.contains("wf.yaml:10"), "{err}");
        assert!(err.contains("weights.samples"), "{err}");
        assert!(err.contains("1000000"), "{err}");
        // A build stops at the same place, before running anything.
        let err = p.bad_input(&["build", "wf.yaml"]);
        assert!(err.contains("weights.samples"), "{err}");
    }
    let p = replay_project("{method: random, samples: 1000, seed: 1}");
    let (out, statuses) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        statuses.contains(&("ensemble".to_string(), "ran".to_string())),
        "{statuses:?}"
    );
}

#[test]
fn the_trial_bound_holds_for_the_whole_graph_and_is_counted_before_expanding() {
    let p = Project::new();
    // 600,000 trials each: either alone is allowed, both are not.
    let phase = |name: &str| {
        format!(
            "  - {name}:\n      mode: signal_generation\n      grid: {{lookback: \"range(1, 600, 1)\", threshold: \"range(1, 1000, 1)\"}}\n"
        )
    };
    p.file(
        "wf.yaml",
        &format!(
            "data: {{source: csv, symbols: [SPY], path: SPY_D.csv}}\nstrategy: {{type: momentum}}\nphases:\n{}{}",
            phase("first"),
            phase("second")
        ),
    );
    p.repo_file("data/SPY_D.csv", "SPY_D.csv");
    let out = admf_measured(p.dir.path(), &["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("wf.yaml:9"), "{}", out.stderr);
    assert!(out.stderr.contains("grid"), "{}", out.stderr);
    assert!(out.stderr.contains("1200000"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // Three keys of a million values each: refused from the counts, not
    // after listing three million values.
    p.file(
        "wf.yaml",
        "data: {source: csv, symbols: [SPY], path: SPY_D.csv}\nstrategy: {type: momentum}\nphases:\n  - s:\n      mode: signal_generation\n      grid: {a: \"range(1, 1000000, 1)\", b: \"range(1, 1000000, 1)\", c: \"range(1, 1000000, 1)\"}\n",
    );
    let out = admf_measured(p.dir.path(), &["validate", "wf.yaml"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("wf.yaml:6"), "{}", out.stderr);
    assert!(
        out.peak_rss < 60 * MB,
        "validate peaked at {} MB",
        out.peak_rss / MB
    );
}

/// `rows` minute bars in header form, about 62 bytes a row, ending with
/// a row whose close does not parse.
fn minute_bars(rows: usize) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(rows * 64 + 64);
    text.push_str("datetime,open,high,low,close,volume\n");
    let start = 1_420_191_000i64; // 2015-01-02 09:30:00
    let mut price = 100.0f64;
    for i in 0..rows as i64 {
        let t = start + 60 * i;
        let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        let date = civil_date(days);
        let close = price * (1.0 + 0.001 * (((i * 7919) % 13) as f64 - 6.0) / 6.0);
        let (high, low) = (price.max(close) * 1.0005, price.min(close) * 0.9995);
        writeln!(
            text,
            "{date} {:02}:{:02}:{:02},{price:.4},{high:.4},{low:.4},{close:.4},{}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            100 + i % 99_000
        )
        .unwrap();
        price = close;
    }
    text.push_str("2099-01-01 00:00:00,1,2,0.5,abc,10\n");
    text
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (Howard Hinnant's algorithm).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[test]
fn a_large_csv_is_loaded_into_columns_without_holding_its_text() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "data: {source: csv, symbols: [X], path: bars.csv}\nstrategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}\nphases:\n  - bt:\n      mode: backtest\n",
    );
    // admf loading the same file format with 100 rows: its baseline.
    let rows = 600_000;
    let full = minute_bars(rows);
    let lines: Vec<&str> = full.lines().collect();
    p.file(
        "bars.csv",
        &format!("{}\n{}\n", lines[..101].join("\n"), lines[lines.len() - 1]),
    );
    let small = admf_measured(p.dir.path(), &["build", "wf.yaml"]);
    assert_eq!(small.code, 2, "{}", small.stderr);
    assert!(small.stderr.contains("bars.csv:102"), "{}", small.stderr);
    p.file("bars.csv", &full);
    let size = full.len() as u64;
    drop(lines);
    drop(full);
    // Every row is loaded before the last one is refused.
    let large = admf_measured(p.dir.path(), &["build", "wf.yaml"]);
    assert_eq!(large.code, 2, "{}", large.stderr);
    let last = format!("bars.csv:{}", rows + 2);
    assert!(large.stderr.contains(&last), "{}", large.stderr);
    // The columns take 48 bytes a row and each timestamp's text about as
    // much, some 1.6 times the file; holding the text as well took 3.3.
    let grew = large.peak_rss.saturating_sub(small.peak_rss);
    assert!(
        grew < size * 5 / 2,
        "loading {} MB grew admf by {} MB",
        size / MB,
        grew / MB
    );
}
