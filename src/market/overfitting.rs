//! Statistics of backtest overfitting: how much of the best of many
//! trials' Sharpe ratio is luck.
//!
//! All Sharpe ratios here are per period (not annualised): mean / std
//! (ddof 1) of the per-bar returns. Skewness γ₃ and kurtosis γ₄ are the
//! population moments (γ₄ = 3 for a normal, not the excess).
//!
//! - **Probabilistic Sharpe ratio** (Bailey & López de Prado 2012): the
//!   probability that the true Sharpe ratio exceeds SR* given the
//!   estimate SR̂ over T returns,
//!   PSR(SR*) = Φ((SR̂ − SR*)·√(T − 1) / √(1 − γ₃·SR̂ + (γ₄ − 1)/4·SR̂²)).
//! - **Deflated Sharpe ratio** (Bailey & López de Prado 2014): PSR(SR₀)
//!   with SR₀ the Sharpe ratio the best of N unskilled trials reaches by
//!   chance, SR₀ = √V·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))), V the
//!   variance of the N trials' Sharpe ratios, γ Euler's constant. With one
//!   trial SR₀ = 0 (nothing was selected).
//! - **Minimum backtest length** (Bailey, Borwein, López de Prado, Zhu
//!   2014): the years of data below which the best of N unskilled trials
//!   is expected to reach an annualised Sharpe ratio of SR by chance,
//!   MinBTL = (((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e))) / SR)².
//! - **Probability of backtest overfitting** by combinatorially symmetric
//!   cross-validation (Bailey, Borwein, López de Prado, Zhu 2015): the T
//!   bars are cut into S equal blocks (the T mod S oldest bars left out);
//!   for every choice of S/2 blocks as the in-sample part, the trial with
//!   the best in-sample Sharpe ratio (ties to the lowest index) gets its
//!   relative rank ω = r/(N + 1) among the out-of-sample Sharpe ratios (r
//!   from 1 for the worst; ties share the average rank; an undefined ratio
//!   ranks lowest), and λ = ln(ω/(1 − ω)). PBO is the fraction of the
//!   C(S, S/2) choices with λ ≤ 0: the best in-sample trial did no better
//!   than the median out of sample.

use rayon::prelude::*;

/// Euler–Mascheroni constant.
pub const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Φ, the standard normal distribution function.
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Φ⁻¹ (−∞ at 0, +∞ at 1): Acklam's rational approximation refined by one
/// Halley step on Φ, accurate to about 1e-15.
pub fn norm_ppf(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.02425 {
        tail((-2.0 * libm::log(p)).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * libm::log(1.0 - p)).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // Halley's step on Φ(x) − p.
    let e = norm_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * libm::exp(x * x / 2.0);
    x - u / (1.0 + x * u / 2.0)
}

/// Mean, std (ddof 1), skewness and kurtosis (population moments) of `r`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Moments {
    pub count: usize,
    pub mean: f64,
    pub std: f64,
    pub skew: f64,
    pub kurtosis: f64,
}

impl Moments {
    pub fn of(r: &[f64]) -> Moments {
        let n = r.len() as f64;
        let mean = r.iter().sum::<f64>() / n;
        // The three central moments in one pass: each sum still adds its
        // terms in order from the neutral element `sum` starts from (the
        // bits of three passes), but the three chains of additions overlap
        // instead of running one after the other.
        let zero: f64 = std::iter::empty::<f64>().sum();
        let (mut s2, mut s3, mut s4) = (zero, zero, zero);
        for x in r {
            let d = x - mean;
            s2 += d.powi(2);
            s3 += d.powi(3);
            s4 += d.powi(4);
        }
        Moments::of_sums(r.len(), mean, [s2, s3, s4])
    }

    /// The moments of `count` values with mean `mean` whose sums of the
    /// 2nd, 3rd and 4th powers of their deviations from it are `central`
    /// (each added in order from the neutral element `sum` starts from,
    /// as [`Moments::of`] adds them).
    pub fn of_sums(count: usize, mean: f64, central: [f64; 3]) -> Moments {
        let n = count as f64;
        let [s2, s3, s4] = central;
        let (m2, m3, m4) = (s2 / n, s3 / n, s4 / n);
        Moments {
            count,
            mean,
            std: std_of_sums(count, s2),
            skew: m3 / libm::pow(m2, 1.5),
            kurtosis: m4 / (m2 * m2),
        }
    }

    /// The per-period Sharpe ratio; `None` when undefined (fewer than two
    /// returns or no variation).
    pub fn sharpe(&self) -> Option<f64> {
        sharpe_of(self.count, self.mean, self.std)
    }

