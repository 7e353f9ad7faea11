//! Addresses: each project's block of 4,096 (on loopback, and in the
//! containers' range), each service's range of 64 in it, each instance's
//! slot (the scheme is in [`super`]'s doc); the ports a service is
//! reached on, and how many replicas fit.

use std::net::Ipv4Addr;
use std::path::Path;

use cove_spec::App;
use cove_spec::model::Service;
use indexmap::IndexMap;

use super::{PlanError, state_dir};
use crate::fnv::fnv;

/// Most instances of one service at once (replicas, plus the new ones of a
/// rolling deploy): slots 1..=62 of its 64 addresses (none ends in .0 or
/// .255).
pub const MAX_INSTANCES: u32 = 62;

/// Most services of one app run natively (64 address ranges).
pub const MAX_SERVICES: usize = 64;

/// Address of global `slot` of the app whose range is `net`:
/// `127.64.0.0 + 4096·net + slot`.
pub fn address(net: u16, slot: u32) -> Ipv4Addr {
    let n = u32::from(net % (1 << 10));
    let g = slot % 4096;
    if slot & CONTAINER != 0 {
        return Ipv4Addr::from(u32::from(CONTAINER_NET) + n * 4096 + g);
    }
    Ipv4Addr::from((127u32 << 24) + (64 << 16) + n * 4096 + g)
}

/// Set on the global slots of services run as containers: their replicas'
/// addresses are in the project's container network, the same block of
/// 4,096 at the same offsets, in 10.192.0.0/10 instead of 127.64.0.0/10.
pub const CONTAINER: u32 = 1 << 16;
/// The start of the container networks' range.
pub const CONTAINER_NET: Ipv4Addr = Ipv4Addr::new(10, 192, 0, 0);

/// Whether `ip` is in the container networks' range.
pub fn is_container_address(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => u32::from(v4) >> 22 == u32::from(CONTAINER_NET) >> 22,
        std::net::IpAddr::V6(_) => false,
    }
}

/// The project's container network: its subnet (a /20) and its gateway
/// (the host's side; an offset no instance takes: slot 63 of the first
/// service's range).
pub fn container_network(net: u16) -> (String, Ipv4Addr) {
    let base = address(net, CONTAINER);
    (format!("{base}/20"), address(net, CONTAINER | 63))
}

/// The app's address range: its lease (see [`crate::lease`]), else the one
/// it would try first.
pub fn net_of(app: &App, project_dir: &Path) -> u16 {
    crate::lease::recorded(&state_dir(app, project_dir))
        .unwrap_or_else(|| project_net(&app.name, project_dir))
}

/// The address range an app tries first: FNV-1a of its name and
/// directory, 10 bits.
pub fn project_net(name: &str, dir: &Path) -> u16 {
    let h = fnv(name
        .bytes()
        .chain([0])
        .chain(dir.as_os_str().as_encoded_bytes().iter().copied()));
    ((h ^ (h >> 10) ^ (h >> 20)) & 0x3ff) as u16
}

/// Each service's range index (0..64): from its name's hash, the next free
/// one on a collision, names taken in sorted order (so the result depends
/// only on the set of names). `None` with more than [`MAX_SERVICES`].
pub fn service_indexes<'a>(names: impl Iterator<Item = &'a str>) -> Option<IndexMap<&'a str, u32>> {
    let mut sorted: Vec<&str> = names.collect();
    sorted.sort_unstable();
    if sorted.len() > MAX_SERVICES {
        return None;
    }
    let mut taken = [false; MAX_SERVICES];
    let mut out = IndexMap::new();
    for name in sorted {
        let mut i = fnv(name.bytes()) as usize % MAX_SERVICES;
        while taken[i] {
            i = (i + 1) % MAX_SERVICES;
        }
        taken[i] = true;
        out.insert(name, i as u32);
    }
    Some(out)
}

/// The index of service `name`. Every service of the app has one
/// ([`service_indexes`] was given all their names); looked up, never
/// indexed, a name it lacks gets 0.
pub(super) fn index_of(indexes: &IndexMap<&str, u32>, name: &str) -> u32 {
    indexes.get(name).copied().unwrap_or_default()
}

