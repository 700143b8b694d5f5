//! The safetensors family: raw tensor files, a model's state dict, an optimizer's state and a
//! GPT with its configuration in the metadata. All share the corruptions of `semantic`.
//!
//! Allocation bound, for every load of a file of F bytes whose header is H bytes (the length
//! field's claim, capped at what follows it) and data section D = F - 8 - H bytes:
//! - the file, read once: F;
//! - the decoded values: each element is held at the width it is stored with, so exactly D;
//! - per tensor, its bookkeeping (name, shape and strides, the storage handle, the parse entry
//!   and the output map's slot: a few hundred bytes), paid for by its header entry, which
//!   takes at least 50 bytes of JSON: `PER_HEADER_BYTE` bytes per header byte;
//! - the fixed `SLACK`.
//!
//! Loaders that convert or rebuild say what they add.

use super::mutate::Field;
use super::{Expect, Format, Loaded, SLACK};
use plies_autodiff::{Array, DType, Device, Tensor};
use plies_core::cpu::CpuStorage;
use plies_nn::checkpoint::{self, TensorFile};
use plies_nn::layers::{Gpt, GptConfig};
use plies_nn::optim::{Adam, AdamConfig, Optimizer};
use plies_nn::{Init, Layer, Module};
use serde_json::{json, Map, Value};
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

/// Bookkeeping allowed per header byte (see the module comment); measured need is about 8.
pub const PER_HEADER_BYTE: usize = 16;

/// (H, D) of a file as the loader sees them.
pub fn sizes(bytes: &[u8]) -> (usize, usize) {
    let Some(len) = bytes.get(..8) else { return (0, 0) };
    let rest = bytes.len() - 8;
    let h = (u64::from_le_bytes(len.try_into().unwrap()).min(rest as u64)) as usize;
    (h, rest - h)
}

pub fn base_bound(bytes: &[u8]) -> usize {
    let (h, d) = sizes(bytes);
    bytes.len() + d + PER_HEADER_BYTE * h + SLACK
}

/// The header as (key, value) pairs (metadata first, tensors by offset) and the data section.
/// Header pairs and the data section.
type Split = (Vec<(String, Value)>, Vec<u8>);

pub fn split(b: &[u8]) -> Option<Split> {
    let n = u64::from_le_bytes(b.get(..8)?.try_into().ok()?) as usize;
    let header: Map<String, Value> = serde_json::from_slice(b.get(8..8usize.checked_add(n)?)?).ok()?;
    let mut pairs: Vec<(String, Value)> = header.into_iter().collect();
    let start = |v: &Value| v["data_offsets"][0].as_u64().unwrap_or(0);
    pairs.sort_by_key(|(k, v)| (k != "__metadata__", start(v)));
    Some((pairs, b[8 + n..].to_vec()))
}

