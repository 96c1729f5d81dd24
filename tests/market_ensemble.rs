//! The ensemble search on the shipped daily file: determinism across
//! thread counts. Its speed is a benchmark (`cargo bench --bench research
//! -- replay/search`), not a test.

use std::path::Path;

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
    let w = weights::random(8, 3000, 7).unwrap();
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
