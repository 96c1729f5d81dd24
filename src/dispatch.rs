//! Dispatch: run a compiled [`Graph`] in its planned order.
//!
//! Kahn's algorithm with a min-heap on declaration order: among ready nodes
//! the one declared first starts first, so `-j1` runs exactly
//! [`Graph::order`]. Up to `jobs` nodes run at once through the
//! [`Executor`]. The coordinator (this module) owns all state and all
//! reporting; workers only return [`NodeResult`]s. It keeps no history:
//! whether a node runs follows from its key and the store.
//!
//! Failure policy: fail fast by default (running nodes finish, nothing new
//! starts); with `keep_going`, everything not downstream of a failure runs.
//! A skipped node (false `when:`) skips everything downstream of it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::mpsc::channel;

use crate::executor::{Executor, NodeJob};
use crate::graph::Graph;
use crate::run::{NodeResult, Outcome, RunContext, condition_inputs};

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
    let dependents = graph.dependents();
    let mut waiting: Vec<usize> = (0..n).map(|i| graph.nodes[i].deps.len()).collect();
    let mut state: Vec<Final> = (0..n)
        .map(|i| {
            if mask[i] {
                Final::NotRun("fail-fast stopped the build".to_string())
            } else {
                Final::NotSelected
            }
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = selected
        .iter()
        .copied()
        .filter(|&i| waiting[i] == 0)
        .map(Reverse)
        .collect();
    let (tx, rx) = channel();
    let mut running = 0usize;
    let mut stopping = false;
    loop {
        while running < executor.jobs() && !stopping {
            let Some(Reverse(i)) = ready.pop() else { break };
            let node = &graph.nodes[i];
            let deps: Vec<Arc<NodeResult>> = node
                .deps
                .iter()
                .filter_map(|&d| match &state[d] {
                    Final::Done(r) => Some(r.clone()),
                    _ => None,
                })
                .collect();
            // Settled here without a job: downstream of a skip or failure.
            let blocked = node
                .deps
                .iter()
                .zip(&deps)
                .find_map(|(&d, r)| match &r.outcome {
                    Outcome::Skipped(_) => Some(Ok(d)),
                    Outcome::Failed(_) => Some(Err(d)),
                    _ => None,
                });
            if deps.len() != node.deps.len() {
                let d = node
                    .deps
                    .iter()
                    .copied()
                    .find(|&d| !matches!(state[d], Final::Done(_)));
                let name = d.map(|d| graph.nodes[d].id.as_str()).unwrap_or("?");
                state[i] = Final::NotRun(format!("upstream `{name}` did not complete"));
                release(i, &dependents, &mut waiting, &mask, &mut ready);
                continue;
            }
            match blocked {
                Some(Ok(d)) => {
                    let result = NodeResult::skipped(format!(
                        "upstream `{}` was skipped",
                        graph.nodes[d].id
                    ));
                    observer.finished(&graph, i, &result);
                    state[i] = Final::Done(Arc::new(result));
                    release(i, &dependents, &mut waiting, &mask, &mut ready);
                    continue;
                }
                Some(Err(d)) => {
                    state[i] = Final::NotRun(format!("upstream `{}` failed", graph.nodes[d].id));
                    release(i, &dependents, &mut waiting, &mask, &mut ready);
                    continue;
                }
                None => {}
            }
            let condition_inputs = condition_inputs(&graph, node, |j| match &state[j] {
                Final::Done(r) => Some(r.clone()),
                _ => None,
            });
            observer.started(&graph, i);
            executor.submit(
                NodeJob {
                    index: i,
                    deps,
                    condition_inputs,
                    ctx: ctx.clone(),
                },
                tx.clone(),
            );
            running += 1;
        }
        if running == 0 {
            break;
        }
        let Ok((i, result)) = rx.recv() else { break };
        running -= 1;
        observer.finished(&graph, i, &result);
        let failed = matches!(result.outcome, Outcome::Failed(_));
        state[i] = Final::Done(Arc::new(result));
        if failed && !options.keep_going {
            stopping = true;
        }
        release(i, &dependents, &mut waiting, &mask, &mut ready);
    }
    BuildReport {
        nodes: state,
        selected,
    }
}

fn release(
    i: usize,
    dependents: &[Vec<usize>],
    waiting: &mut [usize],
    mask: &[bool],
    ready: &mut BinaryHeap<Reverse<usize>>,
) {
    for &d in &dependents[i] {
        waiting[d] -= 1;
        if waiting[d] == 0 && mask[d] {
            ready.push(Reverse(d));
        }
    }
}
