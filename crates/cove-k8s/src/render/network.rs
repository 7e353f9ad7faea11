//! Networks → NetworkPolicies, and `network_mode: service:NAME` → one pod.
//!
//! **One pod.** A service with `network_mode: service:x` shares x's
//! network namespace: on Kubernetes its container runs in x's pod (a
//! second container of x's workload), with no workload and no Service of
//! its own; its ports are x's pod's, so x's Service lists them. Its other
//! `depends_on` are not waited for (warning): the pod starts as one.
//!
//! **Networks.** When the app defines more than one network, each pod is
//! labelled `cove.dev/network-NAME: "true"` for each network its services
//! join, and each network gets a NetworkPolicy: its pods take traffic from
//! pods of the same network. Policies add up, so a pod on two networks
//! takes traffic from both; pods that share no network cannot talk. A
//! service that publishes ports (`ports:` with `published`) or has routes
//! (`x-cove.routes`) also takes traffic from anywhere on those ports (the
//! Ingress controller, a LoadBalancer), as its published ports are
//! reachable from outside in Compose. Only ingress is restricted; egress
//! (DNS among it) is left open. With one network (Compose's `default`)
//! nothing is rendered: every pod may talk to every other.

use std::collections::{BTreeMap, BTreeSet};

use cove_spec::App;
use cove_spec::model::Service;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Ctx, Options, RenderError, Rendered, container, probes, recipes, secrets, storage};
use crate::names::dns_label;
use crate::{Object, PROJECT_LABEL, SERVICE_LABEL};

/// The pod label of membership in network `name`.
/// (`cove.dev/network-NAME`; the name part is a DNS-1123 label, as a
/// label key's must be).
pub fn network_label(name: &str) -> String {
    format!("cove.dev/{}", dns_label(&format!("network-{name}")))
}

/// The service whose network namespace `svc` joins
/// (`network_mode: service:NAME`).
pub(crate) fn joins(svc: &Service) -> Option<&str> {
    svc.other
        .get("network_mode")
        .and_then(|m| m.as_str())
        .and_then(|m| m.strip_prefix("service:"))
}

/// The service whose pod runs `name`'s container: `name` itself, or the
/// end of its `network_mode: service:` chain (bounded by the number of
/// services, so a cycle ends).
pub(crate) fn pod_owner<'a>(app: &'a App, name: &'a str) -> &'a str {
    let mut at = name;
    for _ in 0..=app.services.len() {
        match app.services.get(at).and_then(joins) {
            Some(next) if app.services.contains_key(next) => at = next,
            _ => return at,
        }
    }
    at
}

/// The services whose containers run in `owner`'s pod: `owner` first,
/// then the others in the app's order.
pub(crate) fn group<'a>(app: &'a App, owner: &'a str) -> Vec<&'a str> {
    let mut out = vec![owner];
    for (name, svc) in &app.services {
        if name != owner && joins(svc).is_some() && pod_owner(app, name) == owner {
            out.push(name.as_str());
        }
    }
    out
}

/// Adds to `pod` (the pod of `ctx`'s service) the containers of the
/// services that join its network namespace, with their mounts and
/// secrets.
pub(super) fn sidecars(
    ctx: &Ctx,
    pod: &mut PodSpec,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    for name in group(ctx.app, ctx.name).into_iter().skip(1) {
        let svc = &ctx.app.services[name];
        let jctx = Ctx::new(ctx.app, ctx.opts, name);
        let mut c = container::container(&jctx, out)?;
        recipes::apply(svc, &mut c, storage::recipe_data_on_claim(ctx.app, name));
        probes::apply(&jctx, &mut c, out)?;
        storage::mounts(&jctx, pod, &mut c, out)?;
        secrets::mounts(&jctx, pod, &mut c, out)?;
        let lost: Vec<&str> = svc
            .depends_on
            .keys()
            .map(String::as_str)
            .filter(|d| pod_owner(ctx.app, d) != ctx.name)
            .collect();
        if !lost.is_empty() {
            out.warnings.push(format!(
                "{name}: depends_on: runs in the pod of `{}` (network_mode), which does not wait for {}",
                ctx.name,
                lost.join(", ")
            ));
        }
        pod.containers.push(c);
    }
    Ok(())
}

/// Whether the app's networks are restricted: more than one defined.
fn restricted(app: &App) -> bool {
    app.networks.len() > 1
}

/// The networks the pod of `owner` joins (its services').
fn networks_of<'a>(app: &'a App, owner: &'a str) -> BTreeSet<&'a str> {
    group(app, owner)
        .into_iter()
        .flat_map(|n| app.services[n].networks.keys().map(String::as_str))
        .collect()
}

