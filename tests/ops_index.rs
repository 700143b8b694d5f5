//! Indexing: gather, index_select, embedding and their adjoints scatter_add, index_add, with
//! strided (also broadcast) value and index inputs. Gradients against finite differences;
//! forwards against loops over the index.

mod common;

use common::*;
use plies::autodiff::{DType, Tensor};
use proptest::collection::vec;
use proptest::prelude::*;

/// Maps a base value in [-1, 1] to an index in `0..size`.
fn to_index(u: f64, size: usize) -> f64 {
    (((u + 1.0) / 2.0 * size as f64).floor() as usize).min(size - 1) as f64
}

/// A value source of rank 1..=4, an axis, and an index source whose dims are at most the
/// value's (the axis itself any size), holding indices into the axis.
fn gather_case() -> BoxedStrategy<(Source, usize, Source)> {
    shape(1..=4)
        .prop_flat_map(|d| {
            let r = d.len();
            (Just(d.clone()), 0..r, d.iter().map(|&x| 1..=x).collect::<Vec<_>>(), 1..=5usize)
        })
        .prop_flat_map(|(d, axis, mut idims, along)| {
            idims[axis] = along;
            let size = d[axis];
            (source(d, true), Just(axis), source(idims, true).prop_map(move |s| s.map(|u| to_index(u, size))))
        })
        .boxed()
}

