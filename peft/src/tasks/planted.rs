//! The planted-teacher task: a teacher that is the base model plus a low-rank change in
//! chosen blocks, and a student distilled to it by KL divergence. Which layers matter is
//! known by construction, so a layer-importance method can be checked against the truth.

use plies_autodiff::rng::Rng;
use plies_autodiff::{no_grad, Array, Distribution, Error, Result, Tensor};
use plies_nn::data::{CharDataset, Dataset};
use plies_nn::layers::Gpt;
use plies_nn::{Init, Layer, Module};

/// The change planted into the teacher.
#[derive(Clone, Debug, PartialEq)]
pub struct Plant {
    /// Block indices (0-based) that change.
    pub blocks: Vec<usize>,
    pub rank: usize,
    /// The change's Frobenius norm as a fraction of the weight's.
    pub strength: f64,
    /// Module names inside a block whose weights change (`attn.qkv`, `mlp.fc1`, ...).
    pub targets: Vec<String>,
    pub seed: u64,
}

impl Plant {
    /// Rank 4 changes of relative size `strength` in every projection of `blocks`.
    pub fn new(blocks: &[usize], strength: f64, seed: u64) -> Plant {
        let targets = ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"].map(String::from).to_vec();
        Plant { blocks: blocks.to_vec(), rank: 4, strength, targets, seed }
    }
}

/// A copy of `src` with its own parameter storage, frozen.
pub fn copy_gpt(src: &Gpt, seed: u64) -> Result<Gpt> {
    let device = src.tok_emb.weight.device();
    let copy = Gpt::new(&mut Init::new(seed).with_device(device), src.config.clone());
    let values: Vec<Array> = src.named_parameters().iter().map(|p| p.tensor.value()).collect();
    let mut err = None;
    let mut i = 0;
    copy.for_each_param(&mut |p| {
        // mul_scalar writes a fresh buffer: the copy never shares storage with `src`.
        let r = values[i].mul_scalar(1.0).and_then(|v| p.tensor.set_value(v));
        if let (Err(e), None) = (r, &err) {
            err = Some(Error::invalid("copy_gpt", format!("copying `{}`: {e}", p.name)));
        }
        p.tensor.set_requires_grad(false);
        i += 1;
    });
    err.map_or(Ok(copy), Err)
}

/// Add `strength * |W| * U V^T / |U V^T|` (U, V Gaussian of rank `plant.rank`) to each target
/// weight W of the planted blocks of `teacher`.
pub fn plant(teacher: &Gpt, plant: &Plant) -> Result<()> {
    let n = teacher.blocks.len();
    if let Some(&b) = plant.blocks.iter().find(|&&b| b >= n) {
        return Err(Error::invalid("plant", format!("block {b} does not exist (the model has {n} blocks)")));
    }
    if plant.rank == 0 || plant.blocks.is_empty() || plant.targets.is_empty() {
        return Err(Error::invalid("plant", "needs a rank >= 1, at least one block and one target"));
    }
    let mut rng = Rng::new(plant.seed);
    let mut planted = 0;
    let names: Vec<String> =
        plant.blocks.iter().flat_map(|b| plant.targets.iter().map(move |t| format!("blocks.{b}.{t}.weight"))).collect();
    for p in teacher.named_parameters() {
        if !names.contains(&p.name) {
            continue;
        }
        let w = p.tensor.value();
        let (out, inp) = (w.dims()[0], w.dims()[1]);
        let normal = Distribution::Normal { mean: 0.0, std: 1.0 };
        let u = Array::random([out, plant.rank], normal, rng.next_key(), w.dtype(), w.device())?;
        let v = Array::random([plant.rank, inp], normal, rng.next_key(), w.dtype(), w.device())?;
        let delta = u.matmul(&v)?;
        let norm = |a: &Array| -> Result<f64> { Ok(a.to_vec::<f64>()?.iter().map(|x| x * x).sum::<f64>().sqrt()) };
        let scale = plant.strength * norm(&w)? / norm(&delta)?;
        p.tensor.set_value(w.add(&delta.mul_scalar(scale)?)?)?;
        planted += 1;
    }
    if planted != names.len() {
        return Err(Error::invalid(
            "plant",
            format!("found {planted} of the {} target weights {names:?}", names.len()),
        ));
    }
    Ok(())
}

