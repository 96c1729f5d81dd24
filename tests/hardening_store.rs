//! Store errors name their path: a blob gc or repair cannot remove is
//! named and passed over, and a disk that fills during a restore leaves
//! no partial file in the workspace. A store that cannot be written
//! (read-only mount, no write permission) still answers a no-op.

mod common;

use std::path::PathBuf;

use common::Project;

/// The blob files of the store under `cache/`.
fn blob_files(p: &Project) -> Vec<PathBuf> {
    walkdir::WalkDir::new(p.path("cache/blobs"))
        .min_depth(2)
        .max_depth(2)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn gc_and_repair_name_a_blob_they_cannot_remove_and_go_on() {
    let p = Project::new();
    std::fs::create_dir(p.path(".git")).unwrap();
    p.file(
        "wf.yaml",
        "phases:\n  - name: a\n    mode: command\n    run: \"head -c 200000 /dev/urandom > out.bin\"\n    outputs: [out.bin]\n",
    );
    let (out, _) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let blobs = blob_files(&p);
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    // A directory where a blob file should be, named to come first: it
    // can be neither read nor removed as a file.
    let stuck = p.path(&format!("cache/blobs/00/{}", "0".repeat(64)));
    std::fs::create_dir_all(stuck.join("inside")).unwrap();
    // The real blob rots.
    let mut perms = std::fs::metadata(&blobs[0]).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blobs[0], perms).unwrap();
    let mut bytes = std::fs::read(&blobs[0]).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&blobs[0], bytes).unwrap();

    let repair = p.admf(&["cache", "verify", "--repair"]);
    assert_eq!(repair.code, 1, "{}", repair.stderr);
    let named = format!("cannot remove {}", stuck.display());
    assert!(repair.stderr.contains(&named), "{}", repair.stderr);
    assert!(!repair.stderr.contains("panicked"), "{}", repair.stderr);
    // It went on: the rotten blob, after the stuck one, is gone.
    assert!(!blobs[0].exists(), "{}", repair.stderr);

    // gc passes over it too, and says so.
    let (out, _) = p.build(&["wf.yaml"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let gc = p.admf(&["cache", "gc", "--all"]);
    assert_eq!(gc.code, 1, "{}", gc.stderr);
    assert!(gc.stderr.contains(&named), "{}", gc.stderr);
    assert!(gc.stderr.contains("removed 1 entries"), "{}", gc.stderr);
    assert!(blob_files(&p).is_empty(), "{:?}", blob_files(&p));

    std::fs::remove_dir_all(&stuck).unwrap();
    let gc = p.admf(&["cache", "gc", "--all"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
}

/// The workspace on a 1 MB tmpfs, the store elsewhere: restoring a 3 MB
/// output fails with the disk error and the path, and leaves no partial
/// file. The tmpfs is mounted in a private user and mount namespace
/// ([`common::Project::run_in_namespace`]).
#[test]
fn a_disk_filling_during_a_restore_names_the_path_and_leaves_no_partial_file() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: big, mode: command, run: 'head -c 3000000 /dev/zero > big.bin', outputs: [big.bin]}\n",
    );
    p.file(
        "restore.sh",
        r#"RUN_IN=ws
mkdir ws && cp wf.yaml ws/ || exit 96
run first build wf.yaml --cache-dir "$PWD/store"
mount -t tmpfs -o size=1m tmpfs ws || exit 97
cp wf.yaml ws/
run restore build wf.yaml --cache-dir "$PWD/store"
ls -a ws > listing
"#,
    );
    p.run_in_namespace("restore.sh");
    assert_eq!(p.read("first.code").trim(), "0", "{}", p.read("first.err"));
    let code = p.read("restore.code");
    let err = p.read("restore.err");
    assert_ne!(code.trim(), "0", "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("big.bin"), "{err}");
    let listing = p.read("listing");
    assert!(
        !listing.contains("admf-tmp"),
        "a partial temp file stayed: {listing}"
    );
    assert!(!listing.contains("big.bin"), "{listing}");
}

/// A store on a read-only mount (a snapshot, a colleague's store mounted
/// read-only): a build that changes nothing is answered from it with one
/// note and exit 0; any other build is refused before it runs or
/// restores anything, with one error naming the store, and exit 2.
/// Two command nodes, `b` reading `a`'s output.
const TWO_NODES: &str = "phases:\n  - {name: a, mode: command, run: 'echo hi > a.txt', outputs: [a.txt]}\n  - {name: b, mode: command, run: 'cat a.txt > b.txt', outputs: [b.txt], depends_on: [a]}\n";

/// The no-op `out` printed the one note that `store` is not writable.
fn assert_not_writable_note(out: &common::Output, store: &std::path::Path) {
    assert!(
        out.stderr.contains(&format!(
            "note: the store {} is not writable",
            store.display()
        )) && out.stderr.contains("run ledger"),
        "{}",
        out.stderr
    );
}

/// `out` was refused with exit 2 and one error naming `store` and `why`.
fn assert_refused(out: &common::Output, store: &std::path::Path, why: &str) {
    assert_eq!(out.code, 2, "{}", out.stderr);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].contains(&format!("{} is not writable", store.display()))
            && errors[0].contains(why),
        "{}",
        out.stderr
    );
}