/// Labels the pods with their networks and renders one NetworkPolicy per
/// network (when the app has more than one), plus one per service that is
/// reachable from outside.
pub(super) fn project(app: &App, opts: &Options, out: &mut Rendered) {
    for (name, svc) in &app.services {
        match svc.other.get("network_mode").and_then(|m| m.as_str()) {
            None => {}
            Some(m) if m.starts_with("service:") => {}
            Some(m) => out.warnings.push(format!(
                "{name}: network_mode: `{m}` has no counterpart here; the pod has a network of its own"
            )),
        }
    }
    if !restricted(app) {
        return;
    }
    let project = dns_label(&app.name);
    let mut policies = Vec::new();
    for o in &mut out.objects {
        let Some(service) = o
            .metadata()
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_LABEL))
            .cloned()
        else {
            continue;
        };
        let Some(owner) = app.services.keys().find(|n| dns_label(n) == service) else {
            continue;
        };
        let Some(template) = storage::pod_template_mut(o) else {
            continue;
        };
        let labels = template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(BTreeMap::new);
        for net in networks_of(app, owner) {
            labels.insert(network_label(net), "true".into());
        }
        // Reachable from outside: published ports and routes.
        let outside = outside_ports(app, owner, template.spec.as_ref());
        if !outside.is_empty() {
            policies.push(policy(
                opts,
                &project,
                &dns_label(&format!("{owner}-outside")),
                BTreeMap::from([
                    (PROJECT_LABEL.to_string(), project.clone()),
                    (SERVICE_LABEL.to_string(), service.clone()),
                ]),
                NetworkPolicyIngressRule {
                    from: None,
                    ports: Some(outside),
                },
            ));
        }
    }
    for net in app.networks.keys() {
        let member = BTreeMap::from([
            (PROJECT_LABEL.to_string(), project.clone()),
            (network_label(net), "true".to_string()),
        ]);
        policies.push(policy(
            opts,
            &project,
            &dns_label(&format!("network-{net}")),
            member.clone(),
            NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(member),
                        ..LabelSelector::default()
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: None,
            },
        ));
    }
    out.objects.extend(policies);
}

fn policy(
    opts: &Options,
    project: &str,
    name: &str,
    selects: BTreeMap<String, String>,
    rule: NetworkPolicyIngressRule,
) -> Object {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: opts.namespace.clone(),
            labels: Some(BTreeMap::from([
                (PROJECT_LABEL.to_string(), project.to_string()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "cove".to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selects),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![rule]),
            egress: None,
        }),
    }
    .into()
}

