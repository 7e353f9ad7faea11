//! Queries over the log store ([`crate::logs`]): the lines of chosen
//! replicas in a time window that pass filters (`grep`, `level`, `where`),
//! merged in time order, a page at a time.
//!
//! A page never holds more than [`Limits`] allow (lines, bytes of text,
//! bytes scanned), whatever the files' size: each replica's files are read
//! through a buffer of their own, and the merge keeps one line per replica.
//! A page ends with a [`Cursor`]: where each file was left, by inode (a
//! rotation renames a file and keeps its inode), so the next page — or a
//! follow's next poll — starts there. `tail` is a first pass that only
//! keeps, per replica, the positions of its last N passing lines.
//!
//! `grep` searches a whole buffer of lines at once and only looks at the
//! lines where the regex matched (the scan ripgrep does), then checks the
//! line's text alone; a regex with anchors (`^`, `$`, `\A`, `\z`) is
//! checked line by line instead.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read as _, Seek as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::log_fields::{Level, Where, json_object, level_of};

/// How much one page may hold and read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub lines: usize,
    pub text_bytes: usize,
    pub scan_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            lines: 5_000,
            text_bytes: 4 * 1024 * 1024,
            scan_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Size of each replica's read buffer (it grows for a longer line, up to
/// [`MAX_LINE`]).
const BUFFER: usize = 256 * 1024;
/// A stored line longer than this is skipped.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// What was asked for.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Services (`api`) or replicas (`api-2`); all when empty.
    pub sources: Vec<String>,
    /// Only replica N (of the sources, or of every service).
    pub replica: Option<u32>,
    /// Milliseconds since the epoch: lines at or after.
    pub since_ms: Option<u64>,
    /// Milliseconds since the epoch: lines before.
    pub until_ms: Option<u64>,
    /// The last N passing lines of each replica (with no cursor).
    pub tail: Option<usize>,
    pub filter: Filter,
}

/// Filters on a line's text.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    grep: Option<Grep>,
    level: Option<Level>,
    wheres: Vec<Where>,
}

#[derive(Debug, Clone)]
struct Grep {
    regex: regex::bytes::Regex,
    /// Searched over a buffer of lines (no anchors), or line by line.
    whole_buffer: bool,
}

/// A filter that cannot be used: what is wrong and a hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}")]
pub struct FilterError {
    pub what: String,
    pub hint: String,
}