    /// [`Moments::sharpe`] of `count` values with mean `mean` whose sum
    /// of squared deviations from it is `s2`, without the higher moments.
    pub fn sharpe_of_sums(count: usize, mean: f64, s2: f64) -> Option<f64> {
        sharpe_of(count, mean, std_of_sums(count, s2))
    }
}

/// The standard deviation (ddof 1) of `count` values whose sum of
/// squared deviations from their mean is `s2`.
fn std_of_sums(count: usize, s2: f64) -> f64 {
    let n = count as f64;
    let m2 = s2 / n;
    (m2 * n / (n - 1.0)).sqrt()
}

fn sharpe_of(count: usize, mean: f64, std: f64) -> Option<f64> {
    let s = mean / std;
    (count > 1 && s.is_finite()).then_some(s)
}

/// PSR(SR*) for an estimate `sr` from returns with moments `m`.
pub fn probabilistic_sharpe(sr: f64, sr_star: f64, m: &Moments) -> f64 {
    let t = m.count as f64;
    let den = 1.0 - m.skew * sr + (m.kurtosis - 1.0) / 4.0 * sr * sr;
    norm_cdf((sr - sr_star) * (t - 1.0).sqrt() / den.sqrt())
}

/// The factor (1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)): the expected
/// maximum of N standard normals; 0 for N ≤ 1.
pub fn expected_max_factor(n: usize) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    let n = n as f64;
    (1.0 - EULER_GAMMA) * norm_ppf(1.0 - 1.0 / n)
        + EULER_GAMMA * norm_ppf(1.0 - 1.0 / (n * std::f64::consts::E))
}

/// The deflated Sharpe ratio of a selection.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Deflated {
    /// Trials the selection chose from.
    pub trials: usize,
    /// Per-period Sharpe ratio of the selected trial.
    pub sharpe: f64,
    /// Variance of the trials' per-period Sharpe ratios.
    pub sharpe_variance: f64,
    /// SR₀: the per-period Sharpe ratio the best unskilled trial reaches.
    pub expected_max_sharpe: f64,
    /// PSR(SR₀): the probability that the selected trial's true Sharpe
    /// ratio beats luck.
    pub deflated_sharpe: f64,
}

/// The deflated Sharpe ratio of the trial with returns `selected`, chosen
/// from `trials` trials whose per-period Sharpe ratios are `sharpes`
/// (their variance, ddof 1, is V). `None` when the selected returns have no
/// Sharpe ratio.
pub fn deflated_sharpe(selected: &[f64], sharpes: &[f64], trials: usize) -> Option<Deflated> {
    deflated_sharpe_of(&Moments::of(selected), sharpes, trials)
}

/// [`deflated_sharpe`] of a selected trial whose returns have moments `m`.
pub fn deflated_sharpe_of(m: &Moments, sharpes: &[f64], trials: usize) -> Option<Deflated> {
    let sr = m.sharpe()?;
    let k = sharpes.len() as f64;
    let variance = if sharpes.len() > 1 {
        let mean = sharpes.iter().sum::<f64>() / k;
        sharpes.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / (k - 1.0)
    } else {
        0.0
    };
    let sr0 = variance.sqrt() * expected_max_factor(trials);
    let dsr = probabilistic_sharpe(sr, sr0, m);
    dsr.is_finite().then_some(Deflated {
        trials,
        sharpe: sr,
        sharpe_variance: variance,
        expected_max_sharpe: sr0,
        deflated_sharpe: dsr,
    })
}

/// Years of data below which the best of `trials` unskilled trials is
/// expected to show an annualised Sharpe ratio of `annual_sharpe`; `None`
/// for a ratio ≤ 0 or a single trial.
pub fn min_backtest_years(trials: usize, annual_sharpe: f64) -> Option<f64> {
    (trials > 1 && annual_sharpe > 0.0)
        .then(|| (expected_max_factor(trials) / annual_sharpe).powi(2))
}

/// The outcome of CSCV.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Pbo {
    /// The probability of backtest overfitting.
    pub pbo: f64,
    /// S, the number of blocks.
    pub blocks: usize,
    /// C(S, S/2), the in-sample choices evaluated.
    pub combinations: usize,
    /// Bars per block.
    pub block_bars: usize,
    /// Mean over choices of the logit λ.
    pub mean_logit: f64,
}

/// A score that orders trials as their per-period Sharpe ratios over `n`
/// returns with sum `s` and sum of squares `s2` do: SR·|SR| up to the
/// positive factor n/(n − 1), from SR² = s²·(n − 1) / (n·(n·s2 − s²)).
/// CSCV only ranks Sharpe ratios, and this needs no square root. An
/// undefined ratio (no variation) scores −∞, ranking lowest.
#[inline(always)]
fn sharpe_rank_score(s: f64, s2: f64, n: f64) -> f64 {
    let spread = n * s2 - s * s;
    let score = s * s.abs() / spread;
    // `&`, not `&&`: both tests are cheap, and without a branch the
    // callers' loops run on vector lanes.
    if (spread > 0.0) & score.is_finite() {
        score
    } else {
        f64::NEG_INFINITY
    }
}

