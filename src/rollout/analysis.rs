//! Evaluation of `spec.rollout.analysis`: one Prometheus instant query
//! (`GET /api/v1/query`) whose single value the soak compares with the threshold.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use tracing::warn;

use super::observe::AnalysisSample;
use crate::spec::Analysis;

/// Timeout of one analysis query. A query slower than this counts as failed, which pauses
/// the soak for a person instead of blocking the reconcile.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the HTTP client for analysis queries. The crate builds reqwest without a default
/// TLS provider, so this installs the ring provider first (a no-op when one is installed).
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build()
}

/// Runs the analysis query at `now` and returns its sample. A query that fails, or returns
/// several series, yields `Err` with the reason; one that returns no series yields
/// `Ok(None)`. Both count as inconclusive in the soak.
pub async fn evaluate(
    client: &reqwest::Client,
    analysis: &Analysis,
    now: Timestamp,
) -> AnalysisSample {
    let value = match query(client, analysis, now).await {
        Ok(value) => Ok(value),
        Err(reason) => {
            warn!(address = %analysis.address, query = %analysis.query, %reason, "analysis query failed");
            Err(reason)
        }
    };
    AnalysisSample { at: now, value }
}

async fn query(
    client: &reqwest::Client,
    analysis: &Analysis,
    now: Timestamp,
) -> Result<Option<f64>, String> {
    let url = format!("{}/api/v1/query", analysis.address.trim_end_matches('/'));
    let time = format!("{:.3}", now.as_millisecond() as f64 / 1000.0);
    let response = client
        .get(&url)
        .query(&[("query", analysis.query.as_str()), ("time", time.as_str())])
        .timeout(QUERY_TIMEOUT)
        .send()
        .await
        .map_err(|error| format!("request to {url} failed: {error}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|error| format!("{url} returned {status} without a JSON body: {error}"))?;

    if body.get("status").and_then(Value::as_str) != Some("success") {
        let error = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        return Err(format!("{url} returned {status}: {error}"));
    }
    parse_result(body.get("data").unwrap_or(&Value::Null))
}

/// Reads the single value of a `vector` or `scalar` result.
fn parse_result(data: &Value) -> Result<Option<f64>, String> {
    let result_type = data.get("resultType").and_then(Value::as_str);
    let result = data.get("result").unwrap_or(&Value::Null);
    let sample = match result_type {
        Some("scalar") => result,
        Some("vector") => {
            let series = result.as_array().map_or(&[][..], Vec::as_slice);
            match series {
                [] => return Ok(None),
                [one] => one.get("value").unwrap_or(&Value::Null),
                many => {
                    return Err(format!(
                        "the query returned {} series; aggregate it to one, for example with sum()",
                        many.len()
                    ));
                }
            }
        }
        other => {
            return Err(format!(
                "the query returned a {} result; it must return a vector or a scalar",
                other.unwrap_or("missing")
            ));
        }
    };

    // A sample is `[unix seconds, "value"]`, the value a string that may be NaN.
    let text = sample
        .get(1)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the query returned a malformed sample: {sample}"))?;
    let value: f64 = text
        .parse()
        .map_err(|_| format!("the query returned a non-numeric value {text:?}"))?;
    if value.is_nan() {
        return Ok(None);
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vector_with_one_series_gives_value() {
        let data = json!({"resultType": "vector", "result": [
            {"metric": {}, "value": [1_800_000_000.0, "0.025"]}
        ]});
        assert_eq!(parse_result(&data), Ok(Some(0.025)));
    }

    #[test]
    fn empty_vector_is_no_data() {
        let data = json!({"resultType": "vector", "result": []});
        assert_eq!(parse_result(&data), Ok(None));
    }

    #[test]
    fn nan_is_no_data() {
        let data = json!({"resultType": "scalar", "result": [1_800_000_000.0, "NaN"]});
        assert_eq!(parse_result(&data), Ok(None));
    }

    #[test]
    fn several_series_are_rejected() {
        let data = json!({"resultType": "vector", "result": [
            {"metric": {"a": "1"}, "value": [1.0, "1"]},
            {"metric": {"a": "2"}, "value": [1.0, "2"]}
        ]});
        let error = parse_result(&data).expect_err("two series");
        assert!(error.contains("2 series"), "{error}");
    }

    #[test]
    fn matrix_is_rejected() {
        let data = json!({"resultType": "matrix", "result": []});
        let error = parse_result(&data).expect_err("matrix");
        assert!(error.contains("matrix"), "{error}");
    }
}
