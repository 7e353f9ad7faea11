//! `cove_backup::sqlsplit` on real mariadb-dump output: a MariaDB under
//! `cove up` holds adversarial data (quotes and backslashes inside strings,
//! `),(` and `;` and newlines in values, BLOBs of every byte value, NULLs,
//! emoji, a table named with a space and `VALUES (`, rows from a few bytes
//! to 1.25 MB); the host's mariadb-dump dumps it (as cove does, and with
//! `--complete-insert --hex-blob`), the dump goes through `resplit`, and
//! the `mariadb` client loads the result into a new database: every
//! table's `CHECKSUM TABLE` and row count are the source's, and the dump
//! was re-cut (its bytes differ).

use std::io::{BufReader, BufWriter};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::backup_app::BackupApp;
use crate::daemon::{Out, run_bounded};
use crate::recipes::require;

const ROOT: &str = "split-maria-secret-5e21";

const APP: &str = r#"
services:
  db:
    image: mariadb:11
    environment:
      MARIADB_ROOT_PASSWORD: "split-maria-secret-5e21"
      MARIADB_DATABASE: src
"#;

const WEIRD: &str = "we ird VALUES (`x`);";

/// `text` as a hex literal (no quoting to get wrong in the test's SQL).
fn hex(text: &[u8]) -> String {
    if text.is_empty() {
        return "''".into();
    }
    let mut s = String::from("0x");
    for b in text {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// `mariadb` (the client, with the option file `opts`) on `db`: its stdout.
fn sql(opts: &Path, db: &str, sql: &str) -> String {
    let out = run_bounded(
        Command::new("mariadb")
            .arg(format!("--defaults-file={}", opts.display()))
            .args(["-N", "-B", db, "-e", sql])
            .stdin(Stdio::null()),
        300,
    );
    assert_eq!(out.code, Some(0), "mariadb -e {sql}: {out}");
    out.stdout
}

/// Every table's row count and `CHECKSUM TABLE ... EXTENDED`, by name.
fn tables(opts: &Path, db: &str) -> Vec<(String, String, String)> {
    let names = sql(opts, db, "SHOW TABLES");
    let mut all = Vec::new();
    for name in names.lines() {
        let q = format!("`{}`", name.replace('`', "``"));
        let count = sql(opts, db, &format!("SELECT COUNT(*) FROM {q}"));
        let sum = sql(opts, db, &format!("CHECKSUM TABLE {q} EXTENDED"));
        let sum = sum.trim_end().rsplit('\t').next().unwrap().to_string();
        all.push((name.to_string(), count.trim().to_string(), sum));
    }
    all.sort();
    all
}

fn dump(opts: &Path, file: &Path, extra: &[&str]) -> Out {
    run_bounded(
        Command::new("mariadb-dump")
            .arg(format!("--defaults-file={}", opts.display()))
            .args(["--single-transaction", "--max-allowed-packet=64M"])
            .args(extra)
            .arg(format!("--result-file={}", file.display()))
            .arg("src")
            .stdin(Stdio::null()),
        300,
    )
}

#[test]
fn a_resplit_mariadb_dump_loads_the_same_tables() {
    require(&["mariadb", "mariadb-dump"]);
    let f = BackupApp::new(APP);
    let addr = f.sh("db", "printf '%s %s' \"$HOST\" \"$PORT\"");
    let (host, port) = addr.split_once(' ').expect("HOST PORT");
    let dir = tempfile::tempdir().unwrap();
    let opts = dir.path().join("client.cnf");
    // The password in an option file of mode 0600, never on a command line.
    fs_err::write(&opts, "").unwrap();
    fs_err::set_permissions(&opts, std::fs::Permissions::from_mode(0o600)).unwrap();
    fs_err::write(
        &opts,
        format!("[client]\nuser=root\npassword={ROOT}\nhost={host}\nport={port}\nprotocol=tcp\n"),
    )
    .unwrap();

    // The bench's rows: enough for mariadb-dump's statements and ours to
    // be cut many times.
    sql(
        &opts,
        "src",
        "CREATE TABLE items (id BIGINT PRIMARY KEY, a VARCHAR(32), b VARCHAR(32), n INT, note VARCHAR(40)) ENGINE=InnoDB; \
         INSERT INTO items SELECT seq, MD5(seq), MD5(seq * 31), seq % 1000, REPEAT(CHAR(65 + seq % 26), 40) FROM seq_1_to_60000",
    );
    // Adversarial values, in a table whose name has a space and `VALUES (`.
    let weird = format!("`{}`", WEIRD.replace('`', "``"));
    sql(
        &opts,
        "src",
        &format!(
            "CREATE TABLE {weird} (id INT PRIMARY KEY, s VARCHAR(300) CHARACTER SET utf8mb4, \
             b LONGBLOB, x DOUBLE, d DECIMAL(10,2), bt BIT(8), dt DATETIME, g POINT) ENGINE=InnoDB"
        ),
    );
    let strings: [&[u8]; 12] = [
        b"'),('",
        b"\\'",
        b"\\\\'",
        b"a\nb\r\nc\\n",
        b";\nINSERT INTO `items` VALUES (1),(2);\n",
        b"`",
        b"\"quoted\" and ``),(``",
        b"\x00\x1a\\Z\\0",
        "emoji \u{1F600} and \u{00E9}".as_bytes(),
        b"",
        b"\\",
        b"DELIMITER ;;",
    ];
    let every_byte: Vec<u8> = (0..=255u8).collect();
    for (i, s) in strings.iter().enumerate() {
        sql(
            &opts,
            "src",
            &format!(
                "INSERT INTO {weird} VALUES ({i}, CONVERT({} USING utf8mb4), {}, {}, {}, {}, '2026-12-07 10:00:00', POINT({i}, -{i}))",
                hex(s),
                hex(if i % 2 == 0 { &every_byte } else { s }),
                if i % 3 == 0 {
                    "NULL".to_string()
                } else {
                    format!("-1.5e-{i}")
                },
                if i % 4 == 0 {
                    "NULL".to_string()
                } else {
                    format!("{i}.25")
                },
                if i % 5 == 0 {
                    "NULL".to_string()
                } else {
                    format!("b'{:08b}'", i * 19)
                },
            ),
        );
    }
    sql(
        &opts,
        "src",
        &format!(
            "INSERT INTO {weird} (id, s) VALUES (100, NULL); \
             INSERT INTO {weird} (id, s, b) SELECT 1000 + seq, CONCAT('row '', ', seq, ' ),(\\\\'), RANDOM_BYTES(1 + seq % 1024) FROM seq_1_to_4000"
        ),
    );
    // Rows of very different sizes: a few bytes to 1.25 MB (over the bound
    // of a statement: one of its own).
    sql(
        &opts,
        "src",
        "CREATE TABLE sizes (id INT PRIMARY KEY, v LONGTEXT) ENGINE=InnoDB; \
         INSERT INTO sizes SELECT seq, REPEAT(CHAR(97 + seq % 26), seq * seq % 9000) FROM seq_1_to_3000; \
         INSERT INTO sizes SELECT 10000 + seq, REPEAT('z', 300000) FROM seq_1_to_5; \
         INSERT INTO sizes VALUES (20000, REPEAT('\\'),(', 250000))",
    );
    let source = tables(&opts, "src");
    assert_eq!(source.len(), 3, "{source:?}");

    for (n, extra) in [
        &[][..],
        &["--complete-insert", "--hex-blob", "--insert-ignore"][..],
    ]
    .into_iter()
    .enumerate()
    {
        let original = dir.path().join(format!("dump{n}.sql"));
        let out = dump(&opts, &original, extra);
        assert_eq!(out.code, Some(0), "mariadb-dump {extra:?}: {out}");
        let resplit = dir.path().join(format!("resplit{n}.sql"));
        let stats = cove_backup::sqlsplit::resplit(
            BufReader::new(fs_err::File::open(&original).unwrap()),
            BufWriter::new(fs_err::File::create(&resplit).unwrap()),
        )
        .unwrap();
        let (a, b) = (
            fs_err::read(&original).unwrap(),
            fs_err::read(&resplit).unwrap(),
        );
        assert!(a != b, "the dump was re-cut: {stats:?}");
        assert_eq!(stats.passed, 0, "every INSERT parsed: {stats:?}");
        assert_eq!(stats.stopped, None, "{stats:?}");
        assert!(
            stats.statements_out > 10 && stats.statements_in > 5,
            "{stats:?}"
        );
        if n == 1 {
            let column_list = format!("INSERT IGNORE INTO {weird} (`id`, `s`,");
            assert!(
                b.windows(column_list.len())
                    .any(|w| w == column_list.as_bytes()),
                "a column list in the statements"
            );
        }

        let target = format!("dst{n}");
        sql(&opts, "src", &format!("CREATE DATABASE {target}"));
        let load = run_bounded(
            Command::new("mariadb")
                .arg(format!("--defaults-file={}", opts.display()))
                .arg(&target)
                .stdin(Stdio::from(
                    fs_err::File::open(&resplit).unwrap().into_file(),
                )),
            600,
        );
        assert_eq!(load.code, Some(0), "mariadb < resplit: {load}");
        assert_eq!(tables(&opts, &target), source, "{extra:?}");
    }
}
