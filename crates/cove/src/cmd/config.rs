//! `cove config`: the resolved app, its services in start order, or its
//! dependency graph.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::ExitCode;

use cove_spec::yaml_out::to_yaml;
use serde_json::json;

use crate::cli::{ConfigArgs, Format, ProjectArgs};

pub fn run(project_args: &ProjectArgs, args: &ConfigArgs) -> anyhow::Result<ExitCode> {
    for (given, flag, instead) in [
        (
            args.no_normalize,
            "--no-normalize",
            "prints the normalised model",
        ),
        (
            args.no_path_resolution,
            "--no-path-resolution",
            "prints paths made absolute",
        ),
        (args.no_consistency, "--no-consistency", "checks the model"),
    ] {
        if given {
            eprintln!("note: `{flag}` is accepted and ignored: cove config always {instead}");
        }
    }
    let Some(project) = crate::project::load_or_report(project_args, &args.service_names) else {
        return Ok(ExitCode::from(1));
    };
    let app = &project.app;
    // What `cove up` would refuse, refused here first.
    if !crate::project::check_or_report(&project) {
        return Ok(ExitCode::from(1));
    }
    if let Some(w) = cove_runtime::routes::metrics_warning(app) {
        crate::project::report_located(&project, &[w], true);
    }
    crate::project::report_pending(&project);
    let redactor = redactor(&project);
    let mut out = String::new();
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    } else if let Some(which) = &args.hash {
        let names: Vec<&str> = if which.trim() == "*" {
            app.services.keys().map(String::as_str).collect()
        } else {
            which
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect()
        };
        for name in names {
            let Some(hash) = project.service_hash(name) else {
                let known: Vec<&str> = app.services.keys().map(String::as_str).collect();
                eprintln!(
                    "error: `--hash`: no service `{name}`\n  = hint: services: {} (or `*` for all)",
                    known.join(", ")
                );
                return Ok(ExitCode::from(1));
            };
            out.push_str(&format!("{name} {hash}\n"));
        }
    } else if args.images {
        for (name, s) in &app.services {
            match (&s.image, &s.build) {
                (Some(image), _) => out.push_str(image),
                (None, Some(_)) => out.push_str(&format!("{}-{name}", app.name)),
                (None, None) => continue, // a native process: no image
            }
            out.push('\n');
        }
    } else if args.volumes {
        let used: BTreeSet<&str> = app
            .services
            .values()
            .flat_map(|s| &s.volumes)
            .filter_map(|m| m.source.as_deref())
            .collect();
        for name in app.volumes.keys().filter(|v| used.contains(v.as_str())) {
            out.push_str(name);
            out.push('\n');
        }
    } else if args.networks {
        let used: BTreeSet<&str> = app
            .services
            .values()
            .flat_map(|s| s.networks.keys())
            .map(String::as_str)
            .collect();
        for name in app.networks.keys().filter(|n| used.contains(n.as_str())) {
            out.push_str(name);
            out.push('\n');
        }
    } else if args.print_environment {
        for (k, v) in &project.variables {
            out.push_str(&format!("{k}={v}\n"));
        }
    } else if args.services {
        match args.format {
            Format::Json => {
                out = serde_json::to_string_pretty(&app.services.keys().collect::<Vec<_>>())? + "\n"
            }
            Format::Yaml => {
                for name in app.services.keys() {
                    out.push_str(name);
                    out.push('\n');
                }
            }
        }
    } else if args.addresses {
        let Some(plan) = crate::project::plan_or_report(&project) else {
            return Ok(ExitCode::from(1));
        };
        out = addresses(app, &plan, args.format)?;
    } else if args.list_profiles {
        let all: BTreeSet<&str> = app
            .services
            .values()
            .flat_map(|s| s.profiles.iter().map(String::as_str))
            .chain(project.disabled.values().flatten().map(String::as_str))
            .collect();
        match args.format {
            Format::Json => out = serde_json::to_string_pretty(&all)? + "\n",
            Format::Yaml => all.iter().for_each(|p| {
                out.push_str(p);
                out.push('\n');
            }),
        }
    } else if args.graph {
        match args.format {
            Format::Json => {
                let edges: Vec<_> = app
                    .services
                    .iter()
                    .flat_map(|(from, s)| {
                        s.depends_on.iter().map(move |(to, d)| {
                            json!({"from": from, "to": to, "condition": d.condition, "required": d.required, "restart": d.restart})
                        })
                    })
                    .collect();
                let v =
                    json!({"services": app.services.keys().collect::<Vec<_>>(), "edges": edges});
                out = serde_json::to_string_pretty(&v)? + "\n";
            }
            Format::Yaml => {
                for (name, s) in &app.services {
                    out.push_str(name);
                    let deps: Vec<String> = s
                        .depends_on
                        .iter()
                        .map(|(to, d)| {
                            let cond = serde_json::to_value(d.condition).ok();
                            let cond = cond.as_ref().and_then(|c| c.as_str()).unwrap_or_default();
                            format!("{to} ({cond})")
                        })
                        .collect();
                    if !deps.is_empty() {
                        out.push_str(" → ");
                        out.push_str(&deps.join(", "));
                    }
                    out.push('\n');
                }
            }
        }
    } else if args.no_interpolate {
        let Some(raw) = uninterpolated(project_args, &project, &args.service_names) else {
            return Ok(ExitCode::from(1));
        };
        let mut value = serde_json::to_value(&raw.app)?;
        mask(&mut value, &redactor);
        out = match args.format {
            Format::Json => serde_json::to_string_pretty(&value)? + "\n",
            Format::Yaml => to_yaml(&value),
        };
    } else {
        let mut value = serde_json::to_value(app)?;
        mask(&mut value, &redactor);
        escape_dollars(&mut value);
        out = match args.format {
            Format::Json => serde_json::to_string_pretty(&value)? + "\n",
            Format::Yaml => to_yaml(&value),
        };
    }
    // Addresses show `environment` values: masked there too.
    let out = if args.addresses {
        redactor.scrub_tokens(&out)
    } else {
        std::borrow::Cow::Borrowed(out.as_str())
    };
    if let Some(path) = &args.output {
        fs_err::write(path, out.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(out.as_bytes())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e.into());
    }
    Ok(ExitCode::SUCCESS)
}