/// Mean over positions of KL(teacher || student) from logits `[.., vocab]`; the teacher's
/// side carries no gradient.
pub fn kl_to_teacher(student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    if student.shape() != teacher.shape() {
        return Err(Error::ShapeMismatch { op: "kl_to_teacher", lhs: student.shape(), rhs: teacher.shape() });
    }
    let (p, log_p) = no_grad(|| -> Result<(Tensor, Tensor)> {
        let t = teacher.detach();
        Ok((t.try_softmax(-1)?, t.try_log_softmax(-1)?))
    })?;
    let positions = student.elem_count() / student.dims().last().copied().unwrap_or(1).max(1);
    let log_q = student.try_log_softmax(-1)?;
    p.try_mul(&log_p.try_sub(&log_q)?)?.try_sum_all()?.try_mul_scalar(1.0 / positions as f64)
}

/// Mean KL(teacher || student) per position over the first `max_windows` windows of `text`
/// (evaluation mode, no graph).
pub fn eval_kl(student: &Gpt, teacher: &Gpt, text: &CharDataset, max_windows: usize, batch: usize) -> Result<f64> {
    let device = student.tok_emb.weight.device();
    let windows = text.windows(student.config.context)?;
    let n = windows.len().min(max_windows);
    let idx: Vec<usize> = (0..n).collect();
    let (was_s, was_t) = (student.is_training(), teacher.is_training());
    student.eval();
    teacher.eval();
    let mut total = 0.0;
    let mut count = 0usize;
    let out = (|| -> Result<()> {
        for chunk in idx.chunks(batch.max(1)) {
            let b = windows.batch(chunk, device)?;
            let kl = no_grad(|| -> Result<Tensor> {
                kl_to_teacher(&student.try_forward(&b.inputs)?, &teacher.try_forward(&b.inputs)?)
            })?;
            total += kl.item() * chunk.len() as f64;
            count += chunk.len();
        }
        Ok(())
    })();
    student.train(was_s);
    teacher.train(was_t);
    out?;
    Ok(total / count.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plies_autodiff::Device;
    use plies_nn::layers::GptConfig;

    fn tiny() -> GptConfig {
        GptConfig { vocab_size: 9, context: 8, d_model: 16, n_layer: 4, n_head: 2, ..GptConfig::char_small() }
    }

    #[test]
    fn planting_changes_only_the_chosen_blocks_by_the_asked_size() {
        let base = Gpt::new(&mut Init::new(1), tiny());
        let teacher = copy_gpt(&base, 2).unwrap();
        plant(&teacher, &Plant::new(&[1, 3], 0.5, 4)).unwrap();
        let before = base.named_parameters();
        for (p, q) in teacher.named_parameters().iter().zip(&before) {
            let (a, b) = (p.tensor.to_vec::<f64>(), q.tensor.to_vec::<f64>());
            let planted = (p.name.starts_with("blocks.1.") || p.name.starts_with("blocks.3."))
                && p.name.ends_with(".weight")
                && !p.name.contains(".ln");
            if planted {
                let d: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
                let w: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
                assert!((d / w - 0.5).abs() < 1e-4, "{}: relative change {}", p.name, d / w);
            } else {
                assert_eq!(a, b, "{} unchanged", p.name);
            }
        }
        assert!(plant(&teacher, &Plant::new(&[4], 0.5, 0)).is_err());
    }

    #[test]
    fn kl_is_zero_for_equal_models_positive_otherwise_and_has_the_soft_target_gradient() {
        let s = Tensor::param(Array::from_vec(vec![0.1f32, 0.5, -0.3, 1.0, 0.0, 0.0], [2, 3], Device::Cpu).unwrap());
        let t = Tensor::from_vec(vec![0.2f32, 0.1, 0.0, -1.0, 0.5, 0.3], [2, 3], Device::Cpu);
        assert!(kl_to_teacher(&s, &s.detach()).unwrap().item().abs() < 1e-7);
        let kl = kl_to_teacher(&s, &t).unwrap();
        assert!(kl.item() > 0.0);
        kl.backward().unwrap();
        // d KL / d s = (softmax(s) - softmax(t)) / positions
        let g = s.grad().unwrap().to_vec::<f64>().unwrap();
        let sm = |v: &[f64]| {
            let z: f64 = v.iter().map(|x| x.exp()).sum();
            v.iter().map(|x| x.exp() / z).collect::<Vec<f64>>()
        };
        let (sv, tv) = (s.to_vec::<f64>(), t.to_vec::<f64>());
        for r in 0..2 {
            let (q, p) = (sm(&sv[3 * r..3 * r + 3]), sm(&tv[3 * r..3 * r + 3]));
            for c in 0..3 {
                assert!((g[3 * r + c] - (q[c] - p[c]) / 2.0).abs() < 1e-6, "gradient {g:?}");
            }
        }
        assert!(kl_to_teacher(&s, &Tensor::from_vec(vec![0f32; 3], [1, 3], Device::Cpu)).is_err());
    }
}
