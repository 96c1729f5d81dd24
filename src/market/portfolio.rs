//! Several symbols as one equal-weight portfolio.
//!
//! Each symbol is run on its own capital of 1/n. The portfolio's timeline
//! is the union of the symbols' timestamps; a symbol's equity is carried
//! forward between its own bars and is 1 before its first bar. There is no
//! rebalancing: combined E_t = mean over symbols of E_{s,t}.

/// One symbol's timestamps and equity curve.
pub struct Leg<'a> {
    pub ts: &'a [i64],
    pub equity: &'a [f64],
}

/// The union timeline as (leg, bar) of a leg holding each timestamp (the
/// first such leg), and the combined equity.
pub fn equal_weight(legs: &[Leg<'_>]) -> (Vec<(usize, usize)>, Vec<f64>) {
    let n = legs.len().max(1) as f64;
    let mut cursor = vec![0usize; legs.len()];
    let mut current = vec![1.0f64; legs.len()];
    let mut timeline = Vec::new();
    let mut equity = Vec::new();
    loop {
        let next = legs
            .iter()
            .zip(&cursor)
            .filter_map(|(l, &c)| l.ts.get(c).copied())
            .min();
        let Some(t) = next else { break };
        let mut owner = None;
        for (k, leg) in legs.iter().enumerate() {
            if leg.ts.get(cursor[k]) == Some(&t) {
                current[k] = leg.equity[cursor[k]];
                owner.get_or_insert((k, cursor[k]));
                cursor[k] += 1;
            }
        }
        timeline.extend(owner);
        equity.push(current.iter().sum::<f64>() / n);
    }
    (timeline, equity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_timeline_carries_equity_forward() {
        let a = Leg {
            ts: &[1, 2, 3],
            equity: &[1.0, 1.1, 1.2],
        };
        let b = Leg {
            ts: &[2, 4],
            equity: &[0.9, 1.0],
        };
        let (timeline, e) = equal_weight(&[a, b]);
        assert_eq!(timeline, vec![(0, 0), (0, 1), (0, 2), (1, 1)]);
        let want = [1.0, 1.0, 1.05, 1.1];
        for (x, y) in e.iter().zip(want) {
            assert!((x - y).abs() < 1e-12, "{e:?}");
        }
    }
}
