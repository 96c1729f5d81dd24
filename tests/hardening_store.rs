//! Store errors name their path: a blob gc or repair cannot remove is
//! named and passed over, and a disk that fills during a restore leaves
//! no partial file in the workspace.

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
/// (`unshare -rm`); where none can be had, the test fails with the
/// reason rather than passing without a full disk.
#[test]
fn a_disk_filling_during_a_restore_names_the_path_and_leaves_no_partial_file() {
    let p = Project::new();
    p.file(
        "wf.yaml",
        "phases:\n  - {name: big, mode: command, run: 'head -c 3000000 /dev/zero > big.bin', outputs: [big.bin]}\n",
    );
    p.file(
        "restore.sh",
        r#"run() { name=$1; shift; (cd ws && "$ADMF" "$@") > "$name.out" 2> "$name.err"; echo $? > "$name.code"; }
mkdir ws && cp wf.yaml ws/ || exit 96
run first build wf.yaml --cache-dir "$PWD/store"
mount -t tmpfs -o size=1m tmpfs ws || exit 97
cp wf.yaml ws/
run restore build wf.yaml --cache-dir "$PWD/store"
ls -a ws > listing
"#,
    );
    let ns = std::process::Command::new("unshare")
        .args(["-rm", "sh", "restore.sh"])
        .current_dir(p.dir.path())
        .env("ADMF", env!("CARGO_BIN_EXE_admf"))
        .env("NO_COLOR", "1")
        .env_remove("ADMF_CACHE_DIR")
        .output()
        .unwrap_or_else(|e| panic!("this test needs `unshare` (util-linux) to mount a tmpfs: {e}"));
    assert!(
        ns.status.success(),
        "cannot mount a tmpfs in a user and mount namespace (`unshare -rm`; needs root or \
         unprivileged user namespaces): {}\n{}",
        ns.status,
        String::from_utf8_lossy(&ns.stderr)
    );
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
