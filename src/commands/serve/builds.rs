//! Builds forked by `admf serve`. A build whose record does not hold
//! hands itself over to the server's build process (`builds.sock` in the
//! store) instead of starting from nothing: that process keeps the last
//! build's graph cache, node trace, stat cache, kept-folder record and
//! up-to-date record decoded ([`crate::preload`]) and forks, and the fork
//! runs the build with the decoded copies already in its memory. Each
//! build is still a process of its own, with nothing of an earlier
//! build's state but those copies, each checked against its file as the
//! loaders check the files.
//!
//! The fork takes the handing build's arguments, working directory,
//! environment, umask and standard streams (passed as file descriptors,
//! so it writes straight to the same terminal or pipes), and its own
//! process group. The handing build waits, forwards SIGINT, SIGTERM and
//! SIGHUP to the fork, and exits with the fork's status (128 + the signal
//! for a fork killed by one). A handing build that dies makes the server
//! stop its fork with SIGTERM. The server answers `no` (and the build
//! runs itself, as without a server) when the handing admf is another
//! binary than the server's or runs as another user (the fork would run
//! with the server's privileges).
//!
//! The build process forks only while it runs a single thread (a fork of
//! a process with more threads may inherit a lock another thread held),
//! so it reads and decodes on its own thread and watches its forks with
//! `poll` on pidfds (Linux 5.3 and later).
//!
//! # Protocol
//!
//! The build sends 8 bytes (the request's length, little-endian) with its
//! stdin, stdout and stderr attached (`SCM_RIGHTS`), then the request:
//! fields, each a little-endian `u32` length and bytes, after a `u32`
//! count: `admf-build 1`, the executable's identity, the working
//! directory, the umask in octal, the argument count, the arguments, then
//! `NAME=value` per environment variable. The server answers one line,
//! `pid <n>` or `no <why>`, and after `pid` one of `exit <code>` or
//! `signal <number>` when the fork ends, or `exit 0` earlier from a fork
//! whose build succeeded ([`answer_early`]): it has printed its report
//! and goes on writing the caches of the next build. Such a fork tells
//! the server first, on a pipe of its own, so that its caller leaving
//! does not stop it; the server waits for it before the next fork.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::error::Error;
use crate::file_stat::{Stat, is_racy, system_time_ns};

/// The build process's socket in the store.
pub const SOCKET: &str = "builds.sock";

const PROTOCOL: &[u8] = b"admf-build 1";

/// The longest request read: arguments and environment.
const REQUEST_MAX: u64 = 16 << 20;

/// How long a handing build waits for `pid` or `no`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How soon a file found too recently written to keep is read again.
const RETRY: Duration = Duration::from_millis(150);

/// Set in a build the server forked: it hands nothing over again.
static FORKED: AtomicBool = AtomicBool::new(false);

/// Whether this process is a build forked by `admf serve`.
pub fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

/// Set in a fork started after an earlier fork finished its caches
/// (after answering its own caller): the up-to-date record its caller
/// found missing or stale may hold now.
static CHECK_RECORD_AGAIN: AtomicBool = AtomicBool::new(false);

/// Whether this build, forked by `admf serve`, checks the up-to-date
/// record again ([`CHECK_RECORD_AGAIN`]); a fork's caller checked it.
pub fn check_record_again() -> bool {
    CHECK_RECORD_AGAIN.load(Ordering::Relaxed)
}

/// In a fork that has not answered yet: its handing build's connection
/// and the write end of the pipe that tells the server the fork has
/// answered ([`answer_early`]); -1 elsewhere.
static ANSWER_CONN: AtomicI32 = AtomicI32::new(-1);
static ANSWERED_PIPE: AtomicI32 = AtomicI32::new(-1);

