//! `cove k8s`: the same app on Kubernetes ([`cove_k8s`]).
//!
//! `render` prints the manifests (or writes one file per object);
//! `apply`, `status`, `diff`, `rollback` and `delete` talk to the cluster
//! of the kubeconfig kubectl would use (`KUBECONFIG`, `~/.kube/config`,
//! `--context`; in a pod, its service account), through
//! [`cove_k8s::cluster`], on a current-thread tokio runtime. Progress goes
//! to stderr, data (status, diff) to stdout.
//!
//! Exit codes: 0 done (diff: nothing differs); 1 an error, a rollout that
//! failed, or (diff) something differs.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cove_k8s::cluster::{self, Cluster};

use crate::cli::ProjectArgs;

#[derive(Debug, clap::Args)]
pub struct K8sArgs {
    #[command(subcommand)]
    pub command: K8sCommand,
}

/// What selects and names the objects, shared by every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The namespace of every object (default: the context's).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Where built images are pushed: `HOST[:PORT]/PREFIX`.
    #[arg(long, value_name = "HOST/PREFIX")]
    pub registry: Option<String>,
    /// The image of cove that the init containers waiting for
    /// `depends_on` run (`cove k8s wait-for`; the binary at `/cove`).
    /// Default: `ghcr.io/cove-dev/cove:VERSION`.
    #[arg(long, value_name = "IMAGE")]
    pub cove_image: Option<String>,
}

