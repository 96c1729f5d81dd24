//! One function per subcommand. Each opens a [`Session`] (load → compile →
//! store), does its work and returns the process exit code; errors go back
//! to `main`, which renders them.

mod build;
mod cache;
mod exec_action;
mod export;
mod headline;
mod init;
mod inspect;
pub mod modes;
mod remote_sync;
mod runs;
mod serve;
mod skipped;
mod trials;
mod watch;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::{CacheAction, Cli, Command, ExpAction, WorkflowArgs};
use crate::error::Error;
use crate::graph::{self, Graph};
use crate::paths::root::ProjectRoot;
use crate::phases::{Builtin, Factory};
use crate::reads::Reads;
use crate::run::RunContext;
use crate::stat_cache::StatCache;
use crate::store::Store;

pub fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Build { wf, args } => build::build(&wf, &args),
        Command::Watch { wf, args } => watch::watch(&wf, &args),
        Command::Serve { cache_dir } => serve::serve(&cache_store(cache_dir)?),
        Command::ServeBuilds { store } => serve::serve_builds(&store),
        Command::Graph {
            wf,
            format,
            status,
            expand,
        } => inspect::graph(&wf, &format, status, expand),
        Command::Status { wf, json } => inspect::status(&wf, json),
        Command::Explain { wf, node } => inspect::explain(&wf, &node),
        Command::Show { wf, node, json } => inspect::show(&wf, &node, json),
        Command::ExecAction {
            action,
            output,
            batch,
            linger_ms,
        } => exec_action::run(action, output, batch, linger_ms),
        Command::Validate { wf } => {
            let graph = compile(&wf, &Reads::new())?;
            crate::errln!(
                "{}: ok ({} phases, {} nodes)",
                wf.workflow.display(),
                graph.workflow.phases.len(),
                graph.nodes.len()
            );
            Ok(0)
        }
        Command::Cache {
            cache_dir,
            action: CacheAction::Push { workflow, remote },
        } => {
            let store = cache_store(cache_dir.clone())?;
            remote_sync::push(workflow, cache_dir, &store, &remote)
        }
        Command::Cache {
            cache_dir,
            action: CacheAction::Pull { workflow, remote },
        } => remote_sync::pull(workflow, cache_dir, &remote),
        Command::Cache {
            cache_dir,
            action:
                CacheAction::Ls {
                    workflow,
                    remote: Some(remote),
                },
        } => {
            let store = cache_store(cache_dir.clone())?;
            remote_sync::ls(workflow, &remote, cache_dir, &store)
        }
        Command::Cache { cache_dir, action } => {
            let store = cache_store(cache_dir)?;
            if let CacheAction::Gc {
                older_than: Some(d),
                ..
            } = &action
            {
                cache::parse_duration(d)?;
            }
            if !store.is_dir() {
                // Listing, checking or collecting an absent store has
                // nothing to do, and must not create one.
                crate::errln!("no store at {}", store.display());
                return Ok(0);
            }
            cache::run(&store, action)
        }
        Command::Modes { mode, markdown } => modes::modes(mode.as_deref(), markdown),
        Command::Strategies => modes::strategies(),
        Command::Init { template, force } => init::init(&template, force),
        Command::Export { wf, items, all } => export::export(&wf, &items, all),
        Command::Trials { wf, args } => trials::trials(
            &wf,
            &trials::TrialsArgs {
                phase: args.phase.as_deref(),
                sort: args.sort.as_deref(),
                top: args.top,
                filter: args.filter.as_deref(),
                format: if args.json { "json" } else { &args.format },
                pivot: args.pivot.as_deref(),
                value: &args.value,
            },
        ),
        Command::Runs {
            workflow,
            cache_dir,
            format,
            json,
        } => runs::runs(workflow.as_deref(), cache_dir.as_deref(), &format, json),
        Command::Diff {
            a,
            b,
            cache_dir,
            all,
            json,
        } => runs::diff(&a, &b, cache_dir.as_deref(), all, json),
        Command::Log {
            wf,
            node,
            format,
            json,
        } => runs::log(&wf, &node, &format, json),
        Command::Exp {
            action:
                ExpAction::Show {
                    wf,
                    metric,
                    format,
                    json,
                },
        } => runs::exp_show(&wf, &metric, &format, json),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "admf", &mut std::io::stdout());
            Ok(0)
        }
    }
}

pub fn factory() -> Arc<dyn Factory> {
    Arc::new(Builtin::default())
}

/// The workflow compiled, every file and directory it read noted in
/// `reads`.
pub fn compile(wf: &WorkflowArgs, reads: &Reads) -> Result<Graph, Error> {
    let workflow = crate::workflow::load(&wf.workflow, &wf.sets, reads)?;
    let graph = graph::compile_with(workflow, factory().as_ref(), graph::checks::check, reads)
        .map_err(|e| from_set(e, &wf.sets))?;
    graph::check_trigger_targets(&graph)?;
    Ok(graph)
}

