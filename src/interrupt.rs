//! SIGINT, SIGTERM and SIGHUP during a local build: forwarded to every
//! running command's process group, so `sh` and what it started stop with
//! admf instead of being orphaned. The build then settles the interrupted
//! nodes as failed (nothing of theirs is stored), starts nothing more,
//! commits what had finished, removes its temp files and exits with
//! 128 + the signal's number (130, 143, 129).
//!
//! A command still running [`GRACE`] after the signal is killed
//! (SIGKILL, the whole group). Outside a build the signals keep their
//! default action. SIGKILL cannot be caught: its commands keep running
//! (see RELIABILITY.md).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long commands get to stop after a forwarded signal.
pub const GRACE: Duration = Duration::from_secs(5);

/// The most commands that run at once in one process: `-j` is capped here.
pub const MAX_COMMANDS: usize = 1024;

/// Process groups of the running commands; 0 marks a free slot. A fixed
/// array of atomics, because the signal handler may not take a lock.
static GROUPS: [AtomicI32; MAX_COMMANDS] = [const { AtomicI32::new(0) }; MAX_COMMANDS];

/// The signal received during the current build, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Whether no build runs: then a signal terminates admf as by default.
fn idle() -> &'static Arc<AtomicBool> {
    static IDLE: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    IDLE.get_or_init(|| Arc::new(AtomicBool::new(true)))
}

fn install() -> std::io::Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            for signal in SIGNALS {
                // SAFETY: the action only stores to and reads from atomics
                // and calls kill(2), all async-signal-safe; it allocates
                // nothing and takes no lock.
                unsafe {
                    signal_hook::low_level::register(signal, move || {
                        RECEIVED.store(signal, Ordering::SeqCst);
                        forward(signal);
                    })
                }
                .map_err(|e| e.to_string())?;
                signal_hook::flag::register_conditional_default(signal, idle().clone())
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .clone()
        .map_err(std::io::Error::other)
}

/// Sends `signal` to every registered command's process group.
fn forward(signal: i32) {
    for slot in &GROUPS {
        let group = slot.load(Ordering::SeqCst);
        if group > 0 {
            // SAFETY: kill(2) with a negative pid signals a process group;
            // it is async-signal-safe and touches no memory of ours.
            unsafe {
                libc::kill(-group, signal);
            }
        }
    }
}

/// Held for a build: signals are caught and forwarded while it lives.
pub struct BuildSignals {
    done: Arc<AtomicBool>,
}

/// Starts catching the signals for one build.
pub fn during_build() -> std::io::Result<BuildSignals> {
    install()?;
    RECEIVED.store(0, Ordering::SeqCst);
    idle().store(false, Ordering::SeqCst);
    let done = Arc::new(AtomicBool::new(false));
    let watching = done.clone();
    // Kills what is still running GRACE after a signal.
    std::thread::spawn(move || {
        while !watching.load(Ordering::SeqCst) {
            if RECEIVED.load(Ordering::SeqCst) != 0 {
                let deadline = std::time::Instant::now() + GRACE;
                while std::time::Instant::now() < deadline && !watching.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                forward(libc::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    Ok(BuildSignals { done })
}

impl Drop for BuildSignals {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        idle().store(true, Ordering::SeqCst);
    }
}

/// The signal received since the build started, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// A running command's process group, forwarded signals while held.
pub struct Registered(Option<&'static AtomicI32>);

/// Registers process group `group` (a command started with
/// `process_group(0)`: its pid); a signal that arrived before is sent to
/// it at once.
pub fn register(group: i32) -> Registered {
    let slot = GROUPS.iter().find(|slot| {
        slot.compare_exchange(0, group, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    if let Some(signal) = received() {
        // SAFETY: as in `forward`.
        unsafe {
            libc::kill(-group, signal);
        }
    }
    Registered(slot)
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            slot.store(0, Ordering::SeqCst);
        }
    }
}
