//! Helpers for the translation's unit tests: a Compose file written to a
//! temp dir, loaded by `cove_spec::load` (interpolation, `env_file`,
//! merging: the real loader) and rendered; then the typed objects.

use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec, Service};
use k8s_openapi::api::networking::v1::Ingress;

use super::{Options, RenderError, Rendered, render};
use crate::Object;

/// Loads `compose` (as compose.yaml) with `files` (name, content) beside it.
pub(crate) fn load_with(compose: &str, files: &[(&str, &str)]) -> cove_spec::App {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "compose.yaml", compose);
    for (name, content) in files {
        write(dir.path(), name, content);
    }
    let opts = cove_spec::Options {
        files: vec![dir.path().join("compose.yaml")],
        project_dir: Some(dir.path().to_path_buf()),
        project_name: Some("app".into()),
        ..cove_spec::Options::default()
    };
    match cove_spec::load(&opts) {
        Ok(p) => p.app,
        Err(e) => panic!("the test's compose file does not load:\n{e}"),
    }
}

fn write(dir: &Path, name: &str, content: &str) {
    fs_err::write(dir.join(name), content).expect("write a test file");
}

/// Renders `compose` with default options; panics on a render error.
pub(crate) fn rendered(compose: &str) -> Rendered {
    try_render(compose, &[]).unwrap_or_else(|e| panic!("render failed: {e}"))
}

/// Renders `compose` with `files` beside it.
pub(crate) fn try_render(compose: &str, files: &[(&str, &str)]) -> Result<Rendered, RenderError> {
    render(&load_with(compose, files), &Options::default())
}

macro_rules! find {
    ($fn:ident, $variant:ident, $ty:ty) => {
        /// The object of this kind named `name`; panics when there is none.
        #[allow(dead_code)]
        pub(crate) fn $fn<'a>(r: &'a Rendered, name: &str) -> &'a $ty {
            r.objects
                .iter()
                .find_map(|o| match o {
                    Object::$variant(x) if x.metadata.name.as_deref() == Some(name) => {
                        Some(x.as_ref())
                    }
                    _ => None,
                })
                .unwrap_or_else(|| {
                    panic!("no {} {name:?} among {:?}", stringify!($variant), names(r))
                })
        }
    };
}

find!(deployment, Deployment, Deployment);
find!(statefulset, StatefulSet, StatefulSet);
find!(job, Job, Job);
find!(service, Service, Service);
find!(hpa, HorizontalPodAutoscaler, HorizontalPodAutoscaler);
find!(ingress, Ingress, Ingress);

/// `Kind/name` of every object.
pub(crate) fn names(r: &Rendered) -> Vec<String> {
    r.objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o.kind(),
                o.metadata().name.clone().unwrap_or_default()
            )
        })
        .collect()
}

/// Whether an object of `kind` named `name` was rendered.
pub(crate) fn has(r: &Rendered, kind: &str, name: &str) -> bool {
    names(r).contains(&format!("{kind}/{name}"))
}

/// The pod spec of the workload named `name`, whatever its kind.
pub(crate) fn pod<'a>(r: &'a Rendered, name: &str) -> &'a PodSpec {
    r.objects
        .iter()
        .find_map(|o| {
            if o.metadata().name.as_deref() != Some(name) {
                return None;
            }
            match o {
                Object::Deployment(d) => d.spec.as_ref()?.template.spec.as_ref(),
                Object::StatefulSet(s) => s.spec.as_ref()?.template.spec.as_ref(),
                Object::Job(j) => j.spec.as_ref()?.template.spec.as_ref(),
                _ => None,
            }
        })
        .unwrap_or_else(|| panic!("no workload {name:?} among {:?}", names(r)))
}

/// The main container of the workload named `name`.
pub(crate) fn main<'a>(r: &'a Rendered, name: &str) -> &'a Container {
    &pod(r, name).containers[0]
}
