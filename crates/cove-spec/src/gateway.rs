//! The gateway's values in `x-cove`, typed: addresses it listens on
//! (`gateway.listen`, `metrics`, `tls.listen`, a route's `listen`), a
//! route's `timeout` and `max_body`; and the checks of a route's `path`
//! and `host`. The loader reports each value that does not parse where it
//! is written (`checks.rs`); the model then holds them as
//! [`Written`](crate::policy::Written) values, printed as written.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

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
