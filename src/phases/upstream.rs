//! Finding and reading the artifacts of upstream nodes.

use std::path::Path;

use serde_json::Value;

use super::{PhaseError, Role, Upstream};

/// Upstream artifact `name` as UTF-8 text.
pub fn upstream_text(up: &Upstream, name: &str) -> Result<String, PhaseError> {
    let bytes = up
        .read(name)
        .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe(name))))?;
    String::from_utf8(bytes).map_err(|e| PhaseError::new(format!("{}: {e}", up.describe(name))))
}

/// Upstream artifact `name` parsed as JSON.
pub fn upstream_json(up: &Upstream, name: &str) -> Result<Value, PhaseError> {
    serde_json::from_str(&upstream_text(up, name)?)
        .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe(name))))
}

/// Put upstream artifact `from` at `dir/name` (see [`Upstream::copy_to`]).
pub fn copy_upstream(up: &Upstream, from: &str, dir: &Path, name: &str) -> Result<(), PhaseError> {
    let path = dir.join(name);
    up.copy_to(from, &path)
        .map_err(|e| PhaseError::new(format!("{}: {e}", path.display())))
}

/// The upstream node of `mode` that holds a whole phase's artifacts (a
/// gather or single node, not a trial), the last such one listed.
pub fn upstream_of<'a>(upstream: &'a [Upstream], mode: &str) -> Option<&'a Upstream> {
    upstream
        .iter()
        .rev()
        .find(|u| u.mode == mode && !matches!(u.role, Role::Trial { .. }))
}

/// The sweep whose trials `mode` reads: the last direct upstream
/// `signal_generation` phase, or else, where `analysis_too`, an
/// `analysis` phase (which passes the sweep's trials on); a bad-input
/// error when there is neither.
pub fn trial_source<'a>(
    upstream: &'a [Upstream],
    mode: &str,
    analysis_too: bool,
) -> Result<&'a Upstream, PhaseError> {
    let analysis = if analysis_too {
        upstream_of(upstream, "analysis")
    } else {
        None
    };
    upstream_of(upstream, "signal_generation")
        .or(analysis)
        .ok_or_else(|| {
            PhaseError::bad_input(format!(
                "{mode} needs an upstream `signal_generation`{} phase",
                if analysis_too { " (or `analysis`)" } else { "" }
            ))
        })
}

/// The trial records (`trials.json`) of a sweep.
pub fn trial_records(
    up: &Upstream,
) -> Result<Vec<super::signal_generation::TrialRecord>, PhaseError> {
    serde_json::from_value(upstream_json(up, "trials.json")?)
        .map_err(|e| PhaseError::new(format!("{}: {e}", up.describe("trials.json"))))
}
