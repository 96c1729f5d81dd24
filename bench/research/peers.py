"""Python peers of the research benchmarks: vectorbt and numpy.

Run by ``run.py`` in the virtualenv it creates, one fresh process per mode,
each writing one JSON file:

    peers.py sweep  --data CSV --out JSON [--engine vectorbt|numpy]
    peers.py replay --data CSV --out JSON --samples N --seed S
                    [--grid-step 0.25] [--weights JSON]

Conventions follow admf (DESIGN §6): the position p_t is decided at the
close of bar t and earns bar t+1, E_t = E_{t-1}·(1 + p_{t-1}·R_t)·(1 − f·|Δp_t|).
vectorbt's ``from_signals`` with close fills matches this without a shift:
an entry signalled on bar t is filled at C_t, so the first return it earns
is C_{t+1}/C_t − 1, exactly p_t·R_{t+1}.
"""

import argparse
import json
import sys
import time

T_PROCESS = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

T_NUMPY = time.perf_counter()

SWEEP_LOOKBACKS = list(range(5, 201, 5))  # 40
SWEEP_THRESHOLDS = [round(0.002 * i, 6) for i in range(25)]  # 25
REPLAY_LOOKBACKS = [10, 20, 40, 80, 160]
REPLAY_THRESHOLDS = [0.0, 0.01, 0.02, 0.03]
TOLERANCE = np.float32(1e-5)


def load_close(path):
    df = pd.read_csv(path)
    df.columns = [str(c).strip().lower() for c in df.columns]
    return df["close"].to_numpy(dtype=np.float64), pd.to_datetime(df["date"])


def momentum(close, lookback, threshold):
    """Long-only momentum of admf: long when C_t/C_{t-L} − 1 > threshold."""
    p = np.zeros(len(close), dtype=np.int8)
    if lookback < len(close):
        m = close[lookback:] / close[:-lookback] - 1.0
        p[lookback:] = m > threshold
    return p


def sweep_positions(close):
    combos = [(lb, th) for lb in SWEEP_LOOKBACKS for th in SWEEP_THRESHOLDS]
    pos = np.empty((len(close), len(combos)), dtype=np.int8)
    for j, (lb, th) in enumerate(combos):
        pos[:, j] = momentum(close, lb, th)
    return combos, pos


def numpy_total_returns(close, pos):
    r = close[1:] / close[:-1] - 1.0
    return np.prod(1.0 + pos[:-1].astype(np.float64) * r[:, None], axis=0) - 1.0


