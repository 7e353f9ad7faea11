//! Which [`BackupMethod`] a service is backed up with: `x-cove.backup.method`
//! when set (checked against the service: a method that does not fit is an
//! error naming the service and the field), else `command` when
//! `x-cove.backup.command` is set, else the recipe's default.
//!
//! | recipe | default |
//! |---|---|
//! | `postgres` | `pg_dump` |
//! | `mariadb` | `mariadb-dump` |
//! | `redis` (a server) | `redis-rdb` |
//! | `rabbitmq` | `rabbitmq-definitions` |
//! | `activemq` | `files`, quiesce `stop` |

use cove_runtime::recipe::Recipe;
use cove_spec::Project;
use cove_spec::xcove::{Backup as BackupSpec, BackupMethod, Quiesce};

use super::Failure;

/// The name of a method, as `x-cove.backup.method` spells it and as the
/// backups' `method` tag holds it.
pub fn name(m: BackupMethod) -> &'static str {
    match m {
        BackupMethod::PgDump => "pg_dump",
        BackupMethod::PgBasebackup => "pg_basebackup",
        BackupMethod::MariadbDump => "mariadb-dump",
        BackupMethod::Mariabackup => "mariabackup",
        BackupMethod::RedisRdb => "redis-rdb",
        BackupMethod::RabbitmqDefinitions => "rabbitmq-definitions",
        BackupMethod::Lmdb => "lmdb",
        BackupMethod::Files => "files",
        BackupMethod::Command => "command",
    }
}

pub const ALL: [BackupMethod; 9] = [
    BackupMethod::PgDump,
    BackupMethod::PgBasebackup,
    BackupMethod::MariadbDump,
    BackupMethod::Mariabackup,
    BackupMethod::RedisRdb,
    BackupMethod::RabbitmqDefinitions,
    BackupMethod::Lmdb,
    BackupMethod::Files,
    BackupMethod::Command,
];

pub fn from_name(s: &str) -> Option<BackupMethod> {
    ALL.into_iter().find(|m| name(*m) == s)
}

/// The service's `x-cove.backup`, if any.
pub fn spec<'a>(project: &'a Project, service: &str) -> Option<&'a BackupSpec> {
    project
        .app
        .services
        .get(service)?
        .x_cove
        .as_ref()?
        .backup
        .as_ref()
}

/// How `files` quiesces the service: `x-cove.backup.quiesce`, else `stop`
/// for ActiveMQ (KahaDB: see docs/guides/backups.md), else `pause`.
pub fn quiesce(project: &Project, service: &str) -> Quiesce {
    if let Some(q) = spec(project, service).and_then(|b| b.quiesce) {
        return q;
    }
    let recipe = project.app.services.get(service).and_then(Recipe::detect);
    if recipe == Some(Recipe::Activemq) {
        Quiesce::Stop
    } else {
        Quiesce::Pause
    }
}

/// The method of `service`, or why it has none.
pub fn method_of(project: &Project, service: &str) -> Result<BackupMethod, Failure> {
    let Some(svc) = project.app.services.get(service) else {
        return Err(
            Failure::new(format!("no such service `{service}`")).hint(project.app.services_hint())
        );
    };
    let recipe = Recipe::detect(svc);
    let redis_server = recipe == Some(Recipe::Redis) && super::is_redis_server(svc);
    let spec = spec(project, service);
    let has_command = spec.is_some_and(|b| b.command.is_some());
    let recipe_default = match recipe {
        Some(Recipe::Postgres) => Some(BackupMethod::PgDump),
        Some(Recipe::Mariadb) => Some(BackupMethod::MariadbDump),
        Some(Recipe::Redis) if redis_server => Some(BackupMethod::RedisRdb),
        Some(Recipe::Rabbitmq { .. }) => Some(BackupMethod::RabbitmqDefinitions),
        Some(Recipe::Activemq) => Some(BackupMethod::Files),
        _ => None,
    };
    let chosen = spec.and_then(|b| b.method);
    let Some(method) = chosen.or(if has_command {
        Some(BackupMethod::Command)
    } else {
        recipe_default
    }) else {
        return Err(match recipe {
            Some(Recipe::Redis) => Failure::new(format!(
                "service `{service}` runs a Redis sentinel or `redis-cli`, which keep no data to back up"
            )),
            _ => Failure::new(format!(
                "service `{service}` has no recipe with a backup method and no `x-cove.backup.method`"
            ))
            .hint("set `x-cove.backup.command` (a command writing the dump on stdout) or `x-cove.backup.method: files` (its data directory or `paths`)"),
        });
    };
    // Does the method fit the service?
    let field = format!(
        "service `{service}`: `x-cove.backup.method: {}`",
        name(method)
    );
    let what = match recipe {
        Some(Recipe::Postgres) => "the postgres recipe",
        Some(Recipe::Mariadb) => "the mariadb recipe",
        Some(Recipe::Redis) => "the redis recipe",
        Some(Recipe::Rabbitmq { .. }) => "the rabbitmq recipe",
        Some(Recipe::Activemq) => "the activemq recipe",
        None => "no recipe",
    };
    let needs = |recipe_name: &str, alternatives: &str| {
        Failure::new(format!(
            "{field} needs the {recipe_name} recipe, and `{service}` runs {what}"
        ))
        .hint(format!(
            "for `{service}` use {alternatives}, or drop `method` to take the default"
        ))
    };
    let others = "`command` (with `x-cove.backup.command`), `files` or `lmdb`";
    match method {
        BackupMethod::PgDump | BackupMethod::PgBasebackup if recipe != Some(Recipe::Postgres) => {
            Err(needs("postgres", others))
        }
        BackupMethod::MariadbDump | BackupMethod::Mariabackup
            if recipe != Some(Recipe::Mariadb) =>
        {
            Err(needs("mariadb", others))
        }
        BackupMethod::RedisRdb if !redis_server => Err(needs("redis (a server)", others)),
        BackupMethod::RabbitmqDefinitions if !matches!(recipe, Some(Recipe::Rabbitmq { .. })) => {
            Err(needs("rabbitmq", others))
        }
        BackupMethod::Command if !has_command => Err(Failure::new(format!(
            "{field} needs `x-cove.backup.command`, and `{service}` has none"
        ))
        .hint(
            "set `command` (writes the dump on stdout) and `restore_command` (reads it on stdin)",
        )),
        _ => Ok(method),
    }
}
