//! SIGINT and SIGTERM sent to admf during a build reach the running
//! command and what it started; admf exits 130 or 143, stores nothing of
//! the interrupted node, and the next build runs it again.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Project, alive, read_pid};

fn interrupt_a_build(signal: i32, expected_code: i32) {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - name: slow\n    mode: command\n    run: \"echo $$ > sh.pid; sleep 30 & echo $! > sleep.pid; wait; echo done > out.txt\"\n    outputs: [out.txt]\n",
    );
    let build = Command::new(env!("CARGO_BIN_EXE_admf"))
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .env_remove("ADMF_CACHE_DIR")
        .args(["build", "wf.yaml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sh = read_pid(&p, "sh.pid");
    let sleep = read_pid(&p, "sleep.pid");
    assert!(alive(sh) && alive(sleep));
    let sent = Instant::now();
    // SAFETY: kill(2) on the admf child this test started.
    assert_eq!(unsafe { libc::kill(build.id() as i32, signal) }, 0);
    let out = build.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(expected_code), "{stderr}");
    assert!(stderr.contains("interrupted by"), "{stderr}");
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "admf waited for the command"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while (alive(sh) || alive(sleep)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(sh), "sh outlived admf");
    assert!(!alive(sleep), "sleep outlived admf");
    assert!(!p.path("out.txt").exists());
    let verify = p.admf(&["cache", "verify"]);
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(
        verify.stderr.contains("0 corrupt, 0 temporaries"),
        "{}\n{}",
        verify.stdout,
        verify.stderr
    );
    // Nothing was stored for the node: it runs again (quickly this time).
    p.file(
        "wf.yaml",
        "phases:\n  - name: slow\n    mode: command\n    run: \"echo done > out.txt\"\n    outputs: [out.txt]\n",
    );
    assert_eq!(p.ran(&["wf.yaml"]), ["slow"]);
}

#[test]
fn sigterm_stops_the_running_command_and_exits_143() {
    interrupt_a_build(libc::SIGTERM, 143);
}

#[test]
fn sigint_stops_the_running_command_and_exits_130() {
    interrupt_a_build(libc::SIGINT, 130);
}