impl Filter {
    /// `grep`: a regex (the `regex` crate's syntax); `level`: the lowest
    /// level shown ([`Level::from_word`]); `wheres`: `FIELD=VALUE`s, all
    /// of which a JSON line must have.
    pub fn new(
        grep: Option<&str>,
        level: Option<&str>,
        wheres: &[String],
    ) -> Result<Filter, FilterError> {
        let grep = match grep {
            None => None,
            Some(pattern) => {
                let regex = regex::bytes::RegexBuilder::new(pattern)
                    .size_limit(16 * 1024 * 1024)
                    .build()
                    .map_err(|e| FilterError {
                        what: format!("`--grep {pattern}` is not a regular expression: {}", one_line(&e.to_string())),
                        hint: "the syntax is the regex crate's (https://docs.rs/regex/#syntax), close to Perl's without look-around or backreferences; escape `( ) [ ] { } . * + ? | \\ ^ $` with `\\` to match them as they are".into(),
                    })?;
                let whole_buffer = !pattern.contains(['^', '$'])
                    && !pattern.contains("\\A")
                    && !pattern.contains("\\z");
                Some(Grep {
                    regex,
                    whole_buffer,
                })
            }
        };
        let level = match level {
            None => None,
            Some(word) => Some(Level::from_word(word).ok_or_else(|| FilterError {
                what: format!("`--level {word}` is not a level"),
                hint: format!(
                    "one of {} (the lines at that level and above)",
                    Level::WORDS
                ),
            })?),
        };
        let wheres = wheres
            .iter()
            .map(|w| {
                Where::parse(w).map_err(|why| FilterError {
                    what: format!("`--where {w}`: {why}"),
                    hint: "write FIELD=VALUE, a top-level field of JSON lines and its value (`--where level=error`, `--where user=ann`)".into(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Filter {
            grep,
            level,
            wheres,
        })
    }

    /// Whether the filter keeps a line of this text.
    pub fn keeps(&self, text: &[u8]) -> bool {
        if let Some(g) = &self.grep
            && !g.regex.is_match(text)
        {
            return false;
        }
        if self.level.is_none() && self.wheres.is_empty() {
            return true;
        }
        let text = String::from_utf8_lossy(text);
        let object = json_object(&text);
        if let Some(min) = self.level
            && level_of(&text, object.as_ref()).is_none_or(|l| l < min)
        {
            return false;
        }
        match &object {
            Some(o) => self.wheres.iter().all(|w| w.matches(o)),
            None => self.wheres.is_empty(),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One line of a page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Line {
    /// Milliseconds since the epoch.
    pub time_ms: u64,
    /// `api-2`, `gateway`, `api-deploy`.
    pub source: String,
    /// `api` (the source, when it names no replica).
    pub service: String,
    /// The replica's number; none for the gateway's access log and a
    /// service's deploy, build and backup lines.
    pub replica: Option<u32>,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub text: String,
}

/// A page of lines and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Page {
    pub lines: Vec<Line>,
    /// Every replica the query reads (not only those of this page), by
    /// name: what a printer aligns its prefixes on.
    pub sources: Vec<String>,
    /// Give it back for the lines after these.
    pub cursor: String,
    /// A limit ended the page: more lines may be there now (ask again at
    /// once); otherwise every file was read to its end.
    pub more: bool,
}

/// Where each file was left: `(inode, time of its first line) → offset`.
/// The first line's time tells a file from a later one that got the inode
/// of a deleted file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(BTreeMap<(u64, u64), u64>);

impl Cursor {
    /// `INODE.FIRST.OFFSET` joined by `_` (only digits, `.` and `_`: it
    /// goes in a URL as it is).
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|((ino, first), off)| format!("{ino}.{first}.{off}"))
            .collect::<Vec<_>>()
            .join("_")
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let mut map = BTreeMap::new();
        for part in s.split('_').filter(|p| !p.is_empty()) {
            let mut n = part.split('.').map(|x| x.parse::<u64>().ok());
            let (ino, first, off) = (n.next()??, n.next()??, n.next()??);
            if n.next().is_some() {
                return None;
            }
            map.insert((ino, first), off);
        }
        Some(Cursor(map))
    }
}

/// One file of a replica, and how far it was read.
struct File {
    path: PathBuf,
    key: (u64, u64),
    /// Offset of the next unread line.
    pos: u64,
    /// Its size when the query started: whole lines before it are read.
    end: u64,
}

impl File {
    fn open(path: PathBuf, cursor: Option<&Cursor>) -> Option<File> {
        let meta = fs_err::metadata(&path).ok()?;
        let mut first = [0u8; 24];
        let first_ms = fs_err::File::open(&path)
            .ok()
            .and_then(|mut f| f.read_exact(&mut first).ok())
            .and_then(|()| crate::logs::parse_time(std::str::from_utf8(&first).ok()?))
            .unwrap_or(0);
        let key = (meta.ino(), first_ms);
        let end = meta.len();
        let pos = cursor
            .and_then(|c| c.0.get(&key).copied())
            .unwrap_or(0)
            .min(end);
        Some(File {
            path,
            key,
            pos,
            end,
        })
    }
}

/// A replica's files (its rotated one first) read in order, one passing
/// line ahead.
struct Source {
    name: String,
    files: Vec<File>,
    /// The file being read, its open handle and buffer.
    at: usize,
    handle: Option<fs_err::File>,
    buf: Vec<u8>,
    /// `buf[start..]` are unread bytes, which begin at offset `buf_pos`
    /// of the current file.
    start: usize,
    buf_pos: u64,
    /// Where the regex matched next in `buf` (for whole-buffer grep).
    next_match: Option<usize>,
    /// The next passing line and its offset in its file.
    ahead: Option<(usize, u64, Line)>,
    done: bool,
}

enum Fill {
    Line,
    End,
    Budget,
}

impl Source {
    fn new(name: String, files: Vec<File>) -> Source {
        Source {
            name,
            files,
            at: 0,
            handle: None,
            buf: Vec::new(),
            start: 0,
            buf_pos: 0,
            next_match: None,
            ahead: None,
            done: false,
        }
    }

    /// Reads until a line passes (kept in `ahead`), the files end, or the
    /// scan budget is spent.
    fn fill(&mut self, query: &Query, budget: &mut u64) -> std::io::Result<Fill> {
        if self.ahead.is_some() {
            return Ok(Fill::Line);
        }
        loop {
            if self.done {
                return Ok(Fill::End);
            }
            // A whole line in the buffer?
            if let Some(nl) = memchr::memchr(b'\n', &self.buf[self.start..]) {
                let (s, e) = (self.start, self.start + nl);
                let line_pos = self.buf_pos;
                // Whole-buffer grep: skip to the line of the next match.
                if let Some(g) = query.filter.grep.as_ref().filter(|g| g.whole_buffer) {
                    if self.next_match.is_none_or(|m| m < s) {
                        let filled = self.filled_to();
                        self.next_match = Some(
                            g.regex
                                .find_at(&self.buf[..filled], s)
                                .map_or(filled, |m| m.start()),
                        );
                    }
                    let m = self.next_match.unwrap_or(s);
                    if m > e {
                        // No match in this line: jump to the match's line
                        // (or past every whole line in the buffer).
                        let filled = self.filled_to();
                        let to = if m >= filled {
                            filled
                        } else {
                            memchr::memrchr(b'\n', &self.buf[s..m]).map_or(s, |i| s + i + 1)
                        };
                        let skipped = (to - s) as u64;
                        self.advance(to - s);
                        *budget = budget.saturating_sub(skipped);
                        if *budget == 0 {
                            return Ok(Fill::Budget);
                        }
                        continue;
                    }
                }
                self.advance(nl + 1);
                *budget = budget.saturating_sub(nl as u64 + 1);
                if let Some(line) = self.parse(s, e, query) {
                    self.ahead = Some((self.at, line_pos, line));
                    return Ok(Fill::Line);
                }
                if *budget == 0 {
                    return Ok(Fill::Budget);
                }
                continue;
            }
            self.read_more()?;
        }
    }

    /// The end of the bytes read into `buf` that make whole lines.
    fn filled_to(&self) -> usize {
        memchr::memrchr(b'\n', &self.buf[self.start..]).map_or(self.start, |i| self.start + i + 1)
    }

    fn advance(&mut self, n: usize) {
        self.start += n;
        self.buf_pos += n as u64;
        let file = &mut self.files[self.at];
        file.pos = self.buf_pos;
    }

    /// More bytes of the current file into the buffer, or the next file.
    fn read_more(&mut self) -> std::io::Result<()> {
        let Some(file) = self.files.get_mut(self.at) else {
            self.done = true;
            return Ok(());
        };
        if self.handle.is_none() {
            let mut f = fs_err::File::open(&file.path)?;
            f.seek(std::io::SeekFrom::Start(file.pos))?;
            self.handle = Some(f);
            self.buf.clear();
            self.start = 0;
            self.buf_pos = file.pos;
            self.next_match = None;
        }
        // Keep the unread part, then fill up to the file's end as seen.
        self.buf.drain(..self.start);
        self.next_match = None;
        self.start = 0;
        let read_to = self.buf_pos + self.buf.len() as u64;
        let left = file.end.saturating_sub(read_to);
        let room = if self.buf.len() >= BUFFER {
            // A line longer than the buffer: grow, or skip it.
            if self.buf.len() >= MAX_LINE {
                let skip = self.buf.len();
                self.buf.clear();
                self.buf_pos += skip as u64;
                // Up to the next newline is skipped with the rest.
                return self.skip_long_line();
            }
            self.buf.len()
        } else {
            BUFFER - self.buf.len()
        };
        let want = (room as u64).min(left) as usize;
        if want == 0 {
            // This file is read to its end (a partial last line waits).
            self.handle = None;
            self.buf.clear();
            self.at += 1;
            if self.at >= self.files.len() {
                self.done = true;
            }
            return Ok(());
        }
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        let handle = self.handle.as_mut().expect("opened above");
        let got = handle.read(&mut self.buf[old..])?;
        self.buf.truncate(old + got);
        if got == 0 {
            // Shrank under us: treat as its end.
            file.end = read_to;
        }
        Ok(())
    }

    fn skip_long_line(&mut self) -> std::io::Result<()> {
        let file = &mut self.files[self.at];
        let handle = self.handle.as_mut().expect("open");
        let mut chunk = vec![0u8; 64 * 1024];
        while self.buf_pos < file.end {
            let n = handle.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            if let Some(i) = memchr::memchr(b'\n', &chunk[..n]) {
                self.buf_pos += i as u64 + 1;
                self.buf.extend_from_slice(&chunk[i + 1..n]);
                file.pos = self.buf_pos;
                return Ok(());
            }
            self.buf_pos += n as u64;
        }
        file.pos = self.buf_pos;
        Ok(())
    }

    /// The line `buf[s..e]` if it is well formed and passes.
    fn parse(&self, s: usize, e: usize, query: &Query) -> Option<Line> {
        let raw = &self.buf[s..e];
        if raw.len() < 29 || raw[24] != b' ' || raw[28] != b' ' {
            return None;
        }
        let time_ms = crate::logs::parse_time(std::str::from_utf8(&raw[..24]).ok()?)?;
        if query.since_ms.is_some_and(|t| time_ms < t)
            || query.until_ms.is_some_and(|t| time_ms >= t)
        {
            return None;
        }
        let stream = match &raw[25..28] {
            b"out" => "stdout",
            b"err" => "stderr",
            _ => return None,
        };
        let text = &raw[29..];
        if !query.filter.keeps(text) {
            return None;
        }
        let (service, replica) = split_source(&self.name);
        Some(Line {
            time_ms,
            source: self.name.clone(),
            service: service.to_string(),
            replica,
            stream: stream.to_string(),
            text: String::from_utf8_lossy(text).into_owned(),
        })
    }
}

/// `api-2` → (`api`, 2); `gateway` → (`gateway`, none).
pub fn split_source(source: &str) -> (&str, Option<u32>) {
    match source.rsplit_once('-') {
        Some((s, n)) if !s.is_empty() => match n.parse::<u32>() {
            Ok(n) => (s, Some(n)),
            Err(_) => (source, None),
        },
        _ => (source, None),
    }
}

/// The replicas' files the query names, by replica, sorted by name.
fn sources(dir: &Path, query: &Query, cursor: Option<&Cursor>) -> Vec<Source> {
    let mut by_source: BTreeMap<String, Vec<(bool, PathBuf)>> = BTreeMap::new();
    for (source, path) in crate::logs::files(dir, &query.sources, true) {
        if let Some(n) = query.replica
            && split_source(&source).1 != Some(n)
        {
            continue;
        }
        let rotated = path.to_string_lossy().ends_with(".1");
        by_source.entry(source).or_default().push((rotated, path));
    }
    by_source
        .into_iter()
        .map(|(name, mut paths)| {
            // The rotated file first.
            paths.sort_by_key(|(rotated, _)| !rotated);
            let files = paths
                .into_iter()
                .filter_map(|(_, p)| File::open(p, cursor))
                .collect();
            Source::new(name, files)
        })
        .collect()
}

/// The next page of `query` over the logs in `dir`, after `cursor` (from
/// the start, or from the tail, without one).
pub fn page(
    dir: &Path,
    query: &Query,
    cursor: Option<&Cursor>,
    limits: Limits,
) -> std::io::Result<Page> {
    let mut sources = sources(dir, query, cursor);
    if cursor.is_none()
        && let Some(n) = query.tail
    {
        for s in &mut sources {
            tail_start(s, query, n)?;
        }
    }
    let mut budget = limits.scan_bytes;
    let mut lines = Vec::new();
    let mut text_bytes = 0usize;
    let mut more = false;
    'page: loop {
        if lines.len() >= limits.lines || text_bytes >= limits.text_bytes {
            more = true;
            break;
        }
        for s in sources.iter_mut() {
            if let Fill::Budget = s.fill(query, &mut budget)? {
                more = true;
                break 'page;
            }
        }
        // The earliest line ahead (the first source on a tie).
        let Some(next) = sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.ahead.as_ref().map(|(_, _, l)| (l.time_ms, i)))
            .min()
            .map(|(_, i)| i)
        else {
            break;
        };
        let (_, _, line) = sources[next].ahead.take().expect("chosen above");
        text_bytes += line.text.len();
        lines.push(line);
    }
    Ok(Page {
        lines,
        sources: sources.iter().map(|s| s.name.clone()).collect(),
        cursor: cursor_of(&sources).encode(),
        more,
    })
}

/// Where every file was left; a line read ahead and not given is read
/// again next time. Files no longer there drop out.
fn cursor_of(sources: &[Source]) -> Cursor {
    let mut map = BTreeMap::new();
    for s in sources {
        for (i, f) in s.files.iter().enumerate() {
            let pos = match &s.ahead {
                Some((at, off, _)) if *at == i => *off,
                _ => f.pos,
            };
            map.insert(f.key, pos);
        }
    }
    Cursor(map)
}

/// Moves a source to its last `n` passing lines: a pass over its files
/// that keeps only those lines' positions.
fn tail_start(s: &mut Source, query: &Query, n: usize) -> std::io::Result<()> {
    let starts: Vec<u64> = s.files.iter().map(|f| f.pos).collect();
    let mut kept: VecDeque<(usize, u64)> = VecDeque::new();
    let mut budget = u64::MAX;
    // Ends with the files (the budget is never spent).
    while let Fill::Line = s.fill(query, &mut budget)? {
        let (at, off, _) = s.ahead.take().expect("filled");
        if n > 0 {
            if kept.len() == n {
                kept.pop_front();
            }
            kept.push_back((at, off));
        }
    }
    let ends: Vec<u64> = s.files.iter().map(|f| f.pos).collect();
    // From the first kept line on; with none kept, from where the pass
    // ended (the files' ends).
    let (from_at, from_off) = kept.front().copied().unwrap_or((s.files.len(), 0));
    for (i, f) in s.files.iter_mut().enumerate() {
        f.pos = match i.cmp(&from_at) {
            std::cmp::Ordering::Less => ends[i],
            std::cmp::Ordering::Equal => from_off,
            std::cmp::Ordering::Greater => starts[i],
        };
    }
    let mut fresh = Source::new(std::mem::take(&mut s.name), std::mem::take(&mut s.files));
    fresh.at = from_at.min(fresh.files.len());
    fresh.done = fresh.at >= fresh.files.len();
    *s = fresh;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Writer;
    use crate::output::Stream;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(ms: u64) -> std::time::SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    fn texts(p: &Page) -> Vec<String> {
        p.lines
            .iter()
            .map(|l| format!("{} {}", l.source, l.text))
            .collect()
    }

    fn all(dir: &Path, query: &Query, limits: Limits) -> (Vec<String>, usize) {
        let mut cursor: Option<Cursor> = None;
        let mut out = Vec::new();
        let mut pages = 0;
        loop {
            let p = page(dir, query, cursor.as_ref(), limits).unwrap();
            pages += 1;
            out.extend(texts(&p));
            cursor = Cursor::decode(&p.cursor);
            if !p.more {
                return (out, pages);
            }
            assert!(pages < 10_000, "bounded");
        }
    }

    #[test]
    fn merged_paged_and_followed_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 200).unwrap();
        for i in 0..20u64 {
            w.append("api-1", Stream::Stdout, &format!("a{i}"), at(1000 + 2 * i))
                .unwrap();
            w.append("api-2", Stream::Stderr, &format!("b{i}"), at(1001 + 2 * i))
                .unwrap();
        }
        let q = Query::default();
        let (lines, _) = all(dir.path(), &q, Limits::default());
        // Rotated once at 200 bytes: the oldest lines are gone, the rest
        // in order.
        let times: Vec<String> = lines.clone();
        assert!(lines.len() >= 10, "{lines:?}");
        assert_eq!(lines.last().unwrap(), "api-2 b19");
        let small = Limits {
            lines: 3,
            ..Limits::default()
        };
        let (paged, pages) = all(dir.path(), &q, small);
        assert_eq!(paged, times, "pages of 3 give the same lines");
        assert!(pages > 3);
        // Follow: a cursor at the end, then lines appended (and a rotation).
        let end = page(dir.path(), &q, None, Limits::default()).unwrap();
        let cursor = Cursor::decode(&end.cursor).unwrap();
        // Five lines of 33 bytes: one rotation at most (two would drop
        // the file the cursor was in, as the store keeps one old file).
        for i in 20..25u64 {
            w.append("api-1", Stream::Stdout, &format!("a{i}"), at(2000 + i))
                .unwrap();
        }
        let fresh = page(dir.path(), &q, Some(&cursor), Limits::default()).unwrap();
        let want: Vec<String> = (20..25).map(|i| format!("api-1 a{i}")).collect();
        assert_eq!(texts(&fresh), want);
    }

