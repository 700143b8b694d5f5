//! Fused row kernels (softmax, layer/RMS norm, cross-entropy) forward and backward,
//! along the last axis and along others (transposed rows), and the AdamW update.

use crate::common::{check_grads, ints, Pair};
use plies::autodiff::{Reduction, Tensor};
use plies::core::{AdamWStep, Array, CrossEntropyOpts, DType, Device, NormKind, Result};

pub fn softmax_rows(dev: Device) -> Result<()> {
    for (i, shape) in [vec![7], vec![3, 5], vec![2, 3, 300], vec![1, 1]].into_iter().enumerate() {
        let x = Pair::rand(shape.clone(), i as u64, -5.0, 5.0, dev)?;
        let last = shape.len() - 1;
        for log in [false, true] {
            x.map(|a| a.softmax(last, log))?.check(&format!("softmax {shape:?} log={log}"), 1e-5, 1e-6)?;
            x.map(|a| a.softmax(0, log))?.check(&format!("softmax axis 0 {shape:?} log={log}"), 1e-5, 1e-6)?;
        }
    }
    // Strided rows: a transposed matrix.
    let x = Pair::rand([9, 4], 9, -3.0, 3.0, dev)?.map(|a| a.t())?;
    x.map(|a| a.softmax(1, true))?.check("log_softmax of transposed", 1e-5, 1e-6)?;
    let x = Pair::rand([6, 11], 10, -3.0, 3.0, dev)?;
    check_grads("softmax", std::slice::from_ref(&x), 1e-4, 1e-5, |t| t[0].try_softmax(1))?;
    check_grads("log_softmax axis 0", &[x], 1e-4, 1e-5, |t| t[0].try_log_softmax(0))?;
    Ok(())
}

pub fn norms(dev: Device) -> Result<()> {
    let x = Pair::rand([5, 3, 37], 1, -2.0, 3.0, dev)?;
    let w = Pair::rand([37], 2, 0.5, 1.5, dev)?;
    let b = Pair::rand([37], 3, -0.5, 0.5, dev)?;
    for kind in [NormKind::Layer, NormKind::Rms] {
        let y = x.zip3(&w, &b, |x, w, b| {
            Ok(x.norm(kind, Some(w), if kind == NormKind::Layer { Some(b) } else { None }, 1e-5)?.y)
        })?;
        y.check(&format!("{kind:?} forward"), 1e-4, 1e-5)?;
        x.map(|x| Ok(x.norm(kind, None, None, 1e-5)?.rstd))?.check(&format!("{kind:?} rstd"), 1e-4, 1e-5)?;
    }
    check_grads("layer_norm", &[x.clone(), w.clone(), b.clone()], 1e-4, 1e-4, |t| {
        t[0].try_layer_norm(Some(&t[1]), Some(&t[2]), 1e-5)
    })?;
    check_grads("rms_norm", &[x.clone(), w.clone()], 1e-4, 1e-4, |t| t[0].try_rms_norm(Some(&t[1]), 1e-5))?;
    check_grads("layer_norm without affine", std::slice::from_ref(&x), 1e-4, 1e-4, |t| {
        t[0].try_layer_norm(None, None, 1e-5)
    })?;
    // Rows of a permuted view, and many rows (the column sums take several chunks).
    let xt = Pair::rand([37, 4], 4, -2.0, 2.0, dev)?.map(|a| a.t())?;
    check_grads("layer_norm of transposed", &[xt, w.clone(), b.clone()], 1e-4, 1e-4, |t| {
        t[0].try_layer_norm(Some(&t[1]), Some(&t[2]), 1e-5)
    })?;
    let tall = Pair::rand([300, 5], 5, -2.0, 2.0, dev)?;
    let w5 = Pair::rand([5], 6, 0.5, 1.5, dev)?;
    check_grads("rms_norm tall", &[tall, w5], 1e-4, 1e-4, |t| t[0].try_rms_norm(Some(&t[1]), 1e-6))?;
    Ok(())
}

