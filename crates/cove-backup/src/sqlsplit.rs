//! Re-cuts mariadb-dump's extended INSERT statements where the rows
//! themselves say, so that a second backup of a slightly changed table
//! deduplicates.
//!
//! mariadb-dump writes a table's rows as `INSERT INTO `t` VALUES (..),(..);`
//! statements cut at a byte length (`net_buffer_length`, 1 MiB less 1025 by
//! default). A row that grew by a byte moves where every later statement
//! starts, so the dump differs from that row to the end of the table, and
//! the repository's content-defined chunker stores all of it again
//! (bench/backup/RESULTS.md: 16 % of a 1 GB table after 1 % of its rows
//! changed; 1.3 % re-cut, bench/backup/resplit.sh). [`Splitter`] joins consecutive INSERT statements of one table
//! (the same prefix, byte for byte) and cuts them again after the rows
//! whose own bytes hash under a threshold proportional to their length:
//! those ends fall [`TARGET`] bytes apart on average whatever the rows'
//! size; a statement never exceeds [`MAX_STATEMENT`] (mariadb-dump's own default bound, so a server
//! that loaded mariadb-dump's statements loads these) unless one row alone
//! does, and where a statement ends depends only on the rows since the
//! previous content-chosen end.
//!
//! Safety first: a wrong cut would corrupt a backup. A statement is re-cut
//! only when it parses exactly as mariadb-dump writes one (read whole, at
//! most [`MAX_INPUT_STATEMENT`] bytes): its prefix, then rows of NULL,
//! numbers, `0x` hex literals and single-quoted strings whose escapes are
//! those of `mysql_real_escape_string` (`\0 \n \r \\ \' \" \Z`), separated by
//! `,` or `,` and a newline, ended by `;` and a newline. Anything else (a
//! value of another form, a statement too long, a stream that ends
//! mid-statement) passes through byte for byte, after the statement being
//! written is ended. Every other line passes through byte for byte too.
//!
//! Only INSERT statements that begin a line at the start of an SQL
//! statement are candidates: the text around them is lexed as the `mariadb`
//! client does (strings, comments, `DELIMITER`), so an INSERT inside a
//! trigger or routine body, a string or a comment is never touched.
//! mariadb-dump escapes values with backslashes (it sets its session's
//! SQL_MODE to the `--compatible` modes, none of which is
//! NO_BACKSLASH_ESCAPES) in its connection's character set (`SET NAMES` in
//! the dump's header, utf8mb4 by default). Re-cutting stops for the rest of
//! the stream at a statement that mentions NO_BACKSLASH_ESCAPES, or that
//! sets the client character set to one in which a multi-byte character can
//! hold a `\` or `'` byte (big5, sjis, gbk, ...) or to one this module does
//! not know.
//!
//! Memory: the statement being read (at most [`MAX_INPUT_STATEMENT`]), the
//! prefix of the statement being written, and what the caller's chunk
//! produced.

use std::io::{self, BufRead, Read, Write};

use memchr::memmem;

/// The average distance between content-chosen statement ends (bytes).
/// A restore pays per statement (each commits: a redo log flush, 1.4 to
/// 2.3 ms on the bench's machine), so statements should be large; but the
/// larger this is against [`MAX_STATEMENT`], the more statements end at
/// that bound instead (e^-2 of them here), and those ends move when a row
/// before them grows (up to the next content-chosen end). At 512 KiB a
/// 1 GB table is about 2,200 statements (mariadb-dump writes 874; 256 KiB
/// would be 3,440).
pub const TARGET: u64 = 512 * 1024;

/// The largest statement written with more than one row: mariadb-dump's
/// default `net_buffer_length`, the bound of the statements it writes.
pub const MAX_STATEMENT: usize = 1024 * 1024 - 1025;

/// The largest INSERT statement read whole to be re-cut; a longer one
/// (mariadb-dump run with a larger `--net-buffer-length`, or one row
/// larger than this) passes through unchanged.
pub const MAX_INPUT_STATEMENT: usize = 2 * 1024 * 1024;

/// How much of a line at the start of a statement is read to tell what it
/// is (an INSERT, `DELIMITER`, `SET NAMES`, ...).
const HEAD_CAP: usize = 4096;

