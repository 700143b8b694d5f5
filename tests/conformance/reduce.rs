//! Reductions over every kind of axis set, arg-reductions, and the composites built on
//! them (mean, var).

use crate::common::{ints, Pair};
use plies::core::{AllAxes, Device, ReduceOp, Result};

pub fn sums_max_min(dev: Device) -> Result<()> {
    let x = Pair::rand([5, 3, 7, 2], 1, -2.0, 2.0, dev)?;
    let axes: [&[usize]; 7] = [&[0], &[1], &[3], &[0, 2], &[1, 3], &[0, 1, 2, 3], &[]];
    for ax in axes {
        for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
            x.map(|a| a.reduce(op, ax.to_vec(), true))?.check(&format!("{op:?} {ax:?}"), 1e-5, 1e-5)?;
            // The same through a permuted view.
            x.map(|a| a.permute(&[2, 0, 3, 1])?.reduce(op, ax.to_vec(), false))?.check(
                &format!("{op:?} {ax:?} permuted"),
                1e-5,
                1e-5,
            )?;
        }
    }
    // A broadcast (stride-0) input and a narrowed one.
    let b = Pair::rand([1, 9], 2, -1.0, 1.0, dev)?.map(|a| a.broadcast_to([6, 9]))?;
    b.map(|a| a.sum(0, false))?.check("sum of broadcast", 1e-5, 1e-6)?;
    x.map(|a| a.narrow(2, 1, 5)?.max([2], false))?.check("max of narrowed", 0.0, 0.0)?;
    // Mean and variance are composites of sum.
    x.map(|a| a.mean([1, 2], false))?.check("mean", 1e-5, 1e-6)?;
    x.map(|a| a.var([0], true, 1))?.check("var", 1e-4, 1e-5)?;
    Ok(())
}

pub fn long_and_wide(dev: Device) -> Result<()> {
    // A long row (split into chunks with a second pass on the GPU).
    let x = Pair::rand([100_003], 3, -1.0, 1.0, dev)?;
    x.map(|a| a.sum(AllAxes, false))?.check("long sum", 1e-4, 1e-3)?;
    x.map(|a| a.max(AllAxes, false))?.check("long max", 0.0, 0.0)?;
    // A few long rows, and a column reduction of a tall matrix.
    let y = Pair::rand([3, 20_001], 4, -1.0, 1.0, dev)?;
    y.map(|a| a.sum(1, false))?.check("rows sum", 1e-4, 1e-3)?;
    y.map(|a| a.t()?.min(0, false))?.check("transposed min", 0.0, 0.0)?;
    let z = Pair::rand([513, 17], 5, -1.0, 1.0, dev)?;
    z.map(|a| a.sum(0, false))?.check("column sum", 1e-5, 1e-4)?;
    // Integer columns (chunked partials, then a second pass).
    let ic = Pair::ints(&ints(300 * 7, 11, 1000), [300, 7], dev)?;
    ic.map(|a| a.sum(0, false))?.check_exact("i32 column sum")?;
    ic.map(|a| a.max(0, false))?.check_exact("i32 column max")?;
    // Very many short outputs.
    let w = Pair::rand([9000, 3], 6, -1.0, 1.0, dev)?;
    w.map(|a| a.sum(1, false))?.check("many outputs", 1e-5, 1e-6)?;
    // Empty reductions: the sum of nothing is 0.
    let e = Pair::rand([3, 0], 7, -1.0, 1.0, dev)?;
    e.map(|a| a.sum(1, false))?.check("empty sum", 0.0, 0.0)?;
    Ok(())
}

pub fn arg_reductions(dev: Device) -> Result<()> {
    // Values on a coarse grid so that ties occur: the first index wins.
    let v: Vec<f64> = crate::common::values(5 * 7 * 3, 8, -2.0, 2.0).iter().map(|v| v.round()).collect();
    let x = Pair::new(&v, [5, 7, 3], dev)?;
    for axis in 0..3 {
        x.map(|a| a.argmax(axis, false))?.check_exact(&format!("argmax {axis}"))?;
        x.map(|a| a.argmin(axis, true))?.check_exact(&format!("argmin {axis}"))?;
        x.map(|a| a.permute(&[1, 2, 0])?.argmax(axis, false))?.check_exact(&format!("argmax permuted {axis}"))?;
    }
    let long = Pair::rand([70_001], 9, -1.0, 1.0, dev)?;
    long.map(|a| a.argmax(0, false))?.check_exact("argmax long")?;
    // Integers.
    let i = Pair::ints(&ints(4 * 33, 10, 50), [4, 33], dev)?;
    i.map(|a| a.sum(1, false))?.check_exact("i32 sum")?;
    i.map(|a| a.max(0, false))?.check_exact("i32 max")?;
    i.map(|a| a.min(AllAxes, false))?.check_exact("i32 min")?;
    i.map(|a| a.argmax(1, false))?.check_exact("i32 argmax")?;
    Ok(())
}

device_tests!(sums_max_min, long_and_wide, arg_reductions);
