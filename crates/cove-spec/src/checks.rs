//! What the schemas cannot say, checked on the merged tree (so each
//! problem is reported at its place, with a hint): Compose's policy
//! strings ([`crate::policy`]), the gateway's addresses and a route's
//! values ([`crate::gateway`]), and a service's `x-cove` (its recipe, its
//! health probe, its `run`). `resolve.rs` runs them; what passes converts
//! into the model's typed fields without fail.

use crate::diag::{Diagnostic, Diagnostics, suggest};
use crate::gateway::{Listen, Size, host_problem, path_problem};
use crate::node::{Map, Node};
use crate::policy::{FailureAction, RESTART_POLICIES, Restart, STOP_SIGNAL_HINT, StopSignal};

/// `restart`, `stop_signal` and the deploy policies parse as their types
/// ([`crate::policy`]); each that does not is reported where it is written.
/// (`order` is an enum of the Compose schema, checked there.)
pub(crate) fn policies(name: &str, svc: &Map, diags: &mut Diagnostics) {
    if let Some(n) = svc.get("restart")
        && let Some(t) = n.as_str()
        && let Err(m) = t.parse::<Restart>()
    {
        let kinds = "use `no`, `always`, `unless-stopped` or `on-failure[:N]`";
        let hint = match suggest(t, RESTART_POLICIES) {
            Some(p) => format!("did you mean `{p}`? {kinds}"),
            None => kinds.to_string(),
        };
        diags.push(Diagnostic::error(n.span, format!("service `{name}`: {m}")).with_hint(hint));
    }
    if let Some(n) = svc.get("stop_signal")
        && let Some(t) = n.as_str()
        && let Err(m) = t.parse::<StopSignal>()
    {
        diags.push(
            Diagnostic::error(n.span, format!("service `{name}`: {m}")).with_hint(STOP_SIGNAL_HINT),
        );
    }
    let deploy = svc.get("deploy").and_then(Node::as_map);
    for section in ["update_config", "rollback_config"] {
        let Some(c) = deploy.and_then(|d| d.get(section)).and_then(Node::as_map) else {
            continue;
        };
        let problem = |n: &Node, m: String| {
            Diagnostic::error(n.span, format!("service `{name}`: `deploy.{section}`: {m}"))
                .with_hint(
                    "see https://docs.docker.com/reference/compose-file/deploy/#update_config",
                )
        };
        if let Some(n) = c.get("failure_action")
            && let Some(t) = n.as_str()
            && let Err(m) = t.parse::<FailureAction>()
        {
            diags.push(problem(n, m));
        }
        if let Some(n) = c.get("max_failure_ratio")
            && let Some(ratio) = n.as_text().and_then(|t| t.trim().parse::<f64>().ok())
            && let Err(m) = crate::policy::check_failure_ratio(ratio)
        {
            diags.push(problem(n, m));
        }
    }
}

/// Every name in a `copies` list (the project's `x-cove.backup.copies`, a
/// service's `x-cove.backup.copies`) names a target of the project's
/// `x-cove.backup.targets`, or `local` (the state directory's repository).
pub(crate) fn backup_copies<'a>(
    root: Option<&Map>,
    services: impl Iterator<Item = (&'a str, &'a Map)>,
    diags: &mut Diagnostics,
) {
    let backup = root.and_then(|x| x.get("backup")).and_then(Node::as_map);
    let mut defined: Vec<&str> = backup
        .and_then(|b| b.get("targets"))
        .and_then(Node::as_map)
        .map(|t| t.keys().collect())
        .unwrap_or_default();
    if !defined.contains(&"local") {
        defined.push("local");
    }
    let mut check = |place: String, copies: Option<&Node>| {
        for n in copies.and_then(Node::as_seq).unwrap_or_default() {
            let Some(name) = n.as_text() else { continue };
            if defined.contains(&name) {
                continue;
            }
            let hint = match suggest(name, defined.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? Targets: {}", defined.join(", ")),
                None => format!(
                    "the targets are {} (`local` is the state directory's repository; define more under `x-cove.backup.targets`)",
                    defined.join(", ")
                ),
            };
            diags.push(
                Diagnostic::error(
                    n.span,
                    format!("`{place}` names `{name}`, which is not a backup target"),
                )
                .with_hint(hint),
            );
        }
    };
    check(
        "x-cove.backup.copies".into(),
        backup.and_then(|b| b.get("copies")),
    );
    for (svc, x) in services {
        let copies = x
            .get("backup")
            .and_then(Node::as_map)
            .and_then(|b| b.get("copies"));
        check(format!("services.{svc}.x-cove.backup.copies"), copies);
    }
}

