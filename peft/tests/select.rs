//! Layer selection on a GPT: a layer not selected in a step computes no weight gradient,
//! keeps its parameters and optimizer state bit for bit, and records no graph node below the
//! lowest selected layer; with LoRA, DoRA and (LISA) plain weights. IST's probes restore the
//! adapters' scaling and the training mode.

use plies_autodiff::{live_nodes, Array, Device, Error, Result, Tensor};
use plies_nn::layers::*;
use plies_nn::loss::{cross_entropy, CrossEntropy};
use plies_nn::memory::MemoryReport;
use plies_nn::optim::{Adam, AdamConfig, Optimizer};
use plies_nn::{Init, Layer, Module};
use plies_peft::lora::{Lora, LoraConfig};
use plies_peft::select::{FixedLayers, Ist, IstConfig, LayerParams, LayerSelector, NoProbe, ScaledProbe};
use std::collections::HashMap;
use std::sync::Mutex;

/// `live_nodes` counts the whole process's graph nodes: these tests run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny(layers: usize) -> GptConfig {
    GptConfig { vocab_size: 11, context: 8, d_model: 16, n_layer: layers, n_head: 2, ..GptConfig::char_small() }
}

fn batch() -> (Tensor, Tensor) {
    let x: Vec<i32> = (0..16).map(|i| (i * 7 + 2) % 11).collect();
    let y: Vec<i32> = (0..16).map(|i| (i * 7 + 9) % 11).collect();
    (Tensor::from_vec(x, [2, 8], Device::Cpu), Tensor::from_vec(y, [2, 8], Device::Cpu))
}

fn bits(a: &Array) -> Vec<u32> {
    a.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
}