/// Which cluster: the kubeconfig's context (and `--namespace`).
#[derive(Debug, Clone, clap::Args)]
pub struct Context {
    /// The kubeconfig context to use (default: its current context; in a
    /// pod without kubeconfig, the pod's service account).
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

fn timeout(s: &str) -> Result<Duration, String> {
    match cove_spec::units::parse_duration(s)? {
        d if d.is_zero() => Err("must be above zero".to_string()),
        d => Ok(d),
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum K8sCommand {
    /// Print the app's Kubernetes objects as multi-document YAML (or write
    /// one file per object into `-o DIR`), built from typed objects:
    /// the same input gives byte-identical output.
    Render {
        #[command(flatten)]
        target: Target,
        /// Write one file per object here (`NNN-kind-name.yaml`, in apply order).
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: Option<PathBuf>,
        /// Put the secrets' values into the Secret objects (they are
        /// otherwise created by `apply` through the API, never printed).
        #[arg(long)]
        include_secrets: bool,
    },
    /// Wait until every `--tcp HOST:PORT` accepts a connection and every
    /// `--job NAME` has completed (in that order), then exit 0; exit 1 at
    /// `--timeout` or when a Job failed. The init containers `render`
    /// gives a service with `depends_on` run this.
    #[command(hide = true)]
    WaitFor {
        /// An address that must accept a TCP connection (repeatable).
        #[arg(long, value_name = "HOST:PORT")]
        tcp: Vec<String>,
        /// A Job that must complete (repeatable); read through the API
        /// (in a pod: its service account).
        #[arg(long, value_name = "NAME")]
        job: Vec<String>,
        /// The Jobs' namespace (default: the pod's, or the context's).
        #[arg(long, short = 'n', value_name = "NS")]
        namespace: Option<String>,
        /// How long to wait for all of them.
        #[arg(long, value_name = "DURATION", default_value = "10m")]
        timeout: String,
    },
    /// Server-side apply every object (field manager `cove`), prune what is
    /// no longer rendered (an applyset, as `kubectl apply --prune
    /// --applyset`), then wait for every rollout (unlike `kubectl apply`:
    /// as `kubectl rollout status` after it; `--no-wait` does not).
    Apply {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        context: Context,
        /// Wait for every rollout (the default; as `kubectl rollout status`).
        #[arg(long, overrides_with = "no_wait")]
        wait: bool,
        /// Return once applied, without waiting for the rollouts.
        #[arg(long, overrides_with = "wait")]
        no_wait: bool,
        /// How long to wait for the rollouts, all together.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = timeout)]
        timeout: Duration,
    },
    /// Every workload of the app: kind, desired/ready/updated/available
    /// pods, revision, images, rollout state.
    Status {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        context: Context,
        #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
        format: StatusFormat,
    },
    /// What `apply` would change (a server-side dry run compared with the
    /// live objects), and what it would prune. Exit 0 when nothing
    /// differs, 1 when something does (as `kubectl diff`).
    Diff {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        context: Context,
    },
    /// Roll a service's Deployment or StatefulSet back to its previous
    /// revision (or `--to N`), as `kubectl rollout undo`. The next `apply`
    /// applies the file again.
    Rollback {
        /// The Compose service.
        service: String,
        /// The revision to go back to (`cove k8s status` shows the current one).
        #[arg(long, value_name = "N")]
        to: Option<i64>,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        context: Context,
    },
    /// Delete every object of the app (its applyset), then the applyset.
    /// Claims (volumes' data) are kept unless `--volumes`, as `cove down`.
    Delete {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        context: Context,
        /// Delete the PersistentVolumeClaims too (their data is lost).
        #[arg(long)]
        volumes: bool,
    },
}

pub fn run(project_args: &ProjectArgs, args: &K8sArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        K8sCommand::Render {
            target,
            output,
            include_secrets,
        } => render(project_args, target, output.as_deref(), *include_secrets),
        K8sCommand::WaitFor {
            tcp,
            job,
            namespace,
            timeout,
        } => wait_for(tcp, job, namespace.as_deref(), timeout),
        K8sCommand::Apply {
            target,
            context,
            wait: _,
            no_wait,
            timeout,
        } => apply(project_args, target, context, !no_wait, *timeout),
        K8sCommand::Status {
            target,
            context,
            format,
        } => status(project_args, target, context, *format),
        K8sCommand::Diff { target, context } => diff(project_args, target, context),
        K8sCommand::Rollback {
            service,
            to,
            target,
            context,
        } => rollback(project_args, service, *to, target, context),
        K8sCommand::Delete {
            target,
            context,
            volumes,
        } => delete(project_args, target, context, *volumes),
    }
}

/// `cove k8s wait-for`: see [`cove_k8s::wait_for`].
fn wait_for(
    tcp: &[String],
    jobs: &[String],
    namespace: Option<&str>,
    timeout: &str,
) -> anyhow::Result<ExitCode> {
    let timeout =
        cove_spec::units::parse_duration(timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    if tcp.is_empty() && jobs.is_empty() {
        anyhow::bail!("nothing to wait for\n  hint: give --tcp HOST:PORT or --job NAME");
    }
    let deadline = std::time::Instant::now() + timeout;
    let say = |line: &str| eprintln!("{line}");
    for addr in tcp {
        if let Err(e) = cove_k8s::wait_for::tcp(addr, deadline, say) {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
        eprintln!("{addr} accepts connections");
    }
    if jobs.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = cove_k8s::wait_for::client()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for name in jobs {
            if let Err(e) =
                cove_k8s::wait_for::job(client.clone(), namespace, name, deadline, say).await
            {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(1));
            }
            eprintln!("Job {name} completed");
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn options(target: &Target) -> cove_k8s::Options {
    cove_k8s::Options {
        namespace: target.namespace.clone(),
        registry: target.registry.clone(),
        cove_image: target.cove_image.clone(),
        ..cove_k8s::Options::default()
    }
}

/// The values of the secrets the app's services use, by top-level name:
/// from cove's encrypted store (`x-cove: {store: NAME}`, opened with the
/// user's identity), a `file:`, or an `environment:` variable (of this
/// process). `external` secrets are existing Secrets: left out. When one
/// cannot be read, every problem is reported (with its place in the file)
/// and `Err(())` returned.
pub fn secret_values(
    project: &cove_spec::Project,
) -> Result<std::collections::BTreeMap<String, Vec<u8>>, ()> {
    use cove_runtime::secrets::{Source, source};
    let mut app = project.app.clone();
    let mut out = std::collections::BTreeMap::new();
    let mut missing = Vec::new();
    // What the runtime does not read: external (not ours) and
    // `environment:` (read here, from this process's environment).
    let used: std::collections::BTreeSet<String> = app
        .services
        .values()
        .flat_map(|s| s.secrets.iter().map(|r| r.source.clone()))
        .collect();
    app.secrets.retain(|name, def| {
        if def
            .get("external")
            .is_some_and(|e| e != &serde_json::Value::Bool(false))
        {
            return false;
        }
        if let Source::Unsupported(_) = source(def)
            && let Some(var) = def.get("environment").and_then(serde_json::Value::as_str)
        {
            if used.contains(name) {
                match std::env::var_os(var) {
                    Some(v) => {
                        out.insert(name.clone(), v.into_encoded_bytes());
                    }
                    None => missing.push(cove_runtime::plan::PlanError {
                        service: String::new(),
                        message: format!(
                            "secret `{name}` takes its value from `{var}`, which is not set"
                        ),
                        hint: format!("set `{var}` in the environment of this command"),
                        field: vec!["secrets".into(), name.clone()],
                        machine: false,
                        written: false,
                    }),
                }
            }
            return false;
        }
        true
    });
    let identity = crate::cmd::secrets::identity_path();
    let resolved = cove_runtime::secrets::resolve(&app, &project.project_dir, identity.as_deref());
    match resolved {
        Ok(r) if missing.is_empty() => {
            for (name, value) in r.values {
                out.insert(name, value.bytes().to_vec());
            }
            Ok(out)
        }
        Ok(_) => {
            crate::project::report_located(project, &missing, false);
            Err(())
        }
        Err(mut errors) => {
            errors.extend(missing);
            crate::project::report_located(project, &errors, false);
            Err(())
        }
    }
}

/// The images `cove build --push` pushed to `--registry` (none without
/// it): the services' (by digest), and cove's own for the init containers
/// unless `--cove-image` names one.
pub(crate) fn pushed(
    project: &cove_spec::Project,
    target: &Target,
    opts: &mut cove_k8s::Options,
) -> anyhow::Result<()> {
    let Some(registry) = &target.registry else {
        return Ok(());
    };
    let state_dir = cove_runtime::plan::state_dir(&project.app, &project.project_dir);
    let (services, cove) = super::push::pushed(&state_dir, registry)?;
    opts.pushed = services;
    if opts.cove_image.is_none() {
        opts.cove_image = cove;
    }
    Ok(())
}

fn render(
    project_args: &ProjectArgs,
    target: &Target,
    output: Option<&std::path::Path>,
    include_secrets: bool,
) -> anyhow::Result<ExitCode> {
    let values = if include_secrets {
        Values::Printed
    } else {
        Values::Left
    };
    let Some((_, rendered)) = rendered(project_args, target, values)? else {
        return Ok(ExitCode::from(1));
    };
    match output {
        None => {
            let text = cove_k8s::yaml::documents(&rendered.objects);
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
        Some(dir) => {
            fs_err::create_dir_all(dir)?;
            for (i, o) in rendered.objects.iter().enumerate() {
                let text = cove_spec::yaml_out::to_yaml(&o.to_json());
                let path = dir.join(cove_k8s::yaml::file_name(i, o));
                if include_secrets && o.kind() == "Secret" {
                    // Values inside: readable by the owner only.
                    use fs_err::os::unix::fs::OpenOptionsExt as _;
                    let mut f = fs_err::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&path)?;
                    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
                    f.write_all(text.as_bytes())?;
                } else {
                    fs_err::write(path, text)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What becomes of the secrets' values in a render.
#[derive(Clone, Copy, PartialEq)]
enum Values {
    /// Left out: the Secret objects have no data (`render`).
    Left,
    /// In the Secrets, printed (`render --include-secrets`, with a warning).
    Printed,
    /// In the Secrets, sent to the cluster through the API.
    Sent,
}

/// The project and its objects rendered (with the secrets' values unless
/// `Values::Left`), its warnings printed; `None`: the errors are printed
/// (exit 1).
fn rendered(
    project_args: &ProjectArgs,
    target: &Target,
    values: Values,
) -> anyhow::Result<Option<(cove_spec::Project, cove_k8s::Rendered)>> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(None);
    };
    let mut opts = options(target);
    if values != Values::Left {
        match secret_values(&project) {
            Ok(v) => opts.secret_values = v,
            Err(()) => return Ok(None),
        }
        if values == Values::Printed && !opts.secret_values.is_empty() {
            eprintln!(
                "warning: the Secret objects below hold the secrets' values (base64, not encrypted): keep this output out of files others read and out of version control"
            );
        }
    }
    pushed(&project, target, &mut opts)?;
    let rendered = match cove_k8s::render(&project.app, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(None);
        }
    };
    for w in &rendered.warnings {
        eprintln!("warning: {w}");
    }
    Ok(Some((project, rendered)))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Prints a cluster error with its hint; exit 1.
fn failed(e: &cluster::Error) -> ExitCode {
    eprintln!("error: {e}");
    if let Some(h) = e.hint() {
        eprintln!("  hint: {h}");
    }
    ExitCode::from(1)
}

async fn connect(target: &Target, context: &Context) -> Result<Cluster, cluster::Error> {
    cluster::connect(context.context.as_deref(), target.namespace.as_deref()).await
}

fn progress(line: &str) {
    eprintln!("{line}");
}

fn apply(
    project_args: &ProjectArgs,
    target: &Target,
    context: &Context,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let Some((project, rendered)) = rendered(project_args, target, Values::Sent)? else {
        return Ok(ExitCode::from(1));
    };
    runtime()?.block_on(async {
        let cluster = match connect(target, context).await {
            Ok(c) => c,
            Err(e) => return Ok(failed(&e)),
        };
        let name = &project.app.name;
        if let Err(e) =
            cluster::apply::apply(&cluster, name, &rendered.objects, &mut |l| progress(l)).await
        {
            return Ok(failed(&e));
        }
        if !wait {
            return Ok(ExitCode::SUCCESS);
        }
        let failures = match cluster::rollout::wait(
            &cluster,
            &rendered.objects,
            timeout,
            &mut |l| progress(l),
        )
        .await
        {
            Ok(f) => f,
            Err(e) => return Ok(failed(&e)),
        };
        for f in &failures {
            eprintln!("error: {} did not roll out: {}", f.workload, f.reason);
            if f.events.is_empty() {
                eprintln!("  (no events)");
            } else {
                eprintln!("  its last events:");
            }
            for e in &f.events {
                eprintln!("    {e}");
            }
        }
        if failures.is_empty() {
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!(
                "  hint: `cove k8s status` shows every workload; `cove k8s rollback SERVICE` goes back to the previous revision"
            );
            Ok(ExitCode::from(1))
        }
    })
}

fn status(
    project_args: &ProjectArgs,
    target: &Target,
    context: &Context,
    format: StatusFormat,
) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let rows = runtime()?.block_on(async {
        let cluster = connect(target, context).await?;
        cluster::status::status(&cluster, &project.app.name).await
    });
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return Ok(failed(&e)),
    };
    let mut out = std::io::stdout().lock();
    match format {
        StatusFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
        StatusFormat::Table => {
            let mut table = vec![[
                "WORKLOAD".to_string(),
                "READY".into(),
                "UPDATED".into(),
                "AVAILABLE".into(),
                "REVISION".into(),
                "IMAGES".into(),
                "CONDITION".into(),
            ]];
            for r in &rows {
                table.push([
                    cluster::workload_id(&r.kind, &r.name),
                    format!("{}/{}", r.ready, r.desired),
                    r.updated.to_string(),
                    r.available.to_string(),
                    r.revision.clone().unwrap_or_else(|| "-".into()),
                    r.images.join(","),
                    r.condition.clone(),
                ]);
            }
            let widths: Vec<usize> = (0..7)
                .map(|i| table.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for r in &table {
                let mut line = String::new();
                for (i, cell) in r.iter().enumerate() {
                    if i + 1 == r.len() {
                        line.push_str(cell);
                    } else {
                        line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                    }
                }
                writeln!(out, "{}", line.trim_end())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn diff(
    project_args: &ProjectArgs,
    target: &Target,
    context: &Context,
) -> anyhow::Result<ExitCode> {
    use cove_k8s::cluster::diff::Change;
    let Some((project, rendered)) = rendered(project_args, target, Values::Sent)? else {
        return Ok(ExitCode::from(1));
    };
    let changes = runtime()?.block_on(async {
        let cluster = connect(target, context).await?;
        cluster::diff::diff(&cluster, &project.app.name, &rendered.objects).await
    });
    let changes = match changes {
        Ok(c) => c,
        Err(e) => return Ok(failed(&e)),
    };
    let mut out = std::io::stdout().lock();
    for c in &changes {
        match c {
            Change::Create { id, yaml } => {
                writeln!(out, "--- live/{id} (absent)\n+++ cove/{id}")?;
                for l in yaml.lines() {
                    writeln!(out, "+{l}")?;
                }
            }
            Change::Update { diff, .. } => write!(out, "{diff}")?,
            Change::Prune { id, kept: false } => writeln!(out, "pruned: {id}")?,
            Change::Prune { id, kept: true } => {
                writeln!(out, "no longer rendered, kept with its data: {id}")?;
            }
        }
    }
    Ok(if changes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn rollback(
    project_args: &ProjectArgs,
    service: &str,
    to: Option<i64>,
    target: &Target,
    context: &Context,
) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    if !project.app.services.contains_key(service) {
        eprintln!("error: the app has no service {service:?}");
        eprintln!(
            "  hint: its services: {}",
            project
                .app
                .services
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    let name = cove_k8s::names::dns_label(service);
    let done = runtime()?.block_on(async {
        let cluster = connect(target, context).await?;
        cluster::rollback::rollback(&cluster, &name, to).await
    });
    match done {
        Ok(r) => {
            eprintln!(
                "{}: rolled back from revision {} to revision {} (the next `cove k8s apply` applies the file again)",
                r.workload, r.from, r.to
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&e)),
    }
}

fn delete(
    project_args: &ProjectArgs,
    target: &Target,
    context: &Context,
    volumes: bool,
) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let done = runtime()?.block_on(async {
        let cluster = connect(target, context).await?;
        cluster::delete::delete(&cluster, &project.app.name, volumes).await
    });
    match done {
        Ok(d) => {
            for id in &d.deleted {
                eprintln!("{id} deleted");
            }
            for id in &d.kept {
                eprintln!("{id} kept, with its data (`--volumes` deletes it)");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&e)),
    }
}