/// The ports of `owner`'s pod reachable from outside the app: the targets
/// of published `ports:`, and, for a service with routes, the route's
/// `port` or else every port of its container.
fn outside_ports(app: &App, owner: &str, spec: Option<&PodSpec>) -> Vec<NetworkPolicyPort> {
    let mut ports: BTreeSet<(i32, String)> = BTreeSet::new();
    for name in group(app, owner) {
        let svc = &app.services[name];
        for p in &svc.ports {
            if p.published.is_some() {
                ports.insert((i32::from(p.target), p.protocol.to_ascii_uppercase()));
            }
        }
        let routes = svc.x_cove.as_ref().and_then(|x| x.routes.as_ref());
        for r in routes.into_iter().flatten() {
            match r.port {
                Some(port) => {
                    ports.insert((i32::from(port), "TCP".into()));
                }
                None => {
                    let c = spec
                        .into_iter()
                        .flat_map(|s| &s.containers)
                        .find(|c| c.name == dns_label(name));
                    for p in c.into_iter().flat_map(|c| c.ports.iter().flatten()) {
                        ports.insert((
                            p.container_port,
                            p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        ));
                    }
                }
            }
        }
    }
    ports
        .into_iter()
        .map(|(port, protocol)| NetworkPolicyPort {
            port: Some(IntOrString::Int(port)),
            protocol: Some(protocol),
            end_port: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::storage::fixture::{get, load, pod, rendered};

    fn policy(o: &Object) -> &NetworkPolicySpec {
        match o {
            Object::NetworkPolicy(p) => p.spec.as_ref().unwrap(),
            other => panic!("{} is no NetworkPolicy", other.id()),
        }
    }

    fn pod_labels(o: &Object) -> BTreeMap<String, String> {
        let t = match o {
            Object::Deployment(d) => &d.spec.as_ref().unwrap().template,
            Object::StatefulSet(s) => &s.spec.as_ref().unwrap().template,
            Object::Job(j) => &j.spec.as_ref().unwrap().template,
            other => panic!("{} is no workload", other.id()),
        };
        t.metadata.as_ref().unwrap().labels.clone().unwrap()
    }

    #[test]
    fn network_mode_service_runs_the_container_in_that_pod() {
        let (_dir, app) = load(&[
            (
                "compose.yaml",
                b"services:
  vpn:
    image: example/vpn
    expose: [\"1194\"]
  app:
    image: example/app
    network_mode: service:vpn
    expose: [\"8080\"]
    volumes: [\"./app.conf:/etc/app.conf\", \"appdata:/data\"]
volumes:
  appdata: {}
",
            ),
            ("app.conf", b"x = 1\n"),
        ]);
        let r = rendered(&app);
        // One pod: vpn's, with both containers; a StatefulSet since the
        // joined service has a named volume.
        let set = get(&r, "StatefulSet/vpn");
        let p = pod(set);
        let names: Vec<&str> = p.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["vpn", "app"]);
        assert_eq!(p.containers[1].image.as_deref(), Some("example/app"));
        // Its mounts came along.
        let mounts = p.containers[1].volume_mounts.as_ref().unwrap();
        assert!(mounts.iter().any(|m| m.mount_path == "/etc/app.conf"));
        assert!(
            mounts
                .iter()
                .any(|m| m.mount_path == "/data" && m.name == "appdata")
        );
        // No workload, no Service of its own; its port is on vpn's.
        assert!(
            !r.objects
                .iter()
                .any(|o| o.name() == "app" && o.kind() != "ConfigMap")
        );
        let Object::Service(s) = get(&r, "Service/vpn") else {
            unreachable!()
        };
        let ports: Vec<i32> = s
            .spec
            .as_ref()
            .unwrap()
            .ports
            .iter()
            .flatten()
            .map(|p| p.port)
            .collect();
        assert!(ports.contains(&1194) && ports.contains(&8080), "{ports:?}");
    }

    const TWO_NETWORKS: &[u8] = b"services:
  web:
    image: example/web
    ports: [\"8080:80\"]
    networks: [front]
  api:
    image: example/api
    expose: [\"9000\"]
    networks: [front, back]
  db:
    image: example/db
    expose: [\"5432\"]
    networks: [back]
networks:
  front: {}
  back: {}
";

    #[test]
    fn networks_become_policies_when_there_are_several() {
        let (_dir, app) = load(&[("compose.yaml", TWO_NETWORKS)]);
        let r = rendered(&app);
        let front = network_label("front");
        let back = network_label("back");
        let labels = |n: &str| pod_labels(get(&r, &format!("Deployment/{n}")));
        assert_eq!(labels("web").get(&front).map(String::as_str), Some("true"));
        assert!(!labels("web").contains_key(&back));
        assert!(labels("api").contains_key(&front) && labels("api").contains_key(&back));
        assert!(labels("db").contains_key(&back) && !labels("db").contains_key(&front));
        // A policy per network: its members take traffic from its members.
        for (net, label) in [("front", &front), ("back", &back)] {
            let p = policy(get(&r, &format!("NetworkPolicy/network-{net}")));
            let sel = p
                .pod_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap();
            assert_eq!(sel.get(label).map(String::as_str), Some("true"));
            assert_eq!(
                p.policy_types.as_deref(),
                Some(&["Ingress".to_string()][..])
            );
            let from = p.ingress.as_ref().unwrap()[0].from.as_ref().unwrap();
            assert_eq!(
                from[0].pod_selector.as_ref().unwrap().match_labels.as_ref(),
                Some(sel)
            );
        }
        // So web and db share no policy that lets one reach the other:
        // every policy selecting db admits only `back` members, web is not one.
        for o in r.objects.iter().filter(|o| o.kind() == "NetworkPolicy") {
            let p = policy(o);
            let sel = p
                .pod_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap();
            let selects_db = sel.iter().all(|(k, v)| labels("db").get(k) == Some(v));
            if selects_db {
                for rule in p.ingress.iter().flatten() {
                    let from = rule.from.as_ref().expect("db is not open to all");
                    for peer in from {
                        let m = peer
                            .pod_selector
                            .as_ref()
                            .unwrap()
                            .match_labels
                            .as_ref()
                            .unwrap();
                        assert!(!m.iter().all(|(k, v)| labels("web").get(k) == Some(v)));
                    }
                }
            }
        }
        // web publishes 80: reachable from anywhere on that port only.
        let p = policy(get(&r, "NetworkPolicy/web-outside"));
        let rule = &p.ingress.as_ref().unwrap()[0];
        assert_eq!(rule.from, None);
        let ports = rule.ports.as_ref().unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, Some(IntOrString::Int(80)));
        assert!(!r.objects.iter().any(|o| o.name() == "db-outside"));
    }

    #[test]
    fn one_network_renders_no_policy() {
        let (_dir, app) = load(&[(
            "compose.yaml",
            b"services:\n  web:\n    image: example/web\n    ports: [\"8080:80\"]\n  db:\n    image: example/db\n",
        )]);
        let r = rendered(&app);
        assert!(!r.objects.iter().any(|o| o.kind() == "NetworkPolicy"));
        assert!(
            !pod_labels(get(&r, "Deployment/web"))
                .keys()
                .any(|k| k.contains("network"))
        );
    }
}
