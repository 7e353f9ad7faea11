//! [`SecretsFile`]: the recipients and the encrypted values of one secrets
//! file, and the operations on them. Each value is its own age file
//! (binary, base64 on one line), encrypted to every recipient, holding
//! `NAME\0VALUE` so that a value moved under another name fails to open.

use std::fmt;
use std::io::{Read, Write};
use std::iter;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use crate::atomic::{self, Replace};
use crate::error::{Error, Result};
use crate::format::{self, Entry, valid_name};
use crate::identity::Identity;
use crate::recipient::Recipient;

/// A secrets file in memory. It holds only ciphertexts; decrypted values
/// are returned in [`Zeroizing`] buffers and never kept. Debug shows the
/// path, the recipients and the names.
#[derive(Clone)]
pub struct SecretsFile {
    path: Option<PathBuf>,
    recipients: Vec<Recipient>,
    entries: Vec<Entry>,
}

impl SecretsFile {
    /// A new, empty file for `recipients` (key, optional comment); at least
    /// one. It has no path until [`save`](Self::save)d.
    pub fn new<'a>(
        recipients: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<SecretsFile> {
        let mut file = SecretsFile {
            path: None,
            recipients: Vec::new(),
            entries: Vec::new(),
        };
        for (key, comment) in recipients {
            let r = Recipient::parse(key, comment)?;
            if file.recipients.iter().any(|x| x.text == r.text) {
                return Err(Error::DuplicateRecipient {
                    file: file.display(),
                    key: r.text,
                });
            }
            file.recipients.push(r);
        }
        if file.recipients.is_empty() {
            return Err(Error::NoRecipients {
                file: file.display(),
            });
        }
        Ok(file)
    }

    /// Reads and checks the file at `path`; errors name the file and line.
    pub fn load(path: &Path) -> Result<SecretsFile> {
        let bytes = fs_err::read(path)?;
        let mut file = SecretsFile::parse(&bytes, &path.display().to_string())?;
        file.path = Some(path.into());
        Ok(file)
    }

    /// [`load`](Self::load) from bytes; `file` names them in errors.
    pub(crate) fn parse(bytes: &[u8], file: &str) -> Result<SecretsFile> {
        let text = std::str::from_utf8(bytes).map_err(|e| Error::Syntax {
            file: file.into(),
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            message: "not UTF-8 text".into(),
        })?;
        let (recipients, entries) = format::parse(text, file)?;
        Ok(SecretsFile {
            path: None,
            recipients,
            entries,
        })
    }

