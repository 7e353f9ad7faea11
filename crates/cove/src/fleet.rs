//! An environment with hosts (`x-cove.environments.NAME.hosts`): `cove
//! deploy --env NAME` (and `up -d --env NAME`) sends the app to every
//! host ([`crate::ship`]), then deploys it on one host after the other,
//! over ssh (`cove system in ... -- deploy` there, its output prefixed
//! with the host). When a host cannot be reached or its deploy fails, the
//! deploy stops there and every host it changed is rolled back to the
//! checkout it ran before (or its app stopped, when it ran none). `cove ps
//! --env NAME` lists every host's replicas with a HOST column; `cove logs
//! --env NAME` prints every host's logs, prefixed; `history`, `rollback`,
//! `down`, `stop`, `start`, `restart` and `scale` run in each host's
//! checkout ([`on_each`]).

use std::io::{BufRead as _, Write as _};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use cove_daemon::api::Replica;
use cove_daemon::remote::{Failure, Remote, Target};
use cove_spec::Project;

use crate::output::stderr_style;

/// The environment and its hosts, when `project` is loaded with `--env`
/// naming an environment with hosts and this is not a host's checkout
/// (`COVE_SHIPPED`) nor a `--host` run.
pub fn hosts(project: &Project) -> Option<(String, Vec<Target>)> {
    if std::env::var_os("COVE_SHIPPED").is_some() || crate::remote::current().is_some() {
        return None;
    }
    let env = project.app.x_cove.env.as_ref()?;
    let e = project.app.x_cove.environments.get(env)?;
    if e.hosts.is_empty() {
        return None;
    }
    // The loader checked each one.
    let targets = e.hosts.iter().filter_map(|h| h.parse().ok()).collect();
    Some((env.clone(), targets))
}

/// A checkout's name as shown: its first 12 characters.
fn short(name: &str) -> &str {
    name.get(..12).unwrap_or(name)
}

/// How a host is named in output: `HOST` or `HOST:PORT`.
pub fn label(t: &Target) -> String {
    match t.port {
        Some(p) => format!("{}:{p}", t.host),
        None => t.host.clone(),
    }
}

fn error(text: &str, hint: Option<&str>) {
    let style = stderr_style();
    eprintln!("{}error{}: {text}", style.red, style.reset);
    if let Some(h) = hint {
        eprintln!("  = {}hint{}: {h}", style.cyan, style.reset);
    }
}

/// Runs `remote` (cove's words) on `t` over ssh, its stdout and stderr
/// lines printed prefixed with the host. Its exit code, or what became of
/// ssh when it did not run there.
fn run_remote(ssh: &str, t: &Target, remote: &[String]) -> Result<i32, Failure> {
    let words: Vec<&str> = remote.iter().map(String::as_str).collect();
    let (program, args) = t.command_for(ssh, &words);
    let mut child = Command::new(&program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure {
            error: format!("cannot run `{program}` to reach {t}: {e}"),
            hint: Some("install the OpenSSH client, or name it in COVE_SSH".into()),
        })?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        unreachable!("both piped")
    };
    let prefix = label(t);
    let said = Arc::new(Mutex::new(String::new()));
    let p = prefix.clone();
    let to_out = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{p} | {line}");
        }
    });
    let sink = said.clone();
    let to_err = std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{prefix} | {line}");
            let mut s = sink
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if s.len() < 64 * 1024 {
                s.push_str(&line);
                s.push('\n');
            }
        }
    });
    let status = child.wait().map_err(|e| Failure {
        error: format!("`{program}` to {t}: {e}"),
        hint: None,
    })?;
    let _ = to_out.join();
    let _ = to_err.join();
    let code = status.code();
    match code {
        Some(c) if c != 255 && c != 127 => Ok(c),
        _ => {
            let said = said
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Err(Failure::classify(t, &program, code, &said))
        }
    }
}