/// Client character sets in which every byte of a multi-byte character is
/// 0x80 or above, or that have none: `mysql_real_escape_string` escaped
/// every `\` and `'` byte of a value written in them.
const SAFE_CHARSETS: &[&str] = &[
    "utf8mb4", "utf8mb3", "utf8", "latin1", "latin2", "latin5", "latin7", "ascii", "binary",
    "cp1250", "cp1251", "cp1256", "cp1257", "cp850", "cp852", "cp866", "dec8", "geostd8", "greek",
    "hebrew", "hp8", "keybcs2", "koi8r", "koi8u", "macce", "macroman", "swe7", "armscii8",
    "tis620", "ujis", "eucjpms", "euckr", "gb2312",
];

/// What a pass over a dump did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// INSERT statements read and re-cut.
    pub statements_in: u64,
    /// INSERT statements written in their place.
    pub statements_out: u64,
    /// Rows of the statements re-cut.
    pub rows: u64,
    /// INSERT statements passed through unchanged: not of mariadb-dump's
    /// form, longer than [`MAX_INPUT_STATEMENT`], or cut short by the end
    /// of the stream.
    pub passed: u64,
    /// Why re-cutting stopped, when it did: every later byte passed
    /// through unchanged.
    pub stopped: Option<String>,
}

/// The push-style core: [`Splitter::push`] each chunk of the dump, then
/// [`Splitter::finish`]; what to write is appended to `out`.
#[derive(Debug)]
pub struct Splitter {
    mode: Mode,
    /// The line head (`Head`) or the INSERT statement (`Collect`) read.
    buf: Vec<u8>,
    /// Bytes to go through again before the caller's next ones, as `Lex`.
    replay: Vec<u8>,
    lex: Lexer,
    delimiter: Vec<u8>,
    enabled: bool,
    open: Option<Open>,
    /// Rows are separated by `,\n` (mariadb-dump 10.5 and later) rather
    /// than `,`: as the last statement read with two rows or more.
    sep_newline: bool,
    spans: Vec<(usize, usize)>,
    /// The head of the line being passed through (`Lex`).
    watched: Vec<u8>,
    statement_end: memmem::Finder<'static>,
    stats: Stats,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// At the start of a line that starts a statement: reading its head.
    Head,
    /// Reading an INSERT statement whole.
    Collect,
    /// Passing through, lexing, up to the next line that starts a statement.
    Lex,
}

/// The INSERT statement being written (not yet ended by `;\n`).
#[derive(Debug)]
struct Open {
    prefix: Vec<u8>,
    /// Its bytes so far.
    len: usize,
    /// The last row written chose to end it.
    cut: bool,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter::new()
    }
}

impl Splitter {
    pub fn new() -> Splitter {
        Splitter {
            mode: Mode::Head,
            buf: Vec::new(),
            replay: Vec::new(),
            lex: Lexer::default(),
            delimiter: b";".to_vec(),
            enabled: true,
            open: None,
            sep_newline: false,
            spans: Vec::new(),
            watched: Vec::new(),
            statement_end: memmem::Finder::new(b";\n").into_owned(),
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Takes all of `input`; appends to `out` what can be written so far.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let before = out.len();
        self.stats.bytes_in += input.len() as u64;
        self.run(input, out);
        self.stats.bytes_out += (out.len() - before) as u64;
    }

    /// The end of the dump: appends the rest to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let before = out.len();
        if !self.buf.is_empty() {
            if self.mode == Mode::Collect {
                self.stats.passed += 1;
            }
            self.close(out);
            self.replay = std::mem::take(&mut self.buf);
            self.mode = Mode::Lex;
            self.run(&[], out);
        }
        self.close(out);
        self.stats.bytes_out += (out.len() - before) as u64;
    }

    fn run(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        loop {
            while !self.replay.is_empty() {
                let replay = std::mem::take(&mut self.replay);
                let mut rest = &replay[..];
                while !rest.is_empty() {
                    let n = self.step(rest, out);
                    rest = &rest[n..];
                    if !self.replay.is_empty() {
                        // A pass-through while replaying: its bytes come first.
                        self.replay.extend_from_slice(rest);
                        break;
                    }
                }
            }
            if input.is_empty() {
                return;
            }
            let n = self.step(input, out);
            input = &input[n..];
        }
    }

