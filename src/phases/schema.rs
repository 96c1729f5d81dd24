//! The documented keys of every mode, of a phase and of a workflow file,
//! and the file format of every artifact a mode writes. `admf modes`,
//! `admf strategies` and `docs/reference.md` are rendered from these
//! declarations; tests hold them equal to the keys each mode accepts
//! ([`super::Phase::config_keys`]), so an undocumented key cannot ship.

/// One documented key.
#[derive(Clone, Copy, Debug)]
pub struct KeyDoc {
    pub name: &'static str,
    pub ty: &'static str,
    /// What an absent key means; `"required"` when it must be given.
    pub default: &'static str,
    pub doc: &'static str,
}

/// One artifact file and its format.
#[derive(Clone, Copy, Debug)]
pub struct FileDoc {
    pub name: &'static str,
    pub format: &'static str,
}

/// One mode: what it does, the keys it takes, the files it writes.
#[derive(Clone, Copy, Debug)]
pub struct ModeDoc {
    pub name: &'static str,
    pub summary: &'static str,
    pub keys: &'static [KeyDoc],
    pub files: &'static [FileDoc],
    /// What `when:` conditions downstream may test, as dotted paths into
    /// this mode's `metrics.json`.
    pub condition_paths: &'static [&'static str],
}

const fn k(
    name: &'static str,
    ty: &'static str,
    default: &'static str,
    doc: &'static str,
) -> KeyDoc {
    KeyDoc {
        name,
        ty,
        default,
        doc,
    }
}

const fn f(name: &'static str, format: &'static str) -> FileDoc {
    FileDoc { name, format }
}

const DATA: KeyDoc = k(
    "data",
    "map",
    "inherited",
    "the bars to use (see Data); inherited from the top level",
);
const STRATEGY: KeyDoc = k(
    "strategy",
    "map",
    "inherited",
    "`{type, parameters}` (see Strategies); inherited from the top level",
);
const STRATEGY_UNUSED: KeyDoc = k(
    "strategy",
    "map",
    "inherited",
    "accepted for inheritance; the mode does not use it",
);
const COSTS: KeyDoc = k(
    "costs",
    "map",
    "{fee: 0, slippage_bps: 0}",
    "`{fee: f, slippage_bps: s}` (see Costs); inherited from the top level",
);
const EXECUTION: KeyDoc = k(
    "execution",
    "map",
    "{fill: close}",
    "`{fill: close | next_open}` (see Execution); inherited from the top level",
);
const EXECUTION_CLOSE_ONLY: KeyDoc = k(
    "execution",
    "map",
    "{fill: close}",
    "accepted for inheritance; `fill` must be `close`, since the mode replays saved signals at the close",
);
const SPLIT: KeyDoc = k(
    "split",
    "number in (0, 1) | {train, validation?, test?}",
    "0.8",
    "the parts of the bars, fractions or dates (see Split); inherited from the top level",
);
const OBJECTIVE: KeyDoc = k(
    "objective",
    "sharpe | sortino | total_return | cagr | calmar",
    "sharpe",
    "the metric that ranks trials (highest wins, ties to the lowest index, a null last; see Metrics)",
);

/// The `metrics.json` of a single backtest run.
const RUN_METRICS: &str = "JSON object: every metric (see Metrics) plus `strategy`, `params` (every parameter, defaults included), `fee`, `slippage_bps`, `fill`, `symbols`, and `benchmark: {name: buy_and_hold, metrics: {metrics}, alpha, beta, information_ratio, excess_return}` (see Benchmark); with several symbols also `per_symbol: {SYMBOL: {metrics}}`";
const EQUITY: &str = "CSV `ts,equity,position`: one row per bar, equity starting at 1, `position` the one held (with several symbols `equity.csv` is the equal-weight portfolio `ts,equity` and `equity_SYMBOL.csv` each symbol)";
const BENCHMARK_CURVE: &str = "CSV `ts,equity`: buy-and-hold of the same bars, costs and fill, one row per bar (one symbol only)";
const TRADES: &str = "CSV `symbol,side,entry_ts,exit_ts,bars,closed,return`: every round trip, `side` long|short, `closed` false for a trade still open on the last bar";
const TRIALS: &str = "JSON list of `{index, name, params, metrics}`, one per trial in grid order";
const SIGNALS: &str = "sparse signal, one JSON object per position change: `{\"i\": bar index, \"ts\": timestamp as in the data, \"sym\": symbol, \"v\": position from bar i on}`; the position before the first line is 0";

