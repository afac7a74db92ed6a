//! `GET /metrics` in the Prometheus text format: how rotations are going
//! (what operators alert on: `tumbler_secrets_rotation_failed > 0`), how
//! Kafka users are synced (`tumbler_kafka_scram_secrets{status="failed"} > 0`)
//! and how requests are answered. Aggregates only: no secret name, ARN or
//! principal appears, so the endpoint needs no credentials, as
//! Prometheus scrapers expect.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tumbler_rotation::Engine;
use tumbler_secrets::SecretsService;

/// The registry, and the metrics the request path updates.
pub struct Metrics {
    registry: Registry,
    responses: Family<[(&'static str, u16); 1], Counter>,
}

impl Metrics {
    pub fn new(engine: Arc<Engine>, secrets: Arc<SecretsService>, kafka: Arc<tumbler_kafka::KafkaService>) -> Metrics {
        let mut registry = Registry::default();
        let responses = Family::<[(&'static str, u16); 1], Counter>::default();
        registry.register(
            "tumbler_http_responses",
            "HTTP responses sent, by status code",
            responses.clone(),
        );
        registry.register_collector(Box::new(RotationCollector { engine, secrets }));
        registry.register_collector(Box::new(KafkaCollector(kafka)));
        Metrics { registry, responses }
    }

    /// Count one response with `status`.
    pub fn response(&self, status: u16) {
        self.responses.get_or_create(&[("code", status)]).inc();
    }

    /// The text exposition. Reads the store (rotation states), so call it
    /// off the async workers.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Rotation metrics, read when scraped: this node's engine counters, and
/// the store's count of secrets in each rotation state (shared by every
/// node on the store).
struct RotationCollector {
    engine: Arc<Engine>,
    secrets: Arc<SecretsService>,
}

impl fmt::Debug for RotationCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RotationCollector")
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for RotationCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let outcomes = self.engine.outcomes();
        let mut family = encoder.encode_descriptor(
            "tumbler_rotation_attempts",
            "Rotation attempts this node finished, by outcome (abandoned: the secret is marked failing)",
            None,
            MetricType::Counter,
        )?;
        for (outcome, count) in [
            ("succeeded", &outcomes.succeeded),
            ("will_retry", &outcomes.will_retry),
            ("abandoned", &outcomes.abandoned),
        ] {
            ConstCounter::new(count.load(Ordering::Relaxed)).encode(family.encode_family(&[("outcome", outcome)])?)?;
        }
        gauge(
            &mut encoder,
            "tumbler_rotations_running",
            "Rotations this node is running now",
            i64::try_from(self.engine.running()).unwrap_or(i64::MAX),
        )?;
        let counts = match self.secrets.rotation_counts() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e.message, "cannot count rotation states for metrics");
                return Ok(());
            }
        };
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        gauge(
            &mut encoder,
            "tumbler_secrets_rotation_enabled",
            "Secrets with rotation enabled",
            n(counts.enabled),
        )?;
        gauge(
            &mut encoder,
            "tumbler_secrets_rotation_in_progress",
            "Secrets with a rotation under way (running or waiting to retry)",
            n(counts.running),
        )?;
        gauge(
            &mut encoder,
            "tumbler_secrets_rotation_retrying",
            "Secrets whose rotation's last attempt failed and will be retried",
            n(counts.retrying),
        )?;
        gauge(
            &mut encoder,
            "tumbler_secrets_rotation_failed",
            "Secrets whose last rotation was given up after every attempt failed",
            n(counts.failed),
        )
    }
}

/// Kafka SCRAM associations by sync state, over every registered cluster.
struct KafkaCollector(Arc<tumbler_kafka::KafkaService>);

impl fmt::Debug for KafkaCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KafkaCollector")
    }
}

impl Collector for KafkaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let (synced, pending, failed) = self.0.sync_counts();
        let mut family = encoder.encode_descriptor(
            "tumbler_kafka_scram_secrets",
            "Secrets associated with Kafka clusters, by the state of their user on the brokers",
            None,
            MetricType::Gauge,
        )?;
        for (status, count) in [("synced", synced), ("pending", pending), ("failed", failed)] {
            ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX))
                .encode(family.encode_family(&[("status", status)])?)?;
        }
        Ok(())
    }
}