/// `cove deploy --env NAME` (and `up -d`) to the environment's hosts.
pub fn deploy(
    project: &Project,
    env: &str,
    targets: &[Target],
    services: &[String],
    message: &str,
) -> anyhow::Result<ExitCode> {
    let shipment = match crate::ship::collect(project, env) {
        Ok(s) => s,
        Err(problems) => {
            for p in &problems {
                match p.split_once("; hint: ") {
                    Some((e, h)) => error(e, Some(h)),
                    None => error(p, None),
                }
            }
            error(
                &format!("the app cannot be sent to the hosts of `{env}`; nothing was sent"),
                None,
            );
            return Ok(ExitCode::from(1));
        }
    };
    let name = &shipment.manifest.project;
    let masters = Masters::new(targets);
    let ssh = masters.ssh();
    eprintln!(
        "cove: sending `{name}` ({env}) to {} host{}: {} files",
        targets.len(),
        if targets.len() == 1 { "" } else { "s" },
        shipment.manifest.files.len()
    );
    // Everything is sent first, to every host at once: a host that cannot
    // be reached fails the deploy before any host changed.
    let results: Vec<Result<crate::ship::Sent, Failure>> = std::thread::scope(|scope| {
        let all: Vec<_> = targets
            .iter()
            .map(|t| scope.spawn(|| crate::ship::send(ssh, t, &shipment)))
            .collect();
        all.into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Failure {
                        error: "sending failed (a panic)".into(),
                        hint: None,
                    })
                })
            })
            .collect()
    });
    let mut sent = Vec::new();
    let mut failed = false;
    for (t, r) in targets.iter().zip(results) {
        match r {
            Ok(s) => {
                eprintln!("{} | {s}", label(t));
                sent.push((t, s));
            }
            Err(f) => {
                error(
                    &format!("cannot send the app to {}: {}", label(t), f.error),
                    f.hint.as_deref(),
                );
                failed = true;
            }
        }
    }
    if failed {
        error("nothing was deployed: no host changed", None);
        return Ok(ExitCode::from(1));
    }
    let mut done: Vec<&(&Target, crate::ship::Sent)> = Vec::new();
    for one in &sent {
        let (t, s) = one;
        eprintln!(
            "cove: deploying to {} (checkout {})",
            label(t),
            short(&s.received.checkout)
        );
        let mut words: Vec<String> = ["cove", "system", "in", name, env, "--checkout"]
            .map(String::from)
            .to_vec();
        words.push(s.received.checkout.clone());
        words.extend(["--".to_string(), "deploy".to_string()]);
        words.extend(services.iter().cloned());
        if !message.is_empty() {
            words.extend(["--message".to_string(), message.to_string()]);
        }
        let why = match run_remote(ssh, t, &words) {
            Ok(0) => {
                done.push(one);
                continue;
            }
            Ok(code) => format!("its deploy failed (exit code {code})"),
            Err(f) => format!(
                "{}{}",
                f.error,
                f.hint.map(|h| format!(" (hint: {h})")).unwrap_or_default()
            ),
        };
        error(&format!("the deploy stopped at {}: {why}", label(t)), None);
        // This host too: its daemon rolled its services back, its
        // checkout goes back with them.
        done.push(one);
        let back = rollback(ssh, name, env, &done);
        let names: Vec<String> = done.iter().map(|(t, _)| label(t)).collect();
        if back {
            eprintln!(
                "cove: rolled back {} to what {} ran before",
                names.join(", "),
                if names.len() == 1 { "it" } else { "they" }
            );
        } else {
            error(
                &format!("not every host could be rolled back ({})", names.join(", ")),
                Some(
                    "`cove ps --env ENV` shows what each host runs; deploy again once the host is fixed",
                ),
            );
        }
        return Ok(ExitCode::from(1));
    }
    eprintln!(
        "cove: `{name}` ({env}) deployed to {} host{}",
        sent.len(),
        if sent.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Puts each of `hosts` (the last first) back on the checkout it ran
/// before, or stops the app where it ran none. True when all went back.
fn rollback(ssh: &str, name: &str, env: &str, hosts: &[&(&Target, crate::ship::Sent)]) -> bool {
    let mut all = true;
    for (t, s) in hosts.iter().rev() {
        let mut words: Vec<String> = ["cove", "system", "in", name, env]
            .map(String::from)
            .to_vec();
        match &s.received.previous {
            Some(prev) => {
                eprintln!(
                    "cove: rolling {} back to checkout {}",
                    label(t),
                    short(prev)
                );
                words.extend(["--checkout".into(), prev.clone(), "--".into()]);
                words.extend(["deploy", "--message", "rolled back"].map(String::from));
            }
            None => {
                eprintln!(
                    "cove: {} ran no checkout of `{name}` before: stopping it there",
                    label(t)
                );
                words.extend(["--".into(), "down".into()]);
            }
        }
        match run_remote(ssh, t, &words) {
            Ok(0) => {}
            Ok(code) => {
                error(
                    &format!("rolling back {} failed (exit code {code})", label(t)),
                    None,
                );
                all = false;
            }
            Err(f) => {
                error(
                    &format!("rolling back {} failed: {}", label(t), f.error),
                    f.hint.as_deref(),
                );
                all = false;
            }
        }
    }
    all
}

/// `cove ps --env NAME` across the hosts: each host's replicas, with the
/// host; a host that does not answer is an error line, and exit code 1.
pub fn ps(
    project: &Project,
    targets: &[Target],
    services: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let rt = crate::daemon::runtime()?;
    let mut all: Vec<(String, Replica)> = Vec::new();
    let mut failed = 0;
    for t in targets {
        let remote = Arc::new(Remote::new(t.clone()));
        let rows = rt.block_on(async {
            let client = crate::remote::find(&remote, project).await?;
            crate::cmd::ps::rows(&client).await
        });
        match rows {
            Ok(rows) => all.extend(
                rows.into_iter()
                    .filter(|r| services.is_empty() || services.contains(&r.service))
                    .map(|r| (label(t), r)),
            ),
            Err(cove_daemon::client::ClientError::Unreachable(f)) => {
                failed += 1;
                error(&format!("{}: {}", label(t), f.error), f.hint.as_deref());
            }
            Err(e) => {
                failed += 1;
                error(&format!("{}: {e}", label(t)), None);
            }
        }
    }
    if json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|(h, r)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("host".into(), h.clone().into());
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let replicas: Vec<Replica> = all.iter().map(|(_, r)| r.clone()).collect();
        let cells = crate::cmd::ps::cells(&replicas, SystemTime::now());
        let rows: Vec<[String; 11]> = cells
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                let host = match i {
                    0 => "HOST".to_string(),
                    _ => all[i - 1].0.clone(),
                };
                let [a, b, c, d, e, f, g, h, k, l] = row;
                [host, a, b, c, d, e, f, g, h, k, l]
            })
            .collect();
        print!("{}", crate::output::columns(&rows));
    }
    if failed > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a command that needs the app's files runs when they are on
