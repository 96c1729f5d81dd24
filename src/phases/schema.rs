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
    "{fee: 0}",
    "`{fee: f}` (see Costs); inherited from the top level",
);
const OBJECTIVE: KeyDoc = k(
    "objective",
    "sharpe | sortino | total_return | cagr | calmar",
    "sharpe",
    "the metric that ranks trials (highest wins, ties to the lowest index)",
);

/// The `metrics.json` of a single backtest run.
const RUN_METRICS: &str = "JSON object: every metric (see Metrics) plus `strategy`, `params` (every parameter, defaults included), `fee`, `symbols`; with several symbols also `per_symbol: {SYMBOL: {metrics}}`";
const EQUITY: &str = "CSV `ts,equity,position`: one row per bar, equity starting at 1 (with several symbols `equity.csv` is the equal-weight portfolio `ts,equity` and `equity_SYMBOL.csv` each symbol)";
const TRADES: &str = "CSV `symbol,side,entry_ts,exit_ts,bars,closed,return`: every round trip, `side` long|short, `closed` false for a trade still open on the last bar";
const TRIALS: &str = "JSON list of `{index, name, params, metrics}`, one per trial in grid order";
const SIGNALS: &str = "sparse signal, one JSON object per position change: `{\"i\": bar index, \"ts\": timestamp as in the data, \"sym\": symbol, \"v\": position from bar i on}`; the position before the first line is 0";

pub const MODES: &[ModeDoc] = &[
    ModeDoc {
        name: "backtest",
        summary: "One strategy over the inherited data.",
        keys: &[DATA, STRATEGY, COSTS],
        files: &[
            f("metrics.json", RUN_METRICS),
            f("equity.csv", EQUITY),
            f("trades.csv", TRADES),
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
        ],
    },
    ModeDoc {
        name: "signal_generation",
        summary: "A parameter sweep: one trial node per grid combination, each cached on its own and saving its sparse signal, and a gather node (the phase's name) holding them all.",
        keys: &[
            DATA,
            STRATEGY,
            COSTS,
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
                "gather: `{trials: count, strategy, best: {trial, name, sharpe, total_return, params}}`, best by Sharpe, ties to the lowest index; a trial node's own `metrics.json` is a backtest's plus `index` and `name`",
            ),
            f(
                "equity.csv, trades.csv",
                "without a grid only, as for backtest",
            ),
        ],
        condition_paths: &["trials", "best.sharpe", "best.total_return", "best.trial"],
    },
    ModeDoc {
        name: "analysis",
        summary: "Which trial of the upstream signal_generation works best in which market regime.",
        keys: &[
            DATA,
            STRATEGY_UNUSED,
            COSTS,
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
                "`{objective, symbol, trials, classifiers: {NAME: {parameters, counts: {LABEL: bars}, regimes: {LABEL: {bars, best: {trial, name, params, sharpe, total_return, max_drawdown, objective}}}}}}`",
            ),
            f(
                "labels_CLASSIFIER.csv",
                "CSV `ts,label` for every bar (`warmup` before the classifier is defined)",
            ),
            f(
                "regime_metrics.csv",
                "CSV `classifier,regime,trial,name,bars,sharpe,total_return,max_drawdown,volatility` for every trial and regime",
            ),
            f(
                "metrics.json",
                "`{trials, best: {classifier, regime, trial, name, sharpe, objective}, CLASSIFIER: {best, LABEL: {trial, name, sharpe}}}`",
            ),
            f(
                "trials.json, signals/",
                "copied from upstream, so a downstream signal_replay finds them",
            ),
        ],
        condition_paths: &["best.sharpe", "best.objective", "trials"],
    },
    ModeDoc {
        name: "signal_replay",
        summary: "A weighted-vote ensemble of saved signals, weights searched on the train part and measured on the test part, without recomputing any strategy. Needs an upstream signal_generation (or analysis).",
        keys: &[
            DATA,
            STRATEGY_UNUSED,
            COSTS,
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
                "number in (0, 1)",
                "0.8",
                "the train part is the first floor(bars * split) bars; the test part the rest, its equity rebased to 1",
            ),
            k(
                "per_regime",
                "classifier name",
                "none",
                "search one weight vector per regime of this classifier, with the labels of the upstream analysis",
            ),
        ],
        files: &[
            f(
                "weights.json",
                "`{search, candidates, objective, threshold, split, split_index, split_ts, score, signals: [{trial, name, params, weight}], per_regime?}`",
            ),
            f(
                "metrics.json",
                "`{train: {metrics}, test: {metrics}, weightings, signals, objective, score}`",
            ),
            f(
                "equity.csv",
                "CSV `ts,equity,position,part` over all bars, `part` train|test",
            ),
        ],
        condition_paths: &["test.sharpe", "train.sharpe", "score", "signals"],
    },
    ModeDoc {
        name: "report",
        summary: "One self-contained HTML page (inline CSS and SVG, no network) over the direct upstream artifacts: backtest metrics and curves, sweep heatmaps, regime winners, ensemble train/test.",
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
                "accepted for inheritance; the mode does not use it",
            ),
            k("title", "string", "\"admf report: NODE\"", "the page title"),
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
                "files the command must create, inside the workflow's directory; removed before it runs, stored, restored on a cache hit",
            ),
            k(
                "env",
                "map NAME: string or number",
                "{}",
                "added to the command's environment",
            ),
            k(
                "metrics",
                "one of outputs",
                "none",
                "an output holding a JSON object; it becomes the node's metrics.json for `when:`",
            ),
            k("description", "string", "none", "free text"),
        ],
        files: &[
            f("OUTPUT", "each declared output, as the command wrote it"),
            f("metrics.json", "the file named by `metrics:`, when given"),
        ],
        condition_paths: &["any key of the `metrics:` file"],
    },
];

/// Keys of a phase that steer the engine rather than configure its mode.
pub const PHASE_KEYS: &[KeyDoc] = &[
    k(
        "name",
        "string",
        "required in a named list",
        "the phase's name; also its node id",
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
        "include another workflow file as this phase (a composite)",
    ),
    k(
        "retries",
        "int >= 0",
        "0",
        "re-execute a failing node this many more times",
    ),
    k("description", "string", "", "free text"),
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
pub const COSTS_KEYS: &[KeyDoc] = &[k(
    "fee",
    "fraction in [0, 1)",
    "0",
    "proportional cost per unit of position change",
)];

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
    use crate::market::catalog::{CLASSIFIERS, METRICS, ParamDoc, STRATEGIES};
    use crate::market::{Metrics, Objective, classifier, strategy};
    use crate::phases::{Builtin, Factory, common};

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
        assert_eq!(names(DATA_KEYS), set(common::DATA_KEYS.iter().copied()));
        assert_eq!(names(COSTS_KEYS), set(common::COSTS_KEYS.iter().copied()));
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
        let written = common::metrics_map(&Metrics::default());
        let written: BTreeSet<&str> = written.keys().map(String::as_str).collect();
        let declared: BTreeSet<&str> = METRICS.iter().map(|m| m.name).collect();
        assert_eq!(declared, written);
    }
}
