//! RabbitMQ: its server script, its settings in an env file written before
//! each start (a node name of its own, its own `epmd`, the image's user).

use std::path::Path;

use super::runner::{env_get, free_loopback_ports, write_private};
use super::{AMQP_PORT, RABBITMQ_MANAGEMENT_PORT, RABBITMQ_SERVER};

/// The command of a replica (see [`super::Recipe::command`]).
pub(super) fn command() -> Vec<String> {
    // The settings are in the env file `prepare` writes.
    [
        "env",
        "HOME=$COVE_DATA",
        "RABBITMQ_CONF_ENV_FILE=$COVE_SECRETS/rabbitmq-env.conf",
        "ERL_EPMD_ADDRESS=127.0.0.1",
        RABBITMQ_SERVER,
    ]
    .map(String::from)
    .to_vec()
}

/// Writes the node's environment and configuration before each start: a
/// node name unique on this host (from the replica's address), AMQP (and
/// distribution) on the replica's address, data and logs under its data
/// directory, the image's default user.
pub(super) fn prepare_rabbitmq(
    data: &Path,
    private: &Path,
    env: &[(String, String)],
    management: bool,
) -> Result<(), String> {
    let host = env_get(env, "HOST").ok_or("the replica has no HOST")?;
    let octets: Vec<&str> = host.split('.').collect();
    let d = data.display();
    let [epmd, dist] = free_loopback_ports()?;
    let env_file = format!(
        "# Written by cove before each start.\n\
         ERL_EPMD_PORT={epmd}\n\
         NODENAME=cove-{node}@localhost\n\
         NODE_IP_ADDRESS={host}\n\
         NODE_PORT={AMQP_PORT}\n\
         DIST_PORT={dist}\n\
         MNESIA_BASE={d}/mnesia\n\
         LOG_BASE={d}/log\n\
         LOGS=-\n\
         CONFIG_FILE={p}/rabbitmq\n\
         ENABLED_PLUGINS_FILE={d}/enabled_plugins\n\
         PID_FILE={d}/rabbitmq.pid\n\
         SERVER_ADDITIONAL_ERL_ARGS=\"-kernel inet_dist_use_interface {{{erl_ip}}}\"\n",
        node = octets.join("-"),
        erl_ip = octets.join(","),
        p = private.display(),
    );
    write_private(&private.join("rabbitmq-env.conf"), &env_file)?;
    // `rabbitmq.conf` values run to the end of the line.
    let one_line = |k: &str, v: String| -> Result<String, String> {
        if v.contains(['\n', '\r']) {
            return Err(format!("{k} must be on one line"));
        }
        Ok(v)
    };
    let user = one_line(
        "RABBITMQ_DEFAULT_USER",
        env_get(env, "RABBITMQ_DEFAULT_USER")
            .ok_or("RABBITMQ_DEFAULT_USER is not set (cove makes no `guest` account)")?,
    )?;
    let pass = one_line(
        "RABBITMQ_DEFAULT_PASS",
        env_get(env, "RABBITMQ_DEFAULT_PASS")
            .ok_or("RABBITMQ_DEFAULT_PASS is not set (cove makes no `guest` account)")?,
    )?;
    let mut conf = format!(
        "# Written by cove before each start.\n\
         loopback_users = none\n\
         default_user = {user}\n\
         default_pass = {pass}\n"
    );
    if let Some(vhost) = env_get(env, "RABBITMQ_DEFAULT_VHOST") {
        conf.push_str(&format!(
            "default_vhost = {}\n",
            one_line("RABBITMQ_DEFAULT_VHOST", vhost)?
        ));
    }
    let plugins = if management {
        conf.push_str(&format!(
            "management.tcp.ip = {host}\nmanagement.tcp.port = {RABBITMQ_MANAGEMENT_PORT}\n"
        ));
        "[rabbitmq_management].\n"
    } else {
        "[].\n"
    };
    write_private(&private.join("rabbitmq.conf"), &conf)?;
    write_private(&data.join("enabled_plugins"), plugins)
}
