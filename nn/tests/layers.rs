//! Forward values of the layers against direct loop implementations of their definitions.

use plies_autodiff::rng::Rng;
use plies_autodiff::{no_grad, Array, DType, Device, Distribution, Tensor};
use plies_nn::layers::*;
use plies_nn::{Init, Layer, Module};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let key = Rng::new(seed).next_key();
    Tensor::new(
        Array::random(shape, Distribution::Normal { mean: 0.0, std: 1.0 }, key, DType::F64, Device::Cpu).unwrap(),
    )
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "element {i}: {x} vs {y}");
    }
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_vec::<f64>()
}

#[test]
fn linear_is_x_wt_plus_b() {
    let l = Linear::new(&mut Init::new(1).with_dtype(DType::F64), 3, 2, true);
    let x = randn(&[4, 3], 2);
    let (w, b, xv) = (f64s(&l.weight), f64s(l.bias.as_ref().unwrap()), f64s(&x));
    let mut want = vec![0.0; 8];
    for r in 0..4 {
        for o in 0..2 {
            want[r * 2 + o] = b[o] + (0..3).map(|i| xv[r * 3 + i] * w[o * 3 + i]).sum::<f64>();
        }
    }
    close(&f64s(&l.forward(&x)), &want, 1e-12);
    // Same rows through a [2, 2, 3] input.
    close(&f64s(&l.forward(&x.reshape([2, 2, 3]))), &want, 1e-12);
    let e = l.try_forward(&randn(&[4, 5], 3)).unwrap_err().to_string();
    assert_eq!(e, "shape mismatch in linear: lhs [4, 5], rhs [2, 3]");
}

