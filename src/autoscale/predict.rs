//! Traffic predictors: pure functions from a request-rate history to the peak rate expected
//! over the coming horizon (the next cycle plus the workers' startup time).
//!
//! Every predictor reads only a bounded window of the history, located by binary search, so
//! one prediction costs O(log n + window) and a month-long replay stays cheap.

use crate::spec::Predictor;

use super::Sample;

/// Seconds in a day, the first seasonal lag.
pub const DAY: i64 = 86_400;
/// Seconds in a week, the second seasonal lag.
pub const WEEK: i64 = 7 * DAY;

/// Limits that keep the linear-slope extrapolation from running away.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSlopeParams {
    /// Fraction of the fitted slope that is extrapolated (1.0 = the full line).
    pub damping: f64,
    /// The extrapolated growth over one horizon is at most this fraction of the current level,
    /// so a metric that lags the real traffic cannot build a staircase of scale-ups.
    pub max_growth: f64,
    /// Standard deviations of the fit's residuals added to the peak, to cover per-minute
    /// noise around the line.
    pub noise_sigmas: f64,
}

/// Defaults measured with `steward simulate` on the NASA trace at 2 million requests a day
/// (see BENCHMARKS.md). With a `headroom` of 0.15, 3 sigmas kept under-provisioned minutes
/// under 0.1 % on five seeds. 2 or 4 sigmas with another headroom landed on the same curve.
impl Default for LinearSlopeParams {
    fn default() -> Self {
        Self {
            damping: 0.5,
            max_growth: 0.5,
            noise_sigmas: 3.0,
        }
    }
}

/// Everything a predictor needs besides the history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictParams {
    pub predictor: Predictor,
    /// Length of the recent window, in seconds: the linear-slope fit and the seasonal level.
    pub lookback_secs: i64,
    /// Seconds ahead the prediction must cover: the cycle interval plus the startup time.
    pub horizon_secs: i64,
    pub linear: LinearSlopeParams,
}

/// A predicted peak and the predictor that produced it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prediction {
    /// Highest request rate expected over the horizon, in requests per second; never negative.
    pub peak_rps: f64,
    /// The predictor actually used; `seasonal` uses `linear-slope` until it has a day of
    /// history.
    pub predictor: Predictor,
}

/// Predicts the peak request rate over `[now, now + horizon]` from `history`.
///
/// `history` must be sorted by time. Samples after `now` and non-finite samples are ignored.
/// Returns `None` when the recent window contains no usable sample.
pub fn predict_peak(params: &PredictParams, history: &[Sample], now: i64) -> Option<Prediction> {
    let past = &history[..history.partition_point(|s| s.t <= now)];
    match params.predictor {
        Predictor::Reactive => reactive(past).map(|peak_rps| Prediction {
            peak_rps,
            predictor: Predictor::Reactive,
        }),
        Predictor::LinearSlope => linear_slope(params, past, now).map(|peak_rps| Prediction {
            peak_rps,
            predictor: Predictor::LinearSlope,
        }),
        Predictor::Seasonal => seasonal(params, past, now),
    }
}

/// Returns the newest finite sample's rate.
fn reactive(past: &[Sample]) -> Option<f64> {
    past.iter()
        .rev()
        .find(|s| s.rps.is_finite())
        .map(|s| s.rps.max(0.0))
}

/// Samples with `from < t <= to`.
fn window(past: &[Sample], from: i64, to: i64) -> &[Sample] {
    let start = past.partition_point(|s| s.t <= from);
    let end = past.partition_point(|s| s.t <= to);
    &past[start..end.max(start)]
}

