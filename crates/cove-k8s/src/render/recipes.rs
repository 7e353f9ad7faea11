//! What a recipe's image needs on a cluster: the ports it listens on
//! (they feed the Service even when the file lists none) and the directory
//! where it keeps its data (put on a claim).
//!
//! The image is the one the file names (`mariadb:11`, `redis:7`, ...):
//! natively cove runs the host's programs instead, on a cluster the
//! image runs as it is, so what counts here is the image's own layout.

use cove_runtime::recipe::Recipe;
use cove_spec::model::Service;
use k8s_openapi::api::core::v1::{Container, ContainerPort, EnvVar};

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

/// The recipe's ports added to the container's (those it does not list
/// already), and, for PostgreSQL before 18 with its data on a claim,
/// `PGDATA` one level down: a fresh volume's root holds `lost+found`,
/// where `initdb` refuses to run.
pub(crate) fn apply(svc: &Service, main: &mut Container, data_on_claim: bool) {
    for (port, protocol) in ports(svc) {
        let protocol = protocol.to_ascii_uppercase();
        let ports = main.ports.get_or_insert_with(Vec::new);
        if !ports.iter().any(|p| {
            p.container_port == i32::from(port)
                && p.protocol.as_deref().unwrap_or("TCP") == protocol
        }) {
            ports.push(ContainerPort {
                container_port: i32::from(port),
                protocol: Some(protocol),
                ..ContainerPort::default()
            });
        }
    }
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
