//! `report` (in progress).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{ConfigIssue, Phase, PhaseContext, PhaseError};

pub struct Report;

impl Phase for Report {
    fn version(&self) -> &'static str {
        "report-0"
    }

    fn validate(&self, _config: &Value) -> Result<(), ConfigIssue> {
        Ok(())
    }

    fn inputs(&self, _config: &Value, _base_dir: &Path) -> Result<Vec<PathBuf>, ConfigIssue> {
        Ok(vec![])
    }

    fn execute(&self, _ctx: &mut PhaseContext<'_>) -> Result<(), PhaseError> {
        Err(PhaseError("mode `report` is not implemented yet".into()))
    }
}
