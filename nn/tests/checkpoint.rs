//! Checkpoint round trips and the errors bad files give.

use plies_autodiff::{no_grad, Array, Device, Tensor};
use plies_nn::checkpoint::{self, load_model, load_model_with, save_model};
use plies_nn::layers::*;
use plies_nn::optim::{Adam, AdamConfig, Optimizer};
use plies_nn::{Init, Layer, Module};
use std::collections::HashMap;

mod scratch;
use scratch::Scratch;

fn cfg(n_layer: usize, d_model: usize) -> GptConfig {
    GptConfig { vocab_size: 13, context: 8, d_model, n_layer, n_head: 2, ..GptConfig::char_small() }
}

fn ids() -> Tensor {
    Tensor::from_vec(vec![1i32, 5, 7, 2, 0, 12, 3, 3], [2, 4], Device::Cpu)
}

fn logits(g: &Gpt) -> Vec<f32> {
    no_grad(|| g.forward(&ids()).to_vec())
}

#[test]
fn gpt_round_trip_gives_the_same_outputs() {
    let d = Scratch::new("round");
    let a = Gpt::new(&mut Init::new(1), cfg(2, 8));
    let path = d.join("gpt.safetensors");
    let meta = HashMap::from([("vocab".to_string(), "\"abc\"".to_string())]);
    checkpoint::save_gpt(&a, &path, &meta).unwrap();
    let (b, got) = checkpoint::load_gpt(&path, &mut Init::new(99)).unwrap();
    assert_eq!(b.config, a.config);
    assert_eq!(got["vocab"], "\"abc\"");
    assert_eq!(logits(&a), logits(&b));

    // Plain state dicts too, into a model built from another seed.
    let c = Gpt::new(&mut Init::new(2), cfg(2, 8));
    assert_ne!(logits(&a), logits(&c));
    save_model(&a, d.join("m.safetensors"), &HashMap::new()).unwrap();
    load_model(&c, d.join("m.safetensors")).unwrap();
    assert_eq!(logits(&a), logits(&c));
    // The file holds exactly the parameter names, nothing else.
    let f = checkpoint::load_tensors(d.join("m.safetensors"), Device::Cpu).unwrap();
    let mut keys: Vec<_> = f.tensors.keys().cloned().collect();
    keys.sort();
    let mut want: Vec<_> = a.named_parameters().into_iter().map(|p| p.name).collect();
    want.sort();
    assert_eq!(keys, want);
}

