//! `cove exec [-d] [-e K=V]... [-w DIR] [-u USER] [-T] [--index N]
//! [--privileged] SERVICE COMMAND [ARGS...]`: a command beside a running
//! replica, as `docker compose exec`. The daemon says where the replica
//! runs (`GET /v1/exec`: its environment, working directory, the files
//! of the secrets it gets as variables, its container). In a container:
//! the engine's exec, attached; natively: the command runs here, in the
//! replica's environment (from a cleared one plus what the daemon passes
//! its replicas, [`cove_runtime::environ`]) and working directory,
//! attached to the terminal as `cove run`'s is. Exit code: the command's;
//! 1 when there is no running replica.

use std::process::ExitCode;

use cove_daemon::api::ExecTarget;
use cove_runtime::docker::{Engine, ExecSpec};

use crate::cli::{ExecArgs, ProjectArgs};
use crate::daemon;
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &ExecArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let client = daemon::find(&project)?;
    let rt = daemon::runtime()?;
    rt.block_on(async {
        let path = format!(
            "/v1/exec?service={}&index={}",
            args.service,
            args.index.max(1)
        );
        let target: ExecTarget = match client.get(&path).await {
            Ok(t) => t,
            Err(cove_daemon::client::ClientError::NotRunning) => {
                eprintln!(
                    "{}error{}: service `{}` has no running replica: the app is not running",
                    style.red, style.reset, args.service
                );
                eprintln!(
                    "  = {}hint{}: start it with `cove up -d {}`",
                    style.cyan, style.reset, args.service
                );
                return Ok(ExitCode::from(1));
            }
            Err(e) => {
                daemon::print_error(&style, &e);
                return Ok(ExitCode::from(1));
            }
        };
        match &target.container {
            Some(name) => in_container(name, args).await,
            None => native(&target, args).await,
        }
    })
}

/// The engine runs it in the replica's container.
async fn in_container(name: &str, args: &ExecArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    let engine = Engine::connect().await.map_err(daemon::engine_error)?;
    let spec = ExecSpec {
        cmd: args.command.clone(),
        env: args.env.iter().map(|p| with_value(p)).collect(),
        workdir: args.workdir.as_ref().map(|w| w.display().to_string()),
        user: args.user.clone(),
        privileged: args.privileged,
        tty: !args.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
        detach: args.detach,
    };
    let code = engine
        .exec(name, &spec)
        .await
        .map_err(daemon::engine_error)?;
    Ok(ExitCode::from(code.unwrap_or(0).clamp(0, 255) as u8))
}

/// `KEY=VALUE` as given; a bare `KEY` takes its value from this shell,
/// as `docker compose exec -e KEY` does.
fn with_value(pair: &str) -> String {
    match pair.split_once('=') {
        Some(_) => pair.to_string(),
        None => format!("{pair}={}", std::env::var(pair).unwrap_or_default()),
    }
}

/// It runs here, as the replica does.
async fn native(target: &ExecTarget, args: &ExecArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    if args.privileged {
        eprintln!(
            "cove: --privileged means nothing for a native replica: the command runs as you (or as --user)"
        );
    }
    if args.no_tty {
        eprintln!("cove: -T: a native command uses the terminal cove runs in");
    }
    let mut env = target.env.clone();
    for (var, file) in &target.secret_env {
        let value = fs_err::read_to_string(file).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the secret set as `{var}` for the command: {e} (hint: it is the replica's; run cove as the user the daemon runs as)"
            )
        })?;
        env.push((var.clone(), value));
    }
    for pair in &args.env {
        let pair = with_value(pair);
        let (k, v) = pair.split_once('=').expect("with a value");
        env.push((k.to_string(), v.to_string()));
    }
    let workdir = match &args.workdir {
        Some(w) => target.workdir.join(w),
        None => target.workdir.clone(),
    };
    let ids = match &args.user {
        Some(user) => match user_ids(user) {
            Ok(ids) => Some(ids),
            Err(why) => {
                eprintln!("{}error{}: --user {user}: {why}", style.red, style.reset);
                return Ok(ExitCode::from(1));
            }
        },
        None => None,
    };
    let (prog, rest) = args.command.split_first().expect("required by clap");
    if args.detach {
        let mut cmd = std::process::Command::new(prog);
        cmd.args(rest)
            .current_dir(&workdir)
            .env_clear()
            .envs(cove_runtime::environ::with(&env))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
        if let Some((uid, gid)) = ids {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run `{prog}` in {}: {e}", workdir.display()))?;
        eprintln!("cove: started `{prog}` (pid {})", child.id());
        return Ok(ExitCode::SUCCESS);
    }
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(rest)
        .current_dir(&workdir)
        .env_clear()
        .envs(cove_runtime::environ::with(&env));
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    crate::cmd::run::wait_attached(cmd, prog, &workdir).await
}

/// `--user` natively: `UID[:GID]` or a name of `/etc/passwd` (its group
/// unless `:GROUP` says another), for a command started as root.
fn user_ids(user: &str) -> Result<(u32, u32), String> {
    if !rustix::process::geteuid().is_root() {
        return Err(
            "natively a command runs as another user only when cove runs as root; leave --user out to run it as you (the replica's user)".into(),
        );
    }
    let (name, group) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    let passwd = fs_err::read_to_string("/etc/passwd").unwrap_or_default();
    let entry = |field: usize, value: &str| -> Option<Vec<String>> {
        passwd
            .lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[field] == value)
    };
    let (uid, default_gid) = match name.parse::<u32>() {
        Ok(uid) => {
            let gid = entry(2, name)
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(uid);
            (uid, gid)
        }
        Err(_) => {
            let f = entry(0, name).ok_or_else(|| format!("no user `{name}` in /etc/passwd"))?;
            (
                f[2].parse().map_err(|_| format!("bad uid for `{name}`"))?,
                f[3].parse().map_err(|_| format!("bad gid for `{name}`"))?,
            )
        }
    };
    let gid = match group {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let groups = fs_err::read_to_string("/etc/group").unwrap_or_default();
                groups
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() > 2 && f[0] == g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| format!("no group `{g}` in /etc/group"))?
            }
        },
    };
    Ok((uid, gid))
}
