//! The loader's entry point: options in, a [`Project`] (or every error) out.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::diag::{Diagnostic, Style};
use crate::interpolate::{Origin, Vars};
use crate::load::Loader;
use crate::model::App;
use crate::source::SourceMap;

/// What to load. The caller (the CLI) has already found the files; this
/// crate reads only the files named here and those they reference.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Compose files, absolute, in merge order.
    pub files: Vec<PathBuf>,
    /// Base of relative paths; default: the first file's directory.
    pub project_dir: Option<PathBuf>,
    /// `-p`: must already be a valid name.
    pub project_name: Option<String>,
    /// `--env-file`s; `None` reads `<project_dir>/.env` when it exists.
    pub env_files: Option<Vec<PathBuf>>,
    /// The process environment.
    pub environ: Vec<(String, String)>,
    /// `--profile`s; when empty, `COMPOSE_PROFILES` applies.
    pub profiles: Vec<String>,
    /// Services named on the command line: the app is cut down to them and
    /// their dependencies, and their own profiles are enabled (as Compose does).
    pub services: Vec<String>,
    /// With `services`: their profiles are enabled and their names checked,
    /// but the app is not cut down (`up SERVICE` adds to a running app that
    /// has the others).
    pub keep_all: bool,
}

/// A loaded application and what was learned on the way.
#[derive(Debug, Clone)]
pub struct Project {
    pub app: App,
    /// The name the project has of itself: `COMPOSE_PROJECT_NAME` in its
    /// `.env`, else `name:` in its files, else its directory's name. The
    /// app's name differs when `-p` (or `COMPOSE_PROJECT_NAME` in the
    /// environment) gives another: then it is another project of the same
    /// files.
    pub own_name: Option<String>,
    pub project_dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// Active profiles.
    pub profiles: Vec<String>,
    /// Services left out by profiles, with their profiles.
    pub disabled: IndexMap<String, Vec<String>>,
    /// Dependency graph of the enabled services.
    pub graph: crate::graph::Graph,
    pub warnings: Vec<Diagnostic>,
    /// `x-cove` fields used and not acted on yet ([`crate::pending`]):
    /// warnings for the commands that show or start the app (`config`,
    /// `up`), not for every command.
    pub pending: Vec<Diagnostic>,
    pub sources: SourceMap,
    /// The variables interpolation used (the process environment, the env
    /// files, `COMPOSE_PROJECT_NAME`), sorted by name.
    pub variables: Vec<(String, String)>,
}

/// Loading failed: every error found (and the warnings), with the sources
/// needed to show them.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: SourceMap,
}

impl LoadFailure {
    /// All diagnostics as text, errors counted at the end.
    pub fn render(&self, style: &Style) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&d.render(&self.sources, style));
            out.push('\n');
        }
        let n = self.diagnostics.iter().filter(|d| d.is_error()).count();
        out.push_str(&format!(
            "{}error{}: the app is invalid ({n} error{})\n",
            style.red,
            style.reset,
            if n == 1 { "" } else { "s" }
        ));
        out
    }
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(&Style::plain()))
    }
}

impl std::error::Error for LoadFailure {}

