//! Dispatch: run a compiled [`Graph`] in its planned order.
//!
//! Kahn's algorithm with a min-heap on declaration order: among ready nodes
//! the one declared first is decided first, so `-j1` runs exactly
//! [`Graph::order`]. The coordinator (this module) owns all state and all
//! reporting. For each ready node it decides ([`crate::decide`]): a skip
//! or a hit is settled at once, without an executor slot; a miss becomes
//! an action, up to `jobs` of them run at once through the [`Executor`],
//! and each output is committed here ([`crate::commit`]). It keeps no
//! history: whether a node runs follows from its key and the store.
//!
//! Failure policy: fail fast by default (running nodes finish, nothing new
//! starts); with `keep_going`, everything not downstream of a failure runs.
//! A skipped node (false `when:`) skips everything downstream of it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use crate::action::Action;
use crate::action::ActionOutput;
use crate::commit::ChunkOutput;
use crate::decide::{Decision, Pending, Prepared, after_lock, condition_inputs, decide};
use crate::executor::{ChunkDone, Done, Executor, Queued};
use crate::graph::Graph;
use crate::run::{NodeResult, Outcome, RunContext};
use crate::store::{KeyLock, PathLocks};

/// What reaches the coordinator from other threads.
enum Message {
    /// An action finished.
    Executed(usize, ActionOutput),
    /// The lock of a contended key was taken (or could not be).
    Locked(Box<Prepared>, std::io::Result<(KeyLock, PathLocks)>),
    /// A chunk of trials finished: the first trial's node, and each
    /// trial's output in the order of the chunk.
    ExecutedChunk(usize, Vec<ChunkOutput>),
    /// A worker took an action handed over ahead of a free slot.
    Started(usize),
    /// An action handed over ahead of a free slot was never taken: the
    /// build stopped first.
    Withdrawn(usize),
}

#[derive(Debug, Clone, Default)]
pub struct DispatchOptions {
    pub keep_going: bool,
    /// Nodes to build (with their dependencies); all when empty.
    pub targets: Vec<usize>,
}

/// What the coordinator reports as the build goes.
pub trait Observer {
    fn planned(&mut self, _graph: &Graph, _selected: &[usize]) {}
    fn started(&mut self, _graph: &Graph, _index: usize) {}
    fn finished(&mut self, _graph: &Graph, _index: usize, _result: &NodeResult) {}
}

/// The state of each node at the end of a build.
#[derive(Debug, Clone)]
pub enum Final {
    Done(Arc<NodeResult>),
    /// Not run: an upstream node failed, or fail-fast stopped the build.
    NotRun(String),
    /// Not part of the requested targets.
    NotSelected,
}

pub struct BuildReport {
    pub nodes: Vec<Final>,
    /// Selected nodes in planned order.
    pub selected: Vec<usize>,
}

impl BuildReport {
    pub fn failed(&self) -> Vec<usize> {
        self.selected
            .iter()
            .copied()
            .filter(|&i| {
                matches!(&self.nodes[i], Final::Done(r) if matches!(r.outcome, Outcome::Failed(_)))
            })
            .collect()
    }
}

