//! Training states: what a training loop needs to go on after a kill exactly as if it had
//! never stopped, in one safetensors file per save.
//!
//! The file (`state-<step>.safetensors`) holds these tensors:
//! - `model.<param>`: every parameter, under its module name;
//! - `optimizer.<param>.<slot>`: the optimizer's state dict (Adam: `exp_avg`, `exp_avg_sq`,
//!   `step`; SGD: `momentum_buffer`);
//! - `train.lr`: F64 `[groups, 2]`, each parameter group's (current, base) learning rate;
//! - `train.loss`: F64 `[n, 2]`, the (step, loss) series of the run so far;
//! - `train.eval.<name>`: F64 `[m, 2]`, each evaluation series the loss plot draws;
//! - `train.value.<name>`: F64 scalars the loop chose to keep;
//!
//! and in the metadata, under [`STATE_KEY`], one JSON object with the scalar state:
//! `{"version":1, "run":name, "step":steps_done, "loader":{"epoch":e,"batch":b} or null,
//! "rngs":{name:{"seed":u64,"draws":u64}}, "module_rngs":{same, keyed by module path},
//! "evals":[names in plot order], "log":{"bytes":u64,"hash":u64}, "elapsed_s":f64}`.
//! Floats that must come back bit for bit are tensors, not JSON.
//!
//! Loading checks the whole file (every key, shape and dtype against the model and the
//! optimizer, every JSON field) before it assigns anything, and every error names the file.

use super::{atomic::write_atomic, fit_model, load_tensors, save_tensors};
use crate::data::Position;
use crate::module::Module;
use crate::optim::Optimizer;
use plies_autodiff::rng::Rng;
use plies_autodiff::{Array, DType, Device, Error, Result};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Metadata key of a training state's scalar state (JSON).
pub const STATE_KEY: &str = "plies.train_state";
const VERSION: u64 = 1;
const LATEST: &str = "latest";

/// What a [`Run`](crate::train::Run) has recorded, so that a resumed run's log and plots go on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunMetrics {
    /// (step, loss) of every training step so far.
    pub train: Vec<(f64, f64)>,
    /// The evaluation series the loss plot draws, by name: (step, value).
    pub evals: Vec<(String, Vec<(f64, f64)>)>,
    /// Length and FNV-1a hash of `metrics.jsonl` when the state was saved: a resumed run cuts
    /// the log back to that length (dropping what the killed run wrote after the save) once
    /// the hash shows it is the same log.
    pub log_bytes: u64,
    pub log_hash: u64,
    /// Seconds the run had been going.
    pub elapsed_s: f64,
}

/// The state of a training loop besides the model and the optimizer (which are saved from
/// and restored into the live objects).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainState {
    /// Steps done: a resumed loop starts with this step.
    pub step: u64,
    /// Where the data loader's stream stands ([`Stream::position`](crate::data::Stream::position)).
    pub loader: Option<Position>,
    /// The loop's own generators (e.g. the one that samples batches), by name.
    pub rngs: BTreeMap<String, Rng>,
    /// Numbers the loop keeps across a resume (e.g. when a target was reached).
    pub values: BTreeMap<String, f64>,
    /// The run's name (filled in by `Run::save_state`); a resume checks it.
    pub run: String,
    pub metrics: RunMetrics,
}

impl TrainState {
    /// The state after `step` steps.
    pub fn at(step: u64) -> TrainState {
        TrainState { step, ..Default::default() }
    }

    pub fn with_loader(mut self, pos: Position) -> TrainState {
        self.loader = Some(pos);
        self
    }

    pub fn with_rng(mut self, name: &str, rng: &Rng) -> TrainState {
        self.rngs.insert(name.to_string(), rng.clone());
        self
    }

    pub fn with_value(mut self, name: &str, v: f64) -> TrainState {
        self.values.insert(name.to_string(), v);
        self
    }