/// hosts: the environment's hosts, or the one `--host` names.
pub fn elsewhere(project: &Project) -> Option<anyhow::Result<(String, Vec<Target>)>> {
    if std::env::var_os("COVE_SHIPPED").is_some() {
        return None;
    }
    if let Some(remote) = crate::remote::current() {
        let Some(env) = project.app.x_cove.env.clone() else {
            return Some(Err(anyhow::anyhow!(
                "over --host, this command runs in the app's checkout there, which `cove deploy --env NAME` sent: name the environment; hint: `cove --host {} --env prod ...`",
                remote.target
            )));
        };
        return Some(Ok((env, vec![remote.target.clone()])));
    }
    hosts(project).map(Ok)
}

/// Runs `cove ARGS` in the app's checkout on each of `targets` (`cove
/// system in PROJECT ENV -- ARGS` over ssh), all at once when `together`
/// (`logs`: their lines interleave as they come, each prefixed with its
/// host), else one after the other. Exit code 1 when one failed or could
/// not be reached (each said so, with its host).
pub fn on_each(
    project: &Project,
    env: &str,
    targets: &[Target],
    args: &[String],
    together: bool,
) -> ExitCode {
    let masters = Masters::new(targets);
    let ssh = masters.ssh();
    let mut words: Vec<String> = ["cove", "system", "in", &project.app.name, env, "--"]
        .map(String::from)
        .to_vec();
    words.extend(args.iter().cloned());
    let one = |t: &Target| -> bool {
        match run_remote(ssh, t, &words) {
            Ok(0) => true,
            Ok(code) => {
                error(
                    &format!(
                        "{}: `cove {}` failed (exit code {code})",
                        label(t),
                        args.join(" ")
                    ),
                    None,
                );
                false
            }
            Err(f) => {
                error(&format!("{}: {}", label(t), f.error), f.hint.as_deref());
                false
            }
        }
    };
    let ok = if together {
        std::thread::scope(|s| {
            let all: Vec<_> = targets.iter().map(|t| s.spawn(|| one(t))).collect();
            let results: Vec<bool> = all.into_iter().map(|h| h.join().unwrap_or(false)).collect();
            results.iter().all(|ok| *ok)
        })
    } else {
        // Every host, even after one failed (each says how it went).
        let results: Vec<bool> = targets.iter().map(one).collect();
        results.iter().all(|ok| *ok)
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One ssh connection per host for the whole command (ssh's own
/// multiplexing: `ControlMaster=auto`, its socket in a private temporary
/// directory, `ControlPersist=60` so a master left by a killed cove ends
/// by itself), closed with `ssh -O exit` when dropped. Each login costs a
/// key exchange (most of a no-op deploy's time otherwise); host keys are
/// checked by the first, as always. Without it (a temporary directory
/// with spaces, which `COVE_SSH`'s splitting cannot carry), plain ssh.
struct Masters<'a> {
    dir: Option<tempfile::TempDir>,
    ssh: String,
    base: String,
    targets: &'a [Target],
}

impl<'a> Masters<'a> {
    fn new(targets: &'a [Target]) -> Masters<'a> {
        let base = crate::ship::ssh_program();
        let dir = tempfile::Builder::new()
            .prefix("cove-ssh-")
            .tempdir()
            .ok()
            .filter(|d| !d.path().to_string_lossy().contains(char::is_whitespace));
        let ssh = match &dir {
            Some(d) => format!(
                "{base} -o ControlMaster=auto -o ControlPath={}/%C -o ControlPersist=60",
                d.path().display()
            ),
            None => base.clone(),
        };
        Masters {
            dir,
            ssh,
            base,
            targets,
        }
    }

    fn ssh(&self) -> &str {
        &self.ssh
    }
}

impl Drop for Masters<'_> {
    fn drop(&mut self) {
        let Some(dir) = &self.dir else { return };
        let mut words = self.base.split_whitespace();
        let program = words.next().unwrap_or("ssh").to_string();
        let options: Vec<String> = words.map(String::from).collect();
        for t in self.targets {
            let mut c = Command::new(&program);
            c.args(&options)
                .arg("-o")
                .arg(format!("ControlPath={}/%C", dir.path().display()))
                .args(["-O", "exit"]);
            if let Some(p) = t.port {
                c.args(["-p", &p.to_string()]);
            }
            let _ = c
                .arg(t.destination())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
