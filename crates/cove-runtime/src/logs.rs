//! The log store: every replica's output on disk, one file per replica,
//! size-bounded, read back merged in time order.
//!
//! A line is `<RFC 3339 UTC time> <out|err> <text>`. A file that reaches
//! [`MAX_FILE_BYTES`] is rotated to `<name>.log.1` (one previous file kept),
//! so a replica's logs never take more than twice that. The directory is
//! 0700 and the files 0600: replicas print what they like, values read
//! from private files included.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::output::Stream;

/// Size at which a replica's log file is rotated.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// One stored line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `service-replica`.
    pub source: String,
    pub stream: Stream,
    pub text: String,
}

/// Appends lines to `<dir>/<source>.log`, rotating at `max_bytes`.
pub struct Writer {
    dir: PathBuf,
    max_bytes: u64,
    open: std::collections::HashMap<String, (fs_err::File, u64)>,
}

impl Writer {
    /// `dir` is made 0700 (or checked: see [`crate::private::make_dir`]);
    /// files in it are 0600, never opened through a link.
    pub fn new(dir: &Path, max_bytes: u64) -> std::io::Result<Writer> {
        crate::private::make_dir(dir)?;
        Ok(Writer {
            dir: dir.to_path_buf(),
            max_bytes,
            open: Default::default(),
        })
    }

    /// The directory of the logs of the app whose state lives in `state_dir`.
    pub fn dir_of(state_dir: &Path) -> PathBuf {
        state_dir.join("logs")
    }

    /// Appends one line.
    pub fn append(
        &mut self,
        source: &str,
        stream: Stream,
        text: &str,
        at: SystemTime,
    ) -> std::io::Result<()> {
        let path = self.dir.join(format!("{source}.log"));
        if self
            .open
            .get(source)
            .is_none_or(|(_, size)| *size >= self.max_bytes)
        {
            self.open.remove(source);
            if fs_err::metadata(&path).is_ok_and(|m| m.len() >= self.max_bytes) {
                fs_err::rename(&path, self.dir.join(format!("{source}.log.1")))?;
            }
            let f = crate::private::append_file(&path)?;
            let size = f.metadata()?.len();
            self.open.insert(source.to_string(), (f, size));
        }
        let Some((f, size)) = self.open.get_mut(source) else {
            return Ok(());
        };
        let tag = match stream {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        };
        let line = format!("{} {tag} {text}\n", format_time(at));
        f.write_all(line.as_bytes())?;
        *size += line.len() as u64;
        Ok(())
    }
}

/// Parses the lines of one log file (`source` names its replica).
pub fn parse_lines(source: &str, text: &str) -> Vec<Entry> {
    text.lines().filter_map(|l| parse_line(source, l)).collect()
}

/// Whether the file of replica `source` belongs to one of `wanted`
/// (`api` matches `api-1`, `api-2`; `api-2` only itself); all when empty.
pub fn selected(source: &str, wanted: &[String]) -> bool {
    wanted.is_empty()
        || wanted
            .iter()
            .any(|s| source == s || source.rsplit_once('-').is_some_and(|(svc, _)| svc == s))
}

/// The log files of the `wanted` replicas (see [`selected`]) as
/// `(source, path)`; with `rotated`, the `.log.1` files too.
pub fn files(dir: &Path, wanted: &[String], rotated: bool) -> Vec<(String, PathBuf)> {
    let Ok(listing) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    listing
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let old = name.strip_suffix(".log.1").filter(|_| rotated);
            let source = old.or_else(|| name.strip_suffix(".log"))?.to_string();
            selected(&source, wanted).then(|| (source, e.path()))
        })
        .collect()
}

/// Reads the logs of `sources` (all when empty), merged in time order.
pub fn read(dir: &Path, sources: &[String]) -> std::io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut files = files(dir, sources, true);
    // Rotated files first, so equal times keep their order.
    files.sort_by_key(|(_, p)| !p.to_string_lossy().ends_with(".1"));
    for (source, path) in files {
        entries.extend(parse_lines(&source, &fs_err::read_to_string(&path)?));
    }
    entries.sort_by_key(|e| e.time_ms);
    Ok(entries)
}

/// Follows log files: [`Tail::poll`] returns the whole lines appended since
/// the last call (or since [`Tail::new`]), merged in time order. Files that
/// appear later are read from their start; a rotated file from its start.
pub struct Tail {
    dir: PathBuf,
    wanted: Vec<String>,
    offsets: std::collections::HashMap<PathBuf, u64>,
}

