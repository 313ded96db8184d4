//! A COSI State client for Omni: every call signed ([`super::sign`]), unary calls bounded
//! in time, lists bounded in count, and Omni's refusals told apart from other failures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::codegen::InterceptedService;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, GrpcMethod, Request, Status};

use super::proto::state_client::StateClient;
use super::proto::{
    CreateRequest, GetRequest, ListRequest, Metadata, OwnerOptions, Resource, Spec, UpdateRequest,
    WatchOptions, WatchRequest, WatchResponse,
};
use super::sign::Signer;

/// A unary call that takes longer has failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// More resources than this in one list is taken for a runaway server.
pub const LIST_MAX: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Connect(String),
    /// Omni refused the call's authentication (signature, identity, clock skew).
    Refused(String),
    /// Omni refused the call as not allowed (namespace, label or ownership rules).
    Denied(String),
    Call {
        method: &'static str,
        status: String,
    },
    /// A well-formed gRPC answer that the adapter cannot use.
    Malformed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect(e) => write!(f, "cannot reach Omni: {e}"),
            Error::Refused(e) => write!(
                f,
                "Omni refused the request's signature (check the service account key, and this \
                 host's clock: Omni allows 5 minutes of skew): {e}"
            ),
            Error::Denied(e) => write!(f, "Omni denied the request: {e}"),
            Error::Call { method, status } => write!(f, "Omni {method}: {status}"),
            Error::Malformed(e) => write!(f, "malformed answer from Omni: {e}"),
        }
    }
}

impl std::error::Error for Error {}

pub fn call_error(method: &'static str, s: Status) -> Error {
    match s.code() {
        Code::Unauthenticated => Error::Refused(s.message().to_string()),
        Code::PermissionDenied => Error::Denied(s.message().to_string()),
        _ => Error::Call {
            method,
            status: format!("{:?}: {}", s.code(), s.message()),
        },
    }
}

/// Adds the signature metadata to every call, for the method the generated client names.
#[derive(Clone)]
pub struct Signing {
    signer: Arc<Signer>,
    /// Added to this host's clock: tests use it to play a skewed clock.
    pub clock_offset_secs: i64,
}

impl Interceptor for Signing {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let method = req
            .extensions()
            .get::<GrpcMethod<'static>>()
            .map(|m| format!("/{}/{}", m.service(), m.method()))
            .ok_or_else(|| Status::internal("call without a method name"))?;
        let now = crate::store::now() as i64 + self.clock_offset_secs;
        for (key, value) in self.signer.sign(&method, now).map_err(Status::internal)? {
            let value = MetadataValue::try_from(value.as_str())
                .map_err(|e| Status::internal(format!("{key}: {e}")))?;
            req.metadata_mut().insert(key, value);
        }
        Ok(req)
    }
}

#[derive(Clone)]
pub struct Client {
    state: StateClient<InterceptedService<Channel, Signing>>,
    /// The version Omni gave each resource this client last wrote (namespace, type, id), so
    /// the next write of it is one Update instead of a Get and an Update.
    versions: HashMap<(String, String, String), String>,
}

/// Who owns a resource the adapter writes (COSI's `owner`): empty, as for user resources,
/// so Omni's own controllers do not take them for theirs.
const OWNER: &str = "";