#[test]
fn corrupt_and_truncated_files_name_the_file_and_place() {
    let d = Scratch::new("corrupt");
    let g = Gpt::new(&mut Init::new(1), cfg(1, 8));
    let good = d.join("good.safetensors");
    save_model(&g, &good, &HashMap::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let trunc = d.join("trunc.safetensors");
    std::fs::write(&trunc, &bytes[..bytes.len() - 10]).unwrap();
    let e = load_model(&g, &trunc).unwrap_err().to_string();
    assert!(e.starts_with(&trunc.display().to_string()), "{e}");
    assert!(e.contains(&format!("at byte offset {}", bytes.len() - 10)) && e.contains("truncated"), "{e}");

    let header_cut = d.join("header_cut.safetensors");
    std::fs::write(&header_cut, &bytes[..40]).unwrap();
    let e = load_model(&g, &header_cut).unwrap_err().to_string();
    assert!(e.contains("header_cut.safetensors: at byte 0: header length field says"), "{e}");

    let tiny = d.join("tiny.safetensors");
    std::fs::write(&tiny, b"abc").unwrap();
    let e = load_model(&g, &tiny).unwrap_err().to_string();
    assert!(e.contains("tiny.safetensors: at byte 0: file is 3 bytes"), "{e}");

    let mut bad = bytes.clone();
    bad[8] = b'#'; // the JSON header's opening brace
    let garbled = d.join("garbled.safetensors");
    std::fs::write(&garbled, &bad).unwrap();
    let e = load_model(&g, &garbled).unwrap_err().to_string();
    assert!(e.contains("garbled.safetensors: at header byte 8:"), "{e}");
    assert!(e.contains("corrupt header"), "{e}");

    // A header whose offsets disagree with a tensor's shape names that tensor.
    let text = String::from_utf8_lossy(&bytes[8..]).to_string();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = &text[..n];
    let tampered = header.replacen("\"shape\":[8]", "\"shape\":[9]", 1);
    assert_ne!(tampered, header, "the file has an [8] tensor");
    let mut out = bytes[..8].to_vec();
    out.extend_from_slice(tampered.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    let shape_lie = d.join("shape_lie.safetensors");
    std::fs::write(&shape_lie, &out).unwrap();
    let e = load_model(&g, &shape_lie).unwrap_err().to_string();
    assert!(e.contains("shape_lie.safetensors: at tensor `") && e.contains("needs 36"), "{e}");

    let e = load_model(&g, d.join("absent.safetensors")).unwrap_err().to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
    // The failed loads assigned nothing.
    let fresh = Gpt::new(&mut Init::new(1), cfg(1, 8));
    assert_eq!(logits(&g), logits(&fresh));
}

#[test]
fn wrong_shapes_and_names_are_all_reported() {
    let d = Scratch::new("shapes");
    let small = Gpt::new(&mut Init::new(1), cfg(1, 8));
    let path = d.join("small.safetensors");
    save_model(&small, &path, &HashMap::new()).unwrap();

    let wide = Gpt::new(&mut Init::new(1), cfg(1, 16));
    let e = load_model(&wide, &path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: at state dict: does not fit the model", path.display())), "{e}");
    assert!(e.contains("`tok_emb.weight` expected f32 [13, 16], file has f32 [13, 8]"), "{e}");

    let deep = Gpt::new(&mut Init::new(2), cfg(2, 8));
    let before = logits(&deep);
    let e = load_model(&deep, &path).unwrap_err().to_string();
    assert!(e.contains("12 missing: `blocks.1.ln1.weight`"), "{e}");
    assert_eq!(logits(&deep), before, "a refused load assigns nothing");

    // Non-strict: the shared parameters load, the new block keeps its values.
    let report = load_model_with(&deep, &path, false).unwrap();
    assert_eq!(report.missing.len(), 12);
    assert!(report.unexpected.is_empty() && report.mismatched.is_empty());
    assert_eq!(deep.tok_emb.weight.to_vec::<f32>(), small.tok_emb.weight.to_vec::<f32>());

    let deep_path = d.join("deep.safetensors");
    save_model(&deep, &deep_path, &HashMap::new()).unwrap();
    let e = load_model(&small, &deep_path).unwrap_err().to_string();
    assert!(e.contains("12 unexpected: `blocks.1.attn.proj.bias`"), "{e}");
}

fn train_step(g: &Gpt, opt: &mut Adam) {
    let y = Tensor::from_vec(vec![5i32, 7, 2, 0, 12, 3, 3, 1], [2, 4], Device::Cpu);
    g.forward(&ids()).cross_entropy(&y).backward().unwrap();
    opt.step().unwrap();
    opt.zero_grad();
}

#[test]
fn optimizer_state_round_trip_resumes_exactly() {
    let d = Scratch::new("optim");
    let a = Gpt::new(&mut Init::new(3), cfg(1, 8));
    let mut oa = Adam::new(a.named_parameters(), AdamConfig::adamw(1e-2, 0.1)).unwrap();
    train_step(&a, &mut oa);
    train_step(&a, &mut oa);
    save_model(&a, d.join("m.safetensors"), &HashMap::new()).unwrap();
    checkpoint::save_optimizer(&oa, d.join("o.safetensors")).unwrap();

    let b = Gpt::new(&mut Init::new(4), cfg(1, 8));
    let mut ob = Adam::new(b.named_parameters(), AdamConfig::adamw(1e-2, 0.1)).unwrap();
    load_model(&b, d.join("m.safetensors")).unwrap();
    checkpoint::load_optimizer(&mut ob, d.join("o.safetensors")).unwrap();
    assert_eq!(ob.step_count("head.weight"), 2);
    assert_eq!(ob.state_bytes(), oa.state_bytes());
    train_step(&a, &mut oa);
    train_step(&b, &mut ob);
    assert_eq!(logits(&a), logits(&b));

    // Optimizer files for another model are refused with the file's name.
    let other = Gpt::new(&mut Init::new(4), cfg(1, 16));
    let mut oo = Adam::new(other.named_parameters(), AdamConfig::adamw(1e-2, 0.1)).unwrap();
    let e = checkpoint::load_optimizer(&mut oo, d.join("o.safetensors")).unwrap_err().to_string();
    assert!(e.contains("o.safetensors: at optimizer state") && e.contains("has shape [13, 8]"), "{e}");
    let mut state = HashMap::new();
    state.insert("nope.exp_avg".to_string(), Array::zeros([1], plies_autodiff::DType::F32, Device::Cpu).unwrap());
    let e = ob.load_state_dict(&state).unwrap_err().to_string();
    assert!(e.contains("match no parameter of this optimizer: `nope.exp_avg`"), "{e}");
}

#[test]
fn unsupported_dtypes_name_the_tensor() {
    let d = Scratch::new("dtype");
    let path = d.join("bf16.safetensors");
    // A two-element BF16 tensor written directly in the safetensors layout.
    let header = br#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    std::fs::write(&path, bytes).unwrap();
    let e = checkpoint::load_tensors(&path, Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("bf16.safetensors: at tensor `w`: dtype BF16 is not supported"), "{e}");
}
