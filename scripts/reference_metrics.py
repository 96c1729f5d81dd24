#!/usr/bin/env python3
"""Independent reference figures for tests/market_reference.rs.

Recomputes, with numpy/pandas only, the DESIGN §6 equity recursion and the
metrics of a few strategies on the shipped data files. It is run by hand
once (`python3 scripts/reference_metrics.py` from the repository root); its
printed figures are pasted into the Rust test. Conventions mirror the
documentation of src/market/metrics.rs: E_0 = 1 (the strategies are flat on
bar 0), r_t = E_t/E_{t-1} - 1 for t = 1..T, std with ddof 1, Sortino over
all T returns with target 0, P = 252 (daily), 52 (weekly) or 252 x median
bars per session (sessions split at gaps > 4 hours). Figures for
tests/market_reference.rs and tests/research_integrity.rs.
"""
import numpy as np
import pandas as pd


def load_daily():
    df = pd.read_csv("data/SPY_D.csv", index_col=0)
    return df["close"].to_numpy(dtype=float), 252.0


def load_weekly():
    """SPY daily reduced to the last bar of each Monday-to-Sunday week."""
    df = pd.read_csv("data/SPY_D.csv", index_col=0)
    df.index = pd.to_datetime(df["date"])
    weekly = df.groupby(df.index.to_period("W")).tail(1)
    return weekly["close"].to_numpy(dtype=float), 52.0


def load_minute():
    df = pd.read_csv("data/nt-spy-minute-2011.csv", sep=";", header=None,
                     names=["ts", "open", "high", "low", "close", "volume"])
    ts = pd.to_datetime(df["ts"], format="%Y%m%d %H%M%S")
    gaps = ts.diff() > pd.Timedelta(hours=4)
    sessions = gaps.cumsum()
    per_session = df.groupby(sessions.to_numpy()).size()
    return df["close"].to_numpy(dtype=float), 252.0 * float(np.median(per_session))


def momentum(close, lookback, threshold, allow_short):
    s = pd.Series(close)
    m = s / s.shift(lookback) - 1.0
    pos = np.where(m > threshold, 1, 0)
    if allow_short:
        pos = np.where(m < -threshold, -1, pos)
    pos[:lookback] = 0
    return pos


def sma_crossover(close, fast, slow, allow_short):
    s = pd.Series(close)
    f = s.rolling(fast).mean().to_numpy()
    w = s.rolling(slow).mean().to_numpy()
    pos = np.where(f > w, 1, 0)
    if allow_short:
        pos = np.where(f < w, -1, pos)
    pos[: slow - 1] = 0
    return pos


def metrics(close, pos, fee, ppy):
    R = np.zeros(len(close))
    R[1:] = close[1:] / close[:-1] - 1.0
    prev = np.concatenate([[0], pos[:-1]])
    growth = (1.0 + prev * R) * (1.0 - fee * np.abs(pos - prev))
    growth[0] = 1.0 - fee * abs(pos[0])
    E = np.cumprod(growth)
    r = E[1:] / E[:-1] - 1.0
    T = len(r)
    mean, std = r.mean(), r.std(ddof=1)
    dd = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    peak = np.maximum.accumulate(np.maximum(E, 1.0))
    mdd = (E / peak - 1.0).min()
    cagr = E[-1] ** (ppy / T) - 1.0
    # Round trips: runs of one constant non-zero position.
    wins = closed = 0
    entries = 0
    i, n = 0, len(pos)
    while i < n:
        if pos[i] != 0 and (i == 0 or pos[i] != pos[i - 1]):
            entries += 1
            j = i + 1
            while j < n and pos[j] == pos[i]:
                j += 1
            if j < n:
                g = (1 - fee) * np.prod(1 + pos[i] * R[i + 1:j + 1]) * (1 - fee)
                closed += 1
                wins += g - 1 > 0
            i = j
        else:
            i += 1
    return {
        "total_return": E[-1] - 1.0,
        "cagr": cagr,
        "volatility": std * np.sqrt(ppy),
        "sharpe": mean / std * np.sqrt(ppy),
        "sortino": mean / dd * np.sqrt(ppy),
        "max_drawdown": mdd,
        "calmar": cagr / abs(mdd),
        "entries": entries,
        "trades": closed,
        "win_rate": wins / closed if closed else None,  # undefined: null
        "exposure": np.mean(pos != 0),
        "turnover": np.abs(pos - prev).sum() / n * ppy,
        "periods_per_year": ppy,
    }


