//! `cove secrets init|set|get|ls|rm|recipients`: the app's secrets file,
//! `cove.secrets.yaml` in its project directory (`cove.secrets.NAME.yaml`
//! with `--env NAME`, or `x-cove.secrets_file`; see the `cove-secrets`
//! crate for the format). Values come from standard input or a file, never
//! from the command line (where `ps` and shell history would see them).

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use cove_secrets::{Error, Identity, SecretsFile, default_identity_path};

use crate::cli::{ProjectArgs, RecipientsCommand, SecretsArgs, SecretsCommand};
use crate::output::stderr_style;

pub fn run(project_args: &ProjectArgs, args: &SecretsArgs) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let file = cove_runtime::secrets::secrets_file(&project.app, &project.project_dir);
    match act(&file, &args.command) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            let style = stderr_style();
            eprintln!("{}error{}: {e}", style.red, style.reset);
            if let Some(h) = e.hint() {
                eprintln!("{}hint{}: {h}", style.cyan, style.reset);
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// The identity the daemon opens the app's secrets with: the user's
/// (`COVE_IDENTITY`, else the default path), absolute.
pub fn identity_path() -> Option<std::path::PathBuf> {
    let p = default_identity_path().ok()?;
    if p.is_absolute() {
        Some(p)
    } else {
        Some(std::env::current_dir().ok()?.join(p))
    }
}

fn identity() -> Result<Identity, Error> {
    Identity::load(&default_identity_path()?)
}

fn act(file: &Path, command: &SecretsCommand) -> Result<(), Error> {
    match command {
        SecretsCommand::Init => init(file),
        SecretsCommand::Set { name, file: from } => {
            let value = read_value(from.as_deref())?;
            let mut secrets = SecretsFile::load(file)?;
            secrets.set(name, &value)?;
            secrets.save(file)?;
            eprintln!("cove: {name} set in {}", file.display());
            Ok(())
        }
        SecretsCommand::Get { name } => {
            let secrets = SecretsFile::load(file)?;
            let value = secrets.get(name, &identity()?)?;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&value);
            if std::io::stdout().is_terminal() && !value.ends_with(b"\n") {
                let _ = out.write_all(b"\n");
            }
            Ok(())
        }
        SecretsCommand::Edit => edit(file),
        SecretsCommand::Ls => {
            for name in SecretsFile::load(file)?.names() {
                println!("{name}");
            }
            Ok(())
        }
        SecretsCommand::Rm { name } => {
            let mut secrets = SecretsFile::load(file)?;
            secrets.remove(name)?;
            secrets.save(file)?;
            eprintln!("cove: {name} removed from {}", file.display());
            Ok(())
        }
        SecretsCommand::Recipients { command } => {
            let mut secrets = SecretsFile::load(file)?;
            match command {
                None => {
                    for r in secrets.recipients() {
                        match r.comment() {
                            Some(c) => println!("{}  # {c}", r.key()),
                            None => println!("{}", r.key()),
                        }
                    }
                    return Ok(());
                }
                Some(RecipientsCommand::Add { key, comment }) => {
                    secrets.add_recipient(key, comment.as_deref(), &identity()?)?;
                    eprintln!("cove: every secret is encrypted for {key} too");
                }
                Some(RecipientsCommand::Rm { key }) => {
                    secrets.remove_recipient(key, &identity()?)?;
                    eprintln!(
                        "cove: every secret is encrypted again without {key}; it could read the old values, so change them (`cove secrets set`)"
                    );
                }
            }
            secrets.save(file)
        }
    }
}

/// Your identity (made if missing), then the app's file (made if missing,
/// with you as its recipient).
fn init(file: &Path) -> Result<(), Error> {
    let path = default_identity_path()?;
    let identity = match Identity::load(&path) {
        Ok(i) => {
            eprintln!("cove: your identity is {}", path.display());
            i
        }
        Err(Error::IdentityMissing { .. }) => {
            let mut i = Identity::generate();
            i.save(&path, false)?;
            eprintln!(
                "cove: created your identity at {} (mode 0600; keep it, back it up)",
                path.display()
            );
            i
        }
        Err(e) => return Err(e),
    };
    let me = identity.recipient();
    eprintln!("cove: your recipient (public key): {me}");
    if file.exists() {
        let secrets = SecretsFile::load(file)?;
        if secrets.recipients().iter().any(|r| r.key() == me) {
            eprintln!(
                "cove: {} exists; you are one of its recipients",
                file.display()
            );
        } else {
            eprintln!(
                "cove: {} exists and you are not one of its recipients: ask one of them to run `cove secrets recipients add {me}`",
                file.display()
            );
        }
        return Ok(());
    }
    let who = std::env::var("USER").unwrap_or_else(|_| "me".into());
    let mut secrets = SecretsFile::new([(me.as_str(), Some(who.as_str()))])?;
    secrets.save(file)?;
    eprintln!("cove: created {} (commit it)", file.display());
    Ok(())
}

