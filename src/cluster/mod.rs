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

pub mod batch;
pub mod slurm;

use self::slurm::{SlurmExecutor, SlurmOptions};
use crate::error::Error;
use crate::executor::{Executor, LocalExecutor};
use crate::ir::executor::{ExecutorConfig, ExecutorKind, Resources, is_plain_word};
use crate::run::RunContext;

/// The executor of one build: local threads or Slurm jobs.
pub enum BuildExecutor {
    Local(LocalExecutor),
    Slurm(SlurmExecutor),
}

impl BuildExecutor {
    /// The executor the command line (`cli`) and the workflow's
    /// `executor:` ask for; `jobs` is the local thread count (`-j`).
    pub fn choose(
        cli: &ExecutorConfig,
        ctx: &RunContext,
        jobs: usize,
    ) -> Result<BuildExecutor, Error> {
        let cli = cli.clone();
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