def cmd_sweep(args):
    out = {"engine": args.engine, "t_numpy_import_s": T_NUMPY - T_PROCESS}
    t0 = time.perf_counter()
    if args.engine == "vectorbt":
        import vectorbt as vbt

        out["vectorbt_version"] = vbt.__version__
    out["t_import_s"] = time.perf_counter() - t0

    def run(close, dates):
        combos, pos = sweep_positions(close)
        if args.engine == "vectorbt":
            price = pd.Series(close, index=dates)
            cols = pd.MultiIndex.from_tuples(combos, names=["lookback", "threshold"])
            entries = pd.DataFrame(pos == 1, index=dates, columns=cols)
            exits = pd.DataFrame(pos == 0, index=dates, columns=cols)
            pf = vbt.Portfolio.from_signals(
                price, entries, exits, init_cash=1.0, fees=0.0, freq="1D"
            )
            tr = pf.total_return().to_numpy()
        else:
            tr = numpy_total_returns(close, pos)
        return combos, pos, tr

    t0 = time.perf_counter()
    close, dates = load_close(args.data)
    out["t_load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    combos, pos, tr = run(close, dates)
    out["t_first_s"] = time.perf_counter() - t0
    warm = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run(close, dates)
        warm.append(time.perf_counter() - t0)
    out["t_warm_s"] = warm
    out["t_warm_median_s"] = float(np.median(warm))
    out["t_in_process_s"] = time.perf_counter() - T_PROCESS
    out["bars"] = len(close)
    out["combinations"] = [{"lookback": lb, "threshold": th} for lb, th in combos]
    out["total_return"] = [float(x) for x in tr]
    out["numpy_total_return"] = [float(x) for x in numpy_total_returns(close, pos)]
    with open(args.out, "w") as f:
        json.dump(out, f)


def replay_signals(close):
    combos = [(lb, th) for lb in REPLAY_LOOKBACKS for th in REPLAY_THRESHOLDS]
    return np.stack([momentum(close, lb, th) for lb, th in combos])


def grid_weights(k, step):
    """admf's `grid`: compositions of 1/step units in lexicographic order."""
    units = round(1.0 / step)
    rows = []
    parts = [0] * k

    def rec(at, left):
        if at == k - 1:
            parts[at] = left
            rows.append([u / units for u in parts])
            return
        for u in range(left + 1):
            parts[at] = u
            rec(at + 1, left - u)

    rec(0, units)
    return np.array(rows)


class Search:
    """The weighted vote and the train-part Sharpe of admf's signal_replay,
    vectorised over weightings in batches."""

    def __init__(self, close, signals, fee, ppy, threshold, split, batch):
        n = len(close)
        self.end = int(np.floor(n * split))
        self.s = signals[:, : self.end].astype(np.float32)
        ret = np.zeros(n)
        ret[1:] = close[1:] / close[:-1] - 1.0
        self.r = ret[1 : self.end]
        self.fee, self.ppy, self.batch = fee, ppy, batch
        self.reach = max(np.float32(threshold) - TOLERANCE, TOLERANCE)

    def scores(self, w):
        out = np.empty(len(w))
        w32 = w.astype(np.float32)
        for a in range(0, len(w), self.batch):
            v = w32[a : a + self.batch] @ self.s
            p = (v >= self.reach).astype(np.int8) - (v <= -self.reach)
            p = p.astype(np.float64)
            r = (1.0 + p[:, :-1] * self.r) * (
                1.0 - self.fee * np.abs(np.diff(p, axis=1))
            ) - 1.0
            mean = r.mean(axis=1)
            std = r.std(axis=1, ddof=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                sh = np.where(std > 0, mean / std * np.sqrt(self.ppy), 0.0)
            out[a : a + self.batch] = sh
        return out

    def best(self, w):
        sc = self.scores(w)
        i = int(np.argmax(sc))
        return i, float(sc[i])


def cmd_replay(args):
    out = {"t_numpy_import_s": T_NUMPY - T_PROCESS, "numpy_version": np.__version__}
    close, _ = load_close(args.data)
    signals = replay_signals(close)
    search = Search(
        close, signals, args.fee, args.ppy, args.threshold, args.split, args.batch
    )
    # Same distribution as admf's `random` (normalised exponentials), numpy's
    # generator: the timing does not depend on which weightings are drawn.
    rng = np.random.default_rng(args.seed)
    e = rng.exponential(size=(args.samples, signals.shape[0]))
    w = e / e.sum(axis=1, keepdims=True)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        i, score = search.best(w)
        times.append(time.perf_counter() - t0)
    out.update(
        weightings=len(w),
        signals=int(signals.shape[0]),
        bars=len(close),
        train_end=search.end,
        t_search_s=times,
        t_search_median_s=float(np.median(times)),
        best_index=i,
        best_score=score,
    )
    if args.grid_step:
        g = grid_weights(signals.shape[0], args.grid_step)
        gi, gs = search.best(g)
        out["grid"] = {
            "step": args.grid_step,
            "weightings": len(g),
            "best_index": gi,
            "best_score": gs,
            "best_weights": g[gi].tolist(),
        }
    if args.weights:
        with open(args.weights) as f:
            chosen = json.load(f)
        ws = np.array([[s["weight"] for s in c] for c in chosen])
        out["scores_of_given"] = search.scores(ws).tolist()
    with open(args.out, "w") as f:
        json.dump(out, f)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--engine", choices=["vectorbt", "numpy"], default="vectorbt")
    s.add_argument("--repeats", type=int, default=3)
    r = sub.add_parser("replay")
    r.add_argument("--data", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--samples", type=int, default=10_000)
    r.add_argument("--seed", type=int, default=7)
    r.add_argument("--fee", type=float, default=0.001)
    r.add_argument("--ppy", type=float, default=252.0)
    r.add_argument("--threshold", type=float, default=0.5)
    r.add_argument("--split", type=float, default=0.8)
    r.add_argument("--batch", type=int, default=500)
    r.add_argument("--repeats", type=int, default=3)
    r.add_argument("--grid-step", type=float, default=0.0)
    r.add_argument("--weights", help="JSON list of weight lists ([{weight}...]) to score")
    args = ap.parse_args()
    {"sweep": cmd_sweep, "replay": cmd_replay}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
