//! Acting on a running container, as `docker compose kill`, `pause`,
//! `unpause`, `exec`, `cp` and `pull` do: a signal, the freezer, a command
//! run in it (attached to this process's standard streams; its exit code
//! from the exec's inspection), files in and out through the archive
//! endpoint (tar streams), and an image pulled again.

use std::path::{Path, PathBuf};

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters as q;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt as _;

use super::{DockerError, Engine, engine};

/// A command to run in a container (`cove exec`).
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    /// `KEY=VALUE`, added to the container's own.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub privileged: bool,
    /// A pseudo-terminal (stdout and stderr arrive as one stream).
    pub tty: bool,
    /// Start it and return at once (`-d`).
    pub detach: bool,
}

impl Engine {
    /// Sends `signal` (a number or a name the engine knows) to the
    /// container's main process.
    pub async fn kill(&self, name: &str, signal: &str) -> Result<(), DockerError> {
        let options = q::KillContainerOptionsBuilder::new().signal(signal).build();
        self.docker
            .kill_container(name, Some(options))
            .await
            .map_err(engine(format!("signalling `{name}`")))
    }

    /// Freezes (`true`) or thaws the container's processes.
    pub async fn pause(&self, name: &str, pause: bool) -> Result<(), DockerError> {
        if pause {
            self.docker
                .pause_container(name)
                .await
                .map_err(engine(format!("pausing `{name}`")))
        } else {
            self.docker
                .unpause_container(name)
                .await
                .map_err(engine(format!("unpausing `{name}`")))
        }
    }

    /// Runs `spec` in the container, this process's stdin, stdout and
    /// stderr attached; its exit code (`None` when detached).
    pub async fn exec(&self, name: &str, spec: &ExecSpec) -> Result<Option<i64>, DockerError> {
        let what = || format!("running `{}` in `{name}`", spec.cmd.join(" "));
        let options = CreateExecOptions {
            attach_stdin: Some(!spec.detach),
            attach_stdout: Some(!spec.detach),
            attach_stderr: Some(!spec.detach),
            tty: Some(spec.tty),
            env: Some(spec.env.clone()),
            cmd: Some(spec.cmd.clone()),
            privileged: Some(spec.privileged),
            user: spec.user.clone(),
            working_dir: spec.workdir.clone(),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(name, options)
            .await
            .map_err(engine(what()))?;
        let start = StartExecOptions {
            detach: spec.detach,
            tty: spec.tty,
            output_capacity: None,
        };
        match self
            .docker
            .start_exec(&created.id, Some(start))
            .await
            .map_err(engine(what()))?
        {
            StartExecResults::Detached => return Ok(None),
            StartExecResults::Attached {
                mut output,
                mut input,
            } => {
                // Standard input, until it ends (then the command sees its
                // end): read by a thread (a blocking read), written here.
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
                std::thread::spawn(move || {
                    use std::io::Read as _;
                    let mut stdin = std::io::stdin();
                    let mut buf = vec![0u8; 8192];
                    while let Ok(n) = stdin.read(&mut buf) {
                        if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                });
                let feed = tokio::spawn(async move {
                    while let Some(chunk) = rx.recv().await {
                        if input.write_all(&chunk).await.is_err() {
                            return;
                        }
                        let _ = input.flush().await;
                    }
                    let _ = input.shutdown().await;
                });
                while let Some(chunk) = output.next().await {
                    use bollard::container::LogOutput;
                    use std::io::Write as _;
                    match chunk.map_err(engine(what()))? {
                        LogOutput::StdErr { message } => {
                            let mut err = std::io::stderr().lock();
                            let _ = err.write_all(&message);
                            let _ = err.flush();
                        }
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            let mut out = std::io::stdout().lock();
                            let _ = out.write_all(&message);
                            let _ = out.flush();
                        }
                        LogOutput::StdIn { .. } => {}
                    }
                }
                feed.abort();
            }
        }
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(engine(what()))?;
        Ok(Some(inspected.exit_code.unwrap_or(0)))
    }

    /// Runs `cmd` in the container with no stream of this process
    /// attached (its output read and dropped): its exit code. A health
    /// probe (see the docker driver's `first_success`).
    pub async fn exec_status(&self, name: &str, cmd: &[String]) -> Result<i64, DockerError> {
        let what = || format!("probing `{name}`");
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.to_vec()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(name, options)
            .await
            .map_err(engine(what()))?;
        if let StartExecResults::Attached { mut output, .. } = self
            .docker
            .start_exec(&created.id, None::<StartExecOptions>)
            .await
            .map_err(engine(what()))?
        {
            // Ends when the command does.
            while let Some(chunk) = output.next().await {
                chunk.map_err(engine(what()))?;
            }
        }
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(engine(what()))?;
        Ok(inspected.exit_code.unwrap_or(-1))
    }

    /// `path` in the container as a tar stream (its last component at the
    /// root of the archive), read whole.
    pub async fn archive(&self, name: &str, path: &str) -> Result<Vec<u8>, DockerError> {
        let options = q::DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut stream = self.docker.download_from_container(name, Some(options));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            tar.extend_from_slice(&chunk.map_err(engine(format!("reading `{path}` of `{name}`")))?);
        }
        Ok(tar)
    }

