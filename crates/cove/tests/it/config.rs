//! `cove config` through the real binary, in temporary project directories.

use std::path::Path;
use std::process::{Command, Output};

fn cove(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cove"));
    cmd.current_dir(dir)
        .args(args)
        .env_clear()
        .env("HOME", "/home/user")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, text).unwrap();
}

const APP: &str = "services:\n  web:\n    image: web\n    depends_on: [api]\n  api:\n    image: api\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: db\n    healthcheck: {test: [CMD, \"true\"]}\n";

#[test]
fn finds_the_compose_file_in_a_parent_directory_with_its_override() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", APP);
    write(
        tmp.path(),
        "compose.override.yaml",
        "services:\n  web:\n    image: web:override\n",
    );
    let sub = tmp.path().join("a/b");
    fs_err::create_dir_all(&sub).unwrap();
    let o = cove(&sub, &["config", "--format", "json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["services"]["web"]["image"], "web:override");
    let dir_name = tmp
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    let expected: String = dir_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    assert_eq!(v["name"], expected.trim_start_matches(['_', '-']));
}

#[test]
fn prefers_compose_yaml_and_warns_about_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n",
    );
    write(
        tmp.path(),
        "docker-compose.yml",
        "services:\n  b:\n    image: b\n",
    );
    let o = cove(tmp.path(), &["config", "--services"], &[]);
    assert_eq!(stdout(&o), "a\n");
    assert!(
        stderr(&o).contains("found several compose files"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn services_are_listed_dependencies_first() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", APP);
    let o = cove(tmp.path(), &["config", "--services"], &[]);
    assert_eq!(stdout(&o), "db\napi\nweb\n");
    let o = cove(
        tmp.path(),
        &["config", "--services", "--format", "json"],
        &[],
    );
    let v: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v, ["db", "api", "web"]);
}

#[test]
fn graph_as_text_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", APP);
    let o = cove(tmp.path(), &["config", "--graph"], &[]);
    assert_eq!(
        stdout(&o),
        "db\napi → db (service_healthy)\nweb → api (service_started)\n"
    );
    let o = cove(tmp.path(), &["config", "--graph", "--format", "json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["services"], serde_json::json!(["db", "api", "web"]));
    assert_eq!(
        v["edges"][0],
        serde_json::json!({"from": "api", "to": "db", "condition": "service_healthy", "required": true, "restart": false})
    );
}

#[test]
fn compose_file_profiles_and_project_name_come_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "one.yaml",
        "services:\n  a:\n    image: a\n  dbg:\n    image: d\n    profiles: [debug]\n",
    );
    write(tmp.path(), "two.yaml", "services:\n  a:\n    image: a:2\n");
    let env = [
        ("COMPOSE_FILE", "one.yaml:two.yaml"),
        ("COMPOSE_PROFILES", "debug"),
        ("COMPOSE_PROJECT_NAME", "envname"),
    ];
    let o = cove(tmp.path(), &["config", "--format", "json"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "envname");
    assert_eq!(v["services"]["a"]["image"], "a:2");
    assert!(v["services"].get("dbg").is_some());
    // Flags win over the environment.
    let o = cove(
        tmp.path(),
        &[
            "-f", "one.yaml", "-p", "flagname", "config", "--format", "json",
        ],
        &[("COMPOSE_PROFILES", "")],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "flagname");
    assert!(v["services"].get("dbg").is_none());
}

#[test]
fn env_file_flag_and_dotenv() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: \"a:${TAG}\"\n",
    );
    write(tmp.path(), ".env", "TAG=dotenv\n");
    write(tmp.path(), "prod.env", "TAG=prod\n");
    let tag = |args: &[&str], env: &[(&str, &str)]| {
        let o = cove(tmp.path(), args, env);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["services"]["a"]["image"].as_str().unwrap().to_string()
    };
    assert_eq!(tag(&["config", "--format", "json"], &[]), "a:dotenv");
    assert_eq!(
        tag(
            &["--env-file", "prod.env", "config", "--format", "json"],
            &[]
        ),
        "a:prod"
    );
    assert_eq!(
        tag(&["config", "--format", "json"], &[("TAG", "shell")]),
        "a:shell"
    );
}

