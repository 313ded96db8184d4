//! A stand-in for Omni's COSI state service, because no Omni runs here. It checks every
//! request's `siderov1` signature with the service account's public key (and its clock
//! skew, 5 minutes as Omni), enforces the provider's namespace and label rules, and serves
//! Get, List, Watch, Create and Update for the resources the adapter uses. The test plays
//! Omni's side through [`Omni`] (writing InfraMachines, reading statuses).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;
use provider::omni::proto::state_server::{State, StateServer};
use provider::omni::proto::*;
use provider::omni::{LABEL_PROVIDER_ID, NS_EPHEMERAL, NS_INFRA, provider_namespace};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

const SKEW_SECS: i64 = 5 * 60;
type Key = (String, String, String);
type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[derive(Default)]
struct World {
    resources: BTreeMap<Key, Resource>,
    version: u64,
    /// Why each refused request was refused.
    refused: Vec<String>,
    /// Calls served, by method and resource type.
    calls: BTreeMap<(String, String), u64>,
}

/// The test's handle: Omni's side of the state.
#[derive(Clone)]
pub struct Omni {
    world: Arc<Mutex<World>>,
    events: broadcast::Sender<Event>,
    /// Ends every open watch with an error, as a dropped connection does.
    cuts: broadcast::Sender<()>,
}

struct Service {
    omni: Omni,
    key: SignedPublicKey,
    provider_id: String,
}

