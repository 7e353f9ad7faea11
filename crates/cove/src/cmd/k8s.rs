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

fn render(
    project_args: &ProjectArgs,
    target: &Target,
    output: Option<&std::path::Path>,
    include_secrets: bool,
) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let _ = include_secrets;
    let rendered = match cove_k8s::render(&project.app, &options(target)) {
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
                fs_err::write(dir.join(cove_k8s::yaml::file_name(i, o)), text)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
