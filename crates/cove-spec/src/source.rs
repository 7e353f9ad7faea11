//! Source files the loader has read, and spans into them.
//!
//! Every node of a loaded Compose file remembers where it came from, so that any
//! later step (interpolation, merge, validation, graph checks) can point at the
//! exact file, line and column when it finds something wrong.

use std::path::{Path, PathBuf};

/// Index of a file in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A place in a source file: 1-based line and column (in characters) and a
/// length in characters, used to draw the caret under the offending text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub line: u32,
    pub col: u32,
    pub len: u32,
}

impl Span {
    pub fn new(file: FileId, line: u32, col: u32, len: u32) -> Span {
        Span {
            file,
            line,
            col,
            len,
        }
    }
}

/// One file's text, kept to show the offending line in diagnostics.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// All files read while loading one app.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile { path, text });
        FileId((self.files.len() - 1) as u32)
    }

    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn path(&self, id: FileId) -> &Path {
        &self.file(id).path
    }

    /// The text of line `line` (1-based) of a file, without its newline.
    pub fn line(&self, id: FileId, line: u32) -> Option<&str> {
        self.file(id)
            .text
            .lines()
            .nth((line as usize).checked_sub(1)?)
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }
}
