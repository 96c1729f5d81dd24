//! A strategy against a benchmark (buy-and-hold of the same bars), over
//! the per-bar returns r_t (strategy) and b_t (benchmark), t = 1..T, with
//! P periods per year, risk-free rate 0:
//!
//! | figure | definition | `null` when |
//! |---|---|---|
//! | `beta` | cov(r, b) / var(b), both ddof 1 | T < 2 or var(b) = 0 |
//! | `alpha` | (mean(r) − beta·mean(b)) · P, annualised | beta is undefined |
//! | `information_ratio` | mean(r − b) / std(r − b, ddof 1) · √P | T < 2 or std(r − b) = 0 |
//! | `excess_return` | total return of the strategy − that of the benchmark | never |
//!
//! After ruin of either curve ([`super::equity`]) there are no returns:
//! both series end at the first ruin.

use serde::Serialize;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Relative {
    pub alpha: Option<f64>,
    pub beta: Option<f64>,
    pub information_ratio: Option<f64>,
    pub excess_return: f64,
}

/// The figures of the table for equity curves `strategy` and `benchmark`
/// of the same bars.
pub fn relative(strategy: &[f64], benchmark: &[f64], ppy: f64) -> Relative {
    let n = strategy.len().min(benchmark.len());
    let live = strategy[..n]
        .iter()
        .zip(&benchmark[..n])
        .position(|(s, b)| *s <= 0.0 || *b <= 0.0)
        .map_or(n, |r| r + 1);
    let returns =
        |e: &[f64]| -> Vec<f64> { e[..live].windows(2).map(|w| w[1] / w[0] - 1.0).collect() };
    let (r, b) = (returns(strategy), returns(benchmark));
    let t = r.len() as f64;
    let last = |e: &[f64]| e.get(n.wrapping_sub(1)).copied().unwrap_or(1.0);
    let excess_return = last(strategy) - last(benchmark);
    if r.len() < 2 {
        return Relative {
            excess_return,
            ..Relative::default()
        };
    }
    let mean = |x: &[f64]| x.iter().sum::<f64>() / t;
    let (mr, mb) = (mean(&r), mean(&b));
    let cov = r
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - mr) * (y - mb))
        .sum::<f64>()
        / (t - 1.0);
    let var_b = b.iter().map(|y| (y - mb) * (y - mb)).sum::<f64>() / (t - 1.0);
    let beta = (var_b > 0.0).then(|| cov / var_b);
    let active: Vec<f64> = r.iter().zip(&b).map(|(x, y)| x - y).collect();
    let ma = mean(&active);
    let sa = (active.iter().map(|a| (a - ma) * (a - ma)).sum::<f64>() / (t - 1.0)).sqrt();
    let ir = ma / sa * ppy.sqrt();
    Relative {
        alpha: beta.map(|beta| (mr - beta * mb) * ppy),
        beta,
        information_ratio: (sa > 0.0 && ir.is_finite()).then_some(ir),
        excess_return,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_against_itself() {
        let e = [1.0, 1.1, 1.05, 1.2];
        let r = relative(&e, &e, 252.0);
        assert!((r.beta.unwrap() - 1.0).abs() < 1e-12);
        assert!(r.alpha.unwrap().abs() < 1e-12);
        // No active return at all: the information ratio is 0/0.
        assert_eq!(r.information_ratio, None);
        assert_eq!(r.excess_return, 0.0);
    }

    #[test]
    fn twice_the_benchmark_has_beta_two() {
        let b = [1.0, 1.1, 1.0, 1.2];
        let mut s = vec![1.0];
        for w in b.windows(2) {
            let last = *s.last().unwrap();
            s.push(last * (1.0 + 2.0 * (w[1] / w[0] - 1.0)));
        }
        let r = relative(&s, &b, 1.0);
        assert!((r.beta.unwrap() - 2.0).abs() < 1e-12, "{r:?}");
        assert!(r.alpha.unwrap().abs() < 1e-12, "{r:?}");
        let flat = relative(&s, &[1.0; 4], 1.0);
        assert_eq!((flat.beta, flat.alpha), (None, None));
    }
}
