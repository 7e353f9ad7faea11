//! Containers: created with cove's labels, started, followed line by
//! line, waited for, stopped, health-checked by the engine, removed, and
//! found again by label.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig};
use bollard::query_parameters as q;
use futures_util::StreamExt;

use super::{Container, ContainerSpec, DockerError, Engine, EngineHealth, Existing, Found, engine};
use crate::output::Stream;

impl Engine {
    /// What the engine is asked to create for `spec`.
    fn create_body(&self, spec: &ContainerSpec) -> ContainerCreateBody {
        let env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            env: Some(env),
            labels: Some(spec.labels.clone()),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            stop_signal: spec.stop_signal.clone(),
            hostname: spec.hostname.clone(),
            healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
                test: Some(h.test.clone()),
                interval: Some(nanos(h.interval)),
                timeout: Some(nanos(h.timeout)),
                retries: Some(i64::from(h.retries)),
                start_period: Some(nanos(h.start_period)),
                start_interval: self.knows_start_interval().then(|| nanos(h.start_interval)),
            }),
            host_config: Some(host_config(spec)),
            networking_config: networking_config(spec),
            exposed_ports: (!spec.ports.is_empty()).then(|| {
                spec.ports
                    .iter()
                    .map(|p| format!("{}/{}", p.container_port, p.protocol))
                    .collect()
            }),
            ..Default::default()
        }
    }

    /// Creates and starts a container; its output (both streams, line by
    /// line) goes to `on_line` until it ends.
    pub async fn run(
        &self,
        spec: &ContainerSpec,
        on_line: impl FnMut(Stream, String) + Send + 'static,
    ) -> Result<Container, DockerError> {
        self.run_in_place_of(spec, Existing::Other, on_line).await
    }

    /// [`Engine::run`], knowing what is there under its name (from
    /// [`Engine::existing`]): a leftover of the same name (a killed
    /// daemon's) is removed first; when there was none, no call is spent
    /// on removing it, and one made meanwhile is removed then.
    pub async fn run_in_place_of(
        &self,
        spec: &ContainerSpec,
        there: Existing,
        on_line: impl FnMut(Stream, String) + Send + 'static,
    ) -> Result<Container, DockerError> {
        let body = self.create_body(spec);
        let leftover = Container {
            id: spec.name.clone(),
            name: spec.name.clone(),
        };
        if there != Existing::Absent {
            let _ = self.remove(&leftover).await;
        }
        let options = q::CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let created = match self
            .docker
            .create_container(Some(options.clone()), body.clone())
            .await
        {
            // Its name taken since it was looked at: that one goes.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) if there == Existing::Absent => {
                let _ = self.remove(&leftover).await;
                self.docker.create_container(Some(options), body).await
            }
            r => r,
        }
        .map_err(engine(format!("creating container `{}`", spec.name)))?;
        let container = Container {
            id: created.id,
            name: spec.name.clone(),
        };
        // Attached before the start, so no line is missed.
        let logs = self.docker.logs(
            &container.id,
            Some(
                q::LogsOptionsBuilder::new()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .build(),
            ),
        );
        if let Err(e) = self.docker.start_container(&container.id, None).await {
            let _ = self.remove(&container).await;
            return Err(engine(format!("starting container `{}`", spec.name))(e));
        }
        tokio::spawn(follow(logs, on_line));
        Ok(container)
    }

    /// What is under the name `name`: a running container carrying every
    /// one of `labels` (a container a killed daemon left, made from the
    /// same spec: [`Engine::adopt`] takes it over), nothing, or anything
    /// else (to be replaced).
    pub async fn existing(&self, name: &str, labels: &HashMap<String, String>) -> Existing {
        let i = match self.docker.inspect_container(name, None).await {
            Ok(i) => i,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Existing::Absent,
            Err(_) => return Existing::Other,
        };
        let running = i.state.as_ref().and_then(|s| s.running) == Some(true);
        let theirs = i.config.and_then(|c| c.labels).unwrap_or_default();
        match i.id {
            Some(id) if running && labels.iter().all(|(k, v)| theirs.get(k) == Some(v)) => {
                Existing::Adoptable(id)
            }
            _ => Existing::Other,
        }
    }

    /// Takes over the running container `name` when it carries every one
    /// of `labels` (see [`Engine::existing`]): its output from now on goes
    /// to `on_line`.
    pub async fn adopt(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        on_line: impl FnMut(Stream, String) + Send + 'static,
    ) -> Option<Container> {
        let Existing::Adoptable(id) = self.existing(name, labels).await else {
            return None;
        };
        Some(self.follow_from_now(id, name, on_line))
    }

    /// The container `id` (named `name`), its output from now on going to
    /// `on_line`.
    pub fn follow_from_now(
        &self,
        id: String,
        name: &str,
        on_line: impl FnMut(Stream, String) + Send + 'static,
    ) -> Container {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
        let logs = self.docker.logs(
            name,
            Some(
                q::LogsOptionsBuilder::new()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .since(now)
                    .build(),
            ),
        );
        tokio::spawn(follow(logs, on_line));
        Container {
            id,
            name: name.to_string(),
        }
    }

    /// Waits for the container to end; its exit code.
    pub async fn wait(&self, c: &Container) -> Result<i64, DockerError> {
        let mut waiting = self.docker.wait_container(&c.id, None);
        match waiting.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // A non-zero exit arrives as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(engine(format!("waiting for `{}`", c.name))(e)),
            None => Err(DockerError::Engine {
                what: format!("waiting for `{}`", c.name),
                reason: "the engine closed the stream".into(),
            }),
        }
    }

    /// Sends `signal`, then kills it after `grace` (as `docker stop`).
    pub async fn stop(
        &self,
        c: &Container,
        signal: &str,
        grace: Duration,
    ) -> Result<(), DockerError> {
        let options = q::StopContainerOptionsBuilder::new()
            .signal(signal)
            .t(i32::try_from(grace.as_secs()).unwrap_or(i32::MAX))
            .build();
        match self.docker.stop_container(&c.id, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("stopping `{}`", c.name))(e)),
        }
    }

    /// Whether the engine takes a healthcheck's `start_interval`.
    fn knows_start_interval(&self) -> bool {
        let v = self.docker.client_version();
        (v.major_version, v.minor_version) >= (1, 44)
    }

    /// The engine's health of the container; `None` without a healthcheck.
    pub async fn health(&self, c: &Container) -> Result<Option<EngineHealth>, DockerError> {
        let i = self
            .docker
            .inspect_container(&c.id, None)
            .await
            .map_err(engine(format!("inspecting `{}`", c.name)))?;
        let Some(h) = i.state.and_then(|s| s.health) else {
            return Ok(None);
        };
        let status = h.status.map(|s| s.to_string()).unwrap_or_default();
        if status.is_empty() || status == "none" {
            return Ok(None);
        }
        let last = h
            .log
            .and_then(|l| l.into_iter().last())
            .map(|r| {
                let output = r.output.unwrap_or_default();
                let line = output.lines().rev().find(|l| !l.trim().is_empty());
                format!(
                    "exited with code {}{}",
                    r.exit_code.unwrap_or(-1),
                    line.map(|l| format!(": {}", l.trim())).unwrap_or_default()
                )
            })
            .unwrap_or_default();
        Ok(Some(EngineHealth {
            status,
            streak: h.failing_streak.unwrap_or_default(),
            last,
        }))
    }

    /// The container's health changes as the engine reports them
    /// (`healthy`, `unhealthy`, ...), from `since` on (the engine sends the
    /// ones it still holds first); the stream ends with the connection.
    pub fn health_events(
        &self,
        c: &Container,
        since: std::time::SystemTime,
    ) -> impl futures_util::Stream<Item = String> + use<> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("container".to_string(), vec![c.id.clone()]),
        ]);
        let since = since
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let since = format!("{}.{:09}", since.as_secs(), since.subsec_nanos());
        let options = q::EventsOptionsBuilder::new()
            .filters(&filters)
            .since(&since)
            .build();
        self.docker
            .events(Some(options))
            .take_while(|e| std::future::ready(e.is_ok()))
            .filter_map(|e| {
                let action = e.ok().and_then(|e| e.action).unwrap_or_default();
                std::future::ready(
                    action
                        .strip_prefix("health_status:")
                        .map(|s| s.trim().to_string()),
                )
            })
    }

    /// Removes the container (stopping it if it still runs).
    pub async fn remove(&self, c: &Container) -> Result<(), DockerError> {
        let options = q::RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(&c.id, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("removing `{}`", c.name))(e)),
        }
    }

    /// The host pid of the container's main process, while it runs.
    pub async fn pid(&self, c: &Container) -> Option<u32> {
        let i = self.docker.inspect_container(&c.id, None).await.ok()?;
        i.state?
            .pid
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
    }

    /// Every container (running or not) carrying all of `labels`.
    pub async fn find(&self, labels: &[(&str, &str)]) -> Result<Vec<Found>, DockerError> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = q::ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(engine("listing containers"))?;
        Ok(list
            .into_iter()
            .map(|c| Found {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.first().cloned())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                labels: c.labels.unwrap_or_default(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            })
            .collect())
    }
}

