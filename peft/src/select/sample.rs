//! Seeded draws of layer subsets.

use plies_autodiff::{Error, Result};
use plies_core::rng::Rng;

/// `n` distinct indices drawn one after another with probability proportional to `weights`
/// among those not yet drawn (as `torch.multinomial(weights, n)` without replacement),
/// returned in increasing order (as `ist.py` sorts them, so equal sets compare equal).
pub fn weighted_subset(weights: &[f64], n: usize, rng: &mut Rng) -> Result<Vec<usize>> {
    if let Some((i, w)) = weights.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
        return Err(Error::invalid("layer sampling", format!("weight {i} is {w}; weights must be finite and >= 0")));
    }
    let positive = weights.iter().filter(|&&w| w > 0.0).count();
    if n > positive {
        return Err(Error::invalid(
            "layer sampling",
            format!("cannot draw {n} distinct layers: only {positive} of {} have a positive weight", weights.len()),
        ));
    }
    let mut left: Vec<f64> = weights.to_vec();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let total: f64 = left.iter().sum();
        let mut u = rng.uniform_f64() * total;
        // The last positive weight takes what rounding leaves over.
        let mut pick = left.iter().rposition(|&w| w > 0.0).expect("a positive weight is left");
        for (i, &w) in left.iter().enumerate() {
            if w > 0.0 && u < w {
                pick = i;
                break;
            }
            u -= w;
        }
        left[pick] = 0.0;
        out.push(pick);
    }
    out.sort_unstable();
    Ok(out)
}

/// `n` of `0..len` uniformly at random, in increasing order.
pub fn uniform_subset(len: usize, n: usize, rng: &mut Rng) -> Result<Vec<usize>> {
    weighted_subset(&vec![1.0; len], n, rng)
}

/// The number of `k`-subsets of `n` things, saturating at `u128::MAX`.
pub fn binomial(n: usize, k: usize) -> u128 {
    if k > n {
        return 0;
    }
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        // c * (n - i) / (i + 1) is exact at every step (a binomial coefficient times i + 1).
        c = match c.checked_mul((n - i) as u128) {
            Some(v) => v / (i + 1) as u128,
            None => return u128::MAX,
        };
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_follow_the_weights_and_skip_zero_weights() {
        let mut rng = Rng::new(3);
        let w = [1.0, 0.0, 3.0, 0.0];
        let mut firsts = [0usize; 4];
        for _ in 0..4000 {
            let s = weighted_subset(&w, 1, &mut rng).unwrap();
            firsts[s[0]] += 1;
        }
        assert_eq!(firsts[1] + firsts[3], 0);
        let share = firsts[2] as f64 / 4000.0;
        assert!((share - 0.75).abs() < 0.03, "share of index 2 {share}");
        assert_eq!(weighted_subset(&w, 2, &mut rng).unwrap(), vec![0, 2]);
        let err = weighted_subset(&w, 3, &mut rng).unwrap_err().to_string();
        assert!(err.contains("only 2 of 4"), "{err}");
        assert!(weighted_subset(&[1.0, f64::NAN], 1, &mut rng).is_err());
    }

    #[test]
    fn binomials() {
        assert_eq!(binomial(8, 4), 70);
        assert_eq!(binomial(3, 2), 3);
        assert_eq!(binomial(2, 3), 0);
        assert_eq!(binomial(32, 16), 601_080_390);
        assert_eq!(binomial(300, 150), u128::MAX);
    }
}