pub const MODES: &[ModeDoc] = &[
    ModeDoc {
        name: "backtest",
        summary: "One strategy over the inherited data.",
        keys: &[DATA, STRATEGY, COSTS, EXECUTION],
        files: &[
            f("metrics.json", RUN_METRICS),
            f("equity.csv", EQUITY),
            f("trades.csv", TRADES),
            f("benchmark.csv", BENCHMARK_CURVE),
        ],
        condition_paths: &[
            "total_return",
            "cagr",
            "sharpe",
            "sortino",
            "max_drawdown",
            "calmar",
            "volatility",
            "trades",
            "win_rate",
            "exposure",
            "ruin",
            "benchmark.excess_return",
            "benchmark.alpha",
            "benchmark.beta",
            "benchmark.information_ratio",
        ],
    },
    ModeDoc {
        name: "signal_generation",
        summary: "A parameter sweep: one trial node per grid combination, each cached on its own and saving its sparse signal, and a gather node (the phase's name) holding them all.",
        keys: &[
            DATA,
            STRATEGY,
            COSTS,
            EXECUTION,
            k(
                "split",
                "number in (0, 1) | {train, validation?, test?}",
                "0.8",
                "read by the gather only, for `train_best` (see Split); trials run over every bar and do not rerun when it changes; inherited from the top level",
            ),
            k(
                "grid",
                "map of key -> list or \"range(a, b, step)\"",
                "no grid: one run",
                "values to sweep; the product is taken in key order, the last key fastest, `range` inclusive of b. A key without a dot is a strategy parameter, a dotted key a config path (`costs.fee`). At most 1,000,000 combinations",
            ),
        ],
        files: &[
            f("signals/trial_N.jsonl", SIGNALS),
            f("trials.json", TRIALS),
            f(
                "metrics.json",
                "gather: `{trials: count, strategy, best: {trial, name, sharpe, total_return, params}, train_best: {trial, name, sharpe, total_return, params}, overfitting: {trials, selected, dsr, sharpe_variance, expected_max_sharpe, min_backtest_years, backtest_years, pbo, pbo_blocks, pbo_combinations}}`, best by Sharpe, ties to the lowest index, a null Sharpe last; `train_best` the same over the train part of the split only (one symbol; the figure a `when:` that gates a selection should read); `overfitting` judges that choice (see Overfitting); a trial node's own `metrics.json` is a backtest's without `fee`, `slippage_bps`, `fill` and `benchmark`, plus `index` and `name`",
            ),
            f(
                "equity.csv, trades.csv",
                "without a grid only, as for backtest",
            ),
        ],
        condition_paths: &[
            "trials",
            "best.sharpe",
            "best.total_return",
            "best.trial",
            "train_best.sharpe",
            "train_best.total_return",
            "train_best.trial",
            "overfitting.dsr",
            "overfitting.pbo",
            "overfitting.min_backtest_years",
            "overfitting.backtest_years",
        ],
    },
    ModeDoc {
        name: "analysis",
        summary: "Which trial of the upstream signal_generation works best in which market regime, measured on the train part of the split only, so that a selection built on it never saw the test bars.",
        keys: &[
            DATA,
            STRATEGY_UNUSED,
            COSTS,
            EXECUTION_CLOSE_ONLY,
            SPLIT,
            k(
                "classifiers",
                "list of classifiers",
                "[volatility, momentum]",
                "the regime classifiers that label every bar (see Classifiers)",
            ),
            OBJECTIVE,
        ],
        files: &[
            f(
                "regimes.json",
                "`{objective, symbol, trials, train_bars, train_end_ts, classifiers: {NAME: {parameters, counts: {LABEL: bars}, regimes: {LABEL: {bars, best: {trial, name, params, sharpe, total_return, max_drawdown, objective}}}}}}`, counts and figures over the train bars 0..train_bars-1",
            ),
            f(
                "labels_CLASSIFIER.csv",
                "CSV `ts,label` for every bar (`warmup` before the classifier is defined)",
            ),
            f(
                "regime_metrics.csv",
                "CSV `classifier,regime,trial,name,bars,sharpe,total_return,max_drawdown,volatility` for every trial and regime over the train bars, an undefined figure an empty cell",
            ),
            f(
                "metrics.json",
                "`{trials, train_bars, objective, best: {classifier, regime, trial, name, sharpe, objective}, CLASSIFIER: {best, LABEL: {trial, name, sharpe}}}`",
            ),
            f(
                "trials.json, signals/",
                "copied from upstream, so a downstream signal_replay finds them",
            ),
        ],
        condition_paths: &["best.sharpe", "best.objective", "trials", "train_bars"],
    },
    ModeDoc {
        name: "signal_replay",
        summary: "A weighted-vote ensemble of saved signals, weights searched on the train part and measured on the test part, without recomputing any strategy. Needs an upstream signal_generation (or analysis).",
        keys: &[
            DATA,
            STRATEGY_UNUSED,
            COSTS,
            EXECUTION_CLOSE_ONLY,
            k(
                "select",
                "all | {top: N} | regime_winners",
                "all",
                "which trials vote: all, the N best on the train part, or every trial best in some regime of the upstream analysis",
            ),
            k(
                "weights",
                "{method: grid, step} | {method: random, samples, seed}",
                "{method: grid, step: 0.1}",
                "candidate weights on the simplex: every composition of 1/step units (1/step a whole number; at most 1,000,000 candidates), or `samples` (10000) Dirichlet(1) draws from ChaCha20 seeded with `seed` (0)",
            ),
            k(
                "threshold",
                "number in [0, 1]",
                "0.5",
                "position = sign(V) when |V| >= threshold, else 0, with V = sum of weight * signal",
            ),
            OBJECTIVE,
            k(
                "split",
                "number in (0, 1) | {train, validation?, test?}",
                "0.8",
                "weights are chosen on the train part only (see Split); the validation part (when declared) and the test part are measured after, each part's equity rebased to 1; inherited from the top level",
            ),
            k(
                "per_regime",
                "classifier name",
                "none",
                "search one weight vector per regime of this classifier, with the labels of the upstream analysis",
            ),
            k(
                "lag",
                "int in [0, 20]",
                "0",
                "robustness check: rerun the whole selection with every signal acted on N bars later and write `lag_check`; 0 skips it",
            ),
            k(
                "pbo",
                "bool",
                "false",
                "with `objective: sharpe`, add to `overfitting` the probability of backtest overfitting of the global weight search (`pbo`, `pbo_blocks`, `pbo_combinations`): CSCV over the train returns of every weighting searched, 8 blocks (70 splits); one pass over the train bars per weighting",
            ),
        ],
        files: &[
            f(
                "weights.json",
                "`{search, candidates, objective, threshold, split, split_index, split_ts, score, signals: [{trial, name, params, weight}], per_regime?: {classifier, regimes: {LABEL: {train_bars, weights_used: regime | global, weights, score}}}}`; `score` is the objective of the train figures of the positions traded, `split_index` the first bar after the train part s; with a validation part also `test_index` and `test_ts`, the first test bar",
            ),
            f(
                "metrics.json",
                "`{train: {metrics}, validation?: {metrics}, test: {metrics}, weightings, signals, objective, score, overfitting: {trials, dsr, sharpe_variance, expected_max_sharpe, min_backtest_years, backtest_years, pbo?, pbo_blocks?, pbo_combinations?}, benchmark: {name: buy_and_hold, train: {metrics, alpha, beta, information_ratio, excess_return}, test: {...}}, lag_check?: {lag, train_sharpe, test_sharpe, test_total_return, collapse}}`; `score` is the objective of the train figures; `overfitting` deflates the train Sharpe ratio by the weightings tried (with `objective: sharpe` only; otherwise `{trials, dsr: null}`); `collapse` is true when the lagged test Sharpe is null or at most half of a positive unlagged one",
            ),
            f(
                "equity.csv",
                "CSV `ts,equity,position,part` over all bars, `part` train|validation|test",
            ),
            f(
                "benchmark.csv",
                "CSV `ts,equity`: buy-and-hold of the same bars and costs over all bars",
            ),
        ],
        condition_paths: &[
            "test.sharpe",
            "train.sharpe",
            "validation.sharpe",
            "validation.total_return",
            "score",
            "signals",
            "overfitting.dsr",
            "overfitting.pbo",
            "benchmark.test.excess_return",
            "lag_check.test_sharpe",
            "lag_check.collapse",
        ],
    },
    ModeDoc {
        name: "report",
        summary: "One self-contained HTML page (inline CSS and SVG, no network) over the direct upstream artifacts: a header with the data, costs, fill and split, backtest metrics and curves, sweep heatmaps (with a colour scale) and the overfitting statistics, regime winners, ensemble train/test against buy-and-hold. Every backtest and ensemble curve comes with equity against buy-and-hold (log scale optional), drawdown, rolling Sharpe ratio, the five deepest drawdown periods and a monthly and yearly returns table; a backtest also lists its trades (the first 500).",
        keys: &[
            k(
                "data",
                "map",
                "inherited",
                "accepted for inheritance; the mode does not use it",
            ),
            STRATEGY_UNUSED,
            k(
                "costs",
                "map",
                "inherited",
                "inherited; shown in the page header",
            ),
            k(
                "execution",
                "map",
                "inherited",
                "inherited; the fill is shown in the page header",
            ),
            k(
                "split",
                "number | map",
                "inherited",
                "inherited; shown in the page header",
            ),
            k("title", "string", "\"admf report: NODE\"", "the page title"),
            k(
                "log_scale",
                "bool",
                "false",
                "draw equity and its buy-and-hold benchmark on a log axis",
            ),
            k(
                "rolling_window",
                "int in [2, 100000]",
                "126",
                "bars in the trailing window of the rolling Sharpe ratio chart (annualised like the metrics)",
            ),
        ],
        files: &[
            f("report.html", "the HTML page"),
            f("metrics.json", "`{sections: [{node, mode}], bytes}`"),
        ],
        condition_paths: &["bytes"],
    },
    ModeDoc {
        name: "command",
        summary: "Any shell step: `run:` under `sh -c` in the declaring file's directory. Inherits nothing, so editing the strategy never reruns it.",
        keys: &[
            k("run", "string", "required", "the shell command"),
            k(
                "inputs",
                "path | glob | list",
                "[]",
                "files whose content enters the node's key",
            ),
            k(
                "outputs",
                "path | list",
                "[]",
                "files the command must create, inside the workflow's directory; removed before it runs, stored, restored on a cache hit; a path ending in `/` is a directory output, stored and restored whole (its digest covers the tree); an input another phase declares as an output is an edge to that phase, and an input glob reaching into another phase's directory output stands for that whole directory (an edge, even on a cold build); an item `{path: P, cache: false}` is kept out of the store: only its digest is recorded (in the entry's `uncached.json`), and when the file is missing or differs from it the node runs again",
            ),
            k(
                "env",
                "map NAME: string or number",
                "{}",
                "added to the command's environment",
            ),
            k(
                "pass_env",
                "list of variable names",
                "[]",
                "variables the command takes from the build's environment, beyond PATH, HOME, LANG, LANGUAGE, LC_* and TMPDIR; their values enter the key (a workflow-wide `pass_env:` applies where a phase has none)",
            ),
            k(
                "metrics",
                "one of outputs",
                "none",
                "an output holding a JSON object; it becomes the node's metrics.json for `when:`",
            ),
            k("description", "string", "none", "free text"),
            k(
                "logs",
                "path | list",
                "[]",
                "files the command may write as logs: removed before it runs, then appended to the node's log (stored, shown by `admf show`), never part of the output digest, so timings in them do not defeat early cutoff",
            ),
            k(
                "timeout",
                "seconds | \"90s\" | \"5m\" | \"1h\"",
                "none",
                "kill the command and everything it started when it runs longer; the node fails (enters the key like every command key)",
            ),
            k(
                "temp",
                "path | list",
                "[]",
                "outputs needed only by the nodes that read them (Snakemake's `temp()`): stored like `outputs:`, but removed from the workspace once every node of the build that depends on this one has finished, not restored on a cache hit, and restored from the store for a reader that runs; a path ending in `/` is a directory",
            ),
        ],
        files: &[
            f("OUTPUT", "each declared output, as the command wrote it"),
            f("metrics.json", "the file named by `metrics:`, when given"),
        ],
        condition_paths: &["any key of the `metrics:` file"],
    },
    ModeDoc {
        name: "walk_forward",
        summary: "Walk-forward selection over the trials of the upstream signal_generation: on each fold the trial with the best train figure is chosen and measured on the test window that follows, and the test windows are stitched into one out-of-sample curve. Trial returns are recomputed from the saved signals with the inherited costs and fill. The phase compiles into nodes of its own, the fold count following from the windows and the data's bar count: `NAME[returns]` (every trial's returns), `NAME[window=A-B]` (the returns A..B a fold uses), `NAME[fold=k]` (its choice and test figures) and `NAME` (the stitch), each cached on its own, so longer data runs the new fold's choice and the stitch only. One symbol.",
        keys: &[
            DATA,
            STRATEGY_UNUSED,
            COSTS,
            EXECUTION,
            k(
                "windows",
                "{train, test, step, anchored, purge}",
                "{train: 756, test: 252, step: test, anchored: false, purge: 0}",
                "bar counts over the returns r_1..r_T: fold k trains on returns [k*step, k*step + train) (from 0 when anchored), leaves `purge` returns out, then tests on the next `test` returns (the last fold may be shorter); train >= 2, test >= 1, step >= test so no test return counts twice",
            ),
            k(
                "objective",
                "sharpe | sortino | total_return | cagr | calmar",
                "sharpe",
                "the train figure that chooses the trial of each fold (highest wins, ties to the lowest index, a null figure last)",
            ),
        ],
        files: &[
            f(
                "folds.csv",
                "CSV `fold,train_start,train_end,test_start,test_end,trial,name,train_objective,test_sharpe,test_total_return`: one row per fold, windows as timestamps, an undefined figure an empty cell",
            ),
            f(
                "equity.csv",
                "CSV `ts,equity,fold`: the stitched out-of-sample curve, equity 1 on the bar before the first test return (its `fold` empty), then one row per test return; switching trials between folds costs nothing, each trial's own trades inside a window are paid",
            ),
            f(
                "metrics.json",
                "`{oos: {metrics}, folds, objective, windows: {train, test, step, anchored, purge}, per_fold: [{fold, train: [start, end], test: [start, end], trial, name, train_objective, test_sharpe, test_total_return}]}`, `oos` the metrics (see Metrics) of the stitched curve",
            ),
        ],
        condition_paths: &[
            "oos.sharpe",
            "oos.total_return",
            "oos.max_drawdown",
            "folds",
            "windows.train",
        ],
    },
    ModeDoc {
        name: "holdout",
        summary: "The one phase that sees the sealed holdout (`data.holdout`; every other mode loads the data without those bars): replays what an upstream backtest (its strategy) or signal_replay (its trials and weights; the sweep it replays must be a direct upstream too, and with weights per regime the analysis it read the regimes of, whose classifier labels every bar again from bars up to it) decided over all the bars with the inherited costs and fill, and measures the held-out bars only, against buy-and-hold. Each build that runs or serves it is counted in the run ledger; the build prints how many have looked. One symbol.",
        keys: &[DATA, STRATEGY_UNUSED, COSTS, EXECUTION],
        files: &[
            f(
                "metrics.json",
                "`{source, mode, from_ts, bars, holdout: {metrics}, benchmark: {name: buy_and_hold, metrics: {metrics}, alpha, beta, information_ratio, excess_return}, per_regime: {classifier, bars: {LABEL: held-out bars}} or null}`: the held-out bars only, equity rebased to 1 at the close before them",
            ),
            f(
                "equity.csv",
                "CSV `ts,equity,position` over the held-out bars, the first row the close before them (equity 1)",
            ),
            f(
                "benchmark.csv",
                "CSV `ts,equity`: buy-and-hold over the same rows",
            ),
        ],
        condition_paths: &["holdout.sharpe", "holdout.total_return", "bars"],
    },
];

