//! The committed Shakespeare text by work, and a base character GPT pretrained on part of it
//! and cached in a file.

use plies_autodiff::rng::Rng;
use plies_autodiff::{Device, Error, Result};
use plies_nn::checkpoint::{load_gpt, save_gpt};
use plies_nn::data::CharDataset;
use plies_nn::layers::{Gpt, GptConfig};
use plies_nn::loss::{cross_entropy, CrossEntropy};
use plies_nn::optim::{clip_grad_norm, Adam, AdamConfig, Optimizer, ParamGroup, Schedule};
use plies_nn::{Init, Layer, Module};
use std::collections::HashMap;
use std::path::Path;

/// `data/shakespeare.txt` cut into its three works, sharing the whole text's vocabulary.
pub struct Works {
    pub all: CharDataset,
    pub sonnets: CharDataset,
    pub macbeth: CharDataset,
    pub tempest: CharDataset,
    /// The Sonnets and Macbeth together (the base model's pretraining text).
    pub sonnets_macbeth: CharDataset,
}

/// Each work opens with its title and "by William Shakespeare" (data/README.md lists them).
pub fn shakespeare_works() -> Result<Works> {
    let all = CharDataset::shakespeare();
    let text = all.vocab().decode(all.tokens())?;
    // The text is ASCII (data/README.md), so byte offsets are character offsets.
    let find = |title: &str| {
        text.find(&format!("{title}\n\nby William Shakespeare")).ok_or_else(|| {
            Error::invalid("shakespeare_works", format!("no `{title}` heading in the embedded Shakespeare text"))
        })
    };
    let (macbeth, tempest) = (find("MACBETH")?, find("THE TEMPEST")?);
    if !(0 < macbeth && macbeth < tempest && text.is_ascii()) {
        return Err(Error::invalid(
            "shakespeare_works",
            "the works are not in the order Sonnets, Macbeth, The Tempest",
        ));
    }
    Ok(Works {
        sonnets: all.slice(0..macbeth)?,
        macbeth: all.slice(macbeth..tempest)?,
        tempest: all.slice(tempest..all.len())?,
        sonnets_macbeth: all.slice(0..tempest)?,
        all,
    })
}

/// How the base model is pretrained (recorded with the cached file, which is reused only
/// when every field matches).
#[derive(Clone, Debug, PartialEq)]
pub struct Pretrain {
    pub config: GptConfig,
    pub steps: u64,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Pretrain {
    fn key(&self) -> String {
        format!(
            "{} steps={} batch={} lr={} seed={}",
            self.config.to_json(),
            self.steps,
            self.batch_size,
            self.lr,
            self.seed
        )
    }
}

const KEY: &str = "pretrain";

/// The base GPT `p` describes, trained on `text`: loaded from `cache` when that file was
/// written for the same settings, else trained (AdamW, warmup and cosine) and saved there.
/// `on_step(step, loss)` sees each training step. Returns the model and whether it was loaded.
pub fn pretrained_gpt(
    p: &Pretrain,
    text: &CharDataset,
    cache: &Path,
    device: Device,
    on_step: &mut dyn FnMut(u64, f64) -> Result<()>,
) -> Result<(Gpt, bool)> {
    if cache.is_file() {
        match load_gpt(cache, &mut Init::new(p.seed)) {
            Ok((model, meta)) if meta.get(KEY) == Some(&p.key()) => {
                model.to_device(device)?;
                return Ok((model, true));
            }
            Ok(_) => eprintln!("{}: written for other pretraining settings; training again", cache.display()),
            Err(e) => eprintln!("{}: {e}; training again", cache.display()),
        }
    }
    let model = Gpt::new(&mut Init::new(p.seed).with_device(device), p.config.clone());
    let (matrices, others) = model.named_parameters().into_iter().partition(|q| q.tensor.rank() >= 2);
    let groups = vec![ParamGroup::new(matrices), ParamGroup::new(others).weight_decay(0.0)];
    let mut opt = Adam::with_groups(groups, AdamConfig::adamw(p.lr, 0.1))?;
    let schedule =
        Schedule::WarmupCosine { warmup: 50.min(p.steps as usize / 10), total: p.steps as usize, min_factor: 0.1 };
    let mut rng = Rng::new(p.seed ^ 0xba5e);
    for step in 0..p.steps {
        let b = text.random_batch(p.batch_size, p.config.context, &mut rng, device)?;
        let loss = cross_entropy(&model.try_forward(&b.inputs)?, &b.targets, CrossEntropy::default())?;
        loss.backward()?;
        clip_grad_norm(&model.trainable_parameters(), 1.0)?;
        opt.set_lr_factor(schedule.factor(step as usize));
        opt.step()?;
        opt.zero_grad();
        on_step(step, loss.item())?;
    }
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let vocab: String = text.vocab().chars().iter().collect();
    let vocab = serde_json::to_string(&vocab).map_err(|e| Error::msg(e.to_string()))?;
    save_gpt(&model, cache, &HashMap::from([(KEY.to_string(), p.key()), ("vocab".to_string(), vocab)]))?;
    Ok((model, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_splits_into_its_three_works_with_one_vocabulary() {
        let w = shakespeare_works().unwrap();
        let text = |d: &CharDataset| w.all.vocab().decode(d.tokens()).unwrap();
        let (s, m, t) = (text(&w.sonnets), text(&w.macbeth), text(&w.tempest));
        assert!(s.to_uppercase().contains("SONNETS"), "{}", &s[..80]);
        // Case-sensitive: "prosperous" is no Prospero.
        assert!(m.contains("MACBETH") && !m.contains("PROSPERO") && !s.contains("MACBETH"));
        assert!(t.contains("PROSPERO") && !t.contains("MACBETH"));
        assert!(s.starts_with("THE SONNETS") && t.starts_with("THE TEMPEST"));
        assert_eq!(w.sonnets_macbeth.len(), w.sonnets.len() + w.macbeth.len());
        assert_eq!(w.sonnets_macbeth.len() + w.tempest.len(), w.all.len());
        assert!(w.tempest.len() > 80_000, "tempest {} chars", w.tempest.len());
        assert_eq!(w.tempest.vocab_size(), w.all.vocab_size());
    }
}
