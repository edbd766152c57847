//! `steward simulate`: replays a traffic trace against a pool's sizing policy, offline.

use std::path::{Path, PathBuf};

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::{CliError, CliResult, output};
use crate::autoscale::source::parse_trace;
use crate::sim::simulate::{self, Report, RunResult, chart};
use crate::sim::traces::{NASA_TRACE, NASA_TRACE_NAME};
use crate::spec::{self, Document, Predictor, WorkerPool};

/// Replay a traffic trace against a pool's sizing policy and compare predictors with the
/// oracle.
///
/// Exit status: 0 when the report and chart were written, 1 when writing them failed, 2 for
/// an invalid pool file, trace or option.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CSV trace with a `timestamp,requests` header and one row per minute. Default: the NASA
    /// Kennedy Space Center trace of July 1995, built into the binary.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// File with exactly one WorkerPool (YAML or JSON) whose `spec.autoscaling` and
    /// `spec.workers` are simulated. It is checked as `steward validate` checks it. Its
    /// `predictor` and `metric` are not used: the run compares `--predictors` on `--trace`.
    #[arg(long)]
    pub pool: PathBuf,
    /// Rescale the trace, `--trace` included, to this many requests per day, such as
    /// `2000000/day` (or `2000000`). Each minute's rate becomes the trace's 15-minute centred
    /// mean, scaled, and its count a Poisson draw, so the noise is that of the larger service.
    /// `recorded` replays the trace as recorded. The default, 2,000,000 a day, is the volume of the service the pools were sized for; at the NASA trace's own
    /// volume every predictor needs the minimum and they all equal the oracle.
    #[arg(long, value_parser = parse_scale, default_value = "2000000/day")]
    pub scale_to: Scale,
    /// Seed of the Poisson draws for `--scale-to`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Predictors to compare, separated by commas, each at most once.
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

/// The traffic volume to replay: the trace as recorded, or rescaled to requests per day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Recorded,
    PerDay(f64),
}

/// Runs the simulation, prints the table and writes the report and chart.
pub async fn run(args: Args) -> CliResult {
    check_predictors(&args.predictors)?;
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

    let (trace_path, text) = match &args.trace {
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the trace {name}"))
                .map_err(CliError::usage)?;
            (name, text)
        }
        None => (NASA_TRACE_NAME.to_owned(), NASA_TRACE.to_owned()),
    };
    let mut trace = parse_trace(&trace_path, &text).map_err(CliError::usage)?;
    simulate::check_trace(&trace).map_err(CliError::usage)?;
    let scaled_requests_per_day = match args.scale_to {
        Scale::Recorded => None,
        Scale::PerDay(per_day) => {
            trace = simulate::rescale(&trace, per_day, args.seed).map_err(CliError::usage)?;
            eprintln!(
                "note: the trace is rescaled to {per_day} requests a day with seed {}; \
                 --scale-to recorded replays it as recorded",
                args.seed
            );
            Some(per_day)
        }
    };
    let history_minutes = (autoscaling.lookback.as_secs() + autoscaling.interval.as_secs()) / 60;
    if (trace.len() as u64) < history_minutes {
        eprintln!(
            "warning: the trace has {} minutes, fewer than lookback + interval ({history_minutes} \
             minutes), so the predictors decide on little history",
            trace.len()
        );
    }

    // Fail before the simulation, not after it, when the results cannot be written.
    std::fs::create_dir_all(&args.output)
        .with_context(|| {
            format!(
                "cannot create the output directory {}",
                args.output.display()
            )
        })
        .map_err(CliError::failure)?;

    let (oracle, runs) =
        simulate::compare(&autoscaling, pool.spec.workers, &trace, &args.predictors)
            .map_err(CliError::usage)?;

    let cycle_oracle = simulate::cycle_oracle_worker_hours(
        &trace,
        autoscaling.capacity_per_worker,
        simulate::secs(autoscaling.startup_time.as_secs()),
        simulate::secs(autoscaling.interval.as_secs()),
        pool.spec.workers,
    )
    .map_err(CliError::usage)?;

    if oracle.underprovisioned_minutes > 0 {
        eprintln!(
            "warning: in {} minutes the demand exceeds workers.max ({}) x capacityPerWorker \
             ({}); every run, the oracle included, counts them as under-provisioned",
            oracle.underprovisioned_minutes, pool.spec.workers.max, autoscaling.capacity_per_worker
        );
    }
    output::print(table(&oracle, &runs))?;
    output::println(format_args!(
        "oracle held for whole {} cycles: {cycle_oracle:.1} worker-hours ({:.3} x oracle), the \
         least a predictor with this cycle pays without a shortfall",
        autoscaling.interval,
        cycle_oracle / oracle.worker_hours
    ))?;
    for run in &runs {
        output::println(format_args!(
            "{}: simulated in {:.1} ms",
            run.predictor,
            run.elapsed.as_secs_f64() * 1000.0
        ))?;
    }

    let report = Report {
        trace: trace_path.clone(),
        scaled_requests_per_day,
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

    output::println(format_args!(
        "wrote {} and {}",
        report_path.display(),
        chart_path.display()
    ))?;
    Ok(())
}