/// The checks of the project's `x-cove` (`root`) and of each service's
/// (`services`: name → its `x-cove`): each value that does not parse, at
/// its place.
pub(crate) fn gateway<'a>(
    root: Option<&Map>,
    services: impl Iterator<Item = (&'a str, &'a Map)>,
    diags: &mut Diagnostics,
) {
    let gateway = root.and_then(|x| x.get("gateway")).and_then(Node::as_map);
    for (key, what, hint) in [
        (
            "listen",
            "`x-cove.gateway.listen`",
            "write an address and a port, e.g. `127.0.0.1:2683` or `[::1]:2683`",
        ),
        (
            "metrics",
            "`x-cove.gateway.metrics`",
            "write an address and a port, e.g. `127.0.0.1:9683`",
        ),
    ] {
        if let Some(n) = gateway.and_then(|g| g.get(key)) {
            listen(n, what, hint, diags);
        }
    }
    let tls = gateway.and_then(|g| g.get("tls")).and_then(Node::as_map);
    if let Some(n) = tls.and_then(|t| t.get("listen")) {
        let hint = "write an address and a port, e.g. `127.0.0.1:2443`";
        listen(n, "`x-cove.gateway.tls.listen`", hint, diags);
    }
    if let Some(n) = gateway.and_then(|g| g.get("max_connections"))
        && n.as_int() == Some(0)
    {
        diags.push(
            Diagnostic::error(
                n.span,
                "`x-cove.gateway.max_connections` is 0: no client could connect",
            )
            .with_hint("leave it out (10000) or give a positive number"),
        );
    }
    for (name, x) in services {
        let Some(routes) = x.get("routes").and_then(Node::as_seq) else {
            continue;
        };
        for (i, r) in routes.iter().enumerate() {
            let Some(r) = r.as_map() else { continue };
            route(name, i, r, diags);
        }
    }
}

/// A route's values: `path`, `host`, `listen`, `timeout`, `max_body`.
fn route(service: &str, i: usize, r: &Map, diags: &mut Diagnostics) {
    let mut problem = |n: &Node, message: String, hint: &str| {
        diags.push(
            Diagnostic::error(
                n.span,
                format!("service `{service}`: `x-cove.routes[{i}]`: {message}"),
            )
            .with_hint(hint),
        );
    };
    let text = |key: &str| r.get(key).and_then(|n| Some((n, n.as_str()?)));
    if let Some((n, p)) = text("path")
        && let Some((m, hint)) = path_problem(p)
    {
        problem(n, m, hint);
    }
    if let Some((n, h)) = text("host")
        && let Some((m, hint)) = host_problem(h)
    {
        problem(n, m, hint);
    }
    if let Some((n, l)) = text("listen")
        && let Err(m) = l.parse::<Listen>()
    {
        problem(
            n,
            format!("`listen`: {m}"),
            "write an address and a port, e.g. `127.0.0.1:16379`",
        );
    }
    if let Some((n, t)) = text("timeout") {
        match crate::units::parse_duration(t) {
            Ok(d) if d.is_zero() => problem(
                n,
                "`timeout` is 0: no answer could arrive".into(),
                "leave it out (60s) or give a positive duration such as `30s`",
            ),
            Ok(_) => {}
            Err(m) => problem(
                n,
                format!("`timeout`: {m}"),
                "write a duration such as `30s` or `2m`",
            ),
        }
    }
    if let Some((n, b)) = text("max_body")
        && let Err(m) = b.parse::<Size>()
    {
        problem(n, format!("`max_body`: {m}"), "write a size such as `10m`");
    }
}

