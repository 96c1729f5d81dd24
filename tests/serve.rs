//! `admf serve`: a build of an unchanged workflow is vouched for by the
//! server instead of stating every file, and every change the build's own
//! check would see is seen through the server too: edits, files replaced
//! by a rename, writes through another hard link, a swapped directory,
//! deleted outputs, a changed workflow. A build with no live server checks
//! the record itself.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::fast_paths::{Run, age, build, settle};
use common::server::Server;
use common::{DIAMOND, Project};

/// What the trace adds when the server vouched for the record.
const VOUCHED: &str = "(vouched for by admf serve)";

fn diamond() -> Project {
    let p = Project::new();
    p.file("wf.yaml", DIAMOND).file("in/a.txt", "hello\n");
    p
}

/// A build not answered by the record: it ran `ran` and left `file` with
/// the given text.
fn rebuilt(p: &Project, ran: &[&str], (file, text): (&str, &str)) {
    let run = build(p, &["wf.yaml"]);
    assert!(!run.fast, "{}", run.stderr);
    assert_eq!(run.ran(), ran, "{}", run.stderr);
    assert_eq!(p.read(file), text);
}

/// A build answered by the record with the server's word for it.
fn vouched(run: &Run) -> bool {
    run.fast && run.stderr.contains(VOUCHED)
}

/// Age the project and build until the server vouches for the record
/// (the first question after a change makes it check every file itself;
/// it vouches from then on while nothing changes).
fn settle_served(p: &Project) {
    settle(p, &["wf.yaml"]);
    for _ in 0..3 {
        let run = build(p, &["wf.yaml"]);
        assert!(run.ran().is_empty(), "{}", run.stderr);
        if vouched(&run) {
            return;
        }
        age(p.dir.path());
        build(p, &["wf.yaml"]);
    }
    panic!("the server never vouched for the record");
}

#[test]
fn a_served_no_op_is_vouched_for_and_every_change_is_seen() {
    let p = diamond();
    // A second name for the input, outside the directories a build reads:
    // a write through it changes in/a.txt without an event in `in/`.
    std::fs::create_dir_all(p.path("elsewhere")).unwrap();
    std::fs::hard_link(p.path("in/a.txt"), p.path("elsewhere/a.txt")).unwrap();
    let mut server = Server::start(&p);
    settle_served(&p);
    // Vouched again and again while nothing changes.
    for _ in 0..3 {
        let run = build(&p, &["wf.yaml"]);
        assert!(vouched(&run), "{}", run.stderr);
        assert!(run.ran().is_empty());
        assert_eq!(run.ids(), ["a", "b", "c", "d"]);
    }

    // An edit in place.
    p.file("in/a.txt", "howdy\n");
    rebuilt(&p, &["a", "b", "c", "d"], ("out/d.txt", "HOWDY\nh"));

    // A write through the other hard link (the file was re-linked: the
    // edit above rewrote in/a.txt in place, so the link still holds).
    settle_served(&p);
    std::fs::OpenOptions::new()
        .append(true)
        .open(p.path("elsewhere/a.txt"))
        .unwrap()
        .write_all(b"there\n")
        .unwrap();
    rebuilt(&p, &["a", "b", "c", "d"], ("out/d.txt", "HOWDY\nTHERE\nh"));

    // A file replaced by a rename, as editors save.
    settle_served(&p);
    std::fs::write(p.path("in/.a.swp"), "jolly\n").unwrap();
    std::fs::rename(p.path("in/.a.swp"), p.path("in/a.txt")).unwrap();
    rebuilt(&p, &["a", "b", "c", "d"], ("out/d.txt", "JOLLY\nj"));

    // A deleted output: restored from the store, nothing runs.
    settle_served(&p);
    std::fs::remove_file(p.path("out/b.txt")).unwrap();
    rebuilt(&p, &[], ("out/b.txt", "JOLLY\n"));

    // The input's directory swapped for another holding other bytes.
    settle_served(&p);
    std::fs::rename(p.path("in"), p.path("in.old")).unwrap();
    p.file("in/a.txt", "kind\n");
    rebuilt(&p, &["a", "b", "c", "d"], ("out/d.txt", "KIND\nk"));

    // The workflow edited.
    settle_served(&p);
    p.file("wf.yaml", &DIAMOND.replace("tr a-z A-Z", "tr a-y A-Y"));
    let run = build(&p, &["wf.yaml"]);
    assert!(!run.fast, "{}", run.stderr);
    assert_eq!(run.ran(), ["b"]);

    // Other targets are another record, vouched for on their own.
    settle_served(&p);
    let run = build(&p, &["wf.yaml", "c"]);
    assert!(run.ran().is_empty(), "{}", run.stderr);
    assert_eq!(run.ids(), ["a", "c"]);
    assert!(server.alive());
}

