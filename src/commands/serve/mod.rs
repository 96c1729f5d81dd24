//! `admf serve`: a process that watches the files the store's up-to-date
//! records rest on, so that `admf build` of an unchanged workflow asks it
//! instead of stating every file itself (as Bazel's and Buck2's servers
//! watch the source tree), and that runs the builds that have work to do
//! in forks of a process holding the last build's state decoded
//! ([`builds`]).
//!
//! A build whose up-to-date record exists connects to `serve.sock` in the
//! store and sends `check <record path> <invocation>`; the answer is `yes`
//! when every file the record lists is as recorded ([`watched`] says why
//! the answer can be trusted), `no` when one is not (or the record is
//! gone, or written for another invocation), `unknown` when the server
//! cannot tell yet. On `yes` the build reprints the record's summary, as
//! after its own stats; on `no` it goes on at once; on `unknown`, on any
//! error, or with no server (nothing listens on the socket), it checks
//! the record itself, exactly as without a server. The record's answer
//! thus only ever saves stats: the first question about a record is
//! answered by the full check, made by the server after it starts
//! watching; a later one by the events since ([`watched`]): the entries
//! an event touched are stated again, the rest are known. The server
//! checks a record again without being asked as soon as a build writes it
//! anew (so the next build's question finds it checked), and half a
//! second after an event on a directory on the way made every entry
//! unknown.
//!
//! A build that goes on then hands itself over on `builds.sock`
//! ([`builds`]), or builds itself when nothing takes it. A build that
//! starts from a record asks `uncertain` for the files an event touched
//! since the server checked it, and takes the stats of the rest as the
//! server's word; a command with many upstream nodes asks `touched` again
//! later in the build ([`touched_since`]), once its locks are held and
//! after its command ran, instead of stating each upstream file.
//!
//! One server per store, in the foreground until Ctrl-C or a kill; a
//! socket left by a killed server is replaced by the next one. Linux only
//! (inotify, pidfds).

#[cfg(target_os = "linux")]
mod builds;
#[cfg(target_os = "linux")]
mod watched;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Error;

/// The socket's name in the store.
pub const SOCKET: &str = "serve.sock";

/// How long a build waits for an answer: the first question about a
/// record makes the server check every file (about what the build's own
/// check costs); past this the build checks itself.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest question a server reads: a path and a hash.
const QUESTION_MAX: u64 = 64 * 1024;

/// What the server of the store at `store_root`, if one runs, says of
/// the record at `record`, written for `invocation`: `Some(true)` it
/// holds, `Some(false)` it does not (a file it lists changed, or it is
/// gone or for another invocation), `None` when it cannot say (no server,
/// an error, a timeout, or an event that left every entry unknown).
pub fn vouches(store_root: &Path, record: &Path, invocation: &str) -> Option<bool> {
    let mut answer = String::new();
    ask(store_root, "check", record, invocation)?
        .read_line(&mut answer)
        .ok()?;
    match answer.as_str() {
        "yes\n" => Some(true),
        "no\n" => Some(false),
        _ => None,
    }
}

/// Send `<verb> <invocation> <escaped record path>` to the server of the
/// store at `store_root`: its answer to read, `None` when no server
/// listens or the question cannot be sent.
fn ask(
    store_root: &Path,
    verb: &str,
    record: &Path,
    invocation: &str,
) -> Option<BufReader<std::io::Take<UnixStream>>> {
    let mut stream = UnixStream::connect(store_root.join(SOCKET)).ok()?;
    let _ = stream.set_read_timeout(Some(ANSWER_TIMEOUT));
    let _ = stream.set_write_timeout(Some(ANSWER_TIMEOUT));
    let question = format!(
        "{verb} {invocation} {}\n",
        crate::file_stat::escape_path(record)
    );
    stream.write_all(question.as_bytes()).ok()?;
    // An answer lists at most every entry of a record.
    Some(BufReader::new(stream.take(QUESTION_MAX * 256)))
}

/// What the server says it cannot vouch for of one record, whose every
/// other entry still has its recorded stat and is a regular file
/// (following symlinks).
#[derive(Debug, PartialEq, Eq)]
pub struct Uncertain {
    /// The record's stat when its entries were checked.
    pub record: crate::file_stat::Stat,
    /// The entries an event touched since.
    pub touched: Vec<PathBuf>,
    /// The entries that were no regular file when checked (directories
    /// a glob listed, say).
    pub not_files: Vec<PathBuf>,
}

