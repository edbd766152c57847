//! `steward simulate` on the NASA trace at 2 million requests a day with a 6-minute startup:
//! the time to simulate each predictor over the 28-day trace. The capacity figures it
//! reaches are printed once before the timing starts; BENCHMARKS.md records both.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use steward::autoscale::source::parse_trace;
use steward::autoscale::{Autoscaler, Sample};
use steward::sim::simulate;
use steward::spec::{Duration, Predictor, WorkerBounds, WorkerPool};

const TRACE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/traces/nasa_ksc_jul1995_1min.csv"
);
const POOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/simulate-pool.yaml");

fn bench_simulate(c: &mut Criterion) {
    let pool: WorkerPool =
        serde_saphyr::from_str(&std::fs::read_to_string(POOL).expect("read the bench pool"))
            .expect("the bench pool parses");
    let mut spec = pool
        .spec
        .autoscaling
        .expect("the bench pool has autoscaling");
    spec.startup_time = Duration::from_mins(6);
    let bounds = pool.spec.workers;

    let text = std::fs::read_to_string(TRACE).expect("read the NASA trace");
    let trace = parse_trace(TRACE, &text).expect("the NASA trace parses");
    let trace = simulate::rescale(&trace, 2_000_000.0, 1).expect("rescale");

    let predictors = [
        Predictor::LinearSlope,
        Predictor::Seasonal,
        Predictor::Reactive,
    ];
    let (oracle, runs) =
        simulate::compare(&spec, bounds, &trace, &predictors).expect("valid policy");
    eprintln!("oracle: {:.1} worker-hours", oracle.worker_hours);
    for run in &runs {
        eprintln!(
            "{}: {:.1} worker-hours ({:.3}x oracle), {} under-provisioned minutes ({:.3} %), \
             max shortfall {} workers, {} scaling actions",
            run.predictor,
            run.worker_hours,
            run.ratio_to_oracle,
            run.underprovisioned_minutes,
            run.underprovisioned_fraction * 100.0,
            run.peak_shortfall_workers,
            run.scaling_actions
        );
    }

    let cycle_oracle = simulate::cycle_oracle_worker_hours(
        &trace,
        spec.capacity_per_worker,
        360,
        simulate::secs(spec.interval.as_secs()),
        bounds,
    )
    .expect("valid bounds");
    eprintln!(
        "oracle held for whole {} cycles: {cycle_oracle:.1} worker-hours ({:.3}x oracle)",
        spec.interval,
        cycle_oracle / oracle.worker_hours
    );
    let (margin, hours, share) = known_mean_bound(&trace, spec.capacity_per_worker, bounds);
    eprintln!(
        "known 5-minute mean, resized every minute: margin {margin:.1}, {hours:.1} worker-hours \
         ({:.3}x oracle), {:.3} % under-provisioned",
        hours / oracle.worker_hours,
        share * 100.0
    );

    let cycle = usize::try_from(spec.interval.as_secs() / 60).unwrap_or(20);
    let startup = usize::try_from(spec.startup_time.as_secs() / 60).unwrap_or(6);
    let (cycles, surges, unforeseen, minutes) = surges(&trace, cycle, startup);
    eprintln!(
        "cycles with a minute above twice the mean of the 15 minutes before them: {surges} of \
         {cycles}, {unforeseen} of them without such a minute at that time a day and a week \
         earlier; {minutes} minutes of those are above twice the mean before new workers could \
         be ready"
    );

    let mut group = c.benchmark_group("simulate_nasa_2m_per_day");
    group.sample_size(20);
    for predictor in predictors {
        let mut spec = spec.clone();
        spec.predictor = predictor;
        let autoscaler = Autoscaler::new(&spec, bounds).expect("valid policy");
        group.bench_function(simulate::predictor_name(predictor), |b| {
            b.iter(|| {
                simulate::simulate(black_box(&autoscaler), bounds, black_box(&trace))
                    .expect("valid bounds")
            });
        });
    }
    group.bench_function("oracle", |b| {
        b.iter(|| {
            simulate::oracle(black_box(&trace), spec.capacity_per_worker, 360, bounds)
                .expect("valid bounds")
        });
    });
    group.finish();
}