/// A value source, an axis, and a 1-d index source into that axis.
fn select_case() -> BoxedStrategy<(Source, usize, Source)> {
    shape(1..=4)
        .prop_flat_map(|d| {
            let r = d.len();
            (Just(d), 0..r, 1..=6usize)
        })
        .prop_flat_map(|(d, axis, len)| {
            let size = d[axis];
            (source(d, true), Just(axis), source(vec![len], true).prop_map(move |s| s.map(|u| to_index(u, size))))
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gather((x, axis, ix) in gather_case()) {
        let i = ix.values();
        let xv = x.values();
        let want: Vec<f64> = (0..count(&ix.dims))
            .map(|p| {
                let mut idx = unravel(p, &ix.dims);
                idx[axis] = i[p] as usize;
                xv[ravel(&idx, &x.dims)]
            })
            .collect();
        let y = Tensor::new(x.array()).gather(axis, &Tensor::new(ix.array_as(DType::I32)));
        assert_eq!(y.dims(), ix.dims);
        assert_eq!(tvals(&y), want);
        gradcheck("gather", |t| t[0].try_gather(axis, &t[1]), &[x.array(), ix.array_as(DType::I32)]);
    }

    #[test]
    fn scatter_add((base, axis, ix) in gather_case(), seed in any::<u64>()) {
        // The source has the index's shape; build it from the index source's own layout.
        let src = Source { base: ix.base.iter().enumerate().map(|(k, _)| ((k as u64 ^ seed) % 17) as f64 / 8.0 - 1.0).collect(), ..ix.clone() };
        let i = ix.values();
        let mut want = base.values();
        for (p, &s) in src.values().iter().enumerate() {
            let mut idx = unravel(p, &ix.dims);
            idx[axis] = i[p] as usize;
            want[ravel(&idx, &base.dims)] += s;
        }
        let y = Tensor::new(base.array()).scatter_add(axis, &Tensor::new(ix.array_as(DType::I32)), &Tensor::new(src.array()));
        assert_eq!(y.dims(), base.dims);
        assert_close(&tvals(&y), &want, 1e-15);
        gradcheck(
            "scatter_add",
            |t| t[0].try_scatter_add(axis, &t[1], &t[2]),
            &[base.array(), ix.array_as(DType::I32), src.array()],
        );
    }

    #[test]
    fn index_select((x, axis, ix) in select_case()) {
        let i = ix.values();
        let mut out = x.dims.clone();
        out[axis] = i.len();
        let xv = x.values();
        let want: Vec<f64> = (0..count(&out))
            .map(|p| {
                let mut idx = unravel(p, &out);
                idx[axis] = i[idx[axis]] as usize;
                xv[ravel(&idx, &x.dims)]
            })
            .collect();
        let y = Tensor::new(x.array()).index_select(axis, &Tensor::new(ix.array_as(DType::I32)));
        assert_eq!(y.dims(), out);
        assert_eq!(tvals(&y), want);
        gradcheck("index_select", |t| t[0].try_index_select(axis, &t[1]), &[x.array(), ix.array_as(DType::I32)]);
    }

    #[test]
    fn index_add(
        (base, axis, ix, src) in select_case().prop_flat_map(|(b, axis, ix)| {
            let mut sd = b.dims.clone();
            sd[axis] = ix.dims[0];
            (Just(b), Just(axis), Just(ix), source(sd, true))
        })
    ) {
        let i = ix.values();
        let mut want = base.values();
        for (p, &s) in src.values().iter().enumerate() {
            let mut idx = unravel(p, &src.dims);
            idx[axis] = i[idx[axis]] as usize;
            want[ravel(&idx, &base.dims)] += s;
        }
        let y = Tensor::new(base.array()).index_add(axis, &Tensor::new(ix.array_as(DType::I32)), &Tensor::new(src.array()));
        assert_eq!(y.dims(), base.dims);
        assert_close(&tvals(&y), &want, 1e-15);
        gradcheck(
            "index_add",
            |t| t[0].try_index_add(axis, &t[1], &t[2]),
            &[base.array(), ix.array_as(DType::I32), src.array()],
        );
    }

    #[test]
    fn embedding(
        (table, ids) in (dim(), dim(), shape(0..=2)).prop_flat_map(|(v, d, ids)| {
            (source(vec![v, d], true), source(ids, true).prop_map(move |s| s.map(|u| to_index(u, v))))
        })
    ) {
        let d = table.dims[1];
        let tv = table.values();
        let want: Vec<f64> = ids.values().iter().flat_map(|&i| tv[i as usize * d..(i as usize + 1) * d].to_vec()).collect();
        let y = Tensor::new(table.array()).embedding(&Tensor::new(ids.array_as(DType::I32)));
        assert_eq!(y.dims(), [ids.dims.clone(), vec![d]].concat());
        assert_eq!(tvals(&y), want);
        gradcheck("embedding", |t| t[0].try_embedding(&t[1]), &[table.array(), ids.array_as(DType::I32)]);
    }

    /// Indices out of range are errors naming the index and the size, never reads.
    #[test]
    fn bad_indices_are_errors(size in 1..=5usize, bad in prop_oneof![Just(-1i32), Just(-100), 0..3i32], pos in vec(0..5usize, 1)) {
        let bad = if bad >= 0 { size as i32 + bad } else { bad };
        let x = ten(&vec![1.0; size * 2], &[size, 2]);
        let mut ids = vec![0i32; 5];
        ids[pos[0]] = bad;
        let i = iten(&ids, &[5]);
        let msg = format!("index {bad} out of range in index_select for a dimension of size {size}");
        assert_eq!(err(x.try_index_select(0, &i)), msg);
        assert_eq!(err(x.try_embedding(&i)), msg);
        let msg = format!("index {bad} out of range in index_add for a dimension of size {size}");
        assert_eq!(err(x.try_index_add(0, &i, &ten(&[1.0; 10], &[5, 2]))), msg);
        let g = iten(&ids, &[5, 1]);
        let msg = format!("index {bad} out of range in gather for a dimension of size {size}");
        assert_eq!(err(ten(&vec![1.0; size * 5], &[size, 5]).t().try_gather(1, &g.t())), msg);
        let msg = format!("index {bad} out of range in scatter_add for a dimension of size {size}");
        let base = ten(&vec![1.0; size * 5], &[size, 5]);
        assert_eq!(err(base.try_scatter_add(0, &g.t(), &ten(&[1.0; 5], &[1, 5]))), msg);
    }
}

#[test]
fn indexing_hand_values() {
    let x = ten(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]);
    assert_eq!(tvals(&x.index_select(0, &iten(&[2, 0, 2], &[3]))), [5.0, 6.0, 1.0, 2.0, 5.0, 6.0]);
    assert_eq!(tvals(&x.index_select(1, &iten(&[1], &[1]))), [2.0, 4.0, 6.0]);
    let e = x.embedding(&iten(&[1, 1, 0, 2], &[2, 2]));
    assert_eq!(e.dims(), [2, 2, 2]);
    assert_eq!(tvals(&e), [3.0, 4.0, 3.0, 4.0, 1.0, 2.0, 5.0, 6.0]);
    // gather along 1: out[i][j] = x[i][idx[i][j]].
    let g = x.gather(1, &iten(&[1, 0, 0, 0, 1, 1], &[3, 2]));
    assert_eq!(tvals(&g), [2.0, 1.0, 3.0, 3.0, 6.0, 6.0]);
    let g0 = x.gather(0, &iten(&[2, 0], &[1, 2]));
    assert_eq!(tvals(&g0), [5.0, 2.0]);
    // Adjoints: repeated indices accumulate.
    let z = ten(&[0.0; 6], &[3, 2]);
    let s = z.scatter_add(1, &iten(&[1, 1, 0, 0, 0, 1], &[3, 2]), &ten(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]));
    assert_eq!(tvals(&s), [0.0, 3.0, 7.0, 0.0, 5.0, 6.0]);
    let a = z.index_add(0, &iten(&[2, 2], &[2]), &ten(&[1.0, 2.0, 10.0, 20.0], &[2, 2]));
    assert_eq!(tvals(&a), [0.0, 0.0, 0.0, 0.0, 11.0, 22.0]);
    // The gradient of a repeated row sums its uses.
    let table = Tensor::param(arr(&[1.0, 2.0, 3.0, 4.0], &[2, 2]));
    table.embedding(&iten(&[1, 1, 1], &[3])).sum_all().backward().unwrap();
    assert_eq!(vals(&table.grad().unwrap()), [0.0, 0.0, 3.0, 3.0]);
}
