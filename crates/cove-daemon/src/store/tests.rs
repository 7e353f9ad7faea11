//! The store's tests: layouts, records, revisions, events.

use super::*;

fn event(seq: u64) -> Event {
    Event {
        project: "/p/.cove".into(),
        seq,
        time_ms: seq,
        service: "db".into(),
        replica: 1,
        revision: 1,
        state: ReplicaState::Running.into(),
        detail: "running (pid 1)".into(),
        pid: Some(1),
        restarts: 0,
    }
}

#[test]
fn the_layout_is_recorded_older_is_taken_and_newer_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema().unwrap(), SCHEMA);
    // As a store written before the key existed: taken as layout 1.
    store
        .write(|txn| {
            txn.open_table(META)?.remove("schema")?;
            Ok(())
        })
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema().unwrap(), SCHEMA, "recorded at open");
    // Written by a later cove: refused, and left as it is.
    store
        .write(|txn| {
            txn.open_table(META)?.insert("schema", "99".as_bytes())?;
            Ok(())
        })
        .unwrap();
    drop(store);
    let e = Store::open(&path).err().unwrap().to_string();
    assert!(e.contains("written by a newer cove (layout 99"), "{e}");
    assert!(e.contains("hint:"), "{e}");
}

#[test]
fn a_record_this_build_cannot_read_leaves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let good = Desired {
        app: cove_spec::App::default(),
        project_dir: "/p".into(),
        wanted: vec![],
        orphans: vec![],
        scale: Default::default(),
        pinned: Default::default(),
        identity: None,
    };
    store.set_desired("/a/.cove", Some(&good)).unwrap();
    // A field a later version added.
    let mut later = serde_json::to_value(&good).unwrap();
    later["app"]["x-cove"] = serde_json::json!({"renamed_field": 1});
    let bytes = serde_json::to_vec(&later).unwrap();
    store
        .write(|txn| {
            txn.open_table(META)?
                .insert("desired//b/.cove", bytes.as_slice())?;
            Ok(())
        })
        .unwrap();
    let all = store.all_desired().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].1.as_ref().unwrap(), &good);
    assert!(all[1].1.is_err(), "{:?}", all[1].1);
}

#[test]
fn records_written_as_words_read_typed() {
    // As layout 1 wrote them (before the words were enums), and one a
    // newer cove wrote with a state this build does not know.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let event = |seq: u64, state: &str| {
        format!(
            r#"{{"project":"/p/.cove","seq":{seq},"time_ms":1,"service":"db","replica":1,"revision":1,"state":"{state}","detail":"x","pid":null,"restarts":0}}"#
        )
    };
    store
        .write(|txn| {
            let mut t = txn.open_table(REPLICAS)?;
            t.insert(
                "/p/.cove|db/1",
                br#"{"state":"running","pid":7,"restarts":2,"start":"boot:42"}"#.as_slice(),
            )?;
            t.insert(
                "/p/.cove|db/2",
                br#"{"state":"hibernating","pid":null,"restarts":0}"#.as_slice(),
            )?;
            let mut t = txn.open_table(EVENTS)?;
            t.insert(1, event(1, "failed").as_bytes())?;
            t.insert(2, event(2, "deploy").as_bytes())?;
            t.insert(3, event(3, "hibernating").as_bytes())?;
            Ok(())
        })
        .unwrap();
    let replicas = store.replicas("/p/.cove").unwrap();
    assert_eq!(replicas[&("db".into(), 1)].state, ReplicaState::Running);
    assert_eq!(
        replicas[&("db".into(), 2)].state,
        ReplicaState::Other("hibernating".into())
    );
    assert_eq!(store.leaders(None).unwrap(), [(7, "boot:42".to_string())]);
    let states: Vec<crate::api::EventState> = store
        .events_after("/p/.cove", 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(
        states,
        [
            ReplicaState::Failed.into(),
            crate::api::EventState::Deploy,
            ReplicaState::Other("hibernating".into()).into(),
        ]
    );
    // Written back as the same words.
    let rec = replicas[&("db".into(), 1)].clone();
    assert_eq!(
        serde_json::to_string(&rec).unwrap(),
        r#"{"state":"running","pid":7,"restarts":2,"start":"boot:42"}"#
    );
}

