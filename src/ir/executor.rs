//! The `executor:` block and a phase's `resources:` as the IR holds them:
//! which executor runs a build's misses and what one action asks of a
//! compute node. The executors themselves are in [`crate::cluster`].

use serde::{Deserialize, Serialize};

/// Which executor runs the misses of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Threads of this process (the default).
    Local,
    /// Jobs of a Slurm cluster, submitted with `sbatch`.
    Slurm,
}

impl ExecutorKind {
    pub fn parse(text: &str) -> Option<ExecutorKind> {
        match text {
            "local" => Some(ExecutorKind::Local),
            "slurm" => Some(ExecutorKind::Slurm),
            _ => None,
        }
    }
}

/// The `executor:` block of a workflow, or the same choices from the
/// command line (which win key by key).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorConfig {
    pub kind: Option<ExecutorKind>,
    pub partition: Option<String>,
    pub account: Option<String>,
    /// The most batch jobs queued or running at once.
    pub max_jobs: Option<usize>,
    /// The most actions packed into one job.
    pub pack: Option<usize>,
}

impl ExecutorConfig {
    /// `self` with every key `over` sets replaced.
    pub fn overridden_by(&self, over: &ExecutorConfig) -> ExecutorConfig {
        ExecutorConfig {
            kind: over.kind.or(self.kind),
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            account: over.account.clone().or_else(|| self.account.clone()),
            max_jobs: over.max_jobs.or(self.max_jobs),
            pack: over.pack.or(self.pack),
        }
    }
}

/// What one action asks of a compute node (a phase's `resources:`).
/// Actions asking for the same are packed into the same jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Resources {
    /// CPUs per action (`--cpus-per-task`).
    pub cpus: Option<u32>,
    /// Memory of the job (`--mem`), e.g. `4G`.
    pub mem: Option<String>,
    /// Time limit of the job (`--time`), in Slurm's syntax.
    pub time: Option<String>,
}

/// A name sbatch takes as one argument without quoting surprises.
pub fn is_plain_word(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Slurm's `--mem` syntax: digits with an optional K, M, G or T.
pub fn is_memory(text: &str) -> bool {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T']);
    text.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.len() <= 12
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Slurm's `--time` syntax: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
pub fn is_time_limit(text: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, text),
    };
    if days.is_some_and(|d| !number(d)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    parts.len() <= 3 && parts.iter().all(|p| number(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_time_follow_slurm_syntax() {
        for ok in ["500", "500M", "4G", "1T", "64K"] {
            assert!(is_memory(ok), "{ok}");
        }
        for bad in ["", "G", "4GB", "4 G", "-1", "1.5G", "4g"] {
            assert!(!is_memory(bad), "{bad}");
        }
        for ok in ["30", "30:00", "1:30:00", "2-00", "2-00:30", "2-00:00:00"] {
            assert!(is_time_limit(ok), "{ok}");
        }
        for bad in ["", "1:2:3:4", "a", "1h", "-1", "1-", ":30", "2-1:2:3:4"] {
            assert!(!is_time_limit(bad), "{bad}");
        }
    }

    #[test]
    fn the_command_line_overrides_the_workflow_key_by_key() {
        let workflow = ExecutorConfig {
            kind: Some(ExecutorKind::Slurm),
            partition: Some("batch".into()),
            account: Some("lab".into()),
            max_jobs: Some(8),
            pack: None,
        };
        let cli = ExecutorConfig {
            partition: Some("short".into()),
            pack: Some(10),
            ..ExecutorConfig::default()
        };
        let merged = workflow.overridden_by(&cli);
        assert_eq!(merged.kind, Some(ExecutorKind::Slurm));
        assert_eq!(merged.partition.as_deref(), Some("short"));
        assert_eq!(merged.account.as_deref(), Some("lab"));
        assert_eq!(merged.max_jobs, Some(8));
        assert_eq!(merged.pack, Some(10));
    }
}
