//! Secrets → Secret objects, mounted as files at their targets.
//!
//! Each top-level secret a service uses becomes one Secret, named
//! [`secret_name`] (`db_password` → a DNS-1123 name, the same in every
//! reference), holding the value under the key [`secret_key`] (the
//! Compose name). A service gets each of its secrets as one file at its
//! target (`/run/secrets/NAME` by default, or `target`; a relative target
//! is under `/run/secrets/`), mounted with `subPath` — never a directory —
//! read-only, mode `mode` (default 0444, as Compose gives containers).
//! `x-cove: {env: VAR}` on the service's secret also sets `VAR` from the
//! Secret (`valueFrom.secretKeyRef`).
//!
//! The values come from [`Options::secret_values`] (cove's encrypted store
//! or the secret's `file:`, read by the caller): without them the Secrets
//! are rendered without `data` — `cove k8s apply` renders with the values
//! and sends them through the API; `render --include-secrets` prints them.
//! An `external` secret is an existing Secret (its `name:`, holding the key
//! of the Compose name): referenced, never rendered.

use std::collections::BTreeMap;

use cove_spec::App;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, KeyToPath, PodSpec, Secret, SecretKeySelector,
    SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value as Json;

use super::{Ctx, Options, RenderError, Rendered};
use crate::names::dns_label;

/// A secret's default file mode in the pod: Compose's for containers.
pub const DEFAULT_MODE: i32 = 0o444;

/// The name of the Secret object of the top-level secret `key`: the
/// existing one's `name:` for an `external` secret, else [`dns_label`].
pub fn secret_name(app: &App, key: &str) -> String {
    match app.secrets.get(key) {
        Some(def) if is_external(def) => def
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or(key)
            .to_string(),
        _ => dns_label(key),
    }
}

/// The key of the value inside the Secret: the Compose name.
pub fn secret_key(key: &str) -> String {
    key.to_string()
}

/// Whether `s` is a DNS-1123 subdomain: the name an existing object has.
pub(crate) fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// The error for an `external` object whose name no object can have.
pub(crate) fn bad_external(service: &str, field: &str, kind: &str, name: &str) -> RenderError {
    RenderError::new(
        service,
        field,
        format!(
            "`{name}` is external, and no {kind} can be named so (lowercase letters, digits, `-`, `.`)"
        ),
        format!("give the existing {kind}'s name: `name: NAME` beside `external: true`"),
    )
}

fn is_external(def: &Json) -> bool {
    def.get("external")
        .is_some_and(|e| e != &Json::Bool(false) && !e.is_null())
}

/// Where a secret's file lands in the container.
fn target(source: &str, target: Option<&str>) -> String {
    match target {
        Some(t) if t.starts_with('/') => t.to_string(),
        Some(t) => format!("/run/secrets/{t}"),
        None => format!("/run/secrets/{source}"),
    }
}

/// The service's secrets: one volume and one `subPath` mount per secret,
/// and the variables `x-cove.env` asks for.
pub(super) fn mounts(
    ctx: &Ctx,
    pod: &mut PodSpec,
    main: &mut Container,
    _out: &mut Rendered,
) -> Result<(), RenderError> {
    for r in &ctx.svc.secrets {
        let field = format!("secrets.{}", r.source);
        if !ctx.app.secrets.contains_key(&r.source) {
            return Err(RenderError::new(
                ctx.name,
                &field,
                format!("secret `{}` is not defined", r.source),
                "define it under the top-level `secrets:`",
            ));
        }
        let name = secret_name(ctx.app, &r.source);
        if !is_object_name(&name) {
            return Err(bad_external(ctx.name, &field, "Secret", &name));
        }
        let key = secret_key(&r.source);
        let target = target(&r.source, r.target.as_deref());
        let mode = match &r.mode {
            None => DEFAULT_MODE,
            Some(m) => cove_runtime::secrets::mode_of(Some(m)).map_err(|e| {
                RenderError::new(ctx.name, &field, e, "write it in octal, e.g. 0440")
            })? as i32,
        };
        let volume = dns_label(&format!("{}-secret-{}", ctx.name, target));
        pod.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(name.clone()),
                items: Some(vec![KeyToPath {
                    key: key.clone(),
                    path: key.clone(),
                    mode: Some(mode),
                }]),
                default_mode: None,
                optional: None,
            }),
            ..Volume::default()
        });
        main.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: volume,
                mount_path: target,
                sub_path: Some(key.clone()),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        if let Some(var) = r.x_cove.as_ref().and_then(|x| x.env.as_ref()) {
            let env = main.env.get_or_insert_with(Vec::new);
            env.retain(|e| &e.name != var);
            env.push(EnvVar {
                name: var.clone(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name,
                        key,
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
            });
        }
    }
    Ok(())
}

