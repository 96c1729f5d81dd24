"""Reference figures for the parts of a split, computed independently of
admf with numpy from an `equity.csv` (`ts,equity,...`).

    python3 scripts/reference_split.py EQUITY_CSV S V [PERIODS_PER_YEAR]

Bars 0..S-1 are the train part, S..V-1 the validation part, V.. the test
part. Per part: the Sharpe ratio of its returns r_t = e_t / e_{t-1} - 1
(the train part r_1..r_{S-1}; a later part starting at bar F from r_F),
ddof 1, annualised; and its total return from the close before it.
"""
import sys

import numpy as np

path, s, v = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ppy = float(sys.argv[4]) if len(sys.argv) > 4 else 252.0
e = np.genfromtxt(path, delimiter=",", skip_header=1, usecols=1)
r = e[1:] / e[:-1] - 1.0  # r[t-1] is r_t
n = len(e)
for name, lo, hi in (("train", 1, s), ("validation", s, v), ("test", v, n)):
    if hi <= lo:
        continue
    x = r[lo - 1 : hi - 1]
    sharpe = x.mean() / x.std(ddof=1) * np.sqrt(ppy)
    base = e[lo - 1] if lo > 1 else e[0]
    print(f"{name} bars {hi - lo if lo > 1 else hi} sharpe {sharpe!r} total_return {e[hi - 1] / base - 1.0!r}")