pub fn dispatch(
    ctx: Arc<RunContext>,
    executor: &dyn Executor,
    options: &DispatchOptions,
    observer: &mut dyn Observer,
) -> BuildReport {
    let graph = ctx.graph.clone();
    let n = graph.nodes.len();
    let mask = if options.targets.is_empty() {
        vec![true; n]
    } else {
        graph.closure(&options.targets)
    };
    let selected: Vec<usize> = graph.order.iter().copied().filter(|&i| mask[i]).collect();
    observer.planned(&graph, &selected);
    // The files of the nodes the trace lists, checked on another core in
    // the planned order while the coordinator settles node after node.
    let ahead = ctx
        .trace
        .is_some()
        .then(|| {
            let ctx = Arc::clone(&ctx);
            let order = selected.clone();
            std::thread::Builder::new()
                .name("admf-trace-ahead".into())
                .spawn(move || {
                    if let Some(trace) = &ctx.trace {
                        let id_of = |i: usize| ctx.graph.nodes[i].id.as_str();
                        let deps_of = |i: usize| ctx.graph.nodes[i].deps.as_slice();
                        ctx.checked_ahead
                            .run(&order, id_of, deps_of, trace, ctx.reads());
                    }
                })
                .ok()
        })
        .flatten();
    let mut board = Board {
        dependents: graph.dependents(),
        waiting: (0..n).map(|i| graph.nodes[i].deps.len()).collect(),
        state: (0..n)
            .map(|i| {
                if mask[i] {
                    Final::NotRun("fail-fast stopped the build".to_string())
                } else {
                    Final::NotSelected
                }
            })
            .collect(),
        ready: selected
            .iter()
            .copied()
            .filter(|&i| graph.nodes[i].deps.is_empty())
            .map(Reverse)
            .collect(),
        temp: TempOutputs::new(&graph, &mask, ctx.reads()),
        mask,
        stopping: false,
        keep_going: options.keep_going,
        graph: graph.clone(),
    };
    let (tx, rx) = channel();
    let handover = Handover {
        tx,
        stop: Arc::new(AtomicBool::new(false)),
        keep_going: options.keep_going,
    };
    let mut in_flight: HashMap<usize, InFlight> = HashMap::new();
    // Actions executing plus contended keys being waited for.
    let mut running = 0usize;
    let mut group = CommitGroup::new(n);
    if let Err(e) = ctx.store.set_group_commit(true) {
        board.stopping = true;
        eprintln!("admf: cannot write to the store: {e}");
    }
    // Slots taken by the nodes handed off: each takes its `threads:`
    // (at most all of them), as cargo counts jobserver tokens. The ready
    // node with the lowest index waits for its slots, so the order of
    // starts stays the planned one.
    let slots = |i: usize| graph.nodes[i].threads.clamp(1, executor.jobs());
    let mut taken = 0usize;
    // Chunks of trials executed and not committed yet: committed once the
    // freed slots have been given new work.
    let mut executed_chunks: Vec<Vec<(Pending, ChunkOutput)>> = Vec::new();
    loop {
        if let Some(remote) = &ctx.remote {
            // Remote hits among the ready nodes, fetched as a group.
            let ready = board.ready.iter().map(|&Reverse(i)| i);
            ctx.prefetch
                .run(&ctx, remote, ready, |d| match &board.state[d] {
                    Final::Done(r) => Some(r.clone()),
                    _ => None,
                });
        }
        // A forwarded SIGINT/SIGTERM/SIGHUP starts nothing more, even
        // with --keep-going.
        while !board.stopping && crate::interrupt::received().is_none() {
            let Some(&Reverse(next)) = board.ready.peek() else {
                break;
            };
            // Chunks of trials are decided one round ahead: while a worker
            // runs its chunk, the next one waits in the executor's queue,
            // so that it need not idle while the coordinator commits the
            // chunk it finished and decides the next.
            let batchable = crate::trial_batch::batchable(&ctx, next, executor.jobs());
            // So are commands, one each, where the executor has a queue:
            // a cold graph of thousands of small commands otherwise has
            // each worker wait, command after command, for the coordinator
            // to commit what it ran and decide what comes next. Not with
            // `-j1`, whose starts follow finishes one by one.
            let ahead = !batchable
                && executor.queues()
                && executor.jobs() > 1
                && graph.nodes[next].mode == "command"
                && slots(next) == 1;
            let limit = if (batchable || ahead) && executor.queues() {
                2 * executor.jobs()
            } else {
                executor.jobs()
            };
            if running >= limit || (taken > 0 && taken + slots(next) > limit) {
                break;
            }
            let Some(Reverse(i)) = board.ready.pop() else {
                break;
            };
            let node = &graph.nodes[i];
            let deps: Vec<Arc<NodeResult>> = node
                .deps
                .iter()
                .filter_map(|&d| match &board.state[d] {
                    Final::Done(r) => Some(r.clone()),
                    _ => None,
                })
                .collect();
            if deps.len() != node.deps.len() {
                let d = node
                    .deps
                    .iter()
                    .copied()
                    .find(|&d| !matches!(board.state[d], Final::Done(_)));
                let name = d.map(|d| graph.nodes[d].id.as_str()).unwrap_or("?");
                board.not_run(i, format!("upstream `{name}` did not complete"));
                continue;
            }
            // Settled here without a decision: downstream of a skip or failure.
            let blocked = node
                .deps
                .iter()
                .zip(&deps)
                .find_map(|(&d, r)| match &r.outcome {
                    Outcome::Skipped(_) => Some(Ok(d)),
                    Outcome::Failed(_) => Some(Err(d)),
                    _ => None,
                });
            match blocked {
                Some(Ok(d)) => {
                    let reason = format!("upstream `{}` was skipped", graph.nodes[d].id);
                    board.settle(&graph, observer, i, NodeResult::skipped(reason));
                    continue;
                }
                Some(Err(d)) => {
                    board.not_run(i, format!("upstream `{}` failed", graph.nodes[d].id));
                    continue;
                }
                None => {}
            }
            let named = condition_inputs(&graph, node, |j| match &board.state[j] {
                Final::Done(r) => Some(r.clone()),
                _ => None,
            });
            // What a node reads of its upstream must be visible to any
            // process that may run it.
            if node.deps.iter().any(|&d| group.contains(d)) {
                group.flush(&ctx, &mut board);
            }
            // `i` is `next`, popped.
            if batchable {
                // Its ready siblings are decided with it.
                let free = limit.saturating_sub(running).max(1);
                let room =
                    (free * crate::trial_batch::MAX_CHUNK).min(crate::trial_batch::MAX_BATCH);
                let mut batch = vec![i];
                while batch.len() < room
                    && let Some(&Reverse(next)) = board.ready.peek()
                    && crate::trial_batch::siblings(&graph, i, next)
                    && crate::trial_batch::batchable(&ctx, next, executor.jobs())
                {
                    board.ready.pop();
                    batch.push(next);
                }
                for &b in &batch {
                    observer.started(&graph, b);
                }
                let mut misses = Vec::new();
                for (b, decision) in crate::trial_batch::decide_batch(&ctx, &batch, &deps) {
                    if let Decision::Execute(pending, action) = decision {
                        misses.push((*pending, *action));
                        continue;
                    }
                    match start(
                        &ctx,
                        executor,
                        b,
                        decision,
                        deps.clone(),
                        &mut in_flight,
                        &handover,
                    ) {
                        Some(result) => board.settle(&graph, observer, b, result),
                        None => {
                            running += 1;
                            taken += slots(b);
                        }
                    }
                }
                let size = crate::trial_batch::chunk_size(misses.len(), free);
                while !misses.is_empty() {
                    let rest = misses.split_off(size.min(misses.len()));
                    let chunk = std::mem::replace(&mut misses, rest);
                    let first = submit_chunk(
                        executor,
                        ctx.factory.clone(),
                        ctx.store.clone(),
                        chunk,
                        &mut in_flight,
                        &handover.tx,
                    );
                    running += 1;
                    taken += slots(first);
                }
                continue;
            }
            // Every slot taken: a command to run waits in the executor's
            // queue, and is said to start when a worker takes it.
            let queued = ahead && running >= executor.jobs();
            if !queued {
                observer.started(&graph, i);
            }
            let decision = decide(&ctx, i, &deps, &named);
            let decision = match decision {
                Decision::Execute(pending, action) if queued => {
                    hand_over_queued(
                        &handover,
                        &ctx,
                        executor,
                        i,
                        *pending,
                        *action,
                        &mut in_flight,
                    );
                    running += 1;
                    taken += slots(i);
                    continue;
                }
                decision => {
                    if queued {
                        observer.started(&graph, i);
                    }
                    decision
                }
            };
            match start(&ctx, executor, i, decision, deps, &mut in_flight, &handover) {
                Some(result) => board.settle(&graph, observer, i, result),
                None => {
                    running += 1;
                    taken += slots(i);
                }
            }
        }
        // A queued action no worker has taken yet is not started now.
        if board.stopping || crate::interrupt::received().is_some() {
            handover.stop.store(true, Ordering::SeqCst);
        }
        if !executed_chunks.is_empty() {
            for chunk in executed_chunks.drain(..) {
                let results = crate::commit::commit_chunk(&ctx, chunk, &mut group.locks);
                for (i, result) in results {
                    group.settle(&ctx, &mut board, observer, i, result);
                }
            }
            // What they settled may have made more nodes ready.
            continue;
        }
        if running == 0 {
            break;
        }
        executor.idle();
        // The open commit group waits for more commits at most
        // `CommitGroup::LINGER`, and not at all while a key lock it holds
        // may be what a contended node waits for.
        let contended = in_flight
            .values()
            .any(|f| matches!(f, InFlight::Contended(_)));
        let message = match group.linger(contended) {
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => None,
        };
        let message = match message {
            Some(message) => message,
            None => {
                group.flush(&ctx, &mut board);
                let Ok(message) = rx.recv() else { break };
                message
            }
        };
        if let Message::Started(i) = message {
            observer.started(&graph, i);
            continue;
        }
        running -= 1;
        taken -= slots(match &message {
            Message::Executed(i, _) | Message::ExecutedChunk(i, _) => *i,
            Message::Locked(prepared, _) => prepared.index,
            Message::Withdrawn(i) | Message::Started(i) => *i,
        });
        match message {
            Message::Started(_) => unreachable!("taken above"),
            Message::Withdrawn(i) => {
                // Its locks and pending entry go; it stays "not run", as
                // every node the stopped build did not start.
                in_flight.remove(&i);
            }
            Message::ExecutedChunk(first, outputs) => {
                let Some(InFlight::Chunk(pending)) = in_flight.remove(&first) else {
                    unreachable!("node {first} finished a chunk it was not given");
                };
                executed_chunks.push(pending.into_iter().zip(outputs).collect());
            }
            Message::Executed(i, output) => {
                let Some(InFlight::Executing(pending)) = in_flight.remove(&i) else {
                    unreachable!("node {i} finished an action it was not given");
                };
                // Its command may have replaced a directory the next
                // decisions stat files in. (A chunk of trials writes no
                // files: its outputs are handed over in memory.)
                ctx.reads().forget_directories();
                let result = crate::commit::commit(&ctx, *pending, output, &mut group.locks);
                group.settle(&ctx, &mut board, observer, i, result);
            }
            Message::Locked(prepared, lock) => {
                let i = prepared.index;
                let Some(InFlight::Contended(deps)) = in_flight.remove(&i) else {
                    unreachable!("node {i} took a lock it was not waiting for");
                };
                let decision = match lock {
                    Ok((lock, paths)) => after_lock(&ctx, &deps, *prepared, lock, paths),
                    Err(e) => Decision::Done(NodeResult::failed(
                        format!("cannot lock the store: {e}"),
                        Some(prepared.key),
                        prepared.log,
                        prepared.started.elapsed().as_secs_f64(),
                    )),
                };
                match start(&ctx, executor, i, decision, deps, &mut in_flight, &handover) {
                    Some(result) => board.settle(&graph, observer, i, result),
                    None => {
                        running += 1;
                        taken += slots(i);
                    }
                }
            }
        }
    }
    ctx.checked_ahead.stop();
    if let Some(ahead) = ahead {
        let _ = ahead.join();
    }
    group.flush(&ctx, &mut board);
    if let Err(e) = ctx.store.set_group_commit(false) {
        eprintln!("admf: cannot write to the store: {e}");
    }
    if let Some(temp) = &mut board.temp {
        // A stopped build leaves readers unsettled: their temps go too.
        temp.readers.iter_mut().for_each(|r| *r = 0);
        for i in 0..n {
            temp.remove_if_read(&graph, i, &board.state);
        }
    }
    BuildReport {
        nodes: board.state,
        selected,
    }
}

