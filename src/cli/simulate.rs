//! `steward simulate`: replays a traffic trace against a pool's sizing policy, offline.

use std::path::{Path, PathBuf};

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::{CliError, CliResult};
use crate::autoscale::source::parse_trace;
use crate::sim::simulate::{self, Report, RunResult, chart};
use crate::spec::{self, Predictor, WorkerPool};

/// Replay a traffic trace against a pool's sizing policy and compare predictors with the
/// oracle.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CSV trace with a `timestamp,requests` header and one row per minute.
    #[arg(long, default_value = "traces/nasa_ksc_jul1995_1min.csv")]
    pub trace: PathBuf,
    /// WorkerPool file (YAML) whose `spec.autoscaling` and `spec.workers` are simulated.
    #[arg(long)]
    pub pool: PathBuf,
    /// Rescale the trace to this many requests per day, such as `2000000/day`, drawing
    /// Poisson arrivals.
    #[arg(long, value_parser = parse_per_day)]
    pub scale_to: Option<f64>,
    /// Seed of the Poisson draws for `--scale-to`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Predictors to compare, separated by commas.
    #[arg(long, value_delimiter = ',', value_parser = parse_predictor,
          default_value = "linear-slope,seasonal,reactive")]
    pub predictors: Vec<Predictor>,
    /// Worker startup time, such as `6m`; replaces the pool's `startupTime`.
    #[arg(long)]
    pub startup: Option<spec::Duration>,
    /// Directory for `report.json` and `chart.png`; created when missing.
    #[arg(long, default_value = "simulate-report")]
    pub output: PathBuf,
}

/// Runs the simulation, prints the table and writes the report and chart.
pub async fn run(args: Args) -> CliResult {
    let pool = load_pool(&args.pool)?;
    let Some(mut autoscaling) = pool.spec.autoscaling.clone() else {
        return Err(CliError::usage(anyhow::anyhow!(
            "pool {} in {} has no spec.autoscaling; add one to simulate its sizing",
            pool.metadata.name,
            args.pool.display()
        )));
    };
    if let Some(startup) = args.startup {
        autoscaling.startup_time = startup;
    }

    let trace_path = args.trace.display().to_string();
    let text = std::fs::read_to_string(&args.trace)
        .with_context(|| format!("cannot read the trace {trace_path}"))
        .map_err(CliError::usage)?;
    let mut trace = parse_trace(&trace_path, &text).map_err(CliError::usage)?;
    simulate::check_trace(&trace).map_err(CliError::usage)?;
    if let Some(per_day) = args.scale_to {
        trace = simulate::rescale(&trace, per_day, args.seed).map_err(CliError::usage)?;
    }

    let (oracle, runs) =
        simulate::compare(&autoscaling, pool.spec.workers, &trace, &args.predictors)
            .map_err(CliError::usage)?;

    print_table(&oracle, &runs);
    for run in &runs {
        println!(
            "{}: simulated in {:.1} ms",
            run.predictor,
            run.elapsed.as_secs_f64() * 1000.0
        );
    }

    std::fs::create_dir_all(&args.output).with_context(|| {
        format!(
            "cannot create the output directory {}",
            args.output.display()
        )
    })?;
    let report = Report {
        trace: trace_path.clone(),
        scaled_requests_per_day: args.scale_to,
        startup_seconds: autoscaling.startup_time.as_secs(),
        oracle_worker_hours: oracle.worker_hours,
        predictors: runs.clone(),
    };
    let report_path = args.output.join("report.json");
    let json = serde_json::to_string_pretty(&report).context("cannot serialize the report")?;
    std::fs::write(&report_path, json + "\n")
        .with_context(|| format!("cannot write {}", report_path.display()))?;

    let chart_path = args.output.join("chart.png");
    let mut panels: Vec<&RunResult> = runs.iter().collect();
    panels.push(&oracle);
    let title = format!("{} ({})", pool.metadata.name, trace_path);
    chart::draw_png(
        &chart_path,
        &title,
        &trace,
        &panels,
        autoscaling.capacity_per_worker,
    )
    .map_err(CliError::failure)?;

    println!(
        "wrote {} and {}",
        report_path.display(),
        chart_path.display()
    );
    Ok(())
}

fn load_pool(path: &Path) -> Result<WorkerPool, CliError> {
    // TODO: switch to crate::spec::load_paths once the loader exists, so multi-document files
    // and the loader's validation apply here too.
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the pool file {}", path.display()))
        .map_err(CliError::usage)?;
    serde_saphyr::from_str::<WorkerPool>(&text)
        .with_context(|| format!("invalid WorkerPool in {}", path.display()))
        .map_err(CliError::usage)
}

fn print_table(oracle: &RunResult, runs: &[RunResult]) {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "predictor",
        "worker-hours",
        "× oracle",
        "under-provisioned min",
        "share",
        "max shortfall (workers)",
        "scaling actions",
    ]);
    for run in runs.iter().chain(std::iter::once(oracle)) {
        table.add_row(vec![
            run.predictor.clone(),
            format!("{:.1}", run.worker_hours),
            format!("{:.3}", run.ratio_to_oracle),
            run.underprovisioned_minutes.to_string(),
            format!("{:.3} %", run.underprovisioned_fraction * 100.0),
            run.peak_shortfall_workers.to_string(),
            run.scaling_actions.to_string(),
        ]);
    }
    println!("{table}");
}

/// Parses `2000000/day` or `2000000` as requests per day.
fn parse_per_day(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix("/day").unwrap_or(text).replace('_', "");
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .ok_or_else(|| format!("invalid rate {text:?}: write requests per day such as 2000000/day"))
}

fn parse_predictor(text: &str) -> Result<Predictor, String> {
    match text.trim() {
        "linear-slope" => Ok(Predictor::LinearSlope),
        "seasonal" => Ok(Predictor::Seasonal),
        "reactive" => Ok(Predictor::Reactive),
        other => Err(format!(
            "unknown predictor {other:?}: use linear-slope, seasonal or reactive"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_day_accepts_suffix() {
        assert_eq!(parse_per_day("2000000/day"), Ok(2_000_000.0));
        assert_eq!(parse_per_day("2_000_000"), Ok(2_000_000.0));
        assert!(parse_per_day("-1/day").is_err());
        assert!(parse_per_day("lots").is_err());
    }

    #[test]
    fn predictor_names_parse() {
        assert_eq!(parse_predictor("seasonal"), Ok(Predictor::Seasonal));
        assert!(parse_predictor("arima").is_err());
    }
}
