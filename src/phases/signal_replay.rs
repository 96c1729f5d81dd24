//! `signal_replay` (in progress).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ConfigIssue, Phase, PhaseContext, PhaseError};

pub struct SignalReplay;

impl Phase for SignalReplay {
    fn version(&self) -> &'static str {
        "signal_replay-0"
    }

    fn validate(&self, _config: &Value) -> Result<(), ConfigIssue> {
        Ok(())
    }

    fn inputs(&self, _config: &Value, _base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(vec![])
    }

    fn execute(&self, _ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        Err(PhaseError(
            "mode `signal_replay` is not implemented yet".into(),
        ))
    }
}
