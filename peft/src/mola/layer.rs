//! One Linear with MoLA experts: E LoRA experts, a bias-free router, top-k routing with
//! renormalised weights, and the routing record the balance loss and usage counts read.

use plies_autodiff::{Array, Device, Error, Result, Tensor};
use plies_nn::layers::{Dropout, Linear, LinearAdapter};
use plies_nn::{Init, Initializer, Layer, Module, Scope};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

/// One LoRA expert: `[r, in]` and `[out, r]`.
pub struct Expert {
    pub a: Tensor,
    pub b: Tensor,
}

/// What the last forward routed: the router probabilities `[n, E]` (in the graph, so the
/// balance loss trains the router) and how many of the n*k assignments each expert got.
#[derive(Clone)]
pub struct Routing {
    pub probs: Tensor,
    pub counts: Vec<usize>,
    pub top_k: usize,
}

/// The experts' `[m_e, r]` products after A (with the expert index) and the token row of
/// every one of their rows, in that order.
type Routed = (Vec<(usize, Tensor)>, Tensor);

/// What the Mola handle attaches to a target Linear.
pub struct MolaLayer {
    pub path: String,
    /// The layer index of the base weight.
    pub layer: usize,
    pub r: usize,
    pub alpha: f64,
    pub top_k: usize,
    /// `[E, in]`, no bias.
    pub router: Tensor,
    pub experts: Vec<Expert>,
    /// Applied to each expert's gathered input (one draw per expert, as the reference
    /// code calls its dropout once per expert).
    pub dropout: Dropout,
    pub config_scaling: f64,
    scaling: AtomicU64,
    disabled: AtomicBool,
    last: RwLock<Option<Routing>>,
    usage: Mutex<Vec<u64>>,
}

/// Per row of `probs` (`n` rows of `e`), the `k` largest entries' column indices, largest
/// first; ties go to the lower index.
pub fn top_k(probs: &[f64], e: usize, k: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(probs.len() / e.max(1) * k);
    let mut order: Vec<usize> = Vec::with_capacity(e);
    for row in probs.chunks(e.max(1)) {
        order.clear();
        order.extend(0..e);
        // Stable sort keeps the lower index first among equal probabilities.
        order.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap_or(std::cmp::Ordering::Equal));
        out.extend_from_slice(&order[..k.min(e)]);
    }
    out
}

