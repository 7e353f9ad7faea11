//! Images: present, pulled, built from a context, tagged, removed.

use bollard::query_parameters as q;
use futures_util::StreamExt;

use super::{BuildSpec, DockerError, Engine, engine};

impl Engine {
    /// The id of `image` when it is on this machine.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(engine(format!("inspecting image `{image}`"))(e)),
        }
    }

    /// The id of `image`, pulled first when it is missing.
    pub async fn ensure_image(&self, image: &str) -> Result<String, DockerError> {
        if let Some(id) = self.image_id(image).await? {
            return Ok(id);
        }
        self.pull(image).await
    }

    /// Pulls `image` again, even when it is here (`--pull always`); its id.
    pub async fn pull(&self, image: &str) -> Result<String, DockerError> {
        let options = q::CreateImageOptionsBuilder::new()
            .from_image(image)
            .build();
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(step) = pull.next().await {
            if let Err(e) = step {
                return Err(DockerError::MissingImage {
                    image: image.into(),
                    reason: e.to_string(),
                });
            }
        }
        self.image_id(image)
            .await?
            .ok_or_else(|| DockerError::MissingImage {
                image: image.into(),
                reason: "the pull ended without it".into(),
            })
    }

    /// Builds `context` (a directory, sent as a tar stream without what
    /// `.dockerignore` excludes nor cove's state directory) into
    /// `tag`; each line of the build's output goes to `on_line`. The
    /// image's id.
    pub async fn build(
        &self,
        spec: &BuildSpec,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, DockerError> {
        let (context, tag) = (spec.context.as_path(), spec.tag.as_str());
        let failed = |reason: String| DockerError::Build {
            tag: tag.into(),
            reason,
        };
        let dir = context.to_path_buf();
        let (dockerfile, skip) = (spec.dockerfile.clone(), spec.skip.clone());
        let tar = tokio::task::spawn_blocking(move || {
            crate::context::archive(&dir, dockerfile.as_deref(), &skip)
        })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| {
            failed(format!(
                "cannot read the context {}: {e}",
                context.display()
            ))
        })?;
        let mut options = q::BuildImageOptionsBuilder::new()
            .t(tag)
            .rm(true)
            .buildargs(&spec.args)
            .labels(&spec.labels);
        if let Some(f) = &spec.dockerfile {
            options = options.dockerfile(f);
        }
        if let Some(t) = &spec.target {
            options = options.target(t);
        }
        if spec.no_cache {
            options = options.nocache(true);
        }
        if spec.pull {
            options = options.pull("1");
        }
        let mut stream = self.docker.build_image(
            options.build(),
            None,
            Some(bollard::body_full(bytes::Bytes::from(tar))),
        );
        let mut last = String::new();
        while let Some(step) = stream.next().await {
            let info = step.map_err(|e| failed(e.to_string()))?;
            if let Some(detail) = info.error_detail {
                return Err(failed(detail.message.unwrap_or_default()));
            }
            for line in info.stream.iter().flat_map(|s| s.lines()) {
                if !line.trim().is_empty() {
                    on_line(line);
                    last = line.to_string();
                }
            }
        }
        self.image_id(tag)
            .await?
            .ok_or_else(|| failed(format!("no image at the end; last line: {last}")))
    }

    /// The ids of the images carrying `label` (`KEY=VALUE`): those cove
    /// built for a project.
    pub async fn images_labelled(&self, label: &str) -> Result<Vec<String>, DockerError> {
        let filters = std::collections::HashMap::from([("label", vec![label])]);
        let options = q::ListImagesOptionsBuilder::new().filters(&filters).build();
        let found = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(engine(format!("listing the images labelled {label}")))?;
        Ok(found.into_iter().map(|i| i.id).collect())
    }

    /// Tags `image` (a tag or an id) as `repo:tag`.
    pub async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<(), DockerError> {
        let options = q::TagImageOptionsBuilder::new().repo(repo).tag(tag).build();
        self.docker
            .tag_image(image, Some(options))
            .await
            .map_err(engine(format!("tagging `{image}` as `{repo}:{tag}`")))
    }

    /// Pushes `repo:tag` to the registry its name starts with (no
    /// credentials sent: a registry that needs them is refused with the
    /// engine's words); each status line goes to `on_line`. The name
    /// with the digest the registry knows it by (`repo@sha256:…`), as the
    /// engine recorded it (`RepoDigests`).
    pub async fn push(
        &self,
        repo: &str,
        tag: &str,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, DockerError> {
        let image = format!("{repo}:{tag}");
        let failed = |reason: String| DockerError::Push {
            image: image.clone(),
            reason,
        };
        let options = q::PushImageOptionsBuilder::new().tag(tag).build();
        let mut stream = self.docker.push_image(repo, Some(options), None);
        while let Some(step) = stream.next().await {
            let info = step.map_err(|e| failed(e.to_string()))?;
            if let Some(status) = info.status.as_deref().filter(|s| !s.trim().is_empty()) {
                on_line(status);
            }
        }
        let inspected = self
            .docker
            .inspect_image(&image)
            .await
            .map_err(engine(format!("inspecting image `{image}`")))?;
        let prefix = format!("{repo}@");
        inspected
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find(|d| d.starts_with(&prefix))
            .ok_or_else(|| {
                failed(format!(
                    "the engine recorded no digest of {repo} after the push"
                ))
            })
    }

    /// Removes an image (by tag or id), if it is there.
    pub async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        let options = q::RemoveImageOptionsBuilder::new().force(true).build();
        match self.docker.remove_image(image, Some(options), None).await {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("removing image `{image}`"))(e)),
        }
    }
}