#[test]
fn a_read_only_store_serves_a_no_op_and_refuses_other_builds_in_one_line() {
    let p = Project::new();
    p.file("wf.yaml", TWO_NODES);
    // The pause lets the workspace outputs age past the racy window, so
    // that the second build leaves an up-to-date record.
    p.file(
        "read_only.sh",
        r#"run first build wf.yaml --cache-dir store
sleep 0.3
run second build wf.yaml --cache-dir store
mount --bind store store && mount -o remount,bind,ro store || exit 97
run noop build wf.yaml --cache-dir store
run dry build --dry-run wf.yaml --cache-dir store
rm a.txt
run restore build wf.yaml --cache-dir store
ls > listing
"#,
    );
    p.run_in_namespace("read_only.sh");
    for name in ["first", "second"] {
        let out = p.script_run(name);
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
    }
    let noop = p.script_run("noop");
    assert_eq!(noop.code, 0, "{}", noop.stderr);
    assert!(noop.stderr.contains("0 ran, 2 cached"), "{}", noop.stderr);
    let notes: Vec<&str> = noop
        .stderr
        .lines()
        .filter(|l| !l.starts_with("a ") && !l.starts_with("b ") && !l.contains(" cached, "))
        .collect();
    assert_eq!(notes.len(), 1, "one note, nothing else: {}", noop.stderr);
    assert_not_writable_note(&noop, &p.path("store"));
    let dry = p.script_run("dry");
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_refused(
        &p.script_run("restore"),
        &p.path("store"),
        "Read-only file system",
    );
    assert!(
        !p.read("listing").lines().any(|l| l == "a.txt"),
        "nothing is restored into the workspace: {}",
        p.read("listing")
    );
}

/// Sets the mode of the directory `dir` (not of what it holds: a
/// changed file mode is a changed ctime, which the up-to-date record
/// rightly distrusts).
fn set_mode(dir: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Gives the store its write bit back when the test ends, so that its
/// temp folder can be removed even after a failed assertion.
struct Writable(PathBuf);

impl Drop for Writable {
    fn drop(&mut self) {
        set_mode(&self.0, 0o755);
    }
}

/// `admf ARGS` in `p` as a user without privileges: root would write
/// into a directory whatever its mode says, so root runs it as uid 1000
/// of a user namespace, where it holds no capability.
fn admf_unprivileged(p: &Project, args: &[&str]) -> common::Output {
    let mut cmd = if rustix::process::geteuid().is_root() {
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(["--map-user=1000", "--map-group=1000", "--"])
            .arg(env!("CARGO_BIN_EXE_admf"));
        cmd
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_admf"))
    };
    cmd.args(args)
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .env_remove("ADMF_CACHE_DIR")
        .output()
        .unwrap_or_else(|e| panic!("this test needs `unshare` (util-linux) when run as root: {e}"))
        .into()
}

#[test]
fn a_store_without_write_permission_serves_a_no_op_and_refuses_a_restore() {
    let p = Project::new();
    p.file("wf.yaml", TWO_NODES);
    let args = ["wf.yaml", "--cache-dir", "store"];
    common::fast_paths::settle(&p, &args);
    let store = p.path("store");
    let _restore_bits = Writable(store.clone());
    set_mode(&store, 0o555);

    let noop = admf_unprivileged(&p, &["build", "wf.yaml", "--cache-dir", "store"]);
    assert_eq!(noop.code, 0, "{}", noop.stderr);
    assert!(noop.stderr.contains("0 ran, 2 cached"), "{}", noop.stderr);
    assert_not_writable_note(&noop, &store);

    std::fs::remove_file(p.path("a.txt")).unwrap();
    let restore = admf_unprivileged(&p, &["build", "wf.yaml", "--cache-dir", "store"]);
    assert_refused(&restore, &store, "Permission denied");
    assert!(!p.path("a.txt").exists(), "nothing is restored");
}
