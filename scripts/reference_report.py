"""Reference figures for the report's tables, computed independently of
admf with numpy and pandas from an `equity.csv` (`ts,equity,...`).

    python3 scripts/reference_report.py EQUITY_CSV [WINDOW] [PERIODS_PER_YEAR]

Prints the five deepest drawdowns (peak, trough, recovery, depth), the
yearly returns, the monthly returns of one year and the trailing-window
Sharpe ratio at the last bar.
"""
import sys

import numpy as np
import pandas as pd

path = sys.argv[1]
window = int(sys.argv[2]) if len(sys.argv) > 2 else 126
ppy = float(sys.argv[3]) if len(sys.argv) > 3 else 252.0

df = pd.read_csv(path, dtype={"ts": str})
ts = pd.to_datetime(df["ts"])
e = df["equity"].to_numpy(dtype=float)

# Drawdowns: a period opens at the last bar of a running high and closes
# at the first bar back at or above it.
running = np.maximum.accumulate(e)
under = e < running
periods = []
i = 0
n = len(e)
while i < n:
    if not under[i]:
        i += 1
        continue
    peak = i - 1
    j = i
    while j < n and under[j]:
        j += 1
    trough = peak + 1 + int(np.argmin(e[peak + 1 : j]))
    recovery = j if j < n else None
    periods.append((e[trough] / e[peak] - 1.0, peak, trough, recovery))
    i = j
periods.sort(key=lambda p: (p[0], p[1]))
for depth, peak, trough, rec in periods[:5]:
    print(
        f"drawdown {depth!r} peak {ts[peak].date()} trough {ts[trough].date()} "
        f"recovery {ts[rec].date() if rec is not None else None}"
    )

s = pd.Series(e, index=ts)
for freq, label in (("YE", "year"), ("ME", "month")):
    last = s.groupby(s.index.to_period(freq[0])).last()
    base = last.shift(1)
    base.iloc[0] = e[0]
    r = last / base - 1.0
    if label == "year":
        for k, v in r.items():
            print(f"year {k} {v!r}")
    else:
        for k, v in r.items():
            if k.year == 2008:
                print(f"month {k} {v!r}")

ret = e[1:] / e[:-1] - 1.0
w = ret[-window:]
print(f"rolling_sharpe_last {w.mean() / w.std(ddof=1) * np.sqrt(ppy)!r}")
