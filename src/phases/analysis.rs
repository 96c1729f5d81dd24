//! `analysis` (in progress).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ConfigIssue, Phase, PhaseContext, PhaseError};

pub struct Analysis;

impl Phase for Analysis {
    fn version(&self) -> &'static str {
        "analysis-0"
    }

    fn validate(&self, _config: &Value) -> Result<(), ConfigIssue> {
        Ok(())
    }

    fn inputs(&self, _config: &Value, _base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(vec![])
    }

    fn execute(&self, _ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        Err(PhaseError("mode `analysis` is not implemented yet".into()))
    }
}
