//! `sqlsplit`: the rows of a re-cut dump are the input's, in order, and
//! everything else is the input's byte for byte; a second pass changes
//! nothing; what does not parse exactly, or follows a statement that makes
//! backslashes literal or a character set unsafe, passes through; a row
//! that changed moves no statement but its own.
//!
//! Dumps are written here as mariadb-dump writes them (its three layouts,
//! cut at `net_buffer_length` as it cuts), and read back by a decoder of
//! this file's own, written apart from the module's parser.

use std::collections::HashSet;

use cove_backup::sqlsplit::{MAX_STATEMENT, Resplit, Stats, TARGET, resplit};
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Null,
    Int(i64),
    Float(String),
    Str(Vec<u8>),
    Hex(Vec<u8>),
}

/// How mariadb-dump lays rows out.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// `VALUES (..),(..);` on one line (before 10.5).
    OneLine,
    /// `VALUES` and a newline, a row a line (10.11).
    RowLines,
    /// `VALUES (..),` and a row a line after (10.11, `--complete-insert`).
    FirstOnPrefix,
}

/// `mysql_real_escape_string` in a character set without multi-byte
/// sequences below 0x80.
fn escape(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in bytes {
        match b {
            0 => out.extend_from_slice(b"\\0"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            b'"' => out.extend_from_slice(b"\\\""),
            0x1a => out.extend_from_slice(b"\\Z"),
            _ => out.push(b),
        }
    }
    out
}

fn quote_ident(name: &[u8]) -> Vec<u8> {
    let mut out = vec![b'`'];
    for &b in name {
        out.push(b);
        if b == b'`' {
            out.push(b'`');
        }
    }
    out.push(b'`');
    out
}

fn row_text(row: &[Value]) -> Vec<u8> {
    let mut out = vec![b'('];
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match v {
            Value::Null => out.extend_from_slice(b"NULL"),
            Value::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Value::Float(f) => out.extend_from_slice(f.as_bytes()),
            Value::Str(s) => {
                out.push(b'\'');
                out.extend(escape(s));
                out.push(b'\'');
            }
            // mariadb-dump writes an empty value as '' (with --hex-blob too).
            Value::Hex(h) if h.is_empty() => out.extend_from_slice(b"''"),
            Value::Hex(h) => {
                out.extend_from_slice(b"0x");
                for b in h {
                    out.extend_from_slice(format!("{b:02X}").as_bytes());
                }
            }
        }
    }
    out.push(b')');
    out
}

struct Table {
    name: Vec<u8>,
    columns: Option<Vec<Vec<u8>>>,
    rows: Vec<Vec<Value>>,
}

/// A dump as mariadb-dump writes it: header, and each table's structure,
/// its rows in INSERT statements cut at `net` bytes, its footer.
fn dump(tables: &[Table], net: usize, layout: Layout) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19\n--\n\n/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n/*!40101 SET NAMES utf8mb4 */;\n/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n");
    for t in tables {
        let q = quote_ident(&t.name);
        out.extend_from_slice(b"\n--\n-- Table structure for table ");
        out.extend_from_slice(&q);
        out.extend_from_slice(b"\n--\n\nDROP TABLE IF EXISTS ");
        out.extend_from_slice(&q);
        out.extend_from_slice(b";\nCREATE TABLE ");
        out.extend_from_slice(&q);
        out.extend_from_slice(b" (\n  `id` int(11) NOT NULL COMMENT 'INSERT INTO x VALUES (1),(2);',\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB;\n\nLOCK TABLES ");
        out.extend_from_slice(&q);
        out.extend_from_slice(b" WRITE;\n");
        let mut prefix = b"INSERT INTO ".to_vec();
        prefix.extend_from_slice(&q);
        if let Some(cols) = &t.columns {
            prefix.extend_from_slice(b" (");
            for (i, c) in cols.iter().enumerate() {
                if i > 0 {
                    prefix.extend_from_slice(b", ");
                }
                prefix.extend(quote_ident(c));
            }
            prefix.push(b')');
        }
        let (values, sep): (&[u8], &[u8]) = match layout {
            Layout::OneLine => (b" VALUES ", b","),
            Layout::RowLines => (b" VALUES\n", b",\n"),
            Layout::FirstOnPrefix => (b" VALUES ", b",\n"),
        };
        prefix.extend_from_slice(values);
        // mariadb-dump's cutting (dump_table).
        let init = prefix.len() + 4;
        let mut total = net;
        let mut started = false;
        for row in &t.rows {
            let text = row_text(row);
            let len = 2 + text.len();
            if total + len < net {
                total += len;
                out.extend_from_slice(sep);
            } else {
                if started {
                    out.extend_from_slice(b";\n");
                }
                started = true;
                out.extend_from_slice(&prefix);
                total = len + init;
            }
            out.extend(text);
        }
        if started {
            out.extend_from_slice(b";\n");
        }
        out.extend_from_slice(b"UNLOCK TABLES;\n");
    }
    out.extend_from_slice(b"/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n\n-- Dump completed\n");
    out
}

