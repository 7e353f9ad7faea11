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
}

pub fn run(project_args: &ProjectArgs, args: &K8sArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        K8sCommand::Render {
            target,
            output,
            include_secrets,
        } => render(project_args, target, output.as_deref(), *include_secrets),
    }
}

fn options(target: &Target) -> cove_k8s::Options {
    cove_k8s::Options {
        namespace: target.namespace.clone(),
        registry: target.registry.clone(),
        ..cove_k8s::Options::default()
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
    let _ = include_secrets;
    let mut opts = options(target);
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
                fs_err::write(dir.join(cove_k8s::yaml::file_name(i, o)), text)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
