//! Healthchecks → readiness, liveness and startup probes.
//!
//! - `test: [CMD, …]` → an exec probe running those arguments;
//!   `[CMD-SHELL, s]` (and the string form, which the loader turns into
//!   it) → `sh -c s`; `[NONE]` or `disable: true` → no probe (unless
//!   `x-cove.health` is set: as in cove's runtime, it is the check then);
//! - `x-cove.health: {http: PATH}` → httpGet (port: its `port`, else the
//!   service's `PORT` variable, else its first port);
//!   `{tcp: PORT}` → tcpSocket;
//! - timings, Compose's defaults when unset: `interval` (30s) →
//!   periodSeconds, `timeout` (30s) → timeoutSeconds, `retries` (3) →
//!   failureThreshold, on both the readiness and the liveness probe;
//! - `start_period` → a startupProbe (the same check every
//!   `start_interval`, default 1s as in cove's runtime, for `start_period` plus `retries`
//!   tries): as in Compose, failures during the start period do not count
//!   and the first success ends it, while readiness and liveness wait for
//!   it. (initialDelaySeconds would instead delay readiness by the whole
//!   period even when the service is up sooner.)
//!
//! Kubernetes counts whole seconds, at least 1: shorter or fractional
//! durations are rounded up, with one warning per render.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Ctx, RenderError, Rendered};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// cove's runtime's (Docker's is 5s).
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_RETRIES: u64 = 3;

/// The warning said once when a duration had to be rounded.
const ROUNDED: &str = "healthcheck durations: Kubernetes counts whole seconds (at least 1); shorter or fractional durations were rounded up";

pub(super) fn apply(
    ctx: &Ctx,
    main: &mut Container,
    out: &mut Rendered,
) -> Result<(), RenderError> {
    let Some(check) = check(ctx, main)? else {
        return Ok(());
    };
    let hc = ctx.svc.healthcheck.as_ref();
    let mut rounded = false;
    let secs = |d: Option<Duration>, default: Duration, rounded: &mut bool| {
        // Zero, as in cove's runtime, is the default.
        let (s, r) = seconds(d.filter(|d| !d.is_zero()).unwrap_or(default));
        *rounded |= r;
        s
    };
    let period = secs(
        hc.and_then(|h| h.interval.map(|d| d.0)),
        DEFAULT_INTERVAL,
        &mut rounded,
    );
    let timeout = secs(
        hc.and_then(|h| h.timeout.map(|d| d.0)),
        DEFAULT_TIMEOUT,
        &mut rounded,
    );
    let retries = hc
        .and_then(|h| h.retries)
        .unwrap_or(DEFAULT_RETRIES)
        .clamp(1, i32::MAX as u64) as i32;
    let start_period = hc
        .and_then(|h| h.start_period.map(|d| d.0))
        .filter(|d| !d.is_zero());
    let startup = start_period.map(|sp| {
        let interval = secs(
            hc.and_then(|h| h.start_interval.map(|d| d.0)),
            DEFAULT_START_INTERVAL,
            &mut rounded,
        );
        let (sp, r) = seconds(sp);
        rounded |= r;
        let tries = (sp + interval - 1) / interval;
        Probe {
            period_seconds: Some(interval),
            timeout_seconds: Some(timeout),
            failure_threshold: Some(tries.saturating_add(retries)),
            ..check.clone()
        }
    });
    let probe = Probe {
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(retries),
        ..check
    };
    main.readiness_probe = Some(probe.clone());
    main.liveness_probe = Some(probe);
    main.startup_probe = startup;
    if rounded && !out.warnings.iter().any(|w| w == ROUNDED) {
        out.warnings.push(ROUNDED.to_string());
    }
    Ok(())
}

/// The check (a probe without timings), if the service has one.
fn check(ctx: &Ctx, main: &Container) -> Result<Option<Probe>, RenderError> {
    let hc = ctx.svc.healthcheck.as_ref();
    // As cove runs it: `x-cove.health` is the check even when the
    // healthcheck's command is disabled (its timings still count).
    if let Some(health) = ctx.svc.x_cove.as_ref().and_then(|x| x.health.as_ref()) {
        if let Some(port) = health.tcp {
            return Ok(Some(Probe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::Int(i32::from(port)),
                    ..TCPSocketAction::default()
                }),
                ..Probe::default()
            }));
        }
        if let Some(path) = &health.http {
            let port = health
                .port
                .map(i32::from)
                .or_else(|| {
                    ctx.svc
                        .environment
                        .get("PORT")
                        .and_then(|v| v.as_deref()?.parse::<u16>().ok())
                        .map(i32::from)
                })
                .or_else(|| main.ports.as_ref()?.first().map(|p| p.container_port));
            let Some(port) = port else {
                return Err(RenderError::new(
                    ctx.name,
                    "x-cove.health.http",
                    "the probe has no port: the service sets no `port` there, no PORT variable, and listens on no port",
                    "add `port: N` to `x-cove.health`, or `expose: [N]` to the service",
                ));
            };
            return Ok(Some(Probe {
                http_get: Some(HTTPGetAction {
                    path: Some(path.clone()),
                    port: IntOrString::Int(port),
                    ..HTTPGetAction::default()
                }),
                ..Probe::default()
            }));
        }
    }
    let Some(hc) = hc.filter(|h| h.is_enabled()) else {
        return Ok(None);
    };
    let command = match hc.test.first().map(String::as_str) {
        Some("CMD") => hc.test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["sh".into(), "-c".into(), hc.test[1..].join(" ")],
        // The loader writes every form as CMD, CMD-SHELL or NONE; a bare
        // list is the command itself.
        _ => hc.test.clone(),
    };
    if command.is_empty() {
        return Ok(None);
    }
    Ok(Some(Probe {
        exec: Some(ExecAction {
            command: Some(command),
        }),
        ..Probe::default()
    }))
}

