use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ConfigIssue, Phase, PhaseContext, PhaseError};

pub struct Command;

impl Phase for Command {
    fn version(&self) -> &'static str {
        "command-1"
    }
    fn validate(&self, _config: &Value) -> Result<(), ConfigIssue> {
        Ok(())
    }
    fn inputs(&self, _config: &Value, _base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(vec![])
    }
    fn execute(&self, _ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        Ok(())
    }
}
