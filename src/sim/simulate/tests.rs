use super::*;
use crate::spec::{Autoscaling, AutoscalingMode, Duration, Emergency, MetricSource, ScaleDown};

fn spec(emergency: bool) -> Autoscaling {
    Autoscaling {
        interval: Duration::from_mins(20),
        metric: MetricSource::Csv {
            path: "trace.csv".to_owned(),
        },
        predictor: Predictor::Reactive,
        lookback: Duration::from_mins(60),
        capacity_per_worker: 10.0,
        headroom: 0.0,
        startup_time: Duration::from_mins(6),
        scale_down: ScaleDown {
            max_step: 2,
            stabilization: Duration::from_mins(40),
        },
        emergency: Emergency {
            enabled: emergency,
            check_interval: Duration::from_mins(1),
        },
        fallback: None,
        fallback_after: 3,
        mode: AutoscalingMode::Act,
    }
}

const BOUNDS: WorkerBounds = WorkerBounds { min: 1, max: 100 };

/// Builds one hour at 10 rps, then one hour at 100 rps.
fn step_trace() -> Vec<Sample> {
    (0..120)
        .map(|i| Sample::new(i * 60, if i < 60 { 10.0 } else { 100.0 }))
        .collect()
}

#[test]
fn oracle_starts_workers_ahead_of_demand() {
    let trace: Vec<Sample> = [0.0, 25.0, 5.0, 5.0]
        .iter()
        .enumerate()
        .map(|(i, &rps)| Sample::new(i as i64 * 60, rps))
        .collect();
    let bounds = WorkerBounds { min: 0, max: 10 };
    let run = oracle(&trace, 10.0, 60, bounds).expect("min <= max");
    // Needed [0, 3, 1, 1]; with one minute of startup the 3 workers run from minute 0.
    assert_eq!(run.timeline.total, vec![3, 3, 1, 1]);
    assert!((run.worker_hours - 8.0 / 60.0).abs() < 1e-12);
    assert_eq!(run.scaling_actions, 1);
    assert_eq!(run.underprovisioned_minutes, 0);
}

#[test]
fn emergency_bounds_shortfall_to_startup() {
    let a = Autoscaler::new(&spec(true), BOUNDS).expect("valid");
    let run = simulate(&a, BOUNDS, &step_trace()).expect("min <= max");
    // Minute 60 is seen at minute 61, and the new workers are ready at minute 67. The step's
    // slope projects far above 100 requests per second, so the check adds the most the cap
    // allows: 100 + 50 % = 150, or 15 workers. The scale-down to 10 waits for the 40-minute
    // stabilization, past the end of the trace: 61 minutes of 1 worker, 59 of 15.
    assert_eq!(run.underprovisioned_minutes, 7);
    assert_eq!(run.peak_shortfall_workers, 9);
    assert_eq!(run.scaling_actions, 1);
    assert_eq!(run.timeline.total[61], 15);
    assert!(
        (run.worker_hours - 946.0 / 60.0).abs() < 1e-9,
        "{}",
        run.worker_hours
    );
}

#[test]
fn without_emergency_waits_for_cycle() {
    let a = Autoscaler::new(&spec(false), BOUNDS).expect("valid");
    let run = simulate(&a, BOUNDS, &step_trace()).expect("min <= max");
    // The cycle at minute 80 reads the jump; workers are ready at minute 86.
    assert_eq!(run.underprovisioned_minutes, 26);
    assert_eq!(run.scaling_actions, 1);
}

#[test]
fn scale_down_is_stabilized_and_stepped() {
    // One hour at 100 rps, then 10 rps: the count falls by at most 2 per cycle, and only
    // once the high recommendations are out of the 40-minute window.
    let trace: Vec<Sample> = (0..240)
        .map(|i| Sample::new(i * 60, if i < 60 { 100.0 } else { 10.0 }))
        .collect();
    let a = Autoscaler::new(&spec(true), BOUNDS).expect("valid");
    let run = simulate(&a, BOUNDS, &trace).expect("min <= max");
    assert_eq!(run.timeline.total[0], 10);
    assert_eq!(
        run.timeline.total[99], 10,
        "recommendation at minute 60 still in window"
    );
    assert_eq!(run.timeline.total[100], 8);
    assert_eq!(run.timeline.total[120], 6);
    assert_eq!(run.timeline.total[140], 4);
    assert_eq!(run.underprovisioned_minutes, 0);
}

