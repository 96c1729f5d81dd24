#!/usr/bin/env python3
"""Reference figures for degenerate series: empty, one bar, two bars,
flat, gains only, and ruin (a wipe-out), computed with numpy from the
conventions documented in src/market/metrics.rs, equity.rs and trades.rs,
without the crate.

Run once from the repository root; the printed figures are pasted into
tests/metrics_edge_reference.rs. `None` is a metric that must be null;
`+inf`/`-inf` is a null metric whose reason says it is unbounded (what a
ranking reads as ±∞).

    python3 scripts/reference_edge_cases.py
"""

import math

import numpy as np

PPY = 252.0


def run(close, pos, fee):
    """The backtest of positions `pos` over closes `close`: equity with
    ruin absorbing at 0, positions flattened from the bar of ruin, round
    trips, then every metric."""
    close = np.asarray(close, dtype=float)
    pos = np.asarray(pos, dtype=int)
    n = len(close)
    E = np.zeros(n)
    e, prev = 1.0, 0
    for t in range(n):
        if e > 0:
            if t > 0:
                e *= 1.0 + prev * (close[t] / close[t - 1] - 1.0)
            e *= 1.0 - fee * abs(pos[t] - prev)
            e = max(e, 0.0)
        E[t] = e
        prev = pos[t]
    ruined = np.flatnonzero(E <= 0)
    ruin = int(ruined[0]) if len(ruined) else None
    held = pos.copy()
    if ruin is not None:
        held[ruin:] = 0
    return metrics(close, E, held, fee, ruin)


def ratio(num, den):
    """num/den·√P, or the way it is undefined."""
    if den > 0:
        return num / den * math.sqrt(PPY)
    return "+inf" if num > 0 else "-inf" if num < 0 else None


def metrics(close, E, held, fee, ruin):
    n = len(E)
    live = E[: ruin + 1] if ruin is not None else E
    T = max(len(live) - 1, 0)
    r = live[1:] / live[:-1] - 1.0
    end = 0.0 if ruin is not None else (live[-1] if n else 1.0)
    out = {"bars": n, "total_return": end - 1.0, "ruin": ruin}
    cagr = None
    if T > 0:
        cagr = -1.0 if end <= 0 else end ** (PPY / T) - 1.0
    out["cagr"] = cagr
    out["volatility"] = r.std(ddof=1) * math.sqrt(PPY) if T >= 2 else None
    out["sharpe"] = ratio(r.mean(), r.std(ddof=1)) if T >= 2 else None
    out["sortino"] = (
        ratio(r.mean(), math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))) if T >= 1 else None
    )
    peak = np.maximum.accumulate(np.maximum(live, 1.0)) if n else np.array([1.0])
    mdd = float(min((np.maximum(live, 0.0) / peak - 1.0).min(), 0.0)) if n else 0.0
    out["max_drawdown"] = mdd
    if cagr is None:
        out["calmar"] = None
    elif -mdd > 0:
        out["calmar"] = cagr / -mdd
    else:
        out["calmar"] = "+inf" if cagr > 0 else "-inf" if cagr < 0 else None
    # Positions: entries, round trips (runs of one non-zero position).
    prev = np.concatenate([[0], held[:-1]]) if n else held
    out["entries"] = int(np.sum((held != 0) & (held != prev)))
    R = np.concatenate([[0.0], close[1:] / close[:-1] - 1.0]) if n else close
    wins = closed = 0
    i = 0
    while i < n:
        if held[i] != 0 and (i == 0 or held[i] != held[i - 1]):
            j = i + 1
            while j < n and held[j] == held[i]:
                j += 1
            if j < n:
                g = (1 - fee) * np.prod(1 + held[i] * R[i + 1 : j + 1]) * (1 - fee) - 1
                closed += 1
                wins += max(g, -1.0) > 0
            i = j
        else:
            i += 1
    out["trades"] = closed
    out["win_rate"] = wins / closed if closed else None
    out["exposure"] = float(np.mean(held != 0)) if n else None
    out["turnover"] = float(np.abs(held - prev).sum() / n * PPY) if n else None
    return out


CASES = [
    ("empty", [], [], 0.0),
    ("one bar, positioned, fee 0.001", [100.0], [1], 0.001),
    ("one bar, flat", [100.0], [0], 0.0),
    ("two bars, long through a loss, fee 0.001", [100.0, 95.0], [1, 1], 0.001),
    ("two bars, long through a gain", [100.0, 105.0], [1, 1], 0.0),
    ("flat series, long", [100.0, 100.0, 100.0, 100.0], [0, 1, 1, 0], 0.0),
    ("gains only, long", [100.0, 101.0, 103.0, 104.0, 104.0], [1, 1, 1, 1, 0], 0.0),
    (
        "losses only, long, fee 0.002",
        [100.0, 99.0, 97.0, 96.0, 90.0],
        [0, 1, 1, 1, 0],
        0.002,
    ),
    (
        "wipe-out: a short through a tripling, fee 0.001",
        [100.0, 110.0, 99.0, 104.0, 312.0, 300.0, 310.0],
        [0, -1, -1, -1, -1, -1, -1],
        0.001,
    ),
    (
        "wipe-out on the last bar after a closed winning trade",
        [100.0, 90.0, 95.0, 100.0, 350.0],
        [-1, -1, 0, -1, -1],
        0.0,
    ),
]


def main():
    for title, close, pos, fee in CASES:
        m = run(close, pos, fee)
        print(f"// {title}: close {close}, positions {pos}, fee {fee}")
        show = {k: float(v) if isinstance(v, np.floating) else v for k, v in m.items()}
        print("    " + ", ".join(f"{k}: {v!r}" for k, v in show.items()))


if __name__ == "__main__":
    main()
