//! Retention: which of a service's backups a `keep` policy keeps
//! ([`select`], a pure function), removing the others' snapshots
//! ([`Store::forget`]) and the data no snapshot uses any more
//! ([`Store::prune`]), so the space is freed.
//!
//! The policy is restic's `forget --keep-*`: going from the newest backup
//! to the oldest, `last: N` keeps the N newest; `hourly: N` the newest of
//! each of the last N hours that have a backup, and so on for days, ISO
//! weeks, months and years (periods in the host's time zone). A backup
//! may be kept by several rules. Two more are never removed, whatever the
//! policy: the newest *verified* backup (a restore drill succeeded with
//! it) and the backup just taken.
//!
//! Pruning and storing exclude each other through a lock file beside the
//! repository's files (`cove.lock`, [`RepoLock`]): a prune deletes every
//! pack no index lists, which a backup being stored has written but not
//! yet indexed. Packs a backup killed while storing left behind are
//! exactly those: the next prune removes them.

use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rustic_core::{LimitOption, PruneOptions};

use crate::{Backup, Error, Result, Store, latest_versions, shown_id};

/// How many backups to keep, per rule (restic's `--keep-*`). Nothing set:
/// every backup is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Policy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
}

impl Policy {
    /// Whether it keeps every backup (no rule set).
    pub fn keeps_all(&self) -> bool {
        *self == Policy::default()
    }
}

/// Why a backup is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Among the newest `last`.
    Last,
    /// The newest of its hour, among the last `hourly` hours.
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    /// The newest backup a restore drill succeeded with.
    NewestVerified,
    /// The backup just taken.
    JustTaken,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Last => "last",
            Reason::Hourly => "hourly",
            Reason::Daily => "daily",
            Reason::Weekly => "weekly",
            Reason::Monthly => "monthly",
            Reason::Yearly => "yearly",
            Reason::NewestVerified => "newest verified",
            Reason::JustTaken => "just taken",
        }
    }
}

/// A backup as [`select`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub time: Timestamp,
    pub verified: bool,
}

/// What [`select`] decided for one backup: kept for `reasons`, removed
/// when there is none.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub id: String,
    pub time: Timestamp,
    pub reasons: Vec<Reason>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Which of `entries` (one service's backups, in any order) `policy`
/// keeps, with periods in `tz`; newest first. The newest verified backup
/// and `just_taken` are always kept. A policy with no rule keeps all.
pub fn select(
    entries: &[Entry],
    policy: &Policy,
    just_taken: Option<&str>,
    tz: &TimeZone,
) -> Vec<Decision> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    // Newest first; equal times by id, so the choice is stable.
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    type Bucket = fn(&jiff::Zoned, &str) -> String;
    let rules: [(Option<u32>, Reason, Bucket); 6] = [
        (policy.last, Reason::Last, |_, id| id.to_string()),
        (policy.hourly, Reason::Hourly, |z, _| {
            z.strftime("%Y-%m-%d %H").to_string()
        }),
        (policy.daily, Reason::Daily, |z, _| {
            z.strftime("%Y-%m-%d").to_string()
        }),
        (policy.weekly, Reason::Weekly, |z, _| {
            let w = z.date().iso_week_date();
            format!("{}-W{}", w.year(), w.week())
        }),
        (policy.monthly, Reason::Monthly, |z, _| {
            z.strftime("%Y-%m").to_string()
        }),
        (policy.yearly, Reason::Yearly, |z, _| {
            z.strftime("%Y").to_string()
        }),
    ];
    let mut left: Vec<Option<u32>> = rules.iter().map(|r| r.0).collect();
    let mut last_bucket: Vec<Option<String>> = vec![None; rules.len()];
    let newest_verified = sorted.iter().find(|e| e.verified).map(|e| e.id.clone());
    let keep_all = policy.keeps_all();
    sorted
        .into_iter()
        .map(|e| {
            let zoned = e.time.to_zoned(tz.clone());
            let mut reasons = Vec::new();
            for (i, (_, reason, bucket)) in rules.iter().enumerate() {
                let Some(n) = left[i] else { continue };
                if n == 0 {
                    continue;
                }
                let b = bucket(&zoned, &e.id);
                if last_bucket[i].as_deref() != Some(b.as_str()) {
                    reasons.push(*reason);
                    last_bucket[i] = Some(b);
                    left[i] = Some(n - 1);
                }
            }
            if keep_all && reasons.is_empty() {
                reasons.push(Reason::Last);
            }
            if newest_verified.as_deref() == Some(e.id.as_str()) {
                reasons.push(Reason::NewestVerified);
            }
            if just_taken == Some(e.id.as_str()) {
                reasons.push(Reason::JustTaken);
            }
            Decision {
                id: e.id.clone(),
                time: e.time,
                reasons,
            }
        })
        .collect()
}

/// A backup and what retention decided for it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Planned {
    pub backup: Backup,
    pub reasons: Vec<Reason>,
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Pack files removed (unused, or left unindexed by a killed backup).
    pub packs: u64,
    /// Bytes of the repository's `data` before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// The repository's lock file, held shared while a backup is stored and
