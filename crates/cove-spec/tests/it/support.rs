//! Helpers shared by the loader tests.

use std::path::{Path, PathBuf};

use cove_spec::{Options, Style};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `../shared` beside the project, where the workplace keeps the corpus and
/// the Compose schema. CI always has it: a test that needs it fails when it
/// is missing rather than passing without checking anything.
pub fn shared_dir() -> PathBuf {
    let p = repo_root().join("../shared");
    assert!(
        p.is_dir(),
        "{} is missing: this test reads the workplace's corpus and schema there \
         (clone the project beside `shared/`, as CI does)",
        p.display()
    );
    p
}

/// A hermetic environment: `HOME=/home/user` plus `extra`.
pub fn environ<K: ToString, V: ToString>(
    extra: impl IntoIterator<Item = (K, V)>,
) -> Vec<(String, String)> {
    let mut env = vec![("HOME".to_string(), "/home/user".to_string())];
    env.extend(
        extra
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env
}

/// Per-fixture options, from `options.json` beside the compose file.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FixtureOptions {
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub env_files: Option<Vec<String>>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub project_name: Option<String>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub services: Vec<String>,
}

/// Options for loading the app in `dir`, hermetic: the environment is only
/// `HOME=/home/user` plus what `options.json` says.
pub fn options_for(dir: &Path) -> Options {
    let o: FixtureOptions = match fs_err::read_to_string(dir.join("options.json")) {
        Ok(t) => serde_json::from_str(&t).unwrap(),
        Err(_) => FixtureOptions::default(),
    };
    let files = if o.files.is_empty() {
        vec![dir.join("compose.yaml")]
    } else {
        o.files.iter().map(|f| dir.join(f)).collect()
    };
    let environ = environ(o.env);
    Options {
        files,
        project_dir: o.workdir.map(|w| dir.join(w)),
        project_name: o.project_name,
        env_files: o.env_files.map(|v| v.iter().map(|f| dir.join(f)).collect()),
        environ,
        profiles: o.profiles,
        services: o.services,
        keep_all: false,
    }
}

/// Loads and renders either the resolved app (YAML) or the diagnostics, with
/// the fixture's absolute directory replaced by `<dir>`.
pub fn render(dir: &Path, opts: &Options) -> (bool, String) {
    let dir_text = dir.display().to_string();
    match cove_spec::load(opts) {
        Ok(p) => {
            let mut out = String::new();
            for w in p.warnings.iter().chain(&p.pending) {
                out.push_str(&w.render(&p.sources, &Style::plain()));
            }
            if !out.is_empty() {
                out.push_str("---\n");
            }
            let v = serde_json::to_value(&p.app).unwrap();
            out.push_str(&cove_spec::yaml_out::to_yaml(&v));
            (true, out.replace(&dir_text, "<dir>"))
        }
        Err(f) => (false, f.render(&Style::plain()).replace(&dir_text, "<dir>")),
    }
}