/// What a dump does, read apart from the module: the rows of its INSERT
/// statements, each with its statement's prefix, in order; and its other
/// text, in order.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    rows: Vec<(Vec<u8>, Vec<Value>)>,
    other: Vec<u8>,
    /// Each INSERT statement's text.
    statements: Vec<Vec<u8>>,
}

fn decode(dump: &[u8]) -> Decoded {
    let mut d = Decoded {
        rows: Vec::new(),
        other: Vec::new(),
        statements: Vec::new(),
    };
    let mut i = 0;
    while i < dump.len() {
        let line_end = dump[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(dump.len(), |k| i + k + 1);
        if !dump[i..].starts_with(b"INSERT INTO `") {
            d.other.extend_from_slice(&dump[i..line_end]);
            i = line_end;
            continue;
        }
        // The prefix: the identifier, columns, " VALUES" and one byte.
        let mut k = i + 13;
        loop {
            if dump[k] == b'`' {
                if dump[k + 1] != b'`' {
                    break;
                }
                k += 1;
            }
            k += 1;
        }
        let at = k - i
            + dump[k..]
                .windows(8)
                .position(|w| w == b" VALUES " || w == b" VALUES\n")
                .expect("VALUES");
        let prefix = dump[i..i + at + 8].to_vec();
        let mut j = i + at + 8;
        loop {
            assert_eq!(dump[j], b'(', "a row at {j}");
            j += 1;
            let mut row = Vec::new();
            loop {
                let (v, next) = decode_value(dump, j);
                row.push(v);
                j = next;
                let b = dump[j];
                j += 1;
                if b == b')' {
                    break;
                }
                assert_eq!(b, b',');
            }
            d.rows.push((prefix.clone(), row));
            match dump[j] {
                b',' => {
                    j += 1;
                    if dump[j] == b'\n' {
                        j += 1;
                    }
                }
                b';' => {
                    assert_eq!(dump[j + 1], b'\n');
                    j += 2;
                    break;
                }
                other => panic!("after a row: {other}"),
            }
        }
        d.statements.push(dump[i..j].to_vec());
        i = j;
    }
    d
}

fn decode_value(s: &[u8], i: usize) -> (Value, usize) {
    if s[i..].starts_with(b"NULL") {
        return (Value::Null, i + 4);
    }
    if s[i..].starts_with(b"0x") {
        let mut j = i + 2;
        let mut bytes = Vec::new();
        while s[j].is_ascii_hexdigit() {
            let hex = std::str::from_utf8(&s[j..j + 2]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            j += 2;
        }
        return (Value::Hex(bytes), j);
    }
    if s[i] == b'\'' {
        let mut j = i + 1;
        let mut bytes = Vec::new();
        loop {
            match s[j] {
                b'\'' => return (Value::Str(bytes), j + 1),
                b'\\' => {
                    bytes.push(match s[j + 1] {
                        b'0' => 0,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b'Z' => 0x1a,
                        other => other,
                    });
                    j += 2;
                }
                other => {
                    bytes.push(other);
                    j += 1;
                }
            }
        }
    }
    let end = (i..s.len())
        .find(|&k| s[k] == b',' || s[k] == b')')
        .unwrap();
    let text = std::str::from_utf8(&s[i..end]).unwrap();
    match text.parse::<i64>() {
        Ok(n) => (Value::Int(n), end),
        Err(_) => (Value::Float(text.to_string()), end),
    }
}

fn run(input: &[u8]) -> (Vec<u8>, Stats) {
    let mut out = Vec::new();
    let stats = resplit(input, &mut out).unwrap();
    (out, stats)
}

/// The output against the input: the same rows and other text; a second
/// pass the same bytes; no statement of two rows or more over the bound.
fn check(input: &[u8]) -> (Vec<u8>, Stats) {
    let (out, stats) = run(input);
    let (a, b) = (decode(input), decode(&out));
    assert_eq!(a.rows.len(), b.rows.len(), "row count");
    assert!(a.rows == b.rows, "the same rows, in order");
    assert!(a.other == b.other, "the same other text");
    for s in &b.statements {
        assert!(
            s.len() <= MAX_STATEMENT || !s.windows(2).any(|w| w == b"),("),
            "a statement of {} bytes with more than one row",
            s.len()
        );
    }
    let (again, _) = run(&out);
    assert!(again == out, "a second pass changes nothing");
    // The same through the reader, a byte at a time from a small buffer.
    let mut through = Vec::new();
    std::io::copy(
        &mut Resplit::new(std::io::BufReader::with_capacity(7, input)),
        &mut through,
    )
    .unwrap();
    assert!(through == out, "Resplit reads what resplit writes");
    (out, stats)
}

/// The bench's table: `id, md5, md5, n, 40 letters`; `grow(id)`: its `n`
/// gains digits, its note `extra` letters.
fn bench_rows(n: i64, grow: impl Fn(i64) -> bool, extra: usize) -> Vec<Vec<Value>> {
    (1..=n)
        .map(|id| {
            let h = format!(
                "{:032x}",
                (id as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c)
            );
            let h2 = format!(
                "{:032x}",
                (id as u128 * 31).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            );
            let grown = grow(id);
            let n = id % 1000 + if grown { 1000 } else { 0 };
            let note = 40 + if grown { extra } else { 0 };
            vec![
                Value::Int(id),
                Value::Str(h.as_bytes()[..32].to_vec()),
                Value::Str(h2.as_bytes()[..32].to_vec()),
                Value::Int(n),
                Value::Str(vec![b'A' + (id % 26) as u8; note]),
            ]
        })
        .collect()
}

fn table(name: &[u8], rows: Vec<Vec<Value>>) -> Table {
    Table {
        name: name.to_vec(),
        columns: None,
        rows,
    }
}

#[test]
fn adversarial_values_keep_their_rows() {
    let strings: Vec<&[u8]> = vec![
        b"'),('",
        b"\\'",
        b"\\\\'",
        b"a\nb\r\nc",
        b";\n",
        b"`",
        b"``),(``",
        b"\xff\xfe\x00\x1a\x80 not utf-8",
        b"\xf0\x9f\x98\x80 emoji",
        b"INSERT INTO `t` VALUES (1),(2);",
        b"",
        b"\\",
    ];
    let mut rows = Vec::new();
    for (i, s) in strings.iter().enumerate() {
        let hex = if s.is_empty() {
            Value::Str(Vec::new())
        } else {
            Value::Hex(s.to_vec())
        };
        rows.push(vec![
            Value::Int(i as i64),
            Value::Str(s.to_vec()),
            hex,
            Value::Null,
            Value::Float("-1.5e-20".into()),
        ]);
    }
    let every_byte: Vec<u8> = (0..=255u8).collect();
    rows.push(vec![
        Value::Int(-7),
        Value::Str(every_byte.clone()),
        Value::Hex(every_byte),
        Value::Str(b"x".to_vec()),
        Value::Float("1e20".into()),
    ]);
    for layout in [Layout::OneLine, Layout::RowLines, Layout::FirstOnPrefix] {
        let tables = [
            Table {
                name: b"we ird VALUES (`x`) ;".to_vec(),
                columns: Some(vec![b"a`b".to_vec(), b"c, d".to_vec(), b"e".to_vec()]),
                rows: rows.clone(),
            },
            table(b"plain", rows.clone()),
        ];
        // Statements of a few rows: many joins.
        let input = dump(&tables, 300, layout);
        let (out, stats) = check(&input);
        assert!(stats.statements_in > 4, "{stats:?}");
        assert_eq!(stats.passed, 0, "{stats:?}");
        assert_ne!(out, input, "joined: the statements changed");
    }
}

#[test]
fn lines_that_are_not_inserts_pass_through() {
    let input = b"-- a comment with INSERT INTO `t` VALUES (1),(2);\nSELECT 1;\nCREATE TABLE `t` (a int);\n\n/*!40101 SET NAMES utf8mb4 */;\nno newline at the end";
    let (out, stats) = run(input);
    assert_eq!(out, input);
    assert_eq!(stats.statements_in, 0);
}

/// Each of these dumps has INSERT statements that must not be touched:
/// the output is the input.
#[test]
fn what_is_not_exactly_an_insert_passes_through() {
    let two = |s: &str| format!("{s}\n{s}\n");
    let cases: Vec<String> = vec![
        // Values of forms mariadb-dump does not write.
        two("INSERT INTO `t` VALUES (1,b'0101'),(2,X'ab');"),
        two("INSERT INTO `t` VALUES (1,'a\\tb'),(2,'c');"),
        two("INSERT INTO `t` VALUES (1,'it''s'),(2,'c');"),
        two("INSERT INTO `t` VALUES (1, 2),(3,4);"),
        two("INSERT INTO `t` VALUES (1,.5),(2,3);"),
        two("INSERT INTO `t` VALUES (1,'unterminated),(2,3);"),
        two("INSERT INTO `t` VALUES (1),(2) ;"),
        // --compatible=ansi: double-quoted names.
        two("INSERT INTO \"t\" VALUES (1),(2);"),
        two("INSERT INTO t VALUES (1),(2);"),
        two("INSERT INTO `db`.`t` VALUES (1),(2);"),
        two("insert into `t` values (1),(2);"),
        // The statement is not at a line's start of a statement.
        "SELECT 'a\nINSERT INTO `t` VALUES (1),(2);\nINSERT INTO `t` VALUES (3),(4);\n';\n".into(),
        "/* a comment\nINSERT INTO `t` VALUES (1),(2);\nINSERT INTO `t` VALUES (3),(4);\n*/\n".into(),
        // A trigger's body, under DELIMITER ;;.
        "DELIMITER ;;\n/*!50003 CREATE*/ /*!50003 TRIGGER `tr` AFTER INSERT ON `a` FOR EACH ROW BEGIN\nINSERT INTO `t` VALUES (1),(2);\nINSERT INTO `t` VALUES (3),(4);\nEND */;;\nDELIMITER ;\n".into(),
        // Backslashes made literal; an unsafe or unknown character set.
        format!(
            "/*!50003 SET sql_mode = 'NO_BACKSLASH_ESCAPES' */ ;\n{}",
            two("INSERT INTO `t` VALUES (1,'a\\'),(2,'b');")
        ),
        format!(
            "/*!40101 SET NAMES gbk */;\n{}",
            two("INSERT INTO `t` VALUES (1,'a'),(2,'b');")
        ),
        format!(
            "/*!40101 SET character_set_client = sjis */;\n{}",
            two("INSERT INTO `t` VALUES (1,'a'),(2,'b');")
        ),
        format!(
            "SET NAMES something_new;\n{}",
            two("INSERT INTO `t` VALUES (1,'a'),(2,'b');")
        ),
        // Cut short by the end of the stream.
        "INSERT INTO `t` VALUES (1),(2);\nINSERT INTO `t` VALUES (3),(4)".into(),
        "INSERT INTO `t` VALUES (1),(2);\nINSERT INTO `t` VALUES (3),(4);".into(),
    ];
    for input in cases {
        let (out, stats) = run(input.as_bytes());
        assert!(
            out == input.as_bytes(),
            "changed:\n{input}\n---\n{}\n{stats:?}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// The same statements, re-cut, after the character set is set back (a
/// trigger's `SET character_set_client = @saved_cs_client`).
#[test]
fn a_saved_character_set_set_back_is_no_reason_to_stop() {
    let rows = bench_rows(20_000, |_| false, 0);
    let mut input = b"/*!40101 SET character_set_client = @saved_cs_client */;\n/*!40101 SET NAMES utf8mb4 COLLATE utf8mb4_bin */;\n".to_vec();
    input.extend(dump(
        &[table(b"items", rows)],
        1024 * 1024 - 1025,
        Layout::RowLines,
    ));
    let (out, stats) = check(&input);
    assert_eq!(stats.stopped, None);
    assert!(stats.statements_in > 1 && out != input, "{stats:?}");
}

#[test]
fn a_row_over_the_bound_is_a_statement_of_its_own() {
    let mut rows = bench_rows(30_000, |_| false, 0);
    let big = MAX_STATEMENT + 1000;
    rows.insert(100, vec![Value::Int(0), Value::Str(vec![b'x'; big])]);
    rows.insert(20_000, vec![Value::Int(0), Value::Str(vec![b'y'; 3 << 20])]);
    for layout in [Layout::OneLine, Layout::RowLines] {
        let input = dump(&[table(b"t", rows.clone())], 1024 * 1024 - 1025, layout);
        let (out, stats) = check(&input);
        let d = decode(&out);
        let alone = d.statements.iter().filter(|s| s.len() > big).count();
        assert_eq!(alone, 2, "each large row alone");
        // The 3 MiB row's statement is over what is read whole: as it was.
        assert_eq!(stats.passed, 1, "{stats:?}");
        assert!(d.statements.iter().any(|s| s.len() > 3 << 20));
    }
}

/// The bench's cases: one row in the middle grew (by a digit and 500
/// bytes), or 1 % of the rows, contiguous, grew by a digit or three.
/// mariadb-dump's statements after them all move; the re-cut ones stay but
/// those that hold the changed rows and one more.
#[test]
fn grown_rows_change_only_the_statements_around_them() {
    let n = 120_000;
    let net = 1024 * 1024 - 1025;
    let one = |id: i64| id == n / 3;
    let contiguous = |id: i64| id > n / 3 && id <= n / 3 + n / 100;
    let statements = |d: &[u8]| -> HashSet<Vec<u8>> { decode(d).statements.into_iter().collect() };
    for layout in [Layout::OneLine, Layout::RowLines] {
        let before = dump(&[table(b"items", bench_rows(n, |_| false, 0))], net, layout);
        let (out_before, stats) = check(&before);
        let cut_before = statements(&out_before);
        // Statements average about TARGET (these rows' hashes give 0.8 to
        // 1.2 of it; the bound is loose).
        let avg = out_before.len() as u64 / stats.statements_out;
        assert!(
            avg > TARGET / 3 && avg < TARGET * 3,
            "{avg} bytes a statement"
        );
        for (grow, extra, most) in [(&one as &dyn Fn(i64) -> bool, 500, 2), (&contiguous, 0, 3)] {
            let after = dump(&[table(b"items", bench_rows(n, grow, extra))], net, layout);
            let own = statements(&after);
            let moved = own.difference(&statements(&before)).count();
            assert!(
                moved > 5,
                "mariadb-dump's own: {moved} of {} changed",
                own.len()
            );

            let (out_after, _) = check(&after);
            let cut_after = statements(&out_after);
            let changed = cut_after.difference(&cut_before).count();
            assert!(
                changed <= most,
                "re-cut: {changed} of {} changed ({layout:?})",
                cut_after.len()
            );
        }
    }
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Int),
        (any::<i32>(), 0u32..1000, -30i32..30)
            .prop_map(|(a, b, e)| Value::Float(format!("{a}.{b}e{e}"))),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Str),
        prop::collection::vec(
            prop::sample::select(b"'\\\n\r\0\x1a\"(),;`x ".to_vec()),
            0..20
        )
        .prop_map(Value::Str),
        prop::collection::vec(any::<u8>(), 1..20).prop_map(Value::Hex),
    ]
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::OneLine),
        Just(Layout::RowLines),
        Just(Layout::FirstOnPrefix)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_dump_keeps_its_rows_and_text(
        names in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..12), 1..4),
        rows in prop::collection::vec(prop::collection::vec(value(), 3), 0..200),
        net in 64usize..4096,
        layout in layout(),
        columns in any::<bool>(),
    ) {
        let tables: Vec<Table> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Table {
                name: name.clone(),
                columns: columns.then(|| vec![b"a".to_vec(), name.clone(), b"c".to_vec()]),
                rows: rows.iter().skip(i).cloned().collect(),
            })
            .collect();
        let input = dump(&tables, net, layout);
        let (_, stats) = check(&input);
        prop_assert_eq!(stats.passed, 0);
        prop_assert_eq!(stats.bytes_in, input.len() as u64);
    }

    #[test]
    fn text_without_inserts_passes_through(
        lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..30),
    ) {
        let mut input = Vec::new();
        for l in &lines {
            input.extend(l.iter().copied().filter(|&b| b != b'\n'));
            input.push(b'\n');
        }
        let (out, _) = run(&input);
        prop_assert_eq!(out, input);
    }

    /// One byte of a dump changed anywhere: whatever the output is, it is
    /// the input with INSERT statements re-cut at row boundaries, or the
    /// input itself.
    #[test]
    fn a_damaged_dump_is_re_cut_or_left(
        rows in prop::collection::vec(prop::collection::vec(value(), 2), 1..60),
        at in any::<prop::sample::Index>(),
        byte in prop::sample::select(b"'\\),(;\n`x0".to_vec()),
        layout in layout(),
    ) {
        let mut input = dump(&[table(b"t", rows)], 200, layout);
        let i = at.index(input.len());
        input[i] = byte;
        let (out, _) = run(&input);
        // Taking away every statement end and row separator from both
        // leaves the same bytes: nothing else moved.
        let strip = |d: &[u8]| -> Vec<u8> {
            let s = String::from_utf8_lossy(d)
                .replace(";\nINSERT INTO `t` VALUES\n", ",\n")
                .replace(";\nINSERT INTO `t` VALUES ", ",");
            s.replace(",\n", ",").into_bytes()
        };
        prop_assert!(strip(&out) == strip(&input));
    }
}
