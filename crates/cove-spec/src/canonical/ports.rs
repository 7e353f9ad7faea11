//! Ports: the short form `[IP:][HOST:]CONTAINER[/PROTO]` and its long form.

use crate::diag::{Diagnostic, Diagnostics};
use crate::node::{Kind, Map, Node};

/// A port in long form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    pub host_ip: Option<String>,
    pub published: Option<String>,
    pub target: u16,
    pub protocol: String,
}

/// Parses `[IP:][HOST:]CONTAINER[/PROTO]`; ranges expand to one entry per
/// container port.
pub fn parse_port(spec: &str) -> Result<Vec<PortSpec>, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => {
            let p = p.to_ascii_lowercase();
            if !matches!(p.as_str(), "tcp" | "udp" | "sctp") {
                return Err(format!("invalid protocol `{p}` (use tcp, udp or sctp)"));
            }
            (r, p)
        }
        None => (spec, "tcp".to_string()),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.len() {
        1 => (None, None, parts[0]),
        2 => (None, Some(parts[0]), parts[1]),
        n => (
            Some(parts[..n - 2].join(":")),
            Some(parts[n - 2]),
            parts[n - 1],
        ),
    };
    let ip = ip.map(|ip| ip.trim_start_matches('[').trim_end_matches(']').to_string());
    if let Some(ip) = &ip
        && !ip.is_empty()
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(format!("invalid IP address `{ip}`"));
    }
    if container.is_empty() {
        return Err("no container port given".to_string());
    }
    let (c_start, c_end) =
        port_range(container).map_err(|e| format!("invalid container port: {e}"))?;
    let host = host.filter(|h| !h.is_empty());
    let host_range = match host {
        Some(h) => Some(port_range(h).map_err(|e| format!("invalid host port: {e}"))?),
        None => None,
    };
    let count = u32::from(c_end - c_start) + 1;
    let mut out = Vec::new();
    for i in 0..count {
        let target = c_start + i as u16;
        let published = match host_range {
            None => None,
            Some((hs, he)) if count == 1 => Some(if hs == he {
                hs.to_string()
            } else {
                format!("{hs}-{he}")
            }),
            Some((hs, he)) => {
                if u32::from(he - hs) + 1 != count {
                    return Err(format!(
                        "host range `{}` and container range `{container}` differ in length",
                        host.unwrap_or_default()
                    ));
                }
                Some((hs + i as u16).to_string())
            }
        };
        out.push(PortSpec {
            host_ip: ip.clone().filter(|s| !s.is_empty()),
            published,
            target,
            protocol: protocol.clone(),
        });
    }
    Ok(out)
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let one = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port number (0-65535)"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b < a {
                return Err(format!("range `{s}` ends before it starts"));
            }
            Ok((a, b))
        }
        None => {
            let p = one(s)?;
            Ok((p, p))
        }
    }
}

pub(super) fn ports(n: &mut Node, diags: &mut Diagnostics) {
    let Kind::Seq(items) = &n.kind else {
        return;
    };
    let mut out = Vec::new();
    for it in items {
        let span = it.span;
        match &it.kind {
            Kind::Scalar(s) => match parse_port(&s.text) {
                Ok(specs) => {
                    for p in specs {
                        let mut m = Map::default();
                        if let Some(ip) = p.host_ip {
                            m.insert("host_ip", span, Node::string(span, ip));
                        }
                        m.insert("target", span, Node::plain(span, p.target.to_string()));
                        if let Some(pb) = p.published {
                            m.insert("published", span, Node::string(span, pb));
                        }
                        m.insert("protocol", span, Node::string(span, p.protocol));
                        out.push(Node::map(span, m));
                    }
                }
                Err(e) => diags.push(
                    Diagnostic::error(span, format!("invalid port `{}`: {e}", s.text)).with_hint(
                        "the short form is `[IP:][HOST:]CONTAINER[/PROTOCOL]`, e.g. `8080:80` or `127.0.0.1:5432:5432/tcp`",
                    ),
                ),
            },
            Kind::Map(m) => {
                let mut m = m.clone();
                if let Some(p) = m.get_mut("published")
                    && let Some(t) = p.as_text().map(str::to_string) {
                        *p = Node::string(p.span, t);
                    }
                out.push(Node::map(span, m));
            }
            _ => out.push(it.clone()),
        }
    }
    let tag = n.tag;
    *n = Node::seq(n.span, out);
    n.tag = tag;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_short_form() {
        let p = parse_port("8080:80").unwrap();
        assert_eq!(p[0].published.as_deref(), Some("8080"));
        assert_eq!(p[0].target, 80);
        let p = parse_port("127.0.0.1:5432:5432/udp").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p[0].protocol, "udp");
        let p = parse_port("[::1]:80:80").unwrap();
        assert_eq!(p[0].host_ip.as_deref(), Some("::1"));
        let p = parse_port("3000-3002:4000-4002").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[2].target, p[2].published.as_deref()),
            (4002, Some("3002"))
        );
        let p = parse_port("8000-8010:80").unwrap();
        assert_eq!(p[0].published.as_deref(), Some("8000-8010"));
        let p = parse_port("80").unwrap();
        assert_eq!(p[0].published, None);
        for bad in ["", "abc", "1:2:3:4x", "80/icmp", "99999", "10-5", "1-3:1-2"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }
}
