//! Training-state files (`TrainState::save`): a safetensors file whose tensors are the model,
//! the optimizer and the run's series, and whose metadata holds the scalar state as JSON. It
//! takes every safetensors corruption, and corruptions of the JSON fields a resume reads.

use super::checkpoints::{
    assemble, length_field, semantic as safetensors_semantic, sizes, split, verify_arrays, PER_HEADER_BYTE,
};
use super::mutate::Field;
use super::{Expect, Format, Loaded, SLACK};
use plies_autodiff::rng::Rng;
use plies_autodiff::{Array, Device, Tensor};
use plies_nn::checkpoint::{RunMetrics, TrainState, STATE_KEY};
use plies_nn::data::Position;
use plies_nn::optim::{Adam, AdamConfig, Optimizer};
use plies_nn::prelude::*;
use serde_json::{json, Value};
use std::any::Any;
use std::cell::RefCell;
use std::path::Path;

/// A model with a dropout generator, so the state carries a module generator too.
fn model(seed: u64) -> Sequential {
    let mut init = Init::new(seed);
    Sequential::new()
        .push(Linear::new(&mut init, 4, 3, true))
        .push(Dropout::new(&mut init, 0.25))
        .push(Linear::new(&mut init, 3, 2, true))
}

pub struct States {
    model: Sequential,
    opt: RefCell<Adam>,
}

impl States {
    pub fn new() -> States {
        let model = model(1);
        let opt = Adam::new(model.named_parameters(), AdamConfig::adamw(1e-2, 0.01)).unwrap();
        States { model, opt: RefCell::new(opt) }
    }
}

/// What one load gives back: the arrays it assigned (under the file's names) and the state.
struct Out {
    arrays: Vec<(String, Array)>,
    state: TrainState,
}

impl Format for States {
    fn name(&self) -> &'static str {
        "training state"
    }
    fn file_name(&self) -> &'static str {
        "state-5.safetensors"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        let m = model(2);
        let mut opt = Adam::new(m.named_parameters(), AdamConfig::adamw(1e-2, 0.01)).unwrap();
        let x = Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, 1.0], [2, 4], Device::Cpu);
        let y = Tensor::from_vec(vec![1i32, 0], [2], Device::Cpu);
        for _ in 0..2 {
            m.forward(&x).cross_entropy(&y).backward().unwrap();
            opt.step().unwrap();
            opt.zero_grad();
        }
        let full = TrainState {
            run: "fuzz".into(),
            metrics: RunMetrics {
                train: vec![(1.0, 0.69), (2.0, 0.5)],
                evals: vec![("val_loss".into(), vec![(2.0, 0.6)])],
                log_bytes: 120,
                log_hash: 0xdead_beef,
                elapsed_s: 1.5,
            },
            ..TrainState::at(5)
                .with_loader(Position { epoch: 1, batch: 2 })
                .with_rng("batches", &Rng::at(3, 17))
                .with_value("best", 0.5)
        };
        let bare = TrainState { run: "fuzz".into(), ..TrainState::at(0) };
        let write = |s: &TrainState| super::checkpoints::write_seed(|p| s.save(p, &m, &opt).unwrap());
        vec![write(&full), write(&bare)]
    }
    fn fields(&self, seed: &[u8]) -> Vec<Field> {
        length_field(seed)
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        if variant.is_multiple_of(2) {
            // NaN and Inf are legal in the model, the moments and the series; step counts and
            // learning rates are not exercised with them.
            let nan_ok = |k: &str| {
                k.starts_with("model.") || (k.starts_with("optimizer.") && !k.ends_with(".step")) || k == "train.loss"
            };
            return safetensors_semantic(bytes, variant / 2, p, &nan_ok);
        }
        // The JSON scalar state: every field a resume reads, made wrong.
        let (mut pairs, data) = split(bytes)?;
        let meta = pairs.iter_mut().find(|(k, _)| k == "__metadata__")?;
        let mut st: Value = serde_json::from_str(meta.1[STATE_KEY].as_str()?).ok()?;
        st.as_object()?;
        let change: (&str, Value) = match (variant / 2) % 12 {
            0 => ("version", json!(2)),
            1 => ("step", json!(-1)),
            2 => ("step", json!("five")),
            3 => ("loader", json!({"epoch": "one", "batch": 2})),
            4 => ("rngs", json!({"batches": {"seed": -3, "draws": 1}})),
            5 => ("module_rngs", json!({})),
            6 => ("module_rngs", json!({"nowhere": {"seed": 1, "draws": 0}, "1": {"seed": 1, "draws": 0}})),
            7 => ("evals", json!(["val_loss", "absent"])),
            8 => ("log", json!({"bytes": 1})),
            9 => ("run", json!(7)),
            10 => {
                let field =
                    ["version", "step", "loader", "rngs", "module_rngs", "evals", "log", "run"][(p % 8) as usize];
                st.as_object_mut()?.remove(field);
                meta.1[STATE_KEY] = json!(st.to_string());
                return Some((assemble(&pairs, &data), Expect::Fails));
            }
            _ => {
                meta.1[STATE_KEY] = json!(["{", "", "[]", "null", "{\"version\":1}"][(p % 5) as usize]);
                return Some((assemble(&pairs, &data), Expect::Fails));
            }
        };
        st[change.0] = change.1;
        meta.1[STATE_KEY] = json!(st.to_string());
        Some((assemble(&pairs, &data), Expect::Fails))
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        let mut opt = self.opt.borrow_mut();
        let state = TrainState::load(path, &self.model, &mut *opt)?;
        let mut arrays: Vec<(String, Array)> =
            self.model.state_dict().into_iter().map(|(k, a)| (format!("model.{k}"), a)).collect();
        arrays.extend(opt.state_dict().into_iter().map(|(k, a)| (format!("optimizer.{k}"), a)));
        Ok(Box::new(Out { arrays, state }))
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        let out = out.downcast_ref::<Out>().ok_or("not a loaded state")?;
        verify_arrays(bytes, &out.arrays, false)?;
        // The loss series comes back bit for bit (NaN payloads aside, which compare as NaN).
        let (pairs, data) = split(bytes).ok_or("no header")?;
        let (_, v) = pairs.iter().find(|(k, _)| k == "train.loss").ok_or("no train.loss in a loaded file")?;
        let want = super::checkpoints::decode_entry(v, &data)?;
        let got: Vec<f64> = out.state.metrics.train.iter().flat_map(|&(s, l)| [s, l]).collect();
        let same = |a: &f64, b: &f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        if got.len() != want.len() || !got.iter().zip(&want).all(|(a, b)| same(a, b)) {
            return Err(format!("train.loss: got {got:?}, the file holds {want:?}"));
        }
        Ok(())
    }
    fn bound(&self, bytes: &[u8], _: Option<&dyn Any>) -> usize {
        // The safetensors load (file, values, bookkeeping), the JSON state parsed from the
        // header (paid for by header bytes), the optimizer's conversion of its state (at most
        // D again) and the returned arrays' names.
        let (h, d) = sizes(bytes);
        bytes.len() + 2 * d + 3 * PER_HEADER_BYTE * h + SLACK
    }
}
