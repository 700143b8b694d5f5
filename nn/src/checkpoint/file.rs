//! Reading and writing safetensors files (through the `safetensors` crate), with errors
//! that name the file and the tensor or byte offset at fault, never a panic.

use plies_autodiff::{Array, DType, Device, Error, Result};
use safetensors::tensor::{Dtype, SafeTensorError, TensorView};
use safetensors::SafeTensors;
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
pub fn load_tensors(path: impl AsRef<Path>, device: Device) -> Result<TensorFile> {
    let path = path.as_ref();
    let buf = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&buf).map_err(|e| diagnose(path, &buf, e))?;
    let (_, header) = SafeTensors::read_metadata(&buf).map_err(|e| diagnose(path, &buf, e))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let a = from_view(path, &name, &view)?.to_device(device)?;
        tensors.insert(name, a);
    }
    Ok(TensorFile { tensors, metadata })
}

fn from_view(path: &Path, name: &str, v: &TensorView<'_>) -> Result<Array> {
    let shape = v.shape().to_vec();
    let d = v.data();
    let a = match v.dtype() {
        Dtype::F32 => Array::from_vec(
            d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            shape,
            Device::Cpu,
        ),
        Dtype::F64 => Array::from_vec(
            d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
            shape,
            Device::Cpu,
        ),
        Dtype::I32 => Array::from_vec(
            d.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect(),
            shape,
            Device::Cpu,
        ),
        other => {
            return Err(Error::Format {
                path: path.display().to_string(),
                at: format!("tensor `{name}`"),
                msg: format!("dtype {other:?} is not supported (F32, F64 and I32 are)"),
            })
        }
    };
    a.map_err(|e| Error::Format {
        path: path.display().to_string(),
        at: format!("tensor `{name}`"),
        msg: e.to_string(),
    })
}

/// Turn a parse error into one naming the file and where in it things went wrong.
fn diagnose(path: &Path, buf: &[u8], e: SafeTensorError) -> Error {
    let file = path.display().to_string();
    let fmt = |at: String, msg: String| Error::Format { path: file.clone(), at, msg };
    let len = buf.len();
    let n = buf.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    match e {
        SafeTensorError::HeaderTooSmall => {
            fmt("byte 0".into(), format!("file is {len} bytes, too short for the 8-byte header length (truncated?)"))
        }
        SafeTensorError::HeaderTooLarge | SafeTensorError::InvalidHeaderLength => fmt(
            "byte 0".into(),
            format!(
                "header length field says {} bytes but only {} bytes follow it (truncated or not a safetensors file)",
                n.unwrap_or(0),
                len.saturating_sub(8)
            ),
        ),
        SafeTensorError::InvalidHeader(_)
        | SafeTensorError::InvalidHeaderStart
        | SafeTensorError::InvalidHeaderDeserialization(_)
        | SafeTensorError::JsonError(_) => {
            fmt(format!("header (bytes 8..{})", 8 + n.unwrap_or(0)), format!("corrupt header: {e}"))
        }
        SafeTensorError::InvalidOffset(name) => {
            fmt(format!("tensor `{name}`"), "data_offsets do not start where the previous tensor ends".into())
        }
        SafeTensorError::TensorInvalidInfo => match find_bad_size(buf) {
            Some((name, msg)) => fmt(format!("tensor `{name}`"), msg),
            None => fmt("header".into(), e.to_string()),
        },
        SafeTensorError::MetadataIncompleteBuffer => {
            let data_start = 8 + n.unwrap_or(0) as usize;
            let end = data_end(buf).map(|e| data_start + e);
            match end {
                Some(end) if end > len => fmt(
                    format!("byte offset {len}"),
                    format!("file ends early: the header's tensors need {end} bytes, the file has {len} (truncated)"),
                ),
                Some(end) => {
                    fmt(format!("byte offset {end}"), format!("{} unexpected bytes after the last tensor", len - end))
                }
                None => fmt("header".into(), e.to_string()),
            }
        }
        other => fmt("header".into(), other.to_string()),
    }
}

/// One tensor entry of a header: (name, dtype string, shape, data_offsets).
type Entry = (String, String, Vec<usize>, (usize, usize));

/// The header's tensor entries, parsed leniently to explain a validation error.
fn header_entries(buf: &[u8]) -> Option<Vec<Entry>> {
    let n = u64::from_le_bytes(buf.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value = serde_json::from_slice(buf.get(8..8usize.checked_add(n)?)?).ok()?;
    let mut out = Vec::new();
    for (k, v) in header.as_object()? {
        if k == "__metadata__" {
            continue;
        }
        let dtype = v.get("dtype")?.as_str()?.to_string();
        let shape =
            v.get("shape")?.as_array()?.iter().map(|d| d.as_u64().map(|d| d as usize)).collect::<Option<_>>()?;
        let offs = v.get("data_offsets")?.as_array()?;
        let offs = (offs.first()?.as_u64()? as usize, offs.get(1)?.as_u64()? as usize);
        out.push((k.clone(), dtype, shape, offs));
    }
    Some(out)
}

fn data_end(buf: &[u8]) -> Option<usize> {
    header_entries(buf).map(|es| es.iter().map(|e| e.3 .1).max().unwrap_or(0))
}

fn find_bad_size(buf: &[u8]) -> Option<(String, String)> {
    for (name, dtype, shape, (s, e)) in header_entries(buf)? {
        let size = match dtype.as_str() {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            "I8" | "U8" | "BOOL" => 1,
            _ => continue,
        };
        let need = shape.iter().product::<usize>() * size;
        if e.checked_sub(s) != Some(need) {
            return Some((
                name,
                format!("data_offsets [{s}, {e}] hold {} bytes but {dtype} {shape:?} needs {need}", e.wrapping_sub(s)),
            ));
        }
    }
    None
}
