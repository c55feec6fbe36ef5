//! Charts to look at before reading the table, as SVG: a run's latency percentiles second by
//! second, and, for `compare`, each profile's latency against the rate it was offered.

use std::{ops::Range, path::Path};

use plotters::{
    coord::{Shift, types::RangedCoordf64},
    prelude::*,
};

use crate::{record::Summary, run::RunReport};

pub(crate) const SIZE: (u32, u32) = (960, 540);
/// Distinct at a glance and for the colour-blind (Okabe–Ito).
pub(crate) const COLOURS: [RGBColor; 4] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
];

/// How a percentile is read off a summary.
type Percentile = fn(&Summary) -> f64;

/// The percentiles drawn.
const PERCENTILES: [(&str, Percentile); 3] = [
    ("p50", |s| s.p50_ms),
    ("p99", |s| s.p99_ms),
    ("p99.9", |s| s.p999_ms),
];

/// `run`'s p50, p99 and p99.9 for the requests sent in each second, on a log scale (a stall
/// shows as a cliff, not as a flattened curve).
pub fn over_time(run: &RunReport, path: &Path) -> anyhow::Result<()> {
    let seconds: Vec<(f64, &Summary)> = run
        .seconds
        .iter()
        .enumerate()
        .filter(|(_, s)| s.requests > 0)
        .map(|(n, s)| (n as f64 + 0.5, s))
        .collect();
    let top = seconds.iter().map(|(_, s)| s.p999_ms).fold(1.0, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let title = format!(
        "{} at {}/s: latency of the requests sent each second",
        run.scenario, run.rate
    );
    let mut chart = frame(
        &root,
        &title,
        (0.0..run.seconds.len().max(1) as f64, "seconds into the run"),
        (0.05..top * 1.5, "latency (ms, log scale)"),
    )?;
    for ((label, read), colour) in PERCENTILES.iter().zip(COLOURS) {
        chart
            .draw_series(LineSeries::new(
                seconds.iter().map(|(x, s)| (*x, read(s).max(0.05))),
                colour.stroke_width(2),
            ))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

/// One line per profile: the p99 at each rate its search tried, against that rate.
pub fn against_rate(
    title: &str,
    profiles: &[(&str, Vec<(f64, f64)>)],
    path: &Path,
) -> anyhow::Result<()> {
    let points = profiles.iter().flat_map(|(_, points)| points.iter());
    let (right, top) = points.fold((1.0, 1.0), |(x, y), (rate, p99)| {
        (f64::max(x, *rate), f64::max(y, *p99))
    });
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let mut chart = frame(
        &root,
        title,
        (0.0..right * 1.05, "offered rate (arrivals/s)"),
        (0.1..top * 1.5, "p99 latency (ms, log scale)"),
    )?;
    for ((name, points), colour) in profiles.iter().zip(COLOURS) {
        let mut points = points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let line = points.iter().map(|(rate, p99)| (*rate, p99.max(0.1)));
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(line.map(|point| Circle::new(point, 3, colour.filled())))?;
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

/// A white canvas with `title`, a linear x axis and a logarithmic latency axis, each with its
/// range and description, and the grid drawn.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    (x, x_desc): (Range<f64>, &str),
    (y, y_desc): (Range<f64>, &str),
) -> anyhow::Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y.log_scale())?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

pub(crate) fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("drawing the legend: {e}"))
}