impl Uncertain {
    /// `uncertain <record stat> <touched> <not files>`, then each path.
    fn to_text(&self) -> String {
        let mut text = format!(
            "uncertain {} {} {}\n",
            self.record,
            self.touched.len(),
            self.not_files.len()
        );
        for path in self.touched.iter().chain(&self.not_files) {
            text.push_str(&crate::file_stat::escape_path(path));
            text.push('\n');
        }
        text
    }

    fn read(answer: &mut impl BufRead) -> Option<Uncertain> {
        let mut line = String::new();
        answer.read_line(&mut line).ok()?;
        let mut fields = line
            .strip_suffix('\n')?
            .strip_prefix("uncertain ")?
            .split(' ');
        let record = crate::file_stat::Stat::parse(&mut fields)?;
        let touched: usize = fields.next()?.parse().ok()?;
        let not_files: usize = fields.next()?.parse().ok()?;
        Some(Uncertain {
            record,
            touched: read_paths(answer, touched)?,
            not_files: read_paths(answer, not_files)?,
        })
    }
}

/// `count` escaped paths, one a line.
fn read_paths(answer: &mut impl BufRead, count: usize) -> Option<Vec<PathBuf>> {
    let mut paths = Vec::with_capacity(count.min(1 << 16));
    let mut line = String::new();
    for _ in 0..count {
        line.clear();
        answer.read_line(&mut line).ok()?;
        paths.push(crate::file_stat::unescape_path(line.strip_suffix('\n')?)?);
    }
    Some(paths)
}

/// `touched <count>`, then each path.
fn touched_text(paths: &[PathBuf]) -> String {
    let mut text = format!("touched {}\n", paths.len());
    for path in paths {
        text.push_str(&crate::file_stat::escape_path(path));
        text.push('\n');
    }
    text
}

fn read_touched(answer: &mut impl BufRead) -> Option<Vec<PathBuf>> {
    let mut line = String::new();
    answer.read_line(&mut line).ok()?;
    let count = line
        .strip_suffix('\n')?
        .strip_prefix("touched ")?
        .parse()
        .ok()?;
    read_paths(answer, count)
}

/// What the server of the store at `store_root` cannot vouch for of the
/// record at `record`, written for `invocation` ([`Uncertain`]). `None`
/// when it cannot say (no server, an error, nothing known of the record).
pub fn uncertain(store_root: &Path, record: &Path, invocation: &str) -> Option<Uncertain> {
    Uncertain::read(&mut ask(store_root, "uncertain", record, invocation)?)
}

/// The files of the record that was at `record` with the stat
/// `record_stat` when the server vouched for it ([`uncertain`]), written
/// for `invocation`, that an event touched since the server checked them;
/// every other file it lists still has its listed stat now. Asked later in
/// the build that started from that record ([`watched::Watched::touched_since_checked`]).
/// `None` when the server cannot say (or none answers).
pub fn touched_since(
    store_root: &Path,
    record: &Path,
    invocation: &str,
    record_stat: crate::file_stat::Stat,
) -> Option<Vec<PathBuf>> {
    let asked = format!("{invocation} {record_stat}");
    read_touched(&mut ask(store_root, "touched", record, &asked)?)
}

/// Whether this process is a build that `admf serve` forked ([`builds`]).
pub fn forked() -> bool {
    #[cfg(target_os = "linux")]
    return builds::forked();
    #[cfg(not(target_os = "linux"))]
    false
}

/// Whether this build, forked by `admf serve`, checks the up-to-date
/// record again: its caller checked it while an earlier build was still
/// writing it ([`builds::check_record_again`]).
pub fn check_record_again() -> bool {
    #[cfg(target_os = "linux")]
    return builds::check_record_again();
    #[cfg(not(target_os = "linux"))]
    false
}

/// In a build that `admf serve` forked, answer its caller with `code`
/// now and let its streams go; the build goes on with what the caller
/// does not wait for ([`builds::answer_early`]). Elsewhere nothing.
pub fn answer_early(code: i32) {
    #[cfg(target_os = "linux")]
    builds::answer_early(code);
    #[cfg(not(target_os = "linux"))]
    let _ = code;
}

/// Hand this build over to the server of the store at `store_root`, if
/// one runs and takes it: the exit code of the build it ran. `None`: this
/// process builds itself.
pub fn hand_over(store_root: &Path) -> Option<i32> {
    #[cfg(target_os = "linux")]
    return builds::hand_over(store_root, super::build::executable_identity()?);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = store_root;
        None
    }
}