/// Returns the growth, in requests per second, that the recent slope adds over `horizon_secs`.
///
/// The slope is that of the least-squares line over the samples of the last `window_secs`
/// (`now - window_secs < t <= now`), or over the newest half of them when that is lower and
/// has two samples. A ramp rises in both, while a step that has levelled off is flat in the
/// newest half, so only its first minutes project past it. A falling or flat line adds
/// nothing. Returns `None` when the window contains fewer than two finite samples, or either
/// length is not positive.
pub fn recent_growth(
    history: &[Sample],
    now: i64,
    window_secs: i64,
    horizon_secs: i64,
) -> Option<f64> {
    if window_secs <= 0 || horizon_secs <= 0 {
        return None;
    }
    let past = &history[..history.partition_point(|s| s.t <= now)];
    let samples = window(past, now - window_secs, now);
    if finite_count(samples) < 2 {
        return None;
    }

    let mut slope = fit_line(samples, now)?.slope;
    let newest = window(past, now - window_secs / 2, now);
    if finite_count(newest) >= 2
        && let Some(fit) = fit_line(newest, now)
    {
        slope = slope.min(fit.slope);
    }
    Some(slope.max(0.0) * horizon_secs as f64)
}

fn finite_count(samples: &[Sample]) -> usize {
    samples.iter().filter(|s| s.rps.is_finite()).count()
}

/// Least-squares line over the lookback window, extrapolated over the horizon.
///
/// The peak of a line over an interval sits at one of its ends: the fitted level now when the
/// slope is negative, the damped and capped extrapolation otherwise. The residuals' standard
/// deviation times `noise_sigmas` is added on top.
fn linear_slope(params: &PredictParams, past: &[Sample], now: i64) -> Option<f64> {
    let samples = window(past, now - params.lookback_secs, now);
    let fit = fit_line(samples, now)?;

    let raw_growth = fit.slope * params.horizon_secs as f64 * params.linear.damping;
    let level = fit.level.max(0.0);
    let growth = raw_growth.clamp(0.0, params.linear.max_growth * level.max(fit.mean));

    let peak = level + growth + params.linear.noise_sigmas * fit.residual_sd;
    Some(peak.max(0.0))
}

/// A least-squares line with x measured in seconds from `now`.
struct LineFit {
    /// Fitted value at `now`.
    level: f64,
    /// Requests per second gained per second.
    slope: f64,
    mean: f64,
    residual_sd: f64,
}

fn fit_line(samples: &[Sample], now: i64) -> Option<LineFit> {
    let finite = || samples.iter().filter(|s| s.rps.is_finite());
    let n = finite().count();
    if n == 0 {
        return None;
    }

    let n_f = n as f64;
    let mean_x = finite().map(|s| (s.t - now) as f64).sum::<f64>() / n_f;
    let mean_y = finite().map(|s| s.rps).sum::<f64>() / n_f;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for s in finite() {
        let dx = (s.t - now) as f64 - mean_x;
        sxx += dx * dx;
        sxy += dx * (s.rps - mean_y);
    }

    // One sample, or all at one instant: a flat line through the mean.
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let level = mean_y - slope * mean_x;

    let residual_ss: f64 = finite()
        .map(|s| {
            let fitted = level + slope * (s.t - now) as f64;
            (s.rps - fitted).powi(2)
        })
        .sum();
    let residual_sd = if n > 2 {
        (residual_ss / (n_f - 2.0)).sqrt()
    } else {
        0.0
    };

    Some(LineFit {
        level,
        slope,
        mean: mean_y,
        residual_sd,
    })
}

