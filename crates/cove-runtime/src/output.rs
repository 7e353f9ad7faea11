//! What a replica's output is made of, shared by the drivers (native
//! processes, containers), the log store and the supervisor's reports; a
//! leaf, so none of them imports another for it.

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}
