//! compose-go's own loader fixtures (`../shared/corpus/compose-go`): every
//! file loads, or fails, as compose-go's tests expect. Each file is listed
//! with its expected outcome; a file missing from the table fails the test,
//! so a new corpus file cannot go unchecked.
//!
//! Files that compose-go loads only through others (extends bases, included
//! files) are loaded on their own too: standalone, some are incomplete (a
//! base without an image), and the table says which error that gives.

use std::path::{Path, PathBuf};

use cove_spec::{App, Options};

use crate::support::{environ, shared_dir};

enum Expect {
    /// Loads; the closure checks key values (paths relative to the corpus dir
    /// are given with `{}` for it).
    Ok(fn(&App, &Path)),
    /// Fails with an error message containing this text.
    Err(&'static str),
}

struct Case {
    file: &'static str,
    env: &'static [(&'static str, &'static str)],
    expect: Expect,
}

fn s(app: &App, name: &str) -> cove_spec::model::Service {
    app.services
        .get(name)
        .unwrap_or_else(|| panic!("no service {name}: {:?}", app.services.keys()))
        .clone()
}

fn cases() -> Vec<Case> {
    use Expect::*;
    let ok = |file, f| Case {
        file,
        env: &[],
        expect: Ok(f),
    };
    let err = |file, e| Case {
        file,
        env: &[],
        expect: Err(e),
    };
    vec![
        ok("cli/testdata/UNNORMALIZED PATH/compose.yaml", |a, _| {
            assert_eq!(a.name, "unnormalizedpath");
            assert_eq!(s(a, "nginx").image.as_deref(), Some("nginx"));
        }),
        ok(
            "cli/testdata/env-file/compose-with-env-file.yaml",
            |a, d| {
                // `.env` beside the file names the project.
                assert_eq!(a.name, "my_project_from_dot_env");
                let svc = s(a, "simple");
                assert_eq!(svc.environment["DEFAULT_PORT"].as_deref(), Some("8080"));
                assert_eq!(svc.ports[0].published.as_deref(), Some("8000"));
                assert_eq!(
                    svc.env_file[0].path,
                    d.join("cli/testdata/env-file/simple-env")
                        .display()
                        .to_string()
                );
            },
        ),
        ok(
            "cli/testdata/env-file/compose-with-env-files.yaml",
            |a, _| {
                let svc = s(a, "simple");
                // The later env file wins; `${PORT}` comes from `.env`.
                assert_eq!(svc.environment["DEFAULT_PORT"].as_deref(), Some("9090"));
                assert_eq!(svc.ports[0].published.as_deref(), Some("8000"));
            },
        ),
        ok("cli/testdata/simple/compose-name.yaml", |a, _| {
            assert_eq!(a.name, "test--test")
        }),
        Case {
            file: "cli/testdata/simple/compose-name.yaml",
            env: &[("TEST", "env")],
            expect: Ok(|a, _| assert_eq!(a.name, "test-env-test")),
        },
        ok("cli/testdata/simple/compose-with-overrides.yaml", |a, _| {
            assert_eq!(s(a, "simple").image.as_deref(), Some("haproxy"))
        }),
        ok("cli/testdata/simple/compose-with-paths.yaml", |a, d| {
            let v = &s(a, "test").volumes;
            assert_eq!(v[0].source.as_deref(), Some("C:\\docker\\project"));
            let rel = d.join("cli/testdata/simple/relative").display().to_string();
            assert_eq!(v[1].source.as_deref(), Some(rel.as_str()));
            assert_eq!(v[2].source.as_deref(), Some(format!("{rel}2").as_str()));
            assert_eq!(v[2].target, "/test-relative2");
        }),
        ok("cli/testdata/simple/compose-with-variables.yaml", |a, _| {
            assert_eq!(s(a, "simple").ports[0].published.as_deref(), Some("8000"))
        }),
        ok("cli/testdata/simple/compose.yaml", |a, _| {
            assert_eq!(a.name, "simple")
        }),
        ok("loader/testdata/combined/compose.yaml", |a, d| {
            // Included, then extended from a file beside the included one.
            let b = s(a, "service").build.unwrap();
            assert_eq!(
                b.context,
                d.join("loader/testdata/combined/dir").display().to_string()
            );
        }),
        ok("loader/testdata/combined/dir/extended.yaml", |a, _| {
            assert!(s(a, "service").build.is_some())
        }),
        ok("loader/testdata/combined/dir/included.yaml", |a, _| {
            assert!(s(a, "service").build.is_some())
        }),
        err(
            "loader/testdata/compose-depends-on-cycle.yaml",
            "dependency cycle: service1 → service2 → service3 → service1",
        ),
        // Not used by compose-go's tests at this commit; its content is the same cycle.
        err(
            "loader/testdata/compose-depends-on-profile-no-cycle.yaml",
            "dependency cycle: service1 → service2 → service3 → service1",
        ),
        err(
            "loader/testdata/compose-depends-on-self.yaml",
            "service `service1` depends on itself",
        ),
        err(
            "loader/testdata/compose-include-cycle.yaml",
            "include cycle",
        ),
        ok("loader/testdata/compose-include.yaml", |a, d| {
            assert_eq!(s(a, "bar").environment["FOO"].as_deref(), Some("BAR"));
            let imported = s(a, "imported");
            assert_eq!(imported.other["container_name"], "imported");
            assert_eq!(
                imported.env_file[0].path,
                d.join("loader/testdata/subdir/extra.env")
                    .display()
                    .to_string()
            );
        }),
        ok(
            "loader/testdata/compose-test-extends-with-context-url-imported.yaml",
            |a, _| {
                assert_eq!(
                    s(a, "imported-with-https-url").build.unwrap().context,
                    "https://github.com/docker/compose.git"
                )
            },
        ),
        ok(
            "loader/testdata/compose-test-extends-with-context-url.yaml",
            |a, _| {
                // A URL context is not a path: it is not rebased.
                assert_eq!(
                    s(a, "importer-with-https-url").build.unwrap().context,
                    "https://github.com/docker/compose.git"
                )
            },
        ),
        ok("loader/testdata/compose-test-extends.yaml", |a, d| {
            let svc = s(a, "importer");
            assert_eq!(svc.image.as_deref(), Some("nginx"));
            // env_file is relative to the extended file, not the extending one.
            assert_eq!(
                svc.env_file[0].path,
                d.join("loader/testdata/subdir/extra.env")
                    .display()
                    .to_string()
            );
            assert_eq!(svc.environment["SOURCE"].as_deref(), Some("extends"));
            assert_eq!(svc.volumes[0].source.as_deref(), Some("/opt/data"));
        }),
        ok("loader/testdata/compose-test-with-version.yaml", |a, d| {
            let web = s(a, "web");
            assert_eq!(
                web.build.unwrap().context,
                d.join("loader/testdata/Dockerfile").display().to_string()
            );
            assert!(web.networks.contains_key("front") && web.networks.contains_key("default"));
            // volumes_from implies a dependency.
            assert!(web.depends_on.contains_key("other"));
            assert_eq!(a.services.keys().collect::<Vec<_>>(), ["other", "web"]);
        }),
        err("loader/testdata/empty.yaml", "empty"),
        // Standalone, this extends base has services with nothing to run.
        err(
            "loader/testdata/extends/base.yaml",
            "service `with-port` has nothing to run",
        ),
        ok("loader/testdata/extends/depends_on.yaml", |a, _| {
            for name in [
                "with_depends_on",
                "with_volumes_from",
                "with_ipc",
                "with_network_mode",
            ] {
                assert!(s(a, name).depends_on.contains_key("zot"), "{name}");
            }
        }),
        ok("loader/testdata/extends/interpolated.yaml", |a, _| {
            assert_eq!(s(a, "foo").volumes[0].source.as_deref(), Some("/dev/null"))
        }),
        ok("loader/testdata/extends/nested.yaml", |a, d| {
            let b = s(a, "with-build").build.unwrap();
            assert_eq!(
                b.context,
                d.join("loader/testdata/extends").display().to_string()
            );
        }),
        ok("loader/testdata/extends/ports.yaml", |a, _| {
            assert_eq!(s(a, "test").ports[0].target, 8080)
        }),
        ok("loader/testdata/extends/reset.yaml", |a, _| {
            assert_eq!(s(a, "base").image.as_deref(), Some("alpine:latest"));
            assert_eq!(
                s(a, "base").command,
                None,
                "`command: !reset` drops the inherited command"
            );
            assert!(s(a, "init").command.is_some());
        }),
        ok("loader/testdata/extends/sibling.yaml", |a, _| {
            assert!(s(a, "test").build.is_some())
        }),
        ok("loader/testdata/extends/withdir/compose.yaml", |a, _| {
            assert_eq!(s(a, "test").image.as_deref(), Some("hello-world"))
        }),
        ok("loader/testdata/extends/withdir/dir/base.yaml", |a, _| {
            assert_eq!(s(a, "test").image.as_deref(), Some("hello-world"))
        }),
        ok(
            "loader/testdata/extends/withdir/dir/compose.yaml",
            |a, _| assert_eq!(s(a, "test").image.as_deref(), Some("hello-world")),
        ),
        ok("loader/testdata/include/compose.yaml", |a, d| {
            let svc = s(a, "included");
            let dir = d.join("loader/testdata/include").display().to_string();
            assert_eq!(svc.build.unwrap().context, dir);
            assert_eq!(svc.volumes[0].source.as_deref(), Some(dir.as_str()));
        }),
        // Standalone its env file does not exist: compose-go loads it only
        // through project-directory.yaml, whose project directory has it.
        err("loader/testdata/include/dir/compose.yaml", "env file"),
        ok("loader/testdata/include/included.yaml", |a, _| {
            assert!(s(a, "included").build.is_some())
        }),
        ok("loader/testdata/include/project-directory.yaml", |a, d| {
            let svc = s(a, "service");
            let sub = d.join("loader/testdata/subdir");
            assert_eq!(
                svc.env_file[0].path,
                sub.join("extra.env").display().to_string()
            );
            assert_eq!(
                svc.volumes[0].source.as_deref(),
                Some(
                    sub.join("compose-test-extends-imported.yaml")
                        .display()
                        .to_string()
                        .as_str()
                )
            );
            assert_eq!(svc.environment["SOURCE"].as_deref(), Some("extends"));
        }),
        ok("loader/testdata/remote/compose.yaml", |a, _| {
            assert_eq!(s(a, "foo").image.as_deref(), Some("foo"))
        }),
        // Remote includes (`remote:` is compose-go's test loader): not fetched.
        err(
            "loader/testdata/remote/cycle/compose-cycle.yaml",
            "not found",
        ),
        err("loader/testdata/remote/cycle/compose.yaml", "not found"),
        ok(
            "loader/testdata/remote/nested/compose-nested.yaml",
            |_, _| {},
        ),
        err("loader/testdata/remote/nested/compose.yaml", "not found"),
        ok(
            "loader/testdata/subdir/compose-test-extends-imported.yaml",
            |a, _| assert_eq!(s(a, "imported").other["container_name"], "imported"),
        ),
    ]
}

/// Compares a load's outcome with the expectation; `Some(reason)` on a mismatch.
fn judge(
    name: &str,
    expect: &Expect,
    outcome: Result<cove_spec::Project, cove_spec::LoadFailure>,
    corpus: &Path,
) -> Option<String> {
    match (expect, outcome) {
        (Expect::Ok(check), Result::Ok(p)) => {
            let (app, corpus) = (p.app.clone(), corpus.to_path_buf());
            std::panic::catch_unwind(move || check(&app, &corpus))
                .err()
                .map(|e| {
                    let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
                    format!("{name}: check failed: {msg}")
                })
        }
        (Expect::Ok(_), Err(f)) => Some(format!("{name}: expected to load, got:\n{f}")),
        (Expect::Err(want), Result::Ok(_)) => Some(format!(
            "{name}: expected an error containing `{want}`, but it loaded"
        )),
        (Expect::Err(want), Err(f)) => (!f
            .diagnostics
            .iter()
            .any(|d| d.is_error() && d.message.contains(want)))
        .then(|| format!("{name}: expected an error containing `{want}`, got:\n{f}")),
    }
}

fn all_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs_err::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_yaml(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn compose_go_corpus() {
    let shared = shared_dir();
    let corpus = shared.join("corpus/compose-go").canonicalize().unwrap();
    let cases = cases();
    let mut files = Vec::new();
    all_yaml(&corpus, &mut files);
    let mut failures = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(&corpus)
            .unwrap()
            .to_string_lossy()
            .to_string();
        if !cases.iter().any(|c| c.file == rel) {
            failures.push(format!("{rel}: not in the table of expected outcomes"));
        }
    }
    for case in &cases {
        let file = corpus.join(case.file);
        let environ = environ(case.env.iter().copied());
        let opts = Options {
            files: vec![file.clone()],
            environ,
            ..Default::default()
        };
        failures.extend(judge(
            case.file,
            &case.expect,
            cove_spec::load(&opts),
            &corpus,
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// compose-go's tests that build a file in memory around a corpus file
/// (`extends: {file: testdata/...}`, `include: [...]`). `{T}` in the text is
/// the corpus's `loader/testdata` directory.
struct Inline {
    name: &'static str,
    /// Files in order; each is written to a temporary directory.
    files: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    expect: Expect,
}

fn inline_cases() -> Vec<Inline> {
    use Expect::*;
    let depends = |name: &'static str, via: &'static str| Inline {
        name,
        files: match via {
            "depends_on" => &[
                "services:\n  bar:\n    extends: {file: '{T}/extends/depends_on.yaml', service: with_depends_on}\n",
            ],
            "volumes_from" => &[
                "services:\n  bar:\n    extends: {file: '{T}/extends/depends_on.yaml', service: with_volumes_from}\n",
            ],
            "ipc" => &[
                "services:\n  bar:\n    extends: {file: '{T}/extends/depends_on.yaml', service: with_ipc}\n",
            ],
            _ => &[
                "services:\n  bar:\n    extends: {file: '{T}/extends/depends_on.yaml', service: with_network_mode}\n",
            ],
        },
        env: &[],
        expect: Err("service `bar` depends on undefined service `zot`"),
    };
    vec![
        Inline {
            name: "TestExtends",
            files: &[
                "services:\n  test1:\n    extends: {file: '{T}/extends/base.yaml', service: base}\n    hostname: test1\n  test2:\n    extends: {file: '{T}/extends/base.yaml', service: base}\n    hostname: test2\n  test3:\n    extends: {file: '{T}/extends/base.yaml', service: another}\n    hostname: test3\n",
            ],
            env: &[],
            expect: Ok(|a, _| {
                for n in ["test1", "test2", "test3"] {
                    assert_eq!(s(a, n).image.as_deref(), Some("base"), "{n}");
                    assert_eq!(s(a, n).other["hostname"], n);
                }
            }),
        },
        Inline {
            name: "TestExtendsPort",
            files: &[
                "services:\n  test:\n    image: test\n    extends: {file: '{T}/extends/base.yaml', service: with-port}\n",
            ],
            env: &[],
            expect: Ok(|a, _| assert_eq!(s(a, "test").ports[0].target, 8000)),
        },
        Inline {
            name: "TestExtendsUlimits",
            files: &[
                "services:\n  test:\n    extends: {file: '{T}/extends/base.yaml', service: withUlimits}\n",
            ],
            env: &[],
            expect: Ok(|a, _| assert_eq!(s(a, "test").other["ulimits"]["nproc"], 65535)),
        },
        Inline {
            name: "TestExtendsRelativePath",
            files: &[
                "services:\n  test:\n    extends: {file: '{T}/extends/base.yaml', service: with-build}\n",
            ],
            env: &[],
            expect: Ok(|a, d| {
                assert_eq!(
                    s(a, "test").build.unwrap().context,
                    d.join("loader/testdata/extends").display().to_string()
                )
            }),
        },
        Inline {
            name: "TestExtendsNil",
            files: &[
                "services:\n  test:\n    image: test\n    extends: {file: '{T}/extends/base.yaml', service: nil}\n",
            ],
            env: &[],
            expect: Ok(|a, _| assert_eq!(s(a, "test").image.as_deref(), Some("test"))),
        },
        Inline {
            name: "TestExtendsWithMissingService",
            files: &[
                "services:\n  test:\n    image: test\n    extends: {file: '{T}/extends/base.yaml'}\n",
            ],
            env: &[],
            expect: Err("`service`"),
        },
        depends("TestExtendsWithServiceRef/depends_on", "depends_on"),
        depends("TestExtendsWithServiceRef/volumes_from", "volumes_from"),
        depends("TestExtendsWithServiceRef/ipc", "ipc"),
        depends("TestExtendsWithServiceRef/network_mode", "network_mode"),
        Inline {
            name: "TestExtendsWithServiceRef/defined",
            files: &[
                "services:\n  bar:\n    extends: {file: '{T}/extends/depends_on.yaml', service: with_depends_on}\n  zot:\n    image: zot\n",
            ],
            env: &[],
            expect: Ok(|a, _| assert!(s(a, "bar").depends_on.contains_key("zot"))),
        },
        Inline {
            name: "TestExtendsReset",
            files: &[
                "services:\n  test:\n    extends: {file: '{T}/extends/reset.yaml', service: base}\n",
            ],
            env: &[],
            expect: Ok(|a, _| assert_eq!(s(a, "test").command, None)),
        },
        Inline {
            name: "TestExtendsWithInterpolation",
            files: &[
                "services:\n  test:\n    extends: {file: '{T}/extends/interpolated.yaml', service: foo}\n",
            ],
            env: &[],
            expect: Ok(|a, _| {
                assert_eq!(s(a, "test").volumes[0].source.as_deref(), Some("/dev/null"))
            }),
        },
        Inline {
            name: "TestIncludeWithExtends",
            files: &["include: ['{T}/extends/nested.yaml']\n"],
            env: &[],
            expect: Ok(|a, _| assert!(s(a, "with-build").build.is_some())),
        },
        Inline {
            name: "TestExtendsPortOverride",
            files: &[
                "services:\n  test:\n    image: test\n    ports: ['8080:8080']\n",
                "services:\n  test:\n    extends: {file: '{T}/extends/ports.yaml', service: test}\n",
            ],
            env: &[],
            expect: Ok(|a, _| assert_eq!(s(a, "test").ports.len(), 1)),
        },
        Inline {
            name: "TestLoadWithMultipleInclude",
            files: &[
                "name: test-multi-include\ninclude:\n  - path: '{T}/subdir/compose-test-extends-imported.yaml'\n    env_file: '{T}/subdir/extra.env'\n  - path: '{T}/compose-include.yaml'\nservices:\n  foo:\n    image: busybox\n    depends_on: [imported]\n",
            ],
            env: &[("SOURCE", "override")],
            expect: Ok(|a, _| {
                assert_eq!(s(a, "imported").other["container_name"], "override");
                assert!(s(a, "foo").depends_on.contains_key("imported"));
                assert_eq!(s(a, "bar").image.as_deref(), Some("bar"));
            }),
        },
        Inline {
            name: "TestLoadWithMultipleIncludeConflict",
            files: &[
                "name: test-multi-include\ninclude:\n  - path: '{T}/subdir/compose-test-extends-imported.yaml'\n    env_file: '{T}/subdir/extra.env'\n  - path: '{T}/compose-include.yaml'\n    env_file: '{T}/subdir/extra.env'\nservices:\n  bar:\n    image: busybox\n    environment: !override [ZOT=QIX]\n",
            ],
            env: &[("SOURCE", "override")],
            expect: Ok(|a, _| {
                let bar = s(a, "bar");
                assert_eq!(bar.image.as_deref(), Some("busybox"));
                assert_eq!(bar.environment.len(), 1);
                assert_eq!(bar.environment["ZOT"].as_deref(), Some("QIX"));
            }),
        },
    ]
}

#[test]
fn compose_go_inline_tests_over_the_corpus() {
    let shared = shared_dir();
    let corpus = shared.join("corpus/compose-go").canonicalize().unwrap();
    let testdata = corpus.join("loader/testdata").display().to_string();
    let mut failures = Vec::new();
    for case in inline_cases() {
        let tmp = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = case
            .files
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let p = tmp.path().join(format!("compose{i}.yaml"));
                fs_err::write(&p, text.replace("{T}", &testdata)).unwrap();
                p
            })
            .collect();
        let environ = environ(case.env.iter().copied());
        let opts = Options {
            files,
            environ,
            project_name: Some("inline".into()),
            ..Default::default()
        };
        failures.extend(judge(
            case.name,
            &case.expect,
            cove_spec::load(&opts),
            &corpus,
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