/// Keys of a phase that steer the engine rather than configure its mode.
pub const PHASE_KEYS: &[KeyDoc] = &[
    k(
        "name",
        "string",
        "required in a named list",
        "the phase's name (letters, digits, `_`, `-`; at most 128 bytes); also its node id",
    ),
    k(
        "mode",
        "mode name",
        "required",
        "what the phase runs (see Modes); `type` is an alias",
    ),
    k("type", "mode name", "", "alias of `mode`"),
    k(
        "depends_on",
        "list of phase names",
        "the phase before",
        "upstream phases; `[]` makes a root; `inc/inner` names a phase inside an include",
    ),
    k(
        "when",
        "condition",
        "always",
        "`\"up.best.sharpe > 0.5\"`: a dotted path into an upstream node's metrics.json compared with `> >= < <= == !=`, `and` binding tighter than `or`; false skips the node and everything below it",
    ),
    k(
        "workflow",
        "path",
        "",
        "include another workflow file as this phase (a composite); beside it, `vars: {name: value}` replaces `{name}` in every string of that file (other braces stay as written); with `foreach:` or `matrix:` the file is included once per item, its nodes named `phase[item=A]/inner`, the bound names replaced in `workflow:` and the `vars:` values and passed as vars themselves",
    ),
    k(
        "retries",
        "int 0..=100",
        "0",
        "re-execute a failing node this many more times",
    ),
    k("description", "string", "", "free text"),
    k(
        "foreach",
        "list | {values: list, as: NAME} | {glob: GLOB, as: NAME} | {file: PATH, key: DOTTED, as: NAME}",
        "",
        "fan-out: one node per value, named `phase[NAME=value]`, with `{NAME}` (default `{item}`) replaced in every string of the phase; a glob binds each matching file's stem and is listed again at every build, so a new file makes a new node; values are letters, digits, `_ . + -`",
    ),
    k(
        "matrix",
        "map NAME: list (or {glob:} / {file:, key:})",
        "",
        "fan-out over the product of several lists, in declared order, the last fastest: `phase[sample=A,ref=hg38]`; downstream, `depends_on: [phase]` means every instance and a list item `{expand: \"out/{sample}.txt\", over: phase}` one string per instance (in a bound phase, those agreeing on shared names)",
    ),
    k(
        "threads",
        "int 1..=1024",
        "1",
        "how many of the `-j` slots the node takes while it executes (as cargo counts jobserver tokens): with `-j 4`, a `threads: 4` node runs alone; one asking for more than `-j` takes all of them; not part of the key",
    ),
    k(
        "params",
        "{file: PATH, keys: [DOTTED...]}",
        "",
        "values read from a YAML params file: only these enter the key; a command sees each as `ADMF_PARAM_<KEY>` (`train.n_est` → `ADMF_PARAM_TRAIN_N_EST`) and every string may say `{params.train.n_est}`; `--set params.train.n_est=V` overrides one for a build",
    ),
    k(
        "resources",
        "{cpus, mem, time}",
        "1 CPU, the cluster's defaults",
        "what one execution asks of a cluster node: `cpus` (`--cpus-per-task`), `mem` such as `4G` (`--mem`), `time` such as `30` or `1:30:00` (`--time`); not part of the key",
    ),
];

