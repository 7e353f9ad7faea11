//! A build context as Docker sends it: the directory as a tar stream, minus
//! what `.dockerignore` excludes, minus cove's own state directory (its
//! socket, store and logs never belong in an image), and minus what cannot
//! be archived (sockets, fifos, devices).
//!
//! `.dockerignore` is read as Docker reads it: a line starting with `#` is
//! a comment; each other line is a pattern (trimmed, cleaned, a leading `/`
//! dropped) relative to the context; `*` is any run of characters but `/`,
//! `?` one such character, `[...]` a class, `\` escapes, `**` any number of
//! directories (none included); a pattern that names a directory excludes
//! everything under it; `!` re-includes; the last pattern that matches a
//! path decides. `.dockerignore` and the Dockerfile are sent even when
//! excluded (the engine needs them), as the Docker CLI does.

use std::path::{Path, PathBuf};

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    One,
    /// `[...]`: ranges, negated or not.
    Class(Vec<(char, char)>, bool),
    /// `**/` (or `**` inside a pattern): any number of whole directories.
    Dirs,
    /// `**` at the end: anything.
    Rest,
}

#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    tokens: Vec<Token>,
    /// `!`: re-includes what matches.
    exception: bool,
}

/// The patterns of a `.dockerignore`, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// Reads `.dockerignore`'s text.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = if i == 0 {
                line.trim_start_matches('\u{feff}')
            } else {
                line
            };
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exception = p.starts_with('!');
            if exception {
                p = p[1..].trim();
            }
            let cleaned = clean(p);
            let cleaned = match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => rest.to_string(),
                _ => cleaned,
            };
            patterns.push(Pattern {
                tokens: compile(&cleaned),
                exception,
            });
        }
        Ignore { patterns }
    }

    /// Adds a `!PATH` exception at the end (what is always sent).
    pub fn keep(&mut self, path: &str) {
        self.patterns.push(Pattern {
            tokens: compile(&clean(path)),
            exception: true,
        });
    }

    /// Whether any pattern is an exception: then an excluded directory
    /// is still walked, for what it may re-include.
    fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether `path` (relative to the context, `/`-separated) is left
    /// out: the last pattern matching it or one of its parent directories
    /// decides.
    pub fn excludes(&self, path: &str) -> bool {
        let parents: Vec<&str> = {
            let mut v = Vec::new();
            let mut at = 0;
            while let Some(i) = path[at..].find('/') {
                v.push(&path[..at + i]);
                at += i + 1;
            }
            v
        };
        let mut excluded = false;
        for p in &self.patterns {
            // Only a pattern that could change the verdict is tried.
            if p.exception != excluded {
                continue;
            }
            let hit = matches(&p.tokens, &path.chars().collect::<Vec<_>>())
                || parents
                    .iter()
                    .any(|d| matches(&p.tokens, &d.chars().collect::<Vec<_>>()));
            if hit {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

/// Go's `filepath.Clean` on a relative or absolute `/` path.
fn clean(p: &str) -> String {
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn compile(p: &str) -> Vec<Token> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                out.push(if i >= chars.len() {
                    Token::Rest
                } else {
                    Token::Dirs
                });
                continue;
            }
            '*' => out.push(Token::Star),
            '?' => out.push(Token::One),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push(Token::Char(chars[i]));
            }
            '[' => {
                if let Some((class, next)) = class(&chars, i + 1) {
                    out.push(class);
                    i = next;
                    continue;
                }
                out.push(Token::Char('['));
            }
            c => out.push(Token::Char(c)),
        }
        i += 1;
    }
    out
}

/// `[...]` from just after its `[`: the class and the index after its `]`.
fn class(chars: &[char], mut i: usize) -> Option<(Token, usize)> {
    let negated = matches!(chars.get(i), Some('^') | Some('!'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let mut c = *chars.get(i)?;
        if c == ']' && !first {
            return Some((Token::Class(ranges, negated), i + 1));
        }
        first = false;
        if c == '\\' {
            i += 1;
            c = *chars.get(i)?;
        }
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|e| *e != ']') {
            let mut end = chars[i + 2];
            i += 2;
            if end == '\\' {
                i += 1;
                end = *chars.get(i)?;
            }
            ranges.push((c, end));
        } else {
            ranges.push((c, c));
        }
        i += 1;
    }
}

fn matches(tokens: &[Token], s: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Char(c) => s.first() == Some(c) && matches(rest, &s[1..]),
        Token::One => s.first().is_some_and(|c| *c != '/') && matches(rest, &s[1..]),
        Token::Class(ranges, negated) => {
            s.first().is_some_and(|c| {
                *c != '/' && ranges.iter().any(|(a, b)| a <= c && c <= b) != *negated
            }) && matches(rest, &s[1..])
        }
        Token::Star => {
            let mut i = 0;
            loop {
                if matches(rest, &s[i..]) {
                    return true;
                }
                if i == s.len() || s[i] == '/' {
                    return false;
                }
                i += 1;
            }
        }
        Token::Rest => true,
        // `(.*/)?`: nothing, or anything ending with `/`.
        Token::Dirs => {
            matches(rest, s) || (0..s.len()).any(|i| s[i] == '/' && matches(rest, &s[i + 1..]))
        }
    }
}