/// Sums over every subset of a run of blocks, for every trial: entry
/// `mask * trials + k` holds trial k's sum over the blocks `first + i`
/// with bit i of `mask` set (0 for the empty mask). A choice of half the
/// blocks is then two table reads, one per half, instead of a sum over
/// its blocks.
struct SubsetSums {
    sum: Vec<f64>,
    squares: Vec<f64>,
    trials: usize,
}

impl SubsetSums {
    /// The tables in parallel: a mask's row needs only the row of the mask
    /// without its highest block, which is smaller, so the rows of the
    /// masks with the same highest block (a contiguous run) are computed
    /// together once the rows below them are done. Each entry is the same
    /// one addition as [`SubsetSums::new_serially`]'s, so the same bits.
    fn new<S: AsRef<[(f64, f64)]> + Sync>(sums: &[S], first: usize, count: usize) -> SubsetSums {
        let trials = sums.len();
        let masks = 1usize << count;
        let mut sum = vec![0.0; masks * trials];
        let mut squares = vec![0.0; masks * trials];
        if trials == 0 {
            return SubsetSums {
                sum,
                squares,
                trials,
            };
        }
        // Rows of a few thousand entries at least per task.
        let min_rows = 4096usize.div_ceil(trials);
        for top in 0..count {
            let start = 1usize << top;
            let (below_sum, run_sum) = sum.split_at_mut(start * trials);
            let (below_squares, run_squares) = squares.split_at_mut(start * trials);
            run_sum[..start * trials]
                .par_chunks_mut(trials)
                .zip(run_squares[..start * trials].par_chunks_mut(trials))
                .enumerate()
                .with_min_len(min_rows)
                .for_each(|(rest, (row_sum, row_squares))| {
                    // `rest` is the mask without block `top`.
                    let at = rest * trials;
                    let rest_sum = &below_sum[at..at + trials];
                    let rest_squares = &below_squares[at..at + trials];
                    for (k, s) in sums.iter().enumerate() {
                        let (block_sum, block_squares) = s.as_ref()[first + top];
                        row_sum[k] = rest_sum[k] + block_sum;
                        row_squares[k] = rest_squares[k] + block_squares;
                    }
                });
        }
        SubsetSums {
            sum,
            squares,
            trials,
        }
    }

    /// The tables mask by mask, the reference [`SubsetSums::new`] is
    /// checked against.
    #[cfg(test)]
    fn new_serially<S: AsRef<[(f64, f64)]>>(sums: &[S], first: usize, count: usize) -> SubsetSums {
        let trials = sums.len();
        let masks = 1usize << count;
        let mut sum = vec![0.0; masks * trials];
        let mut squares = vec![0.0; masks * trials];
        for mask in 1..masks {
            // The mask without its highest block, plus that block.
            let top = usize::BITS as usize - 1 - mask.leading_zeros() as usize;
            let rest = (mask & !(1 << top)) * trials;
            for (k, s) in sums.iter().enumerate() {
                let s = s.as_ref();
                sum[mask * trials + k] = sum[rest + k] + s[first + top].0;
                squares[mask * trials + k] = squares[rest + k] + s[first + top].1;
            }
        }
        SubsetSums {
            sum,
            squares,
            trials,
        }
    }

    fn row(&self, mask: usize) -> (&[f64], &[f64]) {
        let at = mask * self.trials..(mask + 1) * self.trials;
        (&self.sum[at.clone()], &self.squares[at])
    }
}

/// The [`sharpe_rank_score`] of every trial over the blocks in `low` (of
/// the first half) and `high` (of the second), into `out`.
#[inline(always)]
fn choice_sharpes(
    lo: &SubsetSums,
    hi: &SubsetSums,
    (low, high): (usize, usize),
    bars: f64,
    out: &mut [f64],
) {
    let (ls, ls2) = lo.row(low);
    let (hs, hs2) = hi.row(high);
    // Zipped rather than indexed: no bounds checks, so the loop runs on
    // vector lanes (each lane the same IEEE operations, so the same bits).
    for ((slot, (l, h)), (l2, h2)) in out
        .iter_mut()
        .zip(ls.iter().zip(hs))
        .zip(ls2.iter().zip(hs2))
    {
        *slot = sharpe_rank_score(l + h, l2 + h2, bars);
    }
}

