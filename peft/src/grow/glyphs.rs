//! The 64 bits of a character: its 8x8 bitmap in font8x8, or a fixed hashed pattern where
//! the font has nothing to show.
//!
//! Fallback rule: font8x8's legacy tables cover U+0020..=U+007E and U+00A0..=U+00FF. A
//! character outside them (a newline, a control character, anything beyond Latin-1), or one
//! inside them whose bitmap is blank although it is not the space (U+00A0, the no-break
//! space), gets the 64 bits of `splitmix64(code point ^ FALLBACK_SALT)`. Such a pattern is
//! fixed for the character, looks like no glyph (about half its bits are set, where a glyph
//! sets a dozen), and differs between characters, so a newline and a space never share a row.

use font8x8::legacy::{BASIC_LEGACY, LATIN_LEGACY};

/// Mixed into the code point so the fallback patterns are not the hash of small integers
/// that other seeded tables in the project might also use.
const FALLBACK_SALT: u64 = 0x676c_7970_6873_2d38; // "glyphs-8"

/// Where a character's bits came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlyphSource {
    Font,
    Fallback,
}

/// SplitMix64's output function: a bijective mix of 64 bits.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The bitmap font8x8 draws for `c`, if it has one.
fn font_rows(c: char) -> Option<[u8; 8]> {
    let u = c as usize;
    match u {
        0x20..=0x7e => Some(BASIC_LEGACY[u]),
        0xa0..=0xff => Some(LATIN_LEGACY[u - 0xa0]),
        _ => None,
    }
}

/// The 64 bits of `c`, row by row (bit 8r + k is pixel k of row r), and where they came from.
pub fn glyph_bits(c: char) -> (u64, GlyphSource) {
    if let Some(rows) = font_rows(c) {
        let bits = u64::from_le_bytes(rows);
        if bits != 0 || c == ' ' {
            return (bits, GlyphSource::Font);
        }
    }
    (splitmix64(c as u64 ^ FALLBACK_SALT), GlyphSource::Fallback)
}

/// The bits of `c` as 64 zeros and ones.
pub fn glyph_vector(c: char) -> [f64; 64] {
    let (bits, _) = glyph_bits(c);
    std::array::from_fn(|i| ((bits >> i) & 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_comes_from_the_font_and_the_rest_falls_back() {
        assert_eq!(glyph_bits('A').1, GlyphSource::Font);
        assert_eq!(glyph_bits(' '), (0, GlyphSource::Font));
        assert_eq!(glyph_bits('é').1, GlyphSource::Font);
        for c in ['\n', '\t', '\u{a0}', 'Ω', '中'] {
            let (bits, src) = glyph_bits(c);
            assert_eq!(src, GlyphSource::Fallback, "{c:?}");
            assert!(bits.count_ones() > 16, "{c:?} fallback has only {} bits set", bits.count_ones());
        }
        assert_ne!(glyph_bits('\n').0, glyph_bits('\t').0);
        assert_eq!(glyph_bits('Ω'), glyph_bits('Ω'));
    }

    #[test]
    fn the_bits_are_the_bitmap_rows() {
        // font8x8 draws '!' as a centred stroke with a gap before the dot: row 5 is blank.
        let v = glyph_vector('!');
        let row = |r: usize| v[8 * r..8 * r + 8].iter().sum::<f64>();
        assert!(row(0) > 0.0 && row(6) > 0.0);
        assert_eq!(row(5), 0.0);
        assert_eq!(v.iter().sum::<f64>() as u32, glyph_bits('!').0.count_ones());
    }
}