#[test]
fn exit_codes_are_0_valid_1_invalid_2_usage() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", APP);
    assert_eq!(
        cove(tmp.path(), &["config", "-q"], &[]).status.code(),
        Some(0)
    );
    write(
        tmp.path(),
        "bad.yaml",
        "services:\n  a:\n    image: a\n    depend_on: [b]\n",
    );
    let o = cove(tmp.path(), &["-f", "bad.yaml", "config"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("error: unknown key `depend_on` in service `a`"),
        "{err}"
    );
    assert!(err.contains("bad.yaml:4:5"), "{err}");
    assert!(err.contains("hint: did you mean `depends_on`?"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "NO_COLOR output has escape codes: {err:?}"
    );
    assert!(stdout(&o).is_empty());
    assert_eq!(
        cove(tmp.path(), &["config", "--bogus"], &[]).status.code(),
        Some(2)
    );
    let empty = tempfile::tempdir().unwrap();
    let o = cove(empty.path(), &["config"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no compose file found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn yaml_output_loads_back_to_the_same_app() {
    let tmp = tempfile::tempdir().unwrap();
    let buffs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/buffs/compose.yaml");
    let first = cove(tmp.path(), &["-f", buffs.to_str().unwrap(), "config"], &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    write(tmp.path(), "resolved.yaml", &stdout(&first));
    let again = cove(
        tmp.path(),
        &[
            "-f",
            "resolved.yaml",
            "--project-directory",
            buffs.parent().unwrap().to_str().unwrap(),
            "config",
        ],
        &[],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&first), stdout(&again));
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let o = cove(tmp.path(), &["schema", "x-cove"], &[]);
    let committed = fs_err::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference/x-cove.schema.json"),
    )
    .unwrap();
    assert_eq!(stdout(&o), committed);
}

/// compose-go's CLI fixture: `.env` names the compose file and the project.
#[test]
fn dotenv_can_name_the_compose_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/compose-go/cli/testdata/env-file");
    assert!(
        dir.is_dir(),
        "{} is missing: this test reads the workplace's corpus in ../shared \
         (clone the project beside `shared/`, as CI does)",
        dir.display()
    );
    let o = cove(&dir, &["config", "--format", "json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "my_project_from_dot_env");
    assert_eq!(v["services"]["simple"]["ports"][0]["published"], "8000");
}

#[test]
fn naming_services_selects_them_with_their_dependencies_and_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        &format!(
            "{APP}  tools:\n    image: tools\n    profiles: [debug]\n    depends_on: [db]\n  other:\n    image: other\n"
        ),
    );
    let o = cove(tmp.path(), &["config", "--services", "api"], &[]);
    assert_eq!(stdout(&o), "db\napi\n", "{}", stderr(&o));
    // A service behind a profile is enabled by naming it.
    let o = cove(tmp.path(), &["config", "--services", "tools"], &[]);
    assert_eq!(stdout(&o), "db\ntools\n", "{}", stderr(&o));
    let o = cove(tmp.path(), &["config", "--services", "apii"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no such service `apii`") && stderr(&o).contains("did you mean `api`?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn later_env_files_override_earlier_ones_and_the_name_is_known_to_interpolation() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "name: ${APP:-shop}\nservices:\n  a:\n    image: \"a:${TAG}\"\n    environment:\n      PROJECT: ${COMPOSE_PROJECT_NAME}\n",
    );
    write(tmp.path(), "one.env", "TAG=one\nAPP=first\n");
    write(tmp.path(), "two.env", "TAG=two-${APP}\n");
    let o = cove(
        tmp.path(),
        &[
            "--env-file",
            "one.env",
            "--env-file",
            "two.env",
            "config",
            "--format",
            "json",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["services"]["a"]["image"], "a:two-first");
    assert_eq!(v["name"], "first");
    assert_eq!(v["services"]["a"]["environment"]["PROJECT"], "first");
    let o = cove(
        tmp.path(),
        &["--env-file", "two.env", "config", "--format", "json"],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "shop");
    assert_eq!(v["services"]["a"]["environment"]["PROJECT"], "shop");
}

#[test]
fn addresses_show_every_replica_and_the_rewritten_references() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  db:\n    x-cove: {run: [sleep, '9']}\n    ports: ['5432']\n  api:\n    x-cove: {run: [sleep, '9']}\n    deploy: {replicas: 2}\n    environment:\n      DB_URL: postgres://db:5432/app\n      DB_HOST: db\n      PLAIN: hello\n",
    );
    let o = cove(tmp.path(), &["config", "--addresses"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    let db = lines[0].strip_prefix("db-1   ").unwrap();
    assert!(db.starts_with("127.") && db.ends_with(":5432"), "{text}");
    assert!(lines[1].starts_with("api-1  127."), "{text}");
    assert!(lines[2].starts_with("api-2  127."), "{text}");
    // db is stateless and named by api: api reaches it at its own
    // address, which the gateway keeps across deploys.
    let own = text
        .lines()
        .skip_while(|l| !l.starts_with("service addresses"))
        .nth(1)
        .and_then(|l| l.strip_prefix("db  "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        own.starts_with("127.") && own.ends_with(":5432") && own != db,
        "{text}"
    );
    let db_ip = own.strip_suffix(":5432").unwrap();
    assert!(
        text.contains(&format!(
            "api: DB_URL=postgres://{own}/app  (written postgres://db:5432/app)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("api: DB_HOST={db_ip}  (written db)")),
        "{text}"
    );
    assert!(!text.contains("PLAIN"), "{text}");
    let o = cove(
        tmp.path(),
        &["config", "--addresses", "--format", "json"],
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["replicas"].as_array().unwrap().len(), 3);
    assert_eq!(v["rewritten"].as_array().unwrap().len(), 2);
}

/// A secret's value is masked where a value can carry it (environment,
/// command, labels), as a whole token; names, images and paths that happen
/// to spell it print as written, and the output loads back.
#[test]
fn secret_values_are_masked_as_whole_tokens_in_values_only() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "pw.txt", "kong\n");
    write(tmp.path(), ".env", "V=kong\n");
    write(
        tmp.path(),
        "compose.yaml",
        r#"
name: kong
services:
  kong:
    image: kong:3
    environment:
      KONG_PG_PASSWORD: ${V}
      KONG_URL: http://kong:8000
      OTHER: kongfu
    command: ["kong", "start", "--password=${V}"]
    labels: ["com.example.kong=${V}"]
    volumes: ["./kong:/kong"]
    secrets: [pw]
secrets:
  pw:
    file: ./pw.txt
"#,
    );
    let out = cove(tmp.path(), &["config"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let yaml = stdout(&out);
    for shown in [
        "name: kong\n",
        "  kong:\n",
        "image: kong:3",
        "KONG_PG_PASSWORD: \"***\"",
        "KONG_URL: http://***:8000",
        "OTHER: kongfu",
        "- \"--password=***\"",
        "com.example.kong: \"***\"",
        "/kong",
    ] {
        assert!(yaml.contains(shown), "`{shown}` in:\n{yaml}");
    }
    assert!(!yaml.contains("KONG_PG_PASSWORD: kong"), "{yaml}");
    // It loads back.
    write(tmp.path(), "out/compose.yaml", &yaml);
    let again = cove(&tmp.path().join("out"), &["config", "--services"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(stdout(&again), "kong\n");
}

/// A label or annotation with a key and no value is `""`, as in Compose
/// (an `environment` entry without a value stays unset: from the shell).
#[test]
fn a_label_without_a_value_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    labels: [\"com.example.flag\", \"a=b\"]\n    environment: [FROM_SHELL]\n  api:\n    image: nginx\n    labels:\n      flag:\n    annotations: [x]\n    build:\n      context: .\n      labels: [built]\n",
    );
    let out = cove(tmp.path(), &["config", "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let web = &v["services"]["web"];
    assert_eq!(web["labels"]["com.example.flag"], "");
    assert_eq!(web["labels"]["a"], "b");
    assert!(web["environment"]["FROM_SHELL"].is_null(), "{web}");
    let api = &v["services"]["api"];
    assert_eq!(api["labels"]["flag"], "");
    assert_eq!(api["annotations"]["x"], "");
    assert_eq!(api["build"]["labels"]["built"], "");
}

/// `!reset` removes what it tags, whatever value it carries: it is not
/// validated (`command: !reset {}`, `depends_on: !reset null`, a whole
/// service `other: !reset`), as the Compose Specification says.
#[test]
fn reset_values_are_removed_not_validated() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  app:\n    image: busybox\n    command: [echo, hi]\n    depends_on: [db]\n  db:\n    image: busybox\n  other:\n    image: busybox\n",
    );
    write(
        tmp.path(),
        "compose.override.yaml",
        "services:\n  app:\n    image: busybox\n    command: !reset {}\n    depends_on: !reset null\n  other: !reset\n",
    );
    let out = cove(tmp.path(), &["config", "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&String> = v["services"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["app", "db"], "{v}");
    assert!(v["services"]["app"].get("command").is_none(), "{v}");
    assert!(v["services"]["app"].get("depends_on").is_none(), "{v}");
    // In a file of its own too.
    write(
        tmp.path(),
        "single/compose.yaml",
        "services:\n  app:\n    image: busybox\n    command: !reset {}\n",
    );
    let out = cove(
        &tmp.path().join("single"),
        &["config", "--format", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `environment` values written as YAML booleans and numbers are passed
/// as Compose passes them (`True` → `true`, `1.50` → `1.5`); quoted or
/// interpolated text stays as written.
#[test]
fn environment_booleans_and_numbers_are_given_as_compose_gives_them() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: x\n    environment:\n      A: True\n      B: 1.50\n      C: \"True\"\n      D: 0x1F\n      E: ${X:-1.50}\n",
    );
    let out = cove(tmp.path(), &["config", "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = &v["services"]["web"]["environment"];
    assert_eq!(
        (&env["A"], &env["B"], &env["C"], &env["D"], &env["E"]),
        (
            &"true".into(),
            &"1.5".into(),
            &"True".into(),
            &"31".into(),
            &"1.50".into()
        ),
        "{env}"
    );
}

/// A normalised size prints in a form the schema takes back: `cove
/// config`'s output loads again.
#[test]
fn a_memory_limit_prints_as_a_size_compose_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: x\n    deploy:\n      resources:\n        limits: {memory: 1.5G}\n        reservations: {memory: 512m}\n",
    );
    let out = cove(tmp.path(), &["config"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let yaml = stdout(&out);
    assert!(yaml.contains("memory: \"1610612736\""), "{yaml}");
    assert!(yaml.contains("memory: \"536870912\""), "{yaml}");
    write(tmp.path(), "again/compose.yaml", &yaml);
    let again = cove(&tmp.path().join("again"), &["config"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(
        stdout(&again),
        yaml.replace(&name_of(tmp.path()), &name_of(&tmp.path().join("again")))
    );
}

fn name_of(dir: &std::path::Path) -> String {
    dir.file_name()
        .unwrap()
        .to_string_lossy()
        .to_ascii_lowercase()
}

/// `env_file` with `format: raw`: values exactly as written (quotes kept,
/// nothing interpolated), as Compose reads them.
#[test]
fn a_raw_env_file_is_taken_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        ".env.raw",
        "A=\"quoted\"\nB=${HOME}\n# a comment\nC=a b # kept\n",
    );
    write(tmp.path(), ".env.plain", "D=\"quoted\"\n");
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: x\n    env_file:\n      - path: .env.raw\n        format: raw\n      - .env.plain\n",
    );
    let out = cove(tmp.path(), &["config", "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = &v["services"]["web"]["environment"];
    assert_eq!(env["A"], "\"quoted\"", "{env}");
    assert_eq!(env["B"], "$${HOME}", "printed escaped: {env}");
    assert_eq!(env["C"], "a b # kept", "{env}");
    assert_eq!(env["D"], "quoted", "the default format: {env}");
}

/// A string `command` is split into words and run without a shell, as in
/// Compose; a shell operator among the words gets a warning with the fix.
#[test]
fn a_shell_operator_in_a_string_command_is_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: x\n    command: ./migrate && ./serve\n  ok:\n    image: x\n    command: sh -c \"./migrate && ./serve\"\n",
    );
    let out = cove(tmp.path(), &["config", "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        err.matches("run without a shell").count(),
        1,
        "only web's: {err}"
    );
    assert!(
        err.contains("`&&` is passed to the program as an argument"),
        "{err}"
    );
    assert!(err.contains("compose.yaml:4:14"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["services"]["web"]["command"],
        serde_json::json!(["./migrate", "&&", "./serve"])
    );
}

/// `COMPOSE_ENV_FILES` (comma-separated) replaces `.env`, as in Compose;
/// `--env-file` wins over it.
#[test]
fn compose_env_files_name_the_env_files() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), ".env", "A=dot\n");
    write(tmp.path(), "a.env", "A=one\n");
    write(tmp.path(), "b.env", "B=two\n");
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: x\n    environment:\n      X: ${A:-none}-${B:-none}\n",
    );
    let x = |env: &[(&str, &str)], args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["config", "--format", "json"]);
        let out = cove(tmp.path(), &all, env);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["services"]["web"]["environment"]["X"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(x(&[], &[]), "dot-none");
    assert_eq!(x(&[("COMPOSE_ENV_FILES", "a.env, b.env")], &[]), "one-two");
    assert_eq!(
        x(&[("COMPOSE_ENV_FILES", "a.env")], &["--env-file", "b.env"]),
        "none-two"
    );
}

/// `image: ${IMAGE}` with the variable unset is no image, as in Compose:
/// a service with nothing else to run is refused, naming the variable.
#[test]
fn an_empty_image_is_no_image() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  web:\n    image: ${IMAGE}\n  built:\n    image: ${IMAGE}\n    build: .\n",
    );
    let out = cove(tmp.path(), &["config"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("service `web` has nothing to run"), "{err}");
    assert!(!err.contains("service `built`"), "{err}");
    assert!(err.contains("variable `IMAGE` is not set"), "{err}");
    let out = cove(tmp.path(), &["config"], &[("IMAGE", "nginx")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Secrets and configs get their resource name (`<project>_<key>`, the
/// key itself when external), as networks and volumes do, as in Compose.
#[test]
fn secrets_and_configs_are_named_as_compose_names_them() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "pw.txt", "x\n");
    write(
        tmp.path(),
        "compose.yaml",
        "name: shop\nservices:\n  web:\n    image: x\n    secrets: [pw]\n    configs: [conf]\nsecrets:\n  pw: {file: ./pw.txt}\n  ext: {external: true}\n  own: {file: ./pw.txt, name: mine}\nconfigs:\n  conf: {file: ./pw.txt}\n",
    );
    let out = cove(tmp.path(), &["config", "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["secrets"]["pw"]["name"], "shop_pw");
    assert_eq!(v["secrets"]["ext"]["name"], "ext");
    assert_eq!(v["secrets"]["own"]["name"], "mine");
    assert_eq!(v["configs"]["conf"]["name"], "shop_conf");
}

/// `build.additional_contexts`: a directory is made absolute against the
/// file's directory (as `context` is); images, services and URLs are kept.
#[test]
fn additional_build_contexts_are_absolute() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "app/compose.yaml",
        "services:\n  web:\n    build:\n      context: .\n      additional_contexts:\n        - shared=../shared\n        - base=docker-image://alpine:3\n        - svc=service:base\n",
    );
    let out = cove(
        &tmp.path().join("app"),
        &["config", "--format", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let extra = &v["services"]["web"]["build"]["additional_contexts"];
    let shared = extra["shared"].as_str().unwrap();
    assert!(Path::new(shared).is_absolute(), "{extra}");
    assert!(
        shared.ends_with("/shared") && !shared.contains(".."),
        "{extra}"
    );
    assert_eq!(extra["base"], "docker-image://alpine:3");
    assert_eq!(extra["svc"], "service:base");
}

fn config_json(dir: &Path) -> serde_json::Value {
    let o = cove(dir, &["config", "--format", "json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn hook_and_watch_exec_commands_are_split_into_words() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    post_start:\n      - command: sh -c 'echo \"hi there\"'\n    pre_stop:\n      - command: [\"stop\", \"now\"]\n    develop:\n      watch:\n        - path: ./src\n          action: sync+exec\n          target: /src\n          exec:\n            command: echo \"synced it\"\n",
    );
    let v = config_json(tmp.path());
    let a = &v["services"]["a"];
    assert_eq!(
        a["post_start"][0]["command"],
        serde_json::json!(["sh", "-c", "echo \"hi there\""])
    );
    assert_eq!(
        a["pre_stop"][0]["command"],
        serde_json::json!(["stop", "now"])
    );
    assert_eq!(
        a["develop"]["watch"][0]["exec"]["command"],
        serde_json::json!(["echo", "synced it"])
    );
}

#[test]
fn selinux_labels_on_named_volumes_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    volumes:\n      - cache:/cache:Z\n      - cache:/ro:ro,z\n      - ./d:/d:z\nvolumes:\n  cache:\n",
    );
    let v = config_json(tmp.path());
    let vols = &v["services"]["a"]["volumes"];
    assert_eq!(vols[0]["type"], "volume");
    assert_eq!(vols[0]["bind"]["selinux"], "Z");
    assert_eq!(vols[1]["bind"]["selinux"], "z");
    assert_eq!(vols[1]["read_only"], true);
    assert_eq!(vols[2]["bind"]["selinux"], "z");
}

#[test]
fn sizes_print_as_bytes_in_strings_as_compose_prints_them() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    shm_size: 2gb\n    mem_limit: 512m\n    memswap_limit: -1\n    mem_reservation: 1048576\n    build:\n      context: .\n      shm_size: 128m\n",
    );
    let v = config_json(tmp.path());
    let a = &v["services"]["a"];
    assert_eq!(a["shm_size"], "2147483648");
    assert_eq!(a["mem_limit"], "536870912");
    assert_eq!(a["memswap_limit"], "-1");
    assert_eq!(a["mem_reservation"], "1048576");
    assert_eq!(a["build"]["shm_size"], "134217728");
    // The output loads back to the same sizes.
    write(
        tmp.path(),
        "compose.yaml",
        &serde_json::to_string(&v).unwrap(),
    );
    assert_eq!(
        config_json(tmp.path())["services"]["a"]["shm_size"],
        "2147483648"
    );
}

#[test]
fn a_size_and_its_deploy_twin_must_agree() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    mem_limit: 1g\n    deploy:\n      resources:\n        limits:\n          memory: 2g\n",
    );
    let o = cove(tmp.path(), &["config", "-q"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`services.a.mem_limit` (1073741824) and `deploy.resources.limits.memory` (2147483648) differ"),
        "{}",
        stderr(&o)
    );
    // The same size written two ways agrees.
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    mem_limit: 1g\n    deploy:\n      resources:\n        limits:\n          memory: 1024m\n",
    );
    assert!(cove(tmp.path(), &["config", "-q"], &[]).status.success());
}

#[test]
fn network_labels_are_maps_and_bind_volume_devices_are_absolute() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    volumes: [\"data:/data\"]\n    networks: [back]\nnetworks:\n  back:\n    labels: [\"x=1\", \"flag\"]\nvolumes:\n  data:\n    driver: local\n    driver_opts:\n      type: none\n      o: bind\n      device: ./data\n",
    );
    let v = config_json(tmp.path());
    assert_eq!(
        v["networks"]["back"]["labels"],
        serde_json::json!({"x": "1", "flag": ""})
    );
    let device = v["volumes"]["data"]["driver_opts"]["device"]
        .as_str()
        .unwrap();
    assert_eq!(Path::new(device), tmp.path().join("data"));
}

const LISTED: &str = "services:\n  app:\n    image: alpine:${TAG:-3}\n    volumes: [\"cache:/c\"]\n    networks: [back]\n  built:\n    build: .\n  native:\n    x-cove:\n      run: sleep 1\nvolumes:\n  cache:\n  unused:\nnetworks:\n  back:\n  spare:\n";

#[test]
fn images_volumes_and_networks_are_listed_one_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", LISTED);
    write(tmp.path(), ".env", "TAG=3.20\n");
    let run = |flag: &str| {
        let o = cove(tmp.path(), &["-p", "demo", "config", flag], &[]);
        assert!(o.status.success(), "{flag}: {}", stderr(&o));
        stdout(&o)
    };
    // A native service has no image; a built one is named PROJECT-SERVICE.
    assert_eq!(run("--images"), "alpine:3.20\ndemo-built\n");
    // Only what the services use, as docker compose lists them.
    assert_eq!(run("--volumes"), "cache\n");
    assert_eq!(run("--networks"), "back\ndefault\n");
    let o = cove(tmp.path(), &["config", "--images", "--volumes"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn hash_prints_one_line_per_service_and_changes_with_the_service() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", LISTED);
    let hashes = |sel: &str, env: &[(&str, &str)]| {
        let o = cove(tmp.path(), &["config", "--hash", sel], env);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
            .lines()
            .map(|l| {
                let (s, h) = l.split_once(' ').unwrap();
                assert_eq!(h.len(), 64, "{l}");
                assert!(h.chars().all(|c| c.is_ascii_hexdigit()), "{l}");
                (s.to_string(), h.to_string())
            })
            .collect::<Vec<_>>()
    };
    let all = hashes("*", &[]);
    let names: Vec<&str> = all.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["app", "built", "native"]);
    let two = hashes("native,app", &[]);
    assert_eq!(two[0], all[2]);
    assert_eq!(two[1], all[0]);
    // A changed value changes that service's hash only.
    let changed = hashes("*", &[("TAG", "4")]);
    assert_ne!(changed[0].1, all[0].1);
    assert_eq!(changed[1].1, all[1].1);
    let o = cove(tmp.path(), &["config", "--hash", "nope"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no service `nope`"), "{}", stderr(&o));
}

#[test]
fn environment_prints_the_variables_of_interpolation() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", LISTED);
    write(tmp.path(), ".env", "TAG=3.20\nFROM_FILE=x\n");
    let o = cove(
        tmp.path(),
        &["-p", "demo", "config", "--environment"],
        &[("SHELL_VAR", "y"), ("TAG", "9")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "COMPOSE_PROJECT_NAME=demo",
        "FROM_FILE=x",
        "HOME=/home/user",
        "SHELL_VAR=y",
        "TAG=9",
    ] {
        assert!(lines.contains(&want), "{want} not in\n{out}");
    }
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
}

#[test]
fn no_interpolate_keeps_variables_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", LISTED);
    write(tmp.path(), ".env", "TAG=3.20\n");
    let o = cove(
        tmp.path(),
        &["config", "--format", "json", "--no-interpolate"],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["services"]["app"]["image"], "alpine:${TAG:-3}");
    assert_eq!(
        config_json(tmp.path())["services"]["app"]["image"],
        "alpine:3.20"
    );
}

#[test]
fn output_writes_to_a_file_and_compose_only_flags_are_accepted_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "compose.yaml", LISTED);
    let out = tmp.path().join("resolved.json");
    let o = cove(
        tmp.path(),
        &["config", "--format", "json", "-o", out.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let v: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(v["services"]["app"]["image"], "alpine:3");
    let o = cove(
        tmp.path(),
        &[
            "config",
            "--no-normalize",
            "--no-path-resolution",
            "--no-consistency",
            "--services",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "app\nbuilt\nnative\n");
    for flag in ["--no-normalize", "--no-path-resolution", "--no-consistency"] {
        assert!(
            stderr(&o).contains(&format!("`{flag}` is accepted and ignored")),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn an_extends_file_without_services_is_said_to_have_none() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    extends:\n      file: base.yaml\n      service: b\n",
    );
    write(tmp.path(), "base.yaml", "x-other: 1\n");
    let o = cove(tmp.path(), &["config", "-q"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("base.yaml, which has no services"), "{err}");
    assert!(err.contains("compose.yaml:4:"), "{err}");
    assert!(!err.contains("not defined"), "{err}");
}

#[test]
fn unset_variables_in_a_literal_block_are_reported_on_their_own_lines() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    entrypoint: |\n      echo $UNSET_ONE\n        and $UNSET_TWO\n",
    );
    let o = cove(tmp.path(), &["config", "-q"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("compose.yaml:5:12"), "{err}");
    assert!(err.contains("compose.yaml:6:13"), "{err}");
}

#[test]
fn extra_hosts_maps_become_lists_and_tmpfs_sizes_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    extra_hosts:\n      db: 10.0.0.2\n      multi: [\"10.0.0.3\", \"::1\"]\n    volumes:\n      - type: tmpfs\n        target: /tmp\n        tmpfs: {size: 64m}\n",
    );
    let v = config_json(tmp.path());
    let a = &v["services"]["a"];
    assert_eq!(
        a["extra_hosts"],
        serde_json::json!(["db:10.0.0.2", "multi:10.0.0.3", "multi:::1"])
    );
    assert_eq!(a["volumes"][0]["tmpfs"]["size"], "67108864");
}

#[test]
fn label_files_are_read_into_labels_and_gpus_and_groups_take_compose_forms() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    label_file: ./labels.txt\n    labels:\n      over: written\n    gpus: all\n    group_add: [mail, 1001]\n",
    );
    write(tmp.path(), "labels.txt", "from.file=yes\nover=file\n");
    let v = config_json(tmp.path());
    let a = &v["services"]["a"];
    assert_eq!(
        a["labels"],
        serde_json::json!({"from.file": "yes", "over": "written"})
    );
    assert!(a.get("label_file").is_none(), "{a}");
    assert_eq!(a["gpus"], serde_json::json!([{"count": -1}]));
    assert_eq!(a["group_add"], serde_json::json!(["mail", "1001"]));
    fs_err::remove_file(tmp.path().join("labels.txt")).unwrap();
    let o = cove(tmp.path(), &["config", "-q"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("label file"), "{}", stderr(&o));
}

#[test]
fn leading_zero_numbers_are_octal_and_a_reset_environment_key_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "compose.yaml",
        "services:\n  a:\n    image: a\n    environment:\n      OCT: 017\n      NINE: 09\n      HEX: 0x1F\n      BIN: 0b101\n      NEG: -017\n      US: 1_000\n      KEEP: k\n      GONE: g\n",
    );
    write(
        tmp.path(),
        "compose.override.yaml",
        "services:\n  a:\n    environment:\n      GONE: !reset null\n",
    );
    let v = config_json(tmp.path());
    assert_eq!(
        v["services"]["a"]["environment"],
        serde_json::json!({"OCT": "15", "NINE": "9", "HEX": "31", "BIN": "5", "NEG": "-15", "US": "1000", "KEEP": "k"})
    );
}
