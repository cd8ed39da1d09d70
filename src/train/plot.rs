//! PNG plots of a training run: loss and accuracy curves from the per-epoch
//! records (`metrics.csv`), and the confusion matrix as a heatmap with class
//! names.
//!
//! Drawn with `plotters` on its bitmap backend, text through `ab_glyph`
//! with DejaVu Sans embedded from `src/train/fonts/` (Bitstream Vera licence,
//! see `src/train/fonts/README.md`), so no system font or fontconfig is
//! needed.

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use super::history::EpochRecord;
use crate::{Error, Result};

/// DejaVu Sans, embedded.
static FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");

/// The family name the embedded font is registered under.
const FAMILY: &str = "sans-serif";

type DrawResult = std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Registers the embedded font once per process.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        Err(Error::config(
            "font",
            "the embedded DejaVu Sans did not parse",
        ))
    }
}

fn plot_error(path: &Path) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error + '_ {
    move |source| Error::Plot {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `curves.png`-style curves to `path`: training and test loss on
/// the left, training top-1 (on augmented samples) and test top-1 / top-5
/// on the right, against the epoch. Epochs without a test evaluation (NaN)
/// are skipped in the test curves.
pub fn curves(history: &[EpochRecord], title: &str, path: &Path) -> Result<()> {
    ensure_font()?;
    draw_curves(history, title, path).map_err(plot_error(path))
}

/// A line chart against the epoch, as every curve plot here draws.
type EpochChart<'a> =
    ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The grid and axes of an [`EpochChart`]: epochs along x, `y_desc` up y
/// with `y_decimals` decimals.
fn draw_epoch_mesh(chart: &mut EpochChart, y_desc: &str, y_decimals: usize) -> DrawResult {
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_label_formatter(&epoch_label)
        .y_label_formatter(&|y| format!("{y:.y_decimals$}"))
        .light_line_style(RGBColor(238, 238, 238))
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .draw()?;
    Ok(())
}

/// The series' legend at `position`, boxed on a translucent white.
fn draw_legend(chart: &mut EpochChart, position: SeriesLabelPosition) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FAMILY, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn points(history: &[EpochRecord], f: impl Fn(&EpochRecord) -> f64) -> Vec<(f64, f64)> {
    history
        .iter()
        .map(|r| (r.epoch as f64, f(r)))
        .filter(|(_, y)| y.is_finite())
        .collect()
}

fn draw_curves(history: &[EpochRecord], title: &str, path: &Path) -> DrawResult {
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FAMILY, 20))?;
    let (left, right) = root.split_horizontally(600);
    let last = history.iter().map(|r| r.epoch).max().unwrap_or(1).max(2) as f64;
    let test_colour = RGBColor(214, 39, 40);
    let train_colour = RGBColor(31, 119, 180);
    let top5_colour = RGBColor(255, 127, 14);

    let train_loss = points(history, |r| r.train_loss);
    let test_loss = points(history, |r| r.test_loss);
    let ymax = train_loss
        .iter()
        .chain(&test_loss)
        .map(|p| p.1)
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.05;
    let mut chart = ChartBuilder::on(&left)
        .caption("loss", (FAMILY, 17))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d(1f64..last, 0f64..ymax)?;
    draw_epoch_mesh(&mut chart, "cross-entropy", 1)?;
    chart
        .draw_series(LineSeries::new(train_loss, train_colour.stroke_width(2)))?
        .label("train")
        .legend(move |(x, y)| {
            PathElement::new([(x, y), (x + 20, y)], train_colour.stroke_width(2))
        });
    chart
        .draw_series(LineSeries::new(
            test_loss.clone(),
            test_colour.stroke_width(2),
        ))?
        .label("test")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], test_colour.stroke_width(2)));
    chart.draw_series(
        test_loss
            .iter()
            .map(|&p| Circle::new(p, 3, test_colour.filled())),
    )?;
    draw_legend(&mut chart, SeriesLabelPosition::MiddleRight)?;

    let train_top1 = points(history, |r| r.train_top1 * 100.0);
    let test_top1 = points(history, |r| r.test_top1 * 100.0);
    let test_top5 = points(history, |r| r.test_top5 * 100.0);
    let mut chart = ChartBuilder::on(&right)
        .caption("accuracy", (FAMILY, 17))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(52)
        .build_cartesian_2d(1f64..last, 0f64..100f64)?;
    draw_epoch_mesh(&mut chart, "%", 0)?;
    chart
        .draw_series(LineSeries::new(train_top1, train_colour.stroke_width(2)))?
        .label("train top-1 (augmented)")
        .legend(move |(x, y)| {
            PathElement::new([(x, y), (x + 20, y)], train_colour.stroke_width(2))
        });
    chart
        .draw_series(LineSeries::new(
            test_top1.clone(),
            test_colour.stroke_width(2),
        ))?
        .label("test top-1")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], test_colour.stroke_width(2)));
    chart.draw_series(
        test_top1
            .iter()
            .map(|&p| Circle::new(p, 3, test_colour.filled())),
    )?;
    chart
        .draw_series(LineSeries::new(test_top5, top5_colour.stroke_width(1)))?
        .label("test top-5")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], top5_colour.stroke_width(1)));
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present()?;
    Ok(())
}