/// In a fork, answer the handing build now with `code`, before the fork
/// ends: its output is complete and its outcome final, and what is left
/// (the caches the next build reads) is no business of the caller's. The
/// server is told first, so that the caller leaving does not stop the
/// fork; the caller's streams are then let go (replaced by /dev/null),
/// since a reader of its pipes sees their end only once every writer has
/// closed them. Elsewhere, or once answered, nothing happens.
pub fn answer_early(code: i32) {
    let conn = ANSWER_CONN.swap(-1, Ordering::SeqCst);
    if conn < 0 {
        return;
    }
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let pipe = ANSWERED_PIPE.swap(-1, Ordering::SeqCst);
    if pipe >= 0 {
        // SAFETY: the pipe's write end, which this process owns and
        // nothing else uses: taken over and closed here.
        let mut pipe = fs::File::from(unsafe { OwnedFd::from_raw_fd(pipe) });
        let _ = pipe.write_all(b"a");
    }
    // SAFETY: the connection, which `run_fork`'s caller keeps open for
    // the fork's whole life: borrowed, never closed here.
    let conn = std::mem::ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(conn) });
    let _ = (&*conn).write_all(format!("exit {code}\n").as_bytes());
    // SAFETY: open(2), dup2(2) and close(2) on descriptors this process
    // owns; the caller's streams are replaced whole, never closed under a
    // thread that may still write to them.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for target in 0..3 {
                libc::dup2(null, target);
            }
            libc::close(null);
        }
    }
}

/// What a build hands over.
struct Request {
    exe: Vec<u8>,
    cwd: PathBuf,
    umask: u32,
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

fn encode(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + fields.iter().map(|f| 4 + f.len()).sum::<usize>());
    out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    for field in fields {
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
        out.extend_from_slice(field);
    }
    out
}

fn decode(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut rest = bytes;
    let u32_at = |rest: &mut &[u8]| -> Option<usize> {
        let (head, tail) = rest.split_at_checked(4)?;
        *rest = tail;
        Some(u32::from_le_bytes(head.try_into().ok()?) as usize)
    };
    let count = u32_at(&mut rest)?;
    let mut fields = Vec::with_capacity(count.min(bytes.len() / 4));
    for _ in 0..count {
        let len = u32_at(&mut rest)?;
        let (field, tail) = rest.split_at_checked(len)?;
        fields.push(field);
        rest = tail;
    }
    rest.is_empty().then_some(fields)
}

impl Request {
    fn of_this_process(exe: String) -> Option<Request> {
        let env = std::env::vars_os().collect();
        Some(Request {
            exe: exe.into_bytes(),
            cwd: std::env::current_dir().ok()?,
            umask: current_umask()?,
            argv: std::env::args_os().collect(),
            env,
        })
    }

    fn to_bytes(&self) -> Vec<u8> {
        let umask = format!("{:o}", self.umask);
        let argc = self.argv.len().to_string();
        let env: Vec<Vec<u8>> = self
            .env
            .iter()
            .map(|(name, value)| {
                let mut entry = name.as_bytes().to_vec();
                entry.push(b'=');
                entry.extend_from_slice(value.as_bytes());
                entry
            })
            .collect();
        let mut fields: Vec<&[u8]> = vec![
            PROTOCOL,
            &self.exe,
            self.cwd.as_os_str().as_bytes(),
            umask.as_bytes(),
            argc.as_bytes(),
        ];
        fields.extend(self.argv.iter().map(|a| a.as_bytes()));
        fields.extend(env.iter().map(Vec::as_slice));
        encode(&fields)
    }

    fn from_bytes(bytes: &[u8]) -> Option<Request> {
        let fields = decode(bytes)?;
        let (head, rest) = fields.split_at_checked(5)?;
        if head[0] != PROTOCOL {
            return None;
        }
        let umask = u32::from_str_radix(std::str::from_utf8(head[3]).ok()?, 8).ok()?;
        let argc: usize = std::str::from_utf8(head[4]).ok()?.parse().ok()?;
        let (argv, env) = rest.split_at_checked(argc)?;
        let env = env
            .iter()
            .map(|entry| {
                let at = entry.iter().position(|&b| b == b'=')?;
                Some((
                    OsString::from_vec(entry[..at].to_vec()),
                    OsString::from_vec(entry[at + 1..].to_vec()),
                ))
            })
            .collect::<Option<_>>()?;
        Some(Request {
            exe: head[1].to_vec(),
            cwd: PathBuf::from(OsString::from_vec(head[2].to_vec())),
            umask: umask & 0o777,
            argv: argv
                .iter()
                .map(|a| OsString::from_vec(a.to_vec()))
                .collect(),
            env,
        })
    }
}

/// This process's umask, read without changing it.
fn current_umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

// ---------------------------------------------------------------------
// The handing build.

/// The fork running this build for it, for the signal handlers.
static FORK: AtomicI32 = AtomicI32::new(0);