    /// Generator `name` as saved, or `fresh` for a run that starts at step 0. A resumed state
    /// without it is an error: the loop would silently draw other numbers.
    pub fn rng_or(&self, name: &str, fresh: Rng) -> Result<Rng> {
        match self.rngs.get(name) {
            Some(r) => Ok(r.clone()),
            None if self.step == 0 => Ok(fresh),
            None => Err(Error::invalid(
                "resume",
                format!(
                    "the training state of step {} has no generator `{name}` (it has {:?})",
                    self.step,
                    self.rngs.keys()
                ),
            )),
        }
    }

    pub fn value(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }

    /// Write this state with `model`'s parameters and `opt`'s state to `path` (atomically).
    pub fn save(&self, path: impl AsRef<Path>, model: &dyn Module, opt: &dyn Optimizer) -> Result<()> {
        let path = path.as_ref();
        let mut tensors: Vec<(String, Array)> = Vec::new();
        tensors.extend(model.state_dict().into_iter().map(|(k, a)| (format!("model.{k}"), a)));
        tensors.extend(opt.state_dict().into_iter().map(|(k, a)| (format!("optimizer.{k}"), a)));
        let lrs: Vec<(f64, f64)> = opt.groups().iter().map(|g| (g.lr, g.base_lr)).collect();
        tensors.push(("train.lr".into(), pairs(&lrs)?));
        tensors.push(("train.loss".into(), pairs(&self.metrics.train)?));
        for (name, series) in &self.metrics.evals {
            tensors.push((format!("train.eval.{name}"), pairs(series)?));
        }
        for (name, &v) in &self.values {
            tensors.push((format!("train.value.{name}"), Array::scalar(v, Device::Cpu)?));
        }
        let mut module_rngs = Map::new();
        model.for_each_rng(&mut |name, rng| {
            let r = rng.lock().unwrap_or_else(|p| p.into_inner());
            module_rngs.insert(name.to_string(), rng_json(&r));
        });
        let m = &self.metrics;
        let scalars = json!({
            "version": VERSION,
            "run": self.run,
            "step": self.step,
            "loader": self.loader.map(|p| json!({"epoch": p.epoch, "batch": p.batch})),
            "rngs": self.rngs.iter().map(|(k, r)| (k.clone(), rng_json(r))).collect::<Map<_, _>>(),
            "module_rngs": module_rngs,
            "evals": m.evals.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            "log": {"bytes": m.log_bytes, "hash": m.log_hash},
            "elapsed_s": m.elapsed_s,
        });
        save_tensors(path, &tensors, &HashMap::from([(STATE_KEY.to_string(), scalars.to_string())]))
    }

