//! tpSGD and DRTP: single updates of a 2-layer net against formulas derived by hand and
//! computed here in f64 loops; the projections' determinism and scaling rule; and the CNN,
//! RNN and MLP stages learning the digits.

use plies_autodiff::{DType, Device, Tensor};
use plies_nn::data::{digits, LabeledData};
use plies_nn::layers::Activation;
use plies_nn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use plies_nn::{Init, Layer, Module, NamedParam};
use plies_peft::tpsgd::{target_range, LocalConfig, LocalLoss, LocalNet, LocalTrainer, Projection, Rule};

fn sgd(lr: f64) -> impl FnMut(Vec<NamedParam>) -> plies_autodiff::Result<Box<dyn Optimizer>> {
    move |p| Ok(Box::new(Sgd::new(p, SgdConfig::new(lr))?) as Box<dyn Optimizer>)
}

fn adam(lr: f64) -> impl FnMut(Vec<NamedParam>) -> plies_autodiff::Result<Box<dyn Optimizer>> {
    move |p| Ok(Box::new(Adam::new(p, AdamConfig::adam(lr))?) as Box<dyn Optimizer>)
}

fn param(net: &LocalNet, name: &str) -> Vec<f64> {
    let p = net.named_parameters().into_iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no `{name}`"));
    p.tensor.to_vec::<f64>()
}

/// Updated hidden weight and bias, head weight and bias, the hidden activation, the task loss.
type Expected = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, f64);

/// Row-major `[rows, cols]` helpers on plain vectors.
fn at(m: &[f64], cols: usize, r: usize, c: usize) -> f64 {
    m[r * cols + c]
}

/// The expected parameters after one SGD step (learning rate `lr`) of a net
/// `x [B, I] -> tanh(x W1^T + b1) [B, H] -> a W2^T + b2 [B, C]`: the hidden layer from
/// `d_local(a, label, b, j)` = d(local objective)/d a[b, j], the head from the mean
/// cross-entropy of logits computed on the hidden activation before its update.
#[allow(clippy::too_many_arguments)]
fn expected_update(
    x: &[f64],
    labels: &[usize],
    (w1, b1, w2, b2): (&[f64], &[f64], &[f64], &[f64]),
    (bsz, inp, hid, cls): (usize, usize, usize, usize),
    lr: f64,
    d_local: impl Fn(f64, usize, usize, usize) -> f64,
) -> Expected {
    let mut a = vec![0.0; bsz * hid];
    for b in 0..bsz {
        for j in 0..hid {
            let z: f64 = b1[j] + (0..inp).map(|k| at(x, inp, b, k) * at(w1, inp, j, k)).sum::<f64>();
            a[b * hid + j] = z.tanh();
        }
    }
    let (mut gw1, mut gb1) = (vec![0.0; hid * inp], vec![0.0; hid]);
    for b in 0..bsz {
        for j in 0..hid {
            let aj = a[b * hid + j];
            // tanh'(z) = 1 - tanh(z)^2
            let dz = d_local(aj, labels[b], b, j) * (1.0 - aj * aj);
            gb1[j] += dz;
            for k in 0..inp {
                gw1[j * inp + k] += dz * at(x, inp, b, k);
            }
        }
    }
    let (mut gw2, mut gb2) = (vec![0.0; cls * hid], vec![0.0; cls]);
    let mut ce = 0.0;
    for b in 0..bsz {
        let logits: Vec<f64> =
            (0..cls).map(|c| b2[c] + (0..hid).map(|j| a[b * hid + j] * at(w2, hid, c, j)).sum::<f64>()).collect();
        let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
        ce += -(logits[labels[b]] - m - z.ln()) / bsz as f64;
        for c in 0..cls {
            let p = (logits[c] - m).exp() / z;
            let d = (p - if c == labels[b] { 1.0 } else { 0.0 }) / bsz as f64;
            gb2[c] += d;
            for j in 0..hid {
                gw2[c * hid + j] += d * a[b * hid + j];
            }
        }
    }
    let step = |p: &[f64], g: &[f64]| p.iter().zip(g).map(|(p, g)| p - lr * g).collect::<Vec<f64>>();
    (step(w1, &gw1), step(b1, &gb1), step(w2, &gw2), step(b2, &gb2), a, ce)
}

fn close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-12 + 1e-10 * w.abs(), "{what}[{i}]: got {g}, want {w}");
    }
}

