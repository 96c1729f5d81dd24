//! A `command` phase reads its upstream nodes' outputs through
//! `ADMF_UPSTREAM_<NAME>` and `ADMF_UPSTREAM_JSON`, and the keys stay put.

mod common;

use common::Project;
use serde_json::Value;

const SWEEP: &str = r#"data: {source: csv, symbols: [SPY], path: data/SPY_D.csv}
strategy: {type: momentum, parameters: {lookback: 20, threshold: 0.0}}
phases:
  - parameter_discovery:
      mode: signal_generation
      grid: {lookback: [10, 30], threshold: [0.01, 0.02]}
  - files:
      mode: command
      depends_on: [parameter_discovery]
      run: |
        mkdir -p out
        cp "$ADMF_UPSTREAM_PARAMETER_DISCOVERY/trials.json" out/trials.json
        ls "$ADMF_UPSTREAM_PARAMETER_DISCOVERY/signals" > out/signals.txt
        grep -q '"env": "ADMF_UPSTREAM_PARAMETER_DISCOVERY"' "$ADMF_UPSTREAM_JSON"
        grep -q '"metrics": "' "$ADMF_UPSTREAM_JSON"
        echo listed > out/listing.txt
      outputs: [out/trials.json, out/signals.txt, out/listing.txt]
"#;

/// The README's example: a sweep to CSV from `trials.json`.
const TO_CSV: &str = r#"  - sweep_csv:
      mode: command
      depends_on: [parameter_discovery]
      run: |
        python3 - <<'PY'
        import csv, json, os
        sweep = os.environ["ADMF_UPSTREAM_PARAMETER_DISCOVERY"]
        trials = json.load(open(os.path.join(sweep, "trials.json")))
        with open("sweep.csv", "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["lookback", "threshold", "sharpe", "total_return"])
            for t in trials:
                p, m = t["params"], t["metrics"]
                out.writerow([p["lookback"], p["threshold"], m["sharpe"], m["total_return"]])
        PY
      outputs: [sweep.csv]
"#;

fn project(extra: &str) -> Project {
    let p = Project::new();
    p.repo_file("data/SPY_D.csv", "data/SPY_D.csv");
    p.file("wf.yaml", &format!("{SWEEP}{extra}"));
    p.file(".admf", "");
    p
}

#[test]
fn a_command_reads_its_upstream_folder_and_listing() {
    let p = project("");
    let (out, statuses) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(statuses.iter().all(|(_, s)| s == "ran"), "{statuses:?}");
    let shown: Value = serde_json::from_str(
        &p.admf(&["show", "wf.yaml", "parameter_discovery", "--json"])
            .stdout,
    )
    .unwrap();
    let stored = shown["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "trials.json")
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        p.read("out/trials.json"),
        std::fs::read_to_string(stored).unwrap()
    );
    assert_eq!(
        p.read("out/signals.txt"),
        "trial_0.jsonl\ntrial_1.jsonl\ntrial_2.jsonl\ntrial_3.jsonl\n"
    );
    assert_eq!(p.read("out/listing.txt"), "listed\n");
    // The per-run folder paths enter no key: nothing reruns.
    let (again, statuses) = p.build(&["wf.yaml"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(statuses.iter().all(|(_, s)| s == "cached"), "{statuses:?}");
    let status = p.admf(&["status", "wf.yaml", "--json"]);
    let status: Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "fresh")
    );
}

#[test]
fn the_readme_example_turns_a_sweep_into_a_csv() {
    let has_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python {
        eprintln!("no python3 here: the example is not run");
        return;
    }
    let p = project(TO_CSV);
    let (out, _) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let csv = p.read("sweep.csv");
    let trials: Value =
        serde_json::from_str(&p.admf(&["trials", "wf.yaml", "--format", "json"]).stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "lookback,threshold,sharpe,total_return");
    assert_eq!(lines.len(), 5);
    for (line, row) in lines[1..].iter().zip(trials.as_array().unwrap()) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0], row["lookback"].to_string());
        assert_eq!(cells[1], row["threshold"].to_string());
        let sharpe: f64 = cells[2].parse().unwrap();
        assert_eq!(sharpe, row["sharpe"].as_f64().unwrap());
    }
}