impl Tail {
    /// Starts at the current end of the `wanted` replicas' files.
    pub fn new(dir: &Path, wanted: &[String]) -> Tail {
        let offsets = files(dir, wanted, false)
            .into_iter()
            .map(|(_, path)| {
                let len = fs_err::metadata(&path).map(|m| m.len()).unwrap_or(0);
                (path, len)
            })
            .collect();
        Tail {
            dir: dir.to_path_buf(),
            wanted: wanted.to_vec(),
            offsets,
        }
    }

    /// Lines appended since the last call.
    pub fn poll(&mut self) -> std::io::Result<Vec<Entry>> {
        use std::io::{Read as _, Seek as _};
        let mut fresh = Vec::new();
        for (source, path) in files(&self.dir, &self.wanted, false) {
            let len = fs_err::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let at = self.offsets.entry(path.clone()).or_insert(0);
            if len < *at {
                *at = 0; // rotated
            }
            if len == *at {
                continue;
            }
            let mut f = fs_err::File::open(&path)?;
            f.seek(std::io::SeekFrom::Start(*at))?;
            let mut text = String::new();
            f.read_to_string(&mut text)?;
            // Only whole lines; a partial last line waits for the next call.
            let whole = text.rfind('\n').map_or(0, |i| i + 1);
            *at += whole as u64;
            fresh.extend(parse_lines(&source, &text[..whole]));
        }
        fresh.sort_by_key(|e| e.time_ms);
        Ok(fresh)
    }
}

fn parse_line(source: &str, line: &str) -> Option<Entry> {
    let mut parts = line.splitn(3, ' ');
    let time_ms = parse_time(parts.next()?)?;
    let stream = match parts.next()? {
        "out" => Stream::Stdout,
        "err" => Stream::Stderr,
        _ => return None,
    };
    Some(Entry {
        time_ms,
        source: source.to_string(),
        stream,
        text: parts.next().unwrap_or_default().to_string(),
    })
}

/// `2026-11-23T21:07:18.123Z`.
pub fn format_time(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Milliseconds since the epoch of a time written by [`format_time`].
pub fn parse_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[10] != b'T' || b[23] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let days = days_from_civil(n(0..4)? as i64, n(5..7)? as u32, n(8..10)? as u32);
    let secs = days as u64 * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?;
    Some(secs * 1000 + n(20..23)?)
}

// Howard Hinnant's civil-date algorithms.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `--since`: a duration back from `now` (`10m`) or a time (`2026-11-23T21:00:00.000Z`).
pub fn since(arg: &str, now: SystemTime) -> Option<u64> {
    if let Some(t) = parse_time(arg) {
        return Some(t);
    }
    let d: Duration = cove_spec::units::parse_duration(arg).ok()?;
    let now_ms = now.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(now_ms.saturating_sub(d.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        for ms in [0u64, 1_763_932_038_123, 951_782_400_000, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(parse_time(&format_time(t)), Some(ms), "{}", format_time(t));
        }
        assert_eq!(
            format_time(UNIX_EPOCH + Duration::from_millis(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(parse_time("nonsense"), None);
    }

    #[test]
    fn merged_in_time_order_filtered_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::new(dir.path(), 60).unwrap();
        let t = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        w.append("api-1", Stream::Stdout, "a1", t(1000)).unwrap();
        w.append("db-1", Stream::Stderr, "d1", t(1500)).unwrap();
        w.append("api-1", Stream::Stdout, "a2 with spaces", t(2000))
            .unwrap();
        w.append("api-2", Stream::Stdout, "b1", t(1200)).unwrap();
        let all: Vec<String> = read(dir.path(), &[])
            .unwrap()
            .into_iter()
            .map(|e| e.text)
            .collect();
        assert_eq!(all, ["a1", "b1", "d1", "a2 with spaces"]);
        let api: Vec<String> = read(dir.path(), &["api".into()])
            .unwrap()
            .into_iter()
            .map(|e| e.source)
            .collect();
        assert_eq!(api, ["api-1", "api-2", "api-1"]);
        for i in 0..10 {
            w.append("api-1", Stream::Stdout, &format!("x{i}"), t(3000 + i))
                .unwrap();
        }
        assert!(
            dir.path().join("api-1.log.1").is_file(),
            "rotated past 60 bytes"
        );
        let size: u64 = ["api-1.log", "api-1.log.1"]
            .iter()
            .map(|f| fs_err::metadata(dir.path().join(f)).unwrap().len())
            .sum();
        assert!(size <= 2 * 60 + 40, "bounded: {size}");
    }

    #[test]
    fn since_takes_durations_and_times() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(since("10s", now), Some(990_000));
        assert_eq!(since("1970-01-01T00:00:01.000Z", now), Some(1000));
        assert_eq!(since("yesterday", now), None);
    }
}