    /// Takes a part of `input` (at least a byte), by the mode.
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        match self.mode {
            Mode::Lex => self.step_lex(input, out),
            Mode::Head => self.step_head(input, out),
            Mode::Collect => self.step_collect(input, out),
        }
    }

    fn step_lex(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let n = self.lex.run(input, &self.delimiter);
        if n < input.len() || (input[n - 1] == b'\n' && self.lex.ready()) {
            // n ends a line that leaves the lexer at a statement's start.
            self.mode = Mode::Head;
        }
        self.verbatim(&input[..n], out);
        self.watch(&input[..n]);
        n
    }

    /// Every line passed through is read (its first [`HEAD_CAP`] bytes)
    /// for what stops re-cutting ([`gate`]).
    fn watch(&mut self, mut bytes: &[u8]) {
        while self.enabled && !bytes.is_empty() {
            let (line, ends) = match memchr::memchr(b'\n', bytes) {
                Some(k) => (&bytes[..=k], true),
                None => (bytes, false),
            };
            let room = HEAD_CAP.saturating_sub(self.watched.len()).min(line.len());
            self.watched.extend_from_slice(&line[..room]);
            if ends {
                if let Some(why) = gate(&self.watched) {
                    self.enabled = false;
                    self.stats.stopped = Some(why);
                }
                self.watched.clear();
            }
            bytes = &bytes[line.len()..];
        }
    }

    fn step_head(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let room = (HEAD_CAP - self.buf.len()).min(input.len());
        let take = memchr::memchr(b'\n', &input[..room]).map_or(room, |k| k + 1);
        self.buf.extend_from_slice(&input[..take]);
        if self.buf.last() == Some(&b'\n') || self.buf.len() >= HEAD_CAP {
            self.classify(out);
        }
        take
    }

    /// A whole line head (or [`HEAD_CAP`] bytes of it) at a statement's start.
    fn classify(&mut self, out: &mut Vec<u8>) {
        if self.enabled
            && self.delimiter == b";"
            && (self.buf.starts_with(b"INSERT ") || self.buf.starts_with(b"REPLACE "))
        {
            self.mode = Mode::Collect;
            if self.buf.ends_with(b";\n") {
                self.recut(out);
            }
            return;
        }
        let line = std::mem::take(&mut self.buf);
        if let Some(d) = delimiter_command(&line) {
            // A client command, not SQL: the client does not lex it.
            self.verbatim(&line, out);
            self.delimiter = d;
            return;
        }
        // Lexed (and watched: `gate`) as the lines around it.
        self.mode = Mode::Lex;
        self.replay = line;
    }

    fn step_collect(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        if self.buf.last() == Some(&b';') && input[0] == b'\n' {
            self.buf.push(b'\n');
            self.recut(out);
            return 1;
        }
        if let Some(k) = self.statement_end.find(input)
            && self.buf.len() + k + 2 <= MAX_INPUT_STATEMENT
        {
            self.buf.extend_from_slice(&input[..k + 2]);
            self.recut(out);
            return k + 2;
        }
        let take = input
            .len()
            .min(MAX_INPUT_STATEMENT + 1 - self.buf.len().min(MAX_INPUT_STATEMENT));
        self.buf.extend_from_slice(&input[..take]);
        if self.buf.len() > MAX_INPUT_STATEMENT {
            self.pass(out);
        }
        take
    }

    /// `self.buf` is an INSERT statement ending with `;\n`: re-cut, or
    /// passed through.
    fn recut(&mut self, out: &mut Vec<u8>) {
        let buf = std::mem::take(&mut self.buf);
        let Some(parsed) = parse_insert(&buf, &mut self.spans) else {
            self.buf = buf;
            self.pass(out);
            return;
        };
        let prefix = &buf[..parsed.prefix];
        if let Some(nl) = parsed.newline {
            self.sep_newline = nl;
        }
        let sep: &[u8] = if self.sep_newline { b",\n" } else { b"," };
        if self.open.as_ref().is_some_and(|o| o.prefix != prefix) {
            self.close(out);
        }
        for &(a, b) in &self.spans {
            let row = &buf[a..b];
            match &mut self.open {
                Some(o) if !o.cut && o.len + sep.len() + row.len() + 2 <= MAX_STATEMENT => {
                    out.extend_from_slice(sep);
                    out.extend_from_slice(row);
                    o.len += sep.len() + row.len();
                }
                Some(o) => {
                    out.extend_from_slice(b";\n");
                    out.extend_from_slice(prefix);
                    out.extend_from_slice(row);
                    o.len = prefix.len() + row.len();
                    self.stats.statements_out += 1;
                }
                None => {
                    out.extend_from_slice(prefix);
                    out.extend_from_slice(row);
                    self.open = Some(Open {
                        prefix: prefix.to_vec(),
                        len: prefix.len() + row.len(),
                        cut: false,
                    });
                    self.stats.statements_out += 1;
                }
            }
            if let Some(o) = &mut self.open {
                o.cut = ends_statement(row);
            }
        }
        self.stats.rows += self.spans.len() as u64;
        self.stats.statements_in += 1;
        self.buf = buf;
        self.buf.clear();
        self.mode = Mode::Head;
    }

    /// The INSERT statement read (`self.buf`) goes through unchanged, and
    /// is lexed.
    fn pass(&mut self, out: &mut Vec<u8>) {
        self.stats.passed += 1;
        self.close(out);
        self.replay = std::mem::take(&mut self.buf);
        self.mode = Mode::Lex;
    }

    fn verbatim(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.close(out);
        out.extend_from_slice(bytes);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            out.extend_from_slice(b";\n");
        }
    }
}

