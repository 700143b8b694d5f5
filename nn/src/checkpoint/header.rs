//! The header of a safetensors file (an 8-byte little-endian length, then that many bytes of
//! JSON), parsed strictly and checked against the file before any tensor is decoded.
//!
//! Our own reader rather than the `safetensors` crate's: that one buffers the whole JSON into
//! serde's generic `Content` tree (tens of bytes per header byte), keeps the last of two
//! entries with the same name, and its errors carry no position. Here the parse allocates only
//! the names, one exact-size shape per tensor and the entry list, and every error names the
//! file and the tensor or the byte offset.

use plies_autodiff::{DType, Error, Result};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// The most dimensions a tensor may have (NumPy's limit). A longer shape is corrupt; the cap
/// also lets a shape be parsed on the stack and stored in an exact-size allocation.
pub(crate) const MAX_RANK: usize = 64;

/// The key of the string-to-string metadata map.
const METADATA: &str = "__metadata__";

/// One tensor of the header; offsets are relative to the start of the data section.
pub(crate) struct Entry {
    pub name: String,
    pub dtype: DType,
    /// Why `dtype` could not be used (an unsupported or unknown name), reported after the parse
    /// so the error can name the tensor.
    pub bad_dtype: Option<String>,
    pub shape: Vec<usize>,
    pub start: usize,
    pub end: usize,
}

pub(crate) struct Header {
    /// In the order of their data (by `start`), checked to tile the data section exactly.
    pub entries: Vec<Entry>,
    pub metadata: HashMap<String, String>,
    /// Byte offset of the data section in the file.
    pub data_start: usize,
}

/// Parse and check the header of `buf` (the whole file read from `path`).
pub(crate) fn parse(path: &Path, buf: &[u8]) -> Result<Header> {
    let fail = |at: String, msg: String| Error::Format { path: path.display().to_string(), at, msg };
    let Some(len) = buf.get(..8) else {
        return Err(fail(
            "byte 0".into(),
            format!("file is {} bytes, too short for the 8-byte header length (truncated?)", buf.len()),
        ));
    };
    let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    let rest = buf.len() - 8;
    // Checked against the file before anything is allocated: a length claiming a terabyte
    // is refused here, whatever the rest of the file holds.
    let n = match usize::try_from(n) {
        Ok(n) if n <= rest => n,
        _ => {
            return Err(fail(
                "byte 0".into(),
                format!(
                    "header length field says {n} bytes but only {rest} bytes follow it \
                     (truncated or not a safetensors file)"
                ),
            ))
        }
    };
    let json = &buf[8..8 + n];
    let mut de = serde_json::Deserializer::from_slice(json);
    let parsed = de.deserialize_map(HeaderVisitor).and_then(|h| de.end().map(|_| h));
    let (mut entries, metadata) = parsed.map_err(|e| {
        fail(format!("header byte {}", 8 + offset_of(json, e.line(), e.column())), format!("corrupt header: {e}"))
    })?;
    let data_start = 8 + n;
    check_entries(&mut entries, buf.len() - data_start, data_start, &fail)?;
    Ok(Header { entries, metadata, data_start })
}

