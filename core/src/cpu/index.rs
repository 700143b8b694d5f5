//! Indexing kernels: index_select / index_add along one axis, gather / scatter_add with an
//! index tensor of the output's shape. Indices are checked; a bad one is an error naming
//! the index and the size, never a wild read.

use super::strided::{build_vec_grain, contiguous, PAR_GRAIN};
use crate::{Element, Error, Layout, Result};
use rayon::prelude::*;
use std::ops::Add;

fn check(op: &'static str, idx: &[i32], size: usize) -> Result<()> {
    match idx.iter().find(|&&i| i < 0 || i as usize >= size) {
        Some(&i) => Err(Error::IndexOutOfRange { op, index: i as i64, size }),
        None => Ok(()),
    }
}

/// (outer, size, inner) of a shape around `axis`.
fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}

pub(crate) fn index_select<T: Element>(x: &[T], l: &Layout, axis: usize, idx: &[i32]) -> Result<Vec<T>> {
    let (outer, size, inner) = split(l.dims(), axis);
    check("index_select", idx, size)?;
    let x = contiguous(x, l);
    let m = idx.len();
    if outer * m * inner == 0 {
        return Ok(Vec::new());
    }
    // Parallel over whole output rows; im2col (inner 1, rows of tens of thousands of picks)
    // is the big user, so that case copies element by element without per-element slicing.
    if inner == 1 {
        return Ok(build_vec_grain(outer * m, m.max(1), |start, chunk| {
            for (r, row) in chunk.chunks_mut(m).enumerate() {
                let src = &x[(start / m + r) * size..][..size];
                for (slot, &i) in row.iter_mut().zip(idx) {
                    slot.write(src[i as usize]);
                }
            }
        }));
    }
    Ok(build_vec_grain(outer * m * inner, inner, |start, chunk| {
        for (r, row) in chunk.chunks_mut(inner).enumerate() {
            let (o, k) = ((start / inner + r) / m, (start / inner + r) % m);
            let s = (o * size + idx[k] as usize) * inner;
            for (slot, &v) in row.iter_mut().zip(&x[s..s + inner]) {
                slot.write(v);
            }
        }
    }))
}

pub(crate) fn index_add<T: Element + Add<Output = T>>(
    base: &[T],
    lb: &Layout,
    axis: usize,
    idx: &[i32],
    src: &[T],
    ls: &Layout,
) -> Result<Vec<T>> {
    let (outer, size, inner) = split(lb.dims(), axis);
    check("index_add", idx, size)?;
    let mut out = contiguous(base, lb).into_owned();
    let src = contiguous(src, ls);
    let m = idx.len();
    if outer == 0 || size * inner == 0 || m * inner == 0 {
        return Ok(out);
    }
    // Each outer slice of the output takes only its own slice of `src`, so slices add in
    // parallel (the im2col backward); one slice (embedding backward) stays on this thread.
    let add_slice = |dst: &mut [T], src: &[T]| {
        for (k, &i) in idx.iter().enumerate() {
            let d = i as usize * inner;
            for (a, &b) in dst[d..d + inner].iter_mut().zip(&src[k * inner..(k + 1) * inner]) {
                *a = *a + b;
            }
        }
    };
    let slices = out.par_chunks_mut(size * inner).zip(src.par_chunks(m * inner));
    slices.with_min_len((PAR_GRAIN / (m * inner)).max(1)).for_each(|(d, s)| add_slice(d, s));
    Ok(out)
}

/// For each position of `idx` (contiguous, shape `dims`), the flat offset into a contiguous
/// tensor of shape `xdims` with the `axis` coordinate replaced by the index value.
fn gather_offsets(dims: &[usize], xdims: &[usize], axis: usize, idx: &[i32], op: &'static str) -> Result<Vec<usize>> {
    check(op, idx, xdims[axis])?;
    let xstrides = crate::Shape::from(xdims).contiguous_strides();
    let mut coord = vec![0usize; dims.len()];
    let mut out = Vec::with_capacity(idx.len());
    for &i in idx {
        let mut off = 0;
        for d in 0..dims.len() {
            off += if d == axis { i as usize } else { coord[d] } * xstrides[d];
        }
        out.push(off);
        for d in (0..dims.len()).rev() {
            coord[d] += 1;
            if coord[d] < dims[d] {
                break;
            }
            coord[d] = 0;
        }
    }
    Ok(out)
}

