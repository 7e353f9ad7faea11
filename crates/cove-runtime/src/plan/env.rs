//! Environment and references: a replica's environment and command
//! (`HOST`, `PORT`, `$VAR` in commands, secrets' files), and references to
//! other services (`db:3306`, `DB_HOST: db`, `-h db`) rewritten to their
//! addresses; and a secret held in a variable kept off command lines.

use std::net::Ipv4Addr;
use std::path::Path;

use cove_spec::App;
use cove_spec::model::Service;
use cove_spec::xcove::{ServiceExt, StringOrList};
use indexmap::IndexMap;

use super::{Addresses, CONTAINER, Context, Plan, PlanError, ServicePlan, address};
use crate::health::{HealthSpec, Probe};
use crate::vars::{env_value, expand_known, names_variable};

impl ServicePlan {
    /// The command of a replica: `$VAR` and `${VAR}` naming a variable of
    /// the replica's environment (`HOST`, `PORT`, its `environment`) are
    /// replaced by its value; anything else, `$$` included, is passed as it
    /// is (a shell in the command expands the rest). In the Compose file,
    /// write `$$PORT`, since Compose interpolation runs first.
    /// The kept copy of the program runs in place of the program.
    pub fn argv_for(&self, env: &[(String, String)]) -> Vec<String> {
        let mut argv: Vec<String> = self.argv.iter().map(|a| expand_known(a, env)).collect();
        if let (Some(dir), None) = (env_value(env, "COVE_SECRETS"), &self.container) {
            for a in &mut argv {
                *a = self.secrets_rewritten(a, Path::new(dir));
            }
        }
        if let (Some(first), Some(program), None) = (
            argv.first_mut(),
            self.artifact.as_ref().and_then(|a| a.program.as_ref()),
            &self.container,
        ) {
            *first = program.display().to_string();
        }
        argv
    }

    /// The environment of replica `replica` in `slot`: the service's, plus
    /// `HOST`, `PORT` and `COVE_REPLICA`.
    pub fn replica_env(&self, replica: u32, slot: u32) -> Vec<(String, String)> {
        self.instance_env(replica, slot, &self.secrets_dir(slot))
    }

    /// [`replica_env`](Self::replica_env) with the private directory
    /// (`COVE_SECRETS`) at `private` (`cove run` has one of its own).
    pub fn instance_env(&self, replica: u32, slot: u32, private: &Path) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("HOST".into(), self.address(slot).to_string()));
        env.push(("PORT".into(), self.port().to_string()));
        env.push(("COVE_SERVICE".into(), self.name.clone()));
        env.push(("COVE_REPLICA".into(), replica.to_string()));
        if let Some(data) = self.data_dir(replica) {
            env.push(("COVE_DATA".into(), data.display().to_string()));
        }
        if self.has_private_dir() {
            // Inside a container the files are bound at their targets.
            let in_container = Path::new("/run/secrets");
            let dir = if self.container.is_some() {
                in_container
            } else {
                private
            };
            for (_, v) in env.iter_mut().filter(|_| self.container.is_none()) {
                *v = self.secrets_rewritten(v, dir);
            }
            for m in &self.secrets {
                if let (Some(var), Some(text)) = (&m.env, m.value.text()) {
                    env.push((var.clone(), text.to_string()));
                }
            }
            env.push(("COVE_SECRETS".into(), dir.display().to_string()));
        }
        env
    }

    /// `s` with each secret's Compose target replaced by its file in `dir`.
    fn secrets_rewritten(&self, s: &str, dir: &Path) -> String {
        let mut out = s.to_string();
        for m in &self.secrets {
            if out.contains(&m.target) {
                out = out.replace(&m.target, &dir.join(&m.file).display().to_string());
            }
        }
        out
    }
}

/// An environment value: one that is just a service's name (`DB_HOST: db`)
/// becomes the address others reach it at; `name:port` inside is
/// rewritten by [`rewrite_references`].
pub fn rewrite_value(v: &str, services: &Addresses) -> String {
    match services.get(v) {
        Some(ip) => ip.to_string(),
        None => rewrite_references(v, services),
    }
}

impl Plan {
    /// [`rewrite_args`] over this plan's services (for `cove run`'s command).
    pub fn rewrite_args(&self, argv: &[String]) -> Vec<String> {
        rewrite_args(argv, &self.references())
    }

    /// The address others reach `service` at, on its ports: an address
    /// given by the placement for a service served elsewhere
    /// ([`Plan::external`]), else its service address when it has one,
    /// else its first replica's. What references to it are rewritten to.
    /// `None`: the plan has no such service.
    pub fn reference_address(&self, service: &str) -> Option<Ipv4Addr> {
        if let Some(ip) = self.external.get(service) {
            return Some(*ip);
        }
        let s = self.services.iter().find(|s| s.name == service)?;
        Some(match s.service_address {
            Some(_) => address(s.net, s.base & !CONTAINER),
            None => address(s.net, s.base + 1),
        })
    }

