//! The gateway's values in `x-cove`, typed: addresses it listens on
//! (`gateway.listen`, `metrics`, `tls.listen`, a route's `listen`), a
//! route's `timeout` and `max_body`; and the checks of a route's `path`
//! and `host`. [`check`] reports each value that does not parse where it
//! is written (the loader runs it); the model then holds them as
//! [`Written`](crate::policy::Written) values, printed as written.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics};
use crate::node::{Map, Node};
use crate::policy::Written;

/// `HOST:PORT`, also `localhost:PORT` (the IPv4 loopback address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub SocketAddr);

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Listen, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Listen(a));
        }
        if let Some(Ok(p)) = s.strip_prefix("localhost:").map(str::parse::<u16>) {
            return Ok(Listen(SocketAddr::from(([127, 0, 0, 1], p))));
        }
        Err(format!("`{s}` is not an address with a port"))
    }
}

/// How long a service may take to answer: a positive duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout(pub Duration);

impl FromStr for Timeout {
    type Err = String;
    fn from_str(s: &str) -> Result<Timeout, String> {
        match crate::units::parse_duration(s)? {
            d if d.is_zero() => Err("is 0: no answer could arrive".into()),
            d => Ok(Timeout(d)),
        }
    }
}

/// A size in bytes (`10m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        crate::units::parse_bytes(s).map(Size)
    }
}

/// In `x-cove`'s schema a written value is the string it was written as.
impl<T> schemars::JsonSchema for Written<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

/// Why a route's `path` is not one: it must start with `/`.
pub fn path_problem(path: &str) -> Option<(String, &'static str)> {
    (!path.starts_with('/')).then(|| {
        (
            format!("`path` is `{path}`, not a path"),
            "start it with `/`, e.g. `/api`",
        )
    })
}

/// Why a route's `host` is not a host name (compared in lower case).
pub fn host_problem(host: &str) -> Option<(String, &'static str)> {
    let h = host.to_ascii_lowercase();
    (h.is_empty() || h.contains(['/', ':', ' '])).then(|| {
        (
            format!("`host` is `{h}`, not a host name"),
            "write the name alone, without scheme or port, e.g. `api.example.test`",
        )
    })
}

/// The checks of the project's `x-cove` (`root`) and of each service's
/// (`services`: name → its `x-cove`): each value that does not parse, at
/// its place.
pub fn check<'a>(
    root: Option<&Map>,
    services: impl Iterator<Item = (&'a str, &'a Map)>,
    diags: &mut Diagnostics,
) {
    let gateway = root.and_then(|x| x.get("gateway")).and_then(Node::as_map);
    for (key, what, hint) in [
        (
            "listen",
            "`x-cove.gateway.listen`",
            "write an address and a port, e.g. `127.0.0.1:2683` or `[::1]:2683`",
        ),
        (
            "metrics",
            "`x-cove.gateway.metrics`",
            "write an address and a port, e.g. `127.0.0.1:9683`",
        ),
    ] {
        if let Some(n) = gateway.and_then(|g| g.get(key)) {
            listen(n, what, hint, diags);
        }
    }
    let tls = gateway.and_then(|g| g.get("tls")).and_then(Node::as_map);
    if let Some(n) = tls.and_then(|t| t.get("listen")) {
        let hint = "write an address and a port, e.g. `127.0.0.1:2443`";
        listen(n, "`x-cove.gateway.tls.listen`", hint, diags);
    }
    if let Some(n) = gateway.and_then(|g| g.get("max_connections"))
        && n.as_int() == Some(0)
    {
        diags.push(
            Diagnostic::error(
                n.span,
                "`x-cove.gateway.max_connections` is 0: no client could connect",
            )
            .with_hint("leave it out (10000) or give a positive number"),
        );
    }
    for (name, x) in services {
        let Some(routes) = x.get("routes").and_then(Node::as_seq) else {
            continue;
        };
        for (i, r) in routes.iter().enumerate() {
            let Some(r) = r.as_map() else { continue };
            route(name, i, r, diags);
        }
    }
}

/// A route's values: `path`, `host`, `listen`, `timeout`, `max_body`.
fn route(service: &str, i: usize, r: &Map, diags: &mut Diagnostics) {
    let mut problem = |n: &Node, message: String, hint: &str| {
        diags.push(
            Diagnostic::error(
                n.span,
                format!("service `{service}`: `x-cove.routes[{i}]`: {message}"),
            )
            .with_hint(hint),
        );
    };
    let text = |key: &str| r.get(key).and_then(|n| Some((n, n.as_str()?)));
    if let Some((n, p)) = text("path")
        && let Some((m, hint)) = path_problem(p)
    {
        problem(n, m, hint);
    }
    if let Some((n, h)) = text("host")
        && let Some((m, hint)) = host_problem(h)
    {
        problem(n, m, hint);
    }
    if let Some((n, l)) = text("listen")
        && let Err(m) = l.parse::<Listen>()
    {
        problem(
            n,
            format!("`listen`: {m}"),
            "write an address and a port, e.g. `127.0.0.1:16379`",
        );
    }
    if let Some((n, t)) = text("timeout") {
        match crate::units::parse_duration(t) {
            Ok(d) if d.is_zero() => problem(
                n,
                "`timeout` is 0: no answer could arrive".into(),
                "leave it out (60s) or give a positive duration such as `30s`",
            ),
            Ok(_) => {}
            Err(m) => problem(
                n,
                format!("`timeout`: {m}"),
                "write a duration such as `30s` or `2m`",
            ),
        }
    }
    if let Some((n, b)) = text("max_body")
        && let Err(m) = b.parse::<Size>()
    {
        problem(n, format!("`max_body`: {m}"), "write a size such as `10m`");
    }
}

/// An address to listen on, `what`, reported with `hint` when it is not one.
fn listen(n: &Node, what: &str, hint: &str, diags: &mut Diagnostics) {
    if let Some(t) = n.as_str()
        && let Err(m) = t.parse::<Listen>()
    {
        diags.push(Diagnostic::error(n.span, format!("{what}: {m}")).with_hint(hint));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse() {
        assert_eq!(
            "localhost:80".parse::<Listen>().unwrap().0,
            "127.0.0.1:80".parse().unwrap()
        );
        assert!("[::1]:2683".parse::<Listen>().is_ok());
        assert!("2791".parse::<Listen>().is_err());
        assert!("0s".parse::<Timeout>().is_err());
        assert_eq!(
            "2m".parse::<Timeout>(),
            Ok(Timeout(Duration::from_secs(120)))
        );
        assert_eq!("1k".parse::<Size>(), Ok(Size(1024)));
        assert!(path_problem("api").is_some() && path_problem("/api").is_none());
        assert!(host_problem("http://x").is_some() && host_problem("API.test").is_none());
    }
}