/// An error at a key that a `--set` replaced says so: the file position
/// would show the value the override replaced, not the one that is wrong.
fn from_set(e: Error, sets: &[String]) -> Error {
    let Error::Invalid {
        key, message, hint, ..
    } = &e
    else {
        return e;
    };
    let set = sets.iter().find(|set| {
        let path = set.split_once('=').map_or(set.as_str(), |(k, _)| k);
        // `sweep.grid.x` names a path inside phase `sweep`.
        let inner = path.split_once('.').map(|(_, rest)| rest);
        [Some(path), inner].into_iter().flatten().any(|p| {
            p == key || key.starts_with(&format!("{p}.")) || p.starts_with(&format!("{key}."))
        })
    });
    match set {
        Some(set) => Error::Usage {
            message: format!("`{key}`: {message} (from `--set {set}`)"),
            hint: hint.clone(),
        },
        None => e,
    }
}

/// The directory holding the default store and confining reads: the
/// project root of the workflow (the rule is in [`ProjectRoot`]).
pub fn project_root(workflow: &Path) -> PathBuf {
    crate::paths::root::project_root(workflow)
}

/// The store a workflow builds into: `--cache-dir`, else `cache/` in its
/// project root.
pub fn store_root(wf: &WorkflowArgs) -> PathBuf {
    wf.cache_dir
        .clone()
        .unwrap_or_else(|| ProjectRoot::of_workflow(&wf.workflow).store())
}

/// The store `admf cache` works on: `--cache-dir`, else `cache/` in the
/// project root found from the current directory by the same rule as a
/// build's, so `cd workflows && admf cache ls` lists the project's store.
fn cache_store(cache_dir: Option<PathBuf>) -> Result<PathBuf, Error> {
    if let Some(dir) = cache_dir {
        return Ok(dir);
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    Ok(ProjectRoot::find(&cwd).store())
}

/// Names the workflow's refs: the file stem plus a hash of its absolute
/// path, so two workflows with the same name do not share refs.
pub fn workflow_id(workflow: &Path) -> String {
    let abs = std::fs::canonicalize(workflow).unwrap_or_else(|_| workflow.to_path_buf());
    let hash = blake3::hash(abs.to_string_lossy().as_bytes()).to_hex();
    let stem = workflow.file_stem().unwrap_or_default().to_string_lossy();
    format!("{stem}-{}", &hash[..12])
}

/// A compiled workflow with its store: what every command works on.
pub struct Session {
    pub ctx: Arc<RunContext>,
    /// An empty stand-in store for a read-only command on a project that
    /// has none yet, removed when the session ends.
    _scratch: Option<tempfile::TempDir>,
}

impl Session {
    /// A read-only session (status, graph, explain, show): where no store
    /// exists yet it reads an empty one rather than creating it.
    pub fn open(wf: &WorkflowArgs) -> Result<Session, Error> {
        let reads = Reads::new();
        let graph = compile(wf, &reads)?;
        let root = store_root(wf);
        if root.is_dir() {
            return Session::with_graph(wf, graph, Vec::new(), reads);
        }
        let scratch = tempfile::tempdir().map_err(|e| Error::io(&root, e))?;
        let mut session = Session::at(wf, graph, Vec::new(), scratch.path(), reads)?;
        session._scratch = Some(scratch);
        Ok(session)
    }

    /// A session on an already compiled graph; `force` marks nodes to
    /// execute even when stored (empty: none). What the session reads is
    /// noted in `reads`.
    pub fn with_graph(
        wf: &WorkflowArgs,
        graph: Graph,
        force: Vec<bool>,
        reads: Reads,
    ) -> Result<Session, Error> {
        Session::at(wf, graph, force, &store_root(wf), reads)
    }

    fn at(
        wf: &WorkflowArgs,
        graph: Graph,
        force: Vec<bool>,
        root: &Path,
        reads: Reads,
    ) -> Result<Session, Error> {
        let graph = Arc::new(graph);
        let store = Store::open(root).map_err(|e| Error::io(root, e))?;
        let stats = Arc::new(StatCache::load(&store.stat_cache_path(), reads));
        if let Some(notice) = store.old_layout_notice() {
            crate::errln!("{notice}");
        }
        let force = if force.is_empty() {
            vec![false; graph.nodes.len()]
        } else {
            force
        };
        Ok(Session {
            ctx: Arc::new(RunContext {
                graph,
                store,
                stats,
                factory: factory(),
                workflow_id: workflow_id(&wf.workflow),
                force,
                trace: None,
                remote: None,
                prefetch: Default::default(),
                checked_ahead: Default::default(),
            }),
            _scratch: None,
        })
    }

    pub fn graph(&self) -> &Graph {
        &self.ctx.graph
    }
}

/// Colour on a terminal unless `NO_COLOR` is set.
pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
