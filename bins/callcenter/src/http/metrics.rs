//! Prometheus metrics: request count and latency by route template and status class, plus
//! a few gauges about the server's own state.

use actix_web::http::Method;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::spool::SpoolMetrics;

/// The method as a label: one of the methods the server routes, else `other`.
#[must_use]
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The server's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// 1 when webhook signatures are verified, 0 when verification was switched off.
    pub signature_verification: IntGauge,
    /// Fallback documents answered, by reason (`store`, `deadline`, `unreadable`).
    pub fallbacks: IntCounterVec,
    /// The callback spool.
    pub spool: SpoolMetrics,
    /// Repairs by the reconciler, by kind (`call`, `agent`).
    pub reconciled: IntCounterVec,
    /// Audit entries sealed into the chain since start.
    pub audit_sealed: IntGauge,
    /// The queue: reservations made and withdrawn, pushes by result.
    pub queue: QueueMetrics,
}

/// The queue's counters.
#[derive(Clone)]
pub struct QueueMetrics {
    /// Rounds reserved by this instance's matcher.
    pub reserved: IntCounter,
    /// Reservations withdrawn (not taken up in time).
    pub withdrawn: IntCounter,
    /// Pushes (REST update-call) by result: `accepted`, `refused` (Telnyx answered an
    /// error), `unreachable` (never sent), `unknown` (sent, no answer).
    pub pushes: IntCounterVec,
    /// How long each match took (the head, the eligible agents, the reservation).
    pub match_seconds: prometheus::Histogram,
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
        let fallbacks = IntCounterVec::new(
            Opts::new(
                "callcenter_webhook_fallbacks_total",
                "Fallback documents answered to instruction requests, by reason (store, deadline, unreadable)",
            ),
            &["reason"],
        )?;
        let spool = SpoolMetrics {
            pending: IntGauge::new(
                "callcenter_spool_pending",
                "Callbacks acknowledged to Telnyx and waiting in the spool for the store",
            )?,
            bytes: IntGauge::new("callcenter_spool_bytes", "Bytes in the callback spool")?,
            refused: IntCounter::new(
                "callcenter_spool_refused_total",
                "Callbacks answered 503 because the store failed and the spool was full or the disk refused",
            )?,
            replayed: IntCounter::new(
                "callcenter_spool_replayed_total",
                "Spooled callbacks applied to the store",
            )?,
            dead: IntCounter::new(
                "callcenter_spool_dead_letters_total",
                "Spooled callbacks set aside in dead-letter.jsonl for a person",
            )?,
        };
        let reconciled = IntCounterVec::new(
            Opts::new(
                "callcenter_reconciler_repairs_total",
                "Repairs made by the reconciler, by kind (call, agent)",
            ),
            &["kind"],
        )?;
        let audit_sealed = IntGauge::new(
            "callcenter_audit_sealed_total",
            "Audit entries sealed into the hash chain since start",
        )?;
        let queue = QueueMetrics {
            reserved: IntCounter::new(
                "callcenter_queue_reservations_total",
                "Offer rounds the matcher reserved for waiting callers",
            )?,
            withdrawn: IntCounter::new(
                "callcenter_queue_withdrawn_total",
                "Reservations withdrawn because nobody took them up in time",
            )?,
            pushes: IntCounterVec::new(
                Opts::new(
                    "callcenter_queue_pushes_total",
                    "Pushes (Telnyx REST update-call) by result: accepted, refused, unreachable, unknown",
                ),
                &["result"],
            )?,
            match_seconds: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "callcenter_match_seconds",
                    "Time per match of the queue's matcher: read the head and the eligible agents, reserve",
                )
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25]),
            )?,
        };
        registry.register(Box::new(queue.reserved.clone()))?;
        registry.register(Box::new(queue.withdrawn.clone()))?;
        registry.register(Box::new(queue.pushes.clone()))?;
        registry.register(Box::new(queue.match_seconds.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(signature_verification.clone()))?;
        registry.register(Box::new(fallbacks.clone()))?;
        registry.register(Box::new(spool.pending.clone()))?;
        registry.register(Box::new(spool.bytes.clone()))?;
        registry.register(Box::new(spool.refused.clone()))?;
        registry.register(Box::new(spool.replayed.clone()))?;
        registry.register(Box::new(spool.dead.clone()))?;
        registry.register(Box::new(reconciled.clone()))?;
        registry.register(Box::new(audit_sealed.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            signature_verification,
            fallbacks,
            spool,
            reconciled,
            audit_sealed,
            queue,
        })
    }

    /// Records one request. Every label comes from a fixed set: the route template (or
    /// `unmatched`), the method ([`method_label`]) and the status class, so no request can
    /// add series.
    pub fn observe(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        let method = method_label(method);
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
