//! Transparent gzip: files that start with the gzip magic are decompressed while read.
//! Decoding uses flate2's pure-Rust backend (miniz_oxide), so no C library is needed.

use flate2::read::MultiGzDecoder;
use std::io::{BufReader, Read};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// A reader over `bytes`, decompressing them if they are gzip.
pub(crate) fn reader(bytes: &[u8]) -> Box<dyn Read + '_> {
    if is_gzip(bytes) {
        Box::new(MultiGzDecoder::new(BufReader::new(bytes)))
    } else {
        Box::new(bytes)
    }
}
