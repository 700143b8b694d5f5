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
pub fn parse(bytes: &[u8], name: &str) -> Result<LabeledData> {
    let mut text = String::new();
    gz::reader(bytes).read_to_string(&mut text).map_err(|e| Error::Format {
        path: name.to_string(),
        at: format!("decompressed byte {}", text.len()),
        msg: format!("cannot read as {} text: {e}", if gz::is_gzip(bytes) { "gzip-compressed UTF-8" } else { "UTF-8" }),
    })?;
    let fields = SIDE * SIDE + 1;
    let mut features = Vec::with_capacity(NUM_EXAMPLES * SIDE * SIDE);
    let mut labels = Vec::with_capacity(NUM_EXAMPLES);
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
        let mut count = 0;
        for (col, field) in line.split(',').enumerate() {
            count += 1;
            if col >= fields {
                continue;
            }
            let v: u8 =
                field.trim().parse().map_err(|_| bad(col + 1, format!("`{field}` is not a non-negative integer")))?;
            if col < fields - 1 {
                if v as f32 > MAX_PIXEL {
                    return Err(bad(col + 1, format!("pixel value {v} is above {MAX_PIXEL}")));
                }
                features.push(v as f32);
            } else {
                if v as usize >= NUM_CLASSES {
                    return Err(bad(col + 1, format!("label {v} is outside 0..{NUM_CLASSES}")));
                }
                labels.push(v as i32);
            }
        }
        if count != fields {
            return Err(bad(count, format!("{count} fields, expected {fields} (64 pixels and a label)")));
        }
    }
    if labels.is_empty() {
        return Err(Error::Format { path: name.to_string(), at: "line 1".into(), msg: "no examples".into() });
    }
    LabeledData::new(features, &[SIDE * SIDE], labels, NUM_CLASSES)
}
