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
//! objective, each independently; the best is the highest score, ties to
//! the lowest index, so the result does not depend on the number of
//! threads. Scores follow the metrics' rules for undefined figures: an
//! undefined score (NaN: too few returns, or 0/0) is never chosen over a
//! defined one, and a ratio over a zero deviation is ±∞ (Sortino of a
//! weighting without a losing return ranks first). The scores do not stop
//! at ruin; the reported metrics of the chosen weights do. Candidates are scored in batches of [`LANES`] (rayon,
//! one scratch buffer per worker): a vote is computed once per distinct
//! signal pattern for all the batch's weightings at once, and the
//! positions of the batch are kept as one bit per weighting. For the
//! Sharpe and Sortino objectives a score walks only the bars where the
//! ensemble position changes, adding each run of one position from prefix
//! sums of R, R² and the one-sided squares (restricted to a regime's bars
//! when searching per regime); the path-dependent objectives (total
//! return, CAGR, Calmar) go bar by bar. Scores use a one-pass variance;
//! reported metrics are recomputed exactly by [`crate::market::Metrics`].
//!
//! **Determinism.** The vote loop is compiled for AVX-512, AVX2 and the
//! baseline x86-64 and chosen at run time; each copy computes every vote
//! as the same f32 sum in signal order (vectorised across weightings, never
//! within a sum, and without fused multiply-adds), so results are bit
//! identical on every CPU.
//!
//! **Per regime.** Given a label per bar, a weight vector is searched per
//! regime, scoring only the returns r_t whose bar t − 1 carries that
//! label; at bar t the ensemble uses the weights of label t (the global
//! weights where a bar is unlabelled or its regime has no train bars).

use std::collections::HashMap;

use rayon::prelude::*;

use super::metrics::{Objective, cagr, ranks_above};
use super::weights::Weights;

pub const TOLERANCE: f32 = 1e-5;

/// How many weightings are scored together: one bit each in a pattern's
/// position masks.
pub const LANES: usize = 64;

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
    /// The `k` signals of each pattern, pattern after pattern.
    patterns: Vec<f32>,
    returns: Vec<f64>,
    /// Prefix sums over all returns.
    prefix: Prefix,
    fee: f64,
    ppy: f64,
    /// |vote| needed for a position: the threshold less [`TOLERANCE`],
    /// never below it.
    reach: f32,
}

/// Per-worker buffers of [`Ensemble::score`]; they grow to what the
/// ensemble needs on first use.
pub struct Scratch {
    /// The weights of a batch, [`LANES`] per signal.
    weights: Vec<f32>,
    /// [`LANES`] votes per pattern.
    votes: Vec<f32>,
    /// Per pattern, one bit per weighting of the batch: long, and short.
    long: Vec<u64>,
    short: Vec<u64>,
    /// Positions per bar of one weighting (path-dependent objectives).
    positions: Vec<i8>,
}

impl Scratch {
    pub fn new(n: usize) -> Scratch {
        Scratch {
            weights: Vec::new(),
            votes: Vec::new(),
            long: Vec::new(),
            short: Vec::new(),
            positions: vec![0; n],
        }
    }
}