/// Whether a statement ends after `row`: when its hash falls under
/// `len / TARGET` of the hash space, so that statements average [`TARGET`]
/// bytes whatever the rows' size (a row of [`TARGET`] or more always ends
/// one).
fn ends_statement(row: &[u8]) -> bool {
    let len = row.len() as u64;
    len >= TARGET || row_hash(row) < len * (u64::MAX / TARGET)
}

/// A 64-bit hash of a row's bytes (not cryptographic: cut points only).
fn row_hash(row: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = 0x6a09_e667_f3bc_c909 ^ row.len() as u64;
    let mut words = row.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(K).rotate_left(27);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut w = [0u8; 8];
        w[..tail.len()].copy_from_slice(tail);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(27);
    }
    // Every input bit moves every output bit.
    h ^= h >> 31;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 29;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 32)
}

/// An INSERT statement as mariadb-dump writes one.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    /// Its prefix's length, through `VALUES` and the space or newline after.
    prefix: usize,
    /// Its rows are separated by `,\n` (`Some(true)`), `,` (`Some(false)`);
    /// `None`: one row.
    newline: Option<bool>,
}

/// `stmt` (ending with `;\n`) parsed exactly, its rows' spans in `spans`;
/// `None` where anything is not as mariadb-dump writes it.
fn parse_insert(stmt: &[u8], spans: &mut Vec<(usize, usize)>) -> Option<Parsed> {
    spans.clear();
    let prefix = parse_prefix(stmt)?;
    let mut newline = None;
    let mut i = prefix;
    loop {
        let start = i;
        i = parse_row(stmt, i)?;
        spans.push((start, i));
        match stmt.get(i)? {
            b',' => {
                let nl = stmt.get(i + 1) == Some(&b'\n');
                if newline.is_some_and(|n| n != nl) {
                    return None;
                }
                newline = Some(nl);
                i += 1 + usize::from(nl);
            }
            b';' => {
                return (i + 2 == stmt.len() && stmt[i + 1] == b'\n')
                    .then_some(Parsed { prefix, newline });
            }
            _ => return None,
        }
    }
}

/// `INSERT [IGNORE ]INTO `t` [(`a`, `b`) ]VALUES` and a space or a newline,
/// before the first row's `(`: its length.
fn parse_prefix(s: &[u8]) -> Option<usize> {
    let mut i = if s.starts_with(b"INSERT ") {
        7
    } else if s.starts_with(b"REPLACE ") {
        8
    } else {
        return None;
    };
    'options: for _ in 0..4 {
        for word in [
            &b"IGNORE "[..],
            b"DELAYED ",
            b"LOW_PRIORITY ",
            b"HIGH_PRIORITY ",
        ] {
            if s[i..].starts_with(word) {
                i += word.len();
                continue 'options;
            }
        }
        break;
    }
    i = expect(s, i, b"INTO ")?;
    i = parse_ident(s, i)?;
    if s[i..].starts_with(b" (") {
        i += 2;
        loop {
            i = parse_ident(s, i)?;
            if s[i..].starts_with(b", ") {
                i += 2;
            } else {
                i = expect(s, i, b")")?;
                break;
            }
        }
    }
    i = expect(s, i, b" VALUES")?;
    match s.get(i)? {
        b' ' | b'\n' => {}
        _ => return None,
    }
    (s.get(i + 1) == Some(&b'(')).then_some(i + 1)
}

