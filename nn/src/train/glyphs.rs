//! Text for plots without system fonts: a drawing backend that forwards shapes to plotters'
//! bitmap backend and draws text itself from font8x8's 8x8 bitmap glyphs, scaled by whole
//! pixels. Plotters lays out tick labels, captions and legends through this backend's
//! `estimate_text_size`, so they are placed for the glyphs actually drawn.

use font8x8::legacy::{BASIC_LEGACY, LATIN_LEGACY};
use plotters::backend::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind};

/// Glyph cell size in pixels at scale 1.
const CELL: i32 = 8;

/// Plotters measures some text itself (legends, multi-line text) with its font-less estimate:
/// a character is `size * 0.7 / 1.24^2` pixels wide. Scaling glyphs to that width keeps its
/// layout and ours in agreement.
const WIDTH_PER_SIZE: f64 = 0.7 / (1.24 * 1.24);

/// The whole-pixel glyph scale drawn for a font size.
fn scale_for(size: f64) -> i32 {
    ((size * WIDTH_PER_SIZE / CELL as f64).round() as i32).max(1)
}

/// The font size that draws glyphs at `scale` (8 * scale pixels per character).
pub(crate) fn size_for_scale(scale: u32) -> f64 {
    (scale as f64 * CELL as f64 / WIDTH_PER_SIZE).ceil()
}

/// The 8x8 bitmap of `c` (row by row, bit 0 leftmost); `?` for characters the font lacks.
fn glyph(c: char) -> [u8; 8] {
    let u = c as usize;
    match u {
        0x20..=0x7e => BASIC_LEGACY[u],
        0xa0..=0xff => LATIN_LEGACY[u - 0xa0],
        _ => BASIC_LEGACY['?' as usize],
    }
}

/// Width and height of `text` drawn at `scale`.
fn text_size(text: &str, scale: i32) -> (i32, i32) {
    (text.chars().count() as i32 * CELL * scale, CELL * scale)
}

pub(crate) struct GlyphBackend<'a> {
    inner: BitMapBackend<'a>,
}

impl<'a> GlyphBackend<'a> {
    /// Draw into an RGB buffer of `size` pixels.
    pub(crate) fn new(buffer: &'a mut [u8], size: (u32, u32)) -> Self {
        GlyphBackend { inner: BitMapBackend::with_buffer(buffer, size) }
    }
}

type Res<E> = Result<(), DrawingErrorKind<E>>;

impl<'a> DrawingBackend for GlyphBackend<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Res<Self::ErrorType> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Res<Self::ErrorType> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Res<Self::ErrorType> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Res<Self::ErrorType> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Res<Self::ErrorType> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Res<Self::ErrorType> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Res<Self::ErrorType> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Res<Self::ErrorType> {
        self.inner.fill_polygon(vert, style)
    }

    fn draw_text<T: BackendTextStyle>(&mut self, text: &str, style: &T, pos: BackendCoord) -> Res<Self::ErrorType> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let scale = scale_for(style.size());
        let (w, h) = text_size(text, scale);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Right => -w,
            HPos::Center => -w / 2,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let transform = style.transform();
        let (width, height) = self.get_size();
        for (i, c) in text.chars().enumerate() {
            let rows = glyph(c);
            for (r, bits) in rows.iter().enumerate() {
                for b in 0..CELL {
                    if bits & (1 << b) == 0 {
                        continue;
                    }
                    for sy in 0..scale {
                        for sx in 0..scale {
                            let x = i as i32 * CELL * scale + b * scale + sx + dx;
                            let y = r as i32 * scale + sy + dy;
                            let (x, y) = transform.transform(x, y);
                            let (x, y) = (pos.0 + x, pos.1 + y);
                            if x >= 0 && y >= 0 && x < width as i32 && y < height as i32 {
                                self.inner.draw_pixel((x, y), color)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (w, h) = text_size(text, scale_for(style.size()));
        Ok((w as u32, h as u32))
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Res<Self::ErrorType> {
        self.inner.blit_bitmap(pos, size, src)
    }
}
