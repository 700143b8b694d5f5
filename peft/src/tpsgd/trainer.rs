//! The local-target trainer: one optimizer per layer, one layer at a time.
//!
//! On each batch, stage i (0-based) runs on its input as a constant, computes its activation
//! `a_i` with a graph over its own parameters only, applies its local signal (tpSGD: descend
//! `loss(a_i, P_i y)`; DRTP: backward from `a_i` with the error `B_i y`), takes its optimizer
//! step, drops its gradients, and passes `a_i` on detached. The head then learns from the
//! cross-entropy. Each layer's graph is gone before the next layer starts, which
//! [`StepReport::nodes_after_update`] shows.
//!
//! The result equals one optimizer over all parameters stepped at the end of the batch (no
//! layer's gradient depends on another layer's update within a batch); stepping each layer
//! at once lets its gradients go before the next layer's forward.

use super::net::{Hidden, LocalNet};
use super::projection::Projection;
use super::{LocalLoss, Rule};
use plies_autodiff::{live_nodes, no_grad, Array, Device, Error, Result, Tensor};
use plies_nn::optim::Optimizer;
use plies_nn::{Layer, Module, NamedParam};

/// What the trainer does with the hidden stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalConfig {
    pub rule: Rule,
    /// tpSGD's local loss (ignored by DRTP).
    pub loss: LocalLoss,
    /// Seed of the projection matrices (see [`Projection::new`]).
    pub seed: u64,
}

impl LocalConfig {
    /// tpSGD with the L2 local loss.
    pub fn tpsgd(seed: u64) -> LocalConfig {
        LocalConfig { rule: Rule::TargetProjection, loss: LocalLoss::L2, seed }
    }

    pub fn drtp(seed: u64) -> LocalConfig {
        LocalConfig { rule: Rule::Drtp, loss: LocalLoss::L2, seed }
    }

    pub fn with_loss(mut self, loss: LocalLoss) -> LocalConfig {
        self.loss = loss;
        self
    }
}

/// What one training step did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// Each hidden stage's local loss (tpSGD, mean over its time steps for an RNN); `None`
    /// under DRTP, which has no loss, and for a frozen stage.
    pub local_losses: Vec<Option<f64>>,
    /// The cross-entropy of the head on this batch.
    pub task_loss: f64,
    /// Graph nodes alive right after each layer's update (hidden stages, then the head), beyond
    /// those alive when the step began: 0 when nothing of that layer's graph was kept.
    pub nodes_after_update: Vec<usize>,
    /// CPU only (`None` elsewhere): the most bytes of CPU storage created during the step and
    /// alive at the start of a backward pass, i.e. the activations and saved values the graph
    /// holds then (plus the stage's input, its target and, at the first step, lazily created
    /// optimizer state and index caches; take it from the second step on).
    pub activation_bytes: Option<u64>,
}

/// Bytes of CPU storage alive above a baseline, at chosen instants.
struct Meter {
    on: bool,
    entry: u64,
    max: u64,
}

impl Meter {
    fn start(device: Device) -> Meter {
        let on = device == Device::Cpu;
        Meter { on, entry: if on { plies_core::cpu::live_bytes() } else { 0 }, max: 0 }
    }

    fn sample(&mut self) {
        if self.on {
            self.max = self.max.max(plies_core::cpu::live_bytes().saturating_sub(self.entry));
        }
    }

    fn bytes(&self) -> Option<u64> {
        self.on.then_some(self.max)
    }
}

/// Builds the optimizer of one layer from its parameters.
pub type MakeOptimizer<'a> = dyn FnMut(Vec<NamedParam>) -> Result<Box<dyn Optimizer>> + 'a;

/// Trains a [`LocalNet`] layer by layer (see the module docs).
pub struct LocalTrainer {
    config: LocalConfig,
    classes: usize,
    /// Per hidden stage, made at the stage's first activation (which gives its width).
    projections: Vec<Option<Projection>>,
    /// Hidden stages, then the head.
    optimizers: Vec<Box<dyn Optimizer>>,
}