/// The context `dir` as a tar stream: what `.dockerignore` leaves in,
/// without the directories in `skip` (cove's state directory) nor what a
/// tar cannot hold. `dockerfile` is the Dockerfile's path relative to the
/// context (default `Dockerfile`).
pub fn archive(dir: &Path, dockerfile: Option<&str>, skip: &[PathBuf]) -> std::io::Result<Vec<u8>> {
    let mut ignore = match fs_err::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(e),
    };
    ignore.keep(".dockerignore");
    ignore.keep(dockerfile.unwrap_or("Dockerfile"));
    let root = fs_err::canonicalize(dir)?;
    let skip: Vec<PathBuf> = skip
        .iter()
        .map(|s| fs_err::canonicalize(s).unwrap_or_else(|_| s.clone()))
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    walk(&mut b, &root, "", &ignore, &skip)?;
    b.into_inner()
}

fn walk(
    b: &mut tar::Builder<Vec<u8>>,
    dir: &Path,
    rel: &str,
    ignore: &Ignore,
    skip: &[PathBuf],
) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs_err::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let kind = e.file_type()?;
        if kind.is_dir() {
            if skip.contains(&path) {
                continue;
            }
            let excluded = ignore.excludes(&rel);
            if !excluded {
                b.append_path_with_name(&path, &rel)?;
            }
            if !excluded || ignore.has_exceptions() {
                walk(b, &path, &rel, ignore, skip)?;
            }
        } else if (kind.is_file() || kind.is_symlink()) && !ignore.excludes(&rel) {
            b.append_path_with_name(&path, &rel)?;
        }
        // Sockets, fifos and devices have no place in an image.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> Ignore {
        Ignore::parse(text)
    }

    #[test]
    fn comments_blank_lines_and_plain_names() {
        let i = ignore("# a comment\n\n  target  \n#not-this\nsecret.txt\n");
        assert!(i.excludes("target"));
        assert!(
            i.excludes("target/debug/app"),
            "under an excluded directory"
        );
        assert!(i.excludes("secret.txt"));
        assert!(!i.excludes("#not-this"), "a comment, not a pattern");
        assert!(
            !i.excludes("src/target"),
            "patterns are anchored at the root"
        );
        assert!(!i.excludes("secret.txt.bak"));
    }

    #[test]
    fn stars_question_marks_and_classes() {
        let i = ignore("*.log\ntmp?\n[ab]c\ndocs/*.md\n");
        assert!(i.excludes("x.log"));
        assert!(!i.excludes("dir/x.log"), "`*` does not cross `/`");
        assert!(i.excludes("tmp1"));
        assert!(!i.excludes("tmp12"));
        assert!(i.excludes("ac") && i.excludes("bc") && !i.excludes("cc"));
        assert!(i.excludes("docs/a.md") && !i.excludes("docs/sub/a.md"));
        let n = ignore("[^a]x\n[0-9]y\n");
        assert!(n.excludes("bx") && !n.excludes("ax"));
        assert!(n.excludes("5y") && !n.excludes("zy"));
    }

    #[test]
    fn double_stars_match_any_number_of_directories() {
        let i = ignore("**/*.pyc\nbuild/**\na/**/z\n");
        assert!(i.excludes("x.pyc"), "`**/` matches no directory too");
        assert!(i.excludes("p/q/x.pyc"));
        assert!(i.excludes("build/x") && i.excludes("build/x/y"));
        assert!(i.excludes("a/z") && i.excludes("a/b/c/z"));
        assert!(!i.excludes("a/b/c/y"));
    }

    #[test]
    fn exceptions_and_the_last_match_wins() {
        let i = ignore("*.md\n!README.md\n");
        assert!(i.excludes("CHANGES.md"));
        assert!(!i.excludes("README.md"));
        let j = ignore("!README.md\n*.md\n");
        assert!(j.excludes("README.md"), "the later pattern wins");
        let k = ignore("data\n!data/keep\n");
        assert!(k.excludes("data/drop"));
        assert!(!k.excludes("data/keep"));
        assert!(k.has_exceptions());
    }

    #[test]
    fn paths_are_cleaned_and_a_leading_slash_dropped() {
        let i = ignore("/secrets\n./a/../b\n! /c \n*\n!/c\n");
        assert!(i.excludes("secrets/x"));
        assert!(i.excludes("b"));
        assert!(!i.excludes("c"));
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../a"), "/a");
    }

    #[test]
    fn escapes_are_literal() {
        let i = ignore("\\*star\n");
        assert!(i.excludes("*star"));
        assert!(!i.excludes("xstar"));
    }

    #[test]
    fn the_archive_skips_the_state_directory_sockets_and_excluded_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs_err::create_dir_all(d.join(".cove/logs")).unwrap();
        fs_err::write(d.join(".cove/logs/x.log"), "x").unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.join("app.sock")).unwrap();
        fs_err::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        fs_err::write(d.join("keep"), "k").unwrap();
        fs_err::write(d.join("drop"), "d").unwrap();
        let names = || {
            let tar = archive(d, None, &[d.join(".cove")]).unwrap();
            let mut a = tar::Archive::new(&tar[..]);
            let mut names: Vec<String> = a
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(), ["Dockerfile", "drop", "keep"]);
        fs_err::write(d.join(".dockerignore"), "drop\n").unwrap();
        assert_eq!(names(), [".dockerignore", "Dockerfile", "keep"]);
        // Everything out but one file: the Dockerfile and .dockerignore
        // still go.
        fs_err::write(d.join(".dockerignore"), "*\n!keep\n").unwrap();
        assert_eq!(names(), [".dockerignore", "Dockerfile", "keep"]);
    }
}