/// Keys at the top of a workflow file.
pub const TOP_KEYS: &[KeyDoc] = &[
    k(
        "phases",
        "list",
        "the simple form",
        "the phases; without it the file is one backtest of `data` and `strategy`",
    ),
    k(
        "data",
        "map",
        "",
        "inherited by every phase whose mode uses it",
    ),
    k(
        "strategy",
        "map",
        "",
        "inherited by every phase whose mode uses it",
    ),
    k(
        "costs",
        "map",
        "",
        "inherited by every phase whose mode uses it",
    ),
    k(
        "execution",
        "map",
        "{fill: close}",
        "when positions are filled (see Execution); inherited by every phase whose mode uses it",
    ),
    k(
        "split",
        "number in (0, 1) | {train, validation?, test?}",
        "0.8",
        "the parts of the bars: train (every selection sees only it), validation, test; fractions or dates (see Split); inherited by analysis, signal_generation (its gather), signal_replay and report",
    ),
    k("name", "string", "", "the workflow's name"),
    k("description", "string", "", "free text"),
    k(
        "on",
        "list of triggers",
        "",
        "what starts a build under `admf watch` (`data_available:`, `schedule:`)",
    ),
    k(
        "allow_outside",
        "bool",
        "false",
        "root file only: allow reads outside the project root",
    ),
    k(
        "executor",
        "{type, partition, account, max_jobs, pack}",
        "{type: local}",
        "root file only: where misses run, `local` threads or `slurm` jobs (see README, Running on a cluster); `--executor` and its flags win key by key",
    ),
    k(
        "results",
        "path",
        "",
        "root file only: a folder, relative to the file, that every build fills with each node's outputs as ordinary files (`DIR/<node>/`; a sweep's trials are in its gather node's folder)",
    ),
    k(
        "pass_env",
        "list of variable names",
        "[]",
        "the `pass_env:` of every command phase that has none of its own",
    ),
];

