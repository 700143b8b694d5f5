//! Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations, in f64.
//! Jacobi is slow for big matrices but exact to rounding, simple, and deterministic: the
//! same input gives the same rotations in the same order, so the glyph substrate is the same
//! on every machine.

/// Eigenvalues (descending) and eigenvectors of the symmetric `n x n` matrix `a` (row-major).
/// Column `j` of the returned row-major `vecs` belongs to `vals[j]`. Sign convention: each
/// eigenvector's component of largest magnitude is positive (the first such index on ties),
/// so the basis does not depend on the order rotations happened to take.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(a.len(), n * n, "symmetric_eigen: {} values for a {n}x{n} matrix", a.len());
    let mut m = a.to_vec();
    let mut v = vec![0.0; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = m.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j].powi(2))
            .sum();
        if off <= 1e-30 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation angle that zeroes m[p][q] (Golub & Van Loan, sym.schur2).
                let tau = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (mkp, mkq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for k in 0..n {
                    let (mpk, mqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    // Stable sort: equal eigenvalues keep their index order, which is itself deterministic.
    order.sort_by(|&i, &j| m[j * n + j].total_cmp(&m[i * n + i]));
    let vals = order.iter().map(|&i| m[i * n + i]).collect();
    let mut vecs = vec![0.0; n * n];
    for (col, &i) in order.iter().enumerate() {
        let mut big = 0;
        for k in 0..n {
            if v[k * n + i].abs() > v[big * n + i].abs() {
                big = k;
            }
        }
        let sign = if v[big * n + i] < 0.0 { -1.0 } else { 1.0 };
        for k in 0..n {
            vecs[k * n + col] = sign * v[k * n + i];
        }
    }
    (vals, vecs)
}

#[cfg(test)]
mod tests {
    use super::symmetric_eigen;

    #[test]
    fn decomposes_a_known_matrix() {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, eigenvectors (1, 1) and (1, -1) / sqrt 2.
        let (vals, vecs) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((vals[0] - 3.0).abs() < 1e-12 && (vals[1] - 1.0).abs() < 1e-12, "{vals:?}");
        let r = 0.5f64.sqrt();
        assert!((vecs[0] - r).abs() < 1e-12 && (vecs[2] - r).abs() < 1e-12, "{vecs:?}");
        assert!((vecs[1].abs() - r).abs() < 1e-12 && (vecs[1] + vecs[3]).abs() < 1e-12, "{vecs:?}");
    }

    #[test]
    fn reconstructs_a_random_symmetric_matrix() {
        let n = 7;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let x = ((i * 31 + j * 17) % 13) as f64 - 6.0;
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        let (vals, v) = symmetric_eigen(&a, n);
        assert!(vals.windows(2).all(|w| w[0] >= w[1]), "{vals:?}");
        for i in 0..n {
            for j in 0..n {
                let back: f64 = (0..n).map(|k| v[i * n + k] * vals[k] * v[j * n + k]).sum();
                assert!((back - a[i * n + j]).abs() < 1e-9, "A[{i}][{j}] = {} rebuilt as {back}", a[i * n + j]);
                let dot: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
                assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-9);
            }
        }
    }
}
