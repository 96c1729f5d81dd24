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
pub const METRIC_NOTATION: &str = "Over the per-bar strategy returns r_t = E_t/E_{t-1} - 1, t = 1..T (T = bars - 1), with P periods per year: `data.periods_per_year` when declared, else inferred from the bar spacing (252 for daily bars; dates a median 5 to 10 days apart 52, 11 to 45 days 12, 46 to 135 days 4, further apart 1; for intraday bars 252 times the median number of bars per session, sessions being split at gaps longer than 4 hours). Return figures are fractions (0.05 = 5%). After ruin (equity at or below 0) there are no more returns: T ends at the bar of ruin.";

pub const METRICS: &[MetricDoc] = &[
    MetricDoc {
        name: "total_return",
        formula: "E_T - 1 (capital 1 before the first bar); -1 after ruin",
    },
    MetricDoc {
        name: "cagr",
        formula: "E_T^(1/years) - 1 with years = T/P; -1 after ruin; null if T = 0",
    },
    MetricDoc {
        name: "volatility",
        formula: "std(r, ddof 1) * sqrt(P); null if T < 2",
    },
    MetricDoc {
        name: "sharpe",
        formula: "mean(r) / std(r, ddof 1) * sqrt(P), risk-free rate 0; null if T < 2 or std = 0",
    },
    MetricDoc {
        name: "sortino",
        formula: "mean(r) / DD * sqrt(P) with DD = sqrt(sum(min(r_t, 0)^2) / T), target 0, over all T returns; null if T = 0 or DD = 0",
    },
    MetricDoc {
        name: "max_drawdown",
        formula: "min_t E_t / max(1, max_{s<=t} E_s) - 1, a fraction <= 0",
    },
    MetricDoc {
        name: "calmar",
        formula: "cagr / abs(max_drawdown); null if cagr is null or there is no drawdown",
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
        formula: "fraction of closed round trips with return > 0; null without a closed trade",
    },
    MetricDoc {
        name: "exposure",
        formula: "fraction of all bars with p_t != 0; null without a bar",
    },
    MetricDoc {
        name: "turnover",
        formula: "sum(abs(p_t - p_{t-1})) over all bars / bars * P: position units traded per year; null without a bar",
    },
    MetricDoc {
        name: "bars",
        formula: "number of bars T + 1",
    },
    MetricDoc {
        name: "periods_per_year",
        formula: "P",
    },
    MetricDoc {
        name: "ruin",
        formula: "the bar at which equity first reached 0 or less; absent without ruin",
    },
    MetricDoc {
        name: "undefined",
        formula: "map from each null metric to the reason it is undefined (`0/0: ...`, `unbounded above: ...`, `T return(s); needs at least k`, `no closed trade`, `no bar`); absent when every metric is defined",
    },
    MetricDoc {
        name: "warnings",
        formula: "list of caveats, such as cagr and calmar annualising less than one year of returns (T < P); absent when there is none",
    },
];

/// What a metric is when it is undefined, and how rankings treat it.
pub const METRIC_EDGE_CASES: &str = "An undefined metric is null, never 0, and `undefined` says why (the log repeats it). A ratio whose denominator is 0 while its numerator is not (a strategy without a losing return has Sortino +inf) is null too, with a reason starting `unbounded above` or `unbounded below`: JSON has no infinity. A ranking by an `objective` (regime winners, `top: N`, the weight search, the trial of each walk-forward fold) counts an unbounded-above figure as +inf and an unbounded-below one as -inf. In every ranking, these and the best trial of a sweep (by the Sharpe ratio as written, so null when unbounded), a null figure ranks below every figure, so a null is never chosen over a defined one; equal figures (or two nulls) keep the earlier candidate, the lowest trial index.";

/// The figures of a strategy against its benchmark, buy-and-hold of the
/// same bars.
pub const BENCHMARK_METRICS: &[MetricDoc] = &[
    MetricDoc {
        name: "beta",
        formula: "cov(r, b) / var(b), both ddof 1, with b_t the benchmark's per-bar returns; null if T < 2 or var(b) = 0",
    },
    MetricDoc {
        name: "alpha",
        formula: "(mean(r) - beta * mean(b)) * P, annualised, risk-free rate 0; null when beta is",
    },
    MetricDoc {
        name: "information_ratio",
        formula: "mean(r - b) / std(r - b, ddof 1) * sqrt(P); null if T < 2 or std(r - b) = 0",
    },
    MetricDoc {
        name: "excess_return",
        formula: "the strategy's total return - the benchmark's",
    },
];

/// What the benchmark is.
pub const BENCHMARK_RULE: &str = "`benchmark` is buy-and-hold (`name: buy_and_hold`): long 1 from the first bar over the same bars with the same costs and fill (the equal-weight portfolio for several symbols; per part for signal_replay, the test part rebased to 1). `benchmark.metrics` holds its own metrics. After ruin of either curve there are no returns: both series end at the first ruin.";

