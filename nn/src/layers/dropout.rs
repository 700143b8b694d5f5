//! Inverted dropout, active only in training mode.

use crate::init::Init;
use crate::module::{Layer, Mode};
use crate::Module;
use plies_autodiff::rng::Rng;
use plies_autodiff::{Error, Result, Tensor};
use std::sync::Mutex;

#[derive(Module)]
pub struct Dropout {
    #[module(skip)]
    pub p: f64,
    mode: Mode,
    /// Own generator, split off the model's `Init`, so runs are reproducible from the seed.
    rng: Mutex<Rng>,
}

impl Dropout {
    pub fn new(init: &mut Init, p: f64) -> Dropout {
        assert!((0.0..1.0).contains(&p), "dropout probability must be in [0, 1), got {p}");
        Dropout { p, mode: Mode::default(), rng: Mutex::new(init.fork_rng()) }
    }

    pub fn is_active(&self) -> bool {
        self.p > 0.0 && self.mode.is_training()
    }
}

impl Layer for Dropout {
    fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.is_active() {
            return Ok(x.clone());
        }
        let mut rng = self.rng.lock().map_err(|_| Error::msg("dropout: generator lock poisoned"))?;
        x.try_dropout(self.p, &mut rng)
    }
}
