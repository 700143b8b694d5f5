//! `LoraConfig`: PEFT's fields, its rules for choosing the adapted modules and each module's
//! rank and alpha, and `adapter_config.json` both ways.

use super::regex::Regex;
use plies_autodiff::{Error, Result};
use serde_json::{json, Map, Value};

/// `target_modules` / `exclude_modules`: a list of names (a module matches one when its path
/// equals it or ends in `.name`) or one regex that must match the whole path.
#[derive(Clone, Debug, PartialEq)]
pub enum ModuleMatch {
    Names(Vec<String>),
    Regex(String),
}

impl ModuleMatch {
    pub fn names(names: &[&str]) -> ModuleMatch {
        ModuleMatch::Names(names.iter().map(|s| s.to_string()).collect())
    }

    fn matches(&self, path: &str) -> Result<bool> {
        Ok(match self {
            ModuleMatch::Names(ns) => ns.iter().any(|n| path == n || path.ends_with(&format!(".{n}"))),
            ModuleMatch::Regex(r) => compile(r)?.full_match(path),
        })
    }

    fn is_empty(&self) -> bool {
        matches!(self, ModuleMatch::Names(ns) if ns.is_empty())
    }

    fn to_json(&self) -> Value {
        match self {
            // PEFT keeps a list as a set and saves it as a list: sorted here, so files compare.
            ModuleMatch::Names(ns) => {
                let mut ns = ns.clone();
                ns.sort();
                ns.dedup();
                json!(ns)
            }
            ModuleMatch::Regex(r) => json!(r),
        }
    }

    fn from_json(v: &Value, field: &str) -> std::result::Result<Option<ModuleMatch>, String> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(ModuleMatch::Regex(s.clone()))),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string).ok_or_else(|| format!("`{field}` holds a non-string {i}")))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(|ns| Some(ModuleMatch::Names(ns))),
            other => Err(format!("`{field}` must be a list of names or a regex string, got {other}")),
        }
    }
}

fn compile(pattern: &str) -> Result<Regex> {
    Regex::new(pattern).map_err(|e| Error::invalid("lora config", e.to_string()))
}

/// How new adapters start (PEFT's `init_lora_weights`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InitLora {
    /// `true`: Linear A kaiming-uniform (a = sqrt 5, torch's Linear default), B zero;
    /// Embedding A zero, B N(0, 1). The adapted model starts equal to the base.
    Default,
    /// `"gaussian"`: A N(0, 1/r), B zero (embeddings as `Default`).
    Gaussian,
    /// `false`: A and B both drawn as A is by default, so the adapter changes the output
    /// from the start (for tests).
    Random,
}

/// The fields of PEFT's `LoraConfig` that Plies implements.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub lora_alpha: f64,
    pub target_modules: ModuleMatch,
    pub exclude_modules: Option<ModuleMatch>,
    pub lora_dropout: f64,
    /// Scale by alpha / sqrt(r) instead of alpha / r.
    pub use_rslora: bool,
    pub use_dora: bool,
    /// Block indices to adapt (the number after `layers_pattern` in the path, or without a
    /// pattern the last numeric path component); empty adapts every matching module.
    pub layers_to_transform: Vec<usize>,
    pub layers_pattern: Vec<String>,
    /// Per-module rank, keyed by a regex that must match a dotted suffix of the path
    /// (PEFT: `(.*\.)?(key)$`); the first matching key wins.
    pub rank_pattern: Vec<(String, usize)>,
    pub alpha_pattern: Vec<(String, f64)>,
    pub init_lora_weights: InitLora,
    pub base_model_name_or_path: Option<String>,
    pub task_type: Option<String>,
}

impl Default for LoraConfig {
    /// PEFT's defaults: r 8, alpha 8, no dropout, no targets.
    fn default() -> Self {
        LoraConfig {
            r: 8,
            lora_alpha: 8.0,
            target_modules: ModuleMatch::Names(Vec::new()),
            exclude_modules: None,
            lora_dropout: 0.0,
            use_rslora: false,
            use_dora: false,
            layers_to_transform: Vec::new(),
            layers_pattern: Vec::new(),
            rank_pattern: Vec::new(),
            alpha_pattern: Vec::new(),
            init_lora_weights: InitLora::Default,
            base_model_name_or_path: None,
            task_type: None,
        }
    }
}

