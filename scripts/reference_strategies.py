#!/usr/bin/env python3
"""Independent reference figures for tests/market_strategies_reference.rs
and tests/objectives_reference.rs.

Recomputes with numpy/pandas, from the documented rules alone (the tables
at the top of src/market/strategy.rs, classifier.rs, metrics.rs and
regime.rs), the positions of the RSI, Bollinger and breakout strategies,
the labels of the two regime classifiers, and which of a set of candidate
strategies each objective selects, on the shipped data files. Run by hand
once from the repository root (`python3 scripts/reference_strategies.py`);
the printed figures are pasted into the Rust tests.

The equity recursion and the metrics come from reference_metrics.py (the
same DESIGN §6 conventions); its module-level figures are silenced on
import.
"""
import contextlib
import io
import os
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
with contextlib.redirect_stdout(io.StringIO()):
    import reference_metrics as rm  # noqa: E402


def load_daily_bars():
    df = pd.read_csv("data/SPY_D.csv", index_col=0)
    return {k: df[k].to_numpy(dtype=float) for k in ("high", "low", "close")}


def wilder_mean(x, n, start):
    """Wilder smoothing: plain mean of x[start:start+n] at bar start+n-1,
    then s_t = (s_{t-1}(n-1) + x_t)/n."""
    out = np.full(len(x), np.nan)
    if start + n > len(x):
        return out
    first = start + n - 1
    s = float(np.mean(x[start:first + 1]))
    out[first] = s
    for t in range(first + 1, len(x)):
        s = (s * (n - 1) + x[t]) / n
        out[t] = s
    return out


