//! `cove build --push --registry HOST/PREFIX`: images a cluster can pull.
//!
//! Every service with `build:` is built through the Docker engine (even
//! one that `cove up` runs natively, with `x-cove.run`) as
//! `HOST/PREFIX/<project>-<service>:latest` and pushed. A native-only
//! service (`x-cove.run`, no `build:`, no `image:`) whose program (the
//! file its command runs, what cove keeps as its artifact) is a static
//! binary — an ELF without an interpreter (`PT_INTERP`) — gets an image
//! `FROM scratch` holding only that program; any other is left out, said
//! once (render then refuses it, with the hint to add `build:`).
//!
//! When a service waits for another (`depends_on`: the init containers
//! `cove k8s render` gives it run `cove k8s wait-for`), cove's own image
//! is pushed too, as `HOST/PREFIX/cove:VERSION`: `FROM scratch` with this
//! very binary at `/cove` and, unless it is static, the dynamic loader and
//! the shared libraries it loads (as `ldd` lists them) at their paths.
//!
//! The names with the digests the registry gave them are recorded in the
//! state directory (`k8s-pushed.json`, by registry then service; written
//! to a temporary file, then renamed), where `cove k8s render --registry`
//! finds them: the manifests name `HOST/PREFIX/...@sha256:…`, so a new
//! push is a new pod template and a rollout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cove_runtime::docker::{BuildSpec, Engine};
use cove_runtime::plan::Plan;
use cove_spec::Project;

use crate::cli::BuildArgs;

/// The record's file, in the state directory.
pub const PUSHED_FILE: &str = "k8s-pushed.json";

/// The tag every pushed image gets; manifests name the digest.
const TAG: &str = "latest";

/// `k8s-pushed.json`: by registry, by service, `NAME@sha256:…`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Record {
    registries: BTreeMap<String, BTreeMap<String, String>>,
    /// cove's own image, by registry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    cove: BTreeMap<String, String>,
}

/// What was pushed to `registry` for the project whose state is in
/// `state_dir`: the services' images, by service (empty when none were),
/// and cove's own (the init containers' waiting tool), if it was. One
/// read of the record.
pub fn pushed(
    state_dir: &Path,
    registry: &str,
) -> anyhow::Result<(BTreeMap<String, String>, Option<String>)> {
    let mut record = read(state_dir)?;
    let registry = registry.trim_end_matches('/');
    Ok((
        record.registries.remove(registry).unwrap_or_default(),
        record.cove.remove(registry),
    ))
}

fn read(state_dir: &Path) -> anyhow::Result<Record> {
    let path = state_dir.join(PUSHED_FILE);
    match fs_err::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}\n  hint: it is cove's record of `cove build --push`; remove it and push again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
        Err(e) => Err(e.into()),
    }
}

/// Adds `images` (by service) pushed to `registry` to the record: read,
/// changed, written beside and renamed over the old one.
fn record(
    state_dir: &Path,
    registry: &str,
    images: &BTreeMap<String, String>,
    cove: Option<&str>,
) -> anyhow::Result<()> {
    let mut record = read(state_dir)?;
    let registry = registry.trim_end_matches('/').to_string();
    if let Some(cove) = cove {
        record.cove.insert(registry.clone(), cove.to_string());
    }
    record
        .registries
        .entry(registry)
        .or_default()
        .extend(images.iter().map(|(k, v)| (k.clone(), v.clone())));
    fs_err::create_dir_all(state_dir)?;
    let path = state_dir.join(PUSHED_FILE);
    let tmp = state_dir.join(format!("{PUSHED_FILE}.tmp.{}", std::process::id()));
    fs_err::write(&tmp, serde_json::to_string_pretty(&record)? + "\n")?;
    fs_err::rename(&tmp, &path)?;
    Ok(())
}

/// Where the image of `service` goes: `REGISTRY/<project>-<service>`, in
/// the DNS-1123 spelling render uses.
pub fn repository(registry: &str, project: &str, service: &str) -> String {
    format!(
        "{}/{}-{}",
        registry.trim_end_matches('/'),
        cove_k8s::names::dns_label(project),
        cove_k8s::names::dns_label(service)
    )
}

