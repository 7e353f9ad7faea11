//! The project's network and named volumes.

use std::collections::HashMap;

use bollard::query_parameters as q;

use super::{DockerError, Engine, engine};

impl Engine {
    /// Makes the bridge network `name` with `subnet` and `gateway` (the
    /// host's side), unless it is there.
    pub async fn ensure_network(
        &self,
        name: &str,
        subnet: &str,
        gateway: std::net::Ipv4Addr,
        bridge: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), DockerError> {
        // One at a time in this process: replicas starting together would
        // otherwise both create it (the engine refuses the second, its
        // address pool taken, before the first is found by name).
        static CREATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one = CREATING.lock().await;
        if self.docker.inspect_network(name, None).await.is_ok() {
            return Ok(());
        }
        let request = bollard::models::NetworkCreateRequest {
            name: name.into(),
            driver: Some("bridge".into()),
            ipam: Some(bollard::models::Ipam {
                config: Some(vec![bollard::models::IpamConfig {
                    subnet: Some(subnet.into()),
                    gateway: Some(gateway.to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels.clone()),
            // The host's interface gets a name cove knows.
            options: Some(HashMap::from([(
                "com.docker.network.bridge.name".to_string(),
                bridge.to_string(),
            )])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Made meanwhile by another process.
            Err(_) if self.docker.inspect_network(name, None).await.is_ok() => Ok(()),
            Err(e) if e.to_string().contains("overlaps") => Err(DockerError::Overlap {
                name: name.into(),
                subnet: subnet.into(),
            }),
            Err(e) => Err(engine(format!("creating network `{name}` ({subnet})"))(e)),
        }
    }

    /// Removes network `name`, if it is there.
    pub async fn remove_network(&self, name: &str) -> Result<(), DockerError> {
        match self.docker.remove_network(name).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("removing network `{name}`"))(e)),
        }
    }

    /// Removes a volume, if it is there.
    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        match self
            .docker
            .remove_volume(name, None::<q::RemoveVolumeOptions>)
            .await
        {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(engine(format!("removing volume `{name}`"))(e)),
        }
    }
}