/// An upstream command's outputs are read where they are, in the
/// workspace: `ADMF_UPSTREAM_GEN` names the workflow's directory and no
/// folder is laid out for them. A command that changes one fails (its
/// output is not stored), and a reader after it still sees the stored
/// bytes, put back before it runs.
#[test]
fn a_command_that_changes_its_upstream_folder_fails_and_others_read_the_stored_bytes() {
    let p = Project::new();
    p.file(".admf", "");
    p.file(
        "wf.yaml",
        r#"phases:
  - gen:
      mode: command
      run: echo stored > gen.txt
      outputs: [gen.txt]
  - tamper:
      mode: command
      depends_on: [gen]
      run: |
        test "$ADMF_UPSTREAM_GEN" = "$PWD"
        echo changed > "$ADMF_UPSTREAM_GEN/gen.txt"
        echo done > tamper.txt
      outputs: [tamper.txt]
  - reader:
      mode: command
      depends_on: [gen]
      run: cp "$ADMF_UPSTREAM_GEN/gen.txt" reader.txt
      outputs: [reader.txt]
"#,
    );
    let (out, statuses) = p.build(&["wf.yaml", "-j1", "--keep-going"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
    let status = |id: &str| {
        statuses
            .iter()
            .find(|(n, _)| n == id)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    };
    assert_eq!(status("gen"), "ran", "{statuses:?}");
    assert_eq!(status("reader"), "ran", "{statuses:?}");
    assert_ne!(status("tamper"), "ran", "{statuses:?}");
    assert!(
        out.stderr
            .contains("`gen` ($ADMF_UPSTREAM_GEN) was changed while the command ran"),
        "{}",
        out.stderr
    );
    assert_eq!(p.read("reader.txt"), "stored\n");
    assert_eq!(p.read("gen.txt"), "stored\n");
    // No folder was laid out for `gen`, kept or in the build's scratch.
    let kept = std::fs::read_to_string(p.path("cache/upstream/record")).unwrap_or_default();
    assert_eq!(kept.lines().skip(1).count(), 0, "{kept}");
    // Nothing of the build's folders is left in the store.
    let tmp = p.path("cache/tmp");
    assert!(tmp.is_dir(), "no store at {}", tmp.display());
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// Many nodes reading overlapping upstream entries at `-j2` (upstream
/// commands, read in place; the folders' reuse and recycling are tested
/// in `phases/upstream_env.rs`): each command reads exactly its upstream
/// outputs and a listing of exactly its upstream nodes.
#[test]
fn overlapping_readers_in_parallel_each_read_their_own_upstream() {
    let deps = |k: usize| -> Vec<usize> { (1..=3).filter(|d| *d <= k).map(|d| k - d).collect() };
    // Every fourth node writes the same bytes as the others of its kind.
    let same = |k: usize| k % 4 == 3;
    let first_line = |k: usize| {
        if same(k) {
            "same".to_string()
        } else {
            format!("node{k}")
        }
    };
    let mut yaml = String::from("phases:\n");
    for k in 0..24 {
        let names: Vec<String> = deps(k).iter().map(|d| format!("n{d}")).collect();
        let run = if same(k) {
            format!("mkdir -p out; echo same > out/n{k}.txt")
        } else {
            let reads: String = deps(k)
                .iter()
                .map(|d| format!(" head -n1 \"$ADMF_UPSTREAM_N{d}/out/n{d}.txt\";"))
                .collect();
            format!(
                "mkdir -p out; {{ echo node{k};{reads} grep -o \"\\\"env\\\"\" \"$ADMF_UPSTREAM_JSON\" | wc -l | tr -d \" \"; }} > out/n{k}.txt"
            )
        };
        yaml.push_str(&format!(
            "  - n{k}:\n      mode: command\n      depends_on: [{}]\n      run: '{run}'\n      outputs: [out/n{k}.txt]\n",
            names.join(", "),
        ));
    }
    let p = Project::new();
    p.file(".admf", "");
    p.file("wf.yaml", &yaml);
    let (out, statuses) = p.build(&["wf.yaml", "-j2"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(statuses.len(), 24);
    for k in 0..24 {
        let mut expected = format!("{}\n", first_line(k));
        if !same(k) {
            for d in deps(k) {
                expected.push_str(&format!("{}\n", first_line(d)));
            }
            expected.push_str(&format!("{}\n", deps(k).len()));
        }
        assert_eq!(p.read(&format!("out/n{k}.txt")), expected, "n{k}");
    }
    let (again, statuses) = p.build(&["wf.yaml", "-j2"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(statuses.iter().all(|(_, s)| s == "cached"), "{statuses:?}");
}

/// The names of the folders `cache/upstream/record` vouches for.
fn recorded_folders(p: &Project) -> Vec<String> {
    let record = std::fs::read_to_string(p.path("cache/upstream/record")).unwrap();
    record
        .lines()
        .skip(1)
        .map(|line| line.split(' ').nth(1).unwrap().to_string())
        .collect()
}

/// Upstream folders are kept from one build to the next (`gen`'s output
/// is `temp:`, so it is read from a folder, not in place), and a build
/// killed while it lays them out leaves nothing a later build trusts: a
/// folder made since the record was written, a stray one, or a recorded
/// one that lost a file, are all laid out anew or removed.
#[test]
fn a_build_killed_with_new_upstream_folders_leaves_none_that_is_trusted() {
    let p = Project::new();
    p.file(".admf", "");
    p.file("src.txt", "one\n");
    p.file(
        "wf.yaml",
        r#"phases:
  - gen:
      mode: command
      run: cat src.txt > gen.txt
      inputs: [src.txt]
      temp: [gen.txt]
  - reader:
      mode: command
      depends_on: [gen]
      run: |
        if [ -e kill.flag ]; then rm kill.flag; kill -9 "$PPID"; exit 1; fi
        cp "$ADMF_UPSTREAM_GEN/gen.txt" reader.txt
      outputs: [reader.txt]
"#,
    );
    let (out, _) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(p.read("reader.txt"), "one\n");
    let first = recorded_folders(&p);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(!p.path("cache/upstream/dirty").exists());
    // Killed while `reader` runs on gen's new folder.
    p.file("src.txt", "two\n");
    p.file("kill.flag", "");
    let killed = p.admf(&["build", "wf.yaml"]);
    assert_ne!(killed.code, 0, "{}", killed.stderr);
    assert!(p.path("cache/upstream/dirty").exists());
    assert_eq!(recorded_folders(&p), first);
    let made: Vec<String> = std::fs::read_dir(p.path("cache/upstream"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() > 32 && !first.contains(n))
        .collect();
    assert_eq!(
        made.len(),
        1,
        "the new folder is there, unrecorded: {made:?}"
    );
    // A stray folder, and the recorded one half emptied, as a kill in the
    // middle of laying them out could leave them.
    let stray = p.path(&format!("cache/upstream/{}.stray", "0".repeat(32)));
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("gen.txt"), "stray\n").unwrap();
    let recorded = p.path(&format!("cache/upstream/{}", first[0]));
    let mut perms = std::fs::metadata(&recorded).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&recorded, perms).unwrap();
    std::fs::remove_file(recorded.join("gen.txt")).unwrap();
    // The next build reruns `reader` on the new entry's folder, made again.
    let (out, statuses) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        statuses.contains(&("reader".into(), "ran".into())),
        "{statuses:?}"
    );
    assert_eq!(p.read("reader.txt"), "two\n");
    assert!(!p.path("cache/upstream/dirty").exists());
    assert!(!stray.exists() && !p.path(&format!("cache/upstream/{}", made[0])).exists());
    // Back to the first input, with `reader` forced to run: gen's first
    // entry gets a whole folder again, not the half-emptied one.
    p.file("src.txt", "one\n");
    let (out, statuses) = p.build(&["wf.yaml", "--force-all"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        statuses.contains(&("reader".into(), "ran".into())),
        "{statuses:?}"
    );
    assert_eq!(p.read("reader.txt"), "one\n");
    assert!(!recorded.exists());
    let mut on_disk: Vec<String> = std::fs::read_dir(p.path("cache/upstream"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lock" && n != "record")
        .collect();
    on_disk.sort();
    let mut recorded_now = recorded_folders(&p);
    recorded_now.sort();
    assert_eq!(on_disk, recorded_now);
}

/// A command with no upstream node still gets a listing, of no nodes, in
/// a file of its own that is gone once it has run.
#[test]
fn a_command_without_upstream_gets_an_empty_listing_that_goes_with_it() {
    let p = Project::new();
    p.file(".admf", "");
    p.file(
        "wf.yaml",
        "phases:\n  - name: root\n    mode: command\n    run: 'echo \"$ADMF_UPSTREAM_JSON\" > where.txt; cp \"$ADMF_UPSTREAM_JSON\" listing.json'\n    outputs: [where.txt, listing.json]\n",
    );
    let (out, statuses) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(statuses, [("root".to_string(), "ran".to_string())]);
    let listing: Value = serde_json::from_str(&p.read("listing.json")).unwrap();
    assert_eq!(listing, serde_json::json!({"nodes": {}}));
    let listed_at = p.read("where.txt");
    assert!(
        !std::path::Path::new(listed_at.trim()).exists(),
        "{listed_at} left behind"
    );
}
