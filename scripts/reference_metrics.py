#!/usr/bin/env python3
"""Independent reference figures for tests/market_reference.rs.

Recomputes, with numpy/pandas only, the DESIGN §6 equity recursion and the
metrics of a few strategies on the shipped data files. It is run by hand
once (`python3 scripts/reference_metrics.py` from the repository root); its
printed figures are pasted into the Rust test. Conventions mirror the
documentation of src/market/metrics.rs: E_0 = 1 (the strategies are flat on
bar 0), r_t = E_t/E_{t-1} - 1 for t = 1..T, std with ddof 1, Sortino over
all T returns with target 0, P = 252 (daily) or 252 x median bars per
session (sessions split at gaps > 4 hours).
"""
import numpy as np
import pandas as pd


def load_daily():
    df = pd.read_csv("data/SPY_D.csv", index_col=0)
    return df["close"].to_numpy(dtype=float), 252.0


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
        "win_rate": wins / closed,
        "exposure": np.mean(pos != 0),
        "turnover": np.abs(pos - prev).sum() / n * ppy,
        "periods_per_year": ppy,
    }


def show(title, m):
    print(f"// {title}")
    for k, v in m.items():
        print(f"    (\"{k}\", {float(v)!r}),")


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