    /// Read a state saved by [`save`](Self::save), restoring `model`'s parameters and
    /// generators and `opt`'s state and learning rates. Nothing is assigned unless the whole
    /// file fits; the error names the file and the key or field at fault.
    pub fn load(path: impl AsRef<Path>, model: &dyn Module, opt: &mut dyn Optimizer) -> Result<TrainState> {
        let path = path.as_ref();
        let file = load_tensors(path, Device::Cpu)?;
        let bad = |at: String, msg: String| Error::Format { path: path.display().to_string(), at, msg };
        let text = file.metadata.get(STATE_KEY).ok_or_else(|| {
            bad("metadata".into(), format!("no `{STATE_KEY}` entry: not a training state (saved by TrainState::save)"))
        })?;
        let json: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("metadata `{STATE_KEY}`"), e.to_string()))?;
        let fields = Fields { path, json: &json };
        let version = fields.u64("version")?;
        if version != VERSION {
            return Err(fields.bad("version", format!("is {version}; this build reads version {VERSION}")));
        }

        let mut model_t = HashMap::new();
        let mut opt_t = HashMap::new();
        let (mut lr, mut loss) = (None, None);
        let mut evals = HashMap::new();
        let mut values = BTreeMap::new();
        for (k, a) in file.tensors {
            if let Some(name) = k.strip_prefix("model.") {
                model_t.insert(name.to_string(), a);
            } else if let Some(key) = k.strip_prefix("optimizer.") {
                opt_t.insert(key.to_string(), a);
            } else if k == "train.lr" {
                lr = Some(read_pairs(path, &k, &a)?);
            } else if k == "train.loss" {
                loss = Some(read_pairs(path, &k, &a)?);
            } else if let Some(name) = k.strip_prefix("train.eval.") {
                evals.insert(name.to_string(), read_pairs(path, &k, &a)?);
            } else if let Some(name) = k.strip_prefix("train.value.") {
                if a.dtype() != DType::F64 || a.elem_count() != 1 {
                    return Err(bad(
                        format!("tensor `{k}`"),
                        format!("is {} {}, not an F64 scalar", a.dtype(), a.shape()),
                    ));
                }
                values.insert(name.to_string(), a.to_vec::<f64>()?[0]);
            } else {
                return Err(bad(format!("tensor `{k}`"), "is not part of a training state".into()));
            }
        }
        let missing = |k: &str| bad(format!("tensor `{k}`"), "is missing".into());
        let lr = lr.ok_or_else(|| missing("train.lr"))?;
        let train = loss.ok_or_else(|| missing("train.loss"))?;
        let groups = opt.groups().len();
        if lr.len() != groups {
            return Err(bad(
                "tensor `train.lr`".into(),
                format!("has {} parameter groups, the optimizer has {groups}", lr.len()),
            ));
        }
        let mut eval_series = Vec::new();
        for name in fields.strings("evals")? {
            let series = evals.remove(&name).ok_or_else(|| missing(&format!("train.eval.{name}")))?;
            eval_series.push((name, series));
        }
        if let Some(name) = evals.keys().next() {
            return Err(bad(format!("tensor `train.eval.{name}`"), "is not listed in the metadata's `evals`".into()));
        }

        let (_, assign) = fit_model(model, &model_t, path, true)?;
        let module_rngs = fields.rngs("module_rngs")?;
        let mut names = Vec::new();
        model.for_each_rng(&mut |name, _| names.push(name.to_string()));
        let unknown: Vec<&String> = module_rngs.keys().filter(|k| !names.contains(k)).collect();
        let absent: Vec<&String> = names.iter().filter(|k| !module_rngs.contains_key(*k)).collect();
        if !unknown.is_empty() || !absent.is_empty() {
            return Err(fields
                .bad("module_rngs", format!("does not fit the model: missing {absent:?}, unexpected {unknown:?}")));
        }
        let state = TrainState {
            step: fields.u64("step")?,
            loader: fields.loader()?,
            rngs: fields.rngs("rngs")?,
            values,
            run: fields.string("run")?,
            metrics: RunMetrics {
                train,
                evals: eval_series,
                log_bytes: fields.at(&["log", "bytes"])?,
                log_hash: fields.at(&["log", "hash"])?,
                elapsed_s: json.get("elapsed_s").and_then(Value::as_f64).unwrap_or(0.0),
            },
        };

        // Everything is checked; the optimizer's own load is all-or-nothing, so it goes first.
        opt.load_state_dict(&opt_t).map_err(|e| bad("optimizer state".into(), e.to_string()))?;
        for (p, a) in assign {
            p.tensor.set_value(a)?;
        }
        model.for_each_rng(&mut |name, rng| {
            *rng.lock().unwrap_or_else(|p| p.into_inner()) = module_rngs[name].clone();
        });
        for (g, &(lr, base)) in opt.groups_mut().iter_mut().zip(&lr) {
            (g.lr, g.base_lr) = (lr, base);
        }
        Ok(state)
    }
}

fn rng_json(r: &Rng) -> Value {
    json!({"seed": r.seed(), "draws": r.draws()})
}

/// A series of pairs as an F64 `[n, 2]` array.
fn pairs(series: &[(f64, f64)]) -> Result<Array> {
    let flat = series.iter().flat_map(|&(a, b)| [a, b]).collect();
    Array::from_vec(flat, [series.len(), 2], Device::Cpu)
}

