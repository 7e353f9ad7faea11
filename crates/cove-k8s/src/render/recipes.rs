//! What a recipe's image needs on a cluster: the ports it listens on
//! (they feed the Service even when the file lists none) and the directory
//! where it keeps its data (put on a claim).
//!
//! The image is the one the file names (`mariadb:11`, `redis:7`, ...):
//! natively cove runs the host's programs instead, on a cluster the
//! image runs as it is, so what counts here is the image's own layout.

use cove_runtime::recipe::Recipe;
use cove_spec::model::Service;
use k8s_openapi::api::core::v1::{Container, EnvVar};

/// The recipe of a service, if any (`x-cove.recipe`, else the image name).
pub(crate) fn recipe(svc: &Service) -> Option<Recipe> {
    Recipe::detect(svc)
}

/// Whether the service runs a server that keeps data (not a `redis-cli`
/// one-shot of a `redis` image).
pub(crate) fn keeps_data(svc: &Service) -> bool {
    recipe(svc).is_some_and(|r| r.has_data(svc))
}

/// The ports the recipe's image listens on, as `(port, protocol)`: none
/// for a client command (`redis-cli ...`). Redis started with
/// `--cluster-enabled yes` also listens on its cluster bus (port + 10000).
pub fn ports(svc: &Service) -> Vec<(u16, &'static str)> {
    let Some(r) = recipe(svc) else {
        return Vec::new();
    };
    if !r.has_data(svc) {
        return Vec::new();
    }
    let tcp = |ports: &[u16]| ports.iter().map(|p| (*p, "tcp")).collect::<Vec<_>>();
    match r {
        Recipe::Redis => {
            let cluster = svc.command.as_ref().is_some_and(|c| {
                c.windows(2)
                    .any(|w| w[0] == "--cluster-enabled" && w[1] == "yes")
            });
            if cluster {
                tcp(&[6379, 16379])
            } else {
                tcp(&[6379])
            }
        }
        Recipe::Mariadb => tcp(&[3306]),
        Recipe::Postgres => tcp(&[5432]),
        // What the ActiveMQ Classic image exposes: OpenWire, STOMP, the
        // web console, AMQP, MQTT, WebSocket.
        Recipe::Activemq => tcp(&[61616, 61613, 8161, 5672, 1883, 61614]),
        Recipe::Rabbitmq { management: true } => tcp(&[5672, 15672]),
        Recipe::Rabbitmq { management: false } => tcp(&[5672]),
    }
}

/// Where the recipe's image keeps its data, for a service that keeps any.
pub(crate) fn data_dir(svc: &Service) -> Option<String> {
    let r = recipe(svc)?;
    if !r.has_data(svc) {
        return None;
    }
    let repo = svc
        .image
        .as_deref()
        .and_then(|i| i.split('@').next())
        .unwrap_or("");
    Some(match r {
        Recipe::Redis => "/data".into(),
        Recipe::Mariadb => "/var/lib/mysql".into(),
        Recipe::Postgres => {
            // PGDATA when the file sets it; the image's volume otherwise
            // (`/var/lib/postgresql` from PostgreSQL 18 on).
            if let Some(Some(dir)) = svc.environment.get("PGDATA") {
                return Some(dir.clone());
            }
            if postgres_major(repo).is_some_and(|m| m >= 18) {
                "/var/lib/postgresql".into()
            } else {
                "/var/lib/postgresql/data".into()
            }
        }
        Recipe::Activemq if repo.contains("activemq-classic") => "/opt/apache-activemq/data".into(),
        Recipe::Activemq => "/opt/activemq/data".into(),
        Recipe::Rabbitmq { .. } => "/var/lib/rabbitmq".into(),
    })
}