fn key_of(r: &Resource) -> Key {
    let m = r.metadata.clone().unwrap_or_default();
    (m.namespace, m.r#type, m.id)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Omni {
    /// Starts the stand-in on a loopback port for the provider `provider_id`.
    pub async fn start(key: SignedPublicKey, provider_id: &str) -> (Omni, SocketAddr) {
        let (events, _) = broadcast::channel(256);
        let omni = Omni {
            world: Arc::default(),
            events,
            cuts: broadcast::channel(4).0,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = Service {
            omni: omni.clone(),
            key,
            provider_id: provider_id.to_string(),
        };
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(StateServer::new(service))
                .serve_with_incoming(incoming),
        );
        (omni, addr)
    }

    /// Writes a resource as Omni (no rules): a new version, and an event to watchers.
    pub fn put(&self, mut r: Resource) -> Resource {
        let mut w = self.world.lock().unwrap();
        w.version += 1;
        let version = w.version.to_string();
        r.metadata.get_or_insert_default().version = version;
        let old = w.resources.insert(key_of(&r), r.clone());
        let event_type = if old.is_some() {
            EventType::Updated
        } else {
            EventType::Created
        };
        let _ = self.events.send(Event {
            resource: Some(r.clone()),
            event_type: event_type as i32,
            old,
            error: None,
        });
        r
    }

    pub fn get(&self, ns: &str, typ: &str, id: &str) -> Option<Resource> {
        let w = self.world.lock().unwrap();
        w.resources
            .get(&(ns.into(), typ.into(), id.into()))
            .cloned()
    }

    /// Calls served so far, by (method, resource type).
    pub fn calls(&self) -> BTreeMap<(String, String), u64> {
        self.world.lock().unwrap().calls.clone()
    }

    /// Cuts every open watch stream.
    pub fn cut_watches(&self) {
        let _ = self.cuts.send(());
    }

    pub fn refused(&self) -> Vec<String> {
        self.world.lock().unwrap().refused.clone()
    }
}

impl Service {
    /// Omni's checks on every call: the signature (go-api-signature's rules), then the
    /// namespace. Refusals are kept for the test to read.
    fn check<T>(&self, req: &Request<T>, method: &str, ns: &str, typ: &str) -> Result<(), Status> {
        let result = self.verify(req, method).and_then(|()| self.namespace(ns));
        let mut w = self.omni.world.lock().unwrap();
        match &result {
            Err(s) => w.refused.push(format!("{method}: {}", s.message())),
            Ok(()) => *w.calls.entry((method.into(), typ.into())).or_default() += 1,
        }
        result
    }

    fn verify<T>(&self, req: &Request<T>, method: &str) -> Result<(), Status> {
        let header = |k: &str| {
            req.metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Status::unauthenticated(format!("{k}: not found")))
        };
        let ts = header("x-sidero-timestamp")?;
        let ts_num: i64 = ts
            .parse()
            .map_err(|_| Status::unauthenticated("x-sidero-timestamp: not a number"))?;
        if (unix_now() - ts_num).abs() > SKEW_SECS {
            return Err(Status::unauthenticated(format!(
                "timestamp is outside of allowed skew: {ts_num}"
            )));
        }
        let payload = header("x-sidero-payload")?;
        let parsed: serde_json::Value = serde_json::from_str(payload)
            .map_err(|e| Status::unauthenticated(format!("payload: {e}")))?;
        if parsed["method"] != method {
            return Err(Status::unauthenticated("payload method does not match"));
        }
        if parsed["headers"]["x-sidero-timestamp"] != serde_json::json!([ts]) {
            return Err(Status::unauthenticated("payload header does not match"));
        }
        let parts: Vec<&str> = header("x-sidero-signature")?.split(' ').collect();
        let [version, _identity, fingerprint, signature] = parts[..] else {
            return Err(Status::unauthenticated("invalid signature header"));
        };
        if version != "siderov1" {
            return Err(Status::unauthenticated("unsupported signature version"));
        }
        if fingerprint != format!("{:x}", self.key.primary_key.fingerprint()) {
            return Err(Status::unauthenticated("unknown key fingerprint"));
        }
        let bytes = STANDARD
            .decode(signature)
            .map_err(|_| Status::unauthenticated("signature: not base64"))?;
        let sig = DetachedSignature::from_bytes(&bytes[..])
            .map_err(|e| Status::unauthenticated(format!("signature: {e}")))?;
        sig.verify(&self.key.primary_key, payload.as_bytes())
            .map_err(|e| Status::unauthenticated(format!("invalid signature: {e}")))
    }

    fn namespace(&self, ns: &str) -> Result<(), Status> {
        if ns == NS_INFRA || ns == NS_EPHEMERAL || ns == provider_namespace(&self.provider_id) {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "namespace {ns}: not the provider's"
        )))
    }

    /// The provider sees and writes only resources that carry its id.
    fn ours(&self, r: &Resource) -> bool {
        r.metadata
            .as_ref()
            .and_then(|m| m.labels.get(LABEL_PROVIDER_ID))
            .is_some_and(|id| *id == self.provider_id)
    }

    fn write(&self, r: Option<Resource>, method: &str, create: bool) -> Result<Resource, Status> {
        let r = r.ok_or_else(|| Status::invalid_argument("no resource"))?;
        if !self.ours(&r) {
            let s =
                Status::permission_denied(format!("{LABEL_PROVIDER_ID} must be the provider's"));
            self.omni
                .world
                .lock()
                .unwrap()
                .refused
                .push(format!("{method}: {}", s.message()));
            return Err(s);
        }
        let current = self
            .omni
            .world
            .lock()
            .unwrap()
            .resources
            .get(&key_of(&r))
            .cloned();
        match (current, create) {
            (Some(_), true) => Err(Status::already_exists("resource exists")),
            (None, false) => Err(Status::not_found("no such resource")),
            (Some(c), false) if !self.ours(&c) => {
                Err(Status::permission_denied("not the provider's"))
            }
            (Some(c), false)
                if c.metadata.as_ref().map(|m| m.version.clone())
                    != r.metadata.as_ref().map(|m| m.version.clone()) =>
            {
                Err(Status::failed_precondition("version conflict"))
            }
            _ => Ok(self.omni.put(r)),
        }
    }
}