/// softmax(q k^T / sqrt(hd) + causal mask) v per head, with q, k, v from the qkv rows.
fn attention_reference(a: &CausalSelfAttention, x: &[f64], b: usize, t: usize, d: usize) -> Vec<f64> {
    let h = a.n_head;
    let hd = d / h;
    let (wq, bq) = (f64s(&a.qkv.weight), f64s(a.qkv.bias.as_ref().unwrap()));
    let (wp, bp) = (f64s(&a.proj.weight), f64s(a.proj.bias.as_ref().unwrap()));
    let lin = |w: &[f64], bias: &[f64], row: &[f64], out: usize| -> Vec<f64> {
        (0..out).map(|o| bias[o] + (0..row.len()).map(|i| row[i] * w[o * row.len() + i]).sum::<f64>()).collect()
    };
    let mut out = vec![0.0; b * t * d];
    for bi in 0..b {
        let qkv: Vec<Vec<f64>> = (0..t).map(|ti| lin(&wq, &bq, &x[(bi * t + ti) * d..][..d], 3 * d)).collect();
        let mut y = vec![vec![0.0; d]; t];
        for hi in 0..h {
            for i in 0..t {
                let q = &qkv[i][hi * hd..][..hd];
                let s: Vec<f64> = (0..=i)
                    .map(|j| {
                        q.iter().zip(&qkv[j][d + hi * hd..][..hd]).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                for (j, sj) in s.iter().enumerate() {
                    let p = (sj - m).exp() / z;
                    for c in 0..hd {
                        y[i][hi * hd + c] += p * qkv[j][2 * d + hi * hd + c];
                    }
                }
            }
        }
        for ti in 0..t {
            out[(bi * t + ti) * d..][..d].copy_from_slice(&lin(&wp, &bp, &y[ti], d));
        }
    }
    out
}

#[test]
fn attention_matches_the_definition_and_is_causal() {
    let mut init = Init::new(2).with_dtype(DType::F64);
    let a = CausalSelfAttention::new(&mut init, 6, 3, 0.0, 1.0);
    a.qkv.bias.as_ref().unwrap().set_value(randn(&[18], 4).value()).unwrap();
    a.proj.bias.as_ref().unwrap().set_value(randn(&[6], 5).value()).unwrap();
    let x = randn(&[2, 4, 6], 6);
    let y = a.forward(&x);
    close(&f64s(&y), &attention_reference(&a, &f64s(&x), 2, 4, 6), 1e-10);
    // An acting adapter switches to the unsplit qkv path; one that returns the base output
    // must not change the result.
    struct Same;
    impl Module for Same {
        fn visit(&self, _: &mut plies_nn::Scope<'_>) {}
    }
    impl LinearAdapter for Same {
        fn try_forward(&self, layer: &Linear, x: &Tensor) -> plies_autodiff::Result<Tensor> {
            layer.try_base(x, true)
        }
    }
    a.qkv.set_adapter(Some(std::sync::Arc::new(Same)));
    close(&f64s(&a.forward(&x)), &f64s(&y), 1e-12);
    a.qkv.set_adapter(None);
    // Changing the last position leaves earlier outputs unchanged.
    let mut xv = f64s(&x);
    xv[3 * 6] += 1.0;
    let y2 = a.forward(&Tensor::from_vec(xv, [2, 4, 6], Device::Cpu));
    let (y, y2) = (f64s(&y), f64s(&y2));
    close(&y2[..18], &y[..18], 0.0);
    assert!((y2[18] - y[18]).abs() > 1e-6);
}

#[test]
fn gpt_logits_do_not_see_the_future() {
    let cfg = GptConfig { vocab_size: 11, context: 6, d_model: 8, n_layer: 2, n_head: 2, ..GptConfig::char_small() };
    let g = Gpt::new(&mut Init::new(3), cfg);
    let a = Tensor::from_vec(vec![1i32, 2, 3, 4, 5], [1, 5], Device::Cpu);
    let b = Tensor::from_vec(vec![1i32, 2, 3, 9, 0], [1, 5], Device::Cpu);
    let (la, lb) = no_grad(|| (g.forward(&a).to_vec::<f32>(), g.forward(&b).to_vec::<f32>()));
    assert_eq!(la.len(), 5 * 11);
    assert_eq!(la[..3 * 11], lb[..3 * 11]);
    assert_ne!(la[3 * 11..], lb[3 * 11..]);
    let e = g.try_forward(&Tensor::from_vec(vec![0i32; 7], [1, 7], Device::Cpu)).unwrap_err().to_string();
    assert!(e.contains("sequence length 7 exceeds the context 6"), "{e}");
}

#[test]
fn conv2d_matches_the_definition() {
    let win = Window { kernel: (2, 3), stride: (2, 1), padding: (1, 2) };
    let c = Conv2d::with_window(&mut Init::new(4).with_dtype(DType::F64), 2, 3, win, true);
    let (n, ci, h, w) = (2, 2, 5, 4);
    let x = randn(&[n, ci, h, w], 7);
    let y = c.forward(&x);
    let (oh, ow) = ((h + 2 - 2) / 2 + 1, (w + 4 - 3) + 1);
    assert_eq!(y.dims(), [n, 3, oh, ow]);
    let (xv, wv, bv) = (f64s(&x), f64s(&c.weight), f64s(c.bias.as_ref().unwrap()));
    let mut want = Vec::new();
    for b in 0..n {
        for o in 0..3 {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = bv[o];
                    for ch in 0..ci {
                        for i in 0..2 {
                            for j in 0..3 {
                                let (yy, xx) = ((oy * 2 + i) as isize - 1, (ox + j) as isize - 2);
                                if yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w {
                                    let xi = ((b * ci + ch) * h + yy as usize) * w + xx as usize;
                                    s += xv[xi] * wv[((o * ci + ch) * 2 + i) * 3 + j];
                                }
                            }
                        }
                    }
                    want.push(s);
                }
            }
        }
    }
    close(&f64s(&y), &want, 1e-12);
}

#[test]
fn pooling_matches_the_definition() {
    let x = randn(&[1, 2, 5, 5], 8);
    let xv = f64s(&x);
    let win = Window { kernel: (3, 3), stride: (2, 2), padding: (1, 1) };
    let (mx, av) = (MaxPool2d::with_window(win).forward(&x), AvgPool2d::with_window(win).forward(&x));
    assert_eq!(mx.dims(), [1, 2, 3, 3]);
    let (mut wmax, mut wavg) = (Vec::new(), Vec::new());
    for c in 0..2 {
        for oy in 0..3 {
            for ox in 0..3 {
                let (mut m, mut s) = (f64::NEG_INFINITY, 0.0);
                for i in 0..3 {
                    for j in 0..3 {
                        let (yy, xx) = ((oy * 2 + i) as isize - 1, (ox * 2 + j) as isize - 1);
                        if yy >= 0 && xx >= 0 && yy < 5 && xx < 5 {
                            let v = xv[c * 25 + yy as usize * 5 + xx as usize];
                            m = m.max(v);
                            s += v;
                        }
                    }
                }
                wmax.push(m);
                wavg.push(s / 9.0); // padding counts as zeros (count_include_pad)
            }
        }
    }
    close(&f64s(&mx), &wmax, 0.0);
    close(&f64s(&av), &wavg, 1e-12);
}

#[test]
fn gru_matches_the_pytorch_equations() {
    let gru = Gru::new(&mut Init::new(5).with_dtype(DType::F64), 2, 3);
    let names: Vec<String> = gru.named_parameters().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]);
    let p: Vec<Vec<f64>> = gru.parameters().iter().map(f64s).collect();
    let (wi, wh, bi, bh) = (&p[0], &p[1], &p[2], &p[3]);
    let x = randn(&[1, 4, 2], 9);
    let xv = f64s(&x);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let mut h = [0.0f64; 3];
    let mut want = Vec::new();
    for t in 0..4 {
        let xt = &xv[t * 2..t * 2 + 2];
        let gi = |r: usize| bi[r] + wi[r * 2] * xt[0] + wi[r * 2 + 1] * xt[1];
        let gh = |r: usize| bh[r] + (0..3).map(|k| wh[r * 3 + k] * h[k]).sum::<f64>();
        let mut nh = [0.0; 3];
        for k in 0..3 {
            let r = sig(gi(k) + gh(k));
            let z = sig(gi(3 + k) + gh(3 + k));
            let n = (gi(6 + k) + r * gh(6 + k)).tanh();
            nh[k] = (1.0 - z) * n + z * h[k];
        }
        h = nh;
        want.extend_from_slice(&h);
    }
    let (out, last) = gru.try_forward_with(&x, None).unwrap();
    close(&f64s(&out), &want, 1e-12);
    close(&f64s(&last), &want[9..], 1e-12);
    // Elman RNN: h = tanh(W_ih x + b_ih + W_hh h + b_hh).
    let rnn = Rnn::new(&mut Init::new(6).with_dtype(DType::F64), 2, 3);
    let p: Vec<Vec<f64>> = rnn.parameters().iter().map(f64s).collect();
    let mut h = [0.0f64; 3];
    let mut want = Vec::new();
    for t in 0..4 {
        let xt = &xv[t * 2..t * 2 + 2];
        let nh: Vec<f64> = (0..3)
            .map(|r| {
                let s = p[2][r] + p[3][r] + p[0][r * 2] * xt[0] + p[0][r * 2 + 1] * xt[1];
                (s + (0..3).map(|k| p[1][r * 3 + k] * h[k]).sum::<f64>()).tanh()
            })
            .collect();
        h.copy_from_slice(&nh);
        want.extend_from_slice(&h);
    }
    close(&f64s(&rnn.forward(&x)), &want, 1e-12);
}

#[test]
fn dropout_modes() {
    let mut init = Init::new(8);
    let d = Dropout::new(&mut init, 0.25);
    let x = Tensor::ones([10_000], DType::F32, Device::Cpu);
    let y = d.forward(&x).to_vec::<f32>();
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / y.len() as f64;
    assert!((zeros - 0.25).abs() < 0.02, "dropped {zeros}");
    assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    assert_ne!(y, d.forward(&x).to_vec::<f32>(), "each call draws a new mask");
    d.eval();
    assert!(!d.is_training());
    assert_eq!(d.forward(&x).to_vec::<f32>(), vec![1.0; 10_000]);
    // The same seed gives the same masks.
    let d2 = Dropout::new(&mut Init::new(8), 0.25);
    assert_eq!(d2.forward(&x).to_vec::<f32>(), y);
}