/// The keys of `data:`.
pub const DATA_KEYS: &[KeyDoc] = &[
    k("source", "csv", "csv", "the only source"),
    k(
        "symbols",
        "list of names",
        "the file's stem",
        "one per file; several need `dir:`",
    ),
    k(
        "path",
        "path",
        "",
        "one OHLCV CSV file, relative to the file that wrote it",
    ),
    k(
        "dir",
        "path",
        "",
        "a directory holding one file per symbol (instead of `path`)",
    ),
    k(
        "pattern",
        "string",
        "\"{symbol}.csv\"",
        "file name under `dir`, `{symbol}` replaced",
    ),
    k(
        "on_bad_rows",
        "error | drop | fix",
        "error",
        "a row breaking a rule fails the phase, is dropped, or is repaired",
    ),
    k(
        "periods_per_year",
        "number > 0",
        "inferred",
        "P, the annualisation base of every metric (252 daily, 52 weekly, 12 monthly); without it P comes from the bar spacing (see Metrics)",
    ),
    k(
        "holdout",
        "number in (0, 1) | date",
        "none",
        "a sealed holdout at the end of the data: the last fraction of each symbol's bars, or every bar from the date on; no mode but `holdout` loads those bars, so every other figure (split parts included) comes from the bars before it",
    ),
];

/// The keys of `strategy:`.
pub const STRATEGY_KEYS: &[KeyDoc] = &[
    k("type", "strategy name", "required", "see Strategies"),
    k(
        "parameters",
        "map",
        "the defaults",
        "the strategy's parameters",
    ),
    k(
        "allow_short",
        "bool",
        "false",
        "keep short positions (also accepted among the parameters)",
    ),
];