/// Nodes committed into the store's open group transaction, and the key
/// locks held until it is flushed (see [`crate::store::Store::set_group_commit`]).
struct CommitGroup {
    nodes: Vec<usize>,
    member: Vec<bool>,
    locks: Vec<KeyLock>,
    /// When the first node of the open group was committed.
    opened: Option<Instant>,
}

impl CommitGroup {
    /// At most this many nodes wait in one group, and for at most
    /// `LINGER`: together they bound the work a kill loses and how long
    /// another build waits for the store's write lock or for a key.
    const MAX: usize = 256;
    const LINGER: Duration = Duration::from_millis(20);

    fn new(nodes: usize) -> Self {
        CommitGroup {
            nodes: Vec::new(),
            member: vec![false; nodes],
            locks: Vec::new(),
            opened: None,
        }
    }

    /// How long the coordinator may wait for a message before the group
    /// must be flushed; `None` to flush before waiting at all (nothing
    /// open, its time is up, or a contended node may wait on its locks).
    fn linger(&self, contended: bool) -> Option<Duration> {
        let opened = self.opened?;
        if contended {
            return None;
        }
        Self::LINGER
            .checked_sub(opened.elapsed())
            .filter(|left| !left.is_zero())
    }

    fn contains(&self, node: usize) -> bool {
        self.member[node]
    }