/// The index of the first of the highest of `scores` (0 when empty).
/// Scores are never NaN, so the maximum is exact in any order of
/// comparison: lanes of eight find it, then a scan finds its first place,
/// the trial `selection_logit`'s strict `>` scan settles on.
#[inline(always)]
fn first_best(scores: &[f64]) -> usize {
    let mut lanes = [f64::NEG_INFINITY; 8];
    let chunks = scores.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane = if *v > *lane { *v } else { *lane };
        }
    }
    let mut best = f64::NEG_INFINITY;
    for v in lanes.iter().chain(rest) {
        if *v > best {
            best = *v;
        }
    }
    scores.iter().position(|v| *v == best).unwrap_or(0)
}

/// λ of a choice whose selected trial has `lower` trials scoring below it
/// and `equal` scoring the same (itself included) out of sample, among
/// `trials`.
fn logit_of_rank(lower: usize, equal: usize, trials: usize) -> f64 {
    let rank = lower as f64 + (equal as f64 + 1.0) / 2.0;
    let omega = rank / (trials as f64 + 1.0);
    libm::log(omega / (1.0 - omega))
}

/// λ = ln(ω/(1 − ω)) of one choice: ω the relative rank, among the
/// out-of-sample scores `oos`, of the trial with the best in-sample score
/// in `is` (ties to the lowest index; tied out-of-sample scores share the
/// average rank). The reference [`pair_logits`] is checked against.
#[cfg(test)]
fn selection_logit(is: &[f64], oos: &[f64]) -> f64 {
    let mut best = 0;
    for (k, v) in is.iter().enumerate() {
        if *v > is[best] {
            best = k;
        }
    }
    let at = oos[best];
    let (mut lower, mut equal) = (0usize, 0usize);
    for v in oos {
        lower += usize::from(*v < at);
        equal += usize::from(*v == at);
    }
    logit_of_rank(lower, equal, oos.len())
}

/// The λ of both choices of a complementary pair whose halves' scores are
/// `first` and `second`: `first` in sample and `second` out of sample,
/// then the other way round ([`selection_logit`] of each), both ranks
/// counted in one pass.
#[inline(always)]
fn logits_of_pair(first: &[f64], second: &[f64]) -> (f64, f64) {
    let at_second = second[first_best(first)];
    let at_first = first[first_best(second)];
    let (mut lower_second, mut equal_second) = (0usize, 0usize);
    let (mut lower_first, mut equal_first) = (0usize, 0usize);
    for (f, s) in first.iter().zip(second) {
        lower_second += usize::from(*s < at_second);
        equal_second += usize::from(*s == at_second);
        lower_first += usize::from(*f < at_first);
        equal_first += usize::from(*f == at_first);
    }
    (
        logit_of_rank(lower_second, equal_second, second.len()),
        logit_of_rank(lower_first, equal_first, first.len()),
    )
}

/// The subset-sum tables of both halves of the blocks, and the bars a
/// choice of half the blocks covers.
struct Tables<'a> {
    lo: &'a SubsetSums,
    hi: &'a SubsetSums,
    bars: f64,
}

/// A complementary pair of choices, each as its (low, high) masks.
type Pair = ((usize, usize), (usize, usize));

/// The scores of both halves of a complementary pair of choices (`a` in
/// sample against `b`, and the other way round) and their two λ, into the
/// buffers `first` and `second`.
#[inline(always)]
fn pair_logits_generic(
    t: &Tables,
    (a, b): Pair,
    (first, second): (&mut [f64], &mut [f64]),
) -> (f64, f64) {
    choice_sharpes(t.lo, t.hi, a, t.bars, first);
    choice_sharpes(t.lo, t.hi, b, t.bars, second);
    logits_of_pair(first, second)
}

/// [`pair_logits_generic`] compiled for AVX2: four lanes per instruction
/// instead of SSE2's two. Vector width changes no result: every lane does
/// the same IEEE operations, and no operation is fused.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pair_logits_avx2(t: &Tables, pair: Pair, buffers: (&mut [f64], &mut [f64])) -> (f64, f64) {
    pair_logits_generic(t, pair, buffers)
}

/// [`pair_logits_generic`] with the widest vectors this CPU has.
fn pair_logits(t: &Tables, pair: Pair, buffers: (&mut [f64], &mut [f64])) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { pair_logits_avx2(t, pair, buffers) };
    }
    pair_logits_generic(t, pair, buffers)
}

/// PBO of the trials whose per-bar returns are `returns[trial]` (all of
/// one length), with `blocks` blocks (even, ≥ 2). `None` with fewer than
/// two trials or fewer than two bars per block.
pub fn probability_of_overfitting(returns: &[Vec<f64>], blocks: usize) -> Option<Pbo> {
    let t = returns.first()?.len();
    let sums: Vec<BlockSums> = returns.iter().map(|r| block_sums(r, blocks)).collect();
    probability_of_overfitting_of_sums(&sums, t, blocks)
}

