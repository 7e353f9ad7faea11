//! What the two buffs services share: configuration from the environment,
//! JSON log lines, Prometheus metrics, HTTP serving with graceful shutdown,
//! the STOMP client that talks to ActiveMQ, and the buff itself (validation,
//! the MariaDB table, its JSON shape).

pub mod buff;
pub mod config;
pub mod http;
pub mod log;
pub mod metrics;
pub mod stomp;

/// The topic `dashboard` publishes to and `server` consumes from.
pub const EVENTS_TOPIC: &str = "/topic/buffs.events";

/// Connects to MariaDB, retrying for up to `patience` (the database may
/// still be starting when the service does), then creates the table.
/// `password`, when given, wins over one in the URL.
pub async fn database(
    url: &str,
    password: Option<&str>,
    patience: std::time::Duration,
) -> Result<sqlx::MySqlPool, sqlx::Error> {
    let mut options: sqlx::mysql::MySqlConnectOptions = url.parse()?;
    if let Some(pw) = password {
        options = options.password(pw);
    }
    let pool = retry("database", patience, || {
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_with(options.clone())
    })
    .await?;
    buff::migrate(&pool).await?;
    Ok(pool)
}

/// Calls `attempt` every 500 ms until it succeeds or `patience` has passed
/// (then its last error); each failure is logged as `WHAT not ready yet`.
pub async fn retry<T, E, F, Fut>(
    what: &str,
    patience: std::time::Duration,
    mut attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() < deadline => {
                log::warn(
                    &format!("{what} not ready yet; retrying"),
                    serde_json::json!({"error": e.to_string()}),
                );
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A service's start-up error.
pub type Error = Box<dyn std::error::Error>;

/// MariaDB from `DATABASE_URL` and `DATABASE_PASSWORD` (or the file
/// `DATABASE_PASSWORD_FILE` names), retrying for `DATABASE_PATIENCE`
/// seconds (30 by default), with the table in place.
pub async fn database_from_env() -> Result<sqlx::MySqlPool, Error> {
    let url = config::required(
        "DATABASE_URL",
        "set it to mysql://USER@HOST:PORT/DATABASE (compose.yaml does)",
    )?;
    let password = config::secret("DATABASE_PASSWORD")?;
    Ok(database(
        &url,
        password.as_deref(),
        config::seconds("DATABASE_PATIENCE", 30),
    )
    .await?)
}

/// The broker from `STOMP_URL`, logging in as `STOMP_LOGIN` with
/// `STOMP_PASSCODE` (or the file `STOMP_PASSCODE_FILE` names) when set.
pub fn broker_from_env() -> Result<stomp::Url, Error> {
    let mut url = stomp::Url::parse(&config::required(
        "STOMP_URL",
        "set it to stomp://[USER:PASSWORD@]HOST:61613 (compose.yaml does)",
    )?)?;
    if let Some(login) = std::env::var("STOMP_LOGIN").ok().filter(|l| !l.is_empty()) {
        let passcode = config::secret("STOMP_PASSCODE")?.unwrap_or_default();
        url.login = Some((login, passcode));
    }
    Ok(url)
}

/// Ends the process after `run` failed: the error as a log line, exit 1.
pub fn exit_with(service: &str, e: &Error) -> ! {
    log::error(
        &format!("{service} failed"),
        serde_json::json!({"error": e.to_string()}),
    );
    std::process::exit(1);
}
