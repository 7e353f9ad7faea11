//! `cove preview`: preview environments that share a baseline.
//!
//! A preview `NAME` of the baseline (the project's main environment, or
//! `--env BASE`) is a project of its own, kept in
//! `<baseline state dir>/previews/NAME` and run by the baseline's daemon.
//! Its files come from the working tree the command runs in (a branch's
//! checkout), or from `--ref GIT_REF` of the baseline's repository
//! (exported with `git archive` into the preview's directory). It runs
//! only the services whose revision (configuration + the digest of the
//! files its command names) differs from the baseline's, and those marked
//! `x-cove.preview: run` or `fork`; every other service is shared: the
//! preview's references to it go to the baseline's address. Requests
//! reach it through the baseline's gateway: at `NAME.HOST` of each of its
//! routes' hosts, and wherever they carry its key (`X-Cove-Preview: NAME`,
//! or `cove-preview=NAME` in `baggage`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use cove_daemon::api::{self, Accepted, PreviewInfo, UpRequest};
use cove_daemon::client::Client;
use cove_spec::Project;
use cove_spec::xcove::{PreviewMode, PreviewOf};

use crate::cli::ProjectArgs;
use crate::daemon;
use crate::output::stderr_style;

#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    #[command(subcommand)]
    pub command: PreviewCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub enum PreviewCommand {
    /// Make or update preview NAME from this working tree (or `--ref`):
    /// run what differs from the baseline, share the rest, and wait until
    /// it is ready.
    Up {
        /// The preview's name: a DNS label (letters, digits, `-`).
        name: String,
        /// Build it from this git ref of the baseline's repository
        /// (exported into the preview's directory) rather than from the
        /// working tree.
        #[arg(long = "ref", value_name = "GIT_REF")]
        git_ref: Option<String>,
        /// The baseline's project directory. Default: the main worktree of
        /// this git checkout's repository when this is a linked worktree,
        /// else this directory.
        #[arg(long, value_name = "DIR")]
        base: Option<PathBuf>,
        /// How long to wait for its services to be ready, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 300)]
        wait_timeout: u64,
    },
    /// List the baseline's previews: services run and shared, awake or
    /// asleep, memory, age, URLs.
    Ls {
        #[arg(long, value_name = "DIR")]
        base: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// Stop preview NAME and delete it (its directory, with the data of
    /// the services it forked).
    Down {
        name: String,
        #[arg(long, value_name = "DIR")]
        base: Option<PathBuf>,
    },
    /// Show the output of preview NAME's services (`cove logs` options
    /// after NAME).
    Logs {
        name: String,
        #[arg(long, value_name = "DIR")]
        base: Option<PathBuf>,
        /// `cove logs` arguments: services, `-f`, `--tail N`, …
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Put preview NAME to sleep now (its services scaled to zero; the
    /// next request with its key wakes it).
    Sleep {
        name: String,
        #[arg(long, value_name = "DIR")]
        base: Option<PathBuf>,
    },
    /// Wake preview NAME now.
    Wake {
        name: String,
        #[arg(long, value_name = "DIR")]
        base: Option<PathBuf>,
    },
}

pub fn run(project: &ProjectArgs, args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        PreviewCommand::Up {
            name,
            git_ref,
            base,
            wait_timeout,
        } => up(
            project,
            name,
            git_ref.as_deref(),
            base.as_deref(),
            *wait_timeout,
        ),
        PreviewCommand::Ls { base, format } => ls(project, base.as_deref(), *format),
        PreviewCommand::Down { name, base } => down(project, name, base.as_deref()),
        PreviewCommand::Logs { name, base, args } => logs(project, name, base.as_deref(), args),
        PreviewCommand::Sleep { name, base } => sleep(project, name, base.as_deref(), true),
        PreviewCommand::Wake { name, base } => sleep(project, name, base.as_deref(), false),
    }
}

/// What a preview's own directory records of it (`preview.json`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    name: String,
    /// Where its files are.
    source: PathBuf,
    #[serde(default)]
    git_ref: Option<String>,
    created_ms: u64,
}

/// The baseline: its project, loaded from its directory, and its daemon.
struct Baseline {
    project: Project,
    client: Client,
    /// Its state directory, canonical.
    state: PathBuf,
}

fn fail(message: impl std::fmt::Display, hint: &str) -> anyhow::Error {
    anyhow::anyhow!("{message}\n  = hint: {hint}")
}

fn valid_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(fail(
            format!("`{name}` is not a preview name"),
            "use lower-case letters, digits and `-` (a DNS label of at most 40), e.g. `feat-login`",
        ))
    }
}

