//! `admf build`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::{Session, color};
use crate::cli::{BuildArgs, WorkflowArgs};
use crate::dispatch::{DispatchOptions, Final, dispatch};
use crate::error::Error;
use crate::events::EventLog;
use crate::plan::{self, Reason, Verdict};
use crate::progress::Progress;
use crate::reads::Reads;
use crate::render::summary::{SummaryRow, render_summary};
use crate::run::Outcome;
use crate::status::Status;
use crate::uptodate;

/// Summaries longer than this list only the nodes that did not come from
/// the cache; the totals line still counts every node.
const FULL_SUMMARY_ROWS: usize = 40;

pub fn build(wf: &WorkflowArgs, args: &BuildArgs) -> Result<i32, Error> {
    let started = Instant::now();
    crate::results::history::start_git_probe(&wf.workflow);
    let reads = Reads::new();
    // A build `admf serve` forked was handed over by one that checked the
    // record already, unless an earlier build wrote it since.
    let forked = super::serve::forked();
    if (!forked || super::serve::check_record_again())
        && let Some(record) = UptodateRecord::for_build(wf, args)
        && let Some((nodes, served)) = record.holds()
    {
        let code = conclude_noop(wf, args, &record, &nodes, served, started);
        let root = super::store_root(wf);
        super::export::sync_after_noop(&root, &super::workflow_id(&wf.workflow))?;
        return Ok(code);
    }
    if !forked
        && !full_rule_only()
        && let Some(code) = super::serve::hand_over(&super::store_root(wf))
    {
        return Ok(code);
    }
    if forked && let Some(record) = UptodateRecord::for_build(wf, args) {
        record.vouched_stats_into(&reads);
    }
    let (graph, source) = compile_or_cached(wf, &reads)?;
    build_from(wf, graph, source, args, started, StartedBy::Command, reads)
}

/// What started a build: `admf build`, whose process exits right after
/// it, or `admf watch`, which builds again and again and opens each
/// build's `events.jsonl` with why it started.
#[derive(Clone, Copy)]
enum StartedBy<'a> {
    Command,
    Watch(&'a [serde_json::Value]),
}

/// Where a build's graph came from, which decides whether the node trace
/// may be read and written: it describes the graph in the graph cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GraphSource {
    /// Read from the graph cache.
    Cache,
    /// Compiled, and the graph cache now holds it.
    CompiledAndCached,
    /// Compiled; the graph cache (if any) holds another graph.
    Compiled,
}

/// The compiled graph from the graph cache when its evidence holds, else
/// compiled from the YAML (and cached for the next build).
fn compile_or_cached(
    wf: &WorkflowArgs,
    reads: &Reads,
) -> Result<(crate::graph::Graph, GraphSource), Error> {
    if full_rule_only() {
        return Ok((super::compile(wf, reads)?, GraphSource::Compiled));
    }
    let reading_since = SystemTime::now();
    let cache = graph_invocation(wf).map(|invocation| {
        let root = super::store_root(wf);
        let path = crate::graph_cache::path(&root, &super::workflow_id(&wf.workflow));
        (path, invocation)
    });
    if let Some((path, invocation)) = &cache
        && let Some(graph) = crate::graph_cache::load(path, invocation, reads)
    {
        trace("graph from the graph cache");
        return Ok((graph, GraphSource::Cache));
    }
    let graph = super::compile(wf, reads)?;
    if let Some((path, invocation)) = &cache
        && !reads.unstable()
        && let Some(evidence) = crate::graph_cache::evidence(&graph, reads.snapshot())
    {
        // A cache that cannot be written costs the next build a compile.
        if let Ok(true) =
            crate::graph_cache::save(path, invocation, &evidence, &graph, reading_since)
        {
            return Ok((graph, GraphSource::CompiledAndCached));
        }
    }
    Ok((graph, GraphSource::Compiled))
}

/// What the compiled graph depends on besides file contents: the
/// workflow, the working directory (relative paths), `--set` and the
/// admf binary itself.
fn graph_invocation(wf: &WorkflowArgs) -> Option<String> {
    let workflow = std::fs::canonicalize(&wf.workflow).ok()?;
    let cwd = std::env::current_dir().ok()?;
    let exe = executable_identity()?;
    let mut parts = vec!["graph", workflow.to_str()?, cwd.to_str()?, &exe, "--set"];
    parts.extend(wf.sets.iter().map(String::as_str));
    Some(invocation(&parts))
}

/// The running admf binary by path and stat: another install or a
/// rebuilt admf may compile, key or decide differently.
pub(super) fn executable_identity() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let stat = crate::file_stat::Stat::of(&std::fs::metadata(&exe).ok()?);
    Some(format!(
        "{} {} {} {} {}",
        exe.to_str()?,
        stat.size,
        stat.mtime_ns,
        stat.inode,
        stat.device
    ))
}

/// The hash of everything besides file contents that decides what a
/// build does ([`uptodate::invocation`]), with the store layout the
/// records describe.
fn invocation(parts: &[&str]) -> String {
    let layout = crate::store::STORE_LAYOUT.to_string();
    let mut all = vec![layout.as_str()];
    all.extend_from_slice(parts);
    uptodate::invocation(&all)
}

/// The executor choices given on the command line.
fn executor_flags(args: &BuildArgs) -> crate::ir::executor::ExecutorConfig {
    use crate::ir::executor::{ExecutorConfig, ExecutorKind};
    ExecutorConfig {
        kind: args.executor.as_deref().and_then(ExecutorKind::parse),
        partition: args.partition.clone(),
        account: args.account.clone(),
        max_jobs: args.max_jobs.map(|n| n as usize),
        pack: args.pack.map(|n| n as usize),
    }
}

