//! The IDX format of MNIST and Fashion-MNIST: a 4-byte magic (two zero bytes, a type code, the
//! number of dimensions), the dimensions as big-endian u32, then the values, big-endian, in
//! row-major order. Gzipped files (`*.gz`) are decompressed while read.
//!
//! A malformed file gives an error naming the file and the byte offset (counted in the
//! decompressed stream for gzipped files); a header that promises more data than the file holds
//! is reported as truncated without allocating what it promised.

use super::gz;
use plies_autodiff::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The values of an IDX file, in the type its header names.
#[derive(Clone, Debug, PartialEq)]
pub enum IdxData {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// An n-dimensional array read from (or to be written to) an IDX file.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: IdxData,
}

impl IdxData {
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The type's name as in messages (`u8`, `i8`, `i16`, `i32`, `f32`, `f64`).
    pub fn type_name(&self) -> &'static str {
        type_name(self.code())
    }

    /// The IDX type code.
    pub fn code(&self) -> u8 {
        match self {
            IdxData::U8(_) => 0x08,
            IdxData::I8(_) => 0x09,
            IdxData::I16(_) => 0x0B,
            IdxData::I32(_) => 0x0C,
            IdxData::F32(_) => 0x0D,
            IdxData::F64(_) => 0x0E,
        }
    }

    /// Every value converted to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            IdxData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I16(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::F32(v) => v.clone(),
            IdxData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "u8",
        0x09 => "i8",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "unknown",
    }
}

fn elem_size(code: u8) -> Option<usize> {
    match code {
        0x08 | 0x09 => Some(1),
        0x0B => Some(2),
        0x0C | 0x0D => Some(4),
        0x0E => Some(8),
        _ => None,
    }
}

/// Read an IDX file, gzipped or not.
pub fn read(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, &path.display().to_string())
}

/// Parse IDX bytes, gzipped or not; `name` is used in error messages.
///
/// Memory: the values are allocated once, at their final size, and only after the file is
/// known to hold exactly what the header promises (for gzip, a first pass decompresses into
/// a fixed buffer to count the bytes, a second decodes them), so a header that lies about
/// its dimensions costs nothing. NaN and infinite f32/f64 values load unchanged.
pub fn parse(bytes: &[u8], name: &str) -> Result<IdxArray> {
    let zipped = gz::is_gzip(bytes);
    let mut r = Cursor { inner: gz::reader(bytes), pos: 0, name, zipped };
    let (code, dims) = read_header(&mut r)?;
    let size = elem_size(code).expect("read_header checked the type code");
    let data_at = r.pos;
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let nbytes = count
        .and_then(|c| c.checked_mul(size))
        .ok_or_else(|| r.error(4, format!("dimensions {dims:?} of {} overflow the address space", type_name(code))))?;
    let count = nbytes / size;
    let have = if zipped { r.count_rest(nbytes as u64 + 1)? } else { (bytes.len() as u64).saturating_sub(data_at) };
    if have < nbytes as u64 {
        return Err(r.error(
            data_at + have,
            format!(
                "truncated: the header promises {dims:?} {} values ({nbytes} bytes from offset {data_at}) \
                 but the file ends after {have} of them",
                type_name(code)
            ),
        ));
    }
    if have > nbytes as u64 {
        return Err(r.error(
            data_at + nbytes as u64,
            format!("trailing bytes after the {count} values the header {dims:?} promises"),
        ));
    }
    let data = if zipped {
        // The first pass consumed the stream; decode from a fresh one past the header (after
        // freeing the first decoder, so only one decoder's state is held at a time).
        r.inner = Box::new(std::io::empty());
        let mut again = gz::reader(bytes);
        std::io::copy(&mut (&mut again).take(data_at), &mut std::io::sink())
            .and_then(|_| decode(code, count, &mut again))
            .map_err(|e| r.io_error(data_at, e))?
    } else {
        decode(code, count, &mut &bytes[data_at as usize..]).map_err(|e| r.io_error(data_at, e))?
    };
    Ok(IdxArray { dims, data })
}

