//! A small builder for integration tests: a temporary project directory,
//! files written into it, and `admf` run in it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub struct Project {
    pub dir: tempfile::TempDir,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `run NAME ARGS...` runs admf with ARGS in `$RUN_IN` (default: the
/// current directory) and leaves NAME.out, NAME.err and NAME.code in the
/// current directory.
const RUN_FUNCTION: &str = r#"run() { name=$1; shift; (cd "${RUN_IN:-.}" && "$ADMF" "$@") > "$name.out" 2> "$name.err"; echo $? > "$name.code"; }"#;

impl Project {
    pub fn new() -> Self {
        Project {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn file(&self, rel: &str, text: &str) -> &Self {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
        self
    }

    /// Copy a file of this repository (e.g. `data/SPY_D.csv`) into the project.
    pub fn repo_file(&self, from: &str, to: &str) -> &Self {
        let path = self.path(to);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(from), path).expect("copy");
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Runs the project's shell script `script` in a private user and
    /// mount namespace (`unshare -rm`), where it may mount a tmpfs or
    /// remount a directory read-only; `$ADMF` is the binary under test.
    /// Root gets such a namespace everywhere, other users where
    /// unprivileged user namespaces are enabled. Where none can be had the
    /// test fails with the reason: it never passes without the condition
    /// the script sets up. Scripts record each admf run with
    /// `run NAME ARGS...`; [`Project::script_run`] reads it back.
    pub fn run_in_namespace(&self, script: &str) {
        let ns = std::process::Command::new("unshare")
            .args(["-rm", "sh", "-c", &format!("{RUN_FUNCTION}\n. ./{script}")])
            .current_dir(self.dir.path())
            .env("ADMF", env!("CARGO_BIN_EXE_admf"))
            .env("NO_COLOR", "1")
            .env_remove("ADMF_CACHE_DIR")
            .output()
            .unwrap_or_else(|e| panic!("this test needs `unshare` (util-linux): {e}"));
        assert!(
            ns.status.success(),
            "cannot set up the test in a user and mount namespace (`unshare -rm`; needs root or \
             unprivileged user namespaces): {}\n{}",
            ns.status,
            String::from_utf8_lossy(&ns.stderr)
        );
    }

    /// What `run NAME ...` in a [`Project::run_in_namespace`] script left.
    pub fn script_run(&self, name: &str) -> Output {
        Output {
            code: self.read(&format!("{name}.code")).trim().parse().unwrap(),
            stdout: self.read(&format!("{name}.out")),
            stderr: self.read(&format!("{name}.err")),
        }
    }

    /// `admf` as the tests run it in this project, not yet started: for
    /// builds that run beside each other or get killed.
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_admf"));
        cmd.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("ADMF_CACHE_DIR");
        cmd
    }

    /// `admf ARGS` started in the background, its output piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn admf")
    }

    pub fn admf(&self, args: &[&str]) -> Output {
        admf_in(self.dir.path(), args)
    }

    /// `admf ARGS` with `env` added to its environment (`ADMF_TRACE`,
    /// say); an empty value removes the variable.
    pub fn admf_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        admf_in_env(self.dir.path(), args, env)
    }

    /// `admf ARGS` that must fail with exit 2 (bad input) and no panic;
    /// its stderr.
    pub fn bad_input(&self, args: &[&str]) -> String {
        let out = self.admf(args);
        assert_eq!(
            out.code, 2,
            "expected exit 2, got {}:\n{}",
            out.code, out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        out.stderr
    }

    /// `admf build --json` and the status of each node by id. Panics when
    /// stdout is not the `--json` report: a broken report must fail the
    /// test, not read as "no node ran".
    pub fn build(&self, args: &[&str]) -> (Output, Vec<(String, String)>) {
        self.build_env(args, &[])
    }

    /// [`Project::build`] with `env` added to the environment.
    pub fn build_env(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Output, Vec<(String, String)>) {
        let mut all = vec!["build", "--json"];
        all.extend_from_slice(args);
        let out = self.admf_env(&all, env);
        let statuses = node_statuses(&out, &format!("admf {}", all.join(" ")));
        (out, statuses)
    }

    /// Ids of nodes with the given status after a build.
    pub fn ran(&self, args: &[&str]) -> Vec<String> {
        let (out, statuses) = self.build(args);
        assert_eq!(out.code, 0, "build failed:\n{}", out.stderr);
        with_status(&statuses, "ran")
    }
}

/// The (id, status) of each node in the `--json` report that `what`
/// printed; panics, showing its output, when there is no such report.
pub fn node_statuses(out: &Output, what: &str) -> Vec<(String, String)> {
    let report = json_report(out, what);
    let nodes = report["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("`{what}`: JSON report without a `nodes` list: {report}"));
    let field = |n: &serde_json::Value, name: &str| -> String {
        n[name]
            .as_str()
            .unwrap_or_else(|| panic!("`{what}`: node without a string `{name}`: {n}"))
            .to_string()
    };
    nodes
        .iter()
        .map(|n| (field(n, "id"), field(n, "status")))
        .collect()
}

/// The `--json` report that `what` printed; panics, showing its output,
/// when stdout is not JSON.
pub fn json_report(out: &Output, what: &str) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`{what}` (exit {}) printed no JSON report ({e}):\nstdout:\n{}\nstderr:\n{}",
            out.code, out.stdout, out.stderr
        )
    })
}