/// The host side of a container: network, mounts, limits, privileges.
fn host_config(spec: &ContainerSpec) -> HostConfig {
    HostConfig {
        network_mode: spec.network_mode.clone(),
        extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
        binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
        tmpfs: (!spec.tmpfs.is_empty()).then(|| {
            spec.tmpfs
                .iter()
                .map(|t| (t.clone(), String::new()))
                .collect()
        }),
        cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
        cap_drop: (!spec.cap_drop.is_empty()).then(|| spec.cap_drop.clone()),
        init: spec.init.then_some(true),
        sysctls: (!spec.sysctls.is_empty()).then(|| spec.sysctls.iter().cloned().collect()),
        shm_size: spec.shm_size,
        security_opt: (!spec.security_opt.is_empty()).then(|| spec.security_opt.clone()),
        devices: (!spec.devices.is_empty()).then(|| {
            spec.devices
                .iter()
                .map(|d| {
                    let mut p = d.splitn(3, ':');
                    bollard::models::DeviceMapping {
                        path_on_host: p.next().map(str::to_string),
                        path_in_container: p.next().map(str::to_string),
                        cgroup_permissions: p.next().map(str::to_string),
                    }
                })
                .collect()
        }),
        group_add: (!spec.group_add.is_empty()).then(|| spec.group_add.clone()),
        dns: (!spec.dns.is_empty()).then(|| spec.dns.clone()),
        dns_search: (!spec.dns_search.is_empty()).then(|| spec.dns_search.clone()),
        privileged: spec.privileged.then_some(true),
        readonly_rootfs: spec.read_only.then_some(true),
        port_bindings: (!spec.ports.is_empty()).then(|| {
            let mut map: HashMap<String, Option<Vec<bollard::models::PortBinding>>> =
                HashMap::new();
            for p in &spec.ports {
                map.entry(format!("{}/{}", p.container_port, p.protocol))
                    .or_default()
                    .get_or_insert_with(Vec::new)
                    .push(bollard::models::PortBinding {
                        host_ip: (!p.host_ip.is_empty()).then(|| p.host_ip.clone()),
                        host_port: Some(p.host_port.to_string()),
                    });
            }
            map
        }),
        memory: spec.memory,
        nano_cpus: spec.nano_cpus,
        pids_limit: spec.pids,
        ulimits: (!spec.ulimits.is_empty()).then(|| {
            spec.ulimits
                .iter()
                .map(|(name, soft, hard)| bollard::models::ResourcesUlimits {
                    name: Some(name.clone()),
                    soft: Some(*soft),
                    hard: Some(*hard),
                })
                .collect()
        }),
        ..Default::default()
    }
}

