//! RabbitMQ management API: a queue's publish rate and backlog from `/api/queues/{vhost}/{queue}`.

use std::time::Duration;

use serde::Deserialize;

use super::{MetricError, MetricSource, base_url, excerpt, get_body};
use crate::autoscale::Sample;

/// A queue whose publish rate is the request rate.
#[derive(Debug, Clone)]
pub struct RabbitmqSource {
    base: String,
    vhost: String,
    queue: String,
    credentials: Option<(String, Option<String>)>,
    client: reqwest::Client,
}

/// A queue's publish rate and backlog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueStats {
    /// Messages published per second, as the management API averages it; 0 when the queue
    /// has never received a message.
    pub publish_rate: f64,
    /// Messages in the queue (ready plus unacknowledged).
    pub messages: u64,
}

#[derive(Deserialize)]
struct QueueBody {
    #[serde(default)]
    messages: Option<u64>,
    #[serde(default)]
    message_stats: Option<MessageStats>,
}

#[derive(Deserialize)]
struct MessageStats {
    #[serde(default)]
    publish_details: Option<RateDetails>,
}

#[derive(Deserialize)]
struct RateDetails {
    rate: f64,
    #[serde(default)]
    samples: Vec<CounterSample>,
}

/// A cumulative publish count at a time in milliseconds.
#[derive(Deserialize)]
struct CounterSample {
    sample: f64,
    timestamp: i64,
}

impl RabbitmqSource {
    /// `credentials` is a user name and password for HTTP basic auth.
    pub fn new(
        address: &str,
        vhost: &str,
        queue: &str,
        credentials: Option<(String, Option<String>)>,
        client: reqwest::Client,
    ) -> Result<Self, MetricError> {
        if queue.is_empty() {
            return Err(MetricError::Config(
                "the RabbitMQ queue name is empty; set metric.queue".to_owned(),
            ));
        }
        Ok(Self {
            base: base_url(address)?,
            vhost: vhost.to_owned(),
            queue: queue.to_owned(),
            credentials,
            client,
        })
    }

    /// Reads the queue's publish rate and backlog.
    pub async fn queue_stats(&self) -> Result<QueueStats, MetricError> {
        let (body, url) = self.fetch(&[]).await?;
        let messages = body.messages.ok_or_else(|| MetricError::InvalidResponse {
            url,
            message: "queue object without `messages`".to_owned(),
        })?;
        let publish_rate = body
            .message_stats
            .and_then(|s| s.publish_details)
            .map_or(0.0, |d| d.rate);
        Ok(QueueStats {
            publish_rate,
            messages,
        })
    }

    async fn fetch(&self, params: &[(&str, String)]) -> Result<(QueueBody, String), MetricError> {
        let url = format!(
            "{}/api/queues/{}/{}",
            self.base,
            percent_encode(&self.vhost),
            percent_encode(&self.queue)
        );
        let mut request = self.client.get(&url).query(params);
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, password.as_deref());
        }

        let (status, text) = get_body(request, &url).await?;
        if status >= 400 {
            return Err(MetricError::Http {
                url,
                status,
                body: excerpt(&text),
            });
        }
        let body = serde_json::from_str(&text).map_err(|e| MetricError::InvalidResponse {
            url: url.clone(),
            message: format!("not a queue object: {e}"),
        })?;
        Ok((body, url))
    }
}

impl MetricSource for RabbitmqSource {
    /// Rates between consecutive samples of the publish counter. The management API keeps
    /// samples only as long as its `sample_retention_policies` setting allows (by default 5-second
    /// samples for a minute, 1-minute samples for an hour), so older ranges come back short.
    async fn history(
        &self,
        start: i64,
        end: i64,
        step: Duration,
    ) -> Result<Vec<Sample>, MetricError> {
        let now = jiff::Timestamp::now().as_second();
        let age = (now - start).max(1);
        let incr = step.as_secs().max(1);
        let params = [
            ("msg_rates_age", age.to_string()),
            ("msg_rates_incr", incr.to_string()),
        ];
        let (body, _) = self.fetch(&params).await?;
        let mut counters = body
            .message_stats
            .and_then(|s| s.publish_details)
            .map(|d| d.samples)
            .unwrap_or_default();

        // The API lists samples newest first.
        counters.sort_by_key(|c| c.timestamp);
        let samples = counters
            .windows(2)
            .filter_map(|pair| {
                let dt = (pair[1].timestamp - pair[0].timestamp) as f64 / 1000.0;
                let t = pair[1].timestamp / 1000;
                (dt > 0.0 && t >= start && t <= end)
                    .then(|| Sample::new(t, ((pair[1].sample - pair[0].sample) / dt).max(0.0)))
            })
            .collect();
        Ok(samples)
    }

    async fn current(&self) -> Result<Option<f64>, MetricError> {
        let stats = self.queue_stats().await?;
        if !stats.publish_rate.is_finite() {
            return Err(MetricError::NonFinite {
                what: format!("RabbitMQ queue {} publish rate", self.queue),
                value: stats.publish_rate,
            });
        }
        Ok(Some(stats.publish_rate))
    }
}

/// Percent-encodes a path segment (the default vhost `/` becomes `%2F`).
fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_default_vhost() {
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_encode("jobs.in-1"), "jobs.in-1");
        assert_eq!(percent_encode("a b"), "a%20b");
    }
}