    /// Writes the file to `path` atomically (temporary file + rename); the
    /// file keeps its mode, 0644 when new (it is meant to be committed).
    /// Afterwards [`path`](Self::path) is `path`.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let mode = match fs_err::metadata(path) {
            Ok(m) => m.permissions().mode() & 0o777,
            Err(_) => 0o644,
        };
        let text = format::render(&self.recipients, &self.entries);
        atomic::write(path, text.as_bytes(), mode, Replace::Yes)?;
        self.path = Some(path.into());
        Ok(())
    }

    /// The file this was loaded from or last saved to.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The recipients, in file order.
    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
    }

    /// The secret names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// Whether there is a secret named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name)
    }

    /// Decrypts the secret `name` with `identity`.
    pub fn get(&self, name: &str, identity: &Identity) -> Result<Zeroizing<Vec<u8>>> {
        self.decrypt(self.entry(name)?, identity)
    }

    /// [`get`](Self::get), for a value that must be UTF-8 text.
    pub fn get_string(&self, name: &str, identity: &Identity) -> Result<Zeroizing<String>> {
        let bytes = self.get(name, identity)?;
        match std::str::from_utf8(&bytes) {
            Ok(s) => Ok(Zeroizing::new(s.to_owned())),
            Err(_) => Err(Error::NotUtf8 {
                file: self.display(),
                name: name.into(),
            }),
        }
    }

    /// Sets the secret `name` to `value`, encrypted to the current
    /// recipients; a new name goes last. Needs no identity.
    pub fn set(&mut self, name: &str, value: &[u8]) -> Result<()> {
        if !valid_name(name) {
            return Err(Error::InvalidName { name: name.into() });
        }
        let encrypted = encrypt(&self.recipients, name, value)?;
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(e) => {
                e.value = encrypted;
                e.line = None;
            }
            None => self.entries.push(Entry {
                name: name.into(),
                value: encrypted,
                line: None,
            }),
        }
        Ok(())
    }

    /// Removes the secret `name`.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        self.entry(name)?;
        self.entries.retain(|e| e.name != name);
        Ok(())
    }

    /// Adds a recipient and re-encrypts every value for the new set, which
    /// needs an `identity` that can decrypt them all. Nothing changes if one
    /// fails.
    pub fn add_recipient(
        &mut self,
        key: &str,
        comment: Option<&str>,
        identity: &Identity,
    ) -> Result<()> {
        let r = Recipient::parse(key, comment)?;
        if self.recipients.iter().any(|x| x.text == r.text) {
            return Err(Error::DuplicateRecipient {
                file: self.display(),
                key: r.text,
            });
        }
        let mut next = self.recipients.clone();
        next.push(r);
        self.reencrypt(next, identity)
    }

    /// Removes a recipient and re-encrypts every value without it, which
    /// needs an `identity` that can decrypt them all. The removed key can
    /// still open the values in the file's history: change the secrets
    /// themselves too if it was compromised.
    pub fn remove_recipient(&mut self, key: &str, identity: &Identity) -> Result<()> {
        if !self.recipients.iter().any(|x| x.text == key) {
            return Err(Error::UnknownRecipient {
                file: self.display(),
                key: key.into(),
            });
        }
        let next: Vec<Recipient> = self
            .recipients
            .iter()
            .filter(|x| x.text != key)
            .cloned()
            .collect();
        if next.is_empty() {
            return Err(Error::NoRecipients {
                file: self.display(),
            });
        }
        self.reencrypt(next, identity)
    }

    fn reencrypt(&mut self, recipients: Vec<Recipient>, identity: &Identity) -> Result<()> {
        let mut entries = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let value = self.decrypt(e, identity)?;
            entries.push(Entry {
                name: e.name.clone(),
                value: encrypt(&recipients, &e.name, &value)?,
                line: None,
            });
        }
        self.recipients = recipients;
        self.entries = entries;
        Ok(())
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| Error::UnknownSecret {
                file: self.display(),
                name: name.into(),
                suggestion: suggest(name, self.names()),
            })
    }

    fn decrypt(&self, entry: &Entry, identity: &Identity) -> Result<Zeroizing<Vec<u8>>> {
        let file = match entry.line {
            Some(n) => format!("{}:{n}", self.display()),
            None => self.display(),
        };
        let tampered = |reason: String| Error::Tampered {
            file: file.clone(),
            name: entry.name.clone(),
            reason,
        };
        let age_error = |e: age::DecryptError| match e {
            age::DecryptError::NoMatchingKeys
                if !self
                    .recipients
                    .iter()
                    .any(|r| r.text == identity.recipient()) =>
            {
                Error::NotARecipient {
                    file: file.clone(),
                    name: entry.name.clone(),
                    identity: identity.describe(),
                    recipient: identity.recipient(),
                }
            }
            age::DecryptError::NoMatchingKeys => tampered(format!(
                "it is not encrypted to {}, which the file lists as a recipient",
                identity.describe()
            )),
            age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
                tampered("its age header is invalid".into())
            }
            age::DecryptError::InvalidMac => tampered("its age header fails its MAC check".into()),
            age::DecryptError::DecryptionFailed | age::DecryptError::KeyDecryptionFailed => {
                tampered("it fails its integrity check".into())
            }
            age::DecryptError::Io(_) => tampered("it is truncated or corrupt".into()),
            other => tampered(format!("age: {other}")),
        };

        let ciphertext = BASE64
            .decode(&entry.value)
            .map_err(|_| tampered("its value is not valid base64".into()))?;
        let mut reader = age::Decryptor::new_buffered(&ciphertext[..])
            .map_err(age_error)?
            .decrypt(iter::once(identity.age() as &dyn age::Identity))
            .map_err(age_error)?;
        // The plaintext is shorter than the ciphertext: no reallocation
        // leaves a copy behind.
        let mut plain = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
        reader
            .read_to_end(&mut plain)
            .map_err(|_| tampered("it fails its integrity check".into()))?;

        let Some(nul) = plain.iter().position(|&b| b == 0) else {
            return Err(tampered("it is not bound to a name".into()));
        };
        if plain[..nul] != *entry.name.as_bytes() {
            let other = std::str::from_utf8(&plain[..nul])
                .ok()
                .filter(|n| valid_name(n))
                .map(|n| format!(" (`{n}`)"))
                .unwrap_or_default();
            return Err(tampered(format!(
                "it was encrypted under another name{other}"
            )));
        }
        Ok(Zeroizing::new(plain[nul + 1..].to_vec()))
    }

    /// The file's name for messages.
    fn display(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "the new secrets file".into(),
        }
    }
}

impl fmt::Debug for SecretsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsFile")
            .field("path", &self.path)
            .field("recipients", &self.recipients)
            .field("names", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

/// Encrypts `NAME\0VALUE` to every recipient; returns the base64 text.
fn encrypt(recipients: &[Recipient], name: &str, value: &[u8]) -> Result<String> {
    let failed = |reason: String| Error::Encrypt {
        name: name.into(),
        reason,
    };
    let mut plain = Zeroizing::new(Vec::with_capacity(name.len() + 1 + value.len()));
    plain.extend_from_slice(name.as_bytes());
    plain.push(0);
    plain.extend_from_slice(value);
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| &r.key as &dyn age::Recipient))
            .map_err(|e| failed(e.to_string()))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| failed(e.to_string()))?;
    writer
        .write_all(&plain)
        .and_then(|()| writer.finish().map(drop))
        .map_err(|e| failed(e.to_string()))?;
    Ok(BASE64.encode(out))
}

/// The closest name to `word`, for "did you mean".
fn suggest<'a>(word: &str, names: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for n in names {
        let score = strsim::jaro_winkler(&word.to_ascii_lowercase(), &n.to_ascii_lowercase());
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, n));
        }
    }
    best.map(|(_, n)| n.into())
}
