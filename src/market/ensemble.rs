//! The weighted-vote ensemble and its weight search.
//!
//! With signals s_{k,t} ∈ {−1, 0, 1} and weights w on the simplex, the
//! ensemble position is p_t = sign(V_t) when |V_t| ≥ threshold, else 0,
//! where V_t = Σ_k w_k·s_{k,t}. V is summed in f32 in signal order; a
//! tolerance of [`TOLERANCE`] absorbs rounding, so |V| ≥ threshold − 1e-5
//! reaches the threshold and |V| < 1e-5 counts as a tie (0).
//!
//! **Split.** With s = ⌊N·split⌋ the train part is the returns r_1..r_{s−1}
//! (bars 0..s) and the test part r_s..r_T: positions are computed over all
//! bars with the chosen weights, so the test starts from the position held
//! at the end of training, and test equity is rebased to 1 at bar s − 1.
//!
//! **Search.** Every candidate is scored on the train part by the
//! objective, each independently (rayon, one scratch buffer per worker);
//! the best is the highest score, ties to the lowest index, NaN never
//! wins, so the result does not depend on the number of threads. For the
//! Sharpe and Sortino objectives a score walks only the bars where the
//! ensemble position changes, adding each run of one position from prefix
//! sums of R, R² and the one-sided squares (restricted to a regime's bars
//! when searching per regime); the path-dependent objectives (total
//! return, CAGR, Calmar) go bar by bar. Scores use a one-pass variance;
//! reported metrics are recomputed exactly by [`crate::market::Metrics`].
//!
//! **Per regime.** Given a label per bar, a weight vector is searched per
//! regime, scoring only the returns r_t whose bar t − 1 carries that
//! label; at bar t the ensemble uses the weights of label t (the global
//! weights where a bar is unlabelled or its regime has no train bars).

use std::collections::HashMap;

use rayon::prelude::*;

use super::metrics::{Objective, cagr};
use super::weights::Weights;

pub const TOLERANCE: f32 = 1e-5;

/// The signals, deduplicated into patterns, plus what scoring needs.
///
/// Bars fall into segments (maximal runs on which no signal changes, so
/// the vote and the position are constant within one) and segments into
/// patterns (distinct vectors of the k signals). A vote is computed once
/// per pattern: segments of one pattern get bit-identical votes, since
/// each is the same sum in the same order.
pub struct Ensemble {
    k: usize,
    n: usize,
    /// First bar of each segment.
    segment_starts: Vec<usize>,
    /// The pattern of each segment.
    segment_pattern: Vec<u32>,
    /// First segment of each pattern, increasing: patterns are numbered in
    /// order of first appearance, so the first j segments use patterns
    /// `0..pattern_first.partition_point(|&s| s < j)`.
    pattern_first: Vec<usize>,
    /// The signals per pattern, `k` columns of `pattern_first.len()`.
    pattern_columns: Vec<f32>,
    returns: Vec<f64>,
    /// Prefix sums over all returns.
    prefix: Prefix,
    fee: f64,
    ppy: f64,
    /// |vote| needed for a position: the threshold less [`TOLERANCE`],
    /// never below it.
    reach: f32,
}

/// Per-worker buffers of [`Ensemble::score`].
pub struct Scratch {
    votes: Vec<f32>,
    positions: Vec<i8>,
}

impl Scratch {
    pub fn new(n: usize) -> Scratch {
        Scratch {
            votes: vec![0.0; n],
            positions: vec![0; n],
        }
    }
}

/// Running sums of the scored returns.
#[derive(Default)]
struct Sums {
    count: usize,
    sum: f64,
    sum_sq: f64,
    down: f64,
}

/// Prefix sums over bars 1..=t of R, R², min(R, 0)², max(R, 0)² and of
/// the count of returns in scope, so a run of one position scores in O(1).
/// One row per bar, so a run reads two rows.
struct Prefix {
    rows: Vec<PrefixRow>,
}

struct PrefixRow {
    sums: [f64; 4],
    count: usize,
}

impl Prefix {
    /// Over the returns r_t whose bar t − 1 carries `label` (all if `None`).
    fn new(returns: &[f64], labels: Option<(&[u8], u8)>) -> Prefix {
        let mut sums = [0.0f64; 4];
        let mut count = 0usize;
        let rows = returns
            .iter()
            .enumerate()
            .map(|(t, &r)| {
                if t > 0 && labels.is_none_or(|(l, g)| l[t - 1] == g) {
                    let (lo, hi) = (r.min(0.0), r.max(0.0));
                    sums[0] += r;
                    sums[1] += r * r;
                    sums[2] += lo * lo;
                    sums[3] += hi * hi;
                    count += 1;
                }
                PrefixRow { sums, count }
            })
            .collect();
        Prefix { rows }
    }
}

