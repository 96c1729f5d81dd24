//! The folder a packed job works from, shared by the coordinator and the
//! job's `admf exec-action --batch` (on a shared file system). Actions are
//! numbered in the order they were handed to the job.
//!
//! - `F.actions.jsonl`: actions F, F+1, ... one JSON line each, written
//!   atomically by the coordinator in one file per hand-over, also while
//!   the job runs (a running job takes more work, so a build's later
//!   waves do not wait for new jobs to start);
//! - `F.claimed.jsonl`: the same file, renamed by the worker that runs
//!   it. The rename is the claim: the coordinator withdraws a hand-over
//!   to a worker that stopped taking work with the same rename, and only
//!   one of the two can succeed;
//! - `outputs.jsonl`: one line `{"index": N, "output": ...}` per finished
//!   action, appended by the worker in one write each;
//! - `progress`: `closed` once the worker takes no more actions, and
//!   `exit C` with the worker's exit status, appended by the job script
//!   after the worker ended;
//! - `close`: the coordinator wants no more; a lingering worker exits.
//!
//! The coordinator reads `outputs.jsonl` and `progress` from where it
//! left off (two small reads per job per poll), so it learns of finished
//! actions and ended jobs without asking Slurm, and without a file per
//! action on either side: creating files is what a shared file system
//! does slowest. Only complete lines are read; a line cut short by a
//! kill is never taken for an output.
//!
//! A worker that finds nothing to claim waits up to its linger time for
//! more, then notes `closed` and looks once more: a hand-over written
//! before the coordinator last read `progress` without `closed` is seen
//! by that look, and one written after is withdrawn by the coordinator.
//! Where a file system shows the folder late (NFS caches directory
//! listings), a hand-over the worker missed is still unclaimed when it
//! exits cleanly, and the coordinator queues it again.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionOutput};

pub const OUTPUTS: &str = "outputs.jsonl";
pub const PROGRESS: &str = "progress";
pub const CLOSE: &str = "close";

pub fn actions_path(dir: &Path, first: usize) -> PathBuf {
    dir.join(format!("{first}.actions.jsonl"))
}

pub fn claimed_path(dir: &Path, first: usize) -> PathBuf {
    dir.join(format!("{first}.claimed.jsonl"))
}

fn withdrawn_path(dir: &Path, first: usize) -> PathBuf {
    dir.join(format!("{first}.withdrawn.jsonl"))
}

/// Writes actions `first`, `first + 1`, ... as one hand-over.
pub fn write_actions<'a>(
    dir: &Path,
    first: usize,
    actions: impl IntoIterator<Item = &'a Action>,
) -> std::io::Result<()> {
    let mut text = Vec::new();
    for action in actions {
        serde_json::to_writer(&mut text, action).map_err(std::io::Error::other)?;
        text.push(b'\n');
    }
    crate::atomic_file::write(&actions_path(dir, first), &text)
}

/// The actions of one hand-over file, in order.
pub fn read_actions(path: &Path) -> std::io::Result<Vec<Action>> {
    let text = std::fs::read(path)?;
    text.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))
        })
        .collect()
}

/// The first indices of the hand-overs in `dir` no worker has claimed,
/// ascending.
pub fn unclaimed(dir: &Path) -> std::io::Result<Vec<usize>> {
    let mut firsts = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let name = item?.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".actions.jsonl"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            firsts.push(n);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

/// Takes hand-over `first` for the worker; `false` when someone else did.
pub fn claim(dir: &Path, first: usize) -> std::io::Result<bool> {
    take(&actions_path(dir, first), &claimed_path(dir, first))
}

/// Takes hand-over `first` back for the coordinator; `false` when a
/// worker claimed it first.
pub fn withdraw(dir: &Path, first: usize) -> std::io::Result<bool> {
    take(&actions_path(dir, first), &withdrawn_path(dir, first))
}

fn take(from: &Path, to: &Path) -> std::io::Result<bool> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// One line of `outputs.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finished {
    pub index: usize,
    pub output: ActionOutput,
}

/// `finished` as one line of `outputs.jsonl`.
pub fn output_line(finished: &Finished) -> std::io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(finished).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