/// Per block of one trial's returns: the sum of its returns and of their
/// squares.
pub type BlockSums = Vec<(f64, f64)>;

/// The [`BlockSums`] of `r` cut into `blocks` blocks of ⌊T / blocks⌋
/// returns, the first T mod blocks returns left out (empty when a block
/// would hold fewer than two).
pub fn block_sums(r: &[f64], blocks: usize) -> BlockSums {
    let t = r.len();
    if blocks == 0 || t / blocks < 2 {
        return Vec::new();
    }
    let block_bars = t / blocks;
    let zero: f64 = std::iter::empty::<f64>().sum();
    r[t - block_bars * blocks..]
        .chunks(block_bars)
        .map(|c| {
            // Both sums in one pass, each in order (as `sum` would add).
            let (mut sum, mut squares) = (zero, zero);
            for x in c {
                sum += x;
                squares += x * x;
            }
            (sum, squares)
        })
        .collect()
}

/// [`probability_of_overfitting`] from the [`block_sums`] of each trial's
/// `t` returns, so that many trials need not be held in memory at once.
/// Each trial's sums are borrowed (a `BlockSums` or a slice of one), so a
/// caller holding them inside other records need not copy them.
pub fn probability_of_overfitting_of_sums<S: AsRef<[(f64, f64)]> + Sync>(
    sums: &[S],
    t: usize,
    blocks: usize,
) -> Option<Pbo> {
    let n = sums.len();
    if n < 2 || blocks < 2 || !blocks.is_multiple_of(2) || t / blocks < 2 {
        return None;
    }
    if sums.iter().any(|s| s.as_ref().len() != blocks) {
        return None;
    }
    let block_bars = t / blocks;
    // Every in-sample choice of half the blocks, in lexicographic order,
    // as a bit mask.
    let mut combinations: Vec<usize> = Vec::new();
    let mut chosen: Vec<usize> = (0..blocks / 2).collect();
    loop {
        combinations.push(chosen.iter().map(|b| 1usize << b).sum());
        let Some(i) = (0..chosen.len())
            .rev()
            .find(|&i| chosen[i] < blocks - chosen.len() + i)
        else {
            break;
        };
        chosen[i] += 1;
        for j in i + 1..chosen.len() {
            chosen[j] = chosen[j - 1] + 1;
        }
    }
    let low_blocks = blocks / 2;
    // The two halves' tables at once: the first levels of each have too
    // few rows to keep both threads busy alone.
    let (lo, hi) = rayon::join(
        || SubsetSums::new(sums, 0, low_blocks),
        || SubsetSums::new(sums, low_blocks, blocks - low_blocks),
    );
    let low_mask = (1usize << low_blocks) - 1;
    let split = |mask: usize| (mask & low_mask, mask >> low_blocks);
    let all = (1usize << blocks) - 1;
    let half_bars = (blocks / 2 * block_bars) as f64;
    let tables = Tables {
        lo: &lo,
        hi: &hi,
        bars: half_bars,
    };
    // A choice's out-of-sample half is the in-sample half of its
    // complement, which is a choice too: each pair of complements needs
    // the scores of its two halves once, not twice. The pairs are those
    // whose in-sample half holds block 0.
    let position: std::collections::HashMap<usize, usize> = combinations
        .iter()
        .enumerate()
        .map(|(at, &mask)| (mask, at))
        .collect();
    let pairs: Vec<(usize, usize)> = combinations
        .iter()
        .enumerate()
        .filter(|&(_, &mask)| mask & 1 == 1)
        .map(|(at, &mask)| (at, position[&(all & !mask)]))
        .collect();
    // Each pair on its own (in parallel), each logit put at its choice's
    // place and summed in the order above: the same bits whatever the
    // number of threads.
    let pair_logits: Vec<(f64, f64)> = pairs
        .par_iter()
        .map_init(
            || (vec![0.0; n], vec![0.0; n]),
            |(first, second), &(a, b)| {
                let pair = (split(combinations[a]), split(combinations[b]));
                pair_logits(&tables, pair, (first, second))
            },
        )
        .collect();
    let mut logits = vec![0.0; combinations.len()];
    for (&(a, b), &(la, lb)) in pairs.iter().zip(&pair_logits) {
        logits[a] = la;
        logits[b] = lb;
    }
    let count = logits.len();
    let below = logits.iter().filter(|&&logit| logit <= 0.0).count();
    let logit_sum = logits.iter().fold(0.0f64, |sum, logit| sum + logit);
    Some(Pbo {
        pbo: below as f64 / count as f64,
        blocks,
        combinations: count,
        block_bars,
        mean_logit: logit_sum / count as f64,
    })
}

