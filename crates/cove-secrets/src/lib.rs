//! cove-secrets: secrets as code. An app's secrets live, encrypted, in a
//! file committed next to its `compose.yaml`; each person or machine that
//! may read them has an [`Identity`] (an age x25519 key pair) and is listed
//! in the file as a recipient.
//!
//! The file is YAML, one value per line, so a change shows in a diff as the
//! lines it touches and names stay readable:
//!
//! ```text
//! # cove secrets: encrypted with age, safe to commit; change with `cove secrets`.
//! recipients:
//!   - age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p # alice@laptop
//!   - age1lggyhqrw2nlhcxprm67z43rta597azn8gknawjehu9d9dl0jq3yqqvfafg # server
//! secrets:
//!   DB_PASSWORD: age:YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSB…
//!   BROKER_KEY: age:YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSB…
//! ```
//!
//! Each value is a separate binary age file, encrypted to every recipient,
//! in standard base64 on one line. What is encrypted is `NAME\0VALUE`: the
//! name is checked on decryption, so a value moved under another name is
//! reported as tampering. Names match `[A-Za-z_][A-Za-z0-9_.-]*`; a comment
//! after a recipient is kept, other comments are not.
//!
//! Invariants: no cryptography of our own (the `age` crate does it all, x25519
//! recipients only); no secret value or private key in any error, Display
//! or Debug output; decrypted values only in [`Zeroizing`] buffers; no
//! input, however malformed, makes the crate panic; files are replaced
//! atomically (temporary file + rename), identities with mode 0600. No CLI,
//! no async runtime, no network.
//!
//! Modules: [`identity`] (the key file and where it lives),
//! [`SecretsFile`] (the API), [`Recipient`] (a public key), `format` (the
//! text, and a secret as stored), `atomic` (saving),
//! [`Error`] (with a [`hint`](Error::hint) for the CLI).

mod atomic;
mod error;
mod format;
pub mod identity;
mod recipient;
mod secrets_file;

pub use error::{Error, Result};
pub use identity::{Identity, default_identity_path};
pub use recipient::Recipient;
pub use secrets_file::SecretsFile;
pub use zeroize::Zeroizing;

#[cfg(test)]
mod tests;
