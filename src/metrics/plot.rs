//! SVG plots of cluster-size distributions, drawn with `plotters`' SVG backend (no fonts are
//! rasterised: text goes into the SVG as `<text>` elements).
//!
//! [`rank_size_svg`] draws two log-log panels: the rank-size curves of the PREFIX clusters
//! (codes `1..=l`) and of the level-`l` codes alone (the token distribution of the hourglass
//! analysis). Each level is one series with its own colour; with several methods, the first is
//! drawn solid and the others dashed, and the legend names `method L<l>`.

use super::report::Metrics;
use super::SizeDist;
use crate::error::{Error, Result};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::path::Path;

/// Plot width in pixels.
pub const WIDTH: u32 = 1200;
/// Plot height in pixels.
pub const HEIGHT: u32 = 520;

/// Colours of levels 1, 2, ... (cycled).
const LEVEL_COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The rank-size SVG of one or more methods, as a string.
pub fn rank_size_svg(methods: &[&Metrics]) -> Result<String> {
    if methods.is_empty() {
        return Err(Error::Invalid("rank_size_svg: no methods to plot".into()));
    }
    let mut svg = String::new();
    draw(&mut svg, methods).map_err(|e| Error::Invalid(format!("drawing the SVG: {e}")))?;
    Ok(svg)
}

/// Writes [`rank_size_svg`] to `path` (write-then-rename).
pub fn write_rank_size_svg(path: &Path, methods: &[&Metrics]) -> Result<()> {
    let svg = rank_size_svg(methods)?;
    super::write_atomic(path, svg.as_bytes())
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw(svg: &mut String, methods: &[&Metrics]) -> DrawResult {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let names: Vec<&str> = methods.iter().map(|m| m.name.as_str()).collect();
    let root = root.titled(
        &format!("Cluster sizes per level: {}", names.join(" vs ")),
        ("sans-serif", 20),
    )?;
    let panels = root.split_evenly((1, 2));
    panel(&panels[0], "prefix clusters (codes 1..l)", methods, |lm| {
        &lm.prefix.sizes
    })?;
    panel(&panels[1], "codes of level l alone", methods, |lm| {
        &lm.code.sizes
    })?;
    root.present()?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    methods: &[&Metrics],
    pick: impl Fn(&super::LevelMetrics) -> &SizeDist,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let dists = || methods.iter().flat_map(|m| m.per_level.iter().map(&pick));
    let x_max = dists().map(|d| d.clusters).max().unwrap_or(1).max(1) as f64;
    let y_max = dists().map(|d| d.max).max().unwrap_or(1).max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (1f64..x_max * 1.3).log_scale(),
            (0.8f64..y_max * 1.5).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("rank")
        .y_desc("items in cluster")
        .x_labels(8)
        .y_labels(8)
        .max_light_lines(2)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let several = methods.len() > 1;
    for (mi, m) in methods.iter().enumerate() {
        for lm in &m.per_level {
            let color = LEVEL_COLORS[(lm.level - 1) % LEVEL_COLORS.len()];
            let style = color.stroke_width(2);
            let label = if several {
                format!("{} L{}", m.name, lm.level)
            } else {
                format!("L{} (k={})", lm.level, lm.codebook_size)
            };
            let mut pts: Vec<(f64, f64)> = pick(lm)
                .rank_size_points()
                .into_iter()
                .map(|(r, s)| (r as f64, s as f64))
                .collect();
            if pts.len() == 1 {
                // One cluster: a short flat stub so the series is visible.
                let (r, s) = pts[0];
                pts.push((r * 1.15, s));
            }
            if mi == 0 {
                chart
                    .draw_series(LineSeries::new(pts, style))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            } else {
                let (dash, gap) = [(8u32, 4u32), (2, 3), (12, 3)][(mi - 1) % 3];
                chart
                    .draw_series(DashedLineSeries::new(pts, dash, gap, style))?
                    .label(label)
                    .legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x, y), (x + 24, y)], dash, gap, style)
                    });
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}