impl LocalTrainer {
    /// A trainer for `net` on `classes` classes; `make` builds each layer's optimizer.
    pub fn new(net: &LocalNet, classes: usize, config: LocalConfig, make: &mut MakeOptimizer) -> Result<LocalTrainer> {
        let mut groups: Vec<Vec<NamedParam>> = vec![Vec::new(); net.depth()];
        for p in net.named_parameters() {
            groups[p.layer].push(p);
        }
        for (i, stage) in net.hidden.iter().enumerate() {
            if let Hidden::FeedForward { after, .. } = stage {
                if after.iter().any(|a| a.num_params() > 0) {
                    return Err(Error::invalid(
                        "LocalTrainer",
                        format!(
                            "hidden.{i}: a layer after the activation has parameters, which no local signal reaches"
                        ),
                    ));
                }
            }
        }
        let mut optimizers = Vec::with_capacity(groups.len());
        for (i, g) in groups.into_iter().enumerate() {
            if g.is_empty() {
                let name = if i == net.hidden.len() { "head".to_string() } else { format!("hidden.{i}") };
                return Err(Error::invalid("LocalTrainer", format!("layer {i} (`{name}`) has no parameters")));
            }
            optimizers.push(make(g)?);
        }
        Ok(LocalTrainer { config, classes, projections: vec![None; net.hidden.len()], optimizers })
    }

    pub fn config(&self) -> LocalConfig {
        self.config
    }

    /// Stage i's projection, once its first step has made it.
    pub fn projection(&self, stage: usize) -> Option<&Projection> {
        self.projections.get(stage).and_then(|p| p.as_ref())
    }

    /// The optimizers: hidden stages, then the head.
    pub fn optimizers_mut(&mut self) -> &mut [Box<dyn Optimizer>] {
        &mut self.optimizers
    }

    /// Scale every layer's learning rate (schedules).
    pub fn set_lr_factor(&mut self, factor: f64) {
        for o in &mut self.optimizers {
            o.set_lr_factor(factor);
        }
    }

    /// One batch: inputs `x` and i32 class labels `[b]`.
    pub fn step(&mut self, net: &LocalNet, x: &Tensor, labels: &Tensor) -> Result<StepReport> {
        if net.hidden.len() != self.projections.len() {
            return Err(Error::invalid(
                "LocalTrainer::step",
                format!("built for {} hidden stages, given a net with {}", self.projections.len(), net.hidden.len()),
            ));
        }
        let nodes_at_entry = live_nodes();
        let mut meter = Meter::start(x.device());
        let mut h = x.detach();
        let mut local_losses = Vec::with_capacity(net.hidden.len());
        let mut nodes_after_update = Vec::with_capacity(net.depth());
        for (i, stage) in net.hidden.iter().enumerate() {
            let (out, loss) = match stage {
                Hidden::FeedForward { layer, act, after } => {
                    self.feed_forward(i, layer.as_ref(), *act, after, &h, labels, &mut meter)?
                }
                Hidden::Recurrent(rnn) => self.recurrent(i, rnn, &h, labels, &mut meter)?,
            };
            h = out;
            local_losses.push(loss);
            nodes_after_update.push(live_nodes().saturating_sub(nodes_at_entry));
        }
        let task_loss = {
            let loss = net.head.try_forward(&h)?.try_cross_entropy(labels)?;
            drop(h);
            meter.sample();
            if loss.requires_grad() {
                loss.backward()?;
            }
            loss.item()
        };
        let head = self.optimizers.last_mut().expect("the head's optimizer");
        head.step()?;
        head.zero_grad();
        nodes_after_update.push(live_nodes().saturating_sub(nodes_at_entry));
        Ok(StepReport { local_losses, task_loss, nodes_after_update, activation_bytes: meter.bytes() })
    }

    #[allow(clippy::too_many_arguments)]
    fn feed_forward(
        &mut self,
        i: usize,
        layer: &dyn Layer,
        act: plies_nn::layers::Activation,
        after: &[Box<dyn Layer>],
        x: &Tensor,
        labels: &Tensor,
        meter: &mut Meter,
    ) -> Result<(Tensor, Option<f64>)> {
        let a = act.try_apply(&layer.try_forward(x)?)?;
        let loss = self.local_update(i, act, &a, labels, 1.0, meter)?;
        self.step_layer(i)?;
        let out = no_grad(|| after.iter().try_fold(a.detach(), |h, l| l.try_forward(&h)))?;
        Ok((out, loss))
    }