fn ns_of(r: &Option<Resource>) -> (String, String) {
    let (ns, typ, _) = r.as_ref().map(key_of).unwrap_or_default();
    (ns, typ)
}

#[tonic::async_trait]
impl State for Service {
    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let g = req.get_ref();
        self.check(&req, "/cosi.resource.State/Get", &g.namespace, &g.r#type)?;
        let g = req.into_inner();
        match self.omni.get(&g.namespace, &g.r#type, &g.id) {
            Some(r) if self.ours(&r) => Ok(Response::new(GetResponse { resource: Some(r) })),
            _ => Err(Status::not_found(format!(
                "{} {} not found",
                g.r#type, g.id
            ))),
        }
    }

    type ListStream = Stream_<ListResponse>;
    async fn list(&self, req: Request<ListRequest>) -> Result<Response<Self::ListStream>, Status> {
        let l = req.get_ref();
        self.check(&req, "/cosi.resource.State/List", &l.namespace, &l.r#type)?;
        let l = req.into_inner();
        let w = self.omni.world.lock().unwrap();
        let items: Vec<_> = w
            .resources
            .values()
            .filter(|r| key_of(r).0 == l.namespace && key_of(r).1 == l.r#type && self.ours(r))
            .map(|r| {
                Ok(ListResponse {
                    resource: Some(r.clone()),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    async fn create(
        &self,
        req: Request<CreateRequest>,
    ) -> Result<Response<CreateResponse>, Status> {
        let (ns, typ) = ns_of(&req.get_ref().resource);
        self.check(&req, "/cosi.resource.State/Create", &ns, &typ)?;
        let r = self.write(req.into_inner().resource, "Create", true)?;
        Ok(Response::new(CreateResponse { resource: Some(r) }))
    }

    async fn update(
        &self,
        req: Request<UpdateRequest>,
    ) -> Result<Response<UpdateResponse>, Status> {
        let (ns, typ) = ns_of(&req.get_ref().new_resource);
        self.check(&req, "/cosi.resource.State/Update", &ns, &typ)?;
        let r = self.write(req.into_inner().new_resource, "Update", false)?;
        Ok(Response::new(UpdateResponse { resource: Some(r) }))
    }

    type WatchStream = Stream_<WatchResponse>;
    /// The existing resources as CREATED, then BOOTSTRAPPED, then every change; the
    /// forwarding task ends when the client goes or falls 256 events behind.
    async fn watch(
        &self,
        req: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let w = req.get_ref();
        self.check(&req, "/cosi.resource.State/Watch", &w.namespace, &w.r#type)?;
        let w = req.into_inner();
        let matches = {
            let id = self.provider_id.clone();
            let (ns, typ) = (w.namespace.clone(), w.r#type.clone());
            move |r: &Resource| {
                let (n, t, _) = key_of(r);
                let label = r
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.get(LABEL_PROVIDER_ID));
                n == ns && t == typ && label == Some(&id)
            }
        };
        let mut live = self.omni.events.subscribe();
        let mut cut = self.omni.cuts.subscribe();
        let existing: Vec<Event> = {
            let world = self.omni.world.lock().unwrap();
            let bootstrapped = Event {
                event_type: EventType::Bootstrapped as i32,
                ..Default::default()
            };
            world
                .resources
                .values()
                .filter(|r| matches(r))
                .map(|r| Event {
                    resource: Some(r.clone()),
                    ..Default::default()
                })
                .chain([bootstrapped])
                .collect()
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let send = |event| tx.send(Ok(WatchResponse { event: vec![event] }));
            for e in existing {
                if send(e).await.is_err() {
                    return;
                }
            }
            loop {
                let event = tokio::select! {
                    biased;
                    _ = cut.recv() => {
                        let _ = tx.send(Err(Status::unavailable("stream cut"))).await;
                        return;
                    }
                    e = live.recv() => e,
                };
                match event {
                    Ok(e) if e.resource.as_ref().is_some_and(&matches) => {
                        if send(e).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
