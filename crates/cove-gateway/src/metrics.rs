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
use std::sync::atomic::Ordering;

pub use crate::stats::{BUCKETS, RouteStats};
use crate::table::Table;

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
