//! Replay of a `timestamp,requests` CSV trace, one row per minute.

use std::sync::Arc;
use std::time::Duration;

use super::{MetricError, MetricSource};
use crate::autoscale::Sample;

/// A trace replayed from the moment it was opened: wall-clock time `opened_at + k` reads the
/// trace at `trace_start + k`, wrapping around at the end.
#[derive(Debug, Clone)]
pub struct CsvSource {
    samples: Arc<Vec<Sample>>,
    /// Trace time minus wall-clock time, in seconds.
    offset: i64,
}

/// Parses a trace: a `timestamp,requests` header, then one row per minute with an RFC 3339
/// timestamp and a request count. Returns one sample a minute in requests per second.
pub fn parse_trace(path: &str, text: &str) -> Result<Vec<Sample>, MetricError> {
    let error = |line: usize, message: String| MetricError::Trace {
        path: path.to_owned(),
        message: format!("line {line}: {message}"),
    };

    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.trim() == "timestamp,requests" => {}
        _ => {
            return Err(error(
                1,
                "expected the header `timestamp,requests`".to_owned(),
            ));
        }
    }

    let mut samples: Vec<Sample> = Vec::new();
    for (index, line) in lines {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (time, count) = line.split_once(',').ok_or_else(|| {
            error(
                number,
                format!("expected `timestamp,requests`, got {line:?}"),
            )
        })?;
        let time: jiff::Timestamp = time.trim().parse().map_err(|e| {
            error(
                number,
                format!(
                    "invalid timestamp {time:?} ({e}); use RFC 3339 such as 1995-07-01T04:00:00Z"
                ),
            )
        })?;
        let count: f64 = count
            .trim()
            .parse()
            .ok()
            .filter(|c: &f64| c.is_finite() && *c >= 0.0)
            .ok_or_else(|| {
                error(
                    number,
                    format!("invalid request count {count:?}; use a number of at least 0"),
                )
            })?;

        let t = time.as_second();
        if samples.last().is_some_and(|last| last.t >= t) {
            return Err(error(
                number,
                format!("timestamp {time} is not after the previous row; sort the trace by time"),
            ));
        }
        samples.push(Sample::new(t, count / 60.0));
    }

    if samples.is_empty() {
        return Err(error(1, "the trace has no rows".to_owned()));
    }
    Ok(samples)
}

impl CsvSource {
    /// Reads and parses the trace at `path`; the replay starts now.
    pub fn open(path: &str) -> Result<Self, MetricError> {
        let text = std::fs::read_to_string(path).map_err(|e| MetricError::Trace {
            path: path.to_owned(),
            message: format!("cannot read: {e}"),
        })?;
        let samples = parse_trace(path, &text)?;
        Ok(Self::starting_at(
            samples,
            jiff::Timestamp::now().as_second(),
        ))
    }

    /// Replays `samples` (sorted, non-empty) so that wall-clock `start` reads the first one.
    pub fn starting_at(samples: Vec<Sample>, start: i64) -> Self {
        let first = samples.first().map_or(0, |s| s.t);
        Self {
            samples: Arc::new(samples),
            offset: first - start,
        }
    }

    /// Returns the trace sample (in trace time) under wall-clock time `now`, wrapping around.
    fn at(&self, now: i64) -> Option<Sample> {
        let first = self.samples.first()?.t;
        let last = self.samples.last()?.t;
        let span = last - first + 60;
        let trace_t = first + (now + self.offset - first).rem_euclid(span);
        let index = self.samples.partition_point(|s| s.t <= trace_t);
        index.checked_sub(1).map(|i| self.samples[i])
    }
}

impl MetricSource for CsvSource {
    async fn history(
        &self,
        start: i64,
        end: i64,
        step: Duration,
    ) -> Result<Vec<Sample>, MetricError> {
        let step = i64::try_from(step.as_secs()).unwrap_or(60).max(1);
        let mut out = Vec::new();
        let mut t = start;
        while t <= end {
            if let Some(sample) = self.at(t) {
                out.push(Sample::new(t, sample.rps));
            }
            t += step;
        }
        Ok(out)
    }

    async fn current(&self) -> Result<Option<f64>, MetricError> {
        Ok(self.at(jiff::Timestamp::now().as_second()).map(|s| s.rps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "timestamp,requests\n1995-07-01T04:00:00Z,60\n1995-07-01T04:01:00Z,120\n";

    #[test]
    fn parses_requests_per_minute_as_rps() {
        let samples = parse_trace("t.csv", TRACE).expect("valid");
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0], Sample::new(804_571_200, 1.0));
        assert_eq!(samples[1], Sample::new(804_571_260, 2.0));
    }

    #[test]
    fn rejects_bad_rows_with_line_number() {
        let err = parse_trace("t.csv", "timestamp,requests\nnot-a-time,3\n").expect_err("bad");
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = parse_trace("t.csv", "time,n\n").expect_err("bad header");
        assert!(err.to_string().contains("header"), "{err}");
        let err = parse_trace("t.csv", "timestamp,requests\n1995-07-01T04:00:00Z,-1\n")
            .expect_err("negative");
        assert!(err.to_string().contains("-1"), "{err}");
    }

    #[tokio::test]
    async fn replays_from_start_and_wraps() {
        let samples = parse_trace("t.csv", TRACE).expect("valid");
        let source = CsvSource::starting_at(samples, 1_000);
        let history = source
            .history(1_000, 1_180, Duration::from_secs(60))
            .await
            .expect("ok");
        let rates: Vec<f64> = history.iter().map(|s| s.rps).collect();
        assert_eq!(rates, vec![1.0, 2.0, 1.0, 2.0]);
        assert_eq!(history[3].t, 1_180);
    }
}