/// An address to listen on, `what`, reported with `hint` when it is not one.
fn listen(n: &Node, what: &str, hint: &str, diags: &mut Diagnostics) {
    if let Some(t) = n.as_str()
        && let Err(m) = t.parse::<Listen>()
    {
        diags.push(Diagnostic::error(n.span, format!("{what}: {m}")).with_hint(hint));
    }
}

/// What the schema cannot say of a service's `x-cove` (`x`): `recipe`
/// names one of [`RECIPES`](crate::xcove::RECIPES); `health` has one of `http` and `tcp`, and an
/// `http` path; `run` and `build`, strings, split into words. Each problem at its
/// place.
pub(crate) fn xcove_service(name: &str, x: &Map, diags: &mut Diagnostics) {
    alerts(name, x, diags);
    let mut problem = |n: &Node, message: String, hint: String| {
        diags.push(
            Diagnostic::error(n.span, format!("service `{name}`: {message}")).with_hint(hint),
        );
    };
    if let Some(n) = x.get("recipe")
        && let Some(r) = n.as_str()
        && !crate::xcove::RECIPES.contains(&r)
    {
        let names = crate::xcove::RECIPES.join(", ");
        let hint = match suggest(r, crate::xcove::RECIPES) {
            Some(s) => format!("did you mean `{s}`? cove's recipes are {names}"),
            None => format!(
                "cove's recipes are {names}; leave `recipe` out to run the image as a container"
            ),
        };
        problem(
            n,
            format!("`x-cove.recipe` is `{r}`, which is not one of cove's recipes"),
            hint,
        );
    }
    if let Some(n) = x.get("health")
        && let Some(h) = n.as_map()
    {
        match (h.get("http"), h.get("tcp")) {
            (Some(_), Some(_)) | (None, None) => problem(
                n,
                "`x-cove.health` needs exactly one of `http` and `tcp`".into(),
                "write `health: {http: /healthz}` or `health: {tcp: 5432}`".into(),
            ),
            (Some(p), None) => {
                if let Some(path) = p.as_str()
                    && !path.starts_with('/')
                {
                    problem(
                        p,
                        format!("`x-cove.health.http` is `{path}`, not a path"),
                        "start it with `/`, e.g. `/healthz`".into(),
                    );
                }
            }
            _ => {}
        }
    }
    for field in ["run", "build"] {
        if let Some(n) = x.get(field)
            && let Some(text) = n.as_str()
            && let Err(e) = crate::shell_words::split(text)
        {
            problem(
                n,
                format!("`x-cove.{field}` cannot be split: {e}"),
                "close the quote, or write a list".into(),
            );
        }
    }
}

/// Each of a service's `x-cove.alerts` has a `when:` that parses
/// ([`crate::alert_rule`]) and a name no other of its alerts has.
fn alerts(service: &str, x: &Map, diags: &mut Diagnostics) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, a) in x
        .get("alerts")
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let Some(a) = a.as_map() else { continue };
        if let Some(n) = a.get("when")
            && let Some(text) = n.as_text()
            && let Err(e) = text.parse::<crate::alert_rule::Condition>()
        {
            diags.push(
                Diagnostic::error(
                    n.span,
                    format!(
                        "service `{service}`: `x-cove.alerts[{i}].when`: {}",
                        e.message
                    ),
                )
                .with_hint(e.hint),
            );
        }
        if let Some(n) = a.get("name")
            && let Some(text) = n.as_text()
        {
            if seen.contains(&text) {
                diags.push(
                    Diagnostic::error(
                        n.span,
                        format!("service `{service}`: two alerts are named `{text}`"),
                    )
                    .with_hint("give each alert of a service its own name: notifications and `cove alerts` tell them apart by it"),
                );
            }
            seen.push(text);
        }
    }
}