pub(crate) fn gather<T: Element>(x: &[T], l: &Layout, axis: usize, idx: &[i32], idx_dims: &[usize]) -> Result<Vec<T>> {
    let offs = gather_offsets(idx_dims, l.dims(), axis, idx, "gather")?;
    let x = contiguous(x, l);
    Ok(offs.iter().map(|&o| x[o]).collect())
}

pub(crate) fn scatter_add<T: Element + Add<Output = T>>(
    base: &[T],
    lb: &Layout,
    axis: usize,
    idx: &[i32],
    idx_dims: &[usize],
    src: &[T],
    ls: &Layout,
) -> Result<Vec<T>> {
    let offs = gather_offsets(idx_dims, lb.dims(), axis, idx, "scatter_add")?;
    let mut out = contiguous(base, lb).into_owned();
    let src = contiguous(src, ls);
    for (&o, &s) in offs.iter().zip(src.iter()) {
        out[o] = out[o] + s;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_add_along_axis() {
        let x: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let l = Layout::contiguous([3, 2]);
        assert_eq!(index_select(&x, &l, 0, &[2, 0, 2]).unwrap(), vec![4., 5., 0., 1., 4., 5.]);
        assert_eq!(index_select(&x, &l, 1, &[1]).unwrap(), vec![1., 3., 5.]);
        let e = index_select(&x, &l, 0, &[3]).unwrap_err();
        assert_eq!(e.to_string(), "index 3 out of range in index_select for a dimension of size 3");
        let src = vec![1.0f32; 4];
        let out = index_add(&[0.0; 6], &l, 0, &[1, 1], &src, &Layout::contiguous([2, 2])).unwrap();
        assert_eq!(out, vec![0., 0., 2., 2., 0., 0.]);
    }

    #[test]
    fn gather_and_scatter_are_adjoint() {
        let x: Vec<f64> = (0..6).map(|v| v as f64).collect();
        let l = Layout::contiguous([2, 3]);
        let idx = [2, 0, 1, 1];
        assert_eq!(gather(&x, &l, 1, &idx, &[2, 2]).unwrap(), vec![2., 0., 4., 4.]);
        let out = scatter_add(&[0.0; 6], &l, 1, &idx, &[2, 2], &[1., 1., 1., 1.], &Layout::contiguous([2, 2])).unwrap();
        assert_eq!(out, vec![1., 0., 1., 0., 2., 0.]);
    }

    /// Shapes big enough for the parallel paths (im2col-like rows with inner 1, and rows
    /// of several elements), with repeated indices, against plain loops.
    #[test]
    fn parallel_select_and_add_match_loops() {
        for (outer, size, inner, m) in [(37usize, 101usize, 1usize, 3001usize), (5, 40, 7, 5000), (1, 300, 64, 900)] {
            let x: Vec<f64> = (0..outer * size * inner).map(|v| (v % 1013) as f64).collect();
            let l = Layout::contiguous([outer, size, inner]);
            let idx: Vec<i32> = (0..m).map(|k| ((k * 7919) % size) as i32).collect();
            let mut want = Vec::new();
            for o in 0..outer {
                for &i in &idx {
                    want.extend_from_slice(&x[(o * size + i as usize) * inner..][..inner]);
                }
            }
            assert_eq!(index_select(&x, &l, 1, &idx).unwrap(), want, "select {outer}x{size}x{inner}, {m} picks");

            let src: Vec<f64> = (0..outer * m * inner).map(|v| (v % 7) as f64).collect();
            let mut sum = x.clone();
            for o in 0..outer {
                for (k, &i) in idx.iter().enumerate() {
                    for j in 0..inner {
                        sum[(o * size + i as usize) * inner + j] += src[(o * m + k) * inner + j];
                    }
                }
            }
            let got = index_add(&x, &l, 1, &idx, &src, &Layout::contiguous([outer, m, inner])).unwrap();
            assert_eq!(got, sum, "add {outer}x{size}x{inner}, {m} picks");
        }
        let l = Layout::contiguous([4, 3, 0]);
        assert_eq!(index_select(&[0.0f32; 0], &l, 1, &[1, 2]).unwrap(), Vec::<f32>::new());
    }
}