/// Running sums of the scored returns.
#[derive(Clone, Copy, Default)]
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
        let mut patterns = Vec::new();
        let segment_pattern = segment_starts
            .iter()
            .enumerate()
            .map(|(j, &t)| {
                let pattern: Vec<i8> = signals.iter().map(|s| s[t]).collect();
                *ids.entry(pattern).or_insert_with_key(|pattern| {
                    patterns.extend(pattern.iter().map(|&v| f32::from(v)));
                    pattern_first.push(j);
                    (pattern_first.len() - 1) as u32
                })
            })
            .collect();
        Ensemble {
            k: signals.len(),
            n,
            segment_starts,
            segment_pattern,
            pattern_first,
            patterns,
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

    /// Decides, for the patterns of the first `segments` segments, the
    /// position of each weighting in `rows` (at most [`LANES`]; weight k of
    /// a row applies to signal k, missing weights count as 0) into the
    /// masks of `scratch`; returns how many patterns that is.
    fn decide_batch(&self, rows: &[&[f64]], segments: usize, scratch: &mut Scratch) -> usize {
        debug_assert!(rows.len() <= LANES);
        let used = self.pattern_first.partition_point(|&j| j < segments);
        scratch.weights.clear();
        for k in 0..self.k {
            let weight = |b: usize| {
                rows.get(b)
                    .and_then(|w| w.get(k))
                    .map_or(0.0, |&w| w as f32)
            };
            scratch.weights.extend((0..LANES).map(weight));
        }
        scratch.votes.resize(used * LANES, 0.0);
        scratch.long.resize(used, 0);
        scratch.short.resize(used, 0);
        decide_lanes(Lanes {
            patterns: &self.patterns[..used * self.k],
            weights: &scratch.weights,
            reach: self.reach,
            votes: &mut scratch.votes[..used * LANES],
            long: &mut scratch.long[..used],
            short: &mut scratch.short[..used],
        });
        used
    }

    /// The positions over bars 0..end of weighting `lane` of the batch
    /// last decided in `scratch`.
    fn lane_positions(&self, scratch: &mut Scratch, lane: usize, end: usize) {
        let segments = self.segment_starts.partition_point(|&t| t < end);
        for j in 0..segments {
            let next = self.segment_starts.get(j + 1).map_or(end, |&t| t.min(end));
            let pattern = self.segment_pattern[j] as usize;
            let p = position(scratch.long[pattern], scratch.short[pattern], lane);
            scratch.positions[self.segment_starts[j]..next].fill(p);
        }
    }

    /// The positions over bars 0..end of every weighting of `w`, decided
    /// [`LANES`] weightings at a time, handed in order to `each(i,
    /// positions)`.
    pub fn each_positions(
        &self,
        w: &crate::market::weights::Weights,
        end: usize,
        mut each: impl FnMut(usize, &[i8]),
    ) {
        let mut scratch = Scratch::new(self.n);
        let segments = self.segment_starts.partition_point(|&t| t < end);
        for start in (0..w.count()).step_by(LANES) {
            let rows: Vec<&[f64]> = (start..(start + LANES).min(w.count()))
                .map(|i| w.row(i))
                .collect();
            self.decide_batch(&rows, segments, &mut scratch);
            for lane in 0..rows.len() {
                self.lane_positions(&mut scratch, lane, end);
                each(start + lane, &scratch.positions[..end]);
            }
        }
    }

    /// The ensemble positions of weights `w` over all bars.
    pub fn positions(&self, w: &[f64]) -> Vec<i8> {
        let mut scratch = Scratch::new(self.n);
        self.decide_batch(&[w], self.segment_starts.len(), &mut scratch);
        self.lane_positions(&mut scratch, 0, self.n);
        scratch.positions
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
        let masked = scope
            .labels
            .map(|_| Prefix::new(&self.returns, scope.labels));
        let prefix = masked.as_ref().unwrap_or(&self.prefix);
        let mut score = [0.0];
        self.score_batch(&[w], scope, objective, scratch, prefix, &mut score);
        score[0]
    }

    /// The objective of each weighting in `rows` (at most [`LANES`]) into
    /// `scores`.
    fn score_batch(
        &self,
        rows: &[&[f64]],
        scope: Scope<'_>,
        objective: Objective,
        scratch: &mut Scratch,
        prefix: &Prefix,
        scores: &mut [f64],
    ) {
        let end = scope.end.min(self.n);
        let segments = self.segment_starts.partition_point(|&t| t < end);
        self.decide_batch(rows, segments, scratch);
        let path = matches!(
            objective,
            Objective::TotalReturn | Objective::Cagr | Objective::Calmar
        );
        if path {
            for (lane, score) in scores[..rows.len()].iter_mut().enumerate() {
                self.lane_positions(scratch, lane, end);
                *score = self.score_bar_by_bar(&scratch.positions[..end], scope, objective);
            }
        } else if end < 2 {
            scores[..rows.len()].fill(f64::NAN);
        } else {
            self.score_runs(
                rows.len(),
                segments,
                scope,
                objective,
                scratch,
                prefix,
                scores,
            );
        }
    }

    /// Run-based scoring of the batch decided in `scratch`: walks the
    /// segments once for all its weightings, and for each weighting only
    /// where its position changes. The same runs, so the same score, as
    /// voting bar by bar.
    #[allow(clippy::too_many_arguments)]
    fn score_runs(
        &self,
        lanes: usize,
        segments: usize,
        scope: Scope<'_>,
        objective: Objective,
        scratch: &Scratch,
        prefix: &Prefix,
        scores: &mut [f64],
    ) {
        let end = scope.end.min(self.n);
        let (long, short) = (&scratch.long, &scratch.short);
        // Per weighting: its sums and the first bar of its current run.
        let mut runs: [(Sums, usize); LANES] = std::array::from_fn(|_| (Sums::default(), 0));
        let first = self.segment_pattern[0] as usize;
        let (mut prev_long, mut prev_short) = (long[first], short[first]);
        let changes = self.segment_pattern[1..segments]
            .iter()
            .zip(&self.segment_starts[1..segments]);
        for (&pattern, &t) in changes {
            let (now_long, now_short) = (long[pattern as usize], short[pattern as usize]);
            let mut changed = (now_long ^ prev_long) | (now_short ^ prev_short);
            if changed != 0 {
                let counted = scope.labels.is_none_or(|(l, g)| l[t - 1] == g);
                while changed != 0 {
                    let lane = changed.trailing_zeros() as usize;
                    changed &= changed - 1;
                    let prev = position(prev_long, prev_short, lane);
                    // Updated in registers and stored whole, once.
                    let (mut s, run_start) = runs[lane];
                    add_run(prefix, &mut s, prev, run_start, t - 1);
                    if counted {
                        s.add(self.step(prev, position(now_long, now_short, lane), t));
                    }
                    runs[lane] = (s, t);
                }
            }
            (prev_long, prev_short) = (now_long, now_short);
        }
        for (lane, ((s, run_start), score)) in runs.iter_mut().zip(scores).take(lanes).enumerate() {
            add_run(
                prefix,
                s,
                position(prev_long, prev_short, lane),
                *run_start,
                end - 1,
            );
            *score = self.finish(s, 1.0, 0.0, objective);
        }
    }

    /// The return r_t of a position going from `prev` (held over bar t)
    /// to `p` at the close of bar t, net of the fee.
    fn step(&self, prev: i8, p: i8, t: usize) -> f64 {
        (1.0 + f64::from(prev) * self.returns[t]) * (1.0 - self.fee * f64::from((p - prev).abs()))
            - 1.0
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
                let r = self.step(prev, p, t);
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
        // As in [`crate::market::metrics`]: a ratio over a zero deviation is
        // ±∞ (ranked first or last), 0/0 and too few returns are NaN (never
        // chosen).
        let ratio = |num: f64, den: f64| {
            if den > 0.0 {
                num / den
            } else if num == 0.0 {
                f64::NAN
            } else {
                num * f64::INFINITY
            }
        };
        let value = match objective {
            Objective::Sharpe if s.count > 1 => ratio(mean, var.sqrt()) * root,
            Objective::Sortino if s.count > 0 => ratio(mean, (s.down / n).sqrt()) * root,
            Objective::TotalReturn => e - 1.0,
            Objective::Cagr if s.count > 0 => cagr(e, s.count, self.ppy),
            Objective::Calmar if s.count > 0 => ratio(cagr(e, s.count, self.ppy), -mdd),
            _ => f64::NAN,
        };
        if value.is_nan() { f64::NAN } else { value }
    }

    /// Scores every candidate in parallel; the best by score, ties to the
    /// lowest index.
    pub fn search(
        &self,
        candidates: &Weights,
        scope: Scope<'_>,
        objective: Objective,
    ) -> Option<Best> {
        best_of(&self.scores(candidates, scope, objective))
    }

    /// The score of every candidate, in candidate order (what the
    /// overfitting statistics of a search need: how many were tried and
    /// how their figures spread).
    pub fn scores(&self, candidates: &Weights, scope: Scope<'_>, objective: Objective) -> Vec<f64> {
        let masked = scope
            .labels
            .map(|_| Prefix::new(&self.returns, scope.labels));
        let prefix = masked.as_ref().unwrap_or(&self.prefix);
        let count = candidates.count();
        let batches: Vec<Vec<f64>> = (0..count.div_ceil(LANES))
            .into_par_iter()
            .map_init(
                || Scratch::new(self.n),
                |scratch, batch| {
                    let rows: Vec<&[f64]> = (batch * LANES..count.min((batch + 1) * LANES))
                        .map(|i| candidates.row(i))
                        .collect();
                    let mut scores = vec![0.0; rows.len()];
                    self.score_batch(&rows, scope, objective, scratch, prefix, &mut scores);
                    scores
                },
            )
            .collect();
        batches.concat()
    }
}

