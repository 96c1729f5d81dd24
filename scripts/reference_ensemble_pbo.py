"""Reference PBO of an ensemble's weight search, computed independently of
admf with numpy from the sweep's saved signals and the data.

    python3 scripts/reference_ensemble_pbo.py SIGNALS_DIR DATA_CSV FEE SPLIT [STEP] [THRESHOLD]

Rebuilds every weighting of the grid (step STEP over the trials, summing
to 1, in lexicographic order), its weighted vote (position sign(V) when
|V| >= THRESHOLD), its equity over the train bars 0..s-1 with
s = floor(bars * SPLIT) and fee FEE per unit of position change, and runs
combinatorially symmetric cross-validation (Bailey, Borwein, Lopez de
Prado, Zhu 2015) over the train returns in 8 blocks: the share of the 70
in-sample choices whose best weighting (first of equal Sharpe ratios) is
at or below the median out of sample.
"""
import glob
import itertools
import json
import sys

import numpy as np
import pandas as pd

sig_dir, data_csv, fee, split = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
step = float(sys.argv[5]) if len(sys.argv) > 5 else 0.1
threshold = float(sys.argv[6]) if len(sys.argv) > 6 else 0.5
blocks = 8

close = pd.read_csv(data_csv)["close"].to_numpy(dtype=float)
n = len(close)
s = int(np.floor(n * split))
ret = np.zeros(n)
ret[1:] = close[1:] / close[:-1] - 1.0

files = sorted(glob.glob(f"{sig_dir}/trial_*.jsonl"), key=lambda f: int(f.split("_")[-1].split(".")[0]))
signals = []
for f in files:
    p = np.zeros(n)
    for line in open(f):
        c = json.loads(line)
        p[c["i"] :] = c["v"]
    signals.append(p)
signals = np.array(signals)
k = len(signals)
units = round(1 / step)


def compositions(left, at):
    if at == k - 1:
        yield (left,)
        return
    for u in range(left + 1):
        for rest in compositions(left - u, at + 1):
            yield (u,) + rest


weights = np.array(list(compositions(units, 0)), dtype=float) / units
votes = weights @ signals  # (weightings, bars)
pos = np.where(votes >= threshold - 1e-5, 1, np.where(votes <= -(threshold - 1e-5), -1, 0))[:, :s]

# Equity over the train bars; returns r_1..r_{s-1}.
e = np.ones((len(weights), s))
prev = np.zeros(len(weights))
cur = np.ones(len(weights))
for t in range(s):
    if t > 0:
        cur = cur * (1 + prev * ret[t])
    cur = cur * (1 - fee * np.abs(pos[:, t] - prev))
    e[:, t] = cur
    prev = pos[:, t]
r = e[:, 1:] / e[:, :-1] - 1.0
T = r.shape[1]
bb = T // blocks
r = r[:, T - bb * blocks :].reshape(len(weights), blocks, bb)
sums, sq = r.sum(axis=2), (r * r).sum(axis=2)


def sharpe(cols):
    m = len(cols) * bb
    a, b = sums[:, cols].sum(axis=1), sq[:, cols].sum(axis=1)
    mean = a / m
    return mean / np.sqrt(np.maximum((b - m * mean * mean) / (m - 1), 0))


logits = []
for chosen in itertools.combinations(range(blocks), blocks // 2):
    rest = [b for b in range(blocks) if b not in chosen]
    best = int(np.argmax(sharpe(list(chosen))))
    oos = sharpe(rest)
    rank = (oos < oos[best]).sum() + ((oos == oos[best]).sum() + 1) / 2
    w = rank / (len(weights) + 1)
    logits.append(np.log(w / (1 - w)))
logits = np.array(logits)
print(f"weightings {len(weights)} combinations {len(logits)} pbo {(logits <= 0).mean()!r}")