/// exclusive while snapshots are removed and data pruned. Let go when
/// dropped.
pub(crate) struct RepoLock(#[allow(dead_code)] Option<fs_err::File>);

impl RepoLock {
    pub(crate) fn take(store: &Store, exclusive: bool) -> Result<RepoLock> {
        let Some(path) = store.lock_path() else {
            return Ok(RepoLock(None));
        };
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir).map_err(|e| Error::new("the repository's lock", e))?;
        }
        let file = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::new("the repository's lock", e))?;
        let taken = if exclusive {
            file.file().lock()
        } else {
            file.file().lock_shared()
        };
        taken.map_err(|e| Error::new(&format!("locking {}", path.display()), e))?;
        Ok(RepoLock(Some(file)))
    }
}

impl Store {
    /// What `policy` keeps of the backups of `project`/`environment`/
    /// `service` in this repository (newest first), `just_taken` kept
    /// whatever it says; periods in `tz`.
    pub fn retention(
        &self,
        project: &str,
        environment: &str,
        service: &str,
        policy: &Policy,
        just_taken: Option<&str>,
        tz: &TimeZone,
    ) -> Result<Vec<Planned>> {
        let backups: Vec<Backup> = self
            .list()?
            .into_iter()
            .filter(|b| {
                b.meta.project == project
                    && b.meta.environment == environment
                    && b.meta.service == service
            })
            .collect();
        let mut entries = Vec::with_capacity(backups.len());
        for b in &backups {
            let time: Timestamp = b.time.parse().map_err(|e| {
                Error::other(format!(
                    "backup {}: its time `{}` cannot be read: {e}",
                    b.id, b.time
                ))
            })?;
            entries.push(Entry {
                id: b.id.clone(),
                time,
                verified: b.verified.is_some(),
            });
        }
        Ok(select(&entries, policy, just_taken, tz)
            .into_iter()
            .filter_map(|d| {
                let backup = backups.iter().find(|b| b.id == d.id)?.clone();
                Some(Planned {
                    backup,
                    reasons: d.reasons,
                })
            })
            .collect())
    }

    /// Removes the backups `ids` (every version of each: see
    /// [`Store::mark_verified`]). Their data stays until [`Store::prune`].
    /// The number of snapshot files removed.
    pub fn forget(&self, ids: &[String]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let _lock = RepoLock::take(self, true)?;
        let repo = self.open()?;
        let snaps = repo
            .get_all_snapshots()
            .map_err(|e| Error::new("listing snapshots", e))?;
        // Refuse to touch a backup that is not there: ids come from a list.
        let shown: Vec<String> = latest_versions(snaps.clone())
            .iter()
            .map(shown_id)
            .collect();
        if let Some(missing) = ids.iter().find(|id| !shown.contains(id)) {
            return Err(Error::other(format!(
                "no backup `{missing}` in {}",
                self.dir.display()
            )));
        }
        let gone: Vec<_> = snaps
            .iter()
            .filter(|s| ids.contains(&shown_id(s)))
            .map(|s| s.id)
            .collect();
        repo.delete_snapshots(&gone)
            .map_err(|e| Error::new("removing snapshots", e))?;
        Ok(gone.len())
    }

    /// Removes the data no backup uses any more: packs only removed
    /// backups used, and packs a backup killed while storing left
    /// unindexed. At once (restic's `--instant-delete`: no other program
    /// may use the repository meanwhile; cove's own backups wait for it).
    pub fn prune(&self) -> Result<Pruned> {
        let _lock = RepoLock::take(self, true)?;
        let before = dir_bytes(&self.dir.join("data"));
        let repo = self.open()?;
        let opts = PruneOptions::default()
            .instant_delete(true)
            .max_unused(LimitOption::Percentage(5));
        let plan = repo
            .prune_plan(&opts)
            .map_err(|e| Error::new("planning the prune", e))?;
        let packs = plan.stats.packs_to_delete.remove + plan.stats.packs_unref;
        repo.prune(&opts, plan)
            .map_err(|e| Error::new("pruning the repository", e))?;
        Ok(Pruned {
            packs,
            bytes_before: before,
            bytes_after: dir_bytes(&self.dir.join("data")),
        })
    }
}