fn read_pairs(path: &Path, key: &str, a: &Array) -> Result<Vec<(f64, f64)>> {
    if a.dtype() != DType::F64 || a.rank() != 2 || a.dims()[1] != 2 {
        return Err(Error::Format {
            path: path.display().to_string(),
            at: format!("tensor `{key}`"),
            msg: format!("is {} {}, not F64 [n, 2]", a.dtype(), a.shape()),
        });
    }
    Ok(a.to_vec::<f64>()?.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

/// Typed access to the JSON scalar state, with errors naming the file and the field.
struct Fields<'a> {
    path: &'a Path,
    json: &'a Value,
}

impl Fields<'_> {
    fn bad(&self, field: &str, msg: impl Into<String>) -> Error {
        Error::Format {
            path: self.path.display().to_string(),
            at: format!("metadata `{STATE_KEY}` field `{field}`"),
            msg: msg.into(),
        }
    }

    fn get(&self, field: &str) -> Result<&Value> {
        self.json.get(field).ok_or_else(|| self.bad(field, "is missing"))
    }

    fn u64(&self, field: &str) -> Result<u64> {
        self.get(field)?.as_u64().ok_or_else(|| self.bad(field, "is not a non-negative integer"))
    }

    fn at(&self, route: &[&str]) -> Result<u64> {
        let name = route.join(".");
        let v = route.iter().try_fold(self.json, |v, k| v.get(k));
        v.and_then(Value::as_u64).ok_or_else(|| self.bad(&name, "is missing or not a non-negative integer"))
    }

    fn string(&self, field: &str) -> Result<String> {
        Ok(self.get(field)?.as_str().ok_or_else(|| self.bad(field, "is not a string"))?.to_string())
    }

    fn strings(&self, field: &str) -> Result<Vec<String>> {
        let list = self.get(field)?.as_array().ok_or_else(|| self.bad(field, "is not a list"))?;
        list.iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| self.bad(field, "holds a non-string")))
            .collect()
    }

    fn loader(&self) -> Result<Option<Position>> {
        match self.get("loader")? {
            Value::Null => Ok(None),
            v => {
                let n = |k: &str| v.get(k).and_then(Value::as_u64);
                match (n("epoch"), n("batch")) {
                    (Some(epoch), Some(batch)) => Ok(Some(Position { epoch, batch })),
                    _ => Err(self.bad("loader", "is not null or {\"epoch\": integer, \"batch\": integer}")),
                }
            }
        }
    }

    fn rngs(&self, field: &str) -> Result<BTreeMap<String, Rng>> {
        let map = self.get(field)?.as_object().ok_or_else(|| self.bad(field, "is not an object"))?;
        let mut out = BTreeMap::new();
        for (k, v) in map {
            let n = |f: &str| v.get(f).and_then(Value::as_u64);
            match (n("seed"), n("draws")) {
                (Some(seed), Some(draws)) => out.insert(k.clone(), Rng::at(seed, draws)),
                _ => return Err(self.bad(&format!("{field}.{k}"), "is not {\"seed\": u64, \"draws\": u64}")),
            };
        }
        Ok(out)
    }
}

/// A training state loaded by [`Checkpoints::load_latest`].
#[derive(Debug)]
pub struct Resumed {
    pub state: TrainState,
    /// The file it came from.
    pub path: PathBuf,
    /// Newer files that did not load (truncated by a crash, say), each with its error; each
    /// was also reported on stderr.
    pub skipped: Vec<(PathBuf, Error)>,
}

/// The training states of one run folder: `state-<step>.safetensors`, and `latest`, a
/// one-line file naming the newest. A save writes the new file atomically, then points
/// `latest` at it (atomically too), then removes all but the new file and the one saved
/// before it, so a crash at any point leaves at least one complete state.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    dir: PathBuf,
    /// The state written (or resumed from) last: kept when the next one is written.
    previous: Option<PathBuf>,
}

impl Checkpoints {
    pub fn new(dir: impl AsRef<Path>) -> Checkpoints {
        Checkpoints { dir: dir.as_ref().to_path_buf(), previous: None }
    }