    #[test]
    fn filters_tail_and_window() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 1 << 20).unwrap();
        let lines = [
            ("api-1", r#"{"level":"info","msg":"hello","user":"ann"}"#),
            ("api-2", "WARN disk low"),
            ("api-1", r#"{"level":"error","msg":"boom","user":"bob"}"#),
            ("db-1", "ERROR: deadlock"),
            ("gateway", "GET /x 200"),
            ("api-2", "plain hello"),
        ];
        for (i, (s, t)) in lines.iter().enumerate() {
            w.append(s, Stream::Stdout, t, at(1000 + i as u64)).unwrap();
        }
        let run = |q: Query| all(dir.path(), &q, Limits::default()).0;
        let f = |g: Option<&str>, l: Option<&str>, w: &[&str]| {
            let w: Vec<String> = w.iter().map(|s| s.to_string()).collect();
            Filter::new(g, l, &w).unwrap()
        };
        let q = |filter| Query {
            filter,
            ..Query::default()
        };
        assert_eq!(
            run(q(f(Some("hel+o"), None, &[]))),
            [
                r#"api-1 {"level":"info","msg":"hello","user":"ann"}"#,
                "api-2 plain hello"
            ]
        );
        // Anchored: line by line, on the text alone.
        assert_eq!(run(q(f(Some("^plain"), None, &[]))), ["api-2 plain hello"]);
        assert_eq!(run(q(f(Some("out plain"), None, &[]))).len(), 0);
        assert_eq!(
            run(q(f(None, Some("warn"), &[]))),
            [
                "api-2 WARN disk low",
                r#"api-1 {"level":"error","msg":"boom","user":"bob"}"#,
                "db-1 ERROR: deadlock"
            ]
        );
        assert_eq!(
            run(q(f(None, None, &["user=bob"]))),
            [r#"api-1 {"level":"error","msg":"boom","user":"bob"}"#]
        );
        assert_eq!(run(q(f(None, None, &["msg=hello", "user=ann"]))).len(), 1);
        let replica2 = Query {
            replica: Some(2),
            ..Query::default()
        };
        assert_eq!(run(replica2), ["api-2 WARN disk low", "api-2 plain hello"]);
        let tail = Query {
            tail: Some(1),
            sources: vec!["api".into()],
            ..Query::default()
        };
        assert_eq!(
            run(tail),
            [
                r#"api-1 {"level":"error","msg":"boom","user":"bob"}"#,
                "api-2 plain hello"
            ]
        );
        let window = Query {
            since_ms: Some(1001),
            until_ms: Some(1003),
            ..Query::default()
        };
        assert_eq!(run(window).len(), 2);
        let tail0 = Query {
            tail: Some(0),
            ..Query::default()
        };
        assert!(run(tail0).is_empty());
        let e = Filter::new(Some("a(b"), None, &[]).unwrap_err();
        assert!(
            e.what.contains("--grep a(b") && e.hint.contains("escape"),
            "{e:?}"
        );
        assert!(Filter::new(None, Some("loud"), &[]).is_err());
        assert!(Filter::new(None, None, &["nofield".into()]).is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor::decode("12.1000.40_13.0.0").unwrap();
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode(""), Some(Cursor::default()));
        assert_eq!(Cursor::decode("1.2"), None);
        assert_eq!(Cursor::decode("1.2.x"), None);
    }

    #[test]
    fn a_scan_budget_pages_a_sparse_grep() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 1 << 30).unwrap();
        for i in 0..5000u64 {
            let t = if i % 1000 == 999 {
                "needle"
            } else {
                "hay hay hay"
            };
            w.append("a-1", Stream::Stdout, t, at(i)).unwrap();
        }
        let q = Query {
            filter: Filter::new(Some("needle"), None, &[]).unwrap(),
            ..Query::default()
        };
        let limits = Limits {
            scan_bytes: 20_000,
            ..Limits::default()
        };
        let (lines, pages) = all(dir.path(), &q, limits);
        assert_eq!(lines.len(), 5);
        assert!(pages > 5, "{pages} pages");
    }
}
