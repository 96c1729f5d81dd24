//! The seam between scheduling and execution. The coordinator hands each
//! cache miss, as an [`Action`], to an [`Executor`] and receives its
//! [`ActionOutput`] on a channel. The local rayon pool is one
//! implementation; a cluster executor (Slurm jobs running
//! `admf exec-action`) is another, without touching loading, keys or the
//! store. Hits never reach an executor.

use std::sync::Arc;

use crate::action::{Action, ActionOutput, execute};
use crate::phases::Factory;

/// Where an action's output goes: back to the coordinator, which knows
/// which node it belongs to.
pub struct Done(Box<dyn FnOnce(ActionOutput) + Send>);

impl Done {
    pub fn new(deliver: impl FnOnce(ActionOutput) + Send + 'static) -> Done {
        Done(Box::new(deliver))
    }

    pub fn send(self, output: ActionOutput) {
        (self.0)(output)
    }
}

pub trait Executor {
    /// How many actions may run at once.
    fn jobs(&self) -> usize;
    /// Start `action`; its output must be handed to `done` exactly once.
    fn submit(&self, action: Action, done: Done);
    /// The coordinator has handed over every action it can for now and
    /// waits for outputs: an executor that packs actions into batches
    /// sends what it holds.
    fn idle(&self) {}
}

/// Runs actions on one rayon pool, which phases also use for their inner
/// parallelism (`par_iter` inside a node runs on the same threads).
pub struct LocalExecutor {
    pool: rayon::ThreadPool,
    jobs: usize,
    factory: Arc<dyn Factory>,
}

/// The most actions run at once, whatever `-j` asks for: as many as
/// signals can be forwarded to.
pub const MAX_JOBS: usize = crate::interrupt::MAX_COMMANDS;

impl LocalExecutor {
    pub fn new(jobs: usize, factory: Arc<dyn Factory>) -> std::io::Result<Self> {
        // One thread per job, created up front: `-j 99999999` must not
        // try to start that many.
        let jobs = jobs.clamp(1, MAX_JOBS);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .thread_name(|i| format!("admf-worker-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(LocalExecutor {
            pool,
            jobs,
            factory,
        })
    }

    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }
}

impl Executor for LocalExecutor {
    fn jobs(&self) -> usize {
        self.jobs
    }

    fn submit(&self, action: Action, done: Done) {
        let factory = self.factory.clone();
        self.pool
            .spawn(move || done.send(execute(factory.as_ref(), &action)));
    }
}