    /// Go on from `path` (the state a run resumed from), keeping it at the next save.
    pub fn after(mut self, path: impl AsRef<Path>) -> Checkpoints {
        self.previous = Some(path.as_ref().to_path_buf());
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file for the state after `step` steps.
    pub fn path_for(&self, step: u64) -> PathBuf {
        self.dir.join(format!("state-{step}.safetensors"))
    }

    /// Save `state` as `state-<step>.safetensors`, point `latest` at it and remove the states
    /// older than the one before it. Returns the new file.
    pub fn save(&mut self, state: &TrainState, model: &dyn Module, opt: &dyn Optimizer) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.path_for(state.step);
        state.save(&path, model, opt)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        write_atomic(&self.dir.join(LATEST), format!("{name}\n").as_bytes())?;
        let keep = [Some(&path), self.previous.as_ref()];
        for (_, old) in state_files(&self.dir)? {
            if !keep.contains(&Some(&old)) {
                remove(&old)?;
            }
        }
        self.previous = Some(path.clone());
        Ok(path)
    }

    /// Remove every training state of `dir` (and `latest`): a run that starts afresh in a
    /// folder must not leave states of an earlier run there for a later `--resume` to pick.
    /// Returns how many files went.
    pub fn clear(dir: impl AsRef<Path>) -> Result<usize> {
        let dir = dir.as_ref();
        let mut files: Vec<PathBuf> = state_files(dir)?.into_iter().map(|(_, p)| p).collect();
        files.push(dir.join(LATEST));
        let mut n = 0;
        for f in files.into_iter().filter(|f| f.exists()) {
            remove(&f)?;
            n += 1;
        }
        Ok(n)
    }

    /// Load the newest state of `dir` that loads: the one `latest` names, then the others from
    /// the highest step down. Each file that fails is skipped with a warning on stderr naming
    /// it; the error lists every failure when none loads.
    pub fn load_latest(dir: impl AsRef<Path>, model: &dyn Module, opt: &mut dyn Optimizer) -> Result<Resumed> {
        let dir = dir.as_ref();
        let mut candidates = Vec::new();
        let mut skipped = Vec::new();
        let latest = dir.join(LATEST);
        match std::fs::read_to_string(&latest) {
            Ok(text) => match parse_step(text.trim()) {
                Some(_) => candidates.push(dir.join(text.trim())),
                None => {
                    let e = Error::Format {
                        path: latest.display().to_string(),
                        at: "byte 0".into(),
                        msg: format!("names {:?}, not a state-<step>.safetensors file", text.trim()),
                    };
                    eprintln!("plies: warning: {e}; looking for the newest state file instead");
                    skipped.push((latest.clone(), e));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&latest, e)),
        }
        for (_, p) in state_files(dir)?.into_iter().rev() {
            if !candidates.contains(&p) {
                candidates.push(p);
            }
        }
        if candidates.is_empty() {
            return Err(Error::Format {
                path: dir.display().to_string(),
                at: "folder".into(),
                msg: "holds no training state (`latest` or state-<step>.safetensors); was the run saved with --save-every?"
                    .into(),
            });
        }
        for path in candidates {
            match TrainState::load(&path, model, opt) {
                Ok(state) => return Ok(Resumed { state, path, skipped }),
                Err(e) => {
                    let file = path.display().to_string();
                    let e = if e.to_string().contains(&file) {
                        e
                    } else {
                        Error::Format { path: file, at: "training state".into(), msg: e.to_string() }
                    };
                    eprintln!("plies: warning: skipping a training state: {e}");
                    skipped.push((path, e));
                }
            }
        }
        let all: Vec<String> = skipped.iter().map(|(_, e)| e.to_string()).collect();
        Err(Error::Format {
            path: dir.display().to_string(),
            at: "folder".into(),
            msg: format!("no training state loads: {}", all.join("; ")),
        })
    }
}

fn parse_step(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("state-")?.strip_suffix(".safetensors")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The state files of `dir` by step, lowest first (none when `dir` does not exist).
fn state_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some(step) = entry.file_name().to_str().and_then(parse_step) {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}
