//! `MolaConfig`: the LoRA settings every expert shares, the allocation of experts to layers,
//! top-k and the balance-loss coefficient; `adapter_config.json` both ways.

use crate::lora::LoraConfig;
use plies_autodiff::{Error, Result};
use serde_json::{json, Map, Value};

/// MoLA on top of a LoRA config: `lora` chooses the target modules and gives every expert
/// its rank, alpha (scaling alpha/r), dropout and init; `experts` is the allocation.
#[derive(Clone, Debug, PartialEq)]
pub struct MolaConfig {
    pub lora: LoraConfig,
    /// Experts per layer, or per group of consecutive layers when shorter (see
    /// [`MolaConfig::experts_per_layer`]).
    pub experts: Vec<usize>,
    pub top_k: usize,
    /// The weight of the summed per-layer balance losses in the training loss.
    pub aux_loss_coef: f64,
}

impl MolaConfig {
    /// The paper's settings: top-2, coefficient 0.001, the allocation parsed from `experts`
    /// ("8,6,4,2").
    pub fn new(lora: LoraConfig, experts: &str) -> Result<MolaConfig> {
        Ok(MolaConfig { lora, experts: parse_allocation(experts)?, top_k: 2, aux_loss_coef: 0.001 })
    }

    pub fn validate(&self) -> Result<()> {
        self.lora.validate()?;
        let bad = |m: String| Err(Error::invalid("mola config", m));
        if self.lora.use_dora {
            return bad("use_dora: DoRA experts are not supported".into());
        }
        if self.experts.is_empty() || self.experts.contains(&0) {
            return bad(format!("experts {:?}: every layer needs at least one expert", self.experts));
        }
        let min = *self.experts.iter().min().unwrap_or(&0);
        if self.top_k == 0 || self.top_k > min {
            return bad(format!("top_k {} must be in 1..={min} (the fewest experts of a layer)", self.top_k));
        }
        if !(self.aux_loss_coef >= 0.0 && self.aux_loss_coef.is_finite()) {
            return bad(format!("aux_loss_coef must be finite and non-negative, got {}", self.aux_loss_coef));
        }
        Ok(())
    }

    /// The expert count of each of `layers` adapted layers: `experts` itself when it has one
    /// entry per layer; with G < layers entries, G groups of layers/G consecutive layers
    /// ("8,6,4,2" over 8 layers gives 8,8,6,6,4,4,2,2). An error when G does not divide it.
    pub fn experts_per_layer(&self, layers: usize) -> Result<Vec<usize>> {
        let g = self.experts.len();
        if g == 0 || layers == 0 || g > layers || !layers.is_multiple_of(g) {
            return Err(Error::invalid(
                "mola config",
                format!(
                    "allocation {:?} ({g} groups) does not fit {layers} adapted layers: give one count per \
                     layer or a number of groups that divides it",
                    self.experts
                ),
            ));
        }
        let per = layers / g;
        Ok((0..layers).map(|i| self.experts[i / per]).collect())
    }

    /// `adapter_config.json`: the LoRA config's fields with `peft_type` "MOLA" and the MoLA
    /// fields added (`experts` as given, `experts_per_layer` resolved, `top_k`,
    /// `aux_loss_coef`), keys sorted.
    pub fn to_json(&self, per_layer: &[usize]) -> String {
        let lora: Value = serde_json::from_str(&self.lora.to_json()).expect("LoraConfig writes valid JSON");
        let mut obj: Map<String, Value> = lora.as_object().cloned().unwrap_or_default();
        obj.insert("peft_type".into(), json!("MOLA"));
        obj.insert("experts".into(), json!(self.experts));
        obj.insert("experts_per_layer".into(), json!(per_layer));
        obj.insert("top_k".into(), json!(self.top_k));
        obj.insert("aux_loss_coef".into(), json!(self.aux_loss_coef));
        let sorted: Map<String, Value> = {
            let mut kv: Vec<(String, Value)> = obj.into_iter().collect();
            kv.sort_by(|a, b| a.0.cmp(&b.0));
            kv.into_iter().collect()
        };
        serde_json::to_string_pretty(&Value::Object(sorted)).expect("a JSON value always serialises")
    }

    /// Parse `adapter_config.json` written by [`MolaConfig::to_json`]; `file` names the
    /// file in errors. Returns the config, the resolved per-layer counts it records, and
    /// the fields neither LoRA nor MoLA knows.
    pub fn from_json(text: &str, file: &str) -> Result<(MolaConfig, Vec<usize>, Vec<String>)> {
        let fmt = |at: String, msg: String| Error::Format { path: file.to_string(), at, msg };
        let v: Value = serde_json::from_str(text)
            .map_err(|e| fmt(format!("line {} column {}", e.line(), e.column()), e.to_string()))?;
        let mut obj = v.as_object().cloned().ok_or_else(|| fmt("top level".into(), "expected a JSON object".into()))?;
        match obj.get("peft_type").and_then(Value::as_str) {
            Some("MOLA") => {}
            Some(other) => return Err(fmt("key `peft_type`".into(), format!("`{other}` is not MOLA"))),
            None => return Err(fmt("key `peft_type`".into(), "missing".into())),
        }
        let counts = |k: &str, obj: &Map<String, Value>| -> Result<Vec<usize>> {
            let val = obj.get(k).ok_or_else(|| fmt(format!("key `{k}`"), "missing".into()))?;
            val.as_array()
                .and_then(|a| a.iter().map(|x| x.as_u64().map(|n| n as usize)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| fmt(format!("key `{k}`"), format!("expected a list of expert counts, got {val}")))
        };
        let experts = counts("experts", &obj)?;
        let per_layer = counts("experts_per_layer", &obj)?;
        let top_k = match obj.get("top_k") {
            Some(v) => v.as_u64().ok_or_else(|| fmt("key `top_k`".into(), format!("expected an integer, got {v}")))?,
            None => return Err(fmt("key `top_k`".into(), "missing".into())),
        } as usize;
        let aux_loss_coef = match obj.get("aux_loss_coef") {
            Some(v) => {
                v.as_f64().ok_or_else(|| fmt("key `aux_loss_coef`".into(), format!("expected a number, got {v}")))?
            }
            None => 0.001,
        };
        for k in ["experts", "experts_per_layer", "top_k", "aux_loss_coef"] {
            obj.remove(k);
        }
        obj.insert("peft_type".into(), json!("LORA"));
        let (lora, unknown) = LoraConfig::from_json(&Value::Object(obj).to_string(), file)?;
        let c = MolaConfig { lora, experts, top_k, aux_loss_coef };
        c.validate().map_err(|e| fmt("config".into(), e.to_string()))?;
        Ok((c, per_layer, unknown))
    }
}

/// An allocation written as comma-separated expert counts ("8,6,4,2", spaces allowed).
pub fn parse_allocation(text: &str) -> Result<Vec<usize>> {
    let bad = |m: String| Err(Error::invalid("mola allocation", m));
    if text.trim().is_empty() {
        return bad("empty allocation (expected counts such as \"8,6,4,2\")".into());
    }
    let mut out = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        let p = part.trim();
        match p.parse::<usize>() {
            Ok(0) => return bad(format!("`{text}`: entry {i} is 0; every layer needs at least one expert")),
            Ok(n) => out.push(n),
            Err(_) => return bad(format!("`{text}`: entry {i} `{p}` is not a positive integer")),
        }
    }
    Ok(out)
}