/// Run one step of `config` on the 2-layer net and compare with the hand-derived update.
fn check_single_update(config: LocalConfig) {
    let (bsz, inp, hid, cls) = (3, 4, 5, 3);
    let net = LocalNet::mlp(&mut Init::new(11).with_dtype(DType::F64), &[inp, hid, cls], Activation::Tanh).unwrap();
    let x: Vec<f64> = (0..bsz * inp).map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0).collect();
    let labels = [2usize, 0, 2];
    let (w1, b1) = (param(&net, "hidden.0.weight"), param(&net, "hidden.0.bias"));
    let (w2, b2) = (param(&net, "head.weight"), param(&net, "head.bias"));

    let lr = 0.3;
    let mut trainer = LocalTrainer::new(&net, cls, config, &mut sgd(lr)).unwrap();
    let xt = Tensor::from_vec(x.clone(), [bsz, inp], Device::Cpu);
    let yt = Tensor::from_vec(labels.iter().map(|&l| l as i32).collect::<Vec<i32>>(), [bsz], Device::Cpu);
    let report = trainer.step(&net, &xt, &yt).unwrap();

    let p = trainer.projection(0).expect("made by the step").per_class().to_vec::<f64>().unwrap();
    assert_eq!((trainer.projection(0).unwrap().classes(), trainer.projection(0).unwrap().width()), (cls, hid));
    let n = (bsz * hid) as f64;
    let d_local = |a: f64, label: usize, _b: usize, j: usize| {
        let target = p[label * hid + j];
        match (config.rule, config.loss) {
            // d/da mean((a - t)^2) = 2 (a - t) / (B H)
            (Rule::TargetProjection, LocalLoss::L2) => 2.0 * (a - target) / n,
            // d/da mean(|a - t|) = sign(a - t) / (B H)
            (Rule::TargetProjection, LocalLoss::L1) => (a - target).signum() / n,
            // DRTP: the error is B y, divided by the batch size
            (Rule::Drtp, _) => target / bsz as f64,
        }
    };
    let (w1e, b1e, w2e, b2e, a, ce) =
        expected_update(&x, &labels, (&w1, &b1, &w2, &b2), (bsz, inp, hid, cls), lr, d_local);
    close("hidden weight", &param(&net, "hidden.0.weight"), &w1e);
    close("hidden bias", &param(&net, "hidden.0.bias"), &b1e);
    close("head weight", &param(&net, "head.weight"), &w2e);
    close("head bias", &param(&net, "head.bias"), &b2e);
    close("task loss", &[report.task_loss], &[ce]);
    let local: Option<f64> = match (config.rule, config.loss) {
        (Rule::Drtp, _) => None,
        (_, loss) => Some(
            (0..bsz * hid)
                .map(|i| {
                    let d = a[i] - p[labels[i / hid] * hid + i % hid];
                    if loss == LocalLoss::L2 {
                        d * d
                    } else {
                        d.abs()
                    }
                })
                .sum::<f64>()
                / n,
        ),
    };
    match (report.local_losses[0], local) {
        (Some(g), Some(w)) => close("local loss", &[g], &[w]),
        (g, w) => assert_eq!(g, w, "local loss"),
    }
    // The hidden layer moved (the signal reached it).
    assert!(w1.iter().zip(param(&net, "hidden.0.weight")).any(|(a, b)| (a - b).abs() > 1e-6));
}

#[test]
fn tpsgd_l2_matches_a_hand_computed_update() {
    check_single_update(LocalConfig::tpsgd(5));
}

#[test]
fn tpsgd_l1_matches_a_hand_computed_update() {
    check_single_update(LocalConfig::tpsgd(6).with_loss(LocalLoss::L1));
}

#[test]
fn drtp_matches_a_hand_computed_update() {
    check_single_update(LocalConfig::drtp(7));
}

fn projection(seed: u64, stage: usize, rule: Rule, act: Activation) -> Vec<f64> {
    Projection::new(seed, stage, 16, 10, rule, act, DType::F32, Device::Cpu).unwrap().per_class().to_vec().unwrap()
}