/// The best of `scores`: the highest, ties to the lowest index, NaN
/// (undefined) never over a number.
pub fn best_of(scores: &[f64]) -> Option<Best> {
    let mut best: Option<Best> = None;
    let figure = |x: f64| (!x.is_nan()).then_some(x);
    for (index, &score) in scores.iter().enumerate() {
        if best
            .as_ref()
            .is_none_or(|b| ranks_above(figure(score), figure(b.score)))
        {
            best = Some(Best { index, score });
        }
    }
    best
}

/// The position of weighting `lane` in a pattern's masks.
fn position(long: u64, short: u64, lane: usize) -> i8 {
    ((long >> lane) & 1) as i8 - ((short >> lane) & 1) as i8
}

/// The work of the lane kernel [`decide_lanes`]: for each pattern i (the
/// `k` signals s at `patterns[i·k..]`) and each lane b (weights w at
/// `weights[b]`, `weights[LANES + b]`, …), `votes[i·LANES + b] = Σ_k
/// w_k·s_k`, summed in f32 in signal order from 0, then bit b of `long[i]`
/// set when that vote ≥ `reach` and of `short[i]` when it is ≤ −`reach`.
struct Lanes<'a> {
    patterns: &'a [f32],
    weights: &'a [f32],
    reach: f32,
    votes: &'a mut [f32],
    long: &'a mut [u64],
    short: &'a mut [u64],
}

