//! Dataset files: IDX (MNIST's format), MNIST label files beside their images, the digits
//! CSV, character-level text, and any of them gzipped (`Gzipped`).

use super::mutate::{self, Field, FieldValue};
use super::{Expect, Format, Loaded, GZIP_STATE, SLACK};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use plies_nn::data::idx::{self, IdxArray, IdxData};
use plies_nn::data::{digits, mnist, CharDataset, LabeledData};
use std::any::Any;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// What decompresses before the first error (the loader sees no more than this).
fn gunzip_prefix(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut d = MultiGzDecoder::new(b);
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = d.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// The loaders read any file that starts with the gzip magic as gzip, whatever its name, so
/// such a file gets the gzip terms of the bound too (see `Gzipped::bound`).
fn gzip_terms(bytes: &[u8]) -> usize {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        2 * bytes.len() + GZIP_STATE + gunzip_prefix(bytes).len()
    } else {
        0
    }
}

// --- gzip around any format -----------------------------------------------------------------

/// `inner`'s files, gzipped: corruptions are made on the plain bytes and compressed again
/// (else nearly every case would only test the CRC), besides byte mutations of the stream.
pub struct Gzipped<F> {
    pub inner: F,
    pub name: &'static str,
    pub file_name: &'static str,
}

impl<F: Format> Format for Gzipped<F> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn file_name(&self) -> &'static str {
        self.file_name
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        self.inner.seeds().iter().map(|s| gzip(s)).collect()
    }
    fn fields(&self, seed: &[u8]) -> Vec<Field> {
        // The trailer's CRC-32 and ISIZE, and the header's MTIME.
        let n = seed.len();
        let mut f = vec![Field { at: 4, width: 4, big_endian: false }];
        if n >= 18 {
            f.push(Field { at: n - 8, width: 4, big_endian: false });
            f.push(Field { at: n - 4, width: 4, big_endian: false });
        }
        f
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        let plain = gunzip_prefix(bytes);
        match variant % 4 {
            0 | 1 => {
                let (b, e) = self.inner.semantic(&plain, variant / 4, p)?;
                Some((gzip(&b), e))
            }
            2 => {
                // A field of the plain file rewritten, then compressed.
                let fields = self.inner.fields(&plain);
                let mut b = plain;
                if !fields.is_empty() {
                    let v = [FieldValue::Terabyte, FieldValue::Max, FieldValue::Zero, FieldValue::PlusOne]
                        [(p % 4) as usize]
                        .clone();
                    mutate::set_field(&mut b, fields[(p >> 8) as usize % fields.len()], &v);
                } else if !b.is_empty() {
                    let at = p as usize % b.len();
                    b[at] ^= 1 << ((p >> 60) % 8);
                }
                Some((gzip(&b), Expect::Either))
            }
            _ => {
                // The same bytes as two gzip members: must load exactly as one.
                let cut = (p as usize) % (plain.len() + 1);
                let mut b = gzip(&plain[..cut]);
                b.extend_from_slice(&gzip(&plain[cut..]));
                Some((b, Expect::Either))
            }
        }
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        self.inner.load(path)
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        self.inner.verify(&gunzip_prefix(bytes), out)
    }
    fn bound(&self, bytes: &[u8], out: Option<&dyn Any>) -> usize {
        // The compressed file once, plus what the plain format allows for the decompressed
        // bytes (which counts them once: digits holds them, IDX decodes as it decompresses),
        // plus the header's file name and comment, which flate2 keeps (no longer than the
        // file, in a Vec that may double).
        3 * bytes.len() + GZIP_STATE + self.inner.bound(&gunzip_prefix(bytes), out)
    }
}

// --- IDX --------------------------------------------------------------------------------------

pub struct Idx;

fn idx_fields(b: &[u8]) -> Vec<Field> {
    let mut f = vec![Field { at: 2, width: 1, big_endian: true }, Field { at: 3, width: 1, big_endian: true }];
    let rank = b.get(3).copied().unwrap_or(0) as usize;
    f.extend((0..rank).map(|i| Field { at: 4 + 4 * i, width: 4, big_endian: true }).filter(|f| f.at + 4 <= b.len()));
    f
}

fn idx_bytes(data: IdxData, dims: Vec<usize>) -> Vec<u8> {
    IdxArray::new(dims, data).unwrap().to_bytes()
}

/// The decoded values' bytes (each value takes in memory what it takes in the file).
fn idx_value_bytes(out: Option<&dyn Any>) -> usize {
    out.and_then(|o| o.downcast_ref::<IdxArray>()).map_or(0, |a| {
        let size = match a.data {
            IdxData::U8(_) | IdxData::I8(_) => 1,
            IdxData::I16(_) => 2,
            IdxData::I32(_) | IdxData::F32(_) => 4,
            IdxData::F64(_) => 8,
        };
        a.data.len() * size + 8 * a.dims.len()
    })
}