/// A file from header pairs (written in order, so keys may repeat) and a data section.
pub fn assemble(pairs: &[(String, Value)], data: &[u8]) -> Vec<u8> {
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v)).collect();
    let header = format!("{{{}}}", body.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn tensor_indices(pairs: &[(String, Value)]) -> Vec<usize> {
    (0..pairs.len()).filter(|&i| pairs[i].0 != "__metadata__").collect()
}

fn offsets(v: &Value) -> (usize, usize) {
    let o = &v["data_offsets"];
    (o[0].as_u64().unwrap_or(0) as usize, o[1].as_u64().unwrap_or(0) as usize)
}

/// Whether every tensor's range lies inside `data` (corruptions that move data need it).
fn in_range(pairs: &[(String, Value)], data: &[u8]) -> bool {
    tensor_indices(pairs).iter().all(|&i| {
        let (s, e) = offsets(&pairs[i].1);
        s <= e && e <= data.len()
    })
}

/// Corruptions every safetensors file can take. `nan_ok` says which tensors may hold NaN and
/// Inf and still load (all but an optimizer's step counts).
pub fn semantic(bytes: &[u8], variant: u8, p: u64, nan_ok: &dyn Fn(&str) -> bool) -> Option<(Vec<u8>, Expect)> {
    let (mut pairs, mut data) = split(bytes)?;
    if !in_range(&pairs, &data) {
        return None;
    }
    let ts = tensor_indices(&pairs);
    let pick = |p: u64| ts.get((p % ts.len().max(1) as u64) as usize).copied();
    let fails = |pairs: &[(String, Value)], data: &[u8]| Some((assemble(pairs, data), Expect::Fails));
    match variant % 20 {
        0 => {
            // A duplicate name, with its own (valid) data range.
            let i = pick(p)?;
            let (s, e) = offsets(&pairs[i].1);
            let mut dup = pairs[i].clone();
            dup.1["data_offsets"] = json!([data.len(), data.len() + e - s]);
            data.extend_from_within(s..e);
            pairs.push(dup);
            fails(&pairs, &data)
        }
        1 => {
            // Overlapping ranges: a tensor moved back into its predecessor.
            let i = pick(p)?;
            let (s, e) = offsets(&pairs[i].1);
            let k = 1 + (p as usize >> 8) % s.max(1);
            if s == 0 || e == s {
                return None;
            }
            pairs[i].1["data_offsets"] = json!([s - k, e - k]);
            fails(&pairs, &data)
        }
        2 => {
            // A shape and range claiming a terabyte.
            let i = pick(p)?;
            let (s, _) = offsets(&pairs[i].1);
            pairs[i].1["dtype"] = json!("F32");
            pairs[i].1["shape"] = json!([1u64 << 20, 1u64 << 18]);
            pairs[i].1["data_offsets"] = json!([s, s + (1usize << 40)]);
            fails(&pairs, &data)
        }
        3 | 4 => {
            let mut b = bytes.to_vec();
            let claim = if variant % 20 == 3 { 1u64 << 40 } else { p | (1 << 32) };
            b[..8].copy_from_slice(&claim.to_le_bytes());
            Some((b, Expect::Fails))
        }
        5 | 6 => {
            // NaN, Inf and friends as payload: legal values, which load bit for bit.
            let specials32: [u32; 8] = [
                0x7fc0_0000,
                0xffc0_0000,
                0x7f80_0001,
                0x7f80_0000,
                0xff80_0000,
                0x7f7f_ffff,
                0x0000_0001,
                0x8000_0000,
            ];
            let mut touched = false;
            for &i in &ts {
                let (k, v) = &pairs[i];
                if !nan_ok(k) {
                    continue;
                }
                let (s, e) = offsets(v);
                let mut q = p;
                match v["dtype"].as_str() {
                    Some("F32") => {
                        for c in data[s..e].chunks_exact_mut(4) {
                            c.copy_from_slice(&specials32[(q % 8) as usize].to_le_bytes());
                            q = q.rotate_right(3);
                            touched = true;
                        }
                    }
                    Some("F64") => {
                        for c in data[s..e].chunks_exact_mut(8) {
                            let bits = [0x7ff8_0000_0000_0000u64, 0x7ff0_0000_0000_0001, 0xfff0_0000_0000_0000, 1];
                            c.copy_from_slice(&bits[(q % 4) as usize].to_le_bytes());
                            q = q.rotate_right(2);
                            touched = true;
                        }
                    }
                    _ => {}
                }
            }
            touched.then(|| (assemble(&pairs, &data), Expect::Loads))
        }
        7 => {
            let i = pick(p)?;
            let (s, e) = offsets(&pairs[i].1);
            if e == s {
                return None;
            }
            pairs[i].1["data_offsets"] = json!([e, s]);
            fails(&pairs, &data)
        }
        8 => {
            let i = pick(p)?;
            pairs[i].1["dtype"] = json!(["BF16", "F16", "U8", "F33", "", "f32"][(p >> 8) as usize % 6]);
            fails(&pairs, &data)
        }
        9 => {
            // Two metadata maps, or one key twice inside one.
            let meta = (String::from("__metadata__"), json!({"k": "v"}));
            pairs.insert(0, meta.clone());
            if p.is_multiple_of(2) {
                pairs.insert(0, meta);
                return fails(&pairs, &data);
            }
            let mut b = assemble(&pairs, &data);
            let at = b.windows(5).position(|w| w == b"\"k\":\"")?;
            b.splice(at..at, b"\"k\":\"w\",".iter().copied());
            let n = u64::from_le_bytes(b[..8].try_into().unwrap()) + 8;
            b[..8].copy_from_slice(&n.to_le_bytes());
            Some((b, Expect::Fails))
        }
        10 => {
            pairs.insert(0, ("__metadata__".into(), json!({"k": [p % 100]})));
            fails(&pairs, &data)
        }
        11 => {
            let i = pick(p)?;
            pairs[i].1["extra"] = json!(p % 100);
            fails(&pairs, &data)
        }
        12 => {
            let i = pick(p)?;
            let field = ["dtype", "shape", "data_offsets"][(p >> 8) as usize % 3];
            pairs[i].1.as_object_mut()?.remove(field);
            fails(&pairs, &data)
        }
        13 => {
            // Rank past the limit, or a zero dimension next to ones whose strides overflow.
            let i = pick(p)?;
            let (s, _) = offsets(&pairs[i].1);
            let shape = if p.is_multiple_of(2) { json!(vec![1; 65]) } else { json!([0, 1u64 << 40, 1u64 << 40]) };
            pairs[i].1["shape"] = shape;
            pairs[i].1["data_offsets"] = json!([s, s]);
            fails(&pairs, &data)
        }
        14 => {
            let i = pick(p)?;
            pairs[i].1["shape"] = json!([1u64 << 33, 1u64 << 33]);
            fails(&pairs, &data)
        }
        15 => {
            // A gap: every later tensor shifted by 4 bytes.
            let i = pick(p)?;
            let (s, _) = offsets(&pairs[i].1);
            for &j in &ts {
                let (a, b) = offsets(&pairs[j].1);
                if a >= s && !(a == b && a == s && j != i) {
                    pairs[j].1["data_offsets"] = json!([a + 4, b + 4]);
                }
            }
            data.splice(s..s, [0u8; 4]);
            fails(&pairs, &data)
        }
        16 => {
            data.extend_from_slice(&p.to_le_bytes()[..1 + (p as usize >> 60) % 7]);
            fails(&pairs, &data)
        }
        17 => {
            if data.is_empty() {
                return None;
            }
            let cut = 1 + (p as usize) % data.len();
            data.truncate(data.len() - cut);
            fails(&pairs, &data)
        }
        18 => {
            // Valid variations: header padded with spaces (as the reference writer aligns it)
            // and entries in another order.
            pairs.reverse();
            let mut b = assemble(&pairs, &[]);
            let pad = (p % 16) as usize;
            let n = u64::from_le_bytes(b[..8].try_into().unwrap()) + pad as u64;
            b.extend(std::iter::repeat_n(b' ', pad));
            b[..8].copy_from_slice(&n.to_le_bytes());
            b.extend_from_slice(&data);
            Some((b, Expect::Loads))
        }
        _ => {
            // A renamed tensor (escapes, non-ASCII): a raw tensor file still loads.
            let i = pick(p)?;
            let name = ["w\u{e9}\"\\\n", "", "\u{1f600}.x", "__metadata"][(p >> 8) as usize % 4].to_string();
            // A name already taken (by an earlier rename) would be a duplicate: variant 0's job.
            if pairs.iter().any(|(k, _)| *k == name) {
                return None;
            }
            pairs[i].0 = name;
            Some((assemble(&pairs, &data), Expect::Either))
        }
    }
}

/// The header length field.
pub fn length_field(_: &[u8]) -> Vec<Field> {
    vec![Field { at: 0, width: 8, big_endian: false }]
}

/// The array's stored bytes, little-endian, without any conversion (NaN payloads intact).
fn raw_le(a: &Array) -> Option<Vec<u8>> {
    let s = a.storage().as_any().downcast_ref::<CpuStorage>()?;
    Some(match a.dtype() {
        DType::F32 => s.as_slice::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F64 => s.as_slice::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::I32 => s.as_slice::<i32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
    })
}

fn decode(dtype: &str, b: &[u8]) -> Vec<f64> {
    match dtype {
        "F64" => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        "I32" => b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        _ => b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
    }
}

/// The values of the file's entry `v`, as f64 (widened, so NaN payloads of F32 do not survive).
pub fn decode_entry(v: &Value, data: &[u8]) -> Result<Vec<f64>, String> {
    let (s, e) = offsets(v);
    let stored = data.get(s..e).ok_or(format!("range [{s}, {e}] is outside the data"))?;
    Ok(decode(v["dtype"].as_str().unwrap_or(""), stored))
}

/// `a` holds what the file's entry `v` does: the same bytes when the dtype is the stored one,
/// else the same values (an optimizer converts its state to the parameter's dtype).
fn matches_entry(name: &str, a: &Array, v: &Value, data: &[u8]) -> Result<(), String> {
    let (s, e) = offsets(v);
    let dtype = v["dtype"].as_str().unwrap_or("");
    let shape: Vec<usize> =
        v["shape"].as_array().map(|d| d.iter().map(|x| x.as_u64().unwrap_or(0) as usize).collect()).unwrap_or_default();
    let stored = data.get(s..e).ok_or(format!("`{name}`: loaded, but its range [{s}, {e}] is outside the data"))?;
    let same_dtype = format!("{:?}", a.dtype()).eq_ignore_ascii_case(dtype);
    if same_dtype {
        if a.dims() != shape.as_slice() || raw_le(a).as_deref() != Some(stored) {
            return Err(format!(
                "`{name}`: got {} {:?}, file has {dtype} {shape:?} with other bytes",
                a.dtype(),
                a.dims()
            ));
        }
        return Ok(());
    }
    let got: Vec<f64> = a.to_dtype(DType::F64).and_then(|x| x.to_vec::<f64>()).map_err(|e| e.to_string())?;
    let want = decode(dtype, stored);
    let same = |x: f64, y: f64| x == y || (x.is_nan() && y.is_nan()) || (x as f32) == (y as f32);
    if got.len() != want.len() || !got.iter().zip(&want).all(|(&x, &y)| same(x, y)) {
        return Err(format!("`{name}`: values differ from the file's {dtype}"));
    }
    Ok(())
}

/// Every array of `got` is in the file and holds what the file does; with `all`, every tensor
/// of the file is in `got`.
pub fn verify_arrays(bytes: &[u8], got: &[(String, Array)], all: bool) -> Result<(), String> {
    let (pairs, data) = split(bytes).ok_or("the loaded file does not parse as a safetensors header")?;
    let entries: HashMap<&str, &Value> =
        pairs.iter().filter(|(k, _)| k != "__metadata__").map(|(k, v)| (k.as_str(), v)).collect();
    if all && entries.len() != got.len() {
        return Err(format!("{} tensors loaded, the file has {}", got.len(), entries.len()));
    }
    for (name, a) in got {
        let v = entries.get(name.as_str()).ok_or(format!("`{name}` is not in the file"))?;
        matches_entry(name, a, v, &data)?;
    }
    Ok(())
}

pub fn write_seed(f: impl FnOnce(&Path)) -> Vec<u8> {
    let dir = super::scratch("seed");
    let path = dir.join(format!("s{:?}.safetensors", std::thread::current().id()).replace(['(', ')'], ""));
    f(&path);
    let b = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    b
}

// --- raw tensor files ----------------------------------------------------------------------

pub struct Tensors;

impl Format for Tensors {
    fn name(&self) -> &'static str {
        "safetensors load_tensors"
    }
    fn file_name(&self) -> &'static str {
        "case.safetensors"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        let t = |v: Vec<f32>, s: Vec<usize>| Array::from_vec(v, s, Device::Cpu).unwrap();
        let tensors = vec![
            ("a.weight".to_string(), t(vec![1.0, -2.5, 3.25, 0.0, 1e-8, 7.0], vec![2, 3])),
            ("b".to_string(), Array::from_vec(vec![1.0f64, -1.0, 0.5, 2.0], vec![4], Device::Cpu).unwrap()),
            ("c.idx".to_string(), Array::from_vec(vec![3i32, -7, 1 << 30], vec![3], Device::Cpu).unwrap()),
            ("empty".to_string(), t(vec![], vec![0, 5])),
            ("scalar".to_string(), t(vec![4.0], vec![])),
        ];
        let meta = HashMap::from([("format".to_string(), "pt".to_string()), ("note".to_string(), "ok".to_string())]);
        vec![
            write_seed(|p| checkpoint::save_tensors(p, &tensors, &meta).unwrap()),
            write_seed(|p| checkpoint::save_tensors(p, &tensors[..1], &HashMap::new()).unwrap()),
            assemble(&[], &[]),
        ]
    }
    fn fields(&self, seed: &[u8]) -> Vec<Field> {
        length_field(seed)
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        let (b, e) = semantic(bytes, variant, p, &|_| true)?;
        // A renamed tensor is still a valid raw file.
        Some((b, if variant % 20 == 19 { Expect::Loads } else { e }))
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        Ok(Box::new(checkpoint::load_tensors(path, Device::Cpu)?))
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        let f = out.downcast_ref::<TensorFile>().ok_or("not a TensorFile")?;
        let got: Vec<(String, Array)> = f.tensors.iter().map(|(k, a)| (k.clone(), a.clone())).collect();
        verify_arrays(bytes, &got, true)?;
        let (pairs, _) = split(bytes).ok_or("no header")?;
        let want: HashMap<String, String> = pairs
            .iter()
            .find(|(k, _)| k == "__metadata__")
            .and_then(|(_, v)| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if f.metadata != want {
            return Err(format!("metadata {:?}, file has {want:?}", f.metadata));
        }
        Ok(())
    }
    fn bound(&self, bytes: &[u8], _: Option<&dyn Any>) -> usize {
        base_bound(bytes)
    }
}

