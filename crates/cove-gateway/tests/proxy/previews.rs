// Previews in the gateway (issue 22): preview pools on a route chosen by a
// request's key (`X-Cove-Preview`, else `cove-preview` in `baggage`),
// entry routes that set the key, listener routes (service addresses at
// layer 7). Included by `it.rs` and `it_hyper.rs` after `proxy/cases.rs`
// (whose helpers it uses): every case runs on the fast path and on
// hyper's.

mod previews {
    use super::*;
    use cove_gateway::table::{PoolOptions, Wake};
    use std::time::Duration;

    /// A pool of one upstream answering `id`.
    async fn pool_of(id: &'static str) -> Arc<Pool> {
        Pool::new(id, vec![Target::new(upstream(id).await)], Policy::RoundRobin)
    }

    /// A route for any host on `/` to `base`, with these previews.
    fn keyed_route(base: Arc<Pool>, previews: &[(&str, &Arc<Pool>)]) -> Route {
        Route {
            previews: previews
                .iter()
                .map(|(k, p)| (k.to_string(), (*p).clone()))
                .collect(),
            ..Route::new(None, "/", base)
        }
    }

    /// Request headers, and who should answer.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str);

    /// Who answered (the first line of an upstream's answer).
    fn who(body: &str) -> &str {
        body.lines().next().unwrap_or("")
    }