    /// The address references reach each service at (see
    /// [`Plan::reference_address`]).
    fn references(&self) -> Addresses<'_> {
        let mut services: Addresses = self
            .services
            .iter()
            .filter_map(|s| Some((s.name.as_str(), self.reference_address(&s.name)?)))
            .collect();
        services.extend(self.external.iter().map(|(n, ip)| (n.as_str(), *ip)));
        services
    }

    /// [`rewrite_value`] over this plan's services (for `cove run -e`).
    pub fn rewrite_value(&self, v: &str) -> String {
        rewrite_value(v, &self.references())
    }
}

/// A native command's arguments: `service:port` inside each (see
/// [`rewrite_references`]), and a service's name given as a host — the
/// argument after `-h` or `--host`, or `--host=NAME` — become the
/// service's address (`redis-cli -h cache` as in a container). Words
/// inside one argument (a `sh -c` script) are not: see
/// `habits::hosts_in_scripts` (in `habits.rs`).
pub fn rewrite_args(argv: &[String], services: &Addresses) -> Vec<String> {
    let addr = |n: &str| services.get(n).map(Ipv4Addr::to_string);
    let mut out: Vec<String> = Vec::with_capacity(argv.len());
    for (i, a) in argv.iter().enumerate() {
        let after_flag = i > 0 && matches!(argv[i - 1].as_str(), "-h" | "--host");
        let host = match a.strip_prefix("--host=") {
            Some(n) => addr(n).map(|ad| format!("--host={ad}")),
            None if after_flag => addr(a),
            None => None,
        };
        out.push(host.unwrap_or_else(|| rewrite_references(a, services)));
    }
    out
}

/// Rewrites `service:port` references to `address:port` (the address
/// others reach the service at).
pub fn rewrite_references(s: &str, services: &Addresses) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let at_boundary = i == 0 || !is_name(chars[i - 1]);
        if at_boundary && is_name(chars[i]) {
            let mut j = i;
            while j < chars.len() && is_name(chars[j]) {
                j += 1;
            }
            let name: String = chars[i..j].iter().collect();
            if chars.get(j) == Some(&':') {
                let mut k = j + 1;
                while k < chars.len() && chars[k].is_ascii_digit() {
                    k += 1;
                }
                let port: Option<u16> = chars[j + 1..k].iter().collect::<String>().parse().ok();
                let ends = k == chars.len() || !is_name(chars[k]);
                if let (Some(ip), Some(port), true) = (services.get(name.as_str()), port, ends) {
                    out.push_str(&format!("{ip}:{port}"));
                    i = k;
                    continue;
                }
            }
            out.push_str(&name);
            i = j;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Whether another service names `name` (with one of `ports`, or alone as
/// an environment value) in its environment or its `x-cove.run`.
pub(super) fn named_by_others(app: &App, name: &str) -> bool {
    let mut one = IndexMap::new();
    one.insert(name, Ipv4Addr::new(127, 64, 0, 1));
    app.services
        .iter()
        .filter(|(n, _)| *n != name)
        .any(|(_, svc)| {
            let env = svc
                .environment
                .values()
                .flatten()
                .any(|v| rewrite_value(v, &one) != *v);
            let run = match svc.x_cove.as_ref().and_then(|x| x.run.as_ref()) {
                Some(StringOrList::List(l)) => rewrite_args(l, &one) != *l,
                Some(StringOrList::String(s)) => rewrite_references(s, &one) != *s,
                None => false,
            };
            env || run
        })
}

impl Context<'_> {
    /// `argv` and the service's environment with references to other
    /// services rewritten: to the addresses a container or a native
    /// process reaches them at.
    pub(super) fn rewritten(
        &self,
        svc: &Service,
        argv: &[String],
        is_container: bool,
    ) -> (Vec<String>, Vec<(String, String)>) {
        let seen_from = if is_container {
            &self.addresses_in_containers
        } else {
            &self.addresses
        };
        let rewrite = |s: &str| rewrite_references(s, seen_from);
        let env = svc
            .environment
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), rewrite_value(v.as_ref()?, seen_from))))
            .collect();
        // Natively, `-h db` / `--host db` name a host too.
        let argv = if is_container {
            argv.iter().map(|a| rewrite(a)).collect()
        } else {
            rewrite_args(argv, seen_from)
        };
        (argv, env)
    }

    /// The service's secrets as its replicas get them.
    pub(super) fn secret_mounts(
        &self,
        svc: &Service,
        err: &impl Fn(String, &str) -> PlanError,
        errors: &mut Vec<PlanError>,
    ) -> Vec<crate::secrets::Mount> {
        let secrets = self.secrets;
        let mut mounts = Vec::new();
        for r in &svc.secrets {
            let target = r
                .target
                .clone()
                .unwrap_or_else(|| format!("/run/secrets/{}", r.source));
            let Some(file) = crate::secrets::file_in_dir(&target) else {
                errors.push(err(
                    format!(
                        "secret `{}`: target `{target}` is not a file path",
                        r.source
                    ),
                    "give a file name, or a path without `..`",
                ));
                continue;
            };
            let mode = match crate::secrets::mode_of(r.mode.as_ref()) {
                Ok(m) => m,
                Err(m) => {
                    errors.push(err(
                        format!("secret `{}`: {m}", r.source),
                        "write it in octal, e.g. `mode: 0440`",
                    ));
                    continue;
                }
            };
            let value = secrets
                .and_then(|s| s.values.get(&r.source).cloned())
                .unwrap_or_else(|| crate::secrets::Value::new(Vec::new()));
            let env = r.x_cove.as_ref().and_then(|x| x.env.clone());
            if env.is_some() && value.text().is_none() {
                errors.push(err(
                    format!(
                        "secret `{}` is not text, so it cannot be an environment variable",
                        r.source
                    ),
                    "read it from its file (`COVE_SECRETS`, or its target) instead",
                ));
            }
            mounts.push(crate::secrets::Mount {
                name: r.source.clone(),
                target,
                file,
                mode,
                env,
                value,
            });
        }
        mounts
    }
}