/// The same files loaded again without interpolation (`--no-interpolate`):
/// the project's name, directory and profiles as first loaded, cove's own
/// `x-cove` block as resolved. Errors (a port written `${PORT}`, say) are
/// printed (`None` then).
fn uninterpolated(
    project_args: &ProjectArgs,
    project: &cove_spec::Project,
    services: &[String],
) -> Option<cove_spec::Project> {
    let opts = cove_spec::Options {
        files: project.files.clone(),
        project_dir: Some(project.project_dir.clone()),
        project_name: Some(project.app.name.clone()),
        env_files: Some(project_args.env_files.clone()),
        environ: std::env::vars().collect(),
        profiles: project.profiles.clone(),
        services: services.to_vec(),
        keep_all: false,
    };
    match cove_spec::load_uninterpolated(&opts) {
        Ok(mut raw) => {
            raw.app.x_cove = project.app.x_cove.clone();
            Some(raw)
        }
        Err(failure) => {
            eprint!("{}", failure.render(&crate::output::stderr_style()));
            None
        }
    }
}

/// Reads the secrets the services use, to mask their values wherever they
/// show (an interpolated variable that holds one, say). When they cannot be
/// read, says why (the same errors `cove up` would give) and masks nothing:
/// the model itself never holds a secret's value.
fn redactor(project: &cove_spec::Project) -> cove_runtime::secrets::Redactor {
    if project.app.services.values().all(|s| s.secrets.is_empty()) {
        return Default::default();
    }
    let identity = crate::cmd::secrets::identity_path();
    match cove_runtime::secrets::resolve(&project.app, &project.project_dir, identity.as_deref()) {
        Ok(resolved) => resolved.redactor(),
        Err(errors) => {
            crate::project::report_located(project, &errors, true);
            Default::default()
        }
    }
}

/// The fields of a service whose values may carry a secret (through an
/// interpolated variable): only these are masked, so names, images and
/// paths print as written and the output always loads back.
const CARRIERS: [&str; 8] = [
    "environment",
    "command",
    "entrypoint",
    "labels",
    "annotations",
    "healthcheck",
    "build",
    "x-cove",
];

/// Masks secret values (whole tokens, `***`) in the values of each
/// service's [`CARRIERS`].
fn mask(model: &mut serde_json::Value, redactor: &cove_runtime::secrets::Redactor) {
    if redactor.is_empty() {
        return;
    }
    let Some(services) = model
        .get_mut("services")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for svc in services
        .values_mut()
        .filter_map(serde_json::Value::as_object_mut)
    {
        for (k, v) in svc.iter_mut() {
            if CARRIERS.contains(&k.as_str()) {
                mask_values(v, redactor);
            }
        }
    }
}

