//! Candidate weight vectors on the simplex (w_k ≥ 0, Σ w_k = 1).
//!
//! - `grid` with `step`: every composition of 1/step units into k parts,
//!   in lexicographic order of the unit counts ((0,…,0,n) first). There
//!   are C(n + k − 1, k − 1) of them; more than [`GRID_LIMIT`] is refused
//!   (use `random` instead).
//! - `random` with `samples` and `seed`: Dirichlet(1, …, 1) draws made as
//!   normalised exponentials −ln(1 − U), U uniform in [0, 1) from one
//!   ChaCha20 stream seeded with `seed` (rand 0.9's `random::<f64>()`),
//!   drawn in sample order, so the set never depends on thread count.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// At most this many candidates, on a grid or drawn (`samples`).
pub const GRID_LIMIT: u128 = 1_000_000;

/// At most this many weights in all (candidates × signals): 512 MiB.
pub const VALUES_LIMIT: usize = 1 << 26;

/// `count` candidates of `k` weights, refused beyond [`VALUES_LIMIT`].
fn capacity(count: usize, k: usize) -> Result<usize, String> {
    count
        .checked_mul(k)
        .filter(|&n| n <= VALUES_LIMIT)
        .ok_or_else(|| {
            format!(
                "{count} candidate weightings of {k} signals are more than {VALUES_LIMIT} weights; draw fewer `samples` or use a coarser `step`"
            )
        })
}

/// `count` weight vectors of length `k`, row after row.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    pub k: usize,
    pub data: Vec<f64>,
}

impl Weights {
    pub fn count(&self) -> usize {
        self.data.len().checked_div(self.k).unwrap_or(0)
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.k..(i + 1) * self.k]
    }
}

/// Number of compositions of `units` into `k` parts, saturating.
pub fn grid_count(k: usize, units: usize) -> u128 {
    if k == 0 {
        return 0;
    }
    // C(units + k - 1, k - 1), computed incrementally.
    let mut c: u128 = 1;
    for i in 1..k as u128 {
        c = c.saturating_mul(units as u128 + i) / i;
        if c > GRID_LIMIT * 1000 {
            return u128::MAX;
        }
    }
    c
}

pub fn grid(k: usize, step: f64) -> Result<Weights, String> {
    let units_f = 1.0 / step;
    let units = units_f.round() as usize;
    if !(step > 0.0 && step <= 1.0) || (units_f - units as f64).abs() > 1e-9 {
        return Err(format!(
            "step {step} must divide 1 (such as 0.1, 0.05, 0.25)"
        ));
    }
    let count = grid_count(k, units);
    if count > GRID_LIMIT {
        return Err(format!(
            "a grid with step {step} over {k} signals has more than {GRID_LIMIT} weightings; use `method: random`"
        ));
    }
    let mut data = Vec::with_capacity(capacity(count as usize, k)?);
    let mut parts = vec![0usize; k];
    compositions(&mut parts, 0, units, &mut |p| {
        data.extend(p.iter().map(|&u| u as f64 / units as f64));
    });
    Ok(Weights { k, data })
}

fn compositions(parts: &mut [usize], at: usize, left: usize, emit: &mut dyn FnMut(&[usize])) {
    if at + 1 == parts.len() {
        parts[at] = left;
        emit(parts);
        return;
    }
    for u in 0..=left {
        parts[at] = u;
        compositions(parts, at + 1, left - u, emit);
    }
}

pub fn random(k: usize, samples: usize, seed: u64) -> Result<Weights, String> {
    if samples as u128 > GRID_LIMIT {
        return Err(format!(
            "{samples} samples are more than the {GRID_LIMIT} candidates a weight search may have"
        ));
    }
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut data = Vec::with_capacity(capacity(samples, k)?);
    let mut row = vec![0.0; k];
    for _ in 0..samples {
        for x in row.iter_mut() {
            *x = -libm::log(1.0 - rng.random::<f64>());
        }
        let sum: f64 = row.iter().sum();
        if sum > 0.0 {
            data.extend(row.iter().map(|x| x / sum));
        } else {
            data.extend(std::iter::repeat_n(1.0 / k as f64, k));
        }
    }
    Ok(Weights { k, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_enumerates_all_compositions() {
        let w = grid(3, 0.5).unwrap();
        assert_eq!(w.count(), 6);
        assert_eq!(w.row(0), &[0.0, 0.0, 1.0]);
        assert_eq!(w.row(5), &[1.0, 0.0, 0.0]);
        assert_eq!(grid(4, 0.1).unwrap().count(), 286);
        assert_eq!(grid_count(4, 10), 286);
        assert!(grid(3, 0.3).is_err());
        assert!(grid(20, 0.1).unwrap_err().contains("random"));
    }

    #[test]
    fn a_search_beyond_its_bounds_is_refused_before_allocating() {
        for samples in [1_000_001, usize::MAX] {
            let err = random(3, samples, 0).unwrap_err();
            assert!(err.contains("samples"), "{err}");
        }
        let err = random(100, 1_000_000, 0).unwrap_err();
        assert!(err.contains("weights"), "{err}");
        assert_eq!(random(2, 1_000_000, 0).unwrap().count(), 1_000_000);
    }

    #[test]
    fn random_is_seeded_and_on_the_simplex() {
        let a = random(5, 100, 7).unwrap();
        assert_eq!(a, random(5, 100, 7).unwrap());
        assert_ne!(a, random(5, 100, 8).unwrap());
        for i in 0..a.count() {
            let s: f64 = a.row(i).iter().sum();
            assert!((s - 1.0).abs() < 1e-12);
            assert!(a.row(i).iter().all(|w| *w >= 0.0));
        }
    }

    /// The exponential draws take their logarithm from the `libm` crate:
    /// the weights are those of the same stream through `libm::log`, and
    /// (on glibc, where some of 1,000 logarithms differ in the last place)
    /// not those through `f64::ln`.
    #[test]
    fn exponential_draws_take_their_logarithm_from_the_portable_libm() {
        let draws = |ln: fn(f64) -> f64| {
            let mut rng = ChaCha20Rng::seed_from_u64(7);
            let mut data = Vec::new();
            for _ in 0..200 {
                let row: Vec<f64> = (0..5).map(|_| -ln(1.0 - rng.random::<f64>())).collect();
                let sum: f64 = row.iter().sum();
                data.extend(row.iter().map(|x| x / sum));
            }
            data
        };
        let got = random(5, 200, 7).unwrap();
        assert_eq!(got.data, draws(libm::log));
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert_ne!(got.data, draws(f64::ln));
    }
}