#[cfg(test)]
mod tests {

    /// The moments and block sums of separate passes with `Iterator::sum`,
    /// as they were computed before the passes were fused.
    fn moments_by_passes(r: &[f64]) -> [u64; 4] {
        let n = r.len() as f64;
        let mean = r.iter().sum::<f64>() / n;
        let m = |k: i32| r.iter().map(|x| (x - mean).powi(k)).sum::<f64>() / n;
        let (m2, m3, m4) = (m(2), m(3), m(4));
        [
            mean,
            (m2 * n / (n - 1.0)).sqrt(),
            m3 / libm::pow(m2, 1.5),
            m4 / (m2 * m2),
        ]
        .map(f64::to_bits)
    }

    #[test]
    fn moments_and_block_sums_of_one_pass_are_the_bits_of_separate_passes() {
        let mut x = 0.123_f64;
        let r: Vec<f64> = (0..5_003)
            .map(|i| {
                x = (x * 3.7 + 0.11).fract();
                (x - 0.5) * 0.03 * if i % 7 == 0 { -3.0 } else { 1.0 }
            })
            .collect();
        for r in [
            &r[..],
            &r[..2],
            &[-0.0; 6][..],
            &[0.01, -0.02, 0.0, 0.5][..],
        ] {
            let m = Moments::of(r);
            assert_eq!(
                [m.mean, m.std, m.skew, m.kurtosis].map(f64::to_bits),
                moments_by_passes(r),
                "{} returns",
                r.len()
            );
        }
        let blocks = block_sums(&r, 16);
        let bars = r.len() / 16;
        let by_passes: Vec<(u64, u64)> = r[r.len() - 16 * bars..]
            .chunks(bars)
            .map(|c| {
                let sum: f64 = c.iter().sum();
                let squares: f64 = c.iter().map(|x| x * x).sum();
                (sum.to_bits(), squares.to_bits())
            })
            .collect();
        let fused: Vec<(u64, u64)> = blocks
            .iter()
            .map(|(s, q)| (s.to_bits(), q.to_bits()))
            .collect();
        assert_eq!(fused, by_passes);
    }

    use super::*;

    #[test]
    fn normal_quantiles_invert_the_distribution() {
        // scipy.stats.norm.ppf
        for (p, want) in [
            (0.975, 1.959963984540054),
            (0.99, 2.3263478740408408),
            (1e-6, -4.753424308822899),
            (0.5, 0.0),
        ] {
            assert!((norm_ppf(p) - want).abs() < 1e-12, "{p}: {}", norm_ppf(p));
        }
        assert!((norm_cdf(1.959963984540054) - 0.975).abs() < 1e-15);
    }

    #[test]
    fn deflated_sharpe_matches_the_papers_example() {
        // Bailey & López de Prado (2014), section 5: annualised SR 2.5 over
        // 1,250 daily returns, 100 trials whose annualised Sharpe ratios
        // have variance 0.5, skewness −3, kurtosis 10: DSR 0.9004.
        let m = Moments {
            count: 1250,
            mean: 0.0,
            std: 1.0,
            skew: -3.0,
            kurtosis: 10.0,
        };
        let sr = 2.5 / 250f64.sqrt();
        let sr0 = (0.5f64 / 250.0).sqrt() * expected_max_factor(100);
        assert!((sr0 * 250f64.sqrt() - 1.7894064662732077).abs() < 1e-9);
        let dsr = probabilistic_sharpe(sr, sr0, &m);
        assert!((dsr - 0.9003968344493903).abs() < 1e-9, "{dsr}");
    }

    #[test]
    fn one_trial_is_not_deflated() {
        assert_eq!(expected_max_factor(1), 0.0);
        assert_eq!(min_backtest_years(1, 1.0), None);
        // Bailey et al. (2014): 45 trials need ~5 years for SR 1 to mean
        // anything (MinBTL ≈ 4.5 in their figure).
        let y = min_backtest_years(45, 1.0).unwrap();
        assert!(y > 4.0 && y < 5.0, "{y}");
    }

