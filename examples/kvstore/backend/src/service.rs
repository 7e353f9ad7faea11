//! The `KeyValue` gRPC service over the [`Store`]: checks each call against
//! the protocol's limits, runs it on a blocking thread, logs it (one JSON
//! line per call: method, key, gRPC code, milliseconds).

use std::future::Future;
use std::time::Instant;

use kvstore_proto::limits;
use kvstore_proto::log;
use kvstore_proto::pb::key_value_server::KeyValue;
use kvstore_proto::pb::{
    DeleteRequest, DeleteResponse, Entry, GetRequest, GetResponse, ListRequest, ListResponse,
    PutRequest, PutResponse,
};
use serde_json::json;
use tonic::{Code, Request, Response, Status};

use crate::store::{Store, StoreError};

pub struct Backend {
    store: Store,
}

impl Backend {
    pub fn new(store: Store) -> Backend {
        Backend { store }
    }

    /// Runs `f` on the store, on a blocking thread.
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(store)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Status::internal(e.to_string())),
            Err(e) => Err(Status::internal(format!("the store call failed: {e}"))),
        }
    }
}

/// Runs one call and logs it: method, key, gRPC code, milliseconds.
async fn logged<T>(
    method: &str,
    key: &str,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let result = call.await;
    let mut fields = json!({
        "method": method,
        "key": key,
        "code": format!("{:?}", result.as_ref().map_or_else(Status::code, |_| Code::Ok)),
        "ms": log::millis(started.elapsed()),
    });
    if let Err(s) = &result
        && s.code() == Code::Internal
    {
        fields["error"] = s.message().into();
    }
    log::info("call", fields);
    result.map(Response::new)
}

#[tonic::async_trait]
impl KeyValue for Backend {
    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let PutRequest { key, value } = request.into_inner();
        logged("Put", &key.clone(), async {
            limits::check_key(&key)?;
            limits::check_value(&value)?;
            let replaced = self.with_store(move |s| s.put(&key, &value)).await?;
            Ok(PutResponse { replaced })
        })
        .await
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let GetRequest { key } = request.into_inner();
        logged("Get", &key, async {
            limits::check_key(&key)?;
            let k = key.clone();
            match self.with_store(move |s| s.get(&k)).await? {
                Some(value) => Ok(GetResponse { value }),
                None => Err(Status::not_found(format!("no key `{key}`"))),
            }
        })
        .await
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let DeleteRequest { key } = request.into_inner();
        logged("Delete", &key.clone(), async {
            limits::check_key(&key)?;
            let deleted = self.with_store(move |s| s.delete(&key)).await?;
            Ok(DeleteResponse { deleted })
        })
        .await
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let ListRequest { prefix, limit } = request.into_inner();
        logged("List", &prefix.clone(), async {
            limits::check_prefix(&prefix)?;
            let limit = limits::list_limit(limit)?;
            let entries = self
                .with_store(move |s| s.list(&prefix, limit))
                .await?
                .into_iter()
                .map(|(key, value)| Entry { key, value })
                .collect();
            Ok(ListResponse { entries })
        })
        .await
    }
}