impl Sums {
    fn add(&mut self, r: f64) {
        self.count += 1;
        self.sum += r;
        self.sum_sq += r * r;
        self.down += r.min(0.0) * r.min(0.0);
    }
}

/// Which returns a score counts: those of bars 1..end whose previous bar
/// carries `label` (all when `None`).
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub end: usize,
    pub labels: Option<(&'a [u8], u8)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Best {
    pub index: usize,
    pub score: f64,
}

impl Ensemble {
    /// `signals[k]` is the dense series of signal k; `returns` the
    /// close-to-close returns (R_0 = 0) of the same bars.
    pub fn new(signals: &[Vec<i8>], returns: Vec<f64>, fee: f64, ppy: f64, threshold: f64) -> Self {
        let n = returns.len();
        let segment_starts: Vec<usize> = (0..n)
            .filter(|&t| t == 0 || signals.iter().any(|s| s[t] != s[t - 1]))
            .collect();
        let mut ids: HashMap<Vec<i8>, u32> = HashMap::new();
        let mut pattern_first = Vec::new();
        let mut patterns: Vec<Vec<i8>> = Vec::new();
        let segment_pattern = segment_starts
            .iter()
            .enumerate()
            .map(|(j, &t)| {
                let pattern: Vec<i8> = signals.iter().map(|s| s[t]).collect();
                *ids.entry(pattern).or_insert_with_key(|pattern| {
                    pattern_first.push(j);
                    patterns.push(pattern.clone());
                    (patterns.len() - 1) as u32
                })
            })
            .collect();
        let pattern_columns = (0..signals.len())
            .flat_map(|k| patterns.iter().map(move |p| f32::from(p[k])))
            .collect();
        Ensemble {
            k: signals.len(),
            n,
            segment_starts,
            segment_pattern,
            pattern_first,
            pattern_columns,
            prefix: Prefix::new(&returns, None),
            returns,
            fee,
            ppy,
            reach: (threshold as f32 - TOLERANCE).max(TOLERANCE),
        }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The votes of weights `w` for the patterns of the first `segments`
    /// segments, in `votes`; returns how many patterns that is.
    fn pattern_votes(&self, w: &[f64], segments: usize, votes: &mut [f32]) -> usize {
        let used = self.pattern_first.partition_point(|&j| j < segments);
        weighted_vote(
            &self.pattern_columns,
            self.pattern_first.len(),
            &w[..self.k.min(w.len())],
            &mut votes[..used],
        );
        used
    }

    /// The positions of weights `w` over bars 0..end, in `positions`.
    fn positions_into(&self, w: &[f64], end: usize, votes: &mut [f32], positions: &mut [i8]) {
        let segments = self.segment_starts.partition_point(|&t| t < end);
        self.pattern_votes(w, segments, votes);
        for j in 0..segments {
            let next = self.segment_starts.get(j + 1).map_or(end, |&t| t.min(end));
            let p = self.decide(votes[self.segment_pattern[j] as usize]);
            positions[self.segment_starts[j]..next].fill(p);
        }
    }

    fn decide(&self, v: f32) -> i8 {
        i8::from(v >= self.reach) - i8::from(v <= -self.reach)
    }

    /// Run-based scoring that votes once per segment instead of once per
    /// bar: the same positions, so the same runs and the same score as
    /// voting bar by bar, at a fraction of the multiply-adds.
    fn score_by_segments(
        &self,
        w: &[f64],
        scope: Scope<'_>,
        objective: Objective,
        scratch: &mut Scratch,
        prefix: &Prefix,
    ) -> f64 {
        let end = scope.end.min(self.n);
        if end < 2 {
            return 0.0;
        }
        let segments = self.segment_starts.partition_point(|&t| t < end);
        let used = self.pattern_votes(w, segments, &mut scratch.votes);
        let decided = &mut scratch.positions[..used];
        for (p, &v) in decided.iter_mut().zip(&scratch.votes[..used]) {
            *p = self.decide(v);
        }
        let mut s = Sums::default();
        let mut prev = decided[self.segment_pattern[0] as usize];
        let mut run_start = 0usize;
        let changes = self.segment_pattern[1..segments]
            .iter()
            .zip(&self.segment_starts[1..segments]);
        for (&pattern, &t) in changes {
            let p = decided[pattern as usize];
            if p == prev {
                continue;
            }
            add_run(prefix, &mut s, prev, run_start, t - 1);
            if scope.labels.is_none_or(|(l, g)| l[t - 1] == g) {
                let r = (1.0 + f64::from(prev) * self.returns[t])
                    * (1.0 - self.fee * f64::from((p - prev).abs()))
                    - 1.0;
                s.add(r);
            }
            run_start = t;
            prev = p;
        }
        add_run(prefix, &mut s, prev, run_start, end - 1);
        self.finish(&s, 1.0, 0.0, objective)
    }

    /// The ensemble positions of weights `w` over all bars.
    pub fn positions(&self, w: &[f64]) -> Vec<i8> {
        let mut votes = vec![0.0f32; self.pattern_first.len()];
        let mut positions = vec![0i8; self.n];
        self.positions_into(w, self.n, &mut votes, &mut positions);
        positions
    }

    /// Positions with weights chosen per bar by `labels[t]`: `per_label[l]`
    /// when present, else `global`.
    pub fn regime_positions(
        &self,
        global: &[f64],
        per_label: &[Option<Vec<f64>>],
        labels: &[u8],
    ) -> Vec<i8> {
        let base = self.positions(global);
        let by_label: Vec<Option<Vec<i8>>> = per_label
            .iter()
            .map(|w| w.as_ref().map(|w| self.positions(w)))
            .collect();
        (0..self.n)
            .map(|t| match by_label.get(labels[t] as usize) {
                Some(Some(p)) => p[t],
                _ => base[t],
            })
            .collect()
    }

    /// The objective of weights `w` over `scope`.
    pub fn score(
        &self,
        w: &[f64],
        scope: Scope<'_>,
        objective: Objective,
        scratch: &mut Scratch,
    ) -> f64 {
        match scope.labels {
            Some(_) => {
                let masked = Prefix::new(&self.returns, scope.labels);
                self.score_with(w, scope, objective, scratch, &masked)
            }
            None => self.score_with(w, scope, objective, scratch, &self.prefix),
        }
    }

    fn score_with(
        &self,
        w: &[f64],
        scope: Scope<'_>,
        objective: Objective,
        scratch: &mut Scratch,
        prefix: &Prefix,
    ) -> f64 {
        let path = matches!(
            objective,
            Objective::TotalReturn | Objective::Cagr | Objective::Calmar
        );
        if !path {
            return self.score_by_segments(w, scope, objective, scratch, prefix);
        }
        let end = scope.end.min(self.n);
        self.positions_into(w, end, &mut scratch.votes, &mut scratch.positions);
        self.score_bar_by_bar(&scratch.positions[..end], scope, objective)
    }

    fn score_bar_by_bar(&self, positions: &[i8], scope: Scope<'_>, objective: Objective) -> f64 {
        let mut s = Sums::default();
        let (mut e, mut peak, mut mdd) = (1.0f64, 1.0f64, 0.0f64);
        let mut prev = if positions.is_empty() {
            0
        } else {
            positions[0]
        };
        for (t, &p) in positions.iter().enumerate().skip(1) {
            if scope.labels.is_none_or(|(l, g)| l[t - 1] == g) {
                let r = (1.0 + f64::from(prev) * self.returns[t])
                    * (1.0 - self.fee * f64::from((p - prev).abs()))
                    - 1.0;
                s.add(r);
                e *= 1.0 + r;
                peak = peak.max(e);
                mdd = mdd.min(e / peak - 1.0);
            }
            prev = p;
        }
        self.finish(&s, e, mdd, objective)
    }

    fn finish(&self, s: &Sums, e: f64, mdd: f64, objective: Objective) -> f64 {
        let n = s.count as f64;
        let root = self.ppy.sqrt();
        let mean = if s.count > 0 { s.sum / n } else { 0.0 };
        let var = if s.count > 1 {
            ((s.sum_sq - n * mean * mean) / (n - 1.0)).max(0.0)
        } else {
            0.0
        };
        let value = match objective {
            Objective::Sharpe if var > 0.0 => mean / var.sqrt() * root,
            Objective::Sortino if s.down > 0.0 => mean / (s.down / n).sqrt() * root,
            Objective::TotalReturn => e - 1.0,
            Objective::Cagr => cagr(e, s.count, self.ppy),
            Objective::Calmar if mdd < 0.0 => cagr(e, s.count, self.ppy) / -mdd,
            _ => 0.0,
        };
        if value.is_finite() { value } else { 0.0 }
    }

    /// Scores every candidate in parallel; the best by score, ties to the
    /// lowest index.
    pub fn search(
        &self,
        candidates: &Weights,
        scope: Scope<'_>,
        objective: Objective,
    ) -> Option<Best> {
        let masked = scope
            .labels
            .map(|_| Prefix::new(&self.returns, scope.labels));
        let prefix = masked.as_ref().unwrap_or(&self.prefix);
        let scores: Vec<f64> = (0..candidates.count())
            .into_par_iter()
            .with_min_len(64)
            .map_init(
                || Scratch::new(self.n),
                |scratch, i| self.score_with(candidates.row(i), scope, objective, scratch, prefix),
            )
            .collect();
        let mut best: Option<Best> = None;
        for (index, &score) in scores.iter().enumerate() {
            if best.as_ref().is_none_or(|b| score > b.score) {
                best = Some(Best { index, score });
            }
        }
        best
    }
}

/// `votes[i] = Σ_k w_k · columns[k·stride + i]`, in signal order (so the
/// f32 sums are the same whichever caller asks), skipping zero weights.
fn weighted_vote(columns: &[f32], stride: usize, w: &[f64], votes: &mut [f32]) {
    votes.fill(0.0);
    let len = votes.len();
    for (k, &wk) in w.iter().enumerate() {
        let wk = wk as f32;
        if wk == 0.0 {
            continue;
        }
        let col = &columns[k * stride..k * stride + len];
        for (v, s) in votes.iter_mut().zip(col) {
            *v += wk * s;
        }
    }
}

/// Adds the in-scope returns r_{a+1}..r_b earned with an unchanged
/// position `p`.
fn add_run(prefix: &Prefix, s: &mut Sums, p: i8, a: usize, b: usize) {
    if b <= a {
        return;
    }
    let (ra, rb) = (&prefix.rows[a], &prefix.rows[b]);
    let range = |j: usize| rb.sums[j] - ra.sums[j];
    s.count += rb.count - ra.count;
    match p {
        1 => {
            s.sum += range(0);
            s.sum_sq += range(1);
            s.down += range(2);
        }
        -1 => {
            s.sum -= range(0);
            s.sum_sq += range(1);
            s.down += range(3);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::weights;

    #[test]
    fn vote_respects_threshold_and_ties() {
        let s = vec![vec![1, 1, -1, 0], vec![1, -1, -1, 0], vec![-1, 0, 1, 1]];
        let e = Ensemble::new(&s, vec![0.0; 4], 0.0, 252.0, 0.5);
        // Weights 0.3/0.2/0.5: votes 0, 0.1, 0, 0.5.
        assert_eq!(e.positions(&[0.3, 0.2, 0.5]), vec![0, 0, 0, 1]);
        assert_eq!(e.positions(&[0.5, 0.5, 0.0]), vec![1, 0, -1, 0]);
        let e0 = Ensemble::new(&s, vec![0.0; 4], 0.0, 252.0, 0.0);
        assert_eq!(e0.positions(&[0.3, 0.2, 0.5]), vec![0, 1, 0, 1]);
    }

    #[test]
    fn search_picks_the_signal_that_earns() {
        // Signal 0 is long before every rise; signal 1 the opposite.
        let returns = vec![0.0, 0.01, -0.01, 0.01, -0.01, 0.012, -0.01];
        let good: Vec<i8> = vec![1, -1, 1, -1, 1, -1, 0];
        let bad: Vec<i8> = good.iter().map(|v| -v).collect();
        let e = Ensemble::new(&[good, bad], returns, 0.0, 252.0, 0.5);
        let w = weights::grid(2, 0.5).unwrap();
        let scope = Scope {
            end: 7,
            labels: None,
        };
        let best = e.search(&w, scope, Objective::TotalReturn).unwrap();
        assert_eq!(w.row(best.index), &[1.0, 0.0]);
        assert!(best.score > 0.05);
    }

    #[test]
    fn run_scoring_matches_bar_by_bar() {
        let returns: Vec<f64> = (0..200)
            .map(|t| ((t * 37 % 23) as f64 - 11.0) / 1000.0)
            .collect();
        let a: Vec<i8> = (0..200).map(|t| ((t / 7) % 3) as i8 - 1).collect();
        let b: Vec<i8> = (0..200).map(|t| ((t / 11) % 2) as i8).collect();
        let c: Vec<i8> = (0..200).map(|t| -(((t / 5) % 2) as i8)).collect();
        let e = Ensemble::new(&[a, b, c], returns, 0.001, 252.0, 0.3);
        let mut scratch = Scratch::new(200);
        let labels: Vec<u8> = (0..200).map(|t| ((t / 13) % 3) as u8).collect();
        let masked = Scope {
            end: 150,
            labels: Some((&labels, 1)),
        };
        let all = Scope {
            end: 150,
            labels: None,
        };
        for (w, scope) in [[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [1.0, 0.0, 0.0]]
            .into_iter()
            .flat_map(|w| [(w, all), (w, masked)])
        {
            for obj in [Objective::Sharpe, Objective::Sortino] {
                let fast = e.score(&w, scope, obj, &mut scratch);
                let positions = e.positions(&w);
                let slow = e.score_bar_by_bar(&positions[..150], scope, obj);
                assert!(
                    (fast - slow).abs() < 1e-9 * slow.abs().max(1.0),
                    "{w:?} {obj:?}: {fast} vs {slow}"
                );
                assert!(fast != 0.0);
            }
        }
    }
}
