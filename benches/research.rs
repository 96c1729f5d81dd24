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
use admf::market::signals;
use admf::market::strategy::{Rule, momentum_into};
use admf::market::{BadRowPolicy, Bars, Objective, Strategy, equity, load_csv, weights};
use admf::phases::driver;
use admf::phases::signal_generation::TrialFigures;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
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

/// What one trial of the sweep and the gather cost per trial, piece by
/// piece, for lookback 100 and threshold 0.02 without fees.
fn per_trial(c: &mut Criterion<ThreadCpuTime>) {
    let bars = spy();
    let n = bars.len();
    let strategy = momentum(100, 0.02);
    let positions = strategy.positions(&bars);
    let mut text = String::new();
    signals::write_sparse(&mut text, &bars.symbol, &bars.ts_text, &positions);
    let returns = equity::close_returns(&bars.close);
    let train_end = Some((n as f64 * 0.8).floor() as usize);
    let mut g = c.benchmark_group("per_trial");
    g.bench_function("positions", |b| {
        b.iter(|| black_box(strategy.positions(&bars)))
    });
    g.bench_function("signal_text", |b| {
        b.iter(|| {
            let mut out = String::new();
            signals::write_sparse(&mut out, &bars.symbol, &bars.ts_text, black_box(&positions));
            black_box(out)
        })
    });
    g.bench_function("run", |b| {
        b.iter(|| {
            black_box(driver::run(
                &bars,
                positions.clone(),
                0.0,
                equity::Fill::Close,
            ))
        })
    });
    let mut curve_buffer = Vec::new();
    g.bench_function("trial_metrics", |b| {
        b.iter(|| {
            black_box(driver::close_fill_metrics(
                &bars,
                black_box(&positions),
                0.0,
                &mut curve_buffer,
            ))
        })
    });
    g.bench_function("signal_lines", |b| {
        let lines = bars.signal_lines();
        b.iter(|| {
            let mut out = String::new();
            lines.write(&mut out, black_box(&positions));
            black_box(out)
        })
    });
    g.bench_function("gather_returns_dense", |b| {
        b.iter(|| {
            let p = signals::densify_text(black_box(&text), "SPY", n, Some(&bars.ts_text))
                .expect("a valid signal");
            black_box(equity::strategy_returns(&equity::equity_curve(
                &returns, &p, 0.0,
            )))
        })
    });
    let mut changes = Vec::new();
    let (mut curve, mut r) = (Vec::new(), Vec::new());
    signals::sparse_changes(&text, "SPY", n, Some(&bars.ts_text), &mut changes)
        .expect("a valid signal");
    equity::returns_of_changes(&returns, n, &changes, 0.0, (&mut curve, &mut r));
    g.bench_function("gather_returns_sparse", |b| {
        b.iter(|| {
            signals::sparse_changes(
                black_box(&text),
                "SPY",
                n,
                Some(&bars.ts_text),
                &mut changes,
            )
            .expect("a valid signal");
            equity::returns_of_changes(&returns, n, &changes, 0.0, (&mut curve, &mut r));
            black_box(r.len())
        })
    });
    g.bench_function("gather_figures", |b| {
        b.iter(|| black_box(TrialFigures::of(black_box(&r), train_end)))
    });
    g.finish();
}

/// The CPU time of the measuring thread: the `per_trial` kernels run on
/// one thread, and on a machine shared with other work the wall clock
/// also counts the time other processes hold the core.
struct ThreadCpuTime;

fn thread_cpu_nanos() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_nanos()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_nanos() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

criterion_group!(benches, sweep, replay, regenerate);
criterion_group! {
    name = per_trial_cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = per_trial
}
criterion_main!(benches, per_trial_cpu);