/// A value from `from` as it is, or from standard input without its one
/// trailing newline.
fn read_value(from: Option<&Path>) -> Result<cove_secrets::Zeroizing<Vec<u8>>, Error> {
    match from {
        // fs-err's errors name the file.
        Some(p) => fs_err::read(p)
            .map(cove_secrets::Zeroizing::new)
            .map_err(Error::Io),
        None => {
            let mut v = cove_secrets::Zeroizing::new(Vec::new());
            std::io::stdin().read_to_end(&mut v).map_err(|e| {
                Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("standard input: {e}"),
                ))
            })?;
            if v.ends_with(b"\n") {
                v.pop();
                if v.ends_with(b"\r") {
                    v.pop();
                }
            }
            Ok(v)
        }
    }
}

/// `cove secrets edit`: the values in a temporary file (0600, removed when
/// this returns, whatever happens), the editor, then what changed.
fn edit(file: &Path) -> Result<(), Error> {
    let mut secrets = SecretsFile::load(file)?;
    let me = identity()?;
    let names: Vec<String> = secrets.names().map(str::to_string).collect();
    let mut before = Vec::new();
    let mut text = cove_secrets::Zeroizing::new(String::from(
        "# cove secrets edit: one NAME=value per line (\\n, \\r and \\\\ escape a\n# newline, a carriage return and a backslash). Remove a line to remove\n# the secret. Saved and closed, the changes are encrypted again.\n",
    ));
    for name in &names {
        let value = secrets.get_string(name, &me)?;
        text.push_str(&format!("{name}={}\n", escape(&value)));
        before.push((name.clone(), value));
    }
    let tmp = tempfile::Builder::new()
        .prefix("cove-secrets-")
        .suffix(".env")
        .tempfile()
        .map_err(Error::Io)?;
    fs_err::write(tmp.path(), text.as_bytes()).map_err(Error::Io)?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(tmp.path())
        .status()
        .map_err(|e| {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot run `{editor}`: {e}"),
            ))
        })?;
    if !status.success() {
        return Err(Error::Io(std::io::Error::other(format!(
            "the editor (`{editor}`) exited with {status}; nothing changed"
        ))));
    }
    let edited =
        cove_secrets::Zeroizing::new(fs_err::read_to_string(tmp.path()).map_err(Error::Io)?);
    drop(tmp);
    let mut after: Vec<(String, cove_secrets::Zeroizing<String>)> = Vec::new();
    for (n, line) in edited.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| {
            Error::Io(std::io::Error::other(format!(
                "edited secrets, line {}: {what}; nothing changed",
                n + 1
            )))
        };
        let (name, value) = line.split_once('=').ok_or_else(|| bad("not NAME=value"))?;
        let value = unescape(value).ok_or_else(|| bad("an unknown `\\` escape"))?;
        if after.iter().any(|(a, _)| a == name) {
            return Err(bad(&format!("`{name}` twice")));
        }
        after.push((name.to_string(), value));
    }
    // Nothing is saved until every change took.
    let (mut changed, mut removed) = (0, 0);
    for (name, old) in &before {
        match after.iter().find(|(a, _)| a == name) {
            Some((_, new)) if new.as_str() != old.as_str() => {
                secrets.set(name, new.as_bytes())?;
                changed += 1;
            }
            Some(_) => {}
            None => {
                secrets.remove(name)?;
                removed += 1;
            }
        }
    }
    let mut added = 0;
    for (name, value) in &after {
        if !before.iter().any(|(b, _)| b == name) {
            secrets.set(name, value.as_bytes())?;
            added += 1;
        }
    }
    if changed + removed + added == 0 {
        eprintln!("cove: nothing changed");
        return Ok(());
    }
    secrets.save(file)?;
    eprintln!("cove: {changed} changed, {added} added, {removed} removed");
    Ok(())
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn unescape(v: &str) -> Option<cove_secrets::Zeroizing<String>> {
    let mut out = cove_secrets::Zeroizing::new(String::with_capacity(v.len()));
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            'r' => '\r',
            '\\' => '\\',
            _ => return None,
        });
    }
    Some(out)
}
