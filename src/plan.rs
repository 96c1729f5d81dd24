//! Plan: what a build would do, without running anything. Used by
//! `status`, `explain`, `graph --status` and `build --dry-run`.
//!
//! A node whose upstream nodes are all fresh gets its key computed and
//! looked up; anything below a stale node is stale "because of" it, since
//! its key depends on outputs that do not exist yet (early cutoff may still
//! spare it at build time). Every verdict carries its reason.

use std::sync::Arc;

use serde_json::Value;

use crate::decide::{condition_inputs, ingredients, skip_reason};
use crate::key::Ingredients;
use crate::run::{NodeResult, Outcome, RunContext};
use crate::store::Lookup;

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Fresh,
    Stale(Reason),
    Missing,
    Skipped(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// An upstream node will rerun: follow it for the root cause.
    Upstream(usize),
    /// Differences against the node's last successful build.
    Changed(Vec<String>),
    /// Something prevents computing the key (unreadable input, bad condition).
    Error(String),
}

pub struct Prediction {
    pub verdict: Verdict,
    pub key: Option<String>,
    /// For fresh nodes: their stored result, which downstream keys use.
    result: Option<Arc<NodeResult>>,
}

pub fn predict(ctx: &RunContext) -> Vec<Prediction> {
    let graph = &ctx.graph;
    let mut out: Vec<Option<Prediction>> = (0..graph.nodes.len()).map(|_| None).collect();
    for &i in &graph.order {
        let node = &graph.nodes[i];
        let mut deps = Vec::new();
        let mut verdict = None;
        for &d in &node.deps {
            let p = out[d].as_ref().expect("planned order visits deps first");
            match &p.verdict {
                Verdict::Fresh => deps.push(p.result.clone().expect("fresh nodes have results")),
                Verdict::Skipped(_) => {
                    verdict.get_or_insert(Verdict::Skipped(format!(
                        "upstream `{}` is skipped",
                        graph.nodes[d].id
                    )));
                }
                _ => {
                    verdict.get_or_insert(Verdict::Stale(Reason::Upstream(d)));
                }
            }
        }
        let prediction = match verdict {
            Some(v) => Prediction {
                verdict: v,
                key: None,
                result: None,
            },
            None => predict_node(ctx, i, &deps, &out),
        };
        out[i] = Some(prediction);
    }
    out.into_iter()
        .map(|p| p.expect("every node is planned"))
        .collect()
}

fn predict_node(
    ctx: &RunContext,
    i: usize,
    deps: &[Arc<NodeResult>],
    done: &[Option<Prediction>],
) -> Prediction {
    let graph = &ctx.graph;
    let node = &graph.nodes[i];
    let named = condition_inputs(graph, node, |j| done[j].as_ref()?.result.clone());
    let error = |e: String| Prediction {
        verdict: Verdict::Stale(Reason::Error(e)),
        key: None,
        result: None,
    };
    match skip_reason(node, &named) {
        Ok(None) => {}
        Ok(Some(reason)) => {
            return Prediction {
                verdict: Verdict::Skipped(reason),
                key: None,
                result: None,
            };
        }
        Err(e) => return error(e),
    }
    let ingredients = match ingredients(ctx, node, deps) {
        Ok((i, _)) => i,
        Err(e) => return error(e),
    };
    let key = ingredients.key();
    if let Lookup::Hit(entry) = ctx.store.lookup(&key, &ctx.stats) {
        if let Some(what) = crate::decide::uncached_difference(ctx, node, &entry) {
            return Prediction {
                verdict: Verdict::Stale(Reason::Changed(vec![format!("{what} (`cache: false`)")])),
                key: Some(key),
                result: None,
            };
        }
        let result = NodeResult {
            outcome: Outcome::Cached,
            key: Some(key.clone()),
            output_digest: Some(entry.output_digest().to_string()),
            evidence: None,
            entry: Some(entry),
            log: Vec::new(),
            seconds: 0.0,
            handoff: Default::default(),
            ledger_metrics: None,
        };
        return Prediction {
            verdict: Verdict::Fresh,
            key: Some(key),
            result: Some(Arc::new(result)),
        };
    }
    let previous = ctx
        .store
        .read_ref(&ctx.workflow_id, &node.id)
        .and_then(|k| read_manifest_ingredients(ctx, &k));
    let verdict = match previous {
        Some(old) => {
            let changes = diff(&old, &ingredients);
            if changes.is_empty() {
                Verdict::Stale(Reason::Changed(vec![
                    "its stored entry is gone or corrupt".to_string(),
                ]))
            } else {
                Verdict::Stale(Reason::Changed(changes))
            }
        }
        None => Verdict::Missing,
    };
    Prediction {
        verdict,
        key: Some(key),
        result: None,
    }
}