def show(title, m):
    print(f"// {title}")
    for k, v in m.items():
        print(f"    (\"{k}\", {None if v is None else float(v)!r}),")


daily, p_daily = load_daily()
minute, p_minute = load_minute()
show("SPY_D momentum lookback=20 threshold=0 fee=0",
     metrics(daily, momentum(daily, 20, 0.0, False), 0.0, p_daily))
show("SPY_D momentum lookback=20 threshold=0 fee=0.001",
     metrics(daily, momentum(daily, 20, 0.0, False), 0.001, p_daily))
show("SPY_D sma_crossover fast=10 slow=50 allow_short fee=0.0005",
     metrics(daily, sma_crossover(daily, 10, 50, True), 0.0005, p_daily))
show("minute momentum lookback=30 threshold=0.001 allow_short fee=0",
     metrics(minute, momentum(minute, 30, 0.001, True), 0.0, p_minute))
weekly, p_weekly = load_weekly()
show("weekly SPY momentum lookback=4 threshold=0 fee=0, P = 52",
     metrics(weekly, momentum(weekly, 4, 0.0, False), 0.0, p_weekly))
show("weekly SPY momentum lookback=4 threshold=0 fee=0, P = 252 (declared)",
     metrics(weekly, momentum(weekly, 4, 0.0, False), 0.0, 252.0))


# Overfitting statistics of the 6-trial sweep of
# workflows/parameter_optimization.yaml (momentum lookback {10, 20, 30} x
# threshold {0.01, 0.02}, fee 0.001, SPY daily), for
# tests/research_integrity.rs. Written from the papers' formulas with
# scipy, independently of src/market/overfitting.rs.
from itertools import combinations
from scipy.stats import norm, rankdata, skew, kurtosis

EULER = 0.5772156649015329


def returns_of(close, pos, fee):
    R = np.zeros(len(close))
    R[1:] = close[1:] / close[:-1] - 1.0
    prev = np.concatenate([[0], pos[:-1]])
    growth = (1.0 + prev * R) * (1.0 - fee * np.abs(pos - prev))
    growth[0] = 1.0 - fee * abs(pos[0])
    E = np.cumprod(growth)
    return E[1:] / E[:-1] - 1.0


def expected_max(n):
    return (1 - EULER) * norm.ppf(1 - 1 / n) + EULER * norm.ppf(1 - 1 / (n * np.e))


def cscv(M, S):
    T, N = M.shape
    b = T // S
    M = M[T - b * S:]
    blocks = [M[i * b:(i + 1) * b] for i in range(S)]
    logits = []
    for J in combinations(range(S), S // 2):
        Jbar = [i for i in range(S) if i not in J]
        IS = np.vstack([blocks[i] for i in J])
        OOS = np.vstack([blocks[i] for i in Jbar])
        sr_is = IS.mean(0) / IS.std(0, ddof=1)
        sr_oos = OOS.mean(0) / OOS.std(0, ddof=1)
        best = int(np.argmax(sr_is))
        w = rankdata(sr_oos)[best] / (N + 1)
        logits.append(np.log(w / (1 - w)))
    logits = np.array(logits)
    return (logits <= 0).mean(), len(logits), logits.mean()


grid = [(lb, th) for lb in (10, 20, 30) for th in (0.01, 0.02)]
trial_returns = np.array([returns_of(daily, momentum(daily, lb, th, False), 0.001)
                          for lb, th in grid]).T
srs = trial_returns.mean(0) / trial_returns.std(0, ddof=1)
best = int(np.argmax(srs))
r = trial_returns[:, best]
sr = srs[best]
V = srs.var(ddof=1)
sr0 = np.sqrt(V) * expected_max(len(grid))
g3, g4 = skew(r), kurtosis(r, fisher=False)
dsr = norm.cdf((sr - sr0) * np.sqrt(len(r) - 1) / np.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr ** 2))
print("// parameter_optimization sweep: deflated Sharpe ratio of the best trial")
print(f"    best trial {best}, per-period sharpe {sr!r}, variance {V!r}")
print(f"    sr0 {sr0!r}, skew {g3!r}, kurtosis {g4!r}, dsr {dsr!r}")
print(f"    min backtest years {(expected_max(len(grid)) / (sr * np.sqrt(252))) ** 2!r}")
pbo, n_comb, mean_logit = cscv(trial_returns, 16)
print(f"// CSCV, S = 16: pbo {pbo!r}, combinations {n_comb}, mean logit {mean_logit!r}")