#[test]
fn rescale_hits_daily_total_and_is_seeded() {
    let trace: Vec<Sample> = (0..2880)
        .map(|i| Sample::new(i * 60, 1.0 + (i % 7) as f64))
        .collect();
    let a = rescale(&trace, 1_000_000.0, 7).expect("valid");
    let b = rescale(&trace, 1_000_000.0, 7).expect("valid");
    let c = rescale(&trace, 1_000_000.0, 8).expect("valid");
    assert_eq!(a, b);
    assert_ne!(a, c);
    let per_day: f64 = a.iter().map(|s| s.rps * 60.0).sum::<f64>() / 2.0;
    assert!((per_day - 1_000_000.0).abs() < 5_000.0, "per day {per_day}");
    assert!(rescale(&trace, 0.0, 1).is_err());
}

#[test]
fn rescale_uses_larger_service_noise() {
    // The recorded service runs at 1 request per second on average, but its minutes cycle
    // through 0, 1 and 2. A hundred times larger, its minutes average 6,000 requests with a
    // Poisson spread of about 77, so none strays 10 % from 100 per second. Multiplying the
    // recorded minutes would give 0, 100 and 200. The ends, where the window is cut, are
    // left out.
    let trace: Vec<Sample> = (0..2880)
        .map(|i| Sample::new(i * 60, (i % 3) as f64))
        .collect();
    let scaled = rescale(&trace, 8_640_000.0, 3).expect("valid");

    assert_eq!(scaled.len(), trace.len());
    assert!(scaled.iter().zip(&trace).all(|(a, b)| a.t == b.t));
    let middle = &scaled[RATE_WINDOW_MINUTES..scaled.len() - RATE_WINDOW_MINUTES];
    let strays: Vec<_> = middle
        .iter()
        .filter(|s| (s.rps - 100.0).abs() > 10.0)
        .collect();
    assert!(strays.is_empty(), "minutes far from 100/s: {strays:?}");
    let spread = middle
        .iter()
        .map(|s| s.rps)
        .fold(0.0_f64, |acc, rps| acc.max((rps - 100.0).abs()));
    assert!(
        spread > 1.0,
        "the counts are drawn, not set: spread {spread}"
    );
}

#[test]
fn rescale_total_counts_the_ends() {
    // A busy first minute weighs less in the centred means than in the recorded total, so a
    // factor from the recorded total would come out 11 % short of the requested volume.
    let trace: Vec<Sample> = (0..1440)
        .map(|i| Sample::new(i * 60, if i == 0 { 1000.0 } else { 1.0 }))
        .collect();
    let scaled = rescale(&trace, 100_000_000.0, 5).expect("valid");
    let total: f64 = scaled.iter().map(|s| s.rps * 60.0).sum();
    assert!(
        (total - 100_000_000.0).abs() < 100_000.0,
        "total {total}, expected 1e8"
    );
}

#[test]
fn check_trace_rejects_bad_rates() {
    for rps in [-1.0, f64::NAN, f64::INFINITY] {
        let trace = vec![Sample::new(0, 1.0), Sample::new(60, rps)];
        assert!(
            matches!(
                check_trace(&trace),
                Err(SimError::InvalidRate { at: 60, .. })
            ),
            "rate {rps}"
        );
    }
}