    /// Unpacks `tar` into the directory `dir` of the container; `owners`:
    /// its files keep the archive's owners (`cp -a`), else they belong to
    /// the container's user.
    pub async fn unpack(
        &self,
        name: &str,
        dir: &str,
        tar: Vec<u8>,
        owners: bool,
    ) -> Result<(), DockerError> {
        let mut options = q::UploadToContainerOptionsBuilder::new().path(dir);
        if owners {
            options = options.copy_uidgid("1");
        }
        self.docker
            .upload_to_container(name, Some(options.build()), bollard::body_full(tar.into()))
            .await
            .map_err(engine(format!("writing into `{dir}` of `{name}`")))
    }

    /// Whether `path` in the container is a directory; `None` when there
    /// is nothing there.
    pub async fn is_dir(&self, name: &str, path: &str) -> Result<Option<bool>, DockerError> {
        /// Go's `os.ModeDir`, as the engine writes a path's mode.
        const MODE_DIR: u32 = 1 << 31;
        let options = q::ContainerArchiveInfoOptionsBuilder::new()
            .path(path)
            .build();
        match self
            .docker
            .get_container_archive_info(name, Some(options))
            .await
        {
            Ok(stat) => Ok(Some(stat.file_mode & MODE_DIR != 0)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(engine(format!("looking at `{path}` in `{name}`"))(e)),
        }
    }
}

/// Unpacks `tar` (an archive the engine made of one path) at `dest` on
/// this machine, as `docker cp` does: into `dest` when it is a directory,
/// else as `dest` (its root entry renamed). `owners`: keep the archive's
/// owners (as root). The paths written.
pub fn unpack_here(tar: &[u8], dest: &Path, owners: bool) -> std::io::Result<Vec<PathBuf>> {
    let into = dest.is_dir();
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(owners);
    let mut written = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let mut parts = path.components();
        let Some(root) = parts.next() else { continue };
        let rest = parts.as_path();
        let base = if into {
            dest.join(root)
        } else {
            dest.to_path_buf()
        };
        // (`join("")` would add a `/`.)
        let target = if rest.as_os_str().is_empty() {
            base
        } else {
            base.join(rest)
        };
        if target
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(std::io::Error::other(format!(
                "the archive names {}, outside of {}",
                path.display(),
                dest.display()
            )));
        }
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        entry.unpack(&target)?;
        written.push(target);
    }
    Ok(written)
}

/// `src` on this machine as a tar stream whose root entry is `name` (a
/// file, or a directory and what is under it), and its number of entries.
pub fn pack_here(src: &Path, name: &str) -> std::io::Result<(Vec<u8>, usize)> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    if fs_err::symlink_metadata(src)?.is_dir() {
        builder.append_dir_all(name, src)?;
    } else {
        builder.append_path_with_name(src, name)?;
    }
    let tar = builder.into_inner()?;
    let entries = tar::Archive::new(&tar[..]).entries()?.count();
    Ok((tar, entries))
}