/// What a module gets: its rank, alpha and the scaling they make.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModuleLora {
    pub r: usize,
    pub alpha: f64,
    pub scaling: f64,
}

impl LoraConfig {
    /// A config adapting the modules whose names end in one of `targets`.
    pub fn new(r: usize, lora_alpha: f64, targets: &[&str]) -> LoraConfig {
        LoraConfig { r, lora_alpha, target_modules: ModuleMatch::names(targets), ..LoraConfig::default() }
    }

    /// Errors for settings PEFT would refuse.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(|(key, msg)| Error::invalid("lora config", format!("{key}: {msg}")))
    }

    /// The first setting PEFT would refuse: (its key, why).
    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.r == 0 {
            return Err(("r", "must be positive".into()));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(("lora_dropout", format!("must be in [0, 1), got {}", self.lora_dropout)));
        }
        if self.target_modules.is_empty() {
            return Err(("target_modules", "is empty".into()));
        }
        if let Some((k, _)) = self.rank_pattern.iter().find(|(_, r)| *r == 0) {
            return Err(("rank_pattern", format!("`{k}` gives rank 0")));
        }
        let regex = |key: &'static str, pattern: &str| compile(pattern).map(|_| ()).map_err(|e| (key, e.to_string()));
        for k in self.rank_pattern.iter().map(|(k, _)| k) {
            regex("rank_pattern", k)?;
        }
        for k in self.alpha_pattern.iter().map(|(k, _)| k) {
            regex("alpha_pattern", k)?;
        }
        if let ModuleMatch::Regex(r) = &self.target_modules {
            regex("target_modules", r)?;
        }
        Ok(())
    }

    /// Whether the module at `path` is adapted: a target, not excluded, and in
    /// `layers_to_transform` when that is given.
    pub fn is_target(&self, path: &str) -> Result<bool> {
        if let Some(ex) = &self.exclude_modules {
            if ex.matches(path)? {
                return Ok(false);
            }
        }
        if !self.target_modules.matches(path)? {
            return Ok(false);
        }
        if self.layers_to_transform.is_empty() {
            return Ok(true);
        }
        Ok(self.layer_index(path)?.is_some_and(|i| self.layers_to_transform.contains(&i)))
    }

    /// The block index of `path` by PEFT's rule (a numeric component followed by another).
    fn layer_index(&self, path: &str) -> Result<Option<usize>> {
        let parts: Vec<&str> = path.split('.').collect();
        let numeric = |i: usize| i + 1 < parts.len() && parts[i].bytes().all(|b| b.is_ascii_digit());
        if self.layers_pattern.is_empty() {
            return Ok((0..parts.len()).rev().find(|&i| numeric(i)).and_then(|i| parts[i].parse().ok()));
        }
        for pattern in &self.layers_pattern {
            let re = compile(pattern)?;
            for i in 1..parts.len() {
                if numeric(i) && re.full_match(parts[i - 1]) {
                    return Ok(parts[i].parse().ok());
                }
            }
        }
        Ok(None)
    }

    fn pattern_key<'a, T>(pattern: &'a [(String, T)], path: &str) -> Result<Option<&'a T>> {
        for (k, v) in pattern {
            if compile(&format!(r"(.*\.)?({k})"))?.full_match(path) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Rank, alpha and scaling of the module at `path` (rank_pattern and alpha_pattern
    /// override r and lora_alpha).
    pub fn for_module(&self, path: &str) -> Result<ModuleLora> {
        let r = *LoraConfig::pattern_key(&self.rank_pattern, path)?.unwrap_or(&self.r);
        let alpha = *LoraConfig::pattern_key(&self.alpha_pattern, path)?.unwrap_or(&self.lora_alpha);
        let scaling = if self.use_rslora { alpha / (r as f64).sqrt() } else { alpha / r as f64 };
        Ok(ModuleLora { r, alpha, scaling })
    }

    /// `adapter_config.json` as PEFT writes it: every key sorted, indent 2.
    pub fn to_json(&self) -> String {
        let num = |x: f64| if x.fract() == 0.0 && x.abs() < 1e15 { json!(x as i64) } else { json!(x) };
        let list = |v: &[(String, usize)]| Value::Object(v.iter().map(|(k, r)| (k.clone(), json!(r))).collect());
        let alphas = Value::Object(self.alpha_pattern.iter().map(|(k, a)| (k.clone(), num(*a))).collect());
        let init = match self.init_lora_weights {
            InitLora::Default => json!(true),
            InitLora::Gaussian => json!("gaussian"),
            InitLora::Random => json!(false),
        };
        let layers = if self.layers_to_transform.is_empty() { Value::Null } else { json!(self.layers_to_transform) };
        let pattern = if self.layers_pattern.is_empty() { Value::Null } else { json!(self.layers_pattern) };
        let fields: Vec<(&str, Value)> = vec![
            ("alpha_pattern", alphas),
            ("base_model_name_or_path", json!(self.base_model_name_or_path)),
            ("bias", json!("none")),
            ("exclude_modules", self.exclude_modules.as_ref().map_or(Value::Null, ModuleMatch::to_json)),
            ("fan_in_fan_out", json!(false)),
            ("inference_mode", json!(true)),
            ("init_lora_weights", init),
            ("layers_pattern", pattern),
            ("layers_to_transform", layers),
            ("lora_alpha", num(self.lora_alpha)),
            ("lora_dropout", json!(self.lora_dropout)),
            ("modules_to_save", Value::Null),
            ("peft_type", json!("LORA")),
            ("r", json!(self.r)),
            ("rank_pattern", list(&self.rank_pattern)),
            ("revision", Value::Null),
            ("target_modules", self.target_modules.to_json()),
            ("task_type", json!(self.task_type)),
            ("use_dora", json!(self.use_dora)),
            ("use_rslora", json!(self.use_rslora)),
        ];
        // Inserted in sorted order, so the output is sorted whether or not serde_json keeps
        // insertion order; nested maps are sorted the same way.
        let mut sorted: Vec<(&str, Value)> = fields;
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let obj: Map<String, Value> = sorted.into_iter().map(|(k, v)| (k.to_string(), sort_value(v))).collect();
        serde_json::to_string_pretty(&Value::Object(obj)).expect("a JSON value always serialises")
    }

    /// Parse `adapter_config.json`. Only `peft_type` is required (and must be "LORA"); other
    /// fields fall back to PEFT's defaults. Returns the config and the unknown fields, which
    /// PEFT drops with a warning. `file` names the file in errors.
    pub fn from_json(text: &str, file: &str) -> Result<(LoraConfig, Vec<String>)> {
        let fmt = |at: String, msg: String| Error::Format { path: file.to_string(), at, msg };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| fmt(format!("line {} column {}", e.line(), e.column()), e.to_string()))?;
        let obj =
            v.as_object().ok_or_else(|| fmt("byte 0".into(), "expected a JSON object at the top level".into()))?;
        match obj.get("peft_type").and_then(Value::as_str) {
            Some("LORA") => {}
            Some(other) => return Err(fmt("key `peft_type`".into(), format!("`{other}` is not LORA"))),
            None => return Err(fmt("key `peft_type`".into(), "missing (it is the one required field)".into())),
        }
        let field = |k: &str, m: String| fmt(format!("key `{k}`"), m);
        let mut c = LoraConfig::default();
        let mut unknown = Vec::new();
        for (k, val) in obj {
            let want = |what: &str| field(k, format!("expected {what}, got {val}"));
            let uint = || val.as_u64().map(|x| x as usize).ok_or_else(|| want("a non-negative integer"));
            let float = || val.as_f64().ok_or_else(|| want("a number"));
            let boolean = || val.as_bool().ok_or_else(|| want("true or false"));
            let string = || match val {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                _ => Err(want("a string or null")),
            };
            match k.as_str() {
                "peft_type" | "revision" | "inference_mode" | "auto_mapping" | "peft_version" => {}
                "r" => c.r = uint()?,
                "lora_alpha" => c.lora_alpha = float()?,
                "lora_dropout" => c.lora_dropout = float()?,
                "use_rslora" => c.use_rslora = boolean()?,
                "use_dora" => c.use_dora = boolean()?,
                "base_model_name_or_path" => c.base_model_name_or_path = string()?,
                "task_type" => c.task_type = string()?,
                "target_modules" => {
                    c.target_modules = ModuleMatch::from_json(val, k)
                        .map_err(|m| field(k, m))?
                        .unwrap_or(ModuleMatch::Names(Vec::new()))
                }
                "exclude_modules" => c.exclude_modules = ModuleMatch::from_json(val, k).map_err(|m| field(k, m))?,
                "layers_to_transform" => {
                    c.layers_to_transform = match val {
                        Value::Null => Vec::new(),
                        Value::Number(n) => vec![n.as_u64().ok_or_else(|| want("layer indices"))? as usize],
                        Value::Array(a) => a
                            .iter()
                            .map(|x| x.as_u64().map(|x| x as usize).ok_or_else(|| want("layer indices")))
                            .collect::<Result<_>>()?,
                        _ => return Err(want("layer indices")),
                    }
                }
                "layers_pattern" => {
                    c.layers_pattern = match val {
                        Value::Null => Vec::new(),
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) => a
                            .iter()
                            .map(|x| x.as_str().map(str::to_string).ok_or_else(|| want("strings")))
                            .collect::<Result<_>>()?,
                        _ => return Err(want("a string or a list of strings")),
                    }
                }
                "rank_pattern" | "alpha_pattern" => {
                    let map = match val {
                        Value::Null => Map::new(),
                        Value::Object(m) => m.clone(),
                        _ => return Err(want("an object")),
                    };
                    for (pk, pv) in map {
                        let bad = || field(k, format!("entry `{pk}`: expected a number, got {pv}"));
                        if k == "rank_pattern" {
                            c.rank_pattern.push((pk.clone(), pv.as_u64().ok_or_else(bad)? as usize));
                        } else {
                            c.alpha_pattern.push((pk.clone(), pv.as_f64().ok_or_else(bad)?));
                        }
                    }
                }
                "bias" => {
                    if val.as_str() != Some("none") {
                        return Err(field(k, format!("only \"none\" is supported, got {val}")));
                    }
                }
                "lora_bias" | "use_qalora" => {
                    if boolean()? {
                        return Err(field(k, "is not supported (only false)".into()));
                    }
                }
                "fan_in_fan_out" => {
                    if boolean()? {
                        return Err(field(k, "only false is supported (Plies stores weights [out, in])".into()));
                    }
                }
                "modules_to_save" => {
                    if !val.is_null() && val.as_array().is_none_or(|a| !a.is_empty()) {
                        return Err(field(k, format!("modules_to_save is not supported, got {val}")));
                    }
                }
                "init_lora_weights" => {
                    c.init_lora_weights = match val {
                        Value::Bool(true) => InitLora::Default,
                        Value::Bool(false) => InitLora::Random,
                        Value::String(s) if s == "gaussian" => InitLora::Gaussian,
                        _ => return Err(want("true, false or \"gaussian\"")),
                    }
                }
                _ => unknown.push(k.clone()),
            }
        }
        c.check().map_err(|(key, msg)| fmt(format!("key `{key}`"), msg))?;
        Ok((c, unknown))
    }
}

fn sort_value(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut items: Vec<(String, Value)> = m.into_iter().collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(items.into_iter().map(|(k, v)| (k, sort_value(v))).collect())
        }
        other => other,
    }
}