/// Ids of the nodes with `status`, in report order.
pub fn with_status(statuses: &[(String, String)], status: &str) -> Vec<String> {
    statuses
        .iter()
        .filter(|(_, s)| s == status)
        .map(|(id, _)| id.clone())
        .collect()
}

/// The environment that makes admf print its `trace:` lines (which
/// decision path answered, how many nodes a trace settled).
pub const TRACE: &[(&str, &str)] = &[("ADMF_TRACE", "1")];

/// Files written in the same instant as a build are never trusted as
/// evidence of being unchanged (their timestamp tick may not be over):
/// wait past that racy window before the next build.
pub fn past_racy_window() {
    std::thread::sleep(std::time::Duration::from_millis(250));
}

/// A fresh project holding a copy of `examples/<name>` (its YAML and CSV
/// files, not the outputs of builds run in place).
pub fn example(name: &str) -> Project {
    example_files(name, |rel| {
        rel.extension().is_some_and(|e| e == "yaml" || e == "csv")
    })
}

/// A fresh project holding a copy of every file of `examples/<name>`
/// (scripts and texts of any kind).
pub fn example_all(name: &str) -> Project {
    example_files(name, |_| true)
}

fn example_files(name: &str, keep: impl Fn(&Path) -> bool) -> Project {
    let p = Project::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    for entry in walkdir::WalkDir::new(&src)
        .into_iter()
        .filter_map(Result::ok)
    {
        let rel = entry.path().strip_prefix(&src).unwrap();
        if entry.file_type().is_file() && keep(rel) {
            let to = p.path(rel.to_str().unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
    p
}

/// Every file under `dir`, relative path → bytes, sorted.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A four-node diamond of command phases: a → (b, c) → d.
pub const DIAMOND: &str = r#"phases:
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
    run: "head -c 1 out/a.txt > out/c.txt"
    outputs: [out/c.txt]
    depends_on: [a]
  - name: d
    mode: command
    run: "cat out/b.txt out/c.txt > out/d.txt"
    outputs: [out/d.txt]
    depends_on: [b, c]
"#;

/// `admf ARGS` run in `dir` (a subdirectory of a project, say).
pub fn admf_in(dir: &Path, args: &[&str]) -> Output {
    admf_in_env(dir, args, &[])
}

/// [`admf_in`] with `env` added to the environment; an empty value
/// removes the variable.
pub fn admf_in_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::cargo_bin("admf").expect("binary");
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("ADMF_CACHE_DIR");
    for (name, value) in env {
        if value.is_empty() {
            cmd.env_remove(name);
        } else {
            cmd.env(name, value);
        }
    }
    cmd.args(args).output().expect("run admf").into()
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Output {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Whether process `pid` runs (a zombie does not).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        }
        Err(_) => false,
    }
}

/// The pid a command wrote to `rel` in the project, once it has (at most
/// 20 s).
pub fn read_pid(p: &Project, rel: &str) -> i32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(p.path(rel))
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{rel} was never written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub mod fast_paths;
pub mod market;
pub mod server;
