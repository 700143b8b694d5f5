//! Seeded random cases: random ranks and odd sizes, size-1 dims, random permutations and
//! narrowings of the inputs, random broadcast partners, random reduction axes, and
//! gradients of small composites through all of them.

use crate::common::{check_grads, Pair};
use plies::core::rng::Rng;
use plies::core::{Device, Result};

const SIZES: [usize; 8] = [1, 2, 3, 5, 7, 11, 17, 33];

fn shape(rng: &mut Rng, max_rank: u64) -> Vec<usize> {
    let rank = rng.below(max_rank + 1) as usize;
    let mut s: Vec<usize> = (0..rank).map(|_| SIZES[rng.below(SIZES.len() as u64) as usize]).collect();
    // Keep the element count small for the software adapter.
    while s.iter().product::<usize>() > 4000 {
        let i = s.iter().enumerate().max_by_key(|(_, &d)| d).unwrap().0;
        s[i] = 3;
    }
    s
}

/// A view with `want` dims: made as a bigger, permuted array, then narrowed and permuted
/// back, so that the strides are neither dense nor in order.
fn strided_pair(rng: &mut Rng, want: &[usize], seed: u64, dev: Device) -> Result<Pair> {
    let r = want.len();
    let perm = rng.permutation(r);
    let grow: Vec<usize> = (0..r).map(|_| rng.below(2) as usize).collect();
    // The stored array has dims want[perm[i]] + grow[i].
    let stored: Vec<usize> = (0..r).map(|i| want[perm[i]] + grow[i]).collect();
    let x = Pair::rand(stored, seed, -1.5, 1.5, dev)?;
    let mut inverse = vec![0; r];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    x.map(|a| {
        let mut v = a.clone();
        for (i, &g) in grow.iter().enumerate() {
            v = v.narrow(i, g, v.dims()[i] - g)?;
        }
        v.permute(&inverse)
    })
}

/// A shape that broadcasts against `s`: some dims set to 1, some leading dims dropped.
fn partner(rng: &mut Rng, s: &[usize]) -> Vec<usize> {
    let drop = rng.below(s.len() as u64 + 1) as usize;
    s[drop..].iter().map(|&d| if rng.below(3) == 0 { 1 } else { d }).collect()
}

pub fn random_elementwise_and_reductions(dev: Device) -> Result<()> {
    let mut rng = Rng::new(99);
    for case in 0..30u64 {
        let s = shape(&mut rng, 4);
        let x = strided_pair(&mut rng, &s, case, dev)?;
        let ps = partner(&mut rng, &s);
        let y = strided_pair(&mut rng, &ps, 1000 + case, dev)?;
        let what = format!("case {case}: {s:?} with {ps:?}");
        x.zip(&y, |a, b| a.mul(b)?.add(&a.exp()?))?.check(&format!("{what}: x*y + exp(x)"), 1e-5, 1e-6)?;
        y.zip(&x, |b, a| b.sub(a)?.maximum(a))?.check(&format!("{what}: max(y - x, x)"), 1e-6, 1e-7)?;
        if !s.is_empty() {
            let axes: Vec<usize> = (0..s.len()).filter(|_| rng.below(2) == 0).collect();
            x.map(|a| a.sum(axes.clone(), case.is_multiple_of(3)))?.check(
                &format!("{what}: sum {axes:?}"),
                1e-5,
                1e-5,
            )?;
            x.map(|a| a.max(axes.clone(), false))?.check(&format!("{what}: max {axes:?}"), 0.0, 0.0)?;
            let axis = rng.below(s.len() as u64) as usize;
            x.map(|a| a.softmax(axis, case % 2 == 0))?.check(&format!("{what}: softmax {axis}"), 1e-5, 1e-6)?;
            x.map(|a| a.argmin(axis, false))?.check_exact(&format!("{what}: argmin {axis}"))?;
        }
        check_grads(&what, &[x, y], 1e-4, 1e-5, |t| t[0].try_mul(&t[1])?.try_tanh()?.try_add(&t[0].try_sqr()?))?;
    }
    Ok(())
}

pub fn random_matmuls(dev: Device) -> Result<()> {
    let mut rng = Rng::new(7);
    for case in 0..12u64 {
        let pick = |rng: &mut Rng| SIZES[rng.below(SIZES.len() as u64) as usize] + rng.below(40) as usize;
        let (m, k, n) = (pick(&mut rng), pick(&mut rng), pick(&mut rng));
        let batch: Vec<usize> = (0..rng.below(3)).map(|_| 1 + rng.below(3) as usize).collect();
        let mut sa = batch.clone();
        sa.extend([m, k]);
        let mut sb: Vec<usize> = batch.iter().map(|&b| if rng.below(2) == 0 { 1 } else { b }).collect();
        sb.extend([k, n]);
        let a = strided_pair(&mut rng, &sa, 2 * case, dev)?;
        let b = strided_pair(&mut rng, &sb, 2 * case + 1, dev)?;
        let what = format!("matmul case {case}: {sa:?} x {sb:?}");
        a.zip(&b, |a, b| a.matmul(b))?.check(&what, 1e-5, 2e-6 * k as f64)?;
        check_grads(&what, &[a, b], 1e-4, 1e-5 * k as f64, |t| t[0].try_matmul(&t[1]))?;
    }
    Ok(())
}

device_tests!(random_elementwise_and_reductions, random_matmuls);