    fn add(&mut self, node: usize) {
        self.opened.get_or_insert_with(Instant::now);
        self.member[node] = true;
        self.nodes.push(node);
    }

    fn is_full(&self) -> bool {
        self.nodes.len() >= Self::MAX
    }

    /// Settles node `i` with the result of its commit; a node that ran
    /// joins the group, which is flushed once full.
    fn settle(
        &mut self,
        ctx: &RunContext,
        board: &mut Board,
        observer: &mut dyn Observer,
        i: usize,
        result: NodeResult,
    ) {
        let committed = matches!(result.outcome, Outcome::Ran);
        board.settle(&ctx.graph, observer, i, result);
        if committed {
            self.add(i);
            if self.is_full() {
                self.flush(ctx, board);
            }
        }
    }

    /// Commits the group and releases its locks. When the commit fails,
    /// its nodes become failures (their outputs are not stored) and the
    /// build stops as for any failure.
    fn flush(&mut self, ctx: &RunContext, board: &mut Board) {
        if let Err(e) = ctx.store.flush() {
            for &i in &self.nodes {
                let Final::Done(result) = &board.state[i] else {
                    continue;
                };
                let failed = NodeResult::failed(
                    format!("cannot store the outputs: {e}"),
                    result.key.clone(),
                    result.log.clone(),
                    result.seconds,
                );
                board.state[i] = Final::Done(Arc::new(failed));
            }
            if !board.keep_going {
                board.stopping = true;
            }
        } else if let Some(remote) = &ctx.remote {
            // Published once the rows are visible: the uploader reads the store.
            for &i in &self.nodes {
                if let Final::Done(result) = &board.state[i]
                    && let Some(key) = &result.key
                {
                    remote.publish(key);
                }
            }
        }
        for i in self.nodes.drain(..) {
            self.member[i] = false;
        }
        self.locks.clear();
        self.opened = None;
    }
}

