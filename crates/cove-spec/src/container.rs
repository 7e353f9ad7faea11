//! What a service says of its container beyond what cove runs natively
//! (`cap_add`, `ulimits`, `devices`, `sysctls`, `extra_hosts`, ...),
//! typed: [`Service::container_options`]. Compose writes most of them in
//! two forms (a list or a map, a short string or a long mapping); the
//! schema has checked their types and the loader their sizes, and
//! the model keeps them as written (in [`Service::other`], printed by
//! `cove config` as they are), so this reading cannot fail.

use crate::model::{Build, Service};

/// A service's container settings, each in one form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerOptions {
    /// `ulimits`: name, soft, hard.
    pub ulimits: Vec<(String, i64, i64)>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `extra_hosts` as `NAME:ADDRESS`.
    pub extra_hosts: Vec<String>,
    pub init: bool,
    pub privileged: bool,
    pub read_only: bool,
    pub hostname: Option<String>,
    /// `sysctls` as name, value.
    pub sysctls: Vec<(String, String)>,
    /// `shm_size` in bytes.
    pub shm_size: Option<i64>,
    pub security_opt: Vec<String>,
    /// `devices` as `HOST:CONTAINER:PERMISSIONS`.
    pub devices: Vec<String>,
    pub group_add: Vec<String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    /// The `aliases` of every network the service lists.
    pub aliases: Vec<String>,
}

impl Service {
    /// Its container settings (see [`ContainerOptions`]).
    pub fn container_options(&self) -> ContainerOptions {
        let o = |k: &str| self.other.get(k);
        ContainerOptions {
            ulimits: ulimits_of(o("ulimits")),
            cap_add: strings(o("cap_add")),
            cap_drop: strings(o("cap_drop")),
            extra_hosts: match o("extra_hosts") {
                Some(serde_json::Value::Object(m)) => m
                    .iter()
                    .filter_map(|(k, v)| Some(format!("{k}:{}", v.as_str()?)))
                    .collect(),
                other => strings(other)
                    .into_iter()
                    .map(|h| h.replacen('=', ":", 1))
                    .collect(),
            },
            init: flag(o("init")),
            privileged: flag(o("privileged")),
            read_only: flag(o("read_only")),
            hostname: o("hostname").and_then(|h| h.as_str()).map(str::to_string),
            sysctls: pairs(o("sysctls")),
            shm_size: match o("shm_size") {
                Some(serde_json::Value::Number(n)) => n.as_i64(),
                Some(serde_json::Value::String(t)) => crate::units::parse_bytes(t)
                    .ok()
                    .and_then(|b| i64::try_from(b).ok()),
                _ => None,
            },
            security_opt: strings(o("security_opt")),
            devices: devices_of(o("devices")),
            group_add: scalars(o("group_add")),
            dns: scalars(o("dns")),
            dns_search: scalars(o("dns_search")),
            aliases: self
                .networks
                .values()
                .flat_map(|n| strings(n.get("aliases")))
                .collect(),
        }
    }
}

/// An `expose` entry: its (first) port and its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    pub port: u16,
    /// `tcp` unless written (`53/udp`).
    pub protocol: String,
}

impl Service {
    /// Its `expose` entries (`8080`, `53/udp`, `8000-8010/tcp`: the first
    /// port of a range); one without a port number is left out.
    pub fn exposed(&self) -> Vec<Exposed> {
        self.expose
            .iter()
            .filter_map(|e| {
                let (number, protocol) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
                Some(Exposed {
                    port: number.split('-').next()?.parse().ok()?,
                    protocol: protocol.to_string(),
                })
            })
            .collect()
    }
}