/// Its address and aliases on the project's network, when it has one.
fn networking_config(spec: &ContainerSpec) -> Option<bollard::models::NetworkingConfig> {
    match (&spec.network_mode, spec.ip) {
        (Some(net), Some(ip)) => Some(bollard::models::NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                net.clone(),
                bollard::models::EndpointSettings {
                    ipam_config: Some(bollard::models::EndpointIpamConfig {
                        ipv4_address: Some(ip.to_string()),
                        ..Default::default()
                    }),
                    aliases: Some(spec.aliases.clone()),
                    ..Default::default()
                },
            )])),
        }),
        _ => None,
    }
}

/// Splits the engine's log chunks into lines, per stream.
async fn follow(
    mut logs: impl futures_util::Stream<
        Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
    > + Unpin,
    mut on_line: impl FnMut(Stream, String),
) {
    let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let index = |s: Stream| usize::from(s == Stream::Stderr);
    while let Some(Ok(chunk)) = logs.next().await {
        let (stream, bytes) = match chunk {
            bollard::container::LogOutput::StdErr { message } => (Stream::Stderr, message),
            bollard::container::LogOutput::StdOut { message }
            | bollard::container::LogOutput::Console { message } => (Stream::Stdout, message),
            bollard::container::LogOutput::StdIn { .. } => continue,
        };
        let buf = &mut pending[index(stream)];
        buf.extend_from_slice(&bytes);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            on_line(stream, text.trim_end_matches('\r').to_string());
        }
    }
    for stream in [Stream::Stdout, Stream::Stderr] {
        let rest = std::mem::take(&mut pending[index(stream)]);
        if !rest.is_empty() {
            on_line(stream, String::from_utf8_lossy(&rest).into_owned());
        }
    }
}
