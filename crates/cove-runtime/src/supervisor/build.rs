//! A service's build (`x-cove.build`, or a container's `build:`) and its
//! artifact: what its replicas run, digested and kept for rollbacks.

use std::sync::Arc;

use super::Report;
use super::controller::{Ctl, Interrupted};
use super::instance::{Tail, last_lines, push_line};
use crate::plan::ServicePlan;
use crate::process::{self, ProcessSpec};

impl Ctl {
    /// Runs the plan's `x-cove.build`; the failure in words.
    pub(super) async fn build(
        &mut self,
        plan: &ServicePlan,
    ) -> Result<Result<(), String>, Interrupted> {
        if plan.container.as_ref().is_some_and(|c| c.build.is_some()) {
            let (name, tx) = (plan.name.clone(), self.ctx.reports.clone());
            let redactor = plan.redactor.clone();
            let built = crate::driver::build(plan, move |line| {
                let _ = tx.send(Report::Build {
                    service: name.clone(),
                    line: redactor.scrub(line).into_owned(),
                });
            });
            return self.or_stop(built).await;
        }
        let Some(argv) = &plan.build else {
            return Ok(Ok(()));
        };
        let mut env = plan.env.clone();
        env.extend(self.ctx.extra_env.iter().cloned());
        let spec = ProcessSpec {
            argv: argv.clone(),
            workdir: plan.workdir.clone(),
            env,
            cgroup: None,
        };
        let (name, tx) = (plan.name.clone(), self.ctx.reports.clone());
        let tail: Tail = Default::default();
        let lines = tail.clone();
        let redactor = plan.redactor.clone();
        let mut running = match process::spawn(&spec, move |_, line| {
            let line = redactor.scrub_owned(line);
            push_line(&lines, &line);
            let _ = tx.send(Report::Build {
                service: name.clone(),
                line,
            });
        }) {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("build could not start: {e}"))),
        };
        let status = match self.or_stop(running.wait()).await {
            Ok(s) => s,
            Err(Interrupted) => {
                let _ = running.stop(plan.stop_signal, plan.stop_grace).await;
                return Err(Interrupted);
            }
        };
        Ok(match status.ok().and_then(|s| s.code()) {
            Some(0) => Ok(()),
            code => Err(format!(
                "build exited with {}{}",
                code.map_or("a signal".into(), |c| format!("code {c}")),
                last_lines(&tail)
            )),
        })
    }

    /// `plan` with its artifact: digest, and the kept copy its replicas run.
    pub(super) async fn with_artifact(
        &self,
        plan: Arc<ServicePlan>,
    ) -> Result<Arc<ServicePlan>, String> {
        // A container's artifact is its image: the id the tag names now.
        if let Some(c) = &plan.container {
            let digest = crate::driver::image_id(&plan, &c.image).await?;
            return Ok(Arc::new(ServicePlan {
                artifact: Some(crate::artifact::Artifact {
                    digest,
                    program: None,
                }),
                ..(*plan).clone()
            }));
        }
        let in_use: Vec<std::path::PathBuf> = self
            .instances
            .iter()
            .filter_map(|i| i.plan.artifact.as_ref()?.program.clone())
            .collect();
        let p = plan.clone();
        let artifact = tokio::task::spawn_blocking(move || {
            crate::artifact::capture(
                &p.name,
                &p.argv,
                &p.workdir,
                p.keep_artifacts.as_ref(),
                &in_use,
            )
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
        .map_err(|e| format!("cannot keep its artifact: {e}"))?;
        Ok(Arc::new(ServicePlan {
            artifact: Some(artifact),
            ..(*plan).clone()
        }))
    }
}
