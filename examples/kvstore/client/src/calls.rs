//! The calls, and how each answer is printed: one line on stdout per
//! success (`put key-1: ok, new [server-1]`), `error: ...` on stderr per
//! failure, with the gRPC code and message and the replica when known.

use kvstore_proto::REPLICA_HEADER;
use kvstore_proto::pb::key_value_client::KeyValueClient;
use kvstore_proto::pb::{DeleteRequest, GetRequest, ListRequest, PutRequest};
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

pub struct Calls {
    channel: Channel,
    client: KeyValueClient<Channel>,
}

impl Calls {
    pub fn new(channel: Channel) -> Calls {
        Calls {
            client: KeyValueClient::new(channel.clone()),
            channel,
        }
    }

    /// Puts `key-1..=key-n` with fresh values, then gets each and checks it
    /// reads back what was put. Prints a summary line last.
    pub async fn batch(&mut self, n: u32) -> bool {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let value = |i: u32| format!("value-{i}-{nonce:x}");
        let mut ok = true;
        for i in 1..=n {
            ok &= self.put(&format!("key-{i}"), value(i).as_bytes()).await;
        }
        let mut matched = 0;
        for i in 1..=n {
            let key = format!("key-{i}");
            match self.get(&key).await {
                Some(v) if v == value(i).as_bytes() => matched += 1,
                Some(v) => {
                    eprintln!(
                        "error: get {key}: read {:?}, but put {:?}",
                        String::from_utf8_lossy(&v),
                        value(i)
                    );
                    ok = false;
                }
                None => ok = false,
            }
        }
        println!("batch: {n} puts, {n} gets, {matched} read back what was put");
        ok && matched == n
    }

    pub async fn put(&mut self, key: &str, value: &[u8]) -> bool {
        let request = PutRequest {
            key: key.into(),
            value: value.to_vec(),
        };
        match self.client.put(request).await {
            Ok(r) => {
                let what = if r.get_ref().replaced {
                    "replaced"
                } else {
                    "new"
                };
                println!("put {key}: ok, {what}{}", replica(r.metadata()));
                true
            }
            Err(s) => failed("put", key, &s),
        }
    }

    /// The value, or `None` after printing why not.
    pub async fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        match self.client.get(GetRequest { key: key.into() }).await {
            Ok(r) => {
                let value = r.get_ref().value.clone();
                println!(
                    "get {key}: {:?}{}",
                    String::from_utf8_lossy(&value),
                    replica(r.metadata())
                );
                Some(value)
            }
            Err(s) => {
                failed("get", key, &s);
                None
            }
        }
    }

    pub async fn delete(&mut self, key: &str) -> bool {
        match self.client.delete(DeleteRequest { key: key.into() }).await {
            Ok(r) => {
                let what = if r.get_ref().deleted {
                    "deleted"
                } else {
                    "was not there"
                };
                println!("delete {key}: ok, {what}{}", replica(r.metadata()));
                true
            }
            Err(s) => failed("delete", key, &s),
        }
    }

    pub async fn list(&mut self, prefix: &str) -> bool {
        let request = ListRequest {
            prefix: prefix.into(),
            limit: 0,
        };
        match self.client.list(request).await {
            Ok(r) => {
                let replica = replica(r.metadata());
                let entries = r.into_inner().entries;
                for e in &entries {
                    println!("{}: {:?}", e.key, String::from_utf8_lossy(&e.value));
                }
                println!("list {prefix:?}: {} entries{replica}", entries.len());
                true
            }
            Err(s) => failed("list", prefix, &s),
        }
    }

    pub async fn health(&mut self) -> bool {
        let mut client = HealthClient::new(self.channel.clone());
        match client.check(HealthCheckRequest::default()).await {
            Ok(r) => {
                let status = r.get_ref().status().as_str_name();
                println!("health: {status}");
                status == "SERVING"
            }
            Err(s) => failed("health", "", &s),
        }
    }
}

/// ` [server-1]`, or nothing when the answer does not say.
fn replica(metadata: &MetadataMap) -> String {
    metadata
        .get(REPLICA_HEADER)
        .and_then(|v| v.to_str().ok())
        .map_or(String::new(), |r| format!(" [{r}]"))
}

/// Prints the failure; always `false`.
fn failed(call: &str, key: &str, status: &Status) -> bool {
    eprintln!(
        "error: {call} {key}: {:?}: {}{}",
        status.code(),
        status.message(),
        replica(status.metadata())
    );
    false
}
