//! The `KeyValue` service of the front end: every call is checked against
//! the protocol's limits here (bad input never reaches the backend), then
//! passed to the backend, whose answer — value or status — is returned as
//! it is. Every answer, errors included, carries
//! [`REPLICA_HEADER`](kvstore_proto::REPLICA_HEADER) naming this replica.
//!
//! When the backend's connection is lost (it restarted), a call fails with
//! `UNAVAILABLE`; it is tried once more on a new connection. Every call is
//! idempotent (a put of the same value, a delete, a read), so a second try
//! changes nothing that the first did not.

use std::future::Future;
use std::time::Instant;

use kvstore_proto::pb::key_value_client::KeyValueClient;
use kvstore_proto::pb::key_value_server::KeyValue;
use kvstore_proto::pb::{
    DeleteRequest, DeleteResponse, GetRequest, GetResponse, ListRequest, ListResponse, PutRequest,
    PutResponse,
};
use kvstore_proto::{REPLICA_HEADER, limits, log};
use serde_json::json;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

pub struct Frontend {
    backend: KeyValueClient<Channel>,
    /// This replica's name, as sent in [`REPLICA_HEADER`].
    replica: AsciiMetadataValue,
}

impl Frontend {
    pub fn new(backend: Channel, replica: &str) -> Frontend {
        Frontend {
            backend: KeyValueClient::new(backend),
            replica: replica
                .parse()
                .unwrap_or_else(|_| AsciiMetadataValue::from_static("server")),
        }
    }

    /// Sends `request` to the backend with `call` (again once if the
    /// connection was lost), logs it, and names this replica in the answer.
    async fn forward<Req, Resp, F, Fut>(
        &self,
        method: &'static str,
        key: &str,
        request: Req,
        call: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: Clone,
        F: Fn(KeyValueClient<Channel>, Req) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let started = Instant::now();
        let mut result = call(self.backend.clone(), request.clone()).await;
        let mut tries = 1;
        if matches!(&result, Err(s) if s.code() == Code::Unavailable) {
            tries += 1;
            result = call(self.backend.clone(), request).await;
        }
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        log::info(
            "call",
            json!({
                "method": method,
                "key": key,
                "code": format!("{code:?}"),
                "tries": tries,
                "ms": log::millis(started.elapsed()),
            }),
        );
        self.named(result.map(|r| Response::new(r.into_inner())))
    }

    /// `result`, with this replica named in its metadata.
    fn named<T>(&self, result: Result<Response<T>, Status>) -> Result<Response<T>, Status> {
        match result {
            Ok(mut r) => {
                r.metadata_mut()
                    .insert(REPLICA_HEADER, self.replica.clone());
                Ok(r)
            }
            Err(mut s) => {
                s.metadata_mut()
                    .insert(REPLICA_HEADER, self.replica.clone());
                Err(s)
            }
        }
    }

    /// A call refused here, before the backend: logged and named too.
    fn refuse<T>(&self, method: &str, key: &str, status: Status) -> Result<Response<T>, Status> {
        log::info(
            "call",
            json!({"method": method, "key": key, "code": format!("{:?}", status.code())}),
        );
        self.named(Err(status))
    }
}

#[tonic::async_trait]
impl KeyValue for Frontend {
    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let request = request.into_inner();
        let key = request.key.clone();
        if let Err(s) = limits::check_key(&key).and(limits::check_value(&request.value)) {
            return self.refuse("Put", &key, s);
        }
        self.forward(
            "Put",
            &key,
            request,
            |mut c, r| async move { c.put(r).await },
        )
        .await
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let request = request.into_inner();
        let key = request.key.clone();
        if let Err(s) = limits::check_key(&key) {
            return self.refuse("Get", &key, s);
        }
        self.forward(
            "Get",
            &key,
            request,
            |mut c, r| async move { c.get(r).await },
        )
        .await
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let request = request.into_inner();
        let key = request.key.clone();
        if let Err(s) = limits::check_key(&key) {
            return self.refuse("Delete", &key, s);
        }
        self.forward("Delete", &key, request, |mut c, r| async move {
            c.delete(r).await
        })
        .await
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let request = request.into_inner();
        let prefix = request.prefix.clone();
        if let Err(s) =
            limits::check_prefix(&prefix).and(limits::list_limit(request.limit).map(drop))
        {
            return self.refuse("List", &prefix, s);
        }
        self.forward("List", &prefix, request, |mut c, r| async move {
            c.list(r).await
        })
        .await
    }
}