/// A node the coordinator handed off and awaits a message for.
enum InFlight {
    /// Its action runs on the executor.
    Executing(Box<Pending>),
    /// Another build holds its key's lock; the results of its
    /// dependencies, for the decision once the lock is ours.
    Contended(Vec<Arc<NodeResult>>),
    /// It is the first trial of a chunk running as one job; the chunk's
    /// misses in order.
    Chunk(Vec<Pending>),
}

/// Submits a chunk of sibling misses as one job; returns its first node,
/// under which it is in flight. Where the job runs, each trial's outputs
/// are prepared for the commit ([`ChunkOutput::prepare`]).
fn submit_chunk(
    executor: &dyn Executor,
    factory: Arc<dyn crate::phases::Factory>,
    store: crate::store::Store,
    chunk: Vec<(Pending, crate::action::Action)>,
    in_flight: &mut HashMap<usize, InFlight>,
    tx: &Sender<Message>,
) -> usize {
    let first = chunk[0].0.index;
    let mut pending = Vec::with_capacity(chunk.len());
    let mut actions = Vec::with_capacity(chunk.len());
    let mut for_worker = Vec::with_capacity(chunk.len());
    for (mut p, action) in chunk {
        for_worker.push((
            action.out_dir.clone(),
            p.log.clone(),
            p.ingredients_json.take(),
        ));
        pending.push(p);
        actions.push(action);
    }
    in_flight.insert(first, InFlight::Chunk(pending));
    let tx = tx.clone();
    // Siblings: one mode.
    let mode = actions[0].mode.clone();
    executor.submit_chunk(
        actions,
        ChunkDone::new(move |mut outputs| {
            crate::action::finish_handoffs(
                factory.as_ref(),
                &mode,
                outputs.iter_mut().map(|(output, _)| output),
            );
            let mut prepared: Vec<ChunkOutput> = outputs
                .into_iter()
                .zip(for_worker)
                .map(|(output, (out_dir, log, json))| {
                    ChunkOutput::prepare(output, &out_dir, &log, json)
                })
                .collect();
            crate::commit::pack_chunk(&store, &mut prepared);
            // The receiver only goes away when the build is over.
            let _ = tx.send(Message::ExecutedChunk(first, prepared));
        }),
    );
    first
}

