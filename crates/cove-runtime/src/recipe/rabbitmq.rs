//! RabbitMQ: its server script, its settings in an env file written before
//! each start (a node name of its own, its own `epmd`, the image's user).
//!
//! TLS as with the official image: a `rabbitmq.conf` (or `conf.d/*.conf`
//! files) with `listeners.ssl.*` and `ssl_options.*`, and the key and
//! certificates, given to the service as Compose `secrets` at the image's
//! paths (`target: /etc/rabbitmq/conf.d/20-tls.conf`; the key at
//! `/run/secrets/NAME` or any target). Natively those files are in the
//! replica's private directory; before each start their settings are added
//! to the configuration cove writes, with the paths they name rewritten to
//! the private files and listeners given as a bare port (`5671`) or on
//! every address (`0.0.0.0:5671`) put on the replica's address. When they
//! set `listeners.tcp` (`listeners.tcp = none`: TLS only), cove leaves the
//! plain listener to them. The health probe connects to the service's
//! first `expose`d port (`5671` for a TLS-only broker), else to 5672.

use std::path::{Path, PathBuf};

use cove_spec::model::Service;

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
    let user_conf = user_config(private, &host)?;
    // RABBITMQ_NODE_IP_ADDRESS/NODE_PORT would override the files' `listeners.tcp`.
    let tcp = if user_conf.sets_tcp {
        String::new()
    } else {
        format!("NODE_IP_ADDRESS={host}\nNODE_PORT={AMQP_PORT}\n")
    };
    let env_file = format!(
        "# Written by cove before each start.\n\
         ERL_EPMD_PORT={epmd}\n\
         NODENAME=cove-{node}@localhost\n\
         {tcp}\
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
    if !user_conf.text.is_empty() {
        conf.push_str("# From the service's configuration files:\n");
        conf.push_str(&user_conf.text);
    }
    write_private(&private.join("rabbitmq.conf"), &conf)?;
    write_private(&data.join("enabled_plugins"), plugins)
}

/// The port the health probe connects to: the service's first `expose`d
/// port (a TLS-only broker exposes 5671), else AMQP's.
pub(super) fn probe_port(svc: &Service) -> u16 {
    svc.expose
        .iter()
        .find_map(|p| p.split(['/', '-']).next()?.parse().ok())
        .unwrap_or(AMQP_PORT)
}

/// The settings of the service's own configuration files, as cove adds
/// them: whether they set `listeners.tcp`.
struct UserConfig {
    text: String,
    sets_tcp: bool,
}

/// The image's configuration files given as the replica's private files
/// (secrets with `target: /etc/rabbitmq/rabbitmq.conf` or
/// `/etc/rabbitmq/conf.d/*.conf`), in the image's order (the main file,
/// then `conf.d` by name), rewritten for this replica.
fn user_config(private: &Path, host: &str) -> Result<UserConfig, String> {
    let etc = private.join("etc/rabbitmq");
    let mut files = vec![etc.join("rabbitmq.conf")];
    if let Ok(dir) = fs_err::read_dir(etc.join("conf.d")) {
        let mut d: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        d.sort();
        files.extend(d);
    }
    let mut out = UserConfig {
        text: String::new(),
        sets_tcp: false,
    };
    for file in files.iter().filter(|f| f.is_file()) {
        let text = fs_err::read_to_string(file).map_err(|e| e.to_string())?;
        let shown = file.strip_prefix(private).unwrap_or(file).display();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let Some((key, value)) = t.split_once('=') else {
                return Err(format!("/{shown} line {}: not `key = value`", n + 1));
            };
            let (key, value) = (key.trim(), value.trim());
            out.sets_tcp |= key == "listeners.tcp" || key.starts_with("listeners.tcp.");
            let value = rewritten(key, value, private, host);
            out.text.push_str(&format!("{key} = {value}\n"));
        }
    }
    Ok(out)
}

/// A setting's value for this replica: a listener on every address or a
/// bare port goes to the replica's address; a path that is one of the
/// replica's private files (`/run/secrets/NAME`, or a secret's `target`)
/// becomes that file.
fn rewritten(key: &str, value: &str, private: &Path, host: &str) -> String {
    if key.starts_with("listeners.") && key.matches('.').count() == 2 {
        let port = value
            .strip_prefix("0.0.0.0:")
            .or_else(|| value.strip_prefix(":::"))
            .or_else(|| value.strip_prefix("[::]:"))
            .unwrap_or(value);
        if port.parse::<u16>().is_ok() {
            return format!("{host}:{port}");
        }
    }
    if let Some(abs) = value.strip_prefix('/') {
        let rel = abs.strip_prefix("run/secrets/").unwrap_or(abs);
        let file = private.join(rel);
        if !rel.contains("..") && file.is_file() {
            return file.display().to_string();
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_tls_settings_are_rewritten_for_the_replica() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path();
        fs_err::create_dir_all(p.join("etc/rabbitmq/conf.d")).unwrap();
        fs_err::create_dir_all(p.join("etc/tls")).unwrap();
        for f in ["broker_key", "broker_cert", "etc/tls/ca.pem"] {
            fs_err::write(p.join(f), "x").unwrap();
        }
        fs_err::write(
            p.join("etc/rabbitmq/conf.d/20-tls.conf"),
            "# TLS only\nlisteners.tcp = none\nlisteners.ssl.default = 5671\n\
             ssl_options.keyfile = /run/secrets/broker_key\n\
             ssl_options.certfile=/run/secrets/broker_cert\n\
             ssl_options.cacertfile = /etc/tls/ca.pem\n\
             ssl_options.versions.1 = tlsv1.3\n",
        )
        .unwrap();
        fs_err::write(
            p.join("etc/rabbitmq/conf.d/10-first.conf"),
            "listeners.ssl.other = 0.0.0.0:5673\n",
        )
        .unwrap();
        let c = user_config(p, "127.3.0.9").unwrap();
        assert!(c.sets_tcp);
        let d = p.display();
        assert_eq!(
            c.text,
            format!(
                "listeners.ssl.other = 127.3.0.9:5673\n\
                 listeners.tcp = none\n\
                 listeners.ssl.default = 127.3.0.9:5671\n\
                 ssl_options.keyfile = {d}/broker_key\n\
                 ssl_options.certfile = {d}/broker_cert\n\
                 ssl_options.cacertfile = {d}/etc/tls/ca.pem\n\
                 ssl_options.versions.1 = tlsv1.3\n"
            )
        );
        fs_err::write(p.join("etc/rabbitmq/rabbitmq.conf"), "oops\n").unwrap();
        let e = user_config(p, "127.3.0.9").err().unwrap();
        assert_eq!(e, "/etc/rabbitmq/rabbitmq.conf line 1: not `key = value`");
        let none = tempfile::tempdir().unwrap();
        let c = user_config(none.path(), "127.3.0.9").unwrap();
        assert!(!c.sets_tcp && c.text.is_empty());
    }

    #[test]
    fn the_probe_follows_the_first_exposed_port() {
        let svc = |v: serde_json::Value| -> Service { serde_json::from_value(v).unwrap() };
        assert_eq!(
            probe_port(&svc(serde_json::json!({"image": "rabbitmq:3"}))),
            AMQP_PORT
        );
        assert_eq!(
            probe_port(&svc(
                serde_json::json!({"image": "rabbitmq:3", "expose": ["5671"]})
            )),
            5671
        );
    }
}