// --- a model's state dict -------------------------------------------------------------------

fn tiny() -> GptConfig {
    GptConfig { vocab_size: 7, context: 4, d_model: 4, n_layer: 1, n_head: 2, mlp_ratio: 2, ..GptConfig::char_small() }
}

fn named(m: &dyn Module) -> Vec<(String, Array)> {
    m.named_parameters().into_iter().map(|p| (p.name, p.tensor.value())).collect()
}

pub struct StateDict {
    model: Gpt,
}

impl StateDict {
    pub fn new() -> StateDict {
        StateDict { model: Gpt::new(&mut Init::new(3), tiny()) }
    }
}

impl Format for StateDict {
    fn name(&self) -> &'static str {
        "safetensors load_model"
    }
    fn file_name(&self) -> &'static str {
        "model.safetensors"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        let other = Gpt::new(&mut Init::new(4), tiny());
        vec![write_seed(|p| checkpoint::save_model(&other, p, &HashMap::new()).unwrap())]
    }
    fn fields(&self, seed: &[u8]) -> Vec<Field> {
        length_field(seed)
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        semantic(bytes, variant, p, &|_| true)
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        checkpoint::load_model(&self.model, path)?;
        Ok(Box::new(named(&self.model)))
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        verify_arrays(bytes, out.downcast_ref::<Vec<(String, Array)>>().ok_or("not arrays")?, true)
    }
    fn bound(&self, bytes: &[u8], _: Option<&dyn Any>) -> usize {
        // Assigning keeps the loaded arrays (no copy); the old values are freed.
        base_bound(bytes)
    }
}