#[test]
fn projections_are_fixed_by_the_seed_and_scaled_into_the_activation_range() {
    let a = projection(3, 1, Rule::TargetProjection, Activation::Tanh);
    assert_eq!(a, projection(3, 1, Rule::TargetProjection, Activation::Tanh), "same seed, same matrix");
    assert_ne!(a, projection(4, 1, Rule::TargetProjection, Activation::Tanh), "another seed");
    assert_ne!(a, projection(3, 2, Rule::TargetProjection, Activation::Tanh), "another stage");

    // DRTP's raw draws are U(-1, 1); tpSGD maps them affinely onto the target range.
    let raw = projection(3, 1, Rule::Drtp, Activation::Tanh);
    assert!(raw.iter().all(|u| (-1.0..1.0).contains(u)));
    assert!(raw.iter().any(|u| *u > 0.5) && raw.iter().any(|u| *u < -0.5), "spread over (-1, 1)");
    for act in [Activation::Tanh, Activation::Sigmoid, Activation::Relu] {
        let (lo, hi) = target_range(act);
        let p = projection(3, 1, Rule::TargetProjection, act);
        for (p, u) in p.iter().zip(&raw) {
            let want = (lo + hi) / 2.0 + u * (hi - lo) / 2.0;
            assert!((p - want).abs() < 1e-6, "{act:?}: {p} vs {want}");
            assert!(*p > lo - 1e-6 && *p < hi + 1e-6);
        }
    }
    assert_eq!(target_range(Activation::Tanh), (-0.9, 0.9));

    // A trainer makes the same matrices from the same seed, whatever the model's init.
    let run = |init_seed: u64| {
        let net = LocalNet::mlp(&mut Init::new(init_seed), &[64, 16, 12, 10], Activation::Tanh).unwrap();
        let mut t = LocalTrainer::new(&net, 10, LocalConfig::tpsgd(9), &mut sgd(0.1)).unwrap();
        let (x, y) = batch(&digits_data(), 0, 8, Device::Cpu);
        t.step(&net, &x, &y).unwrap();
        (0..2).map(|i| t.projection(i).unwrap().per_class().to_vec::<f64>().unwrap()).collect::<Vec<_>>()
    };
    let (p, q) = (run(1), run(2));
    assert_eq!(p, q);
    assert_eq!(p[1].len(), 10 * 12);
}

#[test]
fn a_feature_map_gets_one_target_per_channel() {
    let p = Projection::new(1, 0, 3, 4, Rule::TargetProjection, Activation::Relu, DType::F32, Device::Cpu).unwrap();
    let rows = p.per_class().to_vec::<f64>().unwrap();
    let labels = Tensor::from_vec(vec![3i32, 1], [2], Device::Cpu);
    let like = Tensor::zeros([2, 3, 2, 5], DType::F32, Device::Cpu);
    let s = p.signal(&labels, &like).unwrap();
    assert_eq!(s.dims(), &[2, 3, 2, 5]);
    let s = s.to_vec::<f64>().unwrap();
    for (b, &label) in [3usize, 1].iter().enumerate() {
        for c in 0..3 {
            for k in 0..10 {
                assert_eq!(s[(b * 3 + c) * 10 + k], rows[label * 3 + c]);
            }
        }
    }
    let wrong = Tensor::zeros([2, 4], DType::F32, Device::Cpu);
    let e = p.signal(&labels, &wrong).unwrap_err().to_string();
    assert!(e.contains("[2, 4]") && e.contains("3 units"), "{e}");
}

fn digits_data() -> LabeledData {
    digits::load().unwrap().scaled(1.0 / digits::MAX_PIXEL)
}

/// Examples `start..start + n` of `set` as a batch with inputs of `set`'s feature shape.
fn batch(set: &LabeledData, start: usize, n: usize, device: Device) -> (Tensor, Tensor) {
    let idx: Vec<usize> = (start..start + n).map(|i| i % set.len()).collect();
    let b = set.subset(&idx).unwrap().to_batch(device).unwrap();
    (b.inputs, b.targets)
}

fn accuracy(net: &LocalNet, set: &LabeledData) -> f64 {
    let b = set.to_batch(Device::Cpu).unwrap();
    let pred = plies_autodiff::no_grad(|| net.forward(&b.inputs)).argmax(1, false).to_vec::<i32>();
    pred.iter().zip(set.labels()).filter(|(p, y)| p == y).count() as f64 / set.len() as f64
}

