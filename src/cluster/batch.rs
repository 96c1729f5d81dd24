//! The folder a packed job works from, shared by the coordinator and the
//! job's `admf exec-action --batch` (on a shared file system):
//!
//! - `N.action.json`: an action, written atomically by the coordinator,
//!   also while the job runs (a running job takes more work, so a build's
//!   later waves do not wait for new jobs to start);
//! - `N.claimed.json`: the same file, renamed by the worker that runs it.
//!   The rename is the claim: the coordinator withdraws an action it
//!   handed to a worker that stopped taking work with the same rename,
//!   and only one of the two can succeed;
//! - `N.output.json`: the action's output, written atomically;
//! - `progress`: a log the worker and the job script append lines to:
//!   `N` once `N.output.json` is written, `closed` once the worker takes
//!   no more actions, and `exit C` with the worker's exit status, written
//!   by the job script after the worker ended. The coordinator reads it
//!   from where it left off (one small read per job per poll), so it
//!   learns of finished actions and ended jobs without asking Slurm;
//! - `close`: the coordinator wants no more; a lingering worker exits.
//!
//! A worker that finds nothing to claim waits up to its linger time for
//! more, then appends `closed` and looks once more: an action written
//! before the coordinator last read the log without `closed` is seen by
//! that look, and one written after is withdrawn by the coordinator.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const PROGRESS: &str = "progress";
pub const CLOSE: &str = "close";

pub fn action_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("{index}.action.json"))
}

pub fn claimed_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("{index}.claimed.json"))
}

pub fn output_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("{index}.output.json"))
}

fn withdrawn_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("{index}.withdrawn.json"))
}

/// The indices of the actions in `dir` no worker has claimed, ascending.
pub fn unclaimed(dir: &Path) -> std::io::Result<Vec<usize>> {
    let mut indices = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let name = item?.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".action.json"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            indices.push(n);
        }
    }
    indices.sort_unstable();
    Ok(indices)
}

/// Takes action `index` for the worker; `false` when someone else did.
pub fn claim(dir: &Path, index: usize) -> std::io::Result<bool> {
    take(&action_path(dir, index), &claimed_path(dir, index))
}

/// Takes action `index` back for the coordinator; `false` when a worker
/// claimed it first.
pub fn withdraw(dir: &Path, index: usize) -> std::io::Result<bool> {
    take(&action_path(dir, index), &withdrawn_path(dir, index))
}

fn take(from: &Path, to: &Path) -> std::io::Result<bool> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Appends one line to the folder's progress log, in one write so that
/// lines from the worker's threads do not interleave.
pub fn note(dir: &Path, line: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(PROGRESS))?;
    file.write_all(format!("{line}\n").as_bytes())
}

/// What a progress log said since the last read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Actions whose output was written.
    pub finished: Vec<usize>,
    /// The worker takes no more actions.
    pub closed: bool,
    /// The worker's exit status, once the job script wrote it.
    pub exit: Option<i32>,
}

/// Reads the progress log of `dir` from `offset`, which moves past the
/// complete lines read (a line still being written is read next time).
pub fn read_progress(dir: &Path, offset: &mut u64) -> std::io::Result<Progress> {
    let mut file = match std::fs::File::open(dir.join(PROGRESS)) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Progress::default()),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(*offset))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    *offset += complete as u64;
    Ok(parse_progress(&String::from_utf8_lossy(&text[..complete])))
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
        } else if let Ok(index) = line.parse::<usize>() {
            progress.finished.push(index);
        }
    }
    progress
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_say_what_finished_and_how_the_job_ended() {
        let p = parse_progress("3\n1\nclosed\n7\nexit 0\n");
        assert_eq!(p.finished, vec![3, 1, 7]);
        assert!(p.closed);
        assert_eq!(p.exit, Some(0));
        assert_eq!(parse_progress("exit ?\n").exit, Some(-1));
        assert_eq!(parse_progress("junk\n\n").finished, Vec::<usize>::new());
    }

    #[test]
    fn a_half_written_line_is_read_the_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut offset = 0;
        assert_eq!(
            read_progress(dir.path(), &mut offset).unwrap(),
            Progress::default()
        );
        note(dir.path(), "4").unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(PROGRESS))
            .unwrap()
            .write_all(b"1")
            .unwrap();
        assert_eq!(
            read_progress(dir.path(), &mut offset).unwrap().finished,
            [4]
        );
        assert_eq!(offset, 2);
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(PROGRESS))
            .unwrap()
            .write_all(b"2\nexit 1\n")
            .unwrap();
        let p = read_progress(dir.path(), &mut offset).unwrap();
        assert_eq!(p.finished, [12]);
        assert_eq!(p.exit, Some(1));
    }

    #[test]
    fn a_claimed_action_cannot_be_withdrawn_and_the_reverse() {
        let dir = tempfile::tempdir().unwrap();
        for i in [0, 1] {
            std::fs::write(action_path(dir.path(), i), b"{}").unwrap();
        }
        assert_eq!(unclaimed(dir.path()).unwrap(), [0, 1]);
        assert!(claim(dir.path(), 0).unwrap());
        assert!(!withdraw(dir.path(), 0).unwrap());
        assert!(withdraw(dir.path(), 1).unwrap());
        assert!(!claim(dir.path(), 1).unwrap());
        assert!(unclaimed(dir.path()).unwrap().is_empty());
        assert!(claimed_path(dir.path(), 0).exists());
    }
}
