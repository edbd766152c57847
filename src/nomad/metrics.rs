//! Request metrics: a hook the client calls once per request, and a Prometheus implementation.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use reqwest::{Method, StatusCode};

/// One finished request, as the client reports it to [`RequestMetrics`].
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    /// The route template, such as `/v1/job/:id/allocations`, so labels stay few.
    pub endpoint: &'static str,
    /// The path as sent, such as `/v1/job/web/allocations`: one value per object, so never a
    /// metric label.
    pub path: &'a str,
    pub method: &'a Method,
    /// `None` when no response arrived (connection failure or timeout).
    pub status: Option<StatusCode>,
    /// True for a blocking query, whose latency is mostly the wait.
    pub blocking: bool,
    pub elapsed: Duration,
}

/// A sink for request counts and latencies, called once per request after it finishes.
pub trait RequestMetrics: Send + Sync {
    fn record(&self, request: &RequestRecord<'_>);
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    method: String,
    /// The HTTP status code, or `error` when no response arrived.
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    endpoint: String,
    method: String,
    blocking: String,
}

/// Request metrics in Prometheus form: `nomad_requests_total{endpoint,method,code}` and
/// `nomad_request_duration_seconds{endpoint,method,blocking}`.
#[derive(Debug, Clone)]
pub struct PrometheusRequestMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
}

fn latency_histogram() -> Histogram {
    // 5 ms to about 340 s, so a blocking query's full 5-minute wait lands in a bucket.
    Histogram::new(exponential_buckets(0.005, 2.0, 17))
}

impl PrometheusRequestMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "nomad_requests",
            "Requests to the Nomad HTTP API by endpoint, method and status code",
            metrics.requests.clone(),
        );
        registry.register(
            "nomad_request_duration_seconds",
            "Latency of requests to the Nomad HTTP API; blocking queries include their wait",
            metrics.latency.clone(),
        );
        metrics
    }
}

impl RequestMetrics for PrometheusRequestMetrics {
    fn record(&self, request: &RequestRecord<'_>) {
        let code = request
            .status
            .map_or_else(|| "error".to_owned(), |status| status.as_u16().to_string());
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: request.endpoint.to_owned(),
                method: request.method.to_string(),
                code,
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                endpoint: request.endpoint.to_owned(),
                method: request.method.to_string(),
                blocking: request.blocking.to_string(),
            })
            .observe(request.elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_metrics_encode() {
        let mut registry = Registry::default();
        let metrics = PrometheusRequestMetrics::register(&mut registry);
        metrics.record(&RequestRecord {
            endpoint: "/v1/job/:id",
            path: "/v1/job/web",
            method: &Method::GET,
            status: Some(StatusCode::NOT_FOUND),
            blocking: false,
            elapsed: Duration::from_millis(12),
        });
        metrics.record(&RequestRecord {
            endpoint: "/v1/jobs",
            path: "/v1/jobs",
            method: &Method::POST,
            status: None,
            blocking: false,
            elapsed: Duration::from_millis(3),
        });

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(
                r#"nomad_requests_total{endpoint="/v1/job/:id",method="GET",code="404"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"nomad_requests_total{endpoint="/v1/jobs",method="POST",code="error"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"nomad_request_duration_seconds_count{endpoint="/v1/job/:id",method="GET",blocking="false"} 1"#),
            "{text}"
        );
    }
}