/// The magic number and dimensions; leaves `r` at the first value.
fn read_header(r: &mut Cursor<'_>) -> Result<(u8, Vec<usize>)> {
    let magic = r.exact::<4>("the magic number")?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(r.error(
            0,
            format!("bad magic number {magic:02x?}: an IDX file starts with two zero bytes, a type code and a rank"),
        ));
    }
    let code = magic[2];
    if elem_size(code).is_none() {
        return Err(
            r.error(2, format!("unknown type code 0x{code:02x} (expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e)"))
        );
    }
    let rank = magic[3] as usize;
    if rank == 0 {
        return Err(r.error(3, "rank 0: an IDX file has at least one dimension".into()));
    }
    let mut dims = Vec::with_capacity(rank);
    for d in 0..rank {
        let v = u32::from_be_bytes(r.exact::<4>(&format!("dimension {d} of {rank}"))?);
        dims.push(v as usize);
    }
    Ok((code, dims))
}

/// `count` big-endian values of type `code` from `src`, into one allocation of exactly `count`.
fn decode(code: u8, count: usize, src: &mut dyn Read) -> std::io::Result<IdxData> {
    fn fill<T, const N: usize>(count: usize, src: &mut dyn Read, conv: fn([u8; N]) -> T) -> std::io::Result<Vec<T>> {
        let mut out = Vec::with_capacity(count);
        let mut buf = [0u8; 8192];
        while out.len() < count {
            let n = ((count - out.len()) * N).min(buf.len());
            src.read_exact(&mut buf[..n])?;
            out.extend(buf[..n].chunks_exact(N).map(|c| conv(c.try_into().expect("chunks of N bytes"))));
        }
        Ok(out)
    }
    Ok(match code {
        0x08 => IdxData::U8(fill(count, src, |[b]: [u8; 1]| b)?),
        0x09 => IdxData::I8(fill(count, src, i8::from_be_bytes)?),
        0x0B => IdxData::I16(fill(count, src, i16::from_be_bytes)?),
        0x0C => IdxData::I32(fill(count, src, i32::from_be_bytes)?),
        0x0D => IdxData::F32(fill(count, src, f32::from_be_bytes)?),
        _ => IdxData::F64(fill(count, src, f64::from_be_bytes)?),
    })
}

impl IdxArray {
    /// An array of `data` with `dims`; the element count must match.
    pub fn new(dims: Vec<usize>, data: IdxData) -> Result<IdxArray> {
        let n: usize = dims.iter().product();
        if dims.is_empty() || dims.len() > 255 || n != data.len() {
            return Err(Error::invalid(
                "IdxArray::new",
                format!("dims {dims:?} do not fit {} values (rank must be 1..=255)", data.len()),
            ));
        }
        Ok(IdxArray { dims, data })
    }

    /// The IDX encoding (uncompressed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0, 0, self.data.code(), self.dims.len() as u8];
        for &d in &self.dims {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        match &self.data {
            IdxData::U8(v) => out.extend_from_slice(v),
            IdxData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
            IdxData::I16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            IdxData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            IdxData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
            IdxData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
        }
        out
    }

    /// Write the uncompressed encoding to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        std::fs::write(path.as_ref(), self.to_bytes()).map_err(|e| Error::io(path, e))
    }
}

/// A reader that counts the bytes it has delivered, for error offsets.
struct Cursor<'a> {
    inner: Box<dyn Read + 'a>,
    pos: u64,
    name: &'a str,
    zipped: bool,
}

impl Cursor<'_> {
    fn error(&self, at: u64, msg: String) -> Error {
        let at = if self.zipped { format!("byte {at} (decompressed)") } else { format!("byte {at}") };
        Error::Format { path: self.name.to_string(), at, msg }
    }

    fn io_error(&self, at: u64, e: std::io::Error) -> Error {
        let what = if self.zipped { "cannot decompress" } else { "cannot read" };
        self.error(at, format!("{what}: {e}"))
    }

    fn exact<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        let mut got = 0;
        while got < N {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(self.error(
                        self.pos + got as u64,
                        format!("truncated: the file ends inside the header, reading {what}"),
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(self.pos + got as u64, e)),
            }
        }
        self.pos += N as u64;
        Ok(buf)
    }

    /// How many bytes are left, counting at most `limit`, through a fixed buffer.
    fn count_rest(&mut self, limit: u64) -> Result<u64> {
        let mut buf = [0u8; 8192];
        let mut total = 0u64;
        while total < limit {
            let want = (limit - total).min(buf.len() as u64) as usize;
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(self.pos + total, e)),
            }
        }
        Ok(total)
    }
}
