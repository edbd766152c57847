//! `steward simulate` on the NASA trace at 2 million requests a day with a 6-minute startup:
//! the time to simulate each predictor over the 28-day trace. The capacity figures it
//! reaches are printed once before the timing starts; BENCHMARKS.md records both.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use steward::autoscale::Autoscaler;
use steward::autoscale::source::parse_trace;
use steward::sim::simulate;
use steward::spec::{Duration, Predictor, WorkerPool};

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

criterion_group!(benches, bench_simulate);
criterion_main!(benches);