/// The project's Secret objects: one per top-level secret a service uses
/// (not `external`), with its value when [`Options::secret_values`] has it.
pub(super) fn project(app: &App, opts: &Options, out: &mut Rendered) -> Result<(), RenderError> {
    let used: std::collections::BTreeSet<&str> = app
        .services
        .values()
        .flat_map(|s| s.secrets.iter().map(|r| r.source.as_str()))
        .collect();
    for key in used {
        let Some(def) = app.secrets.get(key) else {
            continue;
        };
        if is_external(def) {
            continue;
        }
        let data = opts
            .secret_values
            .get(key)
            .map(|v| BTreeMap::from([(secret_key(key), ByteString(v.clone()))]));
        out.objects.push(
            Secret {
                metadata: ObjectMeta {
                    name: Some(secret_name(app, key)),
                    namespace: opts.namespace.clone(),
                    labels: Some(BTreeMap::from([
                        (crate::PROJECT_LABEL.to_string(), dns_label(&app.name)),
                        (
                            "app.kubernetes.io/managed-by".to_string(),
                            "cove".to_string(),
                        ),
                    ])),
                    ..ObjectMeta::default()
                },
                data,
                type_: Some("Opaque".into()),
                ..Secret::default()
            }
            .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;

    use super::*;
    use crate::Object;
    use crate::render::storage::fixture::{get, load, pod, try_render};

    const APP: &[u8] = b"services:
  db:
    image: example/db
    secrets:
      - db_password
      - {source: api_key, target: keys/api, mode: 0400, x-cove: {env: API_KEY}}
      - {source: tls_cert, target: /etc/tls/cert.pem}
secrets:
  db_password: {x-cove: {store: DB_PASSWORD}}
  api_key: {file: ./api.key}
  tls_cert: {external: true, name: team-tls}
";

    #[test]
    fn an_external_secret_needs_a_name_the_api_accepts() {
        let (_dir, app) = load(&[(
            "compose.yaml",
            b"services:\n  a:\n    image: x\n    secrets: [team_tls]\nsecrets:\n  team_tls: {external: true}\n",
        )]);
        let e = try_render(&app, &Options::default()).unwrap_err();
        assert_eq!(
            (e.service.as_str(), e.field.as_str()),
            ("a", "secrets.team_tls")
        );
        assert!(e.hint.contains("name:"), "{e}");
        assert!(is_object_name("team-tls") && is_object_name("a.b-1"));
        for bad in ["team_tls", "Team", "-a", "a.", ""] {
            assert!(!is_object_name(bad), "{bad}");
        }
    }

    fn secret(o: &Object) -> &Secret {
        match o {
            Object::Secret(s) => s,
            other => panic!("{} is no Secret", other.id()),
        }
    }

    #[test]
    fn secrets_are_files_at_their_targets_with_consistent_names() {
        let (_dir, app) = load(&[("compose.yaml", APP), ("api.key", b"k-123\n")]);
        let r = try_render(&app, &Options::default()).unwrap();
        let p = pod(get(&r, "Deployment/db"));
        let c = &p.containers[0];
        let mounts = c.volume_mounts.as_ref().unwrap();
        let at = |target: &str| {
            let m = mounts
                .iter()
                .find(|m| m.mount_path == target)
                .unwrap_or_else(|| panic!("nothing at {target}: {mounts:?}"));
            let v = p
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == m.name)
                .unwrap()
                .secret
                .clone()
                .unwrap();
            (m.clone(), v)
        };
        // Each one a file (subPath), read-only, never a directory.
        for (target, name, key, mode) in [
            (
                "/run/secrets/db_password",
                dns_label("db_password"),
                "db_password",
                DEFAULT_MODE,
            ),
            (
                "/run/secrets/keys/api",
                dns_label("api_key"),
                "api_key",
                0o400,
            ),
            (
                "/etc/tls/cert.pem",
                "team-tls".to_string(),
                "tls_cert",
                DEFAULT_MODE,
            ),
        ] {
            let (m, v) = at(target);
            assert_eq!(m.sub_path.as_deref(), Some(key), "{target}");
            assert_eq!(m.read_only, Some(true));
            assert_eq!(v.secret_name.as_deref(), Some(name.as_str()));
            let items = v.items.unwrap();
            assert_eq!(items.len(), 1);
            assert_eq!((items[0].key.as_str(), items[0].path.as_str()), (key, key));
            assert_eq!(items[0].mode, Some(mode));
        }
        assert_eq!(mounts.len(), 3);
        // `_` names are DNS labels, the same in the object and references.
        let name = dns_label("db_password");
        assert!(!name.contains('_'));
        let s = secret(get(&r, &format!("Secret/{name}")));
        assert_eq!(s.data, None, "no value without secret_values");
        // x-cove.env: from the Secret, not a literal.
        let env = c.env.as_ref().unwrap();
        let api = env.iter().find(|e| e.name == "API_KEY").unwrap();
        assert_eq!(api.value, None);
        let sel = api
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (sel.name.as_str(), sel.key.as_str()),
            (dns_label("api_key").as_str(), "api_key")
        );
        get(&r, &format!("Secret/{}", sel.name));
        // The external one is referenced, not rendered.
        assert!(!r.objects.iter().any(|o| o.name() == "team-tls"));
        assert_eq!(r.objects.iter().filter(|o| o.kind() == "Secret").count(), 2);
    }

    #[test]
    fn values_given_are_the_secrets_data() {
        let (_dir, app) = load(&[("compose.yaml", APP), ("api.key", b"k-123\n")]);
        let opts = Options {
            secret_values: BTreeMap::from([
                ("db_password".to_string(), b"s3cret".to_vec()),
                ("api_key".to_string(), b"k-123\n".to_vec()),
            ]),
            ..Options::default()
        };
        let r = try_render(&app, &opts).unwrap();
        let s = secret(get(&r, &format!("Secret/{}", dns_label("db_password"))));
        assert_eq!(s.data.as_ref().unwrap()["db_password"].0, b"s3cret");
        let s = secret(get(&r, &format!("Secret/{}", dns_label("api_key"))));
        assert_eq!(s.data.as_ref().unwrap()["api_key"].0, b"k-123\n");
    }

    #[test]
    fn an_undefined_mode_is_refused() {
        let (_dir, app) = load(&[(
            "compose.yaml",
            b"services:\n  a:\n    image: x\n    secrets: [{source: s, mode: \"9z\"}]\nsecrets:\n  s: {file: ./s}\n",
        ), ("s", b"v")]);
        let e = try_render(&app, &Options::default()).unwrap_err();
        assert_eq!((e.service.as_str(), e.field.as_str()), ("a", "secrets.s"));
    }
}
