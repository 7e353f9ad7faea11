//! What a state directory says of the project it keeps (`project.json`,
//! written by the CLI when the project leases its addresses): its name,
//! environment, directory and Compose files. `cove ls` lists projects by
//! it; the gateway names the project that holds an address by it.

use std::path::{Path, PathBuf};

/// The file in a state directory.
pub const FILE: &str = "project.json";

/// A project, as `cove ls` lists it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct About {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    pub project_dir: PathBuf,
    pub files: Vec<PathBuf>,
}

impl About {
    /// What `state` says, if it says it.
    pub fn read(state: &Path) -> Option<About> {
        let text = fs_err::read(state.join(FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Written into `state`, whole or not at all.
    pub fn write(&self, state: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        cove_runtime::private::write_atomically(&state.join(FILE), &text)
    }
}

impl std::fmt::Display for About {
    /// `` `shop`, environment `prod` in /src/shop ``.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`", self.name)?;
        if let Some(env) = &self.env {
            write!(f, ", environment `{env}`")?;
        }
        write!(f, " in {}", self.project_dir.display())
    }
}