#[test]
fn a_starting_daemon_waits_for_an_exiting_one_to_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let held = Store::open(&path).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(held);
    });
    assert!(
        Store::open_waiting(&path, std::time::Duration::from_millis(50)).is_err(),
        "held past the patience: refused"
    );
    Store::open_waiting(&path, std::time::Duration::from_secs(5))
        .expect("opened once the other holder let go");
    release.join().unwrap();
}

#[test]
fn state_survives_reopening_and_is_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let desired = Desired {
        app: cove_spec::App::default(),
        project_dir: dir.path().to_path_buf(),
        wanted: vec!["db".into()],
        orphans: Vec::new(),
        scale: [("db".to_string(), 3)].into(),
        pinned: Default::default(),
        identity: None,
    };
    {
        let store = Store::open(&path).unwrap();
        assert!(
            Store::open(&path).is_err(),
            "a second opener must be refused"
        );
        assert_eq!(store.desired("/p/.cove").unwrap(), None);
        store.set_desired("/p/.cove", Some(&desired)).unwrap();
        store.set_desired("/q/.cove", Some(&desired)).unwrap();
        let rec = ReplicaRecord {
            state: ReplicaState::Running,
            pid: Some(7),
            restarts: 2,
            start: Some("boot:42".into()),
        };
        store
            .record(
                &[
                    (("/p/.cove".into(), "db".into(), 1), rec.clone()),
                    (("/q/.cove".into(), "db".into(), 1), rec),
                ],
                &[event(1), event(2)],
            )
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.desired("/p/.cove").unwrap(), Some(desired));
    assert_eq!(store.all_desired().unwrap().len(), 2);
    assert!(store.all_desired().unwrap().iter().all(|(_, d)| d.is_ok()));
    assert_eq!(
        store.replicas("/p/.cove").unwrap()[&("db".into(), 1)].restarts,
        2
    );
    assert_eq!(store.last_seq().unwrap(), 2);
    assert_eq!(
        store.leaders(Some("/p/.cove")).unwrap(),
        [(7, "boot:42".to_string())]
    );
    assert_eq!(store.leaders(None).unwrap().len(), 2);
    let after: Vec<u64> = store
        .events_after("/p/.cove", 1, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(after, [2]);
    assert!(store.events_after("/q/.cove", 0, 10).unwrap().is_empty());
    // Forgetting one project leaves the other.
    store.set_desired("/p/.cove", None).unwrap();
    assert_eq!(store.desired("/p/.cove").unwrap(), None);
    assert!(store.replicas("/p/.cove").unwrap().is_empty());
    assert_eq!(store.replicas("/q/.cove").unwrap().len(), 1);
    assert!(store.desired("/q/.cove").unwrap().is_some());
}

#[test]
fn revisions_are_kept_in_order_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let rev = |n: u64| Revision {
        number: n,
        time_ms: n,
        message: format!("r{n}"),
        digest: String::new(),
        program: None,
        config: serde_json::json!({"n": n}),
    };
    for n in [1, 2, 10] {
        store.add_revision("/p", "api", &rev(n)).unwrap();
    }
    store.add_revision("/p", "api2", &rev(7)).unwrap();
    store.add_revision("/q", "api", &rev(5)).unwrap();
    let numbers = |p: &str, s: &str| -> Vec<u64> {
        store
            .revisions(p, s)
            .unwrap()
            .iter()
            .map(|r| r.number)
            .collect()
    };
    assert_eq!(numbers("/p", "api"), [1, 2, 10]);
    assert_eq!(numbers("/p", "api2"), [7]);
    assert_eq!(numbers("/q", "api"), [5]);
    for n in 11..(11 + MAX_REVISIONS as u64) {
        store.add_revision("/p", "api", &rev(n)).unwrap();
    }
    let kept = numbers("/p", "api");
    assert_eq!(kept.len(), MAX_REVISIONS);
    assert_eq!(kept[0], 11);
}

#[test]
fn old_events_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let events: Vec<Event> = (1..=MAX_EVENTS + 5).map(event).collect();
    store.record(&[], &events).unwrap();
    let kept = store.events_after("/p/.cove", 0, usize::MAX).unwrap();
    assert_eq!(kept.len() as u64, MAX_EVENTS);
    assert_eq!(kept[0].seq, 6);
}