impl Client {
    /// Connects to `url` (`https://` with the web PKI roots, or `http://`).
    pub async fn connect(
        url: &str,
        signer: Arc<Signer>,
        clock_offset_secs: i64,
    ) -> Result<Client, Error> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::Connect(format!("{url}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        if url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_webpki_roots())
                .map_err(|e| Error::Connect(format!("{url}: {e}")))?;
        }
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect())
            .await
            .map_err(|_| Error::Connect(format!("{url}: timed out")))?
            .map_err(|e| Error::Connect(format!("{url}: {e}")))?;
        let signing = Signing {
            signer,
            clock_offset_secs,
        };
        Ok(Client {
            state: StateClient::with_interceptor(channel, signing),
            versions: HashMap::new(),
        })
    }

    /// The resource, or `None` if Omni has none of that id.
    pub async fn get(&mut self, ns: &str, typ: &str, id: &str) -> Result<Option<Resource>, Error> {
        let req = GetRequest {
            namespace: ns.into(),
            r#type: typ.into(),
            id: id.into(),
        };
        match bounded("Get", self.state.get(req)).await {
            Ok(r) => Ok(r.resource),
            Err(Error::Call { status, .. }) if status.starts_with("NotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn list(&mut self, ns: &str, typ: &str) -> Result<Vec<Resource>, Error> {
        let req = ListRequest {
            namespace: ns.into(),
            r#type: typ.into(),
        };
        let mut stream = tokio::time::timeout(CALL_TIMEOUT, self.state.list(req))
            .await
            .map_err(|_| timeout("List"))?
            .map_err(|s| call_error("List", s))?
            .into_inner();
        let mut out = Vec::new();
        loop {
            let next = tokio::time::timeout(CALL_TIMEOUT, stream.message())
                .await
                .map_err(|_| timeout("List"))?
                .map_err(|s| call_error("List", s))?;
            let Some(item) = next else { return Ok(out) };
            if out.len() == LIST_MAX {
                return Err(Error::Malformed(format!("List: over {LIST_MAX} resources")));
            }
            out.extend(item.resource);
        }
    }

    /// Writes a resource's spec and labels: creates it, or updates it at its current version
    /// unless it already holds them. Returns what Omni stored. A resource this client wrote
    /// before is updated at the version Omni gave it then, in one call; if Omni answers that
    /// it moved on (or anything else but a refusal), the write starts again from a Get.
    pub async fn put(&mut self, desired: Resource) -> Result<Resource, Error> {
        let md = desired
            .metadata
            .as_ref()
            .ok_or_else(|| Error::Malformed("resource without metadata".into()))?;
        let key = (md.namespace.clone(), md.r#type.clone(), md.id.clone());
        if let Some(version) = self.versions.remove(&key) {
            match self.update(desired.clone(), version).await {
                Ok(r) => return Ok(self.remember(key, r)),
                Err(e @ (Error::Refused(_) | Error::Denied(_))) => return Err(e),
                Err(_) => {}
            }
        }
        let r = self.put_fresh(desired, &key).await?;
        Ok(self.remember(key, r))
    }

    fn remember(&mut self, key: (String, String, String), r: Resource) -> Resource {
        if let Some(md) = &r.metadata {
            self.versions.insert(key, md.version.clone());
        }
        r
    }

    async fn put_fresh(
        &mut self,
        desired: Resource,
        (ns, typ, id): &(String, String, String),
    ) -> Result<Resource, Error> {
        let Some(current) = self.get(ns, typ, id).await? else {
            let req = CreateRequest {
                resource: Some(desired),
                options: Some(OwnerOptions {
                    owner: OWNER.into(),
                }),
            };
            let r = bounded("Create", self.state.create(req)).await?;
            return r
                .resource
                .ok_or_else(|| Error::Malformed("Create: no resource".into()));
        };
        let cur_md = current.metadata.clone().unwrap_or_default();
        let labels = desired.metadata.as_ref().map(|m| &m.labels);
        if current.spec == desired.spec && Some(&cur_md.labels) == labels {
            return Ok(current);
        }
        self.update(desired, cur_md.version).await
    }

    async fn update(&mut self, mut desired: Resource, version: String) -> Result<Resource, Error> {
        if let Some(md) = desired.metadata.as_mut() {
            md.version = version;
        }
        let req = UpdateRequest {
            new_resource: Some(desired),
            options: Some(OwnerOptions {
                owner: OWNER.into(),
            }),
        };
        let r = bounded("Update", self.state.update(req)).await?;
        r.resource
            .ok_or_else(|| Error::Malformed("Update: no resource".into()))
    }

    /// Watches every resource of a type: the existing ones first, then each change.
    pub async fn watch(
        &mut self,
        ns: &str,
        typ: &str,
    ) -> Result<tonic::Streaming<WatchResponse>, Error> {
        let req = WatchRequest {
            namespace: ns.into(),
            r#type: typ.into(),
            id: None,
            options: Some(WatchOptions {
                bootstrap_contents: true,
            }),
            api_version: 1,
        };
        Ok(tokio::time::timeout(CALL_TIMEOUT, self.state.watch(req))
            .await
            .map_err(|_| timeout("Watch"))?
            .map_err(|s| call_error("Watch", s))?
            .into_inner())
    }
}

fn timeout(method: &'static str) -> Error {
    Error::Call {
        method,
        status: format!("no answer in {} s", CALL_TIMEOUT.as_secs()),
    }
}

async fn bounded<T>(
    method: &'static str,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Error> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| timeout(method))?
        .map(tonic::Response::into_inner)
        .map_err(|s| call_error(method, s))
}

/// A resource to write: its identity, labels and encoded spec.
pub fn resource(
    ns: &str,
    typ: &str,
    id: &str,
    labels: impl IntoIterator<Item = (String, String)>,
    spec: &impl prost::Message,
) -> Resource {
    Resource {
        metadata: Some(Metadata {
            namespace: ns.into(),
            r#type: typ.into(),
            id: id.into(),
            labels: labels.into_iter().collect(),
            ..Default::default()
        }),
        spec: Some(Spec {
            proto_spec: spec.encode_to_vec(),
            yaml_spec: String::new(),
        }),
    }
}