/// Lowercase, keep `[a-z0-9_-]`, trim leading `_` and `-` (Compose's rule).
pub fn normalize_project_name(s: &str) -> String {
    let kept: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

/// Loads, merges, validates and resolves an app.
pub fn load(opts: &Options) -> Result<Project, LoadFailure> {
    load_with(opts, true)
}

/// As [`load`], with every `${...}` kept as written (`cove config
/// --no-interpolate`): values that must be numbers or sizes and are written
/// as variables then fail to load.
pub fn load_uninterpolated(opts: &Options) -> Result<Project, LoadFailure> {
    load_with(opts, false)
}

fn load_with(opts: &Options, interpolate: bool) -> Result<Project, LoadFailure> {
    let environ: IndexMap<String, String> = opts.environ.iter().cloned().collect();
    let mut loader = Loader::new(environ.get("HOME").cloned());
    loader.interpolate = interpolate;
    if opts.files.is_empty() {
        loader.diags.push(
            Diagnostic::error(None, "no compose file found")
                .with_hint("create compose.yaml, or name files with `-f` or `COMPOSE_FILE`"),
        );
        return Err(failure(loader));
    }
    let project_dir = opts
        .project_dir
        .clone()
        .or_else(|| opts.files[0].parent().map(Path::to_path_buf))
        .unwrap_or_default();

    let mut vars = Vars::default();
    for (k, v) in &environ {
        vars.set(k.clone(), v.clone(), Origin::Process);
    }
    // As Compose: `${PWD}` is the working directory even when no shell set it.
    if let Ok(cwd) = std::env::current_dir() {
        vars.set_default("PWD", cwd.to_string_lossy().into_owned(), Origin::Process);
    }
    match &opts.env_files {
        Some(files) => loader.read_env_files(&mut vars, files, None),
        None => {
            let default = project_dir.join(".env");
            if default.is_file() {
                loader.read_env_files(&mut vars, &[default], None);
            }
        }
    }

    // The name is known before loading, so `${COMPOSE_PROJECT_NAME}` works:
    // `-p`, `COMPOSE_PROJECT_NAME`, the files' `name:` (interpolated), or the
    // directory's name.
    let own_name = vars
        .get("COMPOSE_PROJECT_NAME")
        .filter(|_| matches!(vars.origin("COMPOSE_PROJECT_NAME"), Some(Origin::File(_))))
        .map(normalize_project_name)
        .filter(|n| !n.is_empty())
        .or_else(|| name_in_files(&opts.files, &vars))
        .or_else(|| {
            let dir = project_dir.file_name()?.to_string_lossy().to_string();
            Some(normalize_project_name(&dir)).filter(|n| !n.is_empty())
        });
    let name = project_name(opts, &vars, &mut loader).or_else(|| own_name.clone());
    if let Some(n) = &name {
        vars.set_default("COMPOSE_PROJECT_NAME", n.clone(), Origin::Process);
    }
    let files: Vec<_> = opts.files.iter().map(|f| (f.clone(), None)).collect();
    let root = loader.load_files(&files, &vars, &project_dir);

    let profiles: Vec<String> = if opts.profiles.is_empty() {
        vars.get("COMPOSE_PROFILES")
            .map(|p| {
                p.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        opts.profiles.clone()
    };
    let Some(name) = name else {
        loader.diags.push(
            Diagnostic::error(None, "the project has no name")
                .with_hint("set `name:` in the compose file, or pass `-p NAME`"),
        );
        return Err(failure(loader));
    };
    let mut profiles = profiles;
    select_profiles(&root, &opts.services, &mut profiles, &mut loader);
    let resolved =
        crate::resolve::resolve(root, &name, &profiles, &vars, &project_dir, &mut loader);
    loader.diags.sort();
    if loader.diags.has_errors() {
        return Err(failure(loader));
    }
    let Some((mut app, disabled, graph)) = resolved else {
        return Err(failure(loader));
    };
    if !opts.services.is_empty() && !opts.keep_all {
        let keep = graph.closure(&opts.services);
        app.services.retain(|name, _| keep.contains(name));
    }
    let pending = crate::pending::warnings(&app, &loader.sources);
    let mut variables: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    variables.sort();
    Ok(Project {
        variables,
        app,
        own_name,
        project_dir,
        files: opts.files.clone(),
        profiles,
        disabled,
        graph,
        warnings: loader.diags.into_vec(),
        pending,
        sources: loader.sources,
    })
}

/// Checks the services named on the command line exist, and enables their
/// own profiles.
fn select_profiles(
    root: &crate::node::Node,
    named: &[String],
    profiles: &mut Vec<String>,
    loader: &mut Loader,
) {
    if named.is_empty() {
        return;
    }
    let services = root
        .as_map()
        .and_then(|m| m.get("services"))
        .and_then(|s| s.as_map());
    let all: Vec<&str> = services.map(|s| s.keys().collect()).unwrap_or_default();
    for name in named {
        let Some(svc) = services.and_then(|s| s.get(name)) else {
            let hint = match crate::diag::suggest(name, all.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("services: {}", all.join(", ")),
            };
            loader
                .diags
                .push(Diagnostic::error(None, format!("no such service `{name}`")).with_hint(hint));
            continue;
        };
        let own = svc
            .as_map()
            .and_then(|m| m.get("profiles"))
            .and_then(|p| p.as_seq())
            .unwrap_or_default();
        for p in own.iter().filter_map(|p| p.as_text()) {
            if !profiles.iter().any(|q| q == p) {
                profiles.push(p.to_string());
            }
        }
    }
}

/// The last non-empty top-level `name:` of the files, interpolated and
/// normalised. Problems in the files are reported by the full load.
fn name_in_files(files: &[PathBuf], vars: &Vars) -> Option<String> {
    let mut found = None;
    for file in files {
        let Ok(text) = fs_err::read_to_string(file) else {
            continue;
        };
        // Parse only files that may have a top-level `name` (block style at
        // column 0, or a flow/JSON document).
        let may_have_name = text.trim_start().starts_with('{')
            || text
                .lines()
                .any(|l| l.trim_start_matches(['"', '\'']).starts_with("name"));
        if !may_have_name {
            continue;
        }
        let mut ignored = crate::diag::Diagnostics::default();
        for doc in crate::parse::parse(crate::source::FileId(0), &text, &mut ignored) {
            let Some(raw) = doc
                .as_map()
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_text())
            else {
                continue;
            };
            let lookup = |n: &str| vars.get(n).map(str::to_string);
            let text = crate::interpolate::interpolate(raw, &lookup)
                .map(|i| i.text)
                .unwrap_or_default();
            let normal = normalize_project_name(&text);
            if !normal.is_empty() {
                found = Some(normal);
            }
        }
    }
    found
}

fn project_name(opts: &Options, vars: &Vars, loader: &mut Loader) -> Option<String> {
    let explicit = opts.project_name.clone().map(|n| (n, "-p")).or_else(|| {
        vars.get("COMPOSE_PROJECT_NAME")
            .filter(|n| !n.is_empty())
            .map(|n| (n.to_string(), "COMPOSE_PROJECT_NAME"))
    });
    let (n, from) = explicit?;
    let normal = normalize_project_name(&n);
    if normal != n || n.is_empty() {
        loader.diags.push(
            Diagnostic::error(None, format!("invalid project name `{n}` (from {from})")).with_hint(
                format!(
                    "use lowercase letters, digits, `-` and `_`, starting with a letter or digit{}",
                    if normal.is_empty() {
                        String::new()
                    } else {
                        format!(", e.g. `{normal}`")
                    }
                ),
            ),
        );
        return None;
    }
    Some(n)
}

fn failure(mut loader: Loader) -> LoadFailure {
    loader.diags.sort();
    LoadFailure {
        diagnostics: loader.diags.into_vec(),
        sources: loader.sources,
    }
}

impl Project {
    /// A digest (SHA-256, hex) of a service's resolved configuration as
    /// `cove config` prints it: it changes when anything of the service
    /// does (`cove config --hash`; cove's own, not docker compose's).
    pub fn service_hash(&self, name: &str) -> Option<String> {
        let svc = self.app.services.get(name)?;
        let json = serde_json::to_string(svc).ok()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
        Some(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
    }
}