impl MolaLayer {
    /// Draw the router (torch's Linear default) and the experts (A kaiming-uniform, B zero,
    /// or both random for `InitLora::Random`) in the base weight's dtype and device.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        path: &str,
        layer: usize,
        base: &Tensor,
        n_experts: usize,
        m: crate::lora::ModuleLora,
        top_k: usize,
        dropout: f64,
        random_b: bool,
        init: &mut Init,
    ) -> Result<MolaLayer> {
        let mut init = Init { rng: init.fork_rng(), dtype: base.dtype(), device: base.device() };
        let d = base.dims();
        let (n_in, n_out) = (d[1], d[0]);
        let kaiming = Initializer::torch_default();
        let router = init.try_param([n_experts, n_in], kaiming)?;
        let mut experts = Vec::with_capacity(n_experts);
        for _ in 0..n_experts {
            let a = init.try_param([m.r, n_in], kaiming)?;
            let b = init.try_param([n_out, m.r], if random_b { kaiming } else { Initializer::ZEROS })?;
            experts.push(Expert { a, b });
        }
        Ok(MolaLayer {
            path: path.to_string(),
            layer,
            r: m.r,
            alpha: m.alpha,
            top_k,
            router,
            experts,
            dropout: Dropout::new(&mut init, dropout),
            config_scaling: m.scaling,
            scaling: AtomicU64::new(m.scaling.to_bits()),
            disabled: AtomicBool::new(false),
            last: RwLock::new(None),
            usage: Mutex::new(vec![0; n_experts]),
        })
    }

    pub fn n_experts(&self) -> usize {
        self.experts.len()
    }

    /// The experts' scaling in force (alpha/r unless changed at run time).
    pub fn scaling(&self) -> f64 {
        f64::from_bits(self.scaling.load(Ordering::Relaxed))
    }

    pub fn set_scaling(&self, s: f64) {
        self.scaling.store(s.to_bits(), Ordering::Relaxed)
    }

    pub(crate) fn set_disabled(&self, on: bool) {
        self.disabled.store(on, Ordering::Relaxed)
    }

    /// The routing of the last forward, if any.
    pub fn last_routing(&self) -> Option<Routing> {
        self.last.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Assignments per expert summed over every forward since the last reset.
    pub fn usage(&self) -> Vec<u64> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn reset_usage(&self) {
        self.usage.lock().unwrap_or_else(|e| e.into_inner()).iter_mut().for_each(|u| *u = 0);
    }

    /// Each expert's `s B A` `[out, in]` with the config's scaling, on the host in f64.
    pub fn deltas(&self) -> Result<Vec<Array>> {
        let s = self.config_scaling;
        self.experts
            .iter()
            .map(|e| {
                e.b.value()
                    .to_dtype(plies_core::DType::F64)?
                    .matmul(&e.a.value().to_dtype(plies_core::DType::F64)?)?
                    .mul_scalar(s)
            })
            .collect()
    }

    /// The mean Frobenius distance over pairs of experts' `(alpha/r) B A` (0 with one
    /// expert): low when the experts learned the same change.
    pub fn redundancy(&self) -> Result<f64> {
        let d: Vec<Vec<f64>> = self.deltas()?.iter().map(|a| a.to_vec::<f64>()).collect::<Result<_>>()?;
        let mut sum = 0.0;
        let mut pairs = 0usize;
        for i in 0..d.len() {
            for j in i + 1..d.len() {
                sum += d[i].iter().zip(&d[j]).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
                pairs += 1;
            }
        }
        Ok(if pairs == 0 { 0.0 } else { sum / pairs as f64 })
    }

    /// Every trainable tensor under its file key suffix (`lora_router.weight`,
    /// `lora_A.<e>.weight`, `lora_B.<e>.weight`).
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        let mut v = vec![("lora_router.weight".to_string(), self.router.clone())];
        for (e, x) in self.experts.iter().enumerate() {
            v.push((format!("lora_A.{e}.weight"), x.a.clone()));
            v.push((format!("lora_B.{e}.weight"), x.b.clone()));
        }
        v
    }

    fn passthrough(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Route rows `x` `[n, in]` and run each expert's A on the tokens routed to it: per
    /// expert with tokens, `(w s) (A dropout(x_e))` `[m_e, r]` (the routing weight and the
    /// scaling on the narrow product), and the token rows of all of them in that order.
    /// None for no rows.
    fn route(&self, x: &Tensor) -> Result<Option<Routed>> {
        let n = x.dims()[0];
        let e = self.n_experts();
        let k = self.top_k;
        let device = x.device();
        if n == 0 {
            return Ok(None);
        }
        let probs = x.try_linear(&self.router, None)?.try_softmax(1)?;
        let idx = top_k(&probs.try_to_vec::<f64>()?, e, k);
        let picked = Tensor::try_from_vec(idx.iter().map(|&i| i as i32).collect::<Vec<_>>(), [n, k], device)?;
        let w = probs.try_gather(1, &picked)?;
        let w = w.try_div(&w.try_sum(1, true)?)?.try_reshape([n * k])?;
        // Assignments grouped by expert: the token row and its slot in the flat weights.
        let mut rows: Vec<Vec<i32>> = vec![Vec::new(); e];
        let mut slots: Vec<Vec<i32>> = vec![Vec::new(); e];
        for (p, &ex) in idx.iter().enumerate() {
            rows[ex].push((p / k) as i32);
            slots[ex].push(p as i32);
        }
        let counts: Vec<usize> = rows.iter().map(Vec::len).collect();
        {
            let mut u = self.usage.lock().unwrap_or_else(|e| e.into_inner());
            u.iter_mut().zip(&counts).for_each(|(u, &c)| *u += c as u64);
        }
        *self.last.write().unwrap_or_else(|e| e.into_inner()) = Some(Routing { probs, counts, top_k: k });
        let s = self.scaling();
        let mut parts = Vec::with_capacity(e);
        let mut all_rows = Vec::with_capacity(n * k);
        for (ex, expert) in self.experts.iter().enumerate() {
            let m = rows[ex].len();
            if m == 0 {
                continue;
            }
            let r = Tensor::try_from_vec(rows[ex].clone(), [m], device)?;
            let sl = Tensor::try_from_vec(slots[ex].clone(), [m], device)?;
            let xe = self.dropout.try_forward(&x.try_index_select(0, &r)?)?;
            let we = w.try_index_select(0, &sl)?.try_mul_scalar(s)?.try_unsqueeze(1)?;
            parts.push((ex, xe.try_matmul(&expert.a.try_t()?)?.try_mul(&we)?));
            all_rows.extend_from_slice(&rows[ex]);
        }
        Ok(Some((parts, Tensor::try_from_vec(all_rows, [n * k], device)?)))
    }

    /// `base` `[n, out_i]` plus every expert's `after_a B_e[rows]^T`, B's rows `start..start +
    /// out_i` times `scale`, added back at the token rows with one index_add.
    fn add_back(&self, base: &Tensor, routed: &Routed, start: usize, scale: f64) -> Result<Tensor> {
        let (parts, at) = routed;
        let width = base.dims()[1];
        let mut outs = Vec::with_capacity(parts.len());
        for (ex, after_a) in parts {
            let mut b = self.experts[*ex].b.clone();
            if width != b.dims()[0] {
                b = b.try_narrow(0, start, width)?;
            }
            if scale != 1.0 {
                b = b.try_mul_scalar(scale)?;
            }
            outs.push(after_a.try_matmul(&b.try_t()?)?);
        }
        let refs: Vec<&Tensor> = outs.iter().collect();
        base.try_index_add(0, at, &Tensor::try_cat(&refs, 0)?)
    }

    /// The same output computed densely: every expert on every token, weighted by the
    /// renormalised top-k weights with zero for unrouted experts (a reference for tests;
    /// costs E times the sparse path).
    pub fn dense_forward(&self, layer: &Linear, x: &Tensor) -> Result<Tensor> {
        let n = x.dims()[0];
        let e = self.n_experts();
        let probs = x.try_linear(&self.router, None)?.try_softmax(1)?;
        let idx = top_k(&probs.try_to_vec::<f64>()?, e, self.top_k);
        let mut mask = vec![0.0f64; n * e];
        for (p, &ex) in idx.iter().enumerate() {
            mask[(p / self.top_k) * e + ex] = 1.0;
        }
        let mask =
            Tensor::try_from_vec(mask, [n, e], Device::Cpu)?.try_to_dtype(x.dtype())?.try_to_device(x.device())?;
        let kept = probs.try_mul(&mask)?;
        let w = kept.try_div(&kept.try_sum(1, true)?)?;
        let mut y = layer.try_base(x, true)?;
        for (ex, expert) in self.experts.iter().enumerate() {
            let we = w.try_narrow(1, ex, 1)?.try_mul_scalar(self.scaling())?;
            let h = x.try_matmul(&expert.a.try_t()?)?.try_matmul(&expert.b.try_t()?)?.try_mul(&we)?;
            y = y.try_add(&h)?;
        }
        Ok(y)
    }
}

