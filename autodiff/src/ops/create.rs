//! Constructors and randomness: seeded draws and dropout.

use crate::Tensor;
use plies_core::rng::Rng;
use plies_core::{Array, DType, Device, Distribution, Element, Result, Shape};

impl Tensor {
    pub fn try_from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        Ok(Tensor::new(Array::from_vec(data, shape, device)?))
    }

    /// A constant from host data (panics on a length mismatch; see `try_from_vec`).
    ///
    /// ```
    /// use plies_autodiff::{DType, Device, Tensor};
    ///
    /// let t = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], [2, 3], Device::Cpu);
    /// assert_eq!((t.dims(), t.dtype()), (vec![2, 3], DType::I32));
    /// // The fallible twin names the op and both sizes instead of panicking.
    /// let e = Tensor::try_from_vec(vec![1.0f32; 5], [2, 3], Device::Cpu).unwrap_err();
    /// assert!(e.to_string().contains('5') && e.to_string().contains("[2, 3]"), "{e}");
    /// ```
    #[track_caller]
    pub fn from_vec<T: Element>(data: Vec<T>, shape: impl Into<Shape>, device: Device) -> Tensor {
        crate::tensor::ok(Tensor::try_from_vec(data, shape, device))
    }

    #[track_caller]
    pub fn from_slice<T: Element>(data: &[T], shape: impl Into<Shape>, device: Device) -> Tensor {
        Tensor::from_vec(data.to_vec(), shape, device)
    }

    #[track_caller]
    pub fn scalar<T: Element>(v: T, device: Device) -> Tensor {
        Tensor::from_vec(vec![v], Shape::scalar(), device)
    }

    #[track_caller]
    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType, device: Device) -> Tensor {
        Tensor::new(crate::tensor::ok(Array::full(shape, value, dtype, device)))
    }

    #[track_caller]
    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: Device) -> Tensor {
        Tensor::full(shape, 0.0, dtype, device)
    }

    #[track_caller]
    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: Device) -> Tensor {
        Tensor::full(shape, 1.0, dtype, device)
    }

    #[track_caller]
    pub fn zeros_like(&self) -> Tensor {
        Tensor::new(crate::tensor::ok(self.value().zeros_like()))
    }

    #[track_caller]
    pub fn ones_like(&self) -> Tensor {
        Tensor::new(crate::tensor::ok(self.value().ones_like()))
    }

    #[track_caller]
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType, device: Device) -> Tensor {
        Tensor::new(crate::tensor::ok(Array::arange(start, end, step, dtype, device)))
    }

    /// A draw from `dist` using the next key of `rng`.
    pub fn try_random(
        shape: impl Into<Shape>,
        dist: Distribution,
        rng: &mut Rng,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        Ok(Tensor::new(Array::random(shape, dist, rng.next_key(), dtype, device)?))
    }

    /// Uniform in `[lo, hi)`.
    #[track_caller]
    pub fn rand(shape: impl Into<Shape>, lo: f64, hi: f64, rng: &mut Rng, dtype: DType, device: Device) -> Tensor {
        crate::tensor::ok(Tensor::try_random(shape, Distribution::Uniform { lo, hi }, rng, dtype, device))
    }

    /// Normal with the given mean and standard deviation.
    #[track_caller]
    pub fn randn(shape: impl Into<Shape>, mean: f64, std: f64, rng: &mut Rng, dtype: DType, device: Device) -> Tensor {
        crate::tensor::ok(Tensor::try_random(shape, Distribution::Normal { mean, std }, rng, dtype, device))
    }

    /// 1 with probability `p`, else 0.
    #[track_caller]
    pub fn bernoulli(shape: impl Into<Shape>, p: f64, rng: &mut Rng, dtype: DType, device: Device) -> Tensor {
        crate::tensor::ok(Tensor::try_random(shape, Distribution::Bernoulli { p }, rng, dtype, device))
    }

    /// Inverted dropout: zero each element with probability `p` and scale the rest by
    /// `1/(1-p)`, so evaluation needs no rescaling. Identity when `p == 0`.
    pub fn try_dropout(&self, p: f64, rng: &mut Rng) -> Result<Tensor> {
        if !(0.0..1.0).contains(&p) {
            return Err(plies_core::Error::invalid("dropout", format!("p must be in [0, 1), got {p}")));
        }
        if p == 0.0 {
            return Ok(self.clone());
        }
        let keep = Array::random(
            self.shape(),
            Distribution::Bernoulli { p: 1.0 - p },
            rng.next_key(),
            self.dtype(),
            self.device(),
        )?;
        self.try_mul(&Tensor::new(keep.mul_scalar(1.0 / (1.0 - p))?))
    }

    #[track_caller]
    pub fn dropout(&self, p: f64, rng: &mut Rng) -> Tensor {
        crate::tensor::ok(self.try_dropout(p, rng))
    }
}