/// A store this build cannot write. Only a build that the up-to-date
/// record proves a no-op can use one: any other build records refs, locks
/// and its run in the store before it restores or runs anything.
fn read_only_store(root: &std::path::Path, e: &std::io::Error) -> Error {
    Error::Usage {
        message: format!(
            "the store {} is not writable: {e}; only a build that changes nothing can use it",
            root.display()
        ),
        hint: Some(
            "choose a writable store with --cache-dir or ADMF_CACHE_DIR; to share results read-only, use a remote tier (docs/remote.md)".into(),
        ),
    }
}

/// `ADMF_FULL_PATH=1`: no up-to-date record, graph cache or node trace;
/// every node is decided by the full rule. What the fast paths are
/// checked against, and a way to rule them out when in doubt.
fn full_rule_only() -> bool {
    std::env::var_os("ADMF_FULL_PATH").is_some_and(|v| v != "0")
}

/// CPU time of the calling thread so far (Linux): on the coordinator,
/// the serial share of a build, for `ADMF_TRACE`.
fn this_thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Print `what` as a `trace:` line when `ADMF_TRACE` is set.
pub(super) fn trace(what: &str) {
    if std::env::var_os("ADMF_TRACE").is_some() {
        crate::errln!("trace: {what}");
    }
}

/// The server that vouched for the files of the record with the stat
/// `record_stat` at `record` ([`UptodateRecord::vouched_stats_into`]),
/// asked again which of them an event touched since
/// ([`super::serve::touched_since`]).
struct ServerWatch {
    store: PathBuf,
    record: PathBuf,
    invocation: String,
    record_stat: crate::file_stat::Stat,
}

impl crate::reads::Watcher for ServerWatch {
    fn touched(&self) -> Option<Vec<PathBuf>> {
        let touched = super::serve::touched_since(
            &self.store,
            &self.record,
            &self.invocation,
            self.record_stat,
        );
        trace(&match &touched {
            Some(paths) => format!("admf serve: {} vouched files touched since", paths.len()),
            None => "admf serve: cannot say what was touched since".to_string(),
        });
        touched
    }
}

/// Where this build's up-to-date record lives and the invocation it must
/// match; `None` for builds that never use one (forced, dry runs,
/// verbose ones, which print logs).
struct UptodateRecord {
    path: PathBuf,
    invocation: String,
}

impl UptodateRecord {
    /// The record's nodes when it still holds, and whether `admf serve`
    /// vouched for it (else this build stated its files).
    fn holds(&self) -> Option<(Vec<uptodate::NodeLine>, bool)> {
        // The record lies at <store>/runs/<workflow id>/uptodate.
        let store = self.path.ancestors().nth(3)?;
        match super::serve::vouches(store, &self.path, &self.invocation) {
            Some(true) => {
                if let Some(nodes) = uptodate::nodes_unchecked(&self.path, &self.invocation) {
                    return Some((nodes, true));
                }
            }
            // The server saw a file the record lists change: stating them
            // again would find the same.
            Some(false) => return None,
            None => {}
        }
        uptodate::check(&self.path, &self.invocation).map(|nodes| (nodes, false))
    }

    /// Keep in `reads` the stats `admf serve` vouches for: the files the
    /// record lists, but for those an event touched since the server
    /// checked them and those it did not find to be regular files
    /// ([`Reads::keep_vouched_stats`]). Taken before this build removes
    /// the record; nothing when the server cannot say.
    fn vouched_stats_into(&self, reads: &Reads) {
        let stat_now = || {
            std::fs::symlink_metadata(&self.path)
                .ok()
                .map(|m| crate::file_stat::Stat::of(&m))
        };
        let Some(store) = self.path.ancestors().nth(3) else {
            return;
        };
        let Some(before) = stat_now() else {
            return;
        };
        let Some(uncertain) = super::serve::uncertain(store, &self.path, &self.invocation) else {
            return;
        };
        // The stats read must be those of the record the server answered
        // for, from before to after reading them.
        let Some(mut stats) = uptodate::listed_stats_of(&self.path, &self.invocation) else {
            return;
        };
        if uncertain.record != before || stat_now() != Some(before) {
            return;
        }
        for path in uncertain.touched.iter().chain(&uncertain.not_files) {
            stats.remove(path.as_os_str());
        }
        trace(&format!(
            "admf serve vouched for {} files ({} uncertain, {} not files)",
            stats.len(),
            uncertain.touched.len(),
            uncertain.not_files.len()
        ));
        let watcher = ServerWatch {
            store: store.to_path_buf(),
            record: self.path.clone(),
            invocation: self.invocation.clone(),
            record_stat: before,
        };
        reads.keep_vouched_stats(stats, Arc::new(watcher));
    }