    /// CSCV as the module documentation states it, choice by choice with
    /// each half's returns summed block by block: the reference for the
    /// subset-sum tables.
    fn direct_pbo(returns: &[Vec<f64>], blocks: usize) -> (f64, f64) {
        let t = returns[0].len();
        let bars = t / blocks;
        let sharpe = |r: &[f64], chosen: &[usize]| {
            let picked: Vec<f64> = chosen
                .iter()
                .flat_map(|b| r[t - bars * blocks + b * bars..][..bars].iter().copied())
                .collect();
            let m = Moments::of(&picked);
            m.sharpe().unwrap_or(f64::NEG_INFINITY)
        };
        let n = returns.len() as f64;
        let mut logits = Vec::new();
        for mask in 0u32..1 << blocks {
            if mask.count_ones() as usize != blocks / 2 {
                continue;
            }
            let is: Vec<usize> = (0..blocks).filter(|b| mask >> b & 1 == 1).collect();
            let oos: Vec<usize> = (0..blocks).filter(|b| mask >> b & 1 == 0).collect();
            let in_sample: Vec<f64> = returns.iter().map(|r| sharpe(r, &is)).collect();
            let best = (0..in_sample.len())
                .fold(0, |b, k| if in_sample[k] > in_sample[b] { k } else { b });
            let out: Vec<f64> = returns.iter().map(|r| sharpe(r, &oos)).collect();
            let lower = out.iter().filter(|v| **v < out[best]).count() as f64;
            let equal = out.iter().filter(|v| **v == out[best]).count() as f64;
            let omega = (lower + (equal + 1.0) / 2.0) / (n + 1.0);
            logits.push((omega / (1.0 - omega)).ln());
        }
        let below = logits.iter().filter(|l| **l <= 0.0).count() as f64;
        (
            below / logits.len() as f64,
            logits.iter().sum::<f64>() / logits.len() as f64,
        )
    }