/// The service's ports: `ports` targets, then `expose`, without repeats.
pub(super) fn service_ports(s: &Service) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    let exposed = s.exposed().into_iter().map(|e| e.port);
    for p in s.ports.iter().map(|p| p.target).chain(exposed) {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Whether the service declares `port` for UDP only (`ports` with
/// `protocol: udp`, `expose: 53/udp`): nothing to connect to over TCP.
pub(super) fn udp_only(s: &Service, port: u16) -> bool {
    let udp = |proto: &str| proto.eq_ignore_ascii_case("udp");
    let mut protocols: Vec<&str> = s
        .ports
        .iter()
        .filter(|p| p.target == port)
        .map(|p| p.protocol.as_str())
        .collect();
    let exposed = s.exposed();
    protocols.extend(
        exposed
            .iter()
            .filter(|e| e.port == port)
            .map(|e| e.protocol.as_str()),
    );
    !protocols.is_empty() && protocols.iter().all(|p| udp(p))
}

/// Each service's replicas (or `autoscale.max`) fit in half its range: a
/// rolling deploy needs room for new ones beside the old.
pub(super) fn replica_limits(app: &App) -> Vec<PlanError> {
    let mut errors = Vec::new();
    for (name, svc) in &app.services {
        let autoscale_max = svc
            .x_cove
            .as_ref()
            .and_then(|x| x.autoscale.as_ref())
            .map_or(0, |a| a.max);
        let most = autoscale_max.max(svc.replicas());
        // Where it is asked for: `autoscale.max`, `deploy.replicas` or `scale`.
        let field: Vec<String> = if autoscale_max == most {
            vec!["x-cove".into(), "autoscale".into(), "max".into()]
        } else if svc.deploy.as_ref().and_then(|d| d.replicas).is_some() {
            vec!["deploy".into(), "replicas".into()]
        } else {
            vec!["scale".into()]
        };
        if most > MAX_INSTANCES / 2 {
            errors.push(PlanError {
                service: name.clone(),
                message: format!(
                    "asks for {most} replicas; natively a service runs at most {}",
                    MAX_INSTANCES / 2
                ),
                hint:
                    "run fewer replicas (a rolling deploy needs room for new ones beside the old)"
                        .into(),
                field,
                machine: false,
                written: false,
            });
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_per_service_and_replica() {
        assert_eq!(address(0, 1), Ipv4Addr::new(127, 64, 0, 1));
        assert_eq!(address(0, 64 + 62), Ipv4Addr::new(127, 64, 0, 126));
        assert_eq!(address(0, 3 * 64 + 62), Ipv4Addr::new(127, 64, 0, 254));
        assert_eq!(address(0, 4 * 64 + 1), Ipv4Addr::new(127, 64, 1, 1));
        assert_eq!(
            address(1023, 63 * 64 + 62),
            Ipv4Addr::new(127, 127, 255, 254)
        );
        // Ranges of neighbouring apps do not overlap.
        assert_eq!(address(1, 1), Ipv4Addr::new(127, 64, 16, 1));
        let a = project_net("shop", Path::new("/home/a/shop"));
        assert_eq!(a, project_net("shop", Path::new("/home/a/shop")), "stable");
        assert_ne!(a, project_net("shop", Path::new("/home/b/shop")));
        assert!(a < 1 << 10);
        // Service ranges: stable, distinct, independent of the others.
        let names = ["web", "db", "cache", "worker"];
        let i = service_indexes(names.into_iter()).unwrap();
        let mut seen: Vec<u32> = i.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 4);
        assert!(seen.iter().all(|x| *x < 64));
        let fewer = service_indexes(["web", "db"].into_iter()).unwrap();
        assert_eq!((fewer["web"], fewer["db"]), (i["web"], i["db"]));
        let many: Vec<String> = (0..65).map(|n| format!("s{n}")).collect();
        assert!(service_indexes(many.iter().map(String::as_str)).is_none());
        let full: Vec<String> = (0..64).map(|n| format!("s{n}")).collect();
        assert_eq!(
            service_indexes(full.iter().map(String::as_str))
                .unwrap()
                .len(),
            64
        );
    }
}