def rsi_values(close, n):
    d = np.diff(close, prepend=np.nan)
    gain = np.where(d > 0, d, 0.0)
    loss = np.where(d < 0, -d, 0.0)
    g, l = wilder_mean(gain, n, 1), wilder_mean(loss, n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 100.0 - 100.0 / (1.0 + g / l)
    r = np.where(l == 0, np.where(g == 0, 50.0, 100.0), r)
    return np.where(np.isnan(g), np.nan, r)


def rsi(close, period, lower, upper, allow_short):
    """Long when RSI < lower, short (or flat) when RSI > upper, else hold."""
    r = rsi_values(close, period)
    pos, p = np.zeros(len(close), dtype=int), 0
    for t in range(len(close)):
        if r[t] < lower:
            p = 1
        elif r[t] > upper:
            p = -1 if allow_short else 0
        pos[t] = p
    return pos


def bollinger(close, period, k, allow_short):
    """Mean reversion on SMA ± k·σ (σ ddof 0); exits at the mean."""
    s = pd.Series(close)
    mean = s.rolling(period).mean().to_numpy()
    sd = s.rolling(period).std(ddof=0).to_numpy()
    pos, p = np.zeros(len(close), dtype=int), 0
    for t in range(len(close)):
        if np.isnan(mean[t]):
            continue
        if close[t] < mean[t] - k * sd[t]:
            p = 1
        elif close[t] > mean[t] + k * sd[t]:
            p = -1 if allow_short else 0
        elif (p == 1 and close[t] >= mean[t]) or (p == -1 and close[t] <= mean[t]):
            p = 0
        pos[t] = p
    return pos


def breakout(high, low, close, period, allow_short):
    """Donchian over the previous `period` bars (bar t excluded)."""
    hh = pd.Series(high).rolling(period).max().shift(1).to_numpy()
    ll = pd.Series(low).rolling(period).min().shift(1).to_numpy()
    pos, p = np.zeros(len(close), dtype=int), 0
    for t in range(len(close)):
        if close[t] > hh[t]:
            p = 1
        elif close[t] < ll[t]:
            p = -1 if allow_short else 0
        pos[t] = p
    return pos


def volatility_labels(high, low, close, period, average, lo, hi):
    """ATR(period)/SMA(ATR, average) banded: 0 low, 1 normal, 2 high, -1 warm-up."""
    prev = np.concatenate([[np.nan], close[:-1]])
    tr = np.nanmax(np.vstack([high - low, np.abs(high - prev), np.abs(low - prev)]), axis=0)
    atr = wilder_mean(tr, period, 0)
    avg = pd.Series(atr).rolling(average).mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(avg > 0, atr / avg, np.nan)
    return band(ratio, lo, hi)


def momentum_labels(close, period, threshold):
    roc = pd.Series(close).pct_change(period, fill_method=None).to_numpy()
    return band(roc, -threshold, threshold)


def band(x, lo, hi):
    return np.where(np.isnan(x), -1, np.where(x < lo, 0, np.where(x > hi, 2, 1)))


def regime_equity_metrics(E, pos, labels, code, ppy):
    """Returns r_t whose bar t-1 carries `code`, chained from 1."""
    r = E[1:] / E[:-1] - 1.0
    sel = labels[:-1] == code
    sub = np.concatenate([[1.0], np.cumprod(1.0 + r[sel])])
    T = len(sub) - 1
    rr = sub[1:] / sub[:-1] - 1.0
    mean, std = rr.mean(), rr.std(ddof=1)
    dd = np.sqrt(np.mean(np.minimum(rr, 0.0) ** 2))
    peak = np.maximum.accumulate(np.maximum(sub, 1.0))
    mdd = (sub / peak - 1.0).min()
    cagr = sub[-1] ** (ppy / T) - 1.0
    return {
        "bars": T,
        "total_return": sub[-1] - 1.0,
        "cagr": cagr,
        "sharpe": mean / std * np.sqrt(ppy),
        "sortino": mean / dd * np.sqrt(ppy),
        "calmar": cagr / abs(mdd),
        "max_drawdown": mdd,
        "exposure": np.mean(pos[:-1][sel] != 0),
    }


def equity(close, pos, fee):
    R = np.zeros(len(close))
    R[1:] = close[1:] / close[:-1] - 1.0
    prev = np.concatenate([[0], pos[:-1]])
    growth = (1.0 + prev * R) * (1.0 - fee * np.abs(pos - prev))
    return np.cumprod(growth)


def positions_summary(pos):
    """Counts that pin a position series: bars long, bars short, changes."""
    return {
        "long": int(np.sum(pos == 1)),
        "short": int(np.sum(pos == -1)),
        "changes": int(np.sum(np.diff(pos, prepend=0) != 0)),
        "first_nonzero": int(np.argmax(pos != 0)),
    }


OBJECTIVES = ["sharpe", "sortino", "total_return", "cagr", "calmar"]


def candidates(bars):
    c = bars["close"]
    return [
        ("momentum lookback=5", rm.momentum(c, 5, 0.0, False)),
        ("momentum lookback=60 short", rm.momentum(c, 60, 0.0, True)),
        ("momentum lookback=200", rm.momentum(c, 200, 0.0, False)),
        ("sma 20/100", rm.sma_crossover(c, 20, 100, False)),
        ("rsi 14 30/70", rsi(c, 14, 30, 70, False)),
        ("rsi 2 10/90 short", rsi(c, 2, 10, 90, True)),
        ("bollinger 20 2", bollinger(c, 20, 2.0, False)),
        ("bollinger 10 1.5 short", bollinger(c, 10, 1.5, True)),
        ("breakout 20", breakout(bars["high"], bars["low"], c, 20, False)),
        ("breakout 55 short", breakout(bars["high"], bars["low"], c, 55, True)),
    ]


def main():
    bars = load_daily_bars()
    c = bars["close"]
    ppy = 252.0
    cases = [
        ("rsi period=14 lower=30 upper=70", rsi(c, 14, 30, 70, False), 0.0),
        ("rsi period=14 lower=30 upper=70 allow_short",
         rsi(c, 14, 30, 70, True), 0.0005),
        ("bollinger period=20 k=2", bollinger(c, 20, 2.0, False), 0.0),
        ("bollinger period=20 k=2 allow_short",
         bollinger(c, 20, 2.0, True), 0.001),
        ("bollinger period=10 k=0.5 allow_short", bollinger(c, 10, 0.5, True), 0.0),
        ("breakout period=20", breakout(bars["high"], bars["low"], c, 20, False), 0.0),
        ("breakout period=20 allow_short",
         breakout(bars["high"], bars["low"], c, 20, True), 0.0005),
    ]
    for title, pos, fee in cases:
        print(f"// SPY_D {title} fee={fee}")
        print(f"//   positions {positions_summary(pos)}")
        rm.show(f"{title} fee={fee}", rm.metrics(c, pos, fee, ppy))

    print("// classifiers on SPY_D: counts [low/bearish, normal/neutral, high/bullish, warmup], changes")
    for title, labels in [
        ("volatility defaults", volatility_labels(bars["high"], bars["low"], c, 14, 50, 0.8, 1.2)),
        ("volatility period=5 average=20 low=0.9 high=1.1",
         volatility_labels(bars["high"], bars["low"], c, 5, 20, 0.9, 1.1)),
        ("momentum defaults", momentum_labels(c, 20, 0.02)),
        ("momentum period=5 threshold=0", momentum_labels(c, 5, 0.0)),
    ]:
        counts = [int(np.sum(labels == k)) for k in (0, 1, 2, -1)]
        changes = int(np.sum(labels[1:] != labels[:-1]))
        print(f"//   {title}: {counts}, changes {changes}")

    print("// selection over candidates (SPY_D, fee 0.0005): best index per objective")
    ms = [rm.metrics(c, pos, 0.0005, ppy) for _, pos in candidates(bars)]
    for i, ((name, _), m) in enumerate(zip(candidates(bars), ms)):
        print(f"//   {i} {name}: " + ", ".join(f"{o} {float(m[o])!r}" for o in OBJECTIVES))
    for o in OBJECTIVES:
        vals = [float(m[o]) for m in ms]
        print(f"    (\"{o}\", {int(np.argmax(vals))}, {max(vals)!r}),")

    print("// regime selection: momentum classifier defaults, candidates above, fee 0.0005")
    labels = momentum_labels(c, 20, 0.02)
    cands = candidates(bars)
    curves = [equity(c, pos, 0.0005) for _, pos in cands]
    for o in OBJECTIVES:
        for code, label in enumerate(["bearish", "neutral", "bullish"]):
            rms = [regime_equity_metrics(E, pos, labels, code, ppy) for E, (_, pos) in zip(curves, cands)]
            vals = [float(m[o]) for m in rms]
            b = int(np.argmax(vals))
            print(f"    (\"{o}\", \"{label}\", {b}, {vals[b]!r}, {rms[b]['bars']}),")


if __name__ == "__main__":
    main()
