//! `admf exec-action ACTION.json --output OUTPUT.json`: run one action
//! outside the coordinator's process. The coordinator commits the outputs
//! the action wrote into its `out_dir`; this command only executes.

use std::path::Path;

use crate::action::{Action, execute};
use crate::error::Error;

/// Exit 0 when the phase succeeded, 1 when it failed (the output file says
/// why); 2 when the action itself cannot be read.
pub fn exec_action(action_path: &Path, output_path: &Path) -> Result<i32, Error> {
    let bytes = std::fs::read(action_path).map_err(|e| Error::io(action_path, e))?;
    let action: Action = serde_json::from_slice(&bytes).map_err(|e| {
        Error::io(
            action_path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    let output = execute(super::factory().as_ref(), &action);
    let text = serde_json::to_vec(&output).map_err(|e| Error::io(output_path, e.into()))?;
    crate::atomic_file::write(output_path, &text).map_err(|e| Error::io(output_path, e))?;
    Ok(if output.result.is_ok() { 0 } else { 1 })
}
