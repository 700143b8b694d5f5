//! Reading and writing safetensors files: written through the `safetensors` crate, read by our
//! own checked parser (`header.rs`), with errors that name the file and the tensor or byte
//! offset at fault, never a panic.

use super::header;
use plies_autodiff::{Array, DType, Device, Error, Result};
use safetensors::tensor::Dtype;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// The tensors and string metadata of one file.
#[derive(Clone, Debug)]
pub struct TensorFile {
    pub tensors: HashMap<String, Array>,
    pub metadata: HashMap<String, String>,
}

/// A host copy of one array in safetensors' little-endian layout.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl safetensors::View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_bytes(a: &Array) -> Result<Bytes> {
    let (dtype, data) = match a.dtype() {
        DType::F32 => (Dtype::F32, a.to_vec::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::F64 => (Dtype::F64, a.to_vec::<f64>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
        DType::I32 => (Dtype::I32, a.to_vec::<i32>()?.iter().flat_map(|v| v.to_le_bytes()).collect()),
    };
    Ok(Bytes { dtype, shape: a.dims().to_vec(), data })
}

/// Write `tensors` and `metadata` to `path` (through a temporary file flushed to disk and
/// renamed into place, so a crash never leaves a half-written checkpoint under the real name).
pub fn save_tensors(
    path: impl AsRef<Path>,
    tensors: &[(String, Array)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    let mut seen = std::collections::HashSet::new();
    for (k, _) in tensors {
        if !seen.insert(k) {
            return Err(Error::Format {
                path: path.display().to_string(),
                at: format!("tensor `{k}`"),
                msg: "name used twice".into(),
            });
        }
    }
    let bytes: Vec<(String, Bytes)> =
        tensors.iter().map(|(k, a)| Ok((k.clone(), to_bytes(a)?))).collect::<Result<_>>()?;
    let meta = if metadata.is_empty() { None } else { Some(metadata.clone()) };
    let buf = safetensors::serialize(bytes.iter().map(|(k, b)| (k.as_str(), b)), meta).map_err(|e| Error::Format {
        path: path.display().to_string(),
        at: "serialize".into(),
        msg: e.to_string(),
    })?;
    super::atomic::write_atomic(path, &buf)
}

/// Read every tensor of a safetensors file onto `device`. Supported dtypes: F32, F64, I32.
///
/// The whole header is checked against the file before any tensor is decoded, and nothing is
/// allocated for what a header claims beyond the file's own size. NaN and infinite values are
/// legal tensor contents and load unchanged, bit for bit (a diverged run's checkpoint must stay
/// inspectable; `detect_anomaly` is the tool that reports where they arise).
pub fn load_tensors(path: impl AsRef<Path>, device: Device) -> Result<TensorFile> {
    let path = path.as_ref();
    let buf = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let header = header::parse(path, &buf)?;
    let mut tensors = HashMap::with_capacity(header.entries.len());
    for e in header.entries {
        let bytes = &buf[header.data_start + e.start..header.data_start + e.end];
        let a = from_bytes(e.dtype, bytes, e.shape).and_then(|a| a.to_device(device)).map_err(|err| Error::Format {
            path: path.display().to_string(),
            at: format!("tensor `{}`", e.name),
            msg: err.to_string(),
        })?;
        tensors.insert(e.name, a);
    }
    Ok(TensorFile { tensors, metadata: header.metadata })
}

/// Little-endian values of `dtype`; `bytes` holds exactly `shape`'s elements (checked by the
/// header parse), so each vector is allocated once at its final size.
fn from_bytes(dtype: DType, bytes: &[u8], shape: Vec<usize>) -> Result<Array> {
    match dtype {
        DType::F32 => Array::from_vec(
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            shape,
            Device::Cpu,
        ),
        DType::F64 => Array::from_vec(
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk"))).collect(),
            shape,
            Device::Cpu,
        ),
        DType::I32 => Array::from_vec(
            bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            shape,
            Device::Cpu,
        ),
    }
}
