//! The seam between scheduling and execution. The coordinator hands each
//! cache miss, as an [`Action`], to an [`Executor`] and receives its
//! [`ActionOutput`] on a channel. The local rayon pool is one
//! implementation; a cluster executor (Slurm jobs running
//! `admf exec-action`) is another, without touching loading, keys or the
//! store. Hits never reach an executor.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// Where the outputs of a chunk of actions go, all at once and in the
/// order the actions were given, each with the wall time it took (from
/// its start, or its submission where the executor cannot tell).
pub struct ChunkDone(Box<dyn FnOnce(Vec<Timed>) + Send>);

/// An action's output and the wall time it took.
pub type Timed = (ActionOutput, Duration);

impl ChunkDone {
    pub fn new(deliver: impl FnOnce(Vec<Timed>) + Send + 'static) -> ChunkDone {
        ChunkDone(Box::new(deliver))
    }

    pub fn send(self, outputs: Vec<Timed>) {
        (self.0)(outputs)
    }
}

pub trait Executor {
    /// How many actions may run at once.
    fn jobs(&self) -> usize;
    /// Whether actions submitted beyond [`Executor::jobs`] wait in the
    /// executor's own queue, never more than `jobs` running at once: the
    /// coordinator may then hand over a chunk of trials ahead of time.
    fn queues(&self) -> bool {
        false
    }
    /// Start `action`; its output must be handed to `done` exactly once.
    fn submit(&self, action: Action, done: Done);
    /// Start a chunk of sibling actions (trials of one grid) as one job
    /// taking one slot: they run one after the other and their outputs
    /// reach `done` together, so that the coordinator hears once per
    /// chunk instead of once per trial. By default each action is
    /// submitted on its own and `done` is called once the last output
    /// is in.
    fn submit_chunk(&self, actions: Vec<Action>, done: ChunkDone) {
        if actions.is_empty() {
            done.send(Vec::new());
            return;
        }
        let gathered = Arc::new(Mutex::new(Gathered {
            outputs: vec![None; actions.len()],
            missing: actions.len(),
            done: Some(done),
        }));
        let submitted = Instant::now();
        for (slot, action) in actions.into_iter().enumerate() {
            let gathered = gathered.clone();
            self.submit(
                action,
                Done::new(move |output| {
                    let mut g = gathered.lock().unwrap_or_else(|e| e.into_inner());
                    g.outputs[slot] = Some((output, submitted.elapsed()));
                    g.missing -= 1;
                    if g.missing == 0
                        && let Some(done) = g.done.take()
                    {
                        let outputs = g.outputs.drain(..).flatten().collect();
                        drop(g);
                        done.send(outputs);
                    }
                }),
            );
        }
    }
    /// The coordinator has handed over every action it can for now and
    /// waits for outputs: an executor that packs actions into batches
    /// sends what it holds.
    fn idle(&self) {}
}

/// The outputs of a chunk submitted one action at a time, as they come.
struct Gathered {
    outputs: Vec<Option<Timed>>,
    missing: usize,
    done: Option<ChunkDone>,
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

    /// The pool has `jobs` threads: a job spawned while all are busy
    /// waits for one.
    fn queues(&self) -> bool {
        true
    }

    fn submit(&self, action: Action, done: Done) {
        let factory = self.factory.clone();
        self.pool
            .spawn(move || done.send(execute(factory.as_ref(), &action)));
    }

    fn submit_chunk(&self, actions: Vec<Action>, done: ChunkDone) {
        let factory = self.factory.clone();
        self.pool.spawn(move || {
            let outputs = actions
                .iter()
                .map(|action| {
                    let started = Instant::now();
                    let output = execute(factory.as_ref(), action);
                    (output, started.elapsed())
                })
                .collect();
            done.send(outputs);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phases::{MemoryOutputs, PhaseError};

    /// Holds the actions it is given and finishes them last first.
    struct Backwards(Mutex<Vec<(Action, Done)>>);

    impl Executor for Backwards {
        fn jobs(&self) -> usize {
            2
        }

        fn submit(&self, action: Action, done: Done) {
            self.0.lock().unwrap().push((action, done));
        }
    }

    fn action(node: &str) -> Action {
        serde_json::from_value(serde_json::json!({
            "node": node, "key": "ab".repeat(32), "mode": "m", "version": "1",
            "role": {"role": "single"}, "config": null, "base_dir": "/", "inputs": [],
            "upstream": [], "out_dir": "/nowhere", "retries": 0
        }))
        .unwrap()
    }

    #[test]
    fn a_chunk_submitted_one_by_one_reports_once_in_the_order_given() {
        let executor = Backwards(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let actions = ["a", "b", "c"].map(action).to_vec();
        executor.submit_chunk(
            actions,
            ChunkDone::new(move |outputs| tx.send(outputs).unwrap()),
        );
        let mut held = std::mem::take(&mut *executor.0.lock().unwrap());
        assert_eq!(held.len(), 3);
        while let Some((action, done)) = held.pop() {
            assert!(rx.try_recv().is_err(), "reported before the last output");
            done.send(ActionOutput {
                result: Err(PhaseError::new(action.node.clone())),
                memory: MemoryOutputs::default(),
                log: action.node.into_bytes(),
                duration_ms: 0,
                handoff: None,
            });
        }
        let outputs = rx.recv().unwrap();
        let logs: Vec<&[u8]> = outputs.iter().map(|(o, _)| o.log.as_slice()).collect();
        assert_eq!(logs, [b"a", b"b", b"c"]);
        assert!(rx.try_recv().is_err(), "reported once");
    }
}
