//! The simulation chart: per run, traffic and the capacity of ready workers in requests per
//! second (left axis) and the worker count including starting workers (right axis, scaled so
//! that one worker lines up with its capacity).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{RunResult, STEP_SECS};
use crate::autoscale::Sample;

/// DejaVu Sans 2.37 (Debian's fonts-dejavu-core), free to redistribute under its licence in
/// `assets/fonts/DejaVuSans-LICENSE.txt`.
static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

/// Points drawn per series; the timeline is bucketed down to about one point per pixel.
const MAX_POINTS: usize = 1600;
const PANEL_HEIGHT: u32 = 320;
const WIDTH: u32 = 1800;

/// A failed chart render. Permanent: the output path or the data is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("cannot load the embedded chart font")]
    Font,
    #[error("cannot draw the chart {path}: {message}")]
    Draw { path: String, message: String },
}

fn register_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok()
    });
    if ok { Ok(()) } else { Err(ChartError::Font) }
}

/// Draws one panel per run (the oracle included) into a PNG at `path`.
pub fn draw_png(
    path: &Path,
    title: &str,
    trace: &[Sample],
    runs: &[&RunResult],
    capacity_per_worker: f64,
) -> Result<(), ChartError> {
    register_font()?;
    let fail = |e: &dyn std::fmt::Display| ChartError::Draw {
        path: path.display().to_string(),
        message: e.to_string(),
    };

    let panels = u32::try_from(runs.len().max(1)).unwrap_or(1);
    let root = BitMapBackend::new(path, (WIDTH, 40 + PANEL_HEIGHT * panels)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = root
        .titled(title, ("sans-serif", 24))
        .map_err(|e| fail(&e))?;
    let areas = root.split_evenly((runs.len().max(1), 1));

    let start = trace.first().map_or(0, |s| s.t);
    let bucket = trace.len().div_ceil(MAX_POINTS).max(1);
    let day = |index: usize| (index as f64 * STEP_SECS as f64) / 86_400.0;
    let days = day(trace.len());
    let traffic_peak = trace.iter().map(|s| s.rps).fold(0.0_f64, f64::max);
    let worker_peak = runs
        .iter()
        .flat_map(|r| r.timeline.total.iter().copied())
        .max()
        .unwrap_or(0);
    let y_max = (traffic_peak.max(f64::from(worker_peak) * capacity_per_worker) * 1.05).max(1.0);

    for (area, run) in areas.iter().zip(runs) {
        let caption = format!(
            "{}: {:.0} worker-hours ({:.2}× oracle), {} under-provisioned minutes",
            run.predictor, run.worker_hours, run.ratio_to_oracle, run.underprovisioned_minutes
        );
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .right_y_label_area_size(50)
            .build_cartesian_2d(0.0..days, 0.0..y_max)
            .map_err(|e| fail(&e))?
            .set_secondary_coord(0.0..days, 0.0..y_max / capacity_per_worker);
        chart
            .configure_mesh()
            .x_desc(format!("days since {}", format_time(start)))
            .y_desc("requests/s")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| fail(&e))?;
        chart
            .configure_secondary_axes()
            .y_desc("workers")
            .draw()
            .map_err(|e| fail(&e))?;

        // Each bucket is drawn at its busiest minute: the traffic then and the capacity of
        // the workers ready in that same minute, so a shortfall shows as red below blue.
        let busiest: Vec<(usize, f64)> = trace
            .chunks(bucket)
            .enumerate()
            .map(|(b, chunk)| {
                let mut best = (0, f64::MIN);
                for (i, sample) in chunk.iter().enumerate() {
                    if sample.rps > best.1 {
                        best = (i, sample.rps);
                    }
                }
                (b * bucket + best.0, best.1)
            })
            .collect();
        let traffic = busiest.iter().map(|&(i, peak)| (day(i), peak));
        chart
            .draw_series(LineSeries::new(traffic, BLUE.mix(0.6)))
            .map_err(|e| fail(&e))?
            .label("traffic (busiest minute of each point)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));

        let capacity = busiest.iter().map(|&(i, _)| {
            let ready = run.timeline.ready.get(i).copied().unwrap_or(0);
            (day(i), f64::from(ready) * capacity_per_worker)
        });
        chart
            .draw_series(LineSeries::new(capacity, RED.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label("capacity of ready workers in that minute")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));

        let workers = run
            .timeline
            .total
            .chunks(bucket)
            .enumerate()
            .map(|(b, chunk)| {
                let most = chunk.iter().copied().max().unwrap_or(0);
                (day(b * bucket), f64::from(most))
            });
        // Solid and drawn last: where the worker count follows the capacity line exactly, it
        // must still show on top of the thicker red line.
        let worker_colour = RGBColor(0, 110, 0);
        chart
            .draw_secondary_series(LineSeries::new(workers, worker_colour))
            .map_err(|e| fail(&e))?
            .label("workers, starting included (right axis)")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], worker_colour));

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| fail(&e))?;
    }

    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

fn format_time(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map_or_else(|_| unix.to_string(), |t| t.to_string())
}
