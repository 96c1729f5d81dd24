//! Builds handed over to `admf serve`: the server's build process forks
//! them with the last build's state decoded. A handed build must be the
//! build the caller would have run itself: its arguments, environment,
//! working directory, umask and streams, its exit code, its reaction to
//! Ctrl-C, and never a decoded copy of a file that changed since it was
//! read.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::server::Server;
use common::{DIAMOND, Project, alive, read_pid};

/// What the trace says in a build handed over.
const HANDED: &str = "built by a process admf serve forked";

fn diamond() -> Project {
    let p = Project::new();
    p.file("wf.yaml", DIAMOND).file("in/a.txt", "hello\n");
    p
}

fn traced(p: &Project, args: &[&str]) -> common::Output {
    p.admf_env(args, &[("ADMF_TRACE", "1")])
}

/// `admf build wf.yaml`, which must be handed over and succeed; its fork
/// waits `delay_ms` after answering before it writes its caches and its
/// run ledger row (`ADMF_TEST_SAVE_DELAY_MS`).
fn handed_build_held(p: &Project, delay_ms: &str) {
    let out = p.admf_env(
        &["build", "wf.yaml"],
        &[("ADMF_TRACE", "1"), ("ADMF_TEST_SAVE_DELAY_MS", delay_ms)],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains(HANDED), "{}", out.stderr);
}