/// The overfitting statistics of a selection among many trials.
pub const OVERFITTING_METRICS: &[MetricDoc] = &[
    MetricDoc {
        name: "trials",
        formula: "N, the trials (signal_generation) or weightings (signal_replay) the selection chose from",
    },
    MetricDoc {
        name: "selected",
        formula: "index of the trial chosen: best Sharpe ratio, ties to the lowest index, a null last (signal_generation only)",
    },
    MetricDoc {
        name: "dsr",
        formula: "deflated Sharpe ratio PSR(SR0) = Phi((SR - SR0) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1)/4 * SR^2)), SR the selected trial's per-bar Sharpe ratio (mean / std ddof 1, not annualised) over its T returns, g3 and g4 their skewness and kurtosis (population moments, g4 = 3 for a normal): the probability that the true Sharpe ratio beats the best of N unskilled trials; null when the selected trial has no Sharpe ratio or the result is not finite",
    },
    MetricDoc {
        name: "sharpe_variance",
        formula: "V, the variance (ddof 1) of the N trials' per-bar Sharpe ratios, nulls left out; 0 with fewer than two",
    },
    MetricDoc {
        name: "expected_max_sharpe",
        formula: "SR0 = sqrt(V) * ((1 - y) * Phi^-1(1 - 1/N) + y * Phi^-1(1 - 1/(N e))), y = 0.5772... (Euler's constant): the per-bar Sharpe ratio the best of N unskilled trials reaches by chance; 0 for N = 1",
    },
    MetricDoc {
        name: "min_backtest_years",
        formula: "((1 - y) * Phi^-1(1 - 1/N) + y * Phi^-1(1 - 1/(N e)))^2 / SR_a^2 with SR_a the selected trial's annualised Sharpe ratio: the years of data below which the best of N unskilled trials is expected to reach SR_a; null if N < 2 or SR_a <= 0",
    },
    MetricDoc {
        name: "backtest_years",
        formula: "T / P, the years of returns the selection saw (signal_replay: the train part, (s - 1) / P)",
    },
    MetricDoc {
        name: "pbo",
        formula: "probability of backtest overfitting by combinatorially symmetric cross-validation: the T returns cut into S = pbo_blocks equal blocks (the T mod S oldest left out); for each choice of S/2 blocks as in-sample, the trial with the best in-sample Sharpe ratio (ties to the lowest index) gets its out-of-sample relative rank w = rank / (N + 1) (rank 1 for the worst, ties averaged, a null lowest) and l = ln(w / (1 - w)); PBO is the fraction of choices with l <= 0; null with fewer than two trials or fewer than two returns per block (signal_generation only)",
    },
    MetricDoc {
        name: "pbo_blocks",
        formula: "S = 16 (signal_generation only)",
    },
    MetricDoc {
        name: "pbo_combinations",
        formula: "C(S, S/2) = 12870 in-sample choices; null when pbo is (signal_generation only)",
    },
];

/// The execution convention: when a position is decided, what it earns,
/// what it costs.
pub const EXECUTION: &[&str] = &[
    "A position p_t in {-1, 0, 1} is decided at the close of bar t from bars 0..=t only (no look-ahead).",
    "With `execution: {fill: close}` (the default) it is filled at that close and earns the close-to-close return of bar t+1: with R_t = C_t/C_{t-1} - 1 and f the cost per unit of position change, equity follows E_t = E_{t-1} * (1 + p_{t-1} * R_t) * (1 - f * |p_t - p_{t-1}|) for t >= 1.",
    "With `execution: {fill: next_open}` it is filled at the open of bar t+1: the position held from the open of bar t is h_t = p_{t-1} (h_0 = 0), the gap g_t = O_t/C_{t-1} - 1 still belongs to the position held before, d_t = C_t/O_t - 1, and E_t = E_{t-1} * (1 + h_{t-1} * g_t) * (1 - f * |h_t - h_{t-1}|) * (1 + h_t * d_t). The position decided at the last close is never filled. Positions, trades and exposure are those held.",
    "The cost per unit of position change is f = `costs.fee` + `costs.slippage_bps` / 10000: slippage is paid on the traded notional like the fee.",
    "Before the data the position is 0 and the capital 1, so E_0 = 1 - f * |p_0|; every built-in strategy is flat on bar 0 (its warm-up), so E_0 = 1 for them.",
    "Bars where a rule's indicators are not yet defined (the warm-up) are flat.",
    "A round trip opens at the close of bar a where p_a != 0 and p_a != p_{a-1} and closes at the first later bar b with p_b != p_a; its return is (1 - f) * prod_{t=a+1..b}(1 + p_a * R_t) * (1 - f) - 1, so a flip's 2f is split between the two trades (with next_open fills the same over the held positions h, earning the legs g and d); it is never below -1.",
    "Ruin: equity at or below 0 (a short through a doubling of the price, say) ends the run. E stays 0 from that bar, the positions are flattened there, `ruin` names the bar, total_return is -1 and cagr -1.",
    "With several symbols each runs on its own and the headline figures are those of the equal-weight portfolio of the symbols' equity curves.",
];