/// The hidden `admf serve-builds STORE`: the process of `admf serve`
/// that forks the builds handed to it ([`builds`]).
pub fn serve_builds(store: &Path) -> Result<i32, Error> {
    #[cfg(target_os = "linux")]
    return builds::serve_builds(
        store,
        super::build::executable_identity().ok_or_else(|| Error::Usage {
            message: "admf serve-builds: cannot identify the running executable".into(),
            hint: None,
        })?,
    );
    #[cfg(not(target_os = "linux"))]
    serve(store)
}

/// `admf serve`: serve the store at `store` until stopped.
pub fn serve(store: &Path) -> Result<i32, Error> {
    #[cfg(not(target_os = "linux"))]
    {
        let _ = store;
        return Err(Error::Usage {
            message: "admf serve needs Linux (it watches files with inotify)".into(),
            hint: None,
        });
    }
    #[cfg(target_os = "linux")]
    serve_linux(store)
}

#[cfg(target_os = "linux")]
fn serve_linux(store: &Path) -> Result<i32, Error> {
    std::fs::create_dir_all(store).map_err(|e| Error::io(store, e))?;
    let store =
        crate::paths::normalize(&std::path::absolute(store).map_err(|e| Error::io(store, e))?);
    let socket = store.join(SOCKET);
    let listener = bind(&socket)?;
    let watched = Arc::new(Mutex::new(
        watched::Watched::new().map_err(|e| Error::io(&socket, e))?,
    ));
    // Events are read as they come, so that a long quiet spell does not
    // overflow the kernel's queue (which would void every record), and a
    // record written anew is checked before anyone asks; each question
    // reads the rest under the same lock.
    {
        let watched = Arc::clone(&watched);
        std::thread::Builder::new()
            .name("admf-serve-events".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(20));
                    let mut watched = watched.lock().unwrap_or_else(|e| e.into_inner());
                    watched.drain();
                    watched.check_due();
                }
            })
            .map_err(|e| Error::io(&socket, e))?;
    }
    // The build process: started after this one's socket is bound, so a
    // second server stops above without starting one; it ends with this
    // process (it asks for SIGTERM when its parent goes).
    let forks = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .arg("serve-builds")
            .arg(&store)
            .stdin(std::process::Stdio::null())
            .spawn()
    });
    if let Err(e) = &forks {
        crate::errln!("admf serve: builds will not be forked here: {e}");
    }
    crate::errln!(
        "serving the up-to-date records and builds of {} on {SOCKET} and {} (Ctrl-C stops)",
        store.display(),
        builds::SOCKET
    );
    for connection in listener.incoming() {
        let Ok(stream) = connection else { continue };
        // A build that stops reading or writing costs it its answer, not
        // the server its next one.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        answer(&store, stream, &watched);
    }
    Ok(0)
}

#[cfg(target_os = "linux")]
fn answer(store: &Path, stream: UnixStream, watched: &Mutex<watched::Watched>) {
    let mut line = String::new();
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    if BufReader::new(reader.take(QUESTION_MAX))
        .read_line(&mut line)
        .is_err()
    {
        return;
    }
    if let Some(rest) = line.strip_prefix("uncertain ") {
        let answer = parse_question(&format!("check {rest}")).and_then(|(invocation, record)| {
            if !record.starts_with(store.join("runs")) {
                return None;
            }
            watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .uncertain(&record, invocation)
        });
        let text = match answer {
            Some(uncertain) => uncertain.to_text(),
            None => "unknown\n".to_string(),
        };
        let mut stream = stream;
        let _ = stream.write_all(text.as_bytes());
        return;
    }
    if let Some(rest) = line.strip_prefix("touched ") {
        let answer = parse_touched_question(rest).and_then(|(invocation, stat, record)| {
            if !record.starts_with(store.join("runs")) {
                return None;
            }
            watched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .touched_since_checked(&record, invocation, stat)
        });
        let text = match answer {
            Some(paths) => touched_text(&paths),
            None => "unknown\n".to_string(),
        };
        let mut stream = stream;
        let _ = stream.write_all(text.as_bytes());
        return;
    }
    let holds = parse_question(&line).and_then(|(invocation, record)| {
        // Records of this store only: its server watches for them.
        if !record.starts_with(store.join("runs")) {
            return None;
        }
        watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .holds(&record, invocation)
    });
    let answer: &[u8] = match holds {
        Some(true) => b"yes\n",
        Some(false) => b"no\n",
        None => b"unknown\n",
    };
    let mut stream = stream;
    let _ = stream.write_all(answer);
}

