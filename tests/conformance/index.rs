//! index_select / embedding, index_add, gather, scatter_add with repeated indices and
//! strided operands, their gradients, and bad indices reported as errors.

use crate::common::{check_grads, ints, Pair};
use plies::autodiff::Tensor;
use plies::core::{Array, DType, Device, Result};

pub fn select_and_add(dev: Device) -> Result<()> {
    let x = Pair::rand([5, 7, 3], 1, -1.0, 1.0, dev)?;
    let idx = Pair::ints(&[4, 0, 4, 2, 1, 1], [6], dev)?;
    for axis in 0..3 {
        let size = x.cpu.dims()[axis] as i32;
        let ix = Pair::ints(&[0, size - 1, 0, 1 % size], [4], dev)?;
        x.zip(&ix, |x, i| x.index_select(axis, i))?.check(&format!("index_select axis {axis}"), 0.0, 0.0)?;
        let mut sdims = x.cpu.dims().to_vec();
        sdims[axis] = 4;
        let src = Pair::rand(sdims, 2 + axis as u64, -1.0, 1.0, dev)?;
        x.zip3(&ix, &src, |x, i, s| x.index_add(axis, i, s))?.check(&format!("index_add axis {axis}"), 1e-6, 1e-6)?;
    }
    // A permuted source and a strided index.
    let xp = x.map(|a| a.permute(&[2, 0, 1]))?;
    let is = Pair::ints(&[3, 9, 1, 9, 0, 9], [6], dev)?
        .map(|i| i.narrow(0, 0, 6)?.reshape([3, 2])?.narrow(1, 0, 1)?.reshape([3]))?;
    xp.zip(&is, |x, i| x.index_select(1, i))?.check("index_select strided", 0.0, 0.0)?;
    // Embedding rows and their gradient (index_add with repeats).
    let table = Pair::rand([6, 4], 3, -1.0, 1.0, dev)?;
    let (id, ic) = (Tensor::new(idx.dev.clone()), Tensor::new(idx.cpu.clone()));
    check_grads("embedding", &[table], 1e-5, 1e-6, |t| {
        t[0].try_embedding(if t[0].device() == Device::Cpu { &ic } else { &id })
    })?;
    // i32 data.
    let xi = Pair::ints(&ints(35, 4, 100), [5, 7], dev)?;
    let ii = Pair::ints(&[6, 6, 0], [3], dev)?;
    xi.zip(&ii, |x, i| x.index_select(1, i))?.check_exact("index_select i32")?;
    let srci = Pair::ints(&ints(15, 5, 10), [5, 3], dev)?;
    xi.zip3(&ii, &srci, |x, i, s| x.index_add(1, i, s))?.check_exact("index_add i32")?;
    Ok(())
}

pub fn gather_scatter(dev: Device) -> Result<()> {
    let x = Pair::rand([4, 6, 3], 1, -1.0, 1.0, dev)?;
    for axis in 0..3 {
        let size = x.cpu.dims()[axis];
        let mut idims = vec![3, 5, 2];
        idims[axis] = 5;
        let n: usize = idims.iter().product();
        let idx = Pair::ints(&ints(n, 10 + axis as u64, size), idims.clone(), dev)?;
        x.zip(&idx, |x, i| x.gather(axis, i))?.check(&format!("gather axis {axis}"), 0.0, 0.0)?;
        let src = Pair::rand(idims, 20 + axis as u64, -1.0, 1.0, dev)?;
        x.zip3(&idx, &src, |x, i, s| x.scatter_add(axis, i, s))?.check(
            &format!("scatter_add axis {axis}"),
            1e-6,
            1e-6,
        )?;
        let (id, ic) = (Tensor::new(idx.dev.clone()), Tensor::new(idx.cpu.clone()));
        check_grads(&format!("gather grad axis {axis}"), std::slice::from_ref(&x), 1e-5, 1e-6, |t| {
            t[0].try_gather(axis, if t[0].device() == Device::Cpu { &ic } else { &id })
        })?;
    }
    // Index and source as transposed views.
    let idx = Pair::ints(&ints(12, 30, 4), [3, 4], dev)?.map(|i| i.t())?; // [4, 3]
    let src = Pair::rand([3, 4], 31, -1.0, 1.0, dev)?.map(|s| s.t())?;
    let base = Pair::rand([4, 3], 32, -1.0, 1.0, dev)?;
    // An index computed on the device (through f32 and back), then narrowed.
    base.zip(&idx, |b, i| {
        b.gather(1, &i.to_dtype(DType::F32)?.mul_scalar(0.5)?.to_dtype(DType::I32)?.narrow(1, 0, 3)?)
    })?
    .check("gather with computed index", 0.0, 0.0)?;
    let idx1 = idx.map(|i| i.t()?.narrow(0, 0, 3)?.t())?; // [4, 3] values in 0..4, fine for axis 0
    base.zip3(&idx1, &src, |b, i, s| b.scatter_add(0, i, s))?.check("scatter_add strided", 1e-6, 1e-6)?;
    Ok(())
}

pub fn bad_indices(dev: Device) -> Result<()> {
    let x = Array::zeros([3, 2], DType::F32, dev)?;
    let bad = Array::from_slice(&[0i32, 3], [2], dev)?;
    let msg = |r: Result<Array>| -> String {
        match r.and_then(|a| a.to_vec::<f32>().map(|_| a)) {
            Ok(_) => "no error".into(),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(msg(x.index_select(0, &bad)), "index 3 out of range in index_select for a dimension of size 3");
    let neg = Array::from_slice(&[-1i32, 0, 1, 0], [2, 2], dev)?;
    assert_eq!(msg(x.gather(0, &neg)), "index -1 out of range in gather for a dimension of size 3");
    // The backend keeps working after an error.
    let ok = Array::from_slice(&[2i32], [1], dev)?;
    assert_eq!(x.index_select(0, &ok)?.to_vec::<f32>()?, vec![0.0, 0.0]);
    let logits = Array::zeros([2, 4], DType::F32, dev)?;
    let t = Array::from_slice(&[1i32, 4], [2], dev)?;
    let e = logits.cross_entropy(&t, Default::default()).and_then(|(l, _)| l.to_vec::<f32>()).unwrap_err();
    assert_eq!(e.to_string(), "index 4 out of range in cross_entropy for a dimension of size 4");
    Ok(())
}

device_tests!(select_and_add, gather_scatter, bad_indices);
