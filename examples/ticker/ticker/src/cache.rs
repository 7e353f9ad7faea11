//! The Redis master, found through Sentinel as its documentation describes
//! for clients: ask each sentinel in turn `SENTINEL
//! get-master-addr-by-name NAME`, connect to the address the first one
//! answers, and check with `ROLE` that it is a master (a sentinel may
//! answer before it learns of a failover). On any error the connection is
//! dropped and the next use discovers the master again (at most every
//! [`REDISCOVER_EVERY`], so a failover costs a few discoveries, not one
//! per request).
//!
//! The cache is a cache: while no master answers, readers go to
//! PostgreSQL (`x-cache: off`), so a failover costs no request.
//!
//! Invalidation is generational: `price:gen:SYM` is bumped on every ingest
//! and the latest price is cached under `price:SYM:GEN`. A reader that
//! loaded the row before an ingest and stores it after writes under the old
//! generation, which no one reads again. The bump waits (`WAIT 1`) for a
//! replica, so the replica Sentinel promotes has it; a bump that failed
//! (no master) leaves the symbol uncached in this replica until one
//! succeeds.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::sync::Mutex;

/// How often, at most, the master is looked for again after a failure.
pub const REDISCOVER_EVERY: Duration = Duration::from_millis(100);
/// Each connection attempt and each command's answer, at most.
const TIMEOUT: Duration = Duration::from_millis(500);

pub struct Cache {
    /// Sentinels, `host:port`.
    sentinels: Vec<(String, u16)>,
    /// The master's name in the sentinels' configuration.
    name: String,
    password: Option<String>,
    sentinel_password: Option<String>,
    ttl: u64,
    state: Mutex<State>,
    /// Symbols whose generation bump failed: not cached here until one
    /// succeeds.
    dirty: std::sync::Mutex<HashSet<String>>,
}

#[derive(Default)]
struct State {
    conn: Option<(MultiplexedConnection, String)>,
    last_try: Option<Instant>,
}

pub type Error = String;