/// The keys of `costs:`.
pub const COSTS_KEYS: &[KeyDoc] = &[
    k(
        "fee",
        "fraction in [0, 1)",
        "0",
        "proportional cost per unit of position change",
    ),
    k(
        "slippage_bps",
        "basis points in [0, 10000)",
        "0",
        "slippage of the fill price, paid like the fee: the cost per unit of position change is fee + slippage_bps / 10000, which must stay below 1",
    ),
];

/// The keys of `execution:`.
pub const EXECUTION_KEYS: &[KeyDoc] = &[k(
    "fill",
    "close | next_open",
    "close",
    "a position decided at the close of bar t is filled at that close, or at the open of bar t+1 (see Execution convention); analysis and signal_replay take `close` only",
)];

/// The keys of `split:` in its map form.
pub const SPLIT_KEYS: &[KeyDoc] = &[
    k(
        "train",
        "number in (0, 1) | date",
        "0.8",
        "the train part: bars 0..s-1 with s = floor(bars * train), kept in 2..bars-1, or every bar up to the date (a date alone covers its whole day); `split: 0.8` is short for `split: {train: 0.8}`",
    ),
    k(
        "validation",
        "number in (0, 1) | date",
        "none",
        "a validation part after the train part: the next floor(bars * (train + validation)) - s bars, or every bar up to the date; measured and shown, never chosen on",
    ),
    k(
        "test",
        "number in (0, 1)",
        "the rest",
        "the test part, after the others; with fractions, when given, train + validation + test = 1; with dates it is every later bar",
    ),
];

/// Where the split applies.
pub const SPLIT_RULE: &str = "Declared once (at the top of the workflow, or on a phase), the split is the same for every selection: analysis measures regimes on the train part only, signal_replay chooses trials (`top: N`, `regime_winners`) and weights on the train part only, and the sweep's `train_best` ranks the trials on it; the validation part, when declared, is measured after the choice and never chosen on, and the test part follows it. Give every part as a fraction or every part as a date. A `when:` that decides whether a selection goes on should read a train or validation figure (`train_best.sharpe`, `train.sharpe`, `validation.sharpe`): gating on `test` figures makes them in-sample. Train returns are r_1..r_{s-1}, validation returns r_s..r_{v-1}, test returns r_v..r_T, each part's equity rebased to 1 at its first bar's previous close.";

/// The declaration of `mode`, if there is one.
pub fn mode(name: &str) -> Option<&'static ModeDoc> {
    MODES.iter().find(|m| m.name == name)
}

/// What the data files must look like.
pub const DATA_FORMAT: &str = "OHLCV CSV. With a header line: a time column (`date`, `datetime`, `timestamp` or `time`; `date` plus `time` are joined), `open`, `high`, `low`, `close` and optionally `volume`, any order and case, other columns ignored. Without one: `time, open, high, low, close[, volume]` (NinjaTrader's `YYYYMMDD HHMMSS;O;H;L;C;V`). Delimiter `;` when the first line holds one, else `,`, else tab. Every row: fields parse, prices > 0, volume >= 0, high >= max(open, close), low <= min(open, close), time strictly after the previous row.";

#[cfg(test)]
mod tests {
    //! The declarations against the code: a key a mode accepts but nobody
    //! documented, or a documented key no mode accepts, fails here.

    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;
    use crate::market::benchmark::relative;
    use crate::market::catalog::{
        BENCHMARK_METRICS, CLASSIFIERS, METRICS, MetricDoc, OVERFITTING_METRICS, ParamDoc,
        STRATEGIES,
    };
    use crate::market::equity::Fill;
    use crate::market::{Metrics, Objective, classifier, strategy};
    use crate::phases::signal_generation::{PBO_BLOCKS, overfitting_stats};
    use crate::phases::walk_forward::windows;
    use crate::phases::{Builtin, Factory, artifacts, config};

    fn names(keys: &[KeyDoc]) -> BTreeSet<&str> {
        keys.iter().map(|k| k.name).collect()
    }