    /// The values of header `name` that an upstream got (from its echo).
    fn got<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
        body.lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }

    #[tokio::test]
    async fn the_key_in_the_header_or_in_baggage_picks_the_previews_pool() {
        let (base, feat, idle) = (
            pool_of("base").await,
            pool_of("feat").await,
            pool_of("idle").await,
        );
        let records = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = records.clone();
        let log: cove_gateway::proxy::AccessLog =
            Arc::new(move |r| sink.lock().unwrap().push(r.to_json()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw = listener.local_addr().unwrap();
        let table = Table::new(vec![keyed_route(
            base.clone(),
            &[("feat", &feat), ("idle", &idle)],
        )]);
        let handle = Gateway::with_access_log(table, limits(), Some(log));
        tokio::spawn(handle.serve(listener, std::future::pending()));

        assert!(feat.idle_for().is_none() && idle.idle_for().is_none());
        let cases: &[Case] = &[
            (&[], "base"),
            (&[("x-cove-preview", "feat")], "feat"),
            (&[("X-Cove-Preview", " feat ")], "feat"),
            (&[("x-cove-preview", "nope")], "base"),
            (&[("x-cove-preview", "")], "base"),
            (
                &[("baggage", "userId=alice, cove-preview = feat ;p=1 , x=y")],
                "feat",
            ),
            (&[("baggage", "userId=alice,cove-preview=nope")], "base"),
            (&[("baggage", "my-cove-preview=feat")], "base"),
            (
                &[("x-cove-preview", "nope"), ("baggage", "cove-preview=feat")],
                "base",
            ),
        ];
        for (headers, want) in cases {
            let (status, body) = get(gw, "/p", headers).await;
            assert_eq!((status, who(&body)), (200, *want), "{headers:?}: {body}");
            // Passed on as it came: the app passes it on in turn.
            for (k, v) in *headers {
                assert_eq!(got(&body, k), [v.trim()], "{headers:?}: {body}");
            }
        }
        // The daemon tells a used preview from an idle one.
        assert!(feat.idle_for().is_some(), "feat got requests");
        assert!(idle.idle_for().is_none(), "idle got none");
        assert!(base.idle_for().is_some());
        // The access log says which key a request was routed by.
        let lines = records.lock().unwrap().clone();
        assert_eq!(lines.len(), cases.len(), "{lines:?}");
        let rec = |i: usize| serde_json::from_str::<serde_json::Value>(&lines[i]).unwrap();
        assert!(rec(0).get("preview").is_none(), "{}", lines[0]);
        assert_eq!(rec(0)["service"], "base");
        assert_eq!(rec(1)["preview"], "feat");
        assert_eq!(rec(1)["service"], "feat");
        assert_eq!(rec(3)["preview"], "nope", "an unknown key is logged too");
        assert_eq!(rec(3)["service"], "base");
    }

    #[tokio::test]
    async fn an_entry_route_sets_the_key_over_what_the_client_sent() {
        let (base, feat) = (pool_of("base").await, pool_of("feat").await);
        let previews: &[(&str, &Arc<Pool>)] = &[("feat", &feat)];
        let table = Table::new(vec![
            Route {
                host: Some("a.localhost".into()),
                ..keyed_route(base.clone(), previews)
            },
            Route {
                host: Some("feat.a.localhost".into()),
                preview: Some("feat".into()),
                ..keyed_route(base.clone(), previews)
            },
            // A preview that does not run this route's service: the key
            // is set all the same, the baseline answers.
            Route {
                host: Some("other.a.localhost".into()),
                preview: Some("other".into()),
                ..keyed_route(base.clone(), previews)
            },
        ]);
        let (_handle, gw) = gateway(table).await;
        let (status, body) = get(gw, "/", &[("host", "feat.a.localhost:8080")]).await;
        assert_eq!((status, who(&body)), (200, "feat"), "{body}");
        assert_eq!(got(&body, "x-cove-preview"), ["feat"], "{body}");
        assert_eq!(got(&body, "baggage"), ["cove-preview=feat"], "{body}");
        let (status, body) = get(
            gw,
            "/",
            &[
                ("host", "feat.a.localhost"),
                ("x-cove-preview", "evil"),
                ("baggage", "a=1, cove-preview=evil;p"),
                ("baggage", "b=2;q=3"),
            ],
        )
        .await;
        assert_eq!((status, who(&body)), (200, "feat"), "{body}");
        assert_eq!(got(&body, "x-cove-preview"), ["feat"], "replaced: {body}");
        assert_eq!(
            got(&body, "baggage"),
            ["a=1,b=2;q=3,cove-preview=feat"],
            "the other members kept: {body}"
        );
        let (status, body) = get(
            gw,
            "/",
            &[("host", "other.a.localhost"), ("x-cove-preview", "feat")],
        )
        .await;
        assert_eq!((status, who(&body)), (200, "base"), "{body}");
        assert_eq!(got(&body, "x-cove-preview"), ["other"], "{body}");
        // The baseline's own host keeps the client's key.
        let (status, body) = get(
            gw,
            "/",
            &[("host", "a.localhost"), ("x-cove-preview", "feat")],
        )
        .await;
        assert_eq!((status, who(&body)), (200, "feat"), "{body}");
    }

    #[tokio::test]
    async fn a_sleeping_preview_is_woken_and_answers_once_it_has_a_target() {
        let base = pool_of("base").await;
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let calls = woken.clone();
        let wake = Wake(Arc::new(move || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = tx.send(());
        }));
        let usage = cove_gateway::table::Usage::new();
        let asleep = Pool::with_options(
            "feat",
            vec![],
            Policy::RoundRobin,
            PoolOptions {
                wake: Some(wake.clone()),
                usage: Some(usage.clone()),
                ..Default::default()
            },
        );
        let route = keyed_route(base.clone(), &[("feat", &asleep)]);
        let (handle, gw) = gateway(Table::new(vec![route.clone()])).await;
        // The baseline does not wait for the preview.
        let (status, body) = get(gw, "/", &[]).await;
        assert_eq!((status, who(&body)), (200, "base"), "{body}");
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 0);
        let asked = tokio::spawn(async move { get(gw, "/w", &[("x-cove-preview", "feat")]).await });
        tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("the wake callback is called")
            .unwrap();
        assert!(usage.idle_for().is_some(), "a request to a sleeping preview is a use");
        // The daemon starts a replica and swaps in a table with it (the
        // same usage handed on).
        let awake = Pool::with_options(
            "feat",
            vec![Target::new(upstream("feat").await)],
            Policy::RoundRobin,
            PoolOptions {
                wake: Some(wake),
                usage: Some(usage.clone()),
                ..Default::default()
            },
        );
        handle.set_table(Table::new(vec![Route {
            previews: vec![("feat".to_string(), awake)].into(),
            ..route
        }]));
        let (status, body) = tokio::time::timeout(Duration::from_secs(20), asked)
            .await
            .expect("answered once a target came")
            .unwrap();
        assert_eq!((status, who(&body)), (200, "feat"), "{body}");
        assert_eq!(got(&body, "x-cove-preview"), ["feat"]);
        assert_eq!(woken.load(std::sync::atomic::Ordering::SeqCst), 1, "woken once");
    }

    /// A gateway serving `table` on two sockets: the main one, and one
    /// for listener routes; their addresses.
    async fn two_sockets(table: impl FnOnce(SocketAddr) -> Table) -> (Arc<Gateway>, SocketAddr, SocketAddr) {
        let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (m, s) = (main.local_addr().unwrap(), service.local_addr().unwrap());
        let gw = Gateway::new(table(s), limits());
        tokio::spawn(gw.clone().serve(main, std::future::pending()));
        tokio::spawn(gw.clone().serve(service, std::future::pending()));
        (gw, m, s)
    }

    #[tokio::test]
    async fn a_listener_route_takes_every_request_on_its_address_whatever_its_host() {
        let (web, api, api_feat) = (
            pool_of("web").await,
            pool_of("api").await,
            pool_of("api-feat").await,
        );
        let (_gw, main, service) = two_sockets(|s| {
            Table::new(vec![Route::new(Some("a.localhost"), "/", web.clone())])
                .with_listeners(vec![(s, keyed_route(api.clone(), &[("feat", &api_feat)]))])
        })
        .await;
        for host in ["api", "a.localhost", "127.0.0.1:8000", "anything.example"] {
            let (status, body) = get(service, "/v1/x?q=1", &[("host", host)]).await;
            assert_eq!((status, who(&body)), (200, "api"), "{host}: {body}");
            assert_eq!(body.lines().nth(1), Some("/v1/x?q=1"), "no strip: {body}");
            let (status, body) =
                get(service, "/v1/x", &[("host", host), ("x-cove-preview", "feat")]).await;
            assert_eq!((status, who(&body)), (200, "api-feat"), "{host}: {body}");
        }
        // The main socket routes by host as before: the listener route is
        // not one of its routes.
        let (status, body) = get(main, "/", &[("host", "a.localhost")]).await;
        assert_eq!((status, who(&body)), (200, "web"), "{body}");
        let (status, _) = get(main, "/", &[("host", "api")]).await;
        assert_eq!(status, 404);
        // A chunked body goes through as on the main listener.
        let (status, body) = send(
            service,
            "POST",
            "/up",
            &[("transfer-encoding", "chunked")],
            Bytes::from(vec![b'x'; 100_000]),
        )
        .await;
        assert_eq!((status, who(&body)), (200, "api"), "{body}");
        assert!(body.ends_with("body: 100000\n"), "{body}");
    }

    #[tokio::test]
    async fn requests_on_one_kept_alive_connection_go_by_their_own_keys() {
        let (base, feat, fix) = (
            pool_of("base").await,
            pool_of("feat").await,
            pool_of("fix").await,
        );
        let route = || keyed_route(base.clone(), &[("feat", &feat), ("fix", &fix)]);
        let (_gw, main, service) = two_sockets(|s| {
            Table::new(vec![
                route(),
                Route {
                    host: Some("fix.a.localhost".into()),
                    preview: Some("fix".into()),
                    ..route()
                },
            ])
            .with_listeners(vec![(s, route())])
        })
        .await;
        for addr in [main, service] {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let cases: &[Case] = &[
                (&[("x-cove-preview", "feat")], "feat"),
                (&[], "base"),
                (&[("baggage", "a=b, cove-preview=fix")], "fix"),
                (&[("x-cove-preview", "feat")], "feat"),
                (&[("host", "fix.a.localhost"), ("x-cove-preview", "feat")], "fix"),
                (&[("x-cove-preview", "nope")], "base"),
            ];
            for (headers, want) in cases {
                let mut req = Request::builder().uri("/k");
                if !headers.iter().any(|(k, _)| *k == "host") {
                    req = req.header("host", "a.localhost");
                }
                for (k, v) in *headers {
                    req = req.header(*k, *v);
                }
                let resp = sender
                    .send_request(req.body(Full::new(Bytes::new())).unwrap())
                    .await
                    .unwrap();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                let body = String::from_utf8_lossy(&body);
                // On the service address the entry host is just a host:
                // the client's key counts.
                let want = match (addr == service, *want) {
                    (true, "fix") if headers[0].0 == "host" => "feat",
                    (_, w) => w,
                };
                assert_eq!(who(&body), want, "{addr} {headers:?}: {body}");
            }
        }
    }

    #[tokio::test]
    async fn http2_streams_go_by_their_own_keys() {
        let (base, feat) = (pool_of("base").await, pool_of("feat").await);
        let table = Table::new(vec![
            keyed_route(base.clone(), &[("feat", &feat)]),
            Route {
                host: Some("feat.a.localhost".into()),
                preview: Some("feat".into()),
                ..keyed_route(base.clone(), &[("feat", &feat)])
            },
        ]);
        let (_handle, gw) = gateway(table).await;
        let stream = tokio::net::TcpStream::connect(gw).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("a.localhost", &[("x-cove-preview", "feat")], "feat"),
            ("a.localhost", &[], "base"),
            ("a.localhost", &[("baggage", "cove-preview=feat")], "feat"),
            ("feat.a.localhost", &[("x-cove-preview", "nope")], "feat"),
        ];
        for (host, headers, want) in cases {
            let mut req = Request::builder().uri(format!("http://{host}/h2"));
            for (k, v) in *headers {
                req = req.header(*k, *v);
            }
            let resp = sender
                .send_request(req.body(Full::new(Bytes::new())).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.version(), hyper::Version::HTTP_2);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let body = String::from_utf8_lossy(&body);
            assert_eq!(who(&body), *want, "{host} {headers:?}: {body}");
            if *host == "feat.a.localhost" {
                assert_eq!(got(&body, "x-cove-preview"), ["feat"], "{body}");
                assert_eq!(got(&body, "baggage"), ["cove-preview=feat"], "{body}");
            }
        }
    }

    #[tokio::test]
    async fn a_websocket_upgrade_on_an_entry_route_reaches_the_preview() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let base = pool_of("base").await;
        let feat = Pool::new(
            "feat",
            vec![Target::new(echo_upgrade_upstream().await)],
            Policy::RoundRobin,
        );
        let (_gw, _main, service) = two_sockets(|s| {
            Table::new(vec![]).with_listeners(vec![(
                s,
                Route {
                    preview: Some("feat".into()),
                    ..keyed_route(base.clone(), &[("feat", &feat)])
                },
            )])
        })
        .await;
        let mut s = tokio::net::TcpStream::connect(service).await.unwrap();
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: whatever\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut byte))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 1, "closed: {:?}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        s.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"ping");
        assert_eq!(feat.targets[0].in_flight(), 1, "the preview's replica has it");
    }

    #[tokio::test]
    async fn a_request_every_preview_target_failed_waits_for_the_previews_pool_in_a_newer_table() {
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let base = pool_of("base").await;
        let feat = Pool::new("feat", vec![Target::new(dead)], Policy::RoundRobin);
        let service = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = service.local_addr().unwrap();
        let route = keyed_route(base.clone(), &[("feat", &feat)]);
        let handle = Gateway::new(
            Table::new(vec![]).with_listeners(vec![(at, route.clone())]),
            limits(),
        );
        tokio::spawn(handle.clone().serve(service, std::future::pending()));
        let asked = tokio::spawn(async move { get(at, "/f", &[("x-cove-preview", "feat")]).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!asked.is_finished(), "waiting for a newer table");
        // The daemon saw the preview's replica die and started another:
        // the same listener route, the preview's new pool.
        let back = pool_of("feat-back").await;
        handle.set_table(Table::new(vec![]).with_listeners(vec![(
            at,
            keyed_route(base.clone(), &[("feat", &back)]),
        )]));
        let (status, body) = tokio::time::timeout(Duration::from_secs(20), asked)
            .await
            .expect("answered once the newer table came")
            .unwrap();
        assert_eq!((status, who(&body)), (200, "feat-back"), "{body}");
    }
}