pub fn cross_entropy(dev: Device) -> Result<()> {
    let (n, c) = (13, 7);
    let logits = Pair::rand([n, c], 1, -4.0, 4.0, dev)?;
    let mut t = ints(n, 2, c);
    t[3] = -100;
    t[8] = -100;
    let targets = Pair::ints(&t, [n], dev)?;
    for smoothing in [0.0, 0.1] {
        let opts = CrossEntropyOpts { ignore_index: -100, label_smoothing: smoothing };
        let per_row = Pair {
            dev: logits.dev.cross_entropy(&targets.dev, opts)?.0,
            cpu: logits.cpu.cross_entropy(&targets.cpu, opts)?.0,
        };
        per_row.check(&format!("per-row loss, smoothing {smoothing}"), 1e-5, 1e-5)?;
        for red in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            let (td, tc) = (Tensor::new(targets.dev.clone()), Tensor::new(targets.cpu.clone()));
            check_grads(
                &format!("cross_entropy {red:?} smoothing {smoothing}"),
                std::slice::from_ref(&logits),
                1e-4,
                1e-5,
                |x| {
                    let t = if x[0].device() == Device::Cpu { &tc } else { &td };
                    x[0].try_cross_entropy_with(t, opts, red)
                },
            )?;
        }
    }
    // Transposed logits ([c, n] stored) and a 3-d batch of sequences.
    let lt = Pair::rand([c, n], 3, -2.0, 2.0, dev)?.map(|a| a.t())?;
    let (td, tc) = (Tensor::new(targets.dev.clone()), Tensor::new(targets.cpu.clone()));
    check_grads("cross_entropy of transposed logits", &[lt], 1e-4, 1e-5, |x| {
        x[0].try_cross_entropy(if x[0].device() == Device::Cpu { &tc } else { &td })
    })?;
    Ok(())
}

pub fn adamw(dev: Device) -> Result<()> {
    let p = Pair::rand([5, 33], 1, -1.0, 1.0, dev)?;
    let g = Pair::rand([5, 33], 2, -1.0, 1.0, dev)?;
    let m = Pair::rand([5, 33], 3, -0.1, 0.1, dev)?;
    let v = Pair::rand([5, 33], 4, 0.0, 0.01, dev)?;
    for step in [1, 2, 10] {
        let hp = AdamWStep { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1, step };
        let run = |p: &Array, g: &Array, m: &Array, v: &Array| p.adamw(g, m, v, hp);
        let (dp, dm, dv) = run(&p.dev, &g.dev, &m.dev, &v.dev)?;
        let (cp, cm, cv) = run(&p.cpu, &g.cpu, &m.cpu, &v.cpu)?;
        Pair { dev: dp, cpu: cp }.check(&format!("adamw param step {step}"), 1e-5, 1e-6)?;
        Pair { dev: dm, cpu: cm }.check(&format!("adamw m step {step}"), 1e-5, 1e-7)?;
        Pair { dev: dv, cpu: cv }.check(&format!("adamw v step {step}"), 1e-5, 1e-8)?;
    }
    // Non-contiguous inputs are made dense first.
    let pt = p.map(|a| a.t())?;
    let gt = g.map(|a| a.t())?;
    let zeros = |a: &Array| Array::zeros(a.shape().clone(), a.dtype(), a.device());
    let hp = AdamWStep { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-6, weight_decay: 0.0, step: 1 };
    let d = pt.dev.adamw(&gt.dev, &zeros(&pt.dev)?, &zeros(&pt.dev)?, hp)?.0;
    let c = pt.cpu.adamw(&gt.cpu, &zeros(&pt.cpu)?, &zeros(&pt.cpu)?, hp)?.0;
    Pair { dev: d, cpu: c }.check("adamw transposed", 1e-5, 1e-6)?;
    assert_eq!(p.dev.dtype(), DType::F32);
    Ok(())
}

device_tests!(softmax_rows, norms, cross_entropy, adamw);