    fn set<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
        items.into_iter().collect()
    }

    #[test]
    fn every_mode_is_declared_with_exactly_the_keys_it_accepts() {
        let declared: Vec<&str> = MODES.iter().map(|m| m.name).collect();
        assert_eq!(
            declared,
            crate::phases::MODES,
            "declare every mode, in order"
        );
        let factory = Builtin::default();
        for m in MODES {
            let phase = factory.get(m.name).expect("a declared mode exists");
            let accepted = match phase.config_keys() {
                Some(keys) => set(keys.iter().copied()),
                None => set(crate::phases::command::KEYS.iter().copied()),
            };
            let mut declared = names(m.keys);
            // `description` is accepted by every mode.
            if !accepted.contains("description") {
                declared.remove("description");
            }
            assert_eq!(declared, accepted, "keys of mode `{}`", m.name);
            assert!(!m.files.is_empty() && !m.condition_paths.is_empty());
        }
    }

    #[test]
    fn shared_keys_are_declared() {
        assert_eq!(names(DATA_KEYS), set(config::DATA_KEYS.iter().copied()));
        assert_eq!(names(COSTS_KEYS), set(config::COSTS_KEYS.iter().copied()));
        assert_eq!(
            names(STRATEGY_KEYS),
            set(strategy::STRATEGY_KEYS.iter().copied())
        );
        assert_eq!(
            names(TOP_KEYS),
            set(crate::workflow::forms::TOP_KEYS.iter().copied())
        );
        assert_eq!(
            names(PHASE_KEYS),
            set(crate::workflow::forms::PHASE_KEYS.iter().copied())
        );
        for objective in Objective::NAMES {
            assert!(OBJECTIVE.ty.contains(objective), "{objective}");
        }
    }

    /// A declared default, parsed as the YAML a user would write.
    fn default_value(p: &ParamDoc) -> Value {
        serde_yaml::from_str(p.default).expect("a default is a YAML scalar")
    }

    fn same_number(a: &Value, b: &Value) -> bool {
        match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        }
    }

    #[test]
    fn strategies_are_declared_with_their_parameters_and_defaults() {
        let declared: Vec<&str> = STRATEGIES.iter().map(|s| s.name).collect();
        assert_eq!(declared, strategy::TYPES);
        for s in STRATEGIES {
            let mut params: BTreeSet<&str> = s.params.iter().map(|p| p.name).collect();
            params.insert(ALLOW_SHORT_NAME);
            assert_eq!(
                params,
                set(strategy::parameter_names(s.name).iter().copied()),
                "{}",
                s.name
            );
            let parsed = strategy::Strategy::from_config(&json!({"type": s.name})).unwrap();
            let effective = parsed.parameters();
            for p in s.params {
                assert!(
                    same_number(&effective[p.name], &default_value(p)),
                    "{}.{}: code {} vs declared {}",
                    s.name,
                    p.name,
                    effective[p.name],
                    p.default
                );
            }
            assert_eq!(effective["allow_short"], default_value(&ALLOW_SHORT));
        }
    }

    const ALLOW_SHORT_NAME: &str = crate::market::catalog::ALLOW_SHORT.name;
    const ALLOW_SHORT: ParamDoc = crate::market::catalog::ALLOW_SHORT;

    #[test]
    fn classifiers_are_declared_with_their_parameters_and_defaults() {
        let declared: Vec<&str> = CLASSIFIERS.iter().map(|c| c.name).collect();
        assert_eq!(declared, classifier::TYPES);
        for c in CLASSIFIERS {
            let parsed = classifier::Classifier::from_config(&json!(c.name)).unwrap();
            let effective = parsed.parameters();
            let keys: BTreeSet<&str> = effective
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                c.params.iter().map(|p| p.name).collect(),
                "{}",
                c.name
            );
            for p in c.params {
                assert!(
                    same_number(&effective[p.name], &default_value(p)),
                    "{}.{}",
                    c.name,
                    p.name
                );
            }
        }
    }

    #[test]
    fn every_metric_written_is_defined() {
        let written = artifacts::metric_names();
        let written: BTreeSet<&str> = written.iter().map(String::as_str).collect();
        let declared: BTreeSet<&str> = METRICS.iter().map(|m| m.name).collect();
        assert_eq!(declared, written);
        // The optional keys are absent from a run that needs none of them.
        let plain = artifacts::metrics_map(&Metrics::default());
        for optional in ["ruin", "undefined", "warnings"] {
            assert!(written.contains(optional) && !plain.contains_key(optional));
        }
    }

    fn keys_of(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    fn declared_names(docs: &[MetricDoc]) -> BTreeSet<String> {
        docs.iter().map(|m| m.name.to_string()).collect()
    }

    #[test]
    fn benchmark_figures_are_declared() {
        let written = serde_json::to_value(relative(&[1.0, 1.1, 1.0], &[1.0, 1.2, 1.1], 252.0));
        assert_eq!(
            keys_of(&written.unwrap()),
            declared_names(BENCHMARK_METRICS)
        );
    }

    #[test]
    fn overfitting_statistics_are_declared() {
        let written = overfitting_stats(&[], &[], 0, 252.0);
        assert_eq!(keys_of(&written), declared_names(OVERFITTING_METRICS));
        let blocks = OVERFITTING_METRICS
            .iter()
            .find(|m| m.name == "pbo_blocks")
            .unwrap();
        assert!(blocks.formula.contains(&format!("S = {PBO_BLOCKS}")));
    }

    #[test]
    fn execution_split_and_windows_are_declared_with_their_defaults() {
        assert_eq!(names(EXECUTION_KEYS), set(["fill"]));
        let fill = &EXECUTION_KEYS[0];
        for name in Fill::NAMES {
            assert!(fill.ty.contains(name), "{name}");
            let parsed = config::fill(&json!({"execution": {"fill": name}})).unwrap();
            assert_eq!(parsed.name(), *name);
        }
        assert_eq!(config::fill(&json!({})).unwrap().name(), fill.default);
        let other = config::fill(&json!({"execution": {"at": "close"}})).unwrap_err();
        assert_eq!(other.key, "execution.at");

        assert_eq!(names(SPLIT_KEYS), set(["train", "validation", "test"]));
        let train: f64 = SPLIT_KEYS[0].default.parse().unwrap();
        assert_eq!(
            crate::phases::split::split(&json!({})).unwrap().train,
            crate::phases::split::Edge::Fraction(train)
        );
        let top = TOP_KEYS.iter().find(|k| k.name == "split").unwrap();
        assert_eq!(top.default, SPLIT_KEYS[0].default);
        let other = crate::phases::split::split(&json!({"split": {"tset": 0.2}})).unwrap_err();
        assert_eq!(other.key, "split.tset");

        let w = windows(&json!({})).unwrap();
        let declared = mode("walk_forward")
            .unwrap()
            .keys
            .iter()
            .find(|k| k.name == "windows")
            .unwrap()
            .default;
        assert_eq!(w.step, w.test, "step defaults to test");
        assert_eq!(
            declared,
            format!(
                "{{train: {}, test: {}, step: test, anchored: {}, purge: {}}}",
                w.train, w.test, w.anchored, w.purge
            )
        );
    }

    #[test]
    fn costs_default_to_nothing_as_declared() {
        assert_eq!(config::costs(&json!({})).unwrap(), (0.0, 0.0));
        for k in COSTS_KEYS {
            assert_eq!(k.default, "0", "{}", k.name);
        }
        assert_eq!(COSTS.default, "{fee: 0, slippage_bps: 0}");
    }

    /// The mode's normal form of `config` (a single node's).
    fn normal(mode: &str, config: &Value) -> Result<Value, crate::phases::ConfigIssue> {
        let factory = Builtin::default();
        let phase = factory.get(mode).unwrap();
        phase.normalize(config.clone(), &crate::phases::Role::Single)
    }

    /// A config every trading mode accepts.
    fn base_config() -> Value {
        json!({
            "data": {"path": "SPY_D.csv", "holdout": 0.2},
            "strategy": {"type": "momentum"},
        })
    }

    /// Sets `path` (dotted) in `config` to `value`.
    fn with(config: &Value, path: &str, value: Value) -> Value {
        let mut out = config.clone();
        let mut at = &mut out;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            if !at.get(*part).is_some_and(Value::is_object) {
                at[*part] = json!({});
            }
            at = &mut at[*part];
        }
        at[parts[parts.len() - 1]] = value;
        out
    }

    /// A declared default as the YAML a user would write, when it is one
    /// (not prose such as "inherited" or "the file's stem").
    fn literal(default: &str) -> Option<Value> {
        let v: Value = serde_yaml::from_str(default).ok()?;
        match v.as_str() {
            Some(s) if s.contains(' ') || ["inherited", "required", "none"].contains(&s) => None,
            // The report's title names its node: no value to write.
            Some(s) if s.contains("NODE") => None,
            _ => Some(v),
        }
    }

    #[test]
    fn every_declared_default_written_out_keeps_the_normal_form() {
        let mut checked = BTreeSet::new();
        let mut assert_default = |mode: &str, base: &Value, path: &str, value: Value| {
            let omitted = normal(mode, base).unwrap();
            let written = normal(mode, &with(base, path, value.clone()));
            // A default that is not a literal value ("none", "inherited")
            // is not a value the parser takes.
            let Ok(written) = written else { return };
            assert_eq!(omitted, written, "{mode}: `{path}: {value}`");
            // The normal form is a fixed point.
            assert_eq!(normal(mode, &omitted).unwrap(), omitted, "{mode}");
            checked.insert(format!("{mode}.{path}"));
        };
        for m in MODES.iter().filter(|m| m.name != "command") {
            let base = base_config();
            for key in m.keys {
                if let Some(v) = literal(key.default) {
                    assert_default(m.name, &base, key.name, v);
                }
            }
            for (group, keys) in [
                ("data", DATA_KEYS),
                ("costs", COSTS_KEYS),
                ("execution", EXECUTION_KEYS),
            ] {
                for key in keys {
                    if let Some(v) = literal(key.default) {
                        assert_default(m.name, &base, &format!("{group}.{}", key.name), v);
                    }
                }
            }
        }
        for s in STRATEGIES {
            let base = with(&base_config(), "strategy.type", json!(s.name));
            for p in s.params.iter().chain([&ALLOW_SHORT]) {
                let path = format!("strategy.parameters.{}", p.name);
                assert_default("backtest", &base, &path, default_value(p));
            }
        }
        for c in CLASSIFIERS {
            let base = with(&base_config(), "classifiers", json!([c.name]));
            for p in c.params {
                let mut written = json!({"type": c.name});
                written[p.name] = default_value(p);
                assert_default("analysis", &base, "classifiers", json!([written]));
            }
        }
        // The defaults that must have been checked, not skipped.
        for must in [
            "backtest.costs.fee",
            "backtest.costs.slippage_bps",
            "backtest.execution.fill",
            "backtest.data.source",
            "backtest.data.on_bad_rows",
            "backtest.strategy.parameters.lookback",
            "backtest.strategy.parameters.allow_short",
            "signal_generation.split",
            "analysis.objective",
            "analysis.classifiers",
            "signal_replay.threshold",
            "signal_replay.lag",
            "signal_replay.pbo",
            "signal_replay.select",
            "signal_replay.split",
            "walk_forward.objective",
            "report.log_scale",
            "report.rolling_window",
            "report.costs.slippage_bps",
            "report.data.on_bad_rows",
            "holdout.costs.fee",
        ] {
            assert!(
                checked.contains(must),
                "{must} was not checked: {checked:?}"
            );
        }
    }

    #[test]
    fn a_value_other_than_the_default_changes_the_normal_form() {
        let base = base_config();
        for (mode, path, value) in [
            ("backtest", "strategy.parameters.lookback", json!(21)),
            ("backtest", "costs.slippage_bps", json!(1)),
            ("backtest", "execution.fill", json!("next_open")),
            ("signal_generation", "split", json!(0.7)),
            ("analysis", "objective", json!("sortino")),
            ("signal_replay", "threshold", json!(0.4)),
            ("walk_forward", "windows.purge", json!(1)),
            ("report", "rolling_window", json!(20)),
        ] {
            assert_ne!(
                normal(mode, &base).unwrap(),
                normal(mode, &with(&base, path, value)).unwrap(),
                "{mode}.{path}"
            );
        }
    }
}