/// Hand this build over to the build process of the store at
/// `store_root`, if one runs and takes it: the fork's exit code. `None`
/// when this process must build itself (no server, another binary, an
/// error before the fork started).
pub fn hand_over(store_root: &Path, exe: String) -> Option<i32> {
    let stream = UnixStream::connect(store_root.join(SOCKET)).ok()?;
    let request = Request::of_this_process(exe)?.to_bytes();
    let len = (request.len() as u64).to_le_bytes();
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let streams = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&streams)) {
        return None;
    }
    let sent = rustix::net::sendmsg(
        &stream,
        &[IoSlice::new(&len)],
        &mut control,
        SendFlags::empty(),
    );
    if sent.ok()? != len.len() {
        return None;
    }
    (&stream).write_all(&request).ok()?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).ok()?;
    let mut answers = BufReader::new(&stream);
    let mut line = String::new();
    answers.read_line(&mut line).ok()?;
    let pid: i32 = line.strip_prefix("pid ")?.trim_end().parse().ok()?;
    crate::commands::build::trace(&format!("built by a process admf serve forked (pid {pid})"));
    forward_signals(pid);
    let _ = stream.set_read_timeout(None);
    line.clear();
    let ended = answers.read_line(&mut line);
    let status = line.trim_end();
    let code = match (ended, status.split_once(' ')) {
        (Ok(_), Some(("exit", code))) => code.parse().ok(),
        (Ok(_), Some(("signal", signal))) => signal.parse::<i32>().ok().map(|s| 128 + s),
        _ => None,
    };
    Some(code.unwrap_or_else(|| {
        crate::errln!(
            "admf: the build admf serve ran for this one ended without its status \
             (the server stopped?); see its output above"
        );
        1
    }))
}

fn forward_signals(pid: i32) {
    FORK.store(pid, Ordering::SeqCst);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the action reads an atomic and calls kill(2), both
        // async-signal-safe; it allocates nothing and takes no lock.
        let _ = unsafe {
            signal_hook::low_level::register(signal, move || {
                let fork = FORK.load(Ordering::SeqCst);
                if fork > 0 {
                    libc::kill(fork, signal);
                }
            })
        };
    }
}

// ---------------------------------------------------------------------
// The build process.

/// A fork running a build.
struct Running {
    pid: i32,
    pidfd: OwnedFd,
    /// The handing build's connection: its status goes there.
    conn: UnixStream,
    /// Whether the handing build went away (and the fork was stopped).
    abandoned: bool,
    /// Readable once the fork has answered its handing build
    /// ([`answer_early`]): what it does from then on (writing the caches
    /// the next build reads) goes on after the caller has left.
    answered: OwnedFd,
    /// Whether it has answered: the caller leaving then stops nothing.
    finishing: bool,
}

impl Running {
    /// Whether the caller's connection is watched: until the fork has
    /// answered or been stopped.
    fn watches_caller(&self) -> bool {
        !self.abandoned && !self.finishing
    }
}

/// How long a new build waits for forks that have answered to finish
/// their caches, so that it starts from them rather than from the ones
/// before (which gives the same result, more slowly).
const FINISHING_WAIT: Duration = Duration::from_secs(1);

