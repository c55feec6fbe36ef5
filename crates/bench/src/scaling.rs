//! `keel bench scaling-chart`: throughput against hosts, one line per measured series beside
//! the line of perfect scale-out (N times the first point), as SVG — the fleet lab's charts.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Deserialize;

use crate::chart::{COLOURS, SIZE, legend};

/// One measured series: `points` are (hosts, throughput) pairs.
#[derive(Debug, Clone, Deserialize)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ScalingChartArgs {
    /// The chart's title.
    #[arg(long)]
    pub title: String,
    /// What the x axis counts.
    #[arg(long, default_value = "hosts")]
    pub x_label: String,
    /// What the y axis measures.
    #[arg(long, default_value = "requests/s")]
    pub y_label: String,
    /// Where to write the SVG.
    #[arg(long)]
    pub output: PathBuf,
    /// Series as JSON files, each `{"name": "...", "points": [[hosts, throughput], ...]}`.
    #[arg(required = true)]
    pub series: Vec<PathBuf>,
}

/// Reads the series and draws the chart.
pub fn scaling_chart(args: &ScalingChartArgs) -> anyhow::Result<()> {
    let series = args
        .series
        .iter()
        .map(|path| Ok(serde_json::from_slice(&std::fs::read(path)?)?))
        .collect::<anyhow::Result<Vec<Series>>>()?;
    draw(args, &series, &args.output)
}

/// The line each series would follow if N hosts did N times the first point's work.
fn ideal(series: &Series) -> Vec<(f64, f64)> {
    let Some(&(hosts, throughput)) = series.points.first() else {
        return Vec::new();
    };
    let per_host = throughput / hosts.max(f64::EPSILON);
    series
        .points
        .iter()
        .map(|&(x, _)| (x, x * per_host))
        .collect()
}

fn draw(args: &ScalingChartArgs, series: &[Series], path: &Path) -> anyhow::Result<()> {
    let (right, top) = series
        .iter()
        .flat_map(|s| s.points.iter().copied().chain(ideal(s)))
        .fold((1.0_f64, 1.0_f64), |(x, y), (px, py)| {
            (x.max(px), y.max(py))
        });
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&args.title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..right * 1.05, 0.0..top * 1.1)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc(args.x_label.as_str())
        .y_desc(args.y_label.as_str())
        .draw()?;
    for (series, colour) in series.iter().zip(COLOURS) {
        let line = series.points.clone();
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
            .label(series.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(line.iter().map(|p| Circle::new(*p, 4, colour.filled())))?;
        let dashed = DashedLineSeries::new(ideal(series), 6, 4, colour.mix(0.6).stroke_width(1));
        chart
            .draw_series(dashed)?
            .label(format!("{}: N × the first point", series.name))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.mix(0.6)));
    }
    legend(&mut chart)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ideal_line_is_n_times_the_first_point_per_host() {
        let series = Series {
            name: "reads".into(),
            points: vec![(1.0, 1000.0), (2.0, 1900.0), (4.0, 3500.0)],
        };
        assert_eq!(
            ideal(&series),
            [(1.0, 1000.0), (2.0, 2000.0), (4.0, 4000.0)]
        );
        let from_two = Series {
            name: "replicas".into(),
            points: vec![(2.0, 3000.0), (4.0, 5000.0)],
        };
        assert_eq!(ideal(&from_two), [(2.0, 3000.0), (4.0, 6000.0)]);
    }
}