/// The major version in a `postgres:TAG` image name, when the tag starts
/// with one.
fn postgres_major(image: &str) -> Option<u32> {
    let (_, tag) = image.rsplit_once(':')?;
    let digits: String = tag.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// For PostgreSQL before 18 with its data on a claim, `PGDATA` one level
/// down (the recipe's ports are the container's through
/// `container::recipe_ports`): a fresh volume's root holds `lost+found`,
/// where `initdb` refuses to run.
pub(crate) fn apply(svc: &Service, main: &mut Container, data_on_claim: bool) {
    if data_on_claim
        && matches!(recipe(svc), Some(Recipe::Postgres))
        && !svc.environment.contains_key("PGDATA")
        && data_dir(svc).as_deref() == Some("/var/lib/postgresql/data")
    {
        main.env.get_or_insert_with(Vec::new).push(EnvVar {
            name: "PGDATA".into(),
            value: Some("/var/lib/postgresql/data/pgdata".into()),
            value_from: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::api::core::v1::Service as K8sService;

    use crate::Object;
    use crate::render::Options;
    use crate::render::storage::fixture::{get, load, load_file, pod, rendered, try_render};

    fn service(o: &Object) -> &K8sService {
        match o {
            Object::Service(s) => s,
            other => panic!("{} is no Service", other.id()),
        }
    }

    fn ports(o: &Object) -> BTreeSet<i32> {
        let s = service(o).spec.as_ref().unwrap();
        s.ports.iter().flatten().map(|p| p.port).collect()
    }

    fn headless(o: &Object) -> bool {
        service(o).spec.as_ref().unwrap().cluster_ip.as_deref() == Some("None")
    }

    /// (claim template names, mount path of the first claim).
    fn data(o: &Object) -> (Vec<String>, String) {
        let Object::StatefulSet(s) = o else {
            panic!("{} is no StatefulSet", o.id())
        };
        let spec = s.spec.as_ref().unwrap();
        let names: Vec<String> = spec
            .volume_claim_templates
            .iter()
            .flatten()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        let m = spec.template.spec.as_ref().unwrap().containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == names[0])
            .unwrap()
            .mount_path
            .clone();
        (names, m)
    }

    #[test]
    fn recipes_keep_their_image_their_ports_and_their_data_on_a_claim() {
        let (_dir, app) = load(&[(
            "compose.yaml",
            b"services:
  mysql:
    image: mariadb:11
  pg:
    image: postgres:16
  pg18:
    image: postgres:18
  cache:
    image: redis:7
  mq:
    image: apache/activemq-classic:5.18.3
  rabbit:
    image: rabbitmq:3-management
",
        )]);
        let r = rendered(&app);
        for (name, image, want_ports, dir) in [
            ("mysql", "mariadb:11", vec![3306], "/var/lib/mysql"),
            ("pg", "postgres:16", vec![5432], "/var/lib/postgresql/data"),
            ("pg18", "postgres:18", vec![5432], "/var/lib/postgresql"),
            ("cache", "redis:7", vec![6379], "/data"),
            (
                "mq",
                "apache/activemq-classic:5.18.3",
                vec![1883, 5672, 8161, 61613, 61614, 61616],
                "/opt/apache-activemq/data",
            ),
            (
                "rabbit",
                "rabbitmq:3-management",
                vec![5672, 15672],
                "/var/lib/rabbitmq",
            ),
        ] {
            let set = get(&r, &format!("StatefulSet/{name}"));
            let c = &pod(set).containers[0];
            assert_eq!(c.image.as_deref(), Some(image), "{name}");
            assert_eq!(
                data(set),
                (vec!["data".to_string()], dir.to_string()),
                "{name}"
            );
            let svc = get(&r, &format!("Service/{name}"));
            assert_eq!(ports(svc), want_ports.into_iter().collect(), "{name}");
            assert!(headless(svc), "{name}: a StatefulSet's Service is headless");
        }
        // PostgreSQL before 18 keeps its cluster one level down the claim
        // (the claim's root holds lost+found).
        let env = |name: &str| {
            pod(get(&r, &format!("StatefulSet/{name}"))).containers[0]
                .env
                .clone()
                .unwrap_or_default()
                .into_iter()
                .find(|e| e.name == "PGDATA")
                .and_then(|e| e.value)
        };
        assert_eq!(
            env("pg").as_deref(),
            Some("/var/lib/postgresql/data/pgdata")
        );
        assert_eq!(env("pg18"), None);
    }

    #[test]
    fn a_volume_at_the_data_directory_is_the_claim() {
        let (_dir, app) = load(&[(
            "compose.yaml",
            b"services:\n  mysql:\n    image: mariadb:11\n    volumes: [\"db:/var/lib/mysql\"]\n    ports: [\"13306:3306\"]\nvolumes:\n  db:\n    x-cove: {size: 20Gi}\n",
        )]);
        let r = rendered(&app);
        let set = get(&r, "StatefulSet/mysql");
        assert_eq!(
            data(set),
            (vec!["db".to_string()], "/var/lib/mysql".to_string())
        );
        // The container port, once.
        assert_eq!(ports(get(&r, "Service/mysql")), BTreeSet::from([3306]));
    }

    #[test]
    fn the_redis_cluster_of_buffs_nodes_reachable_by_name_and_its_init_job() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/buffs/compose.yaml");
        let app = load_file(&file);
        let opts = Options {
            registry: Some("reg.test/buffs".into()),
            ..Options::default()
        };
        let r = try_render(&app, &opts).unwrap();
        for i in 0..6 {
            let name = format!("redis-node-{i}");
            let set = get(&r, &format!("StatefulSet/{name}"));
            assert_eq!(pod(set).containers[0].image.as_deref(), Some("redis:7"));
            assert_eq!(data(set).1, "/data", "nodes.conf and the AOF on the claim");
            let svc = get(&r, &format!("Service/{name}"));
            assert_eq!(ports(svc), BTreeSet::from([6379, 16379]), "{name}");
            assert!(headless(svc), "{name}: its name resolves to the pod");
            let Object::StatefulSet(s) = set else {
                unreachable!()
            };
            assert_eq!(
                s.spec.as_ref().unwrap().service_name.as_deref(),
                Some(name.as_str())
            );
        }
        // The init: a Job running redis-cli (no data, no Service).
        let job = get(&r, "Job/redis-cluster-init");
        assert_eq!(pod(job).containers[0].image.as_deref(), Some("redis:7"));
        assert!(
            !r.objects
                .iter()
                .any(|o| o.id() == "Service/redis-cluster-init")
        );
        // MariaDB's named volume is its claim.
        assert_eq!(
            data(get(&r, "StatefulSet/mysql")),
            (vec!["mysql-data".to_string()], "/var/lib/mysql".to_string())
        );
        get(&r, "StatefulSet/activemq");
        // The stateless services stay Deployments with a normal Service.
        get(&r, "Deployment/server");
        assert!(!headless(get(&r, "Service/server")));
    }
}