fn expect(s: &[u8], i: usize, what: &[u8]) -> Option<usize> {
    s[i..].starts_with(what).then_some(i + what.len())
}

/// A backquoted identifier (`` ` `` doubled within) at `i`: its end.
fn parse_ident(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'`') {
        return None;
    }
    let mut j = i + 1;
    loop {
        let k = j + memchr::memchr(b'`', &s[j..])?;
        if s.get(k + 1) == Some(&b'`') {
            j = k + 2;
        } else {
            return Some(k + 1);
        }
    }
}

/// `(value,value,...)` at `i`: its end.
fn parse_row(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'(') {
        return None;
    }
    let mut i = i + 1;
    loop {
        i = parse_value(s, i)?;
        match s.get(i)? {
            b',' => i += 1,
            b')' => return Some(i + 1),
            _ => return None,
        }
    }
}

/// One value at `i`, as mariadb-dump writes them: its end.
fn parse_value(s: &[u8], i: usize) -> Option<usize> {
    match *s.get(i)? {
        b'\'' => parse_string(s, i + 1),
        b'N' => expect(s, i, b"NULL"),
        b'_' => parse_string(s, expect(s, i, b"_binary '")?),
        b'0' if s.get(i + 1) == Some(&b'x') => {
            let end = digits(s, i + 2, u8::is_ascii_hexdigit);
            (end > i + 2).then_some(end)
        }
        b'-' | b'0'..=b'9' => parse_number(s, i),
        _ => None,
    }
}

/// The rest of a single-quoted string from `i` (after its `'`): its end.
fn parse_string(s: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let k = i + memchr::memchr2(b'\\', b'\'', &s[i..])?;
        if s[k] == b'\'' {
            return Some(k + 1);
        }
        // mysql_real_escape_string's escapes, and no others.
        match s.get(k + 1)? {
            b'0' | b'n' | b'r' | b'\\' | b'\'' | b'"' | b'Z' => i = k + 2,
            _ => return None,
        }
    }
}

/// `-?D+(.D+)?([eE][+-]?D+)?` at `i`: its end.
fn parse_number(s: &[u8], i: usize) -> Option<usize> {
    let mut j = i + usize::from(s[i] == b'-');
    let d = digits(s, j, u8::is_ascii_digit);
    if d == j {
        return None;
    }
    j = d;
    if s.get(j) == Some(&b'.') {
        let d = digits(s, j + 1, u8::is_ascii_digit);
        if d == j + 1 {
            return None;
        }
        j = d;
    }
    if matches!(s.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let d = digits(s, j, u8::is_ascii_digit);
        if d == j {
            return None;
        }
        j = d;
    }
    Some(j)
}

fn digits(s: &[u8], i: usize, is: fn(&u8) -> bool) -> usize {
    i + s[i..].iter().take_while(|b| is(b)).count()
}

/// `DELIMITER X` (the client's command, at a statement's start): `X`.
fn delimiter_command(line: &[u8]) -> Option<Vec<u8>> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.trim_ascii_start();
    if rest.len() < 10 || !rest[..9].eq_ignore_ascii_case(b"delimiter") {
        return None;
    }
    if !matches!(rest[9], b' ' | b'\t') {
        return None;
    }
    let arg = rest[10..].trim_ascii();
    let end = arg
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(arg.len());
    (end > 0).then(|| arg[..end].to_vec())
}

/// Why re-cutting must stop at this statement's head, if it must: it
/// mentions NO_BACKSLASH_ESCAPES, or sets the client's character set to one
/// not in [`SAFE_CHARSETS`].
fn gate(head: &[u8]) -> Option<String> {
    let up = head.to_ascii_uppercase();
    if memmem::find(&up, b"NO_BACKSLASH_ESCAPES").is_some() {
        return Some("a statement mentions NO_BACKSLASH_ESCAPES".into());
    }
    for at in memmem::find_iter(&up, b"SET NAMES ") {
        let name = charset_name(&head[at + 10..]);
        if !is_safe_charset(&name) {
            return Some(format!("the dump sets the character set `{name}`"));
        }
    }
    for at in memmem::find_iter(&up, b"CHARACTER_SET_CLIENT") {
        let rest = head[at + 20..].trim_ascii_start();
        let Some(value) = rest.strip_prefix(b"=") else {
            continue;
        };
        let value = value.trim_ascii_start();
        if value.starts_with(b"@") {
            continue;
        }
        let name = charset_name(value);
        if !is_safe_charset(&name) {
            return Some(format!("the dump sets the character set `{name}`"));
        }
    }
    None
}