/// Bytes of the files under `dir` (0 when it cannot be read).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(times: &[(&str, &str, bool)]) -> Vec<Entry> {
        times
            .iter()
            .map(|(id, t, v)| Entry {
                id: id.to_string(),
                time: t.parse().unwrap(),
                verified: *v,
            })
            .collect()
    }

    fn kept(d: &[Decision]) -> Vec<&str> {
        d.iter()
            .filter(|d| d.keep())
            .map(|d| d.id.as_str())
            .collect()
    }

    #[test]
    fn last_keeps_the_newest_n_and_always_the_newest_verified() {
        let e = entries(&[
            ("a", "2026-01-01T00:00:00Z", false),
            ("b", "2026-01-02T00:00:00Z", true),
            ("c", "2026-01-03T00:00:00Z", false),
            ("d", "2026-01-04T00:00:00Z", false),
            ("e", "2026-01-05T00:00:00Z", false),
        ]);
        let p = Policy {
            last: Some(2),
            ..Policy::default()
        };
        let d = select(&e, &p, None, &TimeZone::UTC);
        assert_eq!(kept(&d), ["e", "d", "b"]);
        assert_eq!(d[3].reasons, [Reason::NewestVerified]);
        assert!(!d[2].keep());
        // Newest first, the removed ones too.
        let all: Vec<&str> = d.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(all, ["e", "d", "c", "b", "a"]);
        // Only the newest verified one is kept for being verified.
        let mut e2 = e.clone();
        e2[0].verified = true;
        assert_eq!(
            kept(&select(&e2, &p, None, &TimeZone::UTC)),
            ["e", "d", "b"]
        );
        // A verified one among the kept: no extra.
        e2[3].verified = true;
        assert_eq!(kept(&select(&e2, &p, None, &TimeZone::UTC)), ["e", "d"]);
    }

    #[test]
    fn the_backup_just_taken_is_kept_whatever_the_policy() {
        // Its clock was behind: it is not among the newest by time.
        let e = entries(&[
            ("old", "2025-01-01T00:00:00Z", false),
            ("x", "2026-01-02T00:00:00Z", false),
            ("y", "2026-01-03T00:00:00Z", false),
        ]);
        let p = Policy {
            last: Some(1),
            ..Policy::default()
        };
        assert_eq!(
            kept(&select(&e, &p, Some("old"), &TimeZone::UTC)),
            ["y", "old"]
        );
        let zero = Policy {
            last: Some(0),
            ..Policy::default()
        };
        assert_eq!(kept(&select(&e, &zero, Some("x"), &TimeZone::UTC)), ["x"]);
    }

    #[test]
    fn no_rule_keeps_everything() {
        let e = entries(&[
            ("a", "2026-01-01T00:00:00Z", false),
            ("b", "2026-01-02T00:00:00Z", false),
        ]);
        assert_eq!(
            kept(&select(&e, &Policy::default(), None, &TimeZone::UTC)),
            ["b", "a"]
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_of_the_last_n_days_with_a_backup() {
        // Several a day; a day (03) without any; fabricated times.
        let e = entries(&[
            ("1a", "2026-03-01T01:00:00Z", false),
            ("1b", "2026-03-01T23:00:00Z", false),
            ("2a", "2026-03-02T08:00:00Z", false),
            ("2b", "2026-03-02T09:00:00Z", false),
            ("2c", "2026-03-02T10:00:00Z", false),
            ("4a", "2026-03-04T00:30:00Z", false),
            ("5a", "2026-03-05T12:00:00Z", false),
            ("5b", "2026-03-05T18:00:00Z", false),
        ]);
        let p = Policy {
            daily: Some(3),
            ..Policy::default()
        };
        let d = select(&e, &p, None, &TimeZone::UTC);
        assert_eq!(kept(&d), ["5b", "4a", "2c"]);
        assert!(
            d.iter()
                .filter(|d| d.keep())
                .all(|d| d.reasons == [Reason::Daily])
        );
        // Days are the zone's: in New York (UTC-5), 1b (18:00 on the 1st)
        // and 2a..2c (03:00-05:00 on the 2nd), 4a is 19:30 on the 3rd.
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(kept(&select(&e, &p, None, &ny)), ["5b", "4a", "2c"]);
        let p4 = Policy {
            daily: Some(5),
            ..Policy::default()
        };
        assert_eq!(
            kept(&select(&e, &p4, None, &TimeZone::UTC)),
            ["5b", "4a", "2c", "1b"]
        );
        assert_eq!(
            kept(&select(&e, &p4, None, &ny)),
            ["5b", "4a", "2c", "1b", "1a"]
        );
    }

    #[test]
    fn rules_add_up_as_restic_does() {
        // A backup every day at noon, Jan 1 to Mar 31 2026.
        let mut e = Vec::new();
        let mut day = jiff::civil::date(2026, 1, 1);
        while day <= jiff::civil::date(2026, 3, 31) {
            let t = day.at(12, 0, 0, 0).to_zoned(TimeZone::UTC).unwrap();
            e.push(Entry {
                id: day.to_string(),
                time: t.timestamp(),
                verified: false,
            });
            day = day.tomorrow().unwrap();
        }
        let p = Policy {
            last: Some(2),
            daily: Some(3),
            weekly: Some(2),
            monthly: Some(3),
            yearly: Some(1),
            ..Policy::default()
        };
        let d = select(&e, &p, None, &TimeZone::UTC);
        assert_eq!(
            kept(&d),
            [
                "2026-03-31",
                "2026-03-30",
                "2026-03-29",
                "2026-02-28",
                "2026-01-31"
            ]
        );
        let first = &d[0];
        assert_eq!(
            first.reasons,
            [
                Reason::Last,
                Reason::Daily,
                Reason::Weekly,
                Reason::Monthly,
                Reason::Yearly
            ]
        );
        // 2026-03-29 is a Sunday: the newest of ISO week 13 (03-30 and
        // 03-31 are week 14's), so weekly keeps it too.
        assert_eq!(d[2].reasons, [Reason::Daily, Reason::Weekly]);
    }
}
