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

pub use crate::stats::{BUCKETS, RouteStats};
use crate::table::{Table, Target};

/// A label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One route's row: its name, its service, its counters, its targets.
struct RouteRow<'a> {
    route: String,
    service: &'a str,
    stats: &'a RouteStats,
    targets: usize,
}

impl RouteRow<'_> {
    /// `route="…",service="…"`, escaped.
    fn labels(&self) -> String {
        format!(
            "route=\"{}\",service=\"{}\"",
            label(&self.route),
            label(self.service)
        )
    }
}

/// The table's counters in the Prometheus text format.
pub fn render(table: &Table) -> String {
    let mut out = String::new();
    let routes = route_rows(table);
    requests(&mut out, &routes);
    durations(&mut out, &routes);
    upstream_errors(&mut out, &routes);
    targets(&mut out, &routes);
    let targets = target_rows(table);
    in_flight(&mut out, &targets);
    ejections(&mut out, &targets);
    out
}

/// The HTTP routes (host routes, then listener routes: `http://ADDR`),
/// then the TCP ones.
fn route_rows(table: &Table) -> Vec<RouteRow<'_>> {
    table
        .routes()
        .iter()
        .map(|r| RouteRow {
            route: format!("{}{}", r.host.as_deref().unwrap_or("*"), r.path),
            service: r.pool.name.as_str(),
            stats: &r.stats,
            targets: r.pool.targets.len(),
        })
        .chain(table.listener_routes().map(|(listen, r)| RouteRow {
            route: format!("http://{listen}"),
            service: r.pool.name.as_str(),
            stats: &r.stats,
            targets: r.pool.targets.len(),
        }))
        .chain(table.tcp_routes().iter().map(|r| RouteRow {
            route: format!("tcp://{}", r.listen),
            service: r.pool.name.as_str(),
            stats: &r.stats,
            targets: r.pool.targets.len(),
        }))
        .collect()
}

/// Targets once each (with their service; previews' too), though several
/// routes may share them.
fn target_rows(table: &Table) -> Vec<(&str, &Target)> {
    let mut seen = std::collections::HashSet::new();
    table
        .routes()
        .iter()
        .chain(table.listener_routes().map(|(_, r)| r))
        .flat_map(|r| std::iter::once(&r.pool).chain(r.previews.iter().map(|(_, p)| p)))
        .chain(table.tcp_routes().iter().map(|r| &r.pool))
        .flat_map(|p| p.targets.iter().map(move |t| (p.name.as_str(), &**t)))
        .filter(|(_, t)| seen.insert(t.addr))
        .collect()
}

/// A metric's `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn requests(out: &mut String, routes: &[RouteRow]) {
    header(
        out,
        "cove_gateway_requests_total",
        "counter",
        "Requests answered, by route, service and status class.",
    );
    for r in routes {
        let labels = r.labels();
        for class in 1..=5 {
            let _ = writeln!(
                out,
                "cove_gateway_requests_total{{{labels},code=\"{class}xx\"}} {}",
                r.stats.requests(class)
            );
        }
    }
}

fn durations(out: &mut String, routes: &[RouteRow]) {
    header(
        out,
        "cove_gateway_request_duration_seconds",
        "histogram",
        "Time to answer, from the request's head to the response's head.",
    );
    for r in routes {
        let (s, labels) = (r.stats, r.labels());
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += s.in_bucket(i);
            let _ = writeln!(
                out,
                "cove_gateway_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}"
            );
        }
        cumulative += s.in_bucket(BUCKETS.len());
        let _ = writeln!(
            out,
            "cove_gateway_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {cumulative}\ncove_gateway_request_duration_seconds_sum{{{labels}}} {}\ncove_gateway_request_duration_seconds_count{{{labels}}} {cumulative}",
            s.sum_micros() as f64 / 1e6
        );
    }
}

