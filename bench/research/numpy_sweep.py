"""The 1,000-combination momentum sweep as a researcher would write it in
plain numpy: one vectorised pass per combination, printing total return,
Sharpe and max drawdown. The peer of `admf build sweep.yaml` (cold cache)
as whole processes; see BENCHMARKS.md, "Sweep against a numpy script".

Same conventions as admf (DESIGN §6): long-only, long while
C_t/C_{t-L} - 1 > threshold, the position decided at the close of bar t
earning bar t+1, no fees; Sharpe from daily returns (ddof 1) times sqrt(252).

    python3 bench/research/numpy_sweep.py [data/SPY_D.csv [LOOKBACKS THRESHOLDS]]

The grid is LOOKBACKS lookbacks (5, 10, ...) times THRESHOLDS thresholds
(0, 0.002, ...): 40 x 25 = 1,000 combinations by default, 100 x 100 for
the 10,000-combination sweep.
"""

import sys

import numpy as np

path = sys.argv[1] if len(sys.argv) > 1 else "data/SPY_D.csv"
n_lookbacks = int(sys.argv[2]) if len(sys.argv) > 2 else 40
n_thresholds = int(sys.argv[3]) if len(sys.argv) > 3 else 25
close = np.loadtxt(path, delimiter=",", skiprows=1, usecols=5)
r = close[1:] / close[:-1] - 1.0
lines = []
for lookback in range(5, 5 * n_lookbacks + 1, 5):
    m = np.zeros(len(close))
    m[lookback:] = close[lookback:] / close[:-lookback] - 1.0
    for threshold in [round(0.002 * i, 6) for i in range(n_thresholds)]:
        p = np.zeros(len(close))
        p[lookback:] = m[lookback:] > threshold
        rets = p[:-1] * r
        equity = np.cumprod(1.0 + rets)
        std = rets.std(ddof=1)
        sharpe = rets.mean() / std * np.sqrt(252.0) if std > 0 else 0.0
        mdd = min(0.0, (equity / np.maximum.accumulate(np.maximum(equity, 1.0)) - 1.0).min())
        lines.append(f"{lookback} {threshold} {equity[-1] - 1.0:.10g} {sharpe:.10g} {mdd:.10g}")
print("\n".join(lines))
