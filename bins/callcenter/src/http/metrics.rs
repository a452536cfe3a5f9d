//! Prometheus metrics: request count and latency by route template and status class, plus
//! a few gauges about the server's own state.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// 1 when webhook signatures are verified, 0 when verification was switched off.
    pub signature_verification: IntGauge,
    /// Callbacks waiting for the store to come back.
    pub callback_retries_pending: IntGauge,
    /// Audit entries sealed into the chain since start.
    pub audit_sealed: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    ///
    /// # Errors
    /// Only if a metric were defined twice (a bug).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "callcenter_http_requests_total",
                "HTTP requests by route template, method and status class",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "callcenter_http_request_duration_seconds",
                "HTTP request latency by route template and status class",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "status"],
        )?;
        let signature_verification = IntGauge::new(
            "callcenter_webhook_signature_verification_enabled",
            "1 when Telnyx webhook signatures are verified; 0 means verification is OFF (local work only)",
        )?;
        let callback_retries_pending = IntGauge::new(
            "callcenter_callback_retries_pending",
            "Telnyx callbacks held for retry while the store is failing",
        )?;
        let audit_sealed = IntGauge::new(
            "callcenter_audit_sealed_total",
            "Audit entries sealed into the hash chain since start",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(signature_verification.clone()))?;
        registry.register(Box::new(callback_retries_pending.clone()))?;
        registry.register(Box::new(audit_sealed.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            signature_verification,
            callback_retries_pending,
            audit_sealed,
        })
    }

    /// Records one request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .with_label_values(&[route, method, class])
            .inc();
        self.latency
            .with_label_values(&[route, class])
            .observe(seconds);
    }

    /// The text exposition format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
