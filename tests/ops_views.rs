//! Views and joins: reshape, permute/transpose, narrow, broadcast_to, squeeze/unsqueeze,
//! flatten, contiguous, cat, stack, split, chunk. Each is checked on strided inputs against
//! index arithmetic (values, shape, zero-copy where promised) and finite differences.

mod common;

use common::*;
use plies::autodiff::{Array, DType, Result, Tensor};
use proptest::collection::vec;
use proptest::prelude::*;

fn same_storage(a: &Tensor, b: &Tensor) -> bool {
    a.value().same_storage(&b.value())
}

/// Resolve a possibly negative axis against `rank`.
fn resolve(axis: i64, rank: usize) -> usize {
    if axis < 0 {
        (axis + rank as i64) as usize
    } else {
        axis as usize
    }
}

/// A factorisation of `n` into up to five dims picked by `seeds` (the last takes the rest).
fn factor(n: usize, seeds: &[usize]) -> Vec<usize> {
    let mut dims = Vec::new();
    let mut rest = n;
    for &s in seeds {
        let divisors: Vec<usize> = (1..=rest).filter(|&d| rest.is_multiple_of(d)).collect();
        let d = divisors[s % divisors.len()];
        dims.push(d);
        rest /= d;
    }
    dims.push(rest);
    dims
}

/// Pieces of a split, each scaled by its position and joined in reverse order: one output
/// through which every piece's gradient is distinguishable.
fn rejoin(pieces: &[Tensor], axis: usize) -> Result<Tensor> {
    let scaled =
        pieces.iter().enumerate().map(|(i, p)| p.try_mul_scalar(i as f64 + 1.0)).collect::<Result<Vec<_>>>()?;
    Tensor::try_cat(&scaled.iter().rev().collect::<Vec<_>>(), axis)
}

/// Values of the join of `parts` (row-major, `dims[k]`) along `axis`.
fn cat_values(parts: &[(Vec<f64>, Vec<usize>)], axis: usize) -> (Vec<f64>, Vec<usize>) {
    let mut out_dims = parts[0].1.clone();
    out_dims[axis] = parts.iter().map(|p| p.1[axis]).sum();
    let values = (0..count(&out_dims))
        .map(|i| {
            let mut idx = unravel(i, &out_dims);
            let mut k = 0;
            while idx[axis] >= parts[k].1[axis] {
                idx[axis] -= parts[k].1[axis];
                k += 1;
            }
            parts[k].0[ravel(&idx, &parts[k].1)]
        })
        .collect();
    (values, out_dims)
}

