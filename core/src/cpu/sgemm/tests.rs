use super::*;
use crate::cpu::matmul::tests::naive;
use crate::{Layout, Shape};
use proptest::prelude::*;

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Run `sgemm` with A and B stored row-major or transposed, and C with a padded row
/// stride, and compare with the definition (f32 sums of k terms of size <= 1).
fn check(m: usize, n: usize, k: usize, a_t: bool, b_t: bool, seed: u64) {
    if !crate::cpu::simd::has_avx2() {
        eprintln!("sgemm test skipped: this CPU has no AVX2 + FMA");
        return;
    }
    let a = values(m * k, seed);
    let b = values(k * n, seed + 1);
    let sa = if a_t { (1, m) } else { (k, 1) };
    let sb = if b_t { (1, k) } else { (n, 1) };
    let c_rs = n + 3;
    let mut c = vec![f32::NAN; m * c_rs];
    let op = |v: &[f32], (rs, cs)| Operand { ptr: v.as_ptr(), rs, cs };
    // SAFETY: the strides address exactly the vectors made above; AVX2 was checked.
    unsafe { sgemm(m, n, k, op(&a, sa), op(&b, sb), c.as_mut_ptr(), c_rs) };
    let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let layout = |rows: usize, cols: usize, (rs, cs)| Layout::new(Shape::from([rows, cols]), vec![rs, cs], 0);
    let want = naive(&wide(&a), &layout(m, k, sa), &wide(&b), &layout(k, n, sb));
    let tol = 1e-5 * k as f64 + 1e-6;
    for i in 0..m {
        for j in 0..n {
            let (got, want) = (c[i * c_rs + j] as f64, want[i * n + j]);
            assert!((got - want).abs() <= tol, "{m}x{k}x{n} (a_t {a_t}, b_t {b_t}) at ({i}, {j}): {got} vs {want}");
        }
        // The padding between rows of C is not touched.
        assert!(c[i * c_rs + n..(i + 1) * c_rs].iter().all(|v| v.is_nan()), "row {i} padding written");
    }
}

#[test]
fn blocks_split_evenly_and_cover_the_range() {
    let got: Vec<_> = blocks(300, 256, 1).collect();
    assert_eq!(got, vec![(0, 150), (150, 150)]);
    let got: Vec<_> = blocks(145, 144, 6).collect();
    assert_eq!(got, vec![(0, 78), (78, 67)]);
    assert_eq!(blocks(5, 144, 6).collect::<Vec<_>>(), vec![(0, 5)]);
}

#[test]
fn products_across_block_boundaries() {
    // Edges in every direction: below one tile, one tile, just past the tile and the
    // block sizes (MC = 144, KC = 256, NC = 3072).
    for (m, n, k) in [(1, 1, 1), (6, 16, 1), (7, 17, 3), (5, 15, 257), (145, 33, 300), (150, 3090, 9), (13, 40, 600)] {
        for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
            check(m, n, k, a_t, b_t, (m * n * k) as u64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn products_match_the_definition(m in 1usize..40, n in 1usize..70, k in 1usize..300, a_t: bool, b_t: bool, seed in 0u64..1000) {
        check(m, n, k, a_t, b_t, seed);
    }
}