/// The project's `x-cove.notify`: its URLs are `http://HOST:PORT/PATH`
/// (cove speaks plain HTTP to them), its command is not empty.
pub(crate) fn notify(root: Option<&Map>, diags: &mut Diagnostics) {
    let Some(notify) = root.and_then(|x| x.get("notify")).and_then(Node::as_map) else {
        return;
    };
    for key in ["webhook", "alertmanager"] {
        if let Some(n) = notify.get(key)
            && let Some(url) = n.as_text()
            && let Err(m) = crate::xcove::HttpUrl::parse(url)
        {
            let hint = if url.starts_with("https://") {
                "cove delivers over plain HTTP only (to a relay on this host or network); for an HTTPS endpoint use `command: [curl, ...]`, which gets the notification on stdin"
            } else {
                "write e.g. `http://127.0.0.1:9093` or `http://hooks.internal:8080/cove`"
            };
            diags.push(
                Diagnostic::error(n.span, format!("`x-cove.notify.{key}`: {m}")).with_hint(hint),
            );
        }
    }
    if let Some(n) = notify.get("command") {
        let empty = match n.as_seq() {
            Some(items) => items.is_empty(),
            None => n.as_text().is_some_and(|t| t.trim().is_empty()),
        };
        if empty {
            diags.push(
                Diagnostic::error(n.span, "`x-cove.notify.command` is empty")
                    .with_hint("write a program and its arguments, e.g. `[./notify.sh]`; it gets each notification as JSON on stdin"),
            );
        }
    }
}

/// The project's `x-cove.environments`: each host is
/// `ssh://[USER@]HOST[:PORT]`, listed once per environment, and an
/// environment's name is one `--env` takes.
pub(crate) fn environments(root: Option<&Map>, diags: &mut Diagnostics) {
    let Some(envs) = root
        .and_then(|x| x.get("environments"))
        .and_then(Node::as_map)
    else {
        return;
    };
    for e in &envs.entries {
        let name = e.key.as_str();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            diags.push(
                Diagnostic::error(
                    e.key_span,
                    format!("`x-cove.environments`: `{name}` is not an environment name"),
                )
                .with_hint("use letters, digits, `-` and `_` (it is what `--env NAME` takes)"),
            );
        }
        let Some(hosts) = e
            .value
            .as_map()
            .and_then(|m| m.get("hosts"))
            .and_then(Node::as_seq)
        else {
            continue;
        };
        let mut seen: Vec<crate::xcove::SshAddress> = Vec::new();
        for (i, n) in hosts.iter().enumerate() {
            let Some(text) = n.as_text() else { continue };
            match text.parse::<crate::xcove::SshAddress>() {
                Err(m) => diags.push(
                    Diagnostic::error(
                        n.span,
                        format!("`x-cove.environments.{name}.hosts[{i}]`: {m}"),
                    )
                    .with_hint(
                        "write each host as cove reaches it over ssh: `ssh://deploy@web1` or `ssh://deploy@web2:2222`",
                    ),
                ),
                Ok(a) => {
                    // The same host and port, whoever logs in: one daemon.
                    if seen
                        .iter()
                        .any(|s| s.host == a.host && s.port.unwrap_or(22) == a.port.unwrap_or(22))
                    {
                        diags.push(
                            Diagnostic::error(
                                n.span,
                                format!(
                                    "`x-cove.environments.{name}.hosts[{i}]`: `{text}` is listed twice"
                                ),
                            )
                            .with_hint("a host runs one daemon: list it once"),
                        );
                    }
                    seen.push(a);
                }
            }
        }
    }
}
