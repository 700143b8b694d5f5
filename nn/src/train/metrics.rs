//! A JSONL metrics log: one JSON object per line, flushed as written, so a run that stops
//! early still leaves a readable log. The values are numbers, strings, booleans and lists of
//! them (a layer-selection method logs a score per layer), so a few lines of formatting do
//! the job without a serialization framework.

use plies_autodiff::{Error, Result};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// A value in a metrics record.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    /// Written as JSON `null` when not finite (JSON has no NaN or infinity).
    Float(f64),
    Str(String),
    Bool(bool),
    /// A JSON array (per-layer scores, the layers chosen at a step).
    List(Vec<Value>),
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(v as i64)
            }
        }
    )*};
}
from_int!(i32, i64, u32, u64, usize);

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    /// Keeps the shortest decimal form of the f32 (0.1f32 logs as 0.1, not 0.10000000149011612).
    fn from(v: f32) -> Value {
        Value::Float(format!("{v:?}").parse().unwrap_or(v as f64))
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::List(v.into_iter().map(Into::into).collect())
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}

impl Value {
    fn write_json(&self, out: &mut String) {
        match self {
            Value::Int(v) => write!(out, "{v}").unwrap(),
            // Debug prints the shortest form that reads back to the same f64, using an exponent
            // for very large or small values (1e-7), all of which is valid JSON.
            Value::Float(v) if v.is_finite() => write!(out, "{v:?}").unwrap(),
            Value::Float(_) => out.push_str("null"),
            Value::Str(s) => write_json_string(s, out),
            Value::Bool(b) => write!(out, "{b}").unwrap(),
            Value::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"key":value,...}` on one line, keys in the order given.
pub fn json_object(fields: &[(&str, Value)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(k, &mut out);
        out.push(':');
        v.write_json(&mut out);
    }
    out.push('}');
    out
}

/// Appends one JSON object per line to a file.
pub struct MetricsLog {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes written so far and their FNV-1a hash: where a training state saved now leaves
    /// the log (see [`RunMetrics`](crate::checkpoint::RunMetrics)).
    bytes: u64,
    hash: u64,
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, continuing from `hash` (start from `FNV_OFFSET`).
pub(crate) fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = (hash ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl MetricsLog {
    /// Create (or truncate) the log at `path`, creating its folder if needed.
    pub fn create(path: impl AsRef<Path>) -> Result<MetricsLog> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(MetricsLog { path, out: BufWriter::new(file), bytes: 0, hash: FNV_OFFSET })
    }

    /// A log at `path` that starts with `prefix` (the log of a run being resumed, cut back to
    /// where its training state was saved), written atomically, then appended to.
    pub fn continued(path: impl AsRef<Path>, prefix: &[u8]) -> Result<MetricsLog> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::checkpoint::write_atomic(&path, prefix)?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| Error::io(&path, e))?;
        Ok(MetricsLog { path, out: BufWriter::new(file), bytes: prefix.len() as u64, hash: fnv1a(FNV_OFFSET, prefix) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (bytes written, their FNV-1a hash).
    pub fn position(&self) -> (u64, u64) {
        (self.bytes, self.hash)
    }

    /// Write one record as a line and flush it.
    pub fn write(&mut self, fields: &[(&str, Value)]) -> Result<()> {
        let line = json_object(fields) + "\n";
        self.out.write_all(line.as_bytes()).and_then(|_| self.out.flush()).map_err(|e| Error::io(&self.path, e))?;
        self.bytes += line.len() as u64;
        self.hash = fnv1a(self.hash, line.as_bytes());
        Ok(())
    }
}
