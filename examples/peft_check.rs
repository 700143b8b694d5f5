//! The Plies side of `bench/peft_round_trip.py`: adapter files exchanged with HF PEFT.
//!
//!   peft_check init --dir D [--dora]   a small char GPT (D/base.safetensors), fixed token
//!       windows (D/tokens.safetensors, I32 `tokens` [windows, context + 1]) and a LoRA (or
//!       DoRA) adapter r=4 on qkv, proj, fc1 and fc2, trained 3 AdamW steps, saved in
//!       PEFT's layout to D/plies_adapter.
//!   peft_check eval --dir D --adapter A   loads D/base.safetensors, attaches the adapter
//!       in A (`Lora::from_pretrained`) and evaluates the loss on D's tokens.
//!
//! Both print one JSON line: `{"loss": ..}`, the mean cross-entropy per target token.

use plies::autodiff::rng::Rng;
use plies::autodiff::{no_grad, Device, Result, Tensor};
use plies::nn::checkpoint::{load_gpt, load_tensors, save_gpt, save_tensors};
use plies::nn::layers::{Gpt, GptConfig};
use plies::nn::loss::{cross_entropy, CrossEntropy};
use plies::nn::optim::{Adam, AdamConfig, Optimizer};
use plies::nn::{Init, Layer, Module};
use plies::peft::lora::{InitLora, Lora, LoraConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const TARGETS: [&str; 4] = ["qkv", "proj", "fc1", "fc2"];

fn config() -> GptConfig {
    GptConfig { context: 32, d_model: 64, n_layer: 2, n_head: 4, dropout: 0.0, ..GptConfig::char_small() }
}

/// Inputs and targets of the windows `[n, c + 1]`.
fn split(tokens: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = tokens.dims()[1] - 1;
    Ok((tokens.try_narrow(1, 0, c)?.try_contiguous()?, tokens.try_narrow(1, 1, c)?.try_contiguous()?))
}

fn loss(model: &Gpt, tokens: &Tensor) -> Result<Tensor> {
    let (x, y) = split(tokens)?;
    cross_entropy(&model.try_forward(&x)?, &y, CrossEntropy::default())
}

fn eval(model: &Gpt, tokens: &Tensor) -> Result<f64> {
    model.eval();
    no_grad(|| loss(model, tokens))?.value().to_scalar::<f64>()
}

fn init(dir: &Path, dora: bool) -> Result<f64> {
    let err = |e| plies::autodiff::Error::io(dir, e);
    std::fs::create_dir_all(dir).map_err(err)?;
    let cfg = config();
    let model = Gpt::new(&mut Init::new(0), cfg.clone());
    save_gpt(&model, dir.join("base.safetensors"), &HashMap::new())?;
    let mut rng = Rng::new(1);
    let (n, c) = (8, cfg.context);
    let ids: Vec<i32> = (0..n * (c + 1)).map(|_| rng.below(cfg.vocab_size as u64) as i32).collect();
    let tokens = Tensor::from_vec(ids, [n, c + 1], Device::Cpu);
    save_tensors(dir.join("tokens.safetensors"), &[("tokens".into(), tokens.value())], &HashMap::new())?;
    // Random B so that the adapter changes the output from its first step.
    let lc = LoraConfig {
        use_dora: dora,
        init_lora_weights: InitLora::Random,
        base_model_name_or_path: Some("plies_char_gpt".into()),
        ..LoraConfig::new(4, 8.0, &TARGETS)
    };
    let lora = Lora::new(&model, lc, &mut Init::new(2))?;
    let mut opt = Adam::new(model.trainable_parameters(), AdamConfig::adamw(1e-2, 0.0))?;
    for _ in 0..3 {
        loss(&model, &tokens)?.backward()?;
        opt.step()?;
        opt.zero_grad();
    }
    lora.save_pretrained(dir.join("plies_adapter"))?;
    eval(&model, &tokens)
}

fn eval_adapter(dir: &Path, adapter: &Path) -> Result<f64> {
    let (model, _) = load_gpt(dir.join("base.safetensors"), &mut Init::new(0))?;
    let (_lora, report) = Lora::from_pretrained(&model, adapter, &mut Init::new(0))?;
    if !report.ignored_config_fields.is_empty() {
        eprintln!("{}: ignored fields {:?}", report.config_file.display(), report.ignored_config_fields);
    }
    let file = load_tensors(dir.join("tokens.safetensors"), Device::Cpu)?;
    let tokens = file.tensors.get("tokens").cloned().map(Tensor::new).ok_or_else(|| {
        plies::autodiff::Error::invalid("peft_check", format!("{}: no tensor `tokens`", dir.display()))
    })?;
    eval(&model, &tokens)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let usage = "usage: peft_check init --dir D [--dora] | peft_check eval --dir D --adapter A";
    let (Some(mode), Some(dir)) = (args.first(), flag("--dir")) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let result = match (mode.as_str(), flag("--adapter")) {
        ("init", _) => init(&dir, args.iter().any(|a| a == "--dora")),
        ("eval", Some(a)) => eval_adapter(&dir, &a),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    match result {
        Ok(l) => println!("{{\"loss\": {l:.9}}}"),
        Err(e) => {
            eprintln!("peft_check: {e}");
            std::process::exit(1);
        }
    }
}
