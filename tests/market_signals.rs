//! Sparse signal files round-trip against the real daily timestamps.

use std::path::Path;

use admf::market::{BadRowPolicy, load_csv, signals};
use proptest::prelude::*;

fn timestamps() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/SPY_D.csv");
    load_csv(&path, "SPY", BadRowPolicy::Error)
        .unwrap()
        .bars
        .ts_text
        .to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn dense_sparse_dense_is_exact(
        runs in proptest::collection::vec((-1i8..=1, 1usize..400), 1..60)
    ) {
        let ts = timestamps();
        let mut dense: Vec<i8> = runs
            .iter()
            .flat_map(|&(v, len)| std::iter::repeat_n(v, len))
            .collect();
        dense.resize(ts.len(), 0);
        let mut text = String::new();
        signals::write_sparse(&mut text, "SPY", &ts, &dense);
        let changes: usize = (0..dense.len())
            .filter(|&i| dense[i] != if i == 0 { 0 } else { dense[i - 1] })
            .count();
        prop_assert_eq!(text.lines().count(), changes);
        let parsed = signals::read_sparse(&text).unwrap();
        prop_assert_eq!(signals::densify(&parsed, "SPY", ts.len(), Some(&ts)).unwrap(), dense);
    }
}
