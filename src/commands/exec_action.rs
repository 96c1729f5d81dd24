//! `admf exec-action ACTION.json --output OUTPUT.json`: run one action
//! outside the coordinator's process. The coordinator commits the outputs
//! the action wrote into its `out_dir`; this command only executes.
//!
//! `admf exec-action --batch DIR` runs every action handed over in DIR
//! (`F.actions.jsonl`) and appends their outputs to `outputs.jsonl`
//! there: what one packed cluster job runs,
//! so many small actions share one process start. They run on as many
//! threads as the job was given CPUs (`SLURM_CPUS_PER_TASK`). With
//! `--linger-ms`, it goes on taking the actions the coordinator adds to
//! DIR until none came for that long.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::action::{Action, execute};
use crate::cluster::batch;
use crate::error::Error;

pub fn run(
    action: Option<PathBuf>,
    output: Option<PathBuf>,
    batch: Option<PathBuf>,
    linger_ms: u64,
) -> Result<i32, Error> {
    let code = match (action, output, batch) {
        (_, _, Some(dir)) => exec_batch(&dir, linger_ms),
        (Some(action), Some(output), None) => exec_action(&action, &output),
        // clap requires both or --batch.
        _ => Ok(2),
    };
    crate::store::Store::close_shared();
    code
}

/// Exit 0 when the phase succeeded, 1 when it failed (the output file says
/// why); 2 when the action itself cannot be read.
pub fn exec_action(action_path: &Path, output_path: &Path) -> Result<i32, Error> {
    let action = read_action(action_path)?;
    let output = execute(super::factory().as_ref(), &action);
    let text = serde_json::to_vec(&output).map_err(|e| Error::io(output_path, e.into()))?;
    crate::atomic_file::write(output_path, &text).map_err(|e| Error::io(output_path, e))?;
    Ok(if output.result.is_ok() { 0 } else { 1 })
}

fn read_action(path: &Path) -> Result<Action, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })
}

/// Exit 0 when every action the worker claimed ran (whether its phase
/// succeeded or not, which its output says); 2 when a hand-over could not
/// be read or an output not written. An action without an output is
/// reported by the coordinator as failed, with this process's stderr.
///
/// The folder's protocol is [`crate::cluster::batch`]'s: hand-overs are
/// claimed by renaming them, each output is appended to `outputs.jsonl`
/// as soon as its action ran, and once the folder runs dry the worker
/// waits up to `linger_ms` for more before it stops taking work.
fn exec_batch(dir: &Path, linger_ms: u64) -> Result<i32, Error> {
    let threads = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::io("thread pool", std::io::Error::other(e)))?;
    let factory = super::factory();
    let linger = Duration::from_millis(linger_ms);
    let outputs_path = dir.join(batch::OUTPUTS);
    let mut outputs: Option<Mutex<std::fs::File>> = None;
    let mut failures: Vec<Error> = Vec::new();
    let mut idle_since = Instant::now();
    let mut wait = IDLE_POLL_FIRST;
    let mut closing = false;
    loop {
        let firsts = match batch::unclaimed(dir) {
            Ok(firsts) => firsts,
            // The coordinator is done with the folder and removed it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(Error::io(dir, e)),
        };
        let mut claimed: Vec<(usize, Action)> = Vec::new();
        for first in firsts {
            if !batch::claim(dir, first).map_err(|e| Error::io(dir, e))? {
                continue;
            }
            let path = batch::claimed_path(dir, first);
            match batch::read_actions(&path) {
                Ok(actions) => claimed.extend((first..).zip(actions)),
                Err(e) => failures.push(Error::io(&path, e)),
            }
        }
        if !claimed.is_empty() {
            if outputs.is_none() {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&outputs_path)
                    .map_err(|e| Error::io(&outputs_path, e))?;
                outputs = Some(Mutex::new(file));
            }
            let file = outputs.as_ref().expect("opened above");
            let ran: Vec<Error> = pool.install(|| {
                claimed
                    .into_par_iter()
                    .filter_map(|(index, action)| {
                        let output = execute(factory.as_ref(), &action);
                        let line = batch::output_line(&batch::Finished { index, output });
                        // One write per line, one writer at a time: the
                        // coordinator never reads two outputs mixed.
                        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                        line.and_then(|line| file.write_all(&line))
                            .map_err(|e| Error::io(&outputs_path, e))
                            .err()
                    })
                    .collect()
            });
            failures.extend(ran);
            idle_since = Instant::now();
            wait = IDLE_POLL_FIRST;
            continue;
        }
        if closing {
            break;
        }
        if idle_since.elapsed() >= linger || dir.join(batch::CLOSE).exists() {
            // Take no more, then look once more for what came before.
            match batch::note(dir, "closed") {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                noted => noted.map_err(|e| Error::io(dir, e))?,
            }
            closing = true;
            continue;
        }
        std::thread::sleep(wait.min(linger.saturating_sub(idle_since.elapsed())));
        wait = (wait * 2).min(IDLE_POLL_MAX);
    }
    for failure in &failures {
        crate::errln!("{failure}");
    }
    Ok(if failures.is_empty() { 0 } else { 2 })
}

/// How often an idle worker looks for more actions: soon at first, then
/// less often.
const IDLE_POLL_FIRST: Duration = Duration::from_millis(5);
const IDLE_POLL_MAX: Duration = Duration::from_millis(10);