/// Train `net` locally for `steps` batches of 32 and return (first and last local losses of
/// stage 0, held-out accuracy).
fn learn(
    net: &LocalNet,
    config: LocalConfig,
    train: &LabeledData,
    test: &LabeledData,
    steps: usize,
) -> (f64, f64, f64) {
    // DRTP's rate is the one examples/tpsgd.rs chooses on its validation set.
    let lr = if config.rule == Rule::Drtp { 1e-2 } else { 3e-3 };
    let mut t = LocalTrainer::new(net, 10, config, &mut adam(lr)).unwrap();
    let mut first = Vec::new();
    let mut last = Vec::new();
    for s in 0..steps {
        let (x, y) = batch(train, s * 32, 32, Device::Cpu);
        let r = t.step(net, &x, &y).unwrap();
        let l = r.local_losses[0].unwrap_or(r.task_loss);
        if s < 5 {
            first.push(l);
        }
        if s >= steps - 5 {
            last.push(l);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    (mean(&first), mean(&last), accuracy(net, test))
}

#[test]
fn mlp_cnn_and_rnn_stages_learn_the_digits_locally() {
    let data = digits_data();
    let (train, test) = data.split(0.2, 0).unwrap();

    let mlp = LocalNet::mlp(&mut Init::new(1), &[64, 32, 32, 10], Activation::Tanh).unwrap();
    let (l0, l1, acc) = learn(&mlp, LocalConfig::tpsgd(1), &train, &test, 150);
    assert!(l1 < 0.7 * l0, "MLP tpSGD local loss falls: {l0} -> {l1}");
    assert!(acc > 0.8, "MLP tpSGD held-out accuracy {acc}");
    let mlp = LocalNet::mlp(&mut Init::new(1), &[64, 32, 32, 10], Activation::Tanh).unwrap();
    let (_, _, acc) = learn(&mlp, LocalConfig::drtp(1), &train, &test, 150);
    assert!(acc > 0.8, "MLP DRTP held-out accuracy {acc}");

    let (train_img, test_img) =
        (train.clone().reshaped(&[1, 8, 8]).unwrap(), test.clone().reshaped(&[1, 8, 8]).unwrap());
    let cnn = LocalNet::cnn(&mut Init::new(2), 1, (8, 8), &[8, 16], 10, Activation::Relu).unwrap();
    assert_eq!(cnn.forward(&batch(&train_img, 0, 2, Device::Cpu).0).dims(), vec![2, 10]);
    let (l0, l1, acc) = learn(&cnn, LocalConfig::tpsgd(2), &train_img, &test_img, 150);
    assert!(l1 < 0.8 * l0, "CNN tpSGD local loss falls: {l0} -> {l1}");
    // Each channel's target is constant over the map, which a 3x3 filter can only meet from
    // what it sees: it learns, slowly (0.26 after these 150 steps; chance is 0.1).
    assert!(acc > 0.2, "CNN tpSGD held-out accuracy {acc}");

    // Rows of the image as a sequence of 8 steps of 8 pixels.
    let (train_seq, test_seq) = (train.reshaped(&[8, 8]).unwrap(), test.reshaped(&[8, 8]).unwrap());
    let rnn = LocalNet::rnn(&mut Init::new(3), 8, 32, 10);
    let (l0, l1, acc) = learn(&rnn, LocalConfig::tpsgd(3), &train_seq, &test_seq, 150);
    assert!(l1 < 0.8 * l0, "RNN tpSGD local loss falls: {l0} -> {l1}");
    // Every time step's state gets the class target, the first rows' states too, which cannot
    // know the class yet: it learns, slowly (0.38 after these 150 steps; chance is 0.1).
    assert!(acc > 0.3, "RNN tpSGD held-out accuracy {acc}");
}

#[test]
fn refuses_a_net_it_cannot_train() {
    let net = LocalNet::mlp(&mut Init::new(1), &[4, 3, 2], Activation::Tanh).unwrap();
    let mut t = LocalTrainer::new(&net, 2, LocalConfig::tpsgd(1), &mut sgd(0.1)).unwrap();
    let other = LocalNet::mlp(&mut Init::new(1), &[4, 3, 3, 2], Activation::Tanh).unwrap();
    let x = Tensor::zeros([2, 4], DType::F32, Device::Cpu);
    let y = Tensor::from_vec(vec![0i32, 1], [2], Device::Cpu);
    let e = t.step(&other, &x, &y).unwrap_err().to_string();
    assert!(e.contains("1 hidden stages") && e.contains("2"), "{e}");
    let e = LocalNet::cnn(&mut Init::new(1), 1, (6, 6), &[4, 4], 10, Activation::Relu).err().unwrap().to_string();
    assert!(e.contains("multiples of 4"), "{e}");
}
