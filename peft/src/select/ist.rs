//! IST, importance-aware sparse tuning (Yao et al., Findings of EMNLP 2024), as
//! `ISTCallback` in the authors' `ist.py` and METHODS.md section 1 do it.
//!
//! Each layer has a score s (0 at the start; high s means suppressing the layer helps, so
//! the layer matters less). At every step t > 0 with t % T == 0 the scores are updated from
//! K probes on one probe batch: probe k scales the adapters of n_sup layers S_k, drawn
//! without replacement with weights sigmoid(s) (a set equal to an earlier one is redrawn),
//! by lambda and measures the loss l_k. With R_k = exp(-l_k), r_k = R_k - mean R and
//! p = sigmoid(s) taken once before the update, s_i += eta r_k p_i (1 - p_i) for every
//! i in S_k. Then, at every step, n_upd layers are drawn with weights sigmoid(-s) to train.

use super::sample::{binomial, weighted_subset};
use super::{LayerSelector, Probe};
use plies_autodiff::{Error, Result};
use plies_core::rng::Rng;

/// IST's settings; [`IstConfig::paper`] gives the paper's.
#[derive(Clone, Debug, PartialEq)]
pub struct IstConfig {
    /// Selectable layers (L).
    pub layers: usize,
    /// Steps between score updates (T).
    pub interval: u64,
    /// Probes per update (K).
    pub probes: usize,
    /// Score learning rate (eta).
    pub score_lr: f64,
    /// The factor a probe multiplies the suppressed layers' adapter scaling by (lambda).
    pub suppression: f64,
    /// Layers trained per step.
    pub n_upd: usize,
    /// Layers suppressed per probe.
    pub n_sup: usize,
    pub seed: u64,
}

impl IstConfig {
    /// T = 10, K = 3, eta = 10, lambda = 0.25, n_upd = floor(L/4), n_sup = floor(L/2).
    pub fn paper(layers: usize, seed: u64) -> IstConfig {
        IstConfig {
            layers,
            interval: 10,
            probes: 3,
            score_lr: 10.0,
            suppression: 0.25,
            n_upd: layers / 4,
            n_sup: layers / 2,
            seed,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid("ist", m));
        let l = self.layers;
        if self.n_upd == 0 || self.n_upd > l {
            return bad(format!(
                "n_upd {} must be in 1..={l} (L = {l}; the default floor(L/4) is 0 below 4 layers)",
                self.n_upd
            ));
        }
        if self.n_sup == 0 || self.n_sup > l {
            return bad(format!("n_sup {} must be in 1..={l} (L = {l})", self.n_sup));
        }
        if self.interval == 0 || self.probes == 0 {
            return bad(format!("interval T ({}) and probes K ({}) must be at least 1", self.interval, self.probes));
        }
        if binomial(l, self.n_sup) < self.probes as u128 {
            return bad(format!(
                "K = {} distinct suppression sets of {} layers do not exist among {l} layers",
                self.probes, self.n_sup
            ));
        }
        if !(self.score_lr.is_finite() && self.suppression.is_finite()) {
            return bad(format!("eta {} and lambda {} must be finite", self.score_lr, self.suppression));
        }
        Ok(())
    }
}

/// One score update: what was probed and what it did.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreUpdate {
    pub step: u64,
    /// The K suppression sets (positions, increasing).
    pub sets: Vec<Vec<usize>>,
    /// The probe losses l_k.
    pub losses: Vec<f64>,
    /// The centred rewards r_k.
    pub rewards: Vec<f64>,
    /// How many drawn sets equalled an earlier one and were drawn again.
    pub redraws: usize,
    /// The scores after the update.
    pub scores: Vec<f64>,
}

