//! `admf exec-action ACTION.json --output OUTPUT.json`: run one action
//! outside the coordinator's process. The coordinator commits the outputs
//! the action wrote into its `out_dir`; this command only executes.
//!
//! `admf exec-action --batch DIR` runs every `N.action.json` in DIR and
//! writes `N.output.json` beside each: what one packed cluster job runs,
//! so many small actions share one process start. They run on as many
//! threads as the job was given CPUs (`SLURM_CPUS_PER_TASK`).

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::action::{Action, execute};
use crate::error::Error;

pub fn run(
    action: Option<PathBuf>,
    output: Option<PathBuf>,
    batch: Option<PathBuf>,
) -> Result<i32, Error> {
    let code = match (action, output, batch) {
        (_, _, Some(dir)) => exec_batch(&dir),
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

/// Exit 0 when every action of the batch ran (whether its phase succeeded
/// or not, which its output file says); 2 when one could not be read or
/// its output not written. An action without an output file is reported
/// by the coordinator as failed, with this process's stderr.
fn exec_batch(dir: &Path) -> Result<i32, Error> {
    let mut indices = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let name = item.map_err(|e| Error::io(dir, e))?.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".action.json"))
            .and_then(|n| n.parse::<usize>().ok())
        {
            indices.push(n);
        }
    }
    indices.sort_unstable();
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
    let failures: Vec<Error> = pool.install(|| {
        indices
            .par_iter()
            .filter_map(|&i| {
                let output_path = dir.join(format!("{i}.output.json"));
                let run = || -> Result<(), Error> {
                    let action = read_action(&dir.join(format!("{i}.action.json")))?;
                    let output = execute(factory.as_ref(), &action);
                    let text = serde_json::to_vec(&output)
                        .map_err(|e| Error::io(&output_path, e.into()))?;
                    crate::atomic_file::write(&output_path, &text)
                        .map_err(|e| Error::io(&output_path, e))
                };
                run().err()
            })
            .collect()
    });
    for failure in &failures {
        crate::errln!("{failure}");
    }
    Ok(if failures.is_empty() { 0 } else { 2 })
}
