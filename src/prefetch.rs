//! Remote hits fetched ahead of their decisions, as a group.
//!
//! The coordinator decides ready nodes one after another, and a remote
//! hit cost it a few calls to the server each. When several nodes are
//! ready at once (a sweep's trials once their data is loaded), their keys
//! are computed here first and their entries copied from the remote into
//! the local store in one go: the group's pack in one read when the
//! remote holds one ([`crate::remote::pack`]), else
//! [`RemoteCache::fetch_many`] (concurrent reads on S3, batched reads on
//! REAPI). The decisions then find local
//! hits. Nothing is decided here: a prefetched entry is checked as any
//! remote hit is, and a node whose entry was not fetched is looked up
//! remotely again when it is decided, so what is decided does not depend
//! on the prefetch. The key of each node and the entry the local store
//! held are handed to its decision ([`Prefetch::take_keyed`]), which
//! then neither hashes the inputs nor looks up a local hit again.
//!
//! This belongs to the decisions' side (Rebuild): the remote tier is only
//! the cache the entries come from.
//!
//! [`RemoteCache::fetch_many`]: crate::remote::RemoteCache::fetch_many

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::decide::{Keyed, ingredients};
use crate::remote::RemoteTier;
use crate::run::{NodeResult, Outcome, RunContext};
use crate::store::Lookup;

/// What the prefetch of one build has done: the nodes it tried, and the
/// keys it computed until their nodes are decided.
#[derive(Default)]
pub struct Prefetch {
    tried: Mutex<HashSet<usize>>,
    keyed: Mutex<HashMap<usize, Keyed>>,
}

impl Prefetch {
    /// The key of node `index` as [`Prefetch::run`] computed it, once.
    pub fn take_keyed(&self, index: usize) -> Option<Keyed> {
        self.keyed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&index)
    }

    /// Fetches the entries of the ready nodes `ready` that the local store
    /// lacks; `result_of` gives the result of a finished node. Each node
    /// is tried once per build.
    pub fn run(
        &self,
        ctx: &RunContext,
        remote: &RemoteTier,
        ready: impl Iterator<Item = usize>,
        result_of: impl Fn(usize) -> Option<Arc<NodeResult>>,
    ) {
        if remote.is_down() {
            return;
        }
        // Every ready node's key (the group, which names its pack) and
        // those the local store lacks (what is fetched).
        let mut group = Vec::new();
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        {
            let mut tried = self.tried.lock().unwrap_or_else(|e| e.into_inner());
            for index in ready {
                if tried.contains(&index) {
                    continue;
                }
                let node = &ctx.graph.nodes[index];
                let Some(deps) = node
                    .deps
                    .iter()
                    .map(|&d| result_of(d))
                    .collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                // A node that is forced, that a condition may skip, or that
                // is downstream of a skip or failure is left to its decision.
                let settled = deps
                    .iter()
                    .any(|r| matches!(r.outcome, Outcome::Skipped(_) | Outcome::Failed(_)));
                if ctx.force[index] || node.when.is_some() || settled || !tried.insert(index) {
                    continue;
                }
                let Ok((ingredients, input_stats)) = ingredients(ctx, node, &deps) else {
                    continue;
                };
                let key = ingredients.key();
                let lookup = ctx.store.lookup(&key, &ctx.stats);
                if seen.insert(key.clone()) {
                    group.push(key.clone());
                    if matches!(lookup, Lookup::Missing) {
                        keys.push(key.clone());
                    }
                }
                let keyed = Keyed {
                    ingredients,
                    input_stats,
                    key,
                    local: lookup.hit(),
                };
                self.keyed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(index, keyed);
            }
        }
        // A lone node is fetched by its decision.
        if keys.is_empty() || group.len() < 2 {
            return;
        }
        remote.fetch_group(&group, &keys, &ctx.store);
    }
}
