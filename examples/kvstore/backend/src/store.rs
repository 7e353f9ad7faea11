//! The data: one LMDB environment (a directory holding `data.mdb` and
//! `lock.mdb`) with one database, `kv`, mapping UTF-8 keys to bytes. Every
//! write is its own transaction, committed (and synced to disk) before the
//! call is answered, so an answered `Put` survives a restart or a crash.
//!
//! LMDB calls block; the service runs them on Tokio's blocking threads.

use std::path::{Path, PathBuf};

use heed::types::{Bytes, Str};
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions};

/// Size of the memory map: the most data the store can hold. Only what is
/// written takes disk space.
const MAP_SIZE: usize = 1 << 30;

/// What went wrong with the data directory or LMDB.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created (the error names it).
    #[error(transparent)]
    Dir(#[from] std::io::Error),
    /// LMDB refused to open the environment in `dir`.
    #[error("cannot open the LMDB environment in {dir}: {source}")]
    Open { dir: PathBuf, source: heed::Error },
    /// A transaction failed.
    #[error("LMDB: {0}")]
    Lmdb(#[from] heed::Error),
}

/// The key-value store; cheap to clone (the environment is shared).
#[derive(Clone)]
pub struct Store {
    env: Env,
    db: Database<'static, Str, Bytes>,
}

impl Store {
    /// Opens the store in `dir`, creating the directory and the database
    /// when they are missing.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        fs_err::create_dir_all(dir)?;
        let env = open_env(dir).map_err(|source| StoreError::Open {
            dir: dir.to_path_buf(),
            source,
        })?;
        let txn = env.write_txn()?;
        let db = env
            .create_databases_and_commit(txn, |opener, txn| {
                opener
                    .create_database::<Str, Bytes>(txn, Some("kv"))
                    .map(CommitOrAbort::<_, ()>::Commit)
            })?
            .unwrap_commit();
        Ok(Store { env, db })
    }

    /// Stores `value` under `key`; whether a value was replaced.
    pub fn put(&self, key: &str, value: &[u8]) -> Result<bool, StoreError> {
        let mut txn = self.env.write_txn()?;
        let replaced = self.db.get(&txn, key)?.is_some();
        self.db.put(&mut txn, key, value)?;
        txn.commit()?;
        Ok(replaced)
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.env.read_txn()?;
        Ok(self.db.get(&txn, key)?.map(<[u8]>::to_vec))
    }

    /// Removes `key`; whether it was there.
    pub fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut txn = self.env.write_txn()?;
        let deleted = self.db.delete(&mut txn, key)?;
        txn.commit()?;
        Ok(deleted)
    }

    /// At most `limit` entries whose key starts with `prefix`, in key order.
    pub fn list(&self, prefix: &str, limit: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let txn = self.env.read_txn()?;
        // LMDB cannot seek to an empty key: no prefix is a plain scan.
        let entries = if prefix.is_empty() {
            self.db
                .iter(&txn)?
                .take(limit)
                .collect::<Result<Vec<_>, _>>()?
        } else {
            let found = self.db.prefix_iter(&txn, prefix)?.take(limit);
            found.collect::<Result<Vec<_>, _>>()?
        };
        Ok(entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect())
    }

    /// How many entries the store holds.
    pub fn len(&self) -> Result<u64, StoreError> {
        let txn = self.env.read_txn()?;
        Ok(self.db.len(&txn)?)
    }
}

/// Opens the LMDB environment in `dir` (which exists).
#[allow(unsafe_code)]
fn open_env(dir: &Path) -> heed::Result<Env> {
    let mut options = EnvOpenOptions::new();
    options.map_size(MAP_SIZE).max_dbs(1);
    // SAFETY: heed marks this `unsafe` because the memory map is undefined
    // behaviour if the file under it is changed other than through LMDB.
    // Here the directory is this program's own data: nothing but LMDB
    // writes `data.mdb`. It is opened without `NO_LOCK`, so LMDB's lock file
    // keeps any other process that opens it consistent, and heed makes a
    // second opening in the same process share the first (`main` opens it
    // once; the tests reopen it).
    unsafe { options.open(dir) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_list_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        {
            let store = Store::open(&data).unwrap();
            assert!(!store.put("b", b"2").unwrap());
            assert!(store.put("b", b"two").unwrap(), "replaced");
            store.put("a", b"1").unwrap();
            store.put("ab", b"").unwrap();
            assert_eq!(store.get("b").unwrap().as_deref(), Some(&b"two"[..]));
            assert_eq!(store.get("ab").unwrap().as_deref(), Some(&b""[..]));
            assert_eq!(store.get("c").unwrap(), None);
            let keys = |p, n| -> Vec<String> {
                store
                    .list(p, n)
                    .unwrap()
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect()
            };
            assert_eq!(keys("a", 10), ["a", "ab"]);
            assert_eq!(keys("", 2), ["a", "ab"]);
            assert!(store.delete("a").unwrap());
            assert!(!store.delete("a").unwrap());
            assert_eq!(store.len().unwrap(), 2);
        }
        let store = Store::open(&data).unwrap();
        assert_eq!(store.get("b").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(store.len().unwrap(), 2, "kept across a reopen");
    }
}
