//! Causal indicators: the value at bar t uses bars 0..=t only. Bars
//! before an indicator is defined hold NaN (the warm-up).

/// Simple moving average over `n` bars (a fresh window sum each bar, so no
/// drift accumulates). The sum is compensated, so that a mean which is
/// exact in decimals stays exact: ten closes averaging 126.0 give 126.0,
/// not 126.00000000000003, and a rule comparing a close with its mean
/// (Bollinger's exit) sees the tie the data holds.
pub fn sma(x: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    if n == 0 {
        return out;
    }
    for t in n.saturating_sub(1)..x.len() {
        out[t] = compensated_sum(&x[t + 1 - n..=t]) / n as f64;
    }
    out
}

/// Neumaier's compensated sum: the rounding error of each addition is
/// carried and added back once at the end.
fn compensated_sum(x: &[f64]) -> f64 {
    let (mut sum, mut carry) = (0.0f64, 0.0f64);
    for &v in x {
        let next = sum + v;
        carry += if sum.abs() >= v.abs() {
            (sum - next) + v
        } else {
            (v - next) + sum
        };
        sum = next;
    }
    sum + carry
}

/// Population standard deviation (ddof 0, as Bollinger defines his bands)
/// over `n` bars, around the window mean.
pub fn rolling_std(x: &[f64], n: usize) -> Vec<f64> {
    let mean = sma(x, n);
    let mut out = vec![f64::NAN; x.len()];
    for t in n.saturating_sub(1)..x.len() {
        if n == 0 {
            break;
        }
        let m = mean[t];
        let ss: f64 = x[t + 1 - n..=t].iter().map(|v| (v - m) * (v - m)).sum();
        out[t] = (ss / n as f64).sqrt();
    }
    out
}

/// Wilder's smoothing: the first value (at bar `start + n − 1`) is the
/// plain mean of the first `n` inputs from `start`, then
/// `s_t = (s_{t−1}·(n − 1) + x_t) / n`.
fn wilder(x: &[f64], n: usize, start: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    if n == 0 || start + n > x.len() {
        return out;
    }
    let first = start + n - 1;
    let mut s = x[start..=first].iter().sum::<f64>() / n as f64;
    out[first] = s;
    for t in first + 1..x.len() {
        s = (s * (n as f64 - 1.0) + x[t]) / n as f64;
        out[t] = s;
    }
    out
}

/// Wilder's RSI over `n` close-to-close changes: defined from bar `n`.
/// RSI = 100 − 100 / (1 + avg gain / avg loss); 100 when the average loss
/// is 0 (50 when both are 0).
pub fn rsi(close: &[f64], n: usize) -> Vec<f64> {
    let len = close.len();
    let mut gain = vec![0.0; len];
    let mut loss = vec![0.0; len];
    for t in 1..len {
        let d = close[t] - close[t - 1];
        gain[t] = d.max(0.0);
        loss[t] = (-d).max(0.0);
    }
    let g = wilder(&gain, n, 1);
    let l = wilder(&loss, n, 1);
    g.iter()
        .zip(&l)
        .map(|(&g, &l)| {
            if g.is_nan() {
                f64::NAN
            } else if l == 0.0 {
                if g == 0.0 { 50.0 } else { 100.0 }
            } else {
                100.0 - 100.0 / (1.0 + g / l)
            }
        })
        .collect()
}

/// True range: max(H − L, |H − C_{t−1}|, |L − C_{t−1}|); H − L on bar 0.
pub fn true_range(high: &[f64], low: &[f64], close: &[f64]) -> Vec<f64> {
    (0..close.len())
        .map(|t| {
            let hl = high[t] - low[t];
            if t == 0 {
                hl
            } else {
                let pc = close[t - 1];
                hl.max((high[t] - pc).abs()).max((low[t] - pc).abs())
            }
        })
        .collect()
}

/// Wilder's average true range: defined from bar `n − 1`.
pub fn atr(high: &[f64], low: &[f64], close: &[f64], n: usize) -> Vec<f64> {
    wilder(&true_range(high, low, close), n, 0)
}

/// The highest of the `n` bars before t (t excluded): defined from bar n.
pub fn previous_max(x: &[f64], n: usize) -> Vec<f64> {
    previous_extreme(x, n, f64::max)
}

/// The lowest of the `n` bars before t (t excluded): defined from bar n.
pub fn previous_min(x: &[f64], n: usize) -> Vec<f64> {
    previous_extreme(x, n, f64::min)
}

fn previous_extreme(x: &[f64], n: usize, pick: fn(f64, f64) -> f64) -> Vec<f64> {
    let mut out = vec![f64::NAN; x.len()];
    if n == 0 {
        return out;
    }
    for t in n..x.len() {
        out[t] = x[t - n..t].iter().copied().reduce(pick).unwrap_or(f64::NAN);
    }
    out
}

/// Rate of change over `n` bars: x_t / x_{t−n} − 1, defined from bar n.
pub fn roc(x: &[f64], n: usize) -> Vec<f64> {
    (0..x.len())
        .map(|t| {
            if t >= n && n > 0 {
                x[t] / x[t - n] - 1.0
            } else {
                f64::NAN
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn sma_of_a_decimal_tie_is_exact() {
        // SPY_D closes 378..=387: their decimal mean is 126.0 exactly; a
        // plain left-to-right sum gives 126.00000000000003.
        let w = [
            126.8, 125.2, 127.3, 126.2, 126.2, 125.7, 126.0, 125.2, 125.4, 126.0,
        ];
        assert_eq!(sma(&w, 10)[9], 126.0);
    }

    #[test]
    fn sma_and_std_have_warm_up() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let s = sma(&x, 3);
        assert!(s[1].is_nan());
        assert_eq!(&s[2..], &[2.0, 3.0]);
        let d = rolling_std(&x, 2);
        assert!(d[0].is_nan());
        assert!(close(d[1], 0.5));
    }

    #[test]
    fn rsi_is_wilder_smoothed() {
        let c = [10.0, 11.0, 10.0, 12.0, 12.0];
        let r = rsi(&c, 2);
        assert!(r[1].is_nan());
        // First averages: gain (1 + 0)/2, loss (0 + 1)/2.
        assert!(close(r[2], 50.0));
        // gain (0.5 + 2)/2 = 1.25, loss (0.5 + 0)/2 = 0.25.
        assert!(close(r[3], 100.0 - 100.0 / 6.0));
        let up = rsi(&[1.0, 2.0, 3.0], 2);
        assert_eq!(up[2], 100.0);
    }

    #[test]
    fn atr_and_channels() {
        let h = [2.0, 3.0, 4.0];
        let l = [1.0, 2.0, 1.0];
        let c = [1.5, 2.5, 3.0];
        assert_eq!(true_range(&h, &l, &c), vec![1.0, 1.5, 3.0]);
        let a = atr(&h, &l, &c, 2);
        assert!(a[0].is_nan());
        assert!(close(a[1], 1.25));
        assert!(close(a[2], (1.25 + 3.0) / 2.0));
        let m = previous_max(&h, 2);
        assert!(m[1].is_nan());
        assert_eq!(m[2], 3.0);
        assert_eq!(previous_min(&l, 2)[2], 1.0);
        assert!(close(roc(&c, 2)[2], 1.0));
    }
}