/// One named curve of [`loss_curves`]: its value per epoch (from 1).
pub struct Curve<'a> {
    /// Legend text.
    pub name: &'a str,
    /// One value per epoch.
    pub values: &'a [f64],
}

/// Writes the loss curves of a pretraining run to `path`: each curve
/// against the epoch, and where given a dashed horizontal reference line
/// (`reference = (legend, y)`), such as a contrastive loss's chance level.
pub fn loss_curves(
    curves: &[Curve],
    reference: Option<(&str, f64)>,
    title: &str,
    y_desc: &str,
    path: &Path,
) -> Result<()> {
    ensure_font()?;
    draw_loss_curves(curves, reference, title, y_desc, path).map_err(plot_error(path))
}

/// An epoch axis label: whole epochs only (plotters puts ticks between
/// them when a run has few epochs).
fn epoch_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

/// The curves' palette: eight of Tableau's ten colours (no grey, which
/// the reference lines use, and no olive, too pale on white).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(214, 39, 40),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn draw_loss_curves(
    curves: &[Curve],
    reference: Option<(&str, f64)>,
    title: &str,
    y_desc: &str,
    path: &Path,
) -> DrawResult {
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FAMILY, 20))?;
    let last = curves
        .iter()
        .map(|c| c.values.len())
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let values = curves
        .iter()
        .flat_map(|c| c.values.iter().copied())
        .chain(reference.map(|r| r.1));
    let (lo, hi) = finite_span(values).unwrap_or((0.0, 1.0));
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(&root)
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..last, (lo - pad)..(hi + pad))?;
    draw_epoch_mesh(&mut chart, y_desc, 2)?;
    for (i, c) in curves.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64)> = c
            .values
            .iter()
            .enumerate()
            .map(|(e, &y)| ((e + 1) as f64, y))
            .filter(|p| p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))?
            .label(c.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    if let Some((name, y)) = reference {
        let grey = RGBColor(110, 110, 110);
        chart
            .draw_series(DashedLineSeries::new(
                [(1.0, y), (last, y)],
                8,
                5,
                grey.stroke_width(1),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey.stroke_width(1)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// One training run of a [`compare`] plot.
pub struct Run<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Its per-epoch records (`metrics.csv`).
    pub history: &'a [EpochRecord],
}

/// Writes several runs side by side to `path`: test top-1 on the left and
/// training top-1 (on augmented samples) on the right, against the epoch,
/// one colour per run (the order of [`PALETTE`]). Only epochs from
/// `from_epoch` on are drawn and the y axes fit them, so that the few
/// points between methods late in training are not flattened by the
/// first epochs' range. Training loss is not drawn: methods that add a
/// term to the loss (GAP, MMCL) log the sum, which does not compare.
pub fn compare(runs: &[Run], from_epoch: usize, title: &str, path: &Path) -> Result<()> {
    ensure_font()?;
    draw_compare(runs, from_epoch, title, path).map_err(plot_error(path))
}

/// Points of `f` per epoch from `from_epoch`, in percent.
fn percent_from(
    history: &[EpochRecord],
    from_epoch: usize,
    f: impl Fn(&EpochRecord) -> f64,
) -> Vec<(f64, f64)> {
    points(history, |r| f(r) * 100.0)
        .into_iter()
        .filter(|p| p.0 >= from_epoch as f64)
        .collect()
}

/// The smallest and largest finite value, if there is one.
fn finite_span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|y| y.is_finite())
        .fold(None, |span, y| match span {
            None => Some((y, y)),
            Some((lo, hi)) => Some((f64::min(lo, y), f64::max(hi, y))),
        })
}

/// A y range that holds every point, padded by 5 % of its span (at least
/// one point of the axis).
fn padded_range<'a>(series: impl Iterator<Item = &'a (f64, f64)>) -> (f64, f64) {
    let Some((lo, hi)) = finite_span(series.map(|p| p.1)) else {
        return (0.0, 100.0);
    };
    let pad = ((hi - lo) * 0.05).max(1.0);
    ((lo - pad).max(0.0), (hi + pad).min(100.0))
}

/// A per-epoch value a [`compare`] panel draws.
type Metric = fn(&EpochRecord) -> f64;

