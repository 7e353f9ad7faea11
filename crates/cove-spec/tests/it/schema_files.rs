//! Generated and embedded reference files stay true.

use crate::support::{repo_root, shared_dir};

/// The committed x-cove schema matches the types. To refresh it:
/// `COVE_UPDATE_SCHEMA=1 cargo nextest run -p cove-spec schema`.
#[test]
fn committed_xcove_schema_is_current() {
    let path = repo_root().join("docs/reference/x-cove.schema.json");
    let generated = serde_json::to_string_pretty(&cove_spec::xcove::json_schema()).unwrap() + "\n";
    if std::env::var_os("COVE_UPDATE_SCHEMA").is_some() {
        fs_err::write(&path, &generated).unwrap();
        return;
    }
    let committed = fs_err::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale; run `COVE_UPDATE_SCHEMA=1 cargo nextest run -p cove-spec schema` and commit it",
        path.display()
    );
}

/// The embedded Compose schema is the one the workplace publishes.
#[test]
fn embedded_compose_schema_matches_shared_copy() {
    let shared = shared_dir();
    let shared = fs_err::read_to_string(shared.join("compose-spec/compose-spec.json")).unwrap();
    assert_eq!(shared, cove_spec::load::COMPOSE_SCHEMA);
}

/// The x-cove schema is itself usable: a valid block passes, a bad one fails.
#[test]
fn xcove_schema_validates() {
    use cove_spec::diag::Diagnostics;
    use cove_spec::schema::{Path, Validator};
    let v = Validator::new(cove_spec::xcove::json_schema());
    let parse = |s: &str| {
        let mut d = Diagnostics::default();
        cove_spec::parse::parse(cove_spec::source::FileId(0), s, &mut d).remove(0)
    };
    let mut d = Diagnostics::default();
    v.validate_at(
        &parse("run: [a, b]\nroutes: [{path: /api, port: 80}]\ndriver: process\nx-mine: 1\n"),
        "#/x-service",
        &Path::default(),
        &mut d,
    );
    assert!(!d.has_errors(), "{d:?}");
    let mut d = Diagnostics::default();
    v.validate_at(
        &parse("rout: []\ndriver: podman\nroutes: [{port: 70000}]\n"),
        "#/x-service",
        &Path::default(),
        &mut d,
    );
    let messages: Vec<&str> = d.items().iter().map(|x| x.message.as_str()).collect();
    assert_eq!(d.error_count(), 3, "{messages:?}");
}