impl Format for Idx {
    fn name(&self) -> &'static str {
        "idx"
    }
    fn file_name(&self) -> &'static str {
        "train-images-idx3-ubyte"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![
            idx_bytes(IdxData::U8((0..24).map(|i| i * 10).collect()), vec![2, 3, 4]),
            idx_bytes(IdxData::I8(vec![-128, -1, 0, 127]), vec![4]),
            idx_bytes(IdxData::I16(vec![-30000, 7, 30000]), vec![3]),
            idx_bytes(IdxData::I32(vec![i32::MIN, 123_456_789]), vec![1, 2]),
            idx_bytes(IdxData::F32(vec![1.5, -0.25, 3.0, 1e-30, 7.0, -2.0]), vec![3, 2]),
            idx_bytes(IdxData::F64(vec![std::f64::consts::PI, -1e300]), vec![1, 1, 2]),
        ]
    }
    fn fields(&self, seed: &[u8]) -> Vec<Field> {
        idx_fields(seed)
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        let a = idx::parse(bytes, "seed").ok()?;
        let data = &bytes[4 + 4 * a.dims.len()..];
        let with_dims = |dims: &[u32], data: &[u8]| {
            let mut b = vec![0, 0, a.data.code(), dims.len() as u8];
            dims.iter().for_each(|d| b.extend_from_slice(&d.to_be_bytes()));
            b.extend_from_slice(data);
            b
        };
        match variant % 7 {
            // Dimensions claiming a terabyte and more, or overflowing the address space.
            0 => Some((with_dims(&[1 << 16, 1 << 16, 1 << 8], data), Expect::Fails)),
            1 => Some((with_dims(&[u32::MAX; 4], data), Expect::Fails)),
            2 => {
                // NaN and Inf payloads in float files: loaded unchanged.
                let mut b = bytes.to_vec();
                let at = 4 + 4 * a.dims.len();
                let mut q = p;
                match a.data {
                    IdxData::F32(_) => b[at..].chunks_exact_mut(4).for_each(|c| {
                        let s = [0x7fc0_0000u32, 0xff80_0001, 0x7f80_0000, 0xff80_0000, 0x0000_0001][(q % 5) as usize];
                        c.copy_from_slice(&s.to_be_bytes());
                        q = q.rotate_right(3);
                    }),
                    IdxData::F64(_) => b[at..].chunks_exact_mut(8).for_each(|c| {
                        let s =
                            [0x7ff8_0000_0000_0000u64, 0xfff0_0000_0000_0000, 0x7ff0_0000_0000_0001][(q % 3) as usize];
                        c.copy_from_slice(&s.to_be_bytes());
                        q = q.rotate_right(2);
                    }),
                    _ => return None,
                }
                Some((b, Expect::Loads))
            }
            3 => {
                // A dimension of 1 more: the same values, valid.
                let mut dims: Vec<u32> = a.dims.iter().map(|&d| d as u32).collect();
                dims.insert((p as usize) % (dims.len() + 1), 1);
                Some((with_dims(&dims, data), Expect::Loads))
            }
            4 => Some((with_dims(&[0, 5], data), if data.is_empty() { Expect::Loads } else { Expect::Fails })),
            5 => Some((with_dims(&[0, 5], &[]), Expect::Loads)),
            _ => {
                // One element more or fewer than the data holds.
                let mut dims: Vec<u32> = a.dims.iter().map(|&d| d as u32).collect();
                if dims.contains(&0) {
                    return None;
                }
                let last = dims.last_mut()?;
                *last = if p.is_multiple_of(2) { *last + 1 } else { last.checked_sub(1)? };
                Some((with_dims(&dims, data), Expect::Fails))
            }
        }
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        Ok(Box::new(idx::read(path)?))
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        let a = out.downcast_ref::<IdxArray>().ok_or("not an IdxArray")?;
        // Re-encoding gives the file back bit for bit (NaN payloads included).
        if a.to_bytes() != bytes {
            return Err(format!("re-encoded {:?} differs from the file", a.dims));
        }
        Ok(())
    }
    fn bound(&self, bytes: &[u8], out: Option<&dyn Any>) -> usize {
        // The file once and the values once, nothing for what a header only claims.
        bytes.len() + idx_value_bytes(out) + SLACK + gzip_terms(bytes)
    }
}

// --- MNIST labels beside their images ------------------------------------------------------

