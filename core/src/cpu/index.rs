//! Indexing kernels: index_select / index_add along one axis, gather / scatter_add with an
//! index tensor of the output's shape. Indices are checked; a bad one is an error naming
//! the index and the size, never a wild read.

use super::strided::contiguous;
use crate::{Element, Error, Layout, Result};
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
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let s = (o * size + i as usize) * inner;
            out.extend_from_slice(&x[s..s + inner]);
        }
    }
    Ok(out)
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
    for o in 0..outer {
        for (k, &i) in idx.iter().enumerate() {
            let d = (o * size + i as usize) * inner;
            let s = (o * idx.len() + k) * inner;
            for (a, &b) in out[d..d + inner].iter_mut().zip(&src[s..s + inner]) {
                *a = *a + b;
            }
        }
    }
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
}