    fn for_build(wf: &WorkflowArgs, args: &BuildArgs) -> Option<UptodateRecord> {
        if full_rule_only()
            || args.dry_run
            || args.force_all
            || !args.force.is_empty()
            || args.verbose
        {
            return None;
        }
        let root = super::store_root(wf);
        let root = std::path::absolute(&root).unwrap_or(root);
        let workflow = std::fs::canonicalize(&wf.workflow).ok()?;
        let exe_id = executable_identity()?;
        let key_schema = crate::key::KEY_SCHEMA.to_string();
        let mut parts = vec![
            workflow.to_str()?,
            root.to_str()?,
            &exe_id,
            &key_schema,
            "--set",
        ];
        parts.extend(wf.sets.iter().map(String::as_str));
        parts.push("--targets");
        parts.extend(args.targets.iter().map(String::as_str));
        parts.push("--until");
        parts.extend(args.until.iter().map(String::as_str));
        parts.push("--downstream");
        parts.extend(args.downstream.iter().map(String::as_str));
        Some(UptodateRecord {
            path: uptodate::path(&root, &super::workflow_id(&wf.workflow)),
            invocation: invocation(&parts),
        })
    }
}

/// Where the node trace of this build lives, the invocation it is for, and
/// the files it rests on besides each node's own (the graph cache and the
/// store's `index/` directory).
struct NodeTraceFile {
    path: PathBuf,
    invocation: String,
    global: Vec<PathBuf>,
}

impl NodeTraceFile {
    fn for_build(wf: &WorkflowArgs, session: &Session, source: GraphSource) -> Option<Self> {
        if full_rule_only() {
            return None;
        }
        let ctx = &session.ctx;
        let runs = |name: &str| {
            ctx.store
                .root()
                .join("runs")
                .join(&ctx.workflow_id)
                .join(name)
        };
        let trace = NodeTraceFile {
            path: crate::node_trace::path(ctx.store.root(), &ctx.workflow_id),
            invocation: graph_invocation(wf)?,
            global: vec![runs("graph"), ctx.store.root().join("index")],
        };
        // A graph compiled without being cached makes any trace stale.
        if source == GraphSource::Compiled {
            crate::node_trace::remove(&trace.path);
        }
        Some(trace)
    }

    /// Record what each node of `report` rested on; a trace that cannot
    /// be written costs the next build its shortcut, nothing else.
    fn save(
        &self,
        ctx: &crate::run::RunContext,
        report: &crate::dispatch::BuildReport,
        started: SystemTime,
    ) {
        let Some(global) = crate::node_trace::global_evidence(&self.global) else {
            crate::node_trace::remove(&self.path);
            return;
        };
        let nodes: Vec<(&str, &std::sync::Arc<crate::node_trace::TracedNode>)> = report
            .selected
            .iter()
            .filter_map(|&i| match &report.nodes[i] {
                Final::Done(r) => {
                    let evidence = r.evidence.as_ref()?;
                    let id = ctx.graph.nodes[i].id.as_str();
                    // Settled from the trace: every stat in it was checked
                    // by this build and is old, and a change since shows
                    // as a different stat to the next build.
                    let from_trace = ctx
                        .trace
                        .as_ref()
                        .and_then(|t| t.get(id))
                        .is_some_and(|t| std::sync::Arc::ptr_eq(t, evidence));
                    // An output changed since it was stat'ed is no evidence.
                    let unchanged = from_trace
                        || evidence.outputs.iter().all(|(path, recorded)| {
                            std::fs::symlink_metadata(path)
                                .is_ok_and(|m| crate::file_stat::Stat::of(&m) == *recorded)
                        });
                    unchanged.then_some((id, evidence))
                }
                _ => None,
            })
            .collect();
        // Only what changed since the trace this build read is appended.
        let saved = crate::node_trace::save(
            &self.path,
            &self.invocation,
            &global,
            &nodes,
            started,
            ctx.trace.as_deref(),
        );
        trace(&format!("node trace: {saved:?}"));
        if saved.is_err() {
            crate::node_trace::remove(&self.path);
        }
    }
}

/// `admf build` on a graph the caller compiled (at `started`), noting
/// what it read in `reads`; `why` opens its `events.jsonl` (the
/// `trigger` lines of `admf watch`).
pub fn build_compiled(
    wf: &WorkflowArgs,
    graph: crate::graph::Graph,
    args: &BuildArgs,
    started: Instant,
    why: &[serde_json::Value],
    reads: Reads,
) -> Result<i32, Error> {
    build_from(
        wf,
        graph,
        GraphSource::Compiled,
        args,
        started,
        StartedBy::Watch(why),
        reads,
    )
}

