//! `cove secrets init|set|get|ls|rm|recipients`: the app's secrets file,
//! `cove.secrets.yaml` in its project directory (see the `cove-secrets`
//! crate for the format). Values come from standard input or a file, never
//! from the command line (where `ps` and shell history would see them).

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;

use cove_secrets::{Error, Identity, SecretsFile, default_identity_path};

use crate::cli::{ProjectArgs, RecipientsCommand, SecretsArgs, SecretsCommand};
use crate::output::stderr_style;

/// The secrets file's name, in the project directory.
pub const FILE: &str = "cove.secrets.yaml";

pub fn run(project_args: &ProjectArgs, args: &SecretsArgs) -> anyhow::Result<ExitCode> {
    let Some(project) = crate::project::load_or_report(project_args, &[]) else {
        return Ok(ExitCode::from(1));
    };
    let file = project.project_dir.join(FILE);
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