fn charset_name(s: &[u8]) -> String {
    let s = s.trim_ascii_start();
    let s = s
        .strip_prefix(b"'")
        .or_else(|| s.strip_prefix(b"\""))
        .or_else(|| s.strip_prefix(b"`"))
        .unwrap_or(s);
    let end = s
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).to_ascii_lowercase()
}

fn is_safe_charset(name: &str) -> bool {
    SAFE_CHARSETS.contains(&name)
}

/// The `mariadb` client's view of the SQL around the INSERT statements:
/// whether a line starts a statement (outside strings and comments, after
/// the delimiter).
#[derive(Debug, Clone, Copy)]
struct Lexer {
    state: State,
    pend: Pend,
    /// Only whitespace and comments since the last delimiter.
    at_start: bool,
    /// Bytes of the delimiter matched so far.
    matched: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    /// In a string or identifier quoted by this byte.
    Quoted(u8),
    /// After a backslash in a `'` or `"` string.
    Escaped(u8),
    LineComment,
    BlockComment,
    /// After a `*` in a block comment.
    BlockStar,
}

/// Code bytes that may begin a comment, not yet decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pend {
    None,
    Dash,
    DashDash,
    Slash,
    SlashStar,
    SlashStarM,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer {
            state: State::Code,
            pend: Pend::None,
            at_start: true,
            matched: 0,
        }
    }
}

impl Lexer {
    /// At a statement's start, nothing pending.
    fn ready(&self) -> bool {
        self.state == State::Code && self.pend == Pend::None && self.at_start && self.matched == 0
    }

    /// Lexes `input` up to the end of the first line that leaves it
    /// [`Lexer::ready`], or all of it: the bytes taken.
    fn run(&mut self, input: &[u8], delimiter: &[u8]) -> usize {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                // Fast paths through long strings and comments.
                State::Quoted(q) => {
                    let found = if q == b'`' {
                        memchr::memchr(q, &input[i..])
                    } else {
                        memchr::memchr2(q, b'\\', &input[i..])
                    };
                    match found {
                        Some(k) => i += k,
                        None => return input.len(),
                    }
                }
                State::LineComment => match memchr::memchr(b'\n', &input[i..]) {
                    Some(k) => i += k,
                    None => return input.len(),
                },
                _ => {}
            }
            let b = input[i];
            i += 1;
            self.byte(b, delimiter);
            if b == b'\n' && self.ready() {
                return i;
            }
        }
        i
    }

    fn byte(&mut self, b: u8, delimiter: &[u8]) {
        match self.state {
            State::Code => self.code(b, delimiter),
            State::Quoted(q) => {
                if b == b'\\' && q != b'`' {
                    self.state = State::Escaped(q);
                } else if b == q {
                    self.state = State::Code;
                }
            }
            State::Escaped(q) => self.state = State::Quoted(q),
            State::LineComment => {
                if b == b'\n' {
                    self.state = State::Code;
                }
            }
            State::BlockComment => {
                if b == b'*' {
                    self.state = State::BlockStar;
                }
            }
            State::BlockStar => {
                self.state = match b {
                    b'/' => State::Code,
                    b'*' => State::BlockStar,
                    _ => State::BlockComment,
                };
            }
        }
    }

    fn code(&mut self, b: u8, delimiter: &[u8]) {
        match std::mem::replace(&mut self.pend, Pend::None) {
            Pend::None => {}
            Pend::Dash => {
                if b == b'-' {
                    self.pend = Pend::DashDash;
                    return;
                }
                self.plain(b'-', delimiter);
            }
            Pend::DashDash => {
                // `--` and a space or control character begins a comment.
                if b <= b' ' {
                    if b != b'\n' {
                        self.state = State::LineComment;
                    }
                    return;
                }
                self.plain(b'-', delimiter);
                self.plain(b'-', delimiter);
            }
            Pend::Slash => {
                if b == b'*' {
                    self.pend = Pend::SlashStar;
                    return;
                }
                self.plain(b'/', delimiter);
            }
            was @ (Pend::SlashStar | Pend::SlashStarM) => {
                if b == b'!' {
                    // `/*!` and `/*M!`: executable comments; their text is SQL.
                    self.at_start = false;
                    self.matched = 0;
                    return;
                }
                if b == b'M' && was == Pend::SlashStar {
                    self.pend = Pend::SlashStarM;
                    return;
                }
                self.state = State::BlockComment;
                self.byte(b, delimiter);
                return;
            }
        }
        match b {
            b'-' => self.pend = Pend::Dash,
            b'/' => self.pend = Pend::Slash,
            b'#' => self.state = State::LineComment,
            b'\'' | b'"' | b'`' => {
                self.at_start = false;
                self.matched = 0;
                self.state = State::Quoted(b);
            }
            _ => self.plain(b, delimiter),
        }
    }

    /// A code byte that begins no comment or string.
    fn plain(&mut self, b: u8, delimiter: &[u8]) {
        if b == delimiter[self.matched] {
            self.matched += 1;
        } else {
            self.matched = usize::from(b == delimiter[0]);
        }
        if self.matched == delimiter.len() {
            self.matched = 0;
            self.at_start = true;
        } else if self.matched > 0 || !b.is_ascii_whitespace() {
            self.at_start = false;
        }
    }
}

