//! `--metrics ADDR`: the Prometheus endpoint. It is a small wsloop server
//! of its own, on a thread of its own, whose handler answers `GET
//! /metrics` from the loops' latest stats snapshots ([`StatsHandle`]):
//! nothing on the message path, a scrape never delays a client, and the
//! same HTTP handling (limits, timeouts) as the main port. The text is
//! OpenMetrics, encoded by the `prometheus-client` crate; label values
//! that come from clients (request paths) are escaped here, as that
//! encoder writes them as they are.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use wsloop::{ConnId, Ctx, Decision, Handler, HttpResponse, Message, Request, Stats, StatsHandle};

/// What the endpoint reads: every loop's stats, and the programs' gauges.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Loop `i`'s stats at `i`.
    pub loops: Vec<StatsHandle>,
    /// Programs running, per loop (empty without `--route`).
    pub programs: Vec<Arc<AtomicUsize>>,
    /// Whether `--redis` is on (the link's metrics are shown).
    pub redis: bool,
}

/// The endpoint's handler.
pub struct Endpoint {
    registry: Registry,
}

impl Endpoint {
    pub fn new(sources: Sources) -> Endpoint {
        let mut registry = Registry::with_prefix("wsloop");
        registry.register_collector(Box::new(sources));
        Endpoint { registry }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("text into a String");
        out
    }
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Handler for Endpoint {
    type Data = ();

    fn on_open(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: &Request) -> Decision {
        Decision::reject(404, "this port serves /metrics only")
    }

    fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: Message<'_>) {}

    fn on_http(&mut self, req: &Request) -> Option<wsloop::HttpResponse> {
        Some(match req.path() {
            "/metrics" => HttpResponse::new(200, CONTENT_TYPE, self.render()),
            _ => HttpResponse::text(404, "this port serves /metrics only"),
        })
    }
}

type Result = std::result::Result<(), std::fmt::Error>;

/// One metric without labels.
fn single(e: &mut DescriptorEncoder, name: &str, help: &str, m: impl EncodeMetric) -> Result {
    let metric = e.encode_descriptor(name, help, None, m.metric_type())?;
    m.encode(metric)
}

/// One metric with a label, a sample per `(value, n)`.
fn family<V, M>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (V, M)>,
    kind: prometheus_client::metrics::MetricType,
) -> Result
where
    V: prometheus_client::encoding::EncodeLabelValue,
    M: EncodeMetric,
{
    let mut metric = e.encode_descriptor(name, help, None, kind)?;
    for (value, m) in samples {
        let labels = [(label, value)];
        m.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A label value as the text format wants it: `\`, `"` and newlines
/// escaped (a request path may hold any of them).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A close code's label: itself, or its range for application codes.
fn code_label(code: u16) -> String {
    match code {
        3000..=3999 => "3xxx".into(),
        4000..=4999 => "4xxx".into(),
        code => code.to_string(),
    }
}

/// `(key, n)` lists of every loop, added up by key.
fn merged<K: Ord + Clone>(lists: impl Iterator<Item = Vec<(K, u64)>>) -> Vec<(K, u64)> {
    let mut all = std::collections::BTreeMap::new();
    for list in lists {
        for (k, n) in list {
            *all.entry(k).or_insert(0) += n;
        }
    }
    all.into_iter().collect()
}

impl Collector for Sources {
    fn encode(&self, mut e: DescriptorEncoder) -> Result {
        use prometheus_client::metrics::MetricType::{Counter, Gauge};
        let stats: Vec<Stats> = self.loops.iter().map(StatsHandle::get).collect();
        let sum = |f: fn(&Stats) -> u64| stats.iter().map(f).sum::<u64>();
        let counter = |f: fn(&Stats) -> u64| ConstCounter::new(sum(f));
        let gauge = |f: fn(&Stats) -> u64| ConstGauge::new(sum(f) as i64);
        let e = &mut e;

        single(
            e,
            "loops",
            "Event loops serving the port (--threads).",
            ConstGauge::new(stats.len() as i64),
        )?;
        single(
            e,
            "clients",
            "Clients connected: handshaking, open or closing.",
            gauge(|s| s.clients as u64),
        )?;
        let paths = merged(stats.iter().map(|s| {
            s.paths
                .iter()
                .map(|(p, n)| (escape(p), *n as u64))
                .collect()
        }));
        family(
            e,
            "open_connections",
            "Open WebSocket connections by request path (route).",
            "path",
            paths
                .into_iter()
                .map(|(p, n)| (p, ConstGauge::new(n as i64))),
            Gauge,
        )?;
        single(
            e,
            "handshakes_accepted",
            "WebSocket upgrades accepted.",
            counter(|s| s.handshakes_accepted),
        )?;
        let refused = merged(stats.iter().map(|s| s.handshakes_refused.clone()));
        family(
            e,
            "handshakes_refused",
            "Upgrades and requests refused, by HTTP status.",
            "status",
            refused
                .into_iter()
                .map(|(status, n)| (status, ConstCounter::new(n))),
            Counter,
        )?;
        single(
            e,
            "messages_received",
            "Messages received from clients.",
            counter(|s| s.messages_received),
        )?;
        single(
            e,
            "message_bytes_received",
            "Payload bytes of the messages received.",
            counter(|s| s.message_bytes_received),
        )?;
        single(
            e,
            "messages_sent",
            "Messages queued for clients, one per recipient.",
            counter(|s| s.messages_sent),
        )?;
        single(
            e,
            "message_bytes_sent",
            "Payload bytes of the messages queued, per recipient, before compression.",
            counter(|s| s.message_bytes_sent),
        )?;
        // The codes applications choose (3000-4999) are the clients' to
        // pick: counted by range, so a client cannot make a series per code.
        let closes = merged(stats.iter().map(|s| {
            s.closes
                .iter()
                .map(|&(code, n)| (code_label(code), n))
                .collect()
        }));
        family(
            e,
            "closes",
            "Accepted connections ended, by close code (1006: no close frame; 3xxx and 4xxx: application codes).",
            "code",
            closes
                .into_iter()
                .map(|(code, n)| (code, ConstCounter::new(n))),
            Counter,
        )?;
        single(
            e,
            "backpressure_closes",
            "Clients closed with 1008 for reading too slowly (send queue full).",
            counter(|s| s.backpressure_closes),
        )?;
        single(
            e,
            "deflate_bytes_saved",
            "Bytes permessage-deflate took off the messages sent.",
            counter(|s| s.deflate_bytes_saved),
        )?;
        single(
            e,
            "deflate_memory_bytes",
            "Memory the connections' compression state may hold.",
            gauge(|s| s.deflate_memory as u64),
        )?;
        single(
            e,
            "deflate_declined",
            "Upgrades served uncompressed for the compression memory ceiling.",
            counter(|s| s.deflate_declined),
        )?;
        family(
            e,
            "topics",
            "Topics with a subscriber, by loop (a topic held on two loops is on both).",
            "loop",
            stats
                .iter()
                .enumerate()
                .map(|(i, s)| (i as u64, ConstGauge::new(s.topics as i64))),
            Gauge,
        )?;
        single(
            e,
            "subscriptions",
            "Subscriptions of clients to topics.",
            gauge(|s| s.subscriptions as u64),
        )?;
        single(
            e,
            "hub_dropped",
            "Publishes for another loop dropped because it took none for too long.",
            counter(|s| s.hub_dropped),
        )?;
        if !self.programs.is_empty() {
            let running: usize = self
                .programs
                .iter()
                .map(|g| g.load(Ordering::Relaxed))
                .sum();
            single(
                e,
                "programs_running",
                "Child programs running (--route, --shared-route).",
                ConstGauge::new(running as i64),
            )?;
        }
        if self.redis {
            let redis: Vec<_> = stats.iter().filter_map(|s| s.redis).collect();
            let up = redis.iter().filter(|r| r.up).count();
            single(
                e,
                "redis_links_up",
                "Loops whose Redis link is up (of wsloop_loops).",
                ConstGauge::new(up as i64),
            )?;
            let rsum = |f: fn(&wsloop::backplane::RedisStats) -> u64| {
                ConstCounter::new(redis.iter().map(f).sum::<u64>())
            };
            single(
                e,
                "redis_reconnects",
                "Times a Redis link came back after being up.",
                rsum(|r| r.reconnects),
            )?;
            single(
                e,
                "redis_published",
                "Publishes sent to Redis.",
                rsum(|r| r.link.published),
            )?;
            single(
                e,
                "redis_received",
                "Messages from other processes received through Redis.",
                rsum(|r| r.link.received),
            )?;
            single(
                e,
                "redis_dropped",
                "Publishes not sent to Redis: the link was down or too many bytes waited.",
                rsum(|r| r.link.dropped),
            )?;
            single(
                e,
                "redis_unconfirmed",
                "Publishes written on a link that broke before Redis answered.",
                rsum(|r| r.link.unconfirmed),
            )?;
        }
        Ok(())
    }
}