fn upstream_errors(out: &mut String, routes: &[RouteRow]) {
    header(
        out,
        "cove_gateway_upstream_errors_total",
        "counter",
        "Requests whose upstream failed: no connection, an error, a timeout.",
    );
    for r in routes {
        let _ = writeln!(
            out,
            "cove_gateway_upstream_errors_total{{{}}} {}",
            r.labels(),
            r.stats.upstream_errors()
        );
    }
}

fn targets(out: &mut String, routes: &[RouteRow]) {
    header(
        out,
        "cove_gateway_targets",
        "gauge",
        "Targets a route sends to now.",
    );
    for r in routes {
        let _ = writeln!(out, "cove_gateway_targets{{{}}} {}", r.labels(), r.targets);
    }
}

fn in_flight(out: &mut String, targets: &[(&str, &Target)]) {
    header(
        out,
        "cove_gateway_in_flight",
        "gauge",
        "Requests (and TCP connections) a target is serving now.",
    );
    for (service, t) in targets {
        let _ = writeln!(
            out,
            "cove_gateway_in_flight{{service=\"{}\",target=\"{}\"}} {}",
            label(service),
            t.addr,
            t.in_flight()
        );
    }
}

fn ejections(out: &mut String, targets: &[(&str, &Target)]) {
    header(
        out,
        "cove_gateway_ejections_total",
        "counter",
        "Times passive health left a target out.",
    );
    for (service, t) in targets {
        let _ = writeln!(
            out,
            "cove_gateway_ejections_total{{service=\"{}\",target=\"{}\"}} {}",
            label(service),
            t.addr,
            t.ejections()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::RouteStats;
    use super::render;
    use crate::table::{Outcome, Policy, Pool, Route, Table, Target, TcpRoute};

    /// Every metric of a table with an HTTP route (an odd name), a TCP
    /// route and a target both share, exactly as Prometheus reads it.
    #[test]
    fn the_text_is_exactly_the_exposition_format() {
        let shared = Target::new("127.0.0.1:9001".parse().unwrap());
        let other = Target::new("127.0.0.1:9002".parse().unwrap());
        let web = Pool::new(
            "w\"e\\b",
            vec![shared.clone(), other.clone()],
            Policy::RoundRobin,
        );
        let db = Pool::new("db", vec![shared.clone()], Policy::RoundRobin);
        let route = Route::new(Some("a.test"), "/api", web);
        route.stats.record(200, Duration::from_millis(3));
        route.stats.record(502, Duration::from_secs(12));
        route.stats.upstream_error();
        let _busy = other.begin();
        for _ in 0..5 {
            other.record(Outcome::ServerError, 1);
        }
        let tcp = TcpRoute {
            listen: "127.0.0.1:5432".parse().unwrap(),
            pool: db,
            stats: RouteStats::new(),
        };
        let table = Table::new(vec![route]).with_tcp(vec![tcp]);
        let text = render(&table);
        assert_eq!(text, include_str!("../tests/metrics.prom"));
    }

    /// Listener routes get rows of their own (`http://ADDR`); previews'
    /// targets are listed with their pool's name.
    #[test]
    fn listener_routes_and_previews_targets_are_counted() {
        let base = Pool::new(
            "api",
            vec![Target::new("127.0.0.1:9001".parse().unwrap())],
            Policy::RoundRobin,
        );
        let feat = Pool::new(
            "api@feat",
            vec![Target::new("127.0.0.1:9101".parse().unwrap())],
            Policy::RoundRobin,
        );
        let route = Route {
            previews: vec![("feat".to_string(), feat)].into(),
            ..Route::new(None, "/", base)
        };
        route.stats.record(200, Duration::from_millis(3));
        let table =
            Table::new(vec![]).with_listeners(vec![("127.0.0.5:8000".parse().unwrap(), route)]);
        let text = render(&table);
        assert!(
            text.contains(
                "cove_gateway_requests_total{route=\"http://127.0.0.5:8000\",service=\"api\",code=\"2xx\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "cove_gateway_in_flight{service=\"api@feat\",target=\"127.0.0.1:9101\"} 0\n"
            ),
            "{text}"
        );
    }
}
