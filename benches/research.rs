//! Research kernels on the shipped daily file (`data/SPY_D.csv`), with
//! criterion. The figures feed `BENCHMARKS.md` through
//! `bench/research/run.sh`, which reads `target/criterion/*/new/estimates.json`.
//!
//! - `sweep/kernel_one`: momentum positions plus the equity recursion for
//!   one combination; throughput in strategy-bars.
//! - `sweep/kernel_1000`: the 1,000 combinations of the sweep (40 lookbacks
//!   × 25 thresholds) one after the other on one core, buffers reused.
//! - `replay/search_10000x20`: the ensemble search over 10,000 seeded
//!   random weightings of 20 saved signal sets (Sharpe on the train part),
//!   on the default rayon pool and on a pool of one thread.
//! - `regenerate/backtests_10000`: 10,000 full backtests on one core
//!   (positions, equity, round trips and every metric), what evaluating
//!   10,000 variants costs when the signals are computed again instead of
//!   replayed.
//!
//! Regression baseline: `cargo bench --bench research -- --save-baseline main`,
//! later `cargo bench --bench research -- --baseline main` reports the
//! change against it.

use std::hint::black_box;
use std::path::Path;

use admf::market::ensemble::{Ensemble, Scope};
use admf::market::strategy::{Rule, momentum_into};
use admf::market::{BadRowPolicy, Bars, Objective, Strategy, equity, load_csv, weights};
use admf::phases::driver;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The sweep of issue 6: lookback 5, 10, …, 200 and threshold 0, 0.002, …, 0.048.
fn sweep_grid() -> Vec<(usize, f64)> {
    let mut out = Vec::with_capacity(1000);
    for l in (5..=200).step_by(5) {
        for i in 0..25 {
            out.push((l, (f64::from(i) * 0.002 * 1e6).round() / 1e6));
        }
    }
    out
}

/// The 20 signal sets replayed: lookback 10, 20, 40, 80, 160 × threshold
/// 0, 0.01, 0.02, 0.03.
fn replay_grid() -> Vec<(usize, f64)> {
    let mut out = Vec::with_capacity(20);
    for l in [10, 20, 40, 80, 160] {
        for t in [0.0, 0.01, 0.02, 0.03] {
            out.push((l, t));
        }
    }
    out
}

fn spy() -> Bars {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/SPY_D.csv");
    load_csv(&path, "SPY", BadRowPolicy::Error)
        .expect("data/SPY_D.csv loads")
        .bars
}

fn momentum(lookback: usize, threshold: f64) -> Strategy {
    Strategy {
        rule: Rule::Momentum {
            lookback,
            threshold,
        },
        allow_short: false,
    }
}

fn sweep(c: &mut Criterion) {
    let bars = spy();
    let n = bars.len();
    let returns = equity::close_returns(&bars.close);
    let mut positions = vec![0i8; n];
    let mut curve = vec![0.0f64; n];
    let mut g = c.benchmark_group("sweep");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("kernel_one", |b| {
        b.iter(|| {
            momentum_into(
                &bars.close,
                black_box(100),
                black_box(0.02),
                false,
                &mut positions,
            );
            equity::equity_into(&returns, &positions, 0.0, &mut curve);
            black_box(curve[n - 1])
        })
    });
    let grid = sweep_grid();
    g.throughput(Throughput::Elements((n * grid.len()) as u64));
    g.sample_size(20);
    g.bench_function("kernel_1000", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for &(l, t) in &grid {
                momentum_into(&bars.close, l, t, false, &mut positions);
                equity::equity_into(&returns, &positions, 0.0, &mut curve);
                acc += curve[n - 1];
            }
            black_box(acc)
        })
    });
    g.finish();
}

fn replay(c: &mut Criterion) {
    let bars = spy();
    let n = bars.len();
    let signals: Vec<Vec<i8>> = replay_grid()
        .into_iter()
        .map(|(l, t)| momentum(l, t).positions(&bars))
        .collect();
    let ppy = bars.frequency().periods_per_year();
    let ens = Ensemble::new(
        &signals,
        equity::close_returns(&bars.close),
        0.001,
        ppy,
        0.5,
    );
    let cands = weights::random(signals.len(), 10_000, 7).expect("within the bounds");
    // The split of `signal_replay` with the default 0.8.
    let scope = Scope {
        end: (n as f64 * 0.8).floor() as usize,
        labels: None,
    };
    let mut g = c.benchmark_group("replay");
    g.sample_size(20);
    g.throughput(Throughput::Elements(cands.count() as u64));
    g.bench_function("search_10000x20", |b| {
        b.iter(|| black_box(ens.search(&cands, scope, Objective::Sharpe)))
    });
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a rayon pool");
    g.bench_function("search_10000x20_1thread", |b| {
        b.iter(|| one.install(|| black_box(ens.search(&cands, scope, Objective::Sharpe))))
    });
    g.finish();
}

fn regenerate(c: &mut Criterion) {
    let bars = spy();
    let grid: Vec<(usize, f64)> = (0..10)
        .flat_map(|rep| sweep_grid().into_iter().map(move |(l, t)| (l + rep, t)))
        .collect();
    let mut g = c.benchmark_group("regenerate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(grid.len() as u64));
    g.bench_function("backtests_10000", |b| {
        b.iter(|| {
            let mut acc = 0.0;
            for &(l, t) in &grid {
                let p = momentum(l, t).positions(&bars);
                acc += driver::run(&bars, p, 0.001, admf::market::equity::Fill::Close)
                    .metrics
                    .sharpe
                    .unwrap_or(0.0);
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group!(benches, sweep, replay, regenerate);
criterion_main!(benches);