# Fill at the next open, and slippage: for tests/research_integrity.rs.
# A decision at close t is held from the open of t+1 (h_t = p_{t-1}); the
# gap close t-1 -> open t is earned by h_{t-1}, the day open t -> close t
# by h_t, the cost c = fee + slippage_bps / 1e4 is paid at the open fill.
def next_open_metrics(open_, close, pos, cost, ppy):
    n = len(close)
    h = np.concatenate([[0], pos[:-1]])
    prev = np.concatenate([[0], h[:-1]])
    g = np.zeros(n)
    d = np.zeros(n)
    g[1:] = open_[1:] / close[:-1] - 1.0
    d[1:] = close[1:] / open_[1:] - 1.0
    growth = (1.0 + prev * g) * (1.0 - cost * np.abs(h - prev)) * (1.0 + h * d)
    E = np.cumprod(growth)
    r = E[1:] / E[:-1] - 1.0
    T = len(r)
    mean, std = r.mean(), r.std(ddof=1)
    dd = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    peak = np.maximum.accumulate(np.maximum(E, 1.0))
    mdd = (E / peak - 1.0).min()
    cagr = E[-1] ** (ppy / T) - 1.0
    wins = closed = entries = 0
    i = 0
    while i < n:
        if h[i] != 0 and (i == 0 or h[i] != h[i - 1]):
            entries += 1
            s = h[i]
            j = i + 1
            while j < n and h[j] == s:
                j += 1
            if j < n:
                gr = (1 - cost) * (1 + s * d[i])
                gr *= np.prod((1 + s * g[i + 1:j]) * (1 + s * d[i + 1:j]))
                gr *= (1 + s * g[j]) * (1 - cost)
                closed += 1
                wins += gr - 1 > 0
            i = j
        else:
            i += 1
    return {
        "total_return": E[-1] - 1.0,
        "cagr": cagr,
        "volatility": std * np.sqrt(ppy),
        "sharpe": mean / std * np.sqrt(ppy),
        "sortino": mean / dd * np.sqrt(ppy),
        "max_drawdown": mdd,
        "calmar": cagr / abs(mdd),
        "entries": entries,
        "trades": closed,
        "win_rate": wins / closed,
        "exposure": np.mean(h != 0),
        "turnover": np.abs(h - prev).sum() / n * ppy,
    }


spy = pd.read_csv("data/SPY_D.csv", index_col=0)
spy_open = spy["open"].to_numpy(dtype=float)
p20 = momentum(daily, 20, 0.0, False)
show("SPY_D momentum lookback=20 threshold=0, fee 0.001 + slippage 5 bps, fill next_open",
     next_open_metrics(spy_open, daily, p20, 0.001 + 5 / 1e4, 252.0))
show("SPY_D momentum lookback=20 threshold=0, fee 0.001 + slippage 5 bps, fill close",
     metrics(daily, p20, 0.001 + 5 / 1e4, 252.0))


# Buy-and-hold benchmark of workflows/simple_backtest.yaml (momentum 20,
# no costs): for tests/research_integrity.rs.
def equity_of(close, pos, fee):
    R = np.zeros(len(close))
    R[1:] = close[1:] / close[:-1] - 1.0
    prev = np.concatenate([[0], pos[:-1]])
    growth = (1.0 + prev * R) * (1.0 - fee * np.abs(pos - prev))
    growth[0] = 1.0 - fee * abs(pos[0])
    return np.cumprod(growth)


Es = equity_of(daily, p20, 0.0)
Eb = equity_of(daily, np.ones(len(daily), dtype=int), 0.0)
rs, rb = Es[1:] / Es[:-1] - 1.0, Eb[1:] / Eb[:-1] - 1.0
beta = np.cov(rs, rb, ddof=1)[0, 1] / rb.var(ddof=1)
active = rs - rb
print("// simple_backtest against buy-and-hold")
print(f"    (\"beta\", {beta!r}),")
print(f"    (\"alpha\", {(rs.mean() - beta * rb.mean()) * 252!r}),")
print(f"    (\"information_ratio\", {active.mean() / active.std(ddof=1) * np.sqrt(252)!r}),")
print(f"    (\"excess_return\", {(Es[-1] - 1) - (Eb[-1] - 1)!r}),")
show("buy-and-hold SPY_D, no costs", metrics(daily, np.ones(len(daily), dtype=int), 0.0, 252.0))