    #[test]
    fn subset_sum_tables_give_the_direct_figures() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for (trials, blocks, t) in [(12, 8, 803), (20, 12, 1207), (2, 2, 9), (5, 6, 61)] {
            let mut returns: Vec<Vec<f64>> = (0..trials)
                .map(|_| (0..t).map(|_| rng.random_range(-0.02..0.021)).collect())
                .collect();
            // A twin (exact ties), a flat trial (undefined everywhere) and
            // one flat in its first block only.
            returns[1] = returns[0].clone();
            returns[trials - 1] = vec![0.0; t];
            let first = t - t / blocks * blocks;
            for x in &mut returns[trials / 2][first..first + t / blocks] {
                *x = 0.001;
            }
            let got = probability_of_overfitting(&returns, blocks).unwrap();
            let (pbo, mean_logit) = direct_pbo(&returns, blocks);
            assert_eq!(got.pbo, pbo, "{trials} trials, {blocks} blocks");
            assert!(
                (got.mean_logit - mean_logit).abs() < 1e-12,
                "{} vs {mean_logit}",
                got.mean_logit
            );
        }
    }

    #[test]
    fn pbo_of_identical_skill_is_about_one_half_and_of_real_skill_zero() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let noise: Vec<Vec<f64>> = (0..10)
            .map(|_| (0..800).map(|_| rng.random_range(-0.01..0.01)).collect())
            .collect();
        let p = probability_of_overfitting(&noise, 8).unwrap();
        assert_eq!((p.combinations, p.block_bars), (70, 100));
        assert!(p.pbo > 0.2 && p.pbo < 0.8, "{p:?}");
        let mut skilled = noise.clone();
        for x in &mut skilled[4] {
            *x += 0.01;
        }
        let p = probability_of_overfitting(&skilled, 8).unwrap();
        assert_eq!(p.pbo, 0.0, "{p:?}");
        assert!(probability_of_overfitting(&noise[..1], 8).is_none());
        assert!(probability_of_overfitting(&noise, 7).is_none());
    }

    /// The fused pass over a pair's two halves gives the bits of two
    /// separate [`selection_logit`]s, whatever the ties: equal scores
    /// (zeros of both signs among them), undefined ones (−∞) and a best
    /// score shared by several trials, at lengths around the lane width.
    #[test]
    fn the_fused_pair_gives_the_logits_of_two_separate_selections() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let palette = [-0.0, 0.0, 1.5, -2.0, f64::NEG_INFINITY, 1.5e-300, 7.0];
        for n in [1usize, 2, 7, 8, 9, 17, 64, 301] {
            for _ in 0..200 {
                let mut draw = |_| match rng.random_range(0..3) {
                    0 => palette[rng.random_range(0..palette.len())],
                    _ => rng.random_range(-1.0..1.0),
                };
                let first: Vec<f64> = (0..n).map(&mut draw).collect();
                let second: Vec<f64> = (0..n).map(&mut draw).collect();
                let (a, b) = logits_of_pair(&first, &second);
                assert_eq!(a.to_bits(), selection_logit(&first, &second).to_bits());
                assert_eq!(b.to_bits(), selection_logit(&second, &first).to_bits());
            }
        }
        assert_eq!(first_best(&[f64::NEG_INFINITY; 3]), 0);
        assert_eq!(first_best(&[1.0, -0.0, 3.0, 0.5, 3.0]), 2);
        assert_eq!(first_best(&[-1.0, -0.0, 0.0, -2.0]), 1);
    }

    fn table_bits(t: &SubsetSums) -> Vec<u64> {
        t.sum
            .iter()
            .chain(&t.squares)
            .map(|x| x.to_bits())
            .collect()
    }

    proptest::proptest! {
        /// Any number of trials (around the rows a task takes) and of
        /// blocks, with zeros of both signs, ties and non-finite sums.
        #[test]
        fn parallel_subset_tables_are_the_bits_of_the_serial_ones(
            sums in proptest::collection::vec(
                proptest::collection::vec(
                    (
                        proptest::prop_oneof![
                            6 => -0.5f64..0.5,
                            2 => proptest::strategy::Just(0.0),
                            1 => proptest::strategy::Just(-0.0),
                            1 => proptest::strategy::Just(f64::NAN),
                            1 => proptest::strategy::Just(f64::INFINITY),
                        ],
                        0.0f64..0.3,
                    ),
                    10,
                ),
                0..40,
            ),
            first in 0usize..3,
            count in 0usize..8,
        ) {
            let count = count.min(10 - first);
            proptest::prop_assert_eq!(
                table_bits(&SubsetSums::new(&sums, first, count)),
                table_bits(&SubsetSums::new_serially(&sums, first, count))
            );
        }
    }

    #[test]
    fn parallel_subset_tables_of_many_trials_are_the_bits_of_the_serial_ones() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // More trials than one task's rows, so that rows go to several.
        let sums: Vec<BlockSums> = (0..3_001)
            .map(|_| {
                (0..16)
                    .map(|_| (rng.random_range(-0.05..0.05), rng.random_range(0.0..0.01)))
                    .collect()
            })
            .collect();
        for (first, count) in [(0, 8), (8, 8), (3, 5)] {
            assert_eq!(
                table_bits(&SubsetSums::new(&sums, first, count)),
                table_bits(&SubsetSums::new_serially(&sums, first, count))
            );
        }
    }

    /// The scores and logits of a pair are the same bits with AVX2 as
    /// without, and as the scores computed one trial at a time.
    #[test]
    fn pair_scores_are_the_bits_of_the_scalar_formula() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let trials = 37;
        let mut sums: Vec<BlockSums> = (0..trials)
            .map(|_| {
                (0..8)
                    .map(|_| (rng.random_range(-0.05..0.05), rng.random_range(0.0..0.01)))
                    .collect()
            })
            .collect();
        sums[3] = vec![(0.0, 0.0); 8];
        sums[4] = sums[5].clone();
        let lo = SubsetSums::new(&sums, 0, 4);
        let hi = SubsetSums::new(&sums, 4, 4);
        for halves in [
            ((0b0011, 0b0101), (0b1100, 0b1010)),
            ((0b1111, 0), (0, 0b1111)),
        ] {
            let (mut f, mut s) = (vec![0.0; trials], vec![0.0; trials]);
            let tables = Tables {
                lo: &lo,
                hi: &hi,
                bars: 400.0,
            };
            let got = pair_logits(&tables, halves, (&mut f, &mut s));
            let (mut gf, mut gs) = (vec![0.0; trials], vec![0.0; trials]);
            let generic = pair_logits_generic(&tables, halves, (&mut gf, &mut gs));
            assert_eq!(got.0.to_bits(), generic.0.to_bits());
            assert_eq!(got.1.to_bits(), generic.1.to_bits());
            let ((la, ha), _) = halves;
            for k in 0..trials {
                let (ls, ls2) = lo.row(la);
                let (hs, hs2) = hi.row(ha);
                let want = sharpe_rank_score(ls[k] + hs[k], ls2[k] + hs2[k], 400.0);
                assert_eq!(f[k].to_bits(), want.to_bits());
                assert_eq!(f[k].to_bits(), gf[k].to_bits());
                assert_eq!(s[k].to_bits(), gs[k].to_bits());
            }
        }
    }

    /// λ takes its logarithm from the `libm` crate: ω = 3/4 gives ln 3,
    /// which the `libm` crate rounds a unit in the last place below
    /// glibc's `log` (behind `f64::ln` on Linux).
    #[test]
    fn the_selection_logit_takes_its_logarithm_from_the_portable_libm() {
        // The best in-sample trial (0) ranks 3rd of 3 out of sample.
        let got = selection_logit(&[1.0, 0.0, 0.0], &[3.0, 1.0, 2.0]);
        assert_eq!(got.to_bits(), libm::log(3.0).to_bits());
        assert_eq!(got, 1.0986122886681096);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert_ne!(got, 3f64.ln());
    }
}
