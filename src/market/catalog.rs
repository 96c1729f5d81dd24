//! The documented catalogue of the market layer: strategies with their
//! rules and parameters, regime classifiers, metrics with their formulas,
//! and the execution convention. `admf strategies`, `admf modes` and
//! `docs/reference.md` are rendered from these declarations, and tests
//! hold them to the code (names and defaults come from the parsers).

/// One documented parameter.
#[derive(Clone, Copy, Debug)]
pub struct ParamDoc {
    pub name: &'static str,
    pub ty: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

/// A strategy or a classifier: its name, rule and parameters.
#[derive(Clone, Copy, Debug)]
pub struct RuleDoc {
    pub name: &'static str,
    pub rule: &'static str,
    pub params: &'static [ParamDoc],
}

const fn p(
    name: &'static str,
    ty: &'static str,
    default: &'static str,
    doc: &'static str,
) -> ParamDoc {
    ParamDoc {
        name,
        ty,
        default,
        doc,
    }
}

/// Accepted by every strategy, among `parameters:` or beside them.
pub const ALLOW_SHORT: ParamDoc = p(
    "allow_short",
    "bool",
    "false",
    "keep short positions; without it every short position becomes flat",
);

pub const STRATEGIES: &[RuleDoc] = &[
    RuleDoc {
        name: "momentum",
        rule: "m = C_t/C_{t-L} - 1 with L = lookback; long when m > threshold, short when m < -threshold, else flat",
        params: &[
            p(
                "lookback",
                "int >= 1",
                "20",
                "bars L between the two closes compared",
            ),
            p(
                "threshold",
                "number",
                "0",
                "the return m must exceed to take a position",
            ),
        ],
    },
    RuleDoc {
        name: "sma_crossover",
        rule: "long when SMA(fast) > SMA(slow), short when below, flat when equal",
        params: &[
            p(
                "fast",
                "int >= 1",
                "10",
                "bars of the fast simple moving average of closes; less than slow",
            ),
            p(
                "slow",
                "int >= 1",
                "50",
                "bars of the slow simple moving average of closes",
            ),
        ],
    },
    RuleDoc {
        name: "rsi",
        rule: "Wilder RSI(period); go long when RSI < lower, go short (or flat) when RSI > upper, otherwise hold the position",
        params: &[
            p("period", "int >= 1", "14", "bars of Wilder's RSI"),
            p(
                "lower",
                "number in [0, 100]",
                "30",
                "oversold level: go long below it",
            ),
            p(
                "upper",
                "number in [lower, 100]",
                "70",
                "overbought level: go short (or flat) above it",
            ),
        ],
    },
    RuleDoc {
        name: "bollinger",
        rule: "mean reversion on SMA(period) +- k*sigma (sigma with ddof 0): go long when C < lower band, exit a long when C >= the mean; go short when C > upper band, exit a short when C <= the mean; otherwise hold",
        params: &[
            p(
                "period",
                "int >= 1",
                "20",
                "bars of the mean and standard deviation",
            ),
            p("k", "number", "2", "band width in standard deviations"),
        ],
    },
    RuleDoc {
        name: "breakout",
        rule: "Donchian: go long when C > the highest high of the previous N bars, exit a long (or go short) when C < the lowest low of the previous N bars; a short exits when C > the previous N-bar high",
        params: &[p("period", "int >= 1", "20", "bars N of the channel")],
    },
];

pub const CLASSIFIERS: &[RuleDoc] = &[
    RuleDoc {
        name: "volatility",
        rule: "ratio = ATR(period) / SMA(ATR, average) (Wilder ATR); `low` when ratio < low, `high` when ratio > high, else `normal`",
        params: &[
            p("period", "int >= 1", "14", "bars of the ATR"),
            p(
                "average",
                "int >= 1",
                "50",
                "bars of the ATR's moving average",
            ),
            p(
                "low",
                "number >= 0",
                "0.8",
                "ratio below which the regime is `low`",
            ),
            p(
                "high",
                "number >= low",
                "1.2",
                "ratio above which the regime is `high`",
            ),
        ],
    },
    RuleDoc {
        name: "momentum",
        rule: "roc = C_t/C_{t-period} - 1; `bullish` when roc > threshold, `bearish` when roc < -threshold, else `neutral`",
        params: &[
            p("period", "int >= 1", "20", "bars of the rate of change"),
            p(
                "threshold",
                "number >= 0",
                "0.02",
                "rate of change that makes a trend",
            ),
        ],
    },
];

/// How a classifier is written in `classifiers:`.
pub const CLASSIFIER_FORMS: &str = "a name (`volatility`) or a map, either `{type: volatility, period: 10}` or `{volatility: {period: 10}}`. Bars before a classifier's indicators are defined are labelled `warmup`; the label of bar t uses bars 0..=t only.";

/// One metric of `metrics.json` and its exact definition.
#[derive(Clone, Copy, Debug)]
pub struct MetricDoc {
    pub name: &'static str,
    pub formula: &'static str,
}

/// Notation shared by the metric formulas.
pub const METRIC_NOTATION: &str = "Over the per-bar strategy returns r_t = E_t/E_{t-1} - 1, t = 1..T (T = bars - 1), with P periods per year (252 for daily bars; for intraday bars 252 times the median number of bars per session, sessions being split at gaps longer than 4 hours). Return figures are fractions (0.05 = 5%).";

pub const METRICS: &[MetricDoc] = &[
    MetricDoc {
        name: "total_return",
        formula: "E_T - 1 (capital 1 before the first bar)",
    },
    MetricDoc {
        name: "cagr",
        formula: "E_T^(1/years) - 1 with years = T/P; -1 if E_T <= 0; 0 if T = 0",
    },
    MetricDoc {
        name: "volatility",
        formula: "std(r, ddof 1) * sqrt(P)",
    },
    MetricDoc {
        name: "sharpe",
        formula: "mean(r) / std(r, ddof 1) * sqrt(P), risk-free rate 0",
    },
    MetricDoc {
        name: "sortino",
        formula: "mean(r) / DD * sqrt(P) with DD = sqrt(sum(min(r_t, 0)^2) / T), target 0, over all T returns",
    },
    MetricDoc {
        name: "max_drawdown",
        formula: "min_t E_t / max(1, max_{s<=t} E_s) - 1, a fraction <= 0",
    },
    MetricDoc {
        name: "calmar",
        formula: "cagr / abs(max_drawdown)",
    },
    MetricDoc {
        name: "entries",
        formula: "bars where p_t != 0 and p_t != p_{t-1} (p_{-1} = 0; a flip counts)",
    },
    MetricDoc {
        name: "trades",
        formula: "closed round trips (a trade still open on the last bar is not counted)",
    },
    MetricDoc {
        name: "win_rate",
        formula: "fraction of closed round trips with return > 0",
    },
    MetricDoc {
        name: "exposure",
        formula: "fraction of all bars with p_t != 0",
    },
    MetricDoc {
        name: "turnover",
        formula: "sum(abs(p_t - p_{t-1})) over all bars / bars * P: position units traded per year",
    },
    MetricDoc {
        name: "bars",
        formula: "number of bars T + 1",
    },
    MetricDoc {
        name: "periods_per_year",
        formula: "P",
    },
];

/// What a metric is when it is undefined.
pub const METRIC_EDGE_CASES: &str = "sharpe, sortino and volatility are 0 when the standard deviation (or DD) is 0 or T < 2; calmar is 0 without a drawdown; win_rate is 0 without a closed trade; any non-finite result is written as 0.";

/// The execution convention: when a position is decided, what it earns,
/// what it costs.
pub const EXECUTION: &[&str] = &[
    "A position p_t in {-1, 0, 1} is decided at the close of bar t from bars 0..=t only (no look-ahead) and earns the close-to-close return of bar t+1.",
    "With R_t = C_t/C_{t-1} - 1 and f = `costs.fee`, equity follows E_t = E_{t-1} * (1 + p_{t-1} * R_t) * (1 - f * |p_t - p_{t-1}|) for t >= 1.",
    "Before the data the position is 0 and the capital 1, so E_0 = 1 - f * |p_0|; every built-in strategy is flat on bar 0 (its warm-up), so E_0 = 1 for them.",
    "Bars where a rule's indicators are not yet defined (the warm-up) are flat.",
    "A round trip opens at the close of bar a where p_a != 0 and p_a != p_{a-1} and closes at the first later bar b with p_b != p_a; its return is (1 - f) * prod_{t=a+1..b}(1 + p_a * R_t) * (1 - f) - 1, so a flip's 2f is split between the two trades.",
    "With several symbols each runs on its own and the headline figures are those of the equal-weight portfolio of the symbols' equity curves.",
];
