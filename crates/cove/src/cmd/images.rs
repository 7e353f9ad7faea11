//! `cove images [SERVICE...] [--format table|json] [-q]`: what each
//! replica runs, as `docker compose images` lists its containers' images
//! (CONTAINER REPOSITORY TAG IMAGE ID SIZE).
//!
//! A container's row is the engine's: the image it was made from, its id
//! and size. A native replica has no image: its row says what it runs
//! instead, REPOSITORY the recipe (`redis`, for `image: redis:7` run
//! natively) or the program (`python3`), TAG `native`, no id or size.

use std::process::ExitCode;

use cove_daemon::api::Replica;
use cove_runtime::docker::Engine;
use serde::Serialize;

use crate::cli::{ImagesArgs, ProjectArgs, PsFormat};
use crate::daemon;
use crate::output::stderr_style;

/// One row, as `--format json` writes it (Compose's keys).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Image {
    container_name: String,
    service: String,
    repository: String,
    tag: String,
    /// `sha256:…`; empty for a native replica.
    #[serde(rename = "ID")]
    id: String,
    /// Bytes; 0 for a native replica.
    size: i64,
    /// Run natively, not as a container.
    native: bool,
}

pub fn run(project_args: &ProjectArgs, args: &ImagesArgs) -> anyhow::Result<ExitCode> {
    let style = stderr_style();
    let project = match super::ps::load_naming(project_args, &args.service_names) {
        Ok(project) => project,
        Err(code) => return Ok(code),
    };
    let plan = cove_runtime::plan::plan(&project.app, &project.project_dir).ok();
    let client = daemon::find(&project)?;
    let rt = daemon::runtime()?;
    let rows: Vec<Replica> = match rt.block_on(super::ps::rows(&client)) {
        Ok(rows) => rows
            .into_iter()
            .filter(|r| args.service_names.is_empty() || args.service_names.contains(&r.service))
            // Borrowed from another environment (`up --borrow`): no image here.
            .filter(|r| r.state.as_str() != "borrowed")
            .collect(),
        Err(e) => {
            daemon::print_error(&style, &e);
            return Ok(ExitCode::from(1));
        }
    };
    let mut engine: Option<Engine> = None;
    let mut images = Vec::new();
    let mut failed = false;
    for r in &rows {
        let name = super::ps::id(r);
        let image = match &r.container {
            Some(container) => {
                let found = rt.block_on(async {
                    if engine.is_none() {
                        engine = Some(Engine::connect().await?);
                    }
                    engine
                        .as_ref()
                        .expect("connected")
                        .image_of(container)
                        .await
                });
                match found {
                    Ok(i) => {
                        let (repository, tag) = split_name(&i.name);
                        Image {
                            container_name: name,
                            service: r.service.clone(),
                            repository,
                            tag,
                            id: i.id,
                            size: i.size,
                            native: false,
                        }
                    }
                    Err(e) => {
                        daemon::print_engine_error(&style, "", &e);
                        failed = true;
                        continue;
                    }
                }
            }
            None => {
                let svc = plan
                    .as_ref()
                    .and_then(|p| p.services.iter().find(|s| s.name == r.service));
                let repository = match svc {
                    Some(s) => match (&s.recipe, project.app.services.get(&r.service)) {
                        (Some(_), Some(c)) if c.image.is_some() => {
                            split_name(c.image.as_deref().unwrap_or_default()).0
                        }
                        _ => s.argv.first().cloned().unwrap_or_default(),
                    },
                    None => "-".into(),
                };
                Image {
                    container_name: name,
                    service: r.service.clone(),
                    repository,
                    tag: "native".into(),
                    id: String::new(),
                    size: 0,
                    native: true,
                }
            }
        };
        images.push(image);
    }
    if args.quiet {
        let mut seen = Vec::new();
        for i in images.iter().filter(|i| !i.native) {
            if !seen.contains(&&i.id) {
                println!("{}", i.id);
                seen.push(&i.id);
            }
        }
    } else if args.format == PsFormat::Json {
        println!("{}", serde_json::to_string_pretty(&images)?);
    } else {
        let mut cells =
            vec![["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"].map(String::from)];
        for i in &images {
            cells.push([
                i.container_name.clone(),
                i.repository.clone(),
                i.tag.clone(),
                if i.native {
                    "-".into()
                } else {
                    short_id(&i.id)
                },
                if i.native { "-".into() } else { size(i.size) },
            ]);
        }
        print!("{}", crate::output::columns(&cells));
    }
    Ok(ExitCode::from(u8::from(failed)))
}

/// `registry:5000/team/web:1.2` → (`registry:5000/team/web`, `1.2`);
/// without a tag, `latest`; a digest (`@sha256:…`) is kept as the tag.
fn split_name(image: &str) -> (String, String) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo.to_string(), digest.to_string());
    }
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rsplit_once(':') {
        Some((name, tag)) => (format!("{}{name}", &image[..slash]), tag.to_string()),
        None => (image.to_string(), "latest".into()),
    }
}

/// The first 12 hex digits, as `docker images` shows an id.
fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Decimal units, three significant digits, as Docker writes sizes
/// (`7.81MB`).
fn size(bytes: i64) -> String {
    let mut n = bytes as f64;
    let mut unit = 0;
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    while n >= 1000.0 && unit < UNITS.len() - 1 {
        n /= 1000.0;
        unit += 1;
    }
    let digits = if n >= 100.0 {
        0
    } else if n >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{n:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_sizes_read_as_docker_writes_them() {
        assert_eq!(split_name("redis:7"), ("redis".into(), "7".into()));
        assert_eq!(split_name("redis"), ("redis".into(), "latest".into()));
        assert_eq!(
            split_name("registry:5000/team/web:1.2"),
            ("registry:5000/team/web".into(), "1.2".into())
        );
        assert_eq!(
            split_name("registry:5000/web"),
            ("registry:5000/web".into(), "latest".into())
        );
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(size(512), "512B");
        assert_eq!(size(7_812_345), "7.81MB");
        assert_eq!(size(1_000_000_000), "1GB");
        assert_eq!(size(123_456), "123kB");
    }
}