/// A secret in a variable stays out of command lines.
pub(super) fn secrets_in_commands(
    x: &ServiceExt,
    is_container: bool,
    argv: &[String],
    health: Option<&HealthSpec>,
    mounts: &[crate::secrets::Mount],
    err: &impl Fn(String, &str) -> PlanError,
    errors: &mut Vec<PlanError>,
) {
    // A secret in a variable stays out of command lines: cove expands
    // `$VAR` in the command (and in an exec health check), and
    // /proc/PID/cmdline is readable by every local user.
    let field = match (&x.run, is_container) {
        (Some(_), false) => "`x-cove.run`",
        _ => "`command`",
    };
    let mut commands: Vec<(&str, &[String])> = vec![(field, argv)];
    if let (Some(Probe::Exec(test)), false) = (health.map(|h| &h.probe), is_container) {
        commands.push(("`healthcheck.test`", test));
    }
    for (field, words) in commands {
        for m in mounts {
            let Some(var) = &m.env else { continue };
            if words.iter().any(|w| names_variable(w, var)) {
                errors.push(err(
                    format!(
                        "{field} names `${var}`, which holds secret `{}` (its `x-cove: {{env: {var}}}`): cove would put the value on the command line, which every local user can read (/proc/PID/cmdline)",
                        m.name
                    ),
                    &format!(
                        "read `{var}` in the program instead, or its file: `{}` (`$COVE_SECRETS/{}` natively)",
                        m.target, m.file.display()
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_rewritten_only_for_services_with_a_port() {
        let mut m = IndexMap::new();
        m.insert("db", address(0, 1));
        m.insert("redis-1", address(0, 2));
        assert_eq!(
            rewrite_references("mysql://app:pw@db:3306/app", &m),
            "mysql://app:pw@127.64.0.1:3306/app"
        );
        assert_eq!(
            rewrite_references("redis-1:6379,redis-1:6380", &m),
            "127.64.0.2:6379,127.64.0.2:6380"
        );
        assert_eq!(
            rewrite_references("mydb:3306 db:x db:99999 db", &m),
            "mydb:3306 db:x db:99999 db"
        );
        assert_eq!(
            rewrite_references("http://db:3306", &m),
            "http://127.64.0.1:3306"
        );
    }

    #[test]
    fn a_service_given_as_a_host_in_arguments_is_its_address() {
        let mut m = IndexMap::new();
        m.insert("cache", address(0, 1));
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let r = |s: &str| rewrite_args(&words(s), &m).join(" ");
        assert_eq!(r("redis-cli -h cache ping"), "redis-cli -h 127.64.0.1 ping");
        assert_eq!(r("tool --host cache"), "tool --host 127.64.0.1");
        assert_eq!(r("tool --host=cache"), "tool --host=127.64.0.1");
        assert_eq!(r("tool cache:6379"), "tool 127.64.0.1:6379");
        for kept in [
            "tool -h other",
            "tool cache -h",
            "tool --hostname cache",
            "tool -p cache",
            "sh -c redis-cli -h cache",
            "tool --host=cached",
        ] {
            let want = if kept == "sh -c redis-cli -h cache" {
                // Separate words here: rewritten.
                "sh -c redis-cli -h 127.64.0.1"
            } else {
                kept
            };
            assert_eq!(r(kept), want);
        }
        let script = vec!["sh".into(), "-c".into(), "redis-cli -h cache ping".into()];
        assert_eq!(rewrite_args(&script, &m), script, "inside a script: not");
    }
}
