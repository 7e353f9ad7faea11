//! Command-line definition (clap). Global options mirror `docker compose`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "cove",
    version,
    about = "Run a Compose app the same way on a laptop, a server and Kubernetes."
)]
pub struct Cli {
    #[command(flatten)]
    pub project: ProjectArgs,
    /// Another host's daemon, reached over ssh (as `docker -H ssh://`):
    /// `ssh://USER@HOST[:PORT]`. `ps`, `ls`, `events`, `logs` and
    /// `version` work over it, and `history`, `rollback`, `down`, `stop`,
    /// `start`, `restart`, `scale` with `--env NAME` (in the checkout
    /// `cove deploy --env NAME` sent). `COVE_SSH` names
    /// the ssh program and its options.
    #[arg(
        long = "host",
        value_name = "ssh://USER@HOST[:PORT]",
        env = "COVE_HOST"
    )]
    pub host: Option<cove_daemon::remote::Target>,
    #[command(subcommand)]
    pub command: Command,
}

/// Which app to load; given before the command, as with `docker compose`.
#[derive(Debug, Args, Clone, Default)]
pub struct ProjectArgs {
    /// Compose file(s), merged in order. Default: compose.yaml (or
    /// docker-compose.yml, ...) here or in a parent directory, plus its override.
    #[arg(
        short = 'f',
        long = "file",
        id = "file",
        value_name = "FILE",
        env = "COMPOSE_FILE",
        value_delimiter = ':'
    )]
    pub files: Vec<PathBuf>,
    /// Project name. Default: `name:` in the file, else the directory name.
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Base directory of relative paths. Default: the first file's directory.
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Env file(s) for interpolation. Default: `.env` in the project directory.
    #[arg(long = "env-file", id = "env_file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable services of this profile (repeatable; `*` enables all).
    #[arg(long = "profile", id = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Environment: adds `compose.NAME.yaml` over the files, `.env.NAME`
    /// over `.env`, and takes secrets from `cove.secrets.NAME.yaml`. With
    /// `x-cove.environments.NAME.hosts`, `deploy`, `up -d`, `ps`, `logs`,
    /// `history`, `rollback`, `down`, `stop`, `start`, `restart` and
    /// `scale` act on those hosts (over ssh).
    #[arg(
        long = "env",
        id = "environment",
        value_name = "NAME",
        env = "COVE_ENV"
    )]
    pub environment: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the resolved app: files merged, variables interpolated, defaults filled; refused, as `cove up` would refuse it, when it cannot run.
    Config(ConfigArgs),
    /// Print a JSON schema (`x-cove`: the extension fields cove reads).
    Schema(SchemaArgs),
    /// Start services and what they depend on, in order, and stream their
    /// output until Ctrl-C, which stops them; `-d` returns once they are ready.
    Up(UpArgs),
    /// Stop and forget every service; `--volumes` also deletes their data.
    Down(DownArgs),
    /// List the replicas: state, health, pid, address, restarts, uptime;
    /// `-q` their ids, `--services` the services, `--format` a template.
    Ps(PsListArgs),
    /// List this host's projects and environments (yours) with how many
    /// replicas run, as `docker compose ls`; `--all` lists stopped ones too.
    Ls(LsArgs),
    /// Show the gateway's routes: URL, host, path, service, port, and the
    /// replicas each sends to now.
    Routes(PsArgs),
    /// Show the services' output, kept on disk, merged in time order.
    Logs(LogsArgs),
    /// Build what the services run (all when none named), without starting
    /// anything: the images of services run as containers (`build:`,
    /// through the Docker engine) and native `x-cove.build` commands.
    Build(BuildArgs),
    /// Stop services (all when none named); they stay listed as stopped.
    Stop(ServicesArgs),
    /// Start stopped services again (all when none named).
    Start(ServicesArgs),
    /// Stop and start services (all when none named).
    Restart(ServicesArgs),
    /// Build services (all running ones when none named) and roll the new
    /// revision out replica by replica per `deploy.update_config`: new
    /// replicas serve only once healthy, old ones are drained first; a
    /// failed deploy rolls back by itself.
    Deploy(DeployArgs),
    /// Set replica counts, e.g. `cove scale api=5`; fewer replicas are
    /// drained before they stop, added ones are waited for until ready.
    Scale(ScaleArgs),
    /// Roll a service back to its previous revision (or `--to N`), with
    /// its kept artifact, replica by replica.
    Rollback(RollbackArgs),
    /// List a service's revisions.
    History(HistoryArgs),
    /// The app's secrets, encrypted with age in `cove.secrets.yaml` beside
    /// its Compose file (safe to commit; one line per secret).
    Secrets(SecretsArgs),
    /// Back up services' data now (`cove backup [SERVICE...]`), list the
    /// backups (`ls`), read them back and verify them (`check`), drill
    /// restores into a scratch instance (`verify`): encrypted,
    /// deduplicated snapshots in a restic repository.
    Backup(crate::cmd::backup::BackupArgs),
    /// The same app on Kubernetes: `render` its manifests, `apply` them
    /// (server-side, pruning what is no longer rendered) and wait for the
    /// rollouts, `status`, `diff`, `rollback`, `delete`.
    K8s(crate::cmd::k8s::K8sArgs),
    /// Preview environments that share a baseline: `up NAME` runs what
    /// this working tree (or `--ref`) changes and shares the rest, reached
    /// at `NAME.HOST` and by its key (`X-Cove-Preview: NAME`); `ls`,
    /// `down`, `logs`, `sleep`, `wake`.
    Preview(crate::cmd::preview::PreviewArgs),
    /// Replace a service's data with a backup (the newest, or `--from ID`),
    /// in place: asks first unless `--yes`; or into a new instance beside
    /// it (`--to-new NAME`).
    Restore(crate::cmd::backup::RestoreArgs),
    /// Run a one-off command in a service's environment (its dependencies
    /// are started first; a container service's in a container of its
    /// own), e.g. `cove run --rm api ./migrate`: options before SERVICE,
    /// the command after it.
    Run(RunArgs),
    /// Run the gateway alone, in the foreground, in front of the given
    /// upstreams (one pool, every path), until SIGTERM or Ctrl-C.
    Gateway(GatewayArgs),
    /// Show the processes of each replica (`ps -ef` columns): natively the
    /// replica's process and its descendants, for containers the engine's.
    Top(TopArgs),
    /// Print where a replica's port is reached from this host, `HOST:PORT`:
    /// the published address (`ports:`), else the replica's own address.
    Port(PortArgs),
    /// List what each replica runs: a container's image (repository, tag,
    /// id, size), or for a native replica its program or recipe.
    Images(ImagesArgs),
    /// Show cove's version.
    Version(VersionArgs),
    /// Print the app's events as they happen (replicas starting, stopping,
    /// failing, deploy steps), one a line, until Ctrl-C.
    Events(EventsArgs),
    /// List the alerts (`x-cove.alerts`) that fire, are pending (their
    /// `for:` not yet over) or fired and resolved, as the daemon keeps them.
    Alerts(PsArgs),
    /// Wait until every replica of the services has stopped, and exit
    /// with the first one's exit code.
    Wait(WaitArgs),
    /// Run a command beside a running replica, as `docker compose exec`:
    /// natively in its environment (its variables, addresses, secrets
    /// directory) and working directory; in its container through the
    /// engine. Attached to the terminal; exit code: the command's.
    Exec(ExecArgs),
    /// Send a signal (default SIGKILL) to the services' running replicas
    /// (all when none named). SIGKILL, or a service's own stop signal,
    /// stops it as `cove stop` does (its restart policy does not bring
    /// it back; `cove start` does); any other signal is only delivered.
    Kill(KillArgs),
    /// Freeze the services' running replicas (all when none named):
    /// SIGSTOP to a process group, the engine's pause for a container.
    /// Paused replicas are listed `paused`, get no requests from the
    /// gateway and are not health-checked until `cove unpause`.
    Pause(ActServicesArgs),
    /// Resume paused replicas (all when none named).
    Unpause(ActServicesArgs),
    /// Copy files between a replica and this machine: `SERVICE:SRC DEST`
    /// or `SRC SERVICE:DEST`. In a container through the engine; natively
    /// a plain copy, `SERVICE:PATH` relative to the service's working
    /// directory.
    Cp(CpArgs),
    /// Pull the images of services run as containers (all when none
    /// named) again from their registry; services that build their image
    /// or run natively have nothing to pull.
    Pull(PullArgs),
    /// Start the services and follow their `develop.watch` rules, as
    /// `cove up --watch` does, until Ctrl-C.
    Watch(WatchArgs),
    /// The host, as cove runs on it: `server install` puts cove and its
    /// daemon's systemd unit in place.
    Server(ServerArgs),
    /// What `cove --host` runs on the other host over ssh.
    #[command(hide = true)]
    System(SystemArgs),
    /// The daemon (started by the other commands when needed).
    #[command(name = "__daemon", hide = true)]
    Daemon(DaemonArgs),
    /// Stops what a daemon left when it dies (started by the daemon).
    #[command(name = "__reaper", hide = true)]
    Reaper(DaemonArgs),
}

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on, `HOST:PORT`.
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// An upstream, `HOST:PORT` (repeatable).
    #[arg(long = "upstream", value_name = "ADDR", required = true)]
    pub upstreams: Vec<std::net::SocketAddr>,
    /// Worker threads. Default: one per core.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// How to choose an upstream.
    #[arg(long, value_enum, default_value_t = BalancePolicy::LeastInFlight)]
    pub policy: BalancePolicy,
    /// Time to connect to an upstream (`500ms`, `2s`); then the request
    /// goes to another.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub connect_timeout: std::time::Duration,
    /// Time between two health checks of an upstream.
    #[arg(long, value_name = "DURATION", default_value = "250ms", value_parser = duration)]
    pub health_interval: std::time::Duration,
    /// Time a health check has to pass.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = duration)]
    pub health_timeout: std::time::Duration,
    /// Health check: `GET` this path (2xx or 3xx passes). Default: a TCP
    /// connect passes.
    #[arg(long, value_name = "PATH")]
    pub health_path: Option<String>,
    /// No active health checks (passive health only).
    #[arg(long, conflicts_with_all = ["health_interval", "health_timeout", "health_path"])]
    pub no_health_check: bool,
}

