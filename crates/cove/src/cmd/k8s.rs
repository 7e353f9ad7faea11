//! `cove k8s`: the same app on Kubernetes ([`cove_k8s`]).
//!
//! `render` prints the manifests (or writes one file per object);
//! `apply`, `status`, `diff`, `rollback` and `delete` talk to the cluster
//! of the kubeconfig kubectl would use (`KUBECONFIG`, `~/.kube/config`,
//! `--context`; in a pod, its service account).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

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

/// The images `cove build --push` pushed to `--registry`, by service
/// (none without `--registry`).
pub(crate) fn pushed(
    project: &cove_spec::Project,
    target: &Target,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let Some(registry) = &target.registry else {
        return Ok(Default::default());
    };
    let state_dir = cove_runtime::plan::state_dir(&project.app, &project.project_dir);
    super::push::pushed(&state_dir, registry)
}

fn render(
    project_args: &ProjectArgs,
    target: &Target,
    output: Option<&std::path::Path>,
    include_secrets: bool,
) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let mut opts = options(target);
    if include_secrets {
        opts.secret_values = match secret_values(&project) {
            Ok(v) => v,
            Err(()) => return Ok(ExitCode::from(1)),
        };
        if !opts.secret_values.is_empty() {
            eprintln!(
                "warning: the Secret objects below hold the secrets' values (base64, not encrypted): keep this output out of files others read and out of version control"
            );
        }
    }
    opts.pushed = pushed(&project, target)?;
    let rendered = match cove_k8s::render(&project.app, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for w in &rendered.warnings {
        eprintln!("warning: {w}");
    }
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