/// `HOST[:PORT]/PREFIX` as Docker names repositories, or why not.
pub fn check_registry(registry: &str) -> Result<(), String> {
    let hint =
        "give `HOST[:PORT]/PREFIX`, e.g. `registry.example.com/team` or `127.0.0.1:5000/cove`";
    if registry.contains("://") {
        return Err(format!(
            "--registry {registry:?}: a registry is named without a scheme\n  hint: {hint}"
        ));
    }
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c);
    if registry.is_empty() || !registry.chars().all(ok) {
        return Err(format!(
            "--registry {registry:?}: Docker names repositories with lowercase letters, digits and `._-/:` only\n  hint: {hint}"
        ));
    }
    Ok(())
}

/// What `--push` makes an image of, for one service.
enum Source {
    /// The service's `build:`.
    Build(BuildSpec),
    /// A static program, in a context of its own `FROM scratch`.
    Scratch { program: PathBuf, args: Vec<String> },
    /// This binary (and what it loads), `FROM scratch`.
    Cove,
}

/// Whether `bytes` is an ELF executable without an interpreter
/// (`PT_INTERP`): a program that runs alone in an empty image.
pub fn is_static_elf(bytes: &[u8]) -> bool {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return false;
    }
    let (wide, little) = (bytes[4] == 2, bytes[5] == 1);
    let int = |at: usize, len: usize| -> Option<u64> {
        let b = bytes.get(at..at + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if little { b[len - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    };
    let header = if wide {
        (int(0x20, 8), int(0x36, 2), int(0x38, 2))
    } else {
        (int(0x1c, 4), int(0x2a, 2), int(0x2c, 2))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = header else {
        return false;
    };
    // An executable has program headers; a relocatable object has none.
    if phnum == 0 || phentsize < 4 {
        return false;
    }
    (0..phnum).all(|i| {
        let at = usize::try_from(phoff + i * phentsize).unwrap_or(usize::MAX);
        // PT_INTERP = 3; a header past the end: not an ELF we can trust.
        int(at, 4).is_some_and(|t| t != 3)
    })
}

/// Builds and pushes the images of the named services (all when `names`
/// is empty); records them. False when one failed (said on stderr).
pub fn run(project: &Project, plan: &Plan, args: &BuildArgs) -> anyhow::Result<bool> {
    let (names, quiet) = (&args.service_names, args.quiet);
    let registry = args.registry.as_deref().unwrap_or_default();
    if let Err(e) = check_registry(registry) {
        eprintln!("error: {e}");
        return Ok(false);
    }
    let state_dir = cove_runtime::plan::state_dir(&project.app, &project.project_dir);
    let mut sources = Vec::new();
    for (name, svc) in &project.app.services {
        if !names.is_empty() && !names.contains(name) {
            continue;
        }
        let repo = repository(registry, &project.app.name, name);
        if let Some(b) = &svc.build {
            let spec = BuildSpec {
                context: PathBuf::from(&b.context),
                skip: vec![state_dir.clone()],
                dockerfile: b.dockerfile.clone(),
                tag: format!("{repo}:{TAG}"),
                args: b
                    .args
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                    .collect(),
                target: b.target.clone(),
                labels: b.labels().into_iter().collect(),
                no_cache: args.no_cache,
                pull: args.pull,
            };
            sources.push((name.clone(), repo, Source::Build(spec)));
            continue;
        }
        if svc.image.is_some() {
            continue;
        }
        let Some(sp) = plan.services.iter().find(|s| &s.name == name) else {
            continue;
        };
        let program = sp.argv.first().and_then(|p| {
            cove_runtime::artifact::files_named(std::slice::from_ref(p), &sp.workdir).pop()
        });
        let is_static = program
            .as_deref()
            .is_some_and(|p| fs_err::read(p).is_ok_and(|b| is_static_elf(&b)));
        match program {
            Some(program) if is_static => sources.push((
                name.clone(),
                repo,
                Source::Scratch {
                    program,
                    args: sp.argv[1..].to_vec(),
                },
            )),
            _ => eprintln!(
                "cove: {name}: no image pushed: it runs natively and its program ({}) is not a static binary\n  hint: add `build:` (a Dockerfile) to the service",
                sp.argv.first().map_or("none", String::as_str)
            ),
        }
    }
    if sources.is_empty() {
        eprintln!("cove: nothing to push (no service has `build:` or a static native program)");
        return Ok(true);
    }
    // The init containers of services that wait run cove itself.
    let waits = project
        .app
        .services
        .values()
        .any(|s| !s.depends_on.is_empty());
    if waits {
        let repo = format!("{}/cove", registry.trim_end_matches('/'));
        sources.push((COVE.to_string(), repo, Source::Cove));
    }
    let rt = crate::daemon::runtime()?;
    let mut done = BTreeMap::new();
    let mut cove = None;
    let mut ok = true;
    for (name, repo, source) in sources {
        let is_cove = matches!(source, Source::Cove);
        let result = rt.block_on(build_and_push(&name, &repo, source, quiet));
        match result {
            Ok(image) if is_cove => {
                eprintln!("cove: pushed {image} (the init containers' `cove k8s wait-for`)");
                cove = Some(image);
            }
            Ok(image) => {
                eprintln!("cove: pushed {image}");
                done.insert(name, image);
            }
            Err(e) => {
                eprintln!("error: {name}: {e}");
                ok = false;
                break;
            }
        }
    }
    // What was pushed is recorded even when a later service failed.
    if !done.is_empty() || cove.is_some() {
        record(&state_dir, registry, &done, cove.as_deref())?;
    }
    Ok(ok)
}

async fn build_and_push(
    name: &str,
    repo: &str,
    source: Source,
    quiet: bool,
) -> Result<String, String> {
    let engine = Engine::connect()
        .await
        .map_err(|e| format!("{e}\n  hint: {}", e.hint()))?;
    let say = |line: &str| {
        if !quiet {
            eprintln!("{name} | {line}");
        }
    };
    // The scratch context lives until the build has read it.
    let mut _context = None;
    let mut tag = TAG;
    let spec = match source {
        Source::Build(spec) => spec,
        Source::Cove => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            cove_context(dir.path())?;
            tag = env!("CARGO_PKG_VERSION");
            let spec = BuildSpec {
                context: dir.path().to_path_buf(),
                tag: format!("{repo}:{tag}"),
                ..BuildSpec::default()
            };
            _context = Some(dir);
            spec
        }
        Source::Scratch { program, args } => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            scratch_context(dir.path(), &program, &args)?;
            let spec = BuildSpec {
                context: dir.path().to_path_buf(),
                tag: format!("{repo}:{TAG}"),
                ..BuildSpec::default()
            };
            _context = Some(dir);
            spec
        }
    };
    if !quiet {
        eprintln!("cove: building {name} ({})", spec.tag);
    }
    engine
        .build(&spec, say)
        .await
        .map_err(|e| format!("{e}\n  hint: {}", e.hint()))?;
    engine
        .push(repo, tag, say)
        .await
        .map_err(|e| format!("{e}\n  hint: {}", e.hint()))
}

/// The name cove's own image is built under (in messages).
const COVE: &str = "cove";

/// A context for cove's own image: this binary at `/cove` and, when it is
/// linked dynamically, the loader and libraries `ldd` says it loads, at
/// their paths; a Dockerfile `FROM scratch` with `/cove` as entrypoint.
fn cove_context(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let exe = std::env::current_exe().map_err(|e| format!("this program's path: {e}"))?;
    let root = dir.join("root");
    fs_err::create_dir_all(&root).map_err(|e| e.to_string())?;
    fs_err::copy(&exe, root.join("cove")).map_err(|e| e.to_string())?;
    fs_err::set_permissions(root.join("cove"), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let bytes = fs_err::read(&exe).map_err(|e| e.to_string())?;
    if !is_static_elf(&bytes) {
        let out = std::process::Command::new("ldd")
            .arg(&exe)
            .output()
            .map_err(|e| format!("`ldd {}`: {e}\n  hint: install libc-bin", exe.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`ldd {}` failed: {}",
                exe.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        for lib in loaded_libraries(&String::from_utf8_lossy(&out.stdout)) {
            let to = root.join(lib.strip_prefix("/").unwrap_or(&lib));
            if let Some(parent) = to.parent() {
                fs_err::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            // Links followed: the file itself, under the name the binary asks for.
            fs_err::copy(&lib, &to).map_err(|e| e.to_string())?;
        }
    }
    fs_err::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY root/ /\nENTRYPOINT [\"/cove\"]\n",
    )
    .map_err(|e| e.to_string())
}

/// The absolute paths in `ldd`'s output: each `NAME => /path (0x…)`, and
/// the loader's `/path (0x…)`; the vDSO (no path) is left out.
fn loaded_libraries(ldd: &str) -> Vec<PathBuf> {
    ldd.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => l,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A context with `program` as `/app` and a Dockerfile `FROM scratch`
/// running it with `args`.
fn scratch_context(dir: &Path, program: &Path, args: &[String]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let app = dir.join("app");
    fs_err::copy(program, &app).map_err(|e| e.to_string())?;
    fs_err::set_permissions(&app, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let cmd = serde_json::to_string(args).map_err(|e| e.to_string())?;
    fs_err::write(
        dir.join("Dockerfile"),
        format!("FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\nCMD {cmd}\n"),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF header with the given program header types.
    fn elf64(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * types.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        (b[4], b[5]) = (2, 1);
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            b[64 + 56 * i..68 + 56 * i].copy_from_slice(&t.to_le_bytes());
        }
        b
    }

    #[test]
    fn ldd_output_gives_the_loader_and_the_libraries() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        assert_eq!(
            loaded_libraries(ldd),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn static_is_an_elf_without_an_interpreter() {
        // PT_LOAD, PT_NOTE: static; with PT_PHDR and PT_INTERP: dynamic.
        assert!(is_static_elf(&elf64(&[1, 4])));
        assert!(!is_static_elf(&elf64(&[6, 3, 1])));
        // No program headers (an object file), a script, a cut-off header.
        assert!(!is_static_elf(&elf64(&[])));
        assert!(!is_static_elf(b"#!/bin/sh\necho hi\n"));
        let mut cut = elf64(&[1, 1]);
        cut.truncate(64 + 56);
        assert!(!is_static_elf(&cut));
        // This machine's shell is linked dynamically.
        let sh = fs_err::read("/bin/sh").unwrap();
        assert!(!is_static_elf(&sh));
    }

    #[test]
    fn registries_are_named_as_docker_names_them() {
        assert!(check_registry("127.0.0.1:5000/cove").is_ok());
        assert!(check_registry("registry.example.com/team/app").is_ok());
        assert!(check_registry("http://127.0.0.1:5000").is_err());
        assert!(check_registry("Registry.test/x").is_err());
        // The project's and service's names as render spells them.
        assert_eq!(
            repository("reg.test/p/", "shop", "web"),
            "reg.test/p/shop-web"
        );
        let odd = repository("reg.test/p", "shop", "front_end");
        assert!(odd.starts_with("reg.test/p/shop-front-end-"), "{odd}");
    }

    #[test]
    fn the_record_keeps_each_registry_apart_and_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let one = BTreeMap::from([("web".to_string(), "r1/x-web@sha256:aa".to_string())]);
        let two = BTreeMap::from([("web".to_string(), "r2/x-web@sha256:bb".to_string())]);
        record(dir.path(), "r1", &one, None).unwrap();
        record(dir.path(), "r2", &two, Some("r2/cove@sha256:c")).unwrap();
        assert_eq!(pushed(dir.path(), "r1").unwrap(), (one, None));
        assert_eq!(
            pushed(dir.path(), "r2").unwrap(),
            (two, Some("r2/cove@sha256:c".to_string()))
        );
        assert_eq!(pushed(dir.path(), "r3").unwrap(), (BTreeMap::new(), None));
        // No temporary file left beside it.
        let names: Vec<_> = fs_err::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [PUSHED_FILE]);
    }
}