/// `admf serve`'s build process for the store at `store` (absolute):
/// answers on [`SOCKET`] until its parent, `admf serve`, ends.
pub fn serve_builds(store: &Path, exe: String) -> Result<i32, Error> {
    let socket = store.join(SOCKET);
    // SAFETY: prctl(PR_SET_PDEATHSIG) with a signal number only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    if rustix::process::getppid().is_none_or(|p| p.as_raw_nonzero().get() == 1) {
        return Ok(0);
    }
    // pidfds tell when a fork ends without a thread or a SIGCHLD handler.
    if rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    )
    .is_err()
    {
        crate::errln!("admf serve: builds are not forked here (no pidfd: Linux 5.3 or later)");
        return Ok(0);
    }
    let listener = super::bind(&socket)?;
    let mut preloads = Preloads::new(store);
    preloads.refresh();
    let mut running: Vec<Running> = Vec::new();
    loop {
        let timeout = preloads
            .pending
            .then(|| rustix::event::Timespec::try_from(RETRY).expect("a small duration"));
        // Per build its pidfd, and its caller's connection until the
        // caller is gone (a hung-up connection stays ready: polling it
        // again would spin).
        let mut fds = vec![PollFd::new(&listener, PollFlags::IN)];
        let mut at = Vec::with_capacity(running.len());
        for build in &running {
            at.push(fds.len());
            fds.push(PollFd::new(&build.pidfd, PollFlags::IN));
            if build.watches_caller() {
                fds.push(PollFd::new(&build.answered, PollFlags::IN));
                fds.push(PollFd::new(&build.conn, PollFlags::RDHUP));
            }
        }
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io(&socket, e.into())),
        }
        let ready: Vec<PollFlags> = fds.iter().map(PollFd::revents).collect();
        drop(fds);
        let mut ended = false;
        // Newest first, so that removing one keeps the others' places.
        for i in (0..running.len()).rev() {
            let exit = ready[at[i]];
            // The fork says it answered before the caller can leave: seen
            // together, the answer wins.
            let (answered, gone) = if running[i].watches_caller() {
                (ready[at[i] + 1], ready[at[i] + 2])
            } else {
                (PollFlags::empty(), PollFlags::empty())
            };
            if !exit.is_empty() {
                let build = running.swap_remove(i);
                report_end(build);
                ended = true;
            } else if !answered.is_empty() {
                running[i].finishing = true;
            } else if !gone.is_empty() {
                // SAFETY: kill(2) of our own child.
                unsafe { libc::kill(running[i].pid, libc::SIGTERM) };
                running[i].abandoned = true;
            }
        }
        if ready[0].contains(PollFlags::IN)
            && let Ok((conn, _)) = listener.accept()
        {
            let finished = wait_for_finishing(&mut running, FINISHING_WAIT);
            if finished {
                preloads.refresh();
            }
            let inherited: Vec<RawFd> = std::iter::once(listener.as_raw_fd())
                .chain(running.iter().flat_map(|b| {
                    [
                        b.pidfd.as_raw_fd(),
                        b.conn.as_raw_fd(),
                        b.answered.as_raw_fd(),
                    ]
                }))
                .collect();
            if let Some(build) = take_request(conn, &exe, &inherited, finished) {
                running.push(build);
            }
        }
        if ended || preloads.pending {
            preloads.refresh();
        }
    }
}

/// Wait, at most `limit`, for the forks of `running` that have answered
/// to end; whether any did (and was reported and removed).
fn wait_for_finishing(running: &mut Vec<Running>, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    let mut ended = false;
    while running.iter().any(|b| b.finishing) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let timeout = rustix::event::Timespec::try_from(left).expect("a duration under a second");
        let mut fds: Vec<PollFd> = running
            .iter()
            .filter(|b| b.finishing)
            .map(|b| PollFd::new(&b.pidfd, PollFlags::IN))
            .collect();
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
        let exited: Vec<usize> = (0..running.len())
            .filter(|&i| running[i].finishing)
            .zip(fds.iter().map(|fd| !fd.revents().is_empty()))
            .filter_map(|(i, exited)| exited.then_some(i))
            .collect();
        drop(fds);
        // Last first, so that removing one keeps the others' places.
        for &i in exited.iter().rev() {
            report_end(running.remove(i));
        }
        ended |= !exited.is_empty();
    }
    ended
}

/// Tell a fork's handing build how it ended (the fork says so itself
/// when it ends by returning; a fork killed by a signal cannot).
fn report_end(build: Running) {
    let mut status = 0;
    // SAFETY: waitpid(2) of our own child, which has ended (its pidfd
    // polled readable).
    let waited = unsafe { libc::waitpid(build.pid, &mut status, libc::WNOHANG) };
    if waited != build.pid {
        return;
    }
    let line = if libc::WIFSIGNALED(status) {
        format!("signal {}\n", libc::WTERMSIG(status))
    } else {
        format!("exit {}\n", libc::WEXITSTATUS(status))
    };
    // After the fork's own line, if it wrote one: the build reads the first.
    let _ = (&build.conn).write_all(line.as_bytes());
}