fn build_from(
    wf: &WorkflowArgs,
    graph: crate::graph::Graph,
    source: GraphSource,
    args: &BuildArgs,
    started: Instant,
    started_by: StartedBy,
    reads: Reads,
) -> Result<i32, Error> {
    let why = match started_by {
        StartedBy::Command => &[][..],
        StartedBy::Watch(why) => why,
    };
    let t_compile = started.elapsed();
    let started_at = SystemTime::now() - t_compile;
    note_executable(&reads);
    let mut targets = graph.resolve_targets(&args.targets)?;
    targets.extend(graph.resolve_targets(&args.until)?);
    targets.extend(graph.downstream(&graph.resolve_targets(&args.downstream)?));
    let mut force = vec![args.force_all; graph.nodes.len()];
    // `--force` takes what targets take (a fan-out phase's name forces
    // every instance); forcing a grid phase forces its trials too.
    for i in graph.resolve_targets(&args.force)? {
        force[i] = true;
        let id = graph.nodes[i].id.as_str();
        for (j, n) in graph.nodes.iter().enumerate() {
            if n.group.as_deref() == Some(id) {
                force[j] = true;
            }
        }
    }
    let mut session = Session::with_graph(wf, graph, force, reads)?;
    if args.dry_run {
        return dry_run(&session, &targets, args.json);
    }
    if let Some(e) = crate::store::not_writable(session.ctx.store.root()) {
        return Err(read_only_store(session.ctx.store.root(), &e));
    }
    let trace_file = NodeTraceFile::for_build(wf, &session, source);
    if let Some(file) = &trace_file {
        let loaded = (source == GraphSource::Cache)
            .then(|| crate::node_trace::load(&file.path, &file.invocation, session.ctx.reads()))
            .flatten();
        if let Some(ctx) = std::sync::Arc::get_mut(&mut session.ctx) {
            if loaded.is_some() {
                ctx.checked_ahead = crate::node_trace::CheckedAhead::new(ctx.graph.nodes.len());
            }
            ctx.trace = loaded.map(std::sync::Arc::new);
        }
    }
    if let Some(url) = &args.remote {
        let tier =
            crate::remote::RemoteTier::open(url, session.ctx.store.clone()).map_err(|e| {
                Error::Usage {
                    message: format!("--remote {url}: {e}"),
                    hint: None,
                }
            })?;
        if let Some(ctx) = std::sync::Arc::get_mut(&mut session.ctx) {
            ctx.remote = Some(std::sync::Arc::new(tier));
        }
    }
    let ctx = session.ctx.clone();
    let record = UptodateRecord::for_build(wf, args);
    let record_path = uptodate::path(ctx.store.root(), &ctx.workflow_id);
    // This build may rewrite refs and the workspace: the old record no
    // longer describes them.
    uptodate::remove(&record_path).map_err(|e| Error::io(&record_path, e))?;
    let jobs = args
        .jobs
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let executor = crate::cluster::BuildExecutor::choose(&executor_flags(args), &ctx, jobs)?;
    let guard = ctx
        .store
        .build_guard()
        .map_err(|e| Error::io(ctx.store.root(), e))?;
    let mut events = EventLog::new(ctx.store.root(), &ctx.workflow_id);
    for line in why {
        events.push(line.clone());
    }
    let mut progress = Progress::new(ctx.graph.nodes.len(), events, args.verbose, false);
    let _signals = crate::interrupt::during_build().map_err(|e| Error::io(ctx.store.root(), e))?;
    let report = dispatch(
        ctx.clone(),
        executor.as_executor(),
        &DispatchOptions {
            keep_going: args.keep_going,
            targets,
        },
        &mut progress,
    );
    progress.finish();
    executor.finish();
    crate::phases::data::forget_loaded();
    ctx.store.release_scratch();
    if let Some(remote) = &ctx.remote {
        let summary = remote.finish();
        crate::errln!(
            "remote: {} hit{}, {} published{}",
            summary.hits,
            if summary.hits == 1 { "" } else { "s" },
            summary.published,
            if summary.down {
                " (dropped after an error)"
            } else {
                ""
            }
        );
    }
    if std::env::var_os("ADMF_TRACE").is_some() {
        let by_trace = settled_by_trace(&report).count();
        trace(&format!("{by_trace} nodes settled by the node trace"));
    }
    let t_dispatch = started.elapsed();
    let lines: Vec<NodeLine> = report
        .selected
        .iter()
        .map(|&i| {
            let node = &ctx.graph.nodes[i];
            let id = node.id.as_str();
            match &report.nodes[i] {
                Final::Done(r) => NodeLine {
                    id,
                    status: r.outcome.status(),
                    key: r.key.clone(),
                    seconds: Some(r.seconds),
                    report: report_path(&ctx, node, r),
                    headline: super::headline::headline(&ctx, node, r),
                    failure: match &r.outcome {
                        Outcome::Failed(e) => Some((e.message.as_str(), r.log.as_slice())),
                        _ => None,
                    },
                    metrics_blob: match &r.entry {
                        Some(e) => Some(
                            e.manifest
                                .outputs
                                .get("metrics.json")
                                .map(|o| o.blake3.clone()),
                        ),
                        // Settled without its entry (the node trace): its
                        // config may still tell that it has none.
                        None => ctx
                            .factory
                            .get(&node.mode)
                            .is_some_and(|phase| !phase.may_store_metrics(&node.workspace_outputs))
                            .then_some(None),
                    },
                    metrics_text: r.ledger_metrics.clone(),
                },
                _ => NodeLine {
                    id,
                    status: Status::NotRun,
                    key: None,
                    seconds: None,
                    report: None,
                    headline: None,
                    failure: None,
                    metrics_blob: None,
                    metrics_text: None,
                },
            }
        })
        .collect();
    for (id, path) in super::skipped::remove_stale_outputs(&ctx, &report) {
        crate::errln!("removed {} (`{id}` was skipped)", path.display());
    }
    // Taken here, before the report reads anything more; sorted on the
    // saving thread.
    let observed = ctx.reads().take_unsorted();
    let Progress {
        started: node_started,
        events,
        ..
    } = progress;
    // What the next build reads to go faster (the stat cache, the node
    // trace, the up-to-date record) is written beside what this one
    // reports (its lines, the run ledger, the exports): each is a whole
    // pass over the nodes (a 10,000-node graph's record is 2.5 MB, its
    // ledger row 1 MB), and neither reads the other. A build admf serve
    // forked answers its caller once the report is out and succeeded,
    // and writes the caches after ([`super::serve::answer_early`]).
    let outcome = std::thread::scope(|scope| {
        let saving = {
            let (ctx, report, lines) = (&ctx, &report, &lines);
            let (node_started, trace_file) = (&node_started, &trace_file);
            scope.spawn(move || {
                if let Some(delay) = save_delay() {
                    std::thread::sleep(delay);
                }
                // The record first: a no-op right after this build reads
                // it, where only the next edit reads the others. The files
                // of the nodes the trace settled were read as the trace
                // recorded them ([`crate::node_trace::TracedNode::holds`]).
                let observed = observed
                    .map(|mut observed| {
                        observed.extend(settled_by_trace(report).flat_map(|t| t.files()));
                        observed
                    })
                    .and_then(crate::reads::Observed::sorted);
                if record.is_some() && observed.is_none() {
                    trace("no up-to-date record: a file changed while this build read it");
                }
                if let Some((record, files)) = record.zip(observed) {
                    save_record_if_settled(
                        &record,
                        ctx,
                        report,
                        node_started,
                        lines,
                        files,
                        started_at,
                    );
                }
                // A graph compiled without being cached had its trace
                // removed at the start ([`NodeTraceFile::for_build`]):
                // there is nothing to write.
                if let Some(file) = trace_file
                    && source != GraphSource::Compiled
                {
                    file.save(ctx, report, started_at);
                }
                let _ = ctx.stats.save();
            })
        };
        // A build admf serve forked answers its caller before its ledger
        // row is written, holding the ledger's lock until it is: a reader
        // of the ledger started after the answer waits for the row.
        let files_digest = Some(ctx.graph.workflow.files_digest.as_str());
        let pending = super::serve::forked()
            .then(|| ctx.store.ledger_pending().ok())
            .flatten();
        let ledger = match pending {
            Some(_) => Ledger::AfterAnswer,
            None => Ledger::Now { files_digest },
        };
        let counts = conclude(wf, args, &lines, events, started, ledger);
        let synced = super::export::sync_after_build(&ctx, &report);
        if std::env::var_os("ADMF_TRACE").is_some() {
            crate::errln!(
                "trace: compile {t_compile:?} dispatch done {t_dispatch:?} concluded {:?}{}",
                started.elapsed(),
                this_thread_cpu().map_or(String::new(), |cpu| format!(" coordinator cpu {cpu:?}"))
            );
        }
        let outcome = match crate::interrupt::received() {
            Some(signal) => Err(Error::Interrupted { signal }),
            None => outcome_of(&ctx, &report, &counts, synced),
        };
        if let Ok(0) = outcome {
            super::serve::answer_early(0);
        }
        if let Some(pending) = pending {
            if let Some(delay) = save_delay() {
                std::thread::sleep(delay);
            }
            record_run(wf, args, &lines, started, files_digest);
            drop(pending);
        }
        let _ = saving.join();
        outcome
    });
    drop(guard);
    if let StartedBy::Command = started_by {
        keep_until_exit(&ctx);
    }
    // A signal while the caches were written still ends the build so.
    if let Some(signal) = crate::interrupt::received() {
        return Err(Error::Interrupted { signal });
    }
    outcome
}

