//! Command-line definitions; exit codes and conventions in docs/design.md §1.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "admf",
    version,
    about = "Declarative DAG build tool for trading research"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command that reads a workflow.
#[derive(Args, Debug, Clone)]
pub struct WorkflowArgs {
    /// The workflow file.
    pub workflow: PathBuf,
    /// Override a config value: `--set strategy.parameters.lookback=30`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// The store (default: `cache/` at the project root).
    #[arg(long, env = "ADMF_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// What `admf build` does beyond reading the workflow.
#[derive(Args, Debug, Clone)]
pub struct BuildArgs {
    /// Nodes to build, with their dependencies; all when none.
    pub targets: Vec<String>,
    /// How many nodes run at once (default, and 0: the number of cores).
    #[arg(short, long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Execute NODE even if its entry is stored.
    #[arg(long, value_name = "NODE")]
    pub force: Vec<String>,
    /// Execute every node.
    #[arg(long)]
    pub force_all: bool,
    /// Print the planned sequence and what would run, run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep running everything not downstream of a failure.
    #[arg(long, short = 'k')]
    pub keep_going: bool,
    /// Print a JSON report on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print every node's log, not only failed ones.
    #[arg(long, short)]
    pub verbose: bool,
    /// Build NODE and what it needs, nothing below it (like a target).
    #[arg(long, value_name = "NODE")]
    pub until: Vec<String>,
    /// Build NODE and everything that depends on it.
    #[arg(long, value_name = "NODE")]
    pub downstream: Vec<String>,
    /// Where misses run: `local` threads, or `slurm` batch jobs (which
    /// need the workspace and the store on a shared file system).
    /// Overrides the workflow's `executor:`.
    #[arg(long, value_name = "KIND", value_parser = ["local", "slurm"])]
    pub executor: Option<String>,
    /// Slurm partition of the jobs.
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Slurm account the jobs are charged to.
    #[arg(long, value_name = "A")]
    pub account: Option<String>,
    /// The most Slurm jobs queued or running at once (default 16).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub max_jobs: Option<u32>,
    /// The most actions packed into one Slurm job (default 256).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub pack: Option<u32>,
    /// A remote cache shared with other machines (`s3://bucket/prefix`, or
    /// a REAPI v2 server as `grpc[s]://host:port[/instance]`), looked up after
    /// the local store and filled after each commit; S3 credentials and the
    /// endpoint come from `AWS_*` variables.
    #[arg(long, env = "ADMF_REMOTE", value_name = "URL")]
    pub remote: Option<String>,
    /// Record the build in the run history under this experiment name
    /// (`admf exp show`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the workflow's nodes (or TARGETs and what they need).
    Build {
        #[command(flatten)]
        wf: WorkflowArgs,
        #[command(flatten)]
        args: BuildArgs,
    },
    /// Build, then rebuild whenever a file the workflow reads changes or
    /// one of its `on:` triggers fires.
    Watch {
        #[command(flatten)]
        wf: WorkflowArgs,
        #[command(flatten)]
        args: BuildArgs,
    },
    /// Watch the files the store's up-to-date records rest on, so that a
    /// build of an unchanged workflow asks instead of stating each, and
    /// run the builds with work to do in forks of a process holding the
    /// last build's state decoded (Linux; in the foreground until stopped).
    Serve {
        /// The store (default: `cache/` at the project root).
        #[arg(long, env = "ADMF_CACHE_DIR", value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Show the DAG.
    Graph {
        #[command(flatten)]
        wf: WorkflowArgs,
        /// Output format: an indented tree, Graphviz, Mermaid or JSON.
        #[arg(long, default_value = "text", value_parser = ["text", "dot", "mermaid", "json"])]
        format: String,
        /// Colour nodes by status (fresh, stale, missing, skipped).
        #[arg(long)]
        status: bool,
        /// Show every grid trial instead of one node per grid.
        #[arg(long)]
        expand: bool,
    },
    /// Per node: fresh, stale (with the reason), missing or skipped.
    Status {
        #[command(flatten)]
        wf: WorkflowArgs,
        /// Print a JSON list on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Why NODE would run: the changed ingredient, followed to its root cause.
    Explain {
        #[command(flatten)]
        wf: WorkflowArgs,
        /// The node (`phase`, `outer/inner` or a trial `phase[N]`).
        node: String,
    },
    /// Artifact directory, metrics and log of NODE's last build.
    Show {
        #[command(flatten)]
        wf: WorkflowArgs,
        /// The node (`phase`, `outer/inner` or a trial `phase[N]`).
        node: String,
        /// Print JSON: file paths, metrics and the log's path (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// The process of `admf serve` that forks the builds handed to it.
    #[command(hide = true)]
    ServeBuilds {
        /// The store, as an absolute path.
        store: PathBuf,
    },
    /// Execute one action (a JSON file written by a coordinator) and write
    /// its output as JSON; what a cluster executor runs on a compute node.
    #[command(hide = true)]
    ExecAction {
        /// The action, as JSON.
        #[arg(required_unless_present = "batch")]
        action: Option<PathBuf>,
        /// Where to write the action's output (result and log) as JSON.
        #[arg(long, required_unless_present = "batch")]
        output: Option<PathBuf>,
        /// Run every `N.action.json` in DIR instead, writing `N.output.json`
        /// beside each (a packed batch job).
        #[arg(long, value_name = "DIR", conflicts_with_all = ["action", "output"])]
        batch: Option<PathBuf>,
        /// With --batch: once DIR runs dry, wait up to MS milliseconds for
        /// more actions (or a `close` file) before exiting.
        #[arg(long, value_name = "MS", default_value_t = 0, requires = "batch")]
        linger_ms: u64,
    },
    /// Parse and compile the workflow; run nothing.
    Validate {
        #[command(flatten)]
        wf: WorkflowArgs,
    },
    /// Inspect and maintain the store.
    Cache {
        /// The store (default: `cache/` at the project root found from the
        /// current directory). Accepted before or after the action.
        #[arg(long, env = "ADMF_CACHE_DIR", value_name = "DIR", global = true)]
        cache_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// List the modes, or print one mode's keys (types, defaults, meaning)
    /// and the files it writes.
    Modes {
        /// The mode to describe; all modes when omitted.
        mode: Option<String>,
        /// Print markdown; without MODE, the whole reference
        /// (`docs/reference.md`).
        #[arg(long)]
        markdown: bool,
    },
    /// List the strategies with their rules and parameters (and defaults),
    /// and the regime classifiers.
    Strategies,
    /// Write a commented starter workflow into the current directory that
    /// builds as is (with the bundled SPY daily sample when no data is at
    /// hand).
    Init {
        /// Which starter: one backtest, the research pipeline
        /// (sweep, regimes, ensemble, report), or shell steps with a
        /// backtest and a condition.
        #[arg(long, default_value = "backtest", value_parser = ["backtest", "research", "pipeline"])]
        template: String,
        /// Replace an existing workflow file of the same name.
        #[arg(long)]
        force: bool,
    },
    /// Copy nodes' stored outputs into DIR/<node>/ as ordinary files:
    /// `admf export WF NODE... DIR`, or `admf export WF --all DIR`.
    Export {
        #[command(flatten)]
        wf: WorkflowArgs,
        /// The nodes, then the folder (new, empty, or one admf filled).
        #[arg(required = true, value_name = "NODE... DIR")]
        items: Vec<String>,
        /// Every built node but a sweep's single trials.
        #[arg(long)]
        all: bool,
    },
    /// One row per trial of a grid phase: parameters, status, metrics.
    Trials {
        #[command(flatten)]
        wf: WorkflowArgs,
        #[command(flatten)]
        args: TrialsCli,
    },
    /// List recorded builds, oldest first (of WF only when given).
    Runs {
        /// The workflow file; every workflow of the store when omitted.
        workflow: Option<PathBuf>,
        /// The store (default: `cache/` at the project root).
        #[arg(long, env = "ADMF_CACHE_DIR", value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "markdown"])]
        format: String,
        /// Same as `--format json`.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// What changed between two builds: `--set` parameters, node keys and
    /// metrics. A run is a run id (or a unique prefix), an experiment
    /// name, `WF` (its latest build), `WF@-N` or `WF@NAME`.
    Diff {
        /// The earlier run.
        a: String,
        /// The later run.
        b: String,
        /// The store (default: that of a workflow named, else `cache/` at
        /// the current project's root).
        #[arg(long, env = "ADMF_CACHE_DIR", value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// List unchanged parameters, keys and metrics too.
        #[arg(long)]
        all: bool,
        /// Print JSON (docs/json.md).
        #[arg(long)]
        json: bool,
    },
    /// NODE across the recorded builds of WF: status, key, time, metrics.
    Log {
        #[command(flatten)]
        wf: WorkflowArgs,
        /// The node (`phase`, `outer/inner` or a trial `phase[N]`).
        node: String,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "markdown"])]
        format: String,
        /// Same as `--format json`.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
    /// Named builds (`admf build --name NAME`).
    Exp {
        #[command(subcommand)]
        action: ExpAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExpAction {
    /// The latest build of each name side by side: `--set` parameters
    /// and metrics.
    Show {
        #[command(flatten)]
        wf: WorkflowArgs,
        /// Show metrics whose last name is this (`sharpe`, `total_return`);
        /// repeatable; default `sharpe`.
        #[arg(long, value_name = "NAME")]
        metric: Vec<String>,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "markdown"])]
        format: String,
        /// Same as `--format json`.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },
}

/// The command-line arguments of `admf trials`.
#[derive(Args, Debug, Clone)]
pub struct TrialsCli {
    /// The grid phase; every one when omitted.
    pub phase: Option<String>,
    /// Order rows by COLUMN: metrics descending (best Sharpe first),
    /// anything else ascending; `-COL` or `+COL` forces the direction.
    #[arg(long, value_name = "COLUMN", allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Keep the first N rows (after --filter and --sort).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Keep rows meeting `COLUMN OP VALUE` conditions joined by `and`
    /// (`sharpe > 0.5 and lookback <= 20`); OP is > >= < <= == !=.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "markdown"])]
    pub format: String,
    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Lay a two-parameter grid out as a matrix: `ROWS,COLUMNS`.
    #[arg(long, value_name = "A,B")]
    pub pivot: Option<String>,
    /// The cell of a --pivot matrix.
    #[arg(long, value_name = "COLUMN", default_value = "sharpe")]
    pub value: String,
}

#[derive(Subcommand, Debug)]
pub enum CacheAction {
    /// List entries, oldest first; with --remote, whether a remote cache
    /// holds each.
    Ls {
        /// With --remote, list the keys of this workflow (its last build's
        /// refs here and the ref set pushed to the remote) instead of
        /// every key the store knows.
        #[arg(requires = "remote")]
        workflow: Option<PathBuf>,
        /// Ask the remote cache at URL (`s3://bucket/prefix` or
        /// `grpc[s]://host:port[/instance]`; `ADMF_REMOTE` when no URL is
        /// given) which of the listed entries it holds.
        #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
        remote: Option<String>,
    },
    /// Remove entries no ref points at.
    Gc {
        /// Keep the N most recent unreferenced entries.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Remove only unreferenced entries older than D (`30d`, `12h`, `90m`, `45s`).
        #[arg(long, value_name = "D")]
        older_than: Option<String>,
        /// Wait for running builds instead of refusing.
        #[arg(long)]
        wait: bool,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Remove everything: refs, every entry, and a store of an older layout.
        #[arg(long, conflicts_with_all = ["keep", "older_than"])]
        all: bool,
        /// Run history kept per workflow: the N most recent builds plus
        /// the latest build of each experiment name.
        #[arg(long, value_name = "N", default_value_t = 100)]
        keep_runs: usize,
    },
    /// Check every entry's digests; with --repair remove corrupt entries and debris.
    Verify {
        /// Remove corrupt entries and debris instead of only reporting them.
        #[arg(long)]
        repair: bool,
    },
    /// Copy entries to a remote cache: WF's last built entries and its ref
    /// set, or every entry of the store.
    Push {
        /// The workflow whose entries to push; all entries when omitted.
        workflow: Option<PathBuf>,
        /// The remote (`s3://bucket/prefix` or `grpc[s]://host:port[/instance]`).
        #[arg(long, env = "ADMF_REMOTE", value_name = "URL")]
        remote: String,
    },
    /// Copy into the store the entries WF's pushed ref set names.
    Pull {
        /// The workflow whose entries to pull.
        workflow: PathBuf,
        /// The remote (`s3://bucket/prefix` or `grpc[s]://host:port[/instance]`).
        #[arg(long, env = "ADMF_REMOTE", value_name = "URL")]
        remote: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and argument of every subcommand says what it is for.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {}", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "admf", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:?}");
    }
}