/// A drawn set may repeat an earlier one this many times before the update gives up (scores
/// so extreme that a new set is practically impossible).
const MAX_REDRAWS: usize = 100_000;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The scores after one update from suppression `sets` and their probe `losses`, and the
/// centred rewards: METHODS.md's rule, with p = sigmoid(s) taken once before any change.
pub fn score_update(scores: &[f64], sets: &[Vec<usize>], losses: &[f64], eta: f64) -> Result<(Vec<f64>, Vec<f64>)> {
    if sets.len() != losses.len() || sets.is_empty() {
        return Err(Error::invalid(
            "ist",
            format!("{} suppression sets but {} probe losses", sets.len(), losses.len()),
        ));
    }
    if let Some((k, l)) = losses.iter().enumerate().find(|(_, l)| !l.is_finite()) {
        return Err(Error::invalid("ist", format!("probe {k} has loss {l}; scores need finite losses")));
    }
    if let Some(&i) = sets.iter().flatten().find(|&&i| i >= scores.len()) {
        return Err(Error::invalid("ist", format!("suppression set holds layer {i} of {}", scores.len())));
    }
    let rewards: Vec<f64> = losses.iter().map(|l| (-l).exp()).collect();
    let mean = rewards.iter().sum::<f64>() / rewards.len() as f64;
    let centred: Vec<f64> = rewards.iter().map(|r| r - mean).collect();
    let p: Vec<f64> = scores.iter().map(|&s| sigmoid(s)).collect();
    let mut out = scores.to_vec();
    for (set, r) in sets.iter().zip(&centred) {
        for &i in set {
            out[i] += eta * r * p[i] * (1.0 - p[i]);
        }
    }
    Ok((out, centred))
}

/// The IST selector.
pub struct Ist {
    config: IstConfig,
    scores: Vec<f64>,
    rng: Rng,
    last: Option<ScoreUpdate>,
}

impl Ist {
    pub fn new(config: IstConfig) -> Result<Ist> {
        config.validate()?;
        Ok(Ist { scores: vec![0.0; config.layers], rng: Rng::new(config.seed), config, last: None })
    }

    pub fn config(&self) -> &IstConfig {
        &self.config
    }

    /// The scores s per position.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// The latest score update, if there was one.
    pub fn last_update(&self) -> Option<&ScoreUpdate> {
        self.last.as_ref()
    }

    /// K distinct suppression sets drawn with weights sigmoid(s), and how many draws were
    /// repeats of an earlier set and drawn again.
    pub fn suppression_sets(&mut self) -> Result<(Vec<Vec<usize>>, usize)> {
        let w: Vec<f64> = self.scores.iter().map(|&s| sigmoid(s)).collect();
        let mut sets: Vec<Vec<usize>> = Vec::with_capacity(self.config.probes);
        let mut redraws = 0;
        for k in 0..self.config.probes {
            let mut tries = 0;
            let set = loop {
                let s = weighted_subset(&w, self.config.n_sup, &mut self.rng)?;
                if !sets.contains(&s) {
                    break s;
                }
                tries += 1;
                if tries == MAX_REDRAWS {
                    return Err(Error::invalid(
                        "ist",
                        format!(
                            "suppression set {k} repeated an earlier one {MAX_REDRAWS} times in a row (scores {:?})",
                            self.scores
                        ),
                    ));
                }
            };
            redraws += tries;
            sets.push(set);
        }
        Ok((sets, redraws))
    }

    /// One score update at step `step` from a fresh probe batch.
    pub fn update_scores(&mut self, step: u64, probe: &mut dyn Probe) -> Result<ScoreUpdate> {
        probe.next_batch()?;
        let (sets, redraws) = self.suppression_sets()?;
        let mut losses = Vec::with_capacity(sets.len());
        for set in &sets {
            losses.push(probe.loss(set, self.config.suppression)?);
        }
        let (scores, rewards) = score_update(&self.scores, &sets, &losses, self.config.score_lr)?;
        self.scores = scores;
        let update = ScoreUpdate { step, sets, losses, rewards, redraws, scores: self.scores.clone() };
        self.last = Some(update.clone());
        Ok(update)
    }
}

impl LayerSelector for Ist {
    fn name(&self) -> &'static str {
        "ist"
    }

    fn select(&mut self, step: u64, probe: &mut dyn Probe) -> Result<Vec<usize>> {
        if step > 0 && step.is_multiple_of(self.config.interval) {
            self.update_scores(step, probe)?;
        }
        let w: Vec<f64> = self.scores.iter().map(|&s| sigmoid(-s)).collect();
        weighted_subset(&w, self.config.n_upd, &mut self.rng)
    }
}