/// Predicts from the same horizon one day and one week earlier, scaled by how the recent level
/// compares with the level before it then, and at most `max_growth` above the recent level.
/// Never below the linear-slope peak, so a break in the pattern (a launch-day spike) is still
/// followed. Uses linear-slope alone until a day of history exists.
fn seasonal(params: &PredictParams, past: &[Sample], now: i64) -> Option<Prediction> {
    let linear = linear_slope(params, past, now)?;
    let fallback = Some(Prediction {
        peak_rps: linear,
        predictor: Predictor::LinearSlope,
    });
    let Some(oldest) = past.first() else {
        return fallback;
    };

    let level_now = mean(window(past, now - params.lookback_secs, now));
    let estimates: Vec<f64> = [DAY, WEEK]
        .into_iter()
        .filter(|lag| oldest.t <= now - lag - params.lookback_secs)
        .filter_map(|lag| seasonal_estimate(params, past, now - lag, level_now))
        .collect();
    if estimates.is_empty() {
        return fallback;
    }

    // NOTE: this mix was chosen on the NASA trace only. The mean of the two lags, floored by
    // the linear-slope peak with its noise margin, covered more minutes per worker-hour than
    // the larger lag or a floor without the margin. Other traffic may favour another mix.
    let estimate = estimates.iter().sum::<f64>() / estimates.len() as f64;

    // A one-off step inside a day-old horizon would otherwise come back scaled by the level
    // it already reached: 10 then 45 rps yesterday, with today at 45, predicts 4 × 45. So
    // the season may add at most `max_growth` of the recent level, as the line may.
    let estimate = match level_now {
        Some(level) => estimate.min(level * (1.0 + params.linear.max_growth)),
        None => estimate,
    };
    Some(Prediction {
        peak_rps: estimate.max(linear),
        predictor: Predictor::Seasonal,
    })
}

/// Returns the peak over `[then, then + horizon]`, scaled by `level_now` over the level before `then`.
fn seasonal_estimate(
    params: &PredictParams,
    past: &[Sample],
    then: i64,
    level_now: Option<f64>,
) -> Option<f64> {
    let ahead = window(past, then, then + params.horizon_secs);
    let peak_then = ahead
        .iter()
        .map(|s| s.rps)
        .filter(|r| r.is_finite())
        .fold(None, |acc: Option<f64>, r| {
            Some(acc.map_or(r, |a| a.max(r)))
        })?;
    let level_then = mean(window(past, then - params.lookback_secs, then));

    // The ratio is bounded because a near-empty window a day ago (a gap in the log) would
    // otherwise multiply the estimate without limit.
    let ratio = match (level_now, level_then) {
        (Some(now), Some(then)) if then > 0.0 => (now / then).clamp(0.25, 4.0),
        _ => 1.0,
    };
    Some(peak_then * ratio)
}

