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
    let mut reader = Reader {
        file,
        section: Section::Start,
        seen_recipients: false,
        seen_secrets: false,
        recipients: Vec::new(),
        entries: Vec::new(),
    };
    let mut last = 0;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        last = n;
        let line = raw.trim_end();
        if line.is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        reader.line(n, line)?;
    }
    reader.finish(last.max(1))
}

/// Where the reader is.
#[derive(PartialEq)]
enum Section {
    Start,
    Recipients,
    Secrets,
    /// After `secrets: {}`: nothing more may follow.
    SecretsClosed,
}

/// What [`parse`] has read so far.
struct Reader<'a> {
    file: &'a str,
    section: Section,
    seen_recipients: bool,
    seen_secrets: bool,
    /// With the line each is on.
    recipients: Vec<(Recipient, usize)>,
    entries: Vec<Entry>,
}

impl Reader<'_> {
    /// A syntax error at `line`.
    fn err(&self, line: usize, message: String) -> Error {
        Error::Syntax {
            file: self.file.into(),
            line,
            message,
        }
    }

    /// Line `n`, neither blank nor a comment.
    fn line(&mut self, n: usize, line: &str) -> Result<()> {
        if line.starts_with('\t') || line.starts_with(" \t") {
            return Err(self.err(n, "indent with spaces, not tabs".into()));
        }
        if line == "recipients:" {
            self.recipients_start(n)
        } else if line == "secrets:" || line == "secrets: {}" {
            self.secrets_start(n, line == "secrets: {}")
        } else if let (Section::Recipients, Some(rest)) = (&self.section, line.strip_prefix("  - "))
        {
            self.recipient(n, rest)
        } else if let (Section::Secrets, Some(rest)) = (&self.section, line.strip_prefix("  ")) {
            self.secret(n, rest)
        } else {
            let expected = match self.section {
                Section::Start => "expected `recipients:`",
                Section::Recipients => "expected a recipient `  - age1…` or `secrets:`",
                Section::Secrets => "expected a secret `  NAME: age:…`",
                Section::SecretsClosed => "nothing may follow `secrets: {}`",
            };
            Err(self.err(n, expected.into()))
        }
    }

    /// `recipients:`
    fn recipients_start(&mut self, n: usize) -> Result<()> {
        if self.seen_recipients {
            return Err(self.err(n, "`recipients:` appears twice".into()));
        }
        if self.seen_secrets {
            return Err(self.err(n, "`recipients:` must come before `secrets:`".into()));
        }
        self.seen_recipients = true;
        self.section = Section::Recipients;
        Ok(())
    }

    /// `secrets:`, or `secrets: {}` (`empty`).
    fn secrets_start(&mut self, n: usize, empty: bool) -> Result<()> {
        if self.seen_secrets {
            return Err(self.err(n, "`secrets:` appears twice".into()));
        }
        if !self.seen_recipients {
            return Err(self.err(n, "expected `recipients:` before `secrets:`".into()));
        }
        self.seen_secrets = true;
        self.section = if empty {
            Section::SecretsClosed
        } else {
            Section::Secrets
        };
        Ok(())
    }

    /// `  - age1… # comment`, after its `  - `.
    fn recipient(&mut self, n: usize, rest: &str) -> Result<()> {
        let (key, comment) = match rest.split_once(" #") {
            Some((k, c)) => (k.trim_end(), Some(c.trim()).filter(|c| !c.is_empty())),
            None => (rest, None),
        };
        let r = Recipient::parse(key, comment).map_err(|e| match e {
            Error::InvalidRecipient { reason, .. } => {
                self.err(n, format!("bad recipient: {reason}"))
            }
            other => other,
        })?;
        if let Some((_, first)) = self.recipients.iter().find(|(x, _)| x.key() == r.key()) {
            return Err(self.err(n, format!("recipient listed twice (first on line {first})")));
        }
        self.recipients.push((r, n));
        Ok(())
    }

    /// `  NAME: age:…`, after its indent.
    fn secret(&mut self, n: usize, rest: &str) -> Result<()> {
        let Some((name, value)) = rest.split_once(": ") else {
            return Err(self.err(n, "expected `  NAME: age:…`".into()));
        };
        if !valid_name(name) {
            return Err(self.err(
                n,
                "bad secret name: use `[A-Za-z_][A-Za-z0-9_.-]*`, indented by two spaces".into(),
            ));
        }
        let Some(b64) = value.strip_prefix(VALUE_PREFIX) else {
            return Err(self.err(n, format!("the value of `{name}` must start with `age:`")));
        };
        if b64.is_empty() || b64.contains(char::is_whitespace) {
            return Err(self.err(
                n,
                format!("the value of `{name}` must be one word of base64 after `age:`"),
            ));
        }
        if let Some(first) = self.entries.iter().find(|e| e.name == name) {
            return Err(self.err(
                n,
                format!(
                    "`{name}` appears twice (first on line {})",
                    first.line.unwrap_or(0)
                ),
            ));
        }
        self.entries.push(Entry {
            name: name.into(),
            value: b64.into(),
            line: Some(n),
        });
        Ok(())
    }

    /// The end of the file, at line `end`: both sections there, and a
    /// recipient.
    fn finish(self, end: usize) -> Result<(Vec<Recipient>, Vec<Entry>)> {
        if !self.seen_recipients {
            return Err(self.err(end, "missing `recipients:`".into()));
        }
        if self.recipients.is_empty() {
            return Err(self.err(end, "no recipients: nobody could decrypt this file".into()));
        }
        if !self.seen_secrets {
            return Err(self.err(end, "missing `secrets:`".into()));
        }
        let recipients = self.recipients.into_iter().map(|(r, _)| r).collect();
        Ok((recipients, self.entries))
    }
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