/// Values of the `narrow(axis, start, len)` of row-major `values` of `dims`.
fn narrow_values(values: &[f64], dims: &[usize], axis: usize, start: usize, len: usize) -> Vec<f64> {
    let mut out = dims.to_vec();
    out[axis] = len;
    (0..count(&out))
        .map(|i| {
            let mut idx = unravel(i, &out);
            idx[axis] += start;
            values[ravel(&idx, dims)]
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn views_read_the_right_elements(src in any_source(0..=4, true)) {
        assert_eq!(vals(&src.array()), src.values());
        let f32s: Vec<f64> = src.values().iter().map(|&v| v as f32 as f64).collect();
        assert_eq!(vals(&src.array_as(DType::F32)), f32s);
        let si = src.map(|u| (100.0 * u).round());
        assert_eq!(vals(&si.array_as(DType::I32)), si.values());
    }

    #[test]
    fn reshape(src in any_source(0..=4, true), seeds in vec(any::<usize>(), 0..=3), free in any::<usize>()) {
        let target = factor(count(&src.dims), &seeds);
        let x = Tensor::new(src.array());
        let y = x.reshape(target.clone());
        assert_eq!(y.dims(), target);
        assert_eq!(tvals(&y), src.values(), "reshape keeps row-major order");
        if x.value().is_contiguous() {
            assert!(same_storage(&x, &y), "reshape of a dense tensor is a view");
        }
        let mut spec: Vec<i64> = target.iter().map(|&d| d as i64).collect();
        spec[free % target.len()] = -1;
        assert_eq!(x.reshape_infer(&spec).dims(), target);
        let t = target.clone();
        gradcheck("reshape", |x| x[0].try_reshape(t.clone()), &[src.array()]);
        gradcheck("reshape_infer", |x| x[0].try_reshape_infer(&spec), &[src.array()]);
    }

    #[test]
    fn permute_and_transpose(
        (src, perm, a, b) in any_source(1..=4, true).prop_flat_map(|s| {
            let r = s.dims.len();
            let ri = r as i64;
            (Just(s), Just((0..r).collect::<Vec<_>>()).prop_shuffle(), -ri..ri, -ri..ri)
        })
    ) {
        let x = Tensor::new(src.array());
        let y = x.permute(&perm);
        let want_dims: Vec<usize> = perm.iter().map(|&p| src.dims[p]).collect();
        assert_eq!(y.dims(), want_dims);
        let want: Vec<f64> = (0..count(&want_dims))
            .map(|i| {
                let o = unravel(i, &want_dims);
                let mut idx = vec![0; o.len()];
                for (k, &p) in perm.iter().enumerate() {
                    idx[p] = o[k];
                }
                src.values()[ravel(&idx, &src.dims)]
            })
            .collect();
        assert_eq!(tvals(&y), want);
        assert!(same_storage(&x, &y), "permute is a view");
        let p = perm.clone();
        gradcheck("permute", |x| x[0].try_permute(&p), &[src.array()]);

        let (ra, rb) = (resolve(a, src.dims.len()), resolve(b, src.dims.len()));
        let mut swap: Vec<usize> = (0..src.dims.len()).collect();
        swap.swap(ra, rb);
        assert_eq!(tvals(&x.transpose(a, b)), tvals(&x.permute(&swap)));
        gradcheck("transpose", |x| x[0].try_transpose(a, b), &[src.array()]);
        if src.dims.len() >= 2 {
            let r = src.dims.len();
            assert_eq!(tvals(&x.t()), tvals(&x.transpose(r - 2, r - 1)));
            gradcheck("t", |x| x[0].try_t(), &[src.array()]);
        }
    }

    #[test]
    fn narrow(
        (src, axis, start, len) in any_source(1..=4, true).prop_flat_map(|s| {
            let r = s.dims.len();
            (Just(s), 0..r).prop_flat_map(|(s, a)| {
                let size = s.dims[a];
                (Just(s), Just(a), 0..=size).prop_flat_map(move |(s, a, st)| (Just(s), Just(a), Just(st), 0..=size - st))
            })
        })
    ) {
        let x = Tensor::new(src.array());
        let y = x.narrow(axis, start, len);
        assert_eq!(tvals(&y), narrow_values(&src.values(), &src.dims, axis, start, len));
        assert!(same_storage(&x, &y), "narrow is a view");
        gradcheck("narrow", |x| x[0].try_narrow(axis, start, len), &[src.array()]);
    }

    #[test]
    fn broadcast_to(
        (src, target) in any_source(0..=3, true).prop_flat_map(|s| {
            let r = s.dims.len();
            (Just(s), vec(dim(), 0..=2), vec(dim(), r))
        }).prop_map(|(s, lead, grow)| {
            let mut t = lead;
            t.extend(s.dims.iter().zip(&grow).map(|(&d, &g)| if d == 1 { g } else { d }));
            (s, t)
        })
    ) {
        let x = Tensor::new(src.array());
        let y = x.broadcast_to(target.clone());
        assert_eq!(y.dims(), target);
        assert_eq!(tvals(&y), broadcast_values(&src.values(), &src.dims, &target));
        assert!(same_storage(&x, &y), "broadcast_to is a view");
        let t = target.clone();
        gradcheck("broadcast_to", |x| x[0].try_broadcast_to(t.clone()), &[src.array()]);
    }

    #[test]
    fn squeeze_unsqueeze_flatten(
        (src, at, ends) in any_source(0..=4, true).prop_flat_map(|s| {
            let r = s.dims.len() as i64;
            (Just(s), -(r + 1)..=r, (0..r.max(1), 0..r.max(1)))
        })
    ) {
        let r = src.dims.len();
        let x = Tensor::new(src.array());
        let u = x.unsqueeze(at);
        let ua = if at < 0 { (at + r as i64 + 1) as usize } else { at as usize };
        let mut want = src.dims.clone();
        want.insert(ua, 1);
        assert_eq!(u.dims(), want);
        assert_eq!(tvals(&u), src.values());
        assert!(same_storage(&x, &u), "unsqueeze is a view");
        gradcheck("unsqueeze", |x| x[0].try_unsqueeze(at), &[src.array()]);
        // Squeezing the inserted axis gives back the input, and every other size-1 axis squeezes.
        assert_eq!(u.squeeze(ua as i64).dims(), src.dims);
        for a in (0..r).filter(|&a| src.dims[a] == 1) {
            let s = x.squeeze(a);
            let mut want = src.dims.clone();
            want.remove(a);
            assert_eq!(s.dims(), want);
            assert_eq!(tvals(&s), src.values());
            assert!(same_storage(&x, &s), "squeeze is a view");
            gradcheck("squeeze", |x| x[0].try_squeeze(a), &[src.array()]);
        }
        if r > 0 {
            let (s, e) = (ends.0.min(ends.1) as usize, ends.0.max(ends.1) as usize);
            let f = x.flatten(s, e);
            let mut want = src.dims[..s].to_vec();
            want.push(src.dims[s..=e].iter().product());
            want.extend_from_slice(&src.dims[e + 1..]);
            assert_eq!(f.dims(), want);
            assert_eq!(tvals(&f), src.values());
            gradcheck("flatten", |x| x[0].try_flatten(s, e), &[src.array()]);
        }
    }

    #[test]
    fn contiguous(src in any_source(0..=4, true)) {
        let x = Tensor::new(src.array());
        let c = x.contiguous();
        assert!(c.value().is_contiguous());
        assert_eq!(tvals(&c), src.values());
        if x.value().is_contiguous() {
            assert!(same_storage(&x, &c), "contiguous of a dense tensor is itself");
        }
        gradcheck("contiguous", |x| x[0].try_contiguous()?.try_mul_scalar(2.0), &[src.array()]);
    }

    #[test]
    fn cat(
        (parts, axis) in (shape(1..=4), 1..=3usize).prop_flat_map(|(d, n)| {
            let r = d.len();
            (Just(d), vec(1..=4usize, n), 0..r)
        }).prop_flat_map(|(d, sizes, axis)| {
            let parts: Vec<_> = sizes.iter().map(|&s| {
                let mut pd = d.clone();
                pd[axis] = s;
                source(pd, true)
            }).collect();
            (parts, Just(axis))
        })
    ) {
        let ts: Vec<Tensor> = parts.iter().map(|p| Tensor::new(p.array())).collect();
        let y = Tensor::cat(&ts.iter().collect::<Vec<_>>(), axis);
        let (want, dims) = cat_values(&parts.iter().map(|p| (p.values(), p.dims.clone())).collect::<Vec<_>>(), axis);
        assert_eq!(y.dims(), dims);
        assert_eq!(tvals(&y), want);
        let arrays: Vec<Array> = parts.iter().map(|p| p.array()).collect();
        gradcheck("cat", |x| Tensor::try_cat(&x.iter().collect::<Vec<_>>(), axis), &arrays);
    }

    #[test]
    fn stack(
        (parts, axis) in (shape(0..=3), 1..=3usize).prop_flat_map(|(d, n)| {
            let r = d.len() as i64;
            (vec(source(d, true), n), -(r + 1)..=r)
        })
    ) {
        let r = parts[0].dims.len();
        let a = if axis < 0 { (axis + r as i64 + 1) as usize } else { axis as usize };
        let ts: Vec<Tensor> = parts.iter().map(|p| Tensor::new(p.array())).collect();
        let y = Tensor::stack(&ts.iter().collect::<Vec<_>>(), axis);
        let mut one = parts[0].dims.clone();
        one.insert(a, 1);
        let (want, dims) = cat_values(&parts.iter().map(|p| (p.values(), one.clone())).collect::<Vec<_>>(), a);
        assert_eq!(y.dims(), dims);
        assert_eq!(tvals(&y), want);
        let arrays: Vec<Array> = parts.iter().map(|p| p.array()).collect();
        gradcheck("stack", |x| Tensor::try_stack(&x.iter().collect::<Vec<_>>(), axis), &arrays);
    }

    #[test]
    fn split_and_chunk(
        (src, axis, cuts, n, empty_at) in any_source(1..=4, true).prop_flat_map(|s| {
            let r = s.dims.len();
            (Just(s), 0..r, vec(any::<bool>(), 5), 1..=6usize, prop::option::of(0..6usize))
        })
    ) {
        let size = src.dims[axis];
        // Sizes from cut points, maybe with an empty piece inserted.
        let mut sizes = Vec::new();
        let mut last = 0;
        for (i, &cut) in cuts.iter().enumerate().take(size) {
            if cut {
                sizes.push(i + 1 - last);
                last = i + 1;
            }
        }
        if last < size || sizes.is_empty() {
            sizes.push(size - last);
        }
        if let Some(at) = empty_at {
            sizes.insert(at.min(sizes.len()), 0);
        }
        let x = Tensor::new(src.array());
        let pieces = x.split(&sizes, axis);
        let mut at = 0;
        for (p, &len) in pieces.iter().zip(&sizes) {
            assert_eq!(tvals(p), narrow_values(&src.values(), &src.dims, axis, at, len));
            assert!(same_storage(&x, p), "split pieces are views");
            at += len;
        }
        let sz = sizes.clone();
        gradcheck("split", |x| rejoin(&x[0].try_split(&sz, axis)?, axis), &[src.array()]);

        // torch.chunk: pieces of ceil(size / n), the last one smaller, never empty.
        let each = size.div_ceil(n);
        let chunks = x.chunk(n, axis);
        let want: Vec<usize> = (0..size.div_ceil(each)).map(|i| each.min(size - i * each)).collect();
        assert_eq!(chunks.iter().map(|c| c.dims()[axis]).collect::<Vec<_>>(), want);
        assert!(chunks.len() <= n);
        gradcheck("chunk", |x| rejoin(&x[0].try_chunk(n, axis)?, axis), &[src.array()]);
    }
}

#[test]
fn views_hand_values() {
    let x = ten(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(tvals(&x.reshape([3, 2])), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(x.reshape_infer(&[-1]).dims(), [6]);
    assert_eq!(tvals(&x.t()), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(tvals(&x.permute(&[1, 0])), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    // A transposed view reshaped must copy into the new order.
    assert_eq!(tvals(&x.t().reshape([6])), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(tvals(&x.narrow(1, 1, 2)), [2.0, 3.0, 5.0, 6.0]);
    assert_eq!(tvals(&x.narrow(0, 1, 1)), [4.0, 5.0, 6.0]);
    assert_eq!(tvals(&ten(&[1.0, 2.0], &[2, 1]).broadcast_to([2, 3])), [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    assert_eq!(tvals(&ten(&[7.0], &[]).broadcast_to([2])), [7.0, 7.0]);
    assert_eq!(x.unsqueeze(0).dims(), [1, 2, 3]);
    assert_eq!(x.unsqueeze(-1).dims(), [2, 3, 1]);
    assert_eq!(x.unsqueeze(1).squeeze(1).dims(), [2, 3]);
    assert_eq!(ten(&[1.0; 6], &[1, 2, 1, 3]).flatten(1, 3).dims(), [1, 6]);
    assert_eq!(ten(&[5.0], &[]).flatten(0, 0).dims(), [1]);
    let y = ten(&[7.0, 8.0, 9.0], &[1, 3]);
    assert_eq!(tvals(&Tensor::cat(&[&x, &y], 0)), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let z = ten(&[0.0, 0.0], &[2, 1]);
    assert_eq!(tvals(&Tensor::cat(&[&z, &x], 1)), [0.0, 1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0]);
    let (a, b) = (ten(&[1.0, 2.0], &[2]), ten(&[3.0, 4.0], &[2]));
    assert_eq!(tvals(&Tensor::stack(&[&a, &b], 0)), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(tvals(&Tensor::stack(&[&a, &b], 1)), [1.0, 3.0, 2.0, 4.0]);
    assert_eq!(Tensor::stack(&[&a, &b], -1).dims(), [2, 2]);
    let parts = x.split(&[1, 2], 1);
    assert_eq!(tvals(&parts[0]), [1.0, 4.0]);
    assert_eq!(tvals(&parts[1]), [2.0, 3.0, 5.0, 6.0]);
    // torch.chunk sizes: 5 in 3 -> [2, 2, 1]; 4 in 3 -> [2, 2]; 6 in 4 -> [2, 2, 2].
    let sizes = |n: usize, k: usize| -> Vec<usize> {
        ten(&vec![0.0; n], &[n]).chunk(k, 0).iter().map(|c| c.dims()[0]).collect()
    };
    assert_eq!(sizes(5, 3), [2, 2, 1]);
    assert_eq!(sizes(4, 3), [2, 2]);
    assert_eq!(sizes(6, 4), [2, 2, 2]);
    assert_eq!(sizes(2, 5), [1, 1]);
}

#[test]
fn view_gradients_hand_values() {
    // narrow puts the gradient back in place, zeros elsewhere.
    let x = Tensor::param(arr(&[1.0, 2.0, 3.0, 4.0], &[4]));
    x.narrow(0, 1, 2).mul_scalar(3.0).sum_all().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [0.0, 3.0, 3.0, 0.0]);
    // broadcast_to sums the gradient over the copies.
    let x = Tensor::param(arr(&[1.0, 2.0], &[2, 1]));
    x.broadcast_to([3, 2, 4]).sum_all().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), [12.0, 12.0]);
    // cat routes each part's gradient back to it.
    let (a, b) = (Tensor::param(arr(&[1.0], &[1])), Tensor::param(arr(&[2.0, 3.0], &[2])));
    Tensor::cat(&[&a, &b], 0).mul(&ten(&[10.0, 20.0, 30.0], &[3])).sum_all().backward().unwrap();
    assert_eq!(vals(&a.grad().unwrap()), [10.0]);
    assert_eq!(vals(&b.grad().unwrap()), [20.0, 30.0]);
}
