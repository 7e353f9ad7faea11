//! PostgreSQL: the one-shot jobs that replace the brief's hand-run scripts
//! (`create-db`: the application's role and database; `migrate`: the
//! schema, from `examples/ticker/db/migrations/`), both idempotent, and the
//! queries the service runs.

use std::time::Duration;

use buffs_common::config;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};

/// The migrations, in order: (version, name, SQL). Each runs once, in a
/// transaction, and is recorded in `schema_migrations`.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "ticks",
        include_str!("../../db/migrations/0001_ticks.sql"),
    ),
    (
        2,
        "ticks_by_symbol",
        include_str!("../../db/migrations/0002_ticks_by_symbol.sql"),
    ),
];

/// An arbitrary key for `pg_advisory_xact_lock`: migrations run one at a
/// time even when two `migrate` jobs start together.
const MIGRATION_LOCK: i64 = 0x7469_636b_6572;

/// `DATABASE_URL` with `DATABASE_PASSWORD` (or `DATABASE_PASSWORD_FILE`).
pub fn app_options() -> Result<PgConnectOptions, buffs_common::Error> {
    options("DATABASE_URL", "DATABASE_PASSWORD")
}

fn options(url: &'static str, password: &str) -> Result<PgConnectOptions, buffs_common::Error> {
    let text = config::required(
        url,
        "set it to postgres://USER@HOST:PORT/DATABASE (compose.yaml does)",
    )?;
    let mut o: PgConnectOptions = text
        .parse()
        .map_err(|e| format!("`{url}` is not a PostgreSQL URL: {e}"))?;
    if let Some(pw) = config::secret(password)? {
        o = o.password(&pw);
    }
    Ok(o)
}

/// A pool on `options`, retrying for `DATABASE_PATIENCE` seconds (30).
pub async fn pool(options: PgConnectOptions) -> Result<PgPool, buffs_common::Error> {
    let pool = buffs_common::retry("database", config::seconds("DATABASE_PATIENCE", 30), || {
        PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
    })
    .await?;
    Ok(pool)
}

/// `ticker create-db`: as the superuser of `ADMIN_DATABASE_URL` (password
/// `ADMIN_PASSWORD[_FILE]`), makes the role and the database that
/// `DATABASE_URL` names, owned by that role, with `DATABASE_PASSWORD` —
/// each only if missing; the password is set again every run, so the
/// secret store stays the truth. Run twice, the second run changes nothing.
pub async fn create_db() -> Result<(), buffs_common::Error> {
    let app = app_options()?;
    let admin = options("ADMIN_DATABASE_URL", "ADMIN_PASSWORD")?;
    let role = app.get_username().to_string();
    let database = app
        .get_database()
        .ok_or("`DATABASE_URL` names no database (postgres://USER@HOST:PORT/DATABASE)")?
        .to_string();
    let password = config::secret("DATABASE_PASSWORD")?
        .ok_or("set DATABASE_PASSWORD_FILE (the application role's password)")?;
    let pool = pool(admin).await?;
    let role_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&role)
            .fetch_one(&pool)
            .await?;
    // Identifiers and the password literal are quoted by the server
    // (`format('%I', ...)`, `%L`): no name or password is spliced here.
    let statement = if role_exists {
        "SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)"
    } else {
        "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)"
    };
    let sql: String = sqlx::query_scalar(statement)
        .bind(&role)
        .bind(&password)
        .fetch_one(&pool)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await?;
    let db_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&database)
            .fetch_one(&pool)
            .await?;
    if !db_exists {
        let sql: String =
            sqlx::query_scalar("SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)")
                .bind(&database)
                .bind(&role)
                .fetch_one(&pool)
                .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await?;
    }
    buffs_common::log::info(
        "database ready",
        serde_json::json!({
            "role": role, "role_created": !role_exists,
            "database": database, "database_created": !db_exists,
        }),
    );
    Ok(())
}

/// `ticker migrate`: applies the migrations not yet recorded, each in its
/// own transaction under an advisory lock; answers how many it applied.
pub async fn migrate(pool: &PgPool) -> Result<usize, buffs_common::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&mut *conn)
    .await?;
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS {
        let mut tx = conn.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        let done: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)",
        )
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
        if done {
            continue;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| format!("migration {version} ({name}): {e}"))?;
        sqlx::query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)")
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        applied += 1;
        buffs_common::log::info(
            "migration applied",
            serde_json::json!({"version": version, "name": name}),
        );
    }
    Ok(applied)
}

/// One tick as stored and answered.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Tick {
    pub id: i64,
    pub symbol: String,
    pub price: f64,
    /// RFC 3339, UTC.
    pub time: String,
}

const TICK_COLUMNS: &str =
    "id, symbol, price, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.USZ') AS time";

fn tick(row: &sqlx::postgres::PgRow) -> Result<Tick, sqlx::Error> {
    Ok(Tick {
        id: row.try_get("id")?,
        symbol: row.try_get("symbol")?,
        price: row.try_get("price")?,
        time: row.try_get("time")?,
    })
}

/// Stores a tick (validated by the caller); answers it with its id.
pub async fn insert(
    pool: &PgPool,
    symbol: &str,
    price: f64,
    time: jiff::Timestamp,
) -> Result<Tick, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO ticks (symbol, price, time) VALUES ($1, $2, $3::timestamptz) RETURNING {TICK_COLUMNS}"
    )))
    .bind(symbol)
    .bind(price)
    .bind(time.to_string())
    .fetch_one(pool)
    .await?;
    tick(&row)
}

/// A symbol's `limit` newest ticks, newest first.
pub async fn recent(pool: &PgPool, symbol: &str, limit: i64) -> Result<Vec<Tick>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {TICK_COLUMNS} FROM ticks WHERE symbol = $1 ORDER BY ticks.time DESC, id DESC LIMIT $2"
    )))
    .bind(symbol)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(tick).collect()
}

/// A symbol's newest tick.
pub async fn latest(pool: &PgPool, symbol: &str) -> Result<Option<Tick>, sqlx::Error> {
    Ok(recent(pool, symbol, 1).await?.into_iter().next())
}