    /// Each time step's hidden state gets the signal (weighted 1/t, so the stage descends the
    /// mean over time); the previous state enters as a constant. One update per sequence.
    fn recurrent(
        &mut self,
        i: usize,
        rnn: &plies_nn::layers::Rnn,
        x: &Tensor,
        labels: &Tensor,
        meter: &mut Meter,
    ) -> Result<(Tensor, Option<f64>)> {
        let d = x.dims();
        if d.len() != 3 || d[1] == 0 {
            return Err(Error::invalid(
                "tpsgd rnn",
                format!("needs a non-empty [batch, time, input] sequence, got {}", x.shape()),
            ));
        }
        let t = d[1];
        let mut state = Tensor::zeros([d[0], rnn.hidden_size()], x.dtype(), x.device());
        let mut sum = 0.0;
        let mut any = false;
        for s in 0..t {
            let (_, h) = rnn.try_forward_with(&x.try_narrow(1, s, 1)?, Some(&state))?;
            if let Some(l) = self.local_update(i, rnn.nonlinearity, &h, labels, 1.0 / t as f64, meter)? {
                sum += l;
                any = true;
            }
            state = h.detach();
        }
        self.step_layer(i)?;
        Ok((state, any.then_some(sum / t as f64)))
    }

    fn step_layer(&mut self, i: usize) -> Result<()> {
        let o = &mut self.optimizers[i];
        o.step()?;
        o.zero_grad();
        Ok(())
    }

    /// Apply stage i's local signal to its activation `a`, scaled by `weight`; the local
    /// loss (tpSGD), or None (DRTP, or a frozen stage: `a` has no graph).
    fn local_update(
        &mut self,
        i: usize,
        act: plies_nn::layers::Activation,
        a: &Tensor,
        labels: &Tensor,
        weight: f64,
        meter: &mut Meter,
    ) -> Result<Option<f64>> {
        if !a.requires_grad() {
            return Ok(None);
        }
        let c = self.config;
        if self.projections[i].is_none() {
            let width = a.dims().get(1).copied().unwrap_or(0);
            self.projections[i] =
                Some(Projection::new(c.seed, i, width, self.classes, c.rule, act, a.dtype(), a.device())?);
        }
        let signal: Array = self.projections[i].as_ref().expect("made above").signal(labels, a)?;
        match c.rule {
            Rule::TargetProjection => {
                let diff = a.try_sub(&Tensor::new(signal))?;
                let loss = match c.loss {
                    LocalLoss::L2 => diff.try_sqr()?,
                    LocalLoss::L1 => diff.try_abs()?,
                }
                .try_mean_all()?;
                meter.sample();
                let value = loss.item();
                if weight == 1.0 {
                    loss.backward()?;
                } else {
                    loss.try_mul_scalar(weight)?.backward()?;
                }
                Ok(Some(value))
            }
            Rule::Drtp => {
                let batch = a.dims()[0].max(1) as f64;
                let error = signal.mul_scalar(weight / batch)?;
                meter.sample();
                a.backward_with(error)?;
                Ok(None)
            }
        }
    }
}

/// One end-to-end backprop step of `net` with `opt`, reported like a local step (one graph
/// over all layers: `nodes_after_update` has one entry, `local_losses` none).
pub fn backprop_step(net: &dyn Layer, opt: &mut dyn Optimizer, x: &Tensor, labels: &Tensor) -> Result<StepReport> {
    let nodes_at_entry = live_nodes();
    let mut meter = Meter::start(x.device());
    let task_loss = {
        let loss = net.try_forward(x)?.try_cross_entropy(labels)?;
        meter.sample();
        loss.backward()?;
        loss.item()
    };
    opt.step()?;
    opt.zero_grad();
    Ok(StepReport {
        local_losses: Vec::new(),
        task_loss,
        nodes_after_update: vec![live_nodes().saturating_sub(nodes_at_entry)],
        activation_bytes: meter.bytes(),
    })
}
