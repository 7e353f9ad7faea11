//! What the gateway counts, and the Prometheus text it renders.
//!
//! Each route carries its own [`RouteStats`] (atomics, no lock on the
//! request path); whoever builds tables hands the same stats to the same
//! route from one table to the next, so counters survive swaps. Targets
//! count their own ejections. [`render`] reads a table and writes the
//! Prometheus text exposition format:
//!
//! - `cove_gateway_requests_total{route,service,code}` (`code`: `1xx`..`5xx`)
//! - `cove_gateway_request_duration_seconds{route,service}` (histogram)
//! - `cove_gateway_upstream_errors_total{route,service}` (connect failures,
//!   upstream failures, timeouts)
//! - `cove_gateway_in_flight{service,target}` (requests and TCP connections)
//! - `cove_gateway_ejections_total{service,target}` (passive health)
//! - `cove_gateway_targets{route,service}` (targets in the table)

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::table::Table;

/// Upper bounds of the latency histogram, seconds.
pub const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counters of one route.
#[derive(Debug, Default)]
pub struct RouteStats {
    /// By status class: 1xx..5xx.
    by_class: [AtomicU64; 5],
    /// Requests not above each bound of [`BUCKETS`] (not cumulative).
    buckets: [AtomicU64; BUCKETS.len()],
    /// Above the last bound.
    over: AtomicU64,
    sum_micros: AtomicU64,
    upstream_errors: AtomicU64,
}

impl RouteStats {
    pub fn new() -> std::sync::Arc<RouteStats> {
        Default::default()
    }

    /// A request answered `status` after `took`.
    pub fn record(&self, status: u16, took: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        match BUCKETS.iter().position(|b| secs <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The upstream failed (connect, error, timeout).
    pub fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered so far with a status of `class` (1 to 5).
    pub fn requests(&self, class: usize) -> u64 {
        self.by_class[class - 1].load(Ordering::Relaxed)
    }
}

/// A label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The table's counters in the Prometheus text format.
pub fn render(table: &Table) -> String {
    let mut out = String::new();
    let routes: Vec<(String, &str, &RouteStats, usize)> = table
        .routes()
        .iter()
        .map(|r| {
            (
                format!("{}{}", r.host.as_deref().unwrap_or("*"), r.path),
                r.pool.name.as_str(),
                &*r.stats,
                r.pool.targets.len(),
            )
        })
        .chain(table.tcp_routes().iter().map(|r| {
            (
                format!("tcp://{}", r.listen),
                r.pool.name.as_str(),
                &*r.stats,
                r.pool.targets.len(),
            )
        }))
        .collect();

    let _ = writeln!(
        out,
        "# HELP cove_gateway_requests_total Requests answered, by route, service and status class.\n# TYPE cove_gateway_requests_total counter"
    );
    for (route, service, s, _) in &routes {
        for class in 1..=5 {
            let _ = writeln!(
                out,
                "cove_gateway_requests_total{{route=\"{}\",service=\"{}\",code=\"{class}xx\"}} {}",
                label(route),
                label(service),
                s.requests(class)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP cove_gateway_request_duration_seconds Time to answer, from the request's head to the response's head.\n# TYPE cove_gateway_request_duration_seconds histogram"
    );
    for (route, service, s, _) in &routes {
        let labels = format!("route=\"{}\",service=\"{}\"", label(route), label(service));
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += s.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "cove_gateway_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}"
            );
        }
        cumulative += s.over.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "cove_gateway_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}\ncove_gateway_request_duration_seconds_sum{{{labels}}} {}\ncove_gateway_request_duration_seconds_count{{{labels}}} {cumulative}",
            s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "# HELP cove_gateway_upstream_errors_total Requests whose upstream failed: no connection, an error, a timeout.\n# TYPE cove_gateway_upstream_errors_total counter"
    );
    for (route, service, s, _) in &routes {
        let _ = writeln!(
            out,
            "cove_gateway_upstream_errors_total{{route=\"{}\",service=\"{}\"}} {}",
            label(route),
            label(service),
            s.upstream_errors.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP cove_gateway_targets Targets a route sends to now.\n# TYPE cove_gateway_targets gauge"
    );
    for (route, service, _, n) in &routes {
        let _ = writeln!(
            out,
            "cove_gateway_targets{{route=\"{}\",service=\"{}\"}} {n}",
            label(route),
            label(service)
        );
    }
    // Targets once each, though several routes may share them.
    let mut seen = std::collections::HashSet::new();
    let targets: Vec<_> = table
        .routes()
        .iter()
        .map(|r| &r.pool)
        .chain(table.tcp_routes().iter().map(|r| &r.pool))
        .flat_map(|p| p.targets.iter().map(move |t| (p.name.as_str(), t)))
        .filter(|(_, t)| seen.insert(t.addr))
        .collect();
    let _ = writeln!(
        out,
        "# HELP cove_gateway_in_flight Requests (and TCP connections) a target is serving now.\n# TYPE cove_gateway_in_flight gauge"
    );
    for (service, t) in &targets {
        let _ = writeln!(
            out,
            "cove_gateway_in_flight{{service=\"{}\",target=\"{}\"}} {}",
            label(service),
            t.addr,
            t.in_flight()
        );
    }
    let _ = writeln!(
        out,
        "# HELP cove_gateway_ejections_total Times passive health left a target out.\n# TYPE cove_gateway_ejections_total counter"
    );
    for (service, t) in &targets {
        let _ = writeln!(
            out,
            "cove_gateway_ejections_total{{service=\"{}\",target=\"{}\"}} {}",
            label(service),
            t.addr,
            t.ejections()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_bucket_and_classes_are_counted() {
        let s = RouteStats::default();
        s.record(200, Duration::from_micros(900));
        s.record(204, Duration::from_millis(30));
        s.record(503, Duration::from_secs(11));
        s.record(99, Duration::ZERO);
        assert_eq!(s.requests(2), 2);
        assert_eq!(s.requests(5), 1);
        assert_eq!(s.requests(1), 1, "below 100 counts as 1xx");
        assert_eq!(s.buckets[0].load(Ordering::Relaxed), 2);
        assert_eq!(s.buckets[5].load(Ordering::Relaxed), 1, "30 ms ≤ 50 ms");
        assert_eq!(s.over.load(Ordering::Relaxed), 1);
    }
}