/// A dump read through [`Splitter`]: the same SQL with its INSERT
/// statements re-cut. Wraps the dump's stream (a child's stdout in a
/// `BufReader`).
#[derive(Debug)]
pub struct Resplit<R: BufRead> {
    inner: R,
    core: Splitter,
    out: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: BufRead> Resplit<R> {
    pub fn new(inner: R) -> Resplit<R> {
        Resplit {
            inner,
            core: Splitter::new(),
            out: Vec::new(),
            at: 0,
            done: false,
        }
    }

    /// What it did so far (complete once `read` returned 0).
    pub fn stats(&self) -> &Stats {
        self.core.stats()
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: BufRead> Read for Resplit<R> {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.out.len() {
                let n = dst.len().min(self.out.len() - self.at);
                dst[..n].copy_from_slice(&self.out[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.done || dst.is_empty() {
                return Ok(0);
            }
            self.out.clear();
            self.at = 0;
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                self.core.finish(&mut self.out);
                self.done = true;
            } else {
                let n = chunk.len();
                self.core.push(chunk, &mut self.out);
                self.inner.consume(n);
            }
        }
    }
}

/// Copies the dump `input` to `output` with its INSERT statements re-cut.
pub fn resplit(mut input: impl BufRead, mut output: impl Write) -> io::Result<Stats> {
    let mut core = Splitter::new();
    let mut out = Vec::new();
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        core.push(chunk, &mut out);
        input.consume(n);
        output.write_all(&out)?;
        out.clear();
    }
    core.finish(&mut out);
    output.write_all(&out)?;
    output.flush()?;
    Ok(core.stats().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_as_mariadb_dump_writes_them() {
        let ok: [&[u8]; 6] = [
            b"INSERT INTO `t` VALUES (1);\n",
            b"INSERT INTO `t` VALUES\n(1);\n",
            b"REPLACE INTO `t` VALUES (1);\n",
            b"INSERT IGNORE INTO `a``b VALUES (` VALUES (1);\n",
            b"INSERT DELAYED IGNORE INTO `t` (`a`, `b c`) VALUES (1);\n",
            b"INSERT INTO `t;\nx` VALUES (1);\n",
        ];
        for s in ok {
            let at = parse_prefix(s).expect("a prefix");
            assert_eq!(s[at], b'(', "{}", String::from_utf8_lossy(s));
        }
        let not: [&[u8]; 7] = [
            b"INSERT INTO t VALUES (1);\n",
            b"INSERT INTO \"t\" VALUES (1);\n",
            b"INSERT INTO `t` (`a`,`b`) VALUES (1);\n",
            b"INSERT INTO `t` VALUES(1);\n",
            b"INSERT  INTO `t` VALUES (1);\n",
            b"INSERT INTO `t` SELECT 1;\n",
            b"INSERT INTO `t VALUES (1);\n",
        ];
        for s in not {
            assert_eq!(parse_prefix(s), None, "{}", String::from_utf8_lossy(s));
        }
    }

    #[test]
    fn values_as_mariadb_dump_writes_them() {
        let mut spans = Vec::new();
        let s = b"INSERT INTO `t` VALUES (1,-2.5,1e20,-1.5e-20,NULL,'',0x00FF,_binary 'a\\'b','\\0\\n\\r\\\\\\'\\\"\\Z'),(2,'),(',NULL,0,0,0,0,0,0);\n";
        let p = parse_insert(s, &mut spans).expect("parses");
        assert_eq!(p.newline, Some(false));
        assert_eq!(spans.len(), 2);
        assert_eq!(&s[spans[1].0..spans[1].1], b"(2,'),(',NULL,0,0,0,0,0,0)");
        for bad in [
            &b"INSERT INTO `t` VALUES (1,'\\t');\n"[..],
            b"INSERT INTO `t` VALUES (1,0x);\n",
            b"INSERT INTO `t` VALUES (1,+1);\n",
            b"INSERT INTO `t` VALUES (1,1.);\n",
            b"INSERT INTO `t` VALUES (1,1e);\n",
            b"INSERT INTO `t` VALUES (1,null);\n",
            b"INSERT INTO `t` VALUES ();\n",
            b"INSERT INTO `t` VALUES (1),\n(2),(3);\n",
            b"INSERT INTO `t` VALUES (1);\n\n",
            b"INSERT INTO `t` VALUES (1)\n",
        ] {
            assert_eq!(
                parse_insert(bad, &mut spans),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_lexer_finds_statement_starts() {
        let delim = b";";
        let ready_after = |text: &[u8]| {
            let mut l = Lexer::default();
            let mut i = 0;
            while i < text.len() {
                i += l.run(&text[i..], delim);
            }
            l.ready()
        };
        assert!(ready_after(b"/*!40101 SET NAMES utf8mb4 */;\n"));
        assert!(ready_after(b"-- a comment ' with a quote\n"));
        assert!(ready_after(b"SELECT 1; -- done\n"));
        assert!(ready_after(b"/* a; 'b */ SELECT 'x;\\';y'; # c\n"));
        assert!(!ready_after(b"/*M!999999\\- enable the sandbox mode */ \n"));
        assert!(!ready_after(b"SELECT 'a;\n"));
        assert!(!ready_after(b"SELECT `a;\n"));
        assert!(!ready_after(b"SELECT 1 /* ;\n"));
        assert!(!ready_after(b"SELECT 1 -- ;\n"));
        assert!(ready_after(b"SELECT 1 --;\n"));
        assert!(!ready_after(b"SELECT 1\n"));
    }

    #[test]
    fn delimiter_commands_and_gates() {
        assert_eq!(delimiter_command(b"DELIMITER ;;\n"), Some(b";;".to_vec()));
        assert_eq!(delimiter_command(b"delimiter //\n"), Some(b"//".to_vec()));
        assert_eq!(delimiter_command(b"DELIMITER\n"), None);
        assert_eq!(delimiter_command(b"DELIMITERS ;\n"), None);
        assert_eq!(gate(b"/*!40101 SET NAMES utf8mb4 */;\n"), None);
        assert_eq!(
            gate(b"/*!40101 SET character_set_client = @saved_cs_client */;\n"),
            None
        );
        assert_eq!(
            gate(b"/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"),
            None
        );
        assert!(gate(b"/*!40101 SET NAMES big5 */;\n").is_some());
        assert!(gate(b"SET character_set_client = 'cp932';\n").is_some());
        assert!(gate(b"/*!50003 SET sql_mode = 'NO_BACKSLASH_ESCAPES' */ ;\n").is_some());
    }

    #[test]
    fn cuts_average_the_target_whatever_the_row_size() {
        for len in [40usize, 150, 2000, 60_000] {
            let rows = 32_000_000 / len;
            let cuts = (0..rows)
                .filter(|i| {
                    let mut row = format!("({i},'").into_bytes();
                    row.resize(len - 2, b'x');
                    row.extend_from_slice(b"')");
                    ends_statement(&row)
                })
                .count();
            let expected = (rows * len) as f64 / TARGET as f64;
            assert!(
                (cuts as f64) > expected * 0.5 && (cuts as f64) < expected * 1.5 + 3.0,
                "rows of {len}: {cuts} cuts, about {expected:.0} expected"
            );
        }
        assert!(ends_statement(&vec![b'x'; TARGET as usize]));
    }
}