impl Cache {
    /// From `REDIS_SENTINELS` (`host:port,...`), `REDIS_MASTER_NAME`,
    /// `REDIS_PASSWORD[_FILE]`, `REDIS_SENTINEL_PASSWORD[_FILE]` (default:
    /// the same password), `CACHE_TTL` (seconds, default 60).
    pub fn from_env() -> Result<Cache, buffs_common::Error> {
        use buffs_common::config;
        let list = config::required(
            "REDIS_SENTINELS",
            "set it to the sentinels, HOST:PORT,HOST:PORT,... (compose.yaml does)",
        )?;
        let mut sentinels = Vec::new();
        for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (host, port) = s
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
                .ok_or_else(|| format!("`REDIS_SENTINELS`: `{s}` is not HOST:PORT"))?;
            sentinels.push((host, port));
        }
        if sentinels.is_empty() {
            return Err("`REDIS_SENTINELS` names no sentinel".into());
        }
        let password = config::secret("REDIS_PASSWORD")?;
        let sentinel_password = config::secret("REDIS_SENTINEL_PASSWORD")?.or(password.clone());
        Ok(Cache {
            sentinels,
            name: config::or("REDIS_MASTER_NAME", "prices"),
            password,
            sentinel_password,
            ttl: config::seconds("CACHE_TTL", 60).as_secs().max(1),
            state: Mutex::new(State::default()),
            dirty: Default::default(),
        })
    }

    async fn connect(
        host: &str,
        port: u16,
        password: Option<&str>,
    ) -> Result<MultiplexedConnection, Error> {
        let mut settings = RedisConnectionInfo::default();
        if let Some(pw) = password {
            settings = settings.set_password(pw);
        }
        let info = ConnectionAddr::Tcp(host.to_string(), port)
            .into_connection_info()
            .map_err(|e| e.to_string())?
            .set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("{host}:{port}: {e}"))
    }

    /// Asks the sentinels, in turn, where the master is; connects and
    /// checks its `ROLE`.
    async fn discover(&self) -> Result<(MultiplexedConnection, String), Error> {
        let mut errors = Vec::new();
        for (host, port) in &self.sentinels {
            let asked = async {
                let mut s = Self::connect(host, *port, self.sentinel_password.as_deref()).await?;
                let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&self.name)
                    .query_async(&mut s)
                    .await
                    .map_err(|e| format!("sentinel {host}:{port}: {e}"))?;
                let (mh, mp) = addr.ok_or_else(|| {
                    format!("sentinel {host}:{port} knows no master `{}`", self.name)
                })?;
                let mut m = Self::connect(&mh, mp, self.password.as_deref()).await?;
                let role: redis::Value = redis::cmd("ROLE")
                    .query_async(&mut m)
                    .await
                    .map_err(|e| format!("{mh}:{mp}: {e}"))?;
                let is_master = matches!(&role, redis::Value::Array(v)
                    if matches!(v.first(), Some(redis::Value::BulkString(b)) if b == b"master"));
                if !is_master {
                    return Err(format!(
                        "{mh}:{mp}, named master by sentinel {host}:{port}, is not one (yet)"
                    ));
                }
                Ok((m, format!("{mh}:{mp}")))
            };
            match asked.await {
                Ok(found) => return Ok(found),
                Err(e) => errors.push(e),
            }
        }
        Err(format!("no Redis master found: {}", errors.join("; ")))
    }

    /// The master's connection: the one held, else a new discovery (at
    /// most every [`REDISCOVER_EVERY`]).
    pub async fn conn(&self) -> Result<(MultiplexedConnection, String), Error> {
        let mut st = self.state.lock().await;
        if let Some(c) = &st.conn {
            return Ok(c.clone());
        }
        if st.last_try.is_some_and(|t| t.elapsed() < REDISCOVER_EVERY) {
            return Err("no Redis master (looking again shortly)".into());
        }
        st.last_try = Some(Instant::now());
        let found = self.discover().await?;
        buffs_common::log::info("redis master found", serde_json::json!({"master": found.1}));
        st.conn = Some(found.clone());
        Ok(found)
    }

    /// Forgets the connection after an error on it (not on a newer one).
    async fn failed(&self, addr: &str, e: &redis::RedisError) {
        let mut st = self.state.lock().await;
        if st.conn.as_ref().is_some_and(|(_, a)| a == addr) {
            buffs_common::log::warn(
                "redis master lost; will look again",
                serde_json::json!({"master": addr, "error": e.to_string()}),
            );
            st.conn = None;
            st.last_try = None;
        }
    }

    /// Runs `f` on the master's connection; an error drops it.
    async fn with<T, F, Fut>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let (conn, addr) = self.conn().await?;
        match f(conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.failed(&addr, &e).await;
                Err(e.to_string())
            }
        }
    }

    fn gen_key(symbol: &str) -> String {
        format!("price:gen:{symbol}")
    }

    /// The cached latest tick (JSON) of `symbol`, and its generation.
    pub async fn get(&self, symbol: &str) -> Result<(Option<String>, i64), Error> {
        if self.is_dirty(symbol) {
            return Err("the symbol's invalidation is pending".into());
        }
        let gen_key = Self::gen_key(symbol);
        let generation: i64 = self
            .with(|mut c| async move {
                let g: Option<i64> = redis::cmd("GET").arg(&gen_key).query_async(&mut c).await?;
                Ok(g.unwrap_or(0))
            })
            .await?;
        let key = format!("price:{symbol}:{generation}");
        let value: Option<String> = self
            .with(|mut c| async move { redis::cmd("GET").arg(&key).query_async(&mut c).await })
            .await?;
        Ok((value, generation))
    }

    /// Caches `json` as the latest tick of `symbol` in `generation`.
    pub async fn put(&self, symbol: &str, generation: i64, json: &str) -> Result<(), Error> {
        let key = format!("price:{symbol}:{generation}");
        let ttl = self.ttl;
        self.with(|mut c| async move {
            redis::cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("EX")
                .arg(ttl)
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    /// A new tick of `symbol`: its cached price is stale. Bumps the
    /// generation and waits (up to 100 ms) for a replica to have it:
    /// Sentinel promotes the replica with the most of the master's stream,
    /// so one that acknowledged is enough.
    pub async fn invalidate(&self, symbol: &str) -> Result<(), Error> {
        let gen_key = Self::gen_key(symbol);
        let done = self
            .with(|mut c| async move {
                redis::pipe()
                    .cmd("INCR")
                    .arg(&gen_key)
                    .ignore()
                    .cmd("WAIT")
                    .arg(1)
                    .arg(100)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
        let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
        match done {
            Ok(()) => {
                dirty.remove(symbol);
                Ok(())
            }
            Err(e) => {
                dirty.insert(symbol.to_string());
                Err(e)
            }
        }
    }

    fn is_dirty(&self, symbol: &str) -> bool {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(symbol)
    }

    /// Symbols whose invalidation failed, to retry.
    pub fn pending(&self) -> Vec<String> {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// `PING` on the master: its address when it answers.
    pub async fn ping(&self) -> Result<String, Error> {
        let (_, addr) = self.conn().await?;
        self.with(|mut c| async move { redis::cmd("PING").query_async::<()>(&mut c).await })
            .await?;
        Ok(addr)
    }
}
