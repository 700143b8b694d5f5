//! A module of your own: a pre-norm residual MLP block, written with `#[derive(Module)]`,
//! stacked into a classifier, trained on the embedded digits, saved, and loaded into a fresh
//! model that then gives the same predictions.
//!
//!     cargo run --release --example custom_module

use plies::autodiff::Result;
use plies::nn::checkpoint::{load_model, save_model};
use plies::nn::data::digits;
use plies::nn::prelude::*;

/// x + fc2(gelu(fc1(norm(x)))), the exact (erf) GELU. Tensor fields are parameters, Module fields are children,
/// a `Vec` of modules is numbered (`blocks.0`, ...); `#[module(skip)]` leaves a field out.
#[derive(Module)]
struct Residual {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Layer for Residual {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.try_forward(&self.norm.try_forward(x)?)?.try_gelu_erf()?;
        x.try_add(&self.fc2.try_forward(&h)?)
    }
}

#[derive(Module)]
struct Net {
    input: Linear,
    /// Each block is a layer of its own for layer-wise methods (layer indices 0, 1, ...).
    #[module(layers_from = 0)]
    blocks: Vec<Residual>,
    head: Linear,
}

impl Net {
    fn new(init: &mut Init, width: usize, depth: usize) -> Net {
        let block = |init: &mut Init| Residual {
            norm: LayerNorm::new(init, width),
            fc1: Linear::new(init, width, 2 * width, true),
            fc2: Linear::new(init, 2 * width, width, true),
        };
        Net {
            input: Linear::new(init, 64, width, true),
            blocks: (0..depth).map(|_| block(init)).collect(),
            head: Linear::new(init, width, 10, true),
        }
    }
}

impl Layer for Net {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.input.try_forward(x)?;
        for b in &self.blocks {
            h = b.try_forward(&h)?;
        }
        self.head.try_forward(&h)
    }
}

pub fn main() -> Result<()> {
    let data = digits::load()?.scaled(1.0 / digits::MAX_PIXEL);
    let (train, test) = data.split(0.2, 0)?;
    let (x, y) = (train.to_batch(Device::Cpu)?, test.to_batch(Device::Cpu)?);
    let model = Net::new(&mut Init::new(0), 32, 2);
    let names: Vec<String> = model.named_parameters().into_iter().map(|p| p.name).collect();
    println!("{} parameters in {} tensors: {}, ...", model.num_params(), names.len(), names[..4].join(", "));

    let mut opt = Adam::new(model.named_parameters(), AdamConfig::adamw(3e-3, 0.01))?;
    for step in 0..300 {
        let loss = model.try_forward(&x.inputs)?.try_cross_entropy(&x.targets)?;
        loss.backward()?;
        opt.step()?;
        opt.zero_grad();
        if step % 100 == 0 {
            println!("step {step}: loss {:.4}", loss.item());
        }
    }

    let accuracy = |m: &Net| -> Result<f64> {
        let predicted = no_grad(|| m.try_forward(&y.inputs))?.try_argmax(1, false)?.try_to_vec::<i32>()?;
        Ok(predicted.iter().zip(test.labels()).filter(|(p, t)| p == t).count() as f64 / test.len() as f64)
    };
    let path = std::env::temp_dir().join(format!("plies-custom-module-{}.safetensors", std::process::id()));
    save_model(&model, &path, &Default::default())?;
    let loaded = Net::new(&mut Init::new(99), 32, 2);
    load_model(&loaded, &path)?;
    let (before, after) = (accuracy(&model)?, accuracy(&loaded)?);
    println!("test accuracy {before:.4}; after save and load into a fresh model {after:.4}");
    assert_eq!(before, after, "the loaded model predicts what the saved one did");
    Ok(())
}
