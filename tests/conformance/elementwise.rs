//! Unary ops and their derivatives, binary ops with broadcasting, comparisons, `where`,
//! copies, casts, fills and transfers.

use crate::common::{ints, values, Pair};
use plies::core::{Array, BinaryOp, DType, Device, Result, Shape, UnaryOp, UNARY_OPS};

/// Each unary op with the input range where it is defined and smooth enough to compare.
/// Every op of core's table on its test domain, plus an integer power of negative bases.
fn unary_cases() -> Vec<(UnaryOp, f64, f64)> {
    let mut cases: Vec<_> = UNARY_OPS.iter().map(|u| (u.example, u.domain.0, u.domain.1)).collect();
    cases.push((UnaryOp::Powf(3.0), -2.0, 2.0));
    cases
}

pub fn unary_ops(dev: Device) -> Result<()> {
    for (k, (op, lo, hi)) in unary_cases().into_iter().enumerate() {
        // A transposed, narrowed view of an odd-sized block.
        let x = Pair::rand([9, 13], 100 + k as u64, lo, hi, dev)?.map(|a| a.t()?.narrow(0, 2, 9))?;
        let g = Pair::rand([9, 9], 200 + k as u64, -1.0, 1.0, dev)?;
        x.map(|a| a.unary(op))?.check(&format!("{op:?}"), 2e-5, 2e-6)?;
        x.zip(&g, |a, g| a.unary_grad(op, g))?.check(&format!("{op:?} grad"), 5e-5, 5e-6)?;
    }
    // Broadcast input (stride 0) and a scalar.
    let b = Pair::rand([7], 300, -2.0, 2.0, dev)?.map(|a| a.broadcast_to([3, 7]))?;
    b.map(|a| a.tanh())?.check("tanh of broadcast", 2e-5, 2e-6)?;
    Pair::rand(Shape::scalar(), 301, 0.5, 1.0, dev)?.map(|a| a.log())?.check("log of scalar", 2e-5, 2e-6)?;
    // Integer neg/abs.
    let i = Pair::ints(&[3, -4, 0, i32::MIN, 7], [5], dev)?;
    i.map(|a| a.neg())?.check_exact("i32 neg")?;
    i.map(|a| a.abs())?.check_exact("i32 abs")?;
    Ok(())
}

pub fn binary_broadcast(dev: Device) -> Result<()> {
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
    ];
    let shapes: [(&[usize], &[usize]); 4] =
        [(&[3, 1, 5], &[4, 5]), (&[1], &[7]), (&[2, 3, 1], &[1, 1, 9]), (&[33], &[33])];
    for (s, (sa, sb)) in shapes.iter().enumerate() {
        for (k, &op) in ops.iter().enumerate() {
            let seed = (s * 100 + k) as u64;
            // Values on a coarse grid so that comparisons see ties.
            let grid = |n: usize, sd: u64| {
                values(n, sd, -3.0, 3.0).iter().map(|v| (v * 2.0).round() / 2.0 + 0.25).collect::<Vec<_>>()
            };
            let a = Pair::new(&grid(sa.iter().product(), seed), *sa, dev)?;
            let b = Pair::new(&grid(sb.iter().product(), seed + 50), *sb, dev)?;
            let out = a.zip(&b, |a, b| a.binary(op, b))?;
            if op.is_comparison() {
                out.check_exact(&format!("{op:?} {sa:?} {sb:?}"))?;
            } else {
                out.check(&format!("{op:?} {sa:?} {sb:?}"), 1e-6, 1e-7)?;
            }
        }
    }
    // pow with a positive base, and with negative bases and integer exponents.
    let a = Pair::rand([5, 7], 900, 0.2, 3.0, dev)?;
    let e = Pair::rand([7], 901, -2.0, 2.5, dev)?;
    a.zip(&e, |a, e| a.pow(e))?.check("pow", 2e-5, 1e-6)?;
    let a = Pair::new(&[-2.0, -1.5, 3.0, -0.5], [4], dev)?;
    let e = Pair::new(&[3.0, 2.0, -1.0, 5.0], [4], dev)?;
    a.zip(&e, |a, e| a.pow(e))?.check("pow of negative bases", 2e-5, 1e-6)?;
    // A transposed lhs against a row-broadcast rhs.
    let a = Pair::rand([6, 5], 902, -1.0, 1.0, dev)?.map(|a| a.t())?;
    let b = Pair::rand([6], 903, -1.0, 1.0, dev)?;
    a.zip(&b, |a, b| a.mul(b))?.check("transposed * row", 1e-6, 1e-7)?;
    // Integers: wrapping arithmetic, division toward zero (and by zero = 0), max, pow.
    let ia: Vec<i32> = vec![7, -7, 5, i32::MAX, 0, 3, -2, 9];
    let ib: Vec<i32> = vec![2, 2, 0, 1, -3, 4, 3, -1];
    for op in
        [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Lt]
    {
        let a = Pair::ints(&ia, [8], dev)?;
        let b = Pair::ints(&ib, [8], dev)?;
        a.zip(&b, |a, b| a.binary(op, b))?.check_exact(&format!("i32 {op:?}"))?;
    }
    Ok(())
}