/// Mutated label files, loaded with a valid image file by `mnist::load_files`, which adds its
/// own checks (count against the images, labels in 0..10).
pub struct MnistLabels {
    images: PathBuf,
    images_len: usize,
}

impl MnistLabels {
    pub fn new() -> MnistLabels {
        let images = super::scratch("mnist-images").join("train-images-idx3-ubyte");
        let b = idx_bytes(IdxData::U8((0..12).map(|i| i * 20).collect()), vec![3, 2, 2]);
        std::fs::write(&images, &b).unwrap();
        MnistLabels { images, images_len: b.len() }
    }
}

impl Format for MnistLabels {
    fn name(&self) -> &'static str {
        "mnist labels"
    }
    fn file_name(&self) -> &'static str {
        "train-labels-idx1-ubyte"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![idx_bytes(IdxData::U8(vec![1, 9, 0]), vec![3])]
    }
    fn fields(&self, seed: &[u8]) -> Vec<Field> {
        idx_fields(seed)
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        let mut b = bytes.to_vec();
        match variant % 3 {
            0 => {
                // A label outside 0..10.
                let at = 8 + (p as usize % 3);
                *b.get_mut(at)? = 10 + (p >> 8) as u8 % 246;
                Some((b, Expect::Fails))
            }
            1 => Some((
                idx_bytes(IdxData::U8(vec![1; 2 + 2 * (p as usize % 2)]), vec![2 + 2 * (p as usize % 2)]),
                Expect::Fails,
            )),
            _ => Some((idx_bytes(IdxData::U8(vec![(p % 10) as u8, (p / 10 % 10) as u8, 5]), vec![3]), Expect::Loads)),
        }
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        Ok(Box::new(mnist::load_files(&self.images, path)?))
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        let d = out.downcast_ref::<LabeledData>().ok_or("not LabeledData")?;
        let want: Vec<i32> = bytes[8..].iter().map(|&l| l as i32).collect();
        let pixels: Vec<f32> = (0..12).map(|i| (i * 20) as f32 / 255.0).collect();
        if d.labels() != want.as_slice() || d.features() != pixels.as_slice() {
            return Err(format!("labels {:?}, file has {want:?}", d.labels()));
        }
        Ok(())
    }
    fn bound(&self, bytes: &[u8], out: Option<&dyn Any>) -> usize {
        // Both files once, both decoded as u8 (as large as their data), and the output's f32
        // features and i32 labels.
        let n = out.and_then(|o| o.downcast_ref::<LabeledData>()).map_or(0, |d| d.len());
        2 * (self.images_len + bytes.len()) + 4 * 12 + 4 * n + SLACK + gzip_terms(bytes)
    }
}

// --- digits CSV ------------------------------------------------------------------------------

pub struct Digits;

fn digits_line(seed: u64) -> String {
    let mut v: Vec<String> = (0..64).map(|i| ((seed * 31 + i * 7) % 17).to_string()).collect();
    v.push((seed % 10).to_string());
    v.join(",")
}

impl Format for Digits {
    fn name(&self) -> &'static str {
        "digits csv"
    }
    fn file_name(&self) -> &'static str {
        "digits.csv"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![
            format!("{}\n{}\n{}\n", digits_line(1), digits_line(2), digits_line(3)).into_bytes(),
            format!("{}\r\n\r\n  {}  \r\n", digits_line(4), digits_line(9)).into_bytes(),
        ]
    }
    fn fields(&self, _: &[u8]) -> Vec<Field> {
        Vec::new()
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines: Vec<Vec<String>> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim().split(',').map(String::from).collect())
            .collect();
        let row = (p as usize) % lines.len().max(1);
        let col = (p as usize >> 8) % 65;
        let cells = lines.get_mut(row)?;
        let join =
            |lines: &[Vec<String>]| lines.iter().map(|l| l.join(",")).collect::<Vec<_>>().join("\n").into_bytes();
        let (cell, expect) = match variant % 9 {
            0 => ("nan", Expect::Fails),
            1 => ("inf", Expect::Fails),
            2 => ("-1", Expect::Fails),
            3 => (if col == 64 { "10" } else { "17" }, Expect::Fails),
            4 => ("1e3", Expect::Fails),
            5 => ("+3", Expect::Loads),
            6 => {
                cells.push("0".into());
                return Some((join(&lines), Expect::Fails));
            }
            7 => {
                cells.pop();
                return Some((join(&lines), Expect::Fails));
            }
            _ => {
                let mut b = join(&lines);
                let at = (p as usize >> 16) % (b.len() + 1);
                b.insert(at, [0xff, 0xc0, 0x80][(p % 3) as usize]);
                return Some((b, Expect::Fails));
            }
        };
        if cell == "+3" && col == 64 {
            return None;
        }
        *cells.get_mut(col)? = cell.into();
        Some((join(&lines), expect))
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        Ok(Box::new(digits::load_file(path)?))
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        let d = out.downcast_ref::<LabeledData>().ok_or("not LabeledData")?;
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        let (mut feats, mut labels) = (Vec::new(), Vec::new());
        for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let v: Vec<u8> = l
                .split(',')
                .map(|c| c.trim().parse().map_err(|_| format!("`{c}` loaded")))
                .collect::<Result<_, _>>()?;
            if v.len() != 65 {
                return Err(format!("a row of {} fields loaded", v.len()));
            }
            feats.extend(v[..64].iter().map(|&x| x as f32));
            labels.push(v[64] as i32);
        }
        if d.features() != feats.as_slice() || d.labels() != labels.as_slice() {
            return Err("features or labels differ from the file".into());
        }
        Ok(())
    }
    fn bound(&self, bytes: &[u8], out: Option<&dyn Any>) -> usize {
        // The text once (parsed in place), then 64 f32 features and an i32 label per row.
        let n = out.and_then(|o| o.downcast_ref::<LabeledData>()).map_or(0, |d| d.len());
        bytes.len() + n * (64 + 1) * 4 + SLACK + gzip_terms(bytes)
    }
}