/// The trace entries of the nodes of `report` that the node trace settled.
fn settled_by_trace(
    report: &crate::dispatch::BuildReport,
) -> impl Iterator<Item = &crate::node_trace::TracedNode> {
    report.nodes.iter().filter_map(|f| match f {
        Final::Done(r) => r.settled_by_trace(),
        _ => None,
    })
}

/// How long the caches (and a served build's ledger row) wait before they
/// are written, from `ADMF_TEST_SAVE_DELAY_MS`: lets a test hold a served
/// build between its answer and its up-to-date record or ledger row, the
/// window in which the next build must not miss the record and a reader
/// of the ledger must not miss the row (`tests/serve_builds.rs`).
fn save_delay() -> Option<std::time::Duration> {
    let ms = std::env::var("ADMF_TEST_SAVE_DELAY_MS")
        .ok()?
        .parse()
        .ok()?;
    Some(std::time::Duration::from_millis(ms))
}

/// What a build that was not interrupted ends with: 0 when no node
/// failed and the exports synced, else the error that says why.
fn outcome_of(
    ctx: &crate::run::RunContext,
    report: &crate::dispatch::BuildReport,
    counts: &[usize; 5],
    synced: Result<(), Error>,
) -> Result<i32, Error> {
    let failed = report.failed();
    if failed.is_empty() && counts[4] == 0 {
        return synced.map(|()| 0);
    }
    if let Err(e) = synced {
        crate::errln!("admf: {e}");
    }
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

/// Write the up-to-date record when every selected node came from the
/// cache, was skipped, or ran and would come from the cache in the same
/// build again ([`ran_evidence`]): the next identical build can then say
/// so from it (a node that ran is reported cached, as the full rule would
/// report it). A record that cannot be written only costs that build its
/// shortcut.
fn save_record_if_settled(
    record: &UptodateRecord,
    ctx: &crate::run::RunContext,
    report: &crate::dispatch::BuildReport,
    node_started: &[bool],
    lines: &[NodeLine],
    mut files: Vec<(PathBuf, crate::file_stat::Stat)>,
    started_at: SystemTime,
) {
    let graph = &ctx.graph;
    // What the nodes that ran rest on, with the content each file had.
    let mut ran: std::collections::HashMap<PathBuf, (crate::file_stat::Stat, String)> =
        std::collections::HashMap::new();
    for (&i, line) in report.selected.iter().zip(lines) {
        match (line.status, &report.nodes[i]) {
            (Status::Cached | Status::Skipped, _) => {}
            (Status::Ran, Final::Done(result)) => {
                let Some(evidence) = ran_evidence(&graph.nodes[i], result) else {
                    return;
                };
                ran.extend(
                    evidence
                        .into_iter()
                        .map(|(path, stat, digest)| (path, (stat, digest))),
                );
            }
            _ => return,
        }
    }
    if !ran.is_empty() {
        let read: std::collections::HashMap<&std::ffi::OsStr, crate::file_stat::Stat> = files
            .iter()
            .map(|(path, stat)| (path.as_os_str(), *stat))
            .collect();
        // A file this build read with another stat changed in between.
        if ran
            .iter()
            .any(|(path, (stat, _))| read.get(path.as_os_str()).is_some_and(|s| s != stat))
        {
            return;
        }
        let new: Vec<(PathBuf, crate::file_stat::Stat)> = ran
            .iter()
            .filter(|(path, _)| !read.contains_key(path.as_os_str()))
            .map(|(path, (stat, _))| (path.clone(), *stat))
            .collect();
        files.extend(new);
    }
    // The record holds no environment: a build with a node keyed on
    // passed variables must compute its keys again next time.
    if report
        .selected
        .iter()
        .any(|&i| crate::phases::command::passes_env(&graph.nodes[i].config))
    {
        return;
    }
    let nodes: Vec<uptodate::NodeLine> = report
        .selected
        .iter()
        .zip(lines)
        .map(|(&i, line)| uptodate::NodeLine {
            id: line.id.to_string(),
            key: line.key.clone(),
            started: node_started[i],
            skipped: match &report.nodes[i] {
                Final::Done(r) => match &r.outcome {
                    Outcome::Skipped(reason) => Some(reason.clone()),
                    _ => None,
                },
                _ => None,
            },
            report: line.report.clone(),
            no_metrics: line.metrics_blob == Some(None),
        })
        .collect();
    // Outputs are absolute paths once compiled; `absolute` (which also
    // drops `.` components and repeated separators) is only for one that
    // is not already in that form, as it allocates for each.
    let already_absolute = |p: &std::path::Path| {
        let text = p.as_os_str().as_encoded_bytes();
        p.is_absolute()
            && !text.windows(2).any(|w| w == b"//")
            && !text.windows(3).any(|w| w == b"/./")
            && !text.ends_with(b"/.")
    };
    let plain: uptodate::PlainOutputs = report
        .selected
        .iter()
        .flat_map(|&i| &graph.nodes[i].workspace_outputs)
        .filter(|(rel, _)| !crate::workspace::is_dir_output(rel))
        .filter_map(|(_, p)| match already_absolute(p) {
            true => Some(std::borrow::Cow::Borrowed(p.as_os_str())),
            false => Some(std::borrow::Cow::Owned(
                std::path::absolute(p).ok()?.into_os_string(),
            )),
        })
        .collect();
    // A file hashed moments after it was written (the output of the
    // build before this one, say) is hashed again now that a write could
    // no longer keep its stat: found the same, it is vouched for.
    let read_again = |path: &std::path::Path, stat: &crate::file_stat::Stat| {
        ctx.stats.still_hashes_to(path, stat)
    };
    // Too recent for its stat, but the content it had is known: an input
    // hashed for a key moments after an edit, an output of a node that ran.
    let digest = |path: &std::path::Path, stat: &crate::file_stat::Stat| match ran.get(path) {
        Some((s, digest)) if s == stat => Some(digest.clone()),
        _ => ctx.stats.racy_digest(path, stat),
    };
    let vouch = uptodate::Vouch {
        read_again: &read_again,
        digest: &digest,
    };
    if let Ok(false) = uptodate::save(
        &record.path,
        &record.invocation,
        &nodes,
        &files,
        &plain,
        started_at,
        &vouch,
    ) && let Some((path, age)) = uptodate::too_recent(&files, started_at, &vouch)
    {
        trace(&format!(
            "no up-to-date record: {} was modified {age:?} before this build began",
            path.display()
        ));
    }
}

/// The process exits once `admf build` returns: the build's largest
/// values (the graph, the node trace, the stat cache's records; plain
/// data, with nothing to flush or close) are left to the exit rather than
/// freed one allocation at a time: the frees, then the allocator returning
/// the freed pages, were about 5 % of a leaf edit's profile samples on a
/// 10,000-node graph (timed whole, the gain is within the noise of a
/// 10 ms clock: BENCHMARKS.md, "Edit cycles: the up-to-date record after
/// a build that ran").
fn keep_until_exit(ctx: &crate::run::RunContext) {
    std::mem::forget(ctx.graph.clone());
    std::mem::forget(ctx.trace.clone());
    std::mem::forget(ctx.stats.clone());
}

/// What a node that ran rests on for the next build to find it cached, as
/// (path, stat, blake3 of the content): each workspace output as the
/// commit left it, with the digest its entry recorded, and each blob file
/// of its entry (named by its digest). Its inputs were noted when they
/// were hashed for its key. `None` when the node is not that simple: an
/// output kept another way than stored (temp, `cache: false`), a directory
/// output, an output not found as a plain file after the commit.
fn ran_evidence(
    node: &crate::graph::Node,
    result: &crate::run::NodeResult,
) -> Option<Vec<(PathBuf, crate::file_stat::Stat, String)>> {
    let evidence = result.evidence.as_ref()?;
    let entry = result.entry.as_ref()?;
    let outputs: Vec<(&String, &PathBuf)> = node
        .outputs_kept()
        .map(|(rel, path, keep)| {
            (keep == crate::workspace::Keep::Stored && !crate::workspace::is_dir_output(rel))
                .then_some((rel, path))
        })
        .collect::<Option<_>>()?;
    if evidence.outputs.len() != outputs.len() {
        return None;
    }
    let mut files = Vec::new();
    for ((path, stat), (rel, declared)) in evidence.outputs.iter().zip(outputs) {
        if path != declared {
            return None;
        }
        let digest = &entry.manifest.outputs.get(rel)?.blake3;
        files.push((path.clone(), *stat, digest.clone()));
    }
    let blobs: Vec<&String> = entry
        .manifest
        .outputs
        .values()
        .filter(|o| o.size > crate::store::INLINE_MAX)
        .map(|o| &o.blake3)
        .collect();
    if evidence.blobs.len() != blobs.len() {
        return None;
    }
    for ((path, stat), digest) in evidence.blobs.iter().zip(blobs) {
        if *path != entry.store_blob_path(digest) {
            return None;
        }
        files.push((path.clone(), *stat, digest.clone()));
    }
    Some(files)
}

/// The running executable is an input of every build: phase versions and
/// key rules live in it.
fn note_executable(reads: &Reads) {
    if let Ok(exe) = std::env::current_exe()
        && let Ok(meta) = std::fs::metadata(&exe)
    {
        reads.note(&exe, crate::file_stat::Stat::of(&meta));
    }
}

/// A build the up-to-date record proved to be a no-op: say what the full
/// build would have said, from the record.
fn conclude_noop(
    wf: &WorkflowArgs,
    args: &BuildArgs,
    record: &UptodateRecord,
    nodes: &[uptodate::NodeLine],
    served: bool,
    started: Instant,
) -> i32 {
    let mut events = EventLog::at(record.path.with_file_name("events.jsonl"));
    events.plan(nodes.iter().map(|n| n.id.as_str()).collect());
    let lines: Vec<NodeLine> = nodes
        .iter()
        .map(|n| NodeLine {
            id: &n.id,
            status: if n.skipped.is_some() {
                Status::Skipped
            } else {
                Status::Cached
            },
            key: n.key.clone(),
            seconds: Some(0.0),
            report: n.report.clone(),
            headline: None,
            failure: None,
            // The record knows which entries hold no metrics: the ledger
            // looks up only the others.
            metrics_blob: n.no_metrics.then_some(None),
            metrics_text: None,
        })
        .collect();
    for (node, line) in nodes.iter().zip(&lines) {
        if node.started {
            events.start(&node.id);
        }
        events.finish(&node.id, line.status.name(), node.key.as_deref(), 0);
        if let Some(reason) = &node.skipped {
            crate::err!("{}", crate::progress::skipped_line(&node.id, reason));
        }
    }
    if std::env::var_os("ADMF_TRACE").is_some() {
        crate::errln!(
            "trace: up to date by {}{} in {:?}",
            record.path.display(),
            if served {
                " (vouched for by admf serve)"
            } else {
                ""
            },
            started.elapsed()
        );
    }
    conclude(
        wf,
        args,
        &lines,
        events,
        started,
        Ledger::Now { files_digest: None },
    );
    0
}

/// What the summary, `events.jsonl` and `--json` say of one selected node.
struct NodeLine<'a> {
    id: &'a str,
    status: Status,
    key: Option<String>,
    seconds: Option<f64>,
    report: Option<PathBuf>,
    /// A backtest's headline figures.
    headline: Option<String>,
    /// A failed node's error message and log.
    failure: Option<(&'a str, &'a [u8])>,
    /// The digest of its entry's `metrics.json`, for the run ledger,
    /// when the build holds the entry ([`crate::store::RunNode::metrics_blob`]).
    metrics_blob: Option<Option<String>>,
    /// Its metrics as the ledger stores them, when made where it ran
    /// ([`crate::store::RunNode::metrics_text`]).
    metrics_text: Option<std::sync::Arc<str>>,
}