// --- an optimizer's state -------------------------------------------------------------------

pub struct OptimizerState {
    model: Gpt,
    opt: RefCell<Adam>,
}

impl OptimizerState {
    pub fn new() -> OptimizerState {
        let model = Gpt::new(&mut Init::new(5), tiny());
        let opt = Adam::new(model.named_parameters(), AdamConfig::adam(1e-2)).unwrap();
        OptimizerState { model, opt: RefCell::new(opt) }
    }
}

impl Format for OptimizerState {
    fn name(&self) -> &'static str {
        "safetensors load_optimizer"
    }
    fn file_name(&self) -> &'static str {
        "optim.safetensors"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        let ids = Tensor::from_vec(vec![1i32, 5, 2, 0, 6, 3, 3, 1], [2, 4], Device::Cpu);
        let y = Tensor::from_vec(vec![5i32, 2, 0, 6, 3, 3, 1, 4], [2, 4], Device::Cpu);
        let mut opt = self.opt.borrow_mut();
        for _ in 0..2 {
            self.model.forward(&ids).cross_entropy(&y).backward().unwrap();
            opt.step().unwrap();
            opt.zero_grad();
        }
        vec![write_seed(|p| checkpoint::save_optimizer(&*opt, p).unwrap())]
    }
    fn fields(&self, seed: &[u8]) -> Vec<Field> {
        length_field(seed)
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        // Step counts must be positive integers; NaN in the moment estimates is state.
        semantic(bytes, variant, p, &|k| !k.ends_with(".step"))
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        let mut opt = self.opt.borrow_mut();
        checkpoint::load_optimizer(&mut *opt, path)?;
        Ok(Box::new(opt.state_dict()))
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        verify_arrays(bytes, out.downcast_ref::<Vec<(String, Array)>>().ok_or("not arrays")?, true)
    }
    fn bound(&self, bytes: &[u8], _: Option<&dyn Any>) -> usize {
        // Plus one conversion of the state to the parameters' dtype (at most D again) and the
        // returned state_dict's names.
        let (h, d) = sizes(bytes);
        base_bound(bytes) + d + PER_HEADER_BYTE * h
    }
}