pub fn where_and_masks(dev: Device) -> Result<()> {
    let x = Pair::rand([4, 1, 7], 10, -1.0, 1.0, dev)?;
    let y = Pair::rand([3, 7], 11, -1.0, 1.0, dev)?;
    let c = Pair::rand([4, 3, 1], 12, -1.0, 1.0, dev)?.map(|a| a.cmp_scalar(BinaryOp::Gt, 0.0))?;
    c.zip3(&x, &y, Array::where_cond)?.check("where f32 cond", 0.0, 0.0)?;
    // An i32 condition selecting i32 values.
    let ci = Pair::ints(&ints(21, 13, 2), [3, 7], dev)?;
    let a = Pair::ints(&ints(21, 14, 100), [3, 7], dev)?;
    let b = Pair::ints(&ints(7, 15, 100), [7], dev)?;
    ci.zip3(&a, &b, Array::where_cond)?.check_exact("where i32")?;
    // -0.0 counts as false.
    let c = Pair::new(&[-0.0, 0.0, 1.0, -2.0], [4], dev)?;
    let t = Pair::new(&[1.0; 4], [4], dev)?;
    let f = Pair::new(&[0.0; 4], [4], dev)?;
    c.zip3(&t, &f, Array::where_cond)?.check_exact("where with -0.0")?;
    x.map(|a| a.masked_fill(&a.cmp_scalar(BinaryOp::Lt, 0.0)?, 9.0))?.check("masked_fill", 0.0, 0.0)?;
    Ok(())
}

pub fn copies_casts_fills(dev: Device) -> Result<()> {
    let x = Pair::rand([2, 3, 5, 7], 20, -4.0, 4.0, dev)?;
    x.map(|a| a.permute(&[3, 1, 0, 2])?.contiguous())?.check("permuted copy", 0.0, 0.0)?;
    x.map(|a| a.narrow(2, 1, 3)?.narrow(3, 2, 4)?.contiguous())?.check("narrowed copy", 0.0, 0.0)?;
    x.map(|a| a.permute(&[3, 1, 0, 2])?.reshape([21, 10]))?.check("reshape of a permuted view", 0.0, 0.0)?;
    // Casts truncate toward zero, both ways.
    let v = Pair::new(&[-2.7, -0.5, 0.0, 0.5, 3.99, 1e9, -7.0], [7], dev)?;
    let vi = v.map(|a| a.to_dtype(DType::I32))?;
    vi.check_exact("f32 -> i32")?;
    vi.map(|a| a.to_dtype(DType::F32))?.check_exact("i32 -> f32")?;
    let p = x.map(|a| a.t()?.to_dtype(DType::I32))?;
    p.check_exact("strided cast")?;
    // Fills.
    for (shape, v) in [(vec![], 2.5), (vec![0], 1.0), (vec![13, 3], -1.25)] {
        let a = Array::full(shape.clone(), v, DType::F32, dev)?;
        assert_eq!(a.to_vec::<f32>()?, vec![v as f32; a.elem_count()]);
        let i = Array::full(shape, v, DType::I32, dev)?;
        assert_eq!(i.to_vec::<i32>()?, vec![v as i32; i.elem_count()]);
    }
    // cat / stack write into strided destinations (copy_into).
    let a = Pair::rand([3, 4], 21, -1.0, 1.0, dev)?;
    let b = Pair::rand([3, 2], 22, -1.0, 1.0, dev)?.map(|a| a.t()?.t())?;
    let c = Pair::rand([4, 3], 23, -1.0, 1.0, dev)?.map(|a| a.t())?;
    let cat = Pair { dev: Array::cat(&[&a.dev, &b.dev, &c.dev], 1)?, cpu: Array::cat(&[&a.cpu, &b.cpu, &c.cpu], 1)? };
    cat.check("cat", 0.0, 0.0)?;
    let st = Pair { dev: Array::stack(&[&a.dev, &a.dev], 0)?, cpu: Array::stack(&[&a.cpu, &a.cpu], 0)? };
    st.check("stack", 0.0, 0.0)?;
    Ok(())
}

pub fn transfers(dev: Device) -> Result<()> {
    // Round trips are exact, for empty, tiny, odd and multi-chunk sizes, f32 and i32.
    for n in [0usize, 1, 1023, 3 << 20] {
        let v: Vec<f32> = (0..n).map(|i| (i as f32) * 0.5 - 7.0).collect();
        let a = Array::from_slice(&v, [n], dev)?;
        assert_eq!(a.to_vec::<f32>()?, v, "f32 round trip of {n}");
        let w: Vec<i32> = (0..n as i32).map(|i| i.wrapping_mul(7919)).collect();
        let b = Array::from_slice(&w, [n], dev)?;
        assert_eq!(b.to_vec::<i32>()?, w, "i32 round trip of {n}");
    }
    // Reading back a strided view copies it on the device first.
    let v: Vec<f32> = (0..60).map(|i| i as f32).collect();
    let a = Array::from_slice(&v, [3, 4, 5], dev)?.permute(&[2, 0, 1])?.narrow(0, 1, 3)?;
    let want = Array::from_slice(&v, [3, 4, 5], Device::Cpu)?.permute(&[2, 0, 1])?.narrow(0, 1, 3)?;
    assert_eq!(a.to_vec::<f32>()?, want.to_vec::<f32>()?);
    Ok(())
}

device_tests!(unary_ops, binary_broadcast, where_and_masks, copies_casts_fills, transfers);
