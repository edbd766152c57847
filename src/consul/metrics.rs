//! Prometheus metrics of Consul requests: a [`RequestObserver`] that counts requests and
//! records their latency per endpoint.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use reqwest::Method;

use super::client::RequestObserver;

/// Labels of one request series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// A fixed label such as `kv`, `txn` or `session/renew`.
    pub endpoint: String,
    pub method: String,
    /// The HTTP status code, or `error` when no response arrived.
    pub status: String,
}

/// Latency buckets from 1 ms to about 33 s, doubling. Blocking queries that run for their
/// full wait land in the top (`+Inf`) bucket.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Request counters and latency histograms, registered as
/// `steward_consul_requests_total` and `steward_consul_request_duration_seconds`.
#[derive(Debug, Clone)]
pub struct ConsulMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl ConsulMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "steward_consul_requests",
            "Consul HTTP requests by endpoint, method and status",
            metrics.requests.clone(),
        );
        registry.register(
            "steward_consul_request_duration_seconds",
            "Consul HTTP request latency, blocking queries included",
            metrics.latency.clone(),
        );
        metrics
    }
}

impl RequestObserver for ConsulMetrics {
    fn observe(
        &self,
        endpoint: &'static str,
        method: &Method,
        status: Option<u16>,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            endpoint: endpoint.to_string(),
            method: method.as_str().to_string(),
            status: status.map_or_else(|| "error".to_string(), |s| s.to_string()),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_appear_in_text_format() {
        let mut registry = Registry::default();
        let metrics = ConsulMetrics::register(&mut registry);
        metrics.observe("kv", &Method::GET, Some(200), Duration::from_millis(3));
        metrics.observe("kv", &Method::GET, Some(200), Duration::from_millis(5));
        metrics.observe("txn", &Method::PUT, None, Duration::from_millis(1));

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                r#"steward_consul_requests_total{endpoint="kv",method="GET",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"status="error""#), "{text}");
        assert!(
            text.contains("steward_consul_request_duration_seconds_count"),
            "{text}"
        );
    }
}
