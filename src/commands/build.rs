//! `admf build`.

use std::time::Instant;

use serde_json::json;

use super::{Session, color};
use crate::cli::{BuildArgs, WorkflowArgs};
use crate::dispatch::{BuildReport, DispatchOptions, Final, dispatch};
use crate::error::Error;
use crate::events::EventLog;
use crate::executor::LocalExecutor;
use crate::plan::{self, Reason, Verdict};
use crate::progress::{Progress, status_name};
use crate::render::summary::{Outcome as Row, SummaryRow, render_summary};
use crate::run::Outcome;

/// Summaries longer than this list only the nodes that did not come from
/// the cache; the totals line still counts every node.
const FULL_SUMMARY_ROWS: usize = 40;

pub fn build(wf: &WorkflowArgs, args: &BuildArgs) -> Result<i32, Error> {
    let started = Instant::now();
    let graph = super::compile(wf)?;
    build_compiled(wf, graph, args, started)
}

/// `admf build` on a graph the caller compiled (at `started`).
pub fn build_compiled(
    wf: &WorkflowArgs,
    graph: crate::graph::Graph,
    args: &BuildArgs,
    started: Instant,
) -> Result<i32, Error> {
    let t_compile = started.elapsed();
    let targets = args
        .targets
        .iter()
        .map(|t| graph.find(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut force = vec![args.force_all; graph.nodes.len()];
    for name in &args.force {
        let i = graph.find(name)?;
        force[i] = true;
        // Forcing a grid phase forces its trials too.
        for (j, n) in graph.nodes.iter().enumerate() {
            if n.group.as_deref() == Some(name.as_str()) {
                force[j] = true;
            }
        }
    }
    let session = Session::with_graph(wf, graph, force)?;
    let ctx = session.ctx.clone();
    if args.dry_run {
        return dry_run(&session, &targets, args.json);
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let executor = LocalExecutor::new(jobs).map_err(|e| Error::io("thread pool", e))?;
    let guard = ctx
        .store
        .build_guard()
        .map_err(|e| Error::io(ctx.store.root(), e))?;
    let events = EventLog::new(ctx.store.root(), &ctx.workflow_id);
    let mut progress = Progress::new(ctx.graph.nodes.len(), events, args.verbose, false);
    let report = dispatch(
        ctx.clone(),
        &executor,
        &DispatchOptions {
            keep_going: args.keep_going,
            targets,
        },
        &mut progress,
    );
    progress.finish();
    let t_dispatch = started.elapsed();
    drop(guard);
    let _ = ctx.stats.save();
    let _ = ctx.lookups.save();
    if std::env::var_os("ADMF_TRACE").is_some() {
        crate::errln!(
            "trace: compile {t_compile:?} dispatch done {t_dispatch:?} saved {:?}",
            started.elapsed()
        );
    }
    let mut counts = [0usize; 5];
    let mut rows = Vec::new();
    let mut json_nodes = Vec::new();
    for &i in &report.selected {
        let node = &ctx.graph.nodes[i];
        let (row, status, key, seconds) = match &report.nodes[i] {
            Final::Done(r) => {
                let row = match r.outcome {
                    Outcome::Ran => Row::Ran,
                    Outcome::Cached => Row::Cached,
                    Outcome::Skipped(_) => Row::Skipped,
                    Outcome::Failed(_) => Row::Failed,
                };
                (
                    Some(row),
                    status_name(&r.outcome),
                    r.key.clone(),
                    Some(r.seconds),
                )
            }
            _ => (None, "not_run", None, None),
        };
        let slot = ["ran", "cached", "skipped", "failed", "not_run"]
            .iter()
            .position(|s| *s == status)
            .unwrap_or(4);
        counts[slot] += 1;
        if let Some(outcome) = row {
            rows.push(SummaryRow {
                node: node.id.clone(),
                outcome,
                seconds: if matches!(outcome, Row::Skipped) {
                    None
                } else {
                    seconds
                },
            });
        }
        json_nodes.push(json!({"id": node.id, "status": status, "key": key, "seconds": seconds}));
    }
    progress.events.push(json!({
        "event": "end",
        "ran": counts[0], "cached": counts[1], "skipped": counts[2], "failed": counts[3], "not_run": counts[4],
    }));
    if let Err(e) = progress.events.save() {
        crate::errln!(
            "admf: cannot write {}: {e}",
            progress.events.path().display()
        );
    }
    let wall = started.elapsed().as_secs_f64();
    let shown: Vec<SummaryRow> = if rows.len() <= FULL_SUMMARY_ROWS {
        rows
    } else {
        rows.into_iter()
            .filter(|r| !matches!(r.outcome, Row::Cached))
            .collect()
    };
    let mut summary = render_summary(&shown, wall, color());
    if shown.len() != report.selected.len() {
        // The table lists fewer rows than there are nodes: give true totals.
        summary = summary
            .lines()
            .filter(|l| !l.contains(" in "))
            .map(|l| format!("{l}\n"))
            .collect();
        summary.push_str(&format!(
            "{} ran, {} cached, {} skipped, {} failed in {wall:.2}s\n",
            counts[0], counts[1], counts[2], counts[3]
        ));
    }
    if counts[4] > 0 {
        summary.push_str(&format!("{} not run because of a failure\n", counts[4]));
    }
    crate::err!("{summary}");
    for (node, path) in reports(&ctx.graph, &report) {
        crate::errln!("report: {} ({node})", path.display());
    }
    if args.json {
        let out = json!({
            "workflow": wf.workflow.display().to_string(),
            "nodes": json_nodes,
            "ran": counts[0], "cached": counts[1], "skipped": counts[2], "failed": counts[3], "not_run": counts[4],
        });
        crate::outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    }
    let failed = report.failed();
    if failed.is_empty() && counts[4] == 0 {
        Ok(0)
    } else {
        let bad_input = !failed.is_empty()
            && failed.iter().all(|&i| {
                matches!(&report.nodes[i], Final::Done(r)
                    if matches!(&r.outcome, Outcome::Failed(e) if e.bad_input))
            });
        Err(Error::BuildFailed {
            failed: failed
                .iter()
                .map(|&i| ctx.graph.nodes[i].id.clone())
                .collect(),
            bad_input,
        })
    }
}

/// The `report.html` of every `report` node that ran or came from the
/// cache, by node id, in planned order.
fn reports<'g>(
    graph: &'g crate::graph::Graph,
    report: &BuildReport,
) -> Vec<(&'g str, std::path::PathBuf)> {
    report
        .selected
        .iter()
        .filter(|&&i| graph.nodes[i].mode == "report")
        .filter_map(|&i| match &report.nodes[i] {
            Final::Done(r) => Some((
                graph.nodes[i].id.as_str(),
                r.entry.as_ref()?.out_dir().join("report.html"),
            )),
            _ => None,
        })
        .collect()
}

fn dry_run(session: &Session, targets: &[usize], as_json: bool) -> Result<i32, Error> {
    let graph = session.graph();
    let mask = if targets.is_empty() {
        vec![true; graph.nodes.len()]
    } else {
        graph.closure(targets)
    };
    let predictions = plan::predict(&session.ctx);
    let mut rows = Vec::new();
    for (n, &i) in graph.order.iter().filter(|&&i| mask[i]).enumerate() {
        let node = &graph.nodes[i];
        let force = session.ctx.force[i];
        let (what, why) = match &predictions[i].verdict {
            Verdict::Fresh if force => ("run", "forced".to_string()),
            Verdict::Fresh => ("cached", String::new()),
            Verdict::Missing => ("run", "never built".to_string()),
            Verdict::Skipped(r) => ("skip", r.clone()),
            Verdict::Stale(Reason::Upstream(d)) => {
                ("run", format!("upstream `{}` reruns", graph.nodes[*d].id))
            }
            Verdict::Stale(Reason::Changed(c)) => ("run", c.join("; ")),
            Verdict::Stale(Reason::Error(e)) => ("run", e.clone()),
        };
        rows.push(json!({"step": n + 1, "node": node.id, "mode": node.mode, "action": what, "reason": why}));
        if !as_json {
            let reason = if why.is_empty() {
                String::new()
            } else {
                format!("  ({why})")
            };
            crate::outln!("{:>4}. {:<7} {}{reason}", n + 1, what, node.id);
        }
    }
    if as_json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json!({"plan": rows})).unwrap_or_default()
        );
    }
    Ok(0)
}