/// Appends one line to the folder's progress log, in one write.
pub fn note(dir: &Path, line: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(PROGRESS))?;
    file.write_all(format!("{line}\n").as_bytes())
}

/// The complete lines appended to `dir/name` since `offset`, which moves
/// past them (a line still being written is read next time).
fn new_lines(dir: &Path, name: &str, offset: &mut u64) -> std::io::Result<Vec<u8>> {
    let mut file = match std::fs::File::open(dir.join(name)) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(*offset))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    text.truncate(complete);
    *offset += complete as u64;
    Ok(text)
}

/// The outputs appended since `offset`; a line that does not parse is
/// skipped (its action counts as having written no output).
pub fn read_finished(dir: &Path, offset: &mut u64) -> std::io::Result<Vec<Finished>> {
    let text = new_lines(dir, OUTPUTS, offset)?;
    Ok(text
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect())
}

/// What the progress log said since the last read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The worker takes no more actions.
    pub closed: bool,
    /// The worker's exit status, once the job script wrote it.
    pub exit: Option<i32>,
}

/// Reads the progress log of `dir` from `offset`.
pub fn read_progress(dir: &Path, offset: &mut u64) -> std::io::Result<Progress> {
    let text = new_lines(dir, PROGRESS, offset)?;
    Ok(parse_progress(&String::from_utf8_lossy(&text)))
}

/// Progress lines into what they say; lines of no known form are
/// ignored, and an unreadable exit status counts as a failure.
pub fn parse_progress(text: &str) -> Progress {
    let mut progress = Progress::default();
    for line in text.lines() {
        let line = line.trim();
        if line == "closed" {
            progress.closed = true;
        } else if let Some(code) = line.strip_prefix("exit ") {
            progress.exit = Some(code.trim().parse().unwrap_or(-1));
        }
    }
    progress
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_say_whether_the_worker_closed_and_how_it_exited() {
        let p = parse_progress("closed\nexit 0\n");
        assert!(p.closed);
        assert_eq!(p.exit, Some(0));
        assert_eq!(parse_progress("exit ?\n").exit, Some(-1));
        assert_eq!(parse_progress("junk\n\n"), Progress::default());
    }

    fn finished(index: usize) -> Finished {
        Finished {
            index,
            output: ActionOutput {
                result: Ok(()),
                memory: Default::default(),
                log: b"line\n".to_vec(),
                duration_ms: 3,
                handoff: None,
            },
        }
    }

    #[test]
    fn a_half_written_output_line_is_read_the_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut offset = 0;
        assert!(read_finished(dir.path(), &mut offset).unwrap().is_empty());
        let first = output_line(&finished(4)).unwrap();
        let second = output_line(&finished(12)).unwrap();
        let (head, tail) = second.split_at(7);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join(OUTPUTS))
            .unwrap();
        file.write_all(&first).unwrap();
        file.write_all(head).unwrap();
        let read = read_finished(dir.path(), &mut offset).unwrap();
        assert_eq!(read.iter().map(|f| f.index).collect::<Vec<_>>(), [4]);
        assert_eq!(read[0].output.log, b"line\n");
        assert_eq!(offset, first.len() as u64);
        file.write_all(tail).unwrap();
        let read = read_finished(dir.path(), &mut offset).unwrap();
        assert_eq!(read.iter().map(|f| f.index).collect::<Vec<_>>(), [12]);
        assert!(read_finished(dir.path(), &mut offset).unwrap().is_empty());
    }

    #[test]
    fn a_claimed_hand_over_cannot_be_withdrawn_and_the_reverse() {
        let dir = tempfile::tempdir().unwrap();
        for first in [0, 5] {
            std::fs::write(actions_path(dir.path(), first), b"").unwrap();
        }
        assert_eq!(unclaimed(dir.path()).unwrap(), [0, 5]);
        assert!(claim(dir.path(), 0).unwrap());
        assert!(!withdraw(dir.path(), 0).unwrap());
        assert!(withdraw(dir.path(), 5).unwrap());
        assert!(!claim(dir.path(), 5).unwrap());
        assert!(unclaimed(dir.path()).unwrap().is_empty());
        assert!(claimed_path(dir.path(), 0).exists());
    }
}
