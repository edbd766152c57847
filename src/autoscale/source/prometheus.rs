//! Prometheus HTTP API: `/api/v1/query_range` for history, `/api/v1/query` for the live rate.

use std::time::Duration;

use serde::Deserialize;

use super::{MetricError, MetricSource, base_url, excerpt, get_body};
use crate::autoscale::Sample;

/// A PromQL query that returns one series of requests per second.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    base: String,
    query: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct MatrixSeries {
    values: Vec<(f64, String)>,
}

#[derive(Deserialize)]
struct VectorSample {
    value: (f64, String),
}

impl PrometheusSource {
    pub fn new(address: &str, query: &str, client: reqwest::Client) -> Result<Self, MetricError> {
        if query.trim().is_empty() {
            return Err(MetricError::Config(
                "the Prometheus query is empty; set metric.query to a PromQL expression".to_owned(),
            ));
        }
        Ok(Self {
            base: base_url(address)?,
            query: query.to_owned(),
            client,
        })
    }

    /// Sends one API request and returns the `data` of a successful response.
    async fn call(&self, path: &str, params: &[(&str, String)]) -> Result<Data, MetricError> {
        let url = format!("{}{path}", self.base);
        let request = self.client.get(&url).query(params);
        let (status, body) = get_body(request, &url).await?;

        // Prometheus responds to a failed query with 400, 422 or 503 and a JSON body with
        // `status: error`.
        let envelope: Envelope = match serde_json::from_str(&body) {
            Ok(envelope) => envelope,
            Err(_) if status >= 400 => {
                return Err(MetricError::Http {
                    url,
                    status,
                    body: excerpt(&body),
                });
            }
            Err(e) => {
                return Err(MetricError::InvalidResponse {
                    url,
                    message: format!("not the Prometheus API envelope: {e}"),
                });
            }
        };
        if envelope.status != "success" {
            return Err(MetricError::Query {
                query: self.query.clone(),
                error_type: envelope
                    .error_type
                    .unwrap_or_else(|| format!("HTTP {status}")),
                message: envelope.error.unwrap_or_default(),
            });
        }
        envelope.data.ok_or(MetricError::InvalidResponse {
            url,
            message: "status success without data".to_owned(),
        })
    }

    fn invalid(&self, message: impl Into<String>) -> MetricError {
        MetricError::InvalidResponse {
            url: self.base.clone(),
            message: message.into(),
        }
    }
}

/// Parses a Prometheus sample value: a decimal string, or `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

impl MetricSource for PrometheusSource {
    async fn history(
        &self,
        start: i64,
        end: i64,
        step: Duration,
    ) -> Result<Vec<Sample>, MetricError> {
        let params = [
            ("query", self.query.clone()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.as_secs().max(1).to_string()),
        ];
        let data = self.call("/api/v1/query_range", &params).await?;
        if data.result_type != "matrix" {
            return Err(self.invalid(format!("expected a matrix, got {}", data.result_type)));
        }
        let series: Vec<MatrixSeries> = serde_json::from_value(data.result)
            .map_err(|e| self.invalid(format!("matrix result: {e}")))?;

        let Some(only) = single(series, &self.query)? else {
            return Ok(Vec::new());
        };
        let mut samples = Vec::with_capacity(only.values.len());
        let mut dropped = 0usize;
        for (t, text) in only.values {
            let rps = parse_value(&text).ok_or_else(|| self.invalid(format!("value {text:?}")))?;
            if rps.is_finite() {
                samples.push(Sample::new(t as i64, rps));
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            tracing::debug!(query = %self.query, dropped, "dropped non-finite points from history");
        }
        Ok(samples)
    }

    async fn current(&self) -> Result<Option<f64>, MetricError> {
        let data = self
            .call("/api/v1/query", &[("query", self.query.clone())])
            .await?;
        let value = match data.result_type.as_str() {
            "vector" => {
                let samples: Vec<VectorSample> = serde_json::from_value(data.result)
                    .map_err(|e| self.invalid(format!("vector result: {e}")))?;
                match single(samples, &self.query)? {
                    Some(sample) => sample.value.1,
                    None => return Ok(None),
                }
            }
            "scalar" => {
                let (_, text): (f64, String) = serde_json::from_value(data.result)
                    .map_err(|e| self.invalid(format!("scalar result: {e}")))?;
                text
            }
            other => return Err(self.invalid(format!("expected a vector, got {other}"))),
        };

        let rps = parse_value(&value).ok_or_else(|| self.invalid(format!("value {value:?}")))?;
        if !rps.is_finite() {
            return Err(MetricError::NonFinite {
                what: format!("Prometheus query {:?}", self.query),
                value: rps,
            });
        }
        Ok(Some(rps))
    }
}

/// Returns the only series, `None` for an empty result, or an error for several.
fn single<T>(mut items: Vec<T>, query: &str) -> Result<Option<T>, MetricError> {
    match items.len() {
        0 => Ok(None),
        1 => Ok(items.pop()),
        count => Err(MetricError::MultipleSeries {
            query: query.to_owned(),
            count,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_special_values() {
        assert!(parse_value("NaN").expect("valid").is_nan());
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("1.5e2"), Some(150.0));
        assert_eq!(parse_value("abc"), None);
    }

    #[test]
    fn rejects_non_http_address() {
        let client = crate::autoscale::source::http_client().expect("client builds");
        let err = PrometheusSource::new("localhost:9090", "up", client).expect_err("invalid");
        assert!(err.to_string().contains("http://"), "{err}");
    }
}
