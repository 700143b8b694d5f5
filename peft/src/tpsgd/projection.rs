//! The fixed random projections of the label, one per hidden stage.
//!
//! Stage i with `H` units (features, channels or hidden state) and `C` classes gets a matrix
//! `P_i` (`H x C`) drawn once from the trainer's seed and never trained. It is stored class
//! by class, `[C, H]`, so the projection of a one-hot label `y = e_c` (`P_i y`, column c of
//! `P_i`) is row c, and a batch's projections are one `index_select`.
//!
//! Draw: every entry `u ~ U(-1, 1)` from the counter-based generator, keyed by the seed and
//! the stage index only (so a stage's matrix does not depend on the other stages), drawn in
//! f32 on the CPU and then converted to the model's dtype and device, so that every backend
//! and dtype sees the same numbers.
//!
//! Scaling rule (tpSGD): the entries are mapped affinely from (-1, 1) onto the activation's
//! target range `(lo, hi)` of [`target_range`], `p = (lo + hi) / 2 + u (hi - lo) / 2`, so
//! every target lies inside the activation's range. The ranges stop short of saturation
//! (tanh: ±0.9, sigmoid: 0.05..0.95): near a bound the activation's derivative, and with it
//! the local gradient, vanishes. DRTP uses the raw `u` (its error signal is not a target).

use super::Rule;
use plies_autodiff::rng::Rng;
use plies_autodiff::{Array, DType, Device, Distribution, Error, Result, Tensor};
use plies_nn::layers::Activation;

/// Where tpSGD's targets lie for a stage with activation `act`.
pub fn target_range(act: Activation) -> (f64, f64) {
    match act {
        Activation::Tanh => (-0.9, 0.9),
        Activation::Sigmoid => (0.05, 0.95),
        // Unbounded above, zero (or about zero) below: the unit interval.
        Activation::Relu | Activation::GeluTanh | Activation::GeluErf | Activation::Silu => (0.0, 1.0),
        Activation::Identity => (-1.0, 1.0),
    }
}

/// One stage's projection matrix, `[C, H]` (row c is `P_i e_c`).
#[derive(Clone, Debug)]
pub struct Projection {
    per_class: Array,
}

impl Projection {
    /// The matrix of hidden stage `stage` (0-based) with `width` units for `classes` classes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seed: u64,
        stage: usize,
        width: usize,
        classes: usize,
        rule: Rule,
        act: Activation,
        dtype: DType,
        device: Device,
    ) -> Result<Projection> {
        if width == 0 || classes == 0 {
            return Err(Error::invalid(
                "tpsgd projection",
                format!("stage {stage}: needs at least one unit and one class, got {width} units, {classes} classes"),
            ));
        }
        let mut rng = Rng::new(seed);
        let mut key = rng.next_key();
        for _ in 0..stage {
            key = rng.next_key();
        }
        let u =
            Array::random([classes, width], Distribution::Uniform { lo: -1.0, hi: 1.0 }, key, DType::F32, Device::Cpu)?;
        let p = match rule {
            Rule::TargetProjection => {
                let (lo, hi) = target_range(act);
                u.to_dtype(DType::F64)?.affine((hi - lo) / 2.0, (lo + hi) / 2.0)?
            }
            Rule::Drtp => u,
        };
        Ok(Projection { per_class: p.to_dtype(dtype)?.to_device(device)? })
    }

    /// `[C, H]`: row c is the projection of the one-hot label of class c.
    pub fn per_class(&self) -> &Array {
        &self.per_class
    }

    pub fn width(&self) -> usize {
        self.per_class.dims()[1]
    }

    pub fn classes(&self) -> usize {
        self.per_class.dims()[0]
    }

    /// `P_i y` for each label of `labels` (i32 `[b]`), broadcast to the shape of the stage's
    /// activation `like` (`[b, H]`, or `[b, H, ..]` for a feature map: one value per channel).
    pub fn signal(&self, labels: &Tensor, like: &Tensor) -> Result<Array> {
        let d = like.dims();
        if d.len() < 2 || d[0] != labels.elem_count() || d[1] != self.width() {
            return Err(Error::invalid(
                "tpsgd projection",
                format!(
                    "activation {} does not fit {} labels and a projection of {} units ([batch, units, ..] expected)",
                    like.shape(),
                    labels.elem_count(),
                    self.width()
                ),
            ));
        }
        let ids = labels.value();
        let rows = self.per_class.index_select(0, &ids.reshape([ids.elem_count()])?)?;
        if d.len() == 2 {
            return Ok(rows);
        }
        let mut keep = vec![d[0], d[1]];
        keep.resize(d.len(), 1);
        rows.reshape(keep)?.broadcast_to(like.shape())?.contiguous()
    }
}
