//! Bodies that need no inspection (a length, no chunks to check) moved
//! from socket to socket by the kernel: `splice` into a pipe and out of
//! it, so their bytes are never copied into the gateway. Short bodies are
//! copied as they come with their head (one write for both); the pipe
//! pays off from [`SPLICE_FROM`] bytes on.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use rustix::fd::OwnedFd;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bodies with at least this much left after their first read are spliced.
pub(super) const SPLICE_FROM: u64 = 64 * 1024;
/// Bytes moved into the pipe at once (its default capacity).
const STEP: usize = 64 * 1024;
/// Idle pipes kept per gateway (per thread).
const MAX_IDLE: usize = 64;

/// Which side of a relay failed.
#[derive(Debug)]
pub(super) enum Broke {
    /// Reading (or waiting for) the source.
    From(io::Error),
    /// Writing to the destination.
    To(io::Error),
}

/// A pipe, empty when idle.
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in it, not yet moved out.
    held: usize,
}

/// A gateway's idle pipes.
#[derive(Default)]
pub(crate) struct Pipes(Mutex<Vec<Pipe>>);

impl Pipes {
    /// An empty pipe: an idle one, or a new one.
    pub(super) fn take(&self) -> io::Result<Pipe> {
        if let Some(p) = crate::lock(&self.0).pop() {
            return Ok(p);
        }
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        Ok(Pipe {
            read,
            write,
            held: 0,
        })
    }

    /// Keeps `pipe` for another body if it is empty (one that failed
    /// midway is closed).
    pub(super) fn give(&self, pipe: Pipe) {
        let mut idle = crate::lock(&self.0);
        if pipe.held == 0 && idle.len() < MAX_IDLE {
            idle.push(pipe);
        }
    }
}

impl Pipe {
    /// Moves `n` bytes from `from` to `to`, adding each count written to
    /// `moved`. `wait`: the longest `from` may send nothing (a stalled
    /// client: `TimedOut`). `from` ending first is `UnexpectedEof`.
    pub(super) async fn relay(
        &mut self,
        from: &TcpStream,
        to: &TcpStream,
        n: u64,
        wait: Option<Duration>,
        moved: &mut u64,
    ) -> Result<(), Broke> {
        self.relay_inner(from, to, n, wait, moved).await
    }

    async fn relay_inner(
        &mut self,
        from: &TcpStream,
        to: &TcpStream,
        mut n: u64,
        wait: Option<Duration>,
        moved: &mut u64,
    ) -> Result<(), Broke> {
        let flags = SpliceFlags::MOVE | SpliceFlags::NONBLOCK;
        while n > 0 || self.held > 0 {
            if n > 0 && self.held < STEP {
                let want = usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(STEP - self.held);
                let into = from.try_io(Interest::READABLE, || {
                    rustix::pipe::splice(from, None, &self.write, None, want, flags)
                        .map_err(io::Error::from)
                });
                match into {
                    Ok(0) => return Err(Broke::From(io::ErrorKind::UnexpectedEof.into())),
                    Ok(k) => {
                        self.held += k;
                        n -= k as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if self.held == 0 {
                            let ready = match wait {
                                Some(w) => tokio::time::timeout(w, from.readable())
                                    .await
                                    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
                                None => from.readable().await,
                            };
                            ready.map_err(Broke::From)?;
                            continue;
                        }
                    }
                    Err(e) => return Err(Broke::From(e)),
                }
            }
            if self.held > 0 {
                let out = to.try_io(Interest::WRITABLE, || {
                    rustix::pipe::splice(&self.read, None, to, None, self.held, flags)
                        .map_err(io::Error::from)
                });
                match out {
                    Ok(k) => {
                        self.held -= k;
                        *moved += k as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        to.writable().await.map_err(Broke::To)?
                    }
                    Err(e) => return Err(Broke::To(e)),
                }
            }
        }
        Ok(())
    }
}