/// Byte offset in `json` of serde_json's (1-based line, 1-based column) position.
fn offset_of(json: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        json.iter().enumerate().filter(|(_, &b)| b == b'\n').nth(line - 2).map_or(json.len(), |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(json.len())
}

/// Names unique, dtypes supported, shapes and sizes consistent, and the data ranges tiling
/// `data_len` bytes exactly: leaves `entries` sorted by offset.
fn check_entries(
    entries: &mut [Entry],
    data_len: usize,
    data_start: usize,
    fail: &dyn Fn(String, String) -> Error,
) -> Result<()> {
    let tensor = |name: &str| format!("tensor `{name}`");
    if let Some(e) = entries.iter().find(|e| e.bad_dtype.is_some()) {
        return Err(fail(tensor(&e.name), e.bad_dtype.clone().unwrap_or_default()));
    }
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = entries.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(fail(tensor(&w[0].name), "the name appears twice in the header".into()));
    }
    for e in entries.iter() {
        if e.end < e.start {
            return Err(fail(tensor(&e.name), format!("data_offsets [{}, {}] end before they start", e.start, e.end)));
        }
        // Strides multiply every dimension but the first, so those must fit even when a zero
        // dimension makes the element count 0.
        let nonzero = e.shape.iter().filter(|&&d| d != 0).try_fold(1usize, |a, &d| a.checked_mul(d));
        let bytes = nonzero.and_then(|_| e.shape.iter().try_fold(dtype_size(e.dtype), |a, &d| a.checked_mul(d)));
        let Some(bytes) = bytes else {
            return Err(fail(tensor(&e.name), format!("shape {:?} overflows the address space", e.shape)));
        };
        if e.end - e.start != bytes {
            return Err(fail(
                tensor(&e.name),
                format!(
                    "data_offsets [{}, {}] hold {} bytes but {} {:?} needs {bytes}",
                    e.start,
                    e.end,
                    e.end - e.start,
                    e.dtype,
                    e.shape
                ),
            ));
        }
    }
    entries.sort_unstable_by_key(|e| (e.start, e.end));
    let mut at = 0;
    let mut prev: Option<&str> = None;
    for e in entries.iter() {
        if e.start != at {
            let what = if e.start < at { "overlaps" } else { "leaves a gap after" };
            let after = prev.map_or("the start of the data".to_string(), tensor);
            return Err(fail(
                tensor(&e.name),
                format!("data_offsets start at {} but {after} ends at {at}: it {what} it", e.start),
            ));
        }
        if e.end > data_len {
            return Err(fail(
                format!("byte offset {}", data_start + data_len),
                format!(
                    "file ends early: tensor `{}` needs bytes up to {}, the file has {} (truncated)",
                    e.name,
                    data_start + e.end,
                    data_start + data_len
                ),
            ));
        }
        at = e.end;
        prev = Some(&e.name);
    }
    if at != data_len {
        return Err(fail(
            format!("byte offset {}", data_start + at),
            format!("{} unexpected bytes after the last tensor", data_len - at),
        ));
    }
    Ok(())
}

pub(crate) fn dtype_size(d: DType) -> usize {
    match d {
        DType::F32 | DType::I32 => 4,
        DType::F64 => 8,
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = (Vec<Entry>, HashMap<String, String>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of tensor entries")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        let mut metadata = None;
        while let Some(name) = map.next_key::<String>()? {
            if name == METADATA {
                if metadata.is_some() {
                    return Err(de::Error::custom(format!("`{METADATA}` appears twice")));
                }
                metadata = Some(map.next_value_seed(MetadataVisitor)?);
            } else {
                let (dtype, shape, (start, end)) = map.next_value_seed(EntryVisitor { name: &name })?;
                let (dtype, bad_dtype) = match dtype {
                    Ok(d) => (d, None),
                    Err(why) => (DType::F32, Some(why)),
                };
                entries.push(Entry { name, dtype, bad_dtype, shape, start, end });
            }
        }
        Ok((entries, metadata.unwrap_or_default()))
    }
}

struct MetadataVisitor;

impl<'de> DeserializeSeed<'de> for MetadataVisitor {
    type Value = HashMap<String, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetadataVisitor {
    type Value = HashMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "`{METADATA}` as an object of strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let mut out = HashMap::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value::<String>()?;
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!("`{METADATA}` key `{k}` appears twice")));
            }
            out.insert(k, v);
        }
        Ok(out)
    }
}

type EntryValue = (std::result::Result<DType, String>, Vec<usize>, (usize, usize));

/// One tensor's `{"dtype": .., "shape": [..], "data_offsets": [s, e]}`.
struct EntryVisitor<'a> {
    name: &'a str,
}

