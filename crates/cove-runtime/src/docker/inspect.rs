//! What `cove top` and `cove images` ask the engine of a container cove
//! runs: its processes (the engine's `top`, as `ps -ef` shows them) and
//! the image it was made from.

use bollard::query_parameters as q;

use super::{DockerError, Engine, engine};

/// A container's processes, as the engine's `top` lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Top {
    /// Column titles (`UID`, `PID`, `PPID`, `C`, `STIME`, `TTY`, `TIME`, `CMD`).
    pub titles: Vec<String>,
    /// One row per process, a value per title.
    pub processes: Vec<Vec<String>>,
}

/// The image a container runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// What the container was made from, as it was named (`web:latest`,
    /// `cove-app-web:rev3`).
    pub name: String,
    /// `sha256:…`.
    pub id: String,
    /// `repository:tag` names the image has.
    pub repo_tags: Vec<String>,
    /// Bytes.
    pub size: i64,
}

impl Engine {
    /// The processes of container `name` (`ps -ef` columns), while it runs.
    pub async fn top(&self, name: &str) -> Result<Top, DockerError> {
        let options = q::TopOptionsBuilder::new().ps_args("-ef").build();
        let top = self
            .docker
            .top_processes(name, Some(options))
            .await
            .map_err(engine(format!("listing the processes of `{name}`")))?;
        Ok(Top {
            titles: top.titles.unwrap_or_default(),
            processes: top.processes.unwrap_or_default(),
        })
    }

    /// The image container `name` runs.
    pub async fn image_of(&self, name: &str) -> Result<ImageInfo, DockerError> {
        let c = self
            .docker
            .inspect_container(name, None)
            .await
            .map_err(engine(format!("inspecting `{name}`")))?;
        let id = c.image.unwrap_or_default();
        let named = c.config.and_then(|c| c.image).unwrap_or_default();
        let image = self
            .docker
            .inspect_image(&id)
            .await
            .map_err(engine(format!("inspecting image `{named}`")))?;
        Ok(ImageInfo {
            name: named,
            id: image.id.unwrap_or(id),
            repo_tags: image.repo_tags.unwrap_or_default(),
            size: image.size.unwrap_or_default(),
        })
    }
}
