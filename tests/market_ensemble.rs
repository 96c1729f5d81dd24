//! The ensemble search on the shipped daily file: determinism across
//! thread counts, and speed.

use std::path::Path;
use std::time::Instant;

use admf::market::ensemble::{Ensemble, Scope, Scratch};
use admf::market::{BadRowPolicy, Objective, Strategy, equity, load_csv, weights};
use serde_json::json;

fn ensemble(count: usize) -> Ensemble {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/SPY_D.csv");
    let bars = load_csv(&path, "SPY", BadRowPolicy::Error).unwrap().bars;
    let signals: Vec<Vec<i8>> = (0..count)
        .map(|i| {
            let s = json!({"type": "momentum", "parameters": {"lookback": 5 + 5 * i, "allow_short": i % 2 == 1}});
            Strategy::from_config(&s).unwrap().positions(&bars)
        })
        .collect();
    Ensemble::new(
        &signals,
        equity::close_returns(&bars.close),
        0.0005,
        252.0,
        0.5,
    )
}

#[test]
fn search_is_independent_of_thread_count() {
    let e = ensemble(8);
    let w = weights::random(8, 3000, 7);
    let scope = Scope {
        end: 4192,
        labels: None,
    };
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| e.search(&w, scope, Objective::Sharpe).unwrap())
    };
    let one = run(1);
    let two = run(2);
    assert_eq!(one.index, two.index);
    assert_eq!(one.score.to_bits(), two.score.to_bits());
    // The chosen score is the maximum of the candidates, lowest index on ties.
    let mut votes = Scratch::new(e.len());
    for i in 0..w.count() {
        let s = e.score(w.row(i), scope, Objective::Sharpe, &mut votes);
        assert!(s < one.score || (s == one.score && i >= one.index));
    }
}

#[test]
fn search_speed_is_reported() {
    let e = ensemble(20);
    // The full 10,000 in optimised builds (`cargo test --release`).
    let count = if cfg!(debug_assertions) {
        1_000
    } else {
        10_000
    };
    let w = weights::random(20, count, 1);
    let scope = Scope {
        end: 4192,
        labels: None,
    };
    let started = Instant::now();
    let best = e.search(&w, scope, Objective::Sharpe).unwrap();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{count} weightings of 20 signals over 5,241 bars: {secs:.3} s ({:.0}/s), best score {:.3}",
        count as f64 / secs,
        best.score
    );
}
