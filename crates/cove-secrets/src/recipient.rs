//! [`Recipient`]: one public key a secrets file is encrypted to.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// One recipient of a secrets file: an x25519 age public key (`age1…`) and
/// an optional comment saying whose it is.
#[derive(Clone)]
pub struct Recipient {
    pub(crate) key: age::x25519::Recipient,
    pub(crate) text: String,
    pub(crate) comment: Option<String>,
}

impl Recipient {
    /// Parses a recipient; the key must be in its canonical (lower-case)
    /// form, the comment one line of text.
    pub(crate) fn parse(key: &str, comment: Option<&str>) -> Result<Recipient> {
        let invalid = |reason: &str| Error::InvalidRecipient {
            // Someone pasting their private key must not see it in a log.
            key: if key.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
                "this string".into()
            } else {
                format!("`{key}`")
            },
            reason: reason.into(),
        };
        if key.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
            return Err(invalid(
                "it is a private key (an identity); give its public key, `age1…`",
            ));
        }
        if !key.starts_with("age1") {
            return Err(invalid("expected an x25519 public key, `age1…`"));
        }
        let parsed = age::x25519::Recipient::from_str(key).map_err(invalid)?;
        if parsed.to_string() != key {
            return Err(invalid("not in canonical form"));
        }
        let comment = comment.map(str::trim).filter(|c| !c.is_empty());
        if comment.is_some_and(|c| c.chars().any(char::is_control)) {
            return Err(Error::InvalidComment);
        }
        Ok(Recipient {
            key: parsed,
            text: key.into(),
            comment: comment.map(Into::into),
        })
    }

    /// The public key, `age1…`.
    pub fn key(&self) -> &str {
        &self.text
    }

    /// Whose key it is, as written after `#` in the file.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.comment {
            Some(c) => write!(f, "{} # {c}", self.text),
            None => f.write_str(&self.text),
        }
    }
}
