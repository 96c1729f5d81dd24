//! Crash safety through the binary: `admf build` killed with SIGKILL at
//! pseudo-random moments leaves no entry that `cache verify` calls corrupt,
//! and the next build's artifacts are byte-identical to a clean build's.
//! The long version is `scripts/stress_kill.py` (200 kills by default).

mod common;
mod store_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Project, tree};

const WORKFLOW: &str = r#"data: {source: csv, symbols: [SPY], path: data/SPY.csv}
strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}
phases:
  - name: gen_a
    mode: command
    env: {SALT: "0"}
    run: 'yes "alpha $SALT" | head -c 1000000 > big/a.bin'
    outputs: [big/a.bin]
    depends_on: []
  - name: gen_b
    mode: command
    run: 'yes beta | head -c 1000000 > big/b.bin'
    outputs: [big/b.bin]
    depends_on: []
  - name: join
    mode: command
    run: 'cat big/a.bin big/b.bin > big/ab.bin'
    outputs: [big/ab.bin]
    depends_on: [gen_a, gen_b]
  - name: bt
    mode: backtest
    depends_on: []
  - name: sweep
    mode: signal_generation
    grid: {lookback: [10, 30]}
    depends_on: []
"#;

fn project() -> Project {
    let p = Project::new();
    p.file("wf.yaml", WORKFLOW)
        .repo_file("data/SPY_D.csv", "data/SPY.csv");
    p
}

fn variant(v: u32) -> Vec<String> {
    vec![
        "--set".into(),
        format!("gen_a.env.SALT={v}"),
        "--set".into(),
        format!("strategy.parameters.lookback={}", 10 + v),
    ]
}

/// Every artifact of a finished build: each node's stored outputs and
/// the workspace outputs, by node id and path.
fn artifacts(p: &Project, args: &[String]) -> Vec<(String, Vec<u8>)> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut all = vec!["wf.yaml", "-j2"];
    all.extend(args);
    let (out, _) = p.build(&all);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut got = Vec::new();
    for node in report["nodes"].as_array().unwrap() {
        let key = node["key"].as_str().unwrap();
        for (rel, bytes) in store_support::entry_files(&p.path("cache"), key) {
            got.push((format!("{}:{rel}", node["id"].as_str().unwrap()), bytes));
        }
    }
    // A kill while an output is being restored may leave its temp file
    // `.<name>.admf-tmp.<pid>` beside it (never a half output); it is
    // removed the next time that output is restored or rebuilt.
    for (rel, bytes) in tree(&p.path("big")) {
        if !rel.contains(".admf-tmp.") {
            got.push((format!("workspace:{rel}"), bytes));
        }
    }
    got
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// Starts a build in its own process group; returns it with its start time.
fn spawn_build(p: &Project, args: &[String]) -> (std::process::Child, Instant) {
    use std::os::unix::process::CommandExt;
    let child = p
        .command()
        .args(["build", "wf.yaml", "-j2"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    (child, Instant::now())
}

/// SIGKILL admf, then what is left of its process group (running `sh -c`
/// commands outlive a killed parent, as they would after any SIGKILL).
fn kill_group(child: &mut std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
}

fn corrupt_count(p: &Project) -> usize {
    let out = p.admf(&["cache", "verify"]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // A kill in the first milliseconds can come before the store exists:
    // then nothing was stored, so nothing is corrupt.
    if out.stderr.contains("no store at") {
        return 0;
    }
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("checked "))
        .unwrap_or_else(|| panic!("no summary:\n{}", out.stderr));
    let corrupt = line
        .split(", ")
        .find(|s| s.ends_with(" corrupt"))
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad summary: {line}"));
    if corrupt > 0 {
        eprintln!("{}", out.stderr);
    }
    corrupt
}

#[test]
fn ten_sigkills_lose_nothing() {
    let clean: Vec<Vec<(String, Vec<u8>)>> =
        (0..3).map(|v| artifacts(&project(), &variant(v))).collect();
    // How long one full build takes here, to aim the kills inside it.
    let timing = project();
    let (mut child, started) = spawn_build(&timing, &variant(9));
    child.wait().unwrap();
    let full = started.elapsed().as_millis().max(20) as u64;

    let p = project();
    let mut rng = Lcg(0x5eed);
    let mut kills = 0;
    let mut round = 0;
    while kills < 10 {
        round += 1;
        assert!(round < 100, "builds keep finishing before their kill");
        let v = (rng.next() % 3) as u32;
        let mut args = variant(v);
        if rng.next().is_multiple_of(3) {
            args.push("--force-all".into());
        }
        let delay = Duration::from_millis(rng.next() % (full + full / 10));
        let (mut child, started) = spawn_build(&p, &args);
        std::thread::sleep(delay.saturating_sub(started.elapsed()));
        if child.try_wait().unwrap().is_none() {
            kills += 1;
        }
        kill_group(&mut child);
        assert_eq!(corrupt_count(&p), 0, "round {round}: a corrupt entry");
        let got = artifacts(&p, &variant(v));
        let want = &clean[v as usize];
        let differ: Vec<&String> = got
            .iter()
            .zip(want)
            .filter(|(g, w)| g != w)
            .map(|(g, _)| &g.0)
            .collect();
        assert!(
            got.len() == want.len() && differ.is_empty(),
            "round {round}: artifacts differ from a clean build: {differ:?}"
        );
    }
    // Repair leaves a store that verifies clean and still builds as a no-op.
    let out = p.admf(&["cache", "verify", "--repair"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = p.admf(&["cache", "verify"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(" 0 corrupt, 0 temporaries"),
        "{}",
        out.stderr
    );
    let v = variant(0);
    let mut args = vec!["wf.yaml"];
    args.extend(v.iter().map(String::as_str));
    assert!(p.ran(&args).is_empty());
}
