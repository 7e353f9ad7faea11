//! A service's build (`x-cove.build`, or a container's `build:`) and its
//! artifact: what its replicas run, digested and kept for rollbacks.

use std::sync::Arc;

use super::Report;
use super::controller::{Ctl, Interrupted};
use super::instance::{Tail, last_lines, push_line};
use crate::driver::OnLine;
use crate::plan::ServicePlan;

impl Ctl {
    /// Runs the plan's `x-cove.build`; the failure in words.
    pub(super) async fn build(
        &mut self,
        plan: &ServicePlan,
    ) -> Result<Result<(), String>, Interrupted> {
        if plan.container.as_ref().is_some_and(|c| c.build.is_some()) {
            let (name, tx) = (plan.name.clone(), self.ctx.reports.clone());
            let redactor = plan.redactor.clone();
            let driver = self.ctx.driver.clone();
            let on_line = Box::new(move |line: &str| {
                let _ = tx.send(Report::Build {
                    service: name.clone(),
                    line: redactor.scrub(line).into_owned(),
                });
            });
            return self.or_stop(driver.build_image(plan, on_line)).await;
        }
        let Some(argv) = &plan.build else {
            return Ok(Ok(()));
        };
        let mut env = plan.env.clone();
        env.extend(self.ctx.extra_env.iter().cloned());
        let (name, tx) = (plan.name.clone(), self.ctx.reports.clone());
        let tail: Tail = Default::default();
        let lines = tail.clone();
        let redactor = plan.redactor.clone();
        let on_line: OnLine = Arc::new(move |_, line| {
            let line = redactor.scrub_owned(line);
            push_line(&lines, &line);
            let _ = tx.send(Report::Build {
                service: name.clone(),
                line,
            });
        });
        let mut running = match self.ctx.driver.start_build(plan, argv, env, on_line) {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("build could not start: {e}"))),
        };
        let code = match self.or_stop(running.wait()).await {
            Ok(code) => code,
            Err(Interrupted) => {
                running.stop(plan.stop_signal, plan.stop_grace).await;
                return Err(Interrupted);
            }
        };
        Ok(match code {
            Some(0) => Ok(()),
            code => Err(format!(
                "build exited with {}{}",
                code.map_or("a signal".into(), |c| format!("code {c}")),
                last_lines(&tail)
            )),
        })
    }

    /// `plan` with its artifact: digest, and the kept copy its replicas run
    /// (a container's: its image id).
    pub(super) async fn with_artifact(
        &self,
        plan: Arc<ServicePlan>,
    ) -> Result<Arc<ServicePlan>, String> {
        let in_use: Vec<std::path::PathBuf> = self
            .instances
            .iter()
            .filter_map(|i| i.plan.artifact.as_ref()?.program.clone())
            .collect();
        let artifact = self.ctx.driver.artifact(&plan, in_use).await?;
        Ok(Arc::new(ServicePlan {
            artifact: Some(artifact),
            ..(*plan).clone()
        }))
    }
}
