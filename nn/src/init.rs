//! Parameter creation: where parameters live (dtype, device), the seeded generator they are
//! drawn from, and the standard initialisations with PyTorch's fan conventions.

use plies_autodiff::rng::Rng;
use plies_autodiff::{Array, DType, Device, Distribution, Result, Shape, Tensor};

/// How to fill a new parameter. Fans follow PyTorch: for a weight `[out, in, k...]`,
/// fan_in = in * prod(k) and fan_out = out * prod(k).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Initializer {
    Constant(f64),
    Uniform {
        lo: f64,
        hi: f64,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    /// U(-b, b) with b = gain * sqrt(3 / fan_in) (He et al.).
    KaimingUniform {
        gain: f64,
    },
    /// N(0, gain^2 / fan_in).
    KaimingNormal {
        gain: f64,
    },
    /// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio).
    XavierUniform {
        gain: f64,
    },
    /// N(0, gain^2 * 2 / (fan_in + fan_out)).
    XavierNormal {
        gain: f64,
    },
}

impl Initializer {
    pub const ZEROS: Initializer = Initializer::Constant(0.0);
    pub const ONES: Initializer = Initializer::Constant(1.0);

    /// The gain for ReLU layers, sqrt(2).
    pub fn relu_gain() -> f64 {
        std::f64::consts::SQRT_2
    }

    /// PyTorch's default for Linear and Conv weights: kaiming_uniform with a = sqrt(5),
    /// which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    pub fn torch_default() -> Initializer {
        Initializer::KaimingUniform { gain: (1.0f64 / 3.0).sqrt() }
    }

    /// PyTorch's default for Linear and Conv biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    /// the fan_in of the weight.
    pub fn torch_bias(fan_in: usize) -> Initializer {
        let b = if fan_in > 0 { 1.0 / (fan_in as f64).sqrt() } else { 0.0 };
        Initializer::Uniform { lo: -b, hi: b }
    }

    /// The distribution to draw from for a tensor of `shape`.
    pub fn distribution(&self, shape: &Shape) -> Distribution {
        let (fan_in, fan_out) = fans(shape);
        let (fi, fo) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let uniform = |b: f64| Distribution::Uniform { lo: -b, hi: b };
        let normal = |std: f64| Distribution::Normal { mean: 0.0, std };
        match *self {
            Initializer::Constant(v) => Distribution::Uniform { lo: v, hi: v },
            Initializer::Uniform { lo, hi } => Distribution::Uniform { lo, hi },
            Initializer::Normal { mean, std } => Distribution::Normal { mean, std },
            Initializer::KaimingUniform { gain } => uniform(gain * (3.0 / fi).sqrt()),
            Initializer::KaimingNormal { gain } => normal(gain / fi.sqrt()),
            Initializer::XavierUniform { gain } => uniform(gain * (6.0 / (fi + fo)).sqrt()),
            Initializer::XavierNormal { gain } => normal(gain * (2.0 / (fi + fo)).sqrt()),
        }
    }
}

/// (fan_in, fan_out) of a weight shape, as PyTorch computes them.
pub fn fans(shape: &Shape) -> (usize, usize) {
    let d = shape.dims();
    match d.len() {
        0 => (1, 1),
        1 => (d[0], d[0]),
        _ => {
            let field: usize = d[2..].iter().product();
            (d[1] * field, d[0] * field)
        }
    }
}

/// Where new parameters go and the generator they are drawn from. Building the same model
/// from `Init::new(seed)` twice gives bit-identical parameters.
#[derive(Clone, Debug)]
pub struct Init {
    pub rng: Rng,
    pub dtype: DType,
    pub device: Device,
}

impl Init {
    /// f32 parameters on the CPU.
    pub fn new(seed: u64) -> Self {
        Init { rng: Rng::new(seed), dtype: DType::F32, device: Device::Cpu }
    }

    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    pub fn with_device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// A new trainable parameter of `shape` filled by `init`.
    pub fn try_param(&mut self, shape: impl Into<Shape>, init: Initializer) -> Result<Tensor> {
        let shape = shape.into();
        let value = match init {
            Initializer::Constant(v) => Array::full(shape, v, self.dtype, self.device)?,
            _ => Array::random(shape.clone(), init.distribution(&shape), self.rng.next_key(), self.dtype, self.device)?,
        };
        Ok(Tensor::param(value))
    }

    #[track_caller]
    pub fn param(&mut self, shape: impl Into<Shape>, init: Initializer) -> Tensor {
        match self.try_param(shape, init) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// A generator for a module's own randomness (e.g. dropout), split off this one.
    pub fn fork_rng(&mut self) -> Rng {
        Rng::new(self.rng.next_key())
    }
}