/// `check <invocation> <escaped record path>\n`.
fn parse_question(line: &str) -> Option<(&str, PathBuf)> {
    let rest = line.strip_suffix('\n')?.strip_prefix("check ")?;
    let (invocation, path) = rest.split_once(' ')?;
    let path = crate::file_stat::unescape_path(path)?;
    (path.is_absolute() && !invocation.is_empty()).then_some((invocation, path))
}

/// `<invocation> <record stat> <escaped record path>\n`, after `touched `.
fn parse_touched_question(rest: &str) -> Option<(&str, crate::file_stat::Stat, PathBuf)> {
    let mut fields = rest.strip_suffix('\n')?.splitn(7, ' ');
    let invocation = fields.next().filter(|i| !i.is_empty())?;
    let stat = crate::file_stat::Stat::parse(&mut fields)?;
    let path = crate::file_stat::unescape_path(fields.next()?)?;
    path.is_absolute().then_some((invocation, stat, path))
}

/// The listener on `socket`: a socket left by a server that no longer
/// answers is replaced; one that answers is another server's.
fn bind(socket: &Path) -> Result<UnixListener, Error> {
    if UnixStream::connect(socket).is_ok() {
        return Err(Error::Usage {
            message: format!(
                "another admf serve already serves this store ({})",
                socket.display()
            ),
            hint: Some("stop it first, or serve another store with --cache-dir".into()),
        });
    }
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(socket, e)),
        _ => {}
    }
    UnixListener::bind(socket).map_err(|e| {
        Error::io(
            socket,
            std::io::Error::new(
                e.kind(),
                format!("{e} (a socket path is limited to about 100 bytes: serve a store at a shorter path)"),
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncertain_answer_reads_back_as_written() {
        let stat = crate::file_stat::Stat {
            size: 7,
            mtime_ns: 1_700_000_000_123_456_789,
            inode: 42,
            device: 2049,
            ctime_ns: 1_700_000_000_987_654_321,
        };
        let answer = Uncertain {
            record: stat,
            touched: vec![PathBuf::from("/p/in/a b.txt")],
            not_files: vec![PathBuf::from("/p/data"), PathBuf::from("/p/x\ny")],
        };
        let text = answer.to_text();
        assert_eq!(Uncertain::read(&mut text.as_bytes()), Some(answer));
        // A short answer is none.
        let cut = &text[..text.len() - 3];
        assert_eq!(Uncertain::read(&mut cut.as_bytes()), None);
    }

    #[test]
    fn a_touched_question_and_answer_read_back_as_written() {
        let stat = crate::file_stat::Stat {
            size: 7,
            mtime_ns: -5,
            inode: 42,
            device: 2049,
            ctime_ns: 9,
        };
        let record = Path::new("/s/runs/wf x/uptodate");
        let question = format!("abc {stat} {}\n", crate::file_stat::escape_path(record));
        assert_eq!(
            parse_touched_question(&question),
            Some(("abc", stat, record.to_path_buf()))
        );
        assert_eq!(parse_touched_question("abc 1 2 3 4 /s/uptodate\n"), None);
        assert_eq!(
            parse_touched_question("abc 1 2 3 4 5 runs/uptodate\n"),
            None
        );
        let paths = vec![PathBuf::from("/p/out/a b.txt"), PathBuf::from("/p/x\ny")];
        let text = touched_text(&paths);
        assert_eq!(read_touched(&mut text.as_bytes()), Some(paths));
        assert_eq!(
            read_touched(&mut "touched 0\n".as_bytes()),
            Some(Vec::new())
        );
        assert_eq!(read_touched(&mut "unknown\n".as_bytes()), None);
        // One path short is no answer.
        assert_eq!(read_touched(&mut "touched 2\n/p/a\n".as_bytes()), None);
    }

    #[test]
    fn a_question_names_an_invocation_and_an_absolute_record() {
        let q = format!(
            "check abc {}\n",
            crate::file_stat::escape_path(Path::new("/s/runs/wf x/uptodate"))
        );
        assert_eq!(
            parse_question(&q),
            Some(("abc", PathBuf::from("/s/runs/wf x/uptodate")))
        );
        assert_eq!(parse_question("check abc runs/uptodate\n"), None);
        assert_eq!(parse_question("check abc /s/uptodate"), None);
        assert_eq!(parse_question("hello\n"), None);
    }
}
