//! Batched matmul: broadcast batch dims, 1-d operands (numpy rules), transposed and strided
//! operands. Gradients against finite differences; forwards against a naive triple loop.

mod common;

use common::*;
use plies::autodiff::{Array, DType, Tensor};
use proptest::prelude::*;

/// One matmul case: operand sources and how the op is called.
#[derive(Clone, Debug)]
struct Case {
    a: Source,
    b: Source,
    /// The operand is given transposed and the op calls `.t()` on it.
    ta: bool,
    tb: bool,
}

fn swap_last(d: &[usize]) -> Vec<usize> {
    let mut d = d.to_vec();
    let r = d.len();
    d.swap(r - 2, r - 1);
    d
}

fn case() -> BoxedStrategy<Case> {
    (
        broadcast_pair(0..=2),
        dim(),
        dim(),
        dim(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|((ba, bb), m, k, n, a1, b1, ta, tb)| {
            let (ta, tb) = (ta && !a1, tb && !b1);
            let mut da = if a1 { vec![k] } else { [ba, vec![m, k]].concat() };
            let mut db = if b1 { vec![k] } else { [bb, vec![k, n]].concat() };
            if ta {
                da = swap_last(&da);
            }
            if tb {
                db = swap_last(&db);
            }
            (source(da, true), source(db, true), Just(ta), Just(tb))
        })
        .prop_map(|(a, b, ta, tb)| Case { a, b, ta, tb })
        .boxed()
}

/// Row-major values and dims of a source as the op sees it (after the optional `.t()`).
fn operand(s: &Source, t: bool) -> (Vec<f64>, Vec<usize>) {
    let v = s.values();
    if !t {
        return (v, s.dims.clone());
    }
    let d = swap_last(&s.dims);
    let r = d.len();
    let tv = (0..count(&d))
        .map(|i| {
            let mut idx = unravel(i, &d);
            idx.swap(r - 2, r - 1);
            v[ravel(&idx, &s.dims)]
        })
        .collect();
    (tv, d)
}

/// numpy matmul by definition.
fn reference(a: &[f64], da: &[usize], b: &[f64], db: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let (a1, b1) = (da.len() == 1, db.len() == 1);
    let da2 = if a1 { vec![1, da[0]] } else { da.to_vec() };
    let db2 = if b1 { vec![db[0], 1] } else { db.to_vec() };
    let (ra, rb) = (da2.len(), db2.len());
    let (m, k, n) = (da2[ra - 2], da2[ra - 1], db2[rb - 1]);
    let batch = broadcast_dims(&da2[..ra - 2], &db2[..rb - 2]);
    let mut out = Vec::new();
    for bi in 0..count(&batch) {
        let bidx = unravel(bi, &batch);
        let pa = broadcast_pos(&bidx, &da2[..ra - 2]);
        let pb = broadcast_pos(&bidx, &db2[..rb - 2]);
        for i in 0..m {
            for j in 0..n {
                out.push((0..k).map(|l| a[(pa * m + i) * k + l] * b[(pb * k + l) * n + j]).sum());
            }
        }
    }
    let mut dims = batch;
    if !a1 {
        dims.push(m);
    }
    if !b1 {
        dims.push(n);
    }
    (out, dims)
}

fn apply(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> plies::autodiff::Result<Tensor> {
    let a = if ta { a.try_t()? } else { a.clone() };
    let b = if tb { b.try_t()? } else { b.clone() };
    a.try_matmul(&b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matmul_gradients(c in case()) {
        gradcheck("matmul", |x| apply(&x[0], &x[1], c.ta, c.tb), &[c.a.array(), c.b.array()]);
    }

    #[test]
    fn matmul_matches_reference(c in case()) {
        let (av, ad) = operand(&c.a, c.ta);
        let (bv, bd) = operand(&c.b, c.tb);
        let (want, dims) = reference(&av, &ad, &bv, &bd);
        for (dtype, tol) in [(DType::F64, 1e-13), (DType::F32, 1e-5)] {
            let y = apply(&Tensor::new(c.a.array_as(dtype)), &Tensor::new(c.b.array_as(dtype)), c.ta, c.tb).unwrap();
            assert_eq!(y.dims(), dims);
            assert_close(&tvals(&y), &want, tol);
        }
    }
}

#[test]
fn matmul_hand_values() {
    let a = ten(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let b = ten(&[5.0, 6.0, 7.0, 8.0], &[2, 2]);
    assert_eq!(tvals(&a.matmul(&b)), [19.0, 22.0, 43.0, 50.0]);
    assert_eq!(tvals(&a.t().matmul(&b)), [26.0, 30.0, 38.0, 44.0]);
    assert_eq!(tvals(&a.matmul(&b.t())), [17.0, 23.0, 39.0, 53.0]);
    let v = ten(&[1.0, 1.0], &[2]);
    let ma = a.matmul(&v);
    assert_eq!((ma.dims(), tvals(&ma)), (vec![2], vec![3.0, 7.0]));
    let va = ten(&[1.0, 2.0], &[2]).matmul(&a);
    assert_eq!((va.dims(), tvals(&va)), (vec![2], vec![7.0, 10.0]));
    let dot = ten(&[1.0, 2.0, 3.0], &[3]).matmul(&ten(&[4.0, 5.0, 6.0], &[3]));
    assert_eq!((dot.dims(), tvals(&dot)), (vec![], vec![32.0]));
    // [2, 1, 2] x [2, 1] -> [2, 1, 1]; [2] x [3, 2, 1] -> [3, 1].
    let bat = ten(&[1.0, 2.0, 3.0, 4.0], &[2, 1, 2]).matmul(&ten(&[1.0, 10.0], &[2, 1]));
    assert_eq!((bat.dims(), tvals(&bat)), (vec![2, 1, 1], vec![21.0, 43.0]));
    let vb = ten(&[1.0, 2.0], &[2]).matmul(&ten(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2, 1]));
    assert_eq!((vb.dims(), tvals(&vb)), (vec![3, 1], vec![5.0, 11.0, 17.0]));
    // Errors name the shapes as given, also for 1-d operands.
    let e = err(ten(&[1.0; 3], &[3]).try_matmul(&ten(&[1.0; 20], &[4, 5])));
    assert_eq!(e, "shape mismatch in matmul: lhs [3], rhs [4, 5]");
    let e = err(ten(&[1.0; 3], &[3]).try_matmul(&ten(&[1.0; 2], &[2])));
    assert_eq!(e, "shape mismatch in matmul: lhs [3], rhs [2]");
    let e = err(ten(&[1.0; 6], &[2, 3]).try_matmul(&ten(&[1.0; 2], &[2])));
    assert_eq!(e, "shape mismatch in matmul: lhs [2, 3], rhs [2]");
    let e = err(ten(&[1.0; 12], &[2, 2, 3]).try_matmul(&ten(&[1.0; 18], &[3, 3, 2])));
    assert_eq!(e, "shape mismatch in matmul: lhs [2, 2, 3], rhs [3, 3, 2]");
}

#[test]
fn matmul_of_empty_operands() {
    // An empty inner dim gives zeros; empty outer dims give empty results.
    let a = Tensor::param(Array::zeros([2, 0], DType::F64, CPU).unwrap());
    let b = Tensor::param(Array::zeros([0, 3], DType::F64, CPU).unwrap());
    let y = a.matmul(&b);
    assert_eq!((y.dims(), tvals(&y)), (vec![2, 3], vec![0.0; 6]));
    y.sum_all().backward().unwrap();
    assert_eq!(a.grad().unwrap().dims(), [2, 0]);
    assert_eq!(b.grad().unwrap().dims(), [0, 3]);
    let e = ten(&[], &[0, 4]).matmul(&ten(&[1.0; 4], &[4, 1]));
    assert_eq!(e.dims(), [0, 1]);
}

#[test]
fn matmul_gradient_hand_values() {
    // d(a . b)/da = b for 1-d operands.
    let a = Tensor::param(arr(&[1.0, 2.0, 3.0], &[3]));
    let b = Tensor::param(arr(&[4.0, 5.0, 6.0], &[3]));
    a.matmul(&b).backward().unwrap();
    assert_eq!(vals(&a.grad().unwrap()), [4.0, 5.0, 6.0]);
    assert_eq!(vals(&b.grad().unwrap()), [1.0, 2.0, 3.0]);
    // A shared weight under a batch: its gradient sums over the batch.
    let x = Tensor::new(arr(&[1.0, 2.0, 3.0, 4.0], &[2, 1, 2]));
    let w = Tensor::param(arr(&[1.0, 1.0], &[2, 1]));
    x.matmul(&w).sum_all().backward().unwrap();
    assert_eq!(vals(&w.grad().unwrap()), [4.0, 6.0]);
}

/// Sizes that take the CPU backend's parallel paths (threaded gemm, one task per batch).
#[test]
fn large_matmul_matches_reference() {
    let gen = |n: usize, salt: usize| -> Vec<f64> {
        (0..n).map(|i| (((i + salt) * 2654435761) % 1000) as f64 / 500.0 - 1.0).collect()
    };
    // [2, 70, 60] x [60, 50]^T-view, and many small batches with a broadcast rhs.
    let (av, bv) = (gen(2 * 70 * 60, 1), gen(50 * 60, 2));
    let a = arr(&av, &[2, 70, 60]);
    let bt = arr(&bv, &[50, 60]).t().unwrap();
    let (want, dims) = reference(&av, &[2, 70, 60], &vals(&bt), &[60, 50]);
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-4)] {
        let y = Tensor::new(a.to_dtype(dtype).unwrap()).matmul(&Tensor::new(bt.to_dtype(dtype).unwrap()));
        assert_eq!(y.dims(), dims);
        assert_close(&tvals(&y), &want, tol);
    }
    let (cv, dv) = (gen(40 * 3 * 4, 3), gen(4 * 5, 4));
    let (want, dims) = reference(&cv, &[40, 3, 4], &dv, &[1, 4, 5]);
    let y = Tensor::new(arr(&cv, &[40, 3, 4])).matmul(&Tensor::new(arr(&dv, &[1, 4, 5])));
    assert_eq!(y.dims(), dims);
    assert_close(&tvals(&y), &want, 1e-13);
}