/// How the coordinator hands actions over and hears back.
struct Handover {
    tx: Sender<Message>,
    /// Set once the build stops: a queued action not taken by then is
    /// withdrawn ([`crate::executor::Queued`]).
    stop: Arc<AtomicBool>,
    keep_going: bool,
}

impl Handover {
    /// Where the output of node `index`'s `action` goes. A failure ends a
    /// fail-fast build: the worker that saw it says so before it takes the
    /// next queued action, which is then not started (the coordinator
    /// would hear of the failure only after that start).
    fn done(&self, ctx: &RunContext, index: usize, action: &Action) -> Done {
        let tx = self.tx.clone();
        let stop = (!self.keep_going).then(|| self.stop.clone());
        let (factory, mode) = (ctx.factory.clone(), action.mode.clone());
        Done::new(move |mut output| {
            if let Some(stop) = stop
                && output.result.is_err()
            {
                stop.store(true, Ordering::SeqCst);
            }
            crate::action::finish_handoffs(factory.as_ref(), &mode, std::iter::once(&mut output));
            // The receiver only goes away when the build is over.
            let _ = tx.send(Message::Executed(index, output));
        })
    }
}

/// Hands node `index`'s action over while every slot is taken: it waits
/// in the executor's queue, and a [`Message::Started`] or, when the build
/// stops first, a [`Message::Withdrawn`] comes before anything else.
fn hand_over_queued(
    handover: &Handover,
    ctx: &RunContext,
    executor: &dyn Executor,
    index: usize,
    pending: Pending,
    action: Action,
    in_flight: &mut HashMap<usize, InFlight>,
) {
    in_flight.insert(index, InFlight::Executing(Box::new(pending)));
    let done = handover.done(ctx, index, &action);
    let (started, withdrawn) = (handover.tx.clone(), handover.tx.clone());
    let queued = Queued {
        stop: handover.stop.clone(),
        started: Box::new(move || {
            let _ = started.send(Message::Started(index));
        }),
        withdrawn: Box::new(move || {
            let _ = withdrawn.send(Message::Withdrawn(index));
        }),
    };
    executor.submit_queued(action, queued, done);
}

/// Act on a decision: `Some` when the node is settled now, `None` when it
/// was handed off (an action submitted, or a thread waiting for a lock
/// another build holds) and a [`Message`] will follow.
fn start(
    ctx: &RunContext,
    executor: &dyn Executor,
    index: usize,
    decision: Decision,
    deps: Vec<Arc<NodeResult>>,
    in_flight: &mut HashMap<usize, InFlight>,
    handover: &Handover,
) -> Option<NodeResult> {
    match decision {
        Decision::Done(result) => Some(result),
        Decision::Execute(pending, action) => {
            in_flight.insert(index, InFlight::Executing(pending));
            let done = handover.done(ctx, index, &action);
            executor.submit(*action, done);
            None
        }
        Decision::Contended(prepared) => {
            in_flight.insert(index, InFlight::Contended(deps));
            let store = ctx.store.clone();
            let tx = handover.tx.clone();
            std::thread::spawn(move || {
                // The key first, then the paths, as every build takes them.
                let lock = store.lock_key(&prepared.key).and_then(|lock| {
                    let paths = store.lock_paths(&prepared.paths, true)?;
                    Ok((lock, paths.expect("blocking lock")))
                });
                let _ = tx.send(Message::Locked(Box::new(prepared), lock));
            });
            None
        }
    }
}