/// A duration flag's value (`500ms`, `2s`, `1m`), above zero.
fn duration(s: &str) -> Result<std::time::Duration, String> {
    match cove_spec::units::parse_duration(s)? {
        d if d.is_zero() => Err("must be above zero".to_string()),
        d => Ok(d),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BalancePolicy {
    /// Two random choices, the one with fewer requests in flight.
    LeastInFlight,
    RoundRobin,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// The revision's message. Default: the project's git commit, if any.
    #[arg(short, long, value_name = "TEXT")]
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// `SERVICE=N` (repeatable).
    #[arg(value_name = "SERVICE=N", required = true)]
    pub pairs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// The revision to go back to. Default: the one before the running one.
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
}

#[derive(Debug, Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Create your identity (an age key, mode 0600, at $COVE_IDENTITY or
    /// ~/.config/cove/identity.txt) if you have none, and the app's secrets
    /// file, with you as its recipient, if it has none.
    Init,
    /// Set a secret from standard input (one trailing newline dropped), or
    /// from `--file` as it is; never from the command line.
    Set {
        name: String,
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Print a secret.
    Get { name: String },
    /// List the secrets' names.
    #[command(alias = "list")]
    Ls,
    /// Remove a secret.
    Rm { name: String },
    /// Edit every secret in $VISUAL or $EDITOR (else vi): a temporary file
    /// of `NAME=value` lines (mode 0600, removed afterwards, also when the
    /// editor fails); what changed is encrypted again.
    Edit,
    /// List, add or remove the recipients (those who can read the secrets);
    /// every secret is encrypted again for the new set.
    Recipients {
        #[command(subcommand)]
        command: Option<RecipientsCommand>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// Add a recipient: an `age1…` public key (a person's, or a server's).
    Add {
        key: String,
        /// Who it is (kept beside the key).
        #[arg(long)]
        comment: Option<String>,
    },
    /// Remove a recipient (rotate the secrets too: old versions stay in git).
    Rm { key: String },
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Also delete the services' data directories (named first).
    #[arg(short, long)]
    pub volumes: bool,
    /// Accepted as Compose has it: `down` stops every service of the app,
    /// those no longer in the compose file (orphans) included.
    #[arg(long)]
    pub remove_orphans: bool,
    /// Seconds replicas get to stop before they are killed, over
    /// `stop_grace_period`.
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Also remove the images of container services: `all` (every image
    /// they use) or `local` (those built here, without a custom `image:` tag).
    #[arg(long, value_enum, value_name = "TYPE")]
    pub rmi: Option<Rmi>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rmi {
    All,
    Local,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Also the projects with nothing running.
    #[arg(short, long)]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PsFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// Build without the engine's cache (natively: `x-cove.build` always
    /// runs whole; cove keeps no build cache).
    #[arg(long)]
    pub no_cache: bool,
    /// Pull the base images again, even when they are here.
    #[arg(long)]
    pub pull: bool,
    /// Print only errors, not the builds' output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Build an image of every service a cluster must pull (those with
    /// `build:`, even when run natively; native-only ones whose program is
    /// a static binary, `FROM scratch`), push each as
    /// `HOST/PREFIX/<project>-<service>:latest`, and record the digests
    /// for `cove k8s render --registry`.
    #[arg(long, requires = "registry")]
    pub push: bool,
    /// Where `--push` pushes: `HOST[:PORT]/PREFIX`.
    #[arg(long, value_name = "HOST/PREFIX", requires = "push")]
    pub registry: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// For `start`/`restart`: how long to wait for them to be ready, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub wait_timeout: u64,
    /// For `stop`/`restart`: seconds replicas get to stop before they are
    /// killed, over `stop_grace_period`.
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Do not start the service's dependencies.
    #[arg(long)]
    pub no_deps: bool,
    /// Set an environment variable (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Remove the one-off when it ends (cove's one-offs leave nothing
    /// behind: always so).
    #[arg(long)]
    pub rm: bool,
    /// Run it in the background: print its id (a pid, or a container's
    /// name) and return; its output goes to the logs (`cove logs`) for a
    /// container, nowhere natively.
    #[arg(short, long)]
    pub detach: bool,
    /// The one-off's name (a container's name; natively, its
    /// `COVE_REPLICA`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Allocate no TTY (cove allocates none: its output is piped as it is).
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Keep standard input open (a native one-off reads cove's; a
    /// container's reads none).
    #[arg(short, long)]
    pub interactive: bool,
    /// The working directory of the command.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<std::path::PathBuf>,
    /// Run as this user (`NAME` or `UID[:GID]`).
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Override the service's entrypoint (`""` for none).
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Publish the service's ports (natively: the one-off listens on the
    /// service's address and `PORT`, beside its replicas).
    #[arg(long)]
    pub service_ports: bool,
    /// Publish a port, `[HOST:]HOST_PORT:CONTAINER_PORT` (repeatable).
    #[arg(short, long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Add a label, `KEY=VALUE` (repeatable).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// The service whose environment the command runs in.
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// The command (default: the service's own).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SystemArgs {
    #[command(subcommand)]
    pub command: SystemCommand,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Joins stdin and stdout to the host daemon's socket (`cove --host
    /// ssh://...` runs it over ssh).
    DialStdio,
    /// Receives an app's files from `cove deploy --env` (a manifest, then
    /// the blobs this host lacks) and makes a checkout of them.
    Receive { project: String, env: String },
    /// Runs `cove ARGS` in the app's checkout with the host's daemon
    /// (after switching `current` to `--checkout NAME`).
    In {
        project: String,
        env: String,
        #[arg(long, value_name = "NAME")]
        checkout: Option<String>,
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: ServerCommand,
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Run on the host: copies this cove to PREFIX/bin/cove, writes the
    /// systemd unit of the host's daemon and enables it, creates the
    /// host's age identity and prints its recipient.
    Install(ServerInstallArgs),
}

#[derive(Debug, Args)]
pub struct ServerInstallArgs {
    /// Print the systemd unit and change nothing.
    #[arg(long)]
    pub print: bool,
    /// Where the binary goes: PREFIX/bin/cove.
    #[arg(long, value_name = "DIR", default_value = "/usr/local")]
    pub prefix: PathBuf,
    /// The user the daemon runs as (its state in /var/lib/cove for root,
    /// else in that user's ~/.local/state/cove).
    #[arg(long, value_name = "USER", default_value = "root")]
    pub user: String,
    /// The daemon's directory, instead of the user's default.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// The host's daemon: runs several projects and stays up.
    #[arg(long)]
    pub host: bool,
}

/// `cove ps`: which replicas, and how to print them.
#[derive(Debug, Args)]
pub struct PsListArgs {
    /// Only these services' replicas.
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// Accepted as Compose has it: cove always lists every replica it
    /// keeps, stopped, completed and failed ones too, with why (Compose
    /// lists only running containers without `-a`: `--status running`).
    #[arg(short, long)]
    pub all: bool,
    /// Only the replicas' ids, one a line: `SERVICE-N` for a native
    /// replica, the container's name for a container.
    #[arg(short, long, conflicts_with = "services")]
    pub quiet: bool,
    /// Only the services' names, one a line.
    #[arg(long)]
    pub services: bool,
    /// Only the replicas in this state (repeatable): Compose's words,
    /// `created` (waiting, starting), `running` (stopping too), `restarting`,
    /// `exited` (completed, failed, stopped), `paused`, `removing`, `dead`;
    /// or cove's own, `waiting`, `starting`, `completed`, `failed`,
    /// `stopping`, `stopped`.
    #[arg(long = "status", value_name = "STATUS")]
    pub status: Vec<String>,
    /// `status=STATUS` (repeatable), as `--status`: the one filter
    /// Compose's `ps` has.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// `--orphans=false`: leave out the replicas of services no longer in
    /// the compose file.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub orphans: bool,
    /// Accepted as Compose has it: cove never truncates what `ps` prints.
    #[arg(long)]
    pub no_trunc: bool,
    /// `table`, `json`, or a template such as `{{.Name}}\t{{.State}}`
    /// (`table {{...}}` adds a header and aligns columns). Fields: Name,
    /// ID, Service, Project, Replica, Revision, State, Status, Health,
    /// ExitCode, Ports, Address, Pid, Restarts, RunningFor, Command, Image,
    /// Reason.
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Only these services' replicas (all when none named).
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// The port the service listens on (`80`, or `80/tcp`).
    #[arg(value_name = "PRIVATE_PORT")]
    pub private_port: String,
    /// `tcp` or `udp`.
    #[arg(long, value_name = "PROTOCOL", default_value = "tcp")]
    pub protocol: String,
    /// Which replica, when the service has several (default: the first).
    #[arg(long, value_name = "N")]
    pub index: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only these services' replicas (all when none named).
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PsFormat::Table)]
    pub format: PsFormat,
    /// Only the image ids (containers), one a line.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Only the version number.
    #[arg(long)]
    pub short: bool,
    /// `pretty` or `json`.
    #[arg(short, long, value_enum, default_value_t = VersionFormat::Pretty)]
    pub format: VersionFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VersionFormat {
    Pretty,
    Json,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only these services' events (all when none named).
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// One JSON object a line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also the events kept since then (the daemon keeps the last ones): a
    /// duration (`10m`) or a time (`2026-11-23T21:00:00.000Z`).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Stop at this time (a duration before now, or a time), as `--since`.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[arg(value_name = "SERVICE", required = true)]
    pub service_names: Vec<String>,
    /// Then stop the whole app, as `cove down` does.
    #[arg(long)]
    pub down_project: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only these services (`api`) or replicas (`api-2`).
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// Keep printing new lines as they come (until Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
    /// Only lines newer than this: a duration (`10m`) or a time (`2026-11-23T21:00:00.000Z`).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only the last N lines of each replica.
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<usize>,
    /// Show each line's time.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines older than this: a duration (`10m`: ten minutes ago) or
    /// a time, as `--since`.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only replica N of the services (of each, when none named).
    #[arg(long, value_name = "N", visible_alias = "replica")]
    pub index: Option<u32>,
    /// Only lines matching this regular expression (the regex crate's
    /// syntax; searched in the line's text, not its time or prefix).
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<String>,
    /// Only lines at this level or above (trace, debug, info, warn, error,
    /// fatal): a JSON line's `level`/`severity`, or a plain line's first
    /// word (`WARN`, `[error]`, `INFO:`); lines with no level are left out.
    #[arg(long, value_name = "LEVEL")]
    pub level: Option<String>,
    /// Only JSON lines whose top-level FIELD has VALUE (repeatable: all
    /// must hold), e.g. `--where user=ann`.
    #[arg(long = "where", value_name = "FIELD=VALUE")]
    pub wheres: Vec<String>,
    /// `text` (prefixed lines) or `json` (one object per line: time,
    /// time_ms, source, service, replica, stream, text).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// Print the lines alone, without the `SERVICE-N |` before them.
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Do not colour the prefixes (they are coloured by service only on a
    /// terminal, and never when `NO_COLOR` is set).
    #[arg(long)]
    pub no_color: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Only these services and what they depend on (their profiles are enabled).
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// Run in the background: return once everything is ready (healthy;
    /// without a health check, up `x-cove.ready_after` and accepting
    /// connections; or completed), or fail naming what did not start.
    #[arg(short, long)]
    pub detach: bool,
    /// With `-d`: how long to wait for readiness, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub wait_timeout: u64,
    /// Follow the services' `develop.watch` rules: when their files change,
    /// redeploy them (`rebuild`) or replace their replicas (`restart`,
    /// `sync+restart`), replica by replica.
    #[arg(short, long, conflicts_with = "detach")]
    pub watch: bool,
    /// Enable services of this profile (repeatable), as `cove --profile P up`.
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// Stop the services that still run but are no longer in the compose
    /// file (orphans; without it they keep running, and `ps` marks them).
    #[arg(long)]
    pub remove_orphans: bool,
    /// Build first: the images of container services (`build:`) and, for
    /// services already running, their `x-cove.build` too, replacing their
    /// replicas with what the build made.
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Build nothing: an image that is missing fails its service
    /// (natively, `x-cove.build` still runs at a first start).
    #[arg(long)]
    pub no_build: bool,
    /// Wait for the services to be ready, in the background (as `-d`).
    #[arg(long, conflicts_with = "watch")]
    pub wait: bool,
    /// Replace the replicas of the services even when nothing changed.
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Leave running services as they run, even when their definition changed.
    #[arg(long)]
    pub no_recreate: bool,
    /// Start only the services named, not what they depend on.
    #[arg(long)]
    pub no_deps: bool,
    /// Check and plan the app (and build its images), starting nothing.
    #[arg(long, conflicts_with_all = ["detach", "wait", "watch"])]
    pub no_start: bool,
    /// Stop every service as soon as one of them ends (its replica exits).
    #[arg(long, conflicts_with_all = ["detach", "wait"])]
    pub abort_on_container_exit: bool,
    /// Exit with this service's exit code (implies
    /// `--abort-on-container-exit`).
    #[arg(long, value_name = "SERVICE", conflicts_with_all = ["detach", "wait"])]
    pub exit_code_from: Option<String>,
    /// Run N replicas of SERVICE (repeatable), over `deploy.replicas`.
    #[arg(long, value_name = "SERVICE=N")]
    pub scale: Vec<String>,
    /// Pull images without printing progress.
    #[arg(long)]
    pub quiet_pull: bool,
    /// Seconds replicas get to stop (at Ctrl-C, or when replaced) before
    /// they are killed, over `stop_grace_period`.
    #[arg(short = 't', long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Pull images: `always`, `missing` (the default), `never`, or `build`
    /// (build the images that have `build:`).
    #[arg(long, value_enum, value_name = "POLICY")]
    pub pull: Option<PullPolicy>,
    /// Print the services' output without colours.
    #[arg(long)]
    pub no_color: bool,
    /// Print the services' output without the `replica |` prefix.
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Print the output of these services only (repeatable).
    #[arg(long, value_name = "SERVICE")]
    pub attach: Vec<String>,
    /// Do not print the output of these services (repeatable).
    #[arg(long, value_name = "SERVICE")]
    pub no_attach: Vec<String>,
    /// Borrow services from another environment running on this host
    /// (repeatable): `staging:db,redis` (or `staging`: every service it
    /// runs but those named to start). They are not started here;
    /// references to them reach that environment's, and writes go to its
    /// data. ENV is an `--env` name of this project, or another checkout's
    /// directory (with a `/`). Wins over `x-cove.borrow`.
    #[arg(long, value_name = "ENV[:SERVICE,...]")]
    pub borrow: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullPolicy {
    Always,
    Missing,
    Never,
    Build,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Only these services and what they depend on (their profiles are enabled).
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Print the service names, dependencies first.
    #[arg(long, conflicts_with_all = ["graph", "list_profiles", "quiet"])]
    pub services: bool,
    /// Print the dependency graph.
    #[arg(long, conflicts_with_all = ["list_profiles", "quiet"])]
    pub graph: bool,
    /// Print the profiles the app defines.
    #[arg(long = "profiles", conflicts_with = "quiet")]
    pub list_profiles: bool,
    /// Print where each replica listens natively, and the `environment`
    /// values rewritten to reach services by name.
    #[arg(long, conflicts_with_all = ["services", "graph", "list_profiles", "quiet"])]
    pub addresses: bool,
    /// Only validate (every check `cove up` makes, starting nothing): print nothing, exit 0 when the app is valid.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print `SERVICE HASH` lines for these services (`*`: all, or names
    /// separated by commas). The hash is cove's own digest of the service's
    /// resolved configuration (it changes when the service does), not
    /// docker compose's.
    #[arg(long, value_name = "SERVICES", group = "print", conflicts_with_all = LISTS)]
    pub hash: Option<String>,
    /// Print the image names, one per line (`PROJECT-SERVICE` for a service
    /// built without `image:`).
    #[arg(long, group = "print", conflicts_with_all = LISTS)]
    pub images: bool,
    /// Print the names of the volumes the services use, one per line.
    #[arg(long, group = "print", conflicts_with_all = LISTS)]
    pub volumes: bool,
    /// Print the names of the networks the services use, one per line.
    #[arg(long, group = "print", conflicts_with_all = LISTS)]
    pub networks: bool,
    /// Print the variables used for interpolation, `NAME=value`, one per
    /// line (the environment, the env files, `COMPOSE_PROJECT_NAME`).
    #[arg(long = "environment", id = "print_environment", group = "print", conflicts_with_all = LISTS)]
    pub print_environment: bool,
    /// Print `${...}` as written instead of its value (the app is still
    /// checked with the values).
    #[arg(long)]
    pub no_interpolate: bool,
    /// Save to FILE instead of printing.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Accepted for docker compose's scripts; cove always prints the
    /// normalised model (it says so on stderr).
    #[arg(long)]
    pub no_normalize: bool,
    /// Accepted for docker compose's scripts; cove always prints absolute
    /// paths (it says so on stderr).
    #[arg(long)]
    pub no_path_resolution: bool,
    /// Accepted for docker compose's scripts; cove always checks the model
    /// (it says so on stderr).
    #[arg(long)]
    pub no_consistency: bool,
}

/// `cove config`'s other listings, which `--hash`, `--images`, ... exclude.
const LISTS: [&str; 5] = ["services", "graph", "list_profiles", "addresses", "quiet"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema.
    #[arg(value_enum, default_value_t = SchemaName::XCove)]
    pub name: SchemaName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaName {
    /// The `x-cove` extension (project block; service block under `x-service`).
    XCove,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Start the command and return at once (its output is not shown).
    #[arg(short, long)]
    pub detach: bool,
    /// Set an environment variable (repeatable), over the replica's.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Run it in this directory instead of the replica's (natively:
    /// relative to the replica's working directory).
    #[arg(short = 'w', long, value_name = "DIR")]
    pub workdir: Option<std::path::PathBuf>,
    /// Run it as this user (`NAME`, `UID` or `UID:GID`). Natively only
    /// when cove runs as root.
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,
    /// Do not allocate a terminal (containers; native commands use the
    /// terminal cove runs in).
    #[arg(short = 'T', long = "no-tty", alias = "no-TTY")]
    pub no_tty: bool,
    /// Which replica, when the service has several (as `cove ps` numbers
    /// them; 0, Compose's default, is the first).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub index: u32,
    /// Give the command extended privileges (containers; natively it
    /// means nothing: the command runs as you, or as `--user`).
    #[arg(long)]
    pub privileged: bool,
    /// The service whose replica the command runs beside.
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// The command and its arguments.
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The signal: a name (`SIGHUP`, `HUP`) or a number.
    #[arg(short, long, value_name = "SIGNAL", default_value = "SIGKILL")]
    pub signal: String,
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ActServicesArgs {
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Keep the files' owners (uid and gid) as they are.
    #[arg(short, long)]
    pub archive: bool,
    /// Follow a symbolic link given as the source (copy what it points to).
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Which replica, when the service has several.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub index: u32,
    /// `SERVICE:SRC_PATH`, or a path on this machine.
    #[arg(value_name = "SRC")]
    pub src: String,
    /// `SERVICE:DEST_PATH`, or a path on this machine.
    #[arg(value_name = "DEST")]
    pub dest: String,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Go on past an image that cannot be pulled, and exit 0.
    #[arg(long)]
    pub ignore_pull_failures: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only these services and what they depend on.
    #[arg(value_name = "SERVICE")]
    pub service_names: Vec<String>,
    /// Accepted as Compose has it; natively there are no dangling images
    /// to prune (rebuilt images are kept for rollbacks, as `deploy` does).
    #[arg(long)]
    pub prune: bool,
}
