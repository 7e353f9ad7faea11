//! The one error type of the crate. Every variant names the file (and the
//! secret, where there is one) it is about, and none ever holds a secret
//! value: Display and Debug are safe to print and to log.

use std::io;
use std::path::PathBuf;

/// What went wrong with an identity or a secrets file.
///
/// Display is one line, `error:`-style; [`Error::hint`] gives the next step
/// where there is one, for the CLI to print as a `hint:` line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed; the message names the path.
    #[error(transparent)]
    Io(#[from] io::Error),

    /// The secrets file does not follow the format (see the crate docs).
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file, as displayed.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line; never echoes a value.
        message: String,
    },

    /// There is no identity file at `path`.
    #[error("no identity at {}", path.display())]
    IdentityMissing {
        /// Where the identity was looked for.
        path: PathBuf,
    },

    /// The identity file exists but holds no usable age identity.
    #[error("{}:{line}: not an age identity file: {reason}", path.display())]
    IdentityMalformed {
        /// The identity file.
        path: PathBuf,
        /// 1-based line number of the problem.
        line: usize,
        /// What is wrong; never echoes the key.
        reason: String,
    },

    /// Saving an identity would overwrite an existing one.
    #[error("an identity already exists at {}; not overwriting it", path.display())]
    IdentityExists {
        /// The existing identity file.
        path: PathBuf,
    },

    /// Neither `COVE_IDENTITY`, `XDG_CONFIG_HOME` nor `HOME` is set.
    #[error(
        "cannot tell where the identity is: none of COVE_IDENTITY, XDG_CONFIG_HOME, HOME is set"
    )]
    NoIdentityPath,

    /// The identity does not open this value: it is not a recipient.
    #[error(
        "secret `{name}` in {file} cannot be decrypted with {identity}: it is not one of the file's recipients"
    )]
    NotARecipient {
        /// The secrets file.
        file: String,
        /// The secret.
        name: String,
        /// The identity, as "the identity at PATH".
        identity: String,
        /// The identity's public key, for the hint.
        recipient: String,
    },

    /// The value is corrupt or was changed by someone without the key: bad
    /// base64, bad age header, failed MAC or AEAD tag, or a value moved
    /// under another name.
    #[error("secret `{name}` in {file} is corrupt or was tampered with: {reason}")]
    Tampered {
        /// The secrets file.
        file: String,
        /// The secret.
        name: String,
        /// What check failed.
        reason: String,
    },

    /// No secret of that name.
    #[error("no secret named `{name}` in {file}")]
    UnknownSecret {
        /// The secrets file.
        file: String,
        /// The name asked for.
        name: String,
        /// The closest existing name, for a "did you mean" hint.
        suggestion: Option<String>,
    },

    /// The value decrypted but is not UTF-8 text (from [`get_string`](crate::SecretsFile::get_string)).
    #[error("secret `{name}` in {file} is not UTF-8 text")]
    NotUtf8 {
        /// The secrets file.
        file: String,
        /// The secret.
        name: String,
    },

    /// A secret name outside `[A-Za-z_][A-Za-z0-9_.-]*`.
    #[error(
        "`{name}` is not a valid secret name: use letters, digits, `_`, `.` and `-`, not starting with a digit, `.` or `-`"
    )]
    InvalidName {
        /// The rejected name (names are not secret).
        name: String,
    },

    /// A string that is not an x25519 age recipient (`age1…`).
    #[error("{key} is not an age recipient: {reason}")]
    InvalidRecipient {
        /// The rejected string, quoted; withheld when it looks like a secret key.
        key: String,
        /// Why.
        reason: String,
    },

    /// A recipient comment that would not fit on the recipient's line.
    #[error("a recipient comment must be one line of text without control characters")]
    InvalidComment,

    /// The recipient is already in the file.
    #[error("{key} is already a recipient of {file}")]
    DuplicateRecipient {
        /// The secrets file.
        file: String,
        /// The recipient.
        key: String,
    },

    /// The recipient to remove is not in the file.
    #[error("{key} is not a recipient of {file}")]
    UnknownRecipient {
        /// The secrets file.
        file: String,
        /// The recipient.
        key: String,
    },

    /// The change would leave the file with no recipient, so nobody could
    /// read it.
    #[error("{file} must keep at least one recipient")]
    NoRecipients {
        /// The secrets file.
        file: String,
    },

    /// age refused to encrypt (not expected with x25519 recipients).
    #[error("encrypting secret `{name}` failed: {reason}")]
    Encrypt {
        /// The secret.
        name: String,
        /// age's message.
        reason: String,
    },
}

impl Error {
    /// The next step for the user, where there is an obvious one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::IdentityMissing { .. } | Error::NoIdentityPath => Some(
                "`cove secrets init` creates an identity; COVE_IDENTITY points at another one"
                    .into(),
            ),
            Error::IdentityExists { .. } => {
                Some("move it away first if you really mean to replace it".into())
            }
            Error::NotARecipient { recipient, .. } => Some(format!(
                "from a machine that can decrypt the file, run \
                 `cove secrets recipients add {recipient}`"
            )),
            Error::Tampered { .. } => Some(
                "restore the value from version control, or set it again with `cove secrets set`"
                    .into(),
            ),
            Error::UnknownSecret {
                suggestion: Some(s),
                ..
            } => Some(format!("did you mean `{s}`?")),
            Error::UnknownSecret { .. } => Some("`cove secrets list` shows the names".into()),
            _ => None,
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