/// Measures what the trace's per-minute noise alone costs. The policy is given each minute's
/// centred 5-minute mean demand (the future included), resizes every minute with no startup
/// time, and runs `ceil(mean × (1 + margin) / capacity)` workers. Returns the least margin,
/// in steps of 0.1, whose under-provisioned share is at most 0.1 %, with its worker-hours and
/// that share. No predictor is given more than this policy, so its cost ratio is an estimate
/// of the lowest any predictor reaches at that share.
fn known_mean_bound(trace: &[Sample], capacity: f64, bounds: WorkerBounds) -> (f64, f64, f64) {
    const HALF_WIDTH: usize = 2;

    let n = trace.len();
    let mut prefix = vec![0.0; n + 1];
    for (i, sample) in trace.iter().enumerate() {
        prefix[i + 1] = prefix[i] + sample.rps;
    }
    let mean = |i: usize| {
        let (start, end) = (i.saturating_sub(HALF_WIDTH), (i + HALF_WIDTH + 1).min(n));
        (prefix[end] - prefix[start]) / (end - start) as f64
    };

    let mut result = (0.0, 0.0, 1.0);
    for step in 0..=30 {
        let margin = f64::from(step) / 10.0;
        let mut worker_minutes = 0u64;
        let mut short = 0usize;
        for (i, sample) in trace.iter().enumerate() {
            let running =
                ((mean(i) * (1.0 + margin) / capacity).ceil() as u32).clamp(bounds.min, bounds.max);
            let needed = (sample.rps / capacity).ceil() as u32;
            short += usize::from(needed > running);
            worker_minutes += u64::from(running);
        }
        result = (
            margin,
            worker_minutes as f64 / 60.0,
            short as f64 / n as f64,
        );
        if result.2 <= 0.001 {
            break;
        }
    }
    result
}

/// Counts the surges no history foresees. Looks at every cycle the simulation runs (minutes
/// `0, cycle, 2 × cycle, …` of the trace) from the first with a week of history, and compares
/// each of its `cycle` minutes with twice the mean of the 15 minutes before it starts. A cycle
/// with a minute above that has a surge, and the surge is unforeseen when neither the same
/// cycle a day nor a week earlier had one. Returns the cycles looked at, the surges, the
/// unforeseen surges, and the minutes above twice the mean within `startup` minutes of an
/// unforeseen surge's first one. A policy that held less than twice the recent rate at those
/// cycles is short in each of these minutes, unless an earlier rise had already made it start
/// workers: those it starts when the surge shows are ready only `startup` minutes later.
fn surges(trace: &[Sample], cycle: usize, startup: usize) -> (usize, usize, usize, usize) {
    const LEVEL: usize = 15;
    const DAY: usize = 1440;
    const WEEK: usize = 7 * DAY;

    let cycle = cycle.max(1);
    let level_before = |start: usize| {
        trace[start - LEVEL..start]
            .iter()
            .map(|s| s.rps)
            .sum::<f64>()
            / LEVEL as f64
    };
    let threshold = |start: usize| 2.0 * level_before(start);
    // The first minute of the cycle from `start` above twice the mean before it.
    let first_above = |start: usize| {
        let threshold = threshold(start);
        (start..start + cycle).find(|&i| trace[i].rps > threshold)
    };

    let (mut cycles, mut surges, mut unforeseen) = (0, 0, 0);
    let mut short = vec![false; trace.len()];
    let mut start = (WEEK + LEVEL).div_ceil(cycle) * cycle;
    while start + cycle <= trace.len() {
        cycles += 1;
        if let Some(first) = first_above(start) {
            surges += 1;
            if first_above(start - DAY).is_none() && first_above(start - WEEK).is_none() {
                unforeseen += 1;
                let threshold = threshold(start);
                let end = (first + startup + 1).min(trace.len());
                for i in (first..end).filter(|&i| trace[i].rps > threshold) {
                    short[i] = true;
                }
            }
        }
        start += cycle;
    }
    let minutes = short.iter().filter(|&&s| s).count();
    (cycles, surges, unforeseen, minutes)
}

criterion_group!(benches, bench_simulate);
criterion_main!(benches);