/// Wait (at most 20 s) until `admf serve` has read what the last build
/// wrote: a build handed over after that takes the decoded copies.
fn until_decoded_ahead(p: &Project, rebuild: impl Fn()) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        rebuild();
        std::thread::sleep(Duration::from_millis(300));
        let out = traced(p, &["build", "wf.yaml", "--force", "d"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        if out.stderr.contains("trace: decoded ahead") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never decoded ahead:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_handed_build_reports_and_writes_what_it_would_alone() {
    let p = diamond();
    let _server = Server::start(&p);
    let out = traced(&p, &["build", "--json", "wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains(HANDED), "{}", out.stderr);
    // The report reached the caller's stdout, the progress its stderr.
    let report = common::json_report(&out, "admf build --json");
    let ran: Vec<&str> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "ran")
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["a", "b", "c", "d"]);
    assert_eq!(p.read("out/d.txt"), "HELLO\nh");

    // An edit: the handed build reruns what the edit reaches, from the
    // copies decoded ahead (checked against their files first).
    until_decoded_ahead(&p, || {});
    p.file("in/a.txt", "howdy\n");
    let out = traced(&p, &["build", "wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains(HANDED), "{}", out.stderr);
    assert!(out.stderr.contains("4 ran"), "{}", out.stderr);
    assert_eq!(p.read("out/d.txt"), "HOWDY\nh");
}

/// The runs `admf runs` lists for `wf.yaml`.
fn runs(p: &Project) -> usize {
    let out = p.admf(&["runs", "wf.yaml", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    runs.as_array().unwrap().len()
}

#[test]
fn a_handed_build_answers_before_writing_its_caches_and_the_next_build_finds_them() {
    // The diamond and 2,000 more nodes: caches large enough to take a
    // while to write after the caller is answered.
    let mut workflow = DIAMOND.to_string();
    for i in 0..2000 {
        workflow.push_str(&format!(
            "  - name: n{i}\n    mode: command\n    run: \"true\"\n"
        ));
    }
    let p = Project::new();
    p.file("wf.yaml", &workflow).file("in/a.txt", "hello\n");
    let _server = Server::start(&p);
    until_decoded_ahead(&p, || {});
    for round in 0..3 {
        p.file("in/a.txt", &format!("edit {round}\n"));
        // Past the racy window, so that the edit does not keep the
        // up-to-date record from being written.
        std::thread::sleep(Duration::from_millis(300));
        let before = runs(&p);
        let out = traced(&p, &["build", "wf.yaml"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.contains(HANDED), "{}", out.stderr);
        assert!(out.stderr.contains("ran"), "{}", out.stderr);
        // At once: the record the fork writes after answering is found,
        // by this caller or, when the fork was still writing it, by the
        // next fork (the server waits for the one finishing).
        let again = traced(&p, &["build", "wf.yaml"]);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert!(
            again.stderr.contains("trace: up to date by"),
            "round {round}:\n{}",
            again.stderr
        );
        assert_eq!(p.read("out/d.txt"), format!("EDIT {round}\ne"));
        // Both builds are in the run ledger, which the fork writes before
        // it answers.
        assert_eq!(runs(&p), before + 2);
    }
}

/// The race the test above leaves to chance, forced: the fork writes its
/// caches only 500 ms after answering, so the next caller finds no
/// up-to-date record and hands its build over; the server waits for the
/// finishing fork, and the next fork checks the record again and finds
/// it, instead of deciding every node again. The server waits a second at
/// most: the delay takes half, the rest is room for a loaded machine.
#[test]
fn a_build_handed_while_the_last_one_writes_its_record_finds_the_record() {
    let p = diamond();
    let _server = Server::start(&p);
    until_decoded_ahead(&p, || {});
    for round in 0..2 {
        p.file("in/a.txt", &format!("edit {round}\n"));
        std::thread::sleep(Duration::from_millis(300));
        handed_build_held(&p, "500");
        let again = traced(&p, &["build", "wf.yaml"]);
        assert_eq!(again.code, 0, "{}", again.stderr);
        // Handed over (no record yet when its caller looked), and up to
        // date by the record the finishing fork wrote meanwhile.
        assert!(
            again.stderr.contains(HANDED) && again.stderr.contains("trace: up to date by"),
            "round {round}:\n{}",
            again.stderr
        );
        assert!(
            !again.stderr.contains("settled by the node trace"),
            "{}",
            again.stderr
        );
        assert_eq!(p.read("out/d.txt"), format!("EDIT {round}\ne"));
    }
}

/// A handed build answers its caller before it adds its row to the run
/// ledger, holding the ledger's lock until the row is written: `admf
/// runs` right after the answer waits for the row and lists the build,
/// though the fork is still held back from writing it.
#[test]
fn the_ledger_lists_a_handed_build_that_answered_before_its_row() {
    let p = diamond();
    let _server = Server::start(&p);
    assert_eq!(traced(&p, &["build", "wf.yaml"]).code, 0);
    let before = runs(&p);
    p.file("in/a.txt", "edit\n");
    std::thread::sleep(Duration::from_millis(300));
    handed_build_held(&p, "1500");
    assert_eq!(runs(&p), before + 1);
}

/// A handed build records the git state its ledger row names as a build
/// alone does: the commit, and whether tracked files differ from it
/// (asked as the build starts), for a workflow named without a directory
/// too.
#[test]
fn a_handed_build_records_the_git_commit_in_its_ledger_row() {
    let p = diamond();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .current_dir(p.dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "wf.yaml", "in"]);
    git(&["commit", "-q", "-m", "start"]);
    // The index written anew, after the files: none of them is racily
    // clean, which a `git status` that may not refresh the index (as a
    // build asks it) could report as changed.
    git(&["update-index", "-q", "--really-refresh"]);
    let head = git(&["rev-parse", "HEAD"]);
    let _server = Server::start(&p);
    for edit in [None, Some("edited\n")] {
        if let Some(text) = edit {
            p.file("in/a.txt", text);
        }
        let out = traced(&p, &["build", "wf.yaml"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.contains(HANDED), "{}", out.stderr);
    }
    let out = p.admf(&["runs", "wf.yaml", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(runs[0]["git_commit"], head.as_str(), "{runs}");
    assert_eq!(runs[0]["git_dirty"], false, "{runs}");
    assert_eq!(runs[1]["git_commit"], head.as_str(), "{runs}");
    assert_eq!(runs[1]["git_dirty"], true, "{runs}");
}

#[test]
fn a_handed_build_takes_the_callers_environment_directory_and_umask() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - name: probe
    mode: command
    run: "echo \"$GREETING\" > out/greeting.txt; umask > out/umask.txt"
    outputs: [out/greeting.txt, out/umask.txt]
    pass_env: [GREETING]
"#,
    );
    std::fs::create_dir_all(p.path("sub")).unwrap();
    let _server = Server::start(&p);
    // From a subdirectory, with a variable and a umask the server lacks.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 027 && exec \"$ADMF\" build ../wf.yaml")
        .current_dir(p.path("sub"))
        .env("ADMF", env!("CARGO_BIN_EXE_admf"))
        .env("GREETING", "hello from the caller")
        .env("ADMF_TRACE", "1")
        .env("NO_COLOR", "1")
        .env_remove("ADMF_CACHE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(HANDED), "{stderr}");
    assert_eq!(p.read("out/greeting.txt"), "hello from the caller\n");
    assert_eq!(p.read("out/umask.txt").trim(), "0027");
    // `../wf.yaml` was found from the caller's directory, not the
    // server's; the output follows the caller's umask, not the server's.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(p.path("out/greeting.txt"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o027, 0, "{mode:o}");
}

#[test]
fn failures_and_bad_input_exit_as_they_would_alone() {
    let p = diamond();
    p.file(
        "fails.yaml",
        "phases:\n  - name: broken\n    mode: command\n    run: \"echo oops >&2; exit 3\"\n",
    );
    p.file(
        "bad.yaml",
        "phases:\n  - name: x\n    mode: command\n    run: [\n",
    );
    let alone_fail = p.admf(&["build", "fails.yaml"]);
    let alone_bad = p.admf(&["build", "bad.yaml"]);
    std::fs::remove_dir_all(p.path("cache")).unwrap();
    let _server = Server::start(&p);
    let fail = traced(&p, &["build", "fails.yaml"]);
    assert!(fail.stderr.contains(HANDED), "{}", fail.stderr);
    assert_eq!(fail.code, alone_fail.code, "{}", fail.stderr);
    assert_ne!(fail.code, 0);
    assert!(fail.stderr.contains("oops"), "{}", fail.stderr);
    let bad = traced(&p, &["build", "bad.yaml"]);
    assert!(bad.stderr.contains(HANDED), "{}", bad.stderr);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_eq!(alone_bad.code, 2);
    // The same error, file, line and all.
    let error = |stderr: &str| -> String {
        stderr
            .lines()
            .filter(|l| !l.starts_with("trace:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(error(&bad.stderr), error(&alone_bad.stderr));
    assert!(!bad.stderr.contains("panicked"));
}

/// Whether process `pid` is gone (or a zombie) within 20 s.
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

const SLEEPER: &str = r#"phases:
  - name: sleeper
    mode: command
    run: "echo $$ > sleeping.pid; exec sleep 60"
    outputs: [out/never.txt]
"#;

#[test]
fn ctrl_c_of_the_caller_stops_the_handed_build() {
    let p = Project::new();
    p.file("wf.yaml", SLEEPER);
    let _server = Server::start(&p);
    let mut caller = p
        .command()
        .args(["build", "wf.yaml"])
        .env("ADMF_TRACE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sleeper = read_pid(&p, "sleeping.pid");
    // SAFETY: kill(2) of the caller, our own child.
    unsafe { libc::kill(caller.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = caller.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the caller never ended");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    caller
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains(HANDED), "{stderr}");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(gone(sleeper), "the command outlived the build");
    assert!(!p.path("out/never.txt").exists());
}

#[test]
fn a_caller_killed_outright_stops_its_handed_build() {
    let p = Project::new();
    p.file("wf.yaml", SLEEPER);
    let mut server = Server::start(&p);
    let mut caller = p
        .command()
        .args(["build", "wf.yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sleeper = read_pid(&p, "sleeping.pid");
    caller.kill().unwrap();
    caller.wait().unwrap();
    assert!(gone(sleeper), "the command outlived its abandoned build");
    assert!(server.alive());
    // The store is whole: the next build runs the node again, by itself.
    server.kill();
    p.file(
        "wf.yaml",
        &SLEEPER.replace("exec sleep 60", "mkdir -p out && echo done > out/never.txt"),
    );
    assert_eq!(p.ran(&["wf.yaml"]), ["sleeper"]);
}

#[test]
fn a_decoded_copy_of_a_file_changed_since_is_not_used() {
    let p = diamond();
    let _server = Server::start(&p);
    assert_eq!(traced(&p, &["build", "wf.yaml"]).code, 0);
    until_decoded_ahead(&p, || {});
    // The graph cache changed behind the server's back (one byte flipped:
    // its seal no longer matches), after the server decoded it.
    let runs = std::fs::read_dir(p.path("cache/runs")).unwrap();
    let graph = runs
        .filter_map(Result::ok)
        .map(|e| e.path().join("graph"))
        .find(|g| g.exists())
        .expect("a graph cache");
    let mut bytes = std::fs::read(&graph).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&graph, &bytes).unwrap();
    let out = traced(&p, &["build", "wf.yaml", "--force", "d"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains(HANDED), "{}", out.stderr);
    assert!(
        !out.stderr
            .contains(&format!("decoded ahead: {}", graph.display())),
        "{}",
        out.stderr
    );
    // The broken cache is no cache: the workflow was compiled again.
    assert!(
        !out.stderr.contains("graph from the graph cache"),
        "{}",
        out.stderr
    );
    assert_eq!(p.read("out/d.txt"), "HELLO\nh");
}

#[test]
fn builds_handed_over_at_once_run_side_by_side_and_compute_each_node_once() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        r#"phases:
  - name: slow
    mode: command
    run: "echo run >> runs.log; sleep 1; echo done > out/slow.txt"
    outputs: [out/slow.txt]
  - name: quick
    mode: command
    run: "echo quick > out/quick.txt"
    outputs: [out/quick.txt]
"#,
    );
    let _server = Server::start(&p);
    let builds: Vec<_> = (0..3)
        .map(|_| {
            p.command()
                .args(["build", "wf.yaml"])
                .env("ADMF_TRACE", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for build in builds {
        let out = build.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains(HANDED), "{stderr}");
    }
    // Three forks at once, one computation: the store's key locks hold
    // across forks as across processes started apart.
    assert_eq!(p.read("runs.log"), "run\n");
    assert_eq!(p.read("out/slow.txt"), "done\n");
    assert_eq!(p.read("out/quick.txt"), "quick\n");
}

#[test]
fn another_admf_binary_builds_by_itself() {
    let p = diamond();
    let _server = Server::start(&p);
    // A copy of the binary elsewhere is another executable to the server.
    let other = p.path("bin/admf-copy");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_admf"), &other).unwrap();
    let out = std::process::Command::new(&other)
        .args(["build", "wf.yaml"])
        .current_dir(p.dir.path())
        .env("ADMF_TRACE", "1")
        .env("NO_COLOR", "1")
        .env_remove("ADMF_CACHE_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(HANDED), "{stderr}");
    assert!(stderr.contains("4 ran"), "{stderr}");
    assert_eq!(p.read("out/d.txt"), "HELLO\nh");
}

#[test]
fn a_handed_build_reads_settled_rows_ahead_and_closes_the_kept_folders() {
    // `a`, `b` and `c` keep their outputs `temp:`, so that their readers
    // get kept folders (plain workspace outputs would be read in place).
    let mut workflow = DIAMOND.to_string();
    for node in ["a", "b", "c"] {
        workflow = workflow.replace(
            &format!("outputs: [out/{node}.txt]"),
            &format!("temp: [out/{node}.txt]"),
        );
    }
    let p = Project::new();
    p.file("wf.yaml", &workflow).file("in/a.txt", "hello\n");
    let _server = Server::start(&p);
    assert_eq!(p.admf(&["build", "wf.yaml"]).code, 0);
    // `d` forced alone: its upstream `b` and `c` are settled by the node
    // trace, and their action rows come from the server's copy once it
    // has read them.
    let index = p.path("cache/index");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let out = traced(&p, &["build", "wf.yaml", "--force", "d"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stderr.contains(HANDED), "{}", out.stderr);
        assert!(out.stderr.contains("1 ran"), "{}", out.stderr);
        if out
            .stderr
            .contains(&format!("decoded ahead: {}", index.display()))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows never read ahead:\n{}",
            out.stderr
        );
    }
    assert_eq!(p.read("out/d.txt"), "HELLO\nh");
    // The fork frees nothing on its way out, but it still closed the kept
    // folders: their record is written, the marker gone, and each folder
    // it names is there.
    let kept = p.path("cache/upstream");
    assert!(!kept.join("dirty").exists());
    let record = std::fs::read_to_string(kept.join("record")).unwrap();
    let names: Vec<&str> = record
        .lines()
        .skip(1)
        .map(|line| line.split(' ').nth(1).unwrap())
        .collect();
    // `a`'s outputs (read by `b` and `c`), `b`'s and `c`'s (read by `d`).
    assert_eq!(names.len(), 3, "{record}");
    for name in names {
        assert!(kept.join(name).is_dir(), "{name}");
    }
}
