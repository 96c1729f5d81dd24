"""Reference figures for the sealed holdout of an ensemble with weights
per volatility regime, computed independently of admf with numpy and
pandas from the weights the replay chose (its `weights.json`).

    python3 scripts/reference_holdout_regimes.py WEIGHTS_JSON FROM_DATE

Every bar of data/SPY_D.csv (the holdout included) is labelled by the
volatility classifier (ATR(14) / SMA(ATR, 50), banded at 0.8 and 1.2;
each label from bars up to its own), every chosen momentum signal is
recomputed, and each bar votes with the weights of its regime (the
global ones during the classifier's warm-up), threshold 0.5, fee 0.001,
filled at the close. The held-out part starts at the first bar on or
after FROM_DATE, its equity rebased to 1 at the close before it. Prints
its bar count per regime, Sharpe ratio (ddof 1, x sqrt 252) and total
return.
"""
import json
import sys

import numpy as np
import pandas as pd

sys.path.insert(0, "scripts")
from reference_strategies import volatility_labels  # noqa: E402


def momentum(close, lookback, threshold):
    s = pd.Series(close)
    m = (s / s.shift(lookback) - 1.0).to_numpy()
    pos = np.where(m > threshold, 1, 0)
    pos[:lookback] = 0
    return pos


df = pd.read_csv("data/SPY_D.csv", index_col=0)
close = df["close"].to_numpy(dtype=float)
high = df["high"].to_numpy(dtype=float)
low = df["low"].to_numpy(dtype=float)
w = json.load(open(sys.argv[1]))
signals = np.array(
    [momentum(close, s["params"]["lookback"], s["params"]["threshold"]) for s in w["signals"]],
    dtype=float,
)
trials = [s["trial"] for s in w["signals"]]
glob = np.array([s["weight"] for s in w["signals"]])
names = ["low", "normal", "high"]
per = []
for name in names:
    listed = {x["trial"]: x["weight"] for x in w["per_regime"]["regimes"][name]["weights"]}
    per.append(np.array([listed[t] for t in trials]))
labels = volatility_labels(high, low, close, 14, 50, 0.8, 1.2)


def vote(weights):
    v = (weights[:, None] * signals).sum(0)
    return np.where(v >= 0.5 - 1e-5, 1, np.where(v <= -(0.5 - 1e-5), -1, 0))


pos = vote(glob)
for code, weights in enumerate(per):
    pos = np.where(labels == code, vote(weights), pos)
R = np.zeros(len(close))
R[1:] = close[1:] / close[:-1] - 1.0
prev = np.concatenate([[0], pos[:-1]])
E = np.cumprod((1.0 + prev * R) * (1.0 - 0.001 * np.abs(pos - prev)))
at = int(np.argmax(pd.to_datetime(df["date"]) >= pd.Timestamp(sys.argv[2])))
part = E[at - 1:] / E[at - 1]
r = part[1:] / part[:-1] - 1.0
counts = {n: int((labels[at:] == c).sum()) for c, n in enumerate(names)}
print(f"from {df['date'].iloc[at]} bars {len(r)} per regime {counts}")
print(f"sharpe {r.mean() / r.std(ddof=1) * np.sqrt(252)!r}")
print(f"total_return {part[-1] - 1.0!r}")