#[test]
fn centred_means_cut_at_the_ends() {
    let trace: Vec<Sample> = [1.0, 2.0, 3.0, 4.0, 5.0]
        .iter()
        .enumerate()
        .map(|(i, &rps)| Sample::new(i as i64 * 60, rps))
        .collect();
    // Width 3 takes one sample before and one after, so the ends average two.
    assert_eq!(centred_means(&trace, 3), vec![1.5, 2.0, 3.0, 4.0, 4.5]);
    assert_eq!(centred_means(&trace, 1), vec![1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn check_trace_rejects_gaps() {
    let trace = vec![Sample::new(0, 1.0), Sample::new(120, 1.0)];
    let error = check_trace(&trace).expect_err("a minute is missing");
    assert!(matches!(error, SimError::UnevenTrace { at: 120 }));
    let message = error.to_string();
    assert!(message.contains("1970-01-01T00:02:00Z"), "{message}");
    assert!(message.contains("fill a gap with rows of 0"), "{message}");
    assert!(matches!(check_trace(&[]), Err(SimError::EmptyTrace)));
    assert!(check_trace(&step_trace()).is_ok());
}

#[test]
fn oracle_counts_demand_above_max() {
    // Needed [1, 5, 5, 2] with max 3: minutes 1 and 2 fall short by 2 workers each.
    let trace: Vec<Sample> = [10.0, 50.0, 50.0, 20.0]
        .iter()
        .enumerate()
        .map(|(i, &rps)| Sample::new(i as i64 * 60, rps))
        .collect();
    let bounds = WorkerBounds { min: 0, max: 3 };
    let run = oracle(&trace, 10.0, 0, bounds).expect("min <= max");
    assert_eq!(run.timeline.total, vec![1, 3, 3, 2]);
    assert_eq!(run.underprovisioned_minutes, 2);
    assert_eq!(run.peak_shortfall_workers, 2);
    assert!((run.underprovisioned_fraction - 0.5).abs() < 1e-12);
}

#[test]
fn min_above_max_is_an_error() {
    let trace = step_trace();
    let bounds = WorkerBounds { min: 5, max: 2 };
    let oracle_error = oracle(&trace, 10.0, 60, bounds).err();
    assert!(
        matches!(oracle_error, Some(SimError::Bounds { min: 5, max: 2 })),
        "{oracle_error:?}"
    );
    let autoscaler = Autoscaler::new(&spec(false), BOUNDS).expect("valid");
    let simulate_error = simulate(&autoscaler, bounds, &trace).err();
    assert!(
        matches!(simulate_error, Some(SimError::Bounds { min: 5, max: 2 })),
        "{simulate_error:?}"
    );
    let compare_error = compare(&spec(false), bounds, &trace, &[Predictor::Reactive]).err();
    assert!(
        matches!(compare_error, Some(SimError::Bounds { .. })),
        "{compare_error:?}"
    );
}

#[test]
fn cycle_oracle_holds_each_cycle_peak() {
    let trace = |rps: &[f64]| -> Vec<Sample> {
        rps.iter()
            .enumerate()
            .map(|(i, &r)| Sample::new(i as i64 * 60, r))
            .collect()
    };
    let bounds = WorkerBounds { min: 1, max: 10 };

    // Needed [1, 3, 1, 1 | 2, 1, 1, 1] in 4-minute cycles: 3 then 2 workers. The lower
    // count of the second cycle needs no early start: 4 × 3 + 4 × 2 = 20 worker-minutes.
    let falling = trace(&[10.0, 30.0, 10.0, 10.0, 20.0, 10.0, 10.0, 10.0]);
    let hours = cycle_oracle_worker_hours(&falling, 10.0, 60, 240, bounds).expect("min <= max");
    assert!((hours - 20.0 / 60.0).abs() < 1e-12, "{hours}");

    // Needed [1, 1, 1, 1 | 4, 1, 1, 1]: the 4 workers start one minute before their cycle,
    // so 3 × 1 + 4 + 4 × 4 = 23 worker-minutes.
    let rising = trace(&[10.0, 10.0, 10.0, 10.0, 40.0, 10.0, 10.0, 10.0]);
    let hours = cycle_oracle_worker_hours(&rising, 10.0, 60, 240, bounds).expect("min <= max");
    assert!((hours - 23.0 / 60.0).abs() < 1e-12, "{hours}");

    // A one-minute cycle with no startup is the per-minute need itself.
    let hours = cycle_oracle_worker_hours(&rising, 10.0, 0, 60, bounds).expect("min <= max");
    assert!((hours - 11.0 / 60.0).abs() < 1e-12, "{hours}");
}