/// Read one request from `conn` and start its fork; `None` when the
/// request was refused (and answered `no`) or unreadable. `finished`:
/// whether a fork that had answered finished its caches after the caller
/// may have checked them.
fn take_request(
    conn: UnixStream,
    exe: &str,
    inherited: &[RawFd],
    finished: bool,
) -> Option<Running> {
    // A build runs with the server's privileges: only its own user's
    // builds are taken, whatever the socket's mode lets connect.
    let peer = rustix::net::sockopt::socket_peercred(&conn).ok()?;
    if peer.uid != rustix::process::getuid() {
        return refuse(conn, "a build of the server's own user");
    }
    // A build that stops sending costs it its answer, not the server.
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut len = [0u8; 8];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        &conn,
        &mut [IoSliceMut::new(&mut len)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .ok()?;
    let mut streams: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            streams.extend(fds);
        }
    }
    if got.bytes < len.len() {
        (&conn).read_exact(&mut len[got.bytes..]).ok()?;
    }
    let len = u64::from_le_bytes(len);
    if streams.len() != 3 || len > REQUEST_MAX {
        return refuse(conn, "a request of this server's protocol");
    }
    let mut body = Vec::with_capacity(len as usize);
    (&conn).take(len).read_to_end(&mut body).ok()?;
    let Some(request) = Request::from_bytes(&body) else {
        return refuse(conn, "a request of this server's protocol");
    };
    if request.exe != exe.as_bytes() {
        return refuse(conn, "the same admf executable as the server's");
    }
    if threads() != Some(1) {
        return refuse(conn, "a server process of one thread");
    }
    let _ = conn.set_read_timeout(None);
    let Ok((answered, answering)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
    else {
        return refuse(conn, "a pipe");
    };
    // SAFETY: this process runs one thread (checked above), so the fork
    // inherits no lock held by another; the child only runs a build.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(answered);
        CHECK_RECORD_AGAIN.store(finished, Ordering::Relaxed);
        run_fork(request, streams, &conn, answering, inherited);
    }
    // The build's streams belong to the fork (and the build) now.
    drop(streams);
    drop(answering);
    if pid < 0 {
        return refuse(conn, "a fork");
    }
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).expect("a positive pid"),
        rustix::process::PidfdFlags::empty(),
    );
    let Ok(pidfd) = pidfd else {
        // Without its pidfd the fork cannot be waited for: stop it.
        // SAFETY: kill(2) and waitpid(2) of our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return refuse(conn, "a pidfd of the fork");
    };
    let _ = (&conn).write_all(format!("pid {pid}\n").as_bytes());
    Some(Running {
        pid,
        pidfd,
        conn,
        abandoned: false,
        answered,
        finishing: false,
    })
}

fn refuse(conn: UnixStream, needs: &str) -> Option<Running> {
    let _ = (&conn).write_all(format!("no: needs {needs}\n").as_bytes());
    None
}

/// How many threads this process runs.
fn threads() -> Option<usize> {
    Some(fs::read_dir("/proc/self/task").ok()?.count())
}

/// The fork: become the handing build and run it.
fn run_fork(
    request: Request,
    streams: Vec<OwnedFd>,
    conn: &UnixStream,
    answered: OwnedFd,
    inherited: &[RawFd],
) -> ! {
    FORKED.store(true, Ordering::Relaxed);
    ANSWER_CONN.store(conn.as_raw_fd(), Ordering::SeqCst);
    ANSWERED_PIPE.store(answered.into_raw_fd(), Ordering::SeqCst);
    crate::store::process_ends_with_build();
    // SAFETY: plain system calls on descriptors this process owns; the
    // process runs one thread, so nothing else uses them meanwhile.
    unsafe {
        for &fd in inherited {
            libc::close(fd);
        }
        // A Ctrl-C in the server's terminal is not this build's.
        libc::setpgid(0, 0);
        for (target, fd) in streams.iter().enumerate() {
            libc::dup2(fd.as_raw_fd(), target as RawFd);
        }
        libc::umask(request.umask as libc::mode_t);
    }
    drop(streams);
    let names: Vec<OsString> = std::env::vars_os().map(|(name, _)| name).collect();
    // SAFETY: this process runs one thread: nothing reads the environment
    // while it is replaced.
    unsafe {
        for name in names {
            std::env::remove_var(name);
        }
        for (name, value) in &request.env {
            std::env::set_var(name, value);
        }
    }
    let code = match std::env::set_current_dir(&request.cwd) {
        Ok(()) => std::panic::catch_unwind(|| run_cli(request.argv)).unwrap_or(101),
        Err(e) => {
            crate::errln!("admf: {}: {e}", request.cwd.display());
            1
        }
    };
    answer_early(code);
    std::process::exit(code)
}

fn run_cli(argv: Vec<OsString>) -> i32 {
    use clap::Parser;
    use std::io::IsTerminal;
    match crate::cli::Cli::try_parse_from(argv) {
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
        Ok(cli) => match crate::commands::run(cli) {
            Ok(code) => code,
            Err(e) => {
                let color = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                let _ = io::stderr().write_all(e.render(color).as_bytes());
                e.exit_code()
            }
        },
    }
}

