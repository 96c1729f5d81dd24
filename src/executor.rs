//! The seam between scheduling and execution. The dispatcher hands ready
//! nodes to an [`Executor`] and receives their results on a channel; the
//! local rayon pool is one implementation, and a cluster executor (e.g.
//! Slurm job arrays for the cache misses) would be another, without
//! touching loading, planning or keys.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use crate::run::{NodeResult, RunContext, run_node};

/// One ready node, with the results of the nodes it depends on.
pub struct NodeJob {
    pub index: usize,
    pub deps: Vec<Arc<NodeResult>>,
    /// Results of the ancestors its `when:` names, by node id.
    pub condition_inputs: Vec<(String, Arc<NodeResult>)>,
    pub ctx: Arc<RunContext>,
}

pub trait Executor {
    /// How many nodes may run at once.
    fn jobs(&self) -> usize;
    /// Start `job`; its result must arrive on `done` exactly once.
    fn submit(&self, job: NodeJob, done: Sender<(usize, NodeResult)>);
}

/// Runs nodes on one rayon pool, which phases also use for their inner
/// parallelism (`par_iter` inside a node runs on the same threads).
pub struct LocalExecutor {
    pool: rayon::ThreadPool,
    jobs: usize,
}

/// The most nodes run at once, whatever `-j` asks for.
pub const MAX_JOBS: usize = 1024;

impl LocalExecutor {
    pub fn new(jobs: usize) -> std::io::Result<Self> {
        // One thread per job, created up front: `-j 99999999` must not
        // try to start that many.
        let jobs = jobs.clamp(1, MAX_JOBS);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .thread_name(|i| format!("admf-worker-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(LocalExecutor { pool, jobs })
    }

    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }
}

impl Executor for LocalExecutor {
    fn jobs(&self) -> usize {
        self.jobs
    }

    fn submit(&self, job: NodeJob, done: Sender<(usize, NodeResult)>) {
        self.pool.spawn(move || {
            let result = run_node(&job.ctx, job.index, &job.deps, &job.condition_inputs);
            // The receiver only goes away when the build is over.
            let _ = done.send((job.index, result));
        });
    }
}
