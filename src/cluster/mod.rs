//! Running misses beyond this machine. The coordinator still decides and
//! commits every node ([`crate::decide`], [`crate::commit`]); only the
//! actions of misses travel, as JSON files, to a batch system that runs
//! `admf exec-action` on its compute nodes ([`slurm`]).
//!
//! The assumption a cluster executor rests on: the workspace, the store
//! and the admf binary are visible at the same paths on the compute nodes
//! as on the coordinator (a shared file system). Actions name absolute
//! paths; a compute node writes only into the action's private output
//! directory and its job folder under the store, never an entry or a ref.

pub mod slurm;

use serde::{Deserialize, Serialize};

use self::slurm::{SlurmExecutor, SlurmOptions};
use crate::cli::BuildArgs;
use crate::error::Error;
use crate::executor::{Executor, LocalExecutor};
use crate::run::RunContext;

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

/// The executor of one build: local threads or Slurm jobs.
pub enum BuildExecutor {
    Local(LocalExecutor),
    Slurm(SlurmExecutor),
}

impl BuildExecutor {
    /// The executor `args` and the workflow's `executor:` ask for; `jobs`
    /// is the local thread count (`-j`).
    pub fn choose(args: &BuildArgs, ctx: &RunContext, jobs: usize) -> Result<BuildExecutor, Error> {
        let cli = ExecutorConfig {
            kind: args.executor.as_deref().and_then(ExecutorKind::parse),
            partition: args.partition.clone(),
            account: args.account.clone(),
            max_jobs: args.max_jobs.map(|n| n as usize),
            pack: args.pack.map(|n| n as usize),
        };
        let config = ctx.graph.workflow.executor.overridden_by(&cli);
        for (flag, name) in [("--partition", &cli.partition), ("--account", &cli.account)] {
            if name.as_deref().is_some_and(|n| !is_plain_word(n)) {
                return Err(Error::Usage {
                    message: format!("{flag} must be a Slurm name (letters, digits, `-_.`)"),
                    hint: None,
                });
            }
        }
        match config.kind.unwrap_or(ExecutorKind::Local) {
            ExecutorKind::Local => LocalExecutor::new(jobs, ctx.factory.clone())
                .map(BuildExecutor::Local)
                .map_err(|e| Error::io("thread pool", e)),
            ExecutorKind::Slurm => {
                let run_name = format!("admf-{}-{}", std::process::id(), unique_suffix());
                let admf = std::env::current_exe().map_err(|e| Error::io("admf binary", e))?;
                let resources = ctx
                    .graph
                    .nodes
                    .iter()
                    .map(|n| {
                        let phase = &ctx.graph.workflow.phases[n.phase];
                        (n.id.clone(), phase.resources.clone())
                    })
                    .collect();
                let job_root = ctx.store.root().join("cluster").join(&run_name);
                slurm::check_client().map_err(|e| Error::Usage {
                    message: e.to_string(),
                    hint: Some("build with `--executor local`, or install the Slurm client".into()),
                })?;
                SlurmExecutor::start(SlurmOptions {
                    partition: config.partition,
                    account: config.account,
                    max_jobs: config.max_jobs.unwrap_or(slurm::DEFAULT_MAX_JOBS),
                    pack: config.pack.unwrap_or(slurm::DEFAULT_PACK),
                    admf,
                    job_root: job_root.clone(),
                    run_name,
                    resources,
                })
                .map(BuildExecutor::Slurm)
                .map_err(|e| Error::io(job_root, e))
            }
        }
    }

    pub fn as_executor(&self) -> &dyn Executor {
        match self {
            BuildExecutor::Local(e) => e,
            BuildExecutor::Slurm(e) => e,
        }
    }

    /// Ends the build's use of the executor; a cluster executor says how
    /// many jobs its actions took.
    pub fn finish(self) {
        if let BuildExecutor::Slurm(e) = self {
            let summary = e.finish();
            if summary.actions > 0 {
                crate::errln!(
                    "slurm: {} action{} in {} job{}",
                    summary.actions,
                    if summary.actions == 1 { "" } else { "s" },
                    summary.jobs,
                    if summary.jobs == 1 { "" } else { "s" }
                );
            }
        }
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}", nanos & 0xffff_ffff_ffff)
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
