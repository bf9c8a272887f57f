//! The figures of a report, drawn with `plotters` twice: into a pixel buffer written as PNG (by
//! the `png` crate, already in the tree, rather than plotters' `image` encoder, which would pull
//! a second `image`) and as SVG. Text is set in the embedded Go font (`assets/Go-Regular.ttf`,
//! BSD-3, Debian's `fonts-go`) through plotters' `ab_glyph` engine, so a figure needs no system
//! font and looks the same on every machine.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::TrainError;

/// Width of every figure, in pixels.
pub const WIDTH: u32 = 800;
/// Height of every figure, in pixels.
pub const HEIGHT: u32 = 480;

static FONT: &[u8] = include_bytes!("../../assets/Go-Regular.ttf");
const FAMILY: &str = "sans-serif";

/// One named curve or sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's name.
    pub name: String,
    /// `(x, y)` points; points with a non-finite coordinate are left out.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series named `name`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }
}

/// What a figure shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// A line through each series' points.
    Lines(Vec<Series>),
    /// Bars of equal bins over `range`: each series' `points` are `(bin, value)` with `bin` the
    /// bin's index; several series are drawn see-through over each other.
    Bars {
        /// The x-range the bins cut into equal parts.
        range: (f64, f64),
        /// Bins.
        bins: usize,
        /// One series of bar heights each.
        series: Vec<Series>,
    },
    /// Points, one colour per series (a class, say).
    Scatter(Vec<Series>),
}

/// A titled chart with named axes.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The caption.
    pub title: String,
    /// The x axis's name.
    pub x_label: String,
    /// The y axis's name.
    pub y_label: String,
    /// The chart.
    pub chart: Chart,
}

/// Counts of `values` in `bins` equal bins of `range` (the last bin includes its upper end;
/// values outside are not counted), as a fraction of all values.
///
/// ```
/// use unmix_train::report::plot::histogram;
///
/// assert_eq!(histogram(&[0.1, 0.2, 0.9, 1.0], (0.0, 1.0), 2), vec![0.5, 0.5]);
/// ```
pub fn histogram(values: &[f64], range: (f64, f64), bins: usize) -> Vec<f64> {
    let mut counts = vec![0usize; bins];
    let width = (range.1 - range.0) / bins as f64;
    for &v in values {
        if v.is_finite() && v >= range.0 && v <= range.1 {
            let bin = (((v - range.0) / width) as usize).min(bins - 1);
            counts[bin] += 1;
        }
    }
    let n = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

fn colour(i: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(i).rgb();
    RGBColor(r, g, b)
}

/// The span of `values`, widened when empty or a single point so that an axis can be drawn.
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let pad = lo.abs().max(1.0) * 0.05;
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.04;
    (lo - pad, hi + pad)
}

/// A tick label with as many decimals as an axis spanning `range` needs to tell its ticks apart
/// (about ten ticks), and no more.
///
/// ```
/// use unmix_train::report::plot::tick;
///
/// assert_eq!(tick(0.010015, (0.01, 0.01002)), "0.010015");
/// assert_eq!(tick(40.0, (0.0, 100.0)), "40");
/// assert_eq!(tick(0.25, (0.0, 1.0)), "0.25");
/// ```
pub fn tick(v: f64, range: (f64, f64)) -> String {
    let step = ((range.1 - range.0) / 10.0).abs();
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).max(0.0) as usize + 1
    } else {
        2
    };
    let text = format!("{v:.decimals$}");
    // 0.250 -> 0.25, 40.0 -> 40
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    if text == "-0" { "0".into() } else { text }
}