impl Module for MolaLayer {
    fn visit(&self, s: &mut Scope<'_>) {
        s.child("lora_dropout", &self.dropout);
        for (name, t) in self.tensors() {
            s.param(&name, &t);
        }
    }
}

impl LinearAdapter for MolaLayer {
    fn try_forward(&self, layer: &Linear, x: &Tensor) -> Result<Tensor> {
        let base = layer.try_base(x, true)?;
        if self.passthrough() {
            return Ok(base);
        }
        self.check(x)?;
        match self.route(x)? {
            Some(routed) => self.add_back(&base, &routed, 0, 1.0),
            None => Ok(base),
        }
    }

    /// Split as the base does: part i is the base's own slice plus the experts' products
    /// with B's rows of that part, so backward never pads the full `[n, out]` gradient.
    fn try_forward_split(&self, layer: &Linear, x: &Tensor, sizes: &[usize], scales: &[f64]) -> Result<Vec<Tensor>> {
        let base = layer.try_base_split(x, sizes, scales)?;
        if self.passthrough() {
            return Ok(base);
        }
        self.check(x)?;
        let Some(routed) = self.route(x)? else { return Ok(base) };
        let mut start = 0;
        let mut out = Vec::with_capacity(base.len());
        for ((y, &n), &si) in base.iter().zip(sizes).zip(scales) {
            out.push(self.add_back(y, &routed, start, si)?);
            start += n;
        }
        Ok(out)
    }

    fn is_passthrough(&self) -> bool {
        self.passthrough()
    }
}

impl MolaLayer {
    fn check(&self, x: &Tensor) -> Result<()> {
        if x.dims().len() != 2 || x.dims()[1] != self.router.dims()[1] {
            return Err(Error::ShapeMismatch { op: "mola", lhs: x.shape(), rhs: self.router.shape() });
        }
        Ok(())
    }
}
