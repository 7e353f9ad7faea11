//! Previews that share a baseline (`cove preview`), with real processes:
//! the chain fixture (`a → b → c` over HTTP, each passing `X-Cove-Preview`
//! and `baggage` on) as the baseline; a preview made from a git branch that
//! changes only `b`. Requests to the preview's host go baseline `a` →
//! preview `b` → baseline `c`, through the gateway and through the
//! services' own (layer-7) addresses; the baseline's requests never see
//! the preview; a key in `X-Cove-Preview` or `baggage` routes like the
//! host. Idle, the preview sleeps (its processes gone) and the next
//! request wakes it, answered with no failure under load; `preview down`
//! leaves nothing of it. Loopback only; every wait bounded.

use std::time::{Duration, Instant};

use crate::daemon::eventually;
use crate::load::Load;
use crate::preview_util::{
    baseline, branch_changing_b, cove_ok, gateway, get, preview_processes, previews,
};

const BASE: &str = "a@base > b@base > c@base";
const FEAT: &str = "a@base > b@feat > c@base";

#[test]
fn a_preview_runs_what_changed_routes_by_key_sleeps_wakes_and_leaves_nothing() {
    let app = baseline("6s");
    branch_changing_b(&app, "feat");
    cove_ok(&app, &["up", "-d"]);
    let gw = gateway(&app);
    eventually(30, "the baseline to answer", || {
        get(gw, "a.localhost", "").as_deref() == Ok(BASE)
    });
    let base_processes = app.processes();

    let out = cove_ok(&app, &["preview", "up", "feat", "--ref", "feat"]);
    assert!(out.contains("runs b (differs)"), "{out}");
    assert!(out.contains("shares a, c"), "{out}");
    assert!(out.contains("http://feat.a.localhost:"), "{out}");
    assert_eq!(
        preview_processes(&app, "feat").len(),
        1,
        "one process: the preview's `b`"
    );

    // By the preview's host, by its key in a header or in baggage; the
    // baseline's requests never see it.
    assert_eq!(get(gw, "feat.a.localhost", "").as_deref(), Ok(FEAT));
    assert_eq!(get(gw, "a.localhost", "").as_deref(), Ok(BASE));
    assert_eq!(
        get(gw, "a.localhost", "X-Cove-Preview: feat\r\n").as_deref(),
        Ok(FEAT)
    );
    assert_eq!(
        get(
            gw,
            "a.localhost",
            "baggage: user=1, cove-preview=feat;p=1\r\n"
        )
        .as_deref(),
        Ok(FEAT)
    );
    assert_eq!(
        get(gw, "a.localhost", "X-Cove-Preview: nope\r\n").as_deref(),
        Ok(BASE),
        "an unknown key is the baseline's"
    );
    // Straight to `b`'s own host: the preview's `b`, then the baseline's `c`.
    assert_eq!(
        get(gw, "feat.b.localhost", "").as_deref(),
        Ok("b@feat > c@base")
    );

    let list = previews(&app);
    assert_eq!(list.len(), 1, "{list:?}");
    let p = &list[0];
    assert_eq!(p["name"], "feat");
    assert_eq!(p["ref"], "feat");
    assert_eq!(p["run"], serde_json::json!(["b"]));
    assert_eq!(p["shared"], serde_json::json!(["a", "c"]));
    assert!(p["memory_bytes"].as_u64().unwrap_or(0) > 1_000_000, "{p}");

    // Idle for `idle_after` (6 s), it sleeps: its process ends.
    eventually(40, "the preview to sleep", || {
        previews(&app)[0]["state"] == "asleep" && preview_processes(&app, "feat").is_empty()
    });
    let (_, events) = app.merged(&["events", "--since", "1h", "--until", "0s"]);
    assert!(events.contains("preview feat asleep"), "{events}");
    assert_eq!(
        app.processes(),
        base_processes,
        "the baseline's processes are as they were"
    );

    // Woken by requests with its key, under load: none fails, each is
    // answered by the preview once it is back.
    let started = Instant::now();
    let mut load = Load::start(4, 40, Duration::from_secs(60), move || {
        get(gw, "feat.a.localhost", "")
    });
    let deadline = Instant::now() + Duration::from_secs(70);
    while load.samples().len() < 160 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    load.finish();
    let samples: Vec<_> = load.samples().drain(..).collect();
    assert!(samples.len() >= 40, "{} requests", samples.len());
    let failed: Vec<_> = samples.iter().filter(|s| s.result.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed while the preview woke: {:?}",
        failed.len(),
        samples.len(),
        failed.iter().map(|s| &s.result).take(3).collect::<Vec<_>>()
    );
    assert!(
        samples.iter().all(|s| s.result.as_deref() == Ok(FEAT)),
        "every answer from the preview"
    );
    eprintln!(
        "{} requests while the preview woke, in {:?}",
        samples.len(),
        started.elapsed()
    );
    assert_eq!(previews(&app)[0]["state"], "awake");

    // Down: nothing of it left, its key goes to the baseline again.
    let out = cove_ok(&app, &["preview", "down", "feat"]);
    assert!(out.contains("removed"), "{out}");
    eventually(20, "the preview's processes to end", || {
        preview_processes(&app, "feat").is_empty()
    });
    assert!(previews(&app).is_empty());
    assert!(
        !app.dir().join(".cove/previews/feat").exists(),
        "its directory is gone"
    );
    eventually(10, "its key to reach the baseline again", || {
        get(gw, "a.localhost", "X-Cove-Preview: feat\r\n").as_deref() == Ok(BASE)
    });
    cove_ok(&app, &["down"]);
}
