"""Reference figures for a sealed holdout, computed independently of admf
with numpy and pandas from the `equity.csv` of the same backtest run
without a holdout.

    python3 scripts/reference_holdout.py EQUITY_CSV FROM_DATE [PERIODS_PER_YEAR]

The held-out part starts at the first bar on or after FROM_DATE; its
equity is rebased to 1 at the close before it. Prints its bar count, the
Sharpe ratio of its returns (ddof 1, annualised) and its total return.
"""
import sys

import numpy as np
import pandas as pd

df = pd.read_csv(sys.argv[1], dtype={"ts": str})
ppy = float(sys.argv[3]) if len(sys.argv) > 3 else 252.0
at = int(np.argmax(pd.to_datetime(df["ts"]) >= pd.Timestamp(sys.argv[2])))
e = df["equity"].to_numpy(dtype=float)
part = e[at - 1 :] / e[at - 1]
r = part[1:] / part[:-1] - 1.0
print(f"from {df['ts'][at]} bars {len(r)}")
print(f"sharpe {r.mean() / r.std(ddof=1) * np.sqrt(ppy)!r}")
print(f"total_return {part[-1] - 1.0!r}")
