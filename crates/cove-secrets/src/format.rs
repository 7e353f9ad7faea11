//! The secrets file's text: a strict line-based reader and the writer. The
//! text is YAML, but only the shape the writer produces is accepted, so a
//! hand edit that YAML would read one way and cove another cannot slip in.
//! Comment lines and blank lines are skipped (and not kept on save); the
//! comment after a recipient is kept. Values are checked here only for
//! shape; base64 and age are checked when a value is decrypted.

use crate::error::{Error, Result};
use crate::recipient::Recipient;

/// First line of every file written.
pub(crate) const HEADER: &str =
    "# cove secrets: encrypted with age, safe to commit; change with `cove secrets`.";

/// Prefix of every value.
pub(crate) const VALUE_PREFIX: &str = "age:";

/// One secret as stored: its name and its encrypted value (the base64 text
/// after `age:`, kept as read so an untouched line is written back as is).
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) value: String,
    /// Where it was read from; `None` once changed.
    pub(crate) line: Option<usize>,
}

/// Whether `name` is a valid secret name, `[A-Za-z_][A-Za-z0-9_.-]*`.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Reads the text of a secrets file; `file` names it in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<(Vec<Recipient>, Vec<Entry>)> {
    #[derive(PartialEq)]
    enum Section {
        Start,
        Recipients,
        Secrets,
        /// After `secrets: {}`: nothing more may follow.
        SecretsClosed,
    }
    let err = |line: usize, message: String| Error::Syntax {
        file: file.into(),
        line,
        message,
    };
    let mut section = Section::Start;
    let mut seen_recipients = false;
    let mut seen_secrets = false;
    let mut recipients: Vec<(Recipient, usize)> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut last = 0;

    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        last = n;
        let line = raw.trim_end();
        if line.is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with('\t') || line.starts_with(" \t") {
            return Err(err(n, "indent with spaces, not tabs".into()));
        }
        if line == "recipients:" {
            if seen_recipients {
                return Err(err(n, "`recipients:` appears twice".into()));
            }
            if seen_secrets {
                return Err(err(n, "`recipients:` must come before `secrets:`".into()));
            }
            seen_recipients = true;
            section = Section::Recipients;
        } else if line == "secrets:" || line == "secrets: {}" {
            if seen_secrets {
                return Err(err(n, "`secrets:` appears twice".into()));
            }
            if !seen_recipients {
                return Err(err(n, "expected `recipients:` before `secrets:`".into()));
            }
            seen_secrets = true;
            section = if line == "secrets:" {
                Section::Secrets
            } else {
                Section::SecretsClosed
            };
        } else if let (Section::Recipients, Some(rest)) = (&section, line.strip_prefix("  - ")) {
            let (key, comment) = match rest.split_once(" #") {
                Some((k, c)) => (k.trim_end(), Some(c.trim()).filter(|c| !c.is_empty())),
                None => (rest, None),
            };
            let r = Recipient::parse(key, comment).map_err(|e| match e {
                Error::InvalidRecipient { reason, .. } => {
                    err(n, format!("bad recipient: {reason}"))
                }
                other => other,
            })?;
            if let Some((_, first)) = recipients.iter().find(|(x, _)| x.key() == r.key()) {
                return Err(err(
                    n,
                    format!("recipient listed twice (first on line {first})"),
                ));
            }
            recipients.push((r, n));
        } else if let (Section::Secrets, Some(rest)) = (&section, line.strip_prefix("  ")) {
            let Some((name, value)) = rest.split_once(": ") else {
                return Err(err(n, "expected `  NAME: age:…`".into()));
            };
            if !valid_name(name) {
                return Err(err(
                    n,
                    "bad secret name: use `[A-Za-z_][A-Za-z0-9_.-]*`, indented by two spaces"
                        .into(),
                ));
            }
            let Some(b64) = value.strip_prefix(VALUE_PREFIX) else {
                return Err(err(
                    n,
                    format!("the value of `{name}` must start with `age:`"),
                ));
            };
            if b64.is_empty() || b64.contains(char::is_whitespace) {
                return Err(err(
                    n,
                    format!("the value of `{name}` must be one word of base64 after `age:`"),
                ));
            }
            if let Some(first) = entries.iter().find(|e| e.name == name) {
                return Err(err(
                    n,
                    format!(
                        "`{name}` appears twice (first on line {})",
                        first.line.unwrap_or(0)
                    ),
                ));
            }
            entries.push(Entry {
                name: name.into(),
                value: b64.into(),
                line: Some(n),
            });
        } else {
            let expected = match section {
                Section::Start => "expected `recipients:`",
                Section::Recipients => "expected a recipient `  - age1…` or `secrets:`",
                Section::Secrets => "expected a secret `  NAME: age:…`",
                Section::SecretsClosed => "nothing may follow `secrets: {}`",
            };
            return Err(err(n, expected.into()));
        }
    }
    let end = last.max(1);
    if !seen_recipients {
        return Err(err(end, "missing `recipients:`".into()));
    }
    if recipients.is_empty() {
        return Err(err(
            end,
            "no recipients: nobody could decrypt this file".into(),
        ));
    }
    if !seen_secrets {
        return Err(err(end, "missing `secrets:`".into()));
    }
    Ok((recipients.into_iter().map(|(r, _)| r).collect(), entries))
}

/// Writes the text of a secrets file.
pub(crate) fn render(recipients: &[Recipient], entries: &[Entry]) -> String {
    let mut out = format!("{HEADER}\nrecipients:\n");
    for r in recipients {
        out.push_str("  - ");
        out.push_str(r.key());
        if let Some(c) = r.comment() {
            out.push_str(" # ");
            out.push_str(c);
        }
        out.push('\n');
    }
    if entries.is_empty() {
        out.push_str("secrets: {}\n");
    } else {
        out.push_str("secrets:\n");
        for e in entries {
            out.push_str(&format!("  {}: {VALUE_PREFIX}{}\n", e.name, e.value));
        }
    }
    out
}