fn read_manifest_ingredients(ctx: &RunContext, key: &str) -> Option<Value> {
    ctx.store.ingredients(key)
}

/// Human-readable differences between the ingredients of the last build
/// and the current ones: a file path, a config key with old → new, an
/// upstream node whose output changed.
pub fn diff(old: &Value, new: &Ingredients) -> Vec<String> {
    let new = new.to_value();
    let mut out = Vec::new();
    for field in ["schema", "mode", "version", "role", "platform"] {
        if old.get(field) != new.get(field) {
            out.push(format!(
                "{field} changed: {} → {}",
                show(old.get(field)),
                show(new.get(field))
            ));
        }
    }
    diff_values(
        "config",
        old.get("config").unwrap_or(&Value::Null),
        &new["config"],
        &mut out,
    );
    // Values are digests (a passed variable may hold a secret): say which
    // variable changed, not to what.
    let (no_env, mut names) = (serde_json::Map::new(), Vec::new());
    let old_env = old.get("env").and_then(Value::as_object).unwrap_or(&no_env);
    let new_env = new.get("env").and_then(Value::as_object).unwrap_or(&no_env);
    names.extend(old_env.keys().chain(new_env.keys()));
    names.sort();
    names.dedup();
    for name in names {
        if old_env.get(name) != new_env.get(name) {
            out.push(format!("environment variable {name} changed"));
        }
    }
    let files = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|f| (show(f.get("path")), show(f.get("blake3"))))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old_files, new_files) = (files(&old["inputs"]), files(&new["inputs"]));
    for (path, hash) in &new_files {
        match old_files.iter().find(|(p, _)| p == path) {
            None => out.push(format!("input {path} was added")),
            Some((_, h)) if h != hash => out.push(format!(
                "input {path} changed (blake3 {} → {})",
                &h[..h.len().min(12)],
                &hash[..hash.len().min(12)]
            )),
            _ => {}
        }
    }
    for (path, _) in &old_files {
        if !new_files.iter().any(|(p, _)| p == path) {
            out.push(format!("input {path} was removed"));
        }
    }
    let ups = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|u| (show(u.get("node")), show(u.get("digest"))))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old_up, new_up) = (ups(&old["upstream"]), ups(&new["upstream"]));
    for (node, digest) in &new_up {
        match old_up.iter().find(|(n, _)| n == node) {
            None => out.push(format!("now depends on `{node}`")),
            Some((_, d)) if d != digest => out.push(format!("output of upstream `{node}` changed")),
            _ => {}
        }
    }
    for (node, _) in &old_up {
        if !new_up.iter().any(|(n, _)| n == node) {
            out.push(format!("no longer depends on `{node}`"));
        }
    }
    out
}

fn show(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(none)".to_string(),
    }
}

fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let child = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(&child, x, y, out),
                    (None, Some(y)) => out.push(format!("{child} added: {y}")),
                    (Some(x), None) => out.push(format!("{child} removed (was {x})")),
                    (None, None) => {}
                }
            }
        }
        _ if old != new => out.push(format!("{path}: {old} → {new}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{FileIngredient, KEY_SCHEMA, UpstreamIngredient};
    use serde_json::json;

    fn ingredients(lookback: i64, hash: &str, digest: &str) -> Ingredients {
        Ingredients {
            schema: KEY_SCHEMA,
            mode: "backtest".into(),
            version: "1".into(),
            role: "single".into(),
            config: json!({"strategy": {"parameters": {"lookback": lookback}}}),
            inputs: vec![FileIngredient {
                path: "data.csv".into(),
                blake3: hash.into(),
            }],
            upstream: vec![UpstreamIngredient {
                node: "prep".into(),
                digest: digest.into(),
            }],
            platform: None,
            env: Default::default(),
        }
    }

    #[test]
    fn diff_names_each_changed_ingredient() {
        let old = ingredients(20, "aaaa", "d1").to_value();
        assert!(diff(&old, &ingredients(20, "aaaa", "d1")).is_empty());
        assert_eq!(
            diff(&old, &ingredients(30, "aaaa", "d1")),
            vec!["config.strategy.parameters.lookback: 20 → 30"]
        );
        assert_eq!(
            diff(&old, &ingredients(20, "bbbb", "d1")),
            vec!["input data.csv changed (blake3 aaaa → bbbb)"]
        );
        assert_eq!(
            diff(&old, &ingredients(20, "aaaa", "d2")),
            vec!["output of upstream `prep` changed"]
        );
    }
}
