//! The 8x8 handwritten digits (1797 images, pixels 0..16, labels 0..9; CC BY 4.0, see
//! `data/README.md`), embedded in the binary so the default examples need no files.

use super::{gz, LabeledData};
use plies_autodiff::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Images in the embedded set.
pub const NUM_EXAMPLES: usize = 1797;
/// Width and height of an image.
pub const SIDE: usize = 8;
pub const NUM_CLASSES: usize = 10;
/// The largest pixel value (each pixel counts set pixels in a 4x4 block).
pub const MAX_PIXEL: f32 = 16.0;

/// `digits.csv.gz` exactly as shipped in scikit-learn 1.5.2.
static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../data/digits.csv.gz");

/// The embedded digits: features `[64]` with raw pixel values 0..16 (use
/// `.scaled(1.0 / MAX_PIXEL)` for 0..1), labels 0..9.
pub fn load() -> Result<LabeledData> {
    parse(DIGITS_CSV_GZ, "embedded data/digits.csv.gz")
}

/// Digits from a file in the same format (CSV of 64 pixels then the label, optionally gzipped).
pub fn load_file(path: impl AsRef<Path>) -> Result<LabeledData> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, &path.display().to_string())
}

/// Parse digits CSV (gzipped or not); `name` is used in error messages.
///
/// Memory: plain text is parsed in place; gzip is decompressed once into a buffer of exactly
/// its decompressed size (counted by a first pass through a fixed buffer). The rows are then
/// checked in full before the features are allocated, once, at their final size.
pub fn parse(bytes: &[u8], name: &str) -> Result<LabeledData> {
    let unzipped;
    let raw = if gz::is_gzip(bytes) {
        unzipped = decompress(bytes, name)?;
        &unzipped[..]
    } else {
        bytes
    };
    let text = std::str::from_utf8(raw).map_err(|e| Error::Format {
        path: name.to_string(),
        at: format!("{}byte {}", if gz::is_gzip(bytes) { "decompressed " } else { "" }, e.valid_up_to()),
        msg: "invalid UTF-8".into(),
    })?;
    let n = rows(text, name, |_, _| {})?;
    if n == 0 {
        return Err(Error::Format { path: name.to_string(), at: "line 1".into(), msg: "no examples".into() });
    }
    let mut features = Vec::with_capacity(n * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    rows(text, name, |pixels, label| {
        features.extend(pixels.iter().map(|&v| v as f32));
        labels.push(label as i32);
    })?;
    LabeledData::new(features, &[SIDE * SIDE], labels, NUM_CLASSES)
}

/// The decompressed bytes of a gzip stream, in one allocation of their exact size.
fn decompress(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let fail = |at: u64, e: std::io::Error| Error::Format {
        path: name.to_string(),
        at: format!("decompressed byte {at}"),
        msg: format!("cannot decompress: {e}"),
    };
    let mut len = 0u64;
    let mut r = gz::reader(bytes);
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => len += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(len, e)),
        }
    }
    drop(r);
    let mut out = Vec::with_capacity(len as usize);
    gz::reader(bytes).take(len).read_to_end(&mut out).map_err(|e| fail(out.len() as u64, e))?;
    Ok(out)
}

/// Check every row of `text` and hand each (pixels, label) to `row`; returns the row count.
fn rows(text: &str, name: &str, mut row: impl FnMut(&[u8; SIDE * SIDE], u8)) -> Result<usize> {
    let fields = SIDE * SIDE + 1;
    let mut n = 0;
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |col: usize, msg: String| Error::Format {
            path: name.to_string(),
            at: format!("line {}, field {col}", ln + 1),
            msg,
        };
        let mut pixels = [0u8; SIDE * SIDE];
        let mut label = None;
        let mut count = 0;
        for (col, field) in line.split(',').enumerate() {
            count += 1;
            if col >= fields {
                continue;
            }
            let v: u8 = field
                .trim()
                .parse()
                .map_err(|_| bad(col + 1, format!("`{}` is not a non-negative integer", clip(field))))?;
            if col < fields - 1 {
                if v as f32 > MAX_PIXEL {
                    return Err(bad(col + 1, format!("pixel value {v} is above {MAX_PIXEL}")));
                }
                pixels[col] = v;
            } else {
                if v as usize >= NUM_CLASSES {
                    return Err(bad(col + 1, format!("label {v} is outside 0..{NUM_CLASSES}")));
                }
                label = Some(v);
            }
        }
        match label {
            Some(l) if count == fields => row(&pixels, l),
            _ => return Err(bad(count, format!("{count} fields, expected {fields} (64 pixels and a label)"))),
        }
        n += 1;
    }
    Ok(n)
}

/// A field as quoted in an error: at most 24 characters, so a garbage line does not become
/// a megabyte of message.
fn clip(field: &str) -> String {
    match field.char_indices().nth(24) {
        Some((i, _)) => format!("{}...", &field[..i]),
        None => field.to_string(),
    }
}