fn mean(samples: &[Sample]) -> Option<f64> {
    let (sum, n) = samples
        .iter()
        .filter(|s| s.rps.is_finite())
        .fold((0.0, 0usize), |(sum, n), s| (sum + s.rps, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(predictor: Predictor) -> PredictParams {
        PredictParams {
            predictor,
            lookback_secs: 600,
            horizon_secs: 600,
            linear: LinearSlopeParams {
                damping: 1.0,
                max_growth: 10.0,
                noise_sigmas: 0.0,
            },
        }
    }

    fn series(start: i64, step: i64, values: &[f64]) -> Vec<Sample> {
        values
            .iter()
            .enumerate()
            .map(|(i, &rps)| Sample::new(start + i as i64 * step, rps))
            .collect()
    }

    #[test]
    fn reactive_returns_newest_rate() {
        let history = series(0, 60, &[5.0, 7.0, 3.0]);
        let p = predict_peak(&params(Predictor::Reactive), &history, 120).expect("has samples");
        assert_eq!(p.peak_rps, 3.0);
        assert_eq!(p.predictor, Predictor::Reactive);
    }

    #[test]
    fn reactive_ignores_future_and_nan() {
        let history = series(0, 60, &[5.0, f64::NAN, 9.0]);
        let p = predict_peak(&params(Predictor::Reactive), &history, 60).expect("has samples");
        assert_eq!(p.peak_rps, 5.0);
    }

    #[test]
    fn linear_slope_extrapolates_exact_line() {
        // rps = 10 + t/60 at t = 0, 60, ..., 600; now = 600 so the level is 20, the slope
        // 1/60 rps per second, and 600 s ahead the line reaches 30.
        let values: Vec<f64> = (0..=10).map(|i| 10.0 + i as f64).collect();
        let history = series(0, 60, &values);
        let mut p = params(Predictor::LinearSlope);
        p.lookback_secs = 601;
        let got = predict_peak(&p, &history, 600)
            .expect("has samples")
            .peak_rps;
        assert!((got - 30.0).abs() < 1e-9, "got {got}");
    }

    #[test]
    fn linear_slope_damps_and_caps_growth() {
        let values: Vec<f64> = (0..=10).map(|i| 10.0 + i as f64).collect();
        let history = series(0, 60, &values);
        let mut p = params(Predictor::LinearSlope);
        p.lookback_secs = 601;

        p.linear.damping = 0.5;
        let damped = predict_peak(&p, &history, 600)
            .expect("has samples")
            .peak_rps;
        assert!((damped - 25.0).abs() < 1e-9, "damped {damped}");

        // Growth capped at 20 % of the level 20: 4.
        p.linear.max_growth = 0.2;
        let capped = predict_peak(&p, &history, 600)
            .expect("has samples")
            .peak_rps;
        assert!((capped - 24.0).abs() < 1e-9, "capped {capped}");
    }

    #[test]
    fn linear_slope_falling_uses_level_and_never_negative() {
        // rps = 10 - t/60: level now (t = 600) is 0, the line ahead is negative.
        let values: Vec<f64> = (0..=10).map(|i| 10.0 - i as f64).collect();
        let history = series(0, 60, &values);
        let mut p = params(Predictor::LinearSlope);
        p.lookback_secs = 601;
        let got = predict_peak(&p, &history, 600)
            .expect("has samples")
            .peak_rps;
        assert!(got.abs() < 1e-9, "got {got}");
    }

    #[test]
    fn linear_slope_adds_residual_noise() {
        // Flat mean 10 with residuals ±2: residual sd = sqrt(4 * 4 / (4 - 2)) = sqrt(8).
        let history = series(0, 60, &[8.0, 12.0, 8.0, 12.0]);
        let mut p = params(Predictor::LinearSlope);
        p.lookback_secs = 1000;
        p.linear.noise_sigmas = 1.0;
        let got = predict_peak(&p, &history, 180)
            .expect("has samples")
            .peak_rps;
        let fit = fit_line(&history, 180).expect("has samples");
        let expected = fit.level + fit.slope.max(0.0) * 600.0 + fit.residual_sd;
        assert!(
            (got - expected).abs() < 1e-9,
            "got {got} expected {expected}"
        );
        assert!(fit.residual_sd > 2.0, "sd {}", fit.residual_sd);
    }

    #[test]
    fn linear_slope_empty_window_is_none() {
        let history = series(0, 60, &[1.0]);
        let got = predict_peak(&params(Predictor::LinearSlope), &history, 10_000);
        assert!(got.is_none());
    }

    #[test]
    fn recent_growth_follows_the_slope() {
        // 10, 12, 14, 16 rps one minute apart: 2 rps a minute, so 6 minutes add 12.
        let history = series(0, 60, &[10.0, 12.0, 14.0, 16.0]);
        let got = recent_growth(&history, 180, 360, 360).expect("four samples");
        assert!((got - 12.0).abs() < 1e-9, "got {got}");
    }

    #[test]
    fn recent_growth_reads_only_its_window() {
        // A steep fall long ago, then a slow rise of 1 rps a minute over the last 3 minutes.
        let history = series(0, 60, &[90.0, 50.0, 10.0, 10.0, 11.0, 12.0, 13.0]);
        let got = recent_growth(&history, 360, 180, 180).expect("three samples");
        assert!((got - 3.0).abs() < 1e-9, "got {got}");
    }

    #[test]
    fn recent_growth_stops_after_a_step() {
        // A step from 10 to 45 rps, then flat. The whole window rises, its newest half does
        // not, so the level the step reached is not projected further.
        let history = series(0, 60, &[10.0, 45.0, 45.0, 45.0, 45.0, 45.0]);
        assert_eq!(recent_growth(&history, 300, 360, 360), Some(0.0));

        // Right after the step the newest half rises too, so it is projected.
        let history = series(0, 60, &[10.0, 10.0, 10.0, 10.0, 10.0, 45.0]);
        let got = recent_growth(&history, 300, 360, 360).expect("six samples");
        assert!(got > 0.0, "got {got}");
    }

    #[test]
    fn recent_growth_of_a_fall_is_zero() {
        let history = series(0, 60, &[16.0, 14.0, 12.0, 10.0]);
        assert_eq!(recent_growth(&history, 180, 360, 360), Some(0.0));
    }

    #[test]
    fn recent_growth_needs_two_samples() {
        let history = series(0, 60, &[10.0, f64::NAN, 30.0]);
        assert_eq!(
            recent_growth(&history, 120, 90, 90),
            None,
            "one finite sample"
        );
        assert_eq!(recent_growth(&history, 120, 180, 0), None, "no horizon");
        assert_eq!(recent_growth(&history, 120, 0, 180), None, "no window");
        assert!(recent_growth(&history, 120, 180, 90).is_some());
    }

    #[test]
    fn seasonal_without_a_day_uses_linear_slope() {
        let history = series(0, 60, &[4.0; 30]);
        let p = predict_peak(&params(Predictor::Seasonal), &history, 29 * 60).expect("has data");
        assert_eq!(p.predictor, Predictor::LinearSlope);
        assert!((p.peak_rps - 4.0).abs() < 1e-9);
    }

    #[test]
    fn seasonal_provisions_yesterdays_ramp() {
        // Two days at one sample per 10 minutes. Flat 10 rps, except a ramp to 50 rps that
        // started one day before `now` + 300 s. Today is flat at 10 up to now, so the line
        // predicts 10 but yesterday's horizon peaked at 50 with the same level before it.
        let step = 600;
        let n = (2 * DAY / step) as usize;
        let mut values = vec![10.0; n];
        let now = DAY + DAY / 2;
        let ramp_index = ((now - DAY + 300) / step) as usize + 1;
        values[ramp_index] = 50.0;
        let history = series(0, step, &values);

        let got = predict_peak(&params(Predictor::Seasonal), &history, now).expect("has data");
        assert_eq!(got.predictor, Predictor::Seasonal);
        assert!((got.peak_rps - 50.0).abs() < 1e-9, "got {}", got.peak_rps);
    }

    #[test]
    fn seasonal_caps_a_repeated_step() {
        // Yesterday stepped from 10 to 45 rps inside the horizon. Today has run at 45 all
        // along: the ratio 4 would predict 180, the cap allows 45 × 1.5 = 67.5.
        let step = 600;
        let now = DAY + DAY / 2;
        let history: Vec<Sample> = (0..(2 * DAY / step))
            .map(|i| {
                let t = i * step;
                let rps = if t <= now - DAY { 10.0 } else { 45.0 };
                Sample::new(t, rps)
            })
            .collect();
        let mut p = params(Predictor::Seasonal);
        p.linear.max_growth = 0.5;
        let got = predict_peak(&p, &history, now).expect("has data");
        assert_eq!(got.predictor, Predictor::Seasonal);
        assert!((got.peak_rps - 67.5).abs() < 1e-9, "got {}", got.peak_rps);
    }

    #[test]
    fn seasonal_scales_by_recent_level() {
        // Yesterday ran at 10 rps with a peak of 20 ahead; today runs at 15: 20 * 1.5 = 30.
        let step = 600;
        let now = DAY + DAY / 2;
        let history: Vec<Sample> = (0..(2 * DAY / step))
            .map(|i| {
                let t = i * step;
                let rps = if t > now - DAY && t <= now - DAY + 600 {
                    20.0
                } else if t > DAY {
                    15.0
                } else {
                    10.0
                };
                Sample::new(t, rps)
            })
            .collect();
        let got = predict_peak(&params(Predictor::Seasonal), &history, now).expect("has data");
        assert!((got.peak_rps - 30.0).abs() < 1e-9, "got {}", got.peak_rps);
    }
}