#[test]
fn a_build_with_no_live_server_checks_the_record_itself() {
    let p = diamond();
    let mut server = Server::start(&p);
    settle_served(&p);
    // Killed: its socket stays behind, and nothing answers on it.
    server.kill();
    assert!(p.path("cache/serve.sock").exists());
    let run = build(&p, &["wf.yaml"]);
    assert!(run.fast && !vouched(&run), "{}", run.stderr);
    p.file("in/a.txt", "howdy\n");
    assert_eq!(build(&p, &["wf.yaml"]).ran(), ["a", "b", "c", "d"]);
    // A new server takes the stale socket over.
    let _server = Server::start(&p);
    settle_served(&p);
}

#[test]
fn a_second_server_on_one_store_is_refused() {
    let p = diamond();
    let _server = Server::start(&p);
    let out = p.admf(&["serve", "--cache-dir", p.path("cache").to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("another admf serve already serves this store"),
        "{}",
        out.stderr
    );
}

/// The server answers only for records of its own store: of another's,
/// or to a question it cannot read, it says it does not know (the build
/// then checks the record itself).
#[test]
fn a_question_about_another_store_is_not_answered() {
    let p = diamond();
    let _server = Server::start(&p);
    settle_served(&p);
    let other = Project::new();
    let record = other.path("cache/runs/wf/uptodate");
    let answer = ask(
        &p.path("cache/serve.sock"),
        &format!("check abc {}\n", record.display()),
    );
    assert_eq!(answer, "unknown\n");
    assert_eq!(ask(&p.path("cache/serve.sock"), "nonsense\n"), "unknown\n");
}

fn ask(socket: &Path, question: &str) -> String {
    use std::io::Read;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(question.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// An event on a listed file that changed nothing (opened for writing
/// and closed unwritten) costs the server one more stat of that file.
#[test]
fn an_event_that_left_a_file_unchanged_is_vouched_for_after_one_stat() {
    let p = diamond();
    let _server = Server::start(&p);
    settle_served(&p);
    drop(
        std::fs::OpenOptions::new()
            .write(true)
            .open(p.path("in/a.txt"))
            .unwrap(),
    );
    let run = build(&p, &["wf.yaml"]);
    assert!(vouched(&run), "{}", run.stderr);
    assert!(run.ran().is_empty());
}

/// An event on a directory on the way (its mode set again) could have
/// changed any entry: that build checks the record itself, and the
/// server checks it again on its own soon after.
#[test]
fn after_an_event_on_a_parent_directory_the_record_is_checked_again() {
    use std::os::unix::fs::PermissionsExt;
    let p = diamond();
    let _server = Server::start(&p);
    settle_served(&p);
    let mode = std::fs::metadata(p.path("in"))
        .unwrap()
        .permissions()
        .mode();
    std::fs::set_permissions(p.path("in"), std::fs::Permissions::from_mode(mode)).unwrap();
    let run = build(&p, &["wf.yaml"]);
    assert!(run.fast && !vouched(&run), "{}", run.stderr);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let run = build(&p, &["wf.yaml"]);
        assert!(run.fast && run.ran().is_empty(), "{}", run.stderr);
        if vouched(&run) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not vouched for again within 10 s"
        );
    }
}

/// A server started after a change vouches for nothing before checking:
/// the record was written before the edit.
#[test]
fn a_server_started_after_an_edit_checks_the_record_first() {
    let p = diamond();
    settle(&p, &["wf.yaml"]);
    p.file("in/a.txt", "howdy\n");
    let _server = Server::start(&p);
    let run = build(&p, &["wf.yaml"]);
    assert!(!run.fast, "{}", run.stderr);
    assert_eq!(run.ran(), ["a", "b", "c", "d"]);
}

/// A build handed to the server takes the stats the server vouches for
/// (every file the record lists but those an event touched), and states
/// the touched ones itself: an output edited behind the build's back is
/// put back, though every other stat of the build came from the server.
#[test]
fn a_handed_build_states_what_the_server_cannot_vouch_for() {
    let p = diamond();
    let _server = Server::start(&p);
    settle_served(&p);
    p.file("out/b.txt", "EDITED\n");
    let run = build(&p, &["wf.yaml"]);
    assert!(!run.fast, "{}", run.stderr);
    assert!(
        run.stderr.contains("built by a process admf serve forked"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("(1 uncertain,"), "{}", run.stderr);
    assert!(run.ran().is_empty(), "{}", run.stderr);
    assert_eq!(p.read("out/b.txt"), "HELLO\n");
    // And the next build is a no-op the server vouches for.
    settle_served(&p);
    assert_eq!(p.read("out/d.txt"), "HELLO\nh");
}

/// The files a handed build takes from the server (inputs included) are
/// regular files unchanged since: an input replaced by a directory is
/// stated, and the build fails as one without a server does, with the
/// input named.
#[test]
fn a_handed_build_sees_an_input_replaced_by_a_directory() {
    let p = diamond();
    let _server = Server::start(&p);
    settle_served(&p);
    std::fs::remove_file(p.path("in/a.txt")).unwrap();
    p.file("in/a.txt/inside.txt", "hello\n");
    let run = build(&p, &["wf.yaml"]);
    assert!(
        run.stderr.contains("built by a process admf serve forked"),
        "{}",
        run.stderr
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("is a directory, not a file"),
        "{}",
        run.stderr
    );
}