/// Runs [`Lanes`] in the copy compiled for the widest vector unit the CPU
/// has. Every copy does the same operations per vote in the same order
/// (vectorised across lanes, no fused multiply-add), so the votes are bit
/// identical. Adding a zero term w·s = ±0 never changes a sum that starts
/// at +0, so votes also equal those of a loop that skips zero weights.
fn decide_lanes(lanes: Lanes<'_>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F.
            return unsafe { decide_lanes_avx512(lanes) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { decide_lanes_avx2(lanes) };
        }
    }
    decide_lanes_baseline(lanes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn decide_lanes_avx512(lanes: Lanes<'_>) {
    decide_lanes_baseline(lanes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn decide_lanes_avx2(lanes: Lanes<'_>) {
    decide_lanes_baseline(lanes)
}

/// [`decide_lanes`] for the baseline target; inlined into each copy.
#[inline(always)]
fn decide_lanes_baseline(lanes: Lanes<'_>) {
    let Lanes {
        patterns,
        weights,
        reach,
        votes,
        long,
        short,
    } = lanes;
    let k = weights.len() / LANES;
    for (i, (l, s)) in long.iter_mut().zip(short.iter_mut()).enumerate() {
        let mut acc = [0.0f32; LANES];
        for (&signal, w) in patterns[i * k..(i + 1) * k]
            .iter()
            .zip(weights.chunks_exact(LANES))
        {
            for (a, &w) in acc.iter_mut().zip(w) {
                *a += w * signal;
            }
        }
        *l = mask(&acc, |v| v >= reach);
        *s = mask(&acc, |v| v <= -reach);
        votes[i * LANES..(i + 1) * LANES].copy_from_slice(&acc);
    }
}

/// Bit b set where `keep(votes[b])`.
#[inline(always)]
fn mask(votes: &[f32; LANES], keep: impl Fn(f32) -> bool) -> u64 {
    votes
        .iter()
        .enumerate()
        .fold(0, |m, (b, &v)| m | (u64::from(keep(v)) << b))
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

    /// One weighting's vote of one pattern, skipping zero weights: the
    /// definition every copy of the lane kernel reproduces bit for bit.
    fn scalar_vote(pattern: &[f32], w: impl Iterator<Item = f32>) -> f32 {
        let mut v = 0.0f32;
        for (&s, w) in pattern.iter().zip(w) {
            if w != 0.0 {
                v += w * s;
            }
        }
        v
    }

    type Kernel = fn(Lanes<'_>);

    /// The dispatched kernel, the baseline copy and every copy this CPU
    /// can run.
    fn kernels() -> Vec<(&'static str, Kernel)> {
        let mut out: Vec<(&'static str, Kernel)> = vec![
            ("dispatched", decide_lanes),
            ("baseline", |lanes| decide_lanes_baseline(lanes)),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                out.push(("avx2", |lanes| unsafe { decide_lanes_avx2(lanes) }));
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                out.push(("avx512", |lanes| unsafe { decide_lanes_avx512(lanes) }));
            }
        }
        out
    }

    proptest::proptest! {
        /// Any number of patterns and signals, weights with exact zeros,
        /// negatives and lanes left empty (a partial batch).
        #[test]
        fn lane_kernels_match_the_scalar_vote_bit_for_bit(
            k in 0usize..9,
            signals in proptest::collection::vec(-1i8..=1, 0..400),
            weights in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(0.0f32),
                    proptest::strategy::Just(0.5f32),
                    0.0f32..1.0,
                    -1.0f32..1.0,
                ],
                8 * LANES,
            ),
            reach in proptest::prop_oneof![proptest::strategy::Just(TOLERANCE), TOLERANCE..1.0f32],
        ) {
            let count = signals.len().checked_div(k).unwrap_or(signals.len() % 50);
            let patterns: Vec<f32> = signals[..count * k].iter().map(|&s| f32::from(s)).collect();
            let weights = &weights[..k * LANES];
            for (name, kernel) in kernels() {
                let mut votes = vec![f32::NAN; count * LANES];
                let (mut long, mut short) = (vec![0; count], vec![0; count]);
                kernel(Lanes {
                    patterns: &patterns,
                    weights,
                    reach,
                    votes: &mut votes,
                    long: &mut long,
                    short: &mut short,
                });
                for i in 0..count {
                    for lane in 0..LANES {
                        let lane_weights = weights.iter().skip(lane).step_by(LANES).copied();
                        let v = scalar_vote(&patterns[i * k..(i + 1) * k], lane_weights);
                        proptest::prop_assert_eq!(votes[i * LANES + lane].to_bits(), v.to_bits(), "{} pattern {} lane {}", name, i, lane);
                        proptest::prop_assert_eq!((long[i] >> lane) & 1 == 1, v >= reach, "{}", name);
                        proptest::prop_assert_eq!((short[i] >> lane) & 1 == 1, v <= -reach, "{}", name);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The search scores batches of weightings at once; each score
        /// equals scoring that weighting alone, bit for bit.
        #[test]
        fn batched_search_matches_scoring_one_by_one(
            k in 1usize..7,
            n in 4usize..300,
            seed in proptest::prelude::any::<u64>(),
            threshold in 0.0f64..1.0,
            labelled in proptest::prelude::any::<bool>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let signals: Vec<Vec<i8>> = (0..k)
                .map(|_| {
                    let mut s = 0i8;
                    (0..n)
                        .map(|_| {
                            if rng.random::<f64>() < 0.2 {
                                s = rng.random_range(-1..=1);
                            }
                            s
                        })
                        .collect()
                })
                .collect();
            let returns: Vec<f64> = (0..n).map(|t| if t == 0 { 0.0 } else { rng.random_range(-0.03..0.03) }).collect();
            let labels: Vec<u8> = (0..n).map(|_| rng.random_range(0..3)).collect();
            let e = Ensemble::new(&signals, returns, 0.001, 252.0, threshold);
            // A full batch and a partial one.
            let w = weights::random(k, LANES + 6, seed).unwrap();
            let scope = Scope {
                end: n * 3 / 4,
                labels: labelled.then_some((&labels[..], 1)),
            };
            let mut scratch = Scratch::new(n);
            for objective in [
                Objective::Sharpe,
                Objective::Sortino,
                Objective::TotalReturn,
                Objective::Cagr,
                Objective::Calmar,
            ] {
                let best = e.search(&w, scope, objective).unwrap();
                let mut expected: Option<Best> = None;
                for index in 0..w.count() {
                    let score = e.score(w.row(index), scope, objective, &mut scratch);
                    // Highest first, NaN (undefined) never over a number.
                    let figure = |x: f64| (!x.is_nan()).then_some(x);
                    if expected.as_ref().is_none_or(|b| ranks_above(figure(score), figure(b.score))) {
                        expected = Some(Best { index, score });
                    }
                }
                let expected = expected.unwrap();
                proptest::prop_assert_eq!(best.index, expected.index, "{:?}", objective);
                proptest::prop_assert_eq!(best.score.to_bits(), expected.score.to_bits(), "{:?}", objective);
            }
        }
    }
}