/// The coordinator's view of the build: each node's state and what is
/// ready to be decided.
struct Board {
    dependents: Vec<Vec<usize>>,
    waiting: Vec<usize>,
    state: Vec<Final>,
    ready: BinaryHeap<Reverse<usize>>,
    mask: Vec<bool>,
    stopping: bool,
    keep_going: bool,
    /// `None` when no node has temp outputs.
    temp: Option<TempOutputs>,
    graph: Arc<Graph>,
}

impl Board {
    fn settle(&mut self, graph: &Graph, observer: &mut dyn Observer, i: usize, result: NodeResult) {
        observer.finished(graph, i, &result);
        if matches!(result.outcome, Outcome::Failed(_)) && !self.keep_going {
            self.stopping = true;
        }
        self.state[i] = Final::Done(Arc::new(result));
        self.release(i);
    }

    fn not_run(&mut self, i: usize, reason: String) {
        self.state[i] = Final::NotRun(reason);
        self.release(i);
    }

    fn release(&mut self, i: usize) {
        for &d in &self.dependents[i] {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 && self.mask[d] {
                self.ready.push(Reverse(d));
            }
        }
        if let Some(temp) = &mut self.temp {
            temp.settled(&self.graph, i, &self.state);
        }
    }
}

/// The `temp:` outputs of the build: a node's are removed from the
/// workspace once every selected node reading it (depending on it) has
/// settled, whatever its outcome; a node no selected node reads loses
/// them as soon as it settles. Only a node that ran or came from the
/// store has its temps removed: a failed node's are left to look at.
struct TempOutputs {
    /// Per node: selected dependents not settled yet.
    readers: Vec<usize>,
    removed: Vec<bool>,
    /// The build's reads: a removed temp output voids its record.
    reads: crate::reads::Reads,
}

impl TempOutputs {
    fn new(graph: &Graph, mask: &[bool], reads: &crate::reads::Reads) -> Option<Self> {
        if !graph.nodes.iter().any(|n| n.has_temp()) {
            return None;
        }
        let mut readers = vec![0; graph.nodes.len()];
        for (i, node) in graph.nodes.iter().enumerate() {
            if mask[i] {
                for &d in &node.deps {
                    readers[d] += 1;
                }
            }
        }
        Some(TempOutputs {
            readers,
            removed: vec![false; graph.nodes.len()],
            reads: reads.clone(),
        })
    }

    /// Node `i` settled: it no longer reads its upstream's temps.
    fn settled(&mut self, graph: &Graph, i: usize, state: &[Final]) {
        self.remove_if_read(graph, i, state);
        for &d in &graph.nodes[i].deps {
            self.readers[d] = self.readers[d].saturating_sub(1);
            self.remove_if_read(graph, d, state);
        }
    }

    fn remove_if_read(&mut self, graph: &Graph, i: usize, state: &[Final]) {
        let node = &graph.nodes[i];
        let done = matches!(&state[i], Final::Done(r) if matches!(r.outcome, Outcome::Ran | Outcome::Cached));
        if self.readers[i] > 0 || self.removed[i] || !done || !node.has_temp() {
            return;
        }
        self.removed[i] = true;
        for (rel, path, keep) in node.outputs_kept() {
            if keep != crate::workspace::Keep::Temp {
                continue;
            }
            match crate::workspace::remove_output(rel, path) {
                Ok(true) => self.reads.note_written(),
                Ok(false) => {}
                Err(e) => eprintln!(
                    "admf: cannot remove temp output {} of `{}`: {e}",
                    path.display(),
                    node.id
                ),
            }
        }
    }
}