impl<'de> DeserializeSeed<'de> for EntryVisitor<'_> {
    type Value = EntryValue;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<EntryValue, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntryVisitor<'_> {
    type Value = EntryValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "tensor `{}` as an object with dtype, shape and data_offsets", self.name)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<EntryValue, A::Error> {
        let name = self.name;
        let (mut dtype, mut shape, mut offsets) = (None, None, None);
        while let Some(field) = map.next_key_seed(FieldVisitor { name })? {
            let twice = match field {
                Field::Dtype => dtype.replace(map.next_value_seed(DtypeVisitor { name })?).is_some(),
                Field::Shape => shape.replace(map.next_value_seed(ShapeVisitor { name })?).is_some(),
                Field::Offsets => offsets.replace(map.next_value_seed(OffsetsVisitor { name })?).is_some(),
            };
            if twice {
                return Err(de::Error::custom(format!("tensor `{name}`: field `{}` appears twice", field.key())));
            }
        }
        let missing = |f: Field| de::Error::custom(format!("tensor `{name}`: no `{}` field", f.key()));
        Ok((
            dtype.ok_or_else(|| missing(Field::Dtype))?,
            shape.ok_or_else(|| missing(Field::Shape))?,
            offsets.ok_or_else(|| missing(Field::Offsets))?,
        ))
    }
}

#[derive(Clone, Copy)]
enum Field {
    Dtype,
    Shape,
    Offsets,
}

impl Field {
    fn key(self) -> &'static str {
        match self {
            Field::Dtype => "dtype",
            Field::Shape => "shape",
            Field::Offsets => "data_offsets",
        }
    }
}

struct FieldVisitor<'a> {
    name: &'a str,
}

impl<'de> DeserializeSeed<'de> for FieldVisitor<'_> {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for FieldVisitor<'_> {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("dtype, shape or data_offsets")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Field, E> {
        match v {
            "dtype" => Ok(Field::Dtype),
            "shape" => Ok(Field::Shape),
            "data_offsets" => Ok(Field::Offsets),
            other => Err(E::custom(format!("tensor `{}`: unknown field `{other}`", self.name))),
        }
    }
}

struct DtypeVisitor<'a> {
    name: &'a str,
}

/// A dtype name; a string that names no dtype we read is kept as the reason, not a parse error.
type DtypeName = std::result::Result<DType, String>;

impl<'de> DeserializeSeed<'de> for DtypeVisitor<'_> {
    type Value = DtypeName;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<DtypeName, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for DtypeVisitor<'_> {
    type Value = DtypeName;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "tensor `{}`: a dtype name", self.name)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<DtypeName, E> {
        Ok(match v {
            "F32" => Ok(DType::F32),
            "F64" => Ok(DType::F64),
            "I32" => Ok(DType::I32),
            "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" | "I16" | "U16" | "F16" | "BF16" | "U32"
            | "I64" | "U64" | "C64" | "F4" | "F6_E2M3" | "F6_E3M2" => {
                Err(format!("dtype {v} is not supported (F32, F64 and I32 are)"))
            }
            other => Err(format!("unknown dtype `{other}`")),
        })
    }
}

struct ShapeVisitor<'a> {
    name: &'a str,
}

impl<'de> DeserializeSeed<'de> for ShapeVisitor<'_> {
    type Value = Vec<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Vec<usize>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ShapeVisitor<'_> {
    type Value = Vec<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "tensor `{}`: a shape (a list of dimensions)", self.name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Vec<usize>, A::Error> {
        let mut dims = [0usize; MAX_RANK];
        let mut rank = 0;
        while let Some(d) = seq.next_element::<u64>()? {
            if rank == MAX_RANK {
                return Err(de::Error::custom(format!("tensor `{}`: more than {MAX_RANK} dimensions", self.name)));
            }
            dims[rank] = usize::try_from(d).map_err(de::Error::custom)?;
            rank += 1;
        }
        Ok(dims[..rank].to_vec())
    }
}

struct OffsetsVisitor<'a> {
    name: &'a str,
}

impl<'de> DeserializeSeed<'de> for OffsetsVisitor<'_> {
    type Value = (usize, usize);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(usize, usize), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for OffsetsVisitor<'_> {
    type Value = (usize, usize);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "tensor `{}`: data_offsets [start, end]", self.name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(usize, usize), A::Error> {
        let bad = || de::Error::custom(format!("tensor `{}`: data_offsets must be exactly [start, end]", self.name));
        let mut next = || -> std::result::Result<Option<usize>, A::Error> {
            seq.next_element::<u64>()?.map(|v| usize::try_from(v).map_err(de::Error::custom)).transpose()
        };
        let Some(s) = next()? else { return Err(bad()) };
        let Some(e) = next()? else { return Err(bad()) };
        match next()? {
            None => Ok((s, e)),
            Some(_) => Err(bad()),
        }
    }
}