fn draw_compare(runs: &[Run], from_epoch: usize, title: &str, path: &Path) -> DrawResult {
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FAMILY, 20))?;
    let (left, right) = root.split_horizontally(600);
    let first = from_epoch.max(1) as f64;
    let last = runs
        .iter()
        .flat_map(|r| r.history.iter().map(|e| e.epoch))
        .max()
        .unwrap_or(1) as f64;
    let last = last.max(first + 1.0);
    let test: Metric = |r| r.test_top1;
    let train: Metric = |r| r.train_top1;
    let panels = [
        (&left, "test top-1", test),
        (&right, "training top-1 (augmented)", train),
    ];
    for (area, caption, metric) in panels {
        let series: Vec<Vec<(f64, f64)>> = runs
            .iter()
            .map(|r| percent_from(r.history, from_epoch, metric))
            .collect();
        let (lo, hi) = padded_range(series.iter().flatten());
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FAMILY, 17))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(first..last, lo..hi)?;
        draw_epoch_mesh(&mut chart, "%", 1)?;
        for (i, (run, pts)) in runs.iter().zip(series).enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))?
                .label(run.name)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    }
    root.present()?;
    Ok(())
}

/// Writes the confusion matrix `confusion[label][predicted]` as a heatmap
/// to `path`: rows are labels (named `index name` from `classes`), columns
/// predictions (by index); the colour is the share of the row (per-class
/// recall on the diagonal) and each non-zero cell shows its count.
pub fn confusion(
    confusion: &[Vec<usize>],
    classes: &[String],
    title: &str,
    path: &Path,
) -> Result<()> {
    ensure_font()?;
    draw_confusion(confusion, classes, title, path).map_err(plot_error(path))
}

/// White to dark blue by `share` in [0, 1].
fn heat(share: f64) -> RGBColor {
    let s = share.clamp(0.0, 1.0);
    let mix = |hi: f64, lo: f64| (hi - s * (hi - lo)).round() as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

fn draw_confusion(
    confusion: &[Vec<usize>],
    classes: &[String],
    title: &str,
    path: &Path,
) -> DrawResult {
    let k = confusion.len().max(1);
    let cell = if k <= 12 { 44 } else { 28 };
    let name = |i: usize| classes.get(i).map_or("?", |s| s.as_str()).to_string();
    let longest = (0..k).map(|i| name(i).chars().count()).max().unwrap_or(1);
    let label_w = (longest as u32 + 4) * 7 + 20;
    let (w, h) = (label_w + k as u32 * cell + 40, k as u32 * cell + 130);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FAMILY, 18))?;
    let ki = k as i32;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(label_w)
        // Integer ranges are inclusive in plotters: 0..k-1 is k segments.
        .build_cartesian_2d((0..ki - 1).into_segmented(), (0..ki - 1).into_segmented())?;
    // Row `label` is drawn at y = k - 1 - label, so label 0 is on top.
    let row_of = |y: i32| (ki - 1 - y) as usize;
    let x_fmt = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => i.to_string(),
        _ => String::new(),
    };
    let y_fmt = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(y) if (0..ki).contains(y) => {
            let r = row_of(*y);
            format!("{r} {}", name(r))
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(k)
        .y_labels(k)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc("predicted class")
        .y_desc("label")
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 14))
        .draw()?;
    let mut cells = Vec::with_capacity(k * k);
    let mut texts = Vec::new();
    for (label, row) in confusion.iter().enumerate() {
        let total: usize = row.iter().sum();
        let y = ki - 1 - label as i32;
        for (pred, &count) in row.iter().enumerate() {
            let share = if total > 0 {
                count as f64 / total as f64
            } else {
                0.0
            };
            let x = pred as i32;
            cells.push(Rectangle::new(
                [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ],
                heat(share).filled(),
            ));
            if count > 0 {
                let colour: &'static RGBColor = if share > 0.5 { &WHITE } else { &BLACK };
                let style = TextStyle::from((FAMILY, if k <= 12 { 14 } else { 11 }))
                    .color(colour)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                texts.push(Text::new(
                    count.to_string(),
                    (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                    style,
                ));
            }
        }
    }
    chart.draw_series(cells)?;
    chart.draw_series(texts)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_runs_from_white_to_dark_blue() {
        assert_eq!(heat(0.0), RGBColor(255, 255, 255));
        assert_eq!(heat(1.0), RGBColor(8, 48, 107));
        assert_eq!(heat(7.0), heat(1.0));
    }

    #[test]
    fn padded_range_holds_every_point_within_percent() {
        let pts = [(1.0, 90.0), (2.0, 95.0)];
        assert_eq!(padded_range(pts.iter()), (89.0, 96.0));
        let wide = [(1.0, 10.0), (2.0, 99.0)];
        let (lo, hi) = padded_range(wide.iter());
        assert!((lo - 5.55).abs() < 1e-9 && hi == 100.0, "{lo} {hi}");
        assert_eq!(padded_range([].iter()), (0.0, 100.0));
    }

    #[test]
    fn epoch_axis_labels_whole_epochs_only() {
        assert_eq!(epoch_label(&3.0), "3");
        assert_eq!(epoch_label(&2.5), "");
        assert_eq!(epoch_label(&1.9999999), "2");
    }
}