/// When [`conclude`] adds the build to the run ledger.
#[derive(Clone, Copy)]
enum Ledger<'a> {
    /// Before it reports: `files_digest` as [`record_run`] takes it.
    Now { files_digest: Option<&'a str> },
    /// Not at all: the caller does, after answering a caller that does
    /// not wait for the row, holding [`crate::store::Store::ledger_pending`].
    AfterAnswer,
}

/// Appends the build to the store's run ledger. A ledger that cannot be
/// written costs the build nothing but its row: say so and go on.
/// `files_digest`: the digest of the workflow's files as compiled
/// ([`crate::ir::Workflow::files_digest`]); `None` (a build the up-to-date
/// record proved a no-op, which read none) takes the digest of the
/// workflow's last run, which the record proves still holds.
fn record_run(
    wf: &WorkflowArgs,
    args: &BuildArgs,
    lines: &[NodeLine],
    started: Instant,
    files_digest: Option<&str>,
) {
    let unix_ms = |t: SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    let now = SystemTime::now();
    let started_unix_ms = unix_ms(now - started.elapsed());
    let workflow_id = super::workflow_id(&wf.workflow);
    let root = super::store_root(wf);
    let result = crate::store::Store::open(&root).and_then(|store| {
        let git = crate::results::history::git_state_of(&wf.workflow);
        let (digest, last_nodes) = match files_digest {
            Some(digest) => (Some(digest.to_string()), None),
            None => store.last_digest_and_nodes(&workflow_id)?,
        };
        let mut run = crate::store::RunRecord {
            run_id: crate::store::new_run_id(started_unix_ms),
            started_unix_ms,
            finished_unix_ms: unix_ms(now),
            workflow: wf.workflow.display().to_string(),
            workflow_id: workflow_id.clone(),
            sets: wf.sets.clone(),
            targets: args.targets.clone(),
            nodes: lines
                .iter()
                .map(|l| crate::store::RunNode {
                    node: l.id.to_string(),
                    key: l.key.clone(),
                    status: l.status.name().to_string(),
                    duration_ms: l.seconds.unwrap_or(0.0) * 1000.0,
                    metrics_blob: l.metrics_blob.clone(),
                    metrics_text: l.metrics_text.clone(),
                    ..Default::default()
                })
                .collect(),
            name: args.name.clone(),
            git_commit: git.as_ref().map(|(c, _)| c.clone()),
            git_dirty: git.map(|(_, d)| d),
            digest,
        };
        // A no-op the record answered whose nodes are the last run's to
        // the byte (a repeated no-op: same ids, keys, statuses) needs no
        // metrics looked up: the last run's lookup stored them by key,
        // and trimming keeps a key's metrics while a kept run names it.
        let repeated =
            last_nodes.is_some_and(|last| last == crate::store::encode_nodes(&run.nodes));
        if !repeated {
            crate::results::history::add_metrics(&store, &mut run.nodes);
        }
        store.record_run(&run)
    });
    if let Err(e) = result {
        crate::errln!("admf: cannot add this build to the run ledger: {e}");
    }
}