/// Whole seconds, rounded up, at least 1; and whether that changed it.
pub(super) fn seconds(d: Duration) -> (i32, bool) {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let s = whole.clamp(1, i32::MAX as u64) as i32;
    (
        s,
        u64::try_from(s).ok() != Some(d.as_secs()) || d.subsec_nanos() > 0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::*;

    fn exec(p: &Probe) -> Vec<String> {
        p.exec.as_ref().unwrap().command.clone().unwrap()
    }

    #[test]
    fn healthchecks_become_probes_with_the_same_timings() {
        let r = rendered(
            r#"
services:
  exec:
    image: a
    healthcheck:
      test: ["CMD", "pg_isready", "-U", "x"]
      interval: 7s
      timeout: 2s
      retries: 5
  shell:
    image: a
    healthcheck:
      test: ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]
      start_period: 2500ms
  string:
    image: a
    healthcheck:
      test: redis-cli ping | grep PONG
      interval: 500ms
      start_period: 20s
      start_interval: 2s
  none:
    image: a
    healthcheck: { test: ["NONE"] }
  disabled:
    image: a
    healthcheck: { test: ["CMD", "x"], disable: true }
  http:
    image: a
    expose: ["8080", "9090"]
    x-cove: { health: { http: /healthz } }
  httpport:
    image: a
    x-cove: { health: { http: /ready, port: 81 } }
  tcp:
    image: a
    x-cove: { health: { tcp: 5432 } }
  tcpdisabled:
    image: a
    healthcheck: { disable: true, interval: 4s }
    x-cove: { health: { tcp: 5432 } }
"#,
        );
        let c = main(&r, "exec");
        let ready = c.readiness_probe.as_ref().unwrap();
        assert_eq!(exec(ready), ["pg_isready", "-U", "x"]);
        assert_eq!(ready.period_seconds, Some(7));
        assert_eq!(ready.timeout_seconds, Some(2));
        assert_eq!(ready.failure_threshold, Some(5));
        assert_eq!(c.liveness_probe.as_ref(), Some(ready));
        assert_eq!(c.startup_probe, None);

        let c = main(&r, "shell");
        let ready = c.readiness_probe.as_ref().unwrap();
        assert_eq!(
            exec(ready),
            ["sh", "-c", "curl -f http://localhost/ || exit 1"]
        );
        // Compose's defaults.
        assert_eq!(ready.period_seconds, Some(30));
        assert_eq!(ready.timeout_seconds, Some(30));
        assert_eq!(ready.failure_threshold, Some(3));
        let startup = c.startup_probe.as_ref().unwrap();
        // start_interval defaults to 1s: 3 tries in 2.5s (rounded up), then `retries`.
        assert_eq!(startup.period_seconds, Some(1));
        assert_eq!(startup.failure_threshold, Some(3 + 3));

        let c = main(&r, "string");
        let ready = c.readiness_probe.as_ref().unwrap();
        assert_eq!(exec(ready), ["sh", "-c", "redis-cli ping | grep PONG"]);
        assert_eq!(ready.period_seconds, Some(1), "500ms rounds up to 1s");
        let startup = c.startup_probe.as_ref().unwrap();
        assert_eq!(exec(startup), exec(ready));
        assert_eq!(startup.period_seconds, Some(2));
        assert_eq!(startup.failure_threshold, Some(10 + 3));
        assert_eq!(
            r.warnings.iter().filter(|w| *w == ROUNDED).count(),
            1,
            "{:?}",
            r.warnings
        );

        for name in ["none", "disabled"] {
            let c = main(&r, name);
            assert_eq!(c.readiness_probe, None, "{name}");
            assert_eq!(c.liveness_probe, None, "{name}");
        }

        let get = |name: &str| {
            main(&r, name)
                .readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .clone()
                .unwrap()
        };
        assert_eq!(get("http").path.as_deref(), Some("/healthz"));
        assert_eq!(get("http").port, IntOrString::Int(8080));
        assert_eq!(get("httpport").port, IntOrString::Int(81));
        let tcp = main(&r, "tcp").liveness_probe.clone().unwrap();
        assert_eq!(tcp.tcp_socket.unwrap().port, IntOrString::Int(5432));
        assert_eq!(tcp.period_seconds, Some(30));
        let tcp = main(&r, "tcpdisabled").readiness_probe.clone().unwrap();
        assert_eq!(tcp.tcp_socket.unwrap().port, IntOrString::Int(5432));
        assert_eq!(tcp.period_seconds, Some(4));
    }

    #[test]
    fn an_http_probe_without_a_port_is_an_error() {
        let e = try_render(
            "services:\n  a:\n    image: a\n    x-cove: { health: { http: / } }\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.field, "x-cove.health.http");
        assert!(e.hint.contains("port"), "{e}");
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds(Duration::from_millis(1500)), (2, true));
        assert_eq!(seconds(Duration::ZERO), (1, true));
        assert_eq!(seconds(Duration::from_secs(3)), (3, false));
    }
}