impl Build {
    /// `build.labels`, a map or a list of `KEY=VALUE`, as pairs.
    pub fn labels(&self) -> Vec<(String, String)> {
        match self.other.get("labels") {
            Some(serde_json::Value::Object(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect(),
            other => strings(other)
                .iter()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// A list of strings of the Compose file (empty when absent).
fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A string or a list of strings and numbers (`dns`, `group_add`).
fn scalars(v: Option<&serde_json::Value>) -> Vec<String> {
    let one = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match v {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// A map, or a list of `KEY=VALUE` (`sysctls`).
fn pairs(v: Option<&serde_json::Value>) -> Vec<(String, String)> {
    match v {
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        other => strings(other)
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv, String::new()),
            })
            .collect(),
    }
}

/// `devices`: `HOST[:CONTAINER[:PERMISSIONS]]`, or the long form
/// (`source`, `target`, `permissions`), as `HOST:CONTAINER:PERMISSIONS`.
fn devices_of(v: Option<&serde_json::Value>) -> Vec<String> {
    let Some(serde_json::Value::Array(a)) = v else {
        return Vec::new();
    };
    a.iter()
        .filter_map(|d| {
            let (host, container, perms) = match d {
                serde_json::Value::String(s) => {
                    let mut parts = s.splitn(3, ':');
                    let host = parts.next()?.to_string();
                    let container = parts.next().unwrap_or(&host).to_string();
                    let perms = parts.next().unwrap_or("rwm").to_string();
                    (host, container, perms)
                }
                serde_json::Value::Object(m) => {
                    let host = m.get("source")?.as_str()?.to_string();
                    let container = m
                        .get("target")
                        .and_then(|t| t.as_str())
                        .unwrap_or(&host)
                        .to_string();
                    let perms = m
                        .get("permissions")
                        .and_then(|p| p.as_str())
                        .unwrap_or("rwm")
                        .to_string();
                    (host, container, perms)
                }
                _ => return None,
            };
            Some(format!("{host}:{container}:{perms}"))
        })
        .collect()
}

fn flag(v: Option<&serde_json::Value>) -> bool {
    v.and_then(serde_json::Value::as_bool).unwrap_or(false)
}

/// Compose `ulimits` (`nofile: 1024` or `{soft, hard}`) as name, soft, hard.
fn ulimits_of(v: Option<&serde_json::Value>) -> Vec<(String, i64, i64)> {
    let Some(serde_json::Value::Object(map)) = v else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(name, v)| {
            let (soft, hard) = match v {
                serde_json::Value::Number(n) => (n.as_i64()?, n.as_i64()?),
                serde_json::Value::Object(o) => {
                    (o.get("soft")?.as_i64()?, o.get("hard")?.as_i64()?)
                }
                _ => return None,
            };
            Some((name.clone(), soft, hard))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_read_as_one() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "image": "x",
            "ulimits": {"nofile": {"soft": 1024, "hard": 2048}, "nproc": 64},
            "extra_hosts": {"db": "10.0.0.2"},
            "sysctls": {"net.core.somaxconn": 1024},
            "shm_size": "64m",
            "init": true,
            "networks": {"back": {"aliases": ["b"]}},
        }))
        .unwrap();
        let o = svc.container_options();
        assert_eq!(
            o.ulimits,
            [("nofile".into(), 1024, 2048), ("nproc".into(), 64, 64)]
        );
        assert_eq!(o.extra_hosts, ["db:10.0.0.2"]);
        assert_eq!(o.sysctls, [("net.core.somaxconn".into(), "1024".into())]);
        assert_eq!(o.shm_size, Some(64 << 20));
        assert!(o.init && !o.privileged);
        assert_eq!(o.aliases, ["b"]);
        let list: Service = serde_json::from_value(serde_json::json!({
            "image": "x", "extra_hosts": ["db=10.0.0.2"], "sysctls": ["a=1"]
        }))
        .unwrap();
        let o = list.container_options();
        let exposed: Service = serde_json::from_value(serde_json::json!({
            "image": "x", "expose": ["8080", "53/udp", "8000-8010/tcp", "x"]
        }))
        .unwrap();
        let e = exposed.exposed();
        assert_eq!(
            e.iter().map(|e| e.port).collect::<Vec<_>>(),
            [8080, 53, 8000]
        );
        assert_eq!(
            (e[0].protocol.as_str(), e[1].protocol.as_str()),
            ("tcp", "udp")
        );
        assert_eq!(o.extra_hosts, ["db:10.0.0.2"]);
        assert_eq!(o.sysctls, [("a".into(), "1".into())]);
    }
}
