//! Matmul on odd sizes (no multiple of any tile), transposed operands read in place,
//! broadcast batch dims, vectors, and empty inner dims.

use crate::common::Pair;
use plies::core::{Device, Result};

pub fn matmul_shapes(dev: Device) -> Result<()> {
    for (i, &(m, k, n)) in
        [(1, 1, 1), (3, 5, 7), (33, 17, 65), (130, 31, 129), (7, 260, 3), (1, 64, 200)].iter().enumerate()
    {
        let a = Pair::rand([m, k], 10 + i as u64, -1.0, 1.0, dev)?;
        let b = Pair::rand([k, n], 20 + i as u64, -1.0, 1.0, dev)?;
        let tol = 2e-6 * k as f64;
        a.zip(&b, |a, b| a.matmul(b))?.check(&format!("matmul {m}x{k}x{n}"), 1e-5, tol)?;
        // Transposed operands: stored [k, m] and [n, k].
        let at = Pair::rand([k, m], 30 + i as u64, -1.0, 1.0, dev)?.map(|a| a.t())?;
        let bt = Pair::rand([n, k], 40 + i as u64, -1.0, 1.0, dev)?.map(|b| b.t())?;
        at.zip(&b, |a, b| a.matmul(b))?.check(&format!("matmul A^T {m}x{k}x{n}"), 1e-5, tol)?;
        a.zip(&bt, |a, b| a.matmul(b))?.check(&format!("matmul B^T {m}x{k}x{n}"), 1e-5, tol)?;
        at.zip(&bt, |a, b| a.matmul(b))?.check(&format!("matmul A^T B^T {m}x{k}x{n}"), 1e-5, tol)?;
    }
    Ok(())
}

pub fn matmul_batched(dev: Device) -> Result<()> {
    // [2, 3, m, k] x [3, k, n]: the rhs batch is broadcast (stride 0 over the first dim).
    let a = Pair::rand([2, 3, 9, 11], 1, -1.0, 1.0, dev)?;
    let b = Pair::rand([3, 11, 5], 2, -1.0, 1.0, dev)?;
    a.zip(&b, |a, b| a.matmul(b))?.check("batched broadcast", 1e-5, 1e-5)?;
    // Attention-like: permuted batch and matrix dims.
    let q = Pair::rand([2, 7, 3, 5], 3, -1.0, 1.0, dev)?.map(|q| q.permute(&[0, 2, 1, 3]))?; // [2, 3, 7, 5]
    let kt = Pair::rand([2, 7, 3, 5], 4, -1.0, 1.0, dev)?.map(|k| k.permute(&[0, 2, 3, 1]))?; // [2, 3, 5, 7]
    q.zip(&kt, |q, k| q.matmul(k))?.check("q k^T", 1e-5, 1e-5)?;
    // Size-1 batch and matrix dims, vectors, and k = 0.
    let x = Pair::rand([1, 1, 6], 5, -1.0, 1.0, dev)?;
    let w = Pair::rand([4, 6, 1], 6, -1.0, 1.0, dev)?;
    x.zip(&w, |x, w| x.matmul(w))?.check("size-1 dims", 1e-5, 1e-6)?;
    let v = Pair::rand([6], 7, -1.0, 1.0, dev)?;
    let mtx = Pair::rand([6, 3], 8, -1.0, 1.0, dev)?;
    v.zip(&mtx, |v, m| v.matmul(m))?.check("vector x matrix", 1e-5, 1e-6)?;
    mtx.map(|m| m.t())?.zip(&v, |m, v| m.matmul(v))?.check("matrix x vector", 1e-5, 1e-6)?;
    let e1 = Pair::rand([3, 0], 9, -1.0, 1.0, dev)?;
    let e2 = Pair::rand([0, 4], 10, -1.0, 1.0, dev)?;
    e1.zip(&e2, |a, b| a.matmul(b))?.check("k = 0", 0.0, 0.0)?;
    Ok(())
}

device_tests!(matmul_shapes, matmul_batched);
