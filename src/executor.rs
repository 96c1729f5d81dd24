//! The seam between scheduling and execution. The coordinator hands each
//! cache miss, as an [`Action`], to an [`Executor`] and receives its
//! [`ActionOutput`] on a channel. The local rayon pool is one
//! implementation; a cluster executor (Slurm jobs running
//! `admf exec-action`) is another, without touching loading, keys or the
//! store. Hits never reach an executor.

use std::sync::atomic::{AtomicBool, Ordering};
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

/// What an action handed over ahead of a free slot does before it runs
/// ([`Executor::submit_queued`]).
pub struct Queued {
    /// Set when the build stops: an action no worker has taken by then is
    /// never run.
    pub stop: Arc<AtomicBool>,
    /// Called when a worker takes the action, before it runs.
    pub started: Box<dyn FnOnce() + Send>,
    /// Called instead of running it and of `done`, when the build
    /// stopped (or was interrupted) before a worker took it.
    pub withdrawn: Box<dyn FnOnce() + Send>,
}

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
    /// coordinator may then hand over a chunk of trials, or a command
    /// ([`Executor::submit_queued`]), ahead of time.
    fn queues(&self) -> bool {
        false
    }
    /// Start `action`; its output must be handed to `done` exactly once.
    fn submit(&self, action: Action, done: Done);
    /// Hand `action` over while every slot is taken, for a worker to take
    /// as soon as one is free ([`Executor::queues`]): the coordinator
    /// commits and decides meanwhile instead of leaving the worker idle
    /// while it does. By default (an executor without a queue) it starts
    /// at once, as [`Executor::submit`] does.
    fn submit_queued(&self, action: Action, queued: Queued, done: Done) {
        (queued.started)();
        self.submit(action, done);
    }
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

    /// The pool's queue is first in, first out: actions start in the
    /// order they were handed over.
    fn submit_queued(&self, action: Action, queued: Queued, done: Done) {
        let factory = self.factory.clone();
        self.pool.spawn(move || {
            let Queued {
                stop,
                started,
                withdrawn,
            } = queued;
            if stop.load(Ordering::SeqCst) || crate::interrupt::received().is_some() {
                withdrawn();
                return;
            }
            started();
            done.send(execute(factory.as_ref(), &action));
        });
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

    /// Mode `m`: records its node in `seen`; node `gate` first waits
    /// until `open` is sent to.
    struct Gated {
        seen: Arc<Mutex<Vec<String>>>,
        open: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl crate::phases::Phase for Gated {
        fn version(&self) -> &'static str {
            "1"
        }
        fn validate(&self, _: &serde_json::Value) -> Result<(), crate::phases::ConfigIssue> {
            Ok(())
        }
        fn inputs(
            &self,
            _: &serde_json::Value,
            _: &std::path::Path,
        ) -> Result<Vec<std::path::PathBuf>, crate::phases::ConfigIssue> {
            Ok(Vec::new())
        }
        fn execute(&self, ctx: &mut crate::phases::PhaseContext<'_>) -> Result<(), PhaseError> {
            if ctx.node == "gate" {
                self.open.lock().unwrap().recv().unwrap();
            }
            self.seen.lock().unwrap().push(format!("ran {}", ctx.node));
            Ok(())
        }
    }

    impl Factory for Gated {
        fn get(&self, mode: &str) -> Option<&dyn crate::phases::Phase> {
            (mode == "m").then_some(self as &dyn crate::phases::Phase)
        }
        fn modes(&self) -> Vec<&str> {
            vec!["m"]
        }
    }

    /// One worker, held by `gate`, and `a`, `b`, `c` queued behind it:
    /// with `stop` set before `gate` is let go, what `seen` records.
    fn queued_behind_a_gate(stop_first: bool) -> Vec<String> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (open, gate) = std::sync::mpsc::channel();
        let factory = Arc::new(Gated {
            seen: seen.clone(),
            open: Mutex::new(gate),
        });
        let executor = LocalExecutor::new(1, factory).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        for node in ["gate", "a", "b", "c"] {
            let note = |what: &'static str| {
                let (seen, node) = (seen.clone(), node.to_string());
                move || seen.lock().unwrap().push(format!("{what} {node}"))
            };
            // One message per action, whether it ran or was withdrawn.
            let (ran, withdrawn) = (tx.clone(), tx.clone());
            let note_withdrawn = note("withdrawn");
            let queued = Queued {
                stop: stop.clone(),
                started: Box::new(note("started")),
                withdrawn: Box::new(move || {
                    note_withdrawn();
                    withdrawn.send(()).unwrap();
                }),
            };
            let done = Done::new(move |output| {
                assert!(output.result.is_ok());
                ran.send(()).unwrap();
            });
            executor.submit_queued(action(node), queued, done);
        }
        // The worker took `gate` and waits in it; the rest is queued.
        while !seen.lock().unwrap().contains(&"started gate".to_string()) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if stop_first {
            stop.store(true, Ordering::SeqCst);
        }
        open.send(()).unwrap();
        for _ in 0..4 {
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        std::mem::take(&mut *seen.lock().unwrap())
    }

    #[test]
    fn queued_actions_start_in_the_order_given_or_are_withdrawn_once_stopped() {
        let all = |nodes: &[&str]| -> Vec<String> {
            nodes
                .iter()
                .flat_map(|n| [format!("started {n}"), format!("ran {n}")])
                .collect()
        };
        assert_eq!(queued_behind_a_gate(false), all(&["gate", "a", "b", "c"]));
        let mut want = all(&["gate"]);
        want.extend(["withdrawn a", "withdrawn b", "withdrawn c"].map(String::from));
        assert_eq!(queued_behind_a_gate(true), want);
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
