//! PNG line plots (loss curves) drawn with plotters' bitmap backend, text from bitmap glyphs
//! (see `glyphs.rs`), encoded with the `png` crate. No system font or image library is used.

use super::glyphs::{size_for_scale, GlyphBackend};
use plies_autodiff::{Error, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::path::Path;

/// One named line: `(x, y)` points. Points with a non-finite coordinate (a NaN loss) are
/// skipped, and so are points with `y <= 0` on a log-scaled plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line plot: title, axis labels, one or more series, linear or log y axis.
#[derive(Clone, Debug)]
pub struct LinePlot {
    title: String,
    x_label: String,
    y_label: String,
    series: Vec<Series>,
    log_y: bool,
    size: (u32, u32),
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

impl LinePlot {
    /// An 800x500 plot with x labelled "step" and y "loss".
    pub fn new(title: impl Into<String>) -> LinePlot {
        LinePlot {
            title: title.into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: Vec::new(),
            log_y: false,
            size: (800, 500),
        }
    }

    pub fn x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    pub fn y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// Use a logarithmic y axis.
    pub fn log_y(mut self, on: bool) -> Self {
        self.log_y = on;
        self
    }

    /// Image size in pixels (at least 200x150).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width.max(200), height.max(150));
        self
    }

    pub fn series(mut self, name: impl Into<String>, points: impl IntoIterator<Item = (f64, f64)>) -> Self {
        self.series.push(Series { name: name.into(), points: points.into_iter().collect() });
        self
    }

    /// The points that will be drawn, per series.
    fn drawable(&self) -> Vec<Series> {
        let log = self.log_y;
        self.series
            .iter()
            .map(|s| Series {
                name: s.name.clone(),
                points: s
                    .points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!log || y > 0.0))
                    .collect(),
            })
            .collect()
    }

    /// Render to an RGB buffer (`width * height * 3` bytes, row-major).
    pub fn render_rgb(&self) -> Result<(Vec<u8>, u32, u32)> {
        let (w, h) = self.size;
        let mut buf = vec![255u8; (w * h * 3) as usize];
        let series = self.drawable();
        let pts = || series.iter().flat_map(|s| s.points.iter().copied());
        let x = padded(pts().map(|p| p.0), 0.0, false);
        let fail = |e: String| Error::msg(format!("cannot draw plot `{}`: {e}", self.title));
        {
            let root = GlyphBackend::new(&mut buf, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
            let drawn = if self.log_y {
                let y = padded(pts().map(|p| p.1.log10()), 0.05, true);
                draw(&root, self, &series, x, (10f64.powf(y.start)..10f64.powf(y.end)).log_scale(), None)
            } else {
                let y = padded(pts().map(|p| p.1), 0.05, false);
                let y_max = y.start.abs().max(y.end.abs());
                draw(&root, self, &series, x, y, Some(y_max))
            };
            drawn.map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))?;
        }
        Ok((buf, w, h))
    }

    /// Render and write a PNG (through a temporary file, so a reader never sees half a PNG).
    pub fn write_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let (buf, w, h) = self.render_rgb()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let written = enc.write_header().and_then(|mut wr| {
            wr.write_image_data(&buf)?;
            wr.finish()
        });
        written.map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }
}

/// The range of `values` widened by `margin` of its span on each side (log10 values when
/// `log`); a single value or none gets a unit-wide range around it.
fn padded(values: impl Iterator<Item = f64>, margin: f64, log: bool) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return if log { -1.0..1.0 } else { 0.0..1.0 };
    }
    let span = hi - lo;
    if span <= f64::EPSILON * lo.abs().max(1.0) {
        let half = if log { 0.5 } else { (lo.abs() * 0.1).max(0.5) };
        return lo - half..hi + half;
    }
    lo - margin * span..hi + margin * span
}

/// Tick labels: at most 4 significant digits, in exponent form when the axis reaches 1e5 or
/// stays below 1e-3 (`axis_max`, the largest magnitude on a linear axis, makes every label of
/// an axis use one form; a log axis passes `None` and formats each value by itself).
fn tick(v: f64, axis_max: Option<f64>) -> String {
    let a = v.abs();
    let big = axis_max.unwrap_or(a);
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&big) {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    } else {
        let digits = (3 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

fn draw<Y>(
    root: &DrawingArea<GlyphBackend<'_>, Shift>,
    plot: &LinePlot,
    series: &[Series],
    x: Range<f64>,
    y: Y,
    y_max: Option<f64>,
) -> std::result::Result<(), String>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let x_max = x.start.abs().max(x.end.abs());
    let mut chart = ChartBuilder::on(root)
        .caption(&plot.title, ("sans-serif", size_for_scale(3)).into_font())
        .margin(16)
        .margin_right(40)
        .x_label_area_size(48)
        .y_label_area_size(112)
        .build_cartesian_2d(x, y)
        .map_err(e)?;
    let x_fmt = |v: &f64| tick(*v, Some(x_max));
    let y_fmt = |v: &f64| tick(*v, y_max);
    chart
        .configure_mesh()
        .x_desc(plot.x_label.as_str())
        .y_desc(plot.y_label.as_str())
        .axis_desc_style(("sans-serif", size_for_scale(2)))
        .label_style(("sans-serif", size_for_scale(2)))
        .x_labels((plot.size.0 as usize / 100).clamp(2, 10))
        .y_labels((plot.size.1 as usize / 60).clamp(2, 10))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(e)?;
    let mut labelled = false;
    for (i, s) in series.iter().enumerate() {
        if s.points.is_empty() {
            continue;
        }
        let color = PALETTE[i % PALETTE.len()];
        let style = ShapeStyle::from(&color).stroke_width(2);
        let line = chart.draw_series(LineSeries::new(s.points.iter().copied(), style)).map_err(e)?;
        if !s.name.is_empty() {
            labelled = true;
            line.label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", size_for_scale(2)))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
    }
    if series.iter().all(|s| s.points.is_empty()) {
        let area = chart.plotting_area();
        let (xs, ys) = area.get_pixel_range();
        let style =
            TextStyle::from(("sans-serif", size_for_scale(2)).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
        let centre = ((xs.start + xs.end) / 2 - xs.start, (ys.start + ys.end) / 2 - ys.start);
        area.strip_coord_spec().draw_text("no data", &style, centre).map_err(e)?;
    }
    Ok(())
}