fn snapshot(model: &dyn Module, opt: &dyn Optimizer) -> (HashMap<String, Vec<u32>>, HashMap<String, Vec<u64>>) {
    let params = model.named_parameters().into_iter().map(|p| (p.name, bits(&p.tensor.value()))).collect();
    let state = opt
        .state_dict()
        .into_iter()
        .map(|(k, a)| (k, a.to_vec::<f64>().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect();
    (params, state)
}

/// The forward pass block by block, checking that nothing below model layer `lowest` records
/// a graph node; returns the loss.
fn forward_checking_graph(model: &Gpt, x: &Tensor, y: &Tensor, lowest: usize) -> Result<Tensor> {
    let before = live_nodes();
    let mut h = model.try_embed(x)?;
    for (i, b) in model.blocks.iter().enumerate() {
        if Gpt::block_layer(i) == lowest {
            assert_eq!(live_nodes(), before, "no graph node below layer {lowest}");
            assert!(h.is_leaf(), "the input of layer {lowest} carries no graph");
        }
        let _layer = plies_autodiff::layer_scope(Gpt::block_layer(i));
        h = b.try_forward(&h)?;
    }
    let _layer = plies_autodiff::layer_scope(Gpt::block_layer(model.blocks.len()));
    cross_entropy(&model.try_logits(&h)?, y, CrossEntropy::default())
}

#[test]
fn unselected_layers_get_no_gradient_no_update_and_no_graph() -> Result<()> {
    let _s = serial();
    for dora in [false, true] {
        let model = Gpt::new(&mut Init::new(3), tiny(4));
        let cfg = LoraConfig { use_dora: dora, ..LoraConfig::new(2, 4.0, &["qkv", "proj", "fc1", "fc2"]) };
        let _lora = Lora::new(&model, cfg, &mut Init::new(4))?;
        let layers = LayerParams::trainable(&model)?;
        assert_eq!(layers.layers(), &[1, 2, 3, 4], "one selectable layer per block");
        let mut opt = Adam::new(layers.params(), AdamConfig::adamw(1e-2, 0.1))?;
        let (x, y) = batch();
        // Two steps of every layer give each adapter moments and a step count of 2; B moves
        // off zero so that A's gradients are not zero either.
        for _ in 0..2 {
            layers.apply(&[0, 1, 2, 3])?;
            cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?.backward()?;
            opt.step()?;
            opt.zero_grad();
        }
        let chosen = layers.choose(&mut FixedLayers::new(vec![2, 3]), 2, &mut NoProbe)?;
        assert_eq!(chosen, vec![3, 4]);
        let (params_before, state_before) = snapshot(&model, &opt);

        let loss = forward_checking_graph(&model, &x, &y, 3)?;
        let report = MemoryReport::measure(&model, Some(&opt), &loss)?;
        for l in &report.layers {
            let selected = l.layer == 3 || l.layer == 4;
            assert_eq!(l.grad_bytes > 0, selected, "dora {dora}: gradient bytes of layer {}: {l:?}", l.layer);
            if l.layer < 3 {
                assert_eq!(l.saved_bytes, 0, "dora {dora}: nothing saved for backward in layer {}", l.layer);
            }
        }
        loss.backward()?;
        for p in model.named_parameters() {
            let trains = p.name.contains(".lora_") && (p.layer == 3 || p.layer == 4);
            assert_eq!(p.tensor.grad().is_some(), trains, "dora {dora}: gradient of {}", p.name);
        }
        opt.step()?;
        opt.zero_grad();
        let (params_after, state_after) = snapshot(&model, &opt);
        for p in model.named_parameters() {
            let same = params_after[&p.name] == params_before[&p.name];
            let trains = p.name.contains(".lora_") && (p.layer == 3 || p.layer == 4);
            assert_eq!(same, !trains, "dora {dora}: {} changed: {}", p.name, !same);
            if p.name.contains(".lora_") {
                assert_eq!(opt.step_count(&p.name), if trains { 3 } else { 2 }, "{}", p.name);
                for slot in ["exp_avg", "exp_avg_sq", "step"] {
                    let key = format!("{}.{slot}", p.name);
                    assert_eq!(state_after[&key] == state_before[&key], !trains, "dora {dora}: {key}");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn lisa_trains_the_chosen_blocks_with_embeddings_and_head_and_leaves_the_rest() -> Result<()> {
    let _s = serial();
    let model = Gpt::new(&mut Init::new(5), tiny(4));
    let top = Gpt::block_layer(4);
    let layers = LayerParams::trainable_with_always_on(&model, &[0, top])?;
    assert_eq!(layers.layers(), &[1, 2, 3, 4]);
    let mut opt = Adam::new(layers.params(), AdamConfig::adamw(1e-2, 0.1))?;
    let (params_before, _) = snapshot(&model, &opt);
    let mut lisa = plies_peft::select::Lisa::new(4, 1, 3, 9)?;
    let chosen = layers.choose(&mut lisa, 0, &mut NoProbe)?;
    let (x, y) = batch();
    cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())?.backward()?;
    for p in model.named_parameters() {
        let trains = p.layer == 0 || p.layer == top || chosen.contains(&p.layer);
        assert_eq!(p.tensor.grad().is_some(), trains, "{} (chosen {chosen:?})", p.name);
    }
    opt.step()?;
    let (params_after, state) = snapshot(&model, &opt);
    for p in model.named_parameters() {
        let trains = p.layer == 0 || p.layer == top || chosen.contains(&p.layer);
        assert_eq!(state.contains_key(&format!("{}.exp_avg", p.name)), trains, "state of {}", p.name);
        if !trains {
            assert_eq!(params_after[&p.name], params_before[&p.name], "{} untouched", p.name);
        }
    }
    Ok(())
}

#[test]
fn ist_probes_scale_the_suppressed_lora_layers_and_restore_them() -> Result<()> {
    let _s = serial();
    let model = Gpt::new(&mut Init::new(7), tiny(4));
    let cfg = LoraConfig { lora_dropout: 0.1, ..LoraConfig::new(2, 4.0, &["qkv", "fc2"]) };
    let lora = Lora::new(&model, cfg, &mut Init::new(8))?;
    // Make the adapters matter: B is zero at initialisation.
    for l in lora.layers() {
        let b = &l.active().unwrap().b;
        b.set_value(Array::full(b.dims(), 0.3, b.dtype(), Device::Cpu)?)?;
    }
    let layers = LayerParams::trainable(&model)?;
    let scalings = || lora.layers().iter().map(|l| l.scaling().unwrap()).collect::<Vec<_>>();
    let original = scalings();
    let (x, y) = batch();
    let seen: Mutex<Vec<(Vec<f64>, bool, bool)>> = Mutex::new(Vec::new());
    let mut probe = ScaledProbe::new(
        &model,
        &lora,
        || Ok((x.clone(), y.clone())),
        |(x, y): &(Tensor, Tensor)| {
            let loss = cross_entropy(&model.try_forward(x)?, y, CrossEntropy::default())?;
            seen.lock().unwrap().push((scalings(), model.is_training(), loss.is_leaf()));
            Ok(loss.item())
        },
    );
    let mut ist = Ist::new(IstConfig { interval: 1, ..IstConfig::paper(4, 1) })?;
    layers.choose(&mut ist, 0, &mut probe)?;
    layers.choose(&mut ist, 1, &mut probe)?;
    let update = ist.last_update().expect("an update at step 1").clone();
    assert_eq!(update.sets.len(), 3);
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 3);
    for ((s, training, leaf), set) in seen.iter().zip(&update.sets) {
        assert!(!training && *leaf, "probes run in eval mode without a graph");
        for (l, (got, orig)) in lora.layers().iter().zip(s.iter().zip(&original)) {
            let suppressed = set.iter().any(|&p| layers.layers()[p] == l.layer);
            let want = if suppressed { orig * 0.25 } else { *orig };
            assert_eq!(*got, want, "{} during probe of {set:?}", l.path);
        }
    }
    assert_eq!(scalings(), original);
    assert!(model.is_training());
    assert!(update.losses.iter().all(|l| l.is_finite()) && update.scores != vec![0.0; 4]);

    // A failing probe leaves the scaling and the mode as they were.
    let mut failing = ScaledProbe::new(&model, &lora, || Ok(()), |_: &()| Err(Error::msg("probe failed")));
    assert!(layers.choose(&mut ist, 2, &mut failing).is_err());
    assert_eq!(scalings(), original);
    assert!(model.is_training());
    let _ = ist.name();
    Ok(())
}