/// Masks every string value (never a key) in `v`.
fn mask_values(v: &mut serde_json::Value, redactor: &cove_runtime::secrets::Redactor) {
    match v {
        serde_json::Value::String(s) => {
            if let std::borrow::Cow::Owned(masked) = redactor.scrub_tokens(s) {
                *s = masked;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|v| mask_values(v, redactor)),
        serde_json::Value::Object(m) => m.values_mut().for_each(|v| mask_values(v, redactor)),
        _ => {}
    }
}

/// Doubles every `$` of string values, as Compose does when it prints the
/// model: a literal `$` (written `$$`) must not be interpolated when the
/// output is loaded again.
fn escape_dollars(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        serde_json::Value::Array(a) => a.iter_mut().for_each(escape_dollars),
        serde_json::Value::Object(m) => m.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// Every replica's address, then each `environment` value cove rewrote.
fn addresses(
    app: &cove_spec::App,
    plan: &cove_runtime::plan::Plan,
    format: Format,
) -> anyhow::Result<String> {
    let mut replicas = Vec::new();
    let mut rewritten = Vec::new();
    let mut own = Vec::new();
    let mut bridged = Vec::new();
    let network = plan
        .services
        .iter()
        .find_map(|s| s.container.as_ref())
        .map(|c| (c.network.clone(), c.subnet.clone(), c.bridge.clone()));
    for svc in &plan.services {
        if let Some(a) = svc.service_address {
            for p in &svc.ports {
                own.push((svc.name.clone(), format!("{a}:{p}")));
            }
        }
        if let Some(a) = svc.bridge_address {
            for p in &svc.ports {
                bridged.push((svc.name.clone(), format!("{a}:{p}")));
            }
        }
        let how = if svc.container.is_some() {
            "container"
        } else {
            "process"
        };
        for r in 1..=svc.replicas {
            replicas.push((
                svc.name.clone(),
                r,
                format!("{}:{}", svc.address(r), svc.port()),
                how,
            ));
        }
        let written = &app.services[&svc.name].environment;
        for (k, v) in &svc.env {
            if let Some(Some(w)) = written.get(k)
                && w != v
            {
                rewritten.push((svc.name.clone(), k.clone(), w.clone(), v.clone()));
            }
        }
    }
    if format == Format::Json {
        let v = json!({
            "replicas": replicas.iter().map(|(s, r, a, how)| json!({"service": s, "replica": r, "address": a, "driver": how})).collect::<Vec<_>>(),
            "services": own.iter().map(|(s, a)| json!({"service": s, "address": a})).collect::<Vec<_>>(),
            "from_containers": bridged.iter().map(|(s, a)| json!({"service": s, "address": a})).collect::<Vec<_>>(),
            "network": network.as_ref().map(|(n, sub, br)| json!({"name": n, "subnet": sub, "interface": br})),
            "rewritten": rewritten.iter().map(|(s, k, w, v)| json!({"service": s, "name": k, "written": w, "value": v})).collect::<Vec<_>>(),
        });
        return Ok(serde_json::to_string_pretty(&v)? + "\n");
    }
    let width = replicas
        .iter()
        .map(|(s, r, _, _)| s.len() + 1 + r.to_string().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (s, r, a, how) in &replicas {
        let how = if *how == "container" {
            "  (container)"
        } else {
            ""
        };
        out.push_str(&format!("{:<width$}  {a}{how}\n", format!("{s}-{r}")));
    }
    if !own.is_empty() {
        out.push_str(
            "\nservice addresses (native services reach these services by name there; the gateway forwards to their healthy replicas, wherever deploys move them):\n",
        );
        let width = own.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
        for (s, a) in &own {
            out.push_str(&format!("{s:<width$}  {a}\n"));
        }
    }
    if let Some((name, subnet, bridge)) = &network {
        out.push_str(&format!(
            "\ncontainers: on network {name} ({subnet}, interface {bridge} on this host), at their replica's address; containers reach each other by service name (the network's DNS)\n"
        ));
    }
    if !bridged.is_empty() {
        out.push_str(
            "native services as containers reach them (an address on the containers' network; the gateway forwards to their healthy replicas):\n",
        );
        let width = bridged.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
        for (s, a) in &bridged {
            out.push_str(&format!("{s:<width$}  {a}\n"));
        }
    }
    if !rewritten.is_empty() {
        out.push_str("\nenvironment values that name a service:\n");
        for (s, k, w, v) in &rewritten {
            out.push_str(&format!("  {s}: {k}={v}  (written {w})\n"));
        }
    }
    Ok(out)
}