/// The main worktree of the git repository `dir` is a linked worktree
/// of, if it is one.
fn main_worktree(dir: &Path) -> Option<PathBuf> {
    let out = |args: &[&str]| -> Option<PathBuf> {
        let o = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    let common = out(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?;
    let own = out(&["rev-parse", "--path-format=absolute", "--git-dir"])?;
    (common != own).then(|| common.parent().map(Path::to_path_buf))?
}

/// `args` as they load the project in `dir` (relative `-f` files taken
/// from there).
fn args_at(args: &ProjectArgs, dir: &Path) -> ProjectArgs {
    let mut a = args.clone();
    a.files = a
        .files
        .iter()
        .map(|f| {
            if f.is_absolute() {
                f.clone()
            } else {
                dir.join(f)
            }
        })
        .collect();
    a.project_directory = Some(dir.to_path_buf());
    a
}

fn baseline(args: &ProjectArgs, base: Option<&Path>) -> anyhow::Result<Baseline> {
    let cwd = std::env::current_dir()?;
    let dir = match base {
        Some(d) => Some(fs_err::canonicalize(d)?),
        None => main_worktree(&cwd),
    };
    let args = match &dir {
        Some(d) => args_at(args, d),
        None => args.clone(),
    };
    let Some(project) = crate::project::load_all_or_report(&args, &[]) else {
        anyhow::bail!("the baseline's files do not load (above)");
    };
    let client = daemon::find(&project)?;
    let state = fs_err::canonicalize(cove_runtime::plan::state_dir(
        &project.app,
        &project.project_dir,
    ))
    .map_err(|_| {
        fail(
            format!(
                "the baseline at {} has never run",
                project.project_dir.display()
            ),
            "start it first (`cove up -d`), or name its directory with `--base DIR`",
        )
    })?;
    Ok(Baseline {
        project,
        client,
        state,
    })
}

fn preview_dir(b: &Baseline, name: &str) -> PathBuf {
    b.state.join("previews").join(name)
}

/// A client of the baseline's daemon for preview `name`.
fn preview_client(b: &Baseline, name: &str) -> Client {
    Client::new(
        b.client.paths.clone(),
        preview_dir(b, name).display().to_string(),
        b.client.host,
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `ref` of the repository at `repo` exported into `into` (made anew).
fn export(repo: &Path, git_ref: &str, into: &Path) -> anyhow::Result<()> {
    let tmp = into.with_extension(format!("tmp-{}", std::process::id()));
    if tmp.exists() {
        fs_err::remove_dir_all(&tmp)?;
    }
    fs_err::create_dir_all(&tmp)?;
    let archive = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["archive", "--format=tar", git_ref])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let out = archive.wait_with_output()?;
    if !out.status.success() {
        let _ = fs_err::remove_dir_all(&tmp);
        return Err(fail(
            format!(
                "`git archive {git_ref}` in {} failed: {}",
                repo.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "name a branch, tag or commit of the baseline's repository (`git branch -a`)",
        ));
    }
    let mut tar = std::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&tmp)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write as _;
        let mut stdin = tar.stdin.take().expect("piped");
        stdin.write_all(&out.stdout)?;
    }
    if !tar.wait()?.success() {
        let _ = fs_err::remove_dir_all(&tmp);
        anyhow::bail!("unpacking `git archive {git_ref}` failed");
    }
    if into.exists() {
        fs_err::remove_dir_all(into)?;
    }
    fs_err::rename(&tmp, into)?;
    Ok(())
}

/// A service's revision as previews compare it: its configuration (the
/// project's directory written as `$PROJECT`) and the digest of each file
/// its command names.
fn revision(project: &Project, plan: &cove_runtime::plan::Plan, service: &str) -> Option<String> {
    let svc = project.app.services.get(service)?;
    let dir = project.project_dir.display().to_string();
    let mut text = serde_json::to_string(svc).ok()?.replace(&dir, "$PROJECT");
    if let Some(s) = plan.services.iter().find(|s| s.name == service) {
        for f in cove_runtime::artifact::files_named(&s.argv, &s.workdir) {
            let bytes = fs_err::read(&f).unwrap_or_default();
            let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
            let rel = f.strip_prefix(&project.project_dir).unwrap_or(&f);
            text += &format!("\n{} {:x?}", rel.display(), digest.as_ref());
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    Some(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// Which services the preview runs (and why), and which it shares.
fn choose(
    base: &Project,
    base_plan: &cove_runtime::plan::Plan,
    preview: &Project,
    preview_plan: &cove_runtime::plan::Plan,
) -> (Vec<(String, &'static str)>, Vec<String>, Vec<String>) {
    let (mut run, mut shared, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    for s in &preview_plan.services {
        let mode = preview
            .app
            .services
            .get(&s.name)
            .and_then(|svc| svc.x_cove.as_ref())
            .and_then(|x| x.preview);
        let stateful = s.data_root.is_some();
        let differs =
            revision(base, base_plan, &s.name) != revision(preview, preview_plan, &s.name);
        match mode {
            Some(PreviewMode::Run) => run.push((s.name.clone(), "preview: run")),
            Some(PreviewMode::Fork) => run.push((s.name.clone(), "preview: fork")),
            Some(PreviewMode::Share) => shared.push(s.name.clone()),
            None if !base.app.services.contains_key(&s.name) => {
                run.push((s.name.clone(), "not in the baseline"))
            }
            None if differs && stateful => {
                warnings.push(format!(
                    "`{}` differs from the baseline's but keeps data: it is shared; set `x-cove.preview: fork` (or `run`) to give the preview its own",
                    s.name
                ));
                shared.push(s.name.clone());
            }
            None if differs => run.push((s.name.clone(), "differs")),
            None => shared.push(s.name.clone()),
        }
    }
    (run, shared, warnings)
}

fn up(
    args: &ProjectArgs,
    name: &str,
    git_ref: Option<&str>,
    base: Option<&Path>,
    wait_timeout: u64,
) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    valid_name(name)?;
    let b = baseline(args, base)?;
    if b.project.app.x_cove.previews.is_none() {
        return Err(fail(
            format!("{} declares no previews", b.project.project_dir.display()),
            "add `x-cove: {previews: {}}` (and deploy the baseline again): its services' addresses then route HTTP by the preview's key",
        ));
    }
    let dir = preview_dir(&b, name);
    cove_runtime::private::make_dir(&b.state.join("previews"))?;
    // A preview refused before it is recorded leaves nothing behind (its
    // directory, made here, holds only the exported files then).
    let mut unmade = Unmade((!dir.exists()).then(|| dir.clone()));
    cove_runtime::private::make_dir(&dir)?;
    let source = match git_ref {
        Some(r) => {
            let src = dir.join("src");
            export(&b.project.project_dir, r, &src)?;
            src
        }
        None => std::env::current_dir()?,
    };
    let mut p_args = args_at(args, &source);
    p_args.project_name = Some(b.project.app.name.clone());
    let Some(mut preview) = crate::project::load_all_or_report(&p_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    // Its own state, under the baseline's, for the baseline's daemon.
    preview.app.x_cove.state_dir = Some(dir.display().to_string());
    let Some(base_plan) = crate::project::plan_or_report(&b.project) else {
        return Ok(ExitCode::from(1));
    };
    let base_plan = crate::project::leased(&b.project, base_plan)?;
    let Some(preview_plan) = crate::project::plan_or_report(&preview) else {
        return Ok(ExitCode::from(1));
    };
    let (run, mut shared, warnings) = choose(&b.project, &base_plan, &preview, &preview_plan);
    shared.sort();
    for w in warnings {
        eprintln!("{}warning{}: {w}", style.yellow, style.reset);
    }
    if run.is_empty() {
        return Err(fail(
            format!("preview `{name}` would run nothing: every service is as the baseline runs it"),
            "make it from a branch's checkout or `--ref BRANCH`, or mark a service `x-cove.preview: run`",
        ));
    }
    let record_path = dir.join("preview.json");
    let created_ms = fs_err::read(&record_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
        .map_or_else(now_ms, |r| r.created_ms);
    let addresses: BTreeMap<String, std::net::Ipv4Addr> = shared
        .iter()
        .filter_map(|s| Some((s.clone(), base_plan.reference_address(s)?)))
        .collect();
    preview.app.x_cove.preview_of = Some(PreviewOf {
        name: name.to_string(),
        base: b.state.display().to_string(),
        git_ref: git_ref.map(str::to_string),
        run: run.iter().map(|(s, _)| s.clone()).collect(),
        shared: addresses,
        created_ms,
    });
    cove_runtime::private::write_atomically(
        &record_path,
        &serde_json::to_vec_pretty(&Record {
            name: name.to_string(),
            source: source.clone(),
            git_ref: git_ref.map(str::to_string),
            created_ms,
        })?,
    )?;
    unmade.0 = None;
    // Its own block of addresses (its plan was checked above).
    crate::project::lease(&preview)?;
    let services: Vec<String> = run.iter().map(|(s, _)| s.clone()).collect();
    for (s, why) in &run {
        eprintln!("cove: preview {name} runs {s} ({why})");
    }
    if !shared.is_empty() {
        eprintln!(
            "cove: preview {name} shares {} with the baseline",
            shared.join(", ")
        );
    }
    let client = preview_client(&b, name);
    let request = |services: &[String]| UpRequest {
        app: preview.app.clone(),
        project_dir: preview.project_dir.clone(),
        services: services.to_vec(),
        identity: crate::cmd::secrets::identity_path(),
        remove_orphans: true,
        disabled: Vec::new(),
        force_recreate: false,
        no_recreate: false,
        build: false,
        timeout: None,
    };
    let timeout = Duration::from_secs(wait_timeout);
    let rt = daemon::runtime()?;
    // Running: replicas in its daemon (an app without HTTP routes has
    // no gateway, so `/v1/routes` does not say).
    if rt
        .block_on(b.client.get::<Vec<api::Replica>>("/v1/ps"))
        .map_or(true, |rows| rows.is_empty())
    {
        return Err(fail(
            "the baseline is not running",
            "start it first: `cove up -d` in its directory",
        ));
    }
    // Forked data first: the services that fork start alone, get the
    // baseline's data, then the rest starts (and finds it there).
    let forks: Vec<(String, cove_runtime::recipe::Recipe)> = run
        .iter()
        .filter(|(_, why)| *why == "preview: fork")
        .filter(|(s, _)| !dir.join("forked").join(s).exists())
        .filter_map(|(s, _)| {
            let recipe = preview_plan
                .services
                .iter()
                .find(|p| &p.name == s)?
                .recipe?;
            Some((s.clone(), recipe))
        })
        .collect();
    if !forks.is_empty() {
        let names: Vec<String> = forks.iter().map(|(s, _)| s.clone()).collect();
        if !rt.block_on(start(&client, &request(&names), &names, timeout, name))? {
            return Ok(ExitCode::from(1));
        }
        for (s, recipe) in &forks {
            eprintln!("cove: preview {name}: forking {s}'s data from the baseline");
            crate::cmd::backup::fork::fork(&b.client, &client, s, *recipe)?;
            cove_runtime::private::make_dir(&dir.join("forked"))?;
            cove_runtime::private::write_atomically(&dir.join("forked").join(s), b"")?;
        }
    }
    if !rt.block_on(start(
        &client,
        &request(&services),
        &services,
        timeout,
        name,
    ))? {
        return Ok(ExitCode::from(1));
    }
    if let Ok(routes) = rt.block_on(b.client.get::<api::Routes>("/v1/routes")) {
        for url in urls(name, &routes, b.project.app.x_cove.previews.as_ref()) {
            println!("{url}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A preview's directory made by this `cove preview up`, removed when
/// it ends before the preview is recorded (`None` once it is, or when
/// the directory was there before).
struct Unmade(Option<PathBuf>);

impl Drop for Unmade {
    fn drop(&mut self) {
        let Some(dir) = self.0.take() else { return };
        if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name())
            && let Ok(d) = cove_runtime::private::Dir::anchor(parent)
        {
            let _ = d.remove(name);
        }
    }
}

/// Sends the preview's `up` and waits until `services` are ready; false
/// (having said why) when they are not.
async fn start(
    client: &Client,
    request: &UpRequest,
    services: &[String],
    timeout: Duration,
    name: &str,
) -> anyhow::Result<bool> {
    let style = stderr_style();
    let accepted: Accepted = match client.post("/v1/up", request).await {
        Ok(a) => a,
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(false);
        }
    };
    match daemon::wait_ready(client, services, accepted.seq, timeout, &accepted.revisions).await {
        Ok(ready) => {
            for r in ready {
                eprintln!(
                    "cove: preview {name}: {}-{} ready ({})",
                    r.service, r.replica, r.address
                );
            }
            Ok(true)
        }
        Err(why) => {
            daemon::print_not_ready(&style, client, &why, timeout);
            Ok(false)
        }
    }
}

/// Where preview `name` is reached: `NAME.HOST` of each of the
/// baseline's routes with a host, and `NAME.<previews.domain>`.
fn urls(
    name: &str,
    routes: &api::Routes,
    settings: Option<&cove_spec::xcove::Previews>,
) -> Vec<String> {
    let port = routes
        .url
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let mut out: Vec<String> = routes
        .routes
        .iter()
        .filter(|r| !r.internal && !r.host.is_empty() && r.protocol != api::Protocol::Tcp)
        .map(|r| format!("http://{name}.{}:{port}{}", r.host, r.path))
        .collect();
    if let Some(d) = settings.and_then(|s| s.domain.as_deref()) {
        out.push(format!("http://{name}.{d}:{port}/"));
    }
    out.dedup();
    out
}

fn ls(args: &ProjectArgs, base: Option<&Path>, format: ListFormat) -> anyhow::Result<ExitCode> {
    let b = baseline(args, base)?;
    let rt = daemon::runtime()?;
    let (list, routes) = rt.block_on(async {
        let list: Vec<PreviewInfo> = b.client.get("/v1/previews").await.unwrap_or_default();
        let routes = b.client.get::<api::Routes>("/v1/routes").await.ok();
        (list, routes)
    });
    let settings = b.project.app.x_cove.previews.as_ref();
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|p| {
            let urls = routes
                .as_ref()
                .map(|r| urls(&p.name, r, settings))
                .unwrap_or_default();
            serde_json::json!({
                "name": p.name,
                "ref": p.git_ref,
                "run": p.run,
                "shared": p.shared,
                "state": p.state,
                "memory_bytes": p.memory_bytes,
                "created_ms": p.created_ms,
                "last_request_ms": p.last_request_ms,
                "urls": urls,
            })
        })
        .collect();
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:<12} {:<24} {:<24} {:<7} {:>10} {:>8}  URL",
        "NAME", "REF", "RUNS", "SHARES", "STATE", "MEMORY", "AGE"
    );
    let now = now_ms();
    for (p, row) in list.iter().zip(&rows) {
        let url = row["urls"]
            .as_array()
            .and_then(|u| u.first())
            .and_then(|u| u.as_str())
            .unwrap_or("-")
            .to_string();
        println!(
            "{:<16} {:<12} {:<24} {:<24} {:<7} {:>10} {:>8}  {url}",
            p.name,
            p.git_ref.as_deref().unwrap_or("-"),
            p.run.join(","),
            p.shared.join(","),
            p.state,
            format!("{:.1} MiB", p.memory_bytes as f64 / 1048576.0),
            daemon::human_duration(Duration::from_millis(now.saturating_sub(p.created_ms))),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn known(b: &Baseline, name: &str) -> anyhow::Result<PathBuf> {
    valid_name(name)?;
    let dir = preview_dir(b, name);
    if !dir.join("preview.json").is_file() {
        return Err(fail(
            format!("no preview `{name}` of {}", b.project.project_dir.display()),
            "`cove preview ls` lists them",
        ));
    }
    Ok(dir)
}

fn down(args: &ProjectArgs, name: &str, base: Option<&Path>) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let b = baseline(args, base)?;
    let dir = known(&b, name)?;
    let client = preview_client(&b, name);
    let rt = daemon::runtime()?;
    let done = rt.block_on(async {
        match client
            .post::<serde_json::Value>("/v1/down", &api::Names::default())
            .await
        {
            Ok(_) | Err(cove_daemon::client::ClientError::NotRunning) => Ok(()),
            Err(e) => Err(e),
        }
    });
    if let Err(e) = done {
        daemon::print_error(&style, &e);
        return Ok(ExitCode::from(1));
    }
    // Its directory: its logs, lease, exported files and the data of
    // what it forked (copies; the baseline's data is never in it).
    let parent = dir.parent().expect("under previews/");
    cove_runtime::private::Dir::anchor(parent)?.remove(dir.file_name().expect("named"))?;
    eprintln!("cove: preview {name} removed");
    Ok(ExitCode::SUCCESS)
}

fn sleep(
    args: &ProjectArgs,
    name: &str,
    base: Option<&Path>,
    asleep: bool,
) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let b = baseline(args, base)?;
    known(&b, name)?;
    let client = preview_client(&b, name);
    let rt = daemon::runtime()?;
    let done = rt.block_on(
        client.post::<serde_json::Value>("/v1/preview/sleep", &api::PreviewSleep { asleep }),
    );
    match done {
        Ok(_) => {
            eprintln!(
                "cove: preview {name} {}",
                if asleep { "asleep" } else { "awake" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            daemon::print_error(&style, &e);
            Ok(ExitCode::from(1))
        }
    }
}

fn logs(
    args: &ProjectArgs,
    name: &str,
    base: Option<&Path>,
    rest: &[String],
) -> anyhow::Result<ExitCode> {
    let b = baseline(args, base)?;
    let dir = known(&b, name)?;
    let record: Record = serde_json::from_slice(&fs_err::read(dir.join("preview.json"))?)?;
    // `cove logs` of the preview's files and state directory: the logs
    // are read there (the baseline's daemon writes them).
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("--project-directory")
        .arg(&record.source)
        .arg("-p")
        .arg(&b.project.app.name)
        .arg("logs")
        .args(rest)
        .env("COVE_STATE_DIR", &dir)
        .env("COVE_DAEMON", "project")
        .status()?;
    Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
}