// --- character-level text --------------------------------------------------------------------

pub struct Text;

impl Format for Text {
    fn name(&self) -> &'static str {
        "text"
    }
    fn file_name(&self) -> &'static str {
        "moby-dick.txt"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![
            b"Call me Ishmael. Some years ago - never mind how long precisely -\n".to_vec(),
            "caf\u{e9} \u{4e2d}\u{6587} \u{1f600} na\u{ef}ve\r\n\ttab".as_bytes().to_vec(),
        ]
    }
    fn fields(&self, _: &[u8]) -> Vec<Field> {
        Vec::new()
    }
    fn semantic(&self, bytes: &[u8], variant: u8, p: u64) -> Option<(Vec<u8>, Expect)> {
        let mut b = bytes.to_vec();
        let mut at = (p as usize) % (b.len() + 1);
        while std::str::from_utf8(bytes).is_ok_and(|t| !t.is_char_boundary(at)) {
            at -= 1;
        }
        match variant % 5 {
            0 => {
                // Invalid UTF-8: a stray continuation, an overlong form, a surrogate, a cut sequence.
                let bad: &[u8] =
                    [&[0x80u8][..], &[0xc0, 0x80], &[0xed, 0xa0, 0x80], &[0xe4, 0xb8], &[0xff]][(p >> 8) as usize % 5];
                b.splice(at..at, bad.iter().copied());
                Some((b, Expect::Fails))
            }
            1 => {
                b.splice(at..at, [0u8, 7, 27]);
                Some((b, Expect::Loads))
            }
            2 => {
                // Many distinct characters: the vocabulary grows, memory must follow it.
                let base = 0x4e00 + (p % 0x1000) as u32;
                let s: String = (0..300).filter_map(|i| char::from_u32(base + i)).collect();
                Some((s.into_bytes(), Expect::Loads))
            }
            3 => Some((Vec::new(), Expect::Fails)),
            _ => {
                b.splice(0..0, "\u{feff}".bytes());
                Some((b, Expect::Loads))
            }
        }
    }
    fn load(&self, path: &Path) -> plies_autodiff::Result<Loaded> {
        Ok(Box::new(CharDataset::from_file(path)?))
    }
    fn verify(&self, bytes: &[u8], out: &dyn Any) -> Result<(), String> {
        let d = out.downcast_ref::<CharDataset>().ok_or("not a CharDataset")?;
        let text = d.vocab().decode(d.tokens()).map_err(|e| e.to_string())?;
        if text.as_bytes() != bytes || !d.vocab().chars().windows(2).all(|w| w[0] < w[1]) {
            return Err("tokens do not decode to the file, or the vocabulary is not sorted and unique".into());
        }
        Ok(())
    }
    fn bound(&self, bytes: &[u8], out: Option<&dyn Any>) -> usize {
        // The file once, an i32 id per character, and per distinct character at most 64 bytes:
        // 4 in the sorted list, under 24 in the id map (a hash table of 8-byte entries plus a
        // control byte, at most 7/8 full, with capacity a power of two) and under 32 while the
        // set of non-ASCII characters is built.
        let (tokens, vocab) =
            out.and_then(|o| o.downcast_ref::<CharDataset>()).map_or((0, 0), |d| (d.len(), d.vocab_size()));
        bytes.len() + 4 * tokens + 64 * vocab + SLACK
    }
}