/// Print the summary, report paths and `--json`, and save the events.
/// Returns the count of nodes per [`Status::index`].
fn conclude(
    wf: &WorkflowArgs,
    args: &BuildArgs,
    lines: &[NodeLine],
    mut events: EventLog,
    started: Instant,
    ledger: Ledger,
) -> [usize; 5] {
    let store_root = super::store_root(wf);
    let read_only = crate::store::not_writable(&store_root);
    match (&read_only, ledger) {
        (None, Ledger::Now { files_digest }) => {
            record_run(wf, args, lines, started, files_digest);
        }
        (None, Ledger::AfterAnswer) => {}
        (Some(e), _) => crate::errln!(
            "note: the store {} is not writable: {e}; this build is not added to its run ledger",
            std::path::absolute(&store_root)
                .unwrap_or_else(|_| store_root.clone())
                .display()
        ),
    }
    let json_output = crate::results::build_json::BuildJson::open(
        args.json,
        &store_root,
        &super::workflow_id(&wf.workflow),
    );
    let mut counts = [0usize; Status::ALL.len()];
    let mut rows = Vec::new();
    let mut json_nodes = Vec::new();
    let list_cached =
        lines.iter().filter(|l| l.status != Status::NotRun).count() <= FULL_SUMMARY_ROWS;
    for line in lines {
        counts[line.status.index()] += 1;
        // A node that was not run has no row, only the line after the table.
        if line.status != Status::NotRun && (list_cached || line.status != Status::Cached) {
            rows.push(SummaryRow {
                node: line.id.to_string(),
                outcome: line.status,
                seconds: if line.status == Status::Skipped {
                    None
                } else {
                    line.seconds
                },
            });
        }
        if args.json {
            json_nodes.push(json_output.node(
                line.id,
                line.status,
                line.key.as_deref(),
                line.seconds,
                line.report.as_deref(),
                line.failure,
            ));
        }
    }
    let mut end = json!({"event": "end"});
    add_totals(&mut end, &counts);
    events.push(end);
    if read_only.is_none()
        && let Err(e) = events.save()
    {
        crate::errln!("admf: cannot write {}: {e}", events.path().display());
    }
    let wall = started.elapsed().as_secs_f64();
    let mut summary = render_summary(&rows, wall, color());
    if rows.len() != lines.len() {
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
    for line in lines {
        if let Some(path) = &line.report {
            crate::errln!("report: {} ({})", path.display(), line.id);
        }
    }
    let headlines: Vec<&NodeLine> = lines.iter().filter(|l| l.headline.is_some()).collect();
    if headlines.len() <= super::headline::MAX_LINES {
        for line in headlines {
            crate::errln!(
                "{}: {}",
                line.id,
                line.headline.as_deref().unwrap_or_default()
            );
        }
    }
    if args.json {
        let mut out = json!({
            "workflow": wf.workflow.display().to_string(),
            "nodes": json_nodes,
            "reports": lines.iter().filter_map(|l| l.report.as_ref()).collect::<Vec<_>>(),
        });
        add_totals(&mut out, &counts);
        crate::outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    }
    counts
}

/// Adds each status's count to the JSON object `object`, keyed by the
/// status's name, in [`Status::ALL`] order.
fn add_totals(object: &mut serde_json::Value, counts: &[usize; Status::ALL.len()]) {
    for status in Status::ALL {
        object[status.name()] = json!(counts[status.index()]);
    }
}

/// The page ([`crate::phases::Phase::page`]) of a node that ran or came
/// from the cache.
fn report_path(
    ctx: &crate::run::RunContext,
    node: &crate::graph::Node,
    result: &crate::run::NodeResult,
) -> Option<PathBuf> {
    let page = ctx.factory.get(&node.mode)?.page()?;
    let entry = result.entry_in(ctx)?;
    Some(entry.view().ok()?.join(page))
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