/// The decoded copies the build process keeps: the stat cache, and the
/// graph cache and node trace of the workflow built last.
struct Preloads {
    store: PathBuf,
    /// Whether a file was written too recently to keep: read again soon.
    pending: bool,
    /// Files that could not be decoded, with the stat they had: not read
    /// again until they change.
    failed: Vec<(PathBuf, Stat)>,
}

impl Preloads {
    fn new(store: &Path) -> Preloads {
        Preloads {
            store: store.to_path_buf(),
            pending: false,
            failed: Vec::new(),
        }
    }

    fn refresh(&mut self) {
        let mut wanted = vec![
            (
                self.store.join("statcache"),
                crate::stat_cache::preload as fn(&Path) -> bool,
            ),
            (self.store.join("upstream").join("record"), |record| {
                let store = record.parent().and_then(Path::parent);
                store.is_some_and(crate::phases::upstream_env::preload_kept)
            }),
        ];
        let run = newest_run(&self.store);
        if let Some(dir) = &run {
            wanted.push((dir.join("graph"), crate::graph_cache::preload));
            wanted.push((dir.join("nodes"), crate::node_trace::preload));
            wanted.push((dir.join("uptodate"), crate::uptodate::preload));
        }
        let mut kept: Vec<PathBuf> = wanted.iter().map(|(p, _)| p.clone()).collect();
        kept.push(self.store.join("index"));
        crate::preload::keep_only(&kept);
        self.pending = false;
        for (path, load) in wanted {
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            let now = Stat::of(&meta);
            if crate::preload::stat_of(&path) == Some(now)
                || self.failed.iter().any(|(p, s)| *p == path && *s == now)
            {
                continue;
            }
            if load(&path) {
                continue;
            }
            if is_racy(&now, system_time_ns(std::time::SystemTime::now())) {
                self.pending = true;
            } else {
                self.failed.retain(|(p, _)| *p != path);
                self.failed.push((path, now));
            }
        }
        // The action rows of the trace's nodes, for a build whose node
        // reads thousands of upstream entries (only those not read before).
        if let Some(keys) =
            run.and_then(|dir| crate::node_trace::preloaded_keys(&dir.join("nodes")))
        {
            // Not read now (the index just changed): read after the next build.
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            crate::store::preload_rows(&self.store, &keys);
        }
    }
}

/// The run folder whose graph cache was written last.
fn newest_run(store: &Path) -> Option<PathBuf> {
    fs::read_dir(store.join("runs"))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let modified = fs::metadata(entry.path().join("graph"))
                .ok()?
                .modified()
                .ok()?;
            Some((modified, entry.path()))
        })
        .max()
        .map(|(_, dir)| dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_with_any_bytes_in_its_fields() {
        let request = Request {
            exe: b"/bin/admf 1 2 3 4".to_vec(),
            cwd: PathBuf::from("/a dir/with=sign"),
            umask: 0o027,
            argv: vec![
                "admf".into(),
                "build".into(),
                OsString::from_vec(b"w\xffx.yaml".to_vec()),
            ],
            env: vec![("A".into(), "1=2".into()), ("EMPTY".into(), "".into())],
        };
        let back = Request::from_bytes(&request.to_bytes()).expect("decodes");
        assert_eq!(back.exe, request.exe);
        assert_eq!(back.cwd, request.cwd);
        assert_eq!(back.umask, 0o027);
        assert_eq!(back.argv, request.argv);
        assert_eq!(back.env, request.env);
    }

    #[test]
    fn a_truncated_or_foreign_request_is_refused() {
        let bytes = Request {
            exe: b"x".to_vec(),
            cwd: PathBuf::from("/"),
            umask: 0o22,
            argv: vec!["admf".into()],
            env: vec![],
        }
        .to_bytes();
        assert!(Request::from_bytes(&bytes[..bytes.len() - 1]).is_none());
        let mut foreign = bytes.clone();
        let at = foreign
            .windows(PROTOCOL.len())
            .position(|w| w == PROTOCOL)
            .unwrap();
        foreign[at] = b'b';
        assert!(Request::from_bytes(&foreign).is_none());
        // An argument count past the fields.
        let fields: Vec<&[u8]> = vec![PROTOCOL, b"x", b"/", b"22", b"3", b"admf"];
        assert!(Request::from_bytes(&encode(&fields)).is_none());
    }

    #[test]
    fn the_umask_is_read_from_proc() {
        let umask = current_umask().expect("Linux has /proc/self/status");
        assert!(umask <= 0o777);
    }
}