// --- a GPT rebuilt from its file ------------------------------------------------------------

pub struct GptFile;

impl GptFile {
    pub fn new() -> GptFile {
        GptFile
    }
}

impl Format for GptFile {
    fn name(&self) -> &'static str {
        "safetensors load_gpt"
    }
    fn file_name(&self) -> &'static str {
        "gpt.safetensors"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        let g = Gpt::new(&mut Init::new(6), tiny());
        let meta = HashMap::from([("vocab".to_string(), "\"abcdefg\"".to_string())]);
        vec![write_seed(|p| checkpoint::save_gpt(&g, p, &meta).unwrap())]
    }
    fn fields(&self, seed: &[u8]) -> Vec<Field> {
        length_field(seed)
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        if variant.is_multiple_of(2) {
            return semantic(bytes, variant / 2, p, &|_| true);
        }
        // Corrupt configurations: ones that would panic in Gpt::new, or build a model far
        // bigger than the file, must be refused before any model is built.
        let (mut pairs, data) = split(bytes)?;
        let meta = pairs.iter_mut().find(|(k, _)| k == "__metadata__")?;
        let key = checkpoint::CONFIG_KEY;
        let mut cfg: Value = serde_json::from_str(meta.1[key].as_str()?).ok()?;
        cfg.as_object()?;
        let change: (&str, Value) = match (variant / 2) % 10 {
            0 => ("n_head", json!(0)),
            1 => ("n_head", json!(3)),
            2 => ("d_model", json!(1u64 << 40)),
            3 => ("n_layer", json!(1_000_000_000u64)),
            4 => ("vocab_size", json!(1u64 << 50)),
            5 => ("dropout", json!(1.5)),
            6 => ("n_layer", json!(2)),
            7 => ("mlp_ratio", json!(u64::MAX)),
            8 => ("context", json!("many")),
            _ => {
                meta.1[key] = json!(["{", "", "[]", "{\"model\":\"gpt\"}"][(p % 4) as usize]);
                return Some((assemble(&pairs, &data), Expect::Fails));
            }
        };
        cfg[change.0] = change.1;
        meta.1[key] = json!(cfg.to_string());
        Some((assemble(&pairs, &data), Expect::Fails))
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        let (g, _) = checkpoint::load_gpt(path, &mut Init::new(0))?;
        Ok(Box::new(named(&g)))
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        verify_arrays(bytes, out.downcast_ref::<Vec<(String, Array)>>().ok_or("not arrays")?, true)
    }
    fn bound(&self, bytes: &[u8], _: Option<&dyn Any>) -> usize {
        // The file is read twice, one after the other (config check, then the state dict), and
        // the model is built in between: its values (4-byte f32, never more than the file's
        // elements, each stored in 4 or 8 bytes: at most D) and its modules' bookkeeping (one
        // parameter per file tensor at most, each paid for by its header entry).
        let (h, d) = sizes(bytes);
        base_bound(bytes) + d + 2 * PER_HEADER_BYTE * h
    }
}