/// Loads the pool file with the checks of `steward validate` and returns its one WorkerPool.
/// Override documents in the file are ignored.
fn load_pool(path: &Path) -> Result<WorkerPool, CliError> {
    let documents = match spec::load_paths(&[path.to_path_buf()]) {
        Ok(documents) => documents,
        Err(report) => {
            for error in &report.errors {
                eprintln!("{error}");
            }
            let count = report.errors.len();
            return Err(CliError::usage(anyhow::anyhow!(
                "{count} error{} found in the pool file {}",
                if count == 1 { "" } else { "s" },
                path.display()
            )));
        }
    };

    let mut pools: Vec<WorkerPool> = documents
        .into_iter()
        .filter_map(|loaded| match loaded.document {
            Document::WorkerPool(pool) => Some(pool),
            Document::Override(_) => None,
        })
        .collect();
    match pools.len() {
        1 => Ok(pools.remove(0)),
        0 => Err(CliError::usage(anyhow::anyhow!(
            "{} contains no WorkerPool; --pool takes a file with one WorkerPool",
            path.display()
        ))),
        count => {
            let names: Vec<&str> = pools.iter().map(|p| p.metadata.name.as_str()).collect();
            Err(CliError::usage(anyhow::anyhow!(
                "{} contains {count} WorkerPools ({}); --pool takes one pool, so put the pool \
                 to simulate in a file of its own",
                path.display(),
                names.join(", ")
            )))
        }
    }
}

/// Rejects a predictor named twice, which would simulate it twice under one name.
fn check_predictors(predictors: &[Predictor]) -> Result<(), CliError> {
    for (index, predictor) in predictors.iter().enumerate() {
        if predictors[..index].contains(predictor) {
            return Err(CliError::usage(anyhow::anyhow!(
                "--predictors names {} twice; list each predictor at most once",
                simulate::predictor_name(*predictor)
            )));
        }
    }
    Ok(())
}

/// Formats the comparison table, ending with a newline.
fn table(oracle: &RunResult, runs: &[RunResult]) -> String {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "predictor",
        "worker-hours",
        "× oracle",
        "under-provisioned minutes",
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
    format!("{table}\n")
}

/// Parses `recorded`, or `2000000/day` or `2000000` as requests per day.
fn parse_scale(text: &str) -> Result<Scale, String> {
    if text.trim() == "recorded" {
        return Ok(Scale::Recorded);
    }
    parse_per_day(text)
        .map(Scale::PerDay)
        .map_err(|error| format!("{error}, or recorded"))
}

/// Parses `2000000/day` or `2000000` as requests per day.
pub(crate) fn parse_per_day(text: &str) -> Result<f64, String> {
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
    fn scale_accepts_recorded() {
        assert_eq!(parse_scale("recorded"), Ok(Scale::Recorded));
        assert_eq!(parse_scale("5/day"), Ok(Scale::PerDay(5.0)));
    }

    #[test]
    fn duplicate_predictors_rejected() {
        let error = check_predictors(&[
            Predictor::Seasonal,
            Predictor::Reactive,
            Predictor::Seasonal,
        ])
        .expect_err("a duplicate is rejected");
        assert_eq!(error.code, 2);
        assert!(
            error.error.to_string().contains("seasonal twice"),
            "{}",
            error.error
        );
        assert!(check_predictors(&[Predictor::Seasonal, Predictor::Reactive]).is_ok());
    }

    #[test]
    fn predictor_names_parse() {
        assert_eq!(parse_predictor("seasonal"), Ok(Predictor::Seasonal));
        assert!(parse_predictor("arima").is_err());
    }
}