fn finite(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

fn draw<DB: DrawingBackend>(
    figure: &Figure,
    root: DrawingArea<DB, Shift>,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let all: Vec<(f64, f64)> = match &figure.chart {
        Chart::Lines(series) | Chart::Scatter(series) => series
            .iter()
            .flat_map(|s| finite(&s.points).collect::<Vec<_>>())
            .collect(),
        Chart::Bars {
            range,
            bins,
            series,
        } => {
            let mut v = vec![(range.0, 0.0), (range.1, 0.0)];
            for s in series {
                v.extend(finite(&s.points).map(|(b, y)| (range.0 + b / *bins as f64, y)));
            }
            v
        }
    };
    let x = match &figure.chart {
        Chart::Bars { range, .. } => *range,
        _ => span(all.iter().map(|p| p.0)),
    };
    let y = match &figure.chart {
        // Bars stand on zero.
        Chart::Bars { .. } => (0.0, span(all.iter().map(|p| p.1)).1),
        _ => span(all.iter().map(|p| p.1)),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(&figure.title, (FAMILY, 22))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| tick(*v, x))
        .y_label_formatter(&|v| tick(*v, y))
        .x_desc(figure.x_label.as_str())
        .y_desc(figure.y_label.as_str())
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let legend = |c: RGBColor| {
        move |(x, y): (i32, i32)| Rectangle::new([(x, y - 4), (x + 16, y + 4)], c.filled())
    };
    let mut named = false;
    match &figure.chart {
        Chart::Lines(series) => {
            for (i, s) in series.iter().enumerate() {
                let c = colour(i);
                chart
                    .draw_series(LineSeries::new(finite(&s.points), c.stroke_width(2)))?
                    .label(s.name.as_str())
                    .legend(legend(c));
                named |= !s.name.is_empty();
            }
        }
        Chart::Scatter(series) => {
            for (i, s) in series.iter().enumerate() {
                let c = colour(i);
                chart
                    .draw_series(finite(&s.points).map(|p| Circle::new(p, 2, c.mix(0.7).filled())))?
                    .label(s.name.as_str())
                    .legend(legend(c));
                named |= !s.name.is_empty();
            }
        }
        Chart::Bars {
            range,
            bins,
            series,
        } => {
            let width = (range.1 - range.0) / *bins as f64;
            let see_through = if series.len() > 1 { 0.45 } else { 0.8 };
            for (i, s) in series.iter().enumerate() {
                let c = colour(i);
                chart
                    .draw_series(finite(&s.points).map(|(b, h)| {
                        let lo = range.0 + b * width;
                        Rectangle::new([(lo, 0.0), (lo + width, h)], c.mix(see_through).filled())
                    }))?
                    .label(s.name.as_str())
                    .legend(legend(c));
                named |= !s.name.is_empty();
            }
        }
    }
    if named {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn font_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok())
}

impl Figure {
    /// Writes `<stem>.png` and `<stem>.svg` ([`WIDTH`] × [`HEIGHT`]) and returns their paths.
    pub fn save(&self, stem: &Path) -> Result<[PathBuf; 2], TrainError> {
        let png_path = stem.with_extension("png");
        let svg_path = stem.with_extension("svg");
        let failed = |path: &Path, e: &dyn std::fmt::Display| TrainError::Report {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        if !font_registered() {
            return Err(failed(&png_path, &"the embedded font did not load"));
        }
        let (w, h) = (WIDTH, HEIGHT);
        let mut pixels = vec![0u8; (w * h * 3) as usize];
        draw(
            self,
            BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area(),
        )
        .map_err(|e| failed(&png_path, &e))?;
        write_png(&png_path, &pixels, w, h)?;
        let mut svg = String::new();
        draw(
            self,
            SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area(),
        )
        .map_err(|e| failed(&svg_path, &e))?;
        std::fs::write(&svg_path, svg).map_err(|e| TrainError::io(&svg_path, e))?;
        Ok([png_path, svg_path])
    }
}

fn write_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<(), TrainError> {
    let file = std::fs::File::create(path).map_err(|e| TrainError::io(path, e))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let encoded = encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(rgb));
    encoded.map_err(|e| TrainError::io(path, std::io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("unmix-plot-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Decodes a PNG: its size and its RGB pixels.
    fn decode(path: &Path) -> (u32, u32, Vec<u8>) {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        assert_eq!(info.color_type, png::ColorType::Rgb);
        (info.width, info.height, buf)
    }

    fn figures() -> Vec<(&'static str, Figure)> {
        let curve = |k: f64| {
            (0..50)
                .map(|i| (i as f64, (-(i as f64) / k).exp()))
                .collect()
        };
        let figure = |title: &str, chart| Figure {
            title: title.into(),
            x_label: "x".into(),
            y_label: "y".into(),
            chart,
        };
        vec![
            (
                "lines",
                figure(
                    "two curves",
                    Chart::Lines(vec![
                        Series::new("fast", curve(5.0)),
                        Series::new("slow", curve(20.0)),
                    ]),
                ),
            ),
            (
                "bars",
                figure(
                    "a histogram",
                    Chart::Bars {
                        range: (0.0, 1.0),
                        bins: 4,
                        series: vec![Series::new(
                            "",
                            vec![(0.0, 0.1), (1.0, 0.4), (2.0, 0.3), (3.0, 0.2)],
                        )],
                    },
                ),
            ),
            (
                "scatter",
                figure(
                    "classes",
                    Chart::Scatter(vec![
                        Series::new("a", vec![(0.0, 0.0), (1.0, 1.0)]),
                        Series::new("b", vec![(0.0, 1.0), (1.0, 0.0)]),
                    ]),
                ),
            ),
            // Nothing to draw still gives a figure with axes.
            (
                "empty",
                figure(
                    "nothing",
                    Chart::Lines(vec![Series::new("none", vec![(f64::NAN, 1.0)])]),
                ),
            ),
        ]
    }

    #[test]
    fn every_figure_is_a_png_and_an_svg_of_the_stated_size() {
        let d = dir("kinds");
        for (name, figure) in figures() {
            let [png_path, svg_path] = figure.save(&d.join(name)).unwrap();
            let (w, h, pixels) = decode(&png_path);
            assert_eq!((w, h), (WIDTH, HEIGHT), "{name}");
            // Drawn on: not one colour (the background alone would be).
            assert!(pixels.chunks(3).any(|p| p != [255, 255, 255]), "{name}");
            let svg = std::fs::read_to_string(&svg_path).unwrap();
            assert!(svg.starts_with("<svg"), "{name}");
            assert!(
                svg.contains(&format!("width=\"{WIDTH}\""))
                    && svg.contains(&format!("height=\"{HEIGHT}\"")),
                "{name}"
            );
            assert!(svg.contains(&figure.title), "{name}: the caption is text");
        }
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn the_caption_is_drawn_in_the_embedded_font() {
        // Text in the PNG: dark pixels in the caption's band (the top 40 rows), where nothing
        // else is drawn.
        let d = dir("font");
        let (_, figure) = figures().remove(0);
        let [png_path, _] = figure.save(&d.join("caption")).unwrap();
        let (w, _, pixels) = decode(&png_path);
        let band = &pixels[..(40 * w * 3) as usize];
        let dark = band
            .chunks(3)
            .filter(|p| p.iter().all(|&c| c < 100))
            .count();
        assert!(dark > 50, "{dark} dark pixels in the caption band");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_folder_that_is_not_there_is_named() {
        let (_, figure) = figures().remove(0);
        let err = figure
            .save(Path::new("/nonexistent/dir/figure"))
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/dir/figure.png"),
            "{err}"
        );
    }

    #[test]
    fn histogram_counts_fractions_with_the_top_edge_in_the_last_bin() {
        assert_eq!(
            histogram(&[0.0, 0.24, 0.25, 0.99, 1.0, 1.5], (0.0, 1.0), 4),
            vec![2.0 / 6.0, 1.0 / 6.0, 0.0, 2.0 / 6.0]
        );
    }
}