# Walk-forward of workflows/walk_forward.yaml: rolling train 756 returns,
# purge 1, test 252, step 252, best train Sharpe per fold; the stitched
# out-of-sample returns. For tests/research_integrity.rs.
T = trial_returns.shape[0]
oos, picks, k = [], [], 0
while k * 252 + 756 + 1 < T:
    tr = trial_returns[k * 252:k * 252 + 756]
    best = int(np.argmax(tr.mean(0) / tr.std(0, ddof=1)))
    start = k * 252 + 756 + 1
    oos.append(trial_returns[start:start + 252, best])
    picks.append(best)
    k += 1
oos = np.concatenate(oos)
E = np.cumprod(1 + oos)
print(f"// walk-forward: {len(picks)} folds, picks {picks}, {len(oos)} returns")
print(f"    oos sharpe {oos.mean() / oos.std(ddof=1) * np.sqrt(252)!r}, total return {E[-1] - 1!r}")


# The ensemble search of workflows/parameter_optimization.yaml: every
# weighting of the 6 signals on the simplex grid with step 0.1, a weighted
# vote with threshold 0.5, scored by train Sharpe (split at floor(0.8 N));
# the deflated Sharpe ratio of the chosen one with N = 3003.
from itertools import product as iproduct

n = len(daily)
split_at = int(np.floor(n * 0.8))
signals = np.array([momentum(daily, lb, th, False) for lb, th in grid], dtype=float)
R = np.zeros(n)
R[1:] = daily[1:] / daily[:-1] - 1.0
weights = [np.array(c) / 10 for c in iproduct(range(11), repeat=6) if sum(c) == 10]
train_srs = []
train_rets = []
for w in weights:
    v = (w[:, None] * signals).sum(0)
    pos = np.where(v >= 0.5 - 1e-5, 1, np.where(v <= -(0.5 - 1e-5), -1, 0))
    prev = np.concatenate([[0], pos[:-1]])
    growth = (1.0 + prev * R) * (1.0 - 0.001 * np.abs(pos - prev))
    E = np.cumprod(growth)[:split_at]
    r = E[1:] / E[:-1] - 1.0
    train_srs.append(r.mean() / r.std(ddof=1))
    train_rets.append(r)
train_srs = np.array(train_srs)
best = int(np.argmax(train_srs))
r = train_rets[best]
sr, V = train_srs[best], train_srs.var(ddof=1)
sr0 = np.sqrt(V) * expected_max(len(weights))
g3, g4 = skew(r), kurtosis(r, fisher=False)
dsr = norm.cdf((sr - sr0) * np.sqrt(len(r) - 1) / np.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr ** 2))
print(f"// ensemble search: {len(weights)} weightings, best {weights[best]}")
print(f"    train sharpe {sr * np.sqrt(252)!r}, variance {V!r}, sr0 {sr0!r}, dsr {dsr!r}")


# The same search with every signal acted on one bar later (`lag: 1`):
# the chosen weighting's train and test Sharpe ratios.
def ensemble_search(sig):
    best_sr, best_e = -np.inf, None
    for w in weights:
        v = (w[:, None] * sig).sum(0)
        pos = np.where(v >= 0.5 - 1e-5, 1, np.where(v <= -(0.5 - 1e-5), -1, 0))
        prev = np.concatenate([[0], pos[:-1]])
        E = np.cumprod((1.0 + prev * R) * (1.0 - 0.001 * np.abs(pos - prev)))
        r = E[1:split_at] / E[:split_at - 1] - 1.0
        sr = r.mean() / r.std(ddof=1)
        if sr > best_sr:
            best_sr, best_e = sr, E
    test = best_e[split_at - 1:] / best_e[split_at - 1]
    rt = test[1:] / test[:-1] - 1.0
    return best_sr * np.sqrt(252), rt.mean() / rt.std(ddof=1) * np.sqrt(252)


lagged = np.zeros_like(signals)
lagged[:, 1:] = signals[:, :-1]
tr, te = ensemble_search(lagged)
print(f"// lag 1: train sharpe {tr!r}, test sharpe {te!r}")
